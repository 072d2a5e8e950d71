"""The render task's memory budget (render_job.memory): FFmpeg's peak against the measurements of
issue 15, the parts of the budget, the output cap, the files freed after each segment."""
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from render_job import memory  # noqa: E402
from render_job.graph.command import build_command, build_segment_command  # noqa: E402
from render_job.graph.timeline import SEGMENT_BUDGET_MB, scene_memory_mb, segment_cuts  # noqa: E402
from render_job.plan import build_plan  # noqa: E402
from shared.errors import PermanentRenderError  # noqa: E402
from shared.spec import parse_spec  # noqa: E402

GIB = 1024 ** 3
PROBES = {"a.png": SimpleNamespace(duration_s=None), "b.png": SimpleNamespace(duration_s=None),
          "v.wav": SimpleNamespace(duration_s=4.0, has_audio=True),
          "m.wav": SimpleNamespace(duration_s=60.0, has_audio=True)}


def story_plan(n, resolution="1080p", duration=5.0, narration=True, music=True, stills=("a.png",)):
    """n scenes of a still (with Ken Burns and a fade) and a narration each, plus music: issue 15's storyboards."""
    scenes = [{"id": f"s{i}", "duration": duration,
               "visual": {"type": "image", "src": stills[i % len(stills)], "motion": "zoom-in"},
               "transition": {"type": "fade", "duration": 0.5}} for i in range(n)]
    if narration:
        for sc in scenes:
            sc["narration"] = {"src": "v.wav"}
    spec = {"output": {"resolution": resolution, "aspectRatio": "16:9", "fps": 30, "quality": "standard"},
            "scenes": scenes}
    if music:
        spec["music"] = {"src": "m.wav", "loop": True}
    return build_plan(parse_spec(spec), PROBES)


@pytest.mark.parametrize("scenes, measured_gib", [(12, 1.09), (36, 2.17), (120, 2.24)])
def test_ffmpeg_peak_covers_the_measured_peaks_of_issue_15(scenes, measured_gib):
    """1080p30 standard, a still and a narration per scene, segments of 24: F is at or above what was
    measured (all FFmpeg processes at once), and within 12 % of it."""
    plan = story_plan(scenes)
    cuts = segment_cuts(plan, 24)
    assert bool(cuts) == (scenes > 24)
    f = memory.ffmpeg_peak_bytes(plan, cuts) / GIB
    assert measured_gib <= f <= measured_gib * 1.12, f


def test_ffmpeg_peak_depends_on_scenes_per_segment_and_resolution_not_length():
    p200 = story_plan(200)
    f200 = memory.ffmpeg_peak_bytes(p200, segment_cuts(p200, 24))
    assert 2.3 * GIB < f200 < 2.5 * GIB  # the longest storyboard: flat, ~2.4 GiB
    assert memory.ffmpeg_peak_bytes(p200, segment_cuts(p200, 12)) < f200 - 600 * memory.MIB
    assert memory.ffmpeg_peak_bytes(p200, []) > 12 * GIB  # one graph of 200 scenes: why segments exist
    p720 = story_plan(200, "720p")
    assert memory.ffmpeg_peak_bytes(p720, segment_cuts(p720, 24)) < 0.55 * f200


def big_stills_plan(n, width, height):
    """The review's storyboard (issue 15, finding 1): 1080p24 draft, n x 1 s scenes of one width x height
    still, zoom-in / zoom-out / pan-left in turn, 0.25 s fades, no sound."""
    scenes = [{"id": f"s{i}", "duration": 1.0,
               "visual": {"type": "image", "src": "t.png", "motion": ("zoom-in", "zoom-out", "pan-left")[i % 3]},
               "transition": {"type": "fade", "duration": 0.25}} for i in range(n)]
    spec = {"output": {"resolution": "1080p", "aspectRatio": "16:9", "fps": 24, "quality": "draft"}, "scenes": scenes}
    return build_plan(parse_spec(spec), {"t.png": SimpleNamespace(duration_s=None, width=width, height=height)})


