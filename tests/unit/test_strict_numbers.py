"""Non-finite numbers and odd tracing values (issue 14, items 2 and 3): the pure helpers."""
from __future__ import annotations

import json

import pytest

from shared.errors import InvalidRequest
from shared.finite import check_metadata_numbers, finite_text, nonfinite_path


def strict(text: str):
    def refuse(token):
        raise ValueError(token)
    return json.loads(text, parse_constant=refuse)


def test_nonfinite_path_names_the_field():
    assert nonfinite_path({"scenes": [{"duration": 1.0}, {"duration": float("inf")}]}) == "scenes[1].duration"
    assert nonfinite_path([1, {"a": float("nan")}]) == "$[1].a"
    assert nonfinite_path(float("-inf")) == "$"
    assert nonfinite_path({"a": [1e308, "nan", "inf"]}) is None  # strings are the validators' business
    deep = current = []
    for _ in range(50_000):  # iterative: no RecursionError on what the decoder accepted
        current.append([])
        current = current[0]
    assert nonfinite_path(deep) is None


@pytest.mark.parametrize("text", ["nan", "NaN", "-nan", "inf", "+inf", "-Infinity", "INFINITY", "1e999", "1_000",
                                  " 5", "0x10", "", "five", "١٢"])
def test_finite_text_refuses_every_spelling_of_not_a_number(text):
    if text == "":
        assert finite_text(text, "metadata.duration-s") is None
        return
    with pytest.raises(InvalidRequest) as exc:
        finite_text(text, "metadata.duration-s")
    assert exc.value.details == [{"path": "metadata.duration-s", "message": "must be a finite decimal number"}]


def test_finite_text_reads_what_the_render_job_writes():
    assert [finite_text(t, "f") for t in ("6.500", "-16.2", "0", "1.5e3")] == [6.5, -16.2, 0.0, 1500.0]


def test_check_metadata_numbers_lists_every_problem():
    meta = {"job-id": "x", "duration-s": "nan", "width": "1280.5", "height": "720", "loudness-tp": "-inf",
            "scene-starts": "0.000,inf,,4.5", "scene-durations": "1.000,2.000", "filename": "nan.mp4"}
    with pytest.raises(InvalidRequest) as exc:
        check_metadata_numbers(meta)
    assert [d["path"] for d in exc.value.details] == [
        "metadata.duration-s", "metadata.loudness-tp", "metadata.width", "metadata.scene-starts[1]",
        "metadata.scene-starts[2]"]
    check_metadata_numbers({"job-id": "x", "duration-s": "6.500", "scene-starts": "0.000,4.500"})  # fine


def test_an_integer_past_the_float_range_is_non_finite():
    """A float field turns 10**400 into inf: such an int is non-finite where it stands."""
    assert nonfinite_path({"poster": {"timeS": 10**400}}) == "poster.timeS"
    assert nonfinite_path({"a": [1, -10**400]}) == "a[1]"
    big = int(1.7976931348623157e308)  # the largest float, as an int: still a number
    assert nonfinite_path({"a": [big, -big, 10**308, True, 0]}) is None
