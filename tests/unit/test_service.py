"""Every use case of shared.service.ExportService on in-memory fakes of its ports (tests/fakes.py:
FakeRepository, FakeStorage, RecordingPublisher, RecordingLauncher), asserting the
states and values it leaves behind. No database, no folder, no HTTP: milliseconds per test. The
HTTP-level tests of the same rules are in tests/integration (test_functions.py, test_bad_input.py...)."""
from __future__ import annotations

import json

import pytest

from shared.config import Settings
from shared.errors import Conflict, Forbidden, InvalidRequest, NotFound, TransientError, Unauthorized
from shared.identity import DEFAULT_OWNER, Caller
from shared.ports import ExecutionStatus
from shared.service import ExportService, Started
from shared.states import JobStatus as S
from tests.fakes import FailingStatusLauncher, FakeRepository, FakeStorage, RecordingLauncher, RecordingPublisher

SPEC = {"title": "Moon walk", "scenes": [
    {"id": "a", "visual": {"type": "image", "src": "a.png"}, "narration": {"src": "n.wav"}},
    {"id": "b", "visual": {"type": "color"}, "duration": 2}]}
UPLOADS = [{"name": "a.png", "contentType": "image/png"}, {"name": "n.wav", "contentType": "audio/wav"}]
COLOR_SPEC = {"scenes": [{"id": "c", "visual": {"type": "color"}, "duration": 3}]}
TOKEN = "worker-token"


@pytest.fixture
def svc() -> ExportService:
    settings = Settings(input_bucket="in", output_bucket="out", worker_token=TOKEN, api_base="http://api.test",
                        max_job_bytes=1000)
    return ExportService(settings=settings, repo=FakeRepository(), storage=FakeStorage(),
                         publisher=RecordingPublisher(), launcher=RecordingLauncher())


def queued(svc, spec=COLOR_SPEC) -> str:
    started = svc.start({"spec": spec})
    assert started.created
    return started.body["jobId"]


def running(svc, attempt=0) -> str:
    job_id = queued(svc)
    svc.dispatch(job_id)
    svc.complete({"jobId": job_id, "status": "running", "stage": "preparing", "progress": 0.0, "attempt": attempt})
    return job_id


def put_video(svc, job_id, name="export.mp4", size=1234, **metadata) -> str:
    obj = f"exports/{job_id}/{name}"
    meta = {"job-id": job_id, "duration-s": "3.000", "width": "1920", "height": "1080", "filename": name,
            "poster": "poster.jpg", "scene-starts": "0.000", "scene-durations": "3.000",
            "loudness-i": "-16.0", "loudness-tp": "-1.6", **metadata}
    svc.storage.upload_bytes("out", obj, b"v" * size, "video/mp4", metadata=meta)
    return obj


def status_of(svc, job_id) -> S:
    return svc.repo.get(job_id).status


# -- start -------------------------------------------------------------------------------------------------
def test_start_without_uploads_queues_publishes_and_stores_the_canonical_spec(svc):
    started = svc.start({"spec": COLOR_SPEC})
    job_id = started.body["jobId"]
    assert started == Started(True, {"jobId": job_id, "status": "queued",
                                     "statusUrl": f"http://api.test/export_status?jobId={job_id}", "uploads": []})
    assert svc.publisher.messages == [job_id]
    stored = json.loads(svc.storage.read_bytes("in", f"jobs/{job_id}/spec.json"))
    assert stored["scenes"][0]["duration"] == 3 and stored["output"]["fps"] == 30  # defaults filled in
    assert [s for s, _ in svc.repo.get(job_id).history] == ["queued"]


def test_start_with_uploads_awaits_them_with_one_signed_put_each(svc):
    body = svc.start({"spec": SPEC, "uploads": UPLOADS}).body
    assert body["status"] == "awaiting_upload" and svc.publisher.messages == []
    assert [(u["name"], u["method"], u["url"]) for u in body["uploads"]] == [
        ("a.png", "PUT", f"https://storage.test/in/jobs/{body['jobId']}/assets/a.png?put"),
        ("n.wav", "PUT", f"https://storage.test/in/jobs/{body['jobId']}/assets/n.wav?put")]
    assert body["uploads"][0]["headers"] == {"Content-Type": "image/png",
                                             "x-goog-content-length-range": f"1,{svc.settings.max_asset_bytes}"}
    assert body["uploads"][0]["expiresAt"] == "2030-01-02T03:04:05.678Z"
    assert svc.repo.get(body["jobId"]).uploads_expected == ["a.png", "n.wav"]


