"""The render image before and after issue 16 (`make bench-image`): size and time to start.

    .venv/bin/python tests/bench/bench_image.py [--before REF] [--runs 5] [--publish]

Builds infra/Dockerfile of this tree (infra/image.sh) and of git commit --before (default a6c24a9,
the last one before the lean image) on the same base (tests/image/build.py: the pinned python base,
or the local stand-in when no registry answers), then renders the image tier's storyboard
(tests/image/test_render_image.spec: 5.3 s at 720p draft) --runs times per image, alternating,
each task started by the local launcher as `podman run IMAGE` (RENDER_CONTAINER_IMAGE). Prints per
image: size (podman, uncompressed) and the part over the base, the gzip -1 size of `podman save`
(about what a registry stores and a new node pulls), the time to `podman load` it into an empty
name (unpacking every layer, as a node does after the pull), the cold build time (--no-cache;
the base and the pip downloads' network not excluded), and medians (min-max) of: `podman run` to the task's first progress report (the job's `dispatched` to `running`),
`podman run` to succeeded, and the task's CPU seconds (its own + FFmpeg's, from its last log line);
then after/before ratios. --publish writes docs/bench-image.png. Results go into BENCHMARKS.md by
hand. A measurement: it never fails on a figure.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.local import client  # noqa: E402
from infra.local.stack import EmbeddedStack  # noqa: E402
from tests.image import build  # noqa: E402
from tests.image.test_render_image import FILES, spec  # noqa: E402


def _at(final: dict, status: str) -> float:
    stamp = next(h["at"] for h in final["history"] if h["status"] == status)
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def build_before(ref: str, tag: str, base: str | None) -> float:
    """Build infra/Dockerfile of commit `ref` (its own build context) as `tag`; returns seconds.
    Dockerfiles before the lean image have no CA secret: the host's CA is given to their RUN steps
    as a read-only volume and PIP_CERT (fine for a benchmark image, never for a deployed one)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(f"git -C {ROOT} archive {ref} | tar -x -C {tmp}", shell=True, check=True)
        args = ["build", "--no-cache", "--ulimit=nofile=1024:1024", "-f", f"{tmp}/infra/Dockerfile", "-t", tag]
        if base:
            args += ["--build-arg", f"PYTHON_IMAGE={base}"]
        if build.host_ca():
            args += ["-v", f"{build.host_ca()}:/host-ca.crt:ro", "--env", "PIP_CERT=/host-ca.crt"]
        started = time.monotonic()
        build.podman(*args, tmp, timeout=1800)
        return time.monotonic() - started


def export_once(image: str, run_dir: Path) -> dict:
    """One export with its task in `image`: {"first_report_s", "succeeded_s", "cpu_s"}."""
    with EmbeddedStack(run_dir=run_dir, render_max_retries=0,
                       extra_env={"RENDER_CONTAINER_IMAGE": image}) as stack:
        started = client.start_export(stack.base, spec(), FILES)
        client.upload_all(started["uploads"], FILES)
        final = client.wait_for(stack.base, started["jobId"], timeout_s=600, interval_s=0.05)
        if final["status"] != "succeeded":
            raise SystemExit(f"{image}: export {final['status']}: {final.get('error')} ({run_dir})")
        deadline = time.monotonic() + 30  # the task logs its last line after its succeeded report
        while not (done := stack.render_log_entries("render task finished", started["jobId"])):
            if time.monotonic() > deadline:
                raise SystemExit(f"{image}: no 'render task finished' line in {run_dir}")
            time.sleep(0.1)
        last = done[-1]
    return {"first_report_s": _at(final, "running") - _at(final, "dispatched"),
            "succeeded_s": _at(final, "succeeded") - _at(final, "dispatched"),
            "cpu_s": last["cpuS"] + last["childCpuS"]}


