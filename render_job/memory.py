"""The render task's memory: what one export needs at once, checked before FFmpeg starts.

On Cloud Run a task's files live in its in-memory disk and count against its memory limit together
with its processes, so an export needs, at its peak (the render):

    need = F + media + output + OVERHEAD_MB
    F       FFmpeg, every process alive at once (ffmpeg_peak_bytes): the encoding run, plus the
            scenes of the largest graph (render_job.graph.timeline.scene_memory_mb: the one graph, or the
            largest segment with its producer run), plus ~1 MB per audio input of the encoding run
    media   the files in the working directory: downloads and normalised copies (*.norm.jpg)
    output  the MP4 as it grows (output_estimate_bytes; capped by FFmpeg's -fs at output_cap)
    OVERHEAD_MB  Python (~150 MB), PyAV/Pillow, caption files and fonts, -fs overshoot, margin

F's constants were fitted to issue 15's measurements and are checked against `make bench-long`
(BENCHMARKS.md, "Long storyboards": the task's processes and files over time, at 1, 10 and 30 minutes).

Budget functions are pure; the file helpers at the end (sizes, deletion, cgroup) do the I/O.
"""
from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

from shared import logs
from shared.errors import PermanentRenderError
from shared.limits import JOB_TOO_LARGE, job_bytes_problem

from render_job.graph.command import GRAPH_FILE
from render_job.graph.timeline import scene_memory_mb
from render_job.plan import RenderPlan

MIB = 1024 * 1024
# FFmpeg's own memory besides the scenes, MiB: a fixed part and a part scaled by output pixels
# (x264's lookahead and frame threads, filter frame pools, the raw-frame pipe).
ENCODE_MB_FIXED = 150.0
ENCODE_MB_1080P = 300.0
PRODUCER_MB_FIXED = 100.0   # a segment's own FFmpeg run (segmented renders only)
PRODUCER_MB_1080P = 250.0
AUDIO_INPUT_MB = 1.0        # per narration / music / clip sound opened by the encoding run
OVERHEAD_MB = 512.0
# Output size estimate: bits per pixel per frame of video (x264 CRF 23 veryfast: 0.04 for stills,
# 0.09 for the noisy Ken Burns benchmark; clips more), plus the 192 kbit/s AAC track.
VIDEO_BITS_PER_PIXEL = {"draft": 0.1, "standard": 0.1, "high": 0.2}
AUDIO_BITS_PER_S = 192_000
CGROUP_MEMORY_MAX = "/sys/fs/cgroup/memory.max"


def _scale(plan: RenderPlan) -> float:
    return plan.width * plan.height / (1920 * 1080)


def segment_scenes(n_scenes: int, cuts: Sequence[int]) -> list[range]:
    """The scenes each graph may read, in order: one range for [] (one graph); with cuts, segment k
    from its first scene to the first of the next, included (its transition's head frames)."""
    bounds = list(zip([0, *cuts], [*cuts, None]))
    return [range(first, n_scenes if last is None else min(n_scenes, last + 1)) for first, last in bounds]


def _encode_mb(width: int, height: int) -> float:
    return ENCODE_MB_FIXED + ENCODE_MB_1080P * width * height / (1920 * 1080)


def ffmpeg_floor_bytes(width: int, height: int) -> int:
    """The least F of any render of a width x height frame: its encoding run alone (no scene, no sound)."""
    return int(_encode_mb(width, height) * MIB)


def ffmpeg_peak_bytes(plan: RenderPlan, cuts: Sequence[int]) -> int:
    """F: bytes of every FFmpeg process of the render at once (module docstring), for `plan`
    rendered with segment_cuts `cuts` ([]: one graph)."""
    s = _scale(plan)
    scenes = max((sum(scene_memory_mb(plan, plan.scenes[i]) for i in r)
                  for r in segment_scenes(len(plan.scenes), cuts)), default=0.0)
    audio = sum(1 for sc in plan.scenes if sc.narration_src) + sum(1 for sc in plan.scenes if sc.clip_audio)
    audio += 1 if plan.music is not None else 0
    mb = _encode_mb(plan.width, plan.height) + AUDIO_INPUT_MB * audio + scenes
    if cuts:
        mb += PRODUCER_MB_FIXED + PRODUCER_MB_1080P * s
    return int(mb * MIB)


def output_estimate_bytes(plan: RenderPlan) -> int:
    """An estimate of the MP4's size in bytes (VIDEO_BITS_PER_PIXEL, AUDIO_BITS_PER_S)."""
    bpp = VIDEO_BITS_PER_PIXEL.get(plan.quality, max(VIDEO_BITS_PER_PIXEL.values()))
    bits_per_s = plan.width * plan.height * plan.fps * bpp + AUDIO_BITS_PER_S
    return int(plan.total_s * bits_per_s / 8)


def gb(n: float) -> str:
    """Bytes for messages: '2.15 GB' (10^9)."""
    return f"{n / 1e9:.2f} GB"


