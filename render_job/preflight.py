"""Preflight: fetch every asset, probe it, judge it against its use in the spec, and phrase every
problem in one failure message, before anything is rendered.

fetch_and_probe() is the entry point: ({src: path relative to the work directory}, {src: MediaInfo})
or NotFound (only missing files) / PermanentRenderError (any other problem, all listed, each naming
scene index and id, field and file); memory.MediaOverLimit and job-size problems end it at once.
Sizes in bytes; downloaded files are named aNN.ext by us (never a user-controlled path).
"""
from __future__ import annotations

import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Collection

from shared import logs
from shared.artifacts import asset_object
from shared.assets import AssetRef
from shared.config import Settings
from shared.errors import MESSAGE_MAX_CHARS, NotFound, PermanentRenderError
from shared.spec import ExportSpec

from render_job import memory
from render_job.clips import trim_problem
from render_job.failure import fit_parts
from render_job.normalize import COPY_SUFFIX, normalize_image
from render_job.probe import MediaInfo, probe, still_info

_GS_RE = re.compile(r"^gs://([^/]+)/(.+)$")
DOWNLOAD_THREADS = 8  # assets downloaded at once in preflight
PROBE_THREADS = 2  # downloaded assets decoded and probed at once (each may hold a large decoded image)
LABELS_PER_PROBLEM = 4  # spec fields named per distinct problem of a file; the rest are counted

Fetched = tuple[str, "str | None", "MediaInfo | None", "tuple[str, str] | None"]


def fetch_and_probe(spec: ExportSpec, job_id: str, storage: Any, input_bucket: str,
                    workdir: str, settings: Settings | None = None, *,
                    srcs: Collection[str] | None = None) -> tuple[dict[str, str], dict[str, MediaInfo]]:
    """Preflight: download every distinct src into workdir/assets, check and probe it, normalise
    still images (render_job.normalize), collecting every problem before failing. Downloads run
    DOWNLOAD_THREADS at a time; each file is checked as soon as it is in, PROBE_THREADS at a time.

    First every file's size (storage.stat): together over settings.max_job_bytes fails the job
    before any download (memory.check_job_bytes); then a running total of the files on disk
    (memory.MediaGuard) fails it as soon as they exceed what the task's memory leaves for media
    (code "memory_limit"), without fetching the rest. Checks per file: it exists; its size is at
    most settings.max_asset_bytes (before and after the download); images are within the pixel
    limits and decode completely (Pillow); clips, narration and music decode (first frame), are at
    most render_max_media_s long and read to their end (audio decoded completely: exact durations;
    truncation detected); each is used in a role it can play (a picture for visuals, an audio
    stream for narration/music).

    srcs: only these srcs are fetched and judged (every use of each); None: all. A parallel render's
    task fetches what it needs (render_job.prepare): called again with more srcs into the same
    `workdir`, the files keep distinct names (numbered by first use in the whole spec) and the
    media guard counts what is already on disk.

    Returns:
        ({src: path relative to workdir, normalised when needed}, {src: MediaInfo}).
    Raises:
        NotFound: only missing assets. PermanentRenderError: any other problem (all listed, each
            naming scene index and id, field and file).
    """
    settings = settings or Settings()
    os.makedirs(os.path.join(workdir, "assets"), exist_ok=True)
    refs = spec.asset_refs()
    if srcs is not None:
        wanted = set(srcs)
        refs = [ref for ref in refs if ref.src in wanted]
    local, probes, src_problem = _Fetcher(spec, refs, job_id, storage, input_bucket, workdir, settings).run()
    details = _judge(spec, refs, probes, src_problem)
    if details:
        message = _problems_message(details)
        clean = [{"path": d["path"], "message": d["message"]} for d in details]
        logs.warning("preflight found problems", job_id=job_id, problems=len(clean), details=clean)
        if all(d["kind"] == "missing" for d in details):
            raise NotFound(message, details=clean, code="asset_not_found")
        raise PermanentRenderError(message, details=clean, code="invalid_media")
    return local, probes


