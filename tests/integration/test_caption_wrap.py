"""Burned-in text with no space to break at stays inside its safe area, measured on the pixels libass
draws: the caption overlay picture (render_job.caption_overlay, the production path for captions)
and frames of a rendered video with title cards (the `subtitles` filter)."""
from __future__ import annotations

import shutil
import subprocess

import av
import numpy as np
import pytest
from PIL import Image

from render_job import caption_overlay
from render_job.graph.command import build_command
from render_job.plan import build_plan
from render_job.runner import find_ffmpeg
from render_job.subtitles import ASS_FILE, FONTS_DIR, write_captions
from shared.spec import parse_spec

LONG = [
    "日本語の字幕は空白なしで長い文章になることがよくあります。「東京タワー」へようこそ！",
    "see https://example.com/a/very/long/path/without/spaces?query=value&other=thing_here",
    'color="red">red</font>color="red">red</font>',
    "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft",
    "한국어자막은보통띄어쓰기가있지만이것은아주긴한단어입니다한국어자막은보통",
    "x" * 150,
]
OUTPUTS = [("720p", "9:16", 720, 1280), ("1080p", "16:9", 1920, 1080)]


def _spec(resolution: str, aspect: str, scenes: list[dict]) -> dict:
    return {"version": 1, "output": {"resolution": resolution, "aspectRatio": aspect, "fps": 24, "quality": "draft"},
            "scenes": scenes}


def _safe(w: int, h: int, side: float, vertical: float = 0.06) -> tuple[int, int, int, int]:
    """(left, top, right, bottom), right/bottom exclusive, in whole pixels."""
    return round(w * side), round(h * vertical), w - round(w * side), h - round(h * vertical)


def _inside(box, safe) -> bool:
    return box[0] >= safe[0] and box[1] >= safe[1] and box[2] <= safe[2] and box[3] <= safe[3]


@pytest.mark.parametrize("resolution,aspect,w,h", OUTPUTS)
def test_long_unbroken_captions_stay_inside_the_safe_area(tmp_path, resolution, aspect, w, h):
    ffmpeg = find_ffmpeg()
    scenes = [{"id": f"s{i}", "visual": {"type": "color", "color": "#336699"}, "duration": 1,
               "caption": {"text": text}, "transition": {"type": "cut"}} for i, text in enumerate(LONG)]
    plan = build_plan(parse_spec(_spec(resolution, aspect, scenes)), {})
    assert (plan.width, plan.height) == (w, h)
    shutil.copytree(FONTS_DIR, tmp_path / "fonts")
    ov = caption_overlay.prepare(plan, str(tmp_path), ffmpeg)
    assert ov is not None
    atlas = np.asarray(Image.open(tmp_path / ov.atlas).getchannel("A"))
    safe = _safe(w, h, 0.05)
    boxes = []
    for j in range(1, len(LONG) + 1):
        alpha = atlas[j * ov.height:(j + 1) * ov.height]
        ys, xs = np.nonzero(alpha)
        box = (ov.x + int(xs.min()), ov.y + int(ys.min()), ov.x + int(xs.max()) + 1, ov.y + int(ys.max()) + 1)
        boxes.append(box)
        assert _inside(box, safe), f"caption {LONG[j - 1][:20]!r}: drawn at {box}, safe area {safe}"
    # the long captions really fill the area (wrapped, not shrunk or dropped): most span > 3/4 of it
    assert sum(b[2] - b[0] > 0.75 * (safe[2] - safe[0]) for b in boxes) >= 4, boxes


