"""The job repository: every read and conditional write of export jobs.

Transitions are single conditional UPDATEs (`... WHERE id = :id AND status IN (:sources)`): the
row count says whether this caller won. A winning transition appends its (status, at) to
export_job_events in the same transaction, so the history is exactly the applied transitions.
Progress only rises (`progress = CASE WHEN progress < :p THEN :p ELSE progress END`).

Errors: database connection errors surface as shared.errors.TransientError (HTTP 503, events
redelivered); everything else propagates.
"""
from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy import Engine, bindparam, case, func, literal, select, union_all, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm import Session, defer, sessionmaker

from shared.clock import utcnow
from shared.errors import TransientError
from shared.identity import DEFAULT_OWNER
from shared.limits import JOB_TOO_LARGE, job_bytes_problem
from shared.messages import bounded
from shared.models import ExportJob, ExportJobEvent, ExportJobUpload
from shared.list_sql import list_statement
from shared.part_store import pieces_in
from shared.ports import JobFilter, JobRecord, JobSummary, UploadRecorded
from shared.states import JobStatus, sources_for
from shared.status_view import STATUS_PREPARE, status_fields
from shared.usage_records import UsageRecords
from shared.webhook_store import publish_pending, recent_deliveries


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


# SQLSTATEs that mean "the server or the connection is going away or not there yet": class 08
# (connection exception), 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now
# (starting up / shutting down), 53300 too_many_connections. pg8000 raises these as
# ProgrammingError/DatabaseError, not OperationalError.
_TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def _connection_problem(exc: BaseException) -> str | None:
    """A short reason when `exc` is a lost or refused database connection, else None.

    Covers SQLAlchemy's OperationalError/InterfaceError, errors on a connection SQLAlchemy saw
    invalidated, server errors with a connection SQLSTATE, the pool's checkout timeout, and raw
    socket errors (pg8000 lets ConnectionResetError escape while connecting).
    """
    if isinstance(exc, SATimeoutError):
        return "connection pool exhausted"
    if isinstance(exc, OSError):
        return type(exc).__name__
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError):
        return None
    orig = exc.orig
    name = type(orig).__name__ if orig is not None else type(exc).__name__
    if isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated:
        return name
    info = orig.args[0] if orig is not None and orig.args else None
    code = str(info.get("C", "")) if isinstance(info, dict) else str(getattr(orig, "sqlstate", "") or "")
    if code and code.startswith(_TRANSIENT_SQLSTATES):
        return f"{name} {code}"
    return None


@contextmanager
def _database_errors() -> Iterator[None]:
    """Re-raise a lost or refused database connection as TransientError (503 / redelivery)."""
    try:
        yield
    except (DBAPIError, SATimeoutError, OSError) as exc:
        reason = _connection_problem(exc)
        if reason is None:
            raise
        raise TransientError(f"database unavailable: {reason}") from None


_STAGE_RANK = {"preparing": 0, "rendering": 1, "uploading": 2}


# `attempts` is 1 + the highest 0-based attempt any worker report carried; the current attempt is
# attempts - 1, and a report from an older one changes nothing.
def _current_attempt(attempt: int):
    return ExportJob.attempts <= attempt + 1


def _newer_generation(new: str, old: str | None) -> bool:
    """Whether GCS generation `new` is later than `old` (generations of one object only grow; finalize
    events may arrive out of order, so an older one must not undo a newer upload's size)."""
    try:
        return int(new) > int(old or 0)
    except ValueError:
        return False


def _attempts_seen(attempt: int):
    return case((ExportJob.attempts < attempt + 1, attempt + 1), else_=ExportJob.attempts)


def _get_statement():
    """The job row LEFT JOINed to the union of its events and uploads, for :job_id (built once)."""
    job_id = bindparam("job_id")
    events = select(literal("e").label("kind"), ExportJobEvent.job_id.label("job_id"),
                    ExportJobEvent.status.label("value"), ExportJobEvent.at.label("at"),
                    ExportJobEvent.id.label("seq")).where(ExportJobEvent.job_id == job_id)
    uploads = select(literal("u").label("kind"), ExportJobUpload.job_id.label("job_id"),
                     ExportJobUpload.name.label("value"), ExportJobUpload.at.label("at"),
                     ExportJobUpload.id.label("seq")).where(ExportJobUpload.job_id == job_id)
    parts = union_all(events, uploads).subquery("parts")
    return (select(ExportJob, parts.c.kind, parts.c.value, parts.c.at)
            .outerjoin(parts, parts.c.job_id == ExportJob.id).where(ExportJob.id == job_id)
            .order_by(parts.c.kind, parts.c.seq))


