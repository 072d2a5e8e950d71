"""Pre-rendered caption overlays (render_job.caption_overlay) against libass burning every frame
(the `subtitles` filter): the same pixels on the same frames, for awkward text, back-to-back cues,
a gap, a styled position, and a cue boundary off the frame grid."""
from __future__ import annotations

import shutil
import subprocess

import av
import pytest

from render_job import caption_overlay
from render_job.graph.command import build_command
from render_job.plan import build_plan
from render_job.runner import find_ffmpeg
from render_job.subtitles import ASS_FILE, FONTS_DIR, write_captions
from shared.spec import parse_spec

FPS = 25
AWKWARD = "It's \"quoted\": 100% {braces} back\\slash \u2014 \u00e9t\u00e9, \u65e5\u672c\u8a9e, \U0001F680"


def _spec(position: str, fps: int = FPS) -> dict:
    return {"version": 1,
            "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": fps, "quality": "high"},
            "captions": {"burnIn": True, "style": {"position": position, "color": "#ffee00", "sizePx": 44}},
            "scenes": [
                {"id": "a", "visual": {"type": "color", "color": "#336699"}, "duration": 2,
                 "caption": {"text": AWKWARD}, "transition": {"type": "fade", "duration": 0.5}},
                {"id": "b", "visual": {"type": "color", "color": "#c0c0c0"}, "duration": 2.5,
                 "caption": {"cues": [{"startS": 0.0, "endS": 1.0, "text": "First, on its own"},
                                      {"startS": 1.0, "endS": 1.9, "text": "Second, right after"},
                                      {"startS": 2.13, "endS": 2.5, "text": "late: off the frame grid"}]}}]}


def _luma_frames(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="gray") for f in c.decode(video=0)]


@pytest.mark.parametrize("position,fps", [("bottom", 25), ("top", 25), ("bottom", 24)])
def test_overlay_matches_libass_frame_for_frame(tmp_path, position, fps):
    """24 fps: frame times off the ASS centisecond grid (a cue boundary at 2.13 s, scene starts at
    n/24 s): the `subtitles` path must place events on the same frames (subtitles._frame_ms)."""
    ffmpeg = find_ffmpeg()
    plan = build_plan(parse_spec(_spec(position, fps)), {})
    shutil.copytree(FONTS_DIR, tmp_path / "fonts")
    write_captions(plan.cues, plan.width, plan.height, str(tmp_path), style=plan.caption_style, fps=plan.fps)
    ov = caption_overlay.prepare(plan, str(tmp_path), ffmpeg)
    assert ov is not None
    # the scene text, first, second, a gap, the late cue
    assert len(ov.segments) >= 5 and sum(n for _, n in ov.segments) == round(plan.total_s * fps)
    assert ov.width % 2 == 0 and ov.height % 2 == 0 and ov.y % 2 == 0
    assert (ov.y < plan.height // 2) == (position == "top")

    outputs = {}
    for name, kwargs in (("overlay", {"caption_overlay": ov}), ("libass", {"ass_path": ASS_FILE})):
        argv = build_command(plan, {}, f"{name}.mp4", ffmpeg=ffmpeg, **kwargs)
        subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True, timeout=300)
        outputs[name] = _luma_frames(tmp_path / f"{name}.mp4")
    over, ref = outputs["overlay"], outputs["libass"]
    assert len(over) == len(ref) == round(plan.total_s * fps)
    band = slice(ov.y, ov.y + ov.height)
    worst = 0.0
    for i, (a, b) in enumerate(zip(over, ref)):
        diff = abs(a[band].astype("int16") - b[band].astype("int16"))
        worst = max(worst, float(diff.mean()))
        # a caption missing or misplaced on a frame moves hundreds of pixels by > 100 levels
        assert int((diff > 60).sum()) < 50, f"frame {i}: captions differ"
    assert worst < 1.5, worst


def test_no_overlay_for_title_cards_or_without_burn_in(tmp_path):
    ffmpeg = find_ffmpeg()
    spec = _spec("bottom")
    spec["scenes"].append({"id": "t", "visual": {"type": "title", "text": "The end"}, "duration": 1})
    assert caption_overlay.prepare(build_plan(parse_spec(spec), {}), str(tmp_path), ffmpeg) is None
    spec = _spec("bottom")
    spec["captions"]["burnIn"] = False
    assert caption_overlay.prepare(build_plan(parse_spec(spec), {}), str(tmp_path), ffmpeg) is None


def test_a_failed_pre_render_falls_back_to_the_subtitles_filter(tmp_path, capsys):
    from render_job.job import _caption_overlay
    plan = build_plan(parse_spec(_spec("bottom")), {})
    with pytest.raises(RuntimeError, match="caption states: FFmpeg exited 1 after 0/"):
        caption_overlay.prepare(plan, str(tmp_path), "false")
    assert _caption_overlay(plan, str(tmp_path), "false", "job-x") is None
    assert "caption pre-render failed: burning captions with the subtitles filter" in capsys.readouterr().out


def test_too_many_or_too_large_caption_states_fall_back_to_the_subtitles_filter(tmp_path, monkeypatch):
    ffmpeg = find_ffmpeg()
    shutil.copytree(FONTS_DIR, tmp_path / "fonts")
    many = {"version": 1, "output": {"resolution": "720p", "fps": 25, "quality": "draft"},
            "scenes": [{"id": f"s{i}", "visual": {"type": "color", "color": "#101010"}, "duration": 0.2,
                        "caption": {"text": f"cue number {i}"}, "transition": {"type": "cut"}}
                       for i in range(caption_overlay.MAX_STATES + 1)]}
    assert caption_overlay.prepare(build_plan(parse_spec(many), {}), str(tmp_path), ffmpeg) is None
    plan = build_plan(parse_spec(_spec("bottom")), {})
    assert caption_overlay.prepare(plan, str(tmp_path), ffmpeg) is not None
    monkeypatch.setattr(caption_overlay, "ATLAS_MAX_BYTES", 20_000)  # a limit this plan's strips exceed
    assert caption_overlay.prepare(plan, str(tmp_path), ffmpeg) is None