def test_start_replays_an_idempotency_key_and_refuses_it_for_another_spec(svc):
    first = svc.start({"spec": COLOR_SPEC}, "key-1")
    again = svc.start({"spec": COLOR_SPEC, "idempotencyKey": "key-1"})
    assert first.created and not again.created and again.body["jobId"] == first.body["jobId"]
    assert len(svc.repo.rows) == 1 and svc.publisher.messages == [first.body["jobId"]]
    with pytest.raises(Conflict, match="different spec"):
        svc.start({"spec": {**COLOR_SPEC, "title": "other"}}, "key-1")


def test_start_lists_every_problem_and_stores_nothing(svc):
    with pytest.raises(InvalidRequest) as info:
        svc.start({"spec": {"scenes": [{"id": "a", "visual": {"type": "image", "src": "x.png"}}]},
                   "uploads": [{"name": "y.svg", "contentType": "image/svg+xml"}]})
    assert [d["path"] for d in info.value.details] == [
        "uploads[0].contentType", "spec.scenes[0].visual.src", "uploads[0].name"]
    assert svc.repo.rows == {} and svc.storage.objects == {}
    with pytest.raises(InvalidRequest, match="must be a JSON object"):
        svc.start([1])


def test_start_checks_the_declared_type_against_the_field(svc):
    uploads = [{"name": "a.png", "contentType": "video/mp4"}, {"name": "n.wav", "contentType": "image/png"}]
    with pytest.raises(InvalidRequest) as info:
        svc.start({"spec": SPEC, "uploads": uploads})
    assert [(d["path"], d["message"]) for d in info.value.details] == [
        ("spec.scenes[0].visual.src", "'a.png' is declared as video/mp4, expected image/*"),
        ("spec.scenes[0].narration.src", "'n.wav' is declared as image/png, expected audio/* or video/*")]


def test_start_whose_row_cannot_be_written_deletes_its_spec(svc):
    svc.repo.fail_create = TransientError("database unavailable")
    with pytest.raises(TransientError):
        svc.start({"spec": COLOR_SPEC})
    assert svc.storage.objects == {} and len(svc.storage.deleted) == 1


def test_start_whose_publish_fails_stays_queued(svc):
    svc.publisher.fail_next = 1
    job_id = queued(svc)
    assert status_of(svc, job_id) == S.QUEUED and svc.publisher.messages == []


# -- status ------------------------------------------------------------------------------------------------
def test_status_shows_the_public_view(svc):
    job_id = queued(svc)
    view = svc.status(job_id.upper())
    assert view["jobId"] == job_id and view["status"] == "queued" and view["progress"] == 0
    assert "uploads" not in view and "error" not in view and "output" not in view
    assert [h["status"] for h in view["history"]] == ["queued"] and view["history"][0]["at"].endswith("Z")
    with pytest.raises(InvalidRequest, match="UUID"):
        svc.status("nope")
    with pytest.raises(NotFound):
        svc.status("00000000-0000-0000-0000-000000000000")


def test_status_fails_an_awaiting_job_past_its_upload_ttl(svc):
    job_id = svc.start({"spec": SPEC, "uploads": UPLOADS}).body["jobId"]
    assert svc.status(job_id)["uploads"] == {"expected": ["a.png", "n.wav"], "received": []}
    svc.repo.age(job_id, svc.settings.upload_ttl_s + 1)
    view = svc.status(job_id)
    assert view["status"] == "failed" and "uploads" not in view
    assert view["error"] == {"code": "upload_expired", "message": "uploads never arrived: a.png, n.wav"}


def test_status_of_a_succeeded_job_signs_its_outputs(svc):
    job_id = running(svc)
    put_video(svc, job_id, srt="captions.srt")
    assert svc.object_finalized("out", f"exports/{job_id}/export.mp4", "1", 1234) == "succeeded"
    out = svc.status(job_id)["output"]
    assert out == {
        "uri": f"gs://out/exports/{job_id}/export.mp4", "filename": "export.mp4",
        "url": f"https://storage.test/out/exports/{job_id}/export.mp4?get&as=export.mp4", "durationS": 3.0,
        "sizeBytes": 1234, "width": 1920, "height": 1080,
        "posterUrl": f"https://storage.test/out/exports/{job_id}/poster.jpg?get&as=poster.jpg",
        "captions": {"srt": f"https://storage.test/out/exports/{job_id}/captions.srt?get&as=captions.srt"},
        "scenes": [{"startS": 0.0, "durationS": 3.0}],
        "loudness": {"integratedLufs": -16.0, "truePeakDb": -1.6, "lra": None}, "warnings": []}


