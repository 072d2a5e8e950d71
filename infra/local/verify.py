"""Check a rendered MP4 with PyAV: codecs, pixel format, size, frame rate, audio layout and that
audio and video end together. Returns the problems as a list of strings (empty = fine).

Audio lengths are as heard (heard_seconds): decoded samples / rate, never the packet span, which
counts an AAC or MP3 encoder's priming and padding samples (about 20-50 ms) as sound."""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from shared.timeline import cue_span


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
    """Stream properties. video_s: end of the last video packet (demuxing every packet); audio_s: the
    sound heard (heard_seconds), in seconds."""
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
        for pkt in (c.demux(v) if v is not None else ()):
            if pkt.pts is None:
                continue
            tb = pkt.time_base or pkt.stream.time_base or Fraction(1, 1)
            t0 = float(pkt.pts * tb)
            t1 = float((pkt.pts + (pkt.duration or 0)) * tb)
            i = pkt.stream.index
            starts[i] = min(starts.get(i, t0), t0)
            ends[i] = max(ends.get(i, t1), t1)
            info.frames += 1
        if v is not None and v.index in ends:
            info.video_s = ends[v.index] - min(0.0, starts.get(v.index, 0.0))
    if a is not None:
        info.audio_s = heard_seconds(path)
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


# an AAC (1024 samples) or MP3 (1152) frame: the padding a narration's decoded length may include
CODEC_PADDING_S = 0.03
FLOW = ["awaiting_upload", "queued", "dispatched", "running", "succeeded"]


def check_history(final: dict, progress_seen: list[float], with_uploads: bool = True) -> list[str]:
    """The job went through FLOW in order and the progress it showed never fell and ended at 1.
    A job with nothing to upload (`with_uploads` False: colour and title scenes only, or gs:// library
    sources) starts `queued`: FLOW without `awaiting_upload`."""
    problems = []
    flow = FLOW if with_uploads else FLOW[1:]
    states = [h["status"] for h in final.get("history") or []]
    if states != flow:
        problems.append(f"states {states}, expected {flow}")
    if any(b < a for a, b in zip(progress_seen, progress_seen[1:])):
        problems.append(f"progress fell: {progress_seen}")
    if not progress_seen or progress_seen[-1] != 1.0:
        problems.append(f"progress ended at {progress_seen[-1] if progress_seen else None}, expected 1.0")
    return problems


