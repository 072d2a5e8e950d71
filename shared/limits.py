"""Per-job limits: the uploads a start may declare, the media budget (EXPORT_MAX_JOB_BYTES), the
length (EXPORT_MAX_TOTAL_S). Pure: no I/O.

Every media file a job uses (uploads and gs:// library files) is downloaded into the render task's
working directory, which on Cloud Run is an in-memory disk counted against the task's memory limit;
so their sum is limited per job, not only each file (EXPORT_MAX_ASSET_BYTES).
"""
from __future__ import annotations

from shared.messages import listing

MAX_UPLOADS = 500  # uploads a start request may declare (EXPORT_MAX_ASSETS can only lower it): bounds the body
JOB_TOO_LARGE = "job_too_large"  # the error code of a job whose media exceed EXPORT_MAX_JOB_BYTES


def job_bytes_problem(sizes: list[tuple[str, int]], limit: int, setting: str = "EXPORT_MAX_JOB_BYTES") -> str | None:
    """The error message when the files' sizes add up to more than `limit` bytes, else None.

    sizes: [(file name or gs:// URI, bytes)]. The message names the limit, the total and the files,
    largest first (what to shrink), within MESSAGE_MAX_CHARS (the rest counted):
    "media add up to 2,400,000,000 bytes, over EXPORT_MAX_JOB_BYTES = 2,147,483,648 bytes (2.0 GiB):
    a.mp4 (524,288,000 bytes), ...".
    """
    total = sum(size for _, size in sizes)
    if total <= limit:
        return None
    files = [f"{name} ({size:,} bytes)" for name, size in sorted(sizes, key=lambda s: (-s[1], s[0]))]
    gib = f" ({limit / 2**30:.1f} GiB)" if limit >= 2**30 else ""
    return listing(f"media add up to {total:,} bytes, over {setting} = {limit:,} bytes{gib}: ", files)



TOO_LONG = "too_long"  # the error code of a job whose planned length exceeds EXPORT_MAX_TOTAL_S
LONGEST_NAMED = 3  # scenes named in a too_long message, longest first (what to shorten)


def total_problem(total_s: float, scenes: list[tuple[str, float]], limit_s: float,
                  setting: str = "EXPORT_MAX_TOTAL_S") -> str | None:
    """The error message when the planned output (`total_s` seconds) is longer than `limit_s`, else None.

    scenes: [(label, seconds)] of the plan; the longest LONGEST_NAMED are named, since a scene
    without `duration` takes its narration's or clip's length, known only once the render probed it:
    "the video would be 2,400.0 s long, over EXPORT_MAX_TOTAL_S = 1,800 s; longest scenes: scenes[3]
    (id 'talk') 900.0 s, ...".
    """
    if total_s <= limit_s:
        return None
    longest = sorted(scenes, key=lambda s: -s[1])[:LONGEST_NAMED]
    named = ", ".join(f"{label} {seconds:,.1f} s" for label, seconds in longest)
    return (f"the video would be {total_s:,.1f} s long, over {setting} = {limit_s:,g} s (a scene without "
            f"duration lasts as long as its narration or clip); longest scenes: {named}")
