"""The benchmark storyboard and its media, generated deterministically at bench time.

12 scenes x 5 s of 1920x1080 stills with Ken Burns motion, 11 crossfades of 0.5 s (total 54.5 s),
one narration per scene (the six sample narrations of examples/storyboard/, used twice), the sample
music looped, ducked and faded, captions burned in, loudness target -16 LUFS, 1080p30 `standard`.

Stills: six FFmpeg lavfi pictures (two mandelbrots, testsrc2, gradients, cellauto, smptehdbars)
and six of the sample photos scaled to cover 1920x1080 with a fixed film grain, alternately PNG and
JPEG. Each still carries a MARKER (a 48x48 white square inside a 200x200 black one, centred at
MARKER_XY) that smoothness.py tracks to measure the Ken Burns motion.

`visual.motion` / `visual.motionStrength` may not exist in shared.spec yet: `bench_spec()` validates
the spec with shared.spec.parse_spec and, if those fields are rejected, drops them (motion "none")
and says so; every renderer of the benchmark then renders without motion so that the comparison
stays like for like.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "examples" / "storyboard"

W, H, FPS = 1920, 1080, 30
SCENES = 12
SCENE_S = 5.0
XFADE_S = 0.5
TOTAL_S = SCENES * SCENE_S - (SCENES - 1) * XFADE_S  # 54.5
MOTION_STRENGTH = 0.15
MOTIONS = ["zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down"] * 2
MARKER_XY = (480, 270)  # centre of the tracking marker in every still (pixels)
NARRATIONS = ["n1.wav", "n2.mp3", "n3.wav", "n4.mp3", "n5.wav", "n6.wav"]
MUSIC = "music.ogg"
CAPTIONS = [
    "In 1995, Eileen Collins became the first woman to pilot the space shuttle.",
    "Every launch begins long before ignition: months of checks, rehearsals, and 100% focus.",
    "Far beyond our atmosphere, the deep field shows thousands of galaxies.",
    "Back on Earth, the crew's day starts the way many of ours do: with coffee.",
    "Mission control keeps a cat, of course.",
    "The camera sees what we choose to remember.",
    "Telemetry arrives at 2,048 samples per second \u2014 {raw} and unfiltered.",
    "\u201cGo for launch,\u201d said the flight director. The room went quiet.",
    "Stage separation: T+2:41. Main engine cut-off: T+8:30.",
    "Le d\u00e9collage est pr\u00e9vu \u00e0 l'aube; \u00fcber 40 Nationen schauen zu.",
    "Re-entry heats the shield to 1,650 \u00b0C; the crew feels 4 g.",
    "Splashdown. Welcome home.",
]

# (kind, lavfi source or sample photo, output extension)
_STILLS: list[tuple[str, str, str]] = [
    ("lavfi", f"mandelbrot=s={W}x{H}:end_scale=0.3:start_x=-0.743643887037151:start_y=0.131825904205330", "png"),
    ("photo", "astronaut.png", "jpg"),
    ("lavfi", f"testsrc2=s={W}x{H}", "png"),
    ("photo", "rocket.jpg", "jpg"),
    ("lavfi", f"gradients=s={W}x{H}:n=5:c0=0x1d3557:c1=0xe63946:c2=0xf1faee:c3=0xa8dadc:c4=0x457b9d:seed=7", "png"),
    ("photo", "hubble_deep_field.jpg", "jpg"),
    ("lavfi", f"cellauto=s={W}x{H}:rule=110:seed=3,negate", "png"),
    ("photo", "coffee.png", "jpg"),
    ("lavfi", f"smptehdbars=s={W}x{H}", "png"),
    ("photo", "chelsea.png", "jpg"),
    ("lavfi", f"mandelbrot=s={W}x{H}:start_x=-0.088:start_y=0.654:start_scale=0.02:end_scale=0.02:inner=period", "png"),
    ("photo", "camera.png", "jpg"),
]


def _marker() -> str:
    mx, my = MARKER_XY
    return (f"drawbox=x={mx - 100}:y={my - 100}:w=200:h=200:color=black:t=fill,"
            f"drawbox=x={mx - 24}:y={my - 24}:w=48:h=48:color=white:t=fill")


def make_stills(ffmpeg: str, out_dir: Path) -> list[Path]:
    """Generate the 12 stills (1920x1080) into out_dir, reusing files already there."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (kind, source, ext) in enumerate(_STILLS):
        path = out_dir / f"still{i + 1:02d}.{ext}"
        paths.append(path)
        if path.exists() and path.stat().st_size > 0:
            continue
        if kind == "lavfi":
            # cellauto needs a few generations to look like anything: take a later frame
            skip = "select=gte(n\\,40)," if source.startswith("cellauto") else ""
            inp = ["-f", "lavfi", "-i", source]
            vf = f"{skip}format=rgb24,{_marker()}"
        else:
            inp = ["-i", str(SAMPLES / source)]
            vf = (f"scale={W}:{H}:force_original_aspect_ratio=increase:flags=lanczos,crop={W}:{H},"
                  f"format=yuv444p,noise=alls=6:allf=0,format=rgb24,{_marker()}")
        quality = ["-q:v", "2"] if ext == "jpg" else []
        subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", *inp, "-vf", vf,
                        "-frames:v", "1", *quality, "-y", str(path)], check=True)
    return paths


