"""Normalised stills: bytes on disk, time to write, and the quality of the frame x264 finally encodes.

    .venv/bin/python tests/bench/bench_normalize.py [workdir] [old normalize.py]

e.g. `git show 16f7eef:render_job/normalize.py > /tmp/normalize_old.py` for the PNG path before.

Inputs (generated, nothing downloaded): a 12 MP phone photo (FFmpeg mandelbrot + noise, 4032x3024,
JPEG q95 4:2:0, ~3 MB, EXIF orientation 6: displayed 3024x4032) and a Retina screenshot (testsrc2,
2880x1800 RGBA, fully opaque: text, sharp edges, flat colours). Each is written as PNG (compress level
1) or JPEG (q95, 4:4:4) at 2x or 1x the 1080p frame (render_job.normalize.target_size), then fitted
as the render does (cover to 1920x1080, bicubic, BT.709 yuv420p) and encoded by x264 at the
`standard` profile (veryfast, CRF 23). PSNR/SSIM (FFmpeg's filters, Y'CbCr) of that frame against
the reference: the source decoded at full size by Pillow, fitted by the same chain, not encoded.
Rows "normalize_image": the real function (decode, draft, resize, write: wall seconds of the call),
this tree's and, when given, an older normalize.py's.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from render_job.graph.command import QUALITY  # noqa: E402
from render_job.graph.visuals import _SCALE_COMMON  # noqa: E402
from render_job.normalize import normalize_image, target_size  # noqa: E402
from render_job.runner import find_ffmpeg  # noqa: E402

W, H = 1920, 1080
FIT = f"scale={W}:{H}:force_original_aspect_ratio=increase:{_SCALE_COMMON},crop={W}:{H},setsar=1,format=yuv420p"
VARIANTS = [("PNG", 2.0), ("PNG", 1.0), ("JPEG", 2.0), ("JPEG", 1.0)]


def ff(*args: str) -> str:
    proc = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-y", *args], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return proc.stderr


def inputs(work: Path) -> dict[str, Path]:
    photo, shot = work / "phone.jpg", work / "screenshot.png"
    if not photo.exists():
        ff("-f", "lavfi", "-i", "mandelbrot=s=4032x3024:maxiter=300:start_scale=1.5,format=rgb24,"
           "noise=alls=14:allf=u,gblur=sigma=0.6", "-frames:v", "1", str(work / "photo.png"))
        with Image.open(work / "photo.png") as im:
            exif = im.getexif()
            exif[0x0112] = 6
            im.convert("RGB").save(photo, "JPEG", quality=95, exif=exif.tobytes())
    if not shot.exists():
        ff("-f", "lavfi", "-i", "testsrc2=s=2880x1800,format=rgba", "-frames:v", "1", str(shot))
    return {"phone photo 4032x3024 EXIF 6": photo, "screenshot 2880x1800 RGBA": shot}


def decoded(path: Path) -> Image.Image:
    from PIL import ImageOps

    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def write(im: Image.Image, fmt: str, headroom: float, out: Path) -> float:
    tw, th = target_size(im.width, im.height, W, H, headroom=headroom)
    t0 = time.perf_counter()
    small = im.resize((tw, th), Image.Resampling.LANCZOS, reducing_gap=3.0) if (tw, th) != im.size else im
    if fmt == "PNG":
        small.save(out, "PNG", compress_level=1)
    else:
        small.save(out, "JPEG", quality=95, subsampling=0)
    return time.perf_counter() - t0


def scores(frame: Path, ref: Path) -> tuple[float, float]:
    err = ff("-i", str(frame), "-i", str(ref), "-lavfi", "[0:v][1:v]psnr", "-f", "null", "-")
    psnr = float(re.search(r"PSNR .*average:([\d.inf]+)", err).group(1).replace("inf", "99"))
    err = ff("-i", str(frame), "-i", str(ref), "-lavfi", "[0:v][1:v]ssim", "-f", "null", "-")
    ssim = float(re.search(r"SSIM .*All:([\d.]+)", err).group(1))
    return psnr, ssim


def encoded_scores(copy: Path, work: Path, ref: Path) -> tuple[float, float]:
    preset, crf = QUALITY["standard"]
    frame = work / "x264.mp4"
    ff("-i", str(copy), "-vf", FIT, "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-frames:v", "1",
       str(frame))
    return scores(frame, ref)


def real(fn, label: str, name: str, src: Path, work: Path, ref: Path, ext: str) -> None:
    out = work / f"real.norm{ext}"
    t0 = time.perf_counter()
    res = fn(str(src), str(out), W, H, max_pixels=400_000_000, max_decode_pixels=50_000_000)
    secs = time.perf_counter() - t0
    psnr, ssim = encoded_scores(Path(res.path), work, ref)
    print(f"| {name} | normalize_image, {label} | {res.width}x{res.height} | {os.path.getsize(res.path):,} | "
          f"{secs:.2f} | {psnr:.2f} | {ssim:.5f} |")


def main(work: Path, old: Path | None = None) -> None:
    work.mkdir(parents=True, exist_ok=True)
    preset, crf = QUALITY["standard"]
    old_fn = None
    if old is not None:
        spec = importlib.util.spec_from_file_location("normalize_old", old)
        module = importlib.util.module_from_spec(spec)
        sys.modules["normalize_old"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        old_fn = module.normalize_image
    print(f"| input | copy | pixels | bytes | write s | PSNR dB | SSIM |\n|---|---|---|---|---|---|---|")
    for name, src in inputs(work).items():
        full = decoded(src)
        full.save(work / "full.png", compress_level=1)
        ref = work / "ref.nut"
        ff("-i", str(work / "full.png"), "-vf", FIT, "-c:v", "rawvideo", "-frames:v", "1", str(ref))
        for fmt, headroom in VARIANTS:
            out = work / f"norm.{fmt.lower()}"
            secs = write(full, fmt, headroom, out)
            frame = work / "x264.mp4"
            ff("-i", str(out), "-vf", FIT, "-c:v", "libx264", "-preset", preset, "-crf", str(crf),
               "-frames:v", "1", str(frame))
            psnr, ssim = scores(frame, ref)
            with Image.open(out) as im:
                size = f"{im.width}x{im.height}"
            print(f"| {name} | {fmt} {headroom:g}x | {size} | {os.path.getsize(out):,} | {secs:.2f} | "
                  f"{psnr:.2f} | {ssim:.5f} |")
        if old_fn is not None:
            real(old_fn, f"old ({old.name})", name, src, work, ref, ".png")
        real(normalize_image, "this tree", name, src, work, ref, ".jpg")
        print(f"| {name} | (no copy: reference through x264) | | | | "
              + "{:.2f} | {:.5f} |".format(*_direct(work, ref, preset, crf)))


def _direct(work: Path, ref: Path, preset: str, crf: int) -> tuple[float, float]:
    frame = work / "x264.mp4"
    ff("-i", str(work / "full.png"), "-vf", FIT, "-c:v", "libx264", "-preset", preset, "-crf", str(crf),
       "-frames:v", "1", str(frame))
    return scores(frame, ref)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/bench-normalize"),
         Path(sys.argv[2]) if len(sys.argv) > 2 else None)
