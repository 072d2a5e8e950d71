"""Still-image formats a `visual.src` may be (README "Export spec v1", `scenes[].visual.src`), each
rendered for real: TIFF (16-bit), WebP, BMP, AVIF, and animated GIF/WebP/PNG (first frame only)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import media_factory as mf  # noqa: E402
from tests.integration.test_media_cases import FPS, assert_color, assert_succeeded, frame_at, render  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
SIZE = (320, 180)
SCENE_S = 0.5


def animated(path: Path, fmt: str, first, then) -> Path:
    """A two-frame animation (0.1 s each, looping) whose first frame is `first`."""
    a, b = Image.new("RGB", SIZE, first), Image.new("RGB", SIZE, then)
    a.save(path, format=fmt, save_all=True, append_images=[b], duration=100, loop=0)
    with Image.open(path) as im:
        assert getattr(im, "n_frames", 1) == 2, fmt
    return path


def stills(tmp_path: Path) -> dict[str, tuple[Path, tuple]]:
    """{asset name: (file, the colour the scene must show)}."""
    out: dict[str, tuple[Path, tuple]] = {}
    tiff = tmp_path / "deep.tiff"  # 16 bits per channel (rgb48), as scanners and editors write them
    mf.ff("-f", "lavfi", "-i", f"color=0xff0000:s={SIZE[0]}x{SIZE[1]}", "-frames:v", "1", "-pix_fmt", "rgb48le",
          str(tiff))
    with Image.open(tiff) as im:
        assert (im.format, im.tag_v2.get(258)) == ("TIFF", (16, 16, 16))  # BitsPerSample
    out["deep.tiff"] = (tiff, mf.RED)
    Image.new("RGB", SIZE, mf.GREEN).save(tmp_path / "still.webp", quality=95)
    out["still.webp"] = (tmp_path / "still.webp", mf.GREEN)
    Image.new("RGB", SIZE, mf.BLUE).save(tmp_path / "still.bmp")
    out["still.bmp"] = (tmp_path / "still.bmp", mf.BLUE)
    out["anim.gif"] = (animated(tmp_path / "anim.gif", "GIF", mf.RED, mf.BLUE), mf.RED)
    out["anim.webp"] = (animated(tmp_path / "anim.webp", "WEBP", mf.GREEN, mf.RED), mf.GREEN)
    out["anim.png"] = (animated(tmp_path / "anim.png", "PNG", mf.BLUE, mf.GREEN), mf.BLUE)  # APNG
    return out


def test_tiff_webp_bmp_and_animated_images_render_their_first_frame(tmp_path):
    files = stills(tmp_path)
    scenes = [{"id": f"s{i}", "visual": {"type": "image", "src": name}, "duration": SCENE_S}
              for i, name in enumerate(files)]
    r = render(tmp_path, scenes, {name: path for name, (path, _) in files.items()})
    assert_succeeded(r)
    for i, (name, (_, colour)) in enumerate(files.items()):
        # the first frame for the whole scene: its second and its last frame too (an animation would
        # have moved on after 0.1 s)
        for t in (i * SCENE_S + 1 / FPS, i * SCENE_S + 0.25, (i + 1) * SCENE_S - 1 / FPS):
            assert_color(frame_at(r.mp4, t), (640, 360), colour)


def test_avif_still_renders(tmp_path):
    # trial 2 follow-up: Pillow 11.3 reads AVIF; FFmpeg's probe sees it as a video without duration
    # ("media has no duration") when it is not decoded as a still
    Image.new("RGB", SIZE, mf.GREEN).save(tmp_path / "photo.avif", quality=90)
    r = render(tmp_path, [{"id": "s1", "visual": {"type": "image", "src": "photo.avif"}, "duration": SCENE_S}],
               {"photo.avif": tmp_path / "photo.avif"})
    assert_succeeded(r)
    assert_color(frame_at(r.mp4, 0.25), (640, 360), mf.GREEN)
