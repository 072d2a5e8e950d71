"""The baseline of the load test: a bare functions-framework HTTP function returning constant JSON.

Served exactly like the real functions (python -m infra.local.gateway --source tests/load/main.py
--functions bare), so the ratio export_status / bare measures what our code adds per request.
"""
import json

import flask
import functions_framework

# about the size of an export_status body of a queued job
BODY = json.dumps({"jobId": "00000000-0000-4000-8000-000000000000", "status": "queued", "stage": None,
                   "progress": 0.0, "createdAt": "2026-01-01T00:00:00.000Z",
                   "updatedAt": "2026-01-01T00:00:00.000Z", "startedAt": None, "finishedAt": None,
                   "attempts": 0, "executionName": None,
                   "history": [{"status": "queued", "at": "2026-01-01T00:00:00.000Z"}]}).encode()


@functions_framework.http
def bare(request: flask.Request) -> flask.Response:
    return flask.Response(BODY, status=200, mimetype="application/json")
