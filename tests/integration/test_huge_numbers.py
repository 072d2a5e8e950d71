"""Integer literals past the float range, and strict JSON writers (adversarial review of issue 14,
break 1). An int such as 10**400 is not a float in decoded JSON, but a float field turns it into inf:
export_start refuses it with 400 naming the field, on SQLite and PostgreSQL, and nothing is stored
(no job row, no spec.json). The database engines refuse to write NaN/Infinity into a JSON column,
and a spec.json whose job row could not be created is deleted."""
from __future__ import annotations

import json

import pytest
from functions_framework import create_app

from shared import bootstrap
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from shared.errors import TransientError
from shared.spec import json_schema
from shared.states import JobStatus
from tests.fakes import RecordingLauncher, RecordingPublisher
from tests.integration.functions_env import SOURCE

HUGE = 10**400  # json.dumps writes all 401 digits; float(HUGE) overflows
OK_SPEC = {"scenes": [{"id": "s1", "visual": {"type": "color"}, "duration": 1}]}


def number_fields() -> list[tuple]:
    """Every spec field whose JSON Schema type is `number` (a float field), as a path of keys and
    list indices (0 for "an item of this list"), found by walking the schema."""
    schema = json_schema()
    defs = schema["$defs"]
    found: set[tuple] = set()

    def walk(node: dict, path: tuple) -> None:
        while "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        for alt in node.get("anyOf") or node.get("oneOf") or ():
            walk(alt, path)
        if node.get("type") == "number":
            found.add(path)
        for key, sub in (node.get("properties") or {}).items():
            walk(sub, path + (key,))
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + (0,))

    walk(schema, ())
    return sorted(found, key=str)


NUMBER_FIELDS = number_fields()


def dotted(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def spec_with_huge(path: tuple) -> dict:
    """OK_SPEC with HUGE at `path` (containers created on the way)."""
    spec = json.loads(json.dumps(OK_SPEC))
    node = spec
    for key, nxt in zip(path, path[1:]):
        if isinstance(key, int):
            while len(node) <= key:
                node.append({})
        elif key not in node:
            node[key] = [] if isinstance(nxt, int) else {}
        node = node[key]
    node[path[-1]] = HUGE
    return spec


def service_on(url: str, tmp_path):
    storage = LocalStorage(tmp_path / "gcs")
    service = bootstrap.build_service(Settings(database_url=url, input_bucket="in", output_bucket="out"),
                                      storage=storage, publisher=RecordingPublisher(),
                                      launcher=RecordingLauncher(), migrate_db=True)
    bootstrap.use_service(service)
    return service


def spec_files(tmp_path) -> list[str]:
    return sorted(p.relative_to(tmp_path / "gcs").as_posix() for p in (tmp_path / "gcs").rglob("spec.json"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request, tmp_path):
    url = f"sqlite:///{tmp_path}/jobs.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    service = service_on(url, tmp_path)
    yield service, create_app(target="export_start", source=SOURCE).test_client()
    bootstrap.use_service(None)


def test_the_schema_walk_finds_the_float_fields():
    names = {dotted(p) for p in NUMBER_FIELDS}
    assert {"poster.timeS", "scenes[0].visual.trimStartS", "scenes[0].visual.trimEndS",
            "scenes[0].caption.cues[0].endS", "scenes[0].duration", "music.volume"} <= names
    assert len(names) >= 15


@pytest.mark.parametrize("path", NUMBER_FIELDS, ids=[dotted(p) for p in NUMBER_FIELDS])
def test_an_integer_past_the_float_range_is_refused_in_every_float_field(backend, tmp_path, path):
    service, client = backend
    before = service.repo.count_by_status()
    raw = json.dumps({"spec": spec_with_huge(path)}).encode()
    assert b"1" + b"0" * 400 in raw
    resp = client.post("/", data=raw, content_type="application/json")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 400, text[:300]
    details = json.loads(text)["error"]["details"]
    assert details == [{"path": f"spec.{dotted(path)}",
                        "message": "must be a finite number (NaN, Infinity and magnitudes above 1.8e308 "
                                   "are not allowed)"}]
    assert service.repo.count_by_status() == before  # no row (PostgreSQL is shared by the session)
    assert spec_files(tmp_path) == []  # and no orphan spec.json


def test_the_largest_integer_a_float_holds_is_still_a_number(backend, tmp_path):
    """10**308 is finite as a float: the field's own rule answers (here poster.timeS past the video
    is accepted at start and clamped by the render plan), not the non-finite check."""
    service, client = backend
    raw = json.dumps({"spec": {**OK_SPEC, "poster": {"timeS": 10**308}}}).encode()
    resp = client.post("/", data=raw, content_type="application/json")
    assert resp.status_code == 202, resp.get_data(as_text=True)[:300]
    job = service.repo.get(resp.json["jobId"])
    assert job.spec["poster"]["timeS"] == 1e308
    stored = (tmp_path / "gcs" / "in" / "jobs" / job.id / "spec.json").read_text()
    assert json.loads(stored, parse_constant=lambda t: pytest.fail(f"{t} in spec.json"))["poster"]["timeS"] == 1e308
    service.cancel({"jobId": job.id})


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_the_database_never_stores_a_non_finite_number(backend, value):
    """Every JSON column goes through the engine's strict serializer: NaN/Infinity raise."""
    service, _ = backend
    before = service.repo.count_by_status()
    with pytest.raises(Exception) as exc:
        service.repo.create(spec={"poster": {"timeS": value}}, spec_sha256="x" * 64, status=JobStatus.QUEUED,
                            uploads_expected=[], idempotency_key=None)
    assert "Out of range float values are not JSON compliant" in str(exc.value)
    assert service.repo.count_by_status() == before


@pytest.mark.parametrize("error,status", [(RuntimeError("constraint violated"), 500),
                                          (TransientError("database unavailable"), 503)],
                         ids=["permanent", "transient"])
def test_spec_json_is_deleted_when_the_job_row_cannot_be_created(backend, tmp_path, monkeypatch, error, status):
    """The spec is uploaded before the row is inserted: any failure of the insert deletes it again."""
    service, client = backend

    def create(**kw):
        raise error

    monkeypatch.setattr(service.repo, "create", create)
    resp = client.post("/", json={"spec": OK_SPEC}, headers={"Idempotency-Key": "k-create-fails"})
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    assert spec_files(tmp_path) == []
