"""Publisher (jobs topic) and EventPublisher (events topic) on Pub/Sub through google-cloud-pubsub
(honours PUBSUB_EMULATOR_HOST)."""
from __future__ import annotations

import json
import threading

from shared.errors import TransientError


class PubSubPublisher:
    """Publishes {"jobId": ...} (JSON, UTF-8) with attribute jobId to projects/P/topics/T."""

    def __init__(self, project: str, topic: str, timeout_s: float = 30.0) -> None:
        self._project, self._topic, self._timeout_s = project, topic, timeout_s
        self._client = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._client is None:
                from google.cloud import pubsub_v1

                self._client = pubsub_v1.PublisherClient()
            return self._client

    def publish(self, job_id: str) -> str:
        return self.publish_event(json.dumps({"jobId": job_id}).encode(), {"jobId": job_id})

    def publish_event(self, data: bytes, attributes: dict[str, str]) -> str:
        """Publish `data` with `attributes` to the topic; the message id. Raises TransientError."""
        client = self._get()
        topic = client.topic_path(self._project, self._topic)
        try:
            return client.publish(topic, data, **attributes).result(timeout=self._timeout_s)
        except Exception as exc:  # google.api_core errors, timeouts: all retryable for a publish
            raise TransientError(f"publish to {self._topic} failed: {type(exc).__name__}") from None
