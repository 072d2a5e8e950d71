"""Run FFmpeg as a subprocess with progress, a watchdog and useful errors.

- Progress: `-progress pipe:1` lines on stdout, parsed by render_job.progress into a fraction 0..1.
- Watchdog: an overall time limit scaled to the output length (default_timeout_s: base + factor x
  output seconds), and stall detection (output position unchanged for `stall_s` seconds; a process
  that never reports progress counts as stalled too). Either kills FFmpeg, logs the reason with its
  last stderr lines (one JSON log line), and raises TransientError: the task is retried, since a
  deadlocked or starved FFmpeg (some builds deadlock on certain xfade inputs) may pass next time.
  Bad input is not retried: FFmpeg exits non-zero by itself => PermanentRenderError.
- Errors: the last 30 stderr lines are kept (read in a thread) and included in the exception.
  Killed by a signal, timed out, or out of memory/disk => TransientError; any other non-zero exit
  (FFmpeg rejected an input or the graph) => PermanentRenderError.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import os
import re
import queue
import shutil
import subprocess
import threading
import time
from typing import Callable, Iterator, Sequence

from shared import logs
from shared.errors import PermanentRenderError, TransientError
from render_job.progress import ProgressTracker

STDERR_LINES = 30
_TRANSIENT_HINTS = ("cannot allocate memory", "no space left", "resource temporarily unavailable",
                    "too many open files", "broken pipe")


MIN_FFMPEG_MAJOR = 7  # 5.x: xfade emits untimed frames when a scene ends inside its transition;
                      # 7.0 added `-/filter_complex FILE` (render_job.graph.command.graph_via_file)


def write_graph_files(workdir: str, commands: list[tuple[list[str], dict[str, str]]]) -> None:
    """Write the graph files of graph_via_file's (argv, files) pairs into `workdir`."""
    for _, files in commands:
        for name, text in files.items():
            with open(os.path.join(workdir, name), "w", encoding="utf-8") as fh:
                fh.write(text)


def ffmpeg_major(exe: str) -> int:
    """The major version of an FFmpeg executable (0 when it cannot be told, e.g. a git build)."""
    try:
        out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    m = re.search(r"ffmpeg version n?(\d+)\.", out)
    return int(m.group(1)) if m else 0


@functools.lru_cache(maxsize=8)
def find_ffmpeg(configured: str | None = None) -> str:
    """The FFmpeg executable: `configured` (settings.ffmpeg_binary / FFMPEG_BINARY) as given, else
    `ffmpeg` on PATH when it is version 7 or newer, else the binary shipped by the imageio-ffmpeg
    wheel (FFmpeg 9 with libx264, libass, xfade, loudnorm). FFmpeg 5.1 (Debian 12's) drops frames of
    scenes shorter than their transition (xfade emits frames without timestamps), so it is passed
    over unless asked for explicitly.

    Raises:
        PermanentRenderError: none is available.
    """
    if configured:
        found = shutil.which(configured) or (configured if os.path.isfile(configured) else None)
        if not found:
            raise PermanentRenderError(f"FFMPEG_BINARY {configured!r} not found")
        return found
    on_path = shutil.which("ffmpeg")
    if on_path and ffmpeg_major(on_path) >= MIN_FFMPEG_MAJOR:
        return on_path
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # pragma: no cover - depends on the machine
        if on_path:
            return on_path
        raise PermanentRenderError(f"no FFmpeg found (PATH or imageio-ffmpeg): {exc}") from None


def default_timeout_s(total_s: float, base_s: float = 60.0, per_output_s: float = 1.5) -> float:
    """The overall render time limit for an output of `total_s` seconds: base_s + per_output_s x total
    (defaults: 60 s + 1.5 x total; settings RENDER_TIMEOUT_BASE_S / RENDER_TIMEOUT_PER_OUTPUT_S)."""
    return base_s + per_output_s * max(0.0, total_s)


