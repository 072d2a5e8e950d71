"""The embedded storage stand-in enforces what Cloud Storage enforces on a V4 signed PUT (issue 14,
item 7): real google-cloud-storage signed URLs (GoogleStorage.signed_upload_url, the key the local
stack signs with) PUT with `requests` against the running gcp-storage-emulator. Before, it stored
whatever was PUT: a tampered, expired, mistyped, empty or oversized upload all answered 200."""
from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from infra.local.signed_urls import make_service_account_key
from infra.local.storage_emulator import StorageEmulator
from shared.adapters.google_storage import GoogleStorage

PROJECT = "wire-proj"
BUCKET = "wire-in"
LIMIT = 1000


@pytest.fixture(scope="module")
def emulator():
    emu = StorageEmulator(PROJECT, [BUCKET]).start()
    emu.finalized = []
    emu.listeners.append(lambda obj: emu.finalized.append(obj["name"]))
    try:
        yield emu
    finally:
        emu.stop()


def _signed(storage, ttl_s: int = 300, content_type: str = "audio/wav"):
    name = f"jobs/{uuid.uuid4()}/assets/n 1.wav"  # a space: the path is percent-encoded when signed
    return name, storage.signed_upload_url(BUCKET, name, content_type, ttl_s=ttl_s, max_bytes=LIMIT)


def _error(r: requests.Response) -> tuple[int, str]:
    assert r.headers["Content-Type"].startswith("application/xml"), r.headers
    code = r.text.split("<Code>")[1].split("</Code>")[0]
    return r.status_code, code


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_a_valid_signed_put_is_stored_and_finalized(storage, emulator):
    name, up = _signed(storage)
    assert up.headers == {"Content-Type": "audio/wav", "x-goog-content-length-range": f"1,{LIMIT}"}
    r = requests.put(up.url, data=b"RIFF" + b"\0" * 96, headers=up.headers, timeout=10)
    assert r.status_code == 200, r.text
    info = storage.stat(BUCKET, name)
    assert (info.size, info.content_type) == (100, "audio/wav")
    assert name in emulator.finalized
    # exactly the limit is within the range
    name, up = _signed(storage)
    assert requests.put(up.url, data=b"x" * LIMIT, headers=up.headers, timeout=10).status_code == 200


@pytest.mark.parametrize("case, expected", [
    ("tampered signature", (403, "SignatureDoesNotMatch")),
    ("another object name", (403, "SignatureDoesNotMatch")),
    ("longer expiry than signed", (403, "SignatureDoesNotMatch")),
    ("wrong content type", (403, "SignatureDoesNotMatch")),
    ("range header dropped", (403, "SignatureDoesNotMatch")),
    ("range header widened", (403, "SignatureDoesNotMatch")),
    ("no signature at all", (403, "AccessDenied")),
    ("zero bytes", (400, "EntityTooSmall")),
    ("one byte too many", (400, "EntityTooLarge")),
])
def test_refused_puts_get_gcs_errors_and_store_nothing(storage, emulator, case, expected):
    name, up = _signed(storage)
    url, headers, body = up.url, dict(up.headers), b"RIFF" + b"\0" * 60
    if case == "tampered signature":
        sig = dict(parse_qsl(urlsplit(url).query))["X-Goog-Signature"]
        url = _with_query(url, **{"X-Goog-Signature": ("0" if sig[0] != "0" else "1") + sig[1:]})
    elif case == "another object name":
        url = url.replace("/assets/n%201.wav", "/assets/other.wav")
        name = name.replace("n 1.wav", "other.wav")
    elif case == "longer expiry than signed":
        url = _with_query(url, **{"X-Goog-Expires": "3600"})
    elif case == "wrong content type":
        headers["Content-Type"] = "text/html"
    elif case == "range header dropped":
        del headers["x-goog-content-length-range"]
    elif case == "range header widened":
        headers["x-goog-content-length-range"] = "0,1000000000"
    elif case == "no signature at all":
        url = url.split("?")[0]
    elif case == "zero bytes":
        body = b""
    elif case == "one byte too many":
        body = b"x" * (LIMIT + 1)
    r = requests.put(url, data=body, headers=headers, timeout=10)
    assert _error(r) == expected, r.text
    assert storage.stat(BUCKET, name) is None and name not in emulator.finalized


def test_an_expired_url_is_refused(storage, emulator):
    name, up = _signed(storage, ttl_s=1)
    time.sleep(2.1)  # X-Goog-Date has whole seconds: past X-Goog-Date + 1 s for certain
    r = requests.put(up.url, data=b"RIFF", headers=up.headers, timeout=10)
    assert _error(r) == (400, "ExpiredToken"), r.text
    assert "expired" in r.text and storage.stat(BUCKET, name) is None


