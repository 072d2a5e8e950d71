"""How Cloud Storage applies a bucket's CORS configuration to XML-API requests (what signed URLs
address), for the embedded storage stand-in (infra/local/storage_handler.py). Pure: no I/O.

`config` is the bucket's CORS configuration in GCS's JSON shape, as shared.cors.bucket_cors builds
it and Terraform/deploy.sh apply it: [{"origin": [...], "method": [...], "responseHeader": [...],
"maxAgeSeconds": N}]. What GCS does with it (https://cloud.google.com/storage/docs/cross-origin,
"How CORS works" and "CORS configuration examples"; the XML API's PUT Bucket CORS reference:
"the first Cors configuration matching the Origin and Method of the request [is] used to determine
any CORS response headers"):

- a preflight (OPTIONS with Origin and Access-Control-Request-Method): the first rule whose origins
  hold the Origin ("*" holds any) and whose methods hold the requested method is used; every header
  named in Access-Control-Request-Headers must be one of its responseHeader (compared without case).
  A match answers Access-Control-Allow-Origin (the Origin, or "*" for a "*" rule), -Allow-Methods,
  -Allow-Headers, -Max-Age; when the method or any requested header is not allowed, the preflight
  fails and the answer carries no CORS header (cross-origin page, "preflighted requests"; the answer
  is still 200 here: the browser refuses it for the missing headers);
- an actual request with Origin: the first rule matching Origin and the request's method adds
  Access-Control-Allow-Origin, Vary: Origin and Access-Control-Expose-Headers (its responseHeader);
  no match adds nothing.
"""
from __future__ import annotations

from shared.cors import allow_origin


def _rule(config: list[dict], origin: str | None, method: str) -> tuple[dict, str] | None:
    """(the first rule matching `origin` and `method`, its Access-Control-Allow-Origin) or None."""
    for rule in config:
        allowed = allow_origin(origin, tuple(rule.get("origin", ())))
        if allowed is not None and method.upper() in (m.upper() for m in rule.get("method", ())):
            return rule, allowed
    return None


def preflight(config: list[dict], origin: str | None, method: str | None, request_headers: str | None) -> dict[str, str]:
    """The CORS headers GCS answers a preflight with ({} when it fails: sent without CORS headers).
    request_headers: the Access-Control-Request-Headers value (comma-separated names) or None."""
    found = _rule(config, origin, method or "") if method else None
    if found is None:
        return {}
    rule, allowed = found
    wanted = [h.strip() for h in (request_headers or "").split(",") if h.strip()]
    permitted = {h.lower() for h in rule.get("responseHeader", ())}
    if any(h.lower() not in permitted for h in wanted):
        return {}
    headers = {"Access-Control-Allow-Origin": allowed, "Vary": "Origin",
               "Access-Control-Allow-Methods": ", ".join(rule["method"])}
    if wanted:
        headers["Access-Control-Allow-Headers"] = ", ".join(wanted)
    if "maxAgeSeconds" in rule:
        headers["Access-Control-Max-Age"] = str(rule["maxAgeSeconds"])
    return headers


def actual(config: list[dict], origin: str | None, method: str) -> dict[str, str]:
    """The CORS headers GCS adds to the answer of a `method` request from `origin` ({} for none)."""
    found = _rule(config, origin, method)
    if found is None:
        return {}
    rule, allowed = found
    headers = {"Access-Control-Allow-Origin": allowed, "Vary": "Origin"}
    if rule.get("responseHeader"):
        headers["Access-Control-Expose-Headers"] = ", ".join(rule["responseHeader"])
    return headers
