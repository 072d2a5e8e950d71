"""Idempotent export_start (issue 14, item 9), through the real functions on SQLite and the service on
PostgreSQL: reordered or re-cased uploads are the same request, concurrent starts with one key leave
one job and one spec.json, and a replay of a canceled or expired job returns it without upload URLs."""
from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest

from shared import bootstrap
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from shared.clock import utcnow
from shared.states import NON_TERMINAL
from tests.fakes import RecordingLauncher, RecordingPublisher
from tests.integration.functions_env import make_functions_env

SPEC = {"scenes": [{"id": "s1", "visual": {"type": "image", "src": "a.png"}, "narration": {"src": "n.wav"}}]}
UPLOADS = [{"name": "a.png", "contentType": "image/png"}, {"name": "n.wav", "contentType": "audio/wav"}]


@pytest.fixture
def env(tmp_path):
    e = make_functions_env(tmp_path, input_bucket="in", output_bucket="out")
    yield e
    bootstrap.use_service(None)


def start(env, uploads, key="key-1"):
    return env.c["export_start"].post("/", json={"spec": SPEC, "uploads": uploads}, headers={"Idempotency-Key": key})


def test_the_same_uploads_in_another_order_replay_the_job(env):
    first = start(env, UPLOADS)
    again = start(env, UPLOADS[::-1])
    assert (first.status_code, again.status_code) == (202, 200), again.get_data(as_text=True)
    assert again.json["jobId"] == first.json["jobId"]
    assert sorted(u["name"] for u in again.json["uploads"]) == ["a.png", "n.wav"]


def test_content_types_differing_only_in_case_are_the_same_request(env):
    shouted = [{"name": "a.png", "contentType": "Image/PNG"}, {"name": "n.wav", "contentType": "AUDIO/WAV"}]
    first = start(env, shouted)
    assert first.status_code == 202, first.get_data(as_text=True)
    # signed for the canonical (lower-case) type: the client sends the headers it is given
    assert {u["name"]: u["headers"]["Content-Type"] for u in first.json["uploads"]} == {
        "a.png": "image/png", "n.wav": "audio/wav"}
    again = start(env, UPLOADS)
    assert again.status_code == 200 and again.json["jobId"] == first.json["jobId"]
    refused = start(env, [{"name": "a.png", "contentType": "Image/SVG+XML"}, UPLOADS[1]], key="key-2")
    assert refused.status_code == 400 and refused.json["error"]["details"][0]["path"] == "uploads[0].contentType"


def test_a_replay_of_a_canceled_job_gets_no_upload_urls(env):
    first = start(env, UPLOADS)
    jid = first.json["jobId"]
    assert len(first.json["uploads"]) == 2
    assert env.c["export_cancel"].post("/", json={"jobId": jid}).status_code == 200
    again = start(env, UPLOADS)
    assert again.status_code == 200
    assert (again.json["jobId"], again.json["status"], again.json["uploads"]) == (jid, "canceled", [])


def test_a_replay_of_an_expired_job_gets_no_upload_urls(env):
    jid = start(env, UPLOADS).json["jobId"]
    env.service.reconcile(now=utcnow() + timedelta(seconds=env.settings.upload_ttl_s + 60))
    assert env.service.repo.get(jid).error_code == "upload_expired"
    again = start(env, UPLOADS)
    assert (again.status_code, again.json["status"], again.json["uploads"]) == (200, "failed", [])


# -- the replay digest is taken over the canonical spec (adversarial review 2, break 3) ---------------
VIDEO = {"id": "v", "visual": {"type": "video", "src": "v.mp4", "trimStartS": 0},
         "caption": {"cues": [{"startS": 0, "endS": 0.5, "text": "hi"}]}}
VIDEO_UPLOADS = [{"name": "v.mp4", "contentType": "video/mp4"}]


def with_field(path: str, value):
    """A copy of {"scenes": [VIDEO]} with the field at the dotted `path` (list indexes as digits) set."""
    spec = json.loads(json.dumps({"scenes": [VIDEO]}))
    *parents, last = path.split(".")
    node = spec
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[last] = value
    return spec


@pytest.mark.parametrize("path, first, again", [
    ("poster.timeS", 0, -0.0),
    ("scenes.0.visual.trimStartS", 0, -0.0),
    ("scenes.0.caption.cues.0.startS", 0.0, -0.0),
    ("audio.truePeakDb", -0.0, 0),
    ("captions.sidecar", ["srt", "vtt"], ["vtt", "srt"]),
    ("captions.sidecar", ["vtt", "srt"], ["srt", "vtt"]),
], ids=["poster-time", "trim-start", "cue-start", "true-peak", "sidecar-srt-first", "sidecar-vtt-first"])
def test_a_spec_differing_only_in_a_canonical_detail_replays_the_job(env, path, first, again):
    """-0.0 and 0 are one number (JSON.stringify(-0) is "0"), and sidecar is a set of kinds: a retry
    that spells them otherwise is the same request (200 replay), not another spec (409)."""
    post = lambda value: env.c["export_start"].post(  # noqa: E731
        "/", data=json.dumps({"spec": with_field(path, value), "uploads": VIDEO_UPLOADS}),
        content_type="application/json", headers={"Idempotency-Key": f"key-{path}"})
    one, two = post(first), post(again)
    assert (one.status_code, two.status_code) == (202, 200), two.get_data(as_text=True)
    assert two.json["jobId"] == one.json["jobId"]
    stored = env.service.repo.get(one.json["jobId"]).spec
    text = json.dumps(stored)
    assert "-0.0" not in text and stored["captions"]["sidecar"] == ["srt", "vtt"]
    assert json.loads(env.storage.read_bytes("in", f"jobs/{one.json['jobId']}/spec.json")) == stored


class RaceStorage(LocalStorage):
    """LocalStorage whose spec.json writes wait until every racing start has written one, so that all
    of them have passed the idempotency-key lookup before any creates its row (a real race, forced)."""

    def __init__(self, root, racers: int) -> None:
        super().__init__(root)
        self.barrier = threading.Barrier(racers, timeout=20)

    def upload_bytes(self, bucket, name, data, content_type, **kw):
        generation = super().upload_bytes(bucket, name, data, content_type, **kw)
        if name.endswith("/spec.json"):
            self.barrier.wait()
        return generation


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_starts_with_one_key_leave_one_job_and_one_spec(request, tmp_path, backend):
    racers = 6
    url = f"sqlite:///{tmp_path}/race.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    storage = RaceStorage(tmp_path / "gcs", racers)
    service = bootstrap.build_service(Settings(database_url=url, input_bucket="in", output_bucket="out"),
                                      storage=storage, publisher=RecordingPublisher(), launcher=RecordingLauncher(),
                                      migrate_db=True)
    key = f"race-{uuid.uuid4()}"
    results: list = []
    errors: list = []

    def one():
        try:
            results.append(service.start({"spec": SPEC, "uploads": UPLOADS}, key))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(created for created, _ in results) == [False] * (racers - 1) + [True]  # 200 x 5, 202 once
    job_ids = {body["jobId"] for _, body in results}
    assert len(job_ids) == 1
    specs = sorted(p.relative_to(tmp_path / "gcs" / "in").as_posix() for p in (tmp_path / "gcs" / "in").rglob("spec.json"))
    assert specs == [f"jobs/{job_ids.pop()}/spec.json"]  # the losers deleted theirs
    job = service.repo.get_by_idempotency_key(key)
    service.cancel({"jobId": job.id})
    if backend == "sqlite":
        assert not {k: v for k, v in service.repo.count_by_status().items() if k in NON_TERMINAL}