def test_a_url_signed_by_an_untrusted_key_is_refused(emulator, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    key = make_service_account_key(PROJECT, "stranger@x.iam.gserviceaccount.com")
    stranger = GoogleStorage(PROJECT, credentials_info=key)
    up = stranger.signed_upload_url(BUCKET, "jobs/x/assets/a.png", "image/png", ttl_s=60, max_bytes=LIMIT)
    r = requests.put(up.url, data=b"png", headers=up.headers, timeout=10)
    assert _error(r) == (403, "SignatureDoesNotMatch")


def test_chunked_body_is_measured_and_json_api_uploads_pass_through(storage, emulator):
    name, up = _signed(storage)
    r = requests.put(up.url, data=iter([b"RIFF", b"\0" * 10]), headers=up.headers, timeout=10)  # chunked
    assert r.status_code == 200, r.text
    assert storage.stat(BUCKET, name).size == 14
    r = requests.put(up.url.replace(name.split("/")[1], str(uuid.uuid4())), data=iter([b"x" * (LIMIT + 1)]),
                     headers=up.headers, timeout=10)
    assert _error(r) == (403, "SignatureDoesNotMatch")  # another name: refused before the size
    # the client library's own (JSON API) uploads are not signed URLs and are unaffected
    gen = storage.upload_bytes(BUCKET, "exports/j/export.mp4", b"", "video/mp4")
    assert gen > 0 and storage.stat(BUCKET, "exports/j/export.mp4").size == 0


# --- every route into the emulator's XML-API object upload is checked (adversarial review, 61ad72b) ---
# gcp-storage-emulator's Router lets X-HTTP-Method-Override replace the verb, and routes on its own
# parse of Host + path (";params" and "#fragment" dropped); the checks used to hook do_PUT on the raw
# path only, so these were stored unsigned, of any type and size, and finalized.

def _raw(emulator, method: str, target: str, body: bytes = b"", headers: dict | None = None):
    """(status, body) of one request sent exactly as given (http.client keeps the target verbatim)."""
    import http.client

    conn = http.client.HTTPConnection(emulator.url.split("//")[1], timeout=10)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _xml_code(text: str) -> str:
    return text.split("<Code>")[1].split("</Code>")[0] if "<Code>" in text else text[:80]


@pytest.mark.parametrize("verb, header", [
    ("POST", "X-HTTP-Method-Override"), ("POST", "x-http-method-override"),
    ("PATCH", "X-HTTP-Method-Override"), ("DELETE", "X-Http-Method-Override"), ("GET", "X-HTTP-Method-Override"),
])
@pytest.mark.parametrize("body", [b"<html>" * 400, b""], ids=["2400 bytes", "empty"])
def test_a_method_override_to_put_is_checked_like_a_put(storage, emulator, verb, header, body):
    name, up = _signed(storage)
    path = urlsplit(up.url).path
    # unsigned, another type, over the size limit (or empty): refused like the plain unsigned PUT
    status, text = _raw(emulator, verb, path, body, {"Content-Type": "text/html", header: "PUT"})
    assert (status, _xml_code(text)) == (403, "AccessDenied"), text
    # the URL signed for PUT, with its own headers, used with another verb: the signature covers the verb
    status, text = _raw(emulator, verb, up.url.split(emulator.url)[1], body, {**up.headers, header: "PUT"})
    assert (status, _xml_code(text)) == (403, "SignatureDoesNotMatch"), text
    assert storage.stat(BUCKET, name) is None and name not in emulator.finalized


@pytest.mark.parametrize("suffix, host", [
    (";x", None),            # urlparse drops ";x" (path params) from the routed path
    ("#/", None),            # a fragment: the raw path no longer ends like an object path
    ("", "{netloc}/{path}#"),  # the Host header is part of what the emulator parses
])
def test_targets_the_emulator_parses_to_an_object_path_are_checked(storage, emulator, suffix, host):
    name, up = _signed(storage)
    path = urlsplit(up.url).path
    target, headers = path + suffix, {"Content-Type": "text/html"}
    if host:
        netloc = emulator.url.split("//")[1]
        target, headers["Host"] = "/elsewhere/", host.format(netloc=netloc, path=path.lstrip("/"))
    status, text = _raw(emulator, "PUT", target, b"<html>", headers)
    assert (status, _xml_code(text)) == (403, "AccessDenied"), text
    assert storage.stat(BUCKET, name) is None and name not in emulator.finalized


def test_a_gzip_body_is_stored_as_sent_within_the_signed_range(storage, emulator):
    import gzip

    name, up = _signed(storage)
    body = gzip.compress(b"\0" * 200_000)  # about 250 bytes that expand 800-fold
    assert len(body) <= LIMIT
    r = requests.put(up.url, data=body, headers={**up.headers, "Content-Encoding": "gzip"}, timeout=10)
    assert r.status_code == 200, r.text
    assert storage.stat(BUCKET, name).size == len(body)  # the range bounds what is stored, as on GCS


def test_chunk_extensions_are_read_and_bad_chunk_framing_is_answered(storage, emulator):
    name, up = _signed(storage)
    target = up.url.split(emulator.url)[1]
    import socket

    def send(chunked: bytes) -> bytes:
        host, port = emulator.url.split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            head = (f"PUT {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: audio/wav\r\n"
                    f"x-goog-content-length-range: 1,{LIMIT}\r\nTransfer-Encoding: chunked\r\n\r\n")
            s.sendall(head.encode() + chunked)
            answer = b""
            while chunk := s.recv(4096):  # HTTP/1.0: the stand-in closes after its answer
                answer += chunk
            return answer

    answer = send(b"4;name=v\r\nRIFF\r\n0\r\n\r\n")  # a legal chunk extension
    assert answer.startswith(b"HTTP/1.0 200"), answer
    assert storage.stat(BUCKET, name).size == 4
    answer = send(b"zz\r\nRIFF\r\n0\r\n\r\n")  # not a chunk size
    assert answer.startswith(b"HTTP/1.0 400") and b"<Code>InvalidArgument</Code>" in answer, answer


def test_other_xml_api_upload_routes_store_nothing(storage, emulator):
    name, up = _signed(storage)
    path = urlsplit(up.url).path
    # XML API POST Object (an HTML form to the bucket) and a resumable start on the object path
    form = ("--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n" + name + "\r\n--b\r\n"
            "Content-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nRIFF\r\n--b--\r\n").encode()
    status, _ = _raw(emulator, "POST", f"/{BUCKET}", form, {"Content-Type": "multipart/form-data; boundary=b"})
    assert status in (403, 501)
    status, _ = _raw(emulator, "POST", path, b"", {"x-goog-resumable": "start", "Content-Type": "audio/wav"})
    assert status in (403, 501)
    assert storage.stat(BUCKET, name) is None and name not in emulator.finalized


def test_an_empty_json_api_media_upload_is_a_zero_byte_object(storage, emulator):
    # as on GCS; the emulator's handler used to fail on it (len(None)) and answer nothing at all
    name = f"jobs/{uuid.uuid4()}/assets/empty.wav"
    r = requests.post(f"{emulator.url}/upload/storage/v1/b/{BUCKET}/o", params={"uploadType": "media", "name": name},
                      data=b"", headers={"Content-Type": "audio/wav"}, timeout=10)
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["size"], r.json()["contentType"]) == (name, "0", "audio/wav")
    info = storage.stat(BUCKET, name)
    assert (info.size, info.content_type) == (0, "audio/wav") and name in emulator.finalized
    # a non-empty one still goes to the emulator unchanged
    r = requests.post(f"{emulator.url}/upload/storage/v1/b/{BUCKET}/o", params={"uploadType": "media", "name": name},
                      data=b"RIFF", headers={"Content-Type": "audio/wav"}, timeout=10)
    assert r.status_code == 200 and storage.stat(BUCKET, name).size == 4


