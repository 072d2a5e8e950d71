"""infra/local/gcs_cors.py: GCS's evaluation of a bucket CORS configuration (first rule matching
Origin and method; preflight headers each in responseHeader; no match: no CORS headers)."""
from __future__ import annotations

from infra.local import gcs_cors
from shared.cors import bucket_cors

PAGE = "https://app.example.com"
RULES = [{"origin": [PAGE], "method": ["PUT"], "responseHeader": ["Content-Type"], "maxAgeSeconds": 60},
         {"origin": ["*"], "method": ["GET"], "responseHeader": ["Range"]}]


def test_the_first_rule_matching_origin_and_method_answers():
    assert gcs_cors.preflight(RULES, PAGE, "PUT", "Content-Type") == {
        "Access-Control-Allow-Origin": PAGE, "Vary": "Origin", "Access-Control-Allow-Methods": "PUT",
        "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "60"}
    assert gcs_cors.preflight(RULES, PAGE, "GET", "range")["Access-Control-Allow-Origin"] == "*"
    assert gcs_cors.actual(RULES, "https://x.test", "GET") == {
        "Access-Control-Allow-Origin": "*", "Vary": "Origin", "Access-Control-Expose-Headers": "Range"}
    assert gcs_cors.actual(RULES, PAGE, "PUT")["Access-Control-Expose-Headers"] == "Content-Type"


def test_no_match_no_headers():
    assert gcs_cors.preflight(RULES, "https://x.test", "PUT", "content-type") == {}  # origin
    assert gcs_cors.preflight(RULES, PAGE, "PUT", "content-type, x-goog-meta-a") == {}  # a header
    assert gcs_cors.preflight(RULES, PAGE, None, None) == {}  # not a preflight
    assert gcs_cors.preflight(RULES, None, "GET", None) == {}  # no Origin
    assert gcs_cors.actual(RULES, "https://x.test", "PUT") == {}
    assert gcs_cors.actual([], PAGE, "PUT") == {} == gcs_cors.preflight([], PAGE, "PUT", "")


def test_the_input_rule_admits_exactly_a_signed_put():
    config = bucket_cors("input", (PAGE,))
    assert gcs_cors.preflight(config, PAGE, "PUT", "content-type,x-goog-content-length-range")
    assert gcs_cors.preflight(config, PAGE, "POST", "content-type") == {}
