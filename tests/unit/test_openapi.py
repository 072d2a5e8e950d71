"""The published contract (shared/openapi.py): the committed document is current, an independent
validator accepts it, and it covers every HTTP function with the models the functions send."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from pydantic import ValidationError

from shared.errors import InvalidRequest, MAX_DETAILS
from shared.openapi import DOCUMENT_PATH, OPENAPI_VERSION, document, render
from shared.operations import BY_NAME, OPERATIONS
from shared.responses import ErrorResponse, StatusResponse

ROOT = Path(__file__).resolve().parents[2]
QUEUED = {"jobId": "0b2f1c1e-8a7e-4a51-9a8d-2f1f0c0a1b2c", "owner": "default", "status": "queued", "stage": None,
          "progress": 0.0, "createdAt": "2026-01-01T12:00:00.000Z", "updatedAt": "2026-01-01T12:00:00.000Z",
          "startedAt": None, "finishedAt": None, "attempts": 0, "executionName": None, "executionLogUri": None,
          "labels": {}, "externalRef": None, "cost": {"vcpuSeconds": 0.0, "gibSeconds": 0.0, "cpuSeconds": 0.0, "estimatedUsd": 0.0,
                   "pricing": {"vcpuSecondUsd": 1.8e-05, "gibSecondUsd": 2e-06}}, "history": [{"status": "queued", "at": "2026-01-01T12:00:00.000Z"}]}


def test_committed_document_is_current():
    committed = (ROOT / DOCUMENT_PATH).read_text()
    assert committed == render(), f"{DOCUMENT_PATH} is stale: run `make schema` and commit it"


def test_an_independent_validator_accepts_the_document():
    doc = json.loads((ROOT / DOCUMENT_PATH).read_text())
    assert doc["openapi"] == OPENAPI_VERSION == "3.1.0"
    validate(doc)  # openapi-spec-validator: raises OpenAPIValidationError naming the first problem


def _entry_points() -> dict[str, str]:
    """{function: "http" | "cloud_event"} of functions/main.py, read from its decorators (importing it
    would install an error handler on whatever functions-framework app another test already used)."""
    tree = ast.parse((ROOT / "functions" / "main.py").read_text())
    return {node.name: dec.attr for node in tree.body if isinstance(node, ast.FunctionDef)
            for dec in node.decorator_list
            if isinstance(dec, ast.Attribute) and dec.attr in ("http", "cloud_event")}


def test_every_http_function_is_an_operation():
    from infra.local.gateway import FUNCTION_NAMES

    kinds = _entry_points()
    assert set(kinds) == set(FUNCTION_NAMES)
    assert {op.name for op in OPERATIONS} == {name for name, kind in kinds.items() if kind == "http"}
    paths = document()["paths"]
    assert {(p, m.upper()) for p, ops in paths.items() for m in ops} == {(op.path, op.method) for op in OPERATIONS}
    status = paths["/export_status"]["get"]
    assert [(p["name"], p["in"]) for p in status["parameters"]] == [("jobId", "query"), ("X-SceneFlow-Owner", "header")]
    assert status["parameters"][0]["required"] and not status["parameters"][1]["required"]
    assert set(status["responses"]) == {"200", "400", "401", "404", "503"}
    start = paths["/export_start"]["post"]
    assert [(p["name"], p["in"]) for p in start["parameters"]] == [("X-SceneFlow-Owner", "header"),
                                                                   ("Idempotency-Key", "header")]
    listing = paths["/export_list"]["get"]
    assert [p["name"] for p in listing["parameters"] if p["in"] == "query"] == [
        "status", "label", "externalRef", "createdAfter", "createdBefore", "pageSize", "pageToken"]
    schemas = document()["components"]["schemas"]
    assert schemas["StartRequest"]["properties"]["spec"]["$ref"] == "#/components/schemas/ExportSpec"
    assert set(schemas["StatusResponse"]["required"]) >= {"jobId", "status", "progress", "history"}
    assert schemas["StatusResponse"]["additionalProperties"] is False


def test_a_body_outside_the_document_is_refused_before_it_is_sent():
    op = BY_NAME["export_status"]
    assert op.wire(200, dict(QUEUED)) == QUEUED  # unchanged: same keys, values, no null added
    with pytest.raises(ValidationError, match="surprise"):
        op.wire(200, {**QUEUED, "surprise": 1})  # a field no model declares
    with pytest.raises(ValidationError, match="attempts"):
        op.wire(200, {**QUEUED, "attempts": "0"})  # strict: no coercion hides a wrong type
    with pytest.raises(KeyError):
        op.wire(201, QUEUED)  # a status the operation does not document


def test_error_bodies_are_the_published_model():
    exc = InvalidRequest("bad", details=[{"path": f"spec.scenes[{i}]", "message": "x"} for i in range(MAX_DETAILS + 2)])
    body = exc.to_body()
    ErrorResponse.model_validate(body, strict=True)
    assert body["error"]["details"][-1] == {"path": "$", "message": "and 2 more problems"}
    assert "details" not in InvalidRequest("no details").to_body()["error"]  # left out, not null
    assert StatusResponse.model_json_schema(mode="serialization")["properties"]["progress"]["maximum"] == 1
