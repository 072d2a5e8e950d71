"""Segmented renders (render_job.graph: timeline.segment_cuts, command.build_segment_command): where the timeline is
cut, and that the segments' graphs add up to exactly the single graph's frames and transitions."""
import re
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from render_job.graph.command import build_command, build_segment_command  # noqa: E402
from render_job.graph.timeline import scene_memory_mb, segment_cuts, segment_frames, timeline_graph  # noqa: E402
from render_job.plan import build_plan  # noqa: E402
from shared.spec import parse_spec  # noqa: E402

FPS = 30
# 7 scenes: the transitions into scenes 2, 4 and 6 (the cuts at 2 scenes per segment) are a cut,
# a 0.4 s fade and a 0.3 s dissolve; scene 3 is a clip with sound
TRANSITIONS = [("fade", 0.4), ("cut", 0), ("wipeleft", 0.3), ("fade", 0.3), ("circleopen", 0.4),
               ("dissolve", 0.3), ("fade", 0.5)]
PROBES = {"a.png": SimpleNamespace(duration_s=None), "c.mp4": SimpleNamespace(duration_s=2.0, has_audio=True)}


def seven_scenes():
    scenes = []
    for i, (kind, dur) in enumerate(TRANSITIONS):
        if i == 2:
            visual = {"type": "title", "text": "Part two"}
        elif i == 3:
            visual = {"type": "video", "src": "c.mp4", "volume": 0.8, "fit": "blur"}
        elif i == 4:
            visual = {"type": "color", "color": "#203040"}
        else:
            visual = {"type": "image", "src": "a.png", "motion": ["zoom-in", "pan-left", "", "", "", "zoom-out",
                                                                    "pan-up"][i]}
        scene = {"id": f"s{i}", "visual": visual, "duration": 1.0 + 0.25 * (i % 3)}
        if kind != "cut" or i < len(TRANSITIONS) - 1:
            scene["transition"] = {"type": kind, "duration": dur} if kind != "cut" else {"type": "cut"}
        scenes.append(scene)
    return parse_spec({"output": {"resolution": "720p", "aspectRatio": "16:9", "fps": FPS, "quality": "draft"},
                       "scenes": scenes})


@pytest.fixture
def plan():
    return build_plan(seven_scenes(), PROBES)


def bounds_of(cuts):
    return list(zip([0] + cuts, cuts + [None]))


def graph_of(argv):
    return argv[argv.index("-filter_complex") + 1]


def test_segment_cuts_every_max_scenes_and_none_for_small_plans(plan):
    assert segment_cuts(plan, 2) == [2, 4, 6]
    assert segment_cuts(plan, 3) == [3, 6]
    assert segment_cuts(plan, 6) == [6]
    assert segment_cuts(plan, 7) == []   # fits in one graph
    assert segment_cuts(plan, 0) == []   # segmenting off


@pytest.mark.parametrize("max_scenes", [1, 2, 3, 5, 6])
def test_segments_frames_add_up_to_the_whole_timeline(plan, max_scenes):
    total = round(plan.total_s * FPS)
    frames = [segment_frames(plan, a, b) for a, b in bounds_of(segment_cuts(plan, max_scenes))]
    assert sum(frames) == total == segment_frames(plan, 0, None)
    assert all(f > 0 for f in frames)


def test_each_transition_is_rendered_once_across_segments(plan):
    single = ";".join(timeline_graph(plan))
    xfades = re.findall(r"xfade=transition=(\w+):duration=([\d.]+)", single)
    assert [k for k, _ in xfades] == ["fade", "wipeleft", "fade", "circleopen", "dissolve"]  # not the cut
    parts = [";".join(timeline_graph(plan, "[tl]", a, b)) for a, b in bounds_of(segment_cuts(plan, 2))]
    assert [x for p in parts for x in re.findall(r"xfade=transition=(\w+):duration=([\d.]+)", p)] == xfades
    # segment 2 starts at scene 4's body: it drops its head, the 0.3 s fade's 9 frames
    assert "[v4]split=2[b4][t4]" in parts[2] and "[b4]trim=start_frame=9:end_frame=" in parts[2]
    # segment 1 ends inside scene 4: only its head, cut to the fade's 9 frames
    assert "[v4]trim=end_frame=9[h4o]" in parts[1]


