"""The registry of the HTTP API's operations: one entry per HTTP function, naming its method, its
request models (JSON body, query, headers), its response model per success status, the error
statuses it may answer and its security scheme. Adding an operation or a field is one edit here
(or in the model it names): functions/main.py checks methods and sends every success body through
`Operation.wire`, shared/openapi.py builds the published document from this table, and the typed
client (infra/local/client.py) is checked against that document. Pure: no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from pydantic import BaseModel

from shared.api import CancelRequest, ClientHeaders, StartHeaders, StartRequest, StatusQuery
from shared.worker_report import CompleteReport
from shared.listing import ListQuery
from shared.responses import (CancelResponse, CompleteResponse, ExportList, ReconcileResponse, StartResponse,
                              StatusResponse, WebhookSecretResponse)

# security schemes (shared/openapi.py describes them): the client API's bearer credential, the render
# job's worker token, and Google's IAM alone (Cloud Scheduler's OIDC token; nothing checked in code)
CLIENT, WORKER, SCHEDULER = "clientBearer", "workerToken", "schedulerIam"


@dataclass(frozen=True)
class Link:
    """An OpenAPI link from an operation's success answer to another operation: `parameters` and
    `body` map that operation's inputs to runtime expressions ($response.body#/jobId). Client
    generators show them; Schemathesis follows them (stateful tests)."""

    name: str
    operation: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Operation:
    """One HTTP function. `name` is the function and its URL path (/{name}); `responses` maps each
    success status to its body model; `errors` are the error statuses it documents (every one with
    shared.responses.ErrorResponse); `internal` operations are called by the platform, not by apps."""

    name: str
    method: str
    summary: str
    responses: Mapping[int, type[BaseModel]]
    errors: tuple[int, ...]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    security: str = CLIENT
    internal: bool = False
    description: str = field(default="", compare=False)
    links: tuple[Link, ...] = ()

    @property
    def path(self) -> str:
        return f"/{self.name}"

    def wire(self, status: int, body: Any) -> dict[str, Any]:
        """`body` (a dict or a model) as sent: validated strictly by the model of `status` and dumped
        from it, so no field outside the document leaves the service. Raises KeyError for a status
        the operation does not document, pydantic.ValidationError for a body that breaks its model
        (both a bug: the entry point answers 500 and logs it)."""
        model = self.responses[status]
        obj = body if isinstance(body, model) else model.model_validate(body, strict=True)
        return obj.wire()  # type: ignore[attr-defined]


# Every client operation may answer: 400 (a request it cannot use, naming each problem), 401 (no usable
# credential: RFC 6750 invalid_token, with WWW-Authenticate), 503 (a dependency or a setting: retry).
# Bodies add 413 (EXPORT_MAX_BODY_BYTES) and 415 (not JSON).
_CLIENT_ERRORS = (400, 401, 503)
_BODY_ERRORS = (413, 415)

OPERATIONS: tuple[Operation, ...] = (
    Operation("export_start", "POST", "Start an export",
              {202: StartResponse, 200: StartResponse}, _CLIENT_ERRORS + (409,) + _BODY_ERRORS,
              body=StartRequest, headers=StartHeaders,
              links=(Link("status", "export_status", parameters={"jobId": "$response.body#/jobId"}),
                     Link("cancel", "export_cancel", body={"jobId": "$response.body#/jobId"})),
              description="Creates an export job of the caller from a storyboard (`spec`) and answers a signed PUT "
                          "URL per declared upload. 200: the same job again for the same idempotency key and "
                          "request; 409: that key was used with another request."),
    Operation("export_status", "GET", "Read an export's status",
              {200: StatusResponse}, _CLIENT_ERRORS + (404,), query=StatusQuery, headers=ClientHeaders,
              description="The caller's job: state, progress, history, and signed download URLs once succeeded. "
                          "404 for an unknown job and for another owner's."),
    Operation("export_list", "GET", "List the caller's exports",
              {200: ExportList}, _CLIENT_ERRORS, query=ListQuery, headers=ClientHeaders,
              description="The caller's exports, newest first, filtered by status, labels, externalRef and "
                          "creation time, one keyset page at a time (nextPageToken -> pageToken). No signed URLs."),
    Operation("export_cancel", "POST", "Cancel an export",
              {200: CancelResponse}, _CLIENT_ERRORS + (404, 409) + _BODY_ERRORS, body=CancelRequest,
              headers=ClientHeaders,
              links=(Link("status", "export_status", parameters={"jobId": "$response.body#/jobId"}),),
              description="Cancels the caller's job unless it already finished (409); idempotent."),
    Operation("export_webhook_secret", "GET", "Read the caller's webhook signing secret",
              {200: WebhookSecretResponse}, _CLIENT_ERRORS + (403,), headers=ClientHeaders,
              description="The Standard Webhooks secret (whsec_...) with which the owner's webhook calls are "
                          "signed (one per owner, made on first use): verify webhook-signature with it. For the "
                          "app's backend: an end user's ID token is refused (403), as the secret would let its "
                          "holder sign events."),
    Operation("export_complete", "POST", "Report a render's progress or result (render job only)",
              {200: CompleteResponse}, (400, 401, 403, 404, 409, 503) + _BODY_ERRORS, body=CompleteReport,
              security=WORKER, internal=True,
              description="Called by the render job with EXPORT_WORKER_TOKEN; not part of the app API."),
    Operation("reconcile_exports", "POST", "Repair stale exports (Cloud Scheduler only)",
              {200: ReconcileResponse}, (503,), security=SCHEDULER, internal=True,
              description="Called by Cloud Scheduler (IAM); idempotent; not part of the app API."),
)

BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}
