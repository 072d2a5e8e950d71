"""The typed Python client of the SceneFlow Export API, used by examples/demo.py and the system tests.

It does what a user's app does: POST export_start with the declared uploads, PUT each file to its
signed URL with exactly the returned headers, poll export_status, download the outputs through
their signed GET URLs. `ExportClient` sends the request models of shared/api.py and returns the
response models of shared/responses.py, the models the published OpenAPI document is built from
(shared/schema/openapi.json); each answer is parsed strictly, so a body outside the document is an
error here too. tests/integration/test_typed_client.py checks every method against the committed
document (path, method, parameters, body schema, response schema). The module functions below
(start_export, get_status, wait_for) are the same calls answering the JSON dicts. `headers` (e.g.
{"Authorization": "Bearer <ID token>"}) go with every API call.
"""
from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping

import requests
from pydantic import BaseModel, ValidationError

from infra.local.upload_types import upload_types
from shared.api import CancelRequest, StartRequest, UploadDecl
from shared.operations import BY_NAME
from shared.responses import (CancelResponse, ErrorResponse, ExportList, StartResponse, StatusResponse, UploadTarget,
                              WebhookSecretResponse)

TERMINAL = {"succeeded", "failed", "canceled"}


class ApiError(RuntimeError):
    """An unexpected HTTP answer (the message carries status and the whole body); `status` and, when
    the body is the documented error body, `error` (shared.responses.ErrorResponse)."""

    def __init__(self, message: str, status: int | None = None, error: ErrorResponse | None = None) -> None:
        super().__init__(message)
        self.status, self.error = status, error


class UnsafeName(ValueError):
    """A name read from the API that is not one safe path segment (see safe_output_path)."""