def transfer(tag: str, tmp: Path) -> tuple[int, float]:
    """(gzip -1 bytes of `podman save`, seconds to `podman load` the archive again)."""
    archive = tmp / "image.tar"
    build.podman("save", "--quiet", "-o", str(archive), tag, timeout=900)
    gz = subprocess.run(f"gzip -1 -c {archive} | wc -c", shell=True, capture_output=True, text=True, check=True)
    build.podman("rmi", tag, timeout=300)
    started = time.monotonic()
    build.podman("load", "--quiet", "-i", str(archive), timeout=900)
    load_s = time.monotonic() - started
    archive.unlink()
    return int(gz.stdout), load_s


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="a6c24a9")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--publish", action="store_true", help="write docs/bench-image.png")
    ap.add_argument("--out", default=str(ROOT / ".local" / "bench-image"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = build.base()
    base_name = base or build.pinned_base()
    tags = {"before": "localhost/sceneflow-render:bench-before", "after": "localhost/sceneflow-render:bench-after"}
    build_s = {"before": build_before(args.before, tags["before"], base)}
    started = time.monotonic()
    build.build_render_image(tags["after"], base, no_cache=True)
    build_s["after"] = time.monotonic() - started
    base_bytes = build.image_bytes(base_name)
    moved = {name: transfer(tag, out) for name, tag in tags.items()}
    runs: dict[str, list[dict]] = {k: [] for k in tags}
    for i in range(args.runs):  # alternating: the VM's drift hits both alike
        for name, tag in tags.items():
            runs[name].append(export_once(tag, out / f"{name}-{i}"))
            print(f"run {i + 1}/{args.runs} {name}: {json.dumps({k: round(v, 3) for k, v in runs[name][-1].items()})}",
                  flush=True)
    rows = {}
    print(f"\nbase {base_name}: {base_bytes / 1e6:.0f} MB")
    print(f"{'image':<8} {'size MB':>8} {'over base MB':>13} {'gzip MB':>8} {'load s':>7} {'build s':>8}  "
          f"{'run to 1st report s':>22}  "
          f"{'run to succeeded s':>22}  {'task CPU s':>20}")
    for name, tag in tags.items():
        size = build.image_bytes(tag)
        rows[name] = {"size": size, "added": size - base_bytes, "build_s": build_s[name], "gzip": moved[name][0],
                      "load_s": moved[name][1],
                      **{k: [r[k] for r in runs[name]] for k in ("first_report_s", "succeeded_s", "cpu_s")}}
        r = rows[name]
        print(f"{name:<8} {size / 1e6:>8.0f} {r['added'] / 1e6:>13.0f} {r['gzip'] / 1e6:>8.0f} {r['load_s']:>7.1f} "
              f"{r['build_s']:>8.0f}  "
              f"{_spread(r['first_report_s']):>22}  {_spread(r['succeeded_s']):>22}  {_spread(r['cpu_s']):>20}")
    b, a = rows["before"], rows["after"]
    med = statistics.median
    print(f"after/before: size {a['size'] / b['size']:.2f}, over base {a['added'] / b['added']:.2f}, "
          f"gzip {a['gzip'] / b['gzip']:.2f}, load {a['load_s'] / b['load_s']:.2f}, build {a['build_s'] / b['build_s']:.2f}, "
          f"first report {med(a['first_report_s']) / med(b['first_report_s']):.2f}, "
          f"succeeded {med(a['succeeded_s']) / med(b['succeeded_s']):.2f}, CPU {med(a['cpu_s']) / med(b['cpu_s']):.2f}")
    (out / "results.json").write_text(json.dumps({"base": base_name, "base_bytes": base_bytes, "rows": rows}, indent=1))
    if args.publish:
        publish(rows, base_bytes, ROOT / "docs" / "bench-image.png")


def publish(rows: dict, base_bytes: int, path: Path) -> None:
    """Two panels: image size (base + ours) and time from `podman run` to the first report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.bar(names, [base_bytes / 1e6] * 2, color="#bbbbbb", label="base")
    left.bar(names, [rows[n]["added"] / 1e6 for n in names], bottom=[base_bytes / 1e6] * 2, color="#4477aa",
             label="Dockerfile's layers")
    left.set_ylabel("MB (uncompressed)")
    left.set_title("render image size")
    left.legend(fontsize=8)
    for i, n in enumerate(names):
        right.scatter([i] * len(rows[n]["first_report_s"]), rows[n]["first_report_s"], color="#4477aa")
    right.set_xticks(range(len(names)), names)
    right.set_ylim(bottom=0)
    right.set_ylabel("s")
    right.set_title("podman run to first progress report")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