def check_timeline(spec: dict, output: dict, video_s: float, narration_s: dict[str, float],
                   subtitle_files: list[Path], fps: float,
                   cue_tolerance_s: float = 0.05) -> tuple[float, list[str]]:
    """Compare the reported scene timeline with the spec, the video and the subtitle files.
    Returns (plan total in seconds, problems).

    - total = Σ scene durations − Σ transition overlaps, and the video lasts that within one frame;
    - each overlap equals the spec's transition duration (absent/null: a cut; `{}`: fade 0.5 s),
      clamped to half of the shorter neighbouring scene, within one frame (0 for cut / last scene);
    - a scene whose duration is null lasts its narration offsetS + the narration as heard + 0.5 s,
      rounded up to a frame (narration_s: {src: seconds heard}, see heard_seconds);
    - a `caption.text` cue spans its scene's start to the next scene's start (the end for the last),
      a `caption.cues` cue its startS..endS after the scene's start, cut where the next scene starts
      and dropped when less than one frame is left (shared.timeline.cue_span, the plan's rule, on
      scene starts snapped to the frame grid: output.scenes is rounded to milliseconds);
      every subtitle file has exactly these cues, in order, ±50 ms.
    """
    import pysubs2

    frame = 1.0 / fps
    problems: list[str] = []
    scenes, timeline = spec["scenes"], output.get("scenes") or []
    if len(timeline) != len(scenes):
        return 0.0, [f"timeline has {len(timeline)} scenes, spec has {len(scenes)}"]
    durations = [t["durationS"] for t in timeline]
    overlaps = [timeline[i]["startS"] + durations[i] - timeline[i + 1]["startS"] for i in range(len(scenes) - 1)]
    total = sum(durations) - sum(overlaps)
    if abs(total - (timeline[-1]["startS"] + durations[-1])) > 1e-3:
        problems.append("timeline is not contiguous")
    if abs(video_s - total) > frame:
        problems.append(f"video {video_s:.3f} s, plan total {total:.3f} s (> one frame apart)")
    for i, scene in enumerate(scenes):
        tr = scene.get("transition")
        if i < len(overlaps):
            spec_s = 0.0 if tr is None or tr.get("type", "fade") == "cut" else float(tr.get("duration", 0.5))
            want = min(spec_s, min(durations[i], durations[i + 1]) / 2)  # the documented clamp
            if abs(overlaps[i] - want) > frame + 1e-6:
                clamp = f" (spec {spec_s:.3f} s, clamped to half of the shorter scene)" if want < spec_s else ""
                problems.append(f"scene {scene['id']}: transition {overlaps[i]:.3f} s, expected {want:.3f} s{clamp}")
        narration = scene.get("narration") or {}
        narr = narration.get("src")
        if scene.get("duration") is None and narr in narration_s:
            offset = float(narration.get("offsetS", 0.0))
            expect = offset + narration_s[narr] + 0.5
            # rounded up to a frame; the render may also count one codec frame of encoder padding
            if not expect - 1e-3 <= durations[i] <= expect + frame + CODEC_PADDING_S:
                problems.append(f"scene {scene['id']}: {durations[i]:.3f} s, narration offset {offset:.3f} s "
                                f"+ {narration_s[narr]:.3f} s heard + 0.5 s pause = {expect:.3f} s")
    # output.scenes times are rounded to milliseconds: put them back on the frame grid (a start is a
    # whole frame) and cut timed cues by the plan's own rule (cue_span), so a cue left exactly one frame
    # long is expected and one left under a frame (output.warnings says so) is not
    edges = [round(t["startS"] * fps) for t in timeline] + [round(total * fps)]
    cues = []
    for i, s in enumerate(scenes):
        caption = s.get("caption") or {}
        start, end = edges[i] / fps, edges[i + 1] / fps
        if caption.get("text"):
            cues.append((start, end))
        for cue in caption.get("cues") or []:  # relative to the scene's start, cut where the next starts
            span = cue_span((edges[i + 1] - edges[i]) / fps, float(cue["startS"]), float(cue["endS"]), round(fps))
            if span is not None:
                cues.append((start + span[0], start + span[1]))
    for path in subtitle_files:
        events = pysubs2.load(str(path))
        if len(events) != len(cues):
            problems.append(f"{path.name}: {len(events)} cues, expected {len(cues)}")
            continue
        for k, (ev, (a, b)) in enumerate(zip(events, cues)):
            if abs(ev.start / 1000 - a) > cue_tolerance_s or abs(ev.end / 1000 - b) > cue_tolerance_s:
                problems.append(f"{path.name} cue {k + 1}: {ev.start / 1000:.3f}-{ev.end / 1000:.3f} s, "
                                f"expected {a:.3f}-{b:.3f} s")
    return total, problems


def heard_seconds(path: str | Path) -> float:
    """Seconds of sound in the first audio stream, as a player renders it: decoded samples / sample
    rate (the decoder drops the encoder's priming samples), capped at the end the container declares
    for the stream (MP4 trims the AAC encoder's padding of the last frame there; the decoder does not).
    0.0 for a file without audio."""
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return 0.0
        a = c.streams.audio[0]
        declared = 0.0
        for pkt in c.demux(a):
            if pkt.pts is not None and pkt.size:
                declared = max(declared, float((pkt.pts + (pkt.duration or 0)) * (pkt.time_base or a.time_base)))
    with av.open(str(path)) as c:
        samples, rate = 0, c.streams.audio[0].codec_context.sample_rate or 0
        for frame in c.decode(audio=0):
            samples += frame.samples
            rate = frame.sample_rate or rate
    heard = samples / rate if rate else 0.0
    return min(heard, declared) if declared > 0 else heard

