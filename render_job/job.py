"""The render job: one Cloud Run Job task renders one export (DESIGN §1, §6).

`main()` only wires environment, settings, storage and the reporter; `run_export()` does the work:

    preparing (0.0-0.1)  read jobs/{jobId}/spec.json, download assets, probe them all, plan, check the
                         memory budget (render_job.memory), captions
    rendering (0.1-0.9)  one FFmpeg run (progress from -progress), then the poster frame
    uploading (0.9-1.0)  exports/{jobId}/poster.jpg, captions.srt, captions.vtt, then LAST the MP4
                         (its finalize event marks the job succeeded), all with if_generation_match=0

Exit codes (Cloud Run retries a non-zero exit): a permanent problem (bad spec, missing or corrupt
asset, FFmpeg rejecting the input) is reported `failed` and exits 0; a transient or unexpected one
exits 1 so the task is retried, and on the last attempt (attempt >= render_max_retries) it is also
reported `failed`.
"""
from __future__ import annotations

import json
import math
import os
import re
import resource
import shutil
import tempfile
import threading
import time
import traceback
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from shared import logs
from shared.artifacts import (POSTER_FILE, OutputRecord, asset_object, export_folder, spec_object, unsafe_names,
                              video_object)
from shared.assets import AssetRef
from shared.config import ConfigError, Settings, get_settings
from shared.errors import (MESSAGE_MAX_CHARS, Conflict, ExportError, InvalidRequest, NotFound, PermanentRenderError,
                           TransientError)
from shared.limits import TOO_LONG, scene_label, total_problem
from shared.outputs import bounded_warnings
from shared.spec import ExportSpec, parse_spec
from shared.timeline import length_from_probe

from render_job import caption_overlay
from render_job import ffmpeg as ffargs
from render_job import memory
from render_job.clips import trim_problem
from render_job.plan import RenderPlan, build_plan
from render_job.normalize import COPY_SUFFIX, normalize_image
from render_job.probe import MediaInfo, probe, still_info
from render_job.runner import SegmentFeed, default_timeout_s, find_ffmpeg, run_ffmpeg
from render_job.subtitles import ASS_FILE, FONTS_DIR, SRT_FILE, VTT_FILE, fit_warnings, write_captions

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_GS_RE = re.compile(r"^gs://([^/]+)/(.+)$")
CONTENT_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}


@dataclass
class RenderResult:
    """The outcome of one attempt.

    exit_code: the process exit code (0 done or permanently failed, 1 retry).
    status: "succeeded" | "failed" | "retry" | "canceled".
    output: the `output` object reported on success. error: {code, message} on failure.
    plan: the RenderPlan when planning got that far. timings: seconds per step.
    """

    exit_code: int
    status: str
    output: dict | None = None
    error: dict | None = None
    plan: RenderPlan | None = None
    timings: dict[str, float] = field(default_factory=dict)


class _Canceled(Exception):
    pass


LABELS_PER_PROBLEM = 4  # spec fields named per distinct problem of a file; the rest are counted


def _problems_message(details: list[dict[str, str]], limit: int = MESSAGE_MAX_CHARS) -> str:
    """One failure message for every preflight problem, within `limit` characters.

    Each distinct problem of a file is stated once, with the spec fields that use the file (a broken
    picture shared by 50 scenes: one entry, "scenes[0] (id 'a') visual.src, ... and 46 more 'x.png':
    ..."). Entries that do not fit are counted at the end ("and 12 more problems; every one is in the
    render job's log"), so the message is never cut mid-sentence.

    Args:
        details: [{"label", "src", "problem", ...}] in spec order (see _fetch_and_probe).
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
    return _fit_parts("", parts, limit)


def _fit_parts(head: str, parts: list[str], limit: int = MESSAGE_MAX_CHARS) -> str:
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


def _failure_message(exc: ExportError) -> str:
    """The client's message for a permanent failure: an invalid spec (InvalidRequest with details
    [{path, message}], e.g. a spec.json written past the API) names each problem, within
    MESSAGE_MAX_CHARS; other errors' messages already say what was wrong."""
    if isinstance(exc, InvalidRequest) and exc.details and not any(
            str(d.get("message")) in exc.message for d in exc.details):
        return _fit_parts(f"{exc.message}: ", [f"{d.get('path') or '(spec)'}: {d.get('message')}"
                                               for d in exc.details])
    return exc.message


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


