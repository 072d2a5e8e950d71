"""The part plan of a parallel render (render_job.part_plan, issue 19): parts cut only where a
scene's body starts, frames adding up to the timeline's, balanced by work (checked against a brute
force over every cut), deterministic, never shorter than the floor; short exports stay one part."""
import itertools
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from render_job.graph.timeline import body_starts, segment_frames, timeline_frames, timeline_total_frames  # noqa: E402
from render_job.part_plan import MIN_PART_S, plan_parts, work_units  # noqa: E402
from shared.parts import part_count  # noqa: E402
from render_job.plan import build_plan  # noqa: E402
from shared.spec import parse_spec  # noqa: E402

FPS = 30
PROBES = {"a.png": SimpleNamespace(duration_s=None, width=1280, height=720),
          "c.mp4": SimpleNamespace(duration_s=30.0, has_audio=False, width=3840, height=2160)}
KINDS = ["fade", "cut", "dissolve", "wipeleft", "fade", "cut", "circleopen"]


def storyboard(n, seconds=lambda i: 2.0 + (i * 7 % 5) * 0.75, clip_every=0, probes=PROBES):
    """n scenes of varied lengths and transitions (a cut every few), a 4K clip every `clip_every`."""
    scenes = []
    for i in range(n):
        if clip_every and i % clip_every == clip_every - 1:
            visual = {"type": "video", "src": "c.mp4"}
        elif i % 6 == 5:
            visual = {"type": "title", "text": f"Part {i}"}
        else:
            visual = {"type": "image", "src": "a.png", "motion": ["zoom-in", "none", "pan-left"][i % 3]}
        kind = KINDS[i % len(KINDS)]
        scenes.append({"id": f"s{i}", "visual": visual, "duration": seconds(i),
                       "transition": {"type": "cut"} if kind == "cut" else {"type": kind, "duration": 0.5}})
    return build_plan(parse_spec({"output": {"resolution": "720p", "aspectRatio": "16:9", "fps": FPS,
                                             "quality": "draft"}, "scenes": scenes}), probes)


def transition_spans(plan):
    """[start, end) timeline frames of every transition (end = the next scene's body start)."""
    _, trans = timeline_frames(plan)
    starts = body_starts(plan)
    return [(starts[k + 1] - trans[k], starts[k + 1]) for k in range(len(trans) - 1) if trans[k]]


def part_work(plan, part):
    _, work = work_units(plan)
    return sum(work[part.first_scene:part.last_scene + 1])


@pytest.mark.parametrize("n,k", [(7, 2), (12, 3), (30, 4), (40, 8), (60, 16)])
def test_parts_cover_the_timeline_and_meet_at_body_starts_never_inside_a_transition(n, k):
    plan = storyboard(n)
    parts = plan_parts(plan, k, min_part_s=3.0)
    total = timeline_total_frames(plan)
    assert total == round(plan.total_s * FPS)
    assert [p.index for p in parts] == list(range(len(parts)))
    assert parts[0].first_frame == 0 and parts[-1].end_frame == total
    assert sum(p.frames for p in parts) == total
    assert all(a.end_frame == b.first_frame and a.last_scene + 1 == b.first_scene for a, b in zip(parts, parts[1:]))
    starts = body_starts(plan)
    spans = transition_spans(plan)
    assert spans, "the storyboard has transitions"
    for p in parts[1:]:
        assert p.first_frame == starts[p.first_scene]
        assert not any(a < p.first_frame < b for a, b in spans), p  # never inside a transition
    # a part's frames are exactly its segment's (the segment graphs render them)
    for p in parts:
        assert p.frames == segment_frames(plan, *p.segment_bounds(len(plan.scenes)))


def test_segment_frames_count_the_transition_a_segment_ends_with():
    plan = storyboard(7)
    frames, trans = timeline_frames(plan)
    assert trans[0] == 15  # 0.5 s fade out of scene 0
    # scene 0's body and its whole outgoing fade; the next segment starts at scene 1's body
    assert segment_frames(plan, 0, 1) == frames[0]
    assert segment_frames(plan, 1, None) == timeline_total_frames(plan) - frames[0]


def brute_force_best(plan, k, floor):
    """The least largest work over every way to cut the scenes into k parts of >= floor frames."""
    frames, work = work_units(plan)
    n = len(frames)
    best = None
    for cuts in itertools.combinations(range(1, n), k - 1):
        bounds = (0, *cuts, n)
        if any(sum(frames[a:b]) < floor for a, b in zip(bounds, bounds[1:])):
            continue
        worst = max(sum(work[a:b]) for a, b in zip(bounds, bounds[1:]))
        best = worst if best is None else min(best, worst)
    return best


