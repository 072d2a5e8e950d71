"""How a refused spec or request is reported: pydantic's errors as the details [{path, message}] of an
InvalidRequest, with the client's paths (`scenes[2].narration.src`: camelCase, indexes in brackets)
and our wording for a few (the scene limit, caption cues, checks across scenes). Pure: no I/O.
"""
from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from shared.limits import scenes_problem

# the `type` tags of spec.Visual: pydantic puts the tag of a tagged union in an error's location
_VISUAL_TAGS = frozenset({"image", "video", "color", "title"})


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    path = ""
    prev: Any = None
    for part in loc:
        after, prev = prev, part
        if isinstance(part, int):
            path += f"[{part}]"
        elif after == "visual" and isinstance(part, str) and part in _VISUAL_TAGS:
            continue  # the discriminator tag pydantic inserts right after a tagged union
        elif isinstance(part, str) and part.startswith("function-after"):
            continue
        else:
            path += ("." if path else "") + str(part)
    return path or "$"


# a model check naming one item of its list field: "cues[2]: message" -> path `...caption.cues[2]`
_SUB_PATH = re.compile(r"((?:caption\.)?cues\[\d+\]): (.+)", re.S)


def errors_to_details(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as [{path, message}], paths like `scenes[2].narration.src`."""
    details = []
    for err in exc.errors(include_url=False):
        msg = err.get("msg", "invalid")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        path = _loc_to_path(tuple(err.get("loc", ())))
        if path == "scenes" and err.get("type") == "too_long":  # our wording: the limit and its settings
            msg = scenes_problem(err["ctx"]["actual_length"], err["ctx"]["max_length"])
        # cross-field checks pack several "path: message" problems into one error
        if path == "$" and ": " in msg:
            for part in msg.split("; "):
                p, _, m = part.partition(": ")
                details.append({"path": p, "message": m})
            continue
        sub = _SUB_PATH.fullmatch(msg) if path != "$" else None
        if sub:
            path, msg = f"{path}.{sub.group(1)}", sub.group(2)
        details.append({"path": path, "message": msg})
    return details
