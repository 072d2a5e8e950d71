"""shared/parts.py: dispatch's part count from the spec's least length, the pieces' completeness and
the job's progress over its tasks (issue 19)."""
from shared.parts import Pieces, job_stage, least_total_s, part_count, planned_parts, render_progress, stitch_progress


def color(seconds):
    return {"id": f"c{seconds}", "visual": {"type": "color"}, "duration": seconds}


def test_the_count_rule():
    assert part_count(119.9, 120, 16, 10) == 1  # below the threshold: today's single task
    assert part_count(120, 120, 16, 10) == 12
    assert part_count(600, 120, 16, 10) == 16  # the cap
    assert part_count(600, 120, 1, 10) == 1


def test_dispatch_counts_scenes_without_duration_at_their_least():
    narrated = {"scenes": [{"id": f"n{i}", "visual": {"type": "color"}, "narration": {"src": f"n{i}.wav"}}
                           for i in range(10)]}
    assert least_total_s(narrated) == 5.0  # 10 x the 0.5 s pause: the narration may be short
    assert planned_parts(narrated, 120, 16, 10) == 1
    assert least_total_s({"scenes": [color(60), color(70)]}) == 130.0
    assert planned_parts({"scenes": [color(60), color(70)]}, 120, 16, 10) == 13


def test_pieces_are_complete_with_every_part_of_one_k_and_the_audio():
    told = 4
    assert not Pieces(told, {0: (2, 30)}, None).complete()
    assert Pieces(told, {0: (2, 30)}, None).missing() == ["part 1", "the audio"]
    assert not Pieces(told, {0: (2, 30), 1: (2, 30)}, None).complete()
    assert Pieces(told, {0: (2, 30), 1: (2, 30)}, 2).complete()
    assert not Pieces(told, {0: (2, 30), 1: (3, 30)}, 2).complete()  # disagreeing plans never stitch
    assert Pieces(told, {}, None).view() == {"count": 4, "rendered": 0, "audio": False}
    assert Pieces(told, {1: (3, 9)}, 3).view() == {"count": 3, "rendered": 1, "audio": True}


def test_progress_is_the_mean_over_the_parts_and_audio_then_the_stitch():
    pieces = Pieces(4, {0: (2, 30)}, None)  # k = 2: tasks 2 and 3 have nothing to do
    assert render_progress(pieces, {("part", 1): 0.5, ("audio", 4): 0.5}) == 0.05 + 0.85 * 2 / 3
    assert render_progress(Pieces(4), {}) == 0.05
    assert stitch_progress("stitching", 0.5) == 0.925 and stitch_progress("uploading", 1.0) == 1.0
    assert [job_stage("part", s) for s in ("preparing", "rendering", "uploading", None)] == [
        "preparing", "rendering", "rendering", None]
    assert job_stage("stitch", "uploading") == "uploading" and job_stage("stitch", None) == "stitching"
