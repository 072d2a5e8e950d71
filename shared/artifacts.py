"""An export's artifacts: where its objects live in both buckets, and its output record in each of
the shapes it travels in. Pure: no I/O (callers stat objects and pass the ObjectInfo).

Input bucket:  jobs/{jobId}/spec.json, jobs/{jobId}/assets/{upload name}, library/... (operator's)
Output bucket: exports/{jobId}/{slug(title)}.mp4 (uploaded last, with custom metadata),
               exports/{jobId}/poster.jpg, exports/{jobId}/captions.srt, exports/{jobId}/captions.vtt
               parts/{jobId}/part-{index:04d}.mp4, parts/{jobId}/audio.m4a (a parallel render's
               temporary pieces, issue 19: deleted once the export succeeds; a lifecycle rule
               deletes what is left after PARTS_TTL_DAYS)

OutputRecord converts between: the render job's `succeeded` report (`to_report`), the video's custom
metadata (`to_metadata`, `from_object`, `resumed`), the stored row (`to_row`, `from_row`,
`from_report`) and the public view of export_status (`public_view`). Units: seconds, bytes, pixels;
loudness {integratedLufs (LUFS), truePeakDb (dBTP), lra (LU)}.

A job is succeeded only with its own video (issue 14): video_not_ours says why an object is not it.
Names read back (filename, poster, srt, vtt) must be OUTPUT_NAME; any other is dropped.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable

from shared.outputs import timeline_from_metadata, timeline_to_metadata, warnings_from_metadata, warnings_to_metadata
from shared.ports import ObjectInfo

# -- object layout -------------------------------------------------------------------------------------
# One file name in an export's folder (exports/{jobId}/NAME): the alphabet of every name the render
# job writes (slug(title).mp4, poster.jpg, captions.srt/.vtt) and of every name the API accepts back
# from object metadata or a worker report. A leading letter or digit: never ".", ".." or "-x".
OUTPUT_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"
_OUTPUT_NAME_RE = re.compile(OUTPUT_NAME)
POSTER_FILE = "poster.jpg"
SIDECAR_FILES = {"srt": "captions.srt", "vtt": "captions.vtt"}  # caption sidecars beside the video, by kind
INPUT_ASSET_RE = re.compile(r"^jobs/([0-9a-f-]{36})/assets/(.+)$")  # groups: job id, upload name
OUTPUT_VIDEO_RE = re.compile(r"^exports/([0-9a-f-]{36})/([^/]+\.mp4)$")  # groups: job id, file name


PARTS_PREFIX = "parts/"
PARTS_TTL_DAYS = 2  # the output bucket's lifecycle rule on PARTS_PREFIX (Terraform, deploy.sh)
AUDIO_PART = -1  # the index standing for the audio piece wherever parts are counted
# groups: job id, part index (4 digits) or None for the audio piece
PART_OBJECT_RE = re.compile(r"^parts/([0-9a-f-]{36})/(?:part-(\d{4})\.mp4|audio\.m4a)$")
# custom metadata of a piece: the job, the piece's index (AUDIO_PART: the audio), the part count
# of the plan that cut it, and (video parts) its frame count
PART_METADATA = ("job-id", "part-index", "part-count", "frames")


def part_object(job_id: str, index: int) -> str:
    """The output bucket's name of a parallel render's piece: part `index` (0..9999) of the video,
    or the audio for AUDIO_PART."""
    if index == AUDIO_PART:
        return f"{PARTS_PREFIX}{job_id}/audio.m4a"
    if not 0 <= index <= 9999:
        raise ValueError(f"part index {index} is out of 0..9999")
    return f"{PARTS_PREFIX}{job_id}/part-{index:04d}.mp4"


def parts_folder(job_id: str) -> str:
    """The job's folder of parallel-render pieces in the output bucket, with its trailing slash."""
    return f"{PARTS_PREFIX}{job_id}/"


def parse_part_object(name: str) -> tuple[str, int] | None:
    """(job id, index) of a piece's object name (AUDIO_PART for the audio), else None."""
    m = PART_OBJECT_RE.match(name or "")
    if not m:
        return None
    return m.group(1), (int(m.group(2)) if m.group(2) is not None else AUDIO_PART)


def part_metadata(job_id: str, index: int, part_count: int, frames: int | None = None) -> dict[str, str]:
    """A piece's custom metadata (PART_METADATA), as the render job uploads it."""
    meta = {"job-id": job_id, "part-index": str(index), "part-count": str(part_count)}
    if frames is not None:
        meta["frames"] = str(frames)
    return meta


