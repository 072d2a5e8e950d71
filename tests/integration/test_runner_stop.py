"""runner.stopped_by (issue 19, render_job.part_render.render_whole's audio beside the scene chunks):
an FFmpeg run in a side thread ends with the render it ran beside."""
import sys
import time


def test_runner_stops_an_ffmpeg_of_a_thread_whose_render_ended(tmp_path):
    """runner.stopped_by: a run in a side thread (render_whole's audio) is killed within 0.5 s of its
    event, with a TransientError naming why; the same run outside stopped_by is not affected."""
    import threading

    from render_job.runner import run_ffmpeg, stopped_by
    from shared.errors import TransientError

    busy = tmp_path / "busy_ffmpeg.py"  # progresses for 30 s
    busy.write_text("import time\nfor i in range(300):\n"
                    "    print(f'out_time_us={i * 100000}', flush=True); time.sleep(0.1)\n")
    stop, caught = threading.Event(), []

    def side() -> None:
        with stopped_by(stop):
            try:
                run_ffmpeg([sys.executable, str(busy)], total_s=30.0, what="ffmpeg audio")
            except TransientError as exc:
                caught.append((exc.code, str(exc)))

    thread = threading.Thread(target=side)
    thread.start()
    time.sleep(0.5)
    t = time.monotonic()
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive() and time.monotonic() - t < 2.0
    assert caught and caught[0][0] == "ffmpeg_killed" and "ffmpeg audio stopped" in caught[0][1]
    quick = tmp_path / "quick_ffmpeg.py"
    quick.write_text("print('out_time_us=100000', flush=True)\nprint('progress=end', flush=True)\n")
    assert run_ffmpeg([sys.executable, str(quick)], total_s=0.1) == []  # stop is set, but not for this thread
