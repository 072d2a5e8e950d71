"""Clips whose streams do not start together, and interlaced clips, rendered for real (run_export).

A clip plays as a player plays its file: the same instant of the file is seen and heard at the same
output time, whichever stream starts first and wherever trimStartS cuts (trial 2, failure A: a clip
whose sound starts 0.977 s after its picture was heard ~1 s early). Interlaced clips are
deinterlaced (failure B: a 1080i clip combed). Media come from tests/media_factory.py: a flash in the
picture and a click in the sound at the same instant of the file; a bar crossing the frame, stored
interlaced and progressive.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest

from render_job.job import run_export
from render_job.probe import probe
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from tests import media_factory as mf
from tests.fakes import FakeReporter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

IN, OUT = "clips-in", "clips-out"
EVENT_S = 2.0  # the flash and the click, seconds after the clip's first picture


def render(tmp_path: Path, job_id: str, scenes: list[dict], assets: dict[str, Path], fps: int) -> tuple:
    """(result, path of the MP4) of a 720p draft export of `scenes`."""
    storage = LocalStorage(tmp_path / "store")
    spec = {"version": 1, "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": fps, "quality": "draft"},
            "scenes": scenes}
    storage.upload_bytes(IN, f"jobs/{job_id}/spec.json", json.dumps(spec).encode(), "application/json")
    for name, path in assets.items():
        storage.upload_bytes(IN, f"jobs/{job_id}/assets/{name}", path.read_bytes(), "application/octet-stream")
    (tmp_path / job_id).mkdir()
    reporter = FakeReporter()
    settings = Settings(input_bucket=IN, output_bucket=OUT, ffmpeg_binary=os.environ.get("FFMPEG_BINARY") or None)
    result = run_export(job_id, storage, reporter, settings, str(tmp_path / job_id), attempt=0)
    assert result.status == "succeeded", result.error
    out = reporter.final["output"]
    return result, tmp_path / "store" / OUT / "exports" / job_id / out["filename"]


def flash_s(mp4: Path) -> float:
    """Time (seconds) of the first output frame that is mostly white."""
    with av.open(str(mp4)) as c:
        for frame in c.decode(video=0):
            if frame.to_ndarray(format="gray").mean() > 128:
                return float(frame.time)
    raise AssertionError("no flash in the output")


def click_s(mp4: Path) -> float:
    """Time (seconds) of the first output sample above half the loudest one (the click's onset)."""
    chunks, t0 = [], None
    with av.open(str(mp4)) as c:
        for frame in c.decode(audio=0):
            t0 = float(frame.time) if t0 is None else t0
            chunks.append(np.abs(frame.to_ndarray()).max(axis=0))
    x = np.concatenate(chunks)
    assert x.max() > 0.05, "no click in the output"
    return t0 + int(np.argmax(x > x.max() / 2)) / 48000


# (sound's start after the picture's, trimStartS, seconds of dark colour before the clip, container)
SYNC_CASES = [
    pytest.param(0.977, 0.0, 0.0, "mp4", id="late-sound-alone"),
    pytest.param(0.977, 0.5, 0.5, "mp4", id="late-sound-trim-inside-offset"),
    pytest.param(0.977, 1.5, 0.5, "mp4", id="late-sound-trim-past-offset"),
    pytest.param(-0.5, 0.0, 0.5, "mp4", id="early-sound"),
    pytest.param(-0.5, 0.8, 0.0, "mp4", id="early-sound-trimmed"),
    # Matroska: seeking does not line the sound up with the picture's first keyframe as MP4 does
    pytest.param(-0.5, 0.0, 0.5, "mkv", id="early-sound-mkv"),
    pytest.param(0.977, 0.5, 0.0, "mkv", id="late-sound-mkv"),
]


@pytest.mark.parametrize("offset, trim, before, ext", SYNC_CASES)
def test_clip_sound_stays_in_sync_with_its_picture(tmp_path, offset, trim, before, ext):
    clip = mf.flash_click_clip(tmp_path / f"fc.{ext}", offset, seconds=3.0, event_s=EVENT_S, rate=30)
    with av.open(str(clip)) as c:  # as built: the sound starts `offset` after the picture
        v, a = c.streams.video[0], c.streams.audio[0]
        assert float(a.start_time * a.time_base - v.start_time * v.time_base) == pytest.approx(offset, abs=0.03)
    scenes = [{"id": "clip", "visual": {"type": "video", "src": clip.name, "volume": 1, "trimStartS": trim}}]
    if before:
        scenes.insert(0, {"id": "dark", "visual": {"type": "color", "color": "#202020"}, "duration": before})
    result, mp4 = render(tmp_path, "job-sync", scenes, {clip.name: clip}, fps=30)
    # the picture: trimStartS counts from the clip's first picture, whichever stream starts first
    assert result.plan.scenes[-1].duration == pytest.approx(3.0 - trim, abs=1 / 30)
    assert flash_s(mp4) == pytest.approx(before + EVENT_S - trim, abs=1 / 30 + 1e-6)
    # the sound: the click heard with the flash (within one output frame)
    assert click_s(mp4) == pytest.approx(flash_s(mp4), abs=1 / 30)


def comb(mp4: Path, t: float) -> float:
    """Combing of the output frame at `t` seconds: mean absolute difference of adjacent rows minus
    that of rows two apart (same field), in grey levels; ~0 for a progressive picture of vertical edges."""
    with av.open(str(mp4)) as c:
        frame = next(f for f in c.decode(video=0) if f.time >= t - 1e-6)
        g = frame.to_ndarray(format="gray").astype(np.float64)
    return float(np.abs(g[1:] - g[:-1]).mean() - np.abs(g[2:] - g[:-2]).mean())


def test_interlaced_clip_is_deinterlaced_and_progressive_clip_untouched(tmp_path):
    clips = {"int.mp4": mf.moving_bar_clip(tmp_path / "int.mp4", interlaced=True),
             "prog.mp4": mf.moving_bar_clip(tmp_path / "prog.mp4", interlaced=False)}
    measured, plans = {}, {}
    for name, clip in clips.items():
        result, mp4 = render(tmp_path, f"job-{name[:-4]}", [{"id": "c", "visual": {"type": "video", "src": name}}],
                             {name: clip}, fps=25)
        measured[name] = [comb(mp4, t) for t in (0.4, 1.0, 1.6)]
        plans[name] = result.plan
    prog, inter = measured["prog.mp4"], measured["int.mp4"]
    assert max(prog) < 0.5, prog  # the reference: a progressive picture does not comb
    # an interlaced frame's fields are 1/50 s apart: shown woven, the bar's edges comb (~3 grey levels)
    assert max(inter) < 0.5, inter
    # detected from the probe; the filter is added for the interlaced clip only
    assert probe(str(clips["int.mp4"])).interlaced and not probe(str(clips["prog.mp4"])).interlaced
    assert [plans[n].scenes[0].deinterlace for n in ("int.mp4", "prog.mp4")] == [True, False]


def luma_means(path: Path) -> list[tuple[float, float]]:
    """(time in seconds, mean grey level) of every frame of `path`'s first video stream."""
    with av.open(str(path)) as c:
        return [(float(f.time), float(f.to_ndarray(format="gray").mean())) for f in c.decode(video=0)]


@pytest.mark.parametrize("ext", ["ts", "mpg", "mp4"])
def test_trimmed_clip_starts_at_its_trim_point_in_containers_without_a_seek_index(tmp_path, ext):
    # trial 5: MPEG-TS / MPEG-PS demuxers seek near the point, but decoding starts at the next keyframe
    # (here the flash, 2.0 s): the scene showed that frame frozen for 0.68 s while its sound was right
    clip = mf.counter_flash_click_clip(tmp_path / f"cfc.{ext}", seconds=4.0, event_s=EVENT_S, rate=25, gop=50)
    trim = 1.32  # source frame 33, between the keyframes at 0 and 2.0 s
    src = luma_means(clip)
    first = next(i for i, (t, _) in enumerate(src) if t - src[0][0] >= trim - 1e-6)
    scenes = [{"id": "c", "visual": {"type": "video", "src": clip.name, "volume": 1, "trimStartS": trim,
                                     "trimEndS": 3.0}}]
    result, mp4 = render(tmp_path, f"job-{ext}", scenes, {clip.name: clip}, fps=25)
    out = luma_means(mp4)
    n = round((EVENT_S - trim) * 25)  # output frames before the flash: source frames 33..49
    assert len(out) == round((3.0 - trim) * 25)
    # frame for frame the source's from the trim point on: the first is frame 33, none frozen
    # (4 grey levels a frame; the draft encode is within 3)
    assert [round(y) for _, y in out[:n + 1]] == pytest.approx([round(y) for _, y in src[first:first + n + 1]],
                                                                abs=3)
    assert min(abs(b[1] - a[1]) for a, b in zip(out[:n], out[1:n + 1])) > 2.0
    flash = next(t for t, y in out if y > 245)  # white; the counter tops out at 228 (full range)
    assert flash == pytest.approx(EVENT_S - trim, abs=1e-6)
    assert click_s(mp4) == pytest.approx(flash, abs=1 / 25)
    # the picture and the sound go through the exact cut only where the demuxer needs it
    assert (result.plan.scenes[0].clip_preroll_s > 0) == (ext != "mp4")


@pytest.mark.parametrize("trim", [0.0, 1.32])
def test_ts_clip_whose_sound_starts_first_starts_at_its_trim_point_muted_or_not(tmp_path, trim):
    # trial 6: in MPEG-TS FFmpeg times a file from the first of the streams it uses; a muted clip whose
    # sound starts before its picture (FFmpeg's own TS with AAC: 21 ms) was cut one frame late
    clip = mf.counter_flash_click_clip(tmp_path / "cfc.ts", seconds=4.0, event_s=EVENT_S, rate=25, gop=50)
    info = probe(str(clip))
    assert info.video_start_s - info.start_s == pytest.approx(0.021, abs=0.005)  # the sound starts first
    src = luma_means(clip)
    first = next(i for i, (t, _) in enumerate(src) if t - src[0][0] >= trim - 1e-6)
    n, length = 10, round((EVENT_S + 0.2 - trim) * 25)  # frames compared; a scene's (up to the click)
    scenes = [{"id": f"v{volume}", "visual": {"type": "video", "src": clip.name, "volume": volume,
                                              "trimStartS": trim, "trimEndS": EVENT_S + 0.2}}
              for volume in (0, 1)]
    _, mp4 = render(tmp_path, "job-ts-muted", scenes, {clip.name: clip}, fps=25)
    out = [y for _, y in luma_means(mp4)]
    assert len(out) == 2 * length

    def source_frames(ys: list[float]) -> list[int]:  # the source frame (of the counter's 50) each one shows
        return [min(range(50), key=lambda i: abs(src[i][1] - y)) for y in ys]
    assert source_frames(out[:n]) == list(range(first, first + n))  # muted
    assert source_frames(out[length:length + n]) == list(range(first, first + n))  # heard
