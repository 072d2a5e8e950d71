"""Check a rendered MP4 with PyAV: codecs, pixel format, size, frame rate, audio layout and that
audio and video end together. Returns the problems as a list of strings (empty = fine)."""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path


@dataclass
class MediaInfo:
    video_codec: str = ""
    pix_fmt: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    video_s: float = 0.0
    audio_codec: str = ""
    sample_rate: int = 0
    channels: int = 0
    audio_s: float = 0.0
    frames: int = 0
    extra: dict = field(default_factory=dict)


def probe(path: str | Path) -> MediaInfo:
    """Stream properties; durations measured by demuxing every packet (end of the last packet)."""
    import av

    info = MediaInfo()
    with av.open(str(path)) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        if v is not None:
            info.video_codec = v.codec_context.name
            info.pix_fmt = v.codec_context.pix_fmt or (v.format.name if v.format else "")
            info.width, info.height = v.codec_context.width, v.codec_context.height
            rate = v.average_rate or v.guessed_rate or v.base_rate
            info.fps = float(rate) if rate else 0.0
        if a is not None:
            info.audio_codec = a.codec_context.name
            info.sample_rate = a.codec_context.sample_rate
            layout = a.codec_context.layout
            info.channels = getattr(layout, "nb_channels", None) or len(getattr(layout, "channels", ()))
        ends: dict[int, float] = {}
        starts: dict[int, float] = {}
        streams = [s for s in (v, a) if s is not None]
        for pkt in c.demux(*streams):
            if pkt.pts is None:
                continue
            tb = pkt.time_base or pkt.stream.time_base or Fraction(1, 1)
            t0 = float(pkt.pts * tb)
            t1 = float((pkt.pts + (pkt.duration or 0)) * tb)
            i = pkt.stream.index
            starts[i] = min(starts.get(i, t0), t0)
            ends[i] = max(ends.get(i, t1), t1)
            if v is not None and i == v.index:
                info.frames += 1
        if v is not None and v.index in ends:
            info.video_s = ends[v.index] - min(0.0, starts.get(v.index, 0.0))
        if a is not None and a.index in ends:
            info.audio_s = ends[a.index] - min(0.0, starts.get(a.index, 0.0))
    return info


def check_mp4(path: str | Path, width: int, height: int, fps: float, *, max_av_diff_s: float = 0.05,
              expected_s: float | None = None, duration_tolerance_s: float = 0.25) -> tuple[MediaInfo, list[str]]:
    """(info, problems) for an H.264/yuv420p + AAC 48 kHz stereo MP4 of the given size and rate."""
    info = probe(path)
    problems: list[str] = []

    def want(what, got, expected):
        if got != expected:
            problems.append(f"{what}: {got!r}, expected {expected!r}")

    want("video codec", info.video_codec, "h264")
    want("pixel format", info.pix_fmt, "yuv420p")
    want("size", (info.width, info.height), (width, height))
    if abs(info.fps - fps) > 0.01:
        problems.append(f"frame rate: {info.fps:.3f}, expected {fps}")
    want("audio codec", info.audio_codec, "aac")
    want("sample rate", info.sample_rate, 48000)
    want("channels", info.channels, 2)
    if info.video_s <= 0 or info.audio_s <= 0:
        problems.append(f"durations: video {info.video_s:.3f} s, audio {info.audio_s:.3f} s")
    elif abs(info.video_s - info.audio_s) > max_av_diff_s:
        problems.append(f"audio {info.audio_s:.3f} s and video {info.video_s:.3f} s differ by "
                        f"{abs(info.video_s - info.audio_s) * 1000:.0f} ms (> {max_av_diff_s * 1000:.0f} ms)")
    if expected_s is not None and abs(info.video_s - expected_s) > duration_tolerance_s:
        problems.append(f"video lasts {info.video_s:.3f} s, status says {expected_s:.3f} s")
    return info, problems
