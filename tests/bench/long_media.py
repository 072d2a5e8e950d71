"""Media and storyboards of `make bench-long` (tests/bench/bench_long.py), generated once and cached.

`long_story(ffmpeg, media_dir, scenes, scene_s)` returns (spec, files): `scenes` scenes of `scene_s`
seconds joined by cuts (so the output lasts exactly scenes x scene_s), each with its own still, its
own narration and a caption, the sample music looped under all of it, 1080p30 `standard`, captions
burned in and as sidecars, loudness target -16 LUFS / -1.5 dBTP; Ken Burns motion (zoom-in,
zoom-out, pan-left, pan-right in turn) unless motion=False.

Every file is made by FFmpeg into `media_dir` and reused when it is already there:
- stills `still-NNN.jpg`: 1920x1080 JPEGs (q 3) that cost the encoder what photos do: in turn
  coloured Perlin clouds, a Mandelbrot close-up, a sample photo of examples/storyboard zoomed,
  cropped and tinted, a cellular automaton and a game of life (drawn small, scaled up, blurred,
  coloured by a gradient), each seeded by its index (every random source: the same files from any
  clone) and covered with film grain: no two alike;
- narrations `narr-<scene_s>s-NNN.mp3`: slices of the six sample narrations played one after the
  other, at an offset, length (55-90 % of the scene) and gain (-6..+2 dB) that depend on the index,
  with 50 ms fades (MP3 128 kb/s mono, as a text-to-speech service delivers them);
- the music is examples/storyboard/music.ogg (40 s; Music.loop repeats it under the whole video).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "examples" / "storyboard"
W, H, FPS = 1920, 1080, 30
PHOTOS = ("astronaut.png", "rocket.jpg", "hubble_deep_field.jpg", "coffee.png", "chelsea.png", "camera.png")
NARRATIONS = ("n1.wav", "n2.mp3", "n3.wav", "n4.mp3", "n5.wav", "n6.wav")
MUSIC = SAMPLES / "music.ogg"
MOTIONS = ("zoom-in", "zoom-out", "pan-left", "pan-right")
GRAIN = "noise=alls=8:allf=0:all_seed={seed}"  # seeded: FFmpeg picks a random seed otherwise
CAPTIONS = (
    "Every launch begins long before ignition: months of checks, rehearsals, and 100% focus.",
    "Far beyond our atmosphere, the deep field shows thousands of galaxies.",
    "Back on Earth, the crew's day starts the way many of ours do: with coffee.",
    "Telemetry arrives at 2,048 samples per second \u2014 raw and unfiltered.",
    "\u201cGo for launch,\u201d said the flight director. The room went quiet.",
    "Stage separation: T+2:41. Main engine cut-off: T+8:30.",
    "Le d\u00e9collage est pr\u00e9vu \u00e0 l'aube; \u00fcber 40 Nationen schauen zu.",
    "Re-entry heats the shield to 1,650 \u00b0C; the crew feels 4 g.",
)


def _run(ffmpeg: str, args: list[str]) -> None:
    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", *args], check=True)


def _frac(i: int, k: float) -> float:
    """A number in [0, 1) that jumps about with i (golden-ratio steps): varies each file's settings."""
    return (i * k * 0.6180339887) % 1.0


def _colors(i: int, n: int) -> str:
    """gradients' c0..c{n-1} options for still i: its default colours are "random" (unseeded)."""
    return "".join(f":c{k}=0x" + "".join(f"{int(256 * _frac(8 * i + k, p)):02x}" for p in (47, 53, 59))
                   for k in range(n))


