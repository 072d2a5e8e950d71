"""Generated test media: every awkward input is made here, at test time (Pillow and FFmpeg lavfi).

Nothing is downloaded. FFmpeg is the one the render job uses (FFMPEG_BINARY, else PATH, else the
imageio-ffmpeg wheel's), so the metadata flags below adapt to its version.
"""
from __future__ import annotations

import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    from render_job.runner import find_ffmpeg

    return find_ffmpeg(os.environ.get("FFMPEG_BINARY") or None)


@lru_cache(maxsize=1)
def ffmpeg_major() -> int:
    out = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout
    m = re.search(r"ffmpeg version n?(\d+)", out)
    return int(m.group(1)) if m else 0


def ff(*args: str, timeout: float = 120) -> None:
    """Run FFmpeg quietly; raise with its stderr on failure."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {proc.stderr[-2000:]}")


# ---------------------------------------------------------------------------------------- images

def halves(size: tuple[int, int], first=RED, second=BLUE, vertical_split: bool = True, mode: str = "RGB"):
    """A Pillow image: left half `first`, right half `second` (or top/bottom when not vertical_split)."""
    from PIL import Image

    w, h = size
    im = Image.new("RGB", size, second)
    im.paste(first, (0, 0, w // 2, h) if vertical_split else (0, 0, w, h // 2))
    return im.convert(mode) if mode != "RGB" else im


def exif_jpeg(path: Path, orientation: int, size=(320, 180)) -> Path:
    """A landscape JPEG stored as left-red/right-blue, with EXIF Orientation `orientation`."""
    im = halves(size)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def cmyk_jpeg(path: Path, cmyk=(0, 255, 255, 0), size=(64, 48)) -> Path:
    """A plain Adobe CMYK JPEG (APP14 transform 0), e.g. pure red C=0 M=100% Y=100% K=0."""
    from PIL import Image

    Image.new("CMYK", size, cmyk).save(path, "JPEG", quality=95)
    return path


def ycck_jpeg(path: Path, rgb=RED, size=(64, 48)) -> Path:
    """An Adobe YCCK JPEG (APP14 transform 2: what Photoshop writes for CMYK) showing `rgb`.

    libjpeg encodes YCCK as the YCbCr of (255-C, 255-M, 255-Y) plus K; Pillow writes CMYK as
    transform 0, so we write the YCC values as if they were CMYK and flip the transform flag.
    Adobe files store CMYK inverted, hence the 255 - v on both ends.
    """
    from PIL import Image

    r, g, b = (255 - v for v in rgb)  # libjpeg's YCCK->CMYK then Adobe's inversion yield back rgb's CMY
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    stored = [int(round(min(255, max(0, v)))) for v in (y, cb, cr)] + [255]
    Image.new("CMYK", size, tuple(255 - v for v in stored)).save(path, "JPEG", quality=100)
    data = bytearray(path.read_bytes())
    i = data.find(b"Adobe")
    assert i > 0 and data[i + 11] == 0
    data[i + 11] = 2  # transform: YCCK
    path.write_bytes(bytes(data))
    return path


def rgba_png(path: Path, size=(320, 180)) -> Path:
    """Left half opaque red; right half fully transparent (stored colour white); a 50% red stripe."""
    from PIL import Image

    w, h = size
    im = Image.new("RGBA", size, (255, 255, 255, 0))
    im.paste((255, 0, 0, 255), (0, 0, w // 2, h))
    im.paste((255, 0, 0, 128), (w // 2, 0, w // 2 + w // 8, h))
    im.save(path, "PNG")
    return path


def palette_png(path: Path, size=(320, 180), transparent: bool = False) -> Path:
    """A palette (P mode) PNG: left green, right blue; with `transparent`, blue is the tRNS colour."""
    im = halves(size, GREEN, BLUE).convert("P", palette=0, colors=4)
    kw = {}
    if transparent:
        idx = im.getpixel((size[0] - 1, 0))
        kw["transparency"] = idx
    im.save(path, "PNG", **kw)
    return path


def gray16_png(path: Path, value: int = 0x8080, size=(320, 180)) -> Path:
    """A 16-bit grayscale PNG (Pillow mode I;16)."""
    from PIL import Image

    Image.new("I;16", size, value).save(path, "PNG")
    return path


def rgb48_png(path: Path, color: str = "0x00ff00", size="320x180") -> Path:
    """A 16-bit-per-channel RGB PNG (FFmpeg rgb48be)."""
    ff("-f", "lavfi", "-i", f"color=c={color}:s={size}", "-frames:v", "1", "-pix_fmt", "rgb48be", str(path))
    return path


def big_jpeg(path: Path, size=(16400, 7000)) -> Path:
    """A very large baseline JPEG (left half red, right half blue), written by FFmpeg (not in this process)."""
    w, h = size
    ff("-f", "lavfi", "-i", f"color=c=blue:s={w}x{h},format=yuvj420p,"
       f"drawbox=x=0:y=0:w={w // 2}:h={h}:color=red:t=fill", "-frames:v", "1", "-q:v", "4", str(path), timeout=300)
    return path


def panorama_png(path: Path, size=(17000, 400)) -> Path:
    """A very wide PNG panorama: left half red, right half blue (about 20 MB decoded)."""
    halves(size).save(path, "PNG", compress_level=1)
    return path


# ----------------------------------------------------------------------------------------- audio

AUDIO_CODECS = {"wav": ["-c:a", "pcm_s16le"], "mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
                "ogg": ["-c:a", "libvorbis", "-q:a", "2"], "m4a": ["-c:a", "aac", "-b:a", "64k"],
                "flac": ["-c:a", "flac"]}


def tone(path: Path, seconds: float, rate: int = 44100, channels: int = 1, freq: int = 440) -> Path:
    """A sine tone of `seconds` in the format given by the file extension (wav, mp3, ogg, m4a)."""
    ext = path.suffix.lstrip(".")
    ff("-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate={rate}:duration={seconds}",
       "-ac", str(channels), "-ar", str(rate), *AUDIO_CODECS[ext], str(path))
    return path


def flac_picture_block(image: bytes, mime: str, width: int, height: int) -> bytes:
    """A FLAC METADATA_BLOCK_PICTURE body (front cover), as Vorbis comments carry it base64-encoded."""
    import struct

    m = mime.encode("ascii")
    return (struct.pack(">II", 3, len(m)) + m + struct.pack(">I", 0)  # type 3 = front cover, no description
            + struct.pack(">IIIII", width, height, 24, 0, len(image)) + image)


def with_cover_art(audio: Path, out: Path, rgb=RED, size=(300, 300)) -> Path:
    """`audio` (mp3, m4a, flac, ogg, mp4) re-muxed into `out` with an attached cover picture of colour
    `rgb`: an ID3 APIC frame (mp3), a covr atom (m4a/mp4), a PICTURE block (flac), or a
    METADATA_BLOCK_PICTURE comment (ogg: FFmpeg's ogg muxer cannot write picture streams). FFmpeg
    and PyAV read each back as a one-frame video stream with the attached_pic disposition."""
    import base64

    from PIL import Image

    cover = out.with_name(out.stem + "_cover.png")
    Image.new("RGB", size, rgb).save(cover, "PNG")
    ext = out.suffix.lstrip(".")
    if ext == "ogg":
        b64 = base64.b64encode(flac_picture_block(cover.read_bytes(), "image/png", *size)).decode("ascii")
        ff("-i", str(audio), "-map", "0", "-c", "copy", "-metadata:s:a:0", f"METADATA_BLOCK_PICTURE={b64}", str(out))
    else:
        ff("-i", str(audio), "-i", str(cover), "-map", "0", "-map", "1", "-c", "copy",
           "-c:v:" + str(_video_streams(audio)), "png" if ext == "flac" else "mjpeg",
           "-disposition:v:" + str(_video_streams(audio)), "attached_pic", str(out))
    cover.unlink()
    return out


def _video_streams(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return len(c.streams.video)


# ----------------------------------------------------------------------------------------- video

def clip(path: Path, seconds: float = 1.0, size: str = "320x180", rate: int = 25, audio: bool = False,
         extra: tuple[str, ...] = ()) -> Path:
    """An H.264 MP4 of testsrc2 (with a sine track when `audio`)."""
    args = ["-f", "lavfi", "-i", f"testsrc2=s={size}:r={rate}:d={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=44100:duration={seconds}", "-c:a", "aac"]
    ff(*args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra, str(path))
    return path


def rotated_clip(path: Path, rotation_ccw: int = 90, size: str = "192x108") -> Path:
    """A clip stored landscape (top half red, bottom half blue) with a display matrix asking players
    to rotate it `rotation_ccw` degrees counter-clockwise (FFmpeg's display-matrix convention)."""
    w, h = (int(v) for v in size.split("x"))
    plain = path.with_name(path.stem + "_plain.mp4")
    ff("-f", "lavfi", "-i", f"color=c=red:s={w}x{h // 2}:r=25:d=1", "-f", "lavfi",
       "-i", f"color=c=blue:s={w}x{h // 2}:r=25:d=1", "-filter_complex", "[0:v][1:v]vstack=inputs=2",
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(plain))
    if ffmpeg_major() >= 6:
        ff("-display_rotation:v:0", str(rotation_ccw), "-i", str(plain), "-c", "copy", str(path))
    else:  # FFmpeg <= 5: the mov muxer turns the legacy `rotate` tag into a display matrix
        ff("-i", str(plain), "-c", "copy", "-metadata:s:v:0", f"rotate={rotation_ccw}", str(path))
    plain.unlink()
    return path


def vfr_clip(path: Path) -> Path:
    """A variable-frame-rate clip: 15 frames 1/30 s apart, then 15 frames 1/10 s apart (2.0 s)."""
    ff("-f", "lavfi", "-i", "testsrc2=s=320x180:r=30:d=1",
       "-vf", "setpts='if(lt(N,15),N,15+(N-15)*3)/30/TB'", "-fps_mode", "vfr",
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-video_track_timescale", "90000",
       str(path))
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut the file to `keep` of its bytes (an interrupted upload)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def top_level_atoms(path) -> list[str]:
    """The MP4/MOV top-level box types in file order (e.g. ["ftyp", "moov", "mdat"]: faststart puts
    moov before mdat). Follows 64-bit sizes (size 1) and stops at a box running to the end (size 0).
    Ours on purpose: PyAV and FFmpeg do not report the boxes' order, and this is a dozen lines."""
    import struct
    names = []
    with open(path, "rb") as fh:
        while True:
            head = fh.read(8)
            if len(head) < 8:
                break
            size, kind = struct.unpack(">I4s", head)
            names.append(kind.decode("latin-1"))
            if size == 0:
                break
            if size == 1:
                size = struct.unpack(">Q", fh.read(8))[0]
                fh.seek(size - 16, 1)
            else:
                fh.seek(size - 8, 1)
    return names


def flash_click_clip(path: Path, audio_offset_s: float, seconds: float = 3.0, event_s: float = 2.0,
                     rate: int = 30) -> Path:
    """An MP4 or MKV (by `path`'s suffix; H.264 + AAC) whose picture flashes white for one frame (black
    otherwise) and whose sound clicks (40 ms of 1 kHz, silence otherwise) at the same instant of the
    file, `event_s` seconds after the first picture. The sound stream starts `audio_offset_s` seconds after the picture (negative:
    the picture starts that much later than the sound), as in camera files and edited MOV/MP4s.
    Each stream lasts `seconds`."""
    video = path.with_name(path.stem + "_v" + path.suffix)
    audio = path.with_name(path.stem + "_a.m4a")
    flash = round(event_s * rate)
    ff("-f", "lavfi", "-i", f"color=black:s=320x180:r={rate}:d={seconds},"
       f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='eq(n,{flash})'",
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(video))
    at = flash / rate - audio_offset_s  # the click in the sound stream's own time
    ff("-f", "lavfi", "-i", f"aevalsrc='0.8*sin(2*PI*1000*t)*between(t,{at:.6f},{at + 0.04:.6f})':s=48000:d={seconds}",
       "-c:a", "aac", "-b:a", "128k", str(audio))
    if audio_offset_s >= 0:
        ff("-i", str(video), "-itsoffset", f"{audio_offset_s:.6f}", "-i", str(audio), "-map", "0:v", "-map", "1:a",
           "-c", "copy", str(path))
    else:
        ff("-itsoffset", f"{-audio_offset_s:.6f}", "-i", str(video), "-i", str(audio), "-map", "0:v", "-map", "1:a",
           "-c", "copy", str(path))
    video.unlink()
    audio.unlink()
    return path


def moving_bar_clip(path: Path, interlaced: bool, seconds: float = 2.0, size: str = "1280x720") -> Path:
    """A white bar (1/10 of the width) crossing a black frame at 24 px per 1/50 s, shot at 50 pictures
    per second and stored at 25 frames per second: `interlaced` as top-field-first interlaced H.264
    (each frame's two fields are 1/50 s apart: the bar's edges comb), else progressive (every other
    picture). Near-lossless (qp 0), so the difference is the interlacing alone."""
    w, h = (int(v) for v in size.split("x"))
    src = (f"color=black:s={size}:r=50:d={seconds}[bg];color=white:s={w // 10}x{h}:r=50:d={seconds}[bar];"
           f"[bg][bar]overlay=x='mod(24*n,{w})':y=0:eval=frame:shortest=1,")
    if interlaced:
        ff("-filter_complex", src + "interlace=scan=tff:lowpass=off", "-c:v", "libx264", "-preset", "ultrafast",
           "-qp", "0", "-pix_fmt", "yuv420p", "-flags", "+ildct+ilme", "-field_order", "tt", str(path))
    else:
        ff("-filter_complex", src + "fps=25", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
           "-pix_fmt", "yuv420p", str(path))
    return path


def counter_flash_click_clip(path: Path, seconds: float = 4.0, event_s: float = 2.0, rate: int = 25,
                             gop: int = 50) -> Path:
    """A clip whose every frame differs: frame n has luma 16 + 4 (n mod 50) (a frame counter), except one white
    frame at `event_s`, when the sound (otherwise silent) clicks (40 ms of 1 kHz); keyframes every
    `gop` frames only (no scene-cut keyframes). By `path`'s suffix: `.ts` MPEG-TS with H.264 + AAC,
    `.mpg` MPEG-PS with MPEG-2 video + MP2, else (`.mp4`, `.mkv`) H.264 + AAC."""
    flash = round(event_s * rate)
    picture = (f"color=black:s=320x180:r={rate}:d={seconds},format=yuv420p,geq=lum='16+4*mod(N\\,50)':cb=128:cr=128,"
               f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='eq(n,{flash})'")
    sound = f"aevalsrc='0.8*sin(2*PI*1000*t)*between(t,{flash / rate:.6f},{flash / rate + 0.04:.6f})':s=48000:d={seconds}"
    if path.suffix == ".mpg":
        codecs = ["-c:v", "mpeg2video", "-q:v", "2", "-g", str(gop), "-sc_threshold", "1000000000", "-bf", "0",
                  "-c:a", "mp2", "-b:a", "192k", "-f", "vob"]
    else:
        codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop), "-keyint_min", str(gop),
                  "-sc_threshold", "0", "-c:a", "aac", "-b:a", "128k"]
    ff("-f", "lavfi", "-i", picture, "-f", "lavfi", "-i", sound, "-pix_fmt", "yuv420p", *codecs, str(path))
    return path
