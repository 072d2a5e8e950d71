"""Database engines and migrations.

- SQLite (embedded mode and fast tests): every transaction starts with BEGIN IMMEDIATE so that
  writers are serialised (SQLAlchemy's documented pysqlite recipe), WAL journal, 30 s busy timeout.
- PostgreSQL through pg8000: DATABASE_URL=postgresql+pg8000://user:pw@host:port/db.
- Cloud SQL: when INSTANCE_CONNECTION_NAME is set, connections come from the Cloud SQL Python
  Connector (created lazily, refresh_strategy="lazy", as Google recommends for Cloud Functions /
  serverless: https://cloud.google.com/sql/docs/postgres/connect-connectors#python).

The schema is created only by Alembic migrations (`migrate()`), never by create_all.
JSON columns are written strictly (`strict_json`): NaN/Infinity raise ValueError, never stored.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_connector = None
_connector_lock = threading.Lock()


def _cloud_sql_connector():
    """The process-wide Cloud SQL Connector, created on first use (it needs credentials)."""
    global _connector
    with _connector_lock:
        if _connector is None:
            from google.cloud.sql.connector import Connector  # imported lazily: needs credentials

            _connector = Connector(refresh_strategy="lazy")
        return _connector


def strict_json(value: object) -> str:
    """The engines' json_serializer: what JSON.parse and PostgreSQL's json type accept (ValueError
    for NaN/Infinity, which json.dumps would write as bare tokens)."""
    return json.dumps(value, allow_nan=False)


def _sqlite_engine(url: str, **kw) -> Engine:
    u = make_url(url)
    if u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                           json_serializer=strict_json, **kw)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" hook emit BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_engine(settings: Settings, *, autocommit: bool = False) -> Engine:
    """An Engine for the configured database (see module docstring). Does not connect yet.

    autocommit=True: connections stay in autocommit for single-statement reads (no BEGIN/COMMIT,
    no per-checkout isolation reset, no pre-ping: a read on a dropped connection fails once with a
    503 and the pool reconnects)."""
    extra = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if settings.instance_connection_name:
        def getconn():
            return _cloud_sql_connector().connect(
                settings.instance_connection_name, "pg8000", user=settings.db_user,
                password=settings.db_password, db=settings.db_name, enable_iam_auth=settings.db_iam_auth)

        return create_engine("postgresql+pg8000://", creator=getconn, pool_size=5, max_overflow=2,
                             pool_pre_ping=not autocommit, pool_recycle=1800,
                             json_serializer=strict_json, **extra)
    return engine_for_url(settings.database_url, autocommit=autocommit)


def engine_for_url(url: str, *, autocommit: bool = False) -> Engine:
    """An Engine for a SQLAlchemy URL (sqlite:///... or postgresql+pg8000://...); see make_engine."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if autocommit:
        return create_engine(url, pool_size=32, max_overflow=16, pool_pre_ping=False, pool_recycle=1800,
                             isolation_level="AUTOCOMMIT", json_serializer=strict_json)
    # Overflow connections are closed on check-in, so a steady load above pool_size opens and closes
    # a PostgreSQL connection (a backend process, an SSL probe) per request: size the pool for the
    # gateway's concurrency (the load test runs 32) and keep the overflow for bursts.
    return create_engine(url, pool_size=32, max_overflow=16, pool_pre_ping=True, pool_recycle=1800,
                         json_serializer=strict_json)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def migrate(target: Engine | str) -> None:
    """Upgrade the database to the newest Alembic revision (idempotent).

    Args:
        target: an Engine or a SQLAlchemy URL.
    """
    engine = engine_for_url(target) if isinstance(target, str) else target
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    if isinstance(target, str):
        engine.dispose()


if __name__ == "__main__":  # python -m shared.db  -> migrate the configured database (deploy step)
    from shared.config import get_settings

    migrate(make_engine(get_settings()))
    print("database migrated to head")
