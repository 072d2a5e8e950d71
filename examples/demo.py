"""SceneFlow Export demo: render the six-scene "Moon mission" storyboard end to end, locally.

    make demo            # or: .venv/bin/python examples/demo.py [--mode emulated]
    make demo-long       # or: .venv/bin/python examples/demo.py --long  (161 s: renders in parts)
    .venv/bin/python examples/demo.py --storyboard my.json --assets my-media/ --out my-out/

It starts the embedded stack (SQLite, the gcp-storage-emulator, loopback events, the render job as
a subprocess; see infra/local/stack.py) with authentication on, then acts like a client app signed in
as the author "demo-author" (an ID token of the stack's local issuer): POST export_start with one
upload per asset, PUT every file to its signed URL, poll export_status with a progress line,
download the MP4, poster and subtitles into ./out/, print the time spent in each state, the
measured loudness against the spec's target, every `output.warnings` entry (what the storyboard
asked for that is not in the video) and check the video with PyAV. Exits non-zero on any failure;
stops everything it started.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.local import client  # noqa: E402
from infra.local.upload_types import parse_override, upload_types  # noqa: E402
from infra.local.verify import check_history, check_mp4, check_timeline, heard_seconds  # noqa: E402
from shared.responses import StatusResponse  # noqa: E402
from shared.spec import FRAME_SIZES, Audio  # noqa: E402


def plural(n: int, word: str) -> str:
    """"1 file", "2 files"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def warning_lines(output: dict) -> list[str]:
    """The export's `output.warnings` ([{path, message}]: parts of the storyboard not shown in the
    video) as report lines: a heading, then "  WARNING <path>: <message>" each; [] when none."""
    warnings = [w for w in (output.get("warnings") or []) if isinstance(w, dict)]
    if not warnings:
        return []
    lines = [f"{plural(len(warnings), 'warning')}: part of the storyboard is not in the video "
             "(output.warnings in export_status; also in the render log):"]
    lines += [f"  WARNING {w.get('path') or '(spec)'}: {w.get('message')}" for w in warnings]
    return lines


def loudness_line(output: dict, spec: dict) -> str:
    """The export's measured `output.loudness` ({integratedLufs, truePeakDb, lra}: LUFS, dBTP, LU)
    against the spec's `audio` target (defaults -16 LUFS, -1.5 dBTP), as one report line."""
    audio = Audio.model_validate(_field(spec, "audio") or {})
    measured = _field(output, "loudness")
    measured = measured if isinstance(measured, dict) else {}

    def num(key: str, unit: str) -> str:
        value = measured.get(key)
        return f"{value:.1f} {unit}" if isinstance(value, (int, float)) else "not measured"

    if not any(isinstance(measured.get(k), (int, float)) for k in ("integratedLufs", "truePeakDb", "lra")):
        return (f"loudness: not measured (no output.loudness; target {audio.loudness_lufs:g} LUFS, "
                f"true peak {audio.true_peak_db:g} dBTP)")
    return (f"loudness: {num('integratedLufs', 'LUFS')} integrated (target {audio.loudness_lufs:g}), "
            f"true peak {num('truePeakDb', 'dBTP')} (ceiling {audio.true_peak_db:g}), "
            f"LRA {num('lra', 'LU')}")


def _field(obj, name):
    return obj.get(name) if isinstance(obj, dict) else None


def asset_names(spec: dict) -> list[str]:
    """Bare asset names the spec references, in first-use order (what export_start expects).

    Only names that are one path segment are looked up in the assets folder; anything else (and a
    malformed storyboard) is sent as it is, for export_start to name in its 400."""
    names: list[str] = []

    def add(src):
        if (isinstance(src, str) and src and not src.startswith("gs://") and src not in names
                and src not in (".", "..") and "/" not in src and "\\" not in src and "\0" not in src):
            names.append(src)

    scenes = _field(spec, "scenes")
    for scene in scenes if isinstance(scenes, list) else []:
        add(_field(_field(scene, "visual"), "src"))
        add(_field(_field(scene, "narration"), "src"))
    add(_field(_field(spec, "music"), "src"))
    return names


