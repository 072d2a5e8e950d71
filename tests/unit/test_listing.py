"""Labels and externalRef at export_start, and export_list (shared.listing) on the in-memory fakes:
query parsing and its 400s, the keyset page token, filters, pages while jobs arrive, and owners.
The same on SQLite and PostgreSQL (and 100,000 jobs): tests/integration/test_listing_db.py."""
from __future__ import annotations

import base64
import json

import pytest

from shared.config import Settings
from shared.errors import Conflict, InvalidRequest
from shared.identity import Caller
from shared.listing import MAX_PAGE_SIZE, parse_list_query
from shared.service import ExportService, spec_digest
from shared.spec import parse_spec
from tests.fakes import FakeRepository, FakeStorage, RecordingLauncher, RecordingPublisher

COLOR_SPEC = {"scenes": [{"id": "c", "visual": {"type": "color"}, "duration": 3}]}
A, B = Caller("author-a", "server_key"), Caller("author-b", "server_key")


@pytest.fixture
def svc() -> ExportService:
    return ExportService(settings=Settings(input_bucket="in", output_bucket="out"), repo=FakeRepository(),
                         storage=FakeStorage(), publisher=RecordingPublisher(), launcher=RecordingLauncher())


def start(svc, caller=A, **extra) -> str:
    return svc.start({"spec": COLOR_SPEC, **extra}, caller=caller).body["jobId"]


def problems(exc_info) -> list[tuple[str, str]]:
    return [(d["path"], d["message"]) for d in exc_info.value.details]


def listed(svc, caller=A, **params) -> dict:
    args = {k: v if isinstance(v, list) else [str(v)] for k, v in params.items()}
    return svc.list_exports(args, caller)


# -- labels and externalRef at export_start ------------------------------------------------------------
def test_labels_and_external_ref_are_stored_and_shown_by_status(svc):
    job_id = start(svc, labels={"zone": "eu", "app": "Story.v2", "empty": ""}, externalRef="book-7/ch-3")
    body = svc.status(job_id, A)
    assert body["labels"] == {"app": "Story.v2", "empty": "", "zone": "eu"}
    assert list(body["labels"]) == ["app", "empty", "zone"]
    assert body["externalRef"] == "book-7/ch-3"
    plain = svc.status(start(svc), A)
    assert plain["labels"] == {} and plain["externalRef"] is None


@pytest.mark.parametrize("labels, path, fragment", [
    ({"Env": "x"}, "labels.Env", "label key 'Env'"),
    ({"1st": "x"}, "labels.1st", "starting with a letter"),
    ({"k" * 64: "x"}, "labels." + "k" * 63, "1-63 characters"),
    ({"": "x"}, "labels.", "label key ''"),
    ({"env": "has space"}, "labels.env", "label value 'has space'"),
    ({"env": "v" * 64}, "labels.env", "0-63 characters"),
    ({"env": "é"}, "labels.env", "label value"),
])
def test_a_bad_label_is_a_400_naming_it(svc, labels, path, fragment):
    with pytest.raises(InvalidRequest) as exc:
        svc.start({"spec": COLOR_SPEC, "labels": labels}, caller=A)
    assert [p for p, m in problems(exc) if fragment in m] == [path], problems(exc)


def test_label_count_types_and_external_ref_limits(svc):
    with pytest.raises(InvalidRequest) as exc:
        svc.start({"spec": COLOR_SPEC, "labels": {f"k{i}": "v" for i in range(17)}}, caller=A)
    assert [p for p, _ in problems(exc)] == ["labels"]
    with pytest.raises(InvalidRequest) as exc:
        svc.start({"spec": COLOR_SPEC, "labels": {"n": 3}, "externalRef": "r" * 201}, caller=A)
    assert sorted(p for p, _ in problems(exc)) == ["externalRef", "labels.n"]
    with pytest.raises(InvalidRequest) as exc:
        svc.start({"spec": COLOR_SPEC, "externalRef": "line\nbreak"}, caller=A)
    assert problems(exc) == [("externalRef", "must not contain control characters")]
    assert svc.repo.rows == {}
    assert start(svc, labels={f"k{i}": "v" for i in range(16)}, externalRef="r" * 200)


