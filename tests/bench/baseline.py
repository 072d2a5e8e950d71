"""(c) The baseline: the benchmark storyboard as ONE hand-written FFmpeg command.

Written by hand for this storyboard (12 stills of 1920x1080, 5 s each, 0.5 s fades, narration cut
at the scene end, looped + ducked + faded music, loudnorm, ASS captions). It deliberately does not
use render_job.graph: it is what a careful engineer would type, and what our generated graph is
measured against. Same encoder settings as our `standard` quality: libx264 veryfast CRF 23,
yuv420p, BT.709 tags, AAC 48 kHz 192k stereo, +faststart.

Ken Burns methods (`kb`):
- "ss2" (default): smooth. Zooms: the still is scaled every frame (scale eval=frame) to twice the
  zoomed size rounded to whole pixels of the OUTPUT, cropped centred at 3840x2160 (exact by
  construction), and halved to 1920x1080, so positions land on half pixels and the crop is never off
  centre. Pans: scaled once to 2x(1+s), cropped every frame at the 2x position (half-pixel steps),
  halved. No backward steps, ~0.1 px jitter.
- "scale": cheap. Zooms: scaled every frame to an even size at 1x and cropped centred; pans: scaled
  once, cropped at whole pixels. No backward steps, but whole-pixel stutter (~0.3 px jitter).
- "zoompan": FFmpeg's zoompan on the 1x still (the usual recipe; visibly shaky).
"""
from __future__ import annotations

import math
from pathlib import Path

from storyboard import (CAPTIONS, FPS, H, MOTION_STRENGTH, MOTIONS, SCENE_S, SCENES, TOTAL_S, W,
                        XFADE_S)

KB_METHODS = ("ss2", "scale", "zoompan")
FONT = "DejaVu Sans"


def _ass_time(s: float) -> str:
    cs = int(round(s * 100))
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def _ass_escape(text: str) -> str:
    return text.replace("\\", "\\\u2060").replace("{", "\\{").replace("}", "\\}").replace("\n", "\\N")


