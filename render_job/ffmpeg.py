"""FFmpeg argument building (pure: no I/O, no subprocess).

One FFmpeg run renders the whole export through a single -filter_complex graph:

    per scene   image (decoded once, scaled once, repeated by the `loop` filter) | clip (-ss/-t,
                frozen last frame via tpad if short) | colour (lavfi `color` source in the graph)
                -> scale (fit, BT.709 limited range) -> crop/pad -> setsar=1 -> fps -> yuv420p
                -> trim to the scene's duration                              => [v0] [v1] ...
    timeline    [v0][v1] xfade(offset = start of scene 1) -> ... ; cuts use concat
    captions    subtitles=captions.ass:fontsdir=fonts (relative to the FFmpeg working directory,
                so no caption text and no user-controlled path ever enters the graph or argv)
    audio       narrations (48 kHz stereo, gain, cut, adelay to the scene start) -> amix
                music (looped, gain, fades, trimmed) ducked by sidechaincompress keyed on narration
                -> loudnorm (target LUFS / dBTP) -> 48 kHz -> padded/trimmed to the total
                no audio at all -> anullsrc silence (the output always has an AAC stereo track)

Run the command with cwd = the work directory holding `captions.ass` and `fonts/`.
Local input paths must not contain '%' (the image2 demuxer treats it as a sequence pattern):
render_job.job names downloaded assets itself.
"""
from __future__ import annotations

from typing import Mapping

from render_job.plan import RenderPlan, ScenePlan

# quality -> (x264 preset, CRF)
QUALITY: dict[str, tuple[str, int]] = {
    "draft": ("ultrafast", 28),
    "standard": ("veryfast", 23),
    "high": ("medium", 18),
}
AUDIO_RATE = 48000
AUDIO_BITRATE = "192k"
LOUDNESS_RANGE = 11
NARRATION_FADE_S = 0.05
DEFAULT_ASS_NAME = "captions.ass"
DEFAULT_FONTS_DIR = "fonts"

_COLOR_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]


