"""CORS, one rule for the browser-facing functions and the buckets' signed URLs (issue 20). Pure:
no I/O, standard library only (infra/deploy.sh runs `python -m shared.cors` before any install).

EXPORT_CORS_ORIGINS (shared.config reads it): exact origins, "scheme://host[:port]" (http or https,
lower case, no path, no trailing slash, no default port: what a browser sends as Origin), separated
by commas or spaces; "*" alone = any origin; empty (the default) = no browser origin.

- `parse_origins(text)` -> the origins (ValueError naming the bad value);
- `allow_origin(origin, origins)` -> the Access-Control-Allow-Origin value, or None (not allowed);
- the functions: `preflight_headers` (OPTIONS: 204 with these; None: 403 without any) and
  `actual_headers` (added to the usual answer); the request headers the API reads
  (FUNCTION_REQUEST_HEADERS) and the response headers a page may read (FUNCTION_EXPOSE_HEADERS);
- the buckets: `bucket_cors(bucket, origins)`, the bucket's CORS configuration in GCS's JSON shape
  ([] when no origin is allowed), which Terraform and deploy.sh apply and the storage stand-in obeys.

    python -m shared.cors bucket-json input|output "$EXPORT_CORS_ORIGINS"   (deploy.sh's --cors-file)
"""
from __future__ import annotations

import json
import re
import sys

ANY = "*"
MAX_AGE_S = 3600  # how long a browser may cache a preflight's answer (functions and buckets)
# the request headers the client functions read (functions/main.py, shared.auth, shared.api, shared.logs)
FUNCTION_REQUEST_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-SceneFlow-Owner",
                            "traceparent", "X-Cloud-Trace-Context")
# the response headers a page may read beyond the CORS-safelisted ones: the 401's challenge
FUNCTION_EXPOSE_HEADERS = ("WWW-Authenticate",)
# bucket -> (methods, responseHeader). GCS uses responseHeader both ways: a preflight's
# Access-Control-Request-Headers must be in it, and it is the actual answer's Expose-Headers.
# input: the signed PUT and the two headers its signature covers (shared/ports.py signed_upload_url);
# output: GET and HEAD of the MP4, poster and captions (a <track> is fetched with CORS), Range for
# media requests, and what a page reads of a download.
BUCKET_RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "input": (("PUT",), ("Content-Type", "x-goog-content-length-range")),
    "output": (("GET", "HEAD"), ("Content-Type", "Content-Length", "Content-Range", "Content-Disposition",
                                 "Accept-Ranges", "Range")),
}
_ORIGIN = re.compile(r"(https?)://([a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(:([0-9]{1,5}))?")
_DEFAULT_PORT = {"http": "80", "https": "443"}


def parse_origins(text: str) -> tuple[str, ...]:
    """The origins of an EXPORT_CORS_ORIGINS value ("" -> (); "*" -> ("*",)), in order, once each.

    Raises:
        ValueError: an entry is not an exact origin, naming it and why (e.g. "'https://app.example/'
            is not an origin: no path or trailing slash"), or "*" is combined with origins.
    """
    items = [w for w in re.split(r"[,\s]+", text or "") if w]
    if ANY in items:
        if len(items) > 1:
            raise ValueError("* (any origin) cannot be combined with origins")
        return (ANY,)
    for item in items:
        problem = origin_problem(item)
        if problem:
            raise ValueError(f"{item[:80]!r} is not an origin: {problem}")
    return tuple(dict.fromkeys(items))


def origin_problem(item: str) -> str | None:
    """Why `item` is not an exact origin as a browser sends it, or None."""
    if item != item.lower():
        return "write it in lower case, as browsers send Origin"
    if "://" not in item or not item.startswith(("http://", "https://")):
        return "expected http:// or https:// then a host, e.g. https://app.example.com"
    if "/" in item.split("://", 1)[1]:
        return "no path or trailing slash (scheme://host[:port])"
    m = _ORIGIN.fullmatch(item)
    if not m:
        return "expected scheme://host[:port], e.g. https://app.example.com or http://127.0.0.1:8080"
    port = m.group(5)
    if port is not None and (not 1 <= int(port) <= 65535 or port != str(int(port))):
        return "the port must be 1 to 65535, without leading zeros"
    if port == _DEFAULT_PORT[m.group(1)]:
        return f"leave out the default port {port}: browsers do"
    return None


def allow_origin(origin: str | None, origins: tuple[str, ...]) -> str | None:
    """The Access-Control-Allow-Origin for a request from `origin`: "*" when any origin is allowed,
    the origin itself when it is one of `origins` (compared exactly), else None."""
    if not origin:
        return None
    if origins == (ANY,):
        return ANY
    return origin if origin in origins else None


def preflight_headers(origin: str | None, origins: tuple[str, ...], methods: tuple[str, ...]) -> dict[str, str] | None:
    """A function's answer to a preflight (OPTIONS) from `origin`: the headers of its 204, or None
    when the origin is not allowed (then 403 with no Access-Control-* header). `methods`: the
    function's own (OPTIONS is added)."""
    allowed = allow_origin(origin, origins)
    if allowed is None:
        return None
    return {"Access-Control-Allow-Origin": allowed, "Vary": "Origin",
            "Access-Control-Allow-Methods": ", ".join(dict.fromkeys([*methods, "OPTIONS"])),
            "Access-Control-Allow-Headers": ", ".join(FUNCTION_REQUEST_HEADERS),
            "Access-Control-Max-Age": str(MAX_AGE_S)}


def actual_headers(origin: str | None, origins: tuple[str, ...]) -> dict[str, str]:
    """The headers added to a function's usual answer to a request from `origin` ({} when not allowed)."""
    allowed = allow_origin(origin, origins)
    if allowed is None:
        return {}
    return {"Access-Control-Allow-Origin": allowed, "Vary": "Origin",
            "Access-Control-Expose-Headers": ", ".join(FUNCTION_EXPOSE_HEADERS)}


def bucket_cors(bucket: str, origins: tuple[str, ...]) -> list[dict]:
    """The CORS configuration of the "input" or "output" bucket in GCS's JSON shape
    ([{"origin", "method", "responseHeader", "maxAgeSeconds"}]); [] (no CORS) when no origin is allowed.

    Raises:
        KeyError: another bucket name.
    """
    methods, response_headers = BUCKET_RULES[bucket]
    if not origins:
        return []
    return [{"origin": list(origins), "method": list(methods), "responseHeader": list(response_headers),
             "maxAgeSeconds": MAX_AGE_S}]


def main(argv: list[str]) -> int:
    """`bucket-json input|output ORIGINS`: the bucket's CORS JSON on stdout; exit 2 with a message
    naming EXPORT_CORS_ORIGINS when it is malformed."""
    if len(argv) != 3 or argv[0] != "bucket-json" or argv[1] not in BUCKET_RULES:
        print("usage: python -m shared.cors bucket-json input|output ORIGINS", file=sys.stderr)
        return 2
    try:
        origins = parse_origins(argv[2])
    except ValueError as exc:
        print(f"EXPORT_CORS_ORIGINS: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(bucket_cors(argv[1], origins)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
