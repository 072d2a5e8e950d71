"""What Cloud Storage enforces on a V4 signed PUT (XML API), for the embedded storage stand-in.

gcp-storage-emulator stores whatever is PUT to /BUCKET/OBJECT; Cloud Storage does not. This module
checks a request the way GCS does (https://cloud.google.com/storage/docs/access-control/signed-urls,
"V4 signing process"), so the security limits of an upload URL are tested locally:

- a signature at all (an anonymous PUT: 403 AccessDenied) and well-formed X-Goog-* parameters
  (400 MalformedSecurityHeader); X-Goog-Expires at most 7 days (400 InvalidArgument);
- the expiry, X-Goog-Date + X-Goog-Expires (400 ExpiredToken);
- the signature: the canonical request is rebuilt from the request as received (method, path,
  query without X-Goog-Signature, the signed headers as sent, UNSIGNED-PAYLOAD), and the
  GOOG4-RSA-SHA256 signature is verified with the public key of the X-Goog-Credential account. A
  different Content-Type, a dropped or changed x-goog-content-length-range, another object name or
  a tampered parameter all fail here (403 SignatureDoesNotMatch), as on GCS;
- x-goog-content-length-range "MIN,MAX" against the body's length in bytes (400 EntityTooSmall /
  EntityTooLarge).

Errors are GCS's XML error documents (`error_xml`). The checks do no I/O (`now` can be passed in);
infra/local/storage_handler.py puts them in front of the emulator's XML-API object upload.
`make_service_account_key` makes the throwaway key the local stacks sign their URLs with.
"""
from __future__ import annotations

import binascii
import calendar
import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

ALGORITHM = "GOOG4-RSA-SHA256"
MAX_EXPIRES_S = 604800  # GCS: a V4 signature is valid for at most 7 days


@dataclass(frozen=True)
class Refusal:
    """Why GCS would refuse the request: HTTP status, XML error code, message, optional details
    and extra elements (e.g. StringToSign, CanonicalRequest)."""

    status: int
    code: str
    message: str
    details: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


def error_xml(refusal: Refusal) -> bytes:
    """The XML error document GCS answers with (Content-Type application/xml; charset=UTF-8)."""
    parts = [f"<Code>{escape(refusal.code)}</Code>", f"<Message>{escape(refusal.message)}</Message>"]
    if refusal.details:
        parts.append(f"<Details>{escape(refusal.details)}</Details>")
    parts += [f"<{k}>{escape(v)}</{k}>" for k, v in refusal.extra]
    return ("<?xml version='1.0' encoding='UTF-8'?><Error>" + "".join(parts) + "</Error>").encode("utf-8")


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    pairs = []
    for item in raw_query.split("&") if raw_query else []:
        name, _, value = item.partition("=")
        pairs.append((unquote(name), unquote(value)))
    return pairs


_FOLDED = re.compile(r"[ \t]+")


def canonical_header_value(value: str) -> str:
    """A header value as GCS puts it in the canonical request: spaces and tabs (HTTP's only whitespace)
    trimmed at both ends and each run of them folded into one space. Nothing else is whitespace here:
    "image/png\x0b" stays itself, so it does not match a URL signed for image/png."""
    return _FOLDED.sub(" ", value.strip(" \t"))


def canonical_request(method: str, raw_path: str, query: list[tuple[str, str]],
                      headers: Iterable[tuple[str, str]], signed_headers: list[str]) -> str:
    """The V4 canonical request of a request as received. `query` excludes X-Goog-Signature;
    `headers` are (name, value) as sent (repeated names joined with ","), `signed_headers` lowercase."""
    path = quote(unquote(raw_path), safe="/~")
    cq = "&".join(sorted(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in query))
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower().strip(" \t"), []).append(canonical_header_value(value))
    ch = "".join(f"{h}:{','.join(values.get(h, []))}\n" for h in signed_headers)
    return "\n".join([method.upper(), path, cq, ch, ";".join(signed_headers), "UNSIGNED-PAYLOAD"])


