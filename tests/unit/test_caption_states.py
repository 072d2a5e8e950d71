"""Caption states, segments and the overlay graph (render_job.graph.captions, pure) and the states' ASS
(render_job.caption_overlay)."""
from __future__ import annotations

from render_job.caption_overlay import states_ass
from render_job.graph.captions import CaptionOverlay, caption_states, overlay_graph
from render_job.plan import Cue


def test_states_follow_libass_frame_rule_and_cover_every_frame():
    fps, total = 30, 300  # 10 s
    cues = [Cue(0.0, 4.5, "one"), Cue(4.5, 9.0, "two"), Cue(9.5, 10.0, "three")]
    states, segments = caption_states(cues, fps, total)
    assert [[c.text for c in s] for s in states] == [["one"], ["two"], ["three"]]
    # cue [start, end) is on frame n when start <= n / fps < end; 9.0 .. 9.5 s has no caption
    assert segments == [(1, 135), (2, 135), (0, 15), (3, 15)]
    assert sum(n for _, n in segments) == total


def test_overlapping_cues_make_combined_states_and_repeats_reuse_a_state():
    cues = [Cue(0.0, 2.0, "a"), Cue(1.0, 3.0, "b"), Cue(3.0, 4.0, "a")]
    states, segments = caption_states(cues, 10, 50)
    assert [[c.text for c in s] for s in states] == [["a"], ["a", "b"], ["b"], ["a"]]
    assert segments == [(1, 10), (2, 10), (3, 10), (4, 10), (0, 10)]


def test_off_frame_times_round_up_to_the_next_frame_and_empty_or_unseen_cues_are_skipped():
    # 0.01 s at 30 fps: first frame at or after it is frame 1 (0.0333 s); a cue inside one frame
    # interval (0.05 .. 0.06 s) shows on no frame; blank text is never a state
    cues = [Cue(0.01, 0.5, "x"), Cue(0.6, 0.7, "   "), Cue(0.05 + 1, 0.06 + 1, "never")]
    states, segments = caption_states(cues, 30, 60)
    assert [[c.text for c in s] for s in states] == [["x"]]
    assert segments == [(0, 1), (1, 14), (0, 45)]


def test_cue_past_the_end_is_cut_at_the_last_frame():
    states, segments = caption_states([Cue(1.0, 99.0, "long")], 25, 50)
    assert segments == [(0, 25), (1, 25)]


def test_states_ass_times_each_state_over_its_own_second():
    text = states_ass([[Cue(3.0, 4.0, "a")], [Cue(0.0, 9.0, "b: {x}"), Cue(1.0, 2.0, "c")]], 1280, 720, None)
    events = [line for line in text.splitlines() if line.startswith("Dialogue:")]
    assert [e.split(",")[1:3] for e in events] == [["0:00:00.00", "0:00:01.00"], ["0:00:01.00", "0:00:02.00"],
                                                  ["0:00:01.00", "0:00:02.00"]]
    assert events[1].endswith(",b: \\{x\\}")  # escaped exactly as the burn-in script


def test_overlay_graph_repeats_each_atlas_row_for_its_frames_and_overlays_once():
    ov = CaptionOverlay(x=96, y=900, width=1700, height=120, atlas="caption_atlas.png",
                        segments=((0, 15), (1, 120), (0, 30)))
    g = overlay_graph(ov, 14, "[tl]", "[capo]", 30)
    assert g[0] == ("[14:v]scale=out_color_matrix=bt709:out_range=tv,format=yuva420p,"
                    "split=3[cs0][cs1][cs2]")
    assert g[1] == "[cs0]crop=1700:120:0:0,loop=loop=14:size=1:start=0,settb=1/30,setpts=N[cz0]"
    assert g[2] == "[cs1]crop=1700:120:0:120,loop=loop=119:size=1:start=0,settb=1/30,setpts=N[cz1]"
    assert g[3] == "[cs2]crop=1700:120:0:0,loop=loop=29:size=1:start=0,settb=1/30,setpts=N[cz2]"
    assert g[4] == "[cz0][cz1][cz2]concat=n=3:v=1:a=0,settb=1/30,setpts=N[capv]"
    assert g[5] == "[tl][capv]overlay=x=96:y=900:format=yuv420:eof_action=pass[capo]"
    assert len(g) == 6


def test_ass_event_times_land_on_the_frame_grid():
    from render_job.subtitles import _frame_ms, ass_text
    assert _frame_ms(0.125, 24) == 120     # frame 3 (0.125 s): 120 ms <= 125 ms < frame 4
    assert _frame_ms(1 / 6, 24) == 160     # frame 4 (0.1667 s): not 170, which frame 4 would miss
    assert _frame_ms(2.13, 24) == 2160     # first frame at or after 2.13 s is 52 (2.1667 s), 51 is 2.125 s
    assert _frame_ms(0.5, 30) == 500 and _frame_ms(0.0, 60) == 0
    assert _frame_ms(2.13, None) == 2130   # no fps: the nearest millisecond, as before
    for fps in (24, 25, 30, 60):           # every frame boundary: after the previous frame, at or before its own
        for n in range(1, 200):
            ms = _frame_ms(n / fps, fps)
            assert ms % 10 == 0 and (n - 1) / fps * 1000 < ms <= n / fps * 1000 + 1e-9
    # a cue between two frames (0.05-0.06 s at 24 fps) is on no frame: no event is written
    text = ass_text([Cue(0.05, 0.06, "never"), Cue(0.1, 0.2, "shown")], 1280, 720, None, fps=24)
    assert "never" not in text and "shown" in text
