"""Teardown invariants of the integration tests that create jobs (functions_env.make_functions_env)."""
from __future__ import annotations

import pytest

from tests.integration import functions_env
from tests.invariants import check_service


@pytest.fixture(autouse=True)
def succeeded_jobs_have_their_video():
    """After each test: every succeeded job of every env it built has its own video (issue 14)."""
    functions_env.CREATED.clear()
    yield
    envs, functions_env.CREATED[:] = list(functions_env.CREATED), []
    for env in envs:
        check_service(env.service)
