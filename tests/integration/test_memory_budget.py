"""The render task's memory (render_job.memory) through run_export with real FFmpeg and LocalStorage:
a job that cannot fit fails at preflight naming the limit, before any download (EXPORT_MAX_JOB_BYTES)
or before any FFmpeg run (RENDER_MEMORY_BYTES); a video over its size cap fails permanently and is
never uploaded; a segmented render deletes the stills of its finished segments.

FFmpeg runs through a wrapper script that logs each run's arguments and the working directory's
assets/ at its start (deterministic: a segment's files are deleted before the next one starts)."""
import json
import os
import stat
from pathlib import Path

import pytest

from render_job.job import run_export
from render_job.runner import find_ffmpeg
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from tests import media_factory as mf
from tests.fakes import FakeReporter

IN, OUT = "sceneflow-in", "sceneflow-out"
STILLS = ("a.png", "b.png", "c.png")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("memmedia")
    for name, src in zip(STILLS, ("testsrc2", "smptebars", "rgbtestsrc")):
        mf.ff("-f", "lavfi", "-i", f"{src}=s=640x360", "-frames:v", "1", str(d / name))
    mf.tone(d / "voice.wav", 0.4, rate=48000, freq=800)
    return {p.name: p.read_bytes() for p in d.iterdir()}