# -- cancel ------------------------------------------------------------------------------------------------
def test_cancel_stops_the_execution_and_is_idempotent(svc):
    job_id = running(svc)
    assert svc.cancel({"jobId": job_id}) == {"jobId": job_id, "status": "canceled"}
    job = svc.repo.get(job_id)
    assert job.status == S.CANCELED and job.error_code == "canceled" and job.stage is None
    assert svc.launcher.cancelled == [job.execution_name]
    assert svc.cancel({"jobId": job_id}) == {"jobId": job_id, "status": "canceled"}
    assert len(svc.launcher.cancelled) == 1


def test_cancel_of_a_finished_job_conflicts(svc):
    job_id = running(svc)
    svc.complete({"jobId": job_id, "status": "failed", "error": {"code": "x", "message": "broken"}})
    with pytest.raises(Conflict, match="already failed"):
        svc.cancel({"jobId": job_id})
    with pytest.raises(InvalidRequest):
        svc.cancel({"id": job_id})


# -- dispatch ----------------------------------------------------------------------------------------------
def test_dispatch_claims_once_and_records_the_execution(svc):
    job_id = queued(svc)
    svc.launcher.states = {}
    execution = svc.dispatch(job_id)
    job = svc.repo.get(job_id)
    assert execution and job.status == S.DISPATCHED and job.execution_name == execution
    assert svc.launcher.launched == [job_id]
    assert svc.dispatch(job_id) is None and svc.launcher.launched == [job_id]  # a duplicate delivery
    with pytest.raises(InvalidRequest, match="not a UUID"):
        svc.dispatch("x")


def test_dispatch_whose_launch_fails_releases_the_claim(svc):
    job_id = queued(svc)
    svc.launcher.fail_next = 1
    with pytest.raises(TransientError):
        svc.dispatch(job_id)
    assert status_of(svc, job_id) == S.QUEUED
    assert svc.dispatch(job_id) and status_of(svc, job_id) == S.DISPATCHED  # the redelivery


def test_another_owners_job_is_not_found_and_keys_are_per_owner(svc):
    alice, bob = Caller("alice", "server_key"), Caller("bob", "id_token")
    started = svc.start({"spec": COLOR_SPEC}, "key-1", alice)
    job_id = started.body["jobId"]
    assert svc.status(job_id, alice)["owner"] == "alice"
    with pytest.raises(NotFound, match=job_id):
        svc.status(job_id, bob)
    with pytest.raises(NotFound, match=job_id):
        svc.cancel({"jobId": job_id}, bob)
    assert status_of(svc, job_id) == S.QUEUED
    other = svc.start({"spec": COLOR_SPEC}, "key-1", bob)  # the same key is bob's own: a new job
    assert other.created and other.body["jobId"] != job_id
    assert svc.start({"spec": COLOR_SPEC}, "key-1", alice) == Started(False, started.body)
    assert svc.cancel({"jobId": job_id}, alice)["status"] == "canceled"


# -- complete ----------------------------------------------------------------------------------------------
def test_worker_and_client_tokens(svc):
    svc.check_worker_token(f"bearer {TOKEN}")
    with pytest.raises(Unauthorized):
        svc.check_worker_token(None)
    with pytest.raises(Forbidden, match="invalid worker token"):
        svc.check_worker_token("Bearer wrong")
    assert svc.authenticate(None) == Caller(DEFAULT_OWNER, "open")  # no EXPORT_CLIENT_TOKEN: open
    svc.settings, svc.authenticator = svc.settings.replace(client_token="client"), None
    with pytest.raises(Unauthorized, match="invalid token"):  # RFC 6750 invalid_token: 401 (403 before issue 18)
        svc.authenticate("Bearer wrong")
    assert svc.authenticate("Bearer client") == Caller(DEFAULT_OWNER, "client_token")


