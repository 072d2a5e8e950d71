"""The API's length check at start (shared.timeline.least_grid) against the render plan (build_plan):
for any storyboard and any probe results, the start's length is never more than the plan's (so the
start refuses nothing the render would accept), and is the plan's exactly when no scene needs a probe."""
from types import SimpleNamespace

from hypothesis import given, settings, strategies as st

from render_job.plan import build_plan
from shared.spec import parse_spec
from shared.timeline import least_grid

FPS = 30

# a scene: (kind, given duration or None, narration offsetS, transition seconds or None)
SCENES = st.lists(st.tuples(st.sampled_from(["color", "title", "image", "narrated", "clip", "narrated-clip"]),
                            st.one_of(st.none(), st.sampled_from([0.07, 0.5, 1.01, 2.345, 4.0])),
                            st.sampled_from([0.0, 0.25, 1.5]),
                            st.one_of(st.none(), st.sampled_from([0.0, 0.3, 0.8, 2.0]))), min_size=1, max_size=12)
PROBED = st.lists(st.sampled_from([0.0, 0.01, 0.04, 0.7, 3.333, 9.0]), min_size=24, max_size=24)


def storyboard(scenes):
    out = []
    for i, (kind, duration, offset, fade) in enumerate(scenes):
        visual = ({"type": "video", "src": f"c{i}.mp4"} if "clip" in kind else
                  {"type": "image", "src": f"i{i}.png"} if kind in ("image", "narrated") else
                  {"type": "title", "text": "T"} if kind == "title" else {"type": "color"})
        scene = {"id": f"s{i}", "visual": visual}
        if duration is not None:
            scene["duration"] = duration
        if kind.startswith("narrated"):  # the offset within a given duration
            scene["narration"] = {"src": f"n{i}.wav", "offsetS": offset if duration is None else duration / 2}
        if fade is not None:
            scene["transition"] = {"type": "fade", "duration": fade}
        out.append(scene)
    return parse_spec({"output": {"fps": FPS}, "scenes": out})


@settings(max_examples=300, deadline=None)
@given(SCENES, PROBED)
def test_the_start_length_is_the_least_the_plan_can_be(scenes, lengths):
    spec = storyboard(scenes)
    probes = {src: SimpleNamespace(duration_s=lengths[k], video_duration_s=lengths[-1 - k], has_audio=False)
              for k, src in enumerate(r.src for r in spec.asset_refs()) if not src.endswith(".png")}
    plan = build_plan(spec, probes)
    grid, known = least_grid(spec.scenes, FPS)
    assert grid.total / FPS <= plan.total_s
    if known:  # nothing probed: the very number the render checks
        assert grid.total / FPS == plan.total_s
        assert [f / FPS for f in grid.frames] == [sc.duration for sc in plan.scenes]
