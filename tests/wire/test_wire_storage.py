"""GoogleStorage with the real google-cloud-storage client against fake-gcs-server: preconditions,
metadata, downloads, and V4 signed URLs used over real HTTP."""
from __future__ import annotations

import os
import uuid

import pytest
import requests

from infra.local.signed_urls import make_service_account_key
from shared.adapters.google_storage import GoogleStorage
from shared.errors import Conflict, NotFound

PROJECT = "wire-proj"


@pytest.fixture
def storage(fake_gcs, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.url)
    return GoogleStorage(PROJECT, credentials_info=make_service_account_key(PROJECT))


def _name(prefix: str = "jobs") -> str:
    return f"{prefix}/{uuid.uuid4()}/obj.bin"


def test_create_only_upload_conflicts_the_second_time(storage):
    name = _name("exports")
    gen = storage.upload_bytes("wire-out", name, b"first", "video/mp4", if_generation_match=0,
                               metadata={"jobId": "j1", "durationS": "12.5"})
    assert gen > 0
    with pytest.raises(Conflict):
        storage.upload_bytes("wire-out", name, b"second", "video/mp4", if_generation_match=0)
    assert storage.read_bytes("wire-out", name) == b"first"  # the first write stands


def test_stat_download_and_missing_objects(storage, tmp_path):
    name = _name()
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(300_000))
    gen = storage.upload_file("wire-in", name, str(src), "image/png", metadata={"jobId": "j2"})
    info = storage.stat("wire-in", name)
    assert (info.bucket, info.name, info.size, info.generation) == ("wire-in", name, 300_000, gen)
    assert info.content_type == "image/png" and info.metadata == {"jobId": "j2"}
    dst = tmp_path / "out.bin"
    assert storage.download_file("wire-in", name, str(dst)) == 300_000
    assert dst.read_bytes() == src.read_bytes()
    assert storage.stat("wire-in", name + ".missing") is None
    with pytest.raises(NotFound):
        storage.read_bytes("wire-in", name + ".missing")
    with pytest.raises(NotFound):
        storage.download_file("wire-in", name + ".missing", str(tmp_path / "nope"))


def test_signed_put_then_signed_get_over_http(storage):
    name = _name()
    up = storage.signed_upload_url("wire-in", name, "audio/wav", ttl_s=300, max_bytes=1_000_000)
    assert up.method == "PUT" and "X-Goog-Signature=" in up.url and up.url.startswith(os.environ["STORAGE_EMULATOR_HOST"])
    assert up.headers == {"Content-Type": "audio/wav", "x-goog-content-length-range": "1,1000000"}
    assert "x-goog-content-length-range" in up.url.split("X-Goog-SignedHeaders=")[1].split("&")[0].replace("%3B", ";")
    r = requests.put(up.url, data=b"RIFF....WAVE", headers=up.headers, timeout=10)
    assert r.status_code in (200, 201), r.text
    assert storage.stat("wire-in", name).size == 12

    url = storage.signed_download_url("wire-in", name, ttl_s=60, filename="narration 1.wav")
    assert "response-content-disposition=attachment" in url
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == b"RIFF....WAVE"


def test_delete_removes_the_object_and_reports_a_missing_one(storage):
    """ObjectStorage.delete (issue 14: the start that loses an idempotency race deletes its spec.json)."""
    name = _name()
    storage.upload_bytes("wire-in", name, b"{}", "application/json", if_generation_match=0)
    assert storage.delete("wire-in", name) is True
    assert storage.stat("wire-in", name) is None
    assert storage.delete("wire-in", name) is False
