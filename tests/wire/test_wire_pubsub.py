"""PubSubPublisher with the real google-cloud-pubsub client against the real Pub/Sub emulator: the
message a subscriber pulls is what dispatch_export decodes."""
from __future__ import annotations

import base64
import json
import uuid

import grpc
import pytest
from google.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from shared.adapters.google_pubsub import PubSubPublisher
from shared.errors import TransientError
from shared.events import decode_job_message

PROJECT = "wire-proj"


@pytest.fixture
def topic(pubsub_host, monkeypatch):
    """A fresh topic with a pull subscription on the emulator: (topic id, subscription path)."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_host)
    name = f"wire-{uuid.uuid4().hex[:8]}"
    pub = PublisherClient(transport=PublisherGrpcTransport(channel=grpc.insecure_channel(pubsub_host)))
    sub = SubscriberClient(transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(pubsub_host)))
    pub.create_topic(name=f"projects/{PROJECT}/topics/{name}")
    path = f"projects/{PROJECT}/subscriptions/{name}-pull"
    sub.create_subscription(name=path, topic=f"projects/{PROJECT}/topics/{name}", ack_deadline_seconds=10)
    yield name, sub, path


def test_publish_reaches_a_subscriber_as_dispatch_expects(topic):
    name, sub, path = topic
    job_id = str(uuid.uuid4())
    message_id = PubSubPublisher(PROJECT, name, timeout_s=10).publish(job_id)
    assert message_id

    resp = sub.pull(subscription=path, max_messages=10, timeout=10)
    (received,) = resp.received_messages
    msg = received.message
    assert msg.message_id == message_id
    assert json.loads(msg.data) == {"jobId": job_id}
    assert dict(msg.attributes) == {"jobId": job_id}
    # the push envelope Pub/Sub sends to dispatch_export carries the same message
    envelope = {"message": {"data": base64.b64encode(msg.data).decode(),
                            "attributes": dict(msg.attributes), "messageId": msg.message_id}}
    assert decode_job_message(envelope) == job_id
    sub.acknowledge(subscription=path, ack_ids=[received.ack_id])


def test_publish_to_a_missing_topic_is_a_transient_error(pubsub_host, monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_host)
    with pytest.raises(TransientError):
        PubSubPublisher(PROJECT, f"missing-{uuid.uuid4().hex[:6]}", timeout_s=5).publish(str(uuid.uuid4()))
