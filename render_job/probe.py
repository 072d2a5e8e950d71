"""Probe media files with PyAV (libav* in-process; no ffprobe needed).

Each file is opened and its first video frame and/or first audio frame is decoded, so a corrupt
or truncated file fails here, naming the file, rather than halfway through the render.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av

from shared.errors import PermanentRenderError

_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif",
                  "gif_pipe", "pgm_pipe", "ppm_pipe", "pam_pipe", "svg_pipe", "qoi_pipe", "jpegxl_pipe")


@dataclass(frozen=True)
class MediaInfo:
    """What the planner and the graph builder need to know about one file.

    duration_s: seconds (None for a still image). width/height: pixels of the first video stream as
    coded (before rotation). fps: frames per second (None when unknown or a still). rotation: degrees
    of display rotation (0, 90, 180, 270; FFmpeg auto-rotates when decoding). sample_rate in Hz,
    channels a count. size_bytes: file size in bytes.
    """

    path: str
    format_name: str
    duration_s: float | None
    has_video: bool
    has_audio: bool
    is_image: bool = False
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    rotation: int = 0
    pix_fmt: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    size_bytes: int = 0


def _stream_seconds(stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _rotation(stream, frame) -> int:
    rot = getattr(frame, "rotation", None) if frame is not None else None
    if rot is None:
        try:
            rot = int(float(stream.metadata.get("rotate", 0)))
        except (TypeError, ValueError):
            rot = 0
    return int(round(rot)) % 360


def probe(path: str, label: str | None = None) -> MediaInfo:
    """Probe one local file.

    Args:
        path: local file path.
        label: how to name the file in error messages (e.g. the spec's src); defaults to the path.
    Returns:
        MediaInfo.
    Raises:
        PermanentRenderError: the file is empty, not media, or its first frame cannot be decoded.
    """
    name = label or os.path.basename(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise PermanentRenderError(f"{name}: cannot read file ({exc.strerror})") from None
    if size == 0:
        raise PermanentRenderError(f"{name}: file is empty")
    try:
        container = av.open(path, mode="r")
    except Exception as exc:  # av.error.InvalidDataError and friends
        raise PermanentRenderError(f"{name}: not a readable media file ({_short(exc)})") from None
    try:
        fmt = container.format.name or ""
        vstreams = list(container.streams.video)
        astreams = list(container.streams.audio)
        if not vstreams and not astreams:
            raise PermanentRenderError(f"{name}: no audio or video stream")
        is_image = bool(vstreams) and not astreams and (
            any(f in _IMAGE_FORMATS for f in fmt.split(",")) or fmt.endswith("_pipe"))
        width = height = None
        fps = None
        pix_fmt = None
        rotation = 0
        duration: float | None = None
        if vstreams:
            vs = vstreams[0]
            frame = None
            try:
                for frame in container.decode(vs):
                    break
            except Exception as exc:
                raise PermanentRenderError(f"{name}: video cannot be decoded ({_short(exc)})") from None
            if frame is None:
                raise PermanentRenderError(f"{name}: video stream has no decodable frame")
            width, height = frame.width, frame.height
            pix_fmt = frame.format.name
            rotation = _rotation(vs, frame)
            if not is_image:
                rate = vs.average_rate or vs.base_rate or vs.guessed_rate
                fps = float(Fraction(rate)) if rate else None
                duration = _stream_seconds(vs)
        sample_rate = channels = None
        if astreams:
            a = astreams[0]
            container.seek(0) if vstreams else None
            got = None
            try:
                for got in container.decode(a):
                    break
            except Exception as exc:
                raise PermanentRenderError(f"{name}: audio cannot be decoded ({_short(exc)})") from None
            if got is None:
                raise PermanentRenderError(f"{name}: audio stream has no decodable frame")
            sample_rate = a.sample_rate or got.sample_rate
            channels = a.codec_context.layout.nb_channels if a.codec_context.layout else None
            adur = _stream_seconds(a)
            duration = max(duration or 0.0, adur or 0.0) or None
        if not is_image and duration is None and container.duration:
            duration = container.duration / 1_000_000
        if not is_image and (duration is None or duration <= 0):
            raise PermanentRenderError(f"{name}: media has no duration")
        return MediaInfo(path=path, format_name=fmt, duration_s=duration, has_video=bool(vstreams),
                         has_audio=bool(astreams), is_image=is_image, width=width, height=height, fps=fps,
                         rotation=rotation, pix_fmt=pix_fmt, sample_rate=sample_rate, channels=channels,
                         size_bytes=size)
    finally:
        container.close()


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
