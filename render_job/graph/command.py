"""FFmpeg argv assembly (pure): the render, a segment of a segmented render, the poster frame, and a
graph too long for one argument moved into a file.

The render's argv: inputs (scenes.scene_video, audio.audio_mix, the caption atlas), ONE
-filter_complex graph (scenes -> timeline [tl] -> captions [vout]; audio [aout]), then x264/AAC
encoding with BT.709 limited-range tags. Times in seconds; paths relative to the FFmpeg working
directory. Loudness commands are in render_job.loudness.
"""
from __future__ import annotations

from typing import Mapping

from render_job.graph.audio import AUDIO_BITRATE, AUDIO_RATE, audio_mix, audio_out
from render_job.graph.captions import CaptionOverlay, caption_graph
from render_job.graph.common import fmt_s
from render_job.graph.scenes import clip_input, scene_video
from render_job.graph.timeline import timeline_frames, timeline_graph
from render_job.plan import RenderPlan

# quality -> (x264 preset, CRF)
QUALITY: dict[str, tuple[str, int]] = {
    "draft": ("ultrafast", 28),
    "standard": ("veryfast", 23),
    "high": ("medium", 18),
}
DEFAULT_FONTS_DIR = "fonts"

_COLOR_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]


def build_command(plan: RenderPlan, inputs: Mapping[str, str], out_mp4: str, ass_path: str | None = None,
                  ffmpeg: str = "ffmpeg", threads: int = 0, fonts_dir: str = DEFAULT_FONTS_DIR,
                  caption_overlay: CaptionOverlay | None = None, video_pipe: bool = False,
                  loudness: Mapping[str, str] | None = None) -> list[str]:
    """The argv of the single FFmpeg run that renders `plan` to `out_mp4`.

    With video_pipe=True it is the encoding run of a segmented render instead: the video timeline
    comes from stdin as raw yuv420p frames (w x h at plan.fps, written by the build_segment_command
    runs of timeline.segment_cuts(plan), in order); audio, captions and encoding are the same as a single run's.

    Args:
        plan: the RenderPlan (times in seconds).
        inputs: {src: local file path} for every image, clip, narration and music src in the plan.
        out_mp4: output path (relative to the FFmpeg working directory, or absolute).
        ass_path: the ASS file name for burn-in, relative to the working directory (a fixed name such
            as "captions.ass"), or None for no burn-in. Must not contain ':', ',', ';', '[', ']', '\\' or quotes.
        ffmpeg: the FFmpeg executable.
        threads: x264/encoder threads (0 = FFmpeg's choice).
        fonts_dir: directory (relative to the working directory) holding the caption fonts.
        caption_overlay: the captions pre-rendered by render_job.caption_overlay.prepare (its atlas
            in the working directory), overlaid instead of burning `ass_path` (then normally None).
        video_pipe: read the video timeline from stdin (segmented render) instead of rendering it.
        loudness: the mix's analysis (render_job.loudness.mix_loudness): the mix is normalised
            by one constant gain (volume) when its true peak allows, else by loudnorm's dynamic
            mode started from it (audio.loudnorm_filter); None: loudnorm's dynamic mode.
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
    clip_inputs: dict[int, int] = {}  # scene index -> input index of its clip (for its audio)

    if video_pipe:
        # segmented render: the timeline arrives as raw frames (build_segment_command's, one segment
        # after the other) on stdin; clips with sound are opened again here for their audio only
        args += ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", f"{w}x{h}", "-framerate", str(fps),
                 "-i", "pipe:0"]
        graph.append(f"[0:v]setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709,"
                     f"setsar=1,settb=1/{fps},setpts=N[tl]")
        idx = 1
        for sc in plan.scenes:
            if sc.kind == "video" and sc.clip_audio:
                args += clip_input(sc, inputs[sc.src])  # type: ignore[index]
                clip_inputs[sc.index] = idx
                idx += 1
    else:
        # --- video inputs and per-scene chains, then the timeline: every transition is its own short
        # segment, then ONE concat (see timeline_graph)
        for sc in plan.scenes:
            in_args, stmts = scene_video(plan, sc, inputs, idx)
            args += in_args
            graph += stmts
            if in_args:
                if sc.kind == "video" and sc.clip_audio:
                    clip_inputs[sc.index] = idx
                idx += 1
        graph += timeline_graph(plan)
    audio_args, audio_graph, mix, idx = audio_mix(plan, inputs, idx, clip_inputs)
    args += audio_args
    graph += audio_graph + [audio_out(plan, mix, loudness)]
    # --- captions over the timeline [tl]
    caption_args, caption_graph_stmts = caption_graph(caption_overlay, ass_path, fonts_dir, idx, "[tl]", fps)
    args += caption_args
    graph += caption_graph_stmts
    args += ["-filter_complex", ";".join(graph), "-map", "[vout]", "-map", "[aout]", *video_codec_args(plan),
             "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2",
             "-movflags", "+faststart", "-t", fmt_s(total)]
    if threads:
        args += ["-threads", str(int(threads))]
    args += ["-progress", "pipe:1", "-nostats", "-y", out_mp4]
    return args


def video_codec_args(plan: RenderPlan) -> list[str]:
    """The video encoder's arguments of every render (x264 by quality: QUALITY; yuv420p, constant
    plan.fps, BT.709 limited-range tags): the single render and a parallel render's parts share them,
    so parts joined by stream copy are the same stream as one render's."""
    preset, crf = QUALITY.get(plan.quality, QUALITY["standard"])
    return ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p", "-r", str(plan.fps),
            *_COLOR_TAGS]


