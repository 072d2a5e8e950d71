"""Shared fixtures.

- `pg_url` (session): TEST_DATABASE_URL when set; else a throwaway PostgreSQL cluster started with
  infra/local/postgres.py (initdb + pg_ctl) when the server binaries are present; else skip — or
  fail when SCENEFLOW_REQUIRE_POSTGRES=1 (CI).
- `emulated_stack` (session): the emulated-cloud stack of infra/local/stack.py (PostgreSQL, Pub/Sub
  emulator, fake-gcs-server, functions gateway, local launcher); skips when the machine lacks
  gcloud/Java/fake-gcs-server/PostgreSQL — or fails when SCENEFLOW_REQUIRE_EMULATORS=1 (CI).
- `run_dir` (session): a folder for the logs of services the tests start.

Tests that need these are marked `postgres` / `emulators` (declared in pyproject.toml); tests using
the fixtures get the marker automatically.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _required(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}


def _unavailable(var: str, reason: str):
    """Skip, or fail when `var` demands the tier (CI)."""
    if _required(var):
        pytest.fail(f"{reason} (and {var}=1 forbids skipping)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "pg_url" in names and not item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.postgres)
        if "emulated_stack" in names and not item.get_closest_marker("emulators"):
            item.add_marker(pytest.mark.emulators)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    from infra.local.process import make_run_dir

    return make_run_dir("tests")


@pytest.fixture(scope="session")
def pg_url(run_dir):
    """A SQLAlchemy URL (postgresql+pg8000://...) of a PostgreSQL database the tests may use."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    from infra.local.postgres import Postgres, postgres_available
    from infra.local.process import ServiceError

    if not postgres_available():
        _unavailable("SCENEFLOW_REQUIRE_POSTGRES",
                     "no PostgreSQL: set TEST_DATABASE_URL or install the server (initdb, pg_ctl)")
    pg = Postgres(run_dir=run_dir)
    try:
        pg.start()
    except ServiceError as exc:
        pg.stop()
        _unavailable("SCENEFLOW_REQUIRE_POSTGRES", f"could not start PostgreSQL: {exc}")
    try:
        yield pg.url
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def emulated_stack(run_dir):
    """A started infra.local.stack.EmulatedStack (uses TEST_DATABASE_URL's server when set)."""
    from infra.local.process import ServiceError
    from infra.local.stack import EmulatedStack

    ok, reason = EmulatedStack.available()
    if not ok and not (os.environ.get("TEST_DATABASE_URL") and "PostgreSQL" in reason):
        _unavailable("SCENEFLOW_REQUIRE_EMULATORS", f"emulated cloud unavailable: {reason}")
    stack = EmulatedStack(run_dir=run_dir / "emulated",
                          database_url=os.environ.get("TEST_DATABASE_URL") or None)
    try:
        stack.start()
    except (ServiceError, OSError) as exc:
        stack.stop()
        _unavailable("SCENEFLOW_REQUIRE_EMULATORS", f"could not start the emulated stack: {exc}")
    except BaseException:
        stack.stop()
        raise
    try:
        yield stack
    finally:
        stack.stop()
