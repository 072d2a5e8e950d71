"""FFmpeg -progress parsing and reporter throttling (pure, fast; no network)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # until the project's pytest config sets pythonpath
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402
import requests  # noqa: E402

from render_job.progress import ProgressTracker, out_time_seconds, parse_progress_line  # noqa: E402
from render_job.reporter import Reporter  # noqa: E402

BLOCK = """frame=45
fps=30.00
stream_0_0_q=28.0
bitrate=N/A
total_size=48
out_time_us=1500000
out_time_ms=1500000
out_time=00:00:01.500000
dup_frames=0
drop_frames=0
speed=1.5x
progress=continue
"""


def test_parse_line():
    assert parse_progress_line("out_time_us=1500000\n") == ("out_time_us", "1500000")
    assert parse_progress_line("  ") is None
    assert parse_progress_line("garbage") is None
    assert parse_progress_line("speed= 1.2x") == ("speed", "1.2x")


def test_out_time_units():
    assert out_time_seconds("out_time_us", "2500000") == 2.5
    assert out_time_seconds("out_time_ms", "2500000") == 2.5  # microseconds despite the name
    assert out_time_seconds("out_time", "00:01:02.500000") == pytest.approx(62.5)
    assert out_time_seconds("out_time_us", "N/A") is None
    assert out_time_seconds("out_time_us", "-23000") == 0.0
    assert out_time_seconds("frame", "12") is None


def test_tracker_fraction_rises_and_ends():
    t = ProgressTracker(total_s=3.0)
    got = [f for f in (t.feed(line) for line in BLOCK.splitlines()) if f is not None]
    assert got == [pytest.approx(0.5)]
    assert t.feed("out_time_us=1000000") is None  # never decreases
    assert t.feed("out_time_us=9000000") == 1.0  # capped
    t2 = ProgressTracker(total_s=10.0)
    t2.feed("out_time_us=N/A")
    assert t2.feed("progress=end") == 1.0 and t2.ended


class FakeResp:
    def __init__(self, code):
        self.status_code = code


class FakeSession:
    def __init__(self, codes=None, fail=0):
        self.calls = []
        self.codes = list(codes or [])
        self.fail = fail

    def post(self, url, json=None, headers=None, timeout=None):
        self.calls.append((url, json, headers, timeout))
        if self.fail:
            self.fail -= 1
            raise requests.ConnectionError("down")
        return FakeResp(self.codes.pop(0) if self.codes else 200)


def test_reporter_throttles_running_but_not_stage_changes_or_finals():
    now = [0.0]
    s = FakeSession()
    r = Reporter("http://api/export_complete", "SECRET", "job1", attempt=2, min_interval_s=2.0, session=s,
                 clock=lambda: now[0], sleep=lambda _: None)
    assert r.running("preparing", 0.0)
    assert not r.running("preparing", 0.05)  # throttled
    assert r.running("rendering", 0.1)       # stage changed
    now[0] = 1.0
    assert not r.running("rendering", 0.5)
    now[0] = 3.5
    assert r.running("rendering", 0.4)       # lower progress is not sent: max kept
    assert r.succeeded({"uri": "gs://o/x.mp4"})
    urls = {c[0] for c in s.calls}
    assert urls == {"http://api/export_complete"}
    bodies = [c[1] for c in s.calls]
    assert bodies[2]["progress"] == 0.5
    assert bodies[0] == {"jobId": "job1", "attempt": 2, "status": "running", "stage": "preparing", "progress": 0.0}
    assert bodies[-1]["status"] == "succeeded" and bodies[-1]["output"] == {"uri": "gs://o/x.mp4"}
    assert all(c[2]["Authorization"] == "Bearer SECRET" and c[3] == 10.0 for c in s.calls)
    assert "SECRET" not in repr(r)


def test_reporter_retries_5xx_and_connection_errors_and_logs_4xx(capsys):
    s = FakeSession(codes=[503, 200], fail=1)
    r = Reporter("http://api/export_complete", "SECRET", "job1", session=s, sleep=lambda _: None)
    assert r.failed("render_failed", "bad media")
    assert len(s.calls) == 3
    s2 = FakeSession(codes=[409])
    r2 = Reporter("http://api/export_complete", "SECRET", "job1", session=s2, sleep=lambda _: None)
    assert r2.running("rendering", 0.5) is False and r2.rejected
    assert len(s2.calls) == 1
    assert "SECRET" not in capsys.readouterr().out
