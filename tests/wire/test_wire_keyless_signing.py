"""Keyless V4 URL signing as on Cloud Functions, at the wire: GoogleStorage without a key takes the
default credentials from a metadata-server stand-in, refreshes them, and google-cloud-storage calls
IAM Credentials signBlob on https://iamcredentials.googleapis.com, which reaches a local stand-in
through an HTTPS proxy (tests/wire/google_standins.py). The signature in the URL is then verified
with the stand-in's public key against a string-to-sign recomputed from the URL."""
from __future__ import annotations

import hashlib
import urllib.parse

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from shared.adapters.google_storage import GoogleStorage
from tests.wire.google_standins import IamCredentialsProxy, MetadataServer

EMAIL = "sceneflow-api@wire-proj.iam.gserviceaccount.com"


@pytest.fixture
def keyless(tmp_path, monkeypatch):
    meta = MetadataServer(EMAIL, "wire-proj")
    iam = IamCredentialsProxy(tmp_path, token=meta.token)
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "NO_PROXY", "no_proxy",
                "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "gcloud").mkdir()
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud ADC from this machine
    monkeypatch.setenv("GCE_METADATA_HOST", meta.host)
    monkeypatch.setenv("GCE_METADATA_IP", meta.host)
    # google-auth reads GCE_METADATA_HOST once, when google.auth.compute_engine is first imported
    from google.auth.compute_engine import _metadata
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", meta.host)
    monkeypatch.setenv("HTTPS_PROXY", iam.url)
    monkeypatch.setenv("https_proxy", iam.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(iam.ca_path))
    try:
        yield meta, iam
    finally:
        iam.stop()
        meta.stop()


def _string_to_sign(url: str, method: str, headers: dict[str, str]) -> tuple[bytes, bytes]:
    """(string-to-sign, signature) of a V4 signed URL, recomputed from the URL
    (https://cloud.google.com/storage/docs/authentication/signatures#string-to-sign)."""
    parts = urllib.parse.urlsplit(url)
    pairs = [p for p in parts.query.split("&") if not p.startswith("X-Goog-Signature=")]
    query = dict(urllib.parse.parse_qsl(parts.query))
    signed = query["X-Goog-SignedHeaders"].split(";")
    all_headers = {"host": parts.netloc, **{k.lower(): v for k, v in headers.items()}}
    assert sorted(all_headers) == signed, (sorted(all_headers), signed)
    canonical_headers = "".join(f"{k}:{all_headers[k].strip()}\n" for k in signed)
    canonical_request = "\n".join([method, parts.path, "&".join(sorted(pairs)), canonical_headers,
                                   query["X-Goog-SignedHeaders"], "UNSIGNED-PAYLOAD"])
    scope = query["X-Goog-Credential"].split("/", 1)[1]
    sts = "\n".join(["GOOG4-RSA-SHA256", query["X-Goog-Date"], scope,
                     hashlib.sha256(canonical_request.encode()).hexdigest()])
    return sts.encode(), bytes.fromhex(query["X-Goog-Signature"])


