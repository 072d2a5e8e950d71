"""Export spec v1 features, each checked by its EFFECT on a real render (run_export + LocalStorage).

Renders are tiny (720p draft, 1-3 s, colour or generated stills) and media are generated here with
FFmpeg's lavfi sources: test patterns with black bars (motion tracking), tones at distinct
frequencies (narration 1 kHz, music 300 Hz, clip sound 500 Hz) so each source can be measured in the
mix with a Goertzel filter. Pure Python measurement on PyAV-decoded frames and samples (no numpy).
"""
import array
import math
import os
import subprocess
import time
from pathlib import Path

import av
import pysubs2
import pytest

from render_job.job import run_export
from render_job.runner import find_ffmpeg
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from tests.fakes import FakeReporter
from tests.media_factory import top_level_atoms

pytestmark = pytest.mark.slow

IN, OUT = "sceneflow-in", "sceneflow-out"
W, H, FPS = 1280, 720, 30
RATE = 48000


# ------------------------------------------------------------------------------------------ harness


def ffmpeg():
    return find_ffmpeg(os.environ.get("FFMPEG_BINARY") or None)


def ff(*args):
    proc = subprocess.run([ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    bars = ("color=white:s=1280x720,"
            "drawbox=x=308:y=0:w=24:h=ih:color=black:t=fill,drawbox=x=948:y=0:w=24:h=ih:color=black:t=fill,"
            "drawbox=x=0:y=168:w=iw:h=24:color=black:t=fill")
    ff("-f", "lavfi", "-i", bars, "-frames:v", "1", str(d / "bars.png"))
    ff("-f", "lavfi", "-i", bars + ",format=yuv420p", "-t", "2", "-r", "30", "-c:v", "libx264", "-preset", "ultrafast",
       "-qp", "0", str(d / "barsclip.mp4"))
    # a detailed square picture (for contain / blur side bands)
    ff("-f", "lavfi", "-i", "testsrc2=s=720x720", "-frames:v", "1", str(d / "square.png"))
    # narration at a speech-like level (peaks -6 dBFS); lavfi `sine` is fixed at -18 dBFS
    ff("-f", "lavfi", "-i", "aevalsrc=0.5*sin(2*PI*1000*t):s=48000:d=1", str(d / "tone1k.wav"))
    ff("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=1", str(d / "music300.wav"))
    ff("-f", "lavfi", "-i", "testsrc2=s=640x360:r=30:d=2", "-f", "lavfi", "-i",
       "sine=frequency=500:sample_rate=48000:duration=2", "-c:v", "libx264", "-preset", "ultrafast",
       "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(d / "clip500.mp4"))
    ff("-f", "lavfi", "-i", "testsrc2=s=640x360:r=30:d=2", "-c:v", "libx264", "-preset", "ultrafast",
       "-pix_fmt", "yuv420p", str(d / "silentclip.mp4"))
    return {p.name: p.read_bytes() for p in d.iterdir()}


def render(root: Path, job_id: str, spec: dict, assets: dict[str, bytes]) -> dict:
    """run_export one spec; returns result, output, the MP4/poster paths and the sidecar texts."""
    import json
    storage = LocalStorage(root / "store")
    storage.upload_bytes(IN, f"jobs/{job_id}/spec.json", json.dumps(spec).encode(), "application/json")
    for name, data in assets.items():
        storage.upload_bytes(IN, f"jobs/{job_id}/assets/{name}", data, "application/octet-stream")
    work = root / f"work-{job_id}"
    work.mkdir()
    reporter = FakeReporter()
    settings = Settings(input_bucket=IN, output_bucket=OUT, render_max_retries=3,
                        ffmpeg_binary=os.environ.get("FFMPEG_BINARY") or None)
    t = time.monotonic()
    result = run_export(job_id, storage, reporter, settings, str(work), attempt=0)
    print(f"\n{job_id}: run_export {time.monotonic() - t:.1f} s {result.timings}")
    assert result.status == "succeeded", (result.error, reporter.calls[-1])
    out = reporter.calls[-1]["output"]
    base = root / "store" / OUT / f"exports/{job_id}"
    srt = base / "captions.srt"
    return {"result": result, "plan": result.plan, "output": out, "mp4": str(base / out["filename"]), "work": work,
            "poster": str(base / "poster.jpg"), "srt": srt.read_text("utf-8") if srt.exists() else None}


def spec_of(scenes, **over):
    spec = {"version": 1, "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": FPS, "quality": "draft"},
            "scenes": scenes}
    spec.update(over)
    return spec


def transition_scenes(types, duration_s, transition_s):
    """Colour scenes alternating red and blue, scene i leading into i+1 with types[i]."""
    scenes = [{"id": f"c{i}", "visual": {"type": "color", "color": "#e00000" if i % 2 == 0 else "#0000e0"},
               "duration": duration_s} for i in range(len(types) + 1)]
    for scene, kind in zip(scenes, types):
        scene["transition"] = {"type": kind, "duration": transition_s}
    return scenes


# ------------------------------------------------------------------------------------ measurements
def luma_frames(mp4):
    """[(t seconds, Y plane bytes, line size)] of every frame."""
    out = []
    with av.open(mp4) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            p = f.planes[0]
            out.append((float(f.pts * s.time_base), bytes(p), p.line_size))
    return out


def rgb_frame_at(mp4, t):
    """(rgb bytes, width, height, line size) of the first frame at or after `t` seconds."""
    with av.open(mp4) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            if float(f.pts * s.time_base) >= t - 1e-3:
                g = f.reformat(format="rgb24", src_colorspace="ITU709")  # the output is tagged BT.709
                return bytes(g.planes[0]), g.width, g.height, g.planes[0].line_size
    raise AssertionError(f"no frame at {t}")


def region_stats(rgb, ls, x0, y0, x1, y1, step=4):
    """Mean (r, g, b) and mean absolute horizontal luma difference (detail) over a box."""
    n = 0
    sr = sg = sb = 0
    detail = 0.0
    for y in range(y0, y1, step):
        row = y * ls
        prev = None
        for x in range(x0, x1, step):
            i = row + 3 * x
            r, g, b = rgb[i], rgb[i + 1], rgb[i + 2]
            sr, sg, sb, n = sr + r, sg + g, sb + b, n + 1
            lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
            if prev is not None:
                detail += abs(lum - prev)
            prev = lum
    return (sr / n, sg / n, sb / n), detail / n


def _background(buf, ls, x0, x1, y0, y1, column=False):
    """The white level of a box: the median luma of its middle row (or column), mostly background."""
    if column:
        x = (x0 + x1) // 2
        return sorted(buf[y * ls + x] for y in range(y0, y1))[(y1 - y0) // 2]
    y = (y0 + y1) // 2
    return sorted(buf[y * ls + x0: y * ls + x1])[(x1 - x0) // 2]


def centroid_x(buf, ls, x0, x1, y0, y1):
    """Sub-pixel x of the dark mass (a black bar on white) in a box of the Y plane (weights: darkness
    below the box's own white level, so a range conversion of the background biases nothing)."""
    bg = _background(buf, ls, x0, x1, y0, y1) - 2
    num = den = 0.0
    for y in range(y0, y1, 2):
        row = buf[y * ls + x0: y * ls + x1]
        for i, v in enumerate(row):
            d = bg - v
            if d > 0:
                num += d * (x0 + i)
                den += d
    return num / den


def centroid_y(buf, ls, x0, x1, y0, y1):
    bg = _background(buf, ls, x0, x1, y0, y1, column=True) - 2
    num = den = 0.0
    for y in range(y0, y1):
        row = buf[y * ls + x0: y * ls + x1: 2]
        d = sum(max(0, bg - v) for v in row)
        num += d * y
        den += d
    return num / den


def audio_samples(mp4):
    """Mono float samples at 48 kHz of the first audio stream (starting at t = 0)."""
    samples = array.array("f")
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    with av.open(mp4) as c:
        for frame in c.decode(audio=0):
            for f in resampler.resample(frame):
                samples.frombytes(bytes(f.planes[0])[: f.samples * 4])
    return samples


def tone(samples, freq, t0, t1):
    """Amplitude of `freq` Hz (Goertzel) in [t0, t1) seconds."""
    a, b = int(t0 * RATE), int(t1 * RATE)
    k = 2 * math.cos(2 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    for x in samples[a:b]:
        s1, s2 = x + k * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    return 2 * math.sqrt(max(power, 0.0)) / max(1, b - a)


def rms(samples, t0, t1):
    seg = samples[int(t0 * RATE): int(t1 * RATE)]
    return math.sqrt(sum(x * x for x in seg) / max(1, len(seg)))


# ------------------------------------------------------------------------------------------- motion
@pytest.fixture(scope="module")
def motion(tmp_path_factory, media):
    scenes = [{"id": m, "visual": {"type": "image", "src": "bars.png", "motion": m, "motionStrength": 0.15},
               "duration": 2, "transition": {"type": "cut"}} for m in ("zoom-in", "pan-left", "pan-up", "zoom-out")]
    scenes.append({"id": "clip-pan", "visual": {"type": "video", "src": "barsclip.mp4", "motion": "pan-right",
                                                "motionStrength": 0.15}, "duration": 2})
    return render(tmp_path_factory.mktemp("motion"), "job-motion", spec_of(scenes),
                  {"bars.png": media["bars.png"], "barsclip.mp4": media["barsclip.mp4"]})


def _steps(values):
    return [b - a for a, b in zip(values, values[1:])]


def _jitter(values):
    """Largest deviation of a per-frame step from the mean of its neighbours (pixels). Measured on
    this 720p zoom-in (bar distance): `perspective` 0.05 px (draft; 0.25 px at high); our still zoom (whole-pixel window of a
    2x copy) 0.71 px; zoompan 0.66 px and backward steps; zoompan over a 4x upscale 0.25 px. On one
    bar's position at 1080p, 5 s, lossless: perspective 0.14 px, zoompan 4x 0.61 px."""
    d = _steps(values)
    return max(abs(d[i] - (d[i - 1] + d[i + 1]) / 2) for i in range(1, len(d) - 1))


def _zoom_in_bars(mp4):
    frames = [f for f in luma_frames(mp4) if f[0] < 2.0 - 1e-6]
    assert len(frames) == 60
    left = [centroid_x(b, ls, 100, 580, 300, 420) for _, b, ls in frames]
    right = [centroid_x(b, ls, 700, 1180, 300, 420) for _, b, ls in frames]
    dist = [r - lft for lft, r in zip(left, right)]
    # bars 640 px apart grow to 640 / 0.85 = 753 px over the scene
    assert dist[0] == pytest.approx(640, abs=1.5) and dist[-1] == pytest.approx(640 / 0.85, abs=2)
    assert min(_steps(dist)) > 0, f"backward step in a zoom-in: {_steps(dist)}"
    # each bar moves outwards at every frame
    assert max(_steps(left)) < 0 and min(_steps(right)) > 0
    return left, right, dist


def test_zoom_in_is_monotonic_and_sub_pixel_smooth(motion):
    """draft/standard: the whole-pixel window of a 2x copy (render_job.graph.visuals.zoom_filters)."""
    assert (motion["work"] / "zoom0.cmd").is_file()  # the window's per-frame sizes were written
    left, right, dist = _zoom_in_bars(motion["mp4"])
    # never a whole-pixel shake: each step within 3/4 px of its neighbours' mean (zoompan: >= 1 px)
    assert _jitter(dist) < 0.75 and _jitter(left) < 0.75 and _jitter(right) < 0.75, dist


@pytest.fixture(scope="module")
def motion_high(tmp_path_factory, media):
    scenes = [{"id": "zoom", "visual": {"type": "image", "src": "bars.png", "motion": "zoom-in", "motionStrength": 0.15},
               "duration": 2}]
    spec = spec_of(scenes)
    spec["output"]["quality"] = "high"
    return render(tmp_path_factory.mktemp("motion-high"), "job-motion-high", spec, {"bars.png": media["bars.png"]})


def test_zoom_in_at_high_quality_is_exact(motion_high):
    """high: `perspective`, the exact sub-pixel path."""
    assert not (motion_high["work"] / "zoom0.cmd").exists()
    left, right, dist = _zoom_in_bars(motion_high["mp4"])
    # measured: bar distance 0.25 px (x264 medium CRF 18), each bar 0.15 px
    assert _jitter(dist) < 0.35, dist
    assert _jitter(left) < 0.2 and _jitter(right) < 0.2, (left, right)


def test_pans_move_monotonically_and_smoothly(motion):
    frames = luma_frames(motion["mp4"])
    left = [f for f in frames if 2.0 - 1e-6 <= f[0] < 4.0 - 1e-6]
    up = [f for f in frames if 4.0 - 1e-6 <= f[0] < 6.0 - 1e-6]
    xs = [centroid_x(b, ls, 100, 580, 300, 420) for _, b, ls in left]
    ys = [centroid_y(b, ls, 560, 720, 20, 320) for _, b, ls in up]
    # pan-left: the picture moves left by 0.15 * 1280 px of the picture = 192 / 0.85 px on screen
    assert xs[0] - xs[-1] == pytest.approx(0.15 * 1280 / 0.85, abs=3)
    assert max(_steps(xs)) < 0 and _jitter(xs) < 0.2, xs
    assert ys[0] - ys[-1] == pytest.approx(0.15 * 720 / 0.85, abs=3)
    assert max(_steps(ys)) < 0 and _jitter(ys) < 0.2, ys


def test_zoom_out_shrinks_monotonically(motion):
    frames = [f for f in luma_frames(motion["mp4"]) if 6.0 - 1e-6 <= f[0] < 8.0 - 1e-6]
    dist = [centroid_x(b, ls, 700, 1180, 300, 420) - centroid_x(b, ls, 100, 580, 300, 420) for _, b, ls in frames]
    assert dist[0] == pytest.approx(640 / 0.85, abs=2) and dist[-1] == pytest.approx(640, abs=1.5)
    assert max(_steps(dist)) < 0


def test_video_clip_pans_too(motion):
    frames = [f for f in luma_frames(motion["mp4"]) if f[0] >= 8.0 - 1e-6]
    assert len(frames) == 60
    xs = [centroid_x(b, ls, 100, 580, 300, 420) for _, b, ls in frames]
    assert xs[-1] - xs[0] == pytest.approx(0.15 * 1280 / 0.85, abs=3)  # pan-right: the picture moves right
    assert min(_steps(xs)) > 0 and _jitter(xs) < 0.2, xs


# ------------------------------------------------------------- fit, title card, captions, poster
TITLE_BG, TITLE_FG = "#203040", "#ffcc00"
LONG_CUE = ("Second cue, long enough that it has to wrap inside the safe area of the frame "
            "instead of running off its left and right edges")


@pytest.fixture(scope="module")
def visuals(tmp_path_factory, media):
    scenes = [
        {"id": "contain", "visual": {"type": "image", "src": "square.png", "fit": "contain"}, "duration": 1},
        {"id": "blur", "visual": {"type": "image", "src": "square.png", "fit": "blur"}, "duration": 1},
        {"id": "title", "visual": {"type": "title", "text": "Chapter one: the launch", "background": TITLE_BG,
                                   "textColor": TITLE_FG}, "duration": 1},
        {"id": "capt", "visual": {"type": "color", "color": "#000040"}, "duration": 2,
         "caption": {"cues": [{"startS": 0.2, "endS": 0.9, "text": "First cue"},
                              {"startS": 1.0, "endS": 1.8, "text": LONG_CUE}]}},
        {"id": "red", "visual": {"type": "color", "color": "#c00000"}, "duration": 1},
    ]
    spec = spec_of(scenes, captions={"burnIn": True, "sidecar": ["srt", "vtt"],
                                     "style": {"position": "top", "color": "#00ff00", "sizePx": 48}},
                   poster={"timeS": 5.5})
    return render(tmp_path_factory.mktemp("visuals"), "job-visuals", spec, {"square.png": media["square.png"]})


def test_contain_bands_black_and_blur_bands_blurred_not_black(visuals):
    rgb, w, h, ls = rgb_frame_at(visuals["mp4"], 0.5)
    (r, g, b), _ = region_stats(rgb, ls, 10, 40, 270, 680)
    assert max(r, g, b) < 25  # letterbox: black side bands
    (r, g, b), centre_detail = region_stats(rgb, ls, 300, 40, 980, 680)
    rgb, w, h, ls = rgb_frame_at(visuals["mp4"], 1.5)
    (r, g, b), band_detail = region_stats(rgb, ls, 10, 40, 270, 680)
    assert max(r, g, b) > 30  # filled with the (darkened) picture, not black
    _, centre_detail_blur = region_stats(rgb, ls, 300, 40, 980, 680)
    assert band_detail < centre_detail_blur / 4, (band_detail, centre_detail_blur)  # low detail: blurred


def test_title_card_text_colour_centred_on_background(visuals):
    rgb, w, h, ls = rgb_frame_at(visuals["mp4"], 2.5)
    fg = tuple(int(TITLE_FG[i:i + 2], 16) for i in (1, 3, 5))
    bg = tuple(int(TITLE_BG[i:i + 2], 16) for i in (1, 3, 5))

    def count(x0, y0, x1, y1, colour, tol=40):
        n = 0
        for y in range(y0, y1, 2):
            for x in range(x0, x1, 2):
                i = y * ls + 3 * x
                if all(abs(rgb[i + k] - colour[k]) < tol for k in range(3)):
                    n += 1
        return n

    assert count(160, 260, 1120, 460, fg) > 200  # text pixels in the centre band
    assert count(0, 0, 1280, 150, fg) == 0 and count(0, 600, 1280, 720, fg) == 0
    corner, _ = region_stats(rgb, ls, 0, 0, 200, 100)
    assert all(abs(corner[k] - bg[k]) < 12 for k in range(3))


def test_caption_style_position_top_and_colour(visuals):
    rgb, w, h, ls = rgb_frame_at(visuals["mp4"], 3.5)

    def green(y0, y1):
        n = 0
        for y in range(y0, y1, 2):
            for x in range(0, 1280, 2):
                i = y * ls + 3 * x
                if rgb[i + 1] > 180 and rgb[i] < 90 and rgb[i + 2] < 120:
                    n += 1
        return n

    assert green(0, 180) > 100  # caption at the top, in the style's colour
    assert green(240, 720) == 0


def test_long_caption_wraps_inside_the_safe_area(visuals):
    rgb, w, h, ls = rgb_frame_at(visuals["mp4"], visuals["plan"].scenes[3].start + 1.4)
    rows = []
    for y in range(0, 400):
        n = 0
        for x in range(0, 1280, 2):
            i = y * ls + 3 * x
            if rgb[i + 1] > 180 and rgb[i] < 90:
                n += 1
                assert 0.05 * 1280 - 4 <= x <= 0.95 * 1280 + 4, (x, y)  # never outside 90% of the width
        rows.append(n > 0)
    lines = sum(1 for a, b in zip(rows, rows[1:]) if b and not a)
    assert lines >= 2  # wrapped onto several lines


def test_explicit_cues_in_srt_at_scene_relative_times(visuals):
    plan = visuals["plan"]
    start = plan.scenes[3].start
    assert start == pytest.approx(3.0)
    subs = pysubs2.SSAFile.from_string(visuals["srt"], format_="srt")
    assert [(e.start / 1000, e.end / 1000, e.plaintext) for e in subs] == [
        (pytest.approx(start + 0.2, abs=0.002), pytest.approx(start + 0.9, abs=0.002), "First cue"),
        (pytest.approx(start + 1.0, abs=0.002), pytest.approx(start + 1.8, abs=0.002), LONG_CUE)]
    # shown only during their cue: nothing burned in between 0.9 and 1.0 s of the scene
    rgb, w, h, ls = rgb_frame_at(visuals["mp4"], start + 0.95)
    (r, g, b), _ = region_stats(rgb, ls, 0, 0, 1280, 180)
    assert g < 10


def test_poster_is_the_frame_at_time_s(visuals):
    with av.open(visuals["poster"]) as c:
        f = next(c.decode(video=0)).reformat(format="rgb24")
        poster = (bytes(f.planes[0]), f.planes[0].line_size)
    (pr, pg, pb), _ = region_stats(poster[0], poster[1], 0, 0, 1280, 720, step=8)
    rgb, w, h, ls = rgb_frame_at(visuals["mp4"], 5.5)
    (r, g, b), _ = region_stats(rgb, ls, 0, 0, 1280, 720, step=8)
    assert (pr, pg, pb) == pytest.approx((r, g, b), abs=6)
    assert pr > 150 and pg < 30  # the red scene, not a neighbour


# -------------------------------------------------------------------------------------- transitions
XFADES = ["fade", "dissolve", "wipeleft", "slideup", "circleopen", "pixelize", "radial", "diagtl", "fadeblack"]


@pytest.fixture(scope="module")
def transitions(tmp_path_factory):
    return render(tmp_path_factory.mktemp("xfade"), "job-xfade", spec_of(transition_scenes(XFADES, 1, 0.4)), {})


def test_at_least_eight_xfade_types_render_and_blend(transitions):
    plan = transitions["plan"]
    assert [s.transition for s in plan.scenes[:-1]] == XFADES
    assert plan.total_s == pytest.approx(len(plan.scenes) - 0.4 * len(XFADES))
    for i, name in enumerate(XFADES):
        mid = plan.scenes[i + 1].start + 0.2  # middle of transition i
        rgb, w, h, ls = rgb_frame_at(transitions["mp4"], mid - 1 / FPS / 2)
        (r, g, b), _ = region_stats(rgb, ls, 0, 0, 1280, 720, step=8)
        pure_from = (r > 180 and b < 40) if i % 2 == 0 else (b > 180 and r < 40)
        pure_to = (b > 180 and r < 40) if i % 2 == 0 else (r > 180 and b < 40)
        assert not pure_from and not pure_to, (name, (r, g, b))  # mid-transition: neither scene alone
        after = plan.scenes[i + 1].start + 0.5
        rgb, w, h, ls = rgb_frame_at(transitions["mp4"], after)
        (r, g, b), _ = region_stats(rgb, ls, 0, 0, 1280, 720, step=8)
        assert ((b > 180 and r < 40) if i % 2 == 0 else (r > 180 and b < 40)), (name, (r, g, b))


# ------------------------------------------------------------------------------------------ presets
@pytest.mark.parametrize("aspect,fps,size", [("9:16", 60, (720, 1280)), ("1:1", 24, (720, 720))])
def test_output_presets_size_and_rate(tmp_path, aspect, fps, size):
    spec = spec_of([{"id": "a", "visual": {"type": "color", "color": "#336699"}, "duration": 0.5}])
    spec["output"].update({"aspectRatio": aspect, "fps": fps})
    r = render(tmp_path, f"job-preset-{fps}", spec, {})
    with av.open(r["mp4"]) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == size
        assert v.average_rate == fps
        assert sum(1 for _ in c.decode(video=0)) == round(0.5 * fps)
    assert (r["output"]["width"], r["output"]["height"]) == size


# -------------------------------------------------------------------------------------------- audio
NARR_OFFSET = 1.5


def audio_spec(music, **over):
    scenes = [{"id": "a", "visual": {"type": "color", "color": "#101010"}, "duration": 3.5,
               "narration": {"src": "tone1k.wav", "offsetS": NARR_OFFSET, "volume": 0.8}}]
    return spec_of(scenes, music={"src": "music300.wav", **music}, **over)


@pytest.fixture(scope="module")
def audio_renders(tmp_path_factory, media):
    root = tmp_path_factory.mktemp("audio")
    assets = {"tone1k.wav": media["tone1k.wav"], "music300.wav": media["music300.wav"]}
    runs = {
        "ducked": audio_spec({"volume": 0.2, "loop": True, "ducking": True, "fadeInS": 0, "fadeOutS": 0}),
        "loud": audio_spec({"volume": 0.8, "loop": True, "ducking": False, "fadeInS": 0, "fadeOutS": 0}),
        "faded": audio_spec({"volume": 0.2, "loop": True, "ducking": False, "fadeInS": 1, "fadeOutS": 1},
                            audio={"loudnessLufs": -20, "truePeakDb": -2}),
    }
    out = {}
    for name, spec in runs.items():
        r = render(root, f"job-audio-{name}", spec, assets)
        r["samples"] = audio_samples(r["mp4"])
        out[name] = r
    return out


def test_narration_offset_onset(audio_renders):
    s = audio_renders["loud"]["samples"]
    steady = tone(s, 1000, 1.8, 2.2)
    assert tone(s, 1000, 0.2, 1.4) < steady / 30
    onset = next(t / 1000 for t in range(1300, 1800, 5) if tone(s, 1000, t / 1000, t / 1000 + 0.01) > steady / 2)
    assert onset == pytest.approx(NARR_OFFSET, abs=0.05)


def test_music_loops_and_volume_scales_the_bed(audio_renders):
    loud, faded = audio_renders["loud"]["samples"], audio_renders["faded"]["samples"]
    assert tone(loud, 300, 1.1, 1.4) > 0.01 and tone(loud, 300, 2.6, 3.4) > 0.01  # 1 s file, looped
    # music / narration ratio under the narration: volume 0.8 vs 0.2 (both unducked) -> 4x
    r_loud = tone(loud, 300, 1.7, 2.4) / tone(loud, 1000, 1.7, 2.4)
    r_soft = tone(faded, 300, 1.7, 2.4) / tone(faded, 1000, 1.7, 2.4)
    assert r_loud / r_soft == pytest.approx(4.0, rel=0.25)


def test_ducking_lowers_music_under_narration(audio_renders):
    ducked, plain = audio_renders["ducked"]["samples"], audio_renders["loud"]["samples"]
    duck_ratio = tone(ducked, 300, 1.8, 2.4) / tone(ducked, 300, 0.3, 1.4)
    plain_ratio = tone(plain, 300, 1.8, 2.4) / tone(plain, 300, 0.3, 1.4)
    assert duck_ratio < 0.5 * plain_ratio, (duck_ratio, plain_ratio)


def test_music_fades_in_and_out(audio_renders):
    s = audio_renders["faded"]["samples"]
    total = audio_renders["faded"]["plan"].total_s
    middle = rms(s, 1.1, 1.4)
    assert rms(s, 0.0, 0.1) < middle / 5
    assert rms(s, total - 0.1, total) < middle / 5


def test_loudness_measured_reported_and_on_target(audio_renders):
    for name, target in (("loud", -16), ("ducked", -16), ("faded", -20)):
        out = audio_renders[name]["output"]
        loud = out["loudness"]
        assert set(loud) == {"integratedLufs", "truePeakDb", "lra"}
        assert loud["integratedLufs"] == pytest.approx(target, abs=1.0), (name, loud)
        assert loud["truePeakDb"] <= (-1.5 if target == -16 else -2.0) + 0.5, (name, loud)


def test_clip_audio_volume_and_clip_without_audio(tmp_path, media):
    scenes = [{"id": "on", "visual": {"type": "video", "src": "clip500.mp4", "volume": 1.0}},
              {"id": "off", "visual": {"type": "video", "src": "clip500.mp4"}},
              {"id": "none", "visual": {"type": "video", "src": "silentclip.mp4", "volume": 1.0}}]
    r = render(tmp_path, "job-clip-audio", spec_of(scenes, music={"src": "music300.wav", "loop": False,
                                                                "ducking": False, "fadeOutS": 0}),
               {k: media[k] for k in ("clip500.mp4", "silentclip.mp4", "music300.wav")})
    s = audio_samples(r["mp4"])
    assert r["plan"].total_s == pytest.approx(6.0)
    assert tone(s, 500, 0.2, 1.8) > 0.02  # the clip's own sound at volume 1
    assert tone(s, 500, 2.2, 3.8) < tone(s, 500, 0.2, 1.8) / 100  # volume 0 (default): muted
    assert tone(s, 300, 0.2, 0.8) > 0.005  # music plays ...
    assert rms(s, 4.2, 5.8) < 1e-3  # ... once (loop false); the clip without audio adds silence


# ----------------------------------------------------------------------------------------- fidelity
@pytest.mark.parametrize("fixture", ["motion", "visuals", "transitions", "audio_renders"])
def test_fidelity_durations_sync_colour_tags_faststart(request, fixture):
    """Duration within one frame of the plan; audio within one frame of the video (plus one AAC frame
    of 21.3 ms: AAC durations come in 1024-sample steps); yuv420p, limited range, BT.709 tags; moov first."""
    renders = request.getfixturevalue(fixture)
    for r in (renders.values() if fixture == "audio_renders" else [renders]):
        plan = r["plan"]
        frame = 1 / plan.fps
        with av.open(r["mp4"]) as c:
            v, a = c.streams.video[0], c.streams.audio[0]
            v_s = float(v.duration * v.time_base)
            a_s = float(a.duration * a.time_base)
            assert v_s == pytest.approx(plan.total_s, abs=frame + 1e-6)
            assert sum(1 for _ in c.decode(video=0)) == round(plan.total_s * plan.fps)
            assert abs(a_s - v_s) <= frame + 1024 / RATE, (a_s, v_s)
            cc = v.codec_context
            assert cc.pix_fmt == "yuv420p"
            assert int(cc.color_range) == 1 and int(cc.colorspace) == 1
            assert int(cc.color_primaries) == 1 and int(cc.color_trc) == 1
        atoms = top_level_atoms(r["mp4"])
        assert atoms.index("moov") < atoms.index("mdat")
