"""The request handler of the embedded storage stand-in: gcp-storage-emulator's RequestHandler with
GCS's V4 signed-URL checks (infra/local/signed_urls.py) in front of every request the emulator would
store through its XML-API object upload (/BUCKET/OBJECT, what signed upload URLs address).

Which requests those are is decided the way the emulator's Router decides (server.Router.handle):
- the X-HTTP-Method-Override header, when present, replaces the verb (so POST, PATCH, DELETE or GET
  with "X-HTTP-Method-Override: PUT" is an upload there);
- the path is the emulator's own parse of "http://" + Host + target (urlparse: ";params" and a
  "#fragment" are dropped, and the Host header takes part);
- the first route of server.HANDLERS that matches wins.
Such a request is checked as GCS checks a signed PUT; the canonical request keeps the verb of the
request line, because GCS's XML API knows no override: a URL signed for PUT does not match a POST
(403 SignatureDoesNotMatch), an unsigned request is 403 AccessDenied.

An accepted upload is stored here, not by the emulator: the body is read (Content-Length, or chunked
with or without chunk extensions; bad framing: 400), measured and stored as sent, as GCS does. The
emulator would gunzip a Content-Encoding: gzip body (a few hundred bytes inside the signed range
becoming megabytes), parse an application/json or multipart body, and fail on an empty one.

Every request gets an answer: an empty JSON-API media upload (uploadType=media), which the emulator
cannot store (len(None)), is stored here as a 0-byte object as on GCS; any other failure inside the
emulator is a 500 JSON error instead of a closed connection. The rest (the JSON API that the client
libraries use) goes to the emulator unchanged.

CORS: requests to the XML API (/BUCKET/OBJECT) follow the bucket's CORS configuration (`cors_of`:
bucket -> GCS's JSON shape, shared.cors.bucket_cors) as GCS applies it (infra/local/gcs_cors.py):
an OPTIONS preflight is answered 200, with CORS headers only when it matches; any other answer
gets Access-Control-Allow-Origin, Vary and Access-Control-Expose-Headers when its Origin and verb
match a rule. The JSON API answers no CORS (the local services call it, never a page).
HEAD is answered as GCS answers it: the GET's status and headers without the body (the emulator
has none: 501), with the CORS headers of a HEAD (the output bucket's rule allows it).
"""
from __future__ import annotations

import io
import json
import logging
import re
from typing import Callable
from urllib.parse import unquote, urlparse

from infra.local import gcs_cors
from infra.local.signed_urls import Refusal, SignedUrlVerifier, canonical_header_value, error_xml

log = logging.getLogger(__name__)


def _route(method: str, path: str, query: dict[str, list[str]]):
    """(handler, match) the emulator's Router picks for `method` on `path`: first matching route."""
    from gcp_storage_emulator import server, settings
    from gcp_storage_emulator.handlers import objects

    for regex, handlers in server.HANDLERS:
        match = re.compile(regex).fullmatch(path)
        if match:
            handler = handlers.get(method)
            # the Router's fallback for uploads POSTed to .../b/BUCKET/o without /upload
            if (handler is None and method == "POST" and query.get("uploadType") and path.endswith("/o")
                    and (path.startswith(settings.API_ENDPOINT + "/b/") or path.startswith("/b/"))):
                handler = objects.insert
            return handler, match
    return None, None


def _read_body(rfile, headers) -> bytes:
    """The request body as sent (chunk extensions and trailers skipped). ValueError: bad framing."""
    if (headers.get("Transfer-Encoding") or "").lower() == "chunked":
        chunks = []
        while True:
            line = rfile.readline(1024)
            size = int(line.split(b";")[0].strip(), 16)  # ValueError when not a hex size
            if size < 0:
                raise ValueError(f"negative chunk size {line!r}")
            if size == 0:
                while rfile.readline(1024).strip():  # trailer fields, up to the blank line
                    pass
                return b"".join(chunks)
            chunk = rfile.read(size)
            if len(chunk) != size or rfile.readline(1024).strip():
                raise ValueError("chunk shorter than its size")
            chunks.append(chunk)
    length = int(headers.get("Content-Length") or 0)
    if length < 0:
        raise ValueError(f"negative Content-Length {length}")
    return rfile.read(length)


def _xml_bucket(method: str, path: str, query: dict[str, list[str]]) -> str | None:
    """The bucket of an XML-API object request (/BUCKET/OBJECT, the emulator's last route), else None."""
    from gcp_storage_emulator import server

    _, match = _route(method, path, query)
    if match is None or match.re.pattern != server.HANDLERS[-1][0]:
        return None
    return unquote(match["bucket_name"])


