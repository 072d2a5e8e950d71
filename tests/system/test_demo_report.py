"""examples/demo.py end to end on the embedded stack: what a user running their own storyboard sees
(issue: `output.warnings` was never printed, the run ended `OK:` silently)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("sceneflow_demo", ROOT / "examples" / "demo.py")
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)

pytestmark = [pytest.mark.slow]


def test_the_demo_prints_the_exports_warnings(tmp_path, capsys):
    # the scene's length comes from its narration (n5.wav, 3.27 s): the second cue starts after it
    storyboard = {"version": 1,
                  "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 24, "quality": "draft"},
                  "scenes": [{"id": "a", "visual": {"type": "color", "color": "#224466"}, "narration": {"src": "n5.wav"},
                              "caption": {"cues": [{"startS": 0.2, "endS": 1.0, "text": "shown"},
                                                   {"startS": 5.0, "endS": 6.0, "text": "never shown"}]}}]}
    path = tmp_path / "sb.json"
    path.write_text(json.dumps(storyboard), encoding="utf-8")
    rc = demo.main(["--storyboard", str(path), "--assets", str(ROOT / "examples" / "storyboard"),
                    "--out", str(tmp_path / "out"), "--timeout", "240"])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = out.splitlines()
    assert "1 warning: part of the storyboard is not in the video (output.warnings in export_status; " \
           "also in the render log):" in lines
    assert any(line.startswith("  WARNING scenes[0].caption.cues[1]: starts 5 s into its scene") for line in lines), out
    assert lines[-1].startswith("OK with 1 warning (above): export took ")
    assert "uploading 1 file (" in out and "plan: 1 scene, total " in out
    loudness = [line for line in lines if line.startswith("loudness: ")]
    assert len(loudness) == 1 and " LUFS integrated (target -16), true peak " in loudness[0], out
    assert " dBTP (ceiling -1.5), LRA " in loudness[0] and "not measured" not in loudness[0], out
