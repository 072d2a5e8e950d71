"""Regressions found by the bad-input review: a cut followed by an xfade (time bases), and caption
text that looks like subtitle markup reaching the sidecars verbatim."""
import json

import av

from render_job.job import run_export
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from tests.fakes import FakeReporter

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
    assert MARKUP.replace("-->", "--\u200b>") in srt and "a \\N b \\h c" in srt
    assert "{\\p1}" in vtt and "--\u200b&gt;" in vtt
