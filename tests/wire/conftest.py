"""Wire-level fixtures: the real Google client libraries talking to local servers.

- `fake_gcs` (module): our own fake-gcs-server (no notifications), buckets wire-in / wire-out.
- `pubsub_host` (session): the Pub/Sub emulator of `emulated_stack` when this machine can run that
  stack (shared with the system tests, so no second JVM), else one started here; skips or fails
  like `emulated_stack` when gcloud/Java are missing.
- `storage` (module): GoogleStorage (the real client) against the module's own `emulator` fixture
  (infra/local/storage_emulator.StorageEmulator), signing with a key the emulator trusts.
"""
from __future__ import annotations

import os

import pytest

from tests.conftest import _unavailable

PROJECT = "wire-proj"


@pytest.fixture(scope="module")
def storage(emulator):
    from infra.local.signed_urls import make_service_account_key
    from shared.adapters.google_storage import GoogleStorage

    mp = pytest.MonkeyPatch()
    mp.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    key = make_service_account_key(PROJECT)
    emulator.verifier.trust(key)
    yield GoogleStorage(PROJECT, credentials_info=key)
    mp.undo()


@pytest.fixture(scope="module")
def fake_gcs(run_dir):
    from infra.local.fake_gcs import FakeGcs, fake_gcs_available
    from infra.local.process import ServiceError

    if not fake_gcs_available():
        _unavailable("SCENEFLOW_REQUIRE_EMULATORS", "fake-gcs-server (Linux x86-64 wheel) is missing")
    gcs = FakeGcs(PROJECT, ["wire-in", "wire-out"], run_dir=run_dir / "wire-gcs")
    try:
        gcs.start()
    except ServiceError as exc:
        gcs.stop()
        _unavailable("SCENEFLOW_REQUIRE_EMULATORS", f"could not start fake-gcs-server: {exc}")
    try:
        yield gcs
    finally:
        gcs.stop()


@pytest.fixture(scope="session")
def pubsub_host(request, run_dir):
    from infra.local.process import ServiceError
    from infra.local.pubsub_emulator import PubSubEmulator, pubsub_emulator_available
    from infra.local.stack import EmulatedStack

    if EmulatedStack.available()[0] or os.environ.get("TEST_DATABASE_URL"):
        stack = request.getfixturevalue("emulated_stack")
        yield stack.pubsub.host
        return
    if not pubsub_emulator_available():
        _unavailable("SCENEFLOW_REQUIRE_EMULATORS", "gcloud and java are needed for the Pub/Sub emulator")
    emu = PubSubEmulator(PROJECT, run_dir=run_dir / "wire-pubsub")
    try:
        emu.start()
    except ServiceError as exc:
        emu.stop()
        _unavailable("SCENEFLOW_REQUIRE_EMULATORS", f"could not start the Pub/Sub emulator: {exc}")
    try:
        yield emu.host
    finally:
        emu.stop()
