"""Teardown invariant of the system tests: after each test that used a stack fixture (embedded_stack,
emulated_stack), every succeeded job in the stack's database has its own video in the stack's
storage emulator (tests/invariants.py). Stacks a test builds itself are checked in the test."""
from __future__ import annotations

import pytest

from tests.invariants import check_stack

_STACK_FIXTURES = ("embedded_stack", "emulated_stack")


@pytest.fixture(autouse=True)
def succeeded_jobs_have_their_video(request):
    stacks = [request.getfixturevalue(name) for name in _STACK_FIXTURES if name in request.fixturenames]
    yield
    for stack in stacks:
        check_stack(stack)
