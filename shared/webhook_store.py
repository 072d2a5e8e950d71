"""The SQL side of webhooks (shared.webhooks): the outbox rows of export_job_events, per-owner
signing secrets, delivery attempts, the progress-event throttle. On the repository's sessions
(SQLite or PostgreSQL); database connection errors surface as TransientError, as in
shared.repository.

Which transitions are events (PUBLISHED): queued, running, succeeded, failed, canceled.
awaiting_upload is the start's own answer and dispatched an internal claim (it may fall back to
queued), so neither is sent.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterator

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.clock import iso, utcnow
from shared.models import ExportJob, ExportJobEvent, WebhookDelivery, WebhookSecret
from shared.states import JobStatus
from shared.status_view import SHOWN_DELIVERIES
from shared.webhook_signing import new_secret

PUBLISHED = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED,
                       JobStatus.CANCELED})


def publish_pending(status: JobStatus | str, webhook_url: str | None) -> bool:
    """Whether a transition to `status` of a job with `webhook_url` goes to the outbox."""
    return webhook_url is not None and JobStatus(status) in PUBLISHED


@dataclass(frozen=True)
class PendingEvent:
    """An outbox row: event row id, job id, status entered, when."""

    seq: int
    job_id: str
    status: str
    at: datetime


def delivery_view(d: WebhookDelivery) -> dict[str, Any]:
    """One attempt as export_status shows it (shared.status_view mirrors this in SQL)."""
    return {"eventId": d.event_id, "type": d.event_type, "attempt": d.attempt, "at": iso(d.at),
            "httpStatus": d.http_status, "error": d.error, "durationMs": d.duration_ms}


def recent_deliveries(session: Session, job_id: str, limit: int = SHOWN_DELIVERIES) -> list[dict[str, Any]]:
    """The job's last `limit` delivery attempts, oldest first."""
    rows = session.execute(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)
                           .order_by(WebhookDelivery.id.desc()).limit(limit)).scalars().all()
    return [delivery_view(d) for d in reversed(rows)]


class SqlWebhookStore:
    """Outbox, secrets and attempts, on `sessions` (the repository's sessionmaker)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        from shared.repository import _database_errors  # one mapping of connection errors

        with _database_errors(), self._sessions.begin() as session:
            yield session

    # -- the outbox --------------------------------------------------------------------------
    def pending(self, job_id: str | None = None, before: datetime | None = None,
                limit: int = 100) -> list[PendingEvent]:
        """Outbox rows not yet published, oldest first: of one job, or (reconcile) of every job
        when written before `before`."""
        stmt = select(ExportJobEvent).where(ExportJobEvent.publish_pending.is_(True))
        if job_id is not None:
            stmt = stmt.where(ExportJobEvent.job_id == job_id)
        if before is not None:
            stmt = stmt.where(ExportJobEvent.at < before)
        with self._tx() as s:
            rows = s.execute(stmt.order_by(ExportJobEvent.id).limit(limit)).scalars().all()
            return [PendingEvent(r.id, r.job_id, r.status, r.at) for r in rows]

    def mark_published(self, seq: int) -> None:
        with self._tx() as s:
            s.execute(update(ExportJobEvent).where(ExportJobEvent.id == seq)
                      .values(publish_pending=False, published_at=utcnow()))

    def claim_progress_event(self, job_id: str, interval_s: float) -> bool:
        """True (and the job's webhook_progress_at set to now) when the running job has a webhook and
        its last progress event is older than interval_s: one progress event per interval per job."""
        now = utcnow()
        with self._tx() as s:
            r = s.execute(update(ExportJob).where(
                ExportJob.id == job_id, ExportJob.status == JobStatus.RUNNING.value,
                ExportJob.webhook_url.is_not(None),
                or_(ExportJob.webhook_progress_at.is_(None),
                    ExportJob.webhook_progress_at <= now - timedelta(seconds=interval_s)))
                .values(webhook_progress_at=now))
            return r.rowcount == 1

    # -- secrets -----------------------------------------------------------------------------
    def secret(self, owner: str) -> str:
        """The owner's signing secret, created (whsec_..., shared.webhook_signing) on first need."""
        with self._tx() as s:
            row = s.get(WebhookSecret, owner)
            if row is not None:
                return row.secret
        try:
            with self._tx() as s:
                s.add(WebhookSecret(owner=owner, secret=new_secret(), created_at=utcnow()))
        except IntegrityError:
            pass  # a concurrent first need created it: both use that one
        with self._tx() as s:
            return s.get(WebhookSecret, owner).secret

    # -- attempts ----------------------------------------------------------------------------
    def record_attempt(self, job_id: str, event_id: str, event_type: str, *, http_status: int | None,
                       error: str | None, duration_ms: int) -> int:
        """Append an attempt for `event_id`; returns its number (1 + the attempts before it)."""
        with self._tx() as s:
            n = s.execute(select(func.count()).select_from(WebhookDelivery)
                          .where(WebhookDelivery.event_id == event_id)).scalar_one() + 1
            s.add(WebhookDelivery(job_id=job_id, event_id=event_id, event_type=event_type, attempt=n,
                                  at=utcnow(), http_status=http_status, error=error and error[:300],
                                  duration_ms=max(0, int(duration_ms))))
            return n

    def deliveries(self, job_id: str, limit: int = SHOWN_DELIVERIES) -> list[dict[str, Any]]:
        with self._tx() as s:
            return recent_deliveries(s, job_id, limit)