def part_from_metadata(info: ObjectInfo | None, job_id: str, index: int) -> tuple[int, int | None] | None:
    """(part count, frames or None) of the piece `info` (stat'd now), or None when it is not this
    job's piece `index`: absent, empty, or metadata naming another job, index or no part count."""
    if info is None or info.size <= 0:
        return None
    md = info.metadata or {}
    if md.get("job-id") != job_id or md.get("part-index") != str(index):
        return None
    count = _int(md.get("part-count"), 1, 9999)
    if count is None or (index != AUDIO_PART and index >= count):
        return None
    return count, _int(md.get("frames"), 1, 10**9)


def spec_object(job_id: str) -> str:
    """The spec's object name in the input bucket."""
    return f"jobs/{job_id}/spec.json"


def asset_object(job_id: str, name: str) -> str:
    """The object name of upload `name` in the input bucket."""
    return f"jobs/{job_id}/assets/{name}"


def export_folder(job_id: str) -> str:
    """The job's folder in the output bucket, with its trailing slash."""
    return f"exports/{job_id}/"


def is_output_name(name: Any) -> bool:
    """True when `name` is one path segment of OUTPUT_NAME (at most 200 characters)."""
    return isinstance(name, str) and _OUTPUT_NAME_RE.fullmatch(name) is not None


def own_object(job_id: str, name: str | None) -> str | None:
    """`name` if it is a file in this job's output folder (exports/ID/NAME), else None."""
    if isinstance(name, str) and re.fullmatch(rf"exports/{re.escape(job_id)}/{OUTPUT_NAME}", name):
        return name
    return None


def _is_separator(ch: str) -> bool:
    """Punctuation (dashes included), symbols, separators (Unicode P*, S*, Z*) and controls (Cc)."""
    category = unicodedata.category(ch)
    return category[0] in "PSZ" or category == "Cc"


def slugify(title: str | None, default: str = "export") -> str:
    """An ASCII file-name slug of `title` (lowercase, '-' separated, at most 80 chars), else `default`.

    Punctuation, symbols, spaces and control characters of any script (en dash, «», emoji, no-break
    space...) separate words before the ASCII fold, so "1939\u20131945" gives "1939-1945"; accented
    letters keep their base letter (Café -> cafe); letters with no ASCII form (CJK...) are dropped."""
    if not title:
        return default
    text = "".join("-" if _is_separator(ch) else ch for ch in unicodedata.normalize("NFKD", title))
    text = text.encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:80].strip("-")
    return text or default


def video_object(job_id: str, title: str | None) -> str:
    """The video's object name in the output bucket: exports/{jobId}/{slug(title)}.mp4."""
    return f"{export_folder(job_id)}{slugify(title)}.mp4"


# -- whether an object is this job's video -----------------------------------------------------------------
def event_generation(generation: Any) -> int:
    """The generation a finalize event names, as an int (0 when absent or not a number)."""
    text = str(generation or "")
    return int(text) if text.isascii() and text.isdigit() else 0


def object_not_current(info: ObjectInfo | None, min_generation: int = 0) -> str | None:
    """Why the object a finalize event names is not there (a reason for logs), or None when it
    exists at `min_generation` (the event's) or newer. Events are not trusted: the object is."""
    if info is None:
        return "the object does not exist"
    if info.generation < min_generation:
        return f"it is generation {info.generation}, older than the event's {min_generation}"
    return None


def video_not_ours(info: ObjectInfo | None, job_id: str, min_generation: int = 0) -> str | None:
    """Why `info` (the object as stat'd now; None: absent) is not this job's video, or None when it
    is: generation `min_generation` (an event's; 0: none) or newer, `job-id` metadata equal to the
    job, not empty, named OUTPUT_NAME + ".mp4"."""
    if info is None:
        return object_not_current(info)
    base = info.name.rsplit("/", 1)[-1]
    if not (base.endswith(".mp4") and is_output_name(base)):
        return "its name is not a video name the render job writes"
    if why := object_not_current(info, min_generation):
        return why
    owner = info.metadata.get("job-id")
    if not owner:
        return "it has no job-id metadata (not written by the render job)"
    if owner != job_id:
        return "its job-id metadata names another job"
    if info.size <= 0:
        return "it is empty (0 bytes)"
    return None


