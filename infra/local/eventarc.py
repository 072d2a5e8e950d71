"""A local Eventarc for the storage emulator, which sends no notifications.

`FinalizePoller(storage_url, buckets, target_url)` POSTs one binary-mode
`google.cloud.storage.object.v1.finalized` CloudEvent (`finalize_cloudevent`) per new
(bucket, name, generation) to `target_url`: at once through `notify()` (StorageEmulator.listeners),
and by listing the buckets every `interval_s` as a safety net; retried with backoff up to `max_age_s`.
`binary_event` builds every CloudEvent of the local stack and the tests, with the CloudEvents SDK.
"""
from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from tenacity import Retrying, retry_if_exception_type, wait_exponential

from infra.local.process import Service
from shared.events import FINALIZED_TYPE


def storage_source(bucket: str) -> str:
    """The `source` of a Cloud Storage event about `bucket`."""
    return f"//storage.googleapis.com/projects/_/buckets/{bucket}"


def pubsub_source(project: str, topic: str) -> str:
    """The `source` of a Pub/Sub messagePublished event from `topic`."""
    return f"//pubsub.googleapis.com/projects/{project}/topics/{topic}"


def binary_event(ce_type: str, source: str, data: Any, **attributes: str) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a binary-mode CloudEvent whose data is JSON, as Eventarc POSTs it: `ce-*`
    headers, `content-type: application/json`, body json.dumps(data). `ce-id` is a fresh uuid4 hex
    unless given; `ce-time` only when given (the SDK would stamp one: dropped, as before the SDK)."""
    event = CloudEvent({"type": ce_type, "source": source, "id": uuid.uuid4().hex,
                        "datacontenttype": "application/json", **attributes}, data)
    if "time" not in attributes:
        del event["time"]
    return to_binary(event)



def finalize_cloudevent(obj: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(headers, data) of a binary-mode `google.cloud.storage.object.v1.finalized` CloudEvent for the
    object resource `obj`; the body to POST is json.dumps(data), which is what binary_event writes."""
    bucket, name = obj["bucket"], obj["name"]
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    data = {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{obj.get('generation')}",
        "bucket": bucket,
        "name": name,
        "generation": str(obj.get("generation", "")),
        "metageneration": str(obj.get("metageneration", "1")),
        "size": str(obj.get("size", "0")),
        "contentType": obj.get("contentType") or "application/octet-stream",
        "metadata": obj.get("metadata") or {},
        "timeCreated": obj.get("timeCreated") or now,
        "updated": obj.get("updated") or obj.get("timeCreated") or now,
        "md5Hash": obj.get("md5Hash", ""),
        "crc32c": obj.get("crc32c", ""),
    }
    headers, _ = binary_event(FINALIZED_TYPE, storage_source(bucket), data, subject=f"objects/{name}", time=now)
    return headers, data


class FinalizePoller(Service):
    """A local Eventarc for storage emulators that send no notifications.

    Every `interval_s` it lists the buckets at `storage_url` (JSON API) and, for each new
    (bucket, name, generation), POSTs a finalize CloudEvent to `target_url`; notify() delivers one
    at once (wired to StorageEmulator.listeners, the listing is then only a safety net). Like Eventarc it
    retries a delivery on connection errors and non-2xx answers, with backoff, up to `max_age_s`.
    """

    name = "finalize-poller"

    def __init__(self, storage_url: str, buckets: list[str], target_url: str,
                 interval_s: float = 0.2, max_age_s: float = 300, log_path: Path | None = None) -> None:
        self.storage_url = storage_url.rstrip("/")
        self.buckets = buckets
        self.target_url = target_url
        self.interval_s = interval_s
        self.max_age_s = max_age_s
        self.log_path = log_path
        self.seen: set[tuple[str, str, str]] = set()
        self._seen_lock = threading.Lock()
        self.delivered: list[tuple[str, str, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="eventarc")
        self._log_lock = threading.Lock()
        self._session = requests.Session()

    def _log(self, msg: str) -> None:
        if self.log_path is None:
            return
        with self._log_lock, open(self.log_path, "a") as f:
            f.write(f"{datetime.now().isoformat(timespec='milliseconds')} {msg}\n")

    def start(self) -> "FinalizePoller":
        self._thread = threading.Thread(target=self._loop, name="finalize-poller", daemon=True)
        self._thread.start()
        return self

    def _list(self, bucket: str) -> list[dict]:
        items: list[dict] = []
        token = None
        while True:
            params = {"pageToken": token} if token else {}
            r = requests.get(f"{self.storage_url}/storage/v1/b/{bucket}/o", params=params, timeout=5)
            r.raise_for_status()
            body = r.json()
            items.extend(body.get("items", []))
            token = body.get("nextPageToken")
            if not token:
                return items

    def notify(self, obj: dict[str, Any]) -> None:
        """Deliver the finalize of `obj` (an object resource with "bucket" and "name") now, unless that
        (bucket, name, generation) was delivered already: StorageEmulator.listeners calls this."""
        key = (obj["bucket"], obj["name"], str(obj.get("generation")))
        with self._seen_lock:
            if key in self.seen:
                return
            self.seen.add(key)
        self._pool.submit(self._deliver, obj, key)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for bucket in self.buckets:
                try:
                    objects = self._list(bucket)
                except Exception as e:  # noqa: BLE001
                    self._log(f"list {bucket} failed: {e}")
                    continue
                for obj in objects:
                    obj.setdefault("bucket", bucket)
                    self.notify(obj)
            self._stop.wait(self.interval_s)

    def _deliver(self, obj: dict, key: tuple[str, str, str]) -> None:
        headers, body = finalize_cloudevent(obj)
        where = f"gs://{key[0]}/{key[1]}#{key[2]}"
        retrying = Retrying(
            retry=retry_if_exception_type((requests.RequestException, _Refused)),
            wait=wait_exponential(multiplier=0.25, max=10.0),  # 0.25 s, doubling, at most 10 s
            sleep=self._stop.wait,  # stop() ends a wait at once
            stop=lambda rs: rs.seconds_since_start > self.max_age_s,
            after=lambda rs: self._log(f"{where} -> {rs.outcome.exception()}; retrying"),
            retry_error_callback=lambda rs: self._log(f"gave up on {where} after {rs.attempt_number} attempts"))
        for attempt in retrying:
            with attempt:
                if self._stop.is_set():
                    return
                r = requests.post(self.target_url, headers=headers, data=json.dumps(body), timeout=60)
                if not 200 <= r.status_code < 300:
                    raise _Refused(f"{r.status_code} {r.text[:200]!r}")
                self._log(f"delivered {where} -> {r.status_code} (attempt {attempt.retry_state.attempt_number})")
                self.delivered.append(key)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Refused(Exception):
    """A delivery answered outside 2xx ("<status> <start of the body>"): retried like a network error."""
