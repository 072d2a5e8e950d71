"""A parallel export equals the single-task export of the same storyboard (issue 19, "Done when").

The real pipeline twice (embedded stack: functions, storage emulator and its finalize events, the
local launcher, `python -m render_job` task subprocesses): a 10.1 s 720p "standard" storyboard
with explicit scene durations (a Ken Burns zoom with narration and a caption, a crossfade, a clip, a
wipe, a pan, cuts, a title card: captions then burn with libass, whose cue times a part shifts;
ducked music), once as one task (RENDER_PARALLEL_AFTER_S=0, RENDER_MAX_PARTS=1: an export long
enough to split, rendered by the single task in scene chunks, render_job.part_render.render_whole) and
once forced down the parallel path (RENDER_PARALLEL_AFTER_S=0, RENDER_MIN_PART_S=2,
RENDER_MAX_PARTS=3: 3 part tasks + the audio task, then the stitch execution). Checked:
- the video: the same packets, byte for byte (every scene chunk is encoded alone, so the parts hold
  the single task's bits whatever K: DESIGN.md §9 "Chunks");
- the same frame count (the plan's), durations within one frame of the plan;
- the audio: identical in length (decoded samples) and loudness within 0.5 LU, and the final MP4's
  audio packets are the audio piece's, byte for byte (the stitch copies the one audio encode of the
  whole timeline: nothing at a join can click or drift);
- every frame within 40 dB PSNR of the single render's (the same frames, so PSNR 99 here);
- the joins, against the LOSSLESS timeline (the same part machinery rendering the whole timeline as
  one part with x264 at qp 0): each frame next to a join is no worse than the parallel video's
  median by more than 2 dB, and no worse than the single render's same frame by more than 1 dB.
  This is the check that holds the issue's intent ("no worse at a join"): it holds thanks to the
  x264 zones a chunk's encode puts on the frames next to its ends (render_job.graph.parts.join_zones).
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import av
import numpy as np
import pytest

from infra.local import client
from infra.local.stack import EmbeddedStack
from parallel_flows import (asset_files, audio_packets, frame_count, install_hooks, objects, start, video_packets,
                            wait_terminal)
from render_job.part_plan import PartPlan, plan_parts
from render_job.part_render import prepare_workdir, render_part
from render_job.plan import build_plan
from render_job.preflight import fetch_and_probe
from render_job.runner import find_ffmpeg
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from shared.parts import planned_parts
from shared.spec import parse_spec

pytestmark = [pytest.mark.slow]

FPS = 30
PARALLEL_ENV = {"RENDER_PARALLEL_AFTER_S": "0", "RENDER_MIN_PART_S": "2", "RENDER_MAX_PARTS": "3"}
# the single task of an export at or over RENDER_PARALLEL_AFTER_S (parallel renders off): scene chunks
SINGLE_ENV = {"RENDER_PARALLEL_AFTER_S": "0", "RENDER_MAX_PARTS": "1"}
SPEC = {
    "version": 1, "title": "Parallel parity",
    "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": FPS, "quality": "standard"},
    "scenes": [
        {"id": "s0", "visual": {"type": "image", "src": "astronaut.png", "motion": "zoom-in"},
         "narration": {"src": "n5.wav"}, "caption": {"text": "A zoom, narrated"}, "duration": 3.5,
         "transition": {"type": "fade", "duration": 0.5}},
        {"id": "s1", "visual": {"type": "video", "src": "clip_pan.mp4"}, "caption": {"text": "A clip"},
         "duration": 2.0, "transition": {"type": "wipeleft", "duration": 0.4}},
        {"id": "s2", "visual": {"type": "image", "src": "rocket.jpg", "motion": "pan-left"}, "duration": 2.0,
         "transition": {"type": "cut"}},
        {"id": "s3", "visual": {"type": "image", "src": "hubble_deep_field.jpg", "motion": "zoom-out"},
         "caption": {"text": "Deep field"}, "duration": 2.0, "transition": {"type": "cut"}},
        {"id": "s4", "visual": {"type": "title", "text": "The end"}, "duration": 1.5},
    ],
    "music": {"src": "music.ogg", "volume": 0.3, "loop": True, "ducking": True, "fadeOutS": 1},
    "captions": {"burnIn": True, "sidecar": ["srt"]},
}
# The joins (this test's print): without graph.parts.join_zones, frame 104 (the last of part 0, a P
# frame at the crossfade's end) was 39.0 dB against the lossless timeline, 4.6 dB under the median and
# 2.8 dB under the single render's 41.8 (mb-tree: nothing later in the part refers to it), and frame 198
# (part 2's IDR at a cut) 42.4 dB, 1.85 dB under the single's 44.2 (an encode's first frame has no rate
# control history). With the zones: 43.4 and 43.8 dB (BENCHMARKS.md "Joins").
LOSSLESS = ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", "-r", str(FPS)]


def export(stack, tmp: Path, name: str, hooks: Path | None = None) -> tuple[dict, Path, str]:
    files = asset_files(SPEC)
    job_id = start(stack.base, SPEC, files, hooks, **({"keepPieces": True} if hooks else {}))
    final = wait_terminal(stack.base, job_id, 150)
    assert final["status"] == "succeeded", (final.get("error"), stack.run_dir)
    return final, client.download(final["output"]["url"], tmp / f"{name}.mp4"), job_id


def lossless_timeline(work: Path, monkeypatch) -> tuple:
    """(plan, lossless MP4): the plan the tasks build, and the whole timeline with its captions rendered
    by the part machinery as one part, x264 at qp 0 (lossless) instead of the export's settings."""
    import render_job.graph.parts as graph_parts

    storage, settings = LocalStorage(work / "store"), Settings(input_bucket="in", output_bucket="out")
    for f in asset_files(SPEC):
        storage.upload_bytes("in", f"jobs/ref/assets/{f.name}", f.read_bytes(), "application/octet-stream")
    spec = parse_spec(SPEC)
    local, probes = fetch_and_probe(spec, "ref", storage, "in", str(work), settings)
    plan = build_plan(spec, probes)
    exe = find_ffmpeg(None)
    overlay, ass = prepare_workdir(exe, plan, str(work))
    frames = round(plan.total_s * plan.fps)
    monkeypatch.setattr(graph_parts, "video_codec_args", lambda _plan: LOSSLESS)
    name = render_part(exe, plan, local, PartPlan(0, 0, len(plan.scenes) - 1, 0, frames), str(work),
                       overlay=overlay, ass_path=ass)
    return plan, work / name


