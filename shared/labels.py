"""The app's own names for an export (DESIGN §4): `labels` (a small string map) and `externalRef`,
given at export_start, shown by status and list, filtered by export_list. Their rules and the
problems a value breaks, as [{path, message}]. Pure: no I/O.
"""
from __future__ import annotations

import re

from shared.messages import shown

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # every Unicode control character (category Cc)

# Labels (DESIGN §4): keys as Google Cloud's labels (https://cloud.google.com/resource-manager/docs/
# labels-overview#requirements; ASCII only), values a little wider (upper case and '.': user ids,
# versions "v1.2"); none of these characters needs escaping in `label=key:value` of export_list.
MAX_LABELS = 16
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[A-Za-z0-9_.-]{0,63}")
LABEL_KEY_RULE = "1-63 characters of a-z, 0-9, '_', '-', starting with a letter"
LABEL_VALUE_RULE = "0-63 characters of A-Z, a-z, 0-9, '_', '-', '.'"
MAX_EXTERNAL_REF = 200


def label_problems(labels: dict[str, str], path: str = "labels") -> list[dict[str, str]]:
    """Every key and value against LABEL_KEY / LABEL_VALUE, as [{path: "labels.KEY", message}]."""
    problems = []
    for key, value in labels.items():
        where = f"{path}.{key[:63]}"
        if not LABEL_KEY.fullmatch(key):
            problems.append({"path": where, "message": f"label key {shown(key)}: {LABEL_KEY_RULE}"})
        if not LABEL_VALUE.fullmatch(value):
            problems.append({"path": where, "message": f"label value {shown(value)}: {LABEL_VALUE_RULE}"})
    return problems


def external_ref_problems(ref: str | None, path: str = "externalRef") -> list[dict[str, str]]:
    """An external reference: 1-MAX_EXTERNAL_REF characters, no control characters."""
    if ref is None:
        return []
    if not 1 <= len(ref) <= MAX_EXTERNAL_REF:
        return [{"path": path, "message": f"1 to {MAX_EXTERNAL_REF} characters"}]
    return [{"path": path, "message": "must not contain control characters"}] if CONTROL_CHARS.search(ref) else []
