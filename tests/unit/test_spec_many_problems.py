"""A spec with tens of thousands of problems is refused promptly, each problem listed once, in order;
an error body lists at most MAX_DETAILS of them and counts the rest."""
import json
import time

from pydantic import ValidationError

from shared.errors import MAX_DETAILS, InvalidRequest
from shared.spec import ExportSpec, parse_spec
from shared.spec_details import errors_to_details


def _many_unknown_keys(n: int) -> dict:
    spec = {"scenes": [{"id": "a", "visual": {"type": "color"}}]}
    spec.update({f"{i:x}": 0 for i in range(n)})  # extra="forbid": one problem per key
    return spec


def _cpu(fn) -> float:
    c0 = time.process_time()
    fn()
    return time.process_time() - c0


def test_many_problems_cost_about_two_validations_and_are_listed_once_in_order():
    # adversarial review 3: the second pass de-duplicated by a list search (30,000 problems: 11 CPU s
    # against 0.12 s for one pass; quadratic). Two passes and a set are a small multiple of one pass.
    n = 30_000
    spec = _many_unknown_keys(n)
    text = json.dumps(spec)

    def first_pass():
        try:
            ExportSpec.model_validate_json(text, strict=True)
        except ValidationError as exc:
            errors_to_details(exc)
    one = min(_cpu(first_pass) for _ in range(3))
    got: list[InvalidRequest] = []

    def whole():
        try:
            parse_spec(spec)
        except InvalidRequest as exc:
            got.append(exc)
    whole_cpu = _cpu(whole)
    assert whole_cpu < 10 * one + 0.5, f"parse_spec {whole_cpu:.2f} CPU s, one pass {one:.3f} s"
    details = got[0].details
    assert [d["path"] for d in details] == [f"{i:x}" for i in range(n)]
    assert {d["message"] for d in details} == {"Extra inputs are not permitted"}
    assert got[0].message == f"spec is invalid: {n} problem(s)"


def test_error_body_lists_the_first_problems_and_counts_the_rest():
    details = [{"path": f"p{i}", "message": "bad"} for i in range(MAX_DETAILS + 7)]
    body = InvalidRequest("spec is invalid: 107 problem(s)", details=details).to_body()
    assert body["error"]["details"] == details[:MAX_DETAILS] + [{"path": "$", "message": "and 7 more problems"}]
    one_more = InvalidRequest("x", details=details[:MAX_DETAILS + 1]).to_body()["error"]["details"]
    assert one_more[-1] == {"path": "$", "message": "and 1 more problem"} and len(one_more) == MAX_DETAILS + 1
    exact = InvalidRequest("x", details=details[:MAX_DETAILS]).to_body()["error"]["details"]
    assert exact == details[:MAX_DETAILS]