def yuv(path: Path):
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            yield f.to_ndarray(format="yuv420p").astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * float(np.log10(255.0 ** 2 / mse))


def decoded_audio(path: Path) -> tuple[int, np.ndarray]:
    """(samples per channel, stereo float samples interleaved) of a file's audio."""
    chunks = []
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=48000)
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    data = np.concatenate(chunks)
    return len(data) // 2, data


@pytest.fixture(scope="module")
def renders(run_dir, tmp_path_factory):
    """The storyboard rendered three ways: the lossless timeline (in-process), the single-task export
    and the parallel export (each through its own embedded stack); the pieces the stitch found."""
    tmp = tmp_path_factory.mktemp("parity")
    ref_dir = tmp / "lossless"
    ref_dir.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        plan, lossless = lossless_timeline(ref_dir, mp)
    k_told = planned_parts(SPEC, 0, 3, 2.0)
    parts = plan_parts(plan, k_told, 2.0)
    assert k_told == 3 and len(parts) == 3 and sum(p.frames for p in parts) == round(plan.total_s * FPS) == 303
    # a join after the crossfade into scenes[1] and one at the cut into scenes[3]; the wipe inside part 1
    assert [(p.first_scene, p.last_scene) for p in parts] == [(0, 0), (1, 2), (3, 4)]

    with EmbeddedStack(run_dir=run_dir / "parity-single", extra_env=SINGLE_ENV) as stack:
        single, single_mp4, single_id = export(stack, tmp, "single")
        assert "parts" not in single
        assert len(stack.log_entries("render execution started", job_id=single_id)) == 1
        assert not stack.log_entries("stitch execution started", job_id=single_id)

    wrapper, hooks = install_hooks(tmp)
    with EmbeddedStack(run_dir=run_dir / "parity-parallel",
                       extra_env={**PARALLEL_ENV, "RENDER_PYTHON": str(wrapper)}) as stack:
        par, par_mp4, par_id = export(stack, tmp, "parallel", hooks)
        assert par["parts"] == {"count": 3, "rendered": 3, "audio": True}
        assert [e["parts"] for e in stack.log_entries("stitch execution started", job_id=par_id)] == [3]
        assert objects(stack, f"parts/{par_id}/") == []  # the pieces are deleted once the export succeeded
    psnrs = {"vs_single": [], "single_vs_ref": [], "par_vs_ref": []}
    for ref, s, p in zip(yuv(lossless), yuv(single_mp4), yuv(par_mp4), strict=True):
        psnrs["vs_single"].append(psnr(s, p))
        psnrs["single_vs_ref"].append(psnr(ref, s))
        psnrs["par_vs_ref"].append(psnr(ref, p))
    joins = sorted({f for p in parts[1:] for f in (p.first_frame - 1, p.first_frame)})
    print(f"\npsnr vs single: min {min(psnrs['vs_single']):.2f} median {statistics.median(psnrs['vs_single']):.2f} "
          f"dB; vs lossless: parallel median {statistics.median(psnrs['par_vs_ref']):.2f}, single median "
          f"{statistics.median(psnrs['single_vs_ref']):.2f}; joins {joins}: parallel "
          f"{[round(psnrs['par_vs_ref'][f], 2) for f in joins]}, single "
          f"{[round(psnrs['single_vs_ref'][f], 2) for f in joins]}")
    return {"plan": plan, "parts": parts, "joins": joins, "single": single, "single_mp4": single_mp4, "par": par,
            "par_mp4": par_mp4, "pieces": hooks / f"{par_id}-pieces-0", "psnr": psnrs}


