"""A storyboard of more scenes than RENDER_SEGMENT_SCENES renders in segments (bounded memory) and
comes out frame for frame and sample for sample the same as the single-graph render; a failing or
hanging segment fails the render with its reason (real FFmpeg, run_export + LocalStorage)."""
import array
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from render_job.job import run_export
from render_job.runner import SegmentFeed, find_ffmpeg, run_ffmpeg
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from shared.errors import PermanentRenderError, TransientError
from tests import media_factory as mf
from tests.fakes import FakeReporter

IN, OUT = "sceneflow-in", "sceneflow-out"
FPS = 30
RATE = 48000
LOUDNORM_WINDOW_S = 3.2  # loudnorm's 3 s look-ahead, plus an AAC frame or two


def ffmpeg():
    return find_ffmpeg(os.environ.get("FFMPEG_BINARY") or None)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("segmedia")
    mf.ff("-f", "lavfi", "-i", "testsrc2=s=1280x720", "-frames:v", "1", str(d / "still.png"))
    mf.ff("-f", "lavfi", "-i", "testsrc2=s=720x720", "-frames:v", "1", str(d / "square.png"))
    mf.clip(d / "clip.mp4", seconds=2.0, size="640x360", rate=30, audio=True)
    mf.tone(d / "voice.wav", 1.2, rate=48000, freq=1000)
    mf.tone(d / "music.wav", 3.0, rate=48000, freq=300)
    return {p.name: p.read_bytes() for p in d.iterdir()}


def storyboard():
    """7 scenes; at 2 scenes per segment the segments meet after a cut (scene 2), inside a fade
    (scene 4) and inside a dissolve (scene 6): every way a segment can start."""
    img = lambda src, motion, fit="cover": {"type": "image", "src": src, "motion": motion, "fit": fit}  # noqa: E731
    scenes = [
        {"visual": img("still.png", "zoom-in"), "narration": {"src": "voice.wav"},
         "caption": {"text": "One: it's 100% {braced}"}, "transition": {"type": "fade", "duration": 0.4}},
        {"visual": img("still.png", "pan-left"), "caption": {"text": "Two"}, "transition": {"type": "cut"}},
        {"visual": {"type": "title", "text": "Part two"}, "transition": {"type": "wipeleft", "duration": 0.3}},
        {"visual": {"type": "video", "src": "clip.mp4", "volume": 0.8, "fit": "blur"},
         "transition": {"type": "fade", "duration": 0.3}},
        {"visual": {"type": "color", "color": "#203040"}, "narration": {"src": "voice.wav"},
         "transition": {"type": "circleopen", "duration": 0.4}},
        {"visual": img("square.png", "zoom-out", "contain"), "caption": {"text": "Six"},
         "transition": {"type": "dissolve", "duration": 0.3}},
        {"visual": img("still.png", "pan-up")},
    ]
    for i, sc in enumerate(scenes):
        sc["id"] = f"s{i}"
        sc["duration"] = 1.0 + 0.25 * (i % 3)
    return {"version": 1, "title": "Segments",
            "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": FPS, "quality": "draft"},
            "scenes": scenes, "music": {"src": "music.wav", "volume": 0.3, "loop": True, "ducking": True},
            "captions": {"burnIn": True, "sidecar": ["srt"]}}


def render(root: Path, media, segment_scenes: int) -> tuple[object, Path]:
    storage = LocalStorage(root / "store")
    job_id = f"job-seg-{segment_scenes}"
    storage.upload_bytes(IN, f"jobs/{job_id}/spec.json", json.dumps(storyboard()).encode(), "application/json")
    for name, data in media.items():
        storage.upload_bytes(IN, f"jobs/{job_id}/assets/{name}", data, "application/octet-stream")
    work = root / f"work-{segment_scenes}"
    work.mkdir()
    settings = Settings(input_bucket=IN, output_bucket=OUT, render_max_retries=0,
                        ffmpeg_binary=os.environ.get("FFMPEG_BINARY") or None, render_segment_scenes=segment_scenes)
    result = run_export(job_id, storage, FakeReporter(), settings, str(work), attempt=0)
    assert result.status == "succeeded", result.error
    return result, root / "store" / OUT / "exports" / job_id / result.output["filename"]