@pytest.mark.parametrize("width, height, measured_mib", [
    (1920, 1080, 1500),   # a frame-sized still (the 1x copy of a 3840x2160 one)
    (1920, 2560, 1848),   # a portrait phone photo's 1x copy (4:4:4 JPEG)
    (1920, 4096, 2144),   # the 1x copy of a 3840x8192 still (4:4:4 JPEG)
    (1920, 8192, 2206),   # an RGB PNG just covering the frame: FFmpeg reads it as it is
    (3840, 8192, 2953),   # as the review measured it before such stills were copied at 1x
])
def test_stills_larger_than_the_frame_are_budgeted_by_their_pixels(width, height, measured_mib):
    """Peak RSS of the one graph (GNU time, the render's only FFmpeg run) of 24 such scenes, measured
    on this machine: F, the budget, is at or above it. It used to be 1890 MiB whatever the still's
    size (every still counted frame-sized)."""
    plan = big_stills_plan(24, width, height)
    f = memory.ffmpeg_peak_bytes(plan, []) / memory.MIB
    assert f >= measured_mib, f
    assert plan.scenes[0].src_pixels == width * height
    assert f <= measured_mib * 1.3 or width * height > 8e6, f  # not far above, for the stills measured
    # segment_cuts sees the same cost: a segment of such scenes stays within its budget (1500 MB)
    cuts = segment_cuts(plan, 24)
    assert all(sum(scene_memory_mb(plan, plan.scenes[i]) for i in r) <= SEGMENT_BUDGET_MB + scene_memory_mb(
        plan, plan.scenes[0]) for r in memory.segment_scenes(24, cuts))
    assert (cuts == []) == (width * height <= 1920 * 1080)


def test_output_estimate_grows_with_length_and_is_capped_in_the_budget():
    long = story_plan(200, duration=9.0 + 0.5 * 199 / 200)  # 1800 s
    assert long.total_s == pytest.approx(1800, abs=1)
    est = memory.output_estimate_bytes(long)
    assert 1.2e9 < est < 1.6e9  # 0.1 bit per pixel and frame at 1080p30 + 192 kbit/s audio
    b = memory.budget(long, segment_cuts(long, 24), media_bytes=2 * GIB, limit=8 * GIB,
                      limit_source="RENDER_MEMORY_BYTES", max_output_bytes=1 * GIB)
    assert b.output == 1 * GIB and b.output_cap == 1 * GIB and b.output_cap_source == "EXPORT_MAX_OUTPUT_BYTES"


def test_the_longest_storyboard_with_the_largest_media_fits_the_deployed_memory():
    """200 scenes, 1800 s at 1080p, EXPORT_MAX_JOB_BYTES of media: within RENDER_MEMORY_BYTES (8 GiB)
    with the whole EXPORT_MAX_OUTPUT_BYTES (2 GiB) as the output cap."""
    long = story_plan(200, duration=9.0 + 0.5 * 199 / 200)
    b = memory.budget(long, segment_cuts(long, 24), media_bytes=2 * GIB, limit=8 * GIB,
                      limit_source="RENDER_MEMORY_BYTES", max_output_bytes=2 * GIB)
    assert b.need == b.ffmpeg + b.media + b.output + b.overhead
    assert b.need < 7 * GIB
    memory.check_budget(b, "1080p")  # fits: no error
    assert b.output_cap == 2 * GIB


def test_over_the_limit_names_the_setting_the_estimate_its_parts_and_what_to_do():
    plan = story_plan(36)
    b = memory.budget(plan, segment_cuts(plan, 24), media_bytes=1_500_000_000, limit=3 * GIB,
                      limit_source="RENDER_MEMORY_BYTES", max_output_bytes=2 * GIB)
    with pytest.raises(PermanentRenderError) as err:
        memory.check_budget(b, "1080p")
    msg = err.value.message
    assert err.value.code == "memory_limit"
    assert f"needs an estimated {b.need / 1e9:.2f} GB of memory" in msg
    assert "over the render task's 3.22 GB (RENDER_MEMORY_BYTES)" in msg
    assert f"FFmpeg {b.ffmpeg / 1e9:.2f} GB (1080p), media files 1.50 GB" in msg
    assert "fewer or smaller media files" in msg and "720p" in msg