@dataclass
class Storyboard:
    spec: dict                 # the export spec (as sent to export_start)
    files: list[Path]          # every asset, in first-use order (names are unique)
    motion: bool               # whether Ken Burns motion is rendered (the spec accepted it)
    motion_note: str           # why not, when not


def build_spec(stills: list[Path], motion: bool = True) -> dict:
    scenes = []
    for i in range(SCENES):
        visual: dict = {"type": "image", "src": stills[i].name, "fit": "cover"}
        if motion:
            visual["motion"] = MOTIONS[i]
            visual["motionStrength"] = MOTION_STRENGTH
        scene = {"id": f"s{i + 1:02d}", "visual": visual,
                 "narration": {"src": NARRATIONS[i % len(NARRATIONS)]},
                 "caption": {"text": CAPTIONS[i]}, "duration": SCENE_S}
        if i < SCENES - 1:
            scene["transition"] = {"type": "fade", "duration": XFADE_S}
        scenes.append(scene)
    return {"version": 1, "title": "SceneFlow benchmark",
            "output": {"resolution": "1080p", "aspectRatio": "16:9", "fps": FPS, "quality": "standard"},
            "scenes": scenes,
            "music": {"src": MUSIC, "volume": 0.25, "loop": True, "ducking": True, "fadeOutS": 2},
            "captions": {"burnIn": True, "sidecar": ["srt", "vtt"]},
            "audio": {"loudnessLufs": -16, "truePeakDb": -1.5},
            "poster": {"scene": 0}}


def bench_storyboard(ffmpeg: str, media_dir: Path, want_motion: bool = True) -> Storyboard:
    """The benchmark storyboard, validated by shared.spec (motion dropped if the spec rejects it)."""
    from shared.errors import InvalidRequest
    from shared.spec import parse_spec

    stills = make_stills(ffmpeg, media_dir)
    files = list(stills) + [SAMPLES / n for n in NARRATIONS] + [SAMPLES / MUSIC]
    spec = build_spec(stills, motion=want_motion)
    note = "" if want_motion else "disabled with --no-motion"
    motion = want_motion
    if want_motion:
        try:
            parse_spec(spec)
        except InvalidRequest as exc:
            paths = [d.get("path", "") for d in (exc.details or [])]
            if paths and all("motion" in p.lower() for p in paths):
                note = ("shared.spec rejects visual.motion/motionStrength (Ken Burns not implemented yet): "
                        "every renderer runs with motion 'none'")
                spec = build_spec(stills, motion=False)
                motion = False
            else:
                raise
    parse_spec(spec)  # anything else wrong is a bug of the benchmark: raise
    return Storyboard(spec=spec, files=files, motion=motion, motion_note=note)


def motion_window(i: int) -> tuple[float, float]:
    """[start, end) seconds of scene i that no transition overlaps."""
    start = i * (SCENE_S - XFADE_S)
    lo = start + (XFADE_S if i > 0 else 0.0)
    hi = start + SCENE_S - (XFADE_S if i < SCENES - 1 else 0.0)
    return lo, hi
