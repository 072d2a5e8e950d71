"""An export rendered inside the render image, as a Cloud Run task would run it: the embedded stack's
local launcher starts each task with `podman run IMAGE` (its entry point, user 10001, read-only root,
tmpfs /tmp, host loopback to the stack's storage stand-in and functions; RENDER_CONTAINER_IMAGE)."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image, ImageDraw, ImageFont

from infra.local import client
from infra.local.stack import EmbeddedStack
from infra.local.verify import FLOW, check_mp4
from render_job.runner import find_ffmpeg
from tests.bench.outputs import loudness
from tests.image.build import image_bytes, pinned_base, podman

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))
from sceneflow_flows import ASSETS  # noqa: E402

# CJK from Noto Sans CJK, emoji from Symbola, and U+E000 (private use: no font has it) as the
# missing-glyph box the others must not look like
GLYPHS = ["漢", "字", "🦊", "🥑"]
MISSING = "\ue000"
BACKGROUND = "#203040"
CAPTION_AT_S = 4.3  # inside scene "b" (3.3 s to 5.3 s), after its fade-in
MAX_ADDED_BYTES = 575_000_000  # our layers; + python:3.11-slim (~125 MB) stays under 700 MB


def spec() -> dict:
    return {
        "version": 1, "title": "Image test",
        "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 30, "quality": "draft"},
        "scenes": [
            {"id": "a", "visual": {"type": "image", "src": "astronaut.png", "fit": "cover", "motion": "zoom-in"},
             "narration": {"src": "n5.wav"}, "caption": {"text": "漢字とかな: 宇宙飛行士 🚀"},
             "transition": {"type": "fade", "duration": 0.5}},
            {"id": "b", "visual": {"type": "color", "color": BACKGROUND},
             "caption": {"text": " ".join(GLYPHS + [MISSING])}, "duration": 2.0},
        ],
        "music": {"src": "music.ogg", "volume": 0.2, "loop": True, "ducking": True, "fadeOutS": 1},
        "audio": {"loudnessLufs": -16, "truePeakDb": -1.5},
        "captions": {"burnIn": True, "sidecar": ["srt", "vtt"]},
    }


FILES = [ASSETS / n for n in ("astronaut.png", "n5.wav", "music.ogg")]


@pytest.fixture(scope="module")
def export(render_image, run_dir, tmp_path_factory) -> dict:
    """The finished export: {"final": status body, "video": Path, "events": podman start events}."""
    out = tmp_path_factory.mktemp("image-export")
    with EmbeddedStack(run_dir=run_dir / "image", render_max_retries=0,
                       extra_env={"RENDER_CONTAINER_IMAGE": render_image["tag"]}) as stack:
        started = client.start_export(stack.base, spec(), FILES)
        client.upload_all(started["uploads"], FILES)
        final = client.wait_for(stack.base, started["jobId"], timeout_s=600, interval_s=0.2)
        assert final["status"] == "succeeded", (final.get("error"), stack.run_dir)
        video = client.download(final["output"]["url"], out / "image.mp4")
        vtt = client.download(final["output"]["captions"]["vtt"], out / "captions.vtt")
    events = podman("events", "--stream=false", "--since", final["createdAt"], "--filter", "event=start",
                    "--format", "{{.Name}} {{.Image}}", timeout=60).stdout.split("\n")
    return {"final": final, "video": video, "vtt": vtt, "events": [e.split() for e in events if e]}


def test_the_export_ran_in_the_image_and_its_output_is_right(export, render_image):
    final = export["final"]
    # the task was a container of the image under test (the launcher names it EXECUTION-ATTEMPT)
    assert [final["executionName"] + "-0", render_image["tag"]] in export["events"], export["events"]
    assert [h["status"] for h in final["history"]] == FLOW
    info, problems = check_mp4(export["video"], 1280, 720, 30, expected_s=final["output"]["durationS"])
    assert not problems, problems
    assert final["output"]["durationS"] == pytest.approx(5.3, abs=0.04)
    lufs, true_peak = loudness(find_ffmpeg(), str(export["video"]))
    assert lufs == pytest.approx(-16, abs=1.0) and true_peak <= -1.0, (lufs, true_peak)
    assert final["output"]["loudness"]["integratedLufs"] == pytest.approx(lufs, abs=0.3)
    assert "漢字とかな: 宇宙飛行士 🚀" in export["vtt"].read_text(encoding="utf-8")


def _frame(video: Path, at_s: float) -> np.ndarray:
    import av

    with av.open(str(video)) as c:
        for frame in c.decode(video=0):
            if frame.time >= at_s:
                return frame.to_ndarray(format="rgb24").astype(int)
    raise AssertionError(f"no frame at {at_s} s")


def _clusters(ink: np.ndarray) -> list[np.ndarray]:
    """The ink mask split at runs of 4+ empty columns: one mask per glyph of a spaced-out caption."""
    cols = np.flatnonzero(ink.any(axis=0))
    cuts = [i + 1 for i, gap in enumerate(np.diff(cols)) if gap > 4]
    return [ink[:, part[0]:part[-1] + 1] for part in np.split(cols, cuts)]


def _shape(mask: np.ndarray, n: int = 32) -> np.ndarray:
    """The mask cropped to its ink and resized to n x n (compares shapes across sizes)."""
    ys, xs = np.nonzero(mask)
    m = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return np.asarray(Image.fromarray((m * 255).astype(np.uint8)).resize((n, n), Image.BILINEAR)) > 127


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _reference(image: str, char: str) -> np.ndarray:
    """The glyph as drawn by Pillow from the font file fontconfig picks for it inside the image."""
    pattern = f"DejaVu Sans:bold:charset={ord(char):x}"
    found = podman("run", "--rm", "--entrypoint", "fc-match", image, "-f", "%{file}|%{index}", pattern).stdout
    path, index = found.rsplit("|", 1)
    data = podman("run", "--rm", "--entrypoint", "cat", image, path, text=False).stdout
    font = ImageFont.truetype(io.BytesIO(data), 96, index=int(index))
    canvas = Image.new("L", (300, 300))
    ImageDraw.Draw(canvas).text((100, 100), char, font=font, fill=255)
    return _shape(np.asarray(canvas) > 127)


def test_cjk_and_emoji_captions_are_drawn_as_their_glyphs(export, render_image):
    frame = _frame(export["video"], CAPTION_AT_S)
    strip = frame[int(frame.shape[0] * 0.6):]  # captions sit at the bottom, on a plain dark colour
    ink = strip.min(axis=2) > 170  # the captions' white fill (their outline is black)
    shapes = [_shape(c) for c in _clusters(ink)]
    assert len(shapes) == len(GLYPHS) + 1, f"{len(shapes)} glyphs drawn, expected {len(GLYPHS) + 1}"
    refs = {ch: _reference(render_image["tag"], ch) for ch in GLYPHS}
    for ch, drawn in zip(GLYPHS, shapes):
        scores = {other: round(_iou(drawn, ref), 2) for other, ref in refs.items()}
        best_other = max(v for k, v in scores.items() if k != ch)
        assert scores[ch] >= 0.45 and scores[ch] >= best_other + 0.15, (ch, scores)
    # the private-use character is the missing-glyph box, which matches none of them
    assert max(_iou(shapes[-1], ref) for ref in refs.values()) < 0.3


CHECKS = r"""
id -u
command -v ffmpeg
ffmpeg -hide_banner -version | head -n 1
ls /usr/bin/ffmpeg /usr/bin/ffprobe 2>/dev/null | wc -l
touch /app/written 2>/dev/null && echo root-writable || echo root-read-only
touch /tmp/written && echo tmp-writable
python -c 'import importlib.util as u; print(sorted(m for m in ("pip", "sqlalchemy", "functions_framework", "pg8000", "alembic") if u.find_spec(m)))'
fc-list : family | grep -c -E 'Noto Sans CJK|Symbola|DejaVu Sans|Noto Sans$'
"""


def test_the_image_is_lean_non_root_read_only_with_one_ffmpeg(render_image):
    tag = render_image["tag"]
    config = json.loads(podman("image", "inspect", tag).stdout)[0]
    assert config["Config"]["User"] == "10001:10001"
    assert config["Config"]["Entrypoint"] == ["tini", "-g", "--", "python", "-m", "render_job"]
    base = render_image["base"] or pinned_base()
    added = config["Size"] - image_bytes(base)
    print(f"\nimage {tag}: {config['Size'] / 1e6:.0f} MB, of which {added / 1e6:.0f} MB over its base {base}")
    assert added < MAX_ADDED_BYTES, f"the Dockerfile adds {added / 1e6:.0f} MB to its base"
    out = podman("run", "--rm", "--read-only", "--read-only-tmpfs=false", "--tmpfs=/tmp:rw,mode=1777",
                 "--entrypoint", "sh", tag, "-c", CHECKS).stdout.splitlines()
    host_ffmpeg = subprocess.run([find_ffmpeg(), "-hide_banner", "-version"], capture_output=True, text=True)
    assert out[0] == "10001"
    assert out[1] == "/opt/venv/bin/ffmpeg" and out[2] == host_ffmpeg.stdout.splitlines()[0]  # the tests' FFmpeg
    assert out[3] == "0"  # no second FFmpeg (Debian's)
    assert out[4:6] == ["root-read-only", "tmp-writable"]
    assert out[6] == "[]"  # neither pip nor the functions' packages
    assert int(out[7]) >= 4


def test_a_cancel_stops_the_container_task_and_leaves_no_container(render_image, run_dir):
    """export_cancel in the middle of a container task: the job is canceled, the container gone."""
    long = spec()
    long["scenes"][1]["duration"] = 60.0
    with EmbeddedStack(run_dir=run_dir / "image-cancel", render_max_retries=0,
                       extra_env={"RENDER_CONTAINER_IMAGE": render_image["tag"]}) as stack:
        started = client.start_export(stack.base, long, FILES)
        client.upload_all(started["uploads"], FILES)
        job_id = started["jobId"]
        deadline = time.monotonic() + 120
        while (status := client.get_status(stack.base, job_id))["stage"] != "rendering":
            assert time.monotonic() < deadline and status["status"] in ("awaiting_upload", "queued", "dispatched", "running"), status
            time.sleep(0.1)
        asked = time.monotonic()
        r = requests.post(f"{stack.base}/export_cancel", json={"jobId": job_id}, timeout=60)
        answered_s = time.monotonic() - asked
        assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
        container = status["executionName"] + "-0"
        running = podman("ps", "--all", "--filter", f"name={container}", "--format", "{{.Names}}").stdout.split()
        assert running == [] and answered_s < 15, (running, answered_s)


def test_sigterm_stops_the_image_at_once(render_image):
    """tini is PID 1: a PID 1 without a handler never gets SIGTERM (Cloud Run's stop on cancel or
    timeout), so the task would run on until SIGKILL 10 s later."""
    name = f"sceneflow-sigterm-{time.monotonic_ns()}"
    podman("run", "-d", f"--name={name}", "--entrypoint", "tini", render_image["tag"], "-g", "--", "python", "-c",
           "import time; time.sleep(100)")
    try:
        time.sleep(1)
        asked = time.monotonic()
        podman("stop", "--time=10", name, timeout=60)
        assert time.monotonic() - asked < 5
    finally:
        podman("rm", "--force", "--ignore", name, check=False)
    config = json.loads(podman("image", "inspect", render_image["tag"]).stdout)[0]
    assert config["Config"]["Entrypoint"][:3] == ["tini", "-g", "--"]