def test_running_reports_raise_progress_and_stage_only(svc):
    job_id = running(svc)
    report = {"jobId": job_id, "status": "running"}
    assert svc.complete({**report, "stage": "rendering", "progress": 0.5}) == {
        "jobId": job_id, "status": "running", "applied": True}
    svc.complete({**report, "stage": "preparing", "progress": 0.2})
    job = svc.repo.get(job_id)
    assert (job.status, job.stage, job.progress, job.attempts) == (S.RUNNING, "rendering", 0.5, 1)
    assert svc.status(job_id)["progress"] == 0.5


def test_reports_from_an_older_attempt_or_before_dispatch_conflict(svc):
    job_id = running(svc, attempt=1)
    with pytest.raises(Conflict, match="attempt 0"):
        svc.complete({"jobId": job_id, "status": "running", "attempt": 0})
    early = queued(svc)
    with pytest.raises(Conflict, match="never dispatched"):
        svc.complete({"jobId": early, "status": "running"})
    with pytest.raises(InvalidRequest, match="report is invalid"):
        svc.complete({"jobId": job_id, "status": "done"})


def test_failed_report_fails_the_job_once(svc):
    job_id = running(svc)
    failed = {"jobId": job_id, "status": "failed", "error": {"code": "bad\x00media", "message": "no\x00 picture"}}
    assert svc.complete(failed) == {"jobId": job_id, "status": "failed", "applied": True}
    job = svc.repo.get(job_id)
    assert (job.error_code, job.error_message, job.stage) == ("badmedia", "no picture", None)
    assert svc.complete(failed)["applied"] is False  # a late duplicate
    with pytest.raises(Conflict, match="stop rendering"):
        svc.complete({"jobId": job_id, "status": "running"})


def test_succeeded_report_stores_the_output_of_the_video_in_the_bucket(svc):
    job_id = running(svc)
    obj = put_video(svc, job_id, size=99)
    output = {"uri": f"gs://out/{obj}", "filename": "moon.mp4", "durationS": 3.0, "sizeBytes": 5, "width": 1280,
              "height": 720, "poster": f"exports/{job_id}/poster.jpg",
              "captions": {"vtt": f"exports/{job_id}/captions.vtt"},
              "scenes": [{"startS": 0, "durationS": 3}], "loudness": {"integratedLufs": -16.1},
              "warnings": [{"path": "p", "message": "m\x01"}], "extra": "ignored"}
    assert svc.complete({"jobId": job_id, "status": "succeeded", "output": output})["status"] == "succeeded"
    job = svc.repo.get(job_id)
    assert job.progress == 1.0 and job.output == {
        "object": obj, "filename": "moon.mp4", "durationS": 3.0, "sizeBytes": 99, "width": 1280, "height": 720,
        "poster": f"exports/{job_id}/poster.jpg", "captions": {"vtt": f"exports/{job_id}/captions.vtt"},
        "scenes": [{"startS": 0.0, "durationS": 3.0}], "warnings": [{"path": "p", "message": "m "}],
        "loudness": {"integratedLufs": -16.1, "truePeakDb": None, "lra": None}}


def test_succeeded_report_naming_another_video_is_refused(svc):
    job_id, other = running(svc), queued(svc)
    with pytest.raises(InvalidRequest, match="output.uri must name"):
        svc.complete({"jobId": job_id, "status": "succeeded", "output": {"uri": f"gs://out/exports/{other}/x.mp4"}})
    with pytest.raises(InvalidRequest, match="not this export's video: the object does not exist"):
        svc.complete({"jobId": job_id, "status": "succeeded", "output": {"uri": f"gs://out/exports/{job_id}/x.mp4"}})
    assert status_of(svc, job_id) == S.RUNNING


# -- object_finalized ---------------------------------------------------------------------------------------
def test_finalized_uploads_queue_the_job_when_all_are_in(svc):
    job_id = svc.start({"spec": SPEC, "uploads": UPLOADS}).body["jobId"]
    svc.storage.upload_bytes("in", f"jobs/{job_id}/assets/a.png", b"p" * 10, "image/png")
    assert svc.object_finalized("in", f"jobs/{job_id}/assets/a.png", "1", 10) == "upload"
    assert svc.object_finalized("in", f"jobs/{job_id}/assets/n.wav", "1", 10) == "ignored"  # not there yet
    svc.storage.upload_bytes("in", f"jobs/{job_id}/assets/n.wav", b"w" * 10, "audio/wav")
    assert svc.object_finalized("in", f"jobs/{job_id}/assets/n.wav", "1", 10) == "queued"
    assert status_of(svc, job_id) == S.QUEUED and svc.publisher.messages == [job_id]
    assert svc.object_finalized("in", f"jobs/{job_id}/assets/other.png", "1", 10) == "ignored"
    assert svc.object_finalized("in", "elsewhere/a.png", "1", 10) == "ignored"
    assert svc.object_finalized("nobody", "x", "1", 10) == "ignored"


