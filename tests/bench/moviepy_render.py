"""(e) MoviePy 2 rendering the benchmark storyboard, written the way its documentation suggests.

    FFMPEG_BINARY=/usr/bin/ffmpeg python tests/bench/moviepy_render.py MEDIA_DIR OUT_MP4 MOTION(0|1) FONT_TTF

Equivalent in spirit, with these differences (MoviePy has no equivalent):
- Ken Burns (same motion as ours): zooms are `resized(lambda t: zoom)` composited centred (MoviePy resizes with Pillow to
  whole pixels and pastes at whole pixels: the known shake); pans are a `resized(1+s)` image moved
  by `with_position(lambda t: ...)` (whole pixels).
- Crossfades: CrossFadeIn(0.5) on each scene after the first, scenes overlapping by 0.5 s.
- Captions: TextClip (method "caption", DejaVu Sans 60 px, white, black stroke) at the bottom centre.
- Ducking: the music is multiplied by 0.3 while each narration plays (no compressor, no attack or
  release); no loudness normalisation (MoviePy has none); narration cut at the scene end with a
  50 ms fade, as ours.
- Encoding: libx264 preset veryfast, CRF 23 (ffmpeg_params), yuv420p, 30 fps, AAC 192k 48 kHz,
  +faststart; MoviePy writes the audio to a temporary file first, then muxes it.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from storyboard import (CAPTIONS, FPS, H, MOTION_STRENGTH, MOTIONS, NARRATIONS, MUSIC, SAMPLES,  # noqa: E402
                        SCENE_S, SCENES, TOTAL_S, W, XFADE_S)

DUCK_GAIN = 0.3


def scene_clip(path: str, motion: str | None):
    from moviepy import CompositeVideoClip, ImageClip

    s = MOTION_STRENGTH
    base = ImageClip(path).with_duration(SCENE_S)
    if not motion or motion == "none":
        return base
    # the same motion as ours: zoom (1-s)^-p (constant perceived speed); pans at zoom 1/(1-s)
    if motion in ("zoom-in", "zoom-out"):
        if motion == "zoom-in":
            def zoom(t):
                return (1 - s) ** -(t / SCENE_S)
        else:
            def zoom(t):
                return (1 - s) ** -(1 - t / SCENE_S)
        moving = base.resized(zoom).with_position(("center", "center"))
    else:
        big = base.resized(1 / (1 - s))
        bw, bh = big.size
        fwd = motion in ("pan-left", "pan-up")

        def q(t):
            return t / SCENE_S if fwd else 1 - t / SCENE_S

        if motion in ("pan-left", "pan-right"):
            moving = big.with_position(lambda t: (-(bw - W) * q(t), -(bh - H) / 2))
        else:
            moving = big.with_position(lambda t: (-(bw - W) / 2, -(bh - H) * q(t)))
    return CompositeVideoClip([moving], size=(W, H)).with_duration(SCENE_S)


def main(argv: list[str]) -> int:
    from moviepy import AudioFileClip, CompositeAudioClip, CompositeVideoClip, TextClip, afx, vfx

    media, out, motion, font = Path(argv[0]), argv[1], argv[2] == "1", argv[3]
    stills = sorted(p for p in media.iterdir() if p.name.startswith("still"))
    step = SCENE_S - XFADE_S
    layers = []
    narrations = []
    windows = []
    for i in range(SCENES):
        clip = scene_clip(str(stills[i]), MOTIONS[i] if motion else None).with_start(i * step)
        if i > 0:
            clip = clip.with_effects([vfx.CrossFadeIn(XFADE_S)])
        layers.append(clip)
    for i in range(SCENES):
        start = i * step
        end = TOTAL_S if i == SCENES - 1 else (i + 1) * step
        text = (TextClip(font=font, text=CAPTIONS[i], font_size=round(H / 18), color="white",
                         stroke_color="black", stroke_width=3, method="caption", size=(round(W * 0.9), None),
                         text_align="center")
                .with_start(start).with_duration(end - start))
        layers.append(text.with_position(("center", H - round(H * 0.06) - text.h)))
        a = AudioFileClip(str(SAMPLES / NARRATIONS[i % len(NARRATIONS)]))
        length = min(a.duration, SCENE_S)
        a = a.subclipped(0, length).with_effects([afx.AudioFadeOut(0.05)]).with_start(start)
        narrations.append(a)
        windows.append((start, start + length))
    music = AudioFileClip(str(SAMPLES / MUSIC)).with_effects(
        [afx.AudioLoop(duration=TOTAL_S), afx.MultiplyVolume(0.25)]
        + [afx.MultiplyVolume(DUCK_GAIN, start_time=a, end_time=b) for a, b in windows]
        + [afx.AudioFadeOut(2.0)])
    audio = CompositeAudioClip([music, *narrations]).with_duration(TOTAL_S)
    video = CompositeVideoClip(layers, size=(W, H)).with_duration(TOTAL_S).with_audio(audio)
    video.write_videofile(out, fps=FPS, codec="libx264", preset="veryfast", audio_codec="aac",
                          audio_bitrate="192k", audio_fps=48000, pixel_format="yuv420p",
                          temp_audiofile_path=str(Path(out).parent),
                          ffmpeg_params=["-crf", "23", "-movflags", "+faststart", "-colorspace", "bt709",
                                         "-color_primaries", "bt709", "-color_trc", "bt709",
                                         "-color_range", "tv"],
                          logger=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
