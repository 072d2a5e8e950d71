"""The local Publisher stand-in (the in-memory test double, RecordingPublisher, is in tests/fakes.py).

HttpPushPublisher delivers each message over loopback to a push endpoint (dispatch_export) in
the body Pub/Sub push subscriptions send
({"message": {"data": base64, "attributes", "messageId", "publishTime"}, "subscription"};
https://cloud.google.com/pubsub/docs/push#receive_push), from a background thread, retrying
non-2xx answers with backoff like Pub/Sub does. functions-framework turns that body into the
same google.cloud.pubsub.topic.v1.messagePublished CloudEvent that Eventarc delivers.
"""
from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import datetime, timezone

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from shared import logs


def push_body(job_id: str, project: str, subscription: str = "local-push") -> dict:
    """The JSON body of a Pub/Sub push delivery carrying {"jobId": job_id}."""
    return {
        "message": {
            "data": base64.b64encode(json.dumps({"jobId": job_id}).encode()).decode(),
            "attributes": {"jobId": job_id},
            "messageId": uuid.uuid4().hex,
            "publishTime": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        },
        "subscription": f"projects/{project}/subscriptions/{subscription}",
    }


class _Refused(Exception):
    """A push answered outside 2xx (the status code): retried like a network error."""


class HttpPushPublisher:
    """Publisher that pushes to `push_url` asynchronously; returns the message id at once."""

    def __init__(self, push_url: str, project: str, max_attempts: int = 8) -> None:
        self.push_url, self.project, self.max_attempts = push_url, project, max_attempts

    def publish(self, job_id: str) -> str:
        body = push_body(job_id, self.project)
        threading.Thread(target=self._deliver, args=(body, job_id), daemon=True).start()
        return body["message"]["messageId"]

    def _deliver(self, body: dict, job_id: str) -> None:
        """POST `body` until a 2xx answer: up to `max_attempts`, waiting 0.2 s doubling to at most 10 s
        between them; each failed attempt is logged (WARNING), and the giving up (ERROR)."""
        retrying = Retrying(
            retry=retry_if_exception_type((requests.RequestException, _Refused)),
            wait=wait_exponential(multiplier=0.2, max=10),  # 0.2 s, doubling, at most 10 s
            stop=stop_after_attempt(self.max_attempts),
            retry_error_callback=lambda _: logs.error("push delivery gave up", job_id=job_id))
        for attempt in retrying:
            with attempt:
                n = attempt.retry_state.attempt_number
                try:
                    r = requests.post(self.push_url, json=body, timeout=60)
                except requests.RequestException as exc:
                    logs.warning("push delivery failed; retrying", job_id=job_id, reason=type(exc).__name__,
                                 attempt=n)
                    raise
                if r.status_code >= 300:
                    logs.warning("push delivery refused; retrying", job_id=job_id, httpStatus=r.status_code,
                                 attempt=n)
                    raise _Refused(r.status_code)