@dataclass(frozen=True)
class Budget:
    """The memory one export needs at its peak, bytes (module docstring).

    limit: the task's memory; limit_source: where it came from ("RENDER_MEMORY_BYTES" or the
    cgroup's memory.max). max_output: EXPORT_MAX_OUTPUT_BYTES.
    """

    limit: int
    limit_source: str
    ffmpeg: int
    media: int
    output: int
    max_output: int
    overhead: int = int(OVERHEAD_MB * MIB)

    @property
    def need(self) -> int:
        return self.ffmpeg + self.media + self.output + self.overhead

    @property
    def output_cap(self) -> int:
        """The MP4's size limit (FFmpeg -fs): EXPORT_MAX_OUTPUT_BYTES, or the memory left beside
        FFmpeg, the media and the overhead when that is less (at least 1 byte)."""
        return max(1, min(self.max_output, self.limit - self.ffmpeg - self.media - self.overhead))

    @property
    def output_cap_source(self) -> str:
        if self.output_cap >= self.max_output:
            return "EXPORT_MAX_OUTPUT_BYTES"
        return f"the memory left beside FFmpeg and the media files within {self.limit_source}"

    def as_log(self) -> dict[str, int | str]:
        return {"limitBytes": self.limit, "limitSource": self.limit_source, "needBytes": self.need,
                "ffmpegBytes": self.ffmpeg, "mediaBytes": self.media, "outputBytes": self.output,
                "overheadBytes": self.overhead, "outputCapBytes": self.output_cap}


def budget(plan: RenderPlan, cuts: Sequence[int], media_bytes: int, limit: int, limit_source: str,
           max_output_bytes: int) -> Budget:
    """The Budget of rendering `plan` with `cuts` (segment_cuts) beside `media_bytes` of files."""
    return Budget(limit=limit, limit_source=limit_source, ffmpeg=ffmpeg_peak_bytes(plan, cuts), media=media_bytes,
                  output=min(output_estimate_bytes(plan), max_output_bytes), max_output=max_output_bytes)


def check_budget(b: Budget, resolution: str) -> None:
    """Raises PermanentRenderError (code "memory_limit") when `b` does not fit its limit; the
    message names the limit, the estimate and its parts, and what to do."""
    if b.need <= b.limit:
        return
    smaller = ", or 720p instead of 1080p" if resolution == "1080p" else ""
    raise PermanentRenderError(
        f"this export needs an estimated {gb(b.need)} of memory, over the render task's {gb(b.limit)} "
        f"({b.limit_source}): FFmpeg {gb(b.ffmpeg)} ({resolution}), media files {gb(b.media)}, "
        f"output {gb(b.output)}, overhead {gb(b.overhead)}; use fewer or smaller media files or a "
        f"shorter storyboard{smaller}", code="memory_limit")


def check_job_bytes(sizes: Sequence[tuple[str, int]], limit: int) -> None:
    """Raises PermanentRenderError (code JOB_TOO_LARGE) when the media files' sizes ([(src, bytes)],
    from storage.stat, before any download) add up to more than `limit` (EXPORT_MAX_JOB_BYTES, > 0).
    The message is the API's (shared.limits.job_bytes_problem): limit, total, files."""
    problem = job_bytes_problem(list(sizes), limit)
    if problem:
        raise PermanentRenderError(problem, code=JOB_TOO_LARGE)


class MediaOverLimit(PermanentRenderError):
    """MediaGuard's failure: preflight's media would not fit the task's memory (code "memory_limit")."""

    code = "memory_limit"


class MediaGuard:
    """The bytes of media on the task's disk during preflight (downloads, normalised copies), a
    running total shared by the download threads.

    allowance: what the task's memory `limit` (bytes; from `limit_source`) leaves for media beside
    the least FFmpeg of a width x height render (ffmpeg_floor_bytes) and OVERHEAD_MB.
    """

    def __init__(self, limit: int, limit_source: str, width: int, height: int, resolution: str):
        self.limit, self.limit_source, self.resolution = limit, limit_source, resolution
        self.ffmpeg = ffmpeg_floor_bytes(width, height)
        self.overhead = int(OVERHEAD_MB * MIB)
        self.allowance = limit - self.ffmpeg - self.overhead
        self.total = 0
        self.tripped = False
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        """Count `n` bytes written (negative: deleted). Raises MediaOverLimit when the total, with a
        file just written or about to be, exceeds the allowance, and on every later call with n >= 0
        (the job has failed: nothing more is fetched or decoded); deletions never raise."""
        with self._lock:
            self.total += n
            total, first = self.total, not self.tripped
            self.tripped = self.tripped or (n >= 0 and total > self.allowance)
            tripped = self.tripped
        if n >= 0 and tripped:
            if first:
                logs.warning("media over the memory allowance", mediaBytes=total, allowanceBytes=self.allowance,
                             limitBytes=self.limit, limitSource=self.limit_source)
            raise MediaOverLimit(
                f"the media files of this export (downloads and normalised pictures) need more than the "
                f"{gb(max(0, self.allowance))} of memory that the render task's {gb(self.limit)} "
                f"({self.limit_source}) leaves for them beside FFmpeg ({gb(self.ffmpeg)} at the least, "
                f"{self.resolution}) and overhead ({gb(self.overhead)}); use fewer or smaller media files")