# What a client of ours writes under its output folder: one path segment, the alphabet the render job
# names its outputs with (shared.artifacts.slugify + extension), not starting with '.', no '..'.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def safe_output_path(folder: Path, name: object, what: str) -> Path:
    """`folder / name` when `name` is one safe path segment (SAFE_NAME, no '..'); `what` says where
    the name came from (e.g. "output.filename"). Raises UnsafeName naming it otherwise: whatever the
    API returns, nothing is written outside `folder`."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        shown = repr(name[:200]) + ("..." if len(name) > 200 else "") if isinstance(name, str) else repr(name)
        raise UnsafeName(f"refusing to write {what} {shown} into {folder}: not one file name of "
                         "A-Z a-z 0-9 '.', '_', '-' (1-128 characters, not starting with '.', no '..')")
    path = Path(folder) / name
    if path.parent != Path(folder):  # belt and braces: the pattern already excludes separators
        raise UnsafeName(f"refusing to write {what} {name!r}: it leaves {folder}")
    return path


def whole_body(r: requests.Response) -> str:
    """The whole response body: JSON pretty-printed (every error detail on its own lines), else the text."""
    try:
        return json.dumps(r.json(), indent=2, ensure_ascii=False)
    except ValueError:
        return r.text


def _check(r: requests.Response, *ok: int) -> dict:
    if r.status_code not in ok:
        raise _api_error(r)
    return r.json() if r.content else {}


def _api_error(r: requests.Response) -> ApiError:
    try:
        error = ErrorResponse.model_validate_json(r.content)
    except ValidationError:
        error = None
    return ApiError(f"{r.request.method} {r.url.split('?')[0]} -> {r.status_code}:\n{whole_body(r)}",
                    r.status_code, error)


class ExportClient:
    """The client API of one deployment at `base` (the gateway's URL, or the functions' base URL).

    token: sent as `Authorization: Bearer <token>` (a server key, an ID token, EXPORT_CLIENT_TOKEN);
    headers: sent with every call (e.g. X-SceneFlow-Owner with a server key). Every method
    names its operation in OPERATIONS (shared/operations.py), answers that operation's response
    model, and raises ApiError for any other status (documented errors carry `.error`)."""

    OPERATIONS = {"start": "export_start", "status": "export_status", "list": "export_list",
                  "cancel": "export_cancel", "webhook_secret": "export_webhook_secret"}

    def __init__(self, base: str, token: str | None = None, timeout_s: float = 30,
                 session: requests.Session | None = None, headers: Mapping[str, str] | None = None) -> None:
        self.base, self.token, self.timeout_s = base.rstrip("/"), token, timeout_s
        self.headers = dict(headers or {})
        self.http = session or requests.Session()

    def _call(self, name: str, *, params: dict | None = None, body: BaseModel | None = None,
              headers: dict | None = None) -> BaseModel:
        op = BY_NAME[name]
        sent = {**self.headers, **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        r = self.http.request(op.method, self.base + op.path, params=params, headers=sent, timeout=self.timeout_s,
                              json=body.model_dump(mode="json", by_alias=True, exclude_none=True) if body else None)
        model = op.responses.get(r.status_code)
        if model is None:
            raise _api_error(r)
        try:
            return model.model_validate_json(r.content, strict=True)
        except ValidationError as exc:  # a body outside the document
            raise ApiError(f"{op.method} {op.path} -> {r.status_code}: the body breaks {model.__name__}: {exc}\n"
                           f"{whole_body(r)}", r.status_code) from None

    def start(self, spec: dict, files: list[Path] = (), idempotency_key: str | None = None,
              content_types: Mapping[str, str] | None = None, *, labels: Mapping[str, str] | None = None,
              external_ref: str | None = None, webhook_url: str | None = None) -> StartResponse:
        """POST export_start declaring `files` as uploads (content type `content_types[name]`, else
        chosen by extension and role: upload_types), with the app's labels, external reference and
        webhook URL when given. 202 for a new job, 200 for a replay."""
        files = list(files)
        types = {**upload_types(spec, [f.name for f in files]), **(content_types or {})}
        # not validated here: the service checks the request and names every problem at once (400)
        extra = {k: v for k, v in (("labels", dict(labels or {}) or None), ("external_ref", external_ref),
                                   ("webhook_url", webhook_url)) if v is not None}
        body = StartRequest.model_construct(spec=spec, idempotency_key=idempotency_key, uploads=[
            UploadDecl.model_construct(name=f.name, content_type=types[f.name]) for f in files], **extra)
        return self._call("export_start", body=body)  # type: ignore[return-value]

    def status(self, job_id: str) -> StatusResponse:
        """GET export_status?jobId=."""
        return self._call("export_status", params={"jobId": job_id})  # type: ignore[return-value]

    def list(self, *, status: list[str] | None = None, labels: Mapping[str, str] | None = None,
             external_ref: str | None = None, created_after: str | None = None, created_before: str | None = None,
             page_size: int | None = None, page_token: str | None = None) -> ExportList:
        """GET export_list: one page of the caller's exports, newest first (labels: all must match;
        times RFC 3339). Pass the answer's next_page_token as page_token for the next page."""
        params = {"status": list(status or []) or None,
                  "label": [f"{k}:{v}" for k, v in (labels or {}).items()] or None,
                  "externalRef": external_ref, "createdAfter": created_after, "createdBefore": created_before,
                  "pageSize": page_size, "pageToken": page_token}
        return self._call("export_list", params={k: v for k, v in params.items() if v is not None})  # type: ignore[return-value]

    def webhook_secret(self) -> WebhookSecretResponse:
        """GET export_webhook_secret: the caller's Standard Webhooks signing secret (whsec_...)."""
        return self._call("export_webhook_secret")  # type: ignore[return-value]

    def cancel(self, job_id: str) -> CancelResponse:
        """POST export_cancel {jobId}."""
        return self._call("export_cancel", body=CancelRequest.model_construct(job_id=job_id))  # type: ignore[return-value]

    def wait(self, job_id: str, timeout_s: float = 600, interval_s: float = 0.3,
             on_status: Callable[[StatusResponse], None] | None = None) -> StatusResponse:
        """Poll status until a terminal state; returns the last answer. Raises TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.status(job_id)
            if on_status:
                on_status(st)
            if st.status in TERMINAL:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {st.status} after {timeout_s:.0f} s")
            time.sleep(interval_s)


def start_export(base: str, spec: dict, files: list[Path], idempotency_key: str | None = None,
                 timeout_s: float = 30, content_types: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> dict:
    """ExportClient.start as the JSON body (202 or 200)."""
    return ExportClient(base, timeout_s=timeout_s, headers=headers).start(spec, files, idempotency_key, content_types).wire()


def upload_all(uploads: list[dict] | list[UploadTarget], files: list[Path], workers: int = 4,
               timeout_s: float = 120) -> None:
    """PUT each file to its signed URL with the returned method and headers."""
    by_name = {f.name: f for f in files}

    def put(u: dict | UploadTarget) -> None:
        u = u.wire() if isinstance(u, UploadTarget) else u
        path = by_name[u["name"]]
        with open(path, "rb") as fh:
            r = requests.request(u.get("method", "PUT"), u["url"], data=fh,
                                 headers=u.get("headers") or {}, timeout=timeout_s)
        if r.status_code >= 300:
            raise ApiError(f"upload of {u['name']} -> {r.status_code}:\n{whole_body(r)}", r.status_code)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(put, uploads))


def get_status(base: str, job_id: str, timeout_s: float = 30, headers: Mapping[str, str] | None = None) -> dict:
    """ExportClient.status as the JSON body."""
    return ExportClient(base, timeout_s=timeout_s, headers=headers).status(job_id).wire()


def wait_for(base: str, job_id: str, timeout_s: float = 600, interval_s: float = 0.3,
             on_status: Callable[[dict], None] | None = None, headers: Mapping[str, str] | None = None) -> dict:
    """ExportClient.wait with JSON bodies: poll until a terminal state; returns the last body."""
    final = ExportClient(base, headers=headers).wait(job_id, timeout_s, interval_s,
                                    (lambda st: on_status(st.wire())) if on_status else None)
    return final.wire()


def download(url: str, dest: Path, timeout_s: float = 120) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with requests.get(url, stream=True, timeout=timeout_s) as r:
        if r.status_code != 200:
            raise ApiError(f"download {url.split('?')[0]} -> {r.status_code}:\n{whole_body(r)}")
        with open(dest, "wb") as fh:
            for chunk in r.iter_content(1 << 16):
                fh.write(chunk)
    return dest


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def state_durations(status: dict) -> list[tuple[str, float]]:
    """[(state, seconds spent in it)] from `history`; the last state runs until finishedAt (or now)."""
    hist = status.get("history") or []
    out: list[tuple[str, float]] = []
    for i, h in enumerate(hist):
        start = parse_time(h["at"])
        if i + 1 < len(hist):
            end = parse_time(hist[i + 1]["at"])
        else:
            end = parse_time(status["finishedAt"]) if status.get("finishedAt") else start
        out.append((h["status"], max(0.0, (end - start).total_seconds())))
    return out