@pytest.mark.parametrize("n,k,clip_every", [(9, 2, 0), (10, 3, 0), (11, 4, 3), (12, 3, 4)])
def test_parts_are_balanced_as_well_as_any_cut_allows(n, k, clip_every):
    plan = storyboard(n, clip_every=clip_every)
    parts = plan_parts(plan, k, min_part_s=2.0)
    assert len(parts) == k
    best = brute_force_best(plan, k, 2.0 * FPS)
    assert max(part_work(plan, p) for p in parts) == pytest.approx(best, rel=1e-9)
    # and the work is what the frames hold: a 4K clip's frames weigh more than a still's
    if clip_every:
        frames, work = work_units(plan)
        clip = next(i for i, sc in enumerate(plan.scenes) if sc.kind == "video")
        still = next(i for i, sc in enumerate(plan.scenes) if sc.kind == "image" and sc.motion == "none")
        assert work[clip] / frames[clip] > work[still] / frames[still] + 0.3


def test_equal_scenes_make_equal_parts():
    plan = storyboard(64, seconds=lambda i: 3.0)
    parts = plan_parts(plan, 8, min_part_s=5.0)
    works = [part_work(plan, p) for p in parts]
    assert len(parts) == 8
    # parts can only differ by whole scenes: every part within one scene's work of the mean
    _, work = work_units(plan)
    assert max(works) - min(works) <= max(work) + 1e-9


def test_the_same_inputs_give_the_same_parts():
    a = plan_parts(storyboard(40, clip_every=5), 6, min_part_s=4.0)
    b = plan_parts(storyboard(40, clip_every=5), 6, min_part_s=4.0)  # a plan rebuilt from the same spec
    assert a == b and len(a) == 6


def test_no_part_is_shorter_than_the_floor():
    plan = storyboard(30)  # ~99 s
    for floor_s in (5.0, 10.0, 20.0, 40.0):
        parts = plan_parts(plan, 16, min_part_s=floor_s)
        assert all(p.frames >= floor_s * FPS for p in parts), (floor_s, parts)
        # as many parts as the floor allows: one more would need a part under it
        assert len(parts) <= plan.total_s // floor_s
    assert len(plan_parts(plan, 16, min_part_s=1.0)) == 16
    assert len(plan_parts(plan, 16, min_part_s=40.0)) == 2
    # the most parts the floor allows where scenes are long: one more cannot be cut
    small = storyboard(10)
    for floor_s in (4.0, 6.0, 9.0):
        k = len(plan_parts(small, 10, min_part_s=floor_s))
        assert brute_force_best(small, k, floor_s * FPS) is not None
        assert brute_force_best(small, k + 1, floor_s * FPS) is None


def test_short_plans_are_one_part():
    plan = storyboard(4)  # ~12 s
    assert part_count(plan.total_s, threshold_s=60.0, cap=16, min_part_s=MIN_PART_S) == 1
    one = plan_parts(plan, 4, min_part_s=MIN_PART_S)  # not two parts of >= 10 s in 12 s
    assert one == (one[0],) and (one[0].first_scene, one[0].last_scene, one[0].first_frame,
                                 one[0].frames) == (0, 3, 0, round(plan.total_s * FPS))
    assert plan_parts(plan, 1) == one and plan_parts(plan, 0) == one


def test_part_count_from_the_planned_length():
    assert part_count(59.9, threshold_s=60.0, cap=16, min_part_s=MIN_PART_S) == 1
    assert part_count(60.0, threshold_s=60.0, cap=16, min_part_s=MIN_PART_S) == 6       # 10 s parts
    assert part_count(600.0, threshold_s=60.0, cap=16, min_part_s=MIN_PART_S) == 16     # capped
    assert part_count(600.0, threshold_s=60.0, cap=1, min_part_s=MIN_PART_S) == 1
    assert part_count(95.0, threshold_s=60.0, cap=16, min_part_s=30.0) == 3


def test_labels_name_the_scenes():
    parts = plan_parts(storyboard(12), 3, min_part_s=3.0)
    assert parts[1].label == f"part 1 (scenes[{parts[1].first_scene}]..scenes[{parts[1].last_scene}])"
    assert parts[-1].segment_bounds(12) == (parts[-1].first_scene, None)
    assert parts[0].segment_bounds(12) == (0, parts[1].first_scene)


