"""Checks on a rendered MP4: stream durations, integrated loudness, PSNR against another render, and the
ffmpeg call log."""
from __future__ import annotations

import re
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class OutputInfo:
    video_s: float | None
    audio_s: float | None
    frames: int | None
    lufs: float | None
    true_peak: float | None
    size_mb: float

    @property
    def av_diff_ms(self) -> float | None:
        if self.video_s is None or self.audio_s is None:
            return None
        return (self.audio_s - self.video_s) * 1000.0


def stream_durations(mp4: str, ffmpeg: str = "ffmpeg") -> tuple[float | None, float | None, int | None]:
    """(video seconds, audio seconds, video frames). Video: the container's stream duration (PyAV);
    audio: the samples FFmpeg decodes / 48 kHz, i.e. what is heard, not what the timestamps claim
    (a timestamp gap left by a filter keeps the stream's duration right while sound is missing;
    docs/benchmarks-history.md, finding 23). FFmpeg, not PyAV: it trims the AAC encoder's end padding (the edit
    list), PyAV's plain decode keeps up to 1023 samples of it."""
    import av

    with av.open(mp4) as c:
        v = c.streams.video[0] if c.streams.video else None
        has_audio = bool(c.streams.audio)
        vs = float(v.duration * v.time_base) if v is not None and v.duration else None
        frames = v.frames if v is not None and v.frames else None
    as_ = None
    if has_audio:
        pcm = subprocess.run([ffmpeg, "-v", "error", "-i", mp4, "-map", "0:a:0", "-ac", "1", "-ar", "48000",
                              "-f", "s16le", "-"], capture_output=True).stdout
        as_ = len(pcm) / 2 / 48000
    return vs, as_, frames


def loudness(ffmpeg: str, mp4: str) -> tuple[float | None, float | None]:
    """(integrated loudness LUFS, true peak dBFS) by FFmpeg's ebur128 filter."""
    r = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-i", mp4, "-vn",
                        "-af", "ebur128=peak=true", "-f", "null", "-"],
                       capture_output=True, text=True, errors="replace")
    summary = r.stderr[r.stderr.rfind("Summary:"):] if "Summary:" in r.stderr else ""
    i = re.search(r"I:\s+(-?[\d.]+)\s+LUFS", summary)
    tp = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf)\s+dBFS", summary)
    return (float(i.group(1)) if i else None,
            float(tp.group(1)) if tp and tp.group(1) != "-inf" else None)


def inspect(ffmpeg: str, mp4: str) -> OutputInfo:
    vs, as_, frames = stream_durations(mp4, ffmpeg)
    lufs, tp = loudness(ffmpeg, mp4)
    return OutputInfo(vs, as_, frames, lufs, tp, Path(mp4).stat().st_size / 1e6)


LOGGING_WRAPPER = """#!/bin/sh
# Benchmark wrapper: record the working directory and argv of each call, then run the real FFmpeg.
f="{log_dir}/call-$$-$(date +%s%N)"
printf '%s\\0' "$PWD" "$@" > "$f"
exec "{real}" "$@"
"""


def make_logging_ffmpeg(real: str, path: Path, log_dir: Path) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(LOGGING_WRAPPER.format(real=real, log_dir=log_dir))
    path.chmod(0o755)
    return path


def logged_calls(log_dir: Path) -> list[tuple[str, list[str]]]:
    """[(cwd, argv without argv[0])] in call order."""
    calls = []
    for f in sorted(log_dir.glob("call-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1])):
        parts = f.read_bytes().split(b"\0")
        if parts and parts[-1] == b"":
            parts = parts[:-1]
        calls.append((parts[0].decode(), [p.decode() for p in parts[1:]]))
    return calls


def frame_pairs(a: Path, b: Path, wanted):
    """Yield (index, yuv a, yuv b) of the frames whose index `wanted(i)` accepts (both decoded in step)."""
    import av
    import numpy as np

    with av.open(str(a)) as ca, av.open(str(b)) as cb:
        ca.streams.video[0].thread_type = cb.streams.video[0].thread_type = "AUTO"
        for i, (fa, fb) in enumerate(zip(ca.decode(video=0), cb.decode(video=0), strict=True)):
            if wanted(i):
                yield i, fa.to_ndarray(format="yuv420p").astype(np.int16), fb.to_ndarray(format="yuv420p").astype(np.int16)


def video_packets(path: Path) -> list[bytes]:
    """The bytes of every video packet of `path`, in order (two renders with equal lists have the
    same video, bit for bit)."""
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def psnr_figures(single_mp4: Path, stitched: Path, joins: list[int], every: int) -> dict:
    import numpy as np

    near = {f for j in joins for f in (j - 1, j)}
    values: dict[int, float] = {}
    for i, x, y in frame_pairs(single_mp4, stitched, lambda i: i % every == 0 or i in near):
        d = (x - y).astype(np.int32)
        mse = float(np.mean(d * d))
        values[i] = 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    at_joins = [values[f] for f in sorted(near) if f in values]
    return {"frames": len(values), "every": every, "min": min(values.values()),
            "median": statistics.median(values.values()), "minAtJoins": min(at_joins) if at_joins else None,
            "minAt": min(values, key=values.get)}