DOWNLOAD_THREADS = 8  # assets downloaded at once in preflight
PROBE_THREADS = 2  # downloaded assets decoded and probed at once (each may hold a large decoded image)


def _picture_roles(spec: ExportSpec, refs: list[AssetRef]) -> dict[str, str]:
    """{src: "an image" | "a video" | "an image or a video"} for the srcs used only as scene visuals
    (how a picture that cannot be decoded is named in the preflight message)."""
    kinds: dict[str, set[str]] = {}
    for ref in refs:
        kinds.setdefault(ref.src, set()).add(ref.media)
    names = {frozenset({"image"}): "an image", frozenset({"video"}): "a video",
             frozenset({"image", "video"}): "an image or a video"}
    return {src: names[frozenset(k)] for src, k in kinds.items() if frozenset(k) in names}


def _fetch_and_probe(spec: ExportSpec, job_id: str, storage: Any, input_bucket: str,
                     workdir: str, settings: Settings | None = None) -> tuple[dict[str, str], dict[str, MediaInfo]]:
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

    Returns:
        ({src: path relative to workdir, normalised when needed}, {src: MediaInfo}).
    Raises:
        NotFound: only missing assets. PermanentRenderError: any other problem (all listed, each
            naming scene index and id, field and file).
    """
    settings = settings or Settings()
    os.makedirs(os.path.join(workdir, "assets"), exist_ok=True)
    refs = spec.asset_refs()
    frame_w, frame_h = spec.output.size
    # roles: a src used only as an image visual goes through Pillow; anything else through PyAV
    image_only: dict[str, bool] = {}
    for ref in refs:
        image_only[ref.src] = image_only.get(ref.src, True) and ref.media == "image"
    picture_roles = _picture_roles(spec, refs)
    local: dict[str, str] = {}
    src_problem: dict[str, tuple[str, str]] = {}  # src -> (kind, message)
    probes: dict[str, MediaInfo] = {}
    limit = settings.max_asset_bytes
    checking = threading.BoundedSemaphore(PROBE_THREADS)
    guard = memory.media_guard(settings.render_memory_bytes, frame_w, frame_h, spec.output.resolution)
    fetched_bytes: dict[str, int] = {}  # src -> bytes fetched (each key written by one download thread)

    def stat(src: str) -> Any:
        try:
            return storage.stat(*_object_for(src, job_id, input_bucket))
        except PermanentRenderError:
            return None  # a foreign bucket: fetch() reports it

    def fetch(index: int, src: str) -> tuple[str, str | None, MediaInfo | None, tuple[str, str] | None]:
        """(src, local path relative to workdir or None, its MediaInfo or None, (kind, problem) or None)."""
        rel = os.path.join("assets", _local_name(index, src))
        try:
            bucket, name = _object_for(src, job_id, input_bucket)
            info = stats[src]
            if info is None:
                raise NotFound(src)
            if info.size > limit:
                return src, None, None, ("bad", f"file is {_mb(info.size)}, over the limit of {_mb(limit)} "
                                                "per file (EXPORT_MAX_ASSET_BYTES)")
            guard.add(info.size)  # before the download: a file that would not fit is never fetched
            storage.download_file(bucket, name, os.path.join(workdir, rel))
            got = os.path.getsize(os.path.join(workdir, rel))
            guard.add(got - info.size)
            fetched_bytes[src] = got
            if got > limit:
                return src, None, None, ("bad", f"file is {_mb(got)}, over the limit of {_mb(limit)} per file "
                                                "(EXPORT_MAX_ASSET_BYTES)")
        except NotFound:
            return src, None, None, ("missing", "file not found (was it uploaded?)")
        except memory.MediaOverLimit:
            raise  # the whole job, not this file: the other downloads stop at guard.add
        except PermanentRenderError as exc:
            return src, None, None, ("bad", exc.message)
        with checking:  # at most PROBE_THREADS decodes at once: memory stays bounded
            try:
                downloaded = rel
                guard.add(0)  # the job has failed already: decode nothing more
                rel, media = check(src, rel)
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

    def check(src: str, rel: str) -> tuple[str, MediaInfo]:
        """Decode and probe one downloaded file: (path to render from, relative to workdir; MediaInfo)."""
        abs_path = os.path.join(workdir, rel)
        if image_only.get(src):
            norm_rel = os.path.splitext(rel)[0] + COPY_SUFFIX
            res = normalize_image(abs_path, os.path.join(workdir, norm_rel), frame_w, frame_h,
                                  max_pixels=settings.render_max_image_pixels,
                                  max_decode_pixels=settings.render_max_decode_pixels, label=src)
            if res is not None:
                if res.changes:
                    rel = norm_rel
                    guard.add(os.path.getsize(res.path))
                    logs.info("image normalised", job_id=job_id, src=src, changes=list(res.changes),
                              width=res.width, height=res.height)
                return rel, still_info(os.path.join(workdir, rel), res.width, res.height,
                                       res.format.lower(), res.mode, os.path.getsize(abs_path))
        return rel, probe(abs_path, label=src, full=True, max_duration_s=settings.render_max_media_s,
                          role=picture_roles.get(src))

    # downloads in parallel (the storage client is shared across threads: it is built on requests,
    # googleapis/google-cloud-python#5685), each file decoded and probed as soon as it is in (Pillow
    # and FFmpeg's decoders release the GIL); results kept in first-use order
    srcs = list(dict.fromkeys(ref.src for ref in refs))
    with ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS) as pool:
        stats = dict(zip(srcs, pool.map(stat, srcs)))  # every size before any download
        memory.check_job_bytes([(src, i.size) for src, i in stats.items() if i is not None], settings.max_job_bytes)
        fetched = list(pool.map(lambda item: fetch(*item), enumerate(srcs)))
    # again with what was downloaded: a file overwritten through its URL after the stat is fetched new
    memory.check_job_bytes(list(fetched_bytes.items()), settings.max_job_bytes)
    for src, rel, media, problem in fetched:
        if problem is not None:
            src_problem[src] = problem
        else:
            local[src] = rel  # type: ignore[assignment]
            probes[src] = media  # type: ignore[assignment]

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
    if details:
        message = _problems_message(details)
        clean = [{"path": d["path"], "message": d["message"]} for d in details]
        logs.warning("preflight found problems", job_id=job_id, problems=len(clean), details=clean)
        if all(d["kind"] == "missing" for d in details):
            raise NotFound(message, details=clean, code="asset_not_found")
        raise PermanentRenderError(message, details=clean, code="invalid_media")
    return local, probes


def _upload(storage: Any, bucket: str, name: str, path: str, content_type: str,
            metadata: dict[str, str] | None = None) -> bool:
    """Upload once (if_generation_match=0). Returns False when the object already existed (a retry)."""
    try:
        storage.upload_file(bucket, name, path, content_type, if_generation_match=0, metadata=metadata)
        return True
    except Conflict:
        return False


def _mix_loudness(exe: str, workdir: str, plan: RenderPlan, local: dict[str, str], job_id: str) -> dict | None:
    """Analyse the render's mix before the render (ffargs.build_mix_loudness_command), so that the
    render applies one constant gain (ffargs.loudnorm_filter). Returns loudnorm's analysis,
    ffargs.SILENT_MIX for a mix of digital silence (no loudnorm: its gain would make NaN samples), or
    None (no audio, or no readable result: the render then uses dynamic loudnorm)."""
    argv = ffargs.build_mix_loudness_command(plan, local, ffmpeg=exe)
    if argv is None:
        return None
    argv, graph_files = ffargs.graph_via_file(argv, name=f"mix_{ffargs.GRAPH_FILE}")
    for name, text in graph_files.items():
        with open(os.path.join(workdir, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    lines = run_ffmpeg(argv, cwd=workdir, total_s=plan.total_s, what="ffmpeg mix loudness analysis", job_id=job_id)
    if ffargs.mix_is_silent(lines):
        logs.info("mix is silent: no loudness normalisation", job_id=job_id)
        return ffargs.SILENT_MIX
    analysis = ffargs.parse_loudnorm_json(lines)
    if analysis is None:
        logs.info("mix loudness not measurable: dynamic loudnorm", job_id=job_id)
        return None
    logs.info("mix loudness", job_id=job_id, inputI=analysis["input_i"], inputTp=analysis["input_tp"],
              inputLra=analysis["input_lra"], linear=ffargs.loudnorm_is_linear(plan, analysis))
    return analysis


def _loudness(exe: str, workdir: str, out_mp4: str, plan: RenderPlan,
              second_pass_fits: bool = True) -> tuple[dict | None, int]:
    """Measure the output's loudness (ebur128); when the render's loudnorm (one linear gain from
    _mix_loudness, or dynamic where that is impossible) missed the target
    (ffargs.loudness_needs_second_pass), re-normalise the audio with a linear two-pass loudnorm (video
    copied) and measure again.

    Returns:
        ({integratedLufs, truePeakDb, lra} or None if unmeasurable, the number of loudnorm passes).
    """
    def measure() -> dict | None:
        lines = run_ffmpeg(ffargs.build_loudness_measure_command(exe, out_mp4), cwd=workdir, total_s=plan.total_s,
                           what="ffmpeg loudness measurement")
        return ffargs.parse_ebur128_summary(lines)

    measured = measure()
    if measured is None:
        logs.warning("could not measure the output's loudness")
        return None, 1
    passes = 1
    needs_second_pass = ffargs.loudness_needs_second_pass(measured, plan.loudness_lufs, plan.true_peak_db)
    if needs_second_pass and not second_pass_fits:  # a second copy of the MP4 would not fit in memory
        logs.warning("loudness second pass skipped: two copies of the video would not fit in the task's memory")
    elif needs_second_pass:
        lines = run_ffmpeg(ffargs.build_loudnorm_analysis_command(exe, out_mp4, plan), cwd=workdir,
                           total_s=plan.total_s, what="ffmpeg loudnorm analysis")
        analysis = ffargs.parse_loudnorm_json(lines)
        if analysis is not None:
            fixed = "output-2pass.mp4"
            run_ffmpeg(ffargs.build_loudnorm_apply_command(exe, out_mp4, plan, analysis, fixed), cwd=workdir,
                       total_s=plan.total_s, what="ffmpeg loudnorm second pass")
            os.replace(os.path.join(workdir, fixed), os.path.join(workdir, out_mp4))
            first, measured, passes = measured, (measure() or measured), 2
            logs.info("loudness corrected by a second pass", firstPass=first, secondPass=measured)
    logs.info("output loudness", passes=passes, targetLufs=plan.loudness_lufs, **measured)
    return {k: (round(v, 1) if math.isfinite(v) else None) for k, v in measured.items()}, passes


def _memory_budget(plan: RenderPlan, cuts: list[int], workdir: str, settings: Settings, job_id: str,
                   resolution: str) -> memory.Budget:
    """The render's memory budget (render_job.memory), logged; raises PermanentRenderError
    ("memory_limit") when it does not fit the task's memory."""
    limit, source = memory.task_memory_limit(settings.render_memory_bytes)
    budget = memory.budget(plan, cuts, memory.tree_bytes(os.path.join(workdir, "assets")), limit, source,
                           settings.max_output_bytes)
    logs.info("memory budget", job_id=job_id, **budget.as_log())
    memory.check_budget(budget, resolution)
    return budget