def test_part_commands_encode_like_the_single_render_and_burn_the_parts_own_frames():
    from render_job.graph.captions import CaptionOverlay
    from render_job.graph.command import build_command
    from render_job.graph.parts import build_audio_command, build_part_command, build_stitch_command, part_overlay

    plan = storyboard(7)
    single = build_command(plan, {"a.png": "a.png"}, "out.mp4", "captions.ass")
    part = build_part_command(plan, 40, 50, "part-0001.mp4", ass_path="captions.ass")
    x264 = single[single.index("-c:v"):single.index("-c:v") + 18]
    assert part[part.index("-c:v"):part.index("-c:v") + 18] == x264  # codec, preset/CRF, pix_fmt, rate, tags
    assert part[part.index("-frames:v") + 1] == "50" and "-an" in part and "+cgop" in part
    assert part[part.index("-force_key_frames") + 1] == "expr:eq(n,0)"
    graph = part[part.index("-filter_complex") + 1]
    assert "setpts=N+40[tl]" in graph and graph.endswith("[vout]setpts=N[vpart]")  # libass sees timeline times
    ov = CaptionOverlay(0, 600, 1280, 80, "atlas.png", ((0, 30), (1, 45), (0, 25)))
    assert part_overlay(ov, 20, 40).segments == ((0, 10), (1, 30))
    graph = build_part_command(plan, 20, 40, "p.mp4", caption_overlay=ov)
    assert "setpts=N[tl]" in ";".join(graph) and "loop=loop=9:" in ";".join(graph)  # overlay cut, no shift
    with pytest.raises(ValueError):
        part_overlay(ov, 90, 20)
    mix, audio = build_audio_command(plan, {}, "audio.m4a")
    assert mix[-1] == "pipe:1" and audio[audio.index("-i") + 1] == "pipe:0"  # the mix piped into the encoder
    assert "anullsrc" in mix[mix.index("-filter_complex") + 1]  # no audio in the plan: silence
    for opt in ("-c:a", "-b:a", "-ar", "-ac"):
        assert audio[audio.index(opt) + 1] == single[single.index(opt) + 1], opt
    stitch = build_stitch_command(plan, "parts.txt", "audio.m4a", "out.mp4")
    assert stitch[stitch.index("-c") + 1] == "copy" and "+faststart" in stitch



def test_a_part_gives_the_frames_next_to_its_joins_more_bits_with_x264_zones():
    """join_zones: a later part's first frame (its IDR) and a part's last frame before a transition
    get x264 zones; not the timeline's first and last frames, not the frame before a cut (one encode
    treats it alike), and a part covering the whole timeline encodes as the single render does."""
    from render_job.graph.command import build_command
    from render_job.graph.parts import PART_GOP_ARGS, build_part_command, join_zones

    plan = storyboard(7)  # scenes 0..6 leave by fade, cut, dissolve, wipeleft, fade, cut (6 is the last)
    starts, total = body_starts(plan), timeline_total_frames(plan)
    assert [sc.transition for sc in plan.scenes[:3]] == ["fade", "cut", "dissolve"]
    head, tail = "0,0,b=1.3", lambda n: f"{n - 1},{n - 1},b=2.5"
    first = starts[1]  # part 0 runs on into scene 1 through a fade
    assert join_zones(plan, 0, first) == ["-x264-params", f"zones={tail(first)}"]
    # scenes[1] alone: a cut follows it, so only its first frame
    assert join_zones(plan, starts[1], starts[2] - starts[1]) == ["-x264-params", f"zones={head}"]
    n = starts[3] - starts[2]  # scenes[2]: a dissolve follows
    assert join_zones(plan, starts[2], n) == ["-x264-params", f"zones={head}/{tail(n)}"]
    assert join_zones(plan, starts[5], total - starts[5]) == ["-x264-params", f"zones={head}"]
    assert join_zones(plan, 0, total) == []

    argv = build_part_command(plan, starts[2], n, "part-0002.mp4")
    at = argv.index("-x264-params")
    assert argv[at - len(PART_GOP_ARGS):at] == PART_GOP_ARGS and argv[at + 1] == f"zones={head}/{tail(n)}"
    assert argv[at + 2:at + 4] == ["-frames:v", str(n)]
    whole = build_part_command(plan, 0, total, "part-0000.mp4")
    single = build_command(plan, {"a.png": "a.png"}, "out.mp4", "captions.ass")
    assert "-x264-params" not in whole and "-x264-params" not in single

def test_the_cuts_do_not_depend_on_the_pictures_probes():
    """Every task of a parallel render cuts the same parts although a part task probes only its own
    pictures and the audio task and the stitch none (render_job.prepare): a still's probe (its pixel
    count) weighs in neither the timing nor the work model."""
    with_pictures = storyboard(40, clip_every=7)
    without = storyboard(40, clip_every=7, probes={"c.mp4": PROBES["c.mp4"]})
    assert {sc.src_pixels for sc in with_pictures.scenes if sc.kind == "image"} == {1280 * 720}
    assert {sc.src_pixels for sc in without.scenes if sc.kind == "image"} == {0}
    for k in (2, 4, 8):
        assert plan_parts(without, k, 5.0) == plan_parts(with_pictures, k, 5.0)


@pytest.mark.parametrize("n,k", [(7, 2), (30, 4)])
def test_a_part_is_encoded_in_one_chunk_per_scene_body_covering_its_frames(n, k):
    from render_job.part_render import chunk_file, scene_chunks

    plan = storyboard(n)
    starts = body_starts(plan)
    for part in plan_parts(plan, k, min_part_s=3.0):
        chunks = scene_chunks(plan, part)
        assert [c.first_scene for c in chunks] == list(range(part.first_scene, part.last_scene + 1))
        assert [c.first_frame for c in chunks] == [starts[j] for j in range(part.first_scene, part.last_scene + 1)]
        assert chunks[0].first_frame == part.first_frame and chunks[-1].end_frame == part.end_frame
        assert all(a.end_frame == b.first_frame for a, b in zip(chunks, chunks[1:]))
        assert {c.index for c in chunks} == {part.index}
    assert chunk_file(3, 12) == "part-0003-scene-0012.mp4"
