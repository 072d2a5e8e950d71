"""render_job.graph.audio.lanes: interval colouring of the mix's sounds (pure)."""
from render_job.graph.audio import lanes, start_sample


def test_sounds_that_never_overlap_share_one_lane_in_start_order():
    assert lanes([(100, 200), (0, 100), (200, 300)]) == [[1, 0, 2]]  # touching ends do not overlap


def test_overlapping_sounds_get_as_many_lanes_as_overlap_at_once():
    # crossfades: every sound runs into the next one's start; three at once around 250
    pieces = [(0, 120), (100, 260), (240, 400), (250, 300), (380, 500)]
    got = lanes(pieces)
    assert got == [[0, 2], [1, 4], [3]]
    for lane in got:  # no two sounds of a lane overlap, each lane in start order
        for a, b in zip(lane, lane[1:]):
            assert pieces[a][1] <= pieces[b][0]
    assert sorted(i for lane in got for i in lane) == list(range(len(pieces)))


def test_a_freed_lane_is_reused_before_a_new_one_opens():
    assert lanes([(0, 50), (10, 20), (30, 40), (45, 60)]) == [[0], [1, 2, 3]]
    assert lanes([]) == []


def test_start_sample_is_whole_milliseconds_as_adelay_placed_sounds():
    assert start_sample(0) == 0
    assert start_sample(5.9) == 5900 * 48
    assert start_sample(1 / 30) == 33 * 48  # 33.333 ms: the millisecond, not the sample (1600)
    assert (start_sample(2.0004), start_sample(2.0006)) == (2000 * 48, 2001 * 48)
