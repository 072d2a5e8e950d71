"""Debian's Chromium, headless, driven by Playwright for Python: the example page's export as an
author does it (tests/browser, `make demo-web ARGS="--screenshot PATH"`).

    with chromium() as context: ...                  # a fresh profile; nothing is downloaded
    result = run_example_export(page_url, png_path)  # sign in, the example, Render, wait, play, screenshot

Only the Chromium at CHROMIUM is used (`playwright install` is never run): `chromium_missing()` says
why it cannot run. `RequestLog` records every request a page makes (Playwright's request, response
and requestfailed events) and, through a CDP session of the page, every CORS preflight Chromium
sends for it (Network events of type "Preflight": Playwright does not report those).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
VIEWPORT = {"width": 1280, "height": 900}
READY_S = 30          # generous waits for states, never an assertion on time
EXPORT_S = 600


def chromium_missing() -> str | None:
    """Why the browser cannot run here (no CHROMIUM, no playwright package), or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium chromium-driver)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (requirements-dev.txt)"
    return None


@contextmanager
def chromium() -> Iterator:
    """A Playwright BrowserContext of CHROMIUM (FLAGS, a fresh user-data-dir removed afterwards)."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="sceneflow-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=list(FLAGS), viewport=VIEWPORT,
                device_scale_factor=1)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class RequestLog:
    """Every request of `page`: `requests` [{method, url, resourceType, status (None until answered),
    failure (Chromium's error text, or None)}] in the order sent, and `preflights` [{url, status,
    corsError, failure}]: the OPTIONS requests Chromium sent before cross-origin calls."""

    def __init__(self, page) -> None:
        self.requests: list[dict] = []
        self._by_request: dict[int, tuple] = {}  # id(Request) -> (the Request, kept alive; its entry)
        self._preflight_ids: dict[str, dict] = {}  # CDP requestId of a preflight -> what it was
        self._failures: dict[str, tuple] = {}  # CDP requestId -> (errorText, corsError)
        page.on("request", self._request)
        page.on("response", lambda r: self._entry(r.request).update(status=r.status))
        page.on("requestfailed", lambda r: self._entry(r).update(failure=r.failure or "failed"))
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self._cdp_sent)
        cdp.on("Network.responseReceived", self._cdp_response)
        cdp.on("Network.loadingFailed", self._cdp_failed)
        cdp.send("Network.enable")

    def _request(self, request) -> None:
        entry = {"method": request.method, "url": request.url, "resourceType": request.resource_type,
                 "status": None, "failure": None}
        self._by_request[id(request)] = (request, entry)
        self.requests.append(entry)

    def _entry(self, request) -> dict:
        if id(request) not in self._by_request:
            self._request(request)
        return self._by_request[id(request)][1]

    def _cdp_sent(self, event: dict) -> None:
        # a preflight: initiator {type: "preflight", requestId: the request it is for}
        initiator = event.get("initiator") or {}
        if initiator.get("type") == "preflight":
            self._preflight_ids[event["requestId"]] = {
                "url": event["request"]["url"], "method": event["request"]["method"], "status": None,
                "for": initiator.get("requestId")}

    def _cdp_response(self, event: dict) -> None:
        entry = self._preflight_ids.get(event["requestId"])
        if entry is not None:
            entry["status"] = event["response"]["status"]

    def _cdp_failed(self, event: dict) -> None:
        # a refused preflight fails the request it was for, with a corsError naming the preflight
        self._failures[event["requestId"]] = (event.get("errorText"),
                                              (event.get("corsErrorStatus") or {}).get("corsError"))

    @property
    def preflights(self) -> list[dict]:
        """[{url, method: "OPTIONS", status, failure, corsError}] in the order sent: failure and
        corsError are Chromium's when the preflight itself, or the CORS check of its answer, failed."""
        out = []
        for pid, entry in self._preflight_ids.items():
            failure, cors = self._failures.get(pid, (None, None))
            own, own_cors = self._failures.get(entry["for"], (None, None))
            if own_cors and own_cors.startswith("Preflight"):
                failure, cors = failure or own, own_cors
            out.append({"url": entry["url"], "method": entry["method"], "status": entry["status"],
                        "failure": failure, "corsError": cors})
        return out

    def settle(self, page, done, timeout_s: float = READY_S) -> None:
        """Let the page's events through until `done(self)` holds (Playwright hands events over only
        while a call waits; a failure can be reported after the page's own promise settled). Raises
        TimeoutError naming what was recorded when it does not within `timeout_s`."""
        import time

        deadline = time.monotonic() + timeout_s
        while not done(self):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page events did not settle: requests {self.requests}, "
                                   f"preflights {self.preflights}")
            page.wait_for_timeout(50)

    def failed(self) -> list[dict]:
        """Requests that failed or were answered >= 400."""
        return [r for r in self.requests if r["failure"] or (r["status"] or 0) >= 400 or r["status"] is None]


