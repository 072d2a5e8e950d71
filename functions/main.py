"""Cloud Functions (gen2) entry points: decode the trigger, call one service function, map the
result or error. Nothing else lives here (DESIGN §2).

HTTP: export_start, export_status, export_cancel, export_list, export_webhook_secret (clients: server
keys, ID tokens or the client token by EXPORT_AUTH, shared/auth.py; 401 with WWW-Authenticate when
refused), export_complete (the render job; worker token), reconcile_exports (Cloud Scheduler; IAM).
CloudEvent: dispatch_export (Pub/Sub), deliver_webhook (Pub/Sub, the events topic),
on_object_finalized (Cloud Storage finalize, input and output buckets).
Event functions acknowledge (return) on permanent errors and raise on transient ones, so that
Eventarc/Pub/Sub redeliver (deployed with --retry). What functions-framework does before our code
runs (an envelope it cannot read) is answered by shared.framing: acknowledged with a log line.
The client functions (not `internal` in shared.operations) answer CORS by EXPORT_CORS_ORIGINS
(shared.cors, `_cors`): a preflight before any auth, the actual headers on every other answer.
A setting that cannot be used (shared.config.ConfigError) answers 503 "misconfigured" naming it
(events: redelivered until fixed), never 500 "internal"; with the CORS headers unless
EXPORT_CORS_ORIGINS itself is the broken one. Every body is strict JSON (no NaN/Infinity).
"""
from __future__ import annotations

import io
import json
from typing import Callable

import flask
import functions_framework
from werkzeug.exceptions import ClientDisconnected

from shared import cors, framing, logs
from shared.auth import OWNER_HEADER
from shared.bootstrap import get_service
from shared.config import ConfigError, cors_origins_alone, get_settings
from shared.errors import ExportError, InvalidRequest, PayloadTooLarge, TransientError, UnsupportedMediaType
from shared.events import decode_event_message, decode_finalized, decode_job_message
from shared.operations import BY_NAME, Operation
from shared.responses import ErrorResponse


EVENT_FUNCTIONS = frozenset({"dispatch_export", "deliver_webhook", "on_object_finalized"})
# Error handler of the app functions-framework is creating for this module (see shared/framing.py).
framing.install(getattr(functions_framework, "errorhandler", None), EVENT_FUNCTIONS)


def _respond(status: int, body: dict, headers: dict | None = None) -> flask.Response:
    return framing.json_response(status, body, headers)


def _json_body(request: flask.Request) -> object:
    mime = (request.mimetype or "").lower()
    if mime and mime != "application/json" and not mime.endswith("+json"):
        raise UnsupportedMediaType(f"send the body as application/json, not {mime[:60]}")
    limit = get_settings().max_body_bytes
    too_large = f"request body is larger than EXPORT_MAX_BODY_BYTES = {limit:,} bytes"
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(too_large)
    try:
        raw = request.get_data(cache=False)
    except (OSError, ClientDisconnected):  # e.g. a chunk header the server cannot parse
        request.stream = io.BytesIO()  # nothing left to drain: functions-framework's after-hook reads it again
        raise InvalidRequest(framing.BODY_UNREADABLE, details=[
            {"path": "$", "message": "the body's framing is invalid (chunked transfer coding)"}]) from None
    if len(raw) > limit:
        raise PayloadTooLarge(too_large)
    try:
        return json.loads(raw or b"null", parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("request body is not valid JSON",
                             details=[{"path": "$", "message": str(exc)[:200]}]) from None
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply",
                             details=[{"path": "$", "message": "nested too deeply"}]) from None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")


def _project() -> str | None:
    try:
        return get_settings().project
    except Exception:  # noqa: BLE001 - logging must not fail on settings
        return None


def _http(request: flask.Request, op: Operation, handler: Callable[[], tuple[int, dict]]) -> flask.Response:
    # Log context: the trace of this request (X-Cloud-Trace-Context, else traceparent) and the job id
    # of a GET ?jobId=, so every line written while handling it is grouped under the request.
    try:
        trace = logs.parse_trace_header(request.headers.get("X-Cloud-Trace-Context"),
                                        request.headers.get("traceparent"))
        job_id = request.args.get("jobId") if request.method == "GET" else None
    except Exception as exc:  # noqa: BLE001 - odd framing only costs the log context
        logs.warning("request framing unreadable; no trace context", error=type(exc).__name__)
        trace, job_id = None, None
    with logs.request_context(project=_project(), trace=trace, job_id=job_id if isinstance(job_id, str) else None):
        if op.internal:  # called by the platform and the render job, never by a page
            return _http_in_context(request, op, handler)
        return _cors(request, op, lambda: _http_in_context(request, op, handler))


