"""Decoding of the CloudEvents the event functions receive. Pure: no I/O.

- Pub/Sub: type google.cloud.pubsub.topic.v1.messagePublished, data {"message": {"data": base64,
  "attributes", "messageId"}, "subscription"} (https://cloud.google.com/eventarc/docs/cloudevents).
- Cloud Storage: type google.cloud.storage.object.v1.finalized, data = the object resource
  {bucket, name, generation, size, contentType, metadata}; or the same finalize carried by a Cloud
  Storage Pub/Sub notification (attributes eventType=OBJECT_FINALIZE, bucketId, objectId,
  objectGeneration; data = the object resource as JSON), which is how fake-gcs-server and bucket
  notifications deliver it (https://cloud.google.com/storage/docs/pubsub-notifications).
Errors: InvalidRequest naming what is missing or malformed (a size that is NaN, "inf" or not a
whole number included); the entry point logs it and acknowledges.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from shared.errors import InvalidRequest

PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
FINALIZED_TYPE = "google.cloud.storage.object.v1.finalized"


@dataclass(frozen=True)
class Finalized:
    """A finalized object: bucket, name, generation, size in bytes, custom metadata."""

    bucket: str
    name: str
    generation: str
    size: int | None
    metadata: dict[str, str]


def _message(data: Any) -> dict:
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise InvalidRequest("Pub/Sub event has no message")
    message = dict(data["message"])
    if not isinstance(message.get("attributes") or {}, dict):
        raise InvalidRequest("Pub/Sub message attributes are not an object")
    return message


def _payload(message: dict) -> Any:
    raw = message.get("data")
    if not raw:
        return None
    if not isinstance(raw, str):
        raise InvalidRequest("Pub/Sub message data is not base64-encoded JSON")
    try:
        return json.loads(base64.b64decode(raw, validate=True).decode("utf-8"), parse_constant=_refuse_constant)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRequest("Pub/Sub message data is not base64-encoded JSON") from None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")


def _size(value: Any) -> int | None:
    """The object size in bytes: an integer or its decimal text (GCS sends "size": "123"); None when
    absent. NaN, Infinity, "inf", fractions, negatives and booleans are refused."""
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    raise InvalidRequest(f"finalize event has a malformed size: {str(value)[:40]!r} is not a byte count")


def decode_job_message(data: Any) -> str:
    """The jobId of a dispatch message ({"jobId": ...} in data, or the jobId attribute)."""
    message = _message(data)
    payload = _payload(message)
    job_id = payload.get("jobId") if isinstance(payload, dict) else None
    job_id = job_id or (message.get("attributes") or {}).get("jobId")
    if not isinstance(job_id, str) or not job_id:
        raise InvalidRequest("Pub/Sub message carries no jobId")
    return job_id


@dataclass(frozen=True)
class JobEvent:
    """A job event on the events topic (shared.webhooks): its id, job, type, and body bytes as published."""

    event_id: str
    job_id: str
    type: str
    body: bytes


def decode_event_message(data: Any) -> JobEvent:
    """The JobEvent of an events-topic message: attributes eventId, jobId, type; data = the body."""
    message = _message(data)
    attrs = message.get("attributes") or {}
    values = [attrs.get(k) for k in ("eventId", "jobId", "type")]
    if not all(isinstance(v, str) and 0 < len(v) <= 100 for v in values):
        raise InvalidRequest("event message lacks eventId, jobId or type")
    raw = message.get("data")
    try:
        body = base64.b64decode(raw, validate=True) if isinstance(raw, str) and raw else b""
    except binascii.Error:
        raise InvalidRequest("event message data is not base64") from None
    if not body:
        raise InvalidRequest("event message has no body")
    return JobEvent(values[0], values[1], values[2], body)


def decode_finalized(event_type: str | None, data: Any) -> Finalized | None:
    """A Finalized from either event shape, or None for another event kind (e.g. a delete)."""
    if event_type == PUBSUB_TYPE:
        message = _message(data)
        attrs = message.get("attributes") or {}
        if attrs.get("eventType") not in (None, "OBJECT_FINALIZE"):
            return None
        obj = _payload(message) or {}
        if not isinstance(obj, dict):
            raise InvalidRequest("storage notification data is not an object resource")
        obj = {"bucket": attrs.get("bucketId", obj.get("bucket")), "name": attrs.get("objectId", obj.get("name")),
               "generation": attrs.get("objectGeneration", obj.get("generation")),
               "size": obj.get("size"), "metadata": obj.get("metadata")}
    elif event_type == FINALIZED_TYPE:
        obj = data if isinstance(data, dict) else None
        if obj is None:
            raise InvalidRequest("finalize event has no object resource")
    else:
        return None
    bucket, name = obj.get("bucket"), obj.get("name")
    if not isinstance(bucket, str) or not bucket or not isinstance(name, str) or not name:
        raise InvalidRequest("finalize event lacks bucket or name")
    if len(bucket) > 222 or len(name) > 1024:
        raise InvalidRequest("finalize event has an over-long bucket or object name")
    size = _size(obj.get("size"))
    generation = obj.get("generation") or ""
    if not isinstance(generation, (str, int)) or isinstance(generation, bool):
        raise InvalidRequest("finalize event has a malformed generation")
    generation = str(generation)
    if generation and not (generation.isascii() and generation.isdigit()) or len(generation) > 20:
        raise InvalidRequest("finalize event has a malformed generation")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    # custom metadata is string -> string; a list or object value is not ours (and str() of one
    # nested deeply enough raises RecursionError), so it is left out
    return Finalized(bucket=bucket, name=name, generation=generation, size=size,
                     metadata={str(k)[:128]: str(v)[:8192] for k, v in list(meta.items())[:64]
                               if isinstance(v, (str, int, float))})
