"""The published contract: an OpenAPI 3.1.0 document built from the operations registry
(shared/operations.py) and the models it names (request models of shared/api.py, the export spec of
shared/spec.py, response models of shared/responses.py). Never written by hand: `make schema` writes
it to shared/schema/openapi.json, tests/unit/test_openapi.py fails when that file is stale, and the
local gateway serves it at GET /openapi.json. Pure: no I/O.

OpenAPI 3.1 uses JSON Schema 2020-12, which is what pydantic emits, so the component schemas are
pydantic's own (pydantic.json_schema.models_json_schema; request models in validation mode, response
models in serialization mode). Source: https://spec.openapis.org/oas/v3.1.0
"""
from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.operations import CLIENT, OPERATIONS, SCHEDULER, WORKER, Link, Operation
from shared.responses import ErrorResponse

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"  # the contract's version: raise it with every change a client can see
REF = "#/components/schemas/{model}"
JSON = "application/json"
DOCUMENT_PATH = "shared/schema/openapi.json"  # relative to the repository root

_DESCRIPTION = """\
SceneFlow Export renders a storyboard (the export spec) into an MP4, a poster and captions.
An app calls export_start (declaring its uploads), PUTs each file to its signed URL, polls
export_status, and downloads the outputs through the signed URLs status returns.

Paths are the local gateway's (`python -m infra.local.gateway`, `/{function}`). Deployed, each
function has its own URL `https://REGION-PROJECT.cloudfunctions.net/{function}` whose name uses
hyphens (`export-start`, `export-status`, ...). Every error is `{error: {code, message, details?}}`.
Operations tagged `internal` are called by the platform (the render job, Cloud Scheduler), not by apps.
"""

_SECURITY_SCHEMES = {
    CLIENT: {"type": "http", "scheme": "bearer",
             "description": "The client API's credential, as EXPORT_AUTH enables: a server key "
                            "(`sfk_...`, for an app's backend; X-SceneFlow-Owner names the owner it acts for), an "
                            "end user's OpenID Connect ID token from the configured issuer (the owner is its `sub`), "
                            "or EXPORT_CLIENT_TOKEN (owner `default`). 401 with WWW-Authenticate when refused; "
                            "another owner's job is 404."},
    WORKER: {"type": "http", "scheme": "bearer",
             "description": "EXPORT_WORKER_TOKEN, held by the render job only (constant-time compare)."},
    SCHEDULER: {"type": "http", "scheme": "bearer",
                "description": "A Google OIDC token of Cloud Scheduler's service account, checked by IAM "
                               "before the function runs (nothing is checked in code; open locally)."},
}

_ERROR_TEXT = {
    400: "The request cannot be used: `details` lists every problem as {path, message}.",
    401: "No credential, or one that is not accepted.",
    403: "A credential that is not allowed (a wrong token).",
    404: "No such job for this caller (another owner's job answers 404 too).",
    409: "Conflicts with the job's state or an earlier request.",
    413: "The body is larger than EXPORT_MAX_BODY_BYTES.",
    415: "The body is not application/json.",
    503: "A dependency or a setting failed (code `unavailable` or `misconfigured`); retry later.",
}


def _models() -> list[tuple[type[BaseModel], str]]:
    """Every model the document names, with its JSON Schema mode (requests: validation)."""
    pairs: dict[tuple[type[BaseModel], str], None] = {(ErrorResponse, "serialization"): None}
    for op in OPERATIONS:
        if op.body is not None:
            pairs[(op.body, "validation")] = None
        for model in op.responses.values():
            pairs[(model, "serialization")] = None
    return list(pairs)


def _parameters(model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
    """OpenAPI parameters (`where`: query or header) from a model's fields, by alias."""
    if model is None:
        return []
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        prop.pop("title", None)
        description = prop.pop("description", None)
        param: dict[str, Any] = {"name": name, "in": where, "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        out.append(param)
    return out


def _link(link: Link) -> dict[str, Any]:
    doc: dict[str, Any] = {"operationId": link.operation}
    if link.parameters:
        doc["parameters"] = dict(link.parameters)
    if link.body is not None:
        doc["requestBody"] = dict(link.body)
    return doc


def _operation(op: Operation, refs: dict[tuple[type[BaseModel], str], dict]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    links = {link.name: _link(link) for link in op.links}
    for status, model in sorted(op.responses.items()):
        responses[str(status)] = {"description": HTTPStatus(status).phrase,
                                  "content": {JSON: {"schema": refs[(model, "serialization")]}}}
        if links:
            responses[str(status)]["links"] = links
    error = {JSON: {"schema": refs[(ErrorResponse, "serialization")]}}
    for status in sorted(op.errors):
        responses[str(status)] = {"description": _ERROR_TEXT[status], "content": error}
    doc: dict[str, Any] = {"operationId": op.name, "summary": op.summary, "tags": ["internal" if op.internal
                                                                                 else "exports"]}
    if op.description:
        doc["description"] = op.description
    parameters = _parameters(op.query, "query") + _parameters(op.headers, "header")
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": {JSON: {"schema": refs[(op.body, "validation")]}}}
    doc["responses"] = responses
    doc["security"] = [{op.security: []}]
    return doc


def document() -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of the HTTP API (a JSON-ready dict, deterministic)."""
    refs, defs = models_json_schema(_models(), ref_template=REF)
    paths = {op.path: {op.method.lower(): _operation(op, refs)} for op in OPERATIONS}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "SceneFlow Export API", "version": API_VERSION, "description": _DESCRIPTION},
        "servers": [{"url": "http://127.0.0.1:8080", "description": "the local gateway (its default port)"}],
        "tags": [{"name": "exports", "description": "The API an app calls."},
                 {"name": "internal", "description": "Called by the platform, not by apps."}],
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {}), "securitySchemes": _SECURITY_SCHEMES},
    }


def render() -> str:
    """The document as the text of shared/schema/openapi.json (2-space indent, a final newline)."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"