def test_finalized_uploads_over_the_job_limit_fail_it(svc):
    job_id = svc.start({"spec": SPEC, "uploads": UPLOADS}).body["jobId"]
    svc.storage.upload_bytes("in", f"jobs/{job_id}/assets/a.png", b"p" * 1001, "image/png")
    assert svc.object_finalized("in", f"jobs/{job_id}/assets/a.png", "1", 1001) == "failed"
    assert svc.repo.get(job_id).error_code == "job_too_large"


def test_finalized_video_succeeds_its_job_from_the_object_metadata(svc):
    job_id = running(svc)
    obj = put_video(svc, job_id, poster="../x.jpg")
    assert svc.object_finalized("out", obj, "1", 1, {"job-id": "forged"}) == "succeeded"
    output = svc.repo.get(job_id).output
    assert (output["object"], output["sizeBytes"], output["poster"], output["durationS"]) == (obj, 1234, None, 3.0)
    assert svc.object_finalized("out", obj, "1", 1) == "duplicate"


def test_finalized_video_that_is_not_the_jobs_is_ignored(svc):
    job_id = running(svc)
    obj = put_video(svc, job_id, **{"job-id": "someone-else"})
    assert svc.object_finalized("out", obj, "1", 1) == "ignored"
    assert svc.object_finalized("out", obj, "999999", 1) == "ignored"  # an older generation than the event's
    with pytest.raises(InvalidRequest, match="not finite"):
        svc.object_finalized("out", put_video(svc, job_id, name="b.mp4", **{"duration-s": "nan"}), "1", 1)
    assert status_of(svc, job_id) == S.RUNNING


# -- reconcile ----------------------------------------------------------------------------------------------
def test_reconcile_republishes_stale_queued_jobs(svc):
    job_id = queued(svc)
    svc.repo.age(job_id, svc.settings.reconcile_queued_after_s + 1)
    assert svc.reconcile()["republished"] == 1 and svc.publisher.messages == [job_id, job_id]


def test_reconcile_fails_a_stale_job_whose_execution_failed(svc):
    job_id = running(svc)
    svc.launcher.states[svc.repo.get(job_id).execution_name] = ExecutionStatus("failed", "exit 137")
    svc.repo.age(job_id, svc.settings.reconcile_stale_after_s + 1)
    counts = svc.reconcile()
    assert (counts["checked"], counts["failed"]) == (1, 1)
    job = svc.repo.get(job_id)
    assert (job.status, job.error_code, job.error_message) == (
        S.FAILED, "execution_failed", "the render execution failed: exit 137")


def test_reconcile_succeeds_a_job_whose_finalize_was_lost(svc):
    job_id = queued(svc, {**COLOR_SPEC, "title": "Moon walk"})
    svc.dispatch(job_id)
    svc.launcher.states[svc.repo.get(job_id).execution_name] = ExecutionStatus("succeeded")
    put_video(svc, job_id, name="moon-walk.mp4")
    svc.repo.age(job_id, svc.settings.reconcile_stale_after_s + 1)
    assert svc.reconcile()["succeeded"] == 1
    assert svc.repo.get(job_id).output["object"] == f"exports/{job_id}/moon-walk.mp4"


def test_reconcile_expires_uploads_and_defers_what_it_cannot_ask(svc):
    waiting = svc.start({"spec": SPEC, "uploads": UPLOADS}).body["jobId"]
    stale = running(svc)
    svc.repo.age(waiting, svc.settings.upload_ttl_s + 1)
    svc.repo.age(stale, svc.settings.reconcile_stale_after_s + 1)
    svc.launcher = FailingStatusLauncher(svc.launcher)
    assert svc.reconcile() == {"republished": 0, "failed": 1, "succeeded": 0, "checked": 1, "skipped": 0,
                               "deferred": 1}
    assert status_of(svc, waiting) == S.FAILED and status_of(svc, stale) == S.RUNNING
