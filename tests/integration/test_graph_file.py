"""A filter graph too long for one command-line argument goes through a file (`-/filter_complex`)."""
from __future__ import annotations

import subprocess

import av

from render_job.graph.command import GRAPH_ARG_LIMIT, GRAPH_FILE, build_command, graph_via_file
from render_job.plan import build_plan
from render_job.runner import find_ffmpeg
from shared.config import Settings
from shared.spec import parse_spec


def _spec(n: int, **output) -> dict:
    motions = ["zoom-in", "pan-left", "pan-up", "zoom-out"]
    return {"output": {"resolution": "720p", "fps": 25, "quality": "draft", **output},
            "scenes": [{"id": f"s{i}", "visual": {"type": "image", "src": f"a{i}.png", "motion": motions[i % 4]},
                        "duration": 2, "transition": {"type": "fade", "duration": 0.5}} for i in range(n)]}


def test_the_largest_storyboard_keeps_every_argument_under_the_kernel_limit():
    n = Settings().max_scenes
    plan = build_plan(parse_spec(_spec(n, resolution="1080p")), {})
    argv = build_command(plan, {f"a{i}.png": f"assets/a{i:03d}.png" for i in range(n)}, "o.mp4")
    graph = argv[argv.index("-filter_complex") + 1]
    assert len(graph) > GRAPH_ARG_LIMIT  # 200 scenes: ~150-190 KB
    moved, files = graph_via_file(argv)
    assert "-filter_complex" not in moved and moved[moved.index("-/filter_complex") + 1] == GRAPH_FILE
    assert files == {GRAPH_FILE: graph}
    assert max(len(a) for a in moved) < 128 * 1024
    short = build_command(build_plan(parse_spec(_spec(3)), {}), {f"a{i}.png": "x.png" for i in range(3)}, "o.mp4")
    assert graph_via_file(short) == (short, {})


def test_ffmpeg_renders_from_the_graph_file(tmp_path):
    spec = {"output": {"resolution": "720p", "fps": 25, "quality": "draft"},
            "scenes": [{"id": f"c{i}", "visual": {"type": "color", "color": c}, "duration": 1,
                        "transition": {"type": "wipeleft", "duration": 0.4}}
                       for i, c in enumerate(["#ff0000", "#00ff00", "#0000ff"])]}
    plan = build_plan(parse_spec(spec), {})
    argv, files = graph_via_file(build_command(plan, {}, "out.mp4", ffmpeg=find_ffmpeg()), limit=10)
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    with av.open(str(tmp_path / "out.mp4")) as c:
        frames = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    assert frames == round(plan.total_s * 25) == round((3 - 2 * 0.4) * 25)
