"""The local Publisher stand-in (the in-memory test double, RecordingPublisher, is in tests/fakes.py).

HttpPushPublisher delivers each message over loopback to a push endpoint (dispatch_export) in
the body Pub/Sub push subscriptions send
({"message": {"data": base64, "attributes", "messageId", "publishTime"}, "subscription"};
https://cloud.google.com/pubsub/docs/push#receive_push), from a background thread, retrying
non-2xx answers with backoff like Pub/Sub does. functions-framework turns that body into the
same google.cloud.pubsub.topic.v1.messagePublished CloudEvent that Eventarc delivers.

As the embedded stack's events topic (EventPublisher, to deliver_webhook) it honours a dead-letter
policy the way Pub/Sub documents it (https://cloud.google.com/pubsub/docs/handling-failures): the
push body carries deliveryAttempt (1, 2, ...), and after max_attempts the message is forwarded to
the dead-letter "topic" (a JSON-lines file: data, attributes plus CloudPubSubDeadLetterSource*
attributes, messageId, publishTime). The emulated stack needs none of this: the Pub/Sub emulator
itself applies the subscription's retry and dead-letter policies (infra/local/stack.py).
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
    return message_body(json.dumps({"jobId": job_id}).encode(), {"jobId": job_id}, project, subscription)


def message_body(data: bytes, attributes: dict[str, str], project: str, subscription: str = "local-push") -> dict:
    """The JSON body of a Pub/Sub push delivery of one message (data, attributes)."""
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": dict(attributes),
            "messageId": uuid.uuid4().hex,
            "publishTime": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        },
        "subscription": f"projects/{project}/subscriptions/{subscription}",
    }


class _Refused(Exception):
    """A push answered outside 2xx (the status code): retried like a network error."""


class HttpPushPublisher:
    """Publisher (and EventPublisher) that pushes to `push_url` asynchronously; returns the message id
    at once. dead_letter_file: where messages go after max_attempts (else they are dropped, logged)."""

    def __init__(self, push_url: str, project: str, max_attempts: int = 8, backoff_s: float = 0.2,
                 dead_letter_file: str | None = None, subscription: str = "local-push") -> None:
        self.push_url, self.project, self.max_attempts = push_url, project, max_attempts
        self.backoff_s, self.dead_letter_file, self.subscription = backoff_s, dead_letter_file, subscription
        self._lock = threading.Lock()

    def publish(self, job_id: str) -> str:
        return self.publish_event(json.dumps({"jobId": job_id}).encode(), {"jobId": job_id})

    def publish_event(self, data: bytes, attributes: dict[str, str]) -> str:
        body = message_body(data, attributes, self.project, self.subscription)
        threading.Thread(target=self._deliver, args=(body, attributes.get("jobId")), daemon=True).start()
        return body["message"]["messageId"]

    def _dead_letter(self, body: dict, attempts: int, job_id: str | None) -> None:
        logs.error("push delivery gave up", job_id=job_id)
        if not self.dead_letter_file:
            return
        message = dict(body["message"])
        message["attributes"] = {**message.get("attributes", {}),
                                 "CloudPubSubDeadLetterSourceDeliveryCount": str(attempts),
                                 "CloudPubSubDeadLetterSourceSubscription": self.subscription,
                                 "CloudPubSubDeadLetterSourceSubscriptionProject": self.project}
        with self._lock, open(self.dead_letter_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(message) + "\n")

    def _deliver(self, body: dict, job_id: str | None) -> None:
        """POST `body` until a 2xx answer: up to `max_attempts`, waiting backoff_s (0.2 s) doubling to at
        most 10 s between them; each failed attempt is logged (WARNING), and the giving up (ERROR,
        then the dead-letter file when set)."""
        retrying = Retrying(
            retry=retry_if_exception_type((requests.RequestException, _Refused)),
            wait=wait_exponential(multiplier=self.backoff_s, max=10),  # backoff_s, doubling, at most 10 s
            stop=stop_after_attempt(self.max_attempts),
            retry_error_callback=lambda state: self._dead_letter(body, state.attempt_number, job_id))
        for attempt in retrying:
            with attempt:
                n = attempt.retry_state.attempt_number
                if self.dead_letter_file:  # Pub/Sub sends it when the subscription dead-letters
                    body = {**body, "deliveryAttempt": n}
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
