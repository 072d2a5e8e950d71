"""One exception class per failure kind. Entry points map them to HTTP codes or to ack/redeliver.

Each carries a machine `code` and a human `message`; none carries a stack trace to the client.
"""
from __future__ import annotations

from shared.responses import ErrorResponse  # the published model of every error body

MESSAGE_MAX_CHARS = 2000  # longest error message a job keeps (export_complete reports, job records)
MAX_DETAILS = 100  # details an error body lists; the rest are counted in one last entry


class ExportError(Exception):
    """Base class. `code` is a stable snake_case identifier, `http_status` the HTTP mapping."""

    code = "internal"
    http_status = 500

    def __init__(self, message: str, *, details: list[dict] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []
        if code:
            self.code = code

    def to_body(self) -> dict:
        """The JSON error body of DESIGN §4: {error: {code, message, details?}}; details: the first
        MAX_DETAILS, then {"path": "$", "message": "and N more problems"} when there are more."""
        details = None
        if self.details:
            rest = len(self.details) - MAX_DETAILS
            details = self.details if rest <= 0 else self.details[:MAX_DETAILS] + [
                {"path": "$", "message": f"and {rest} more problem{'s' if rest != 1 else ''}"}]
        return ErrorResponse.of(self.code, self.message, details)


class InvalidRequest(ExportError):
    """The request or spec is wrong; `details` lists every problem as {path, message}."""

    code = "invalid_request"
    http_status = 400


class Unauthorized(ExportError):
    """No usable credential (401). `headers`: the RFC 6750 challenge, WWW-Authenticate: Bearer with
    error="invalid_token" when a credential was sent but refused (invalid, expired, revoked), none
    when nothing was sent (RFC 6750 section 3.1: "SHOULD NOT include an error code")."""

    code = "unauthorized"
    http_status = 401
    REALM = "sceneflow-export"

    def __init__(self, message: str, *, invalid_token: bool = False, **kw):
        super().__init__(message, **kw)
        challenge = f'Bearer realm="{self.REALM}"'
        if invalid_token:  # a quoted-string: no quote or backslash (the messages are ours, ASCII)
            text = "".join(c for c in message if 0x20 <= ord(c) < 0x7f and c not in '"\\')
            challenge += f', error="invalid_token", error_description="{text[:200]}"'
        self.headers = {"WWW-Authenticate": challenge}


class Forbidden(ExportError):
    code = "forbidden"
    http_status = 403


class NotFound(ExportError):
    code = "not_found"
    http_status = 404


class Conflict(ExportError):
    code = "conflict"
    http_status = 409


class PayloadTooLarge(ExportError):
    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(ExportError):
    code = "unsupported_media_type"
    http_status = 415


class TransientError(ExportError):
    """A dependency failed in a way that may pass on retry (503; events are redelivered)."""

    code = "unavailable"
    http_status = 503


class PermanentRenderError(ExportError):
    """The render cannot succeed however often it is retried (bad media, bad spec)."""

    code = "render_failed"
    http_status = 422
