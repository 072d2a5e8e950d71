"""Job error messages within MESSAGE_MAX_CHARS, cut where a reader expects it. Pure: no I/O."""
from __future__ import annotations

from shared.errors import MESSAGE_MAX_CHARS

_CUT = "..."


def bounded(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """`text` when it has at most `limit` characters, else its start ending in "..." (`limit` in all)."""
    return text if len(text) <= limit else text[:max(0, limit - len(_CUT))] + _CUT


def listing(head: str, items: list[str], limit: int = MESSAGE_MAX_CHARS) -> str:
    """`head` and `items` joined with ", " in at most `limit` characters: the items that do not fit
    are counted at the end ("uploads never arrived: a.png, b.png and 98 more"), never cut in the
    middle (unless the first alone does not fit: then bounded())."""
    def more(n: int) -> str:
        return f" and {n} more" if n else ""

    whole = head + ", ".join(items)
    if len(whole) <= limit:
        return whole
    shown: list[str] = []
    for i, item in enumerate(items):
        if len(head) + len(", ".join(shown + [item])) + len(more(len(items) - i - 1)) > limit:
            break
        shown.append(item)
    if not shown:
        return bounded(whole, limit)
    return head + ", ".join(shown) + more(len(items) - len(shown))


def shown(value: str, limit: int = 80) -> str:
    """`value` quoted for an error message, cut to `limit` characters (control characters escaped)."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def plain(value: float, places: int = 3, *, grouped: bool = False) -> str:
    """A number for a message, to `places` decimals without trailing zeros: 5.2 -> "5.2", 3600.0 ->
    "3600", 8.64 -> "8.64" (grouped: 1704.5 -> "1,704.5"). Never rounded to a whole unit, so a value
    over its limit never prints as equal to it ("5 s long, over the limit of 5 s")."""
    return f"{value:{',' if grouped else ''}.{places}f}".rstrip("0").rstrip(".") or "0"
