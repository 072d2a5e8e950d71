"""Input normalisation: fix still images where FFmpeg alone is wrong or fragile (Pillow, in-process).

FFmpeg (5.x-9.x) decodes most stills well, but not all of them:

- EXIF orientation is ignored for stills: a phone's portrait photo comes out lying on its side.
- Adobe YCCK JPEGs (the usual "CMYK JPEG" written by Photoshop) decode to wrong colours in the
  mjpeg decoder; CMYK in general has no RGB meaning for it.
- Transparency is dropped by the `format=yuv420p` conversion, exposing whatever colour the fully
  transparent pixels happen to store (often white, sometimes garbage).
- 16-bit grayscale, palette-with-alpha, bilevel and exotic formats (TIFF, WebP, GIF, BMP...) are
  handled unevenly across builds.
- Very large images (a 16000+ px panorama or a 100 MP scan) cost FFmpeg seconds and hundreds of MB
  per scene, and exceed some builds' limits. Any image larger than the frame costs FFmpeg memory for
  its decoded pixels in every scene that shows it, until the graph ends, and its decode per scene
  (BENCHMARKS.md, "Stills").

So every image visual goes through `normalize_image()` during the job's `preparing` stage. Images
that FFmpeg handles as they are (8-bit RGB or grayscale PNG/JPEG, no EXIF rotation) and that are no
larger than needed (they do not cover the frame with pixels to spare in both directions:
COVER_HEADROOM) are left untouched (no cost); the others are rewritten once as an 8-bit JPEG
(quality 95, no chroma subsampling) just covering the output frame:

1. decoded with Pillow; a JPEG is decoded with DCT-domain downscaling (`draft`, 1/2 to 1/8) when
   it is bigger than needed, so memory stays bounded by the reduced size, not the source size;
2. converted to RGB: CMYK/YCCK with the embedded ICC profile when there is one (LittleCMS), else
   the naive inverse (pure CMYK red -> RGB red); 16-bit grayscale scaled (not clipped) to 8 bits;
   palette and bilevel expanded;
3. transparency flattened onto BLACK (`BACKGROUND`): the same colour as the `contain` bars, so a
   logo on a transparent background sits on one continuous black field; partial alpha is blended;
4. downscaled (Lanczos) when larger than needed: the result still covers the output frame in both
   directions (COVER_HEADROOM = 1: the render fits every still to the frame before any zoom or pan,
   so it never reads more pixels), and no side exceeds MAX_SIDE (8192) px;
5. EXIF orientation applied (rotation/mirroring), then the EXIF data dropped.

Why a JPEG at 1x: x264 at CRF 23 costs the frame far more than the copy does, and the copy takes a
ninth of the old 2x PNG's bytes of the task's in-memory disk, in a fifth of the time
(tests/bench/bench_normalize.py; BENCHMARKS.md, "Stills").

Why every image over 1x (2x until issue 15's review): Pillow decodes every still here anyway (the
check that it is complete), so a copy adds only the resize and the JPEG, and FFmpeg then decodes a
small file instead of the original, in every scene showing it: less CPU and memory
(tests/bench/bench_big_stills.py; BENCHMARKS.md, "Stills"). A
still whose shape differs from the frame's still covers it with more pixels than the frame (a
portrait copy: 1920x2560): the render's memory model counts them (render_job.graph.timeline.scene_memory_mb,
from the width and height this module reports).

Limits (settings): `render_max_image_pixels` (any image, checked from the header before decoding)
and `render_max_decode_pixels` (images that must be decoded at full size: everything but JPEG).
Pure functions aside, this module only reads and writes local files.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

from shared.errors import PermanentRenderError, TransientError
from shared.messages import plain

MAX_SIDE = 8192                 # no normalised image side exceeds this (pixels)
# images covering the output frame at most this many times go to FFmpeg as they are, and a normalised
# copy just covers it this many times: the render fits every still to the frame first, reads no more
COVER_HEADROOM = 1.0
BACKGROUND = (0, 0, 0)          # transparent pixels are flattened onto this colour (black)
COPY_SUFFIX = ".norm.jpg"       # how the caller names a normalised copy (always a JPEG: COPY_JPEG)
COPY_JPEG = {"quality": 95, "subsampling": 0}  # 4:4:4; x264 re-encodes at CRF anyway (module docstring)
PASS_THROUGH_FORMATS = ("PNG", "JPEG")
PASS_THROUGH_MODES = ("RGB", "L")
# formats Pillow reads that we accept as image visuals (others fall back to FFmpeg's decoders)
PIL_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "GIF", "BMP", "TIFF", "PPM", "TGA", "ICO", "QOI", "DIB", "AVIF")
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageResult:
    """The outcome for one image.

    path: the file FFmpeg should read (the original, or the normalised JPEG copy).
    width/height: pixels of that file (as displayed: EXIF orientation applied).
    source_width/source_height: pixels of the original as stored. mode/format: Pillow's, of the source.
    changes: what normalisation did (empty when the original is used), e.g. ["EXIF orientation 6", "CMYK->RGB"].
    """

    path: str
    width: int
    height: int
    source_width: int
    source_height: int
    mode: str
    format: str
    changes: tuple[str, ...] = ()


def target_size(width: int, height: int, frame_w: int, frame_h: int, *, max_side: int = MAX_SIDE,
                headroom: float = COVER_HEADROOM) -> tuple[int, int]:
    """The (width, height) an image of width x height should be reduced to (never enlarged).

    The result still covers `headroom` x the output frame (frame_w x frame_h) in both directions,
    and its longer side is at most `max_side`. Aspect ratio is kept; each side is at least 1 px.
    """
    scale = min(1.0, max(headroom * frame_w / width, headroom * frame_h / height), max_side / max(width, height))
    if scale >= 1.0:
        return width, height
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def _orientation(im) -> int:
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # malformed EXIF: ignore it, the pixels are what matter
        return 1
    return value if 1 <= value <= 8 else 1


def _transpose(im, orientation: int):
    from PIL import Image

    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation)
    return im.transpose(method) if method is not None else im


def _cmyk_to_rgb(im, changes: list[str]):
    from PIL import ImageCms

    icc = im.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            changes.append("CMYK->RGB (ICC)")
            return out
        except Exception:  # a broken profile: fall back to the naive conversion
            pass
    changes.append("CMYK->RGB")
    return im.convert("RGB")


def _to_working_mode(im, changes: list[str]):
    """Convert to RGB, RGBA, L or LA (8 bits per channel), keeping alpha when there is any."""
    mode = im.mode
    if mode in ("RGB", "L") and "transparency" in im.info:  # a colour-key (tRNS) transparent colour
        changes.append("colour-key transparency")
        return im.convert("RGBA")
    if mode in ("RGB", "RGBA", "L", "LA"):
        return im
    if mode == "CMYK":
        return _cmyk_to_rgb(im, changes)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grayscale: scale 0..65535 to 0..255 (a plain convert("L") would clip at 255)
        changes.append(f"{mode}->L")
        return im.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if mode == "F":
        changes.append("F->L")
        return im.point(lambda v: v * 255).convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        changes.append(f"{mode}->{'RGBA' if has_alpha else 'RGB'}")
        return im.convert("RGBA" if has_alpha else "RGB")
    if mode == "1":
        changes.append("1->L")
        return im.convert("L")
    if mode == "La":
        changes.append("La->LA")
        return im.convert("LA")
    if mode == "RGBa":
        changes.append("RGBa->RGBA")
        return im.convert("RGBA")
    if mode in ("L", "RGB") or mode.startswith("RGB"):
        return im.convert("RGB")
    changes.append(f"{mode}->RGB")
    return im.convert("RGBA" if "A" in mode else "RGB")


def _flatten(im, changes: list[str]):
    """RGB or L without alpha; transparency blended onto BACKGROUND."""
    from PIL import Image

    if im.mode in ("RGBA", "LA"):
        alpha = im.getchannel("A")
        lo, hi = alpha.getextrema()
        rgb = im.convert("RGB")
        if lo < 255:
            bg = Image.new("RGB", im.size, BACKGROUND)
            bg.paste(rgb, (0, 0), alpha)
            changes.append("alpha flattened onto black")
            return bg
        return rgb
    return im


def _fail(label: str, text: str) -> PermanentRenderError:
    return PermanentRenderError(f"{label}: {text}")


def normalize_image(path: str, out_path: str, frame_w: int, frame_h: int, *, max_pixels: int,
                    max_decode_pixels: int, label: str | None = None) -> ImageResult | None:
    """Check one still image and, when FFmpeg would get it wrong, write a normalised copy (JPEG).

    Args:
        path: the downloaded image. out_path: where to write the copy (if one is needed; a JPEG
            whatever its name: the caller ends it with COPY_SUFFIX).
        frame_w, frame_h: the output frame in pixels (decides how far a huge image is reduced).
        max_pixels: refuse images with more pixels than this (from the header, before decoding).
        max_decode_pixels: refuse non-JPEG images with more pixels than this (they decode at full size).
        label: how to name the file in messages (the spec's src).
    Returns:
        ImageResult, or None when Pillow does not recognise the file as an image, or reads only its
        header (a format outside PIL_FORMATS, e.g. JPEG 2000, within the pixel limits): the caller
        then lets FFmpeg's decoders try it.
    Raises:
        PermanentRenderError: too large, truncated or corrupt (every message starts with the label).
        TransientError: the process ran out of memory while decoding (the image is within the limits:
            a new task, with nothing else decoding beside it, may succeed).
    """
    from PIL import Image, UnidentifiedImageError

    name = label or os.path.basename(path)
    Image.MAX_IMAGE_PIXELS = None  # our own limits below replace Pillow's decompression-bomb guard
    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        return None
    except Exception as exc:
        raise _fail(name, f"not a readable image ({_short(exc)})") from None
    with im:
        fmt = (im.format or "").upper()
        w, h = im.size
        src_mode = im.mode
        # the pixel limits hold for every format Pillow can read the header of, also those left to
        # FFmpeg's decoders below (a 16 kB JPEG 2000 of 16000x16000 would decode to GBs there)
        if w < 1 or h < 1:
            raise _fail(name, f"image has no pixels ({w}x{h})")
        if w * h > max_pixels:
            raise _fail(name, f"image is {w}x{h} ({plain(w * h / 1e6, 2)} MP), over the limit of "
                              f"{plain(max_pixels / 1e6, 2)} MP (RENDER_MAX_IMAGE_PIXELS)")
        is_jpeg = fmt in ("JPEG", "MPO")
        if not is_jpeg and w * h > max_decode_pixels:
            raise _fail(name, f"{fmt or 'the'} image is {w}x{h} ({plain(w * h / 1e6, 2)} MP), over the limit of "
                              f"{plain(max_decode_pixels / 1e6, 2)} MP for images decoded at full size "
                              "(RENDER_MAX_DECODE_PIXELS; a JPEG may be larger)")
        if fmt not in PIL_FORMATS:
            return None
        orientation = _orientation(im)
        # sizes as stored: a picture displayed turned by 90 degrees (EXIF 5-8) covers the frame turned too
        fw, fh = (frame_h, frame_w) if orientation >= 5 else (frame_w, frame_h)
        tw, th = target_size(w, h, fw, fh)  # the copy's size
        oversized = (tw, th) != (w, h)
        changes: list[str] = []
        # from the header: a JPEG that will be rewritten is decoded at 1/2..1/8 of its size (DCT domain)
        if is_jpeg and oversized:
            im.draft(None, (tw, th))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.load()  # the whole image: a truncated or corrupt file fails here
        except MemoryError:  # not the file's fault: the task was short of memory (retried in a new task)
            raise TransientError(f"{name}: ran out of memory decoding the {w}x{h} image "
                                 f"({w * h / 1e6:.0f} MP)") from None
        except Exception as exc:
            raise _fail(name, f"image cannot be decoded, the file is truncated or corrupt ({_short(exc)})") from None
        if getattr(im, "n_frames", 1) > 1:
            changes.append("first frame only")
        if fmt not in PASS_THROUGH_FORMATS:
            changes.append(f"{fmt}->JPEG")
        if orientation != 1:
            changes.append(f"EXIF orientation {orientation}")
        if src_mode not in PASS_THROUGH_MODES:
            changes.append(f"mode {src_mode}")
        elif "transparency" in im.info:
            changes.append("transparency")
        if not changes and not oversized:
            return ImageResult(path=path, width=w, height=h, source_width=w, source_height=h, mode=src_mode,
                               format=fmt)
        if (tw, th) != (w, h):
            changes.append(f"downscaled {w}x{h}->{tw}x{th}")
        work = _to_working_mode(im, changes)
        if work.size != (tw, th):
            work = work.resize((tw, th), Image.Resampling.LANCZOS, reducing_gap=3.0)
        work = _flatten(work, changes)
        if work.mode not in ("RGB", "L"):
            work = work.convert("RGB")
        work = _transpose(work, orientation)
        try:
            work.save(out_path, "JPEG", **COPY_JPEG)
        except OSError as exc:
            raise TransientError(f"{name}: cannot write the normalised image ({exc.strerror})") from None
        return ImageResult(path=out_path, width=work.width, height=work.height, source_width=w, source_height=h,
                           mode=src_mode, format=fmt, changes=tuple(changes))


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