def _cors(request: flask.Request, op: Operation, answer: Callable[[], flask.Response]) -> flask.Response:
    """A client function's CORS (shared.cors): OPTIONS from an allowed Origin -> 204 with the
    preflight headers, from any other (or none) -> 403 without Access-Control-* headers; never an
    auth check on a preflight. Any other request: `answer()` plus the actual headers when allowed."""
    origin = request.headers.get("Origin")
    try:
        origins = get_settings().cors_allowed
    except ConfigError as exc:
        try:  # another setting is broken: its 503 must stay readable by an allowed page
            origins = cors_origins_alone()
        except ConfigError:
            return framing.misconfigured(exc)
    if request.method == "OPTIONS":
        headers = cors.preflight_headers(origin, origins, (op.method,))
        if headers is None:
            return _respond(403, ErrorResponse.of("origin_not_allowed", "this origin is not in EXPORT_CORS_ORIGINS"))
        return flask.Response(status=204, headers=headers)
    response = answer()
    response.headers.update(cors.actual_headers(origin, origins))
    return response


def _http_in_context(request: flask.Request, op: Operation,
                     handler: Callable[[], tuple[int, dict]]) -> flask.Response:
    if request.method != op.method:
        return framing.json_response(405, ErrorResponse.of("method_not_allowed", f"use {op.method}"),
                                     {"Allow": op.method})  # RFC 9110 §15.5.6: a 405 names the allowed methods
    try:
        status, body = handler()
        return _respond(status, op.wire(status, body))  # through the published model (shared.operations)
    except ExportError as exc:
        if exc.http_status >= 500:
            logs.error("request failed", code=exc.code, reason=exc.message)
        return _respond(exc.http_status, exc.to_body(), getattr(exc, "headers", None))  # 401: WWW-Authenticate
    except ConfigError as exc:  # a setting, not the request: 503 naming it
        return framing.misconfigured(exc)
    except Exception as exc:  # never a stack trace to the client
        logs.error("unexpected error", error=type(exc).__name__)
        return _respond(500, ErrorResponse.of("internal", "internal error"))


def _client(request: flask.Request):
    """(service, caller): the caller authenticated (ExportService.authenticate: Authorization and
    X-SceneFlow-Owner) before anything else."""
    service = get_service()
    return service, service.authenticate(request.headers.get("Authorization"), request.headers.get(OWNER_HEADER))


@functions_framework.http
def export_start(request: flask.Request) -> flask.Response:
    """POST {spec, uploads?, idempotencyKey?} -> 202 {jobId, status, statusUrl, uploads} (200 for a replay)."""
    def handle() -> tuple[int, dict]:
        service, caller = _client(request)
        started = service.start(_json_body(request), request.headers.get("Idempotency-Key"), caller)
        return (202 if started.created else 200), started.body  # 200: an idempotent replay

    return _http(request, BY_NAME["export_start"], handle)


@functions_framework.http
def export_status(request: flask.Request) -> flask.Response:
    """GET ?jobId= -> 200 {jobId, status, stage, progress, ..., output?}; 404 when unknown."""
    def handle() -> tuple[int, dict]:
        service, caller = _client(request)
        return 200, service.status(request.args.get("jobId"), caller)

    return _http(request, BY_NAME["export_status"], handle)


@functions_framework.http
def export_cancel(request: flask.Request) -> flask.Response:
    """POST {jobId} -> 200 {jobId, status: "canceled"}; 409 when already succeeded or failed."""
    def handle() -> tuple[int, dict]:
        service, caller = _client(request)
        return 200, service.cancel(_json_body(request), caller)

    return _http(request, BY_NAME["export_cancel"], handle)


@functions_framework.http
def export_list(request: flask.Request) -> flask.Response:
    """GET ?status=&label=&externalRef=&createdAfter=&createdBefore=&pageSize=&pageToken= ->
    200 {exports: [summary], nextPageToken?}: the caller's exports, newest first (shared.listing)."""
    def handle() -> tuple[int, dict]:
        service, caller = _client(request)
        return 200, service.list_exports(request.args.to_dict(flat=False), caller)

    return _http(request, BY_NAME["export_list"], handle)


@functions_framework.http
def export_webhook_secret(request: flask.Request) -> flask.Response:
    """GET -> 200 {owner, secret}: the caller's webhook signing secret (whsec_..., created on first use)."""
    def handle() -> tuple[int, dict]:
        service, caller = _client(request)
        return 200, service.webhook_secret(caller)

    return _http(request, BY_NAME["export_webhook_secret"], handle)


