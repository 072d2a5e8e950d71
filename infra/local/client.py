"""A small HTTP client of the SceneFlow Export API, used by examples/demo.py and the system tests.

It does what a user's app does: POST export_start with the declared uploads, PUT each file to its
signed URL with exactly the returned headers, poll export_status, download the outputs through
their signed GET URLs. `headers` (e.g. {"Authorization": "Bearer <ID token>"}) go with every API call.
"""
from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

import requests

from infra.local.upload_types import upload_types

TERMINAL = {"succeeded", "failed", "canceled"}


class ApiError(RuntimeError):
    """An unexpected HTTP answer (the message carries status and the whole body)."""


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
        raise ApiError(f"{r.request.method} {r.url.split('?')[0]} -> {r.status_code}:\n{whole_body(r)}")
    return r.json() if r.content else {}


def start_export(base: str, spec: dict, files: list[Path], idempotency_key: str | None = None,
                 timeout_s: float = 30, content_types: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> dict:
    """POST {base}/export_start declaring `files` as uploads; returns the 202 body. Each upload's
    content type is `content_types[name]`, else chosen by extension and role (upload_types)."""
    types = {**upload_types(spec, [f.name for f in files]), **(content_types or {})}
    body: dict[str, Any] = {"spec": spec,
                            "uploads": [{"name": f.name, "contentType": types[f.name]} for f in files]}
    if idempotency_key:
        body["idempotencyKey"] = idempotency_key
    return _check(requests.post(f"{base}/export_start", json=body, headers=headers, timeout=timeout_s), 202, 200)


def upload_all(uploads: list[dict], files: list[Path], workers: int = 4, timeout_s: float = 120) -> None:
    """PUT each file to its signed URL with the returned method and headers."""
    by_name = {f.name: f for f in files}

    def put(u: dict) -> None:
        path = by_name[u["name"]]
        with open(path, "rb") as fh:
            r = requests.request(u.get("method", "PUT"), u["url"], data=fh,
                                 headers=u.get("headers") or {}, timeout=timeout_s)
        if r.status_code >= 300:
            raise ApiError(f"upload of {u['name']} -> {r.status_code}:\n{whole_body(r)}")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(put, uploads))


def get_status(base: str, job_id: str, timeout_s: float = 30, headers: Mapping[str, str] | None = None) -> dict:
    return _check(requests.get(f"{base}/export_status", params={"jobId": job_id}, headers=headers,
                               timeout=timeout_s), 200)


def wait_for(base: str, job_id: str, timeout_s: float = 600, interval_s: float = 0.3,
             on_status: Callable[[dict], None] | None = None, headers: Mapping[str, str] | None = None) -> dict:
    """Poll export_status until a terminal state; returns the last body. Raises TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = get_status(base, job_id, headers=headers)
        if on_status:
            on_status(body)
        if body.get("status") in TERMINAL:
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {body.get('status')} after {timeout_s:.0f} s")
        time.sleep(interval_s)


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
