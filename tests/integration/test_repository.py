"""The repository on SQLite and on PostgreSQL (pg8000): migrations, conditional transitions,
progress that only rises, upload bookkeeping, and concurrent claims."""
import threading
import uuid

import pytest
from sqlalchemy import inspect

from shared.bootstrap import build_repository
from shared.db import engine_for_url, migrate
from shared.states import JobStatus as S


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def repo(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/r.db"
    else:
        url = request.getfixturevalue("pg_url")
    migrate(url)
    migrate(url)  # idempotent
    engine = engine_for_url(url)
    assert {"export_jobs", "export_job_events", "export_job_uploads"} <= set(inspect(engine).get_table_names())
    reads = engine_for_url(url, autocommit=True) if request.param == "postgres" else None
    yield build_repository(engine, reads)  # as wired in production (autocommit reads on PostgreSQL)
    engine.dispose()


def new_job(repo, uploads=("a.png", "n.wav"), key=None):
    job, created = repo.create(spec={"scenes": []}, spec_sha256="0" * 64,
                               status=S.AWAITING_UPLOAD if uploads else S.QUEUED,
                               uploads_expected=list(uploads), idempotency_key=key)
    assert created
    return job


def test_lifecycle_history_and_terminal(repo):
    job = new_job(repo)
    assert repo.record_upload(job.id, "a.png", "1", 10) == (True, False)
    assert repo.record_upload(job.id, "a.png", "1", 10) == (True, False)  # duplicate
    assert repo.record_upload(job.id, "other.png", "1", 10) == (False, False)  # undeclared
    assert repo.record_upload(job.id, "n.wav", "2", 20) == (True, True)
    assert repo.record_upload(job.id, "n.wav", "2", 20) == (True, False)
    assert repo.transition(job.id, S.DISPATCHED) is True
    assert repo.transition(job.id, S.DISPATCHED) is False
    assert repo.transition(job.id, S.RUNNING) is True
    assert repo.report_progress(job.id, stage="rendering", progress=0.6, attempt=1)
    assert repo.report_progress(job.id, stage="rendering", progress=0.2, attempt=0)
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
    a = new_job(repo, key="key-1")
    b, created = repo.create(spec={}, spec_sha256="1" * 64, status=S.QUEUED, uploads_expected=[],
                             idempotency_key="key-1")
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