# -- the output record ---------------------------------------------------------------------------------------
MAX_DURATION_S = 7 * 86400
MAX_SIDE_PX = 16384
# custom metadata of the video that name a file beside it (the download name, the poster, the sidecars)
NAME_METADATA = ("filename", "poster", "srt", "vtt")
SIDECARS = tuple(SIDECAR_FILES)  # ("srt", "vtt")
# record `loudness` key -> the video's custom metadata key
LOUDNESS_METADATA = (("integratedLufs", "loudness-i"), ("truePeakDb", "loudness-tp"), ("lra", "loudness-lra"))


def unsafe_names(metadata: dict[str, str]) -> list[str]:
    """The NAME_METADATA keys of `metadata` whose value is not an OUTPUT_NAME (the API drops them)."""
    return [k for k in NAME_METADATA if metadata.get(k) and not is_output_name(metadata[k])]


def _num(v: Any, lo: float, hi: float) -> float | None:
    """A finite float in [lo, hi], else None (object metadata is text a client could have written)."""
    try:
        f = float(v) if v is not None else None
    except (TypeError, ValueError):
        return None
    return f if f is not None and math.isfinite(f) and lo <= f <= hi else None


def _int(v: Any, lo: int, hi: int) -> int | None:
    try:
        i = int(v) if v is not None else None
    except (TypeError, ValueError):
        return None
    return i if i is not None and lo <= i <= hi else None


