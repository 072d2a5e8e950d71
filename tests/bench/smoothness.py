"""Ken Burns smoothness, measured on a rendered MP4 by tracking the marker every still carries.

For a scene, the frames no transition overlaps are decoded (PyAV, luma only); the marker (a white
square on a black square, centred at storyboard.MARKER_XY in the still) is found near where it was
in the previous frame and its sub-pixel centroid is taken (weights: luma above the black level).

Figures per scene:
- travel_px: how far the marker moved across the window (pixels);
- backward_steps: frames where the marker moved against the scene's overall direction by more than
  BACKWARD_EPS_PX on an axis along which it travels (a zoom-in that steps back, a pan that shudders);
- jitter_px: RMS of the marker path's deviation from a cubic fit in time (a smooth move has ~0.0x
  px; whole-pixel rounding of crop positions shows as ~0.3 px and more);
- max_step_px / min_step_px: the largest and smallest per-frame step on the main axis of travel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from storyboard import FPS, MARKER_XY, motion_window

BACKWARD_EPS_PX = 0.05
_HALF = 56  # half size of the search window (the black square is 200 px, scaled up to 1.5x)


@dataclass
class Track:
    scene: int
    frames: int
    travel_px: float
    backward_steps: int
    jitter_px: float
    max_step_px: float
    min_step_px: float
    lost: bool = False

    def summary(self) -> str:
        if self.lost:
            return f"scene {self.scene + 1}: marker lost"
        return (f"scene {self.scene + 1}: {self.frames} frames, travel {self.travel_px:.1f} px, "
                f"{self.backward_steps} backward steps, jitter {self.jitter_px:.3f} px RMS, "
                f"steps {self.min_step_px:.2f}..{self.max_step_px:.2f} px")


def _centroid(gray: np.ndarray, cx: float, cy: float) -> tuple[float, float] | None:
    h, w = gray.shape
    x0, y0 = max(0, int(round(cx)) - _HALF), max(0, int(round(cy)) - _HALF)
    x1, y1 = min(w, int(round(cx)) + _HALF), min(h, int(round(cy)) + _HALF)
    win = gray[y0:y1, x0:x1].astype(np.float64)
    wgt = np.clip(win - 40.0, 0.0, None)  # black (16..30 in limited range) weighs nothing
    total = wgt.sum()
    if total < 255.0 * 100:  # less than ~100 white pixels: not the marker
        return None
    ys, xs = np.mgrid[y0:y1, x0:x1]
    return float((wgt * xs).sum() / total), float((wgt * ys).sum() / total)


def track_scenes(mp4: str, scenes: list[int]) -> list[Track]:
    """Track the marker through the transition-free part of each scene in `scenes` (0-based)."""
    import av

    windows = {i: motion_window(i) for i in scenes}
    last_t = max(hi for _, hi in windows.values())
    paths: dict[int, list[tuple[float, float, float]]] = {i: [] for i in scenes}
    pos: dict[int, tuple[float, float] | None] = {i: None for i in scenes}
    lost = set()
    with av.open(mp4) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else 0.0
            if t >= last_t:
                break
            live = [i for i, (lo, hi) in windows.items() if lo - 1e-6 <= t < hi - 1e-6 and i not in lost]
            if not live:
                continue
            gray = frame.to_ndarray(format="gray")
            # frame -> plane: PyAV's gray conversion keeps the luma plane as is
            for i in live:
                guess = pos[i] or _find_first(gray)
                if guess is None:
                    lost.add(i)
                    continue
                c = _centroid(gray, *guess)
                if c is None:
                    lost.add(i)
                    continue
                pos[i] = c
                paths[i].append((t, c[0], c[1]))
    out = []
    for i in scenes:
        pts = np.array(paths[i]) if paths[i] else np.zeros((0, 3))
        if i in lost or len(pts) < 10:
            out.append(Track(i, len(pts), 0.0, 0, 0.0, 0.0, 0.0, lost=True))
            continue
        out.append(_analyse(i, pts))
    return out


def _box_sums(mask: np.ndarray, half: int) -> np.ndarray:
    """Sum of `mask` over the (2*half)x(2*half) box centred on every pixel (zero near the edges)."""
    sat = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1))
    sat[1:, 1:] = mask.cumsum(0).cumsum(1)
    out = np.zeros(mask.shape)
    h, w = mask.shape
    a = sat[2 * half:h + 1, 2 * half:w + 1]
    b = sat[0:h + 1 - 2 * half, 2 * half:w + 1]
    c = sat[2 * half:h + 1, 0:w + 1 - 2 * half]
    d = sat[0:h + 1 - 2 * half, 0:w + 1 - 2 * half]
    box = a - b - c + d  # box sums for top-left corners 0..h-2*half
    out[half:half + box.shape[0], half:half + box.shape[1]] = box
    return out


def _find_first(gray: np.ndarray) -> tuple[float, float] | None:
    """The marker in a scene's first tracked frame: a bright ~48 px square inside a dark ~200 px one,
    within a few hundred pixels of MARKER_XY (where motion may have moved it)."""
    mx, my = MARKER_XY
    h, w = gray.shape
    y0, y1 = max(0, my - 300), min(h, my + 300)
    x0, x1 = max(0, mx - 400), min(w, mx + 400)
    region = gray[y0:y1, x0:x1].astype(np.float64)
    bright = _box_sums((region > 180).astype(np.float64), 18) / (36 * 36)
    dark_outer = _box_sums((region < 40).astype(np.float64), 60)
    dark_inner = _box_sums((region < 40).astype(np.float64), 36)
    ring = (dark_outer - dark_inner) / (120 * 120 - 72 * 72)
    score = bright + ring
    j, k = np.unravel_index(int(np.argmax(score)), score.shape)
    if score[j, k] < 1.6:
        return None
    return _centroid(gray, x0 + k, y0 + j)


def _analyse(i: int, pts: np.ndarray) -> Track:
    t, x, y = pts[:, 0], pts[:, 1], pts[:, 2]
    dx, dy = x[-1] - x[0], y[-1] - y[0]
    travel = float(np.hypot(dx, dy))
    axis, d = (x, dx) if abs(dx) >= abs(dy) else (y, dy)
    steps = np.diff(axis) * (1.0 if d >= 0 else -1.0)
    backward = 0
    if travel > 1.0:  # count frames stepping back on either axis that really travels (> 1 px)
        back = np.zeros(len(t) - 1, dtype=bool)
        for v, dv in ((x, dx), (y, dy)):
            if abs(dv) > 1.0:
                back |= np.diff(v) * np.sign(dv) < -BACKWARD_EPS_PX
        backward = int(back.sum())
    tt = (t - t[0]) * FPS
    res = []
    for v in (x, y):
        coef = np.polyfit(tt, v, 3)
        res.append(v - np.polyval(coef, tt))
    jitter = float(np.sqrt(np.mean(res[0] ** 2 + res[1] ** 2)))
    return Track(i, len(t), travel, backward, jitter, float(steps.max()), float(steps.min()))