def test_segment_commands_read_only_their_scenes_and_write_raw_frames(plan):
    inputs = {"a.png": "assets/a.png", "c.mp4": "assets/c.mp4"}
    cuts = segment_cuts(plan, 2)
    argvs = [build_segment_command(plan, inputs, a, b) for a, b in bounds_of(cuts)]
    used = [sorted(set(int(i) for i in re.findall(r"\[v(\d+)\]", graph_of(a)))) for a in argvs]
    assert used == [[0, 1], [2, 3, 4], [4, 5, 6], [6]]  # not 2 in the first: a cut
    assert argvs[1].count("-i") == 1  # scene 2 (title) and 4 (colour) have no input file; the clip does
    for a in argvs:
        assert a[-7:] == ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"]
        assert "-c:v" not in a and "aac" not in a


def test_encoding_run_reads_the_pipe_and_keeps_audio_and_captions(plan):
    inputs = {"a.png": "assets/a.png", "c.mp4": "assets/c.mp4"}
    argv = build_command(plan, inputs, "out.mp4", "captions.ass", video_pipe=True)
    i = argv.index("pipe:0")
    assert argv[i - 9:i + 1] == ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", "1280x720",
                                 "-framerate", "30", "-i", "pipe:0"]
    graph = graph_of(argv)
    assert not re.search(r"\[v\d+\]", graph) and "xfade" not in graph  # no scene is rendered here
    assert graph.startswith("[0:v]setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709,")
    # the clip is opened again for its sound only (input 1), mixed like in a single run
    assert argv[argv.index("assets/c.mp4") - 5:argv.index("assets/c.mp4") + 1][0] == "-ss"
    assert "[1:a]aresample=48000" in graph and "volume=0.8" in graph
    assert "subtitles=filename=captions.ass" in graph and "libx264" in argv


def clip_plan(n, width, height, resolution="1080p"):
    spec = parse_spec({"output": {"resolution": resolution, "aspectRatio": "16:9", "fps": 30, "quality": "draft"},
                       "scenes": [{"id": f"c{i}", "visual": {"type": "video", "src": "c.mp4"}, "duration": 1.0}
                                  for i in range(n)]})
    probes = {"c.mp4": SimpleNamespace(duration_s=2.0, has_audio=False, width=width, height=height)}
    return build_plan(spec, probes)


def test_clip_scenes_are_budgeted_by_their_size():
    # a 4K clip costs ~185 MB in a graph (measured): 8 fit in the 1500 MB budget, not 24
    four_k = clip_plan(12, 3840, 2160)
    assert four_k.scenes[0].src_pixels == 3840 * 2160
    assert scene_memory_mb(four_k, four_k.scenes[0]) == pytest.approx(183, abs=1)
    assert segment_cuts(four_k, 24) == [8]
    # twelve 1080p clips (~121 MB each) fit in one graph; twenty do not
    assert segment_cuts(clip_plan(12, 1920, 1080), 24) == []
    assert segment_cuts(clip_plan(20, 1920, 1080), 24) == [12]
    assert segment_cuts(clip_plan(20, 1920, 1080), 0) == []  # segmenting off


def test_stills_are_capped_by_the_scene_count_and_the_benchmark_storyboard_is_one_graph():
    spec = parse_spec({"output": {"resolution": "1080p", "aspectRatio": "16:9", "fps": 30, "quality": "standard"},
                       "scenes": [{"id": f"s{i}", "visual": {"type": "image", "src": "a.png", "motion": "zoom-in"},
                                   "duration": 5, "transition": {"type": "fade", "duration": 0.5}}
                                  for i in range(60)]})
    plan = build_plan(spec, PROBES)
    assert scene_memory_mb(plan, plan.scenes[0]) == 60
    assert segment_cuts(plan, 24) == [24, 48]
    twelve = build_plan(parse_spec({**spec.model_dump(by_alias=True, exclude_none=True),
                                    "scenes": spec.model_dump(by_alias=True, exclude_none=True)["scenes"][:12]}),
                        PROBES)
    assert segment_cuts(twelve, 24) == []  # 12 x 60 MB: as `make bench` renders it, one graph