def storyboard():
    """6 scenes, two per still (a, a, b, b, c, c) with fades, a narration each: at 2 scenes per
    segment, segment 0 reads a and b (the fade into scene 2), segment 1 b and c, segment 2 c."""
    scenes = [{"id": f"s{i}", "duration": 0.5, "visual": {"type": "image", "src": STILLS[i // 2]},
               "narration": {"src": "voice.wav"}, "transition": {"type": "fade", "duration": 0.1}}
              for i in range(6)]
    return {"version": 1, "title": "Memory",
            "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 24, "quality": "draft"},
            "scenes": scenes, "captions": {"burnIn": False, "sidecar": []}}


def wrapper(tmp_path: Path) -> tuple[str, Path]:
    """An FFmpeg that appends "<args>\\t<files in ./assets>" to a log, then runs the real one."""
    log = tmp_path / "ffmpeg-runs.log"
    script = tmp_path / "ffmpeg-wrapper.sh"
    real = find_ffmpeg(os.environ.get("FFMPEG_BINARY") or None)
    script.write_text(f'#!/bin/sh\nprintf "%s\\t%s\\n" "$*" "$(ls assets 2>/dev/null | tr "\\n" " ")" >> "{log}"\n'
                      f'exec "{real}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), log


def runs(log: Path) -> list[tuple[str, list[str]]]:
    if not log.exists():
        return []
    return [(args, files.split()) for args, files in (line.split("\t") for line in log.read_text().splitlines())]


def export(tmp_path: Path, media, **settings):
    storage = LocalStorage(tmp_path / "store")
    job_id = "job-mem"
    storage.upload_bytes(IN, f"jobs/{job_id}/spec.json", json.dumps(storyboard()).encode(), "application/json")
    for name, data in media.items():
        storage.upload_bytes(IN, f"jobs/{job_id}/assets/{name}", data, "application/octet-stream")
    work = tmp_path / "work"
    work.mkdir()
    exe, log = wrapper(tmp_path)
    reporter = FakeReporter()
    result = run_export(job_id, storage, reporter, Settings(input_bucket=IN, output_bucket=OUT, render_max_retries=0,
                                                            **settings), str(work), attempt=0, ffmpeg=exe)
    return result, reporter, runs(log), tmp_path / "store" / OUT / "exports" / job_id, work


def test_a_job_over_the_memory_limit_fails_at_preflight_before_ffmpeg(tmp_path, media, capfd):
    # 900 MiB: room for the media files in preflight (MediaGuard), not for FFmpeg with them
    result, reporter, ran, outputs, work = export(tmp_path, media, render_memory_bytes=900 * 1024 * 1024)
    assert (result.exit_code, result.status, result.error["code"]) == (0, "failed", "memory_limit")
    message = reporter.final["error"]["message"]
    assert "over the render task's 0.94 GB (RENDER_MEMORY_BYTES)" in message
    assert "this export needs an estimated" in message and "FFmpeg" in message and "media files" in message
    assert "use fewer or smaller media files" in message
    assert ran == []  # no FFmpeg run at all
    assert "rendering" not in {c.get("stage") for c in reporter.calls}
    assert not outputs.exists()
    logged = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    budget = [e for e in logged if e.get("message") == "memory budget"]
    assert len(budget) == 1 and budget[0]["limitBytes"] == 900 * 1024 * 1024
    assert budget[0]["needBytes"] == (budget[0]["ffmpegBytes"] + budget[0]["mediaBytes"] + budget[0]["outputBytes"]
                                      + budget[0]["overheadBytes"]) > 900 * 1024 * 1024


def test_media_over_the_job_limit_fail_before_any_download(tmp_path, media):
    total = sum(len(data) for data in media.values())
    result, reporter, ran, outputs, work = export(tmp_path, media, max_job_bytes=total - 1)
    assert (result.exit_code, result.status, result.error["code"]) == (0, "failed", "job_too_large")
    message = reporter.final["error"]["message"]
    assert message.startswith(f"media add up to {total:,} bytes, over EXPORT_MAX_JOB_BYTES = {total - 1:,} bytes: ")
    assert all(f"{name} ({len(data):,} bytes)" in message for name, data in media.items())
    assert os.listdir(work / "assets") == []  # nothing downloaded
    assert ran == [] and not outputs.exists()


@pytest.mark.parametrize("segment_scenes", [0, 2])
def test_a_video_over_its_size_cap_fails_permanently_and_is_not_uploaded(tmp_path, media, segment_scenes):
    """-fs stops the encoding run (exit 0, a truncated file; in segments the producer then fails on
    the closed pipe): the job fails for good with the cap and its setting, nothing is uploaded."""
    cap = 30_000
    result, reporter, ran, outputs, _ = export(tmp_path, media, max_output_bytes=cap,
                                               render_segment_scenes=segment_scenes)
    assert (result.exit_code, result.status, result.error["code"]) == (0, "failed", "output_too_large")
    assert reporter.final["error"]["message"] == (
        f"the video would exceed {cap} bytes (0.00 GB, EXPORT_MAX_OUTPUT_BYTES); the render was stopped at "
        "that size: use a shorter storyboard, a lower resolution or quality")
    encoder = [args for args, _ in ran if "output.mp4" in args and "-fs" in args]
    assert len(encoder) == 1 and f"-fs {cap} output.mp4" in encoder[0]
    assert not outputs.exists()  # no poster, no video


def test_a_complete_video_of_exactly_the_cap_is_kept(tmp_path, media):
    """-fs stops FFmpeg only once the file has grown past the cap, and the MP4's trailer follows, so a
    truncated video is always larger than the cap: one exactly at it is complete (EXPORT_MAX_OUTPUT_BYTES
    is the largest size allowed, not the first refused)."""
    (tmp_path / "free").mkdir()
    free, *_ = export(tmp_path / "free", media)
    assert free.status == "succeeded", free.error
    size = free.output["sizeBytes"]
    (tmp_path / "exact").mkdir()
    exact, _, _, outputs, _ = export(tmp_path / "exact", media, max_output_bytes=size)
    assert exact.status == "succeeded", exact.error
    assert (outputs / exact.output["filename"]).stat().st_size == size
    (tmp_path / "under").mkdir()
    under, *_ = export(tmp_path / "under", media, max_output_bytes=size - 1)
    assert (under.status, under.error["code"]) == ("failed", "output_too_large")


def test_a_segmented_render_deletes_the_stills_of_finished_segments(tmp_path, media, capfd):
    capfd.readouterr()
    result, reporter, ran, outputs, work = export(tmp_path, media, render_segment_scenes=2)
    assert result.status == "succeeded", result.error
    assert (outputs / result.output["filename"]).is_file()
    segments = [files for args, files in ran if args.endswith("rawvideo -pix_fmt yuv420p pipe:1")]
    assert len(segments) == 3
    # downloads are named by first use: a.png a00.png, voice.wav a01.wav, b.png a02.png, c.png a03.png
    # (it has alpha: rendered from its normalised copy a03.norm.jpg; the download is deleted)
    a, voice, b, c = "a00.png", "a01.wav", "a02.png", "a03.norm.jpg"
    # when segment k starts, the stills only earlier segments read are gone; the narration (read by
    # the encoding run for the whole length) stays
    assert [sorted(set(segments[k]) - set(segments[k + 1])) for k in (0, 1)] == [[a], [b]]
    assert segments == [[a, voice, b, c], [voice, b, c], [voice, c]]
    logged = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    freed = [(e["segment"], e["files"]) for e in logged if e.get("message") == "media freed after a segment"]
    assert freed == [(0, [f"assets/{a}"]), (1, [f"assets/{b}"]), (2, [f"assets/{c}"])]
    # after the render (loudness, poster): no media left in the working directory (the mix's
    # analysis, before the render, also runs ebur128, on the mix piped into it)
    after = [files for args, files in ran if ("ebur128" in args and "pipe:0" not in args) or "poster.jpg" in args]
    assert after and all(files == [] for files in after)
    assert not (work / "assets").exists()


def test_a_plan_longer_than_the_total_limit_fails_before_ffmpeg(tmp_path, media):
    """A scene without duration lasts as long as its narration, known only once the render has probed
    it: the render checks the planned total itself (here every duration is given: no word about it)."""
    result, reporter, ran, outputs, work = export(tmp_path, media, max_total_s=2.0)
    assert (result.exit_code, result.status, result.error["code"]) == (0, "failed", "too_long")
    assert reporter.final["error"]["message"] == (
        "the video would be 2.5 s long (3 s of scenes less 0.5 s where transitions overlap), over "
        "EXPORT_MAX_TOTAL_S = 2 s; longest scenes: scenes[0] (id 's0') 0.5 s, scenes[1] (id 's1') 0.5 s, "
        "scenes[2] (id 's2') 0.5 s")
    assert [args for args, _ in ran if "-i" in args] == []  # no FFmpeg run at all
    assert not outputs.exists()


def test_a_still_larger_than_the_frame_is_copied_at_1x_and_budgeted_by_the_copy(tmp_path, capfd):
    """Issue 15 review, finding 1: an RGB PNG twice the 720p frame wide and 7.6 times as high is one
    FFmpeg reads as it is, so it went to FFmpeg at full size while F counted every still frame-sized.
    Now it is copied just covering the frame (1280x2731), the render reads the copy, and F counts the
    copy's pixels beyond the frame's (2 scenes x 6 MB per megapixel)."""
    from render_job import memory
    from render_job.graph import timeline

    big = tmp_path / "big.png"
    mf.ff("-f", "lavfi", "-i", "testsrc2=s=2560x5462", "-frames:v", "1", "-pix_fmt", "rgb24", str(big))
    spec = storyboard()
    spec["scenes"] = [{"id": f"s{i}", "duration": 0.5, "visual": {"type": "image", "src": "big.png"}} for i in range(2)]
    storage = LocalStorage(tmp_path / "store")
    storage.upload_bytes(IN, "jobs/job-big/spec.json", json.dumps(spec).encode(), "application/json")
    storage.upload_bytes(IN, "jobs/job-big/assets/big.png", big.read_bytes(), "application/octet-stream")
    (tmp_path / "work").mkdir()
    exe, log = wrapper(tmp_path)
    capfd.readouterr()
    result = run_export("job-big", storage, FakeReporter(), Settings(input_bucket=IN, output_bucket=OUT),
                        str(tmp_path / "work"), attempt=0, ffmpeg=exe)
    assert result.status == "succeeded", result.error
    logged = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    norm = [(e["src"], e["changes"], e["width"], e["height"]) for e in logged if e.get("message") == "image normalised"]
    assert norm == [("big.png", ["downscaled 2560x5462->1280x2731"], 1280, 2731)]
    render = [args for args, _ in runs(log) if "output.mp4" in args]
    assert render and "assets/a00.norm.jpg" in render[0] and "a00.png" not in render[0]
    f = [e["ffmpegBytes"] for e in logged if e.get("message") == "memory budget"][0]
    scale = 1280 * 720 / (1920 * 1080)
    frame_sized = memory.ffmpeg_floor_bytes(1280, 720) + 2 * timeline.SCENE_MB_IMAGE * scale * memory.MIB
    beyond = 2 * timeline.SCENE_MB_PER_IMAGE_MP * (1280 * 2731 - 1280 * 720) / 1e6 * memory.MIB  # 30.9 MiB
    assert f == pytest.approx(frame_sized + beyond, abs=2)


def test_thin_stills_cover_and_blur_the_frame_without_scaling_up_whole(tmp_path):
    """`cover` cuts a still to the frame's shape before scaling it (render_job.graph.visuals._cover): scaled
    first, a 16x8192 still covering 1280x720 would be 1280x655360 pixels, which FFmpeg refuses (the
    job failed render_failed), and a 256x8192 one ~0.6 GB per scene. The middle of each is kept."""
    from tests.integration.test_features import render, spec_of
    from PIL import Image
    assets = {}
    for name, width in (("thin16.png", 16), ("thin256.png", 256)):
        img = Image.new("RGB", (width, 8192), (0, 0, 200))
        img.paste((220, 0, 0), (0, 4096 - 200, width, 4096 + 200))  # a red band across the middle
        path = tmp_path / name
        img.save(path)
        assets[name] = path.read_bytes()
    scenes = [{"id": "a", "duration": 0.5, "visual": {"type": "image", "src": "thin16.png", "fit": "cover"}},
              {"id": "b", "duration": 0.5, "visual": {"type": "image", "src": "thin256.png", "fit": "blur"}}]
    got = render(tmp_path, "job-thin", spec_of(scenes, captions={"burnIn": False, "sidecar": []}), assets)
    assert got["result"].status == "succeeded", got["result"].error
    assert got["output"]["durationS"] == pytest.approx(1.0, abs=0.05)
    import av
    with av.open(str(got["mp4"])) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    r, g, b = (int(v) for v in first[360, 640])
    assert r > 150 and b < 80  # the red middle band of the 16 px wide still fills the frame's centre


def test_a_file_overwritten_between_stat_and_download_is_counted_at_its_downloaded_size(tmp_path, media):
    """The signed PUT URLs work until they expire, so a client can overwrite a file after the job is
    queued: the sizes checked before downloading are checked again with what was downloaded."""
    class OverwrittenOnDownload(LocalStorage):
        def download_file(self, bucket, name, path):
            if name.endswith("/a.png"):  # the client's second PUT lands between stat and download
                self.upload_bytes(bucket, name, media["a.png"] + b"\0" * 200_000, "image/png")
            return super().download_file(bucket, name, path)

    storage = OverwrittenOnDownload(tmp_path / "store")
    job_id = "job-overwrite"
    storage.upload_bytes(IN, f"jobs/{job_id}/spec.json", json.dumps(storyboard()).encode(), "application/json")
    for name, data in media.items():
        storage.upload_bytes(IN, f"jobs/{job_id}/assets/{name}", data, "application/octet-stream")
    total = sum(len(data) for data in media.values())
    (tmp_path / "work").mkdir()
    reporter = FakeReporter()
    result = run_export(job_id, storage, reporter, Settings(input_bucket=IN, output_bucket=OUT, render_max_retries=0,
                                                            max_job_bytes=total + 100_000), str(tmp_path / "work"))
    assert (result.status, result.error["code"]) == ("failed", "job_too_large")
    assert f"a.png ({len(media['a.png']) + 200_000:,} bytes)" in reporter.final["error"]["message"]
