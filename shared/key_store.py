"""Server keys in SQL (table api_keys, migration 0005): the ApiKeyStore port (shared.ports) plus what
the key CLI needs (infra/api_keys.py: create, list, revoke). Only the SHA-256 of a key's secret is
stored (shared.auth.new_server_key makes keys). No cache: a revoked key is refused at its next use.

Errors: TransientError for a lost database (as shared.repository); Conflict when a name is taken.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.clock import utcnow
from shared.errors import Conflict
from shared.models import ApiKey
from shared.ports import ApiKeyRecord
from shared.repository import _aware, _database_errors


def _record(row: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(key_id=row.key_id, name=row.name, secret_sha256=row.secret_sha256,
                        created_at=_aware(row.created_at), revoked_at=_aware(row.revoked_at),
                        last_used_at=_aware(row.last_used_at))


class SqlApiKeyStore:
    """ApiKeyStore on a SQLAlchemy sessionmaker (SQLite or PostgreSQL)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def find(self, key_id: str) -> ApiKeyRecord | None:
        with _database_errors(), self._sessions() as session:
            row = session.get(ApiKey, key_id)
            return _record(row) if row else None

    def touch(self, key_id: str, at: datetime) -> None:
        with _database_errors(), self._sessions.begin() as session:
            session.execute(update(ApiKey).where(ApiKey.key_id == key_id).values(last_used_at=at))

    def create(self, key_id: str, name: str, secret_sha256: str) -> ApiKeyRecord:
        """Store a new key. Raises Conflict when `name` (or, never in practice, `key_id`) is taken."""
        row = ApiKey(key_id=key_id, name=name, secret_sha256=secret_sha256, created_at=utcnow())
        try:
            with _database_errors(), self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise Conflict(f"a server key named {name!r} exists already (names are unique; revoked keys keep theirs)") from None
        return _record(row)

    def list(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones included, oldest first."""
        with _database_errors(), self._sessions() as session:
            return [_record(r) for r in session.execute(select(ApiKey).order_by(ApiKey.created_at)).scalars()]

    def revoke(self, key_id: str) -> ApiKeyRecord | None:
        """Revoke a key (idempotent: a revoked key keeps its first revoked_at); None when unknown."""
        with _database_errors(), self._sessions.begin() as session:
            session.execute(update(ApiKey).where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
                            .values(revoked_at=utcnow()))
        return self.find(key_id)