def _timeline(plan) -> list[dict]:
    return [{"startS": round(sc.start, 3), "durationS": round(sc.duration, 3)} for sc in plan.scenes]


def _already_uploaded(storage: Any, out_bucket: str, job_id: str, spec: ExportSpec) -> dict | None:
    """The output of an earlier attempt when its video (uploaded last) is already in the bucket."""
    done = OutputRecord.resumed(storage.stat(out_bucket, video_object(job_id, spec.title)), job_id)
    return done.to_report(out_bucket) if done else None


def _check_canceled(reporter: Any) -> None:
    if getattr(reporter, "rejected", False) is True:
        raise _Canceled()


def _caption_overlay(plan: RenderPlan, workdir: str, ffmpeg: str, job_id: str) -> caption_overlay.CaptionOverlay | None:
    """The captions pre-rendered as an overlay (render_job.caption_overlay), or None: burn captions.ass
    with the `subtitles` filter instead (title cards, very many caption states, or the pre-render
    failed, whatever the reason: logged, the render goes on the slower path with the same captions)."""
    try:
        return caption_overlay.prepare(plan, workdir, ffmpeg)
    except Exception as exc:  # noqa: BLE001 - an optimisation must never fail the export
        logs.warning("caption pre-render failed: burning captions with the subtitles filter", job_id=job_id,
                     error=_public_message(str(exc), workdir))
        return None


