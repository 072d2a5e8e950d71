"""export_list on real databases: the repository's query on SQLite and PostgreSQL (filters, labels,
owners, keyset pages), the HTTP function through functions-framework, and, on PostgreSQL, 100,000
jobs paged through with stable cursors while a thread inserts newer jobs, with EXPLAIN of the
repository's own statement (an index scan on the migration's indexes, no Seq Scan, no Sort)."""
from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from shared import bootstrap
from shared.bootstrap import build_repository
from shared.clock import utcnow
from shared.config import Settings
from shared.db import engine_for_url, migrate
from shared.identity import Caller
from shared.list_sql import list_statement
from shared.ports import JobFilter
from shared.service import ExportService
from shared.states import JobStatus as S
from tests.bulk_jobs import insert_jobs
from tests.fakes import FakeStorage, RecordingLauncher, RecordingPublisher
from tests.integration.functions_env import make_functions_env

COLOR = {"scenes": [{"id": "c", "visual": {"type": "color"}, "duration": 1}]}


def drop_database(url: str) -> None:
    """Drop a database fresh_postgres_database made (a TEST_DATABASE_URL server keeps no 110,000 rows)."""
    import pg8000.native
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = pg8000.native.Connection(u.username or "postgres", host=u.host or "127.0.0.1", port=u.port or 5432,
                                    password=u.password, database="postgres")
    try:
        conn.run(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)')
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def svc(request, tmp_path):
    """An ExportService on each backend, wired as in production (autocommit reads on PostgreSQL)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/l.db"
    else:
        from infra.local.stack import fresh_postgres_database

        url = fresh_postgres_database(request.getfixturevalue("pg_url"), prefix="sflist")
    migrate(url)
    engine = engine_for_url(url)
    reads = engine_for_url(url, autocommit=True) if request.param == "postgres" else None
    yield ExportService(settings=Settings(input_bucket="in", output_bucket="out"),
                        repo=build_repository(engine, reads), storage=FakeStorage(),
                        publisher=RecordingPublisher(), launcher=RecordingLauncher())
    engine.dispose()
    if reads is not None:
        reads.dispose()
        drop_database(url)


def ids(svc, caller, **params) -> list[str]:
    args = {k: v if isinstance(v, list) else [str(v)] for k, v in params.items()}
    return [e["jobId"] for e in svc.list_exports(args, caller)["exports"]]


def test_filters_pages_and_owners_on_both_backends(svc):
    a, b = Caller("author-a"), Caller("author-b")
    start = lambda caller, **extra: svc.start({"spec": COLOR, **extra}, caller=caller).body["jobId"]  # noqa: E731
    j1 = start(a, labels={"book": "b7", "lang": "en"}, externalRef="ref-1")
    j2 = start(a, labels={"book": "b7", "lang": "fr"})
    j3 = start(a, labels={"book": "b8", "lang": "en"})
    theirs = start(b, labels={"book": "b7", "lang": "en"}, externalRef="ref-1")
    svc.cancel({"jobId": j2}, a)
    assert ids(svc, a) == [j3, j2, j1]
    assert ids(svc, b) == [theirs]
    assert ids(svc, a, label="book:b7") == [j2, j1]
    assert ids(svc, a, label=["book:b7", "lang:en"]) == [j1]
    assert ids(svc, b, label=["book:b7", "lang:en"]) == [theirs]
    assert ids(svc, a, status="canceled") == [j2] and ids(svc, a, status="queued,canceled") == [j3, j2, j1]
    assert ids(svc, a, externalRef="ref-1") == [j1] and ids(svc, b, externalRef="ref-1") == [theirs]
    first = svc.list_exports({"pageSize": ["2"]}, a)
    assert [e["jobId"] for e in first["exports"]] == [j3, j2]
    assert first["exports"][1]["error"] == {"code": "canceled", "message": "canceled by the client"}
    assert first["exports"][0]["labels"] == {"book": "b8", "lang": "en"}
    assert ids(svc, a, pageSize=2, pageToken=first["nextPageToken"]) == [j1]
    created = svc.status(j2, a)["createdAt"]
    assert ids(svc, a, createdBefore=created) == [j1]  # exclusive; millisecond text: j2 itself may be later
    assert j2 in ids(svc, a, createdAfter=created)


def test_export_list_over_http(tmp_path):
    env = make_functions_env(tmp_path, input_bucket="in", output_bucket="out", client_token="tok")
    auth = {"Authorization": "Bearer tok"}
    try:
        r = env.c["export_start"].post("/", json={"spec": COLOR, "labels": {"book": "b7"}, "externalRef": "x/1"},
                                       headers=auth)
        assert r.status_code == 202, r.json
        job_id = r.json["jobId"]
        lst = env.c["export_list"]
        assert lst.get("/").status_code == 401
        ok = lst.get("/?label=book:b7&status=queued&pageSize=5", headers=auth)
        assert ok.status_code == 200 and [e["jobId"] for e in ok.json["exports"]] == [job_id]
        assert ok.json["exports"][0]["externalRef"] == "x/1" and "nextPageToken" not in ok.json
        for query, path in (("pageSize=500", "pageSize"), ("pageToken=%00", "pageToken"), ("label=nope", "label"),
                            ("status=done", "status[0]"), ("createdAfter=yesterday", "createdAfter")):
            bad = lst.get(f"/?{query}", headers=auth)
            assert bad.status_code == 400 and [d["path"] for d in bad.json["error"]["details"]] == [path], bad.json
        assert lst.post("/", headers=auth).status_code == 405
        status = env.c["export_status"].get(f"/?jobId={job_id}", headers=auth).json
        assert status["labels"] == {"book": "b7"} and status["externalRef"] == "x/1"
    finally:
        bootstrap.use_service(None)


# -- PostgreSQL, 100,000 jobs ---------------------------------------------------------------------------
class Explain(Executable, ClauseElement):
    """EXPLAIN (FORMAT JSON) of a statement, bound and sent as the repository sends it (SQLAlchemy's
    compiler extension recipe)."""

    inherit_cache = False

    def __init__(self, stmt):
        self.stmt = stmt


@compiles(Explain, "postgresql")
def _explain(element, compiler, **kw):
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.stmt, **kw)


def plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


@pytest.fixture(scope="module")
def big(pg_url):
    """(service, engine, owner, start time) on a fresh database holding 110,000 jobs."""
    from infra.local.stack import fresh_postgres_database

    url = fresh_postgres_database(pg_url, prefix="sflist100k")
    migrate(url)
    engine, reads = engine_for_url(url), engine_for_url(url, autocommit=True)
    owner, t0 = "author-100k", utcnow() - timedelta(days=1)
    with engine.begin() as c:
        insert_jobs(c, owner, 100_000, 10_000, t0)
    svc = ExportService(settings=Settings(input_bucket="in", output_bucket="out"),
                        repo=build_repository(engine, reads), storage=FakeStorage(),
                        publisher=RecordingPublisher(), launcher=RecordingLauncher())
    yield svc, engine, owner
    engine.dispose()
    reads.dispose()
    drop_database(url)


def test_100k_jobs_page_once_each_in_order_while_new_jobs_arrive(big):
    svc, engine, owner = big
    with engine.connect() as c:
        existing = [r[0] for r in c.execute(text(
            "SELECT id FROM export_jobs WHERE owner = :o ORDER BY created_at DESC, id DESC"), {"o": owner})]
    assert len(existing) == 100_000
    inserted, stop = [], threading.Event()

    def insert_newer() -> None:  # the app keeps starting exports while a client pages
        while not stop.is_set():
            job, _ = svc.repo.create(spec={}, spec_sha256="0" * 64, status=S.QUEUED, uploads_expected=[],
                                     idempotency_key=None, owner=owner, labels={"book": "b1"})
            inserted.append(job.id)
            time.sleep(0.002)

    inserter = threading.Thread(target=insert_newer, daemon=True)
    inserter.start()
    try:
        seen, token, pages = [], None, 0
        while True:
            # at least one newer job arrives between two pages, however loaded the machine is
            deadline = time.monotonic() + 30
            while len(inserted) <= pages and time.monotonic() < deadline:
                time.sleep(0.002)
            body = svc.list_exports({"pageSize": ["100"], **({"pageToken": [token]} if token else {})}, Caller(owner))
            seen += [e["jobId"] for e in body["exports"]]
            pages += 1
            token = body.get("nextPageToken")
            if not token:
                break
    finally:
        stop.set()
        inserter.join(10)
    assert len(seen) == len(set(seen)), "a job was listed twice"
    old = set(existing)
    assert [j for j in seen if j in old] == existing  # each once, newest first
    assert set(seen) - old <= set(inserted)  # the rest are the new ones, of this owner
    assert len(inserted) >= pages, "the inserts did not run alongside the pages"


def test_another_owner_never_sees_the_100k(big):
    svc, engine, owner = big
    seen, token = [], None
    while True:
        body = svc.list_exports({"pageSize": ["100"], **({"pageToken": [token]} if token else {})},
                                Caller("other-3"))
        seen += [e["jobId"] for e in body["exports"]]
        token = body.get("nextPageToken")
        if not token:
            break
    with engine.connect() as c:
        theirs = {r[0] for r in c.execute(text("SELECT id FROM export_jobs WHERE owner = 'other-3'"))}
    assert len(seen) == 1000 and set(seen) == theirs


@pytest.mark.parametrize("where, index", [
    (JobFilter(), "ix_export_jobs_owner_created"),
    (JobFilter(statuses=("running",)), "ix_export_jobs_owner_status_created"),
])
@pytest.mark.parametrize("deep", [False, True])
def test_a_page_is_one_index_scan_without_sort(big, where, index, deep):
    svc, engine, owner = big
    after = None
    if deep:  # a page far down the list: the keyset is a range of the index, not a filter
        with engine.connect() as c:
            after = tuple(c.execute(text("SELECT created_at, id FROM export_jobs WHERE owner = :o "
                                         "ORDER BY created_at DESC, id DESC OFFSET 80000 LIMIT 1"), {"o": owner}).one())
    stmt = list_statement("postgresql", owner, where, after, 101)
    with engine.connect() as c:
        plan = c.execute(Explain(stmt)).scalar()[0]["Plan"]
    nodes = list(plan_nodes(plan))
    kinds = [n["Node Type"] for n in nodes]
    print(json.dumps(plan)[:2000])
    assert "Seq Scan" not in kinds and "Sort" not in kinds and "Incremental Sort" not in kinds, kinds
    scans = [n for n in nodes if n["Node Type"] in ("Index Scan", "Index Only Scan")]
    assert [n["Index Name"] for n in scans] == [index], kinds
    if deep:
        assert "created_at" in scans[0]["Index Cond"], scans[0]


@pytest.mark.parametrize("label", [("book", "b7"), ("rare", "yes")])
def test_a_label_page_reads_no_whole_table(big, label):
    """Labels: a common one (1 in 100) walks the owner's index, filtering; a rare one (1 in 1,000) is
    found through the GIN index and its few rows sorted; the planner chooses by its statistics.
    Either way no Seq Scan (BENCHMARKS.md, "Listing", has the times)."""
    svc, engine, owner = big
    stmt = list_statement("postgresql", owner, JobFilter(labels=(label,)), None, 21)
    with engine.connect() as c:
        plan = c.execute(Explain(stmt)).scalar()[0]["Plan"]
    nodes = list(plan_nodes(plan))
    print(label, [(n["Node Type"], n.get("Index Name")) for n in nodes])
    assert "Seq Scan" not in [n["Node Type"] for n in nodes]
    assert {n.get("Index Name") for n in nodes} & {"ix_export_jobs_owner_created", "ix_export_jobs_labels"}
