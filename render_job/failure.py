"""What a failed export tells its client: one message within MESSAGE_MAX_CHARS characters
(shared.errors), parts that do not fit counted rather than cut, local paths and memory addresses
removed (the full text stays in the render job's log).
"""
from __future__ import annotations

import os
import re
import tempfile

from shared.errors import MESSAGE_MAX_CHARS, ExportError, InvalidRequest


def fit_parts(head: str, parts: list[str], limit: int = MESSAGE_MAX_CHARS) -> str:
    """`head` followed by `parts` joined with "; ", within `limit` characters: the parts that do not
    fit are counted at the end ("; and 3 more problems; every one is in the render job's log"),
    never cut mid-sentence (only a first part too long on its own is shortened, ending "...")."""
    def more(n: int) -> str:
        return f"; and {n} more problem{'s' if n != 1 else ''}; every one is in the render job's log" if n else ""

    message = ""
    for i, part in enumerate(parts):
        left = len(parts) - i - 1
        candidate = f"{message}; {part}" if message else part
        if len(head) + len(candidate) + len(more(left)) > limit:
            if not message:  # the first entry alone is too long: shorten it
                return head + part[:max(0, limit - len(head) - len(more(left)) - 3)] + "..." + more(left)
            return head + message + more(left + 1)
        message = candidate
    return head + message


def failure_message(exc: ExportError) -> str:
    """The client's message for a permanent failure: an invalid spec (InvalidRequest with details
    [{path, message}], e.g. a spec.json written past the API) names each problem, within
    MESSAGE_MAX_CHARS; other errors' messages already say what was wrong."""
    if isinstance(exc, InvalidRequest) and exc.details and not any(
            str(d.get("message")) in exc.message for d in exc.details):
        return fit_parts(f"{exc.message}: ", [f"{d.get('path') or '(spec)'}: {d.get('message')}"
                                              for d in exc.details])
    return exc.message


def public_message(message: str, workdir: str) -> str:
    """A failure message fit for the client: local paths (the work folder, temp folders) and the
    memory addresses of FFmpeg's log prefixes ("[aac @ 0x55d0...]" -> "[aac]") removed; the full
    text stays in the job's logs."""
    for root in {os.path.realpath(workdir), os.path.abspath(workdir), tempfile.gettempdir()}:
        message = message.replace(root + os.sep, "").replace(root, ".")
    return re.sub(r" @ 0x[0-9a-fA-F]+\]", "]", message)
