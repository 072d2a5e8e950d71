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
        self.bodies: list[bytes] = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                outer.requests.append(f"{self.command} {self.path}")
                outer.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
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


# --- upload content types (trial 5: .ts went up as text/vnd.trolltech.linguist, .3gp as audio, .tga and
# .qoi as application/octet-stream, .mts as model/vnd.mts: export_start refused them) ---

JOB_ID = "0b2f1c1e-8a7e-4a51-9a8d-2f1f0c0a1b2c"
STARTED = {"jobId": JOB_ID, "status": "awaiting_upload", "statusUrl": f"http://x/export_status?jobId={JOB_ID}",
           "uploads": []}


def _declared(spec: dict, names: list[str], **kwargs) -> dict[str, str]:
    """{name: contentType} as client.start_export POSTs them for `names` used by `spec`."""
    server = _Server(202, json.dumps(STARTED).encode())  # a body of the published contract
    try:
        client.start_export(server.base, spec, [Path("/nowhere") / n for n in names], **kwargs)
    finally:
        server.close()
    assert server.requests == ["POST /export_start"]
    return {u["name"]: u["contentType"] for u in json.loads(server.bodies[0])["uploads"]}


def _scene(i: int, visual: dict, narration: str | None = None) -> dict:
    return {"id": f"s{i}", "visual": visual, **({"narration": {"src": narration}} if narration else {})}


VIDEO_TYPES = {"ts": "video/mp2t", "mts": "video/mp2t", "m2ts": "video/mp2t", "3gp": "video/3gpp",
               "3g2": "video/3gpp2", "mkv": "video/x-matroska", "webm": "video/webm", "avi": "video/x-msvideo",
               "mov": "video/quicktime", "mp4": "video/mp4", "m4v": "video/x-m4v", "mpg": "video/mpeg",
               "mpeg": "video/mpeg", "flv": "video/x-flv", "wmv": "video/x-ms-wmv"}
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
               "webp": "image/webp", "tif": "image/tiff", "tiff": "image/tiff", "bmp": "image/bmp",
               "tga": "image/x-tga", "qoi": "image/x-qoi", "jp2": "image/jp2", "avif": "image/avif"}
AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "m4a": "audio/mp4", "aac": "audio/aac",
               "ogg": "audio/ogg", "oga": "audio/ogg", "opus": "audio/ogg", "flac": "audio/flac",
               "aif": "audio/aiff", "aiff": "audio/aiff", "wma": "audio/x-ms-wma"}


@pytest.fixture
def hostile_host_mime_db(monkeypatch):
    """A host whose mime.types types every file as Qt Linguist (as Debian's does `.ts`)."""
    import mimetypes
    monkeypatch.setattr(mimetypes, "guess_type", lambda *a, **k: ("text/vnd.trolltech.linguist", None))


@pytest.mark.parametrize("ext,ctype", sorted({**VIDEO_TYPES, **IMAGE_TYPES, **AUDIO_TYPES}.items()))
def test_known_media_extensions_get_their_type_whatever_the_host_says(hostile_host_mime_db, ext, ctype):
    name = f"clip.{ext.upper()}" if ext == "mts" else f"clip.{ext}"  # camcorders write .MTS
    role = ("image" if ctype.startswith("image/") else "video") if not ctype.startswith("audio/") else None
    spec = ({"scenes": [_scene(0, {"type": role, "src": name})]} if role else
            {"scenes": [_scene(0, {"type": "color"}, narration=name)]})
    assert _declared(spec, [name]) == {name: ctype}


def test_every_declared_type_is_one_the_api_accepts_for_its_role():
    from shared.api import ALLOWED_UPLOAD_TYPES, REFUSED_UPLOAD_TYPES
    for table, kinds in ((VIDEO_TYPES, ("video",)), (IMAGE_TYPES, ("image",)), (AUDIO_TYPES, ("audio",))):
        for ext, ctype in table.items():
            assert ALLOWED_UPLOAD_TYPES.match(ctype) and ctype not in REFUSED_UPLOAD_TYPES, ctype
            assert ctype.split("/")[0] in kinds
    for fallback in ("video/x-ogg", "image/x-xyz", "audio/x-unknown", "audio/x-png", "video/x-m4a"):
        assert ALLOWED_UPLOAD_TYPES.match(fallback)


