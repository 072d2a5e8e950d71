"""Strict numbers: NaN and Infinity never enter (as JSON tokens, overflowing literals like 1e999 or
an integer like 10**400 that a float field would turn into inf, or the strings "nan", "inf",
"-Infinity" that float() accepts). Pure: no I/O.

- nonfinite_path(data): where decoded JSON holds a non-finite number ("scenes[0].duration"), else None.
- finite_text(text, field): a decimal number written as text (object metadata) -> float; None when
  absent; InvalidRequest naming `field` for anything else, the spellings of NaN/Infinity included.
- check_metadata_numbers(meta): every numeric key of the video object's metadata, all problems at once.
"""
from __future__ import annotations

import math
import re
from typing import Any

from shared.artifacts import LOUDNESS_METADATA
from shared.errors import InvalidRequest

# What a number in our metadata looks like: float() also takes "nan", "inf", "1_000", " 5 ", "١٢".
_DECIMAL = re.compile(r"^-?(?:\d{1,20})(?:\.\d{1,20})?(?:[eE][+-]?\d{1,3})?$", re.ASCII)
_COUNT = re.compile(r"^\d{1,19}$", re.ASCII)

# the video object's numeric metadata (shared.artifacts.OutputRecord.to_metadata writes them)
DECIMAL_KEYS = ("duration-s", *(meta for _, meta in LOUDNESS_METADATA))
COUNT_KEYS = ("width", "height")
LIST_KEYS = ("scene-starts", "scene-durations")


def nonfinite_path(data: Any, path: str = "$") -> str | None:
    """The path (`a.b[2]`) of the first non-finite number in decoded JSON, else None: a NaN/Infinity
    float, or an int past the float range (float() overflows; a float field would hold inf). Iterative:
    nesting depth is bounded only by what the JSON decoder accepted."""
    stack: list[tuple[Any, str]] = [(data, path)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return at
        if isinstance(value, int) and _overflows(value):
            return at
        if isinstance(value, dict):
            stack.extend((v, f"{at}.{k}" if at != "$" else str(k)) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((v, f"{at}[{i}]") for i, v in reversed(list(enumerate(value))))
    return None


def _overflows(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return True
    return False


def nonfinite_problem(data: Any, prefix: str = "") -> dict[str, str] | None:
    """{path, message} for the first non-finite number of `data` (path prefixed), else None."""
    at = nonfinite_path(data)
    if at is None:
        return None
    path = prefix + at if at != "$" else (prefix.rstrip(".") or "$")
    return {"path": path,
            "message": "must be a finite number (NaN, Infinity and magnitudes above 1.8e308 are not allowed)"}


def finite_text(text: Any, field: str) -> float | None:
    """A finite float from metadata text like "12.345"; None when absent or empty.
    Raises InvalidRequest naming `field` otherwise ("nan", "inf", "1e999", "abc", a number type)."""
    if text is None or text == "":
        return None
    if not isinstance(text, str) or not _DECIMAL.match(text) or not math.isfinite(float(text)):
        raise InvalidRequest(f"{field} is not a finite decimal number: {str(text)[:40]!r}",
                             details=[{"path": field, "message": "must be a finite decimal number"}])
    return float(text)


def _count_text(text: Any, field: str) -> int | None:
    if text is None or text == "":
        return None
    if not isinstance(text, str) or not _COUNT.match(text):
        raise InvalidRequest(f"{field} is not a whole number: {str(text)[:40]!r}",
                             details=[{"path": field, "message": "must be a whole number"}])
    return int(text)


def check_metadata_numbers(meta: dict[str, Any], prefix: str = "metadata.") -> None:
    """Raise InvalidRequest listing every numeric metadata value of a video object that is not a
    finite number (comma lists element by element); absent keys are fine."""
    details: list[dict[str, str]] = []

    def check(fn, value, field):
        try:
            fn(value, field)
        except InvalidRequest as exc:
            details.extend(exc.details)

    for key in DECIMAL_KEYS:
        check(finite_text, meta.get(key), prefix + key)
    for key in COUNT_KEYS:
        check(_count_text, meta.get(key), prefix + key)
    for key in LIST_KEYS:
        raw = meta.get(key)
        if raw is None or raw == "":
            continue
        if not isinstance(raw, str):
            details.append({"path": prefix + key, "message": "must be comma-separated decimal numbers"})
            continue
        for i, part in enumerate(raw.split(",")):
            check(finite_text, part or "?", f"{prefix}{key}[{i}]")
    if details:
        raise InvalidRequest("object metadata has numbers that are not finite: "
                             + ", ".join(d["path"] for d in details[:5]), details=details[:20])
