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

# A function of the RENDER_PYTHON stand-ins that kill a task mid-render (test_faults.py,
# parallel_flows.py), as source text for their .format()ed templates (braces doubled).
FFMPEG_FINDER = r"""
def encoding_ffmpeg(root):
    # pid of an FFmpeg with -progress (the encoding run) among root's descendants, or None
    kids = {{}}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{{d}}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{{d}}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append((int(d), argv))
    todo = [root]
    while todo:
        for pid, argv in kids.get(todo.pop(), []):
            if argv and b"ffmpeg" in os.path.basename(argv[0]) and b"-progress" in argv:
                return pid
            todo.append(pid)
    return None
"""