# --- the signed Content-Type is compared exactly (adversarial review 2, break 4) -----------------------
# GCS canonicalises a header value by trimming spaces and tabs at its ends and folding runs of them into
# one space; str.split() also took VT, FS..US, NEL and NBSP for whitespace, so a URL signed for
# image/png accepted (and stored, and finalized) "image/png\x0b" and the like.
@pytest.mark.parametrize("ctype", ["image/png\x0b", "image/png\xa0", "image/png\x85", "\x1cimage/png",
                                   "image/png\x0c", "image/png\x1f", "\xa0image/png\x1d"],
                         ids=["vt", "nbsp", "nel", "fs-before", "ff", "us", "nbsp-and-gs"])
def test_a_content_type_that_is_not_the_signed_one_after_trimming_is_refused(storage, emulator, ctype):
    name, up = _signed(storage, content_type="image/png")
    headers = {**up.headers, "Content-Type": ctype}
    status, text = _raw(emulator, "PUT", up.url.split(emulator.url)[1], b"\x89PNG" + b"\0" * 60, headers)
    assert (status, _xml_code(text)) == (403, "SignatureDoesNotMatch"), text
    assert storage.stat(BUCKET, name) is None and name not in emulator.finalized


def test_spaces_and_tabs_around_the_signed_content_type_are_trimmed(storage, emulator):
    name, up = _signed(storage, content_type="image/png")
    headers = {**up.headers, "Content-Type": "\t image/png \t"}
    status, text = _raw(emulator, "PUT", up.url.split(emulator.url)[1], b"\x89PNG" + b"\0" * 60, headers)
    assert status == 200, text
    assert storage.stat(BUCKET, name).content_type == "image/png" and name in emulator.finalized
