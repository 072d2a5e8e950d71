"""The Pub/Sub emulator (`gcloud beta emulators pubsub start`, needs the gcloud SDK and Java).

`PubSubEmulator(project).start()` serves on 127.0.0.1:PORT (`.host` is for PUBSUB_EMULATOR_HOST);
`create_topic`, `create_push_subscription` and `publish` administer it through google-cloud-pubsub
over an insecure gRPC channel. Errors: `ServiceError` with the tail of its log.
"""
from __future__ import annotations

import os
import shutil

import requests

from infra.local.process import ProcessService, ServiceError, free_port, wait_until


def pubsub_emulator_available() -> bool:
    return shutil.which("gcloud") is not None and shutil.which("java") is not None


class PubSubEmulator(ProcessService):
    """`gcloud beta emulators pubsub start` on 127.0.0.1:PORT. `host` is for PUBSUB_EMULATOR_HOST."""

    name = "pubsub-emulator"

    def __init__(self, project: str, run_dir=None, port: int | None = None,
                 timeout_s: float = 90) -> None:
        super().__init__(run_dir)
        self.project = project
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.timeout_s = timeout_s

    def start(self) -> "PubSubEmulator":
        gcloud = shutil.which("gcloud")
        if not gcloud:
            raise ServiceError("gcloud not found on PATH (needed for the Pub/Sub emulator)")
        data_dir = self.run_dir / "pubsub-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CLOUDSDK_CORE_DISABLE_PROMPTS="1")
        env.pop("PUBSUB_EMULATOR_HOST", None)
        self._spawn([gcloud, "beta", "emulators", "pubsub", "start", f"--host-port={self.host}",
                     f"--project={self.project}", f"--data-dir={data_dir}", "--quiet"], env=env)
        wait_until(lambda: requests.get(f"http://{self.host}/", timeout=1).ok, self.timeout_s,
                   "Pub/Sub emulator", self.proc, self.log_path, interval_s=0.2)
        return self

    # --- admin through google-cloud-pubsub over an insecure channel to the emulator
    def _transport(self, kind: str):
        import grpc

        channel = grpc.insecure_channel(self.host)
        if kind == "publisher":
            from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
            return PublisherGrpcTransport(channel=channel)
        from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport
        return SubscriberGrpcTransport(channel=channel)

    def create_topic(self, topic: str) -> str:
        from google.api_core.exceptions import AlreadyExists
        from google.pubsub_v1 import PublisherClient

        client = PublisherClient(transport=self._transport("publisher"))
        path = f"projects/{self.project}/topics/{topic}"
        try:
            client.create_topic(name=path)
        except AlreadyExists:
            pass
        return path

    def create_push_subscription(self, name: str, topic: str, endpoint: str | None,
                                 ack_deadline_s: int = 60, dead_letter_topic: str | None = None,
                                 max_delivery_attempts: int = 5,
                                 backoff_s: tuple[float, float] | None = None) -> str:
        """A push subscription (endpoint None: a pull one). dead_letter_topic: forward a message after
        max_delivery_attempts (5..100) failed pushes; backoff_s: (minimum, maximum) retry backoff.
        The emulator applies both (checked with gcloud SDK 528: attempts ~1-3 s apart, then the
        message on the dead-letter topic with CloudPubSubDeadLetterSource* attributes)."""
        from google.api_core.exceptions import AlreadyExists
        from google.protobuf import duration_pb2
        from google.pubsub_v1 import DeadLetterPolicy, PushConfig, RetryPolicy, Subscription, SubscriberClient

        def duration(seconds: float):
            return duration_pb2.Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9))

        client = SubscriberClient(transport=self._transport("subscriber"))
        path = f"projects/{self.project}/subscriptions/{name}"
        extra = {}
        if dead_letter_topic:
            extra["dead_letter_policy"] = DeadLetterPolicy(
                dead_letter_topic=f"projects/{self.project}/topics/{dead_letter_topic}",
                max_delivery_attempts=max_delivery_attempts)
        if backoff_s:
            extra["retry_policy"] = RetryPolicy(minimum_backoff=duration(backoff_s[0]),
                                                maximum_backoff=duration(backoff_s[1]))
        try:
            client.create_subscription(request=Subscription(
                name=path, topic=f"projects/{self.project}/topics/{topic}",
                push_config=PushConfig(push_endpoint=endpoint) if endpoint else None,
                ack_deadline_seconds=ack_deadline_s, **extra))
        except AlreadyExists:
            pass
        return path

    def pull(self, subscription: str, max_messages: int = 100) -> list:
        """Pull (and acknowledge) up to max_messages of a pull subscription: [ReceivedMessage]."""
        from google.pubsub_v1 import SubscriberClient

        client = SubscriberClient(transport=self._transport("subscriber"))
        path = f"projects/{self.project}/subscriptions/{subscription}"
        got = list(client.pull(request={"subscription": path, "max_messages": max_messages},
                               timeout=10).received_messages)
        if got:
            client.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in got]})
        return got

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        """Publish one message; returns its id."""
        from google.pubsub_v1 import PublisherClient, PubsubMessage

        client = PublisherClient(transport=self._transport("publisher"))
        resp = client.publish(topic=f"projects/{self.project}/topics/{topic}",
                              messages=[PubsubMessage(data=data, attributes=attributes)])
        return resp.message_ids[0]
