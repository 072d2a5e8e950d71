"""Filesystem-backed ObjectStorage: buckets are folders under `root`. For tests and offline runs.

Signed URLs it returns point at `base_url` (if given) and are not verifiable: it is a stand-in for
the service layer's tests, not a server. Generations are nanosecond timestamps, like GCS's.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from shared.errors import Conflict, NotFound
from shared.ports import ObjectInfo, SignedUrl, content_length_range


class LocalStorage:
    """ObjectStorage on a local folder: `root/bucket/name` plus `root/.meta/bucket/name.json`."""

    def __init__(self, root: str | os.PathLike, base_url: str = "http://storage.local") -> None:
        self.root = Path(root)
        self.base_url = base_url.rstrip("/")
        self._lock = threading.Lock()

    def _path(self, bucket: str, name: str) -> Path:
        p = (self.root / bucket / name).resolve()
        if not str(p).startswith(str((self.root / bucket).resolve()) + os.sep):
            raise NotFound(f"object name {name!r} escapes bucket {bucket!r}")
        return p

    def _meta_path(self, bucket: str, name: str) -> Path:
        return self.root / ".meta" / bucket / (name + ".json")

    def signed_upload_url(self, bucket: str, name: str, content_type: str, ttl_s: int,
                          max_bytes: int | None = None) -> SignedUrl:
        exp = datetime.now(timezone.utc) + timedelta(seconds=ttl_s)
        headers = {"Content-Type": content_type, "x-goog-content-length-range": content_length_range(max_bytes)}
        return SignedUrl(url=f"{self.base_url}/{bucket}/{quote(name)}?X-Goog-Expires={ttl_s}",
                         method="PUT", headers=headers, expires_at=exp)

    def signed_download_url(self, bucket: str, name: str, ttl_s: int, filename: str | None = None) -> str:
        return f"{self.base_url}/{bucket}/{quote(name)}?X-Goog-Expires={ttl_s}"

    def _write(self, bucket, name, writer, content_type, if_generation_match, metadata) -> int:
        with self._lock:
            path = self._path(bucket, name)
            exists = path.exists()
            if if_generation_match == 0 and exists:
                raise Conflict(f"gs://{bucket}/{name} already exists")
            if if_generation_match not in (None, 0):
                current = self.stat(bucket, name)
                if current is None or current.generation != if_generation_match:
                    raise Conflict(f"gs://{bucket}/{name} generation mismatch")
            path.parent.mkdir(parents=True, exist_ok=True)
            writer(path)
            generation = time.time_ns()
            meta = self._meta_path(bucket, name)
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta.write_text(json.dumps({"generation": generation, "contentType": content_type,
                                        "metadata": metadata or {}}))
            return generation

    def upload_bytes(self, bucket, name, data, content_type, *, if_generation_match=None, metadata=None) -> int:
        return self._write(bucket, name, lambda p: p.write_bytes(data), content_type, if_generation_match, metadata)

    def upload_file(self, bucket, name, path, content_type, *, if_generation_match=None, metadata=None) -> int:
        return self._write(bucket, name, lambda p: shutil.copyfile(path, p), content_type,
                           if_generation_match, metadata)

    def download_file(self, bucket: str, name: str, path: str) -> int:
        src = self._path(bucket, name)
        if not src.is_file():
            raise NotFound(f"gs://{bucket}/{name} does not exist")
        shutil.copyfile(src, path)
        return src.stat().st_size

    def read_bytes(self, bucket: str, name: str) -> bytes:
        src = self._path(bucket, name)
        if not src.is_file():
            raise NotFound(f"gs://{bucket}/{name} does not exist")
        return src.read_bytes()

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        src = self._path(bucket, name)
        if not src.is_file():
            return None
        meta_path = self._meta_path(bucket, name)
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return ObjectInfo(bucket=bucket, name=name, size=src.stat().st_size,
                          generation=int(meta.get("generation", 1)), content_type=meta.get("contentType"),
                          metadata=dict(meta.get("metadata") or {}))

    def delete(self, bucket: str, name: str) -> bool:
        with self._lock:
            path = self._path(bucket, name)
            if not path.is_file():
                return False
            path.unlink()
            self._meta_path(bucket, name).unlink(missing_ok=True)
            return True
