"""Each function through functions-framework's create_app(...).test_client(), on SQLite with the
local adapters (folder storage, recording publisher and launcher)."""
import base64
import json
import uuid

import pytest

from infra.local.eventarc import binary_event, storage_source
from shared import bootstrap
from shared.events import FINALIZED_TYPE
from tests.integration.functions_env import make_functions_env

TOKEN = "worker-secret-0123456789"


@pytest.fixture
def env(tmp_path):
    yield make_functions_env(tmp_path, worker_token=TOKEN, input_bucket="in-bkt", output_bucket="out-bkt",
                             api_base="http://api.test")
    bootstrap.use_service(None)

SPEC = {"title": "Two scenes", "output": {"resolution": "720p"},
        "scenes": [{"id": "a", "visual": {"type": "image", "src": "a.png"}, "narration": {"src": "n1.wav"},
                    "caption": {"text": "It's 100%: done"}},
                   {"id": "b", "visual": {"type": "color", "color": "#102030"}, "duration": 2}]}
UPLOADS = [{"name": "a.png", "contentType": "image/png"}, {"name": "n1.wav", "contentType": "audio/wav"}]


def start(env, spec=SPEC, uploads=UPLOADS, **headers):
    return env.c["export_start"].post("/", json={"spec": spec, "uploads": uploads}, headers=headers)


def finalize(env, bucket, name, generation="1", metadata=None):
    data = {"bucket": bucket, "name": name, "generation": generation, "size": "10",
            "metadata": metadata or {}}
    headers, body = binary_event(FINALIZED_TYPE, storage_source(bucket), data)
    return env.c["on_object_finalized"].post("/", data=body, headers=headers)


def push(env, job_id):
    body = {"message": {"data": base64.b64encode(json.dumps({"jobId": job_id}).encode()).decode(),
                        "messageId": uuid.uuid4().hex, "attributes": {}},
            "subscription": "projects/p/subscriptions/dispatch"}
    return env.c["dispatch_export"].post("/projects/p/topics/export-jobs", json=body)


def status(env, job_id):
    return env.c["export_status"].get(f"/?jobId={job_id}")


