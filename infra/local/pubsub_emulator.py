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

    def create_push_subscription(self, name: str, topic: str, endpoint: str,
                                 ack_deadline_s: int = 60) -> str:
        from google.api_core.exceptions import AlreadyExists
        from google.pubsub_v1 import PushConfig, Subscription, SubscriberClient

        client = SubscriberClient(transport=self._transport("subscriber"))
        path = f"projects/{self.project}/subscriptions/{name}"
        try:
            client.create_subscription(request=Subscription(
                name=path, topic=f"projects/{self.project}/topics/{topic}",
                push_config=PushConfig(push_endpoint=endpoint),
                ack_deadline_seconds=ack_deadline_s))
        except AlreadyExists:
            pass
        return path

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        """Publish one message; returns its id."""
        from google.pubsub_v1 import PublisherClient, PubsubMessage

        client = PublisherClient(transport=self._transport("publisher"))
        resp = client.publish(topic=f"projects/{self.project}/topics/{topic}",
                              messages=[PubsubMessage(data=data, attributes=attributes)])
        return resp.message_ids[0]
