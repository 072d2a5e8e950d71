"""Storyboards and helpers shared by the system tests (imported as a module, not a conftest)."""
from __future__ import annotations

import time
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[2] / "examples" / "storyboard"
FLOW = ["awaiting_upload", "queued", "dispatched", "running", "succeeded"]


def small_spec(title: str = "System test") -> dict:
    """Two scenes at 720p draft (about 5.3 s of video): image + narration with a typographic caption,
    a fade, an odd-width image fitted with `contain`, ducked music, sidecar captions."""
    return {
        "version": 1,
        "title": title,
        "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 30, "quality": "draft"},
        "scenes": [
            {"id": "a", "visual": {"type": "image", "src": "astronaut.png", "fit": "cover"},
             "narration": {"src": "n5.wav"},
             "caption": {"text": "In 1995: the crew’s first 100% test — it's on."},
             "transition": {"type": "fade", "duration": 0.5}},
            {"id": "b", "visual": {"type": "image", "src": "chelsea.png", "fit": "contain"},
             "caption": {"text": "Mission control keeps a cat, of course."}, "duration": 2.0},
        ],
        "music": {"src": "music.ogg", "volume": 0.2, "loop": True, "ducking": True, "fadeOutS": 1},
        "captions": {"burnIn": True, "sidecar": ["srt", "vtt"]},
        "poster": {"scene": 0},
    }


SMALL_FILES = [ASSETS / n for n in ("astronaut.png", "n5.wav", "chelsea.png", "music.ogg")]


def wait_for_condition(check, timeout_s: float, what: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
