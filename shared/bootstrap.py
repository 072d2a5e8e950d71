"""The one wiring point: builds the service and its adapters from settings, once per process.

Adapters by setting (env):
- storage   EXPORT_STORAGE_BACKEND   google (Cloud Storage; emulators via STORAGE_EMULATOR_HOST) | local (folder)
- publisher EXPORT_PUBLISHER_BACKEND google (Pub/Sub; emulator via PUBSUB_EMULATOR_HOST) | local (HTTP push)
- launcher  EXPORT_LAUNCHER_BACKEND  google (Cloud Run Jobs) | local (subprocess `python -m render_job`)
- events    EXPORT_PUBLISHER_BACKEND google (topic EXPORT_EVENTS_TOPIC) | local (HTTP push to
            EXPORT_LOCAL_EVENTS_PUSH_URL, dead-lettered to EXPORT_LOCAL_DEAD_LETTER_FILE; unset: no events)
Clients are created lazily inside the adapters and reused by warm invocations.
"""
from __future__ import annotations

import threading

from shared.config import Settings, get_settings
from shared.ports import EventPublisher, JobLauncher, ObjectStorage, Publisher

_lock = threading.Lock()


def get_storage(settings: Settings | None = None) -> ObjectStorage:
    """The configured ObjectStorage."""
    s = settings or get_settings()
    if s.storage_backend == "local":
        from shared.adapters.local_storage import LocalStorage

        return LocalStorage(s.local_storage_dir)
    from shared.adapters.google_storage import GoogleStorage

    return GoogleStorage(project=s.project, credentials_info=s.credentials_info())


def get_publisher(settings: Settings | None = None) -> Publisher:
    s = settings or get_settings()
    if s.publisher_backend == "local":
        from shared.adapters.local_pubsub import HttpPushPublisher

        if not s.local_push_url:
            raise RuntimeError("EXPORT_PUBLISHER_BACKEND=local needs EXPORT_LOCAL_PUSH_URL")
        return HttpPushPublisher(s.local_push_url, s.project)
    from shared.adapters.google_pubsub import PubSubPublisher

    return PubSubPublisher(s.project, s.jobs_topic)


def get_event_publisher(settings: Settings | None = None) -> EventPublisher | None:
    """Where job events go (shared.webhooks); None when the local publisher has no events URL."""
    s = settings or get_settings()
    if s.publisher_backend == "local":
        from shared.adapters.local_pubsub import HttpPushPublisher

        if not s.local_events_push_url:
            return None
        return HttpPushPublisher(s.local_events_push_url, s.project, max_attempts=s.local_push_max_attempts,
                                 backoff_s=s.local_push_backoff_s, dead_letter_file=s.local_dead_letter_file,
                                 subscription="local-events")
    from shared.adapters.google_pubsub import PubSubPublisher

    return PubSubPublisher(s.project, s.events_topic)


def get_launcher(settings: Settings | None = None) -> JobLauncher:
    s = settings or get_settings()
    if s.launcher_backend == "local":
        from shared.adapters.local_launcher import SubprocessLauncher

        return SubprocessLauncher(s.render_job_name, max_retries=s.render_max_retries, python=s.render_python,
                                  log_dir=s.render_log_dir, image=s.render_container_image,
                                  stitch_job=s.render_stitch_job_name, parallelism=s.local_task_parallelism,
                                  max_parts=s.render_max_parts)
    from shared.adapters.google_run import CloudRunLauncher

    return CloudRunLauncher(s.project, s.region, s.render_job_name, s.render_task_timeout_s,
                            stitch_job=s.render_stitch_job_name, stitch_timeout_s=s.render_stitch_task_timeout_s,
                            max_parts=s.render_max_parts)


_service = None


def get_service():
    """The process-wide ExportService (created at first use, reused by warm invocations).

    With EXPORT_AUTO_MIGRATE=1 (local modes) the database is migrated first; in production the
    deploy runs the migration instead.
    """
    global _service
    if _service is None:
        with _lock:
            if _service is None:
                _service = build_service(get_settings())
    return _service


_FROM_SETTINGS: object = object()  # build_service: "the configured event publisher"


def build_service(s: Settings, *, storage: ObjectStorage | None = None, publisher: Publisher | None = None,
                  launcher: JobLauncher | None = None, migrate_db: bool | None = None,
                  events: EventPublisher | None | object = _FROM_SETTINGS):
    """Wire an ExportService from settings; any adapter may be passed in instead (tests; events=None:
    no job events)."""
    from shared.adapters.webhook_http import HttpsWebhookSender
    from shared.db import make_engine, migrate, session_factory
    from shared.part_store import SqlPartStore
    from shared.service import ExportService
    from shared.webhook_store import SqlWebhookStore

    engine = make_engine(s)
    if migrate_db if migrate_db is not None else s.auto_migrate:
        migrate(engine)
    reads = make_engine(s, autocommit=True) if engine.dialect.name == "postgresql" else None
    return ExportService(settings=s, repo=build_repository(engine, reads),
                         storage=storage or get_storage(s), publisher=publisher or get_publisher(s),
                         launcher=launcher or get_launcher(s), authenticator=build_authenticator(s, engine),
                         events=get_event_publisher(s) if events is _FROM_SETTINGS else events,
                         webhooks=SqlWebhookStore(session_factory(engine)), parts=SqlPartStore(session_factory(engine)),
                         sender=HttpsWebhookSender(s.webhook_ca_file))


def build_authenticator(s: Settings, engine):
    """The client API's Authenticator (shared.auth): server keys in `engine`'s api_keys table."""
    from shared.auth import Authenticator
    from shared.db import session_factory
    from shared.key_store import SqlApiKeyStore

    return Authenticator(s, keys=SqlApiKeyStore(session_factory(engine)))


def build_repository(engine, read_engine=None):
    """A JobRepository (shared.repository.SqlJobRepository) on `engine`; single-statement reads go to
    `read_engine` when given (on PostgreSQL, an autocommit pool: export_status is one prepared
    statement, one round trip)."""
    from shared.db import session_factory
    from shared.repository import SqlJobRepository

    return SqlJobRepository(session_factory(engine), read_engine)


def use_service(service) -> None:
    """Install `service` as the process-wide one (tests); None forgets it."""
    global _service
    _service = service


def reset() -> None:
    """Forget cached settings and service (tests that change the environment)."""
    global _service
    get_settings.cache_clear()
    _service = None