class _Fetcher:
    """One preflight's downloads and checks (fetch: one file in, check: decoded and probed)."""

    def __init__(self, spec: ExportSpec, refs: list[AssetRef], job_id: str, storage: Any,
                 input_bucket: str, workdir: str, settings: Settings) -> None:
        self.refs, self.job_id, self.storage, self.input_bucket = refs, job_id, storage, input_bucket
        self.workdir, self.settings = workdir, settings
        self.frame_w, self.frame_h = spec.output.size
        # roles: a src used only as an image visual goes through Pillow; anything else through PyAV
        self.image_only: dict[str, bool] = {}
        for ref in refs:
            self.image_only[ref.src] = self.image_only.get(ref.src, True) and ref.media == "image"
        self.picture_roles = _picture_roles(spec, refs)
        self.limit = settings.max_asset_bytes
        self.checking = threading.BoundedSemaphore(PROBE_THREADS)
        self.guard = memory.media_guard(settings.render_memory_bytes, self.frame_w, self.frame_h,
                                        spec.output.resolution)
        self.guard.add(memory.tree_bytes(os.path.join(workdir, "assets")))  # an earlier fetch's files (srcs)
        # local names numbered by first use in the whole spec: distinct across fetches of some srcs
        self.order = {src: k for k, src in enumerate(dict.fromkeys(ref.src for ref in spec.asset_refs()))}
        self.stats: dict[str, Any] = {}
        self.fetched_bytes: dict[str, int] = {}  # src -> bytes fetched (each key written by one download thread)

    def run(self) -> tuple[dict[str, str], dict[str, MediaInfo], dict[str, tuple[str, str]]]:
        """({src: local path}, {src: MediaInfo}, {src: (kind "missing" | "bad", problem)}).

        Downloads in parallel (the storage client is shared across threads: it is built on
        requests, googleapis/google-cloud-python#5685), each file decoded and probed as soon as it
        is in (Pillow and FFmpeg's decoders release the GIL); results kept in first-use order."""
        srcs = list(dict.fromkeys(ref.src for ref in self.refs))
        with ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS) as pool:
            self.stats = dict(zip(srcs, pool.map(self.stat, srcs)))  # every size before any download
            memory.check_job_bytes([(src, i.size) for src, i in self.stats.items() if i is not None],
                                   self.settings.max_job_bytes)
            fetched = list(pool.map(lambda src: self.fetch(self.order[src], src), srcs))
        # again with what was downloaded: a file overwritten through its URL after the stat is fetched new
        memory.check_job_bytes(list(self.fetched_bytes.items()), self.settings.max_job_bytes)
        local: dict[str, str] = {}
        probes: dict[str, MediaInfo] = {}
        src_problem: dict[str, tuple[str, str]] = {}  # src -> (kind, message)
        for src, rel, media, problem in fetched:
            if problem is not None:
                src_problem[src] = problem
            else:
                local[src] = rel  # type: ignore[assignment]
                probes[src] = media  # type: ignore[assignment]
        return local, probes, src_problem

    def stat(self, src: str) -> Any:
        try:
            return self.storage.stat(*_object_for(src, self.job_id, self.input_bucket))
        except PermanentRenderError:
            return None  # a foreign bucket: fetch() reports it

    def fetch(self, index: int, src: str) -> Fetched:
        """(src, local path relative to workdir or None, its MediaInfo or None, (kind, problem) or None)."""
        workdir, limit, guard = self.workdir, self.limit, self.guard
        rel = os.path.join("assets", _local_name(index, src))
        try:
            bucket, name = _object_for(src, self.job_id, self.input_bucket)
            info = self.stats[src]
            if info is None:
                raise NotFound(src)
            if info.size > limit:
                return src, None, None, ("bad", f"file is {_mb(info.size)}, over the limit of {_mb(limit)} "
                                                "per file (EXPORT_MAX_ASSET_BYTES)")
            guard.add(info.size)  # before the download: a file that would not fit is never fetched
            self.storage.download_file(bucket, name, os.path.join(workdir, rel))
            got = os.path.getsize(os.path.join(workdir, rel))
            guard.add(got - info.size)
            self.fetched_bytes[src] = got
            if got > limit:
                return src, None, None, ("bad", f"file is {_mb(got)}, over the limit of {_mb(limit)} per file "
                                                "(EXPORT_MAX_ASSET_BYTES)")
        except NotFound:
            return src, None, None, ("missing", "file not found (was it uploaded?)")
        except memory.MediaOverLimit:
            raise  # the whole job, not this file: the other downloads stop at guard.add
        except PermanentRenderError as exc:
            return src, None, None, ("bad", exc.message)
        with self.checking:  # at most PROBE_THREADS decodes at once: memory stays bounded
            try:
                downloaded = rel
                guard.add(0)  # the job has failed already: decode nothing more
                rel, media = self.check(src, rel)
            except memory.MediaOverLimit:
                raise
            except PermanentRenderError as exc:
                msg = exc.message
                if msg.startswith(src + ": "):
                    msg = msg[len(src) + 2:]
                return src, None, None, ("bad", msg)
        if rel != downloaded:  # rendered from its normalised copy: the download only takes memory
            guard.add(-memory.remove_files(workdir, [downloaded]))
        return src, rel, media, None

    def check(self, src: str, rel: str) -> tuple[str, MediaInfo]:
        """Decode and probe one downloaded file: (path to render from, relative to workdir; MediaInfo)."""
        workdir, settings = self.workdir, self.settings
        abs_path = os.path.join(workdir, rel)
        if self.image_only.get(src):
            norm_rel = os.path.splitext(rel)[0] + COPY_SUFFIX
            res = normalize_image(abs_path, os.path.join(workdir, norm_rel), self.frame_w, self.frame_h,
                                  max_pixels=settings.render_max_image_pixels,
                                  max_decode_pixels=settings.render_max_decode_pixels, label=src)
            if res is not None:
                if res.changes:
                    rel = norm_rel
                    self.guard.add(os.path.getsize(res.path))
                    logs.info("image normalised", job_id=self.job_id, src=src, changes=list(res.changes),
                              width=res.width, height=res.height)
                return rel, still_info(os.path.join(workdir, rel), res.width, res.height,
                                       res.format.lower(), res.mode, os.path.getsize(abs_path))
        return rel, probe(abs_path, label=src, full=True, max_duration_s=settings.render_max_media_s,
                          role=self.picture_roles.get(src))