def download_outputs(output: dict, out: Path, job_id: str) -> tuple[Path, list[Path], list[Path]]:
    """Download a succeeded export's video, poster and subtitles into `out`.

    Every file name read from the API (output.filename, the caption kinds) must be one safe path
    segment (client.safe_output_path): all are checked before anything is written, and a bad one stops
    the demo with client.UnsafeName naming it. Returns (video, subtitle files, every file saved)."""
    video_path = client.safe_output_path(out, output.get("filename") or f"{job_id}.mp4", "output.filename")
    captions = {kind: url for kind, url in (output.get("captions") or {}).items() if url}
    caption_paths = {kind: client.safe_output_path(out, f"{video_path.stem}.{kind}", f"output.captions.{kind}")
                     for kind in captions}
    video = client.download(output["url"], video_path)
    saved = [video]
    if output.get("posterUrl"):
        saved.append(client.download(output["posterUrl"], out / "poster.jpg"))
    subtitles = [client.download(captions[kind], path) for kind, path in caption_paths.items()]
    return video, subtitles, saved + subtitles


def stage_text(st: dict) -> str:
    """The status's stage as the line shows it: a parallel export's parts while they render
    ("rendering 3/12 parts", then "stitching", "uploading"), else the stage; "" without one."""
    parts, stage = st.get("parts"), st.get("stage")
    if parts and stage == "rendering":
        audio = ", audio done" if parts.get("audio") else ""
        return f"rendering {parts.get('rendered')}/{parts.get('count')} parts{audio}"
    return stage or ""


