"""The longest storyboard the spec accepts, end to end through the embedded stack (issue 15, "Done when"):
MAX_SCENES scenes, each with its own picture (a solid colour of a 6x6x6 grid) and its own narration (a
tone burst from the file's first sample, its own frequency), plus music: 401 uploads through the signed
PUT URLs, at 720p draft 24 fps (the smallest output the spec allows). Every frame is counted by
decoding and compared with the frame grid; the audio ends with the video within a frame; every
narration's onset is heard at its scene's first frame within half a frame, at its own frequency; every
scene shows its own colour in its middle frame. About 60 s on 2 cores."""
from __future__ import annotations

import json
import math
import time
import wave

import av
import numpy as np
import pytest
from PIL import Image

from infra.local import client
from infra.local.stack import EmbeddedStack
from infra.local.verify import heard_seconds
from shared.spec import MAX_SCENES
from tests.invariants import check_stack

pytestmark = [pytest.mark.slow]

FPS = 24
RATE = 48000
TONE_S = 0.25  # each narration: a tone burst this long, starting at the file's first sample
LEVELS = (0, 51, 102, 153, 204, 255)


def durations() -> list[float]:
    """0.50-0.58 s: scene ends fall between frames (0.52 s = 12.48 frames), so the grid rounds."""
    return [0.5 + 0.02 * (i % 5) for i in range(MAX_SCENES)]


def grid(durs: list[float]) -> list[int]:
    """The frame each scene starts on, then the frame count: the frame nearest the exact running sum
    (no ties here: k x 0.02 s x 24 is never a whole frame and a half)."""
    starts, t = [], 0.0
    for d in durs + [0.0]:
        starts.append(math.floor(round(t * FPS, 9) + 0.5))
        t += d
    return starts


