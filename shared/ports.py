"""Ports: the small interfaces the service layer and the render job talk to.

Storage, publisher and launcher each have a Google adapter (shared/adapters/google_*.py) and a local
one (shared/adapters/local_*.py); the job repository is SQL (shared/repository.py: SQLite or
PostgreSQL). shared/bootstrap.py picks them from settings. Errors: adapters raise
shared.errors.NotFound for a missing object, shared.errors.Conflict for a failed precondition,
TransientError for what may pass on retry (a lost database connection included).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from shared.cost import AttemptUsage
from shared.identity import DEFAULT_OWNER
from shared.states import JobStatus


@dataclass(frozen=True)
class SignedUrl:
    """A V4 signed URL: send `method` to `url` with exactly `headers`, before `expires_at` (UTC)."""

    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime


MIN_UPLOAD_BYTES = 1  # an empty upload is refused by the signed URL itself (GCS: 400 EntityTooSmall)
MAX_OBJECT_BYTES = 5 * 1024 ** 4  # Cloud Storage's largest object (5 TiB): the range when no limit is set


def content_length_range(max_bytes: int | None) -> str:
    """The x-goog-content-length-range value of an upload URL: "MIN,MAX" bytes, inclusive."""
    return f"{MIN_UPLOAD_BYTES},{MAX_OBJECT_BYTES if max_bytes is None else max_bytes}"


@dataclass(frozen=True)
class ObjectInfo:
    """An object's metadata. size in bytes; generation as GCS reports it."""

    bucket: str
    name: str
    size: int
    generation: int
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectStorage(Protocol):
    """Object storage (Cloud Storage or a stand-in)."""

    def signed_upload_url(self, bucket: str, name: str, content_type: str, ttl_s: int,
                          max_bytes: int | None = None) -> SignedUrl:
        """A V4 signed PUT URL for one object; the client must send exactly the returned headers
        (Content-Type, and x-goog-content-length-range: content_length_range(max_bytes), so an
        empty or oversized body is refused)."""
        ...

    def signed_download_url(self, bucket: str, name: str, ttl_s: int, filename: str | None = None) -> str:
        """A V4 signed GET URL; `filename` sets a Content-Disposition attachment name."""
        ...

    def upload_bytes(self, bucket: str, name: str, data: bytes, content_type: str, *,
                     if_generation_match: int | None = None, metadata: dict[str, str] | None = None) -> int:
        """Write an object; returns its generation. if_generation_match=0: only if absent (else Conflict)."""
        ...

    def upload_file(self, bucket: str, name: str, path: str, content_type: str, *,
                    if_generation_match: int | None = None, metadata: dict[str, str] | None = None) -> int:
        """Like upload_bytes, streaming from a local file."""
        ...

    def download_file(self, bucket: str, name: str, path: str) -> int:
        """Copy an object to a local file; returns its size in bytes. Raises NotFound."""
        ...

    def read_bytes(self, bucket: str, name: str) -> bytes:
        """An object's content. Raises NotFound."""
        ...

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        """The object's metadata, or None when it does not exist."""
        ...

    def delete(self, bucket: str, name: str) -> bool:
        """Delete an object; False when it did not exist. Raises TransientError."""
        ...


class Publisher(Protocol):
    """Hands a job to the dispatcher (Pub/Sub topic EXPORT_JOBS_TOPIC or a stand-in)."""

    def publish(self, job_id: str) -> str:
        """Publish {"jobId": job_id}; returns the message id. Raises TransientError."""
        ...


class EventPublisher(Protocol):
    """Publishes job events to the events topic (EXPORT_EVENTS_TOPIC or a stand-in), whose
    subscription feeds deliver_webhook (shared.webhooks)."""

    def publish_event(self, data: bytes, attributes: dict[str, str]) -> str:
        """Publish one event (data: its JSON body; attributes: eventId, jobId, type); returns the
        message id. Raises TransientError."""
        ...


