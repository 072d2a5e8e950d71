"""The per-job media budget (EXPORT_MAX_JOB_BYTES). Pure: no I/O.

Every media file a job uses (uploads and gs:// library files) is downloaded into the render task's
working directory, which on Cloud Run is an in-memory disk counted against the task's memory limit;
so their sum is limited per job, not only each file (EXPORT_MAX_ASSET_BYTES).
"""
from __future__ import annotations

from shared.messages import listing

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
