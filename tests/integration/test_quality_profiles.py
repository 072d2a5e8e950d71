"""The H.264 profile and level each `output.quality` gives, measured on real renders (run_export with
LocalStorage), as README's spec table states them."""
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import pytest  # noqa: E402

from render_job.job import run_export  # noqa: E402
from shared.adapters.local_storage import LocalStorage  # noqa: E402
from shared.config import Settings  # noqa: E402
from tests.fakes import FakeReporter  # noqa: E402

# (quality, resolution, fps) -> (profile, level x 10), as README's `output.quality` row says
MEASURED = {
    ("draft", "720p", 24): ("Constrained Baseline", 31),
    ("standard", "1080p", 30): ("High", 40),
    ("high", "1080p", 60): ("High", 42),
}


@pytest.mark.parametrize("quality,resolution,fps", list(MEASURED))
def test_profile_and_level_per_quality(tmp_path, quality, resolution, fps):
    storage = LocalStorage(tmp_path / "store")
    spec = {"version": 1, "title": "profile", "output": {"resolution": resolution, "fps": fps, "quality": quality},
            "scenes": [{"id": "a", "visual": {"type": "title", "text": "x"}, "duration": 0.5}]}
    storage.upload_bytes("in", "jobs/j/spec.json", json.dumps(spec).encode(), "application/json")
    (tmp_path / "work").mkdir()
    settings = Settings(input_bucket="in", output_bucket="out", ffmpeg_binary=os.environ.get("FFMPEG_BINARY") or None)
    result = run_export("j", storage, FakeReporter(), settings, str(tmp_path / "work"))
    assert result.exit_code == 0 and result.status == "succeeded", result.error
    local = tmp_path / "video.mp4"
    local.write_bytes(storage.read_bytes("out", "exports/j/profile.mp4"))
    with av.open(str(local)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.name, cc.profile, cc.level) == ("h264", *MEASURED[(quality, resolution, fps)])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    profile, level = MEASURED[(quality, resolution, fps)]
    assert f"{profile}**" in readme and f"{level / 10:.1f} at {resolution} {fps} fps" in readme
