"""Normalised copies stay small (render_job.normalize): a JPEG (q95, 4:4:4) just covering the output
frame, not a PNG at twice the frame, and every still larger than that is copied; and preflight's
running total of media (memory.MediaGuard)."""
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402
from PIL import Image, JpegImagePlugin  # noqa: E402

from render_job import memory  # noqa: E402
from render_job.normalize import normalize_image  # noqa: E402

RED = (255, 0, 0)


def phone_photo(path: Path, orientation: int = 6, size=(4032, 3024)) -> Path:
    """A 12 MP phone-like JPEG (q92 4:2:0, ~3 MB: gradients and grain), stored landscape with a red
    corner block top-left, and EXIF `orientation` (6: displayed turned 90 degrees clockwise)."""
    def grain(sigma: int) -> Image.Image:
        return Image.effect_noise((size[0] // 4, size[1] // 4), sigma).resize(size, Image.Resampling.BILINEAR)

    g = Image.linear_gradient("L").resize(size)
    im = Image.merge("RGB", (Image.blend(g, grain(60), 0.3), Image.blend(g, grain(50), 0.4),
                             Image.blend(g.transpose(Image.Transpose.ROTATE_90).resize(size), grain(40), 0.3)))
    im.paste(RED, (0, 0, 400, 400))
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, "JPEG", quality=92, exif=exif.tobytes())
    return path


def normalise(src: Path, out: Path, frame=(1920, 1080)):
    return normalize_image(str(src), str(out), *frame, max_pixels=400_000_000, max_decode_pixels=50_000_000)


def test_a_rotated_phone_photo_becomes_a_small_upright_jpeg_just_covering_the_frame(tmp_path):
    src = phone_photo(tmp_path / "phone.jpg")
    assert 2_000_000 < src.stat().st_size < 4_000_000  # as a phone writes them
    res = normalise(src, tmp_path / "phone.norm.jpg")
    assert res.path == str(tmp_path / "phone.norm.jpg")
    # displayed portrait, covering the 1920x1080 frame: 1920 wide (was 2880x3840, twice the frame)
    assert (res.width, res.height) == (1920, 2560)
    assert res.changes == ("EXIF orientation 6", "downscaled 4032x3024->2560x1920")
    with Image.open(res.path) as im:
        assert (im.format, im.size, im.mode) == ("JPEG", (1920, 2560), "RGB")
        assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4: chroma at full resolution
        assert not im.getexif()  # the orientation is in the pixels now
        # the stored top-left corner is displayed top-right after a 90 degree clockwise turn
        r, g, b = im.getpixel((1920 - 40, 40))
        assert r > 200 and g < 60 and b < 60
    # at most 2 bytes per pixel of the 1080p frame (4.1 MB): 200 such copies take < 0.9 GB of the
    # task's memory; the PNG of 2880x3840 the old path wrote for this photo was 17 MB
    assert Path(res.path).stat().st_size <= 2 * 1920 * 1080


def halves_png(path: Path, size) -> Path:
    """An 8-bit RGB PNG (what FFmpeg reads as it is): red left half, blue right half."""
    im = Image.new("RGB", size, (0, 0, 255))
    im.paste(RED, (0, 0, size[0] // 2, size[1]))
    im.save(path, compress_level=1)
    return path


@pytest.mark.parametrize("size, copy", [((3840, 8192), (1920, 4096)), ((3000, 2000), (1920, 1280))])
def test_a_still_larger_than_covering_the_frame_is_copied_at_1x_even_when_ffmpeg_could_read_it(
        tmp_path, size, copy):
    """Issue 15 review, finding 1: up to 2x the frame (on its shorter side) such a still went to
    FFmpeg as it was, and a 3840x8192 one held ~80 MB per scene there; the budget counted a frame."""
    src = halves_png(tmp_path / "big.png", size)
    res = normalise(src, tmp_path / "big.norm.jpg")
    assert (res.path, res.changes) == (str(tmp_path / "big.norm.jpg"), (f"downscaled {size[0]}x{size[1]}->"
                                                                         f"{copy[0]}x{copy[1]}",))
    assert (res.width, res.height, res.source_width, res.source_height) == (*copy, *size)
    with Image.open(res.path) as im:
        assert (im.format, im.size) == ("JPEG", copy)
        assert [abs(a - b) <= 3 for a, b in zip(im.getpixel((10, 10)), RED)] == [True] * 3
        assert [abs(a - b) <= 3 for a, b in zip(im.getpixel((copy[0] - 10, 10)), (0, 0, 255))] == [True] * 3


@pytest.mark.parametrize("size", [(1920, 1080), (1920, 4096), (1000, 400)])
def test_a_still_no_larger_than_covering_the_frame_is_used_as_it_is(tmp_path, size):
    # covering the 1920x1080 frame exactly on one side (or not at all): every pixel is read, nothing to gain
    src = halves_png(tmp_path / "fits.png", size)
    res = normalise(src, tmp_path / "fits.norm.jpg")
    assert (res.path, res.changes, res.width, res.height) == (str(src), (), *size)
    assert not (tmp_path / "fits.norm.jpg").exists()


def test_a_lossless_picture_with_alpha_is_flattened_into_the_jpeg(tmp_path):
    im = Image.new("RGBA", (320, 180), (255, 255, 255, 0))  # transparent pixels store white
    im.paste((0, 200, 0, 255), (0, 0, 160, 180))
    im.save(tmp_path / "logo.png")
    res = normalise(tmp_path / "logo.png", tmp_path / "logo.norm.jpg", frame=(1280, 720))
    with Image.open(res.path) as out:
        assert (out.format, out.size) == ("JPEG", (320, 180))
        assert [abs(a - b) <= 3 for a, b in zip(out.getpixel((80, 90)), (0, 200, 0))] == [True] * 3
        assert max(out.getpixel((240, 90))) <= 3  # flattened onto black, not the stored white


# --- MediaGuard -------------------------------------------------------------------------------
def test_the_media_allowance_is_the_memory_less_the_least_ffmpeg_and_the_overhead():
    g = memory.MediaGuard(8 * 1024**3, "RENDER_MEMORY_BYTES", 1920, 1080, "1080p")
    assert g.ffmpeg == memory.ffmpeg_floor_bytes(1920, 1080) == 450 * memory.MIB  # 150 + 300 MiB at 1080p
    assert memory.ffmpeg_floor_bytes(1280, 720) == int((150 + 300 * 4 / 9) * memory.MIB)
    assert g.allowance == (8192 - 450 - 512) * memory.MIB
    # F of any plan is at least its floor (the same model: the encoding run is part of F)
    assert memory.ffmpeg_floor_bytes(640, 360) < memory.ffmpeg_floor_bytes(1280, 720) < g.ffmpeg


def test_the_guard_fails_at_the_file_that_does_not_fit_and_every_one_after_it():
    limit = memory.ffmpeg_floor_bytes(1280, 720) + int(memory.OVERHEAD_MB * memory.MIB) + 1000
    g = memory.MediaGuard(limit, "RENDER_MEMORY_BYTES", 1280, 720, "720p")
    g.add(600)
    g.add(400)  # exactly the allowance: fits
    with pytest.raises(memory.MediaOverLimit) as exc:
        g.add(1)
    assert exc.value.code == "memory_limit"
    assert exc.value.message == (
        f"the media files of this export (downloads and normalised pictures) need more than the 0.00 GB of "
        f"memory that the render task's {memory.gb(limit)} (RENDER_MEMORY_BYTES) leaves for them beside "
        f"FFmpeg (0.30 GB at the least, 720p) and overhead (0.54 GB); use fewer or smaller media files")
    g.add(-501)  # a deletion never raises
    with pytest.raises(memory.MediaOverLimit):
        g.add(0)  # the job has failed, even if under the allowance again: nothing more is fetched or decoded
    assert g.total == 500