def test_a_replay_with_other_labels_or_reference_is_another_request(svc):
    first = svc.start({"spec": COLOR_SPEC, "labels": {"a": "1"}, "externalRef": "x"}, "key-1", A)
    again = svc.start({"spec": COLOR_SPEC, "labels": {"a": "1"}, "externalRef": "x"}, "key-1", A)
    assert first.created and not again.created and again.body["jobId"] == first.body["jobId"]
    for other in ({"labels": {"a": "2"}, "externalRef": "x"}, {"labels": {"a": "1"}}, {"externalRef": "x"}):
        with pytest.raises(Conflict, match="labels or externalRef"):
            svc.start({"spec": COLOR_SPEC, **other}, "key-1", A)
    # a start without labels or reference keeps the digest it had before labels existed ({} = none)
    plain = svc.start({"spec": COLOR_SPEC}, "key-2", A)
    canonical = parse_spec(COLOR_SPEC).model_dump(mode="json", by_alias=True)
    assert svc.repo.get(plain.body["jobId"]).spec_sha256 == spec_digest({"spec": canonical, "uploads": []})
    assert not svc.start({"spec": COLOR_SPEC, "labels": {}}, "key-2", A).created


# -- export_list ------------------------------------------------------------------------------------------
def test_the_list_is_newest_first_without_urls_and_only_the_callers(svc):
    mine = [start(svc, labels={"n": str(i)}) for i in range(3)]
    theirs = start(svc, B)
    body = listed(svc)
    assert [e["jobId"] for e in body["exports"]] == mine[::-1]
    assert "nextPageToken" not in body
    first = body["exports"][0]
    assert list(first) == ["jobId", "status", "stage", "progress", "labels", "externalRef", "createdAt",
                           "updatedAt", "finishedAt"]
    assert first["status"] == "queued" and first["labels"] == {"n": "2"} and first["progress"] == 0.0
    assert "url" not in json.dumps(body)
    assert [e["jobId"] for e in listed(svc, B)["exports"]] == [theirs]
    assert listed(svc, Caller("nobody"))["exports"] == []


def test_an_error_is_in_the_summary(svc):
    job_id = start(svc)
    svc.cancel({"jobId": job_id}, A)
    (item,) = listed(svc)["exports"]
    assert item["status"] == "canceled" and item["finishedAt"] is not None
    assert item["error"] == {"code": "canceled", "message": "canceled by the client"}


def test_filters_status_labels_reference_and_time(svc):
    a = start(svc, labels={"book": "b7", "lang": "en"}, externalRef="r-1")
    b = start(svc, labels={"book": "b7", "lang": "fr"})
    c = start(svc, labels={"book": "b8"})
    svc.cancel({"jobId": b}, A)
    ids = lambda **p: [e["jobId"] for e in listed(svc, **p)["exports"]]  # noqa: E731
    assert ids(label="book:b7") == [b, a]
    assert ids(label=["book:b7", "lang:en"]) == [a]
    assert ids(label="lang:de") == []
    assert ids(status="canceled") == [b]
    assert ids(status=["queued", "canceled"]) == [c, b, a] == ids(status="queued,canceled")
    assert ids(externalRef="r-1") == [a]
    created = {e["jobId"]: e["createdAt"] for e in listed(svc)["exports"]}
    rows = svc.repo.rows
    assert ids(createdAfter=rows[b]["created_at"].isoformat()) == [c, b]
    assert ids(createdBefore=rows[b]["created_at"].isoformat()) == [a]
    assert ids(createdAfter=created[a], createdBefore=rows[c]["created_at"].isoformat()) == [b, a]