def test_a_parallel_export_equals_the_single_task_export(renders):
    r = renders
    plan, parts, single, par = r["plan"], r["parts"], r["single"], r["par"]
    single_mp4, par_mp4, pieces = r["single_mp4"], r["par_mp4"], r["pieces"]
    total = sum(p.frames for p in parts)
    # what the stitch found: one object per part (each with the plan's frames) and the audio
    assert sorted(p.name for p in pieces.iterdir()) == ["audio.m4a", "part-0000.mp4", "part-0001.mp4",
                                                        "part-0002.mp4"]
    for p in parts:
        assert frame_count(pieces / f"part-{p.index:04d}.mp4") == p.frames

    # frames and duration
    assert frame_count(single_mp4) == frame_count(par_mp4) == total
    for st, mp4 in ((single, single_mp4), (par, par_mp4)):
        with av.open(str(mp4)) as c:
            v = c.streams.video[0]
            video_s = float(v.duration * v.time_base)
        assert abs(video_s - plan.total_s) <= 1 / FPS and abs(st["output"]["durationS"] - plan.total_s) <= 1 / FPS

    # audio: one encode of the whole timeline, copied as it is; the same length and loudness as the single's
    assert audio_packets(par_mp4) == audio_packets(pieces / "audio.m4a")
    (n_single, a_single), (n_par, a_par) = decoded_audio(single_mp4), decoded_audio(par_mp4)
    assert n_single == n_par and abs(n_par / 48000 - plan.total_s) <= 1 / FPS, (n_single, n_par)
    lufs = single["output"]["loudness"]["integratedLufs"], par["output"]["loudness"]["integratedLufs"]
    assert abs(lufs[0] - lufs[1]) <= 0.5, lufs
    for p in parts[1:]:  # the same samples around each join as the single render's (no step, no click)
        at = 2 * round(p.first_frame / FPS * 48000)
        assert np.allclose(a_single[at - 960:at + 960], a_par[at - 960:at + 960], rtol=0, atol=1e-4)

    # the video: the single task's chunks, bit for bit; so every frame is the single render's
    assert video_packets(par_mp4) == video_packets(single_mp4)
    vs_single = r["psnr"]["vs_single"]
    assert len(vs_single) == total
    assert min(vs_single) >= 40.0, [(i, round(v, 2)) for i, v in enumerate(vs_single) if v < 40]


def test_the_frames_next_to_each_join_are_no_worse_than_the_rest(renders):
    """Against the lossless timeline: each frame next to a join no worse than the parallel video's
    median by more than 2 dB (issue 19) and than the single render's same frame by more than 1 dB."""
    par_vs_ref, single_vs_ref = renders["psnr"]["par_vs_ref"], renders["psnr"]["single_vs_ref"]
    median = statistics.median(par_vs_ref)
    short = [(f, round(par_vs_ref[f], 2), round(single_vs_ref[f], 2)) for f in renders["joins"]
             if par_vs_ref[f] < median - 2.0 or par_vs_ref[f] < single_vs_ref[f] - 1.0]
    assert not short, f"(frame, parallel dB, single dB) vs lossless, median {median:.2f}: {short}"