def test_keyless_signed_upload_url_is_signed_by_iam_sign_blob(keyless):
    meta, iam = keyless
    storage = GoogleStorage("wire-proj")  # no key: default credentials, keyless signing
    up = storage.signed_upload_url("in-bucket", "jobs/abc/assets/narration 1.wav", "audio/wav", ttl_s=600,
                                   max_bytes=5_000_000)

    assert up.url.startswith("https://storage.googleapis.com/in-bucket/jobs/abc/assets/narration%201.wav?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(up.url).query))
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256" and query["X-Goog-Expires"] == "600"
    assert query["X-Goog-Credential"].startswith(EMAIL + "/") and query["X-Goog-Credential"].endswith(
        "/auto/storage/goog4_request")

    # the library went to signBlob for our account with the token the metadata server issued
    (call,) = iam.sign_requests
    assert call["email"] == EMAIL and call["authorization"] == f"Bearer {meta.token}"
    assert any(p.startswith("/computeMetadata/v1/instance/service-accounts/default/token") for p in meta.requests)
    assert iam.refused == []

    # what was signed is the V4 string-to-sign of this URL, and the signature verifies
    sts, signature = _string_to_sign(up.url, "PUT", up.headers)
    assert call["payload"] == sts
    iam.public_key().verify(signature, sts, padding.PKCS1v15(), hashes.SHA256())


def test_keyless_signed_download_url_verifies(keyless):
    meta, iam = keyless
    storage = GoogleStorage("wire-proj")
    url = storage.signed_download_url("out-bucket", "exports/abc/moon-mission.mp4", ttl_s=300,
                                      filename="moon-mission.mp4")
    sts, signature = _string_to_sign(url, "GET", {})
    assert iam.sign_requests[-1]["payload"] == sts
    iam.public_key().verify(signature, sts, padding.PKCS1v15(), hashes.SHA256())
    assert "response-content-disposition" in url


def test_sign_blob_refusal_is_a_transient_error(keyless):
    from shared.errors import TransientError

    meta, iam = keyless
    iam.token = "another-token"  # the stand-in now answers 401, as IAM does without Token Creator
    with pytest.raises(TransientError, match="signBlob"):
        GoogleStorage("wire-proj").signed_download_url("out-bucket", "exports/x.mp4", ttl_s=60)


def test_a_start_with_401_uploads_refreshes_once_and_signs_concurrently(keyless, tmp_path):
    """Issue 15: a MAX_SCENES start signs 401 PUT URLs. Keyless, each is one signBlob round trip: they
    run on a bounded pool (service.SIGN_WORKERS) and the token is refreshed once, not once per URL."""
    import time

    from shared.adapters.local_storage import LocalStorage
    from shared.bootstrap import build_service
    from shared.config import Settings
    from tests.fakes import RecordingLauncher, RecordingPublisher
    from tests.integration.test_limits import max_storyboard

    class KeylessSignedFolder(LocalStorage):
        """Objects in a folder (no Cloud Storage here), upload URLs signed keylessly by GoogleStorage."""

        def __init__(self, root):
            super().__init__(root)
            self.signer = GoogleStorage("wire-proj")

        def signed_upload_url(self, *args, **kwargs):
            return self.signer.signed_upload_url(*args, **kwargs)

    meta, iam = keyless
    iam.delay_s = 0.02  # one IAM round trip: 401 of them one after another would take 8 s and more
    settings = Settings(database_url=f"sqlite:///{tmp_path}/jobs.db", input_bucket="in-bucket", max_assets=401)
    service = build_service(settings, storage=KeylessSignedFolder(tmp_path / "gcs"), publisher=RecordingPublisher(),
                            launcher=RecordingLauncher(), migrate_db=True)
    spec, uploads = max_storyboard(caption_chars=10)
    t = time.monotonic()
    created, body = service.start({"spec": spec, "uploads": uploads})
    took_s = time.monotonic() - t
    assert created and len(body["uploads"]) == 401  # 202
    tokens = [p for p in meta.requests if p.split("?")[0].endswith("/token")]
    assert len(tokens) == 1, len(tokens)  # one refresh for the whole response
    assert len(iam.sign_requests) == 401
    from shared.service import SIGN_WORKERS

    assert 2 <= iam.max_in_flight <= SIGN_WORKERS, iam.max_in_flight
    # in the order of the declared uploads, each URL signed for its own object and verifiable
    for up, got in zip(uploads, body["uploads"]):
        assert got["name"] == up["name"]
        path = urllib.parse.urlsplit(got["url"]).path
        assert path == f"/in-bucket/jobs/{body['jobId']}/assets/{up['name']}"
        sts, signature = _string_to_sign(got["url"], "PUT", got["headers"])
        iam.public_key().verify(signature, sts, padding.PKCS1v15(), hashes.SHA256())
    print(f"\n401 keyless upload URLs with a 20 ms signBlob: {took_s * 1000:.0f} ms, "
          f"{iam.max_in_flight} at once")