def still_args(i: int) -> list[str]:
    """FFmpeg arguments (inputs and filters, not the output) that draw still number i."""
    kind, seed = i % 5, 1000 + i
    hue = f"hue=h={int(_frac(i, 7) * 360)}"
    grain = GRAIN.format(seed=seed)
    if kind == 0:  # coloured Perlin clouds
        return ["-filter_complex",
                f"gradients=s={W}x{H}:n={3 + i % 4}{_colors(i, 3 + i % 4)}:seed={seed}:type={('linear', 'radial', 'circular')[i % 3]},"
                f"format=rgb24[g];perlin=s={W}x{H}:random_mode=seed:octaves=8:persistence=0.6:seed={seed}:"
                f"xscale={0.1 + 0.3 * _frac(i, 3):.3f}:yscale={0.1 + 0.3 * _frac(i, 5):.3f},normalize,format=rgb24[p];"
                f"[g][p]blend=all_mode=overlay,{grain}"]
    if kind == 1:  # Mandelbrot close-up near one of a few edge points
        x, y = ((-0.7436, 0.1318), (-0.1011, 0.9563), (-1.2500, 0.0200), (0.2850, 0.0100))[(i // 5) % 4]
        x, y = x + 0.004 * (_frac(i, 11) - 0.5), y + 0.004 * (_frac(i, 13) - 0.5)
        scale = 0.005 + 0.05 * _frac(i, 17)
        return ["-f", "lavfi", "-i", f"mandelbrot=s={W}x{H}:maxiter=400:start_x={x:.6f}:start_y={y:.6f}:"
                                     f"start_scale={scale:.4f}:end_scale={scale:.4f}",
                "-vf", f"{hue},{grain}"]
    if kind == 2:  # a sample photo, zoomed in, cropped somewhere and tinted
        zoom = 1.0 + 0.6 * _frac(i, 19)
        cw, ch = int(W * zoom) // 2 * 2, int(H * zoom) // 2 * 2
        return ["-i", str(SAMPLES / PHOTOS[(i // 5) % len(PHOTOS)]),
                "-vf", f"scale={cw}:{ch}:force_original_aspect_ratio=increase:flags=lanczos,"
                       f"crop={W}:{H}:(iw-{W})*{_frac(i, 23):.3f}:(ih-{H})*{_frac(i, 29):.3f},"
                       f"{hue},eq=brightness={0.08 * _frac(i, 31) - 0.04:.3f},format=yuv444p,{grain}"]
    # cellular automaton or game of life drawn small, scaled up, softened and coloured by a gradient
    small = f"s={W // 8}x{H // 8}:seed={seed}"
    pattern = (f"cellauto={small}:rule={(30, 45, 73, 89, 105, 110, 150, 169)[i % 8]}:random_fill_ratio=0.5:full=1"
               if kind == 3 else f"life={small}:ratio=0.3:mold=20,select=gte(n\\,{20 + i % 30})")
    return ["-filter_complex",
            f"{pattern},scale={W}:{H}:flags=bicubic,gblur=sigma={2 + 4 * _frac(i, 37):.1f},format=rgb24[c];"
            f"gradients=s={W}x{H}:n=4{_colors(i, 4)}:seed={seed},format=rgb24[g];[g][c]blend=all_mode=softlight,{grain}"]


def make_still(ffmpeg: str, path: Path, i: int) -> Path:
    if not (path.exists() and path.stat().st_size):
        _run(ffmpeg, [*still_args(i), "-frames:v", "1", "-q:v", "3", "-y", str(path)])
    return path


def narration_pool(ffmpeg: str, media_dir: Path) -> tuple[Path, float]:
    """The six sample narrations one after the other (48 kHz mono WAV); (path, seconds)."""
    path = media_dir / "narration-pool.wav"
    if not (path.exists() and path.stat().st_size):
        ins = [a for n in NARRATIONS for a in ("-i", str(SAMPLES / n))]
        chain = "".join(f"[{k}:a]aresample=48000,aformat=channel_layouts=mono[a{k}];" for k in range(len(NARRATIONS)))
        _run(ffmpeg, [*ins, "-filter_complex",
                      chain + "".join(f"[a{k}]" for k in range(len(NARRATIONS))) + f"concat=n={len(NARRATIONS)}:v=0:a=1",
                      "-c:a", "pcm_s16le", "-y", str(path)])
    return path, path.stat().st_size / 2 / 48000  # 16-bit mono after a 44-byte header: near enough


def make_narration(ffmpeg: str, path: Path, pool: tuple[Path, float], i: int, scene_s: float) -> Path:
    """Narration i for a scene of scene_s seconds: 55-90 % of it, from its own offset and gain."""
    if not (path.exists() and path.stat().st_size):
        pool_path, pool_s = pool
        length = min(scene_s * (0.55 + 0.35 * _frac(i, 37)), pool_s - 0.5)
        start = (pool_s - length) * _frac(i, 41)
        gain = -6 + 8 * _frac(i, 43)
        _run(ffmpeg, ["-ss", f"{start:.3f}", "-t", f"{length:.3f}", "-i", str(pool_path),
                      "-af", f"volume={gain:.1f}dB,afade=t=in:d=0.05,afade=t=out:st={length - 0.05:.3f}:d=0.05",
                      "-c:a", "libmp3lame", "-b:a", "128k", "-ac", "1", "-y", str(path)])
    return path


def long_story(ffmpeg: str, media_dir: Path, scenes: int, scene_s: float, motion: bool = True,
               title: str = "Long story") -> tuple[dict, list[Path]]:
    """(export spec v1, every asset file in first-use order) of the storyboard described above."""
    media_dir.mkdir(parents=True, exist_ok=True)
    pool = narration_pool(ffmpeg, media_dir)
    files: list[Path] = []
    spec_scenes = []
    for i in range(scenes):
        still = make_still(ffmpeg, media_dir / f"still-{i:03d}.jpg", i)
        narr = make_narration(ffmpeg, media_dir / f"narr-{scene_s:g}s-{i:03d}.mp3", pool, i, scene_s)
        files += [still, narr]
        visual: dict = {"type": "image", "src": still.name, "fit": "cover"}
        if motion:
            visual["motion"] = MOTIONS[i % len(MOTIONS)]
        spec_scenes.append({"id": f"s{i + 1:03d}", "visual": visual, "narration": {"src": narr.name},
                            "caption": {"text": f"{i + 1}. {CAPTIONS[i % len(CAPTIONS)]}"}, "duration": scene_s})
    files.append(MUSIC)
    spec = {"version": 1, "title": title,
            "output": {"resolution": "1080p", "aspectRatio": "16:9", "fps": FPS, "quality": "standard"},
            "scenes": spec_scenes,
            "music": {"src": MUSIC.name, "volume": 0.25, "loop": True, "ducking": True, "fadeOutS": 2},
            "captions": {"burnIn": True, "sidecar": ["srt", "vtt"]},
            "audio": {"loudnessLufs": -16, "truePeakDb": -1.5}}
    return spec, files
