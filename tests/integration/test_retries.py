"""The three delivery retries, pinned: which answers are retried, how many times, after which
delays, what is logged and what is returned or raised. The render job's Reporter (an injected
session and sleep), the embedded mode's HttpPushPublisher and the local Eventarc's FinalizePoller
(each against a loopback server that answers a script of status codes)."""
from __future__ import annotations

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from infra.local.eventarc import FinalizePoller
from render_job.reporter import BACKOFF_S, RETRIES, Reporter
from shared.adapters.local_pubsub import HttpPushPublisher, message_body, push_body


class _Script:
    """A loopback HTTP server answering POSTs with `codes` in turn (then the last one forever);
    `times` holds the monotonic time of each request."""

    def __init__(self, codes: list[int]) -> None:
        self.codes, self.times, self.bodies = list(codes), [], []
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                script.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                script.times.append(time.monotonic())
                code = script.codes.pop(0) if len(script.codes) > 1 else script.codes[0]
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:])]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def script():
    servers = []

    def make(codes):
        servers.append(_Script(codes))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def _logs(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


# -- the render job's reports (render_job/reporter.py) ----------------------------------------------------


class _Session:
    def __init__(self, answers):
        self.answers, self.calls = list(answers), 0

    def post(self, url, json=None, headers=None, timeout=None):
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer

        class Resp:
            status_code = answer
        return Resp()


def test_reporter_gives_up_after_3_retries_with_the_backoff_and_logs_the_last_problem(capsys):
    slept = []
    s = _Session([requests.ConnectionError("down"), 503])
    r = Reporter("http://api/export_complete", "SECRET", "job1", session=s, sleep=slept.append)
    assert r.failed("render_failed", "bad media") is False and not r.rejected
    assert s.calls == RETRIES + 1 == 4 and slept == list(BACKOFF_S) == [0.5, 1.0, 2.0]
    (entry,) = [e for e in _logs(capsys) if e["severity"] == "ERROR"]
    assert entry["message"] == "could not report to export_complete"
    assert entry["problem"] == "HTTP 503" and entry["reportStatus"] == "failed"
    slept.clear()
    s2 = _Session([503, requests.Timeout("slow")])
    assert Reporter("http://api/x", "T", "job1", session=s2, sleep=slept.append).running("rendering", 0.5) is False
    assert s2.calls == 4 and slept == [0.5, 1.0, 2.0]
    assert [e["problem"] for e in _logs(capsys) if e["severity"] == "ERROR"] == ["Timeout"]


def test_reporter_stops_at_the_first_4xx_or_2xx_and_lets_other_errors_through(capsys):
    slept = []
    s = _Session([502, 409])
    r = Reporter("http://api/x", "T", "job1", session=s, sleep=slept.append)
    assert r.succeeded({"uri": "gs://o/x.mp4"}) is False and r.rejected
    assert s.calls == 2 and slept == [0.5]
    (entry,) = _logs(capsys)
    assert entry["message"] == "export_complete rejected the report" and entry["status_code"] == 409
    s2 = _Session([500, 500, 204])
    assert Reporter("http://api/x", "T", "job1", session=s2, sleep=slept.append).failed("c", "m") is True
    assert s2.calls == 3 and slept == [0.5, 0.5, 1.0]
    s3 = _Session([ValueError("not a network error")])
    with pytest.raises(ValueError):
        Reporter("http://api/x", "T", "job1", session=s3, sleep=slept.append).failed("c", "m")
    assert s3.calls == 1


# -- the embedded mode's Pub/Sub push (shared/adapters/local_pubsub.py) -----------------------------------


def test_push_retries_non_2xx_with_doubling_delays_and_logs_each_attempt(script, capsys):
    server = script([503, 500, 204])
    HttpPushPublisher(server.url, "demo")._deliver(push_body("job1", "demo"), "job1")
    assert len(server.times) == 3
    g1, g2 = server.gaps()
    assert 0.2 <= g1 < 0.2 + 1.0 and 0.4 <= g2 < 0.4 + 1.0
    entries = _logs(capsys)
    assert [(e["message"], e["httpStatus"], e["attempt"]) for e in entries] == [
        ("push delivery refused; retrying", 503, 1), ("push delivery refused; retrying", 500, 2)]
    assert all(e["severity"] == "WARNING" for e in entries)


def test_push_gives_up_after_max_attempts(script, capsys):
    server = script([503])
    HttpPushPublisher(server.url, "demo", max_attempts=2)._deliver(push_body("job1", "demo"), "job1")
    assert len(server.times) == 2
    entries = _logs(capsys)
    assert [(e["message"], e.get("attempt")) for e in entries] == [
        ("push delivery refused; retrying", 1), ("push delivery refused; retrying", 2), ("push delivery gave up", None)]
    assert entries[-1]["severity"] == "ERROR"


def test_push_retries_connection_errors(capsys):
    HttpPushPublisher(_closed_port_url(), "demo", max_attempts=2)._deliver(push_body("job1", "demo"), "job1")
    entries = _logs(capsys)
    assert [(e["message"], e.get("reason"), e.get("attempt")) for e in entries] == [
        ("push delivery failed; retrying", "ConnectionError", 1), ("push delivery failed; retrying", "ConnectionError", 2),
        ("push delivery gave up", None, None)]


# -- the local Eventarc's finalize deliveries (infra/local/eventarc.py) -----------------------------------


OBJ = {"bucket": "in-bkt", "name": "a.png", "generation": "7"}
KEY = ("in-bkt", "a.png", "7")


def test_eventarc_retries_non_2xx_with_doubling_delays_until_delivered(script, tmp_path):
    server = script([503, 500, 204])
    poller = FinalizePoller("http://storage.invalid", [], server.url, log_path=tmp_path / "e.log")
    poller._deliver(OBJ, KEY)
    assert len(server.times) == 3 and poller.delivered == [KEY]
    g1, g2 = server.gaps()
    assert 0.25 <= g1 < 0.25 + 1.0 and 0.5 <= g2 < 0.5 + 1.0
    lines = [line.split(" ", 1)[1] for line in (tmp_path / "e.log").read_text().splitlines()]
    assert lines == ["gs://in-bkt/a.png#7 -> 503 'no'; retrying", "gs://in-bkt/a.png#7 -> 500 'no'; retrying",
                     "delivered gs://in-bkt/a.png#7 -> 204 (attempt 3)"]


def test_eventarc_gives_up_after_max_age(script, tmp_path):
    server = script([503])
    # attempts at ~0, ~0.25 (still under 0.5 s old) and ~0.75 (over: given up, no more waiting)
    poller = FinalizePoller("http://storage.invalid", [], server.url, max_age_s=0.5, log_path=tmp_path / "e.log")
    started = time.monotonic()
    poller._deliver(OBJ, KEY)
    assert time.monotonic() - started < 0.75 + 0.8
    assert len(server.times) == 3 and poller.delivered == []
    lines = [line.split(" ", 1)[1] for line in (tmp_path / "e.log").read_text().splitlines()]
    assert lines[-1] == "gave up on gs://in-bkt/a.png#7 after 3 attempts" and len(lines) == 4


def test_eventarc_stops_retrying_when_stopped(tmp_path):
    poller = FinalizePoller("http://storage.invalid", [], _closed_port_url(), log_path=tmp_path / "e.log")
    threading.Timer(0.6, poller._stop.set).start()  # during the second wait (0.25 to 0.75 s)
    started = time.monotonic()
    poller._deliver(OBJ, KEY)
    assert time.monotonic() - started < 0.6 + 0.5  # the wait ends at once, no attempt after it
    lines = (tmp_path / "e.log").read_text().splitlines()
    assert len(lines) == 2 and all("; retrying" in line for line in lines) and poller.delivered == []
    poller._deliver(OBJ, KEY)  # stopped before the first attempt: none
    assert len((tmp_path / "e.log").read_text().splitlines()) == 2


def test_push_of_events_dead_letters_after_max_attempts_as_pubsub_does(script, tmp_path):
    """The embedded stack's events topic: each push carries deliveryAttempt; after max_attempts the
    message goes to the dead-letter file with Pub/Sub's CloudPubSubDeadLetterSource* attributes."""
    server = script([503])
    dead = tmp_path / "dead-letter.jsonl"
    publisher = HttpPushPublisher(server.url, "demo", max_attempts=3, backoff_s=0.05, dead_letter_file=str(dead),
                                  subscription="local-events")
    body = message_body(b'{"type":"export.failed"}', {"eventId": "evt_1", "jobId": "job1", "type": "export.failed"},
                        "demo", "local-events")
    publisher._deliver(body, "job1")
    assert [json.loads(b)["deliveryAttempt"] for b in server.bodies] == [1, 2, 3]
    [letter] = [json.loads(line) for line in dead.read_text().splitlines()]
    assert letter["attributes"] == {"eventId": "evt_1", "jobId": "job1", "type": "export.failed",
                                    "CloudPubSubDeadLetterSourceDeliveryCount": "3",
                                    "CloudPubSubDeadLetterSourceSubscription": "local-events",
                                    "CloudPubSubDeadLetterSourceSubscriptionProject": "demo"}
    assert base64.b64decode(letter["data"]) == b'{"type":"export.failed"}'