class SignedUrlVerifier:
    """Checks V4 signed PUTs against the service-account keys it trusts (by client_email)."""

    def __init__(self) -> None:
        self._keys: dict[str, object] = {}

    def trust(self, key_info: dict) -> None:
        """Trust a service-account key (the JSON key's dict: client_email, private_key PEM)."""
        from cryptography.hazmat.primitives import serialization

        private = serialization.load_pem_private_key(key_info["private_key"].encode("ascii"), password=None)
        self._keys[key_info["client_email"]] = private.public_key()

    def check_put(self, raw_path: str, raw_query: str, headers: Iterable[tuple[str, str]], body_len: int,
                  now: float | None = None, method: str = "PUT") -> Refusal | None:
        """None when GCS would accept this upload of `body_len` bytes, else the Refusal.

        raw_path/raw_query: the request target (percent-encoded, split at "?"); headers: (name, value)
        pairs; method: the verb of the request line, which the signature covers (a URL signed for PUT
        does not match a POST)."""
        now = time.time() if now is None else now
        headers = list(headers)
        pairs = _query_pairs(raw_query)
        params = {k.lower(): v for k, v in pairs}
        if "x-goog-signature" not in params:
            return Refusal(403, "AccessDenied", "Access denied.",
                           "Anonymous caller does not have storage.objects.create access to the Google "
                           "Cloud Storage object.")
        missing = [p for p in ("X-Goog-Algorithm", "X-Goog-Credential", "X-Goog-Date", "X-Goog-Expires",
                               "X-Goog-SignedHeaders") if p.lower() not in params]
        if missing:
            return Refusal(400, "MalformedSecurityHeader", "Your request has a malformed header.",
                           f"Missing query parameter: {missing[0]}")
        if params["x-goog-algorithm"] != ALGORITHM:
            return Refusal(400, "MalformedSecurityHeader", "Your request has a malformed header.",
                           f"Unsupported algorithm: {params['x-goog-algorithm']}")
        try:
            signed_at = calendar.timegm(time.strptime(params["x-goog-date"], "%Y%m%dT%H%M%SZ"))
            expires = int(params["x-goog-expires"])
        except ValueError:
            return Refusal(400, "MalformedSecurityHeader", "Your request has a malformed header.",
                           "X-Goog-Date or X-Goog-Expires is malformed")
        if not 1 <= expires <= MAX_EXPIRES_S:
            return Refusal(400, "InvalidArgument", "Invalid argument.",
                           f"Max allowed expiration interval is seven days ({MAX_EXPIRES_S} seconds).")
        if now > signed_at + expires:
            at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(signed_at + expires))
            return Refusal(400, "ExpiredToken", "The provided token has expired.",
                           f"Request signature expired at: {at}")
        email, _, scope = params["x-goog-credential"].partition("/")
        signed_headers = params["x-goog-signedheaders"].split(";")
        query = [(k, v) for k, v in pairs if k.lower() != "x-goog-signature"]
        creq = canonical_request(method, raw_path, query, headers, signed_headers)
        to_sign = "\n".join([ALGORITHM, params["x-goog-date"], scope,
                             hashlib.sha256(creq.encode("utf-8")).hexdigest()])
        if not self._signature_ok(email, params["x-goog-signature"], to_sign):
            return Refusal(403, "SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature you provided. "
                           "Check your Google secret key and signing method.",
                           extra=(("StringToSign", to_sign), ("CanonicalRequest", creq)))
        ranges = [v for k, v in headers if k.lower() == "x-goog-content-length-range"]
        if ranges:
            try:
                low, high = (int(x) for x in ranges[0].split(","))
            except ValueError:
                return Refusal(400, "InvalidArgument", "Invalid argument.",
                               f"Invalid x-goog-content-length-range: {ranges[0]}")
            if body_len < low:
                return Refusal(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum "
                               "object size specified in your Policy Document.",
                               f"Content-length is smaller than lower bound on range: {body_len} < {low}")
            if body_len > high:
                return Refusal(400, "EntityTooLarge", "Your proposed upload is larger than the maximum "
                               "object size specified in your Policy Document.",
                               f"Content-length exceeds upper bound on range: {body_len} > {high}")
        return None

    def _signature_ok(self, email: str, signature_hex: str, to_sign: str) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        key = self._keys.get(email)
        try:
            signature = binascii.unhexlify(signature_hex)
        except (binascii.Error, ValueError):
            return False
        if key is None:
            return False
        try:
            key.verify(signature, to_sign.encode("utf-8"),  # type: ignore[attr-defined]
                       padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True


def make_service_account_key(project: str, email: str | None = None) -> dict[str, str]:
    """A throwaway service-account key (RSA 2048) for signing V4 URLs locally.

    It lets google-cloud-storage sign URLs offline; the embedded emulator checks them once the key
    is trusted (`SignedUrlVerifier.trust`), fake-gcs-server does not check signatures.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": email or f"sceneflow-local@{project}.iam.gserviceaccount.com",
        "client_id": str(uuid.uuid4().int)[:21],
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
