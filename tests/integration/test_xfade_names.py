"""Every transition type the spec accepts is an xfade transition of the FFmpeg the job runs, and the
names added after trial 2 (vertopen, wipetl, coverleft, … refused before) render as a blend."""
import re
import subprocess

import pytest

from shared.spec import XFADE_TRANSITIONS, parse_spec
from tests.integration.test_features import (ffmpeg, region_stats, render, rgb_frame_at, spec_of,
                                             transition_scenes)

pytestmark = pytest.mark.slow

# the 36 names accepted before trial 2; the rest of FFmpeg's named transitions were refused
FIRST_36 = {"fade", "fadeblack", "fadewhite", "fadegrays", "dissolve", "distance", "wipeleft", "wiperight",
            "wipeup", "wipedown", "slideleft", "slideright", "slideup", "slidedown", "smoothleft", "smoothright",
            "smoothup", "smoothdown", "circlecrop", "circleopen", "circleclose", "rectcrop", "radial", "pixelize",
            "hblur", "diagtl", "diagtr", "diagbl", "diagbr", "hlslice", "hrslice", "vuslice", "vdslice",
            "squeezeh", "squeezev", "zoomin"}
ADDED = ["vertopen", "vertclose", "horzopen", "horzclose", "wipetl", "wipetr", "wipebl", "wipebr", "fadefast",
         "fadeslow", "hlwind", "hrwind", "vuwind", "vdwind", "coverleft", "coverright", "coverup", "coverdown",
         "revealleft", "revealright", "revealup", "revealdown"]


def test_every_accepted_type_is_a_named_xfade_transition_of_the_binary():
    text = subprocess.run([ffmpeg(), "-hide_banner", "-h", "filter=xfade"], capture_output=True, text=True,
                          timeout=30).stdout
    names = re.findall(r"^\s+(\w+)\s+-?\d+\s+\.\.FV", text, re.M)
    assert [n for n in names if n != "custom"] == list(XFADE_TRANSITIONS)
    assert sorted(XFADE_TRANSITIONS) == sorted(FIRST_36 | set(ADDED))


@pytest.fixture(scope="module")
def added(tmp_path_factory):
    spec = spec_of(transition_scenes(ADDED, 0.8, 0.3))
    parse_spec(spec)  # accepted (400 "spec.scenes[0].transition.type" before)
    return render(tmp_path_factory.mktemp("xfade-added"), "job-xfade-added", spec, {})


def test_transitions_added_after_trial_2_render_and_blend(added):
    plan = added["plan"]
    assert [s.transition for s in plan.scenes[:-1]] == ADDED
    assert plan.total_s == pytest.approx(0.8 * (len(ADDED) + 1) - 0.3 * len(ADDED))
    for i, name in enumerate(ADDED):
        red_first = i % 2 == 0
        rgb, _, _, ls = rgb_frame_at(added["mp4"], plan.scenes[i + 1].start + 0.15 - 1 / 60)  # mid-transition
        (r, g, b), _ = region_stats(rgb, ls, 0, 0, 1280, 720, step=8)
        assert not (r > 180 and b < 40) and not (b > 180 and r < 40), (name, (r, g, b))  # neither scene alone
        rgb, _, _, ls = rgb_frame_at(added["mp4"], plan.scenes[i + 1].start + 0.4)  # the next scene's body
        (r, g, b), _ = region_stats(rgb, ls, 0, 0, 1280, 720, step=8)
        assert (b > 180 and r < 40) if red_first else (r > 180 and b < 40), (name, (r, g, b))
