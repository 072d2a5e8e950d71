"""Webhooks through the emulated cloud: the functions publish job events to the Pub/Sub emulator's
events topic; its push subscription (retry policy 1-2 s, dead-letter policy after 5 attempts, both
applied by the emulator) feeds deliver_webhook, which POSTs to real local HTTPS receivers.

- a receiver answering 500 three times then 200: the event acknowledged once, 4 attempts in order in
  status, every call verified by the independent `standardwebhooks` package, one webhook-id;
- a dead receiver (503 always): 5 attempts, then the event on the dead-letter topic (pulled from the
  emulator's hold subscription), with Pub/Sub's delivery count.
"""
from __future__ import annotations

import json
import time

import pytest
import requests
import standardwebhooks

from tests.webhook_receiver import HttpsReceiver

UPLOAD_SPEC = {"scenes": [{"id": "s1", "visual": {"type": "image", "src": "a.png"}, "duration": 1}]}


@pytest.fixture(scope="module")
def receivers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("webhook-receivers")
    with HttpsReceiver(folder / "flaky", script=[500, 500, 500, 200]) as flaky, \
            HttpsReceiver(folder / "dead", script=[503]) as dead:
        yield flaky, dead


@pytest.fixture(scope="module")
def stack(receivers, pg_url, run_dir):
    from infra.local.process import ServiceError
    from infra.local.stack import EmulatedStack

    ok, reason = EmulatedStack.available()
    if not ok:
        pytest.skip(reason)
    flaky, dead = receivers
    with open(dead.ca_file, "ab") as bundle:  # one CA file trusting both receivers' CAs
        bundle.write(flaky.ca_file.read_bytes())
    s = EmulatedStack(run_dir=run_dir / "webhooks", database_url=pg_url, push=True, extra_env={
        "EXPORT_WEBHOOK_CA_FILE": str(dead.ca_file),
        "EXPORT_WEBHOOK_ALLOW_PRIVATE_HOSTS": f"localhost:{flaky.port},localhost:{dead.port}"})
    try:
        s.start()
    except ServiceError as exc:
        s.stop()
        pytest.skip(f"could not start the emulated stack: {exc}")
    yield s
    s.stop()


def start_and_cancel(stack, url: str) -> str:
    """A job that waits for an upload (no event), canceled: its one event is export.canceled."""
    r = requests.post(stack.url("export_start"), json={
        "spec": UPLOAD_SPEC, "uploads": [{"name": "a.png", "contentType": "image/png"}], "webhookUrl": url},
        timeout=30)
    assert r.status_code == 202, r.text
    job_id = r.json()["jobId"]
    assert requests.post(stack.url("export_cancel"), json={"jobId": job_id}, timeout=30).status_code == 200
    return job_id


def deliveries(stack, job_id: str) -> list[dict]:
    return requests.get(stack.url("export_status"), params={"jobId": job_id}, timeout=30).json()["webhook"]["deliveries"]


def test_retries_until_acknowledged_and_dead_letters_a_dead_receiver(stack, receivers):
    flaky, dead = receivers
    flaky_job = start_and_cancel(stack, flaky.url("/flaky"))
    got = flaky.wait_for(4, timeout_s=240)  # backoff plus a loaded 2-core machine: seen past 90 s once
    # one failing message at a time: the emulator once stopped pushing a message whose failures came
    # interleaved with another's (4 attempts, then silence), which Pub/Sub documents as possible
    # (dead lettering is best effort) but a test cannot wait out
    dead_job = start_and_cancel(stack, dead.url("/dead"))

    secret = requests.get(stack.url("export_webhook_secret"), timeout=30).json()["secret"]
    bodies = [standardwebhooks.Webhook(secret).verify(q.body, q.headers) for q in got]
    assert len({q.headers["webhook-id"] for q in got}) == 1  # one event, redelivered
    assert [b["type"] for b in bodies] == ["export.canceled"] * 4
    assert bodies[0]["data"]["jobId"] == flaky_job
    assert [q.answered for q in got[:4]] == [500, 500, 500, 200]

    deadline, letters = time.monotonic() + 240, []
    while not letters and time.monotonic() < deadline:
        letters = [m for m in stack.dead_letters() if m.message.attributes.get("jobId") == dead_job]
        time.sleep(1)
    assert letters, ("the dead receiver's event never reached the dead-letter topic: "
                     f"{len(dead.requests)} calls, deliveries {deliveries(stack, dead_job)}")
    attrs = letters[0].message.attributes
    assert attrs["type"] == "export.canceled" and attrs["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert json.loads(letters[0].message.data)["data"]["jobId"] == dead_job
    assert [q.answered for q in dead.requests] == [503] * 5
    assert [(d["attempt"], d["httpStatus"]) for d in deliveries(stack, dead_job)] == [(n, 503) for n in range(1, 6)]

    time.sleep(3)  # acknowledged: no fifth call to the flaky receiver
    assert len(flaky.requests) == 4
    assert [(d["attempt"], d["httpStatus"]) for d in deliveries(stack, flaky_job)] == [
        (1, 500), (2, 500), (3, 500), (4, 200)]
