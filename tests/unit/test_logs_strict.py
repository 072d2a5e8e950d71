"""Log lines are strict JSON and trace headers of any type or length never raise (issue 14, items 2, 3)."""
from __future__ import annotations

import json

import pytest

from shared import logs


def strict(text: str):
    def refuse(token):
        raise ValueError(token)
    return json.loads(text, parse_constant=refuse)


def test_log_lines_are_strict_json(capsys):
    logs.info("measured", lra=float("nan"), peaks=[1.0, float("inf")], nested={"x": float("-inf")})
    entry = strict(capsys.readouterr().out)
    assert (entry["lra"], entry["peaks"], entry["nested"]) == ("nan", [1.0, "inf"], {"x": "-inf"})


@pytest.mark.parametrize("x_cloud,traceparent", [
    (5, None), (None, 5), ([1], {"a": 1}), (b"abc", None), ("a" * 32 + "/" + "1" * 5000, None),
    ("a" * 100_000, "00-" + "a" * 100_000), ("/" * 300, "-" * 300), ("", ""), ("\xff\x00", "\x00\xff"),
], ids=["xctc-number", "traceparent-number", "list-and-object", "bytes", "span-5000-digits", "100k-chars",
        "slashes-and-dashes", "empty", "control-bytes"])
def test_parse_trace_header_never_raises(x_cloud, traceparent):
    t = logs.parse_trace_header(x_cloud, traceparent)
    assert t is None or (len(t.trace_id) == 32 and t.span_id is None)


def test_parse_trace_header_keeps_the_trace_of_an_absurd_span():
    t = logs.parse_trace_header("4bf92f3577b34da6a3ce929d0e0e4736/" + "9" * 400 + ";o=1")
    assert (t.trace_id, t.span_id, t.sampled) == ("4bf92f3577b34da6a3ce929d0e0e4736", None, True)
    assert logs.parse_trace_header("4bf92f3577b34da6a3ce929d0e0e4736/1;o=1" + " " * 600) is None  # > 512 chars
