"""infra/local/client.py's ExportClient checked against the committed OpenAPI document
(shared/schema/openapi.json), not against the registry it is built from: each method is called
against a loopback server that records the request and answers a body of the document; the request
must be an operation of the document (path, method), send only its parameters, a body valid under
its request schema (jsonschema, draft 2020-12, $refs resolved in the document), and the method must
return the model whose JSON Schema is the document's schema of that answer."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from infra.local.client import ApiError, ExportClient
from shared.openapi import DOCUMENT_PATH, REF

ROOT = Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / DOCUMENT_PATH).read_text())
JOB = "0b2f1c1e-8a7e-4a51-9a8d-2f1f0c0a1b2c"
AT = "2026-01-01T12:00:00.000Z"
ANSWERS = {  # a body per operation, as the service sends them
    "/export_webhook_secret": (200, {"owner": "default", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    "/export_list": (200, {"exports": [{"jobId": JOB, "status": "succeeded", "stage": None, "progress": 1.0,
                                        "labels": {"book": "b7"}, "externalRef": None, "createdAt": AT,
                                        "updatedAt": AT, "finishedAt": AT}], "nextPageToken": "abc"}),
    "/export_start": (202, {"jobId": JOB, "status": "awaiting_upload", "statusUrl": f"http://x/export_status?jobId={JOB}",
                            "uploads": [{"name": "a.png", "url": "http://s/a", "method": "PUT",
                                         "headers": {"Content-Type": "image/png"}, "expiresAt": AT}]}),
    "/export_status": (200, {"jobId": JOB, "owner": "default", "status": "awaiting_upload", "stage": None,
                             "progress": 0.0, "createdAt": AT, "updatedAt": AT, "startedAt": None, "finishedAt": None,
                             "attempts": 0, "executionName": None, "executionLogUri": None,
                             "labels": {"book": "b7"}, "externalRef": "story-42", "cost": {"vcpuSeconds": 0.0, "gibSeconds": 0.0, "cpuSeconds": 0.0, "estimatedUsd": 0.0,
                             "pricing": {"vcpuSecondUsd": 1.8e-05, "gibSecondUsd": 2e-06}}, 
                             "history": [{"status": "awaiting_upload", "at": AT}],
                             "uploads": {"expected": ["a.png"], "received": []}}),
    "/export_cancel": (200, {"jobId": JOB, "status": "canceled"}),
}
SPEC = {"version": 1, "scenes": [{"id": "a", "visual": {"type": "image", "src": "a.png"}, "duration": 2}]}
CALLS = {"start": lambda c: c.start(SPEC, [Path("/nowhere/a.png")], idempotency_key="k1", labels={"book": "b7"},
                                    external_ref="story-42", webhook_url="https://app.example/hooks"),
         "status": lambda c: c.status(JOB), "cancel": lambda c: c.cancel(JOB),
         "webhook_secret": lambda c: c.webhook_secret(),
         "list": lambda c: c.list(status=["running", "succeeded"], labels={"book": "b7"}, page_size=2)}


class _Api:
    """A loopback server answering ANSWERS (or `override`), recording (method, path, query, headers, body)."""

    def __init__(self, override: tuple[int, dict] | None = None):
        outer, self.seen = self, []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                url = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.seen.append((self.command, url.path, parse_qs(url.query), dict(self.headers),
                                   json.loads(raw) if raw else None))
                status, body = override or ANSWERS[url.path]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _validator(schema: dict) -> jsonschema.Draft202012Validator:
    registry = Registry().with_resource("urn:doc", Resource.from_contents(DOC, default_specification=DRAFT202012))
    rebased = json.loads(json.dumps(schema).replace('"#/components/', '"urn:doc#/components/'))
    return jsonschema.Draft202012Validator(rebased, registry=registry)


def _ref_name(schema: dict) -> str:
    return schema["$ref"].rsplit("/", 1)[-1]


@pytest.mark.parametrize("method", sorted(ExportClient.OPERATIONS))
def test_each_method_is_an_operation_of_the_document(method):
    with _Api() as api:
        result = CALLS[method](ExportClient(api.base, token="t0k"))
    [(verb, path, query, headers, body)] = api.seen
    assert path == "/" + ExportClient.OPERATIONS[method]
    op = DOC["paths"][path][verb.lower()]  # KeyError: the document has no such operation
    params = {(p["in"], p["name"]): p for p in op.get("parameters", [])}
    assert all(("query", name) in params for name in query), (query, params)
    assert all(name in query for (where, name), p in params.items() if where == "query" and p["required"])
    if ("header", "Idempotency-Key") in params:
        assert "Idempotency-Key" not in headers  # the client sends the key in the body, where it is documented too
    assert headers["Authorization"] == "Bearer t0k" and op["security"] in ([{"clientBearer": []}],)
    if "requestBody" in op:
        _validator(op["requestBody"]["content"]["application/json"]["schema"]).validate(body)
    else:
        assert body is None
    status, sent = ANSWERS[path]
    answer_schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    _validator(answer_schema).validate(sent)  # the test's answer is a body of the document
    # the method returns the model whose JSON Schema is the document's, field for field
    assert type(result).__name__ == _ref_name(answer_schema)
    published = DOC["components"]["schemas"][_ref_name(answer_schema)]
    assert type(result).model_json_schema(mode="serialization", ref_template=REF) | {"$defs": None} == \
        published | {"$defs": None}
    assert result.wire() == sent


def test_every_client_operation_of_the_document_has_a_method():
    apps = {path.strip("/") for path, ops in DOC["paths"].items()
            for op in ops.values() if "exports" in op["tags"]}
    assert apps == set(ExportClient.OPERATIONS.values())


def test_documented_errors_arrive_parsed_and_whole():
    body = {"error": {"code": "not_found", "message": f"no export job {JOB}"}}
    with _Api(override=(404, body)) as api, pytest.raises(ApiError) as exc:
        ExportClient(api.base).status(JOB)
    assert exc.value.status == 404 and exc.value.error.error.code == "not_found"
    assert str(exc.value).startswith(f"GET {api.base}/export_status -> 404:\n")


def test_a_body_outside_the_document_is_refused():
    with _Api(override=(200, {"jobId": JOB, "status": "canceled", "extra": 1})) as api, \
            pytest.raises(ApiError, match="the body breaks CancelResponse"):
        ExportClient(api.base).cancel(JOB)