def test_a_type_that_does_not_fit_the_role_is_replaced_by_one_of_that_role(hostile_host_mime_db):
    spec = {"scenes": [_scene(0, {"type": "video", "src": "phone.3gp"}, narration="talk.3gp"),
                       _scene(1, {"type": "video", "src": "theme.ogg"}, narration="voice.m4a"),
                       _scene(2, {"type": "image", "src": "scan.xyz"}, narration="memo"),
                       _scene(3, {"type": "video", "src": "both.mp4"}, narration="both.mp4"),
                       _scene(4, {"type": "video", "src": "dual.m4a"}, narration="dual.m4a"),
                       _scene(5, {"type": "image", "src": "odd.png"}, narration="odd.png"),
                       _scene(6, {"type": "image", "src": "vector.svg"}, narration="photo.jpg")],
            "music": {"src": "bed.webm"}}
    names = ["phone.3gp", "talk.3gp", "theme.ogg", "voice.m4a", "scan.xyz", "memo", "both.mp4", "dual.m4a",
             "odd.png", "vector.svg", "bed.webm", "photo.jpg"]
    assert _declared(spec, names) == {
        "phone.3gp": "video/3gpp", "talk.3gp": "video/3gpp",  # narration and music take audio/* or video/*
        "theme.ogg": "video/ogg",            # a container of sound or picture as a clip: video/<subtype>
        "voice.m4a": "audio/mp4",
        "scan.xyz": "image/x-xyz",           # unknown here, and the host's guess is no image
        "memo": "audio/x-unknown",           # no extension at all
        "both.mp4": "video/mp4",             # a clip and its scene's narration: video fits both
        "dual.m4a": "video/mp4",             # the same, from an audio extension
        "odd.png": "image/png",              # no type fits an image visual and a narration: the API names it
        "vector.svg": "image/svg+xml",       # refused by the API naming it (not raster)
        "bed.webm": "video/webm",
        "photo.jpg": "image/jpeg"}           # a known picture as narration is kept: the API refuses it by name


def test_start_export_declares_the_given_content_types_over_the_guess():
    spec = {"scenes": [_scene(0, {"type": "video", "src": "c6.ts"}, narration="n.wav")]}
    assert _declared(spec, ["c6.ts", "n.wav"], content_types={"c6.ts": "video/x-custom"}) == \
        {"c6.ts": "video/x-custom", "n.wav": "audio/wav"}


def _storyboard(tmp_path: Path, names: list[str]) -> list[str]:
    (tmp_path / "media").mkdir()
    for n in names:
        (tmp_path / "media" / n).write_bytes(b"x")
    spec = {"scenes": [_scene(i, {"type": "video", "src": n}) for i, n in enumerate(names)]}
    (tmp_path / "sb.json").write_text(json.dumps(spec))
    return ["--storyboard", str(tmp_path / "sb.json"), "--assets", str(tmp_path / "media"),
            "--out", str(tmp_path / "out")]


@pytest.mark.parametrize("option,message", [
    ("clip.ts=", "--content-type 'clip.ts=': expected NAME=TYPE, e.g. clip.ts=video/mp2t"),
    ("video/mp2t", "--content-type 'video/mp2t': expected NAME=TYPE, e.g. clip.ts=video/mp2t"),
    ("other.ts=video/mp2t", "--content-type names 'other.ts': not a file the storyboard uploads ('clip.ts')"),
])
def test_demo_refuses_a_content_type_option_it_cannot_use_before_starting_anything(tmp_path, capsys, option,
                                                                                   message):
    args = _storyboard(tmp_path, ["clip.ts"])
    assert demo.main(args + ["--content-type", option]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "out").exists()  # stopped before the stack or the output folder


def test_demo_help_describes_the_content_type_option(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        demo.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("--content-type NAME=TYPE declare upload NAME as media type TYPE (repeatable); without it the type "
            "comes from the file's extension, or is <role>/x-<extension> where that does not fit the field "
            "using the file (image/video visual, audio or video narration/music) ") in text + " "
    assert "SUPPRESS" not in text


def test_the_long_storyboard_takes_the_parallel_path_with_the_default_settings():
    """`make demo-long`: explicit durations (dispatch knows the length), over RENDER_PARALLEL_AFTER_S's
    default, every asset in examples/storyboard, cuts and crossfades, captions, music."""
    from examples.long_story import long_storyboard
    from shared.config import Settings
    from shared.parts import least_total_s, planned_parts
    from shared.spec import parse_spec

    spec, s = long_storyboard(), Settings()
    parse_spec(spec)
    assert all(sc.get("duration") for sc in spec["scenes"])
    assert least_total_s(spec) == 161.0 > s.render_parallel_after_s
    assert planned_parts(spec, s.render_parallel_after_s, s.render_max_parts, s.render_min_part_s) == 16
    assert all((ROOT / "examples" / "storyboard" / n).is_file() for n in demo.asset_names(spec))
    assert {(sc.get("transition") or {}).get("type") for sc in spec["scenes"]} == {"fade", "cut", None}
    assert spec["music"]["ducking"] and spec["captions"]["burnIn"]


def test_the_progress_line_shows_the_parts_while_they_render():
    parts = {"count": 12, "rendered": 3, "audio": False}
    assert demo.stage_text({"stage": "rendering", "parts": parts}) == "rendering 3/12 parts"
    assert demo.stage_text({"stage": "rendering", "parts": {**parts, "audio": True}}) == \
        "rendering 3/12 parts, audio done"
    assert demo.stage_text({"stage": "stitching", "parts": parts}) == "stitching"
    assert demo.stage_text({"stage": "rendering"}) == "rendering"
    assert demo.stage_text({}) == ""
