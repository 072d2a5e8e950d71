"""The HTTP API's response bodies (DESIGN §4) as pydantic models: what export_start, export_status,
export_list, export_cancel, export_complete and reconcile_exports answer, and the one error body of every 4xx/5xx.

These models are the contract: shared/operations.py names them per operation and status code,
shared/openapi.py publishes their JSON Schema, functions/main.py sends every body through them
(`wire`), and infra/local/client.py parses answers with them. Field names are snake_case here and
camelCase on the wire (aliases); `extra="forbid"` makes a field the service sends but no model
declares a failure (a ValidationError at the entry point, a Schemathesis failure in the tests), so
the document cannot drift from what is sent. Pure: no I/O.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

JobState = Literal["awaiting_upload", "queued", "dispatched", "running", "succeeded", "failed", "canceled"]
StageName = Literal["preparing", "rendering", "stitching", "uploading"]
# clock.iso(): UTC, milliseconds, a Z
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"}, examples=["2026-01-01T12:00:00.000Z"])]
JobId = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
                             description="the job id: a lowercase UUID")]


class WireModel(BaseModel):
    """camelCase on the wire, unknown fields refused (a drift from the document is an error)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The JSON body: by alias; optional fields never set are left out (not sent as null)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# -- errors (every operation, every 4xx/5xx) ------------------------------------------------------------
class Problem(WireModel):
    """One problem of a request: where (a field path such as `spec.scenes[2].duration`, `$` for the
    whole body) and what."""

    path: str
    message: str


class ErrorInfo(WireModel):
    code: str = Field(description="stable snake_case identifier, e.g. invalid_request, not_found, conflict")
    message: str
    details: list[Problem] | None = Field(None, description="every problem found (at most 100, then a count)")


class ErrorResponse(WireModel):
    """{error: {code, message, details?}}: the body of every 4xx and 5xx answer."""

    error: ErrorInfo

    @classmethod
    def of(cls, code: str, message: str, details: list[dict] | None = None) -> dict[str, Any]:
        info = ErrorInfo(code=code, message=message) if details is None else \
            ErrorInfo(code=code, message=message, details=[Problem(**d) for d in details])
        return cls(error=info).wire()


# -- export_start -------------------------------------------------------------------------------------------
class UploadTarget(WireModel):
    """Where to PUT one declared upload: send exactly `headers` before `expiresAt`."""

    name: str
    url: str = Field(description="a V4 signed URL")
    method: Literal["PUT"]
    headers: dict[str, str]
    expires_at: Timestamp


class StartResponse(WireModel):
    """202 (created) or 200 (an idempotent replay): the job and a signed PUT per upload still missing."""

    job_id: JobId
    status: JobState
    status_url: str
    uploads: list[UploadTarget]


# -- export_status ------------------------------------------------------------------------------------------
class HistoryEntry(WireModel):
    status: JobState
    at: Timestamp


class UploadProgress(WireModel):
    expected: list[str]
    received: list[str]


class JobError(WireModel):
    code: str
    message: str


class SceneTime(WireModel):
    start_s: float
    duration_s: float


class LoudnessView(WireModel):
    """Measured loudness (EBU R128): integrated LUFS, true peak dBTP, loudness range LU."""

    integrated_lufs: float | None = None
    true_peak_db: float | None = None
    lra: float | None = None


class CaptionUrls(WireModel):
    srt: str | None = Field(None, description="signed GET URL of the SRT file")
    vtt: str | None = Field(None, description="signed GET URL of the WebVTT file")


class OutputView(WireModel):
    """A succeeded export's files: `url`, `posterUrl` and the captions are short-lived signed GETs."""

    uri: str
    filename: str | None
    url: str
    duration_s: float | None
    size_bytes: int | None
    width: int | None
    height: int | None
    poster_url: str | None
    captions: CaptionUrls
    scenes: list[SceneTime]
    loudness: LoudnessView | None
    warnings: list[Problem] = Field(description="what the spec asked for that does not show in the video")


class Pricing(WireModel):
    """The prices the estimate used: USD per vCPU-second and per GiB-second (settings
    EXPORT_PRICE_VCPU_SECOND_USD, EXPORT_PRICE_GIB_SECOND_USD), and where they come from."""

    vcpu_second_usd: float
    gib_second_usd: float
    source: str | None = None