def with_size_limit(argv: list[str], cap: int) -> list[str]:
    """`argv` (output file last) with FFmpeg's `-fs cap` before its output file. FFmpeg stops
    writing once the file exceeds `cap` bytes (a little over it: one muxer flush) and exits 0 with a
    truncated file, so check_output must follow."""
    return [*argv[:-1], "-fs", str(cap), argv[-1]]


def check_output(path: str, cap: int, cap_source: str) -> None:
    """Raises PermanentRenderError (code "output_too_large") when the file at `path` is larger than
    `cap` bytes, i.e. FFmpeg's -fs stopped it (with_size_limit): -fs stops once the file has grown
    past the cap and the MP4's trailer follows, so a truncated video is always over it, and one of
    exactly `cap` bytes is complete. Never upload a truncated video."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return
    check_size(size, cap, cap_source)


def check_size(size: int, cap: int, cap_source: str) -> None:
    """Raises PermanentRenderError (code "output_too_large") when `size` bytes of video (so far) are
    over `cap`: check_output's error, for a render that writes its video in pieces (scene chunks)."""
    if size > cap:
        raise PermanentRenderError(
            f"the video would exceed {cap} bytes ({gb(cap)}, {cap_source}); the render was stopped at "
            f"that size: use a shorter storyboard, a lower resolution or quality", code="output_too_large")


def second_pass_fits(output_bytes: int, limit: int) -> bool:
    """Whether a loudness second pass (a second copy of the MP4 beside the first) fits in `limit`."""
    return 2 * output_bytes + int(OVERHEAD_MB * MIB) <= limit


def inputs_of(argv: Sequence[str]) -> set[str]:
    """The files an FFmpeg argv opens with -i (pipes excluded)."""
    return {argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-i" and not argv[i + 1].startswith("pipe:")}


def freed_after_segments(encoder_argv: Sequence[str], segment_argvs: Sequence[Sequence[str]]) -> list[list[str]]:
    """For each segment run, the input files no run needs once it has exited: read by none of
    the later segments nor by the encoding run (which keeps narration, music and clip sound open
    for the whole length). Sorted, per segment."""
    keep = inputs_of(encoder_argv)
    later: set[str] = set()
    out: list[list[str]] = []
    for argv in reversed(segment_argvs):
        mine = inputs_of(argv)
        out.append(sorted(mine - later - keep))
        later |= mine
    return out[::-1]


# --- I/O ----------------------------------------------------------------------------------------
def task_memory_limit(setting_bytes: int, cgroup_file: str = CGROUP_MEMORY_MAX) -> tuple[int, str]:
    """The task's memory limit in bytes and where it came from: RENDER_MEMORY_BYTES, or the cgroup
    v2 limit (`memory.max`) when that file holds a smaller number ("max" or unreadable: ignored)."""
    try:
        with open(cgroup_file, encoding="ascii") as fh:
            cgroup = int(fh.read().strip())
    except (OSError, ValueError):
        return setting_bytes, "RENDER_MEMORY_BYTES"
    if 0 < cgroup < setting_bytes:
        return cgroup, "the container's memory limit (cgroup memory.max)"  # no path: clients read it
    return setting_bytes, "RENDER_MEMORY_BYTES"


def media_guard(setting_bytes: int, width: int, height: int, resolution: str) -> MediaGuard:
    """The MediaGuard of a preflight, for the task's memory (task_memory_limit(setting_bytes))."""
    return MediaGuard(*task_memory_limit(setting_bytes), width, height, resolution)


def tree_bytes(path: str) -> int:
    """Bytes of the regular files under `path` (0 when it does not exist)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def remove_files(workdir: str, rels: Sequence[str]) -> int:
    """Delete files (paths relative to `workdir`); returns the bytes freed. Missing files are skipped."""
    freed = 0
    for rel in rels:
        path = os.path.join(workdir, rel)
        try:
            size = os.lstat(path).st_size
            os.remove(path)
            freed += size
        except OSError:
            pass
    return freed


def free_after_render(workdir: str) -> int:
    """Delete what the render no longer needs once its runs have exited: the media (assets/) and the
    filter graph files. Returns the bytes freed."""
    freed = tree_bytes(os.path.join(workdir, "assets"))
    shutil.rmtree(os.path.join(workdir, "assets"), ignore_errors=True)
    graphs = [n for n in os.listdir(workdir) if n.endswith(GRAPH_FILE)]
    return freed + remove_files(workdir, graphs)


def segment_cleaner(workdir: str, argvs: Sequence[Sequence[str]], job_id: str | None = None) -> Callable[[int], None]:
    """SegmentFeed's on_done for a segmented render whose argvs are [encoding run, segment 0, ...]:
    after segment k exits, delete the files freed_after_segments names for it (logged)."""
    freed = freed_after_segments(argvs[0], argvs[1:])

    def done(k: int) -> None:
        if freed[k]:
            logs.info("media freed after a segment", job_id=job_id, segment=k, files=freed[k],
                      bytes=remove_files(workdir, freed[k]))

    return done