def _judge(spec: ExportSpec, refs: list[AssetRef], probes: dict[str, MediaInfo],
           src_problem: dict[str, tuple[str, str]]) -> list[dict[str, str]]:
    """Every problem of every use of a file, in spec order: [{"path", "message", "kind" ("missing" |
    "bad"), "label", "src", "problem"}]; a file's own problem (src_problem) is stated for each use,
    and each probed file is checked against its role (a picture, a clip, an audio stream)."""
    details: list[dict[str, str]] = []

    def report_problem(ref: AssetRef, text: str, kind: str = "bad") -> None:
        details.append({"path": ref.path, "message": f"{ref.label} {ref.src!r}: {text}", "kind": kind,
                        "label": ref.label, "src": ref.src, "problem": text})

    for ref in refs:
        if ref.src in src_problem:
            kind, msg = src_problem[ref.src]
            report_problem(ref, msg, kind)
            continue
        info = probes[ref.src]
        if ref.role == "visual":
            vis = spec.scenes[ref.scene].visual
            if not info.has_video:
                report_problem(ref, "has no picture")
            elif vis.type == "video" and info.is_image:
                report_problem(ref, "is a still image, not a video (use visual.type 'image')")
            elif vis.type == "video" and (problem := trim_problem(vis, info)):
                report_problem(ref, problem)
        elif not info.has_audio:
            report_problem(ref, "has no audio stream")
    return details


def _problems_message(details: list[dict[str, str]], limit: int = MESSAGE_MAX_CHARS) -> str:
    """One failure message for every preflight problem, within `limit` characters.

    Each distinct problem of a file is stated once, with the spec fields that use the file (a broken
    picture shared by 50 scenes: one entry, "scenes[0] (id 'a') visual.src, ... and 46 more 'x.png':
    ..."). Entries that do not fit are counted at the end ("and 12 more problems; every one is in the
    render job's log"), so the message is never cut mid-sentence.

    Args:
        details: [{"label", "src", "problem", ...}] in spec order (see _judge).
    Returns:
        The message (at most `limit` characters).
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for d in details:
        groups.setdefault((d["src"], d["problem"]), []).append(d["label"])
    parts = []
    for (src, text), labels in groups.items():
        named = ", ".join(labels[:LABELS_PER_PROBLEM])
        if len(labels) > LABELS_PER_PROBLEM:
            named += f" and {len(labels) - LABELS_PER_PROBLEM} more"
        parts.append(f"{named} {src!r}: {text}")
    return fit_parts("", parts, limit)


def _picture_roles(spec: ExportSpec, refs: list[AssetRef]) -> dict[str, str]:
    """{src: "an image" | "a video" | "an image or a video"} for the srcs used only as scene visuals
    (how a picture that cannot be decoded is named in the preflight message)."""
    kinds: dict[str, set[str]] = {}
    for ref in refs:
        kinds.setdefault(ref.src, set()).add(ref.media)
    names = {frozenset({"image"}): "an image", frozenset({"video"}): "a video",
             frozenset({"image", "video"}): "an image or a video"}
    return {src: names[frozenset(k)] for src, k in kinds.items() if frozenset(k) in names}


def _object_for(src: str, job_id: str, input_bucket: str) -> tuple[str, str]:
    """(bucket, object name) of a spec src. Raises PermanentRenderError for a foreign bucket."""
    m = _GS_RE.match(src)
    if m:
        if m.group(1) != input_bucket:
            raise PermanentRenderError(f"{src!r} is not in the input bucket gs://{input_bucket}")
        return m.group(1), m.group(2)
    return input_bucket, asset_object(job_id, src)


def _local_name(k: int, src: str) -> str:
    ext = os.path.splitext(src.rsplit("/", 1)[-1])[1].lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", ext):
        ext = ""
    return f"a{k:02d}{ext}"


def _mb(n: int) -> str:
    """A byte count for messages: '523 B', '48.2 kB', '512.0 MB', '1.50 GB'."""
    if n < 1000:
        return f"{n} B"
    for unit, div in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if n < div * 1000 or unit == "GB":
            return f"{n / div:.1f} {unit}" if unit != "GB" else f"{n / div:.2f} GB"
    return f"{n} B"