def _failure(what: str, rc: int, stderr_text: str) -> TransientError | PermanentRenderError:
    """The error for an FFmpeg run that exited with `rc` != 0 (see the module docstring)."""
    if rc < 0:
        return TransientError(f"{what} killed by signal {-rc}; last output:\n{stderr_text}")
    if any(h in stderr_text.lower() for h in _TRANSIENT_HINTS):
        return TransientError(f"{what} failed (exit {rc}); last output:\n{stderr_text}")
    return PermanentRenderError(f"{what} failed (exit {rc}); last output:\n{stderr_text}")


class SegmentFeed:
    """The video of a segmented render: FFmpeg runs (render_job.graph.command.build_segment_command) started
    one after another, each writing its raw frames straight into one pipe, the encoding run's stdin
    (no copy through Python). Used by run_ffmpeg(feed=...), which starts it once the encoding run is
    up and stops it when the watchdog kills that run.

    `error` is None, or the TransientError / PermanentRenderError of the first segment that failed
    (a segment that cannot start or exits non-zero ends the feed: the encoding run then sees the
    end of its input early, and run_ffmpeg raises this error instead of returning).
    """

    def __init__(self, argvs: Sequence[Sequence[str]], cwd: str | None = None, what: str = "ffmpeg segment",
                 labels: Sequence[str] | None = None, on_done: Callable[[int], None] | None = None) -> None:
        """argvs: the segments' commands, in timeline order; labels: what each covers, for errors
        (e.g. "scenes[24]..scenes[48]"), shown as "<what> 2 of 9 (<label>) failed ...";
        on_done(k): called once segment k (0-based) has exited 0, before the next starts (e.g. to
        delete the files only it read; an exception there is logged, never fails the render)."""
        self.on_done = on_done
        self.argvs = [list(a) for a in argvs]
        self.cwd = cwd
        self.what = what
        self.labels = list(labels) if labels is not None else [""] * len(self.argvs)
        self.error: TransientError | PermanentRenderError | None = None
        self.finished = 0  # segments that exited 0
        self._proc: subprocess.Popen | None = None
        self._stopped = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, write_fd: int) -> None:
        """Run the segments in a thread, writing into `write_fd` (owned from now on: closed at the end)."""
        self._thread = threading.Thread(target=self._run, args=(write_fd,), daemon=True, name="segment-feed")
        self._thread.start()

    def stop(self) -> None:
        """Kill the running segment and start no other (the watchdog killed the encoding run)."""
        with self._lock:
            self._stopped = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, fd: int) -> None:
        n = len(self.argvs)
        try:
            for k, argv in enumerate(self.argvs):
                what = f"{self.what} {k + 1} of {n}" + (f" ({self.labels[k]})" if self.labels[k] else "")
                with self._lock:
                    if self._stopped:
                        return
                    try:
                        proc = subprocess.Popen(argv, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=fd,
                                                stderr=subprocess.PIPE)
                    except OSError as exc:
                        self.error = PermanentRenderError(f"{what}: cannot start {argv[0]!r}: {exc.strerror}")
                        return
                    self._proc = proc
                _, err = proc.communicate()
                if proc.returncode != 0:
                    lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
                    self.error = _failure(what, proc.returncode, "\n".join(lines[-STDERR_LINES:]))
                    return
                self.finished += 1
                if self.on_done is not None:
                    try:
                        self.on_done(k)
                    except Exception as exc:  # noqa: BLE001 - freeing memory is best effort
                        logs.warning(f"{what}: on_done failed", error=repr(exc))
        finally:
            os.close(fd)


_THREAD = threading.local()


@contextlib.contextmanager
def stopped_by(event: threading.Event) -> Iterator[None]:
    """While inside: every run_ffmpeg in this thread kills its FFmpeg (and its feed) within 0.5 s of
    `event` being set and raises TransientError (code "ffmpeg_killed"). For work done beside a
    render in a thread of its own (render_job.part_render.render_whole's audio), which must end
    with the render."""
    _THREAD.stop = event
    try:
        yield
    finally:
        _THREAD.stop = None


