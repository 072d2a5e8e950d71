"""ObjectStorage on Cloud Storage through google-cloud-storage.

Works unchanged against fake-gcs-server and gcp-storage-emulator when STORAGE_EMULATOR_HOST is set
(the client library honours it). Signed URLs are V4
(https://cloud.google.com/storage/docs/access-control/signed-urls):
- with a service-account key (GOOGLE_APPLICATION_CREDENTIALS_JSON), signed locally with that key;
- without one (Cloud Functions' default credentials), "keyless": the credentials are refreshed when
  their token is not valid, and `service_account_email` + `access_token` are passed so the library
  signs through the IAM Credentials signBlob API (needs roles/iam.serviceAccountTokenCreator on
  itself). One signBlob call per URL: the service signs a response's URLs concurrently, so this
  adapter is thread-safe.
"""
from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta, timezone

from google.api_core import exceptions as gexc
from google.auth import exceptions as google_auth_exceptions

from shared.errors import Conflict, NotFound, TransientError
from shared.ports import ObjectInfo, SignedUrl, content_length_range


def _translate(exc: Exception, what: str) -> Exception:
    if isinstance(exc, gexc.NotFound):
        return NotFound(f"{what} does not exist")
    if isinstance(exc, gexc.PreconditionFailed):
        return Conflict(f"{what} already exists (precondition failed)")
    return TransientError(f"storage error on {what}: {type(exc).__name__}")


