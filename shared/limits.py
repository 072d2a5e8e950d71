"""Per-job limits and their messages: the uploads a start may declare, scenes (EXPORT_MAX_SCENES),
length (EXPORT_MAX_TOTAL_S), the media budget (EXPORT_MAX_JOB_BYTES). Pure: no I/O.

Every media file a job uses (uploads and gs:// library files) is downloaded into the render task's
working directory, which on Cloud Run is an in-memory disk counted against the task's memory limit;
so their sum is limited per job, not only each file (EXPORT_MAX_ASSET_BYTES).
"""
from __future__ import annotations

from shared.messages import listing, plain

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



def scenes_problem(count: int, limit: int) -> str:
    """The message for a storyboard of `count` scenes, over `limit` (EXPORT_MAX_SCENES, which can only
    lower the spec's MAX_SCENES): the same at both."""
    return f"{count} scenes; at most {limit} scenes per storyboard (EXPORT_MAX_SCENES / the spec's MAX_SCENES)"


TOO_LONG = "too_long"  # the error code of a job whose planned length exceeds EXPORT_MAX_TOTAL_S
LONGEST_NAMED = 3  # scenes named in a too_long message, longest first (what to shorten)


def scene_label(index: int, scene_id: str) -> str:
    """How a length message names a scene: "scenes[3] (id 'talk')"."""
    return f"scenes[{index}] (id {scene_id!r})"


def _seconds(value: float) -> str:
    """Seconds to the millisecond, grouped: 1704.5 -> "1,704.5", 80.0 -> "80"."""
    return plain(value, grouped=True)


def total_problem(total_s: float, scenes: list[tuple[str, float]], limit_s: float, *, overlap_s: float = 0.0,
                  probed: bool = False, least: bool = False, setting: str = "EXPORT_MAX_TOTAL_S") -> str | None:
    """The error message when the planned output (`total_s` seconds) is longer than `limit_s`, else None.

    The same message at start (shared.service, from shared.timeline.least_grid) and in the render
    (render_job.job, from the plan), so a storyboard whose lengths are all known gets the same number
    from both. scenes: [(scene_label, seconds)] on the plan's grid, the longest LONGEST_NAMED named
    (what to shorten); overlap_s: the transitions' overlap subtracted from the scenes' sum; probed:
    some scene's length came from its narration or clip; least: some will, and is counted at its
    shortest (start). E.g. "the video would be 1,820 s long (1,919.5 s of scenes less 99.5 s where
    transitions overlap), over EXPORT_MAX_TOTAL_S = 1,800 s; longest scenes: scenes[3] (id 'talk')
    20 s, ...".
    """
    if total_s <= limit_s:
        return None
    longest = sorted(scenes, key=lambda s: -s[1])[:LONGEST_NAMED]
    named = ", ".join(f"{label} {_seconds(seconds)} s" for label, seconds in longest)
    overlap = (f" ({_seconds(sum(s for _, s in scenes))} s of scenes less {_seconds(overlap_s)} s where "
               "transitions overlap)" if overlap_s > 0 else "")
    why = ("; a scene without duration lasts as long as its narration or clip" if probed or least else "")
    why += ", counted here at its shortest" if least else ""
    return (f"the video would be {'at least ' if least else ''}{_seconds(total_s)} s long{overlap}, over "
            f"{setting} = {_seconds(limit_s)} s{why}; longest scenes: {named}")