def run_ffmpeg(argv: Sequence[str], *, cwd: str | None = None, total_s: float = 0.0,
               on_progress: Callable[[float], None] | None = None, timeout_s: float | None = None,
               stall_s: float = 60.0, what: str = "ffmpeg", job_id: str | None = None,
               feed: SegmentFeed | None = None) -> list[str]:
    """Run FFmpeg and wait for it.

    Args:
        argv: the command (with `-progress pipe:1` if progress is wanted).
        cwd: working directory.
        total_s: expected output duration in seconds (for the progress fraction).
        on_progress: called with the fraction 0..1 (non-decreasing) as it rises.
        timeout_s: overall limit in seconds (default: default_timeout_s(total_s)).
        stall_s: kill when the output position (out_time) has not moved for this many seconds.
        what: a name for error messages.
        job_id: label for the watchdog's log line.
        feed: a segmented render's SegmentFeed: its runs' output becomes this run's stdin (argv then
            reads `-i pipe:0`); the watchdog's limits apply to the whole, and a failed segment fails
            the render.
    Returns:
        The last stderr lines (warnings), possibly empty.
    Raises:
        TransientError: killed by a signal, timed out, stalled, or out of resources.
        PermanentRenderError: any other non-zero exit (the message ends with FFmpeg's last stderr lines).
    """
    timeout = timeout_s if timeout_s is not None else default_timeout_s(total_s)
    tracker = ProgressTracker(total_s=total_s)
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
    lines: "queue.Queue[str | None]" = queue.Queue()
    read_fd = write_fd = None
    if feed is not None:
        read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(list(argv), cwd=cwd, stdin=read_fd if feed is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                errors="replace", bufsize=1)
    except OSError as exc:
        for fd in (read_fd, write_fd):
            if fd is not None:
                os.close(fd)
        raise PermanentRenderError(f"{what}: cannot start {argv[0]!r}: {exc.strerror}") from None
    if feed is not None:
        os.close(read_fd)  # type: ignore[arg-type]
        feed.start(write_fd)  # type: ignore[arg-type]

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip()
            if line:
                tail.append(line)

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threads = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=read_stdout, daemon=True)]
    for t in threads:
        t.start()
    started = last_activity = time.monotonic()
    stop: threading.Event | None = getattr(_THREAD, "stop", None)
    killed_reason = None
    stdout_done = False
    while True:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            line = ""
        now = time.monotonic()
        if line is None:
            stdout_done = True
        elif line:
            before = (tracker.position_s, tracker.ended)
            frac = tracker.feed(line)
            if (tracker.position_s, tracker.ended) != before or tracker.lines_seen <= 1:
                last_activity = now  # the output position moved: not stalled
            if frac is not None and on_progress is not None:
                on_progress(frac)
        if stdout_done and proc.poll() is not None:
            break
        if stdout_done:
            try:
                proc.wait(timeout=max(0.1, timeout - (now - started)))
            except subprocess.TimeoutExpired:
                killed_reason = f"timed out after {timeout:.0f} s"
            break
        if now - started > timeout:
            killed_reason = f"timed out after {timeout:.0f} s"
            break
        if now - last_activity > stall_s:
            killed_reason = f"stalled: no progress for {stall_s:.0f} s"
            break
        if stop is not None and stop.is_set():
            killed_reason = "stopped: the render it ran beside ended"
            break
    if killed_reason:
        proc.kill()
        proc.wait()
    if feed is not None:
        if killed_reason or proc.returncode != 0:
            feed.stop()
        feed.join()
    for t in threads:
        t.join(timeout=5)
    rc = proc.returncode
    stderr_text = "\n".join(tail)
    if killed_reason:
        logs.warning(f"{what} killed by the watchdog: {killed_reason}", job_id=job_id, reason=killed_reason,
                     positionS=tracker.position_s, elapsedS=round(time.monotonic() - started, 1),
                     lastLines=list(tail))
        raise TransientError(f"{what} {killed_reason} (killed; will retry); last output:\n{stderr_text}",
                             code="ffmpeg_killed")
    if rc != 0:
        raise _failure(what, rc, stderr_text)
    if feed is not None and feed.error is not None:
        raise feed.error
    if on_progress is not None and tracker.fraction < 1.0 and tracker.ended:
        on_progress(1.0)
    return list(tail)