_GET_WITH_SPEC = _get_statement()
_GET_WITHOUT_SPEC = _GET_WITH_SPEC.options(defer(ExportJob.spec, raiseload=True))


_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class SqlJobRepository(UsageRecords):
    """The JobRepository port (shared.ports) in SQL (SQLite or PostgreSQL) through a SQLAlchemy sessionmaker;
    usage records (the export's cost): shared.usage_records."""

    def __init__(self, sessions: sessionmaker[Session], read_engine: Engine | None = None) -> None:
        """sessions: for transactions. read_engine: optional autocommit Engine for single-statement
        reads (PostgreSQL: no BEGIN/COMMIT round trips on export_status); default `sessions`."""
        self._sessions = sessions
        self._read_engine = read_engine
        self._read_sessions = sessionmaker(bind=read_engine, expire_on_commit=False) if read_engine else None
        self._status_sql = read_engine is not None and read_engine.dialect.name == "postgresql"

    @contextmanager
    def _tx(self, read_only: bool = False) -> Iterator[Session]:
        with _database_errors():
            if read_only and self._read_sessions is not None:
                with self._read_sessions() as session:
                    yield session
                return
            with self._sessions.begin() as session:
                yield session

    # -- reads -------------------------------------------------------------------------------
    def _record(self, session: Session, job: ExportJob) -> JobRecord:
        history = session.execute(
            select(ExportJobEvent.status, ExportJobEvent.at).where(ExportJobEvent.job_id == job.id)
            .order_by(ExportJobEvent.id)).all()
        received = session.execute(
            select(ExportJobUpload.name).where(ExportJobUpload.job_id == job.id).order_by(ExportJobUpload.id)
        ).scalars().all()
        return self._build(job, history, received)

    @staticmethod
    def _build(job: ExportJob, history, received) -> JobRecord:
        return JobRecord(
            id=job.id, status=JobStatus(job.status), stage=job.stage, progress=job.progress or 0.0,
            spec=job.__dict__.get("spec"), spec_sha256=job.spec_sha256, idempotency_key=job.idempotency_key,
            uploads_expected=list(job.uploads_expected or []), execution_name=job.execution_name,
            execution_log_uri=job.execution_log_uri,
            attempts=job.attempts or 0, error_code=job.error_code, error_message=job.error_message,
            output=job.output, created_at=_aware(job.created_at), updated_at=_aware(job.updated_at),
            started_at=_aware(job.started_at), finished_at=_aware(job.finished_at),
            last_report_at=_aware(job.last_report_at), owner=job.owner, webhook_url=job.webhook_url,
            labels=dict(job.labels or {}), external_ref=job.external_ref, part_count=job.part_count,
            history=[(s, _aware(a)) for s, a in history], uploads_received=list(received))

    def get(self, job_id: str, *, with_spec: bool = True, owner: str | None = None) -> JobRecord | None:
        """The job, or None when no such id exists (or, with `owner`, it is another owner's). with_spec=False leaves `spec` None (export_status
        does not need it, and decoding it on every row of every poll is its largest cost).

        One statement (export_status runs this on every poll): the job row LEFT JOINed to the union
        of its events and its uploads, so a read costs one database round trip, not three.
        """
        stmt = _GET_WITH_SPEC if with_spec else _GET_WITHOUT_SPEC
        with self._tx(read_only=True) as s:
            rows = s.execute(stmt, {"job_id": job_id}).all()
            if not rows:
                return None
            job = rows[0][0]
            if owner is not None and job.owner != owner:
                return None
            history = [(value, at) for _, kind, value, at in rows if kind == "e"]
            received = [value for _, kind, value, _ in rows if kind == "u"]
            return self._build(job, history, received)

    def status_view(self, job_id: str, owner: str | None = None) -> dict[str, Any] | None:
        """What export_status shows of a job, or None when no such id exists (or it is not a UUID, or,
        with `owner`, it is another owner's).

        The dict whose shape shared.status_view documents (parts included). On PostgreSQL with a read
        engine: one prepared statement returning the view as JSON (status_view.STATUS_PREPARE);
        elsewhere status_fields of the record, its usage, deliveries and pieces.
        Raises TransientError when the database is unreachable.
        """
        if not self._status_sql:
            job = self.get(job_id, with_spec=False, owner=owner)
            if job is None:
                return None
            usage = self.usage_of(job_id)  # its own transaction: before `s` holds SQLite's write lock
            with self._tx(read_only=True) as s:
                pieces = pieces_in(s, job_id) if job.part_count else None
                return status_fields(job, usage, job.webhook_url and recent_deliveries(s, job_id),
                                     pieces.view() if pieces else None)
        if not _JOB_ID.fullmatch(job_id):
            return None
        with _database_errors(), self._read_engine.connect() as conn:
            info = conn.connection.info  # lives as long as the DBAPI connection
            if "status_view" not in info:
                conn.exec_driver_sql(STATUS_PREPARE)
                info["status_view"] = True
            # no parameters: pg8000 sends it as one simple query (a single round trip); the owner is
            # compared here, never written into SQL text
            view = conn.exec_driver_sql(f"EXECUTE sceneflow_status_view('{job_id}')").scalar()
        return view if view is not None and (owner is None or view["owner"] == owner) else None

    def get_by_idempotency_key(self, key: str, owner: str = DEFAULT_OWNER) -> JobRecord | None:
        with self._tx() as s:
            job = s.execute(select(ExportJob).where(ExportJob.owner == owner, ExportJob.idempotency_key == key)
                            ).scalar_one_or_none()
            return self._record(s, job) if job else None

    def list_jobs(self, owner: str, where: JobFilter, after: tuple[datetime, str] | None,
                  limit: int) -> list[JobSummary]:
        """The owner's jobs matching `where`, newest first, after the keyset `after`, at most `limit`
        (one statement: shared.list_sql). Raises TransientError when the database is unreachable."""
        with self._tx(read_only=True) as s:
            stmt = list_statement(s.get_bind().dialect.name, owner, where, after, limit)
            return [JobSummary(id=r.id, status=r.status, stage=r.stage, progress=r.progress or 0.0,
                               labels=dict(r.labels or {}), external_ref=r.external_ref,
                               created_at=_aware(r.created_at), updated_at=_aware(r.updated_at),
                               finished_at=_aware(r.finished_at), error_code=r.error_code,
                               error_message=r.error_message) for r in s.execute(stmt)]

    def list_stale(self, statuses: list[JobStatus], before: datetime, limit: int = 100) -> list[JobRecord]:
        """Jobs in `statuses` whose last sign of life (last report, else last update) is before `before`,
        at most `limit`, least recently updated first: a job touch()ed by reconcile goes behind the
        others even when it has reported (every write sets updated_at, a report included)."""
        last_seen = func.coalesce(ExportJob.last_report_at, ExportJob.updated_at)
        with self._tx() as s:
            jobs = s.execute(select(ExportJob).where(ExportJob.status.in_([st.value for st in statuses]),
                                                     last_seen < before)
                             .order_by(ExportJob.updated_at, ExportJob.id).limit(limit)).scalars().all()
            return [self._record(s, j) for j in jobs]

    def touch(self, job_id: str) -> None:
        """Mark the job as looked at now (updated_at), e.g. after a re-publish: list_stale lists it last."""
        with self._tx() as s:
            s.execute(update(ExportJob).where(ExportJob.id == job_id).values(updated_at=utcnow()))

    def succeeded_outputs(self, limit: int = 10_000) -> dict[str, dict | None]:
        """{job id: stored output} of succeeded jobs, at most `limit` (invariant checks, audits)."""
        with self._tx(read_only=True) as s:
            rows = s.execute(select(ExportJob.id, ExportJob.output)
                             .where(ExportJob.status == JobStatus.SUCCEEDED.value).limit(limit)).all()
            return {job_id: output for job_id, output in rows}

    def count_by_status(self) -> dict[str, int]:
        with self._tx() as s:
            return dict(s.execute(select(ExportJob.status, func.count()).group_by(ExportJob.status)).all())

    # -- writes ------------------------------------------------------------------------------
    def create(self, *, spec: dict, spec_sha256: str, status: JobStatus, uploads_expected: list[str],
               idempotency_key: str | None, job_id: str | None = None, owner: str = DEFAULT_OWNER,
               labels: dict[str, str] | None = None, external_ref: str | None = None,
               webhook_url: str | None = None) -> tuple[JobRecord, bool]:
        """Insert the owner's job in its initial state (awaiting_upload or queued), with its labels
        (validated by shared.api) and external reference; with a webhook_url its first event goes to
        the outbox in the same transaction (webhook_store.publish_pending).

        Returns:
            (job, created): created is False when the owner's `idempotency_key` already named a job,
            which is returned instead (the caller compares specs).
        """
        now = utcnow()
        job_id = job_id or str(uuid.uuid4())
        labels = dict(labels or {})
        try:
            with self._tx() as s:
                s.add(ExportJob(id=job_id, owner=owner, status=status.value, stage=None, progress=0.0, spec=spec,
                                spec_sha256=spec_sha256, idempotency_key=idempotency_key,
                                uploads_expected=uploads_expected, attempts=0, created_at=now, updated_at=now,
                                labels=labels, external_ref=external_ref, webhook_url=webhook_url))
                s.flush()
                s.add(ExportJobEvent(job_id=job_id, status=status.value, at=now,
                                     publish_pending=publish_pending(status, webhook_url)))
        except IntegrityError:
            if idempotency_key:
                existing = self.get_by_idempotency_key(idempotency_key, owner)
                if existing:
                    return existing, False
            raise
        # Built from what was just committed, not read back: a second transaction could fail after
        # the commit (503) and the client's retry would then replay a job that was never published.
        return JobRecord(id=job_id, status=status, stage=None, progress=0.0, spec=spec, spec_sha256=spec_sha256,
                         idempotency_key=idempotency_key, uploads_expected=list(uploads_expected),
                         execution_name=None, execution_log_uri=None, attempts=0, error_code=None, error_message=None, output=None,
                         created_at=now, updated_at=now, started_at=None, finished_at=None, last_report_at=None,
                         history=[(status.value, now)], uploads_received=[], owner=owner, labels=labels,
                         external_ref=external_ref, webhook_url=webhook_url), True

    def _transition(self, s: Session, job_id: str, target: JobStatus, values: dict[str, Any],
                    sources: frozenset[JobStatus] | None = None, attempt: int | None = None) -> bool:
        now = utcnow()
        if isinstance(values.get("error_message"), str):  # the one place every stored message passes
            values = {**values, "error_message": bounded(values["error_message"])}
        allowed = [st.value for st in (sources if sources is not None else sources_for(target))]
        where = [ExportJob.id == job_id, ExportJob.status.in_(allowed)]
        if attempt is not None:
            where.append(_current_attempt(attempt))
            values = {**values, "attempts": _attempts_seen(attempt)}
        # RETURNING: the job's webhook decides, in this transaction, whether the event is an outbox row
        won = s.execute(update(ExportJob).where(*where).values(status=target.value, updated_at=now, **values)
                        .returning(ExportJob.webhook_url)).all()
        if len(won) == 1:
            s.add(ExportJobEvent(job_id=job_id, status=target.value, at=now,
                                 publish_pending=publish_pending(target, won[0][0])))
            return True
        return False

    def transition(self, job_id: str, target: JobStatus, *, sources: frozenset[JobStatus] | None = None,
                   attempt: int | None = None, **values: Any) -> bool:
        """Move the job to `target` if its status is one of `sources` (default: states.sources_for).

        attempt: a worker report's attempt (0-based): the move applies only if it is not older than
        the job's current attempt (attempts <= attempt + 1), and records it (attempts = max seen).
        Extra column values (e.g. error_code=..., output=...) are written in the same UPDATE;
        error_message is cut to MESSAGE_MAX_CHARS (messages.bounded).
        Returns True when this call applied the transition, False when it was a no-op.
        """
        with self._tx() as s:
            return self._transition(s, job_id, target, values, sources, attempt)

    def record_upload(self, job_id: str, name: str, generation: str, size_bytes: int | None,
                      max_job_bytes: int | None = None) -> "UploadRecorded":
        """Note that a declared upload arrived; queue the job when all have.

        Serialised per job by a row lock (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises
        every writer with BEGIN IMMEDIATE), so two last uploads arriving together queue it once.
        max_job_bytes: when the sizes received so far add up to more than this, the awaiting job is
        failed at once in the same transaction (code limits.JOB_TOO_LARGE, naming total and files).
        Returns UploadRecorded(known, queued, too_large): known is False for an unknown job or an
        undeclared name; queued is True only for the call that moved awaiting_upload -> queued;
        too_large is the error message for the call that failed the job over max_job_bytes.
        """
        with self._tx() as s:
            job = s.execute(select(ExportJob).where(ExportJob.id == job_id).with_for_update()).scalar_one_or_none()
            if job is None or name not in (job.uploads_expected or []):
                return UploadRecorded(False, False)
            have = s.execute(select(ExportJobUpload).where(
                ExportJobUpload.job_id == job_id, ExportJobUpload.name == name)).scalar_one_or_none()
            if have is None:
                s.add(ExportJobUpload(job_id=job_id, name=name, generation=str(generation),
                                      size_bytes=size_bytes, at=utcnow()))
                s.flush()
            elif _newer_generation(str(generation), have.generation):  # overwritten through its URL
                have.generation, have.size_bytes, have.at = str(generation), size_bytes, utcnow()
                s.flush()
            if job.status != JobStatus.AWAITING_UPLOAD.value:
                return UploadRecorded(True, False)
            sizes = s.execute(select(ExportJobUpload.name, ExportJobUpload.size_bytes)
                              .where(ExportJobUpload.job_id == job_id)).all()
            problem = (job_bytes_problem([(n, b or 0) for n, b in sizes], max_job_bytes)
                       if max_job_bytes is not None else None)
            if problem and self._transition(s, job_id, JobStatus.FAILED, {
                    "error_code": JOB_TOO_LARGE, "error_message": problem, "finished_at": utcnow()}):
                return UploadRecorded(True, False, problem)
            if len(sizes) < len(job.uploads_expected):
                return UploadRecorded(True, False)
            return UploadRecorded(True, self._transition(s, job_id, JobStatus.QUEUED, {}))

    def set_execution(self, job_id: str, execution_name: str, log_uri: str | None = None) -> None:
        """Record the job's execution and where its logs are."""
        with self._tx() as s:
            s.execute(update(ExportJob).where(ExportJob.id == job_id)
                      .values(execution_name=execution_name, execution_log_uri=log_uri, updated_at=utcnow()))

    def report_progress(self, job_id: str, *, stage: str | None, progress: float | None, attempt: int) -> bool:
        """Record a running job's stage and progress (progress never falls; attempts = max seen).

        Returns False (and changes nothing) unless the job is running and `attempt` is not older
        than its current attempt.
        """
        now = utcnow()
        values: dict[str, Any] = {"updated_at": now, "last_report_at": now, "attempts": _attempts_seen(attempt)}
        if stage in _STAGE_RANK:  # the stage never goes back (preparing < rendering < uploading)
            current = case(*((ExportJob.stage == name, rank) for name, rank in _STAGE_RANK.items()), else_=-1)
            values["stage"] = case((current <= _STAGE_RANK[stage], stage), else_=ExportJob.stage)
        if progress is not None:
            values["progress"] = case((ExportJob.progress < progress, progress), else_=ExportJob.progress)
        with self._tx() as s:
            r = s.execute(update(ExportJob).where(ExportJob.id == job_id, ExportJob.status == JobStatus.RUNNING.value,
                                                  _current_attempt(attempt)).values(**values))
            return r.rowcount == 1
