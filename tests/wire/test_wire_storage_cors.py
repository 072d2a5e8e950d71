"""The embedded storage stand-in answers CORS on signed URLs as GCS does with the buckets' rule built
from EXPORT_CORS_ORIGINS (shared.cors.bucket_cors; infra/local/gcs_cors.py): real google-cloud-storage
signed URLs against the running gcp-storage-emulator, with the Origin and preflight headers a browser
sends. A refused preflight is answered without CORS headers (the browser then refuses the upload)."""
from __future__ import annotations

import uuid

import pytest
import requests

from infra.local.storage_emulator import StorageEmulator

PROJECT = "wire-proj"
IN, OUT = "cors-in", "cors-out"
PAGE = "http://127.0.0.1:5173"
OTHER = "https://evil.example"


@pytest.fixture(scope="module")
def emulator():
    emu = StorageEmulator(PROJECT, [IN, OUT]).start()
    emu.set_cors_origins(f"{PAGE} https://app.example.com", IN, OUT)
    try:
        yield emu
    finally:
        emu.stop()


def cors_headers(r: requests.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


def preflight(url: str, origin: str, method: str = "PUT",
              headers: str = "content-type,x-goog-content-length-range") -> requests.Response:
    return requests.options(url, timeout=10, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                                      "Access-Control-Request-Headers": headers})


def test_a_signed_put_from_the_page_passes_its_preflight_and_is_readable(storage):
    name = f"jobs/{uuid.uuid4()}/assets/a.png"
    up = storage.signed_upload_url(IN, name, "image/png", ttl_s=300, max_bytes=1000)
    r = preflight(up.url, PAGE)
    assert r.status_code == 200
    assert cors_headers(r) == {"Access-Control-Allow-Origin": PAGE, "Access-Control-Allow-Methods": "PUT",
                               "Access-Control-Allow-Headers": "content-type, x-goog-content-length-range",
                               "Access-Control-Max-Age": "3600"}
    assert r.headers["Vary"] == "Origin"
    r = requests.put(up.url, data=b"\x89PNG" + b"\0" * 60, headers={**up.headers, "Origin": PAGE}, timeout=10)
    assert r.status_code == 200, r.text
    assert cors_headers(r) == {"Access-Control-Allow-Origin": PAGE,
                               "Access-Control-Expose-Headers": "Content-Type, x-goog-content-length-range"}
    assert storage.stat(IN, name).size == 64
    # a refused signed PUT still tells the page why (GCS adds the CORS headers to its XML error too)
    r = requests.put(up.url + "0", data=b"x", headers={**up.headers, "Origin": PAGE}, timeout=10)
    assert r.status_code == 403 and r.headers["Access-Control-Allow-Origin"] == PAGE


@pytest.mark.parametrize("origin, method, headers", [
    (OTHER, "PUT", "content-type,x-goog-content-length-range"),  # another origin
    ("http://127.0.0.1:5174", "PUT", "content-type"),  # another port is another origin
    (PAGE, "DELETE", "content-type"),  # a method the input bucket does not allow
    (PAGE, "GET", ""),  # the input bucket: PUT only
    (PAGE, "PUT", "content-type,x-goog-content-length-range,x-goog-meta-owner"),  # a header not allowed
])
def test_a_preflight_that_does_not_match_gets_no_cors_headers(storage, origin, method, headers):
    up = storage.signed_upload_url(IN, f"jobs/{uuid.uuid4()}/assets/a.png", "image/png", ttl_s=300, max_bytes=1000)
    r = preflight(up.url, origin, method, headers)
    assert r.status_code == 200 and cors_headers(r) == {}


def test_a_put_from_another_origin_gets_no_cors_headers(storage):
    name = f"jobs/{uuid.uuid4()}/assets/a.png"
    up = storage.signed_upload_url(IN, name, "image/png", ttl_s=300, max_bytes=1000)
    r = requests.put(up.url, data=b"x" * 10, headers={**up.headers, "Origin": OTHER}, timeout=10)
    assert r.status_code == 200 and cors_headers(r) == {}  # stored, but the browser hides the answer


def test_a_signed_get_of_the_output_bucket_is_readable_by_the_page(storage, emulator):
    name = f"exports/{uuid.uuid4()}/captions.vtt"
    storage.upload_bytes(OUT, name, b"WEBVTT\n\n00:00.000 --> 00:01.000\nHello\n", "text/vtt")
    url = storage.signed_download_url(OUT, name, 300)
    r = requests.get(url, headers={"Origin": PAGE}, timeout=10)
    assert r.status_code == 200 and r.content.startswith(b"WEBVTT")
    assert r.headers["Access-Control-Allow-Origin"] == PAGE and r.headers["Vary"] == "Origin"
    assert "Content-Disposition" in r.headers["Access-Control-Expose-Headers"]
    assert cors_headers(requests.get(url, headers={"Origin": OTHER}, timeout=10)) == {}
    r = preflight(url, "https://app.example.com", "GET", "range")
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    # the JSON API is not what pages use: no CORS there
    r = requests.get(f"{emulator.url}/storage/v1/b/{OUT}/o", headers={"Origin": PAGE}, timeout=10)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers



def test_a_head_of_a_signed_get_answers_like_the_get_without_a_body(storage):
    """GCS answers HEAD on the XML API (the output bucket's CORS rule allows it): the GET's status and
    headers (Content-Type, Content-Length, Content-Disposition, CORS), no body. It was 501 here."""
    name = f"exports/{uuid.uuid4()}/video.mp4"
    data = b"\0\0\0\x18ftypmp42" + b"\1" * 1000
    storage.upload_bytes(OUT, name, data, "video/mp4")
    url = storage.signed_download_url(OUT, name, 300, filename="moon mission.mp4")
    get = requests.get(url, headers={"Origin": PAGE}, timeout=10)
    r = requests.head(url, headers={"Origin": PAGE}, timeout=10)
    assert (get.status_code, r.status_code) == (200, 200)
    assert r.content == b""
    assert r.headers["Content-Length"] == str(len(data)) == get.headers["Content-Length"]
    assert r.headers["Content-Type"] == "video/mp4"
    assert r.headers["Content-Disposition"] == get.headers["Content-Disposition"]
    assert cors_headers(r) == cors_headers(get) == {
        "Access-Control-Allow-Origin": PAGE,
        "Access-Control-Expose-Headers": "Content-Type, Content-Length, Content-Range, Content-Disposition, "
                                         "Accept-Ranges, Range"}
    r = requests.head(url, headers={"Origin": PAGE, "Range": "bytes=0-99"}, timeout=10)
    assert r.status_code == 206 and r.headers["Content-Range"] == f"bytes 0-99/{len(data)}" and r.content == b""
    # another origin: the same answer, no CORS header; the connection is still usable afterwards
    r = requests.head(url, headers={"Origin": OTHER}, timeout=10)
    assert r.status_code == 200 and cors_headers(r) == {}
    assert requests.get(url, timeout=10).content == data
    # no such object: GCS's 404, without a body
    r = requests.head(url.replace("video.mp4", "nothing.mp4"), headers={"Origin": PAGE}, timeout=10)
    assert r.status_code == 404 and r.content == b""
