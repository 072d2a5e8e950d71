"""HTTP framing of the Cloud Functions: strict JSON bodies, and the answers for what
functions-framework does before our code runs (imported by functions/main.py only).

functions-framework 3.x reads a CloudEvent (cloudevents SDK, then its Pub/Sub/background-event
conversion) before it calls the function. What it cannot read it answers itself: 400 as an HTML
page echoing the request's headers and body (no specversion, missing required attributes, a body
that is not JSON), 415 (a non-JSON body it tried to convert), and 500 for any other exception
(a JSON list, string or number as the envelope, deep nesting -> RecursionError, a Pub/Sub push
without `data`, a legacy event whose `resource` is not a string...). Pub/Sub push and Eventarc
redeliver every non-2xx answer, so an unreadable envelope would come back for days.
`answer_framework_error`, installed as the app's error handler for every exception, answers:

- event functions: 200 (acknowledged) with a WARNING log line for any envelope the framework
  could not read (its 4xx, or an exception raised before our function was entered): it never will
  be readable; 500 for an exception our function raised (TransientError: redelivered on purpose;
  anything else the function did not classify as permanent, see functions/main.py _event);
  405/404 (routing) as JSON;
- a ConfigError (a setting that cannot be used, shared.config), from any function: 503
  {"error": {"code": "misconfigured", "message": <each bad variable>}} and an ERROR log line naming
  them (misconfigured): an operator's mistake, retried by the client or the trigger once fixed;
- HTTP functions: the framework's 4xx (404 for /robots.txt, ...) as a JSON error body; 500 as
  {"error": {"code": "internal"}} (our _http boundary already catches everything it can).
- a body that cannot be read (an OSError from the server's stream, e.g. a chunk header werkzeug's
  server cannot parse) when functions-framework's after-request hook drains it: 400
  "request body could not be read" (HTTP functions), acknowledged (event functions). Flask hands
  what a hook raises to the app's 500 handler (functions-framework's crash_handler: a text page)
  as an InternalServerError, so that handler is replaced too.

No answer carries the request back, a stack trace or an exception's text.
"""
from __future__ import annotations

import json
from typing import Any

import flask
from werkzeug.exceptions import HTTPException, InternalServerError

from shared import logs
from shared.config import ConfigError
from shared.errors import TransientError
from shared.operations import BY_NAME
from shared.responses import ErrorResponse

EVENT_ENTERED = "sceneflow_event_entered"  # flask.g flag: our event function was called
BODY_UNREADABLE = "request body could not be read"


def strict_json(body: Any) -> str:
    """`body` as JSON that any parser accepts (JavaScript's JSON.parse included): NaN and Infinity
    raise ValueError instead of being written as the bare tokens json.dumps would emit."""
    return json.dumps(body, allow_nan=False)


def json_response(status: int, body: dict, headers: dict | None = None) -> flask.Response:
    """A strict JSON response (see strict_json)."""
    return flask.Response(strict_json(body), status=status, mimetype="application/json", headers=headers)


def _error(status: int, code: str, message: str, headers: dict | None = None) -> flask.Response:
    return json_response(status, ErrorResponse.of(code, message), headers)


def misconfigured(exc: ConfigError) -> flask.Response:
    """503 {"error": {"code": "misconfigured", "message": "invalid settings: NAME='value': expected
    ..."}}, logged (ERROR). Settings are numbers, switches and backends, never secrets: the message
    may name them; the next request reads the environment again."""
    logs.error("misconfigured: a setting cannot be used", code=exc.CODE, reason=str(exc))
    return _error(503, exc.CODE, str(exc))


def answer_framework_error(exc: BaseException, event_functions: frozenset[str]) -> flask.Response:
    """The response for an exception that reached the Flask app (see the module docstring)."""
    is_event = flask.current_app.name in event_functions
    entered = bool(flask.g.get(EVENT_ENTERED)) if flask.has_request_context() else False
    if isinstance(exc, InternalServerError) and isinstance(exc.original_exception, OSError):
        # raised outside our functions: the framework's after-request hook draining an unreadable body
        if is_event:
            return _acknowledge("unreadable body", str(exc.original_exception))
        logs.warning("request body could not be read", error=type(exc.original_exception).__name__,
                     function=flask.current_app.name)
        return _error(400, "invalid_request", BODY_UNREADABLE)
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        if is_event and 400 <= code < 500 and code not in (404, 405) and not entered:
            return _acknowledge(f"{type(exc).__name__} ({code})")
        name = (exc.name or "error").lower().replace(" ", "_")
        return _error(code, name, exc.name or "error", _allow(exc) if code == 405 else None)
    if isinstance(exc, ConfigError):  # from our function or the framework's hooks alike
        return misconfigured(exc)
    if isinstance(exc, TransientError):  # raised on purpose: the delivery is retried
        return _error(500, exc.code, "temporarily unavailable; retry", {"X-Google-Status": "crash"})
    if is_event and not entered:
        return _acknowledge(type(exc).__name__, str(exc))
    logs.error("unexpected error", error=type(exc).__name__)
    return _error(500, "internal", "internal error", {"X-Google-Status": "crash"})


def _allow(exc: HTTPException) -> dict:
    """The Allow header of a 405 (RFC 9110 §15.5.6): an HTTP function's one method, else the routes'."""
    op = BY_NAME.get(flask.current_app.name) if flask.has_app_context() else None
    methods = [op.method] if op else list(getattr(exc, "valid_methods", None) or [])
    return {"Allow": ", ".join(methods)} if methods else {}


def _acknowledge(error: str, detail: str = "") -> flask.Response:
    # Logged, not echoed: the detail may quote the request (cloudevents' messages include the body).
    logs.warning("event dropped: the request is not a CloudEvent this function can read", error=error,
                 detail=detail[:300], function=flask.current_app.name,
                 path=flask.request.path[:200] if flask.has_request_context() else None)
    return json_response(200, {"acknowledged": True, "dropped": "the request is not a readable CloudEvent"})


def install(errorhandler: Any, event_functions: frozenset[str]) -> None:
    """Register answer_framework_error on the app functions-framework is creating.

    `errorhandler` is `functions_framework.errorhandler` (the decorator of the app whose source is
    being loaded), or None when main.py is imported outside create_app (nothing to register)."""
    if errorhandler is None:
        return
    handler = lambda exc: answer_framework_error(exc, event_functions)  # noqa: E731
    errorhandler(Exception)(handler)
    errorhandler(500)(handler)  # what escapes the request (an after-request hook) comes here, not above