class ProgressLine:
    """One status line, rewritten in place on a terminal, printed on change otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last = ""
        self.t0 = time.monotonic()

    def __call__(self, st: dict) -> None:
        p = float(st.get("progress") or 0.0)
        bar = "#" * int(p * 30)
        stage = f" {stage_text(st)}" if st.get("stage") else ""
        line = f"[{bar:<30}] {p * 100:5.1f}%  {st.get('status')}{stage}"
        elapsed = f"  {time.monotonic() - self.t0:5.1f}s"
        if self.tty:
            sys.stdout.write("\r" + line + elapsed + "   ")
            sys.stdout.flush()
        else:  # a log, not a terminal: print on a new state/stage or every 10 %
            key = f"{st.get('status')}{stage} {int(p * 10)}"
            if key != self.last:
                print(line + elapsed, flush=True)
                self.last = key
            return
        self.last = line

    def done(self) -> None:
        if self.tty:
            sys.stdout.write("\n")
            sys.stdout.flush()


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def run(args: argparse.Namespace) -> int:
    from infra.local.stack import EmbeddedStack, EmulatedStack

    if getattr(args, "long", False):
        from examples.long_story import long_storyboard

        spec = long_storyboard()
        print(f"long storyboard: {len(spec['scenes'])} scenes, written to "
              f"{write_json(Path(args.out) / 'long-storyboard.json', spec)}", flush=True)
    else:
        spec = json.loads(Path(args.storyboard).read_text(encoding="utf-8"))
    assets = Path(args.assets)
    files = [assets / n for n in asset_names(spec)]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        print(f"missing assets: {missing}", file=sys.stderr)
        return 2
    try:  # by extension and role (infra/local/upload_types.py), or as --content-type says
        types = upload_types(spec, [f.name for f in files],
                             dict(parse_override(o) for o in getattr(args, "content_type", None) or []))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t_start = time.monotonic()
    cls = EmbeddedStack if args.mode == "embedded" else EmulatedStack
    print(f"starting the {args.mode} stack...", flush=True)
    with cls(auth=True) as stack:
        t_ready = time.monotonic()
        print(f"  {stack.describe()}  [{t_ready - t_start:.1f} s]", flush=True)
        # the typed client (models of the published contract), signed in as an author with an ID token,
        # as a browser signed in with Firebase Auth would be (README: Authenticate)
        api = client.ExportClient(stack.base, token=stack.id_token("demo-author"))
        job = api.start(spec, files, content_types=types)
        job_id = job.job_id
        print(f"export {job_id}: {job.status}; uploading {plural(len(files), 'file')} "
              f"({sum(f.stat().st_size for f in files) / 1e6:.1f} MB) to signed URLs", flush=True)
        client.upload_all(job.uploads, files)

        line = ProgressLine()
        progress_seen: list[float] = []

        def on_status(st: StatusResponse) -> None:
            progress_seen.append(st.progress)
            line(st.wire())

        try:
            answer = api.wait(job_id, timeout_s=args.timeout, on_status=on_status)
        finally:
            line.done()
        final = answer.wire()  # the JSON body, as the checks below (infra/local/verify.py) read it
        t_done = time.monotonic()

        print("time in each state:")
        for state, secs in client.state_durations(final):
            print(f"  {state:<16} {secs:7.2f} s")
        if answer.status != "succeeded":
            error = answer.error.wire() if answer.error else None
            print(f"export {answer.status}: {json.dumps(error, indent=2, ensure_ascii=False)}", file=sys.stderr)
            print(f"logs: {stack.run_dir}", file=sys.stderr)
            return 1

        # the spec was accepted, so its output settings are valid (defaults as in shared/spec.py)
        settings = spec.get("output") or {}
        width, height = FRAME_SIZES[(settings.get("resolution", "1080p"), settings.get("aspectRatio", "16:9"))]
        fps = settings.get("fps", 30)

        output = final.get("output") or {}
        video, subtitles, saved = download_outputs(output, out, job_id)
        print("downloaded: " + ", ".join(f"{p} ({p.stat().st_size / 1e6:.2f} MB)" for p in saved))

        info, problems = check_mp4(video, width, height, fps, expected_s=output.get("durationS"))
        print(f"video: {info.video_codec} {info.pix_fmt} {info.width}x{info.height} {info.fps:g} fps "
              f"{info.video_s:.3f} s; audio: {info.audio_codec} {info.sample_rate} Hz "
              f"{info.channels} ch {info.audio_s:.3f} s heard")
        print(loudness_line(output, spec))
        narration = {n: heard_seconds(assets / n) for n in
                     {(sc.get("narration") or {}).get("src") for sc in spec["scenes"]} & set(asset_names(spec))}
        problems += check_history(final, progress_seen, with_uploads=bool(job.uploads))
        total, timeline_problems = check_timeline(spec, output, info.video_s, narration, subtitles, fps)
        problems += timeline_problems
        print(f"plan: {plural(len(output['scenes']), 'scene')}, total {total:.3f} s (scene durations minus "
              f"transition overlaps); video {info.video_s:.3f} s; {plural(len(subtitles), 'subtitle file')} "
              "checked against scene times")
        print("states seen: " + " -> ".join(h["status"] for h in final["history"]) +
              f"; progress {progress_seen[0]:.2f} -> {progress_seen[-1]:.2f}, never falling")
        warnings = warning_lines(output)  # a heading and one line per warning
        for w in warnings:
            print(w)
        if problems:
            for p in problems:
                print(f"  PROBLEM: {p}", file=sys.stderr)
            return 1
        noted = f" with {plural(len(warnings) - 1, 'warning')} (above)" if warnings else ""
        print(f"OK{noted}: export took {t_done - t_ready:.1f} s; demo {time.monotonic() - t_start:.1f} s "
              f"(logs in {stack.run_dir})")
    return 0


def main(argv: list[str] | None = None) -> int:
    # every option shows its default in --help (ArgumentDefaultsHelpFormatter appends "(default: …)")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--storyboard", default=str(ROOT / "examples" / "storyboard.json"),
                   help="export spec v1 JSON")
    p.add_argument("--assets", default=str(ROOT / "examples" / "storyboard"),
                   help="folder holding every file the storyboard names as src")
    p.add_argument("--out", default="out", help="folder for the downloaded MP4, poster and subtitles")
    p.add_argument("--long", action="store_true",
                   help="instead of --storyboard: a 161 s storyboard of the sample media (examples/long_story.py), "
                        "over RENDER_PARALLEL_AFTER_S, so it renders in parts; progress shows the parts")
    p.add_argument("--mode", choices=["embedded", "emulated"], default="embedded",
                   help="local stack to start")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for the export")
    # SUPPRESS: no "(default: None)"; the help says what happens without the option
    p.add_argument("--content-type", action="append", metavar="NAME=TYPE", default=argparse.SUPPRESS,
                   help="declare upload NAME as media type TYPE (repeatable); without it the type comes from "
                        "the file's extension, or is <role>/x-<extension> where that does not fit the field "
                        "using the file (image/video visual, audio or video narration/music)")
    args = p.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - report, exit non-zero
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
