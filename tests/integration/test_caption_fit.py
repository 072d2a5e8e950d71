"""Burned-in text taller than the frame's safe area is drawn smaller, never cut off (trial 3, F1: a
133-character title card at 9:16 lost its first and last lines; a 500-character caption at 720p was
cut at row 0), and output.warnings names the field. Measured on the pixels libass draws: the
rendered video (title cards: the `subtitles` filter; captions: the caption overlay) and the
overlay's atlas."""
from __future__ import annotations

import re
import shutil

import av
import numpy as np
import pytest
from PIL import Image

from render_job import caption_overlay, subtitles
from render_job.plan import build_plan
from render_job.runner import find_ffmpeg
from render_job.subtitles import FONTS_DIR, ass_text
from shared.spec import parse_spec
from tests.integration.test_features import render

TITLE_300 = ("Thank you for watching! Stream it everywhere: https://music.example.com/la-haut " * 4)[:300]
TITLE_TRIAL3 = ("Stream it: https://music.example.com/artists/the-long-named-band/albums/2026/tracks/lyric-video"
                "?utm_source=app\nありがとう · شكرا · Спасибо")
CAPTION_500 = ("Please like and subscribe and share this video with your friends and family. " * 7)[:500]
SHORT = "Chapter one"
MESSAGE = re.compile(r"drawn at (\d+) px instead of (\d+) px so that all (\d+) lines fit inside the frame's safe area")


def _safe(w: int, h: int, side: float) -> tuple[int, int, int, int]:
    return round(w * side), round(h * 0.06), w - round(w * side), h - round(h * 0.06)


def _inside(box, safe) -> bool:
    return box[0] >= safe[0] and box[1] >= safe[1] and box[2] <= safe[2] and box[3] <= safe[3]