def build_segment_command(plan: RenderPlan, inputs: Mapping[str, str], first: int, last: int | None,
                          ffmpeg: str = "ffmpeg") -> list[str]:
    """The argv of one segment of a segmented render: the timeline from scene `first`'s body to scene
    `last`'s (None: the end; see timeline.segment_cuts, timeline_graph) written to stdout as raw yuv420p
    frames (w x h, timeline.segment_frames(plan, first, last) of them), read by build_command(video_pipe=True).

    Raises:
        KeyError: a src of the segment's scenes is missing from `inputs`.
    """
    n = len(plan.scenes)
    _, trans = timeline_frames(plan)
    end = n if last is None else last
    # scene `last` only for the head it gives transition last-1 (none after a cut)
    upto = end + 1 if end < n and trans[end - 1] else end
    args: list[str] = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    graph: list[str] = []
    idx = 0
    for sc in plan.scenes[first:upto]:
        in_args, stmts = scene_video(plan, sc, inputs, idx)
        args += in_args
        graph += stmts
        idx += 1 if in_args else 0
    graph += timeline_graph(plan, "[tl]", first, last)
    return args + ["-filter_complex", ";".join(graph), "-map", "[tl]", "-fps_mode", "passthrough",
                   "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"]


GRAPH_FILE = "filter_graph.txt"
GRAPH_ARG_LIMIT = 64 * 1024  # characters; Linux refuses any single argv string over 128 KiB (E2BIG)


def graph_via_file(argv: list[str], limit: int = GRAPH_ARG_LIMIT,
                   name: str = GRAPH_FILE) -> tuple[list[str], dict[str, str]]:
    """Move a long -filter_complex graph into the file `name` (FFmpeg >= 7: `-/filter_complex FILE`).

    A 200-scene storyboard's graph is ~190 KB, over the kernel's 128 KiB limit for one argument.
    Returns:
        (argv, {file name: text to write into the FFmpeg working directory}); argv unchanged and {}
        when the graph is at most `limit` characters (or there is none).
    """
    if "-filter_complex" not in argv:
        return argv, {}
    i = argv.index("-filter_complex")
    if len(argv[i + 1]) <= limit:
        return argv, {}
    return argv[:i] + ["-/filter_complex", name] + argv[i + 2:], {name: argv[i + 1]}


def build_poster_command(ffmpeg: str, mp4: str, time_s: float, out_jpg: str) -> list[str]:
    """argv extracting the frame at `time_s` (seconds) of `mp4` as a JPEG at `out_jpg` (full size, q 2).

    The frame is converted from the video's BT.709 limited range to JPEG's BT.601 full range (what
    every JPEG decoder assumes), so the poster's colours match the video's."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-ss", fmt_s(time_s), "-i", mp4,
            "-frames:v", "1", "-vf", "scale=in_range=tv:in_color_matrix=bt709:out_range=pc:out_color_matrix=bt601,"
            "format=yuvj420p", "-q:v", "2", "-update", "1", "-y", out_jpg]