def test_pages_follow_the_cursor_while_new_jobs_arrive(svc):
    before = [start(svc) for _ in range(7)]
    seen, token, pages = [], None, 0
    while True:
        body = listed(svc, pageSize=3, **({"pageToken": token} if token else {}))
        seen += [e["jobId"] for e in body["exports"]]
        pages += 1
        start(svc)  # a newer job arrives between pages: it never shifts a later page
        token = body.get("nextPageToken")
        if not token:
            break
    assert seen == before[::-1] and pages == 3


@pytest.mark.parametrize("params, path", [
    ({"pageSize": "0"}, "pageSize"), ({"pageSize": str(MAX_PAGE_SIZE + 1)}, "pageSize"),
    ({"pageSize": "ten"}, "pageSize"), ({"pageSize": ["5", "6"]}, "pageSize"),
    ({"status": "done"}, "status[0]"), ({"label": "book"}, "label"), ({"label": "Book:x"}, "label.Book"),
    ({"label": ["k:a", "k:b"]}, "label.k"), ({"externalRef": "a\x00b"}, "externalRef"),
    ({"createdAfter": "2026-01-02"}, "createdAfter"), ({"createdAfter": "1767225600"}, "createdAfter"),
    ({"createdBefore": "2026-01-02T03:04:05"}, "createdBefore"),
    ({"createdAfter": "2026-02-01T00:00:00Z", "createdBefore": "2026-01-01T00:00:00Z"}, "createdBefore"),
    ({"pageToken": "not a token"}, "pageToken"), ({"jobId": "x"}, "jobId"), ({"page_size": "5"}, "page_size"),
])
def test_a_bad_parameter_is_a_400_naming_it(svc, params, path):
    with pytest.raises(InvalidRequest) as exc:
        listed(svc, **params)
    assert path in [p for p, _ in problems(exc)], problems(exc)


def test_a_tampered_or_foreign_page_token_is_a_400(svc):
    for _ in range(3):
        start(svc, labels={"k": "v"})
    token = listed(svc, pageSize=1, label="k:v")["nextPageToken"]
    assert len(listed(svc, pageSize=1, label="k:v", pageToken=token)["exports"]) == 1
    with pytest.raises(InvalidRequest, match="other filters"):
        listed(svc, pageSize=1, pageToken=token)  # the label filter left out
    data = json.loads(base64.urlsafe_b64decode(token + "=="))
    for forged in ({**data, "id": "x"}, {**data, "t": "yesterday"}, {**data, "v": 2}, {**data, "extra": 1},
                   [data], {**data, "f": data["f"].upper()}):
        bad = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
        with pytest.raises(InvalidRequest) as exc:
            listed(svc, pageSize=1, label="k:v", pageToken=bad)
        assert problems(exc)[0][0] == "pageToken"
    with pytest.raises(InvalidRequest):
        listed(svc, pageSize=1, label="k:v", pageToken=token[:-3])


def test_a_token_names_a_point_in_the_callers_own_list_only(svc):
    """A token made by hand (or taken from another owner) only chooses where the caller's own list
    starts: no other owner's job can come back."""
    start(svc, B)
    start(svc, B)
    token = listed(svc, B, pageSize=1)["nextPageToken"]
    assert listed(svc, A, pageToken=token)["exports"] == []


def test_parse_defaults_and_normalisation():
    page = parse_list_query({"status": ["running, queued", "queued"], "label": ["b:2", "a:1", "a:1"],
                             "createdAfter": ["2026-01-02t03:04:05.1234567+01:00"]})
    assert page.where.statuses == ("queued", "running") and page.where.labels == (("a", "1"), ("b", "2"))
    assert page.where.created_after.isoformat() == "2026-01-02T02:04:05.123456+00:00"
    assert page.page_size == 20 and page.after is None
    same = parse_list_query({"status": ["queued,running"]}).digest
    assert same == parse_list_query({"status": ["running", "queued"]}).digest != page.digest