class WebhookSender(Protocol):
    """POSTs one signed webhook (shared.adapters.webhook_http)."""

    def post(self, target: Any, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        """POST `body` to target.url, connecting to target.address only (shared.webhook_url.Target;
        TLS checked against target.host), following no redirect. Returns the HTTP status. Raises
        OSError (or a subclass) when no answer came within timeout_s."""
        ...


@dataclass(frozen=True)
class ExecutionStatus:
    """What the launcher knows of one execution.

    state: "running" (or pending), "succeeded", "failed", "cancelled", or "missing" (no such
    execution: deleted, or the local launcher restarted). reason: the platform's message, if any.
    log_uri: where the execution's logs are (Cloud Run: the Cloud Logging console link of
    Execution.log_uri; the local launcher: its log file), or None.
    """

    state: str
    reason: str | None = None
    log_uri: str | None = None


class JobLauncher(Protocol):
    """Starts render executions (Cloud Run Jobs or local subprocesses): one per export today; for a
    parallel export (issue 19) one execution of K part tasks, then one stitch execution. What each execution
    is told: shared.executions."""

    def launch(self, job_id: str, *, parts: int = 1, min_part_s: float | None = None) -> str:
        """Start a render execution of `parts` parts (1: today's whole export, one task told
        EXPORT_JOB_ID only; K >= 2: K + 1 tasks told K and the part floor min_part_s,
        shared.executions.render_env / render_task_count);
        returns the execution name. Raises TransientError; ValueError when parts is below 1 or over
        the launcher's cap (RENDER_MAX_PARTS)."""
        ...

    def launch_stitch(self, job_id: str, part_count: int, min_part_s: float | None = None) -> str:
        """Start the stitch execution (its own job: RENDER_STITCH_JOB_NAME, one task, its own time
        limit) joining the `part_count` parts of `job_id` cut with floor min_part_s; returns the execution name. Raises
        TransientError; ValueError when part_count is below 2."""
        ...

    def status(self, execution_name: str) -> ExecutionStatus:
        """The execution's state. Raises TransientError when the platform cannot be asked."""
        ...

    def cancel(self, execution_name: str) -> None:
        """Ask the execution to stop (does not wait). Unknown executions are ignored. Raises TransientError."""
        ...


# -- the job repository --------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobRecord:
    """A snapshot of one job row with its history [(status, at)] and received upload names."""

    id: str
    status: JobStatus
    stage: str | None
    progress: float
    spec: dict
    spec_sha256: str
    idempotency_key: str | None
    uploads_expected: list[str]
    execution_name: str | None
    execution_log_uri: str | None
    attempts: int
    error_code: str | None
    error_message: str | None
    output: dict | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_report_at: datetime | None
    history: list[tuple[str, datetime]] = field(default_factory=list)
    uploads_received: list[str] = field(default_factory=list)
    owner: str = DEFAULT_OWNER  # shared.identity
    labels: dict[str, str] = field(default_factory=dict)  # shared.api.StartRequest's limits
    external_ref: str | None = None
    webhook_url: str | None = None  # shared.webhooks
    part_count: int | None = None  # K of a parallel render (issue 19, shared.part_store); None: one task


@dataclass(frozen=True)
class JobFilter:
    """Which of an owner's jobs export_list shows (shared.listing): every given condition holds.
    statuses: any of them (empty: all); labels: every (key, value) pair is among the job's labels;
    created_after (inclusive) and created_before (exclusive): UTC datetimes."""

    statuses: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    external_ref: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class JobSummary:
    """One row of export_list: the job's columns a list shows (no spec, history or output)."""

    id: str
    status: str
    stage: str | None
    progress: float
    labels: dict[str, str]
    external_ref: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error_code: str | None
    error_message: str | None


class UploadRecorded(NamedTuple):
    """What JobRepository.record_upload did: see there."""

    known: bool
    queued: bool
    too_large: str | None = None


class JobRepository(Protocol):
    """Export jobs: every read and conditional write. A transition applies only from its allowed
    source states (states.sources_for), and a winning one appends (status, at) to the history."""

    def get(self, job_id: str, *, with_spec: bool = True, owner: str | None = None) -> JobRecord | None:
        """The job, or None (also when `owner` is given and the job is another owner's).
        with_spec=False leaves `spec` None (status polls do not need it)."""
        ...

    def status_view(self, job_id: str, owner: str | None = None) -> dict[str, Any] | None:
        """export_status's view of the job (shared.status_view), or None when no such id exists
        (or, with `owner`, it is another owner's)."""
        ...

    def get_by_idempotency_key(self, key: str, owner: str = DEFAULT_OWNER) -> JobRecord | None:
        """The owner's job started with this idempotency key (keys are unique per owner)."""
        ...

    def list_jobs(self, owner: str, where: JobFilter, after: tuple[datetime, str] | None,
                  limit: int) -> list[JobSummary]:
        """The owner's jobs matching `where`, newest first (created_at DESC, id DESC), at most
        `limit`; with `after` = (created_at, id) of a row, only the rows after it in that order
        (keyset pagination: rows inserted meanwhile never shift a page)."""
        ...

    def list_stale(self, statuses: list[JobStatus], before: datetime, limit: int = 100) -> list[JobRecord]:
        """Jobs in `statuses` last seen (last report, else last update) before `before`, at most
        `limit`, least recently updated first."""
        ...

    def touch(self, job_id: str) -> None:
        """Mark the job as looked at now (list_stale lists it last)."""
        ...

    def create(self, *, spec: dict, spec_sha256: str, status: JobStatus, uploads_expected: list[str],
               idempotency_key: str | None, job_id: str | None = None, owner: str = DEFAULT_OWNER,
               labels: dict[str, str] | None = None, external_ref: str | None = None,
               webhook_url: str | None = None) -> tuple[JobRecord, bool]:
        """Insert the owner's job (with its labels and external reference); (job, created): created
        is False when the owner's `idempotency_key` named a job already. With a webhook_url, its events
        go to the outbox (shared.webhooks)."""
        ...

    def transition(self, job_id: str, target: JobStatus, *, sources: frozenset[JobStatus] | None = None,
                   attempt: int | None = None, **values: Any) -> bool:
        """Move the job to `target` (writing `values`) if its status is one of `sources` and `attempt`
        is not older than its current one; True when this call applied it."""
        ...

    def record_upload(self, job_id: str, name: str, generation: str, size_bytes: int | None,
                      max_job_bytes: int | None = None) -> UploadRecorded:
        """Note a declared upload's arrival; queue the job when all have, fail it over max_job_bytes."""
        ...

    def set_execution(self, job_id: str, execution_name: str, log_uri: str | None = None) -> None:
        ...

    def report_progress(self, job_id: str, *, stage: str | None, progress: float | None, attempt: int) -> bool:
        """Record a running job's stage and progress (neither goes back); False when not applied."""
        ...

    def record_usage(self, job_id: str, attempt: int, usage: AttemptUsage,
                     task: tuple[str, int] = ("whole", 0)) -> None:
        """Note the usage so far of attempt `attempt` of render task `task` (role, index: "whole" 0 for
        today's single task; a parallel render's "part" i, "audio" K, "stitch" 0) (shared.cost): each
        amount becomes the larger of the stored one and `usage`'s, so repeated reports of one task
        attempt never add up, and every task's attempts count."""
        ...

    def usage_of(self, job_id: str) -> list[AttemptUsage]:
        """The job's usage per task attempt, in (attempt, task role, task index) order."""
        ...

@dataclass(frozen=True)
class ApiKeyRecord:
    """A server key as stored (never its secret): key_id (public, in the key's text), name (unique;
    the owner the key acts for without X-SceneFlow-Owner), secret_sha256 (hex), times in UTC."""

    key_id: str
    name: str
    secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyStore(Protocol):
    """Server keys (shared/auth.py). SQL: shared.key_store.SqlApiKeyStore. Errors: TransientError
    for a lost database; Conflict from create for a name already taken."""

    def find(self, key_id: str) -> ApiKeyRecord | None:
        """The key with this id, revoked or not; None when there is none."""
        ...

    def touch(self, key_id: str, at: datetime) -> None:
        """Record a use (last_used_at = at)."""
        ...
