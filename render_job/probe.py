"""Probe media files with PyAV (libav* in-process; no ffprobe needed).

Each file is opened and its first video frame and/or first audio frame is decoded, so a corrupt
or truncated file fails here, naming the file, rather than halfway through the render.

With `full=True` (the job's preflight) a time-based file is also read to its end:
- audio-only files (narration, music) are decoded completely: the duration is then the decoded
  one (exact even for VBR MP3s without a Xing header), and a file that stops decoding well short
  of the length its header declares is reported as truncated;
- video files have every packet of the picture stream demuxed (not decoded: cheap), so a clip cut
  short (e.g. an interrupted upload) is reported as truncated; where the header gives no length per
  stream (Matroska, WebM), the sound's packets too, and the file's length is compared with theirs.
Still images are checked by render_job.normalize (Pillow, bounded memory) and described by
`still_info()`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction

import av

from shared.errors import PermanentRenderError
from shared.messages import plain

_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif",
                  "gif_pipe", "pgm_pipe", "ppm_pipe", "pam_pipe", "svg_pipe", "qoi_pipe", "jpegxl_pipe")


@dataclass(frozen=True)
class MediaInfo:
    """What the planner and the graph builder need to know about one file.

    duration_s: seconds, the longest stream (None for a still image). video_duration_s: seconds of
    picture (the video stream alone: what a clip visual can show; None for audio and stills). width/height: pixels of the first video stream as
    coded (before rotation). fps: frames per second (None when unknown or a still). rotation: degrees
    of display rotation (0, 90, 180, 270; FFmpeg auto-rotates when decoding). sample_rate in Hz,
    channels a count. size_bytes: file size in bytes.
    start_s: seconds, the container's start time (FFmpeg's `-ss` counts from it); video_start_s /
    audio_start_s: seconds on the file's timeline where the first picture / first sound frame is
    presented (None without such a stream). audio_end_s: seconds on the file's timeline where the sound
    ends (None when unknown: no sound, or no per-stream length and no full read). interlaced: the first
    picture is an interlaced frame, or the stream declares a field order (tt, bb, tb, bt).
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
    video_duration_s: float | None = None
    start_s: float = 0.0
    video_start_s: float | None = None
    audio_start_s: float | None = None
    audio_end_s: float | None = None
    interlaced: bool = False


def is_attached_picture(stream) -> bool:
    """True for a cover-art stream (disposition attached_pic): one still picture, not video."""
    return bool(int(stream.disposition or 0) & ATTACHED_PIC)


ATTACHED_PIC = 0x400  # AV_DISPOSITION_ATTACHED_PIC (libavformat/avformat.h)