def fmt_s(seconds: float) -> str:
    """Seconds as a compact decimal string for FFmpeg (microsecond precision, no exponent)."""
    text = f"{max(0.0, seconds):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _fit_filters(scene: ScenePlan, w: int, h: int) -> str:
    scale_common = f"force_divisible_by=2:out_range=tv:out_color_matrix=bt709:flags=bicubic"
    if scene.fit == "contain":
        return (f"scale={w}:{h}:force_original_aspect_ratio=decrease:{scale_common},"
                f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black")
    return f"scale={w}:{h}:force_original_aspect_ratio=increase:{scale_common},crop={w}:{h}"


def _common_tail(plan: RenderPlan, duration: float) -> str:
    fps = plan.fps
    return (f"setsar=1,fps={fps},format=yuv420p,"
            f"setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709,"
            f"trim=duration={fmt_s(duration)},setpts=PTS-STARTPTS")


def build_command(plan: RenderPlan, inputs: Mapping[str, str], out_mp4: str, ass_path: str | None = None,
                  ffmpeg: str = "ffmpeg", threads: int = 0, fonts_dir: str = DEFAULT_FONTS_DIR) -> list[str]:
    """The argv of the single FFmpeg run that renders `plan` to `out_mp4`.

    Args:
        plan: the RenderPlan (times in seconds).
        inputs: {src: local file path} for every image, clip, narration and music src in the plan.
        out_mp4: output path (relative to the FFmpeg working directory, or absolute).
        ass_path: the ASS file name for burn-in, relative to the working directory (a fixed name such
            as "captions.ass"), or None for no burn-in. Must not contain ':', ',', ';', '[', ']', '\\' or quotes.
        ffmpeg: the FFmpeg executable.
        threads: x264/encoder threads (0 = FFmpeg's choice).
        fonts_dir: directory (relative to the working directory) holding the caption fonts.
    Returns:
        argv as a list of strings. Progress goes to stdout (-progress pipe:1), errors to stderr.
    Raises:
        KeyError: a src of the plan is missing from `inputs`.
        ValueError: ass_path or fonts_dir contains a character that would need filter escaping.
    """
    for name in (ass_path, fonts_dir):
        if name and any(c in name for c in ":,;[]\\'\"= %"):
            raise ValueError(f"unsafe file name for the filter graph: {name!r}")
    w, h, fps = plan.width, plan.height, plan.fps
    total = plan.total_s
    args: list[str] = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    graph: list[str] = []
    idx = 0

    # --- video inputs and per-scene chains
    for sc in plan.scenes:
        label = f"[v{sc.index}]"
        if sc.kind == "color":
            color = (sc.color or "#000000").lstrip("#")
            graph.append(f"color=c=0x{color}:s={w}x{h}:r={fps}:d={fmt_s(sc.duration)},"
                         f"{_common_tail(plan, sc.duration)}{label}")
            continue
        path = inputs[sc.src]  # type: ignore[index]
        if sc.kind == "image":
            # Decode and scale the still ONCE, then repeat the scaled frame (the `loop` filter):
            # 2-3x faster than `-loop 1` input, which decodes and rescales the image for every frame.
            n_frames = max(1, int(round(sc.duration * fps)))
            args += ["-i", path]
            chain = (f"[{idx}:v]{_fit_filters(sc, w, h)},setsar=1,format=yuv420p,"
                     f"loop=loop={n_frames - 1}:size=1:start=0,settb=1/{fps},setpts=N,"
                     f"{_common_tail(plan, sc.duration)}")
        else:  # video
            read_s = min(sc.duration, sc.clip_s) if sc.clip_s else sc.duration
            args += ["-ss", fmt_s(sc.trim_start_s), "-t", fmt_s(read_s), "-i", path]
            pad = ""
            if sc.clip_pad_s > 0 or not sc.clip_s:
                pad = f"tpad=stop_mode=clone:stop_duration={fmt_s(sc.duration)},"
            chain = (f"[{idx}:v]setpts=PTS-STARTPTS,{_fit_filters(sc, w, h)},setsar=1,fps={fps},{pad}"
                     f"{_common_tail(plan, sc.duration)}")
        graph.append(chain + label)
        idx += 1

    # --- timeline: xfade / concat
    acc = "[v0]"
    for i in range(len(plan.scenes) - 1):
        sc, nxt = plan.scenes[i], plan.scenes[i + 1]
        out = f"[x{i}]"
        if sc.transition_s > 0 and sc.transition != "cut":
            graph.append(f"{acc}[v{i + 1}]xfade=transition={sc.transition}:duration={fmt_s(sc.transition_s)}"
                         f":offset={fmt_s(nxt.start)}{out}")
        else:
            graph.append(f"{acc}[v{i + 1}]concat=n=2:v=1:a=0{out}")
        acc = out
    if ass_path:
        graph.append(f"{acc}subtitles=filename={ass_path}:fontsdir={fonts_dir},format=yuv420p[vout]")
    else:
        graph.append(f"{acc}format=yuv420p[vout]")

    # --- audio
    narr_labels: list[str] = []
    for sc in plan.scenes:
        if not sc.narration_src:
            continue
        args += ["-i", inputs[sc.narration_src]]
        chain = (f"[{idx}:a]aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
                 f"volume={sc.narration_volume:g}")
        if sc.narration_cut_s is not None:
            cut = sc.narration_cut_s
            chain += (f",atrim=0:{fmt_s(cut)},"
                      f"afade=t=out:st={fmt_s(max(0.0, cut - NARRATION_FADE_S))}:d={fmt_s(NARRATION_FADE_S)}")
        delay_ms = int(round(sc.start * 1000))
        chain += f",asetpts=PTS-STARTPTS,adelay={delay_ms}:all=1"
        label = f"[n{sc.index}]"
        graph.append(chain + label)
        narr_labels.append(label)
        idx += 1

    narr = None
    if len(narr_labels) == 1:
        narr = narr_labels[0]
    elif narr_labels:
        graph.append("".join(narr_labels) + f"amix=inputs={len(narr_labels)}:normalize=0:duration=longest"
                     ":dropout_transition=0[narr]")
        narr = "[narr]"

    music = None
    if plan.music is not None:
        mu = plan.music
        if mu.loop:
            args += ["-stream_loop", "-1"]
        args += ["-i", inputs[mu.src]]
        chain = (f"[{idx}:a]aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
                 f"volume={mu.volume:g},atrim=0:{fmt_s(total)},asetpts=PTS-STARTPTS")
        if mu.fade_in_s > 0:
            chain += f",afade=t=in:st=0:d={fmt_s(mu.fade_in_s)}"
        if mu.fade_out_s > 0:
            chain += f",afade=t=out:st={fmt_s(max(0.0, total - mu.fade_out_s))}:d={fmt_s(mu.fade_out_s)}"
        graph.append(chain + "[mus]")
        music = "[mus]"
        idx += 1

    if narr and music:
        if plan.music and plan.music.ducking:
            graph.append(f"{narr}asplit=2[narrmix][narrkey0]")
            # finite padding: an endless key keeps some FFmpeg versions' graphs running forever
            graph.append(f"[narrkey0]apad=whole_dur={fmt_s(total)}[narrkey]")
            graph.append("[mus][narrkey]sidechaincompress=threshold=0.03:ratio=8:attack=20:release=400[duck]")
            graph.append("[narrmix][duck]amix=inputs=2:normalize=0:duration=longest:dropout_transition=0[mix]")
        else:
            graph.append(f"{narr}{music}amix=inputs=2:normalize=0:duration=longest:dropout_transition=0[mix]")
        mix = "[mix]"
    else:
        mix = narr or music

    if mix:
        graph.append(f"{mix}loudnorm=I={plan.loudness_lufs:g}:TP={plan.true_peak_db:g}:LRA={LOUDNESS_RANGE},"
                     f"aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
                     f"apad=whole_dur={fmt_s(total)},atrim=0:{fmt_s(total)},asetpts=PTS-STARTPTS[aout]")
    else:
        graph.append(f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=0:{fmt_s(total)},"
                     f"aformat=sample_fmts=fltp:channel_layouts=stereo[aout]")

    preset, crf = QUALITY.get(plan.quality, QUALITY["standard"])
    args += ["-filter_complex", ";".join(graph), "-map", "[vout]", "-map", "[aout]",
             "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p", "-r", str(fps),
             *_COLOR_TAGS,
             "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2",
             "-movflags", "+faststart", "-t", fmt_s(total)]
    if threads:
        args += ["-threads", str(int(threads))]
    args += ["-progress", "pipe:1", "-nostats", "-y", out_mp4]
    return args


def build_poster_command(ffmpeg: str, mp4: str, time_s: float, out_jpg: str) -> list[str]:
    """argv extracting the frame at `time_s` (seconds) of `mp4` as a JPEG at `out_jpg` (full size, q 2)."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-ss", fmt_s(time_s), "-i", mp4,
            "-frames:v", "1", "-q:v", "2", "-update", "1", "-y", out_jpg]