def _bright_box(frame: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(frame > 128)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("resolution,aspect,w,h", OUTPUTS)
def test_long_unbroken_title_cards_stay_inside_80_percent_of_the_width(tmp_path, resolution, aspect, w, h):
    ffmpeg = find_ffmpeg()
    titles = LONG[:4]
    scenes = [{"id": f"t{i}", "visual": {"type": "title", "text": text, "background": "#000000",
                                         "textColor": "#ffffff"},
               "duration": 0.5, "transition": {"type": "cut"}} for i, text in enumerate(titles)]
    plan = build_plan(parse_spec(_spec(resolution, aspect, scenes)), {})
    shutil.copytree(FONTS_DIR, tmp_path / "fonts")
    write_captions(plan.cues, plan.width, plan.height, str(tmp_path), style=plan.caption_style,
                   titles=plan.titles, fps=plan.fps)
    argv = build_command(plan, {}, "out.mp4", ass_path=ASS_FILE, ffmpeg=ffmpeg)
    subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    with av.open(str(tmp_path / "out.mp4")) as c:
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(frames) == 48
    safe = _safe(w, h, 0.10)
    for i, text in enumerate(titles):
        box = _bright_box(frames[i * 12 + 6])  # the middle of each 0.5 s card
        assert _inside(box, safe), f"title {text[:20]!r}: drawn at {box}, safe area {safe}"
        assert box[2] - box[0] > 0.6 * (safe[2] - safe[0])


FLAGS = "🇺🇸🇬🇧🇫🇷🇩🇪🇪🇸🇮🇹🇯🇵🇰🇷🇧🇷🇲🇽"  # 10 flags without spaces
FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"
EMOJI = [
    FLAGS,
    FLAGS * 3,
    FAMILY * 30,
    "\U0001F468\u200d" * 200,  # one grapheme cluster of 200 emoji
    "\U0001F44D\U0001F3FD\U0001F44B\U0001F3FF\U0001F64C\U0001F3FB\U0001F9D1\U0001F3FE\u200d\U0001F4BB" * 12,
]


def _atlas_boxes(tmp_path, resolution: str, aspect: str, texts: list[str], style: dict | None = None):
    """(boxes drawn by libass for each caption of `texts`, plan), read from the caption overlay picture."""
    scenes = [{"id": f"s{i}", "visual": {"type": "color", "color": "#336699"}, "duration": 1,
               "caption": {"text": text}, "transition": {"type": "cut"}} for i, text in enumerate(texts)]
    spec = _spec(resolution, aspect, scenes)
    if style:
        spec["captions"] = {"style": style}
    plan = build_plan(parse_spec(spec), {})
    shutil.copytree(FONTS_DIR, tmp_path / "fonts")
    ov = caption_overlay.prepare(plan, str(tmp_path), find_ffmpeg())
    atlas = np.asarray(Image.open(tmp_path / ov.atlas).getchannel("A"))
    boxes = []
    for j in range(1, len(texts) + 1):
        ys, xs = np.nonzero(atlas[j * ov.height:(j + 1) * ov.height])
        boxes.append((ov.x + int(xs.min()), ov.y + int(ys.min()), ov.x + int(xs.max()) + 1, ov.y + int(ys.max()) + 1))
    return boxes, plan


@pytest.mark.parametrize("resolution,aspect,w,h", OUTPUTS)
def test_flags_and_emoji_sequences_without_spaces_stay_inside_the_safe_area(tmp_path, resolution, aspect, w, h):
    """Adversarial review 2: 10 flags at 720p 9:16 were drawn x 0..720 (no break between regional
    indicators). Only DejaVu here: libass draws each missing emoji as a box, and that is what is measured."""
    boxes, _ = _atlas_boxes(tmp_path, resolution, aspect, EMOJI)
    safe = _safe(w, h, 0.05)
    for text, box in zip(EMOJI, boxes):
        assert _inside(box, safe), f"caption {text[:12]!r}: drawn at {box}, safe area {safe}"
    # wrapped, not shrunk: the 30 flags and the family row fill the width on several lines
    line_h = h / 18
    for box in boxes[1:4]:
        assert box[2] - box[0] > 0.75 * (safe[2] - safe[0]) and box[3] - box[1] > 1.5 * line_h, boxes


@pytest.mark.parametrize("position", ["top", "bottom"])
@pytest.mark.parametrize("resolution,aspect,w,h", OUTPUTS)
def test_the_most_combining_marks_allowed_stay_in_the_frame(tmp_path, position, resolution, aspect, w, h):
    """shared.spec accepts at most 4 marks above and 4 below one character (8 in all): drawn stacked, they
    reach at most 0.3 em into the top margin, 0.75 em into the bottom one (the 6 % margins leave room
    for the font's ascent and descent, not for stacks), never out of the picture as 300 did."""
    worst = [("a" + "\u0301" * 4 + "\u0316" * 4) * 8, ("\u1ea4\u0301\u0301" + "\u0316" * 4) * 8,
             ("g" + "\u0316" * 4 + "\u0301" * 4) * 8]
    for text in worst:
        parse_spec(_spec(resolution, aspect, [{"id": "s", "visual": {"type": "color"}, "caption": {"text": text}}]))
    boxes, plan = _atlas_boxes(tmp_path, resolution, aspect, worst, style={"position": position})
    size = plan.caption_style.size_px
    left, top, right, bottom = _safe(w, h, 0.05)
    for text, box in zip(worst, boxes):
        assert box[0] >= left and box[2] <= right, (text[:3], box)
        assert box[1] >= top - 0.3 * size and box[3] <= bottom + 0.75 * size, (text[:3], box, size)
        assert box[1] > 0 and box[3] < h, (text[:3], box)
