"""One way to stand up the functions for integration tests: the real functions/main.py served by
functions-framework's create_app(...).test_client(), wired by shared.bootstrap to SQLite and the
local adapters (folder storage, recording publisher and launcher)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from functions_framework import create_app

from shared import bootstrap
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from tests.fakes import RecordingLauncher, RecordingPublisher

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
FUNCTIONS = ("export_start", "export_status", "export_complete", "export_cancel", "export_list",
             "reconcile_exports", "export_webhook_secret", "dispatch_export", "deliver_webhook",
             "on_object_finalized")


@dataclass
class FunctionsEnv:
    """c: test clients by function name; the adapters and service behind them."""

    settings: Settings
    storage: LocalStorage
    publisher: RecordingPublisher
    launcher: RecordingLauncher
    service: object
    c: dict = field(default_factory=dict)


# every env built during the current test; tests/integration/conftest.py checks their invariants at teardown
CREATED: list[FunctionsEnv] = []


def make_functions_env(tmp_path: Path, events=None, **settings) -> FunctionsEnv:
    """Build and install (bootstrap.use_service) a service on tmp_path (SQLite there unless
    `database_url` is given); call bootstrap.use_service(None) after. events: the job events'
    EventPublisher (shared.webhooks), None for none."""
    s = Settings(**{"database_url": f"sqlite:///{tmp_path}/jobs.db", **settings})
    storage, publisher, launcher = LocalStorage(tmp_path / "gcs"), RecordingPublisher(), RecordingLauncher()
    service = bootstrap.build_service(s, storage=storage, publisher=publisher, launcher=launcher, migrate_db=True,
                                      events=events)
    bootstrap.use_service(service)
    clients = {name: create_app(target=name, source=SOURCE).test_client() for name in FUNCTIONS}
    env = FunctionsEnv(s, storage, publisher, launcher, service, clients)
    CREATED.append(env)
    return env
