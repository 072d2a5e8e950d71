"""CloudEvent decoding for dispatch_export and on_object_finalized."""
import base64
import json

import pytest

from shared.errors import InvalidRequest
from shared.events import FINALIZED_TYPE, PUBSUB_TYPE, decode_finalized, decode_job_message


def pubsub(payload, attributes=None):
    data = base64.b64encode(json.dumps(payload).encode()).decode() if payload is not None else None
    return {"message": {"data": data, "attributes": attributes or {}, "messageId": "1"}, "subscription": "s"}


def test_job_message():
    assert decode_job_message(pubsub({"jobId": "abc"})) == "abc"
    assert decode_job_message(pubsub(None, {"jobId": "xyz"})) == "xyz"


@pytest.mark.parametrize("data", [{}, {"message": "nope"}, pubsub({"other": 1}),
                                  {"message": {"data": "!!notbase64!!"}}])
def test_job_message_bad(data):
    with pytest.raises(InvalidRequest):
        decode_job_message(data)


def test_finalized_cloud_event():
    f = decode_finalized(FINALIZED_TYPE, {"bucket": "b", "name": "jobs/x/assets/a.png", "generation": "17",
                                          "size": "42", "metadata": {"k": 1}})
    assert (f.bucket, f.name, f.generation, f.size, f.metadata) == ("b", "jobs/x/assets/a.png", "17", 42, {"k": "1"})


def test_finalized_pubsub_notification():
    data = pubsub({"bucket": "b", "name": "o", "size": "5"},
                  {"eventType": "OBJECT_FINALIZE", "bucketId": "b", "objectId": "o", "objectGeneration": "9"})
    f = decode_finalized(PUBSUB_TYPE, data)
    assert (f.bucket, f.name, f.generation, f.size) == ("b", "o", "9", 5)
    data["message"]["attributes"]["eventType"] = "OBJECT_DELETE"
    assert decode_finalized(PUBSUB_TYPE, data) is None


def test_finalized_bad():
    with pytest.raises(InvalidRequest):
        decode_finalized(FINALIZED_TYPE, {"bucket": "b"})
    assert decode_finalized("google.cloud.storage.object.v1.deleted", {}) is None