class GoogleStorage:
    """ObjectStorage backed by google.cloud.storage.Client, created lazily and reused."""

    def __init__(self, project: str, credentials_info: dict | None = None) -> None:
        self._project = project
        self._credentials_info = credentials_info
        self._client = None
        self._credentials = None
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()  # keyless signing: one token refresh at a time

    @property
    def emulator_host(self) -> str | None:
        host = os.environ.get("STORAGE_EMULATOR_HOST")
        if host and not host.startswith("http"):
            host = "http://" + host
        return host.rstrip("/") if host else None

    def _get(self):
        with self._lock:
            if self._client is None:
                from google.cloud import storage

                if self._credentials_info:
                    from google.oauth2 import service_account

                    self._credentials = service_account.Credentials.from_service_account_info(
                        self._credentials_info,
                        scopes=["https://www.googleapis.com/auth/cloud-platform"])
                if self.emulator_host:
                    from google.auth.credentials import AnonymousCredentials

                    self._client = storage.Client(project=self._project, credentials=AnonymousCredentials())
                else:
                    self._client = storage.Client(project=self._project, credentials=self._credentials)
                    if self._credentials is None:
                        self._credentials = self._client._credentials
            return self._client

    def _sign(self, bucket: str, name: str, *, method: str, ttl_s: int, content_type: str | None = None,
              disposition: str | None = None, headers: dict[str, str] | None = None) -> str:
        client = self._get()
        blob = client.bucket(bucket).blob(name)
        kwargs: dict = dict(version="v4", expiration=timedelta(seconds=ttl_s), method=method)
        if content_type:
            kwargs["content_type"] = content_type
        if disposition:
            kwargs["response_disposition"] = disposition
        if headers:
            kwargs["headers"] = dict(headers)  # a copy: the library adds "Host" to the dict it is given
        if self.emulator_host:
            kwargs["api_access_endpoint"] = self.emulator_host
        if self._credentials_info:  # a service-account key: sign locally
            kwargs["credentials"] = self._credentials
        else:  # keyless: sign through IAM signBlob with a valid access token
            kwargs["service_account_email"], kwargs["access_token"] = self._keyless_identity(bucket, name)
        try:
            return blob.generate_signed_url(**kwargs)
        except gexc.GoogleAPIError as exc:
            raise _translate(exc, f"gs://{bucket}/{name}") from None
        except google_auth_exceptions.GoogleAuthError as exc:  # signBlob refused or unreachable
            raise TransientError(f"could not sign a URL for gs://{bucket}/{name} (IAM signBlob: "
                                 f"{type(exc).__name__})") from None

    def _keyless_identity(self, bucket: str, name: str) -> tuple[str, str]:
        """(service account email, access token) for signBlob. The token is refreshed only when it is
        missing or about to expire (google-auth's `valid`), once for all threads: a response with 401
        upload URLs costs one refresh, not 401 metadata-server round trips. Raises TransientError."""
        import google.auth.transport.requests

        creds = self._credentials
        if creds is None:
            raise TransientError("no credentials available to sign URLs")
        with self._refresh_lock:
            if not creds.valid:
                try:
                    creds.refresh(google.auth.transport.requests.Request())
                except google_auth_exceptions.GoogleAuthError as exc:
                    raise TransientError(f"could not sign a URL for gs://{bucket}/{name} (credentials refresh: "
                                         f"{type(exc).__name__})") from None
            return creds.service_account_email, creds.token

    def signed_upload_url(self, bucket: str, name: str, content_type: str, ttl_s: int,
                          max_bytes: int | None = None) -> SignedUrl:
        extra = {"x-goog-content-length-range": content_length_range(max_bytes)}
        url = self._sign(bucket, name, method="PUT", ttl_s=ttl_s, content_type=content_type, headers=extra)
        return SignedUrl(url=url, method="PUT", headers={"Content-Type": content_type, **extra},
                         expires_at=datetime.now(timezone.utc) + timedelta(seconds=ttl_s))

    def signed_download_url(self, bucket: str, name: str, ttl_s: int, filename: str | None = None) -> str:
        disposition = None
        if filename:
            safe = "".join(c for c in filename if c.isalnum() or c in "._- ") or "download"
            disposition = f'attachment; filename="{safe}"'
        return self._sign(bucket, name, method="GET", ttl_s=ttl_s, disposition=disposition)

    def _blob(self, bucket: str, name: str, metadata: dict | None = None):
        blob = self._get().bucket(bucket).blob(name)
        if metadata:
            blob.metadata = metadata
        return blob

    def upload_bytes(self, bucket, name, data, content_type, *, if_generation_match=None, metadata=None) -> int:
        blob = self._blob(bucket, name, metadata)
        try:
            blob.upload_from_string(data, content_type=content_type, if_generation_match=if_generation_match)
        except gexc.GoogleAPIError as exc:
            raise _translate(exc, f"gs://{bucket}/{name}") from None
        except OSError as exc:
            raise TransientError(f"storage unreachable writing gs://{bucket}/{name}: {exc}") from None
        return int(blob.generation or 0)

    def upload_file(self, bucket, name, path, content_type, *, if_generation_match=None, metadata=None) -> int:
        blob = self._blob(bucket, name, metadata)
        try:
            blob.upload_from_filename(path, content_type=content_type, if_generation_match=if_generation_match)
        except gexc.GoogleAPIError as exc:
            raise _translate(exc, f"gs://{bucket}/{name}") from None
        except OSError as exc:
            raise TransientError(f"storage unreachable writing gs://{bucket}/{name}: {exc}") from None
        return int(blob.generation or 0)

    def download_file(self, bucket: str, name: str, path: str) -> int:
        blob = self._blob(bucket, name)
        try:
            blob.download_to_filename(path)
        except gexc.GoogleAPIError as exc:
            raise _translate(exc, f"gs://{bucket}/{name}") from None
        return os.path.getsize(path)

    def read_bytes(self, bucket: str, name: str) -> bytes:
        try:
            return self._blob(bucket, name).download_as_bytes()
        except gexc.GoogleAPIError as exc:
            raise _translate(exc, f"gs://{bucket}/{name}") from None

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        try:
            blob = self._get().bucket(bucket).get_blob(name)
        except gexc.NotFound:
            return None
        except gexc.GoogleAPIError as exc:
            raise _translate(exc, f"gs://{bucket}/{name}") from None
        if blob is None:
            return None
        return ObjectInfo(bucket=bucket, name=name, size=int(blob.size or 0), generation=int(blob.generation or 0),
                          content_type=blob.content_type, metadata=dict(blob.metadata or {}))

    def delete(self, bucket: str, name: str) -> bool:
        try:
            self._blob(bucket, name).delete()
        except gexc.NotFound:
            return False
        except gexc.GoogleAPIError as exc:
            raise _translate(exc, f"gs://{bucket}/{name}") from None
        except OSError as exc:
            raise TransientError(f"storage unreachable deleting gs://{bucket}/{name}: {exc}") from None
        return True
