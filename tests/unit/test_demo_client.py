"""examples/demo.py and infra.local.client as a client of the API: nothing is written outside the
output folder whatever names the API returns, and API errors are shown whole."""
import importlib.util
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.local import client  # noqa: E402

_spec = importlib.util.spec_from_file_location("sceneflow_demo", ROOT / "examples" / "demo.py")
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)


@pytest.mark.parametrize("name", ["moon-mission.mp4", "export.mp4", "poster.jpg", "moon-mission.srt",
                                  "Job_42.v2.mp4", "a" * 128])
def test_safe_names_accepted(tmp_path, name):
    assert client.safe_output_path(tmp_path, name, "output.filename") == tmp_path / name


@pytest.mark.parametrize("name", ["../escape.mp4", "..", ".", "a/b.mp4", "/etc/passwd", "\\\\host\\share.mp4",
                                  "..\\x.mp4", "sub\\x.mp4", "x\x00.mp4", "", "a" * 129, ".hidden.mp4",
                                  "x..mp4", "caf\u00e9.mp4", "new\nline.mp4", "space name.mp4", None, 42])
def test_unsafe_names_refused_naming_them(tmp_path, name):
    with pytest.raises(client.UnsafeName) as exc:
        client.safe_output_path(tmp_path, name, "output.filename")
    shown = repr(name[:200]) if isinstance(name, str) else repr(name)
    assert str(exc.value).startswith(f"refusing to write output.filename {shown} into {tmp_path}: not one file name")


class _Server:
    """A loopback HTTP server answering every request with (status, body)."""

    def __init__(self, status: int, body: bytes):
        outer = self
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                outer.requests.append(f"{self.command} {self.path}")
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("output", [
    {"filename": "../../outside.mp4", "captions": {"srt": "x"}},
    {"filename": "/tmp/abs.mp4"},
    {"filename": "ok.mp4", "captions": {"srt/../../../x": "u"}},
    {"filename": "", "captions": {}},   # empty falls back to the job id, which must be safe too
])
def test_demo_writes_nothing_for_unsafe_api_names(tmp_path, output):
    server = _Server(200, b"video bytes")
    out = tmp_path / "out"
    out.mkdir()
    try:
        output = {"url": f"{server.base}/v", "posterUrl": f"{server.base}/p", **output}
        with pytest.raises(client.UnsafeName):
            demo.download_outputs(output, out, "../job")
    finally:
        server.close()
    assert server.requests == [] and list(tmp_path.rglob("*")) == [out]


def test_demo_downloads_safe_names_into_the_folder(tmp_path):
    server = _Server(200, b"bytes")
    try:
        output = {"url": f"{server.base}/v", "filename": "moon.mp4", "posterUrl": f"{server.base}/p",
                  "captions": {"srt": f"{server.base}/s", "vtt": f"{server.base}/t"}}
        video, subtitles, saved = demo.download_outputs(output, tmp_path, "job")
    finally:
        server.close()
    assert video == tmp_path / "moon.mp4"
    assert subtitles == [tmp_path / "moon.srt", tmp_path / "moon.vtt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moon.mp4", "moon.srt", "moon.vtt", "poster.jpg"]


def test_api_errors_are_shown_whole():
    details = [{"path": f"spec.scenes[{i}].visual.src", "message": f"'bad {i}.png' is not a valid asset name: "
                + "x" * 60} for i in range(40)]
    body = {"error": {"code": "invalid_request", "message": "request is invalid: 40 problem(s)", "details": details}}
    server = _Server(400, json.dumps(body).encode())
    try:
        with pytest.raises(client.ApiError) as exc:
            client.start_export(server.base, {"scenes": []}, [])
    finally:
        server.close()
    text = str(exc.value)
    assert len(text) > 4000 and text.startswith(f"POST {server.base}/export_start -> 400:\n")
    assert json.loads(text.split("\n", 1)[1]) == body


def test_demo_sends_unusable_asset_names_to_the_api_instead_of_reading_them():
    spec = {"scenes": [{"id": "a", "visual": {"type": "image", "src": "/etc/passwd"}},
                       {"id": "b", "visual": {"type": "image", "src": "../up.png"}, "narration": {"src": "n.wav"}},
                       {"id": "c", "visual": {"type": "image", "src": "gs://b/library/x.png"}}, "not a scene"],
            "music": {"src": "m.ogg"}}
    assert demo.asset_names(spec) == ["n.wav", "m.ogg"]
    assert demo.asset_names({"scenes": None}) == [] and demo.asset_names([]) == []


def test_demo_reports_every_warning_with_its_path():
    cut = {"path": "scenes[0].caption.cues[1]",
           "message": "starts 1.27 s into its scene, at or after the next scene's start (1.240 s into this "
                      "scene): it would show on no frame"}
    lines = demo.warning_lines({"warnings": [cut, {"path": "scenes[2].caption.cues[0]", "message": "too short"}]})
    assert lines == ["2 warnings: part of the storyboard is not in the video (output.warnings in export_status; "
                     "also in the render log):",
                     f"  WARNING scenes[0].caption.cues[1]: {cut['message']}",
                     "  WARNING scenes[2].caption.cues[0]: too short"]
    assert demo.warning_lines({"warnings": [cut]})[0].startswith("1 warning: ")
    assert demo.warning_lines({"warnings": []}) == demo.warning_lines({}) == []


def test_demo_counts_in_words():
    assert [demo.plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert demo.plural(1, "subtitle file") == "1 subtitle file"


def test_demo_reports_the_measured_loudness_against_the_target():
    output = {"loudness": {"integratedLufs": -15.93, "truePeakDb": -7.9, "lra": 5.24}}
    assert demo.loudness_line(output, {"scenes": []}) == \
        "loudness: -15.9 LUFS integrated (target -16), true peak -7.9 dBTP (ceiling -1.5), LRA 5.2 LU"
    assert demo.loudness_line({"loudness": {"integratedLufs": -23.0, "truePeakDb": -15.5, "lra": 0.5}},
                              {"audio": {"loudnessLufs": -23, "truePeakDb": -2}}) == \
        "loudness: -23.0 LUFS integrated (target -23), true peak -15.5 dBTP (ceiling -2), LRA 0.5 LU"
    assert demo.loudness_line({"loudness": {"integratedLufs": -16.0}}, {}) == \
        "loudness: -16.0 LUFS integrated (target -16), true peak not measured (ceiling -1.5), LRA not measured"
    for missing in ({}, {"loudness": None}, {"loudness": {}}):
        assert demo.loudness_line(missing, {"audio": {"loudnessLufs": -14}}) == \
            "loudness: not measured (no output.loudness; target -14 LUFS, true peak -1.5 dBTP)"


def test_demo_help_shows_every_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # argparse wraps at the terminal width: no wrapped paths
    with pytest.raises(SystemExit) as exc:
        demo.main(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # a long option's help starts on the next line
    expected = {"--timeout TIMEOUT": "seconds to wait for the export (default: 900)",
                "--out OUT": "folder for the downloaded MP4, poster and subtitles (default: out)",
                "--mode {embedded,emulated}": "local stack to start (default: embedded)",
                "--storyboard STORYBOARD": "export spec v1 JSON "
                                           f"(default: {ROOT / 'examples' / 'storyboard.json'})",
                "--assets ASSETS": "folder holding every file the storyboard names as src "
                                   f"(default: {ROOT / 'examples' / 'storyboard'})"}
    for option, help_text in expected.items():
        assert f" {option} {help_text}" in text, (option, text)
