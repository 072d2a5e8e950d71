"""export_start accepts the content types infra.local.upload_types declares for the demo's uploads
(trial 5): every media extension of its table in its role, and the `<role>/x-<ext>` fallbacks."""
from __future__ import annotations

import pytest

from infra.local.upload_types import MEDIA_TYPES, upload_types
from shared import bootstrap
from tests.integration.functions_env import make_functions_env


@pytest.fixture
def env(tmp_path):
    e = make_functions_env(tmp_path, input_bucket="in", output_bucket="out", max_assets=200)
    yield e
    bootstrap.use_service(None)


def test_export_start_accepts_every_type_the_demo_declares(env):
    scenes, music = [], None
    for i, (ext, ctype) in enumerate(sorted(MEDIA_TYPES.items())):
        name = f"f{i}.{ext}"
        if ext == "svg":
            continue  # declared image/svg+xml on purpose: refused naming the file (test_bad_input)
        if ctype.startswith("audio/"):
            scenes.append({"id": f"a{i}", "visual": {"type": "color"}, "duration": 1, "narration": {"src": name}})
        else:
            scenes.append({"id": f"v{i}", "visual": {"type": ctype.split("/")[0], "src": name}, "duration": 1})
    # fallbacks: an audio container as a clip, an unknown extension as an image, none as music
    scenes += [{"id": "x1", "visual": {"type": "video", "src": "theme.ogg"}, "duration": 1},
               {"id": "x2", "visual": {"type": "image", "src": "scan.xyz"}, "duration": 1}]
    music = {"src": "bed"}
    spec = {"scenes": scenes, "music": music}
    names = [n for sc in scenes for n in (sc["visual"].get("src"), (sc.get("narration") or {}).get("src")) if n]
    types = upload_types(spec, names + ["bed"])
    assert (types["theme.ogg"], types["scan.xyz"], types["bed"]) == ("video/ogg", "image/x-xyz", "audio/x-unknown")
    resp = env.c["export_start"].post("/", json={"spec": spec, "uploads": [
        {"name": n, "contentType": t} for n, t in types.items()]})
    assert resp.status_code == 202, resp.get_data(as_text=True)[:2000]
    assert len(resp.get_json()["uploads"]) == len(types) == len(MEDIA_TYPES) - 1 + 3
