"""The figure of `make bench-parallel` (tests/bench/bench_parallel.py): per-part wall at the finest K
beside the audio task, and the projected speed-up by K. Writes docs/bench-parallel.png (matplotlib,
requirements-bench.txt); plot() returns False without it."""
from __future__ import annotations

from pathlib import Path

from bench_render import log

PNG = Path(__file__).resolve().parents[2] / "docs" / "bench-parallel.png"


def plot(rows: list[dict], finest: int, single_s: float, minutes: int, audio_s: float | None = None) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing (requirements-bench.txt): no PNG")
        return False
    fine = next(r for r in rows if r["k"] == finest)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    a.bar(range(len(fine["partWallS"])), fine["partWallS"], color="tab:blue")
    if audio_s is not None:
        a.axhline(audio_s, color="tab:red", linestyle="--", label=f"audio task {audio_s:.0f} s")
        a.legend(fontsize=8)
    a.set_title(f"K={finest}: wall of each part task (one at a time, all cores)", fontsize=10)
    a.set_xlabel("task index")
    a.set_ylabel("seconds")
    a.grid(alpha=0.3, axis="y")
    ks = [r["k"] for r in rows]
    b.plot(ks, [r["speedup"] for r in rows], "o-", label="projected (audio beside the parts)")
    b.plot(ks, [r["speedupNoStartup"] for r in rows], "^-.", label="without the assumed start-ups")
    if all("speedupBothStartups" in r for r in rows):
        b.plot(ks, [r["speedupBothStartups"] for r in rows], "d-", label="(s) with its start-up too")
    b.plot(ks, [r["speedupSerialAudio"] for r in rows], "s--", label="audio after the parts")
    b.plot(ks, ks, ":", color="grey", label="ideal")
    b.set_title(f"speed-up over the single task ({single_s:.0f} s), {minutes} min", fontsize=10)
    b.set_xlabel("K tasks")
    b.set_xticks(ks)
    b.grid(alpha=0.3)
    b.legend(fontsize=8)
    fig.tight_layout()
    PNG.parent.mkdir(exist_ok=True)
    fig.savefig(PNG, dpi=100)
    plt.close(fig)
    return True