def sign_in_and_choose_example(page, url: str, author: str = "author-1") -> None:
    """Open the page, sign in as `author`, choose the example storyboard and its files."""
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=READY_S * 1000)
    page.fill("#author", author)
    page.click("#signin")
    page.wait_for_function("window.sceneflow.token !== null", timeout=READY_S * 1000)
    page.click("#use-example")
    page.wait_for_function("window.sceneflow.spec && !document.querySelector('#render').disabled",
                           timeout=READY_S * 1000)


VIDEO_STATE = """() => {
  const v = document.querySelector('#video'), img = document.querySelector('#poster');
  const t = v.textTracks[0];
  return {readyState: v.readyState, duration: v.duration, currentTime: v.currentTime, paused: v.paused,
          error: v.error && v.error.message, width: v.videoWidth, height: v.videoHeight,
          cues: t && t.cues ? t.cues.length : null, cueTexts: t && t.cues ? Array.from(t.cues, c => c.text) : [],
          trackReadyState: v.querySelector('track') ? v.querySelector('track').readyState : null,
          posterShown: img.complete && img.naturalWidth > 0, posterSize: [img.naturalWidth, img.naturalHeight],
          videoPoster: v.poster};
}"""


def run_example_export(url: str, screenshot: Path | None = None, author: str = "author-1") -> dict:
    """The example export through the page at `url` in headless Chromium: sign in, the example,
    Render, wait for the end, then (when succeeded) wait for the video's HAVE_ENOUGH_DATA, the
    track's cues and the poster, play muted until currentTime passes 0.5 s, pause, screenshot the
    whole page to `screenshot`. Returns {status, jobId, output, history, error, video (VIDEO_STATE
    before playing), played (currentTime after), download ({status, contentType, bytes, contentRange,
    contentDisposition} of a GET of the MP4's first two bytes from the page), requests, preflights, screenshot,
    pageSize}."""
    with chromium() as context:
        page = context.new_page()
        log = RequestLog(page)
        sign_in_and_choose_example(page, url, author)
        page.click("#render")
        page.wait_for_function("['succeeded', 'failed', 'canceled'].includes(document.body.dataset.status)",
                               timeout=EXPORT_S * 1000, polling=500)
        app = page.evaluate("() => ({status: window.sceneflow.status, jobId: window.sceneflow.jobId, "
                            "output: window.sceneflow.output, history: window.sceneflow.history, "
                            "error: window.sceneflow.error})")
        result = {**app, "video": None, "played": None, "download": None, "head": None, "screenshot": None,
                  "pageSize": None}
        if app["status"] == "succeeded":
            page.wait_for_function("""() => { const v = document.querySelector('#video'), t = v.textTracks[0];
                return v.readyState === 4 && t && t.cues && t.cues.length > 0 && document.querySelector('#poster').complete
                    || v.error !== null; }""", timeout=READY_S * 1000, polling=200)
            result["video"] = page.evaluate(VIDEO_STATE)
            page.evaluate("() => { const v = document.querySelector('#video'); v.muted = true; return v.play(); }")
            page.wait_for_function("document.querySelector('#video').currentTime > 0.5", timeout=READY_S * 1000)
            page.evaluate("() => document.querySelector('#video').pause()")
            result["played"] = page.evaluate("document.querySelector('#video').currentTime")
            # what the download link gets, read by the page: the exposed headers of a CORS GET of its
            # first two bytes, and of a HEAD
            result["download"] = page.evaluate("""async (url) => {
                const r = await fetch(url, {headers: {Range: 'bytes=0-1'}});
                const bytes = (await r.arrayBuffer()).byteLength;
                return {status: r.status, contentType: r.headers.get('content-type'), bytes,
                        contentRange: r.headers.get('content-range'),
                        contentDisposition: r.headers.get('content-disposition')}; }""", app["output"]["url"])
            result["head"] = page.evaluate("""async (url) => {
                const r = await fetch(url, {method: 'HEAD'});
                return {status: r.status, contentType: r.headers.get('content-type'),
                        bytes: (await r.arrayBuffer()).byteLength, contentLength: r.headers.get('content-length'),
                        contentDisposition: r.headers.get('content-disposition')}; }""", app["output"]["url"])
        if screenshot is not None:
            screenshot = Path(screenshot)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            result["screenshot"] = str(screenshot)
            result["pageSize"] = page.evaluate("[document.documentElement.scrollWidth, "
                                               "document.documentElement.scrollHeight]")
        result["requests"], result["preflights"] = log.requests, log.preflights
        return result