def complete(env, body, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return env.c["export_complete"].post("/", json=body, headers=headers)


def test_full_lifecycle_and_duplicates(env):
    r = start(env)
    assert r.status_code == 202, r.json
    job = r.json
    assert job["status"] == "awaiting_upload"
    assert [u["name"] for u in job["uploads"]] == ["a.png", "n1.wav"]
    assert all(u["method"] == "PUT" and u["headers"] == {"Content-Type": t["contentType"],
                                                         "x-goog-content-length-range": f"1,{500 * 1024 * 1024}"}
               for u, t in zip(job["uploads"], UPLOADS))
    assert job["statusUrl"] == f"http://api.test/export_status?jobId={job['jobId']}"
    jid = job["jobId"]
    spec_obj = json.loads(env.storage.read_bytes("in-bkt", f"jobs/{jid}/spec.json"))
    assert spec_obj["scenes"][0]["caption"]["text"] == "It's 100%: done"

    for name in ("a.png", "n1.wav"):  # the finalize is checked against the object (adversarial review)
        env.storage.upload_bytes("in-bkt", f"jobs/{jid}/assets/{name}", b"media", "application/octet-stream")
    assert finalize(env, "in-bkt", f"jobs/{jid}/assets/a.png").status_code == 200
    assert status(env, jid).json["status"] == "awaiting_upload"
    assert finalize(env, "in-bkt", f"jobs/{jid}/assets/n1.wav").status_code == 200
    assert finalize(env, "in-bkt", f"jobs/{jid}/assets/n1.wav").status_code == 200  # duplicate
    assert status(env, jid).json["status"] == "queued"
    assert env.publisher.messages == [jid]

    # the same Pub/Sub message delivered twice starts one execution
    assert push(env, jid).status_code == 200
    assert push(env, jid).status_code == 200
    assert env.launcher.launched == [jid]
    st = status(env, jid).json
    assert st["status"] == "dispatched" and st["executionName"].endswith("exec-1")

    assert complete(env, {"jobId": jid, "status": "running", "stage": "rendering", "progress": 0.5,
                          "attempt": 0}).json["applied"] is True
    complete(env, {"jobId": jid, "status": "running", "stage": "rendering", "progress": 0.3, "attempt": 0})
    st = status(env, jid).json
    assert (st["status"], st["stage"], st["progress"], st["attempts"]) == ("running", "rendering", 0.5, 1)

    meta = {"job-id": jid, "duration-s": "6.5", "width": "1280", "height": "720", "filename": "two-scenes.mp4",
            "poster": "poster.jpg", "srt": "captions.srt", "vtt": "captions.vtt",
            "scene-starts": "0.000,4.500", "scene-durations": "5.000,2.000",
            "loudness-i": "-16.2", "loudness-tp": "-1.6"}  # no loudness-lra: unmeasured values are left out
    video = f"exports/{jid}/two-scenes.mp4"
    # the finalize is checked against the object itself (issue 14): the render job's upload
    gen = env.storage.upload_bytes("out-bkt", video, b"\0\0\0\x18ftypmp42", "video/mp4", metadata=meta)
    assert finalize(env, "out-bkt", video, generation=str(gen), metadata=meta).status_code == 200
    assert finalize(env, "out-bkt", video, metadata=meta).status_code == 200  # duplicate finalize
    # a late worker report changes nothing
    late = complete(env, {"jobId": jid, "status": "failed", "error": {"code": "x", "message": "late"}, "attempt": 0})
    assert late.status_code == 200 and late.json == {"jobId": jid, "status": "succeeded", "applied": False}
    st = status(env, jid).json
    assert st["status"] == "succeeded" and st["progress"] == 1.0
    assert [h["status"] for h in st["history"]] == ["awaiting_upload", "queued", "dispatched", "running", "succeeded"]
    out = st["output"]
    assert out["uri"] == f"gs://out-bkt/{video}" and out["durationS"] == 6.5 and out["sizeBytes"] == 12
    assert (out["width"], out["height"]) == (1280, 720)
    assert out["url"].startswith("http://storage.local/out-bkt/exports/")
    assert out["posterUrl"] and set(out["captions"]) == {"srt", "vtt"}
    assert out["scenes"] == [{"startS": 0.0, "durationS": 5.0}, {"startS": 4.5, "durationS": 2.0}]
    assert out["loudness"] == {"integratedLufs": -16.2, "truePeakDb": -1.6, "lra": None}
    assert "error" not in st


def test_invalid_spec_lists_every_error(env):
    spec = {"scenes": [{"id": "a", "visual": {"type": "image", "src": "../x.png"}, "duration": 0},
                       {"id": "b", "visual": {"type": "image", "src": "missing.png"}}],
            "output": {"fps": 7}}
    r = start(env, spec=spec, uploads=[{"name": "x.png", "contentType": "text/html"}])
    assert r.status_code == 400
    err = r.json["error"]
    assert err["code"] == "invalid_request"
    paths = {d["path"] for d in err["details"]}
    assert {"spec.scenes[0].visual.src", "spec.scenes[0].duration", "spec.output.fps",
            "uploads[0].contentType"} <= paths
    # spec valid, uploads inconsistent: every reference named
    r = start(env, uploads=[{"name": "a.png", "contentType": "image/png"},
                            {"name": "extra.png", "contentType": "image/png"}])
    assert r.status_code == 400
    details = r.json["error"]["details"]
    assert {"path": "spec.scenes[0].narration.src", "message": "'n1.wav' is not declared in uploads"} in details
    assert any(d["path"] == "uploads[1].name" for d in details)
    assert "Traceback" not in r.get_data(as_text=True)


@pytest.mark.parametrize("body,code", [(b"{not json", 400), (b"[]", 400), (b'{"spec": 3}', 400)])
def test_malformed_bodies(env, body, code):
    r = env.c["export_start"].post("/", data=body, content_type="application/json")
    assert r.status_code == code and r.json["error"]["code"] == "invalid_request"


def test_unknown_job_404_and_bad_id_400(env):
    assert status(env, str(uuid.uuid4())).status_code == 404
    assert status(env, "nope").status_code == 400
    assert env.c["export_status"].post("/?jobId=x").status_code == 405


def test_complete_auth(env):
    jid = start(env, spec={"scenes": [{"id": "c", "visual": {"type": "color"}, "duration": 1}]}, uploads=[]).json["jobId"]
    push(env, jid)
    body = {"jobId": jid, "status": "running", "progress": 0.1}
    assert complete(env, body, token=None).status_code == 401
    assert complete(env, body, token="wrong").status_code == 403
    assert complete(env, body).status_code == 200
    assert complete(env, {"jobId": jid, "status": "exploded"}).status_code == 400


def test_idempotency_key(env):
    a = start(env, **{"Idempotency-Key": "k-1"})
    b = start(env, **{"Idempotency-Key": "k-1"})
    assert a.status_code == 202 and b.status_code == 200 and a.json["jobId"] == b.json["jobId"]
    other = dict(SPEC, title="Other")
    assert start(env, spec=other, **{"Idempotency-Key": "k-1"}).status_code == 409


def test_no_uploads_goes_straight_to_queue(env):
    spec = {"scenes": [{"id": "c", "visual": {"type": "color"}, "duration": 1}]}
    r = start(env, spec=spec, uploads=[])
    assert r.status_code == 202 and r.json["status"] == "queued" and r.json["uploads"] == []
    assert env.publisher.messages == [r.json["jobId"]]


def test_launch_failure_releases_claim_and_redelivery_succeeds(env):
    spec = {"scenes": [{"id": "c", "visual": {"type": "color"}, "duration": 1}]}
    jid = start(env, spec=spec, uploads=[]).json["jobId"]
    env.launcher.fail_next = 1
    r = push(env, jid)
    assert r.status_code == 500  # raised: Pub/Sub redelivers
    assert status(env, jid).json["status"] == "queued"
    assert push(env, jid).status_code == 200
    assert env.launcher.launched == [jid] and status(env, jid).json["status"] == "dispatched"


def test_foreign_and_malformed_events_are_acknowledged(env):
    assert finalize(env, "other-bucket", "x").status_code == 200
    assert finalize(env, "in-bkt", f"jobs/{uuid.uuid4()}/assets/a.png").status_code == 200
    bad = {"message": {"data": "%%%", "messageId": "1"}, "subscription": "projects/p/subscriptions/s"}
    assert env.c["dispatch_export"].post("/projects/p/topics/t", json=bad).status_code == 200


def test_worker_failure_is_terminal(env):
    spec = {"scenes": [{"id": "c", "visual": {"type": "color"}, "duration": 1}]}
    jid = start(env, spec=spec, uploads=[]).json["jobId"]
    push(env, jid)
    r = complete(env, {"jobId": jid, "status": "failed", "attempt": 0,
                       "error": {"code": "bad_media", "message": "scene 1 (c): visual.src x.png is not an image"}})
    assert r.json["applied"] is True
    st = status(env, jid).json
    assert st["status"] == "failed" and st["error"] == {"code": "bad_media",
                                                        "message": "scene 1 (c): visual.src x.png is not an image"}
    late = complete(env, {"jobId": jid, "status": "running", "progress": 0.9})
    assert late.status_code == 409 and late.json["error"]["code"] == "conflict"  # the worker stops
    assert status(env, jid).json["status"] == "failed"
