"""render_job.clips: trims that leave less than one frame of a clip, sound outside the part read (pure)."""
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from render_job.clips import clip_sound_in_window, trim_problem  # noqa: E402
from render_job.failure import public_message  # noqa: E402

CLIP = SimpleNamespace(video_duration_s=3.0, duration_s=3.0, fps=25.0)  # last frame at 2.96 s


def vis(start, end=None):
    return SimpleNamespace(trim_start_s=start, trim_end_s=end)


@pytest.mark.parametrize("start, end", [(0.0, None), (2.92, None), (2.96, None), (1.0, 1.04), (1.01, 1.05),
                                        (2.95, 50.0)])
def test_trims_leaving_a_frame_are_accepted(start, end):
    assert trim_problem(vis(start, end), CLIP) is None


@pytest.mark.parametrize("start, end, expected", [
    (2.961, None, "trimStartS 2.961 s leaves less than one frame of the clip: its picture lasts 3.000 s and "
                  "its last frame starts at 2.960 s"),
    (2.99, None, "trimStartS 2.99 s leaves less than one frame"),
    (3.0, None, "trimStartS 3 s is past the clip's end (3.000 s)"),
    (1000.0, None, "trimStartS 1000 s is past the clip's end (3.000 s)"),
    (1.01, 1.02, "trimStartS 1.01 s to trimEndS 1.02 s is shorter than one frame of the clip (0.040 s at 25 fps)"),
])
def test_trims_leaving_less_than_a_frame_are_named(start, end, expected):
    assert expected in trim_problem(vis(start, end), CLIP)


def test_unknown_frame_rate_only_refuses_past_the_end():
    clip = SimpleNamespace(video_duration_s=3.0, duration_s=3.0, fps=None)
    assert trim_problem(vis(2.99), clip) is None
    assert "past the clip's end" in trim_problem(vis(3.0), clip)


@pytest.mark.parametrize("video_start, audio, trim, read, heard", [
    (0.0, (0.0, 2.0), 3.0, 3.0, False),  # the sound stops before the part read
    (0.0, (0.0, 2.0), 1.0, 3.0, True),  # ... inside it: heard, then silence
    (0.0, (0.0, 2.0), 1.9995, 3.0, False),  # under a millisecond of sound counts as none
    (0.0, (9.98, 13.0), 0.0, 3.0, False),  # the sound starts after the part read
    (1000.0, (0.0, 3.0), 0.0, 3.0, False),  # the picture starts after the sound ends
    (1000.0, (0.0, 3.0), 0.0, 3.0, False),
    (0.0, (0.0, None), 3.0, 3.0, True),  # the probe does not say: mixed
])
def test_clip_sound_in_window(video_start, audio, trim, read, heard):
    info = SimpleNamespace(video_start_s=video_start, audio_start_s=audio[0], audio_end_s=audio[1])
    assert clip_sound_in_window(info, trim, read) is heard


def test_public_message_drops_ffmpeg_memory_addresses(tmp_path):
    raw = ("ffmpeg render failed (exit 234); last output:\n[aac @ 0x556e600eab80] Input contains (near) NaN/+-Inf\n"
           "[aost#0:1/aac @ 0x556e600ea380] [enc:aac @ 0x556e600f0740] Error submitting audio frame")
    assert public_message(raw, str(tmp_path)) == (
        "ffmpeg render failed (exit 234); last output:\n[aac] Input contains (near) NaN/+-Inf\n"
        "[aost#0:1/aac] [enc:aac] Error submitting audio frame")
