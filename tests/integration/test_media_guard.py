"""Preflight cannot fill the task's memory (render_job.memory.MediaGuard), through run_export with
LocalStorage and FFmpeg behind the logging wrapper of test_memory_budget: downloads and normalised
copies are counted as they are written, and the job fails with "memory_limit", naming
RENDER_MEMORY_BYTES, as soon as they exceed what the task's memory leaves for media; no FFmpeg run."""
import io
import json

import pytest
from PIL import Image

from render_job import memory
from render_job.job import run_export
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from tests.fakes import FakeReporter
from tests.integration.test_memory_budget import IN, OUT, runs, wrapper

pytestmark = pytest.mark.timeout(120)
JOB = "job-guard"


def noise_picture(k: int, fmt: str, orientation: int = 1) -> bytes:
    """640x480 of noise (compresses poorly) between gradients; JPEG q70 4:2:0, or PNG."""
    size = (640, 480)
    im = Image.merge("RGB", (Image.linear_gradient("L").resize(size), Image.effect_noise(size, 40 + k),
                             Image.radial_gradient("L").resize(size)))
    buf = io.BytesIO()
    if fmt == "JPEG":
        exif = im.getexif()
        exif[0x0112] = orientation
        im.save(buf, "JPEG", quality=70, exif=exif.tobytes())
    else:
        im.save(buf, "PNG")
    return buf.getvalue()


def export(tmp_path, media: dict[str, bytes], allowance: int):
    """Render one 0.5 s 720p scene per picture with RENDER_MEMORY_BYTES leaving `allowance` bytes for
    media (the least FFmpeg at 720p and the overhead on top)."""
    storage = LocalStorage(tmp_path / "store")
    scenes = [{"id": f"s{i}", "duration": 0.5, "visual": {"type": "image", "src": name}}
              for i, name in enumerate(media)]
    spec = {"version": 1, "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 24, "quality": "draft"},
            "scenes": scenes, "captions": {"burnIn": False, "sidecar": []}}
    storage.upload_bytes(IN, f"jobs/{JOB}/spec.json", json.dumps(spec).encode(), "application/json")
    for name, data in media.items():
        storage.upload_bytes(IN, f"jobs/{JOB}/assets/{name}", data, "application/octet-stream")
    work = tmp_path / "work"
    work.mkdir()
    exe, log = wrapper(tmp_path)
    limit = memory.ffmpeg_floor_bytes(1280, 720) + int(memory.OVERHEAD_MB * memory.MIB) + allowance
    reporter = FakeReporter()
    result = run_export(JOB, storage, reporter, Settings(input_bucket=IN, output_bucket=OUT, render_max_retries=0,
                                                         render_memory_bytes=limit), str(work), attempt=0, ffmpeg=exe)
    return result, reporter, runs(log), work, limit


def assert_guard_failed(result, reporter, ran, limit: int) -> None:
    assert (result.exit_code, result.status, result.error["code"]) == (0, "failed", "memory_limit")
    message = reporter.final["error"]["message"]
    assert message.startswith("the media files of this export (downloads and normalised pictures) need more than")
    assert f"the render task's {memory.gb(limit)} (RENDER_MEMORY_BYTES) leaves for them beside FFmpeg" in message
    assert message.endswith("use fewer or smaller media files")
    assert ran == []  # failed in preflight: no FFmpeg run at all
    assert "rendering" not in {c.get("stage") for c in reporter.calls}


def test_normalised_copies_over_the_memory_left_for_media_fail_the_job_in_preflight(tmp_path, capfd):
    # 8 rotated 640x480 JPEGs (q70 4:2:0, ~105 kB): each is rewritten upright (q95 4:4:4, ~270 kB),
    # so the copies take ~2.6x the downloads; the allowance holds every download, not every copy
    media = {f"p{k}.jpg": noise_picture(k, "JPEG", orientation=6) for k in range(8)}
    downloads = sum(len(d) for d in media.values())
    capfd.readouterr()
    result, reporter, ran, work, limit = export(tmp_path, media, allowance=int(downloads * 1.5))
    assert_guard_failed(result, reporter, ran, limit)
    logged = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    over = [e for e in logged if e.get("message") == "media over the memory allowance"]
    assert len(over) == 1 and over[0]["mediaBytes"] > over[0]["allowanceBytes"] == int(downloads * 1.5)
    assert over[0]["limitBytes"] == limit and over[0]["limitSource"] == "RENDER_MEMORY_BYTES"
    copies = [e for e in logged if e.get("message") == "image normalised"]
    assert 1 <= len(copies) < 8  # it stopped at the copy that did not fit, before the budget check
    assert not [e for e in logged if e.get("message") == "memory budget"]


def test_downloads_over_the_memory_left_for_media_stop_before_the_rest_are_fetched(tmp_path):
    # 8 identical-size PNGs that need no copy; the allowance holds 2.5 of them: the third reservation
    # fails the job, and no later file is downloaded
    one = noise_picture(0, "PNG")
    media = {f"p{k}.png": one for k in range(8)}
    result, reporter, ran, work, limit = export(tmp_path, media, allowance=int(len(one) * 2.5))
    assert_guard_failed(result, reporter, ran, limit)
    assert len(list((work / "assets").iterdir())) == 2