def _stream_seconds(stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _start_seconds(stream, frame) -> float | None:
    """Where `frame` (the stream's first decoded frame) is presented, else the stream's start time."""
    if frame is not None and frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return None


INTERLACED_FIELD_ORDERS = (2, 3, 4, 5)  # AVFieldOrder: AV_FIELD_TT, BB, TB, BT (1 = progressive)


def _rotation(stream, frame) -> int:
    rot = getattr(frame, "rotation", None) if frame is not None else None
    if rot is None:
        try:
            rot = int(float(stream.metadata.get("rotate", 0)))
        except (TypeError, ValueError):
            rot = 0
    return int(round(rot)) % 360


# a file is "truncated" when less than this share of its declared length can be read (and the gap
# exceeds TRUNCATED_MIN_GAP_S): headers of honest files are often off by a frame or a VBR estimate
TRUNCATED_SHARE = 0.9
TRUNCATED_MIN_GAP_S = 0.5


def still_info(path: str, width: int, height: int, format_name: str, pix_fmt: str | None,
               size_bytes: int) -> MediaInfo:
    """MediaInfo of a still image checked by render_job.normalize (width/height as displayed)."""
    return MediaInfo(path=path, format_name=format_name, duration_s=None, has_video=True, has_audio=False,
                     is_image=True, width=width, height=height, pix_fmt=pix_fmt, size_bytes=size_bytes)


def _check_read_to_end(container, name: str, vstreams, astreams, declared: float | None,
                       whole_file: bool = False) -> tuple[float | None, float | None, float | None]:
    """Read the whole file (decode audio-only files, demux video and sound packets of others).

    Returns (length, media_s, audio_end_s), seconds: length is the readable length of the audio for
    audio-only files, of the picture (video stream) otherwise; media_s the file's readable length
    (every stream, from the file's start; None for audio-only files); audio_end_s where the sound's
    last packet ends on the file's timeline (None without sound or for audio-only files).
    `declared` is the length the header declares for that stream (the truncation check compares
    with it), or with `whole_file` the container's length (Matroska, WebM: no per-stream length),
    compared with the end of every stream read (sound may rightly outlast the picture there);
    None (no length in the header): nothing to compare."""
    container.seek(0)
    if not vstreams and astreams:
        a = astreams[0]
        samples = 0
        rate = a.sample_rate or 0
        try:
            for frame in container.decode(a):
                samples += frame.samples
                rate = frame.sample_rate or rate
        except Exception as exc:
            at = samples / rate if rate else 0.0
            raise PermanentRenderError(f"{name}: audio cannot be decoded after {at:.2f} s, the file is "
                                       f"truncated or corrupt ({_short(exc)})") from None
        got = samples / rate if rate else 0.0
        if got <= 0:
            raise PermanentRenderError(f"{name}: audio stream has no decodable samples")
        if "wav" in (container.format.name or ""):
            declared = _wav_declared_s(container.name, got) or declared  # FFmpeg sizes WAVs by the file
        if declared and got < declared * TRUNCATED_SHARE and declared - got > TRUNCATED_MIN_GAP_S:
            raise PermanentRenderError(f"{name}: the file is truncated: its header declares {declared:.2f} s "
                                       f"but only {got:.2f} s of audio can be decoded")
        return got, None, None
    vs = vstreams[0]
    end = file_end = 0.0
    audio_end: float | None = None
    sound = astreams[0].index if astreams else None
    try:  # the sound's packets too (cheap: the demuxer reads them anyway): where the sound ends
        for packet in container.demux([vs] + astreams[:1] + (astreams[1:] if whole_file else [])):
            if packet.pts is None or packet.time_base is None:
                continue
            at = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            if packet.stream_index == sound:
                audio_end = at if audio_end is None else max(audio_end, at)
            if packet.stream_index == vs.index or whole_file:
                file_end = max(file_end, at)
            end = max(end, at) if packet.stream_index == vs.index else end
    except Exception as exc:
        raise PermanentRenderError(f"{name}: video cannot be read after {end:.2f} s, the file is truncated "
                                   f"or corrupt ({_short(exc)})") from None
    start = float(vs.start_time * vs.time_base) if vs.start_time is not None and vs.time_base else 0.0
    got = max(0.0, end - start)
    read, what = got, "video"
    file_start = container.start_time / 1_000_000 if container.start_time is not None else start
    media = max(0.0, max(file_end, audio_end or 0.0) - file_start)
    if whole_file:
        read, what = media, "media"
    if declared and read < declared * TRUNCATED_SHARE and declared - read > TRUNCATED_MIN_GAP_S:
        raise PermanentRenderError(f"{name}: the file is truncated: its header declares {declared:.2f} s "
                                   f"but only {read:.2f} s of {what} can be read")
    return got or None, media or None, audio_end


def _wav_declared_s(path: str, decoded_s: float) -> float | None:
    """The length a WAV's `data` chunk declares, scaled from what was decoded (None if unknown or
    a streamed WAV whose size field is 0 / 0xFFFFFFFF)."""
    import struct

    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
            total = os.fstat(fh.fileno()).st_size
    except OSError:
        return None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if cid == b"data":
            available = total - (pos + 8)
            if size in (0, 0xFFFFFFFF) or available <= 0:
                return None
            return decoded_s * size / available if size > available else None
        pos += 8 + size + (size & 1)
    return None


def probe(path: str, label: str | None = None, *, full: bool = False,
          max_duration_s: float | None = None, role: str | None = None) -> MediaInfo:
    """Probe one local file.

    Args:
        path: local file path.
        label: how to name the file in error messages (e.g. the spec's src); defaults to the path.
        full: also read a time-based file to its end (see the module doc): exact audio durations,
            truncation detected.
        max_duration_s: refuse media longer than this (seconds), checked before the full read.
        role: what the spec uses the file as ("an image", "a video", "an image or a video"): a file
            that does not open or whose picture does not decode is then reported as "cannot be
            decoded as <role>" (the user sent an image, not a "video"); None: "not a readable media
            file", "video cannot be decoded".
    Returns:
        MediaInfo.
    Raises:
        PermanentRenderError: the file is empty, not media, too long, truncated, or its first frame
            cannot be decoded.
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
        what = f"cannot be decoded as {role}" if role else "not a readable media file"
        raise PermanentRenderError(f"{name}: {what} ({_short(exc)})") from None
    try:
        fmt = container.format.name or ""
        # cover art (MP3 APIC, M4A covr, FLAC/OGG picture blocks) is a one-frame "video" stream with
        # the attached_pic disposition: not picture to show (FFmpeg's `V` specifier skips it too)
        vstreams = [s for s in container.streams.video if not is_attached_picture(s)]
        astreams = list(container.streams.audio)
        if not vstreams and not astreams:
            covers = len(container.streams.video)
            raise PermanentRenderError(f"{name}: no audio or video stream" + (
                " (only an attached cover picture)" if covers else ""))
        is_image = bool(vstreams) and not astreams and (
            any(f in _IMAGE_FORMATS for f in fmt.split(",")) or fmt.endswith("_pipe"))
        width = height = None
        fps = None
        pix_fmt = None
        rotation = 0
        duration: float | None = None
        vdur: float | None = None
        vstart = astart = aend = None
        interlaced = False
        if vstreams:
            vs = vstreams[0]
            frame = None
            try:
                for frame in container.decode(vs):
                    break
            except Exception as exc:
                what = f"cannot be decoded as {role}" if role else "video cannot be decoded"
                raise PermanentRenderError(f"{name}: {what} ({_short(exc)})") from None
            if frame is None:
                raise PermanentRenderError(f"{name}: " + (f"cannot be decoded as {role} (no decodable frame)" if role
                                                          else "video stream has no decodable frame"))
            width, height = frame.width, frame.height
            pix_fmt = frame.format.name
            rotation = _rotation(vs, frame)
            vstart = _start_seconds(vs, frame)
            interlaced = bool(getattr(frame, "interlaced_frame", False)) or \
                int(getattr(vs.codec_context, "field_order", 0) or 0) in INTERLACED_FIELD_ORDERS
            if not is_image:
                rate = vs.average_rate or vs.base_rate or vs.guessed_rate
                fps = float(Fraction(rate)) if rate else None
                duration = vdur = _stream_seconds(vs)
        sample_rate = channels = None
        if astreams:
            a = astreams[0]
            if vstreams:  # seek on the audio stream itself: the mov demuxer lines the other streams
                container.seek(a.start_time or 0, stream=a)  # up with the seeked one's time
            got = None
            try:
                for got in container.decode(a):
                    break
            except Exception as exc:
                raise PermanentRenderError(f"{name}: audio cannot be decoded ({_short(exc)})") from None
            if got is None:
                raise PermanentRenderError(f"{name}: audio stream has no decodable frame")
            astart = _start_seconds(a, got)
            sample_rate = a.sample_rate or got.sample_rate
            channels = a.codec_context.layout.nb_channels if a.codec_context.layout else None
            adur = _stream_seconds(a)
            duration = max(duration or 0.0, adur or 0.0) or None
            if adur is not None and a.start_time is not None and a.time_base is not None:
                aend = float(a.start_time * a.time_base) + adur
        if not is_image and duration is None and container.duration:
            duration = container.duration / 1_000_000
        # no length in the header (Matroska/WebM written to a pipe, MediaRecorder): the full read
        # measures it; without a full read the file is refused
        if not is_image and (duration is None or duration <= 0) and not full:
            raise PermanentRenderError(f"{name}: media has no duration")
        if not is_image and max_duration_s is not None and duration is not None and duration > max_duration_s:
            raise PermanentRenderError(f"{name}: media is {plain(duration)} s long, over the limit of "
                                       f"{plain(max_duration_s)} s (RENDER_MAX_MEDIA_S)")
        whole_file = False
        if vstreams and not is_image and vdur is None:
            vdur = duration  # no per-stream length: the container's stands for the picture too
            whole_file = True
        if full and not is_image:
            # the picture is checked against ITS declared length: sound may rightly run longer
            exact, media, read_aend = _check_read_to_end(container, name, vstreams, astreams,
                                                         vdur if vstreams else duration, whole_file=whole_file)
            if exact is not None and not vstreams:
                duration = exact
            elif exact is not None:
                vdur = exact
            if vstreams and media is not None and not duration:
                duration = media  # measured: the header had none
            aend = read_aend if read_aend is not None else aend
            if duration is None or duration <= 0:
                raise PermanentRenderError(f"{name}: media has no duration")
            if max_duration_s is not None and duration > max_duration_s:
                raise PermanentRenderError(f"{name}: media is {plain(duration)} s long, over the limit of "
                                           f"{plain(max_duration_s)} s (RENDER_MAX_MEDIA_S)")
        return MediaInfo(path=path, format_name=fmt, duration_s=duration, has_video=bool(vstreams),
                         has_audio=bool(astreams), is_image=is_image, width=width, height=height, fps=fps,
                         rotation=rotation, pix_fmt=pix_fmt, sample_rate=sample_rate, channels=channels,
                         size_bytes=size, video_duration_s=vdur if vstreams and not is_image else None,
                         start_s=container.start_time / 1_000_000 if container.start_time is not None else 0.0,
                         video_start_s=vstart if not is_image else None, audio_start_s=astart,
                         audio_end_s=aend if vstreams and not is_image else None,
                         interlaced=interlaced and not is_image)
    finally:
        container.close()


def _short(exc: Exception) -> str:
    """The library's reason, without the local file path PyAV/FFmpeg append (clients see this text)."""
    text = (getattr(exc, "strerror", None) or str(exc)).strip() or type(exc).__name__
    text = re.sub(r"""(:\s*)?['"]?/[^'"\s]*['"]?""", "", text).strip(" :")
    return text[:200]