def colour(i: int) -> tuple[int, int, int]:
    return LEVELS[i // 36 % 6], LEVELS[i // 6 % 6], LEVELS[i % 6]


def freq(i: int) -> float:
    return 400.0 + 20.0 * i  # 400 .. 4380 Hz


def ycbcr709(rgb: tuple[int, int, int]) -> np.ndarray:
    """BT.709 limited-range Y'CbCr of an 8-bit RGB colour (what the render converts stills to)."""
    r, g, b = (c / 255 for c in rgb)
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return np.array([16 + 219 * y, 128 + 224 * (b - y) / 1.8556, 128 + 224 * (r - y) / 1.5748])


def write_wav(path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def make_media(folder) -> list:
    files = []
    t = np.arange(int(TONE_S * RATE)) / RATE
    for i in range(MAX_SCENES):
        png = folder / f"scene-{i:03d}.png"
        Image.new("RGB", (64, 36), colour(i)).save(png)
        wav = folder / f"narration-{i:03d}.wav"
        write_wav(wav, 0.5 * np.sin(2 * np.pi * freq(i) * t))  # full level from sample 0: the onset
        files += [png, wav]
    music = folder / "music.wav"
    write_wav(music, 0.3 * np.sin(2 * np.pi * 110.0 * np.arange(4 * RATE) / RATE))  # a low hum, looped
    return files + [music]


def storyboard(durs: list[float]) -> dict:
    return {
        "title": "Two hundred scenes",
        "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": FPS, "quality": "draft"},
        "scenes": [{"id": f"s{i:03d}", "visual": {"type": "image", "src": f"scene-{i:03d}.png"},
                    "narration": {"src": f"narration-{i:03d}.wav"}, "duration": d} for i, d in enumerate(durs)],
        "music": {"src": "music.wav", "volume": 0.05, "ducking": True, "fadeOutS": 0},
        "captions": {"sidecar": []},
    }


def decode_video(mp4, middles: set[int]) -> tuple[int, dict[int, np.ndarray]]:
    """(frames decoded, {frame index: mean Y'CbCr of the central quarter} for the indices asked)."""
    count, seen = 0, {}
    with av.open(str(mp4)) as c:
        for frame in c.decode(video=0):
            if count in middles:
                planes = []
                for k, plane in enumerate(frame.planes[:3]):
                    a = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]
                    h, w = a.shape
                    planes.append(a[h // 4:3 * h // 4, w // 4:3 * w // 4].mean())
                seen[count] = np.array(planes)
            count += 1
    return count, seen


def decode_audio(mp4) -> tuple[float, np.ndarray]:
    """(time of the first decoded sample, mono samples at the stream's rate)."""
    chunks, t0, rate = [], None, RATE
    with av.open(str(mp4)) as c:
        for frame in c.decode(audio=0):
            if t0 is None:
                t0 = float(frame.time or 0.0)
            rate = frame.sample_rate
            chunks.append(frame.to_ndarray().reshape(len(frame.layout.channels), -1).mean(axis=0))
    assert rate == RATE
    return t0 or 0.0, np.concatenate(chunks)


def peak_hz(x: np.ndarray) -> float:
    n = 1 << 17
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    spectrum[: int(200 * n / RATE)] = 0  # below the lowest narration: the music's hum
    return float(np.argmax(spectrum) * RATE / n)


def test_max_scenes_storyboard_end_to_end(run_dir, tmp_path):
    wall = time.monotonic()
    durs = durations()
    starts = grid(durs)
    files = make_media(tmp_path)
    spec = storyboard(durs)
    with EmbeddedStack(run_dir=run_dir / "max-scenes") as stack:
        t = time.monotonic()
        started = client.start_export(stack.base, spec, files)
        start_ms = (time.monotonic() - t) * 1000
        assert [u["name"] for u in started["uploads"]] == [f.name for f in files]  # 401, in order
        waiting = client.get_status(stack.base, started["jobId"])
        client.upload_all(started["uploads"], files, workers=8)
        final = client.wait_for(stack.base, started["jobId"], timeout_s=240, interval_s=1.0)
        assert final["status"] == "succeeded", (final.get("error"), stack.run_dir)
        status_bytes = len(json.dumps(final))
        out = final["output"]
        video = client.download(out["url"], tmp_path / "out.mp4")
        check_stack(stack)

    # the rendered timeline is the frame grid: every scene starts on its frame
    assert len(out["scenes"]) == MAX_SCENES
    for i, entry in enumerate(out["scenes"]):
        assert abs(entry["startS"] - starts[i] / FPS) < 1e-3, (i, entry, starts[i])
    middles = {(starts[i] + starts[i + 1]) // 2: i for i in range(MAX_SCENES)}
    frames, seen = decode_video(video, set(middles))
    assert frames == starts[-1], (frames, starts[-1])  # every frame, counted by decoding
    video_s = frames / FPS
    assert abs(heard_seconds(video) - video_s) <= 1 / FPS, (heard_seconds(video), video_s)

    # each scene shows its own picture: the nearest grid colour of its middle frame is its own
    palette = np.array([ycbcr709(colour(i)) for i in range(MAX_SCENES)])
    for index, i in middles.items():
        distances = np.linalg.norm(palette - seen[index], axis=1)
        assert int(np.argmin(distances)) == i and distances[i] < 6, (i, seen[index], palette[i])

    # each narration is heard from its scene's first frame (within half a frame), at its own frequency
    t0, audio = decode_audio(video)
    late = []
    for i in range(MAX_SCENES):
        at = starts[i] / FPS
        lo = max(0, int((at - t0 - 0.15) * RATE))
        window = np.abs(audio[lo: lo + int(0.4 * RATE)])
        peak = window.max()
        onset = t0 + (lo + int(np.argmax(window > 0.5 * peak))) / RATE
        late.append(onset - at)
        burst = audio[int((onset - t0 + 0.03) * RATE): int((onset - t0 + TONE_S - 0.03) * RATE)]
        assert abs(peak_hz(burst) - freq(i)) < 5, (i, peak_hz(burst), freq(i))
    worst = max(late, key=abs)
    assert abs(worst) <= 0.5 / FPS, (late.index(worst), worst)  # measured: within 0.5 ms

    print(f"\nMAX_SCENES end to end: start with {len(started['uploads'])} uploads {start_ms:.0f} ms "
          f"({len(json.dumps(started))} bytes); awaiting status {len(json.dumps(waiting))} bytes; "
          f"succeeded status {status_bytes} bytes; {frames} frames; narration onsets {min(late) * 1000:+.1f} "
          f"to {max(late) * 1000:+.1f} ms; wall {time.monotonic() - wall:.0f} s")
    assert status_bytes < 40_000, status_bytes