def write_ass(path: Path) -> None:
    """The caption script: DejaVu Sans 60 px, white, black outline, bottom centre, safe margins."""
    size = round(H / 18)
    lines = [
        "[Script Info]", "ScriptType: v4.00+", f"PlayResX: {W}", f"PlayResY: {H}", "WrapStyle: 0",
        "ScaledBorderAndShadow: yes", "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
        "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
        "Alignment, MarginL, MarginR, MarginV, Encoding",
        f"Style: Default,{FONT},{size},&H00FFFFFF,&H00FFFFFF,&H00000000,&H80000000,0,0,0,0,100,100,0,0,1,"
        f"{round(size / 16, 1)},{round(size / 40, 1)},2,{round(W * 0.05)},{round(W * 0.05)},{round(H * 0.06)},1",
        "", "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    step = SCENE_S - XFADE_S
    for i, text in enumerate(CAPTIONS[:SCENES]):
        start, end = i * step, (TOTAL_S if i == SCENES - 1 else (i + 1) * step)
        lines.append(f"Dialogue: 0,{_ass_time(start)},{_ass_time(end)},Default,,0,0,0,,{_ass_escape(text)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _kb_chain(motion: str | None, kb: str, n: int) -> str:
    """Filters turning one 1920x1080 yuv420p frame (input of `loop`) into n frames of motion.

    Same motion as ours (render_job.graph.visuals.motion_filter): p = frame / (n-1); zoom-in shows a
    centred window of (1-s)^p of the picture (zoom 1/(1-s)^p: constant perceived speed), zoom-out
    the reverse; pans show a window of 1-s travelling s of the picture's width (height) at constant
    speed, "pan-left" / "pan-up" moving the picture left / up (the window towards the right / bottom).
    """
    s = MOTION_STRENGTH
    loop = f"loop=loop={n - 1}:size=1:start=0,settb=1/{FPS},setpts=N"
    if not motion or motion == "none":
        return loop
    k_ln = -math.log(1.0 - s)  # zoom = exp(q * k_ln)
    if motion in ("zoom-in", "zoom-out"):
        def zoom(frame_var: str) -> str:
            q = f"({frame_var}/{n - 1})" if motion == "zoom-in" else f"(1-{frame_var}/{n - 1})"
            return f"exp({q}*{k_ln:.9f})"
        if kb == "zoompan":
            return (f"zoompan=z='{zoom('on')}':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d={n}:s={W}x{H}:fps={FPS},"
                    f"settb=1/{FPS},setpts=N")
        z = zoom("n")
        # crop's in_w/in_h keep the size of the first frame (scale eval=frame changes it on the fly),
        # so the centring offset is computed from n like the size
        if kb == "scale":
            return (f"{loop},scale=w='2*trunc({W // 2}*{z})':h='2*trunc({H // 2}*{z})':eval=frame:flags=bicubic,"
                    f"crop={W}:{H}:x='trunc({W // 2}*{z})-{W // 2}':y='trunc({H // 2}*{z})-{H // 2}':exact=1")
        # ss2: 2x size rounded to output pixels -> the centred crop offset is a whole 2x pixel
        return (f"{loop},scale=w='2*round({W}*{z})':h='2*round({H}*{z})':eval=frame:flags=bilinear,"
                f"crop={2 * W}:{2 * H}:x='round({W}*{z})-{W}':y='round({H}*{z})-{H}':exact=1,"
                f"scale={W}:{H}:flags=bilinear")
    # pans: constant zoom 1/(1-s), the window travels across the spare width/height
    forward = motion in ("pan-left", "pan-up")
    horizontal = motion in ("pan-left", "pan-right")
    zf = 1.0 / (1.0 - s)
    if kb == "zoompan":
        qq = f"(on/{n - 1})" if forward else f"(1-on/{n - 1})"
        x = f"(iw-iw/zoom)*{qq}" if horizontal else "(iw-iw/zoom)/2"
        y = "(ih-ih/zoom)/2" if horizontal else f"(ih-ih/zoom)*{qq}"
        return f"zoompan=z={zf:.9f}:x='{x}':y='{y}':d={n}:s={W}x{H}:fps={FPS},settb=1/{FPS},setpts=N"
    q = f"(n/{n - 1})" if forward else f"(1-n/{n - 1})"
    k = 1 if kb == "scale" else 2
    sw, sh = 2 * round(W * zf * k / 2), 2 * round(H * zf * k / 2)
    x = f"({sw - W * k})*{q}" if horizontal else f"{(sw - W * k) // 2}"
    y = f"{(sh - H * k) // 2}" if horizontal else f"({sh - H * k})*{q}"
    chain = (f"scale={sw}:{sh}:flags=bicubic,{loop},"
             f"crop={W * k}:{H * k}:x='{x}':y='{y}':exact=1")
    if k == 2:
        chain += f",scale={W}:{H}:flags=bilinear"
    return chain


def build_argv(ffmpeg: str, stills: list[Path], narrations: list[Path], music: Path, out: str,
               motion: bool, kb: str = "ss2", ass: str = "captions.ass", fonts: str = "fonts") -> list[str]:
    """The baseline command. Run it with cwd = a folder holding `ass` and the `fonts` folder."""
    if kb not in KB_METHODS:
        raise ValueError(f"kb must be one of {KB_METHODS}")
    n = int(round(SCENE_S * FPS))
    step = SCENE_S - XFADE_S
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    g: list[str] = []
    for i in range(SCENES):
        args += ["-i", str(stills[i])]
        g.append(f"[{i}:v]scale={W}:{H}:force_original_aspect_ratio=increase:out_range=tv:out_color_matrix=bt709,"
                 f"crop={W}:{H},setsar=1,format=yuv420p,"
                 f"{_kb_chain(MOTIONS[i] if motion else None, kb, n)},format=yuv420p[v{i}]")
    prev = "[v0]"
    for i in range(1, SCENES):
        g.append(f"{prev}[v{i}]xfade=transition=fade:duration={XFADE_S}:offset={i * step:g}[x{i}]")
        prev = f"[x{i}]"
    g.append(f"{prev}subtitles=filename={ass}:fontsdir={fonts},format=yuv420p[vout]")
    # narration i: 48 kHz stereo, cut at the scene end with a 50 ms fade, placed at the scene start
    base = SCENES
    labels = []
    for i in range(SCENES):
        args += ["-i", str(narrations[i])]
        g.append(f"[{base + i}:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,"
                 f"atrim=0:{SCENE_S:g},afade=t=out:st={SCENE_S - 0.05:g}:d=0.05,asetpts=PTS-STARTPTS,"
                 f"adelay={int(i * step * 1000)}:all=1[n{i}]")
        labels.append(f"[n{i}]")
    g.append("".join(labels) + f"amix=inputs={SCENES}:normalize=0:duration=longest:dropout_transition=0,"
             "asplit=2[narr][key0]")
    g.append(f"[key0]apad=whole_dur={TOTAL_S:g}[key]")
    args += ["-stream_loop", "-1", "-i", str(music)]
    g.append(f"[{2 * SCENES}:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,volume=0.25,"
             f"atrim=0:{TOTAL_S:g},asetpts=PTS-STARTPTS,afade=t=out:st={TOTAL_S - 2:g}:d=2[mus]")
    g.append("[mus][key]sidechaincompress=threshold=0.03:ratio=8:attack=20:release=400[duck]")
    g.append("[narr][duck]amix=inputs=2:normalize=0:duration=longest:dropout_transition=0,"
             "loudnorm=I=-16:TP=-1.5:LRA=11,aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,"
             f"apad=whole_dur={TOTAL_S:g},atrim=0:{TOTAL_S:g}[aout]")
    args += ["-filter_complex", ";".join(g), "-map", "[vout]", "-map", "[aout]",
             "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-r", str(FPS),
             "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
             "-c:a", "aac", "-b:a", "192k", "-ar", "48000", "-ac", "2",
             "-movflags", "+faststart", "-t", f"{TOTAL_S:g}", "-y", out]
    return args


def encode_only_argv(ffmpeg: str, src: str, out: str) -> list[str]:
    """(d) The encode-only bound: decode `src` and re-encode it with the same x264/AAC settings."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", src,
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
            "-c:a", "aac", "-b:a", "192k", "-ar", "48000", "-ac", "2", "-movflags", "+faststart", "-y", out]