def run_export(job_id: str, storage: Any, reporter: Any, settings: Settings, workdir: str, attempt: int = 0,
               *, ffmpeg: str | None = None) -> RenderResult:
    """Render export `job_id` end to end. Never raises (except KeyboardInterrupt/SystemExit).

    Args:
        job_id: the export job id (objects live under jobs/{job_id}/ and exports/{job_id}/).
        storage: an ObjectStorage (shared.ports).
        reporter: an object with running(stage, progress, force=False), succeeded(output),
            failed(code, message), e.g. render_job.reporter.Reporter.
        settings: shared.config.Settings (input_bucket, output_bucket, render_max_retries,
            ffmpeg_binary, ffmpeg_threads, the limits and render_memory_bytes are used).
        workdir: an existing, writable scratch directory (the caller removes it).
        attempt: Cloud Run task attempt, 0-based.
        ffmpeg: FFmpeg executable (default: find_ffmpeg(settings.ffmpeg_binary)).
    Returns:
        RenderResult; exit_code 0 = done (succeeded, failed permanently or canceled), 1 = retry.
    """
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    plan: RenderPlan | None = None
    try:
        reporter.running("preparing", 0.0, force=True)
        _check_canceled(reporter)
        try:
            raw = storage.read_bytes(settings.input_bucket, spec_object(job_id))
        except NotFound:
            raise NotFound(f"spec not found: gs://{settings.input_bucket}/{spec_object(job_id)}",
                           code="spec_not_found") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequest(f"spec.json is not valid JSON: {exc}") from None
        spec = parse_spec(data)
        done = _already_uploaded(storage, settings.output_bucket, job_id, spec)
        if done is not None:  # a retried task after the video was uploaded: nothing left to do
            logs.info("outputs already uploaded by an earlier attempt", job_id=job_id, attempt=attempt)
            reporter.succeeded(done)
            return RenderResult(0, "succeeded", output=done, timings=timings)
        exe = ffmpeg or find_ffmpeg(settings.ffmpeg_binary)

        local, probes = _fetch_and_probe(spec, job_id, storage, settings.input_bucket, workdir, settings)
        reporter.running("preparing", 0.05)
        plan = build_plan(spec, probes)
        lengths = [(scene_label(i, sc.id), sc.duration) for i, sc in enumerate(plan.scenes)]
        too_long = total_problem(plan.total_s, lengths, settings.max_total_s,
                                 overlap_s=sum(sc.transition_s for sc in plan.scenes),
                                 probed=any(length_from_probe(sc) for sc in spec.scenes))
        if too_long:  # lengths from narrations and clips are known only now (the API counted them at their least)
            raise PermanentRenderError(too_long, code=TOO_LONG)
        # more scenes than one FFmpeg graph should hold: the video in segments piped into one encoding run
        cuts = ffargs.segment_cuts(plan, settings.render_segment_scenes)
        budget = _memory_budget(plan, cuts, workdir, settings, job_id, spec.output.resolution)
        caption_paths = write_captions(plan.cues, plan.width, plan.height, workdir, style=plan.caption_style,
                                       titles=plan.titles, burn_in=plan.burn_in, fps=plan.fps)
        fonts_link = os.path.join(workdir, "fonts")
        if not os.path.exists(fonts_link):
            shutil.copytree(FONTS_DIR, fonts_link)
        burn = (plan.burn_in and bool(plan.cues)) or bool(plan.titles)
        timings["prepare_s"] = time.monotonic() - t0
        logs.info("plan ready", job_id=job_id, totalS=plan.total_s, scenes=len(plan.scenes),
                  width=plan.width, height=plan.height, fps=plan.fps, quality=plan.quality)
        smaller = fit_warnings(plan)  # burned-in text drawn smaller so that it fits the frame
        for w in plan.warnings:  # never silently dropped: in the log here, in output.warnings at the end
            logs.warning("not shown in the video", job_id=job_id, path=w[0], reason=w[1])
        for w in smaller:
            logs.warning("burned-in text drawn smaller", job_id=job_id, path=w[0], reason=w[1])
        plan = replace(plan, warnings=plan.warnings + smaller)
        warnings = bounded_warnings(list(plan.warnings))
        reporter.running("preparing", 0.1)
        _check_canceled(reporter)

        # --- render
        t1 = time.monotonic()
        out_mp4 = "output.mp4"
        for name, text in ffargs.command_files(plan).items():  # e.g. zoom commands, read by the graph
            with open(os.path.join(workdir, name), "w", encoding="ascii") as fh:
                fh.write(text)
        overlay = _caption_overlay(plan, workdir, exe, job_id) if burn else None
        timings["captions_s"] = time.monotonic() - t1
        t_mix = time.monotonic()
        mix_loudness = _mix_loudness(exe, workdir, plan, local, job_id) if plan.has_audio else None
        timings["mix_loudness_s"] = time.monotonic() - t_mix
        argv = ffargs.build_command(plan, local, out_mp4, ASS_FILE if burn and overlay is None else None,
                                    ffmpeg=exe, threads=settings.ffmpeg_threads, caption_overlay=overlay,
                                    video_pipe=bool(cuts), loudness=mix_loudness)
        commands = [ffargs.graph_via_file(memory.with_size_limit(argv, budget.output_cap))]
        bounds = list(zip([0] + cuts, cuts + [None])) if cuts else []
        for k, (first, last) in enumerate(bounds):
            commands.append(ffargs.graph_via_file(ffargs.build_segment_command(plan, local, first, last, ffmpeg=exe),
                                                  name=f"segment{k}_{ffargs.GRAPH_FILE}"))
        for _, graph_files in commands:
            for name, text in graph_files.items():
                with open(os.path.join(workdir, name), "w", encoding="utf-8") as fh:
                    fh.write(text)
        n_scenes = len(plan.scenes)
        labels = [f"scenes[{first}]..scenes[{n_scenes - 1 if last is None else last}]" for first, last in bounds]
        feed = SegmentFeed([c[0] for c in commands[1:]], cwd=workdir, labels=labels,
                           on_done=memory.segment_cleaner(workdir, [c[0] for c in commands], job_id)) if cuts else None
        if cuts:
            logs.info("rendering in segments", job_id=job_id, segments=len(bounds),
                      scenesPerSegment=settings.render_segment_scenes, budgetMb=ffargs.SEGMENT_BUDGET_MB,
                      firstScenes=[first for first, _ in bounds])
        reporter.running("rendering", 0.1, force=True)
        mp4_path = os.path.join(workdir, out_mp4)
        try:
            run_ffmpeg(commands[0][0], cwd=workdir, total_s=plan.total_s,
                       on_progress=lambda f: reporter.running("rendering", 0.1 + 0.8 * f), what="ffmpeg render",
                       timeout_s=default_timeout_s(plan.total_s, settings.render_timeout_base_s,
                                                   settings.render_timeout_per_output_s),
                       stall_s=settings.render_stall_s, job_id=job_id, feed=feed)
        finally:  # -fs stopped the encoding run (exit 0; its segments then fail on the closed pipe)
            memory.check_output(mp4_path, budget.output_cap, budget.output_cap_source)
        logs.info("media freed after the render", job_id=job_id, bytes=memory.free_after_render(workdir))
        timings["render_s"] = time.monotonic() - t1
        _check_canceled(reporter)
        t_loud = time.monotonic()
        # the poster frame is taken while the loudness is measured (two short FFmpeg runs, each reading
        # the output; a loudness second pass copies the video stream, so the frame is the same)
        with ThreadPoolExecutor(max_workers=1) as side:
            poster = side.submit(run_ffmpeg, ffargs.build_poster_command(exe, out_mp4, plan.poster_s, "poster.jpg"),
                                 cwd=workdir, total_s=0.0, timeout_s=120, what="ffmpeg poster")
            second_pass = memory.second_pass_fits(os.path.getsize(mp4_path), budget.limit)
            loudness, passes = _loudness(exe, workdir, out_mp4, plan, second_pass) if plan.has_audio else (None, 0)
            poster.result()
        timings["loudness_s"] = time.monotonic() - t_loud
        timings["loudness_passes"] = passes
        poster_path = os.path.join(workdir, "poster.jpg")
        if not os.path.isfile(poster_path) or os.path.getsize(poster_path) == 0:
            raise TransientError("poster frame was not written")
        out_info = probe(mp4_path, label="rendered output")
        duration = out_info.duration_s or plan.total_s
        if abs(duration - plan.total_s) > 2.0 / plan.fps:
            logs.warning("output duration differs from the plan", job_id=job_id, durationS=duration,
                         planS=plan.total_s)

        # --- upload (video last: its finalize event completes the job)
        t2 = time.monotonic()
        reporter.running("uploading", 0.9, force=True)
        out_bucket = settings.output_bucket
        prefix = export_folder(job_id)
        video = video_object(job_id, spec.title)
        # poster and sidecars at once (one round trip instead of three), all before the video
        small = [(prefix + POSTER_FILE, poster_path, "image/jpeg")]
        captions: dict[str, str] = {}
        for kind, fname in (("srt", SRT_FILE), ("vtt", VTT_FILE)):
            if kind in plan.sidecars and plan.cues:
                small.append((prefix + fname, caption_paths[kind], CONTENT_TYPES[kind]))
                captions[kind] = prefix + fname
        with ThreadPoolExecutor(max_workers=len(small)) as pool:
            for done in [pool.submit(_upload, storage, out_bucket, *item) for item in small]:
                done.result()
        reporter.running("uploading", 0.95)
        record = OutputRecord(object=video, filename=video.rsplit("/", 1)[-1], duration_s=duration,
                              size_bytes=os.path.getsize(mp4_path), width=plan.width, height=plan.height,
                              poster=prefix + POSTER_FILE, captions=captions, scenes=_timeline(plan),
                              warnings=warnings, loudness=loudness)
        metadata = record.to_metadata(job_id)
        unsafe = unsafe_names(metadata)
        if unsafe:  # the API drops such names (shared.artifacts.OUTPUT_NAME): never publish them
            raise PermanentRenderError(f"output names {unsafe} are not safe file names", code="output_name")
        if not _upload(storage, out_bucket, video, mp4_path, "video/mp4", metadata):
            existing = storage.stat(out_bucket, video)
            if existing is not None and existing.metadata.get("job-id") != job_id:
                # not ours (every upload of ours carries job-id): never report someone else's file
                raise PermanentRenderError(
                    f"gs://{out_bucket}/{video} already exists and was not written by this "
                    "export (no matching job-id metadata); remove it and start a new export",
                    code="output_conflict")
            logs.info("video already uploaded by an earlier attempt", job_id=job_id)
            if existing is not None:
                record = replace(record, size_bytes=existing.size)
        timings["upload_s"] = time.monotonic() - t2
        output = record.to_report(out_bucket)
        reporter.succeeded(output)
        timings["total_s"] = time.monotonic() - t0
        logs.info("export rendered", job_id=job_id, attempt=attempt, output=output, timings=timings)
        return RenderResult(0, "succeeded", output=output, plan=plan, timings=timings)
    except _Canceled:
        logs.warning("the API rejected our reports (job canceled or terminal); stopping", job_id=job_id)
        return RenderResult(0, "canceled", plan=plan, timings=timings)
    except (PermanentRenderError, InvalidRequest, NotFound) as exc:
        error = {"code": exc.code, "message": exc.message}
        if exc.details:
            error["details"] = exc.details
        logs.error("export failed permanently", job_id=job_id, attempt=attempt, error=error)
        reporter.failed(exc.code, _public_message(_failure_message(exc), workdir))
        return RenderResult(0, "failed", error=error, plan=plan, timings=timings)
    except Exception as exc:  # TransientError and anything unexpected: let Cloud Run retry
        if isinstance(exc, ExportError):
            error = {"code": exc.code, "message": exc.message}
        else:
            error = {"code": "internal", "message": f"internal error ({type(exc).__name__})"}
        last = attempt >= settings.render_max_retries
        logs.error("export attempt failed", job_id=job_id, attempt=attempt, lastAttempt=last, error=error,
                   traceback=traceback.format_exc(limit=8))
        if last:
            reporter.failed(error["code"], _public_message(error["message"], workdir))
            return RenderResult(1, "failed", error=error, plan=plan, timings=timings)
        return RenderResult(1, "retry", error=error, plan=plan, timings=timings)