def test_the_output_cap_is_the_memory_left_when_less_than_the_setting():
    plan = story_plan(12)
    b = memory.budget(plan, [], media_bytes=100 * memory.MIB, limit=3 * GIB, limit_source="RENDER_MEMORY_BYTES",
                      max_output_bytes=2 * GIB)
    left = 3 * GIB - b.ffmpeg - b.media - b.overhead
    assert 0 < left < 2 * GIB
    assert b.output_cap == left and "RENDER_MEMORY_BYTES" in b.output_cap_source


def test_job_bytes_over_the_limit_name_the_setting_the_total_and_the_files():
    memory.check_job_bytes([("a.mp4", 1_000_000_000), ("b.mp4", 1_000_000_000)], 2147483648)  # fine
    with pytest.raises(PermanentRenderError) as err:
        memory.check_job_bytes([("a.mp4", 700_000_000), ("gs://lib/b.mp4", 1_500_000_000), ("c.png", 1)],
                               2147483648)
    assert err.value.code == "job_too_large"
    assert err.value.message == ("media add up to 2,200,000,001 bytes, over EXPORT_MAX_JOB_BYTES = 2,147,483,648 "
                                 "bytes (2.0 GiB): gs://lib/b.mp4 (1,500,000,000 bytes), a.mp4 (700,000,000 "
                                 "bytes), c.png (1 bytes)")


def test_size_limit_goes_before_the_output_file():
    assert memory.with_size_limit(["ffmpeg", "-i", "x", "-y", "out.mp4"], 123) == [
        "ffmpeg", "-i", "x", "-y", "-fs", "123", "out.mp4"]


def test_second_pass_needs_two_copies_and_the_overhead():
    assert memory.second_pass_fits(3 * GIB, 8 * GIB)
    assert not memory.second_pass_fits(4 * GIB, 8 * GIB)


def test_segments_free_the_stills_no_later_run_reads():
    """Scenes alternate a.png / b.png, 6 scenes at 2 per segment; c.png only in the last two: every
    still stays until its last segment; narration and music (the encoding run's) never go."""
    plan = story_plan(6, stills=("a.png", "b.png", "a.png", "b.png", "c.png", "c.png"))
    inputs = {"a.png": "assets/a00.png", "b.png": "assets/a01.png", "c.png": "assets/a02.png",
              "v.wav": "assets/a03.wav", "m.wav": "assets/a04.wav"}
    cuts = segment_cuts(plan, 2)
    assert cuts == [2, 4]
    bounds = list(zip([0] + cuts, cuts + [None]))
    segments = [build_segment_command(plan, inputs, a, b) for a, b in bounds]
    encoder = build_command(plan, inputs, "output.mp4", video_pipe=True)
    assert memory.inputs_of(encoder) == {"assets/a03.wav", "assets/a04.wav"}
    # segment 0 reads a, b and (for the fade into scene 2) a again; segment 1 b, a (scene 3, 4: c)
    assert memory.freed_after_segments(encoder, segments) == [[], ["assets/a00.png", "assets/a01.png"],
                                                              ["assets/a02.png"]]


def test_task_memory_limit_takes_the_smaller_cgroup_limit(tmp_path):
    f = tmp_path / "memory.max"
    assert memory.task_memory_limit(8 * GIB, str(f)) == (8 * GIB, "RENDER_MEMORY_BYTES")  # no file
    f.write_text("max\n")
    assert memory.task_memory_limit(8 * GIB, str(f)) == (8 * GIB, "RENDER_MEMORY_BYTES")
    f.write_text(f"{16 * GIB}\n")
    assert memory.task_memory_limit(8 * GIB, str(f)) == (8 * GIB, "RENDER_MEMORY_BYTES")
    f.write_text(f"{4 * GIB}\n")
    assert memory.task_memory_limit(8 * GIB, str(f)) == (4 * GIB, "the container's memory limit (cgroup memory.max)")