def video_md5s(mp4: Path) -> list[str]:
    """framemd5 lines (pts, duration, size, md5) of the decoded video frames."""
    out = subprocess.run([ffmpeg(), "-v", "error", "-i", str(mp4), "-map", "0:v", "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if not line.startswith("#")]


def audio_samples(mp4: Path) -> array.array:
    """Mono float samples at 48 kHz of the decoded audio."""
    samples = array.array("f")
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    with av.open(str(mp4)) as c:
        for frame in c.decode(audio=0):
            for f in resampler.resample(frame):
                samples.frombytes(bytes(f.planes[0])[: f.samples * 4])
    return samples


@pytest.fixture(scope="module")
def renders(tmp_path_factory, media):
    root = tmp_path_factory.mktemp("segrender")
    return {k: render(root / str(k), media, k) for k in (0, 2)}


def test_segmented_render_equals_the_single_graph_render(renders, capfd):
    (single, single_mp4), (seg, seg_mp4) = renders[0], renders[2]
    plan = seg.plan
    frames = round(plan.total_s * FPS)
    v0, v2 = video_md5s(single_mp4), video_md5s(seg_mp4)
    assert len(v0) == len(v2) == frames
    assert v2 == v0  # every frame identical: segment joins, transitions, motion, captions
    # the same sound (the clip's own audio is read again by the encoding run): sample for sample up
    # to loudnorm's last 3 s window; within it FFmpeg's loudnorm (dynamic mode) is not deterministic
    # run to run (its end depends on thread timing, single graph or not): there within -30 dB (seen: -37)
    s0, s2 = audio_samples(single_mp4), audio_samples(seg_mp4)
    assert len(s0) == len(s2) and len(s0) / RATE == pytest.approx(plan.total_s, abs=1 / FPS)
    exact = int((plan.total_s - LOUDNORM_WINDOW_S) * RATE)
    assert s2[:exact] == s0[:exact]
    diff = math.sqrt(sum((x - y) ** 2 for x, y in zip(s0[exact:], s2[exact:])) / (len(s0) - exact))
    level = math.sqrt(sum(x * x for x in s0[exact:]) / (len(s0) - exact))
    assert level > 0.01 and diff < 0.03 * level
    assert seg.output["durationS"] == single.output["durationS"] == pytest.approx(plan.total_s, abs=1 / FPS)


def test_segment_starting_inside_a_bodiless_scene_keeps_every_frame(tmp_path, media):
    """A segment whose first scene is all transitions (0.4 s between two 0.2 s fades) starts with an
    xfade: its bodies must stay yuv420p (xfade works in yuv444p), and the pipe keeps SAR 1:1."""
    spec = {"version": 1, "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": FPS, "quality": "draft"},
            "scenes": [
                {"id": "a", "visual": {"type": "image", "src": "still.png"}, "duration": 0.6,
                 "transition": {"type": "fade", "duration": 0.2}},
                {"id": "b", "visual": {"type": "color", "color": "#2050a0"}, "duration": 0.6,
                 "transition": {"type": "fade", "duration": 0.2}},
                {"id": "c", "visual": {"type": "color", "color": "#a05020"}, "duration": 0.4,
                 "transition": {"type": "fade", "duration": 0.2}},
                {"id": "d", "visual": {"type": "image", "src": "still.png"}, "duration": 0.6}],
            "captions": {"burnIn": False, "sidecar": []}}
    outs = {}
    for k in (0, 2):
        storage = LocalStorage(tmp_path / f"store{k}")
        storage.upload_bytes(IN, "jobs/j/spec.json", json.dumps(spec).encode(), "application/json")
        storage.upload_bytes(IN, "jobs/j/assets/still.png", media["still.png"], "application/octet-stream")
        (tmp_path / f"work{k}").mkdir()
        result = run_export("j", storage, FakeReporter(), Settings(
            input_bucket=IN, output_bucket=OUT, render_max_retries=0, render_segment_scenes=k,
            ffmpeg_binary=os.environ.get("FFMPEG_BINARY") or None), str(tmp_path / f"work{k}"))
        assert result.status == "succeeded", result.error
        outs[k] = tmp_path / f"store{k}" / OUT / "exports" / "j" / result.output["filename"]
        with av.open(str(outs[k])) as c:
            sar = c.streams.video[0].codec_context.sample_aspect_ratio
            assert sar is not None and (sar.numerator, sar.denominator) == (1, 1)
    v0, v2 = video_md5s(outs[0]), video_md5s(outs[2])
    assert len(v0) == round((0.6 + 0.6 + 0.4 + 0.6 - 3 * 0.2) * FPS) == 48
    assert v2 == v0


def test_segmented_render_logs_its_segments(tmp_path, media, capfd):
    capfd.readouterr()
    render(tmp_path, media, 3)
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    seg = [entry for entry in lines if entry.get("message") == "rendering in segments"]
    assert len(seg) == 1 and seg[0]["segments"] == 3 and seg[0]["scenesPerSegment"] == 3


def test_the_largest_storyboard_renders_every_scene(tmp_path, media, capfd):
    """MAX_SCENES (200) scenes, with motion and transitions, in 9 segments of the default 24 scenes."""
    from shared.spec import MAX_SCENES

    motions = ["zoom-in", "pan-left", "zoom-out", "none", "pan-up"]
    scenes = []
    for i in range(MAX_SCENES):
        visual = ({"type": "color", "color": f"#{i % 256:02x}4080"} if i % 7 == 3 else
                  {"type": "image", "src": "still.png" if i % 2 else "square.png", "motion": motions[i % 5]})
        scenes.append({"id": f"s{i}", "visual": visual, "duration": 0.3,
                       "transition": {"type": "cut"} if i % 4 == 0 else {"type": "fade", "duration": 0.1}})
    spec = {"version": 1, "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 24, "quality": "draft"},
            "scenes": scenes, "captions": {"burnIn": False, "sidecar": []}}
    storage = LocalStorage(tmp_path / "store")
    storage.upload_bytes(IN, "jobs/job-200/spec.json", json.dumps(spec).encode(), "application/json")
    for name in ("still.png", "square.png"):
        storage.upload_bytes(IN, f"jobs/job-200/assets/{name}", media[name], "application/octet-stream")
    (tmp_path / "work").mkdir()
    capfd.readouterr()
    result = run_export("job-200", storage, FakeReporter(), Settings(input_bucket=IN, output_bucket=OUT,
                        ffmpeg_binary=os.environ.get("FFMPEG_BINARY") or None), str(tmp_path / "work"))
    assert result.status == "succeeded", result.error
    logged = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    assert [e["segments"] for e in logged if e.get("message") == "rendering in segments"] == [9]
    plan = result.plan
    mp4 = tmp_path / "store" / OUT / "exports" / "job-200" / result.output["filename"]
    with av.open(str(mp4)) as c:
        assert sum(1 for _ in c.decode(video=0)) == round(plan.total_s * 24)
    assert len(result.output["scenes"]) == MAX_SCENES


# ----------------------------------------------------------------- the feed under the watchdog

def _encoder(out: Path, seconds: float) -> list[str]:
    return [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
            "-video_size", "64x36", "-framerate", "10", "-i", "pipe:0", "-c:v", "libx264", "-preset", "ultrafast",
            "-t", str(seconds), "-progress", "pipe:1", "-nostats", "-y", str(out)]


def _segment(seconds: float) -> list[str]:
    return [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
            f"testsrc2=s=64x36:r=10:d={seconds}", "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"]


def test_feed_joins_segments_into_one_encode(tmp_path):
    out = tmp_path / "ok.mp4"
    feed = SegmentFeed([_segment(1), _segment(0.5), _segment(1)], cwd=str(tmp_path))
    run_ffmpeg(_encoder(out, 2.5), cwd=str(tmp_path), total_s=2.5, feed=feed, timeout_s=60, stall_s=20)
    assert feed.finished == 3 and feed.error is None
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 25


def test_failing_segment_fails_the_render_naming_it(tmp_path):
    missing = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", "no-such-still.png",
               "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"]
    feed = SegmentFeed([_segment(1), missing, _segment(1)], cwd=str(tmp_path),
                       labels=["scenes[0]..scenes[2]", "scenes[2]..scenes[4]", "scenes[4]..scenes[5]"])
    with pytest.raises(PermanentRenderError) as exc:
        run_ffmpeg(_encoder(tmp_path / "bad.mp4", 3), cwd=str(tmp_path), total_s=3, feed=feed, timeout_s=60,
                   stall_s=20)
    assert "ffmpeg segment 2 of 3 (scenes[2]..scenes[4]) failed (exit " in str(exc.value)
    assert "no-such-still.png" in str(exc.value)
    assert feed.finished == 1  # the third never ran


def test_hanging_segment_is_killed_by_the_stall_detector(tmp_path):
    hang = [sys.executable, "-c", "import time; time.sleep(120)"]
    feed = SegmentFeed([_segment(1), hang], cwd=str(tmp_path))
    t = time.monotonic()
    with pytest.raises(TransientError) as exc:
        run_ffmpeg(_encoder(tmp_path / "hang.mp4", 3), cwd=str(tmp_path), total_s=3, feed=feed, timeout_s=60,
                   stall_s=2)
    assert "stalled: no progress for 2 s" in str(exc.value)
    assert time.monotonic() - t < 30  # the sleeping segment was killed, not waited for
    assert feed.finished == 1


def test_settings_default_segments_above_24_scenes():
    assert Settings().render_segment_scenes == 24
    assert Settings().replace(render_segment_scenes=0).render_segment_scenes == 0