def _public_message(message: str, workdir: str) -> str:
    """A failure message fit for the client: local paths (the work folder, temp folders) and the
    memory addresses of FFmpeg's log prefixes ("[aac @ 0x55d0...]" -> "[aac]") removed; the full
    text stays in the job's logs."""
    for root in {os.path.realpath(workdir), os.path.abspath(workdir), tempfile.gettempdir()}:
        message = message.replace(root + os.sep, "").replace(root, ".")
    return re.sub(r" @ 0x[0-9a-fA-F]+\]", "]", message)


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        return default


def main() -> int:
    """Entry point of `python -m render_job` (Cloud Run Job task).

    Environment: EXPORT_JOB_ID (required), CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT /
    CLOUD_RUN_TASK_ATTEMPT (default 0) / CLOUD_RUN_EXECUTION, plus the settings of shared.config.
    Returns:
        The process exit code: 0 done (succeeded or permanently failed, or a setting that cannot be
        used reported as failed "misconfigured"), 1 retry, 2 misconfigured and not reported.
    """
    job_id = os.environ.get("EXPORT_JOB_ID", "")
    task_index = _env_int("CLOUD_RUN_TASK_INDEX", 0)
    task_count = _env_int("CLOUD_RUN_TASK_COUNT", 1)
    attempt = _env_int("CLOUD_RUN_TASK_ATTEMPT", 0)
    execution = os.environ.get("CLOUD_RUN_EXECUTION", "")
    if not _JOB_ID_RE.match(job_id):
        logs.error("EXPORT_JOB_ID is missing or malformed", execution=execution)
        return 2
    if task_index != 0:
        logs.info("only task 0 renders; nothing to do", job_id=job_id, taskIndex=task_index, taskCount=task_count)
        return 0
    from render_job.reporter import Reporter, report_misconfigured

    try:
        settings = get_settings()
    except ConfigError as exc:  # reported with the two strings it needs; a retry cannot help
        return report_misconfigured(exc, job_id, attempt)
    logs.info("render task started", job_id=job_id, attempt=attempt, execution=execution,
              taskIndex=task_index, taskCount=task_count)
    from shared.bootstrap import get_storage  # wiring point (imports cloud SDKs lazily)

    storage = get_storage(settings)
    reporter = Reporter(settings.complete_url, settings.worker_token, job_id, attempt,
                        min_interval_s=settings.render_report_interval_s)
    if settings.render_workdir:
        os.makedirs(settings.render_workdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f"render-{job_id}-", dir=settings.render_workdir)
    try:
        result = run_export(job_id, storage, reporter, settings, workdir, attempt)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    logs.info("render task finished", job_id=job_id, attempt=attempt, status=result.status,
              exitCode=result.exit_code, **task_cpu_s())
    return result.exit_code


def task_cpu_s() -> dict[str, float]:
    """CPU seconds (user + sys) this task has used so far: {"cpuS": this Python process,
    "childCpuS": every child it has waited for (FFmpeg, ffprobe)}; getrusage(2). Cloud Run bills
    vCPU-seconds of the instance, so this is what one export costs in compute; the benchmark also
    uses it to tell the render task's CPU from the rest of the local pipeline's."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpuS": round(me.ru_utime + me.ru_stime, 3), "childCpuS": round(kids.ru_utime + kids.ru_stime, 3)}
