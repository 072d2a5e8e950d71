"""The repository on SQLite and on PostgreSQL (pg8000): migrations, conditional transitions,
progress that only rises, upload bookkeeping, concurrent claims, and export_status bodies that are
the same on both backends."""
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select, update

from shared.adapters.local_storage import LocalStorage
from shared.bootstrap import build_repository
from shared.config import Settings
from shared.cost import billed
from shared.db import engine_for_url, migrate
from shared.errors import NotFound
from shared.db import session_factory
from shared.models import ExportJob, ExportJobEvent, WebhookDelivery
from shared.webhook_store import SqlWebhookStore
from shared.service import ExportService
from shared.states import JobStatus as S
from tests.fakes import RecordingLauncher, RecordingPublisher


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    """(repository, engine) on each backend, wired as in production (autocommit reads on PostgreSQL)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/r.db"
    else:
        url = request.getfixturevalue("pg_url")
    migrate(url)
    migrate(url)  # idempotent
    engine = engine_for_url(url)
    assert {"export_jobs", "export_job_events", "export_job_uploads"} <= set(inspect(engine).get_table_names())
    reads = engine_for_url(url, autocommit=True) if request.param == "postgres" else None
    yield build_repository(engine, reads), engine
    engine.dispose()
    if reads is not None:
        reads.dispose()


@pytest.fixture
def repo(db):
    return db[0]


def new_job(repo, uploads=("a.png", "n.wav"), key=None, **labelled):
    job, created = repo.create(spec={"scenes": []}, spec_sha256="0" * 64,
                               status=S.AWAITING_UPLOAD if uploads else S.QUEUED,
                               uploads_expected=list(uploads), idempotency_key=key, **labelled)
    assert created
    return job


def test_lifecycle_history_and_terminal(repo):
    job = new_job(repo)
    assert repo.record_upload(job.id, "a.png", "1", 10) == (True, False, None)
    assert repo.record_upload(job.id, "a.png", "1", 10) == (True, False, None)  # duplicate
    assert repo.record_upload(job.id, "other.png", "1", 10) == (False, False, None)  # undeclared
    assert repo.record_upload(job.id, "n.wav", "2", 20) == (True, True, None)
    assert repo.record_upload(job.id, "n.wav", "2", 20) == (True, False, None)
    assert repo.transition(job.id, S.DISPATCHED) is True
    assert repo.transition(job.id, S.DISPATCHED) is False
    assert repo.transition(job.id, S.RUNNING) is True
    assert repo.report_progress(job.id, stage="rendering", progress=0.6, attempt=1)
    # reports are tied to the current attempt (attempts - 1): an older attempt's changes nothing
    assert repo.report_progress(job.id, stage="uploading", progress=0.9, attempt=0) is False
    assert repo.transition(job.id, S.FAILED, attempt=0, error_code="old") is False
    assert repo.report_progress(job.id, stage="rendering", progress=0.2, attempt=1)
    got = repo.get(job.id)
    assert (got.progress, got.stage, got.attempts) == (0.6, "rendering", 2)
    assert repo.transition(job.id, S.SUCCEEDED, output={"object": "x"}, progress=1.0) is True
    assert repo.transition(job.id, S.FAILED, error_code="late") is False
    assert repo.report_progress(job.id, stage="uploading", progress=0.9, attempt=0) is False
    got = repo.get(job.id)
    assert got.status == S.SUCCEEDED and got.error_code is None and got.output == {"object": "x"}
    assert [h[0] for h in got.history] == ["awaiting_upload", "queued", "dispatched", "running", "succeeded"]
    assert got.uploads_received == ["a.png", "n.wav"]
    assert repo.get(str(uuid.uuid4())) is None


def test_idempotency_key_returns_existing(repo):
    key = f"key-{uuid.uuid4()}"  # unique: TEST_DATABASE_URL may be a database kept between runs
    a = new_job(repo, key=key)
    b, created = repo.create(spec={}, spec_sha256="1" * 64, status=S.QUEUED, uploads_expected=[],
                             idempotency_key=key)
    assert not created and b.id == a.id


def test_concurrent_claims_one_winner(repo):
    job = new_job(repo, uploads=())
    wins, barrier = [], threading.Barrier(20)

    def claim():
        barrier.wait()
        if repo.transition(job.id, S.DISPATCHED):
            wins.append(1)

    threads = [threading.Thread(target=claim) for _ in range(20)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(wins) == 1
    assert [h[0] for h in repo.get(job.id).history].count("dispatched") == 1


def test_concurrent_last_uploads_queue_once(repo):
    names = [f"f{i}.png" for i in range(8)]
    job = new_job(repo, uploads=names)
    queued, barrier = [], threading.Barrier(len(names))

    def upload(n):
        barrier.wait()
        if repo.record_upload(job.id, n, "1", 1)[1]:
            queued.append(n)

    threads = [threading.Thread(target=upload, args=(n,)) for n in names]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(queued) == 1 and repo.get(job.id).status == S.QUEUED


def test_concurrent_uploads_over_the_job_byte_limit_fail_the_job_once(repo):
    """Under the row lock the sizes are summed with every upload recorded before: 8 uploads of 100
    bytes arriving together against a 450-byte limit fail the job exactly once, at the fifth."""
    names = [f"f{i}.png" for i in range(8)]
    job = new_job(repo, uploads=names)
    results, barrier = [], threading.Barrier(len(names))

    def upload(n):
        barrier.wait()
        results.append(repo.record_upload(job.id, n, "1", 100, max_job_bytes=450))

    threads = [threading.Thread(target=upload, args=(n,)) for n in names]
    [t.start() for t in threads]
    [t.join() for t in threads]
    failed = [r.too_large for r in results if r.too_large]
    assert len(failed) == 1 and not any(r.queued for r in results)
    assert failed[0].startswith("media add up to 500 bytes, over EXPORT_MAX_JOB_BYTES = 450 bytes: ")
    got = repo.get(job.id)
    assert (got.status, got.error_code) == (S.FAILED, "job_too_large")


def test_an_upload_overwritten_through_its_url_counts_at_its_new_size(repo):
    """A signed PUT URL works until it expires: a second, larger upload of the same name is a new
    generation, whose size replaces the first one's (an older generation's late event changes nothing)."""
    job = new_job(repo, uploads=["a.png", "b.png"])
    assert repo.record_upload(job.id, "a.png", "1700000000000001", 400, max_job_bytes=1000) == (True, False, None)
    late = repo.record_upload(job.id, "a.png", "1700000000000000", 10, max_job_bytes=1000)  # older generation
    assert late == (True, False, None)
    again = repo.record_upload(job.id, "a.png", "1700000000000002", 900, max_job_bytes=1000)
    assert again == (True, False, None)  # 900 bytes alone still fit
    crossed = repo.record_upload(job.id, "b.png", "1700000000000003", 200, max_job_bytes=1000)
    assert crossed.too_large == ("media add up to 1,100 bytes, over EXPORT_MAX_JOB_BYTES = 1,000 bytes: "
                                 "a.png (900 bytes), b.png (200 bytes)")
    assert (repo.get(job.id).status, repo.get(job.id).error_code) == (S.FAILED, "job_too_large")


# -- export_status bodies: the same on SQLite and PostgreSQL, field by field ---------------------------

T0 = datetime(2026, 3, 4, 5, 6, 7, 891999, tzinfo=timezone.utc)  # milliseconds are truncated: .891


def at(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


OUTPUT = {"object": "exports/{id}/status-test.mp4", "filename": "status-test.mp4", "durationS": 12.5,
          "sizeBytes": 1234567, "width": 1280, "height": 720, "poster": "exports/{id}/poster.jpg",
          "captions": {"srt": "exports/{id}/captions.srt", "vtt": "exports/{id}/captions.vtt"},
          "scenes": [{"startS": 0.0, "durationS": 6.4}, {"startS": 5.9, "durationS": 6.6}],
          "loudness": {"integratedLufs": -16.02, "truePeakDb": -1.5, "lra": 4.25}}


HOOK = "https://hooks.example.com/sceneflow?app=1"


def make_jobs_in_every_state(repo, engine) -> dict[str, str]:
    """One job per state through the repository's real transitions; returns {name: job id}. The
    failed one has a webhook with two delivery attempts of its failed event."""
    ids = {}

    def new(name, uploads=(), **labelled):
        ids[name] = new_job(repo, uploads=uploads, webhook_url=HOOK if name == "failed" else None, **labelled).id
        return ids[name]

    j = new("awaiting_upload", ("a.png", "n.wav"))
    assert repo.record_upload(j, "a.png", "1", 10) == (True, False, None)
    j = new("queued", ("x.png",))
    assert repo.record_upload(j, "x.png", "1", 10) == (True, True, None)
    for name in ("running", "failed", "succeeded"):
        # labels given out of order (JSONB would keep its own: shorter keys first), shown sorted by key
        j = new(name, **(LABELLED if name == "succeeded" else {}))
        assert repo.transition(j, S.DISPATCHED)
        repo.set_execution(j, f"projects/p/locations/r/jobs/render/executions/{name}-1",
                           f"https://console.cloud.google.com/run/jobs/executions/details/r/{name}-1/logs")
        assert repo.transition(j, S.RUNNING, started_at=T0)
        assert repo.report_progress(j, stage="rendering", progress=0.4567891, attempt=1)
        # two attempts' usage, the second reported twice (a smaller duplicate counts once, as its largest)
        repo.record_usage(j, 0, billed(2.5, 1.25, 4, 8))
        repo.record_usage(j, 1, billed(1.5, 0.75, 4, 8))
        repo.record_usage(j, 1, billed(1.0, 0.5, 4, 8))
    assert repo.transition(ids["failed"], S.FAILED, error_code="render_failed", finished_at=T0, stage=None,
                           error_message="scenes[0].visual: a.png is not a decodable image")
    store = SqlWebhookStore(session_factory(engine))
    for answer, error in ((None, "TimeoutError: no answer within 5 s"), (204, None)):
        store.record_attempt(ids["failed"], "evt_f_5", "export.failed", http_status=answer, error=error,
                             duration_ms=5000 if answer is None else 31)
    j = ids["succeeded"]
    assert repo.transition(j, S.SUCCEEDED, progress=1.0, stage=None, finished_at=T0,
                           output=json.loads(json.dumps(OUTPUT).replace("{id}", j)))
    j = new("canceled", ("c.png",))
    assert repo.transition(j, S.CANCELED, finished_at=T0, stage=None, error_code="canceled",
                           error_message="canceled by the client")
    return ids


LABELLED = {"labels": {"zone": "eu-1", "b": "", "app": "Story.v2"}, "external_ref": "book 7/ch. 3 ✓"}


def pin_timestamps(engine, ids) -> None:
    """Known timestamps (sub-millisecond parts included) so bodies can be compared across backends:
    created T0, started T0+3 s, finished T0+8 s, updated T0+9 s, the k-th event T0+k s."""
    jobs, events = ExportJob.__table__, ExportJobEvent.__table__
    mine = jobs.c.id.in_(list(ids.values()))
    with engine.begin() as c:
        c.execute(update(jobs).where(mine).values(created_at=T0, updated_at=T0 + timedelta(seconds=9)))
        c.execute(update(jobs).where(mine, jobs.c.started_at.is_not(None)).values(started_at=T0 + timedelta(seconds=3)))
        c.execute(update(jobs).where(mine, jobs.c.finished_at.is_not(None))
                  .values(finished_at=T0 + timedelta(seconds=8)))
        for job_id in ids.values():
            seq = c.execute(select(events.c.id).where(events.c.job_id == job_id).order_by(events.c.id)).scalars()
            for k, event_id in enumerate(list(seq)):
                c.execute(update(events).where(events.c.id == event_id).values(at=T0 + timedelta(seconds=k)))
        deliveries = WebhookDelivery.__table__
        seq = c.execute(select(deliveries.c.id).where(deliveries.c.job_id == ids["failed"])
                        .order_by(deliveries.c.id)).scalars()
        for k, delivery_id in enumerate(list(seq)):
            c.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(at=T0 + timedelta(seconds=10 + k)))


def expected_bodies(ids) -> dict[str, dict]:
    """The export_status bodies, written out (key order included)."""
    def base(name, status, *, stage=None, progress=0.0, started=None, finished=None, attempts=0, history=()):
        execution = name in ("running", "failed", "succeeded")
        return {"jobId": ids[name], "owner": "default", "status": status, "stage": stage, "progress": progress,
                "createdAt": at(0), "updatedAt": at(9), "startedAt": started, "finishedAt": finished,
                "attempts": attempts,
                "executionName": f"projects/p/locations/r/jobs/render/executions/{name}-1" if execution else None,
                "executionLogUri": f"https://console.cloud.google.com/run/jobs/executions/details/r/{name}-1/logs"
                if execution else None,
                "labels": {"app": "Story.v2", "b": "", "zone": "eu-1"} if name == "succeeded" else {},
                "externalRef": LABELLED["external_ref"] if name == "succeeded" else None,
                "history": [{"status": s, "at": at(k)} for k, s in enumerate(history)]}

    def cost(vcpu_s=0.0, gib_s=0.0, cpu_s=0.0, usd=0.0):
        return {"cost": {"vcpuSeconds": vcpu_s, "gibSeconds": gib_s, "cpuSeconds": cpu_s, "estimatedUsd": usd,
                         "pricing": {"vcpuSecondUsd": 1.8e-05, "gibSecondUsd": 2e-06,
                                     "source": "https://cloud.google.com/run/pricing (jobs, Tier 1, read 2026-12-05)"}}}

    # 4 vCPUs and 8 GiB for 2.5 s + 1.5 s: 16 vCPU-s and 32 GiB-s, 0.000352 USD at 0.000018 and 0.000002
    spent = cost(16.0, 32.0, 2.0, 0.000352)
    ran = ["queued", "dispatched", "running"]
    succeeded_id = ids["succeeded"]
    url = "http://storage.local/sceneflow-output/exports/" + succeeded_id + "/{}?X-Goog-Expires=900"
    return {
        "awaiting_upload": base("awaiting_upload", "awaiting_upload", history=["awaiting_upload"])
        | {"uploads": {"expected": ["a.png", "n.wav"], "received": ["a.png"]}} | cost(),
        "queued": base("queued", "queued", history=["awaiting_upload", "queued"]) | cost(),
        "running": base("running", "running", stage="rendering", progress=0.4568, started=at(3), attempts=2,
                        history=ran) | spent,
        "failed": base("failed", "failed", progress=0.4568, started=at(3), finished=at(8), attempts=2,
                       history=ran + ["failed"])
        | {"error": {"code": "render_failed", "message": "scenes[0].visual: a.png is not a decodable image"}}
        | spent | {"webhook": {"url": HOOK, "deliveries": [
               {"eventId": "evt_f_5", "type": "export.failed", "attempt": 1, "at": at(10), "httpStatus": None,
                "error": "TimeoutError: no answer within 5 s", "durationMs": 5000},
               {"eventId": "evt_f_5", "type": "export.failed", "attempt": 2, "at": at(11), "httpStatus": 204,
                "error": None, "durationMs": 31}]}},
        "succeeded": base("succeeded", "succeeded", progress=1.0, started=at(3), finished=at(8), attempts=2,
                          history=ran + ["succeeded"]) | spent
        | {"output": {"uri": f"gs://sceneflow-output/exports/{succeeded_id}/status-test.mp4",
                      "filename": "status-test.mp4", "url": url.format("status-test.mp4"), "durationS": 12.5,
                      "sizeBytes": 1234567, "width": 1280, "height": 720, "posterUrl": url.format("poster.jpg"),
                      "captions": {"srt": url.format("captions.srt"), "vtt": url.format("captions.vtt")},
                      "scenes": [{"startS": 0.0, "durationS": 6.4}, {"startS": 5.9, "durationS": 6.6}],
                      "loudness": {"integratedLufs": -16.02, "truePeakDb": -1.5, "lra": 4.25}, "warnings": []}},
        "canceled": base("canceled", "canceled", finished=at(8), history=["awaiting_upload", "canceled"])
        | {"error": {"code": "canceled", "message": "canceled by the client"}} | cost(),
    }


def test_status_bodies_are_identical_on_both_backends(db, tmp_path):
    """export_status in every state equals the written-out body, as JSON text (types and key order),
    on SQLite (records built in Python) and PostgreSQL (the view built by the server, one prepared
    statement); on PostgreSQL also equal to the record-built body of the same rows."""
    repo, engine = db
    ids = make_jobs_in_every_state(repo, engine)
    pin_timestamps(engine, ids)
    # timestamps are pinned in the past: an upload TTL longer than that keeps awaiting_upload shown as it is
    parts = dict(settings=Settings(upload_ttl_s=10 * 365 * 86400.0), storage=LocalStorage(tmp_path / "gcs"),
                 publisher=RecordingPublisher(),
                 launcher=RecordingLauncher())
    service = ExportService(repo=repo, **parts)
    by_records = ExportService(repo=build_repository(engine), **parts)  # no read engine: the ORM path
    expected = expected_bodies(ids)
    assert set(expected) == {s.value for s in S} - {"dispatched"}
    for name, job_id in ids.items():
        body = service.status(job_id)
        for field_name, value in expected[name].items():
            assert body[field_name] == value, (name, field_name)
        assert json.dumps(body) == json.dumps(expected[name]), name
        assert json.dumps(by_records.status(job_id)) == json.dumps(body), name
        assert json.dumps(service.status(f"  {job_id.upper()} ")) == json.dumps(body), name
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFound, match=unknown):
        service.status(unknown)
    assert repo.status_view(unknown) is None
    assert repo.status_view("x' OR 'a' = 'a") is None  # never reaches the database as SQL text


# -- adversarial review 2 (breaks 5 and 6): what reconcile relies on, on both backends ------------------
def test_a_stored_error_message_is_bounded(repo):
    from shared.errors import MESSAGE_MAX_CHARS

    job = new_job(repo, uploads=())
    assert repo.transition(job.id, S.FAILED, error_code="execution_failed", error_message="r" * 100_000)
    assert len(repo.get(job.id).error_message) == MESSAGE_MAX_CHARS
    assert repo.status_view(job.id)["error"] == {"code": "execution_failed",
                                                 "message": "r" * (MESSAGE_MAX_CHARS - 3) + "..."}


def test_a_touched_job_is_listed_after_the_others_even_when_it_reported(repo):
    jobs = [new_job(repo, uploads=()) for _ in range(3)]
    for job in jobs:
        assert repo.transition(job.id, S.DISPATCHED) and repo.transition(job.id, S.RUNNING, attempt=0)
        assert repo.report_progress(job.id, stage="rendering", progress=0.5, attempt=0)  # last_report_at set
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    listed = lambda: [j.id for j in repo.list_stale([S.RUNNING], later, limit=10_000) if j.id in {x.id for x in jobs}]  # noqa: E731
    assert listed() == [j.id for j in jobs]
    repo.touch(jobs[0].id)
    assert listed() == [jobs[1].id, jobs[2].id, jobs[0].id]


def test_usage_is_the_largest_per_attempt_summed_and_the_invariant_sees_a_job_without_it(db):
    from tests.invariants import finished_without_cost

    repo, engine = db
    paid, unpaid = new_job(repo, uploads=()), new_job(repo, uploads=())
    for j in (paid, unpaid):
        assert repo.transition(j.id, S.DISPATCHED) and repo.transition(j.id, S.RUNNING, attempt=0)
        assert repo.transition(j.id, S.FAILED, error_code="render_failed", error_message="no")
    for wall in (3.0, 1.0, 3.0):  # cumulative reports of attempt 0, one late and one repeated
        repo.record_usage(paid.id, 0, billed(wall, wall / 2, 2, 4))
    repo.record_usage(paid.id, 2, billed(0.5, 0.25, 2, 4))
    assert repo.usage_of(paid.id) == [billed(3.0, 1.5, 2, 4), billed(0.5, 0.25, 2, 4)]
    assert repo.usage_of(unpaid.id) == []
    listed = finished_without_cost(engine)  # the PostgreSQL database holds other tests' jobs too
    assert unpaid.id in listed and paid.id not in listed


def test_transitions_of_a_job_with_a_webhook_are_outbox_rows_until_published(db):
    """queued, running and terminal transitions of a job with a webhook are pending in the outbox in
    their own transaction; awaiting_upload and dispatched are not events; jobs without one write none."""
    repo, engine = db
    store = SqlWebhookStore(session_factory(engine))
    plain = new_job(repo, uploads=())
    job = new_job(repo, uploads=("a.png",), webhook_url=HOOK)
    assert repo.record_upload(job.id, "a.png", "1", 10).queued
    assert repo.transition(job.id, S.DISPATCHED) and repo.transition(job.id, S.RUNNING)
    assert repo.transition(job.id, S.SUCCEEDED, output={"object": "x"})
    pending = [p for p in store.pending() if p.job_id in (job.id, plain.id)]
    assert [(p.job_id, p.status) for p in pending] == [(job.id, "queued"), (job.id, "running"), (job.id, "succeeded")]
    store.mark_published(pending[0].seq)
    assert [p.status for p in store.pending(job.id)] == ["running", "succeeded"]
    assert store.secret("owner-a") == store.secret("owner-a") != store.secret("owner-b")