class _NoBody:
    """Where a HEAD answer's body goes (http.server's wfile after the headers): nowhere."""

    closed = False

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def verifying_handler(base: type, verifier: SignedUrlVerifier,
                      cors_of: Callable[[str], list[dict]] = lambda bucket: []) -> type:
    """A subclass of gcp-storage-emulator's RequestHandler `base` that checks and stores XML-API
    uploads itself (refused with the XML error of `verifier.check_put`), answers CORS on the XML API
    by `cors_of(bucket)` (GCS's JSON shape) and answers every request."""
    from gcp_storage_emulator import server
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    class VerifyingHandler(base):  # type: ignore[misc, valid-type]
        def do_GET(self):  # noqa: N802 - http.server's naming
            self._handle("GET")

        def do_POST(self):  # noqa: N802
            self._handle("POST")

        def do_PUT(self):  # noqa: N802
            self._handle("PUT")

        def do_DELETE(self):  # noqa: N802
            self._handle("DELETE")

        def do_PATCH(self):  # noqa: N802
            self._handle("PATCH")

        def do_HEAD(self):  # noqa: N802 - GCS answers HEAD as GET without the body (the emulator: 501)
            self._head = True
            self._handle("GET", cors_verb="HEAD")

        def do_OPTIONS(self):  # noqa: N802 - a CORS preflight: 200, with CORS headers when it matches
            request = server.Request(self, "OPTIONS")
            bucket = _xml_bucket("OPTIONS", request.path, request.query)
            self._cors = gcs_cors.preflight(cors_of(bucket) if bucket else [], self.headers.get("Origin"),
                                            self.headers.get("Access-Control-Request-Method"),
                                            self.headers.get("Access-Control-Request-Headers"))
            self._send(200, None, "")

        def end_headers(self):  # every answer, ours or the emulator's: the request's CORS headers
            for name, value in getattr(self, "_cors", {}).items():
                self.send_header(name, value)
            self._cors = {}
            super().end_headers()
            if getattr(self, "_head", False):  # HEAD: the headers go out, the body nowhere
                self._wfile, self.wfile = self.wfile, _NoBody()

        def finish(self):
            if getattr(self, "_wfile", None) is not None:
                self.wfile = self._wfile
            super().finish()

        def _handle(self, verb: str, cors_verb: str | None = None) -> None:
            method = self.headers.get("x-http-method-override") or verb  # as server.Router.handle
            request = server.Request(self, method)
            handler, match = _route(method, request.path, request.query)
            bucket = _xml_bucket(method, request.path, request.query)
            # GCS's XML API knows no override: the rule is matched with the request line's verb
            self._cors = (gcs_cors.actual(cors_of(bucket), self.headers.get("Origin"), cors_verb or verb)
                          if bucket else {})
            try:
                if handler is objects.xml_upload:
                    return self._xml_upload(verb, request, match)
                if handler is objects.insert and request.query.get("uploadType") == ["media"]:
                    return self._media_upload(verb, request, match)
                return getattr(super(), f"do_{verb}")()
            except Exception as exc:  # noqa: BLE001 - answer instead of dropping the connection
                log.error("storage stand-in failed on %s %s: %r", verb, self.path, exc)
                try:
                    self._send_json_error(500, f"the storage stand-in failed on this request ({type(exc).__name__})")
                except OSError:  # the client is gone
                    pass

        def _xml_upload(self, verb: str, request, match) -> None:
            try:
                body = _read_body(self.rfile, self.headers)
            except ValueError as exc:
                return self._refuse(Refusal(400, "InvalidArgument", "Invalid argument.",
                                            f"Unreadable request body: {exc}"))
            refusal = verifier.check_put(request.path, urlparse(request.full_url).query, self.headers.items(),
                                         len(body), method=verb)
            if refusal is not None:
                return self._refuse(refusal)
            bucket, name = unquote(match["bucket_name"]), unquote(match["object_id"])
            ctype = self.headers.get("Content-Type")  # stored as signed: trimmed like the signature's copy
            if self._store(request, bucket, name, body, ctype and canonical_header_value(ctype)) is None:
                return self._refuse(Refusal(404, "NoSuchBucket", "The specified bucket does not exist."))
            self._send(200, None, "")

        def _media_upload(self, verb: str, request, match) -> None:
            try:
                body = _read_body(self.rfile, self.headers)
            except ValueError as exc:
                return self._send_json_error(400, f"unreadable request body: {exc}")
            if not request.query.get("name"):
                return self._send_json_error(400, "Required parameter: name")
            if body:  # the emulator stores it; hand over the body already read
                self.rfile = io.BytesIO(body)
                del self.headers["Transfer-Encoding"]
                del self.headers["Content-Length"]
                self.headers["Content-Length"] = str(len(body))
                return getattr(super(), f"do_{verb}")()
            ctype = objects._content_type_from_request(request, self.headers.get("Content-Type"))
            obj = self._store(request, unquote(match["bucket_name"]), request.query["name"][0], b"", ctype)
            if obj is None:
                return self._send_json_error(404, "The specified bucket does not exist.")
            self._send(200, "application/json", json.dumps(obj))

        def _store(self, request, bucket: str, name: str, body: bytes, content_type: str | None) -> dict | None:
            """Store `body` as the object, as the emulator's own uploads do; None if no such bucket."""
            obj = objects._make_object_resource(request.base_url, bucket, name,
                                                content_type or "application/octet-stream", str(len(body)))
            obj = objects._checksums(body, obj)
            try:
                self.storage.create_file(bucket, name, body, obj)
            except NotFound:
                return None
            return obj

        def _refuse(self, refusal: Refusal) -> None:
            self._send(refusal.status, "application/xml; charset=UTF-8", error_xml(refusal))

        def _send_json_error(self, status: int, message: str) -> None:
            self._send(status, "application/json", json.dumps({"error": {"code": status, "message": message}}))

        def _send(self, status: int, content_type: str | None, body: str | bytes) -> None:
            data = body.encode("utf-8") if isinstance(body, str) else body
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return VerifyingHandler