@functions_framework.http
def reconcile_exports(request: flask.Request) -> flask.Response:
    """POST (Cloud Scheduler) -> 200 {republished, failed, succeeded, checked}."""
    return _http(request, BY_NAME["reconcile_exports"], lambda: (200, get_service().reconcile()))


@functions_framework.http
def export_complete(request: flask.Request) -> flask.Response:
    """POST worker report with Authorization: Bearer EXPORT_WORKER_TOKEN -> 200 {jobId, status, applied}."""
    def handle() -> tuple[int, dict]:
        service = get_service()
        service.check_worker_token(request.headers.get("Authorization"))
        return 200, service.complete(_json_body(request))

    return _http(request, BY_NAME["export_complete"], handle)


def _event(kind: str, cloud_event, handler: Callable[[], object]) -> None:
    flask.g.setdefault(framing.EVENT_ENTERED, True)
    # Log context: the event's W3C traceparent extension, when the trigger sent one (any JSON type
    # in a structured-mode event: parse_trace_header takes only a string).
    try:
        trace = logs.parse_trace_header(None, cloud_event.get_attributes().get("traceparent"))
    except Exception:  # noqa: BLE001 - an odd event only costs the log context
        trace = None
    with logs.request_context(project=_project(), trace=trace):
        _event_in_context(kind, cloud_event, handler)


def _job_label(job_id):
    """Label the rest of this event's log lines with its job id; returns it unchanged."""
    logs.set_job_id(job_id if isinstance(job_id, str) else None)
    return job_id


def _event_in_context(kind: str, cloud_event, handler: Callable[[], object]) -> None:
    event_id = _event_id(cloud_event)
    try:
        result = handler()
        logs.info(f"{kind} handled", eventId=event_id, result=str(result))
    except TransientError as exc:
        logs.error(f"{kind} failed; will be redelivered", eventId=event_id, reason=exc.message)
        raise
    except ExportError as exc:  # permanent: acknowledge
        logs.warning(f"{kind} dropped", eventId=event_id, code=exc.code, reason=exc.message)
    except ConfigError as exc:  # redelivered until the setting is fixed (shared.framing answers 503)
        logs.error(f"{kind} failed: misconfigured; will be redelivered", eventId=event_id, reason=str(exc))
        raise
    except RecursionError:  # nesting deeper than Python can walk: the same event always will be
        logs.error(f"{kind} dropped: the event is nested too deeply", eventId=event_id)
    except Exception as exc:  # unknown, maybe a dependency: redelivered, as TransientError is
        logs.error(f"{kind} failed; will be redelivered", eventId=event_id, error=type(exc).__name__)
        raise


def _decode(decoder: Callable, *args):
    """Run a pure decoder of shared.events: whatever it raises is about this event's content, never
    a dependency, so it is permanent (InvalidRequest: acknowledged) whatever its type."""
    try:
        return decoder(*args)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InvalidRequest(f"event could not be decoded ({type(exc).__name__})") from None


def _event_id(cloud_event) -> str | None:
    """The event's id as log text (a structured-mode event may carry any JSON type)."""
    try:
        value = cloud_event["id"]
    except Exception:  # noqa: BLE001
        return None
    return value[:200] if isinstance(value, str) else str(value)[:200]


@functions_framework.cloud_event
def dispatch_export(cloud_event) -> None:
    """Pub/Sub messagePublished {"jobId"} -> claim the job and start one Cloud Run execution."""
    _event("dispatch", cloud_event,
           lambda: get_service().dispatch(_job_label(_decode(decode_job_message, cloud_event.data))))


@functions_framework.cloud_event
def deliver_webhook(cloud_event) -> None:
    """Pub/Sub messagePublished on the events topic -> one signed POST to the job's webhook; raises
    (redelivery, then the dead-letter topic) when the receiver did not answer 2xx."""
    def handle() -> object:
        event = _decode(decode_event_message, cloud_event.data)
        return get_service().deliver(event.event_id, _job_label(event.job_id), event.type, event.body)

    _event("deliver", cloud_event, handle)


@functions_framework.cloud_event
def on_object_finalized(cloud_event) -> None:
    """Cloud Storage finalize (input bucket: uploads; output bucket: the finished video)."""
    def handle() -> object:
        obj = _decode(decode_finalized, cloud_event["type"], cloud_event.data)
        if obj is None:
            return "ignored"
        return get_service().object_finalized(obj.bucket, obj.name, obj.generation, obj.size, obj.metadata)

    _event("finalize", cloud_event, handle)