class Cost(WireModel):
    """export_status `cost`: vcpuSeconds and gibSeconds billed for the render tasks (every attempt that
    reported), cpuSeconds they used, estimatedUsd = vcpuSeconds x vcpuSecondUsd + gibSeconds x
    gibSecondUsd (list price, before the free tier and discounts), and the pricing used."""

    vcpu_seconds: float
    gib_seconds: float
    cpu_seconds: float
    estimated_usd: float
    pricing: Pricing


class WebhookDelivery(WireModel):
    """One delivery attempt of one event: httpStatus of the receiver's answer (null when none came),
    error (why the attempt failed, null when it was acknowledged), durationMs."""

    event_id: str = Field(description="the webhook-id header: the same on every attempt of an event")
    type: str = Field(description="export.<status> or export.progress")
    attempt: int = Field(ge=1)
    at: Timestamp
    http_status: int | None
    error: str | None
    duration_ms: int = Field(ge=0)


class WebhookView(WireModel):
    """The job's webhook and its last delivery attempts, oldest first."""

    url: str
    deliveries: list[WebhookDelivery]


class PartsView(WireModel):
    """A parallel export's pieces (issue 19): count k of video parts the plan cut (the upper bound
    K the render was told until the first part is in), how many are rendered, and whether the
    audio is. An app shows "rendering {rendered}/{count} parts" while stage is rendering, then the
    stage (stitching, uploading)."""

    count: int = Field(ge=1)
    rendered: int = Field(ge=0)
    audio: bool


class StatusResponse(WireModel):
    """export_status's view of a job. `uploads` only while awaiting_upload, `error` once failed or
    canceled, `output` once succeeded, `parts` for an export rendered in parallel parts."""

    job_id: JobId
    owner: str
    status: JobState
    stage: StageName | None
    progress: float = Field(ge=0, le=1)
    created_at: Timestamp
    updated_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    attempts: int = Field(ge=0)
    execution_name: str | None
    execution_log_uri: str | None
    labels: dict[str, str] = Field(description="the start request's labels, in key order")
    external_ref: str | None = Field(description="the start request's externalRef")
    history: list[HistoryEntry]
    uploads: UploadProgress | None = None
    error: JobError | None = None
    cost: Cost
    webhook: WebhookView | None = Field(None, description="present when the job names a webhook")
    parts: PartsView | None = Field(None, description="present when the export renders in parallel parts")
    output: OutputView | None = None


# -- export_list --------------------------------------------------------------------------------------------
class ExportSummary(WireModel):
    """One export in a list: no signed URLs (export_status gives them)."""

    job_id: JobId
    status: JobState
    stage: StageName | None
    progress: float = Field(ge=0, le=1)
    labels: dict[str, str]
    external_ref: str | None
    created_at: Timestamp
    updated_at: Timestamp
    finished_at: Timestamp | None
    error: JobError | None = None


class ExportList(WireModel):
    """export_list's answer: one page, newest first; nextPageToken when more rows follow (send it
    back as pageToken with the same filters)."""

    exports: list[ExportSummary]
    next_page_token: str | None = None


# -- export_webhook_secret ----------------------------------------------------------------------------------
class WebhookSecretResponse(WireModel):
    """The caller's Standard Webhooks signing secret (whsec_ + base64), made on first use."""

    owner: str
    secret: str = Field(pattern=r"^whsec_[A-Za-z0-9+/=]+$")


# -- export_cancel, export_complete, reconcile_exports ---------------------------------------------------
class CancelResponse(WireModel):
    job_id: JobId
    status: Literal["canceled"]


class Handoff(WireModel):
    """An applied handoff: the export is now rendered by a render execution of `parts` parts."""

    parts: int = Field(ge=2)


class CompleteResponse(WireModel):
    job_id: JobId
    status: JobState | None
    applied: bool
    handoff: Handoff | None = Field(None, description="the report's handoff was applied: the whole-export task "
                                                      "that sent it stops without rendering")


class ReconcileResponse(WireModel):
    """What one reconcile pass did, as counts of jobs."""

    republished: int
    failed: int
    succeeded: int
    checked: int
    skipped: int
    deferred: int
    relaunched: int | None = Field(None, description="parallel renders whose stitch or parts execution was "
                                                     "started again (when any)")
    events_republished: int | None = Field(None, description="job events left unpublished, sent again (when any)")