@dataclass(frozen=True)
class OutputRecord:
    """A succeeded export's output. object, poster, captions {srt?, vtt?}: object names in the output
    bucket; scenes [{startS, durationS}]; warnings [{path, message}] (shared.outputs)."""

    object: str
    filename: str | None
    duration_s: float | None
    size_bytes: int | None
    width: int | None
    height: int | None
    poster: str | None
    captions: dict[str, str] = field(default_factory=dict)
    scenes: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    loudness: dict | None = None

    # -- the render job's report and the video's metadata (written by the render job) --------------------
    def to_report(self, bucket: str) -> dict:
        """The `output` of a succeeded report: {uri, filename, durationS (3 decimals), sizeBytes, width,
        height, poster, captions, scenes, warnings, loudness? (left out when not measured)}."""
        out = {"uri": f"gs://{bucket}/{self.object}", "filename": self.filename,
               "durationS": round(self.duration_s, 3), "sizeBytes": self.size_bytes, "width": self.width,
               "height": self.height, "poster": self.poster, "captions": self.captions,
               "scenes": self.scenes or [], "warnings": self.warnings or []}
        if self.loudness:
            out["loudness"] = self.loudness
        return out

    def to_metadata(self, job_id: str) -> dict[str, str]:
        """The video's custom metadata: job-id, duration-s, width, height, filename, poster, the
        timeline, warnings, srt/vtt (names beside the video) and loudness-i/-tp/-lra (1 decimal)."""
        meta = {"job-id": job_id, "duration-s": f"{self.duration_s:.3f}", "width": str(self.width),
                "height": str(self.height), "filename": self.filename,
                "poster": self.poster.rsplit("/", 1)[-1] if self.poster else None,
                **timeline_to_metadata(self.scenes), **warnings_to_metadata(self.warnings)}
        meta.update({kind: name.rsplit("/", 1)[-1] for kind, name in self.captions.items()})
        if self.loudness:
            meta.update({m: f"{self.loudness[k]:.1f}" for k, m in LOUDNESS_METADATA
                         if self.loudness.get(k) is not None})
        return {k: v for k, v in meta.items() if v is not None}

    @classmethod
    def resumed(cls, info: ObjectInfo | None, job_id: str) -> OutputRecord | None:
        """What an earlier attempt of the render job published, read back from its video `info`
        (None: not uploaded, or not this job's); None also when its numbers do not parse."""
        if info is None or info.metadata.get("job-id") != job_id:
            return None
        md, folder = info.metadata, export_folder(job_id)
        try:
            duration = float(md.get("duration-s", "0"))
            width, height = int(md.get("width", "0")), int(md.get("height", "0"))
        except ValueError:
            return None
        try:
            loudness: dict | None = {k: float(md[m]) for k, m in LOUDNESS_METADATA if md.get(m)}
        except ValueError:
            loudness = None
        if loudness is not None and "integratedLufs" not in loudness:
            loudness = None
        return cls(object=info.name, filename=info.name.rsplit("/", 1)[-1], duration_s=duration,
                   size_bytes=info.size, width=width, height=height, poster=folder + POSTER_FILE,
                   captions={k: folder + md[k] for k in SIDECARS if md.get(k)}, scenes=timeline_from_metadata(md),
                   warnings=warnings_from_metadata(md), loudness=loudness)

    # -- built by the API (finalize, reconcile, a worker report) ------------------------------------------
    @classmethod
    def from_object(cls, info: ObjectInfo, max_scenes: int) -> tuple[OutputRecord, list[str]]:
        """The output of a job whose video `info` passed video_not_ours, from its metadata, every field
        bounded; sizeBytes is the object's size, scenes at most max_scenes. Returns (record, dropped):
        the metadata keys whose names were unsafe (left out)."""
        meta, folder = info.metadata, info.name.rsplit("/", 1)[0]
        dropped = unsafe_names(meta)

        def sibling(key: str) -> str | None:
            return f"{folder}/{meta[key]}" if meta.get(key) and key not in dropped else None

        return cls(object=info.name,
                   filename=meta["filename"] if meta.get("filename") and "filename" not in dropped
                   else info.name.rsplit("/", 1)[-1],
                   duration_s=_num(meta.get("duration-s"), 0, MAX_DURATION_S), size_bytes=info.size,
                   width=_int(meta.get("width"), 1, MAX_SIDE_PX), height=_int(meta.get("height"), 1, MAX_SIDE_PX),
                   poster=sibling("poster"), captions={k: sibling(k) for k in SIDECARS if sibling(k)},
                   scenes=timeline_from_metadata(meta)[:max_scenes], warnings=warnings_from_metadata(meta),
                   loudness={k: _num(meta.get(m), -1000, 1000) for k, m in LOUDNESS_METADATA}
                   if meta.get("loudness-i") else None), dropped

    @classmethod
    def from_report(cls, out: Any, name: str, size: int, warnings: list[dict]) -> OutputRecord:
        """The output of a checked `succeeded` report (shared.worker_report.ReportOutput) whose video `name` is
        `size` bytes; warnings already bounded (shared.outputs.clean_warnings)."""
        return cls(object=name, filename=out.filename or name.rsplit("/", 1)[-1], duration_s=out.durationS,
                   size_bytes=size, width=out.width, height=out.height, poster=out.poster,
                   captions=out.captions.model_dump(exclude_none=True) if out.captions else {},
                   scenes=[e.model_dump() for e in out.scenes or []], warnings=warnings,
                   loudness=out.loudness.model_dump() if out.loudness else None)

    # -- the stored row and the public view ------------------------------------------------------------------
    def to_row(self) -> dict:
        """The stored `output`: {object, filename, durationS, sizeBytes, width, height, poster, captions,
        scenes, warnings, loudness}."""
        return {"object": self.object, "filename": self.filename, "durationS": self.duration_s,
                "sizeBytes": self.size_bytes, "width": self.width, "height": self.height, "poster": self.poster,
                "captions": self.captions, "scenes": self.scenes, "warnings": self.warnings,
                "loudness": self.loudness}

    @classmethod
    def from_row(cls, row: dict) -> OutputRecord:
        """A stored `output` (keys a row written by an older version lacks are None or empty)."""
        captions = row.get("captions") or {}
        return cls(object=row["object"], filename=row.get("filename"), duration_s=row.get("durationS"),
                   size_bytes=row.get("sizeBytes"), width=row.get("width"), height=row.get("height"),
                   poster=row.get("poster"), captions={k: captions[k] for k in SIDECARS if captions.get(k)},
                   scenes=row.get("scenes") or [], warnings=row.get("warnings") or [], loudness=row.get("loudness"))

    def public_view(self, bucket: str, sign: Callable[[str, str | None], str]) -> dict:
        """export_status's `output`: {uri, filename, url, durationS, sizeBytes, width, height, posterUrl,
        captions {srt?, vtt?: URL}, scenes, loudness, warnings}; sign(object, download name) -> URL."""
        return {"uri": f"gs://{bucket}/{self.object}", "filename": self.filename,
                "url": sign(self.object, self.filename), "durationS": self.duration_s,
                "sizeBytes": self.size_bytes, "width": self.width, "height": self.height,
                "posterUrl": sign(self.poster, POSTER_FILE) if self.poster else None,
                "captions": {kind: sign(obj, f"captions.{kind}") for kind, obj in self.captions.items()},
                "scenes": self.scenes, "loudness": self.loudness, "warnings": self.warnings}
