"""Signed webhooks through the real functions (functions-framework test clients, SQLite) to a real
local HTTPS receiver (tests/webhook_receiver.py): signatures checked with the independent
`standardwebhooks` package, redelivery until a 2xx with every attempt in status, SSRF refused at
start (400 naming webhookUrl) and at delivery (a name that now resolves to a forbidden address, a
redirect), the outbox republished by reconcile. Pub/Sub's own redelivery and dead-lettering are in
tests/system/test_webhooks_pubsub.py; here the test plays Pub/Sub: it posts each published message
to deliver_webhook again while the function answers non-2xx (what a push subscription does)."""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import standardwebhooks

from shared import bootstrap
from shared.adapters.local_pubsub import message_body
from shared.clock import utcnow
from shared.adapters.webhook_http import CONNECT_FAILED
from shared.errors import TransientError
from tests.integration.functions_env import make_functions_env
from tests.webhook_receiver import HttpsReceiver

SPEC = {"scenes": [{"id": "s1", "visual": {"type": "color", "color": "#102030"}, "duration": 1}]}
UPLOAD_SPEC = {**SPEC, "scenes": [{"id": "s1", "visual": {"type": "image", "src": "a.png"}, "duration": 1}]}


class RecordingEvents:
    """EventPublisher in memory: `messages` [(data, attributes)]; fail_next injects TransientErrors."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, dict]] = []
        self.fail_next = 0

    def publish_event(self, data: bytes, attributes: dict[str, str]) -> str:
        if self.fail_next:
            self.fail_next -= 1
            raise TransientError("publish failed (injected)")
        self.messages.append((data, dict(attributes)))
        return str(len(self.messages))


class Resolver:
    """The resolver port: names -> addresses the test sets; anything else does not resolve."""

    def __init__(self, names: dict[str, list[str]] | None = None) -> None:
        self.names = dict(names or {})

    def __call__(self, host: str, port: int) -> list[str]:
        if host not in self.names:
            raise OSError(f"{host} does not resolve")
        return self.names[host]


@pytest.fixture
def rx(tmp_path):
    with HttpsReceiver(tmp_path / "rx", script=[200]) as receiver:
        yield receiver


@pytest.fixture
def env(tmp_path, rx):
    events = RecordingEvents()
    e = make_functions_env(tmp_path, events=events, webhook_ca_file=str(rx.ca_file), webhook_timeout_s=2.0,
                           webhook_allow_private_hosts=f"localhost:{rx.port},127.0.0.1:{rx.port}")
    e.events = events
    e.service.resolver = Resolver({"localhost": ["127.0.0.1"], "hooks.example.com": ["93.184.215.14"]})
    yield e
    bootstrap.use_service(None)


def start(env, webhook_url, spec=SPEC, uploads=None):
    body = {"spec": spec, "webhookUrl": webhook_url} | ({"uploads": uploads} if uploads else {})
    return env.c["export_start"].post("/", json=body)


def deliver(env, message):
    """POST one published event to deliver_webhook as a Pub/Sub push subscription does; its status."""
    data, attributes = message
    return env.c["deliver_webhook"].post("/projects/p/topics/export-events",
                                         json=message_body(data, attributes, "p", "export-events-deliver")).status_code


def secret(env) -> str:
    r = env.c["export_webhook_secret"].get("/")
    assert r.status_code == 200 and r.get_json()["owner"] == "default"
    return r.get_json()["secret"]


def status(env, job_id) -> dict:
    return env.c["export_status"].get(f"/?jobId={job_id}").get_json()


def test_a_receiver_failing_three_times_gets_the_event_once_acknowledged_with_every_attempt_recorded(env, rx):
    rx.script = [500, 500, 500, 200]
    r = start(env, rx.url())
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["jobId"]
    [message] = env.events.messages  # queued, published after the start's commit
    assert message[1] == {"eventId": message[1]["eventId"], "jobId": job_id, "type": "export.queued"}
    answers = []
    while not answers or answers[-1] >= 300:  # Pub/Sub redelivers until the function acknowledges
        answers.append(deliver(env, message))
        assert len(answers) <= 4
    assert answers[:3] == [500, 500, 500] and answers[3] in (200, 204)
    assert [q.answered for q in rx.requests] == [500, 500, 500, 200]  # acknowledged once
    key = secret(env)
    assert key.startswith("whsec_")
    bodies = [standardwebhooks.Webhook(key).verify(q.body, q.headers) for q in rx.requests]
    assert {q.headers["webhook-id"] for q in rx.requests} == {message[1]["eventId"]}  # a receiver dedupes on it
    assert all(q.body == message[0] and q.path == "/hook" for q in rx.requests)
    assert bodies[0]["type"] == "export.queued" and bodies[0]["data"]["jobId"] == job_id
    assert bodies[0]["data"]["status"] == "queued" and bodies[0]["data"]["owner"] == "default"
    hook = status(env, job_id)["webhook"]
    assert hook["url"] == rx.url()
    assert [(d["attempt"], d["httpStatus"], d["error"], d["type"]) for d in hook["deliveries"]] == [
        (1, 500, None, "export.queued"), (2, 500, None, "export.queued"), (3, 500, None, "export.queued"),
        (4, 200, None, "export.queued")]
    assert all(d["eventId"] == message[1]["eventId"] and d["durationMs"] >= 0 for d in hook["deliveries"])


def test_a_tampered_body_or_another_secret_fails_verification_and_old_timestamps_are_replays(env, rx):
    job_id = start(env, rx.url()).get_json()["jobId"]
    assert deliver(env, env.events.messages[0]) in (200, 204)
    [q] = rx.requests
    key = secret(env)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(key).verify(q.body.replace(job_id.encode(), b"0" * 36), q.headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook("whsec_" + "A" * 43 + "=").verify(q.body, q.headers)
    replayed = {**q.headers, "webhook-timestamp": str(int(q.headers["webhook-timestamp"]) - 600)}
    with pytest.raises(standardwebhooks.WebhookVerificationError, match="too old"):
        standardwebhooks.Webhook(key).verify(q.body, replayed)
    assert abs(int(q.headers["webhook-timestamp"]) - time.time()) < 60


def test_cancel_publishes_a_canceled_event_and_awaiting_upload_none(env, rx):
    r = start(env, rx.url(), spec=UPLOAD_SPEC, uploads=[{"name": "a.png", "contentType": "image/png"}])
    job_id = r.get_json()["jobId"]
    assert env.events.messages == []  # awaiting_upload is the start's own answer
    assert env.c["export_cancel"].post("/", json={"jobId": job_id}).status_code == 200
    [message] = env.events.messages
    assert deliver(env, message) in (200, 204)
    body = json.loads(rx.requests[0].body)
    assert body["type"] == "export.canceled"
    assert body["data"]["error"] == {"code": "canceled", "message": "canceled by the client"}


def test_a_job_without_a_webhook_publishes_nothing_and_shows_no_webhook(env):
    r = env.c["export_start"].post("/", json={"spec": SPEC})
    assert r.status_code == 202 and env.events.messages == []
    assert "webhook" not in status(env, r.get_json()["jobId"])


def test_a_lost_publish_stays_in_the_outbox_and_reconcile_publishes_it_with_the_same_id(env, rx):
    env.events.fail_next = 1
    job_id = start(env, rx.url()).get_json()["jobId"]
    assert env.events.messages == []  # the start succeeded; its event waits in the outbox
    assert "eventsRepublished" not in env.service.reconcile()  # under a minute old: maybe still in flight
    counts = env.service.reconcile(now=utcnow() + timedelta(minutes=2))
    assert counts["eventsRepublished"] == 1
    [message] = env.events.messages
    assert message[1]["jobId"] == job_id and message[1]["type"] == "export.queued"
    assert "eventsRepublished" not in env.service.reconcile(now=utcnow() + timedelta(minutes=2))  # published once


@pytest.mark.parametrize("url,why", [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://localhost:1/hook", "loopback"),  # a loopback port that is not the allowed receiver's
    ("https://[::1]/hook", "loopback"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback (inside an IPv6 address)"),
    ("https://10.1.2.3/hook", "private"),
    ("https://192.168.0.10/hook", "private"),
    ("https://[fc00::1]/hook", "private"),
    ("https://169.254.169.254/computeMetadata/v1/", "link-local"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://100.64.0.1/hook", "shared (CGNAT)"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://224.0.0.1/hook", "multicast"),
    ("https://metadata.google.internal/computeMetadata/v1/", "metadata server"),
    ("https://user:pw@hooks.example.com/hook", "user name or password"),
    ("http://hooks.example.com/hook", "must use https"),
    ("https://nowhere.invalid/hook", "does not resolve"),
    ("ftp://hooks.example.com/", "must use https"),
])
def test_ssrf_is_refused_at_start_naming_webhook_url(env, url, why):
    r = start(env, url)
    assert r.status_code == 400, r.get_json()
    [detail] = r.get_json()["error"]["details"]
    assert detail["path"] == "webhookUrl" and why in detail["message"]
    assert env.events.messages == []


def test_a_name_resolving_to_a_private_address_is_refused_at_start(env):
    env.service.resolver.names["intranet.example.com"] = ["93.184.215.14", "10.0.0.7"]  # one bad is enough
    r = start(env, "https://intranet.example.com/hook")
    assert r.status_code == 400
    assert r.get_json()["error"]["details"][0]["message"] == "host intranet.example.com (10.0.0.7) is a private address"


def test_a_name_that_now_resolves_to_the_metadata_address_is_refused_at_delivery(env, rx):
    r = start(env, "https://hooks.example.com/hook")  # public at start
    assert r.status_code == 202
    env.service.resolver.names["hooks.example.com"] = ["169.254.169.254"]  # a DNS rebind since
    assert deliver(env, env.events.messages[0]) in (200, 204)  # acknowledged: retrying cannot make it allowed
    [attempt] = status(env, r.get_json()["jobId"])["webhook"]["deliveries"]
    assert attempt["httpStatus"] is None
    assert attempt["error"] == "refused: host hooks.example.com (169.254.169.254) is a link-local address"
    assert rx.requests == []


@pytest.mark.parametrize("location", ["https://169.254.169.254/computeMetadata/v1/", "https://127.0.0.1:9/"])
def test_a_redirect_is_a_failed_attempt_and_never_followed(env, rx, location):
    rx.script = [("redirect", location)]
    job_id = start(env, rx.url()).get_json()["jobId"]
    assert deliver(env, env.events.messages[0]) == 500  # not acknowledged: Pub/Sub retries, then dead-letters
    assert len(rx.requests) == 1
    [attempt] = status(env, job_id)["webhook"]["deliveries"]
    assert (attempt["httpStatus"], attempt["error"]) == (302, "redirect not followed")


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(env, rx):
    rx.script = [("sleep", 3.0, 200)]  # EXPORT_WEBHOOK_TIMEOUT_S = 2
    job_id = start(env, rx.url()).get_json()["jobId"]
    assert deliver(env, env.events.messages[0]) == 500
    [attempt] = status(env, job_id)["webhook"]["deliveries"]
    assert attempt["httpStatus"] is None and attempt["error"].startswith("TimeoutError")
    assert 1900 <= attempt["durationMs"] < 3000


def test_a_certificate_the_delivery_does_not_trust_is_a_failed_attempt(env, rx, tmp_path):
    from tests.webhook_receiver import make_certificates

    other_ca = make_certificates(tmp_path / "other")[0]
    env.service.sender.ca_file = str(other_ca)
    job_id = start(env, rx.url()).get_json()["jobId"]
    assert deliver(env, env.events.messages[0]) == 500
    [attempt] = status(env, job_id)["webhook"]["deliveries"]
    assert (attempt["httpStatus"], attempt["error"]) == (None, f"ConnectionError: {CONNECT_FAILED}")


def test_another_owner_never_gets_or_can_verify_a_jobs_events(env, rx):
    """Owner B (here named by X-SceneFlow-Owner, as a server key acting for B does) cannot see A's
    deliveries, and B's secret verifies none of A's calls; B's own job's calls are signed with B's."""
    a, b = {"X-SceneFlow-Owner": "author-a"}, {"X-SceneFlow-Owner": "author-b"}
    job_a = env.c["export_start"].post("/", json={"spec": SPEC, "webhookUrl": rx.url()}, headers=a).get_json()["jobId"]
    job_b = env.c["export_start"].post("/", json={"spec": SPEC, "webhookUrl": rx.url()}, headers=b).get_json()["jobId"]
    for message in env.events.messages:
        assert deliver(env, message) in (200, 204)
    key_a, key_b = (env.c["export_webhook_secret"].get("/", headers=h).get_json() for h in (a, b))
    assert (key_a["owner"], key_b["owner"]) == ("author-a", "author-b") and key_a["secret"] != key_b["secret"]
    by_job = {json.loads(q.body)["data"]["jobId"]: q for q in rx.requests}
    assert set(by_job) == {job_a, job_b}
    for job, own, other in ((job_a, key_a, key_b), (job_b, key_b, key_a)):
        q = by_job[job]
        assert standardwebhooks.Webhook(own["secret"]).verify(q.body, q.headers)["data"]["owner"] == own["owner"]
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            standardwebhooks.Webhook(other["secret"]).verify(q.body, q.headers)
    assert env.c["export_status"].get(f"/?jobId={job_a}", headers=b).status_code == 404  # no deliveries shown
    assert env.c["export_status"].get(f"/?jobId={job_a}", headers=a).get_json()["webhook"]["deliveries"]
    listed = env.c["export_list"].get("/", headers=b).get_json()["exports"]
    assert [e["jobId"] for e in listed] == [job_b]
