"""Regressions found by the bad-input review: a cut followed by an xfade (time bases), and caption
text that looks like subtitle markup reaching the sidecars verbatim."""
import json
import re
import subprocess
import sys
from pathlib import Path

import av
import pytest

from render_job.job import run_export
from render_job.runner import find_ffmpeg
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from tests.fakes import FakeReporter

def ffmpeg_reads(path, tmp_path) -> list[str]:
    """The text FFmpeg's subtitle decoders hand to libass for each cue, as libass shows it: an
    unescaped `{` would open an override block (hidden text), so none may be left; then escapes,
    invisible ZWSP/WORD JOINER and the SRT's fullwidth braces undone."""
    out = tmp_path / (path.name + ".ass")
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-i", str(path), str(out)], check=True, timeout=60)
    texts = []
    for line in out.read_text(encoding="utf-8").splitlines():
        if line.startswith("Dialogue:"):
            text = line.split(",", 9)[9].replace("\\{{}", "\\{")  # FFmpeg's WebVTT escape of "{"
            assert re.search(r"(?<!\\)\{", text) is None, text
            text = text.replace("\\{", "{").replace("\\}", "}").replace("\\N", "\n")
            texts.append(text.replace("\u200b", "").replace("\u2060", "").replace("\uff5b", "{").replace("\uff5d", "}"))
    return texts


MARKUP = "{\\b1}bold{\\b0} {\\p1}m 0 0 l 100 0{\\p0} }{ 00:00:01,000 --> 00:00:02,000"


def test_cut_then_fade_renders_and_sidecars_keep_markup_literal(tmp_path):
    storage = LocalStorage(tmp_path / "gcs")
    spec = {"output": {"resolution": "720p", "quality": "draft", "fps": 24}, "scenes": [
        {"id": "a", "visual": {"type": "color", "color": "#ff0000"}, "duration": 1, "transition": {"type": "cut"},
         "caption": {"text": MARKUP}},
        {"id": "b", "visual": {"type": "color", "color": "#00ff00"}, "duration": 1,
         "transition": {"type": "fade", "duration": 0.25}, "caption": {"text": "a \\N b \\h c"}},
        {"id": "c", "visual": {"type": "color", "color": "#0000ff"}, "duration": 1}]}
    storage.upload_bytes("in", "jobs/j1/spec.json", json.dumps(spec).encode(), "application/json")
    work = tmp_path / "work"
    work.mkdir()
    rep = FakeReporter()
    result = run_export("j1", storage, rep, Settings(input_bucket="in", output_bucket="out"), str(work))
    assert result.status == "succeeded", rep.final
    total = 3 - 0.25
    with av.open(str(tmp_path / "gcs/out/exports/j1/export.mp4")) as c:
        frames = sum(1 for _ in c.demux(c.streams.video[0]) if _.size)
    assert frames == round(total * 24)
    srt = (tmp_path / "gcs/out/exports/j1/captions.srt").read_text()
    vtt = (tmp_path / "gcs/out/exports/j1/captions.vtt").read_text()
    assert srt.count(" --> ") == 2 and vtt.count(" --> ") == 2  # the caption's own arrow is neutralised
    # as an FFmpeg-based player (mpv, FFmpeg's subtitles filter: libass) reads them: every character shown
    for name in ("captions.srt", "captions.vtt"):
        assert ffmpeg_reads(tmp_path / "gcs/out/exports/j1" / name, tmp_path) == [MARKUP, "a \\N b \\h c"]


def _render(tmp_path, spec, assets=None, job="j2"):
    storage = LocalStorage(tmp_path / "gcs")
    storage.upload_bytes("in", f"jobs/{job}/spec.json", json.dumps(spec).encode(), "application/json")
    for name, path in (assets or {}).items():
        storage.upload_bytes("in", f"jobs/{job}/assets/{name}", path.read_bytes(), "application/octet-stream")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    rep = FakeReporter()
    result = run_export(job, storage, rep, Settings(input_bucket="in", output_bucket="out"), str(work))
    assert result.status == "succeeded", rep.final
    return result, storage


def test_many_off_grid_scenes_decode_to_the_formula_frame_count(tmp_path):
    # 48 scenes of 0.35 s and 1.01 s (8.4 and 24.24 frames at 24 fps) with 0.13 s fades on every third:
    # rounding each scene on its own drifted by 15 frames; boundaries on the grid keep the file, the
    # plan, the reported timeline and the README formula within one frame (segmented render: 48 > 24)
    from fractions import Fraction
    scenes = []
    for i in range(48):
        s = {"id": f"s{i}", "visual": {"type": "color", "color": ["#ff0000", "#00ff00", "#0000ff"][i % 3]},
             "duration": 0.35 if i % 2 else 1.01}
        s["transition"] = {"type": "fade", "duration": 0.13} if i % 3 == 0 else {"type": "cut"}
        scenes.append(s)
    spec = {"output": {"resolution": "720p", "quality": "draft", "fps": 24}, "scenes": scenes,
            "captions": {"burnIn": False}}
    formula = (24 * Fraction(101, 100) + 24 * Fraction(35, 100)
               - sum(Fraction(13, 100) for i in range(47) if i % 3 == 0)) * 24
    result, _ = _render(tmp_path, spec)
    with av.open(str(tmp_path / "gcs/out/exports/j2/export.mp4")) as c:
        frames = sum(1 for _ in c.demux(c.streams.video[0]) if _.size)
    assert abs(frames - formula) <= 1, (frames, float(formula))
    assert frames == round(result.plan.total_s * 24)
    timeline = result.output["scenes"]
    assert len(timeline) == 48
    last = timeline[-1]
    assert abs((last["startS"] + last["durationS"]) * 24 - formula) <= 1
    assert result.output["durationS"] == pytest.approx(float(formula) / 24, abs=1 / 24)


def test_cues_the_video_cannot_show_are_reported_in_the_output_and_the_log(tmp_path, capsys):
    # scene 0 lasts its narration + 0.5 s (1.5 s), known only after probing: its cue at 1.7 s cannot
    # show; the render says so in output.warnings, in the video's metadata and in its log
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import media_factory as mf

    spec = {"output": {"resolution": "720p", "quality": "draft", "fps": 24}, "scenes": [
        {"id": "a", "visual": {"type": "color"}, "narration": {"src": "n.wav"}, "transition": {"type": "cut"},
         "caption": {"cues": [{"startS": 0.2, "endS": 1.0, "text": "shown"},
                              {"startS": 1.7, "endS": 2.5, "text": "after the end"}]}},
        {"id": "b", "visual": {"type": "color"}, "duration": 1}]}
    result, storage = _render(tmp_path, spec, {"n.wav": mf.tone(tmp_path / "n.wav", 1.0)})
    want = [{"path": "scenes[0].caption.cues[1]",
             "message": "starts 1.7 s into its scene, at or after the next scene's start (1.500 s into this "
                        "scene): it would show on no frame"}]
    assert result.output["warnings"] == want
    meta = storage.stat("out", "exports/j2/export.mp4").metadata
    assert json.loads(meta["warnings"]) == want
    assert "after the end" not in (tmp_path / "gcs/out/exports/j2/captions.srt").read_text()
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(e.get("message") == "not shown in the video" and e.get("path") == want[0]["path"] for e in logged)