def _bright_box(frame: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(frame > 128)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _export(tmp_path, spec: dict) -> tuple[dict, list[np.ndarray]]:
    """run_export on `spec` (no assets): (output, the video's frames as grey arrays)."""
    r = render(tmp_path, "j", spec, {})
    with av.open(r["mp4"]) as c:
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    return r["output"], frames


def _check_message(message: str, nominal: int) -> int:
    m = MESSAGE.fullmatch(message)
    assert m, message
    drawn, size, lines = map(int, m.groups())
    assert size == nominal and 8 <= drawn < nominal and lines >= 2, message
    return drawn


def test_title_cards_taller_than_the_frame_at_9_16_are_drawn_smaller_inside_the_safe_area(tmp_path):
    titles = [TITLE_300, TITLE_TRIAL3, "Intro"]
    spec = {"output": {"resolution": "720p", "aspectRatio": "9:16", "fps": 24, "quality": "draft"},
            "scenes": [{"id": f"t{i}", "visual": {"type": "title", "text": t, "background": "#000000",
                                                  "textColor": "#ffffff"},
                        "duration": 0.5, "transition": {"type": "cut"}} for i, t in enumerate(titles)]}
    output, frames = _export(tmp_path, spec)
    assert len(frames) == 36
    safe = _safe(720, 1280, 0.10)
    boxes = [_bright_box(frames[i * 12 + 6]) for i in range(3)]
    for text, box in zip(titles, boxes):
        assert _inside(box, safe), f"title {text[:20]!r}: drawn at {box}, safe area {safe}"
    # still large: the shrunk cards fill most of the safe area's height, not a corner of it
    assert boxes[0][3] - boxes[0][1] > 0.75 * (safe[3] - safe[1]), boxes
    warnings = output["warnings"]
    assert [w["path"] for w in warnings] == ["scenes[0].visual.text", "scenes[1].visual.text"], warnings
    for w in warnings:
        _check_message(w["message"], round(1280 / 12))
    # the short card keeps its size: as tall as one line of 107 px text (cap height .. descender)
    assert 60 <= boxes[2][3] - boxes[2][1] <= 107, boxes[2]


def test_a_500_character_caption_at_720p_is_drawn_smaller_inside_the_safe_area(tmp_path):
    spec = {"output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 24, "quality": "draft"},
            "captions": {"style": {"sizePx": 60, "position": "bottom"}},
            "scenes": [{"id": "c", "visual": {"type": "color", "color": "#000000"}, "duration": 0.5,
                        "caption": {"text": CAPTION_500}, "transition": {"type": "cut"}},
                       {"id": "d", "visual": {"type": "color", "color": "#000000"}, "duration": 0.5,
                        "caption": {"text": SHORT}}]}
    output, frames = _export(tmp_path, spec)
    safe = _safe(1280, 720, 0.05)
    box = _bright_box(frames[6])
    assert _inside(box, safe), f"drawn at {box}, safe area {safe}"
    assert [w["path"] for w in output["warnings"]] == ["scenes[0].caption.text"], output["warnings"]
    _check_message(output["warnings"][0]["message"], 60)
    short = _bright_box(frames[18])
    assert _inside(short, safe) and 35 <= short[3] - short[1] <= 60, short  # one line at 60 px


def _atlas_boxes(tmp_path, plan, n: int) -> list[tuple[int, int, int, int]]:
    shutil.copytree(FONTS_DIR, tmp_path / "fonts")
    ov = caption_overlay.prepare(plan, str(tmp_path), find_ffmpeg())
    assert ov is not None
    atlas = np.asarray(Image.open(tmp_path / ov.atlas).getchannel("A"))
    boxes = []
    for j in range(1, n + 1):
        ys, xs = np.nonzero(atlas[j * ov.height:(j + 1) * ov.height])
        boxes.append((ov.x + int(xs.min()), ov.y + int(ys.min()), ov.x + int(xs.max()) + 1, ov.y + int(ys.max()) + 1))
    return boxes


@pytest.mark.parametrize("resolution,aspect,w,h,style", [
    ("720p", "16:9", 1280, 720, {"sizePx": 60, "position": "top"}),
    ("720p", "16:9", 1280, 720, {"sizePx": 60, "position": "middle"}),
    ("1080p", "9:16", 1080, 1920, {"position": "bottom"}),
    ("1080p", "9:16", 1080, 1920, {"sizePx": 150, "position": "bottom", "outlineWidth": 20}),
])
def test_500_character_captions_are_drawn_smaller_inside_the_safe_area(tmp_path, resolution, aspect, w, h, style):
    texts = [CAPTION_500, SHORT, "one\ntwo\nthree"]
    spec = {"version": 1, "output": {"resolution": resolution, "aspectRatio": aspect, "fps": 24, "quality": "draft"},
            "captions": {"style": style},
            "scenes": [{"id": f"s{i}", "visual": {"type": "color"}, "duration": 1, "caption": {"text": t},
                        "transition": {"type": "cut"}} for i, t in enumerate(texts)]}
    plan = build_plan(parse_spec(spec), {})
    boxes = _atlas_boxes(tmp_path, plan, len(texts))
    safe = _safe(w, h, 0.05)
    for text, box in zip(texts, boxes):
        assert _inside(box, safe), f"caption {text[:20]!r}: drawn at {box}, safe area {safe}"
    size = plan.caption_style.size_px
    warnings = subtitles.fit_warnings(plan)
    assert [p for p, _ in warnings] == ["scenes[0].caption.text"], warnings
    drawn = _check_message(warnings[0][1], size)
    # just enough smaller: one pixel more would not fit (the estimate is conservative, not loose)
    assert boxes[0][3] - boxes[0][1] > 0.8 * (safe[3] - safe[1]) * drawn / (drawn + 1), (boxes[0], drawn)
    # ordinary captions: no size change (no \fs override) and no warning
    ass = ass_text(plan.cues, w, h, plan.caption_style, fps=24)
    events = [line for line in ass.splitlines() if line.startswith("Dialogue:")]
    assert f"{{\\fs{drawn}}}" in events[0] and all("\\fs" not in e for e in events[1:]), events
