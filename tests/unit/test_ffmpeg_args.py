"""FFmpeg argv building: filters, offsets, loudness, encoding options, no caption text (pure, fast)."""
import re
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # until the project's pytest config sets pythonpath
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from render_job.graph.command import QUALITY, build_command, build_poster_command, build_segment_command  # noqa: E402
from render_job.graph.common import fmt_s  # noqa: E402
from render_job.plan import build_plan  # noqa: E402
from render_job.subtitles import ass_text, escape_ass, srt_text, vtt_text  # noqa: E402
from shared.spec import parse_spec  # noqa: E402

CAPTIONS = ["In 1995, Eileen Collins' first: 100% {pilot}", "C:\\path \"quoted\" ; [x] , =", "Back on Earth: coffee"]
PROBES = {"n1.wav": SimpleNamespace(duration_s=5.87), "n2.mp3": SimpleNamespace(duration_s=7.83),
          "clip.mp4": SimpleNamespace(duration_s=4.0), "n5.wav": SimpleNamespace(duration_s=3.27),
          "music.ogg": SimpleNamespace(duration_s=40.0)}
INPUTS = {"a.png": "assets/a00.png", "n1.wav": "assets/a01.wav", "r.jpg": "assets/a02.jpg",
          "n2.mp3": "assets/a03.mp3", "clip.mp4": "assets/a04.mp4", "n5.wav": "assets/a05.wav",
          "music.ogg": "assets/a06.ogg"}


def make_spec(**over):
    data = {
        "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 30, "quality": "draft"},
        "scenes": [
            {"id": "s1", "visual": {"type": "image", "src": "a.png"}, "narration": {"src": "n1.wav"},
             "caption": {"text": CAPTIONS[0]}, "transition": {"type": "fade", "duration": 0.5}},
            {"id": "s2", "visual": {"type": "image", "src": "r.jpg", "fit": "contain"},
             "narration": {"src": "n2.mp3", "volume": 0.8},
             "caption": {"text": CAPTIONS[1]}, "transition": {"type": "wipeleft", "duration": 0.75}},
            {"id": "s3", "visual": {"type": "video", "src": "clip.mp4"}, "narration": {"src": "n5.wav"},
             "caption": {"text": CAPTIONS[2]}, "transition": {"type": "cut"}},
            {"id": "s4", "visual": {"type": "color", "color": "#102030"}, "duration": 2},
        ],
        "music": {"src": "music.ogg", "volume": 0.25, "loop": True, "ducking": True, "fadeInS": 1, "fadeOutS": 2},
        "audio": {"loudnessLufs": -14, "truePeakDb": -1},
    }
    data.update(over)
    return parse_spec(data)


@pytest.fixture
def plan():
    return build_plan(make_spec(), PROBES)


def graph_of(argv):
    return argv[argv.index("-filter_complex") + 1]


def test_timeline_segments_add_up_to_the_plan_and_cut_has_no_xfade(plan):
    argv = build_command(plan, INPUTS, "output.mp4", "captions.ass")
    graph = graph_of(argv)
    fps = plan.fps
    # one xfade per non-cut transition, offset 0, exactly the planned whole frames
    xf = re.findall(r"xfade=transition=(\w+):duration=([\d.]+):offset=0,format=yuv420p\[x(\d+)\]", graph)
    assert [(name, int(i)) for name, _, i in xf] == [("fade", 0), ("wipeleft", 1)]
    assert [round(float(d) * fps) for _, d, _ in xf] == [15, 22]  # 0.75 s rounded down to 22 frames
    assert "xfade=transition=fade:duration=0.5:" in graph
    assert "xfade=transition=wipeleft:duration=0.733333:" in graph
    # bodies (frame-exact trims) + transitions = the planned total, in ONE concat
    bodies = re.findall(r"trim=start_frame=(\d+):end_frame=(\d+),setpts=PTS-STARTPTS\[b\d+o\]", graph)
    body_frames = sum(int(b) - int(a) for a, b in bodies)
    whole = [i for i in range(len(plan.scenes)) if f"[v{i}]split" not in graph]  # scenes used whole
    body_frames += sum(round(plan.scenes[i].duration * fps) for i in whole)
    assert body_frames + 15 + 22 == round(plan.total_s * fps)
    segments = 2 + len(bodies) + len(whole)
    assert f"concat=n={segments}:v=1:a=0,settb=1/30,setpts=N[tl]" in graph
    assert graph.count("v=1:a=0") == 1  # the cut between scenes 2 and 3 is a plain join
    n3 = round(plan.scenes[3].duration * 30)
    assert ("color=c=0x102030:s=1280x720:r=30,trim=end_frame=1,format=rgb24,"
            "scale=1280:720:out_range=tv:out_color_matrix=bt709,format=yuv420p,"
            f"loop=loop={n3 - 1}:size=1:start=0") in graph


def test_inputs_fit_and_colour_handling(plan):
    argv = build_command(plan, INPUTS, "output.mp4", "captions.ass")
    joined = " ".join(argv)
    assert "-i assets/a00.png" in joined
    n0 = round(plan.scenes[0].duration * 30)
    assert f"loop=loop={n0 - 1}:size=1:start=0,settb=1/30,setpts=N" in graph_of(argv)
    assert f"-ss 0 -t {fmt_s(plan.scenes[2].duration)} -i assets/a04.mp4" in joined
    assert "-stream_loop -1 -i assets/a06.ogg" in joined
    graph = graph_of(argv)
    assert "crop='min(iw,ih*1280/720)':'min(ih,iw*720/1280)',scale=1280:720:" in graph  # cover: cut to 16:9 at the source's size, then scaled
    assert "force_original_aspect_ratio=decrease" in graph and "pad=1280:720:(ow-iw)/2:(oh-ih)/2" in graph
    assert "out_range=tv" in graph and "out_color_matrix=bt709" in graph
    assert graph.count("setsar=1") >= 4 and "format=yuv420p" in graph
    for opt in ("-colorspace", "-color_primaries", "-color_trc"):
        assert argv[argv.index(opt) + 1] == "bt709"
    assert argv[argv.index("-color_range") + 1] == "tv"


def placements(graph: str) -> dict[str, int]:
    """{input label of a foreground sound ("4:a"): the sample where the mix places it}, read from the
    lanes: the first sound of a lane delayed (adelay=<n>S), each padded and cut to the next one's start."""
    out: dict[str, int] = {}
    lanes: dict[str, int] = {}  # lane label -> where its next sound starts
    for st in graph.split(";"):
        m = re.match(r"\[(\d+:a)\].*\[alane(\d+)(?:_\d+)?\]$", st)
        if not m:
            continue
        src, lane = m.groups()
        delay = re.search(r"adelay=(\d+)S:all=1", st)
        at = lanes.get(lane, int(delay.group(1)) if delay else 0)
        out[src] = at
        pad = re.search(r"apad=whole_len=(\d+),atrim=end_sample=(\d+)", st)
        if pad:
            assert pad.group(1) == pad.group(2)
            lanes[lane] = (0 if lane not in lanes else at) + int(pad.group(1))
    return out


def test_audio_graph_narration_music_ducking_loudnorm(plan):
    graph = graph_of(build_command(plan, INPUTS, "output.mp4", "captions.ass"))
    assert graph.count("aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo") >= 4
    # each narration at its scene's start, in whole milliseconds (48 samples each), as adelay placed them
    assert placements(graph) == {f"{3 + i}:a": round(plan.scenes[i].start * 1000) * 48 for i in range(3)}
    assert "adelay" not in graph.split("[alane0_0]")[0]  # the first lane starts at 0: nothing to delay
    assert "volume=0.8" in graph
    # narrations 0 and 1 meet within LANE_SLACK_S (5.87 s long, the next at 5.9 s): two lanes, one amix
    assert "[alane0_0][alane0_1]concat=n=2:v=0:a=1[alane0]" in graph
    assert "[alane0][alane1]amix=inputs=2:normalize=0" in graph
    assert "sidechaincompress" in graph and "asplit=2" in graph
    assert "afade=t=in:st=0:d=1" in graph
    assert f"afade=t=out:st={fmt_s(plan.total_s - 2)}:d=2" in graph
    assert "loudnorm=I=-14:TP=-2:LRA=11" in graph
    assert f"apad=whole_dur={fmt_s(plan.total_s)},atrim=0:{fmt_s(plan.total_s)}" in graph


def test_no_audio_gives_silence():
    spec = parse_spec({"output": {"resolution": "720p"},
                       "scenes": [{"id": "a", "visual": {"type": "color"}, "duration": 1}]})
    plan = build_plan(spec, {})
    argv = build_command(plan, {}, "o.mp4", None)
    graph = graph_of(argv)
    assert "anullsrc=r=48000:cl=stereo" in graph and "atrim=0:1" in graph
    assert "subtitles" not in graph and "-i" not in argv


def test_encoding_options(plan):
    argv = build_command(plan, INPUTS, "output.mp4", "captions.ass", ffmpeg="/x/ffmpeg", threads=2)
    assert argv[0] == "/x/ffmpeg"
    j = " ".join(argv)
    preset, crf = QUALITY["draft"]
    assert f"-c:v libx264 -preset {preset} -crf {crf} -pix_fmt yuv420p -r 30" in j
    assert "-c:a aac -b:a 192k -ar 48000 -ac 2" in j
    assert "-movflags +faststart" in j
    assert f"-t {fmt_s(plan.total_s)}" in j
    assert "-progress pipe:1 -nostats -y output.mp4" in j
    assert "-threads 2" in j
    assert QUALITY == {"draft": ("ultrafast", 28), "standard": ("veryfast", 23), "high": ("medium", 18)}


def test_captions_only_by_fixed_file_name_never_text(plan):
    argv = build_command(plan, INPUTS, "output.mp4", "captions.ass")
    assert "subtitles=filename=captions.ass:fontsdir=fonts" in graph_of(argv)
    for text in CAPTIONS:
        for arg in argv:
            assert text not in arg
            for word in ("Eileen", "1995", "quoted", "coffee"):
                assert word not in arg
    with pytest.raises(ValueError):
        build_command(plan, INPUTS, "output.mp4", "my:captions.ass")


def test_poster_command():
    argv = build_poster_command("ffmpeg", "output.mp4", 2.5, "poster.jpg")
    assert argv[argv.index("-ss") + 1] == "2.5"
    assert "-frames:v" in argv and argv[-1] == "poster.jpg"


def test_ass_escaping_keeps_text_literal():
    assert escape_ass("a {b} c") == "a \\{b\\} c"
    assert escape_ass("C:\\N\\h x\\y") == "C:\\\u2060N\\\u2060h x\\y"
    assert escape_ass("two\nlines") == "two\\Nlines"
    ass = ass_text(build_plan(make_spec(), PROBES).cues, 1280, 720)
    assert "In 1995, Eileen Collins' first: 100% \\{pilot\\}" in ass
    assert "WrapStyle: 0" in ass and "DejaVu Sans,40" in ass and "PlayResY: 720" in ass


def test_sidecars_literal_text(plan):
    srt = srt_text(plan.cues)
    vtt = vtt_text(plan.cues)
    # literal for the eye; braces no player may read as an override (see tests/unit/test_sidecar_safety.py)
    assert CAPTIONS[0].replace("{", "\uff5b").replace("}", "\uff5d") in srt and CAPTIONS[1] in srt
    assert CAPTIONS[0].replace("{", "{\u200b") in vtt and vtt.startswith("WEBVTT")
    assert "00:00:00,000 --> " in srt
    assert vtt_text([type(plan.cues[0])(0, 1, "a < b & c")]).count("a &lt; b &amp; c") == 1


IO_LIBRARIES = ("subprocess", "sqlalchemy", "google", "requests", "av", "os", "shutil", "PIL", "pysubs2", "socket",
                "urllib", "http", "tempfile", "pathlib", "io")


def _module_file(name):
    path = ROOT / (name.replace(".", "/") + ".py")
    return path if path.exists() else (ROOT / name.replace(".", "/") / "__init__.py")


def _imports(name):
    """The modules `name` imports (absolute names; `from a import b` also as a.b when b is a module)."""
    import ast
    found = set()
    for node in ast.walk(ast.parse(_module_file(name).read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, (name, "relative import")
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names
                      if _module_file(f"{node.module}.{alias.name}").exists()}
    return found


def _first_party_closure(roots):
    """Every render_job/shared module reachable from `roots` by imports, with what each imports."""
    seen, todo = {}, list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = _imports(name)
        parents = [".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)]
        todo += [i for i in list(seen[name]) + parents if i.split(".")[0] in ("render_job", "shared")]
    return seen


def test_pure_modules_import_no_io_libraries():
    """The plan, progress parsing and the whole FFmpeg graph package (render_job/graph/) do no I/O,
    through any chain of imports: no module they reach imports an I/O library or calls open()."""
    graph = sorted(f"render_job.graph.{p.stem}" for p in (ROOT / "render_job" / "graph").glob("*.py")
                   if p.stem != "__init__")
    assert {"render_job.graph.visuals", "render_job.graph.timeline", "render_job.graph.audio",
            "render_job.graph.captions", "render_job.graph.command"} <= set(graph)
    closure = _first_party_closure(["render_job.plan", "render_job.progress", "render_job.graph", *graph])
    for mod, imports in closure.items():
        for banned in IO_LIBRARIES:
            assert not any(i == banned or i.startswith(banned + ".") for i in imports), (mod, banned)
        assert "open(" not in _module_file(mod).read_text(), mod
    # the graph package itself builds on the plan only (shared pure modules come through it)
    for mod in graph:
        first_party = {i for i in closure[mod] if i.split(".")[0] in ("render_job", "shared")}
        assert all(i == "render_job.plan" or i.startswith("render_job.graph") for i in first_party), (mod, first_party)


def _plan_of(scenes, probes=None, **over):
    data = {"output": {"resolution": "720p", "fps": 30, "quality": "draft"}, "scenes": scenes}
    data.update(over)
    return build_plan(parse_spec(data), probes or {})


def _eval_motion(expr_filter, in_frame, w=1280, h=720):
    """Evaluate the perspective corner expressions for input frame number `in_frame` (1-based)."""
    values = {}
    for key, expr in re.findall(r"(x\d|y\d)='([^']*)'", expr_filter):
        py = expr.replace("W", str(w)).replace("H", str(h)).replace("in", str(in_frame))
        values[key] = eval(py, {"exp": __import__("math").exp})  # noqa: S307 - our own expression
    return values


@pytest.mark.parametrize("motion", ["zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down"])
def test_motion_window_sub_pixel_inside_the_picture_and_monotonic(motion):
    from render_job.graph.visuals import motion_filter
    plan = _plan_of([{"id": "a", "visual": {"type": "image", "src": "a.png", "motion": motion,
                                            "motionStrength": 0.2}, "duration": 2}])
    f = motion_filter(plan.scenes[0], 1280, 720, 60)
    assert f.startswith("perspective=") and "sense=source:eval=frame" in f and "interpolation=linear" in f
    windows = [_eval_motion(f, n) for n in range(1, 61)]
    first, last = windows[0], windows[-1]
    for wnd in windows:  # the window never leaves the picture
        assert -1e-6 <= wnd["x0"] and wnd["x1"] <= 1280 + 1e-6 and -1e-6 <= wnd["y0"] and wnd["y2"] <= 720 + 1e-6
        assert wnd["x1"] - wnd["x0"] == pytest.approx((wnd["y2"] - wnd["y0"]) * 16 / 9)  # aspect kept
    widths = [wnd["x1"] - wnd["x0"] for wnd in windows]
    lefts = [wnd["x0"] for wnd in windows]
    tops = [wnd["y0"] for wnd in windows]
    if motion == "zoom-in":
        assert widths[0] == pytest.approx(1280) and widths[-1] == pytest.approx(1280 * 0.8)
        assert all(b < a for a, b in zip(widths, widths[1:]))
    elif motion == "zoom-out":
        assert widths[0] == pytest.approx(1280 * 0.8) and widths[-1] == pytest.approx(1280)
    elif motion == "pan-left":  # the picture moves left: the window travels right
        assert lefts[0] == pytest.approx(0) and lefts[-1] == pytest.approx(0.2 * 1280)
        assert len(set(round(t, 6) for t in tops)) == 1
    elif motion == "pan-right":
        assert lefts[0] == pytest.approx(0.2 * 1280) and lefts[-1] == pytest.approx(0)
    elif motion == "pan-up":
        assert tops[0] == pytest.approx(0) and tops[-1] == pytest.approx(0.2 * 720)
    else:
        assert tops[0] == pytest.approx(0.2 * 720) and tops[-1] == pytest.approx(0)
    assert first != last


def test_no_motion_keeps_the_decode_once_loop_and_motion_follows_it():
    plan = _plan_of([{"id": "a", "visual": {"type": "image", "src": "a.png"}, "duration": 1},
                     {"id": "b", "visual": {"type": "image", "src": "a.png", "motion": "zoom-in"}, "duration": 1},
                     {"id": "c", "visual": {"type": "video", "src": "c.mp4", "motion": "pan-up"}, "duration": 1}],
                    {"c.mp4": SimpleNamespace(duration_s=3.0, has_audio=False)})
    graph = graph_of(build_command(plan, {"a.png": "a0.png", "c.mp4": "c.mp4"}, "o.mp4"))
    chains = graph.split(";")
    assert "perspective" not in chains[0] and "loop=loop=29:size=1:start=0" in chains[0]
    # a still's zoom: scaled to 2x ONCE before the loop, a command-resized crop window after it
    assert (chains[1].index("scale=2560:1440:flags=bicubic") < chains[1].index("loop=loop=29")
            < chains[1].index("sendcmd=f=zoom1.cmd,crop@z1=w=2560:h=1440:x='(iw-ow)/2':y='(ih-oh)/2':exact=1,"
                              "scale=1280:720:flags=bilinear"))
    assert "perspective" not in chains[1]
    assert chains[2].index("trim=end_frame=30,perspective=") > chains[2].index("fps=30")
    assert "zoompan" not in graph


def test_blur_fit_graph_contain_title_colour_and_clip_audio():
    plan = _plan_of([
        {"id": "a", "visual": {"type": "image", "src": "a.png", "fit": "blur"}, "duration": 1},
        {"id": "t", "visual": {"type": "title", "text": "Hello: {world}", "background": "#112233"}, "duration": 1},
        {"id": "v", "visual": {"type": "video", "src": "c.mp4", "volume": 0.5}, "duration": 2,
         "narration": {"src": "n.wav", "offsetS": 0.25}},
    ], {"c.mp4": SimpleNamespace(duration_s=3.0, has_audio=True), "n.wav": SimpleNamespace(duration_s=1.0)})
    argv = build_command(plan, {"a.png": "a0.png", "c.mp4": "c.mp4", "n.wav": "n.wav"}, "o.mp4", "captions.ass")
    graph = graph_of(argv)
    assert "[0:v]split=2[bg0][fg0]" in graph
    assert "boxblur=" in graph and "lutyuv=y=16+(val-16)*0.6" in graph
    assert "force_original_aspect_ratio=decrease" in graph and "[bgs0][fgs0]overlay=(W-w)/2:(H-h)/2" in graph
    assert "color=c=0x112233:s=1280x720:r=30,trim=end_frame=1,format=rgb24" in graph
    assert "Hello" not in " ".join(argv)  # title text only in the ASS file
    assert "[1:a]aresample=48000" in graph and "volume=0.5,atrim=0:2" in graph
    assert placements(graph) == {"1:a": round(plan.scenes[2].start * 1000) * 48,
                                 "2:a": round((plan.scenes[2].start + 0.25) * 1000) * 48}
    assert "[alane0][alane1]amix=inputs=2" in graph  # the clip's sound and the narration overlap: two lanes
    labels = re.findall(r"\[([A-Za-z_]\w*)\]", graph)  # the blur fit's [fg0] and the lanes' labels stay apart
    outputs = [st.rsplit("[", 1)[1] for st in graph.split(";")]
    assert len(outputs) == len(set(outputs)) and "fg0" in labels
    muted = _plan_of([{"id": "v", "visual": {"type": "video", "src": "c.mp4"}, "duration": 2}],
                     {"c.mp4": SimpleNamespace(duration_s=3.0, has_audio=True)})
    assert ":a]" not in graph_of(build_command(muted, {"c.mp4": "c.mp4"}, "o.mp4"))


def test_poster_converts_to_jpeg_colours():
    argv = build_poster_command("ffmpeg", "output.mp4", 1.0, "poster.jpg")
    vf = argv[argv.index("-vf") + 1]
    assert "in_color_matrix=bt709" in vf and "out_color_matrix=bt601" in vf and "out_range=pc" in vf


def test_loudness_parsers_and_second_pass_decision():
    from render_job.loudness import (build_loudnorm_apply_command, build_loudness_measure_command,
                                     loudness_needs_second_pass, parse_ebur128_summary, parse_loudnorm_json)
    summary = ["[Parsed_ebur128_0 @ 0x1] Summary:", "", "  Integrated loudness:", "    I:         -16.4 LUFS",
               "    Threshold: -26.6 LUFS", "", "  Loudness range:", "    LRA:         3.1 LU",
               "    Threshold: -36.4 LUFS", "    LRA low:   -17.5 LUFS", "    LRA high:  -15.1 LUFS", "",
               "  True peak:", "    Peak:       -1.7 dBFS"]
    assert parse_ebur128_summary(summary) == {"integratedLufs": -16.4, "lra": 3.1, "truePeakDb": -1.7}
    assert parse_ebur128_summary(["nothing here"]) is None
    assert "ebur128=peak=true" in " ".join(build_loudness_measure_command("ffmpeg", "o.mp4"))
    assert not loudness_needs_second_pass({"integratedLufs": -16.9, "truePeakDb": -1.5}, -16, -1.5)
    assert loudness_needs_second_pass({"integratedLufs": -17.2, "truePeakDb": -1.5}, -16, -1.5)
    assert loudness_needs_second_pass({"integratedLufs": -16.0, "truePeakDb": -0.5}, -16, -1.5)
    assert not loudness_needs_second_pass({"integratedLufs": -70.0, "truePeakDb": float("-inf")}, -16, -1.5)
    js = parse_loudnorm_json(["[Parsed_loudnorm_0 @ 0x1] ", "{", '"input_i" : "-18.02",', '"input_tp" : "-3.10",',
                              '"input_lra" : "2.00",', '"input_thresh" : "-28.20",', '"output_i" : "-16.0",',
                              '"target_offset" : "0.10"', "}"])
    assert js["input_i"] == "-18.02"
    assert parse_loudnorm_json(['{"input_i": "-inf", "input_tp": "-inf", "input_lra": "0", '
                                '"input_thresh": "-inf", "target_offset": "inf"}']) is None
    plan = build_plan(make_spec(), PROBES)
    argv = build_loudnorm_apply_command("ffmpeg", "output.mp4", plan, js, "fixed.mp4")
    af = argv[argv.index("-af") + 1]
    assert "measured_I=-18.02" in af and "linear=true" in af and "I=-14:TP=-2:" in af
    assert argv[argv.index("-c:v") + 1] == "copy"


def test_ass_style_position_colours_and_title_cards():
    from render_job.plan import CaptionStylePlan, Cue, TitleCard
    style = CaptionStylePlan(font="Noto Sans", size_px=50, color="#ffcc00", outline_color="#102030",
                             outline_width=3, position="top")
    ass = ass_text([Cue(0, 1, "cap {x}")], 1280, 720, style,
                   [TitleCard(1.0, 3.0, "Big: title\nline 2", "#00ff80", fade_in=0.5, fade_out=0.25)])
    subs = __import__("pysubs2").SSAFile.from_string(ass)
    d, t = subs.styles["Default"], subs.styles["Title"]
    assert (d.fontname, d.fontsize, d.outline, int(d.alignment)) == ("Noto Sans", 50, 3, 8)
    assert (d.primarycolor.r, d.primarycolor.g, d.primarycolor.b) == (255, 204, 0)
    assert (d.outlinecolor.r, d.outlinecolor.g, d.outlinecolor.b) == (16, 32, 48)
    # safe area: 90% width, 6% margin, grown by outline 3 + shadow 1.2 + 1 px of anti-aliasing
    assert (d.marginl, d.marginr, d.marginv, d.shadow) == (64 + 6, 64 + 6, 43 + 6, 1.2)
    assert int(t.alignment) == 5 and t.marginl == 128
    title = [e for e in subs if e.style == "Title"][0]
    assert title.text == "{\\fad(500,250)\\1c&H80FF00&}Big: title\\Nline 2"
    assert (title.start, title.end) == (1000, 3000)
    caption = [e for e in subs if e.style == "Default"][0]
    assert caption.text == "cap \\{x\\}" and caption.layer == 1
    positions = {p: int(pysubs_alignment) for p, pysubs_alignment in
                 (("bottom", 2), ("middle", 5), ("top", 8))}
    for pos, align in positions.items():
        text = ass_text([], 1280, 720, CaptionStylePlan(position=pos))
        assert int(__import__("pysubs2").SSAFile.from_string(text).styles["Default"].alignment) == align


@pytest.mark.parametrize("res,w,h,duration,strength", [("720p", 1280, 720, 2, 0.2), ("720p", 1280, 720, 2, 0.15),
                                                       ("1080p", 1920, 1080, 5, 0.15), ("1080p", 1920, 1080, 5, 0.05)])
@pytest.mark.parametrize("motion", ["pan-left", "pan-right", "pan-up", "pan-down"])
def test_still_pans_scale_once_then_crop_whole_steps(motion, res, w, h, duration, strength):
    """Still pans: scaled once before `loop`, then an exact crop moving the same whole number of
    pixels of the scaled copy every frame, and a fixed scale back: the same window as perspective's."""
    from render_job.graph.visuals import pan_filters
    plan = _plan_of([{"id": "a", "visual": {"type": "image", "src": "a.png", "motion": motion,
                                            "motionStrength": strength}, "duration": duration}],
                    output={"resolution": res, "fps": 30, "quality": "draft"})
    frames = duration * 30
    once, per_frame = pan_filters(plan.scenes[0], w, h, frames)
    sw, sh, fmt = re.fullmatch(r"scale=(\d+):(\d+):flags=bicubic,format=(yuv420p|yuv444p),", once).groups()
    cw, ch, x, y = re.fullmatch(rf"crop=(\d+):(\d+):x=([^:]+):y=([^:]+):exact=1,scale={w}:{h}:flags=bilinear,"
                                r"format=yuv420p,", per_frame).groups()
    sw, sh, cw, ch = int(sw), int(sh), int(cw), int(ch)
    k = sw / (w / (1 - strength))  # scaled copy pixels per pixel of the window shown at w x h
    assert 1 - 1e-3 <= k <= 3 + 1e-3  # PAN_MIN_SCALE .. PAN_MAX_SCALE
    assert sh / sw == pytest.approx(h / w, rel=1e-3) and ch / cw == pytest.approx(h / w, rel=1e-3)
    assert cw / sw == pytest.approx(1 - strength, rel=1e-3)  # the window is 1 - s of the picture
    pos = [(eval(x.strip("'"), {"n": n}), eval(y.strip("'"), {"n": n})) for n in range(frames)]  # noqa: S307
    for px, py in pos:  # the window never leaves the picture
        assert 0 <= px <= sw - cw and 0 <= py <= sh - ch
    horizontal = motion in ("pan-left", "pan-right")
    along = [p[0] if horizontal else p[1] for p in pos]
    across = {p[1] if horizontal else p[0] for p in pos}
    steps = {b - a for a, b in zip(along, along[1:])}
    assert len(steps) == 1 and len(across) == 1  # the same whole-pixel step every frame, centred across
    (step,), (cross,) = steps, across
    assert step == int(step) and step != 0
    spare_across = (sh - ch) if horizontal else (sw - cw)
    assert abs(cross - spare_across / 2) <= 1
    if fmt == "yuv420p":  # chroma planes move by offset // 2: offsets must stay even
        assert step % 2 == 0 and cross % 2 == 0 and along[0] % 2 == 0
    # picture moves left/up <=> the window travels right/down: start and end as perspective's window
    full = (sw - cw) if horizontal else (sh - ch)
    forward = motion in ("pan-left", "pan-up")
    assert (along[0], along[-1]) == ((0, full) if forward else (full, 0))
    assert full / k == pytest.approx((w if horizontal else h) * strength / (1 - strength), abs=0.5)


def test_still_pan_chain_order_slow_pan_and_clip_pan_fallback():
    from render_job.graph.visuals import pan_filters
    plan = _plan_of([{"id": "a", "visual": {"type": "image", "src": "a.png", "motion": "pan-left"}, "duration": 2},
                     {"id": "b", "visual": {"type": "image", "src": "a.png", "motion": "pan-up",
                                            "motionStrength": 0.01}, "duration": 20},
                     {"id": "c", "visual": {"type": "video", "src": "c.mp4", "motion": "pan-left"}, "duration": 1}],
                    {"c.mp4": SimpleNamespace(duration_s=3.0, has_audio=False)})
    chains = graph_of(build_command(plan, {"a.png": "a0.png", "c.mp4": "c.mp4"}, "o.mp4")).split(";")
    # scaled once before the loop, cropped and scaled back per frame after it
    assert chains[0].index("flags=bicubic,format=yuv") < chains[0].index("loop=loop=59") < chains[0].index(":exact=1")
    assert "perspective" not in chains[0]
    # a pan too slow for a <= 3x copy (0.0034 px per frame) keeps `perspective`
    assert pan_filters(plan.scenes[1], 1280, 720, 600) is None and "perspective=" in chains[1]
    # a clip's frames all differ (nothing to scale once): clips keep `perspective`
    assert "perspective=" in chains[2] and "exact=1" not in chains[2]


@pytest.mark.parametrize("motion", ["zoom-in", "zoom-out"])
def test_still_zoom_windows_are_even_centred_monotonic_and_commanded(motion):
    from render_job.graph.visuals import ZOOM_SCALE, command_files, zoom_commands, zoom_window_sizes
    plan = _plan_of([{"id": "a", "visual": {"type": "image", "src": "a.png", "motion": motion,
                                            "motionStrength": 0.15}, "duration": 2}])
    sc = plan.scenes[0]
    sizes = zoom_window_sizes(sc, 1280, 720, 60)
    assert len(sizes) == 60 and ZOOM_SCALE == 2
    full, tight = (2560, 1440), (2 * round(2560 * 0.85 / 2), 2 * round(1440 * 0.85 / 2))
    assert (sizes[0], sizes[-1]) == ((full, tight) if motion == "zoom-in" else (tight, full))
    for w, h in sizes:  # even: the centred window starts on a whole copy pixel
        assert w % 2 == 0 and h % 2 == 0 and 0 < w <= 2560 and 0 < h <= 1440
    ws = [w for w, _ in sizes]
    hs = [h for _, h in sizes]
    shrink = motion == "zoom-in"
    assert ws == sorted(ws, reverse=shrink) and hs == sorted(hs, reverse=shrink)  # monotonic: no backward step
    for n, (w, _) in enumerate(sizes):  # within one copy pixel of the exact window (1 - s)^p
        p = n / 59 if shrink else 1 - n / 59
        assert abs(w - 2560 * 0.85 ** p) <= 1.0 + 1e-9
    lines = zoom_commands(sc, 1280, 720, 60, 30).splitlines()
    assert len(lines) == 60
    assert lines[0] == f"0.000000 crop@z0 w {ws[0]}, crop@z0 h {hs[0]};"
    assert lines[1] == f"0.016667 crop@z0 w {ws[1]}, crop@z0 h {hs[1]};"  # half a frame early
    assert command_files(plan) == {"zoom0.cmd": "\n".join(lines) + "\n"}


def test_high_quality_zooms_keep_perspective_and_pans_or_none_need_no_command_file():
    from render_job.graph.visuals import command_files
    high = _plan_of([{"id": "a", "visual": {"type": "image", "src": "a.png", "motion": "zoom-in"}, "duration": 1}],
                    output={"resolution": "720p", "fps": 30, "quality": "high"})
    assert command_files(high) == {}
    assert "perspective=" in graph_of(build_command(high, {"a.png": "a0.png"}, "o.mp4"))
    other = _plan_of([{"id": "a", "visual": {"type": "image", "src": "a.png", "motion": "pan-left"}, "duration": 1},
                      {"id": "b", "visual": {"type": "image", "src": "a.png"}, "duration": 1}])
    assert command_files(other) == {}


def test_clip_picture_is_read_from_a_video_stream_that_is_not_cover_art():
    """`V` (not `v`): an attached cover picture (attached_pic) in a clip file is never the scene's
    picture; the audio chains read the audio (`a`), so a cover is never decoded at all."""
    plan = _plan_of([
        {"id": "v", "visual": {"type": "video", "src": "c.mp4", "volume": 1}, "duration": 1,
         "narration": {"src": "n.mp3"}},
    ], {"c.mp4": SimpleNamespace(duration_s=2.0, has_audio=True), "n.mp3": SimpleNamespace(duration_s=0.5)})
    graph = graph_of(build_command(plan, {"c.mp4": "c.mp4", "n.mp3": "n.mp3"}, "o.mp4"))
    assert "[0:V]crop='min(iw,ih*1280/720)':'min(ih,iw*720/1280)',scale=" in graph and "[0:v]" not in graph
    assert "[0:a]aresample=48000" in graph and "[1:a]aresample=48000" in graph and "[1:v]" not in graph


def test_clip_read_from_its_first_picture_sound_placed_by_timestamps_and_interlaced_deinterlaced():
    """Trial 2: sound starting 0.977 s after the picture was heard at the scene start; a 1080i clip
    combed. The clip is read from its first picture + trimStartS (the probe's stream starts); both
    streams keep their timestamps from that instant (picture: fps start_time=0; sound: silence up to
    its first sample, aresample first_pts=0); bwdif only for an interlaced clip, one frame per frame."""
    scenes = [{"id": "i", "visual": {"type": "video", "src": "i.mp4", "volume": 1, "trimStartS": 0.25}},
              {"id": "p", "visual": {"type": "video", "src": "p.mp4", "volume": 1}}]
    probes = {"i.mp4": SimpleNamespace(duration_s=3.0, video_duration_s=2.5, has_audio=True, start_s=0.0,
                                       video_start_s=0.5, audio_start_s=0.0, interlaced=True),
              "p.mp4": SimpleNamespace(duration_s=2.0, has_audio=True, start_s=0.0, video_start_s=0.0,
                                       audio_start_s=0.977, interlaced=False)}
    plan = _plan_of(scenes, probes)
    inputs = {"i.mp4": "i.mp4", "p.mp4": "p.mp4"}
    argv = build_command(plan, inputs, "o.mp4")
    joined, graph = " ".join(argv), graph_of(argv)
    assert "-ss 0.75 -t 2.25 -i i.mp4" in joined and "-ss 0 -t 2 -i p.mp4" in joined
    assert graph.count("bwdif") == 1
    assert "[0:V]bwdif=mode=send_frame:parity=auto:deint=interlaced,crop='min(iw,ih*1280/720)':'min(ih,iw*720/1280)',scale=" in graph and "[1:V]crop='min(iw,ih*1280/720)':'min(ih,iw*720/1280)',scale=" in graph
    assert graph.count(",fps=30:start_time=0,") == 2
    for i in (0, 1):
        assert f"[{i}:a]aresample=48000:async=1:first_pts=0,aformat=" in graph
    segment = " ".join(build_segment_command(plan, inputs, 0, None))
    assert "-ss 0.75 -t 2.25 -i i.mp4" in segment and segment.count("bwdif=") == 1



def test_clip_in_a_container_without_seek_index_opened_before_its_trim_and_cut_in_the_graph():
    """Trial 5: a trimmed MPEG-TS clip started frozen (its demuxer seeks near the point, decoding starts at
    the next keyframe). Such clips are opened up to SEEK_PREROLL_S earlier and both streams are cut at the
    trim point in the graph, timed from it; MP4/MOV/Matroska and clips the probe does not name keep the
    plain seek; raw elementary streams are read from their start."""
    from render_job.clips import SEEK_PREROLL_S
    scenes = [{"id": f"s{i}", "visual": {"type": "video", "src": src, "volume": 1, "trimStartS": trim}}
              for i, (src, trim) in enumerate([("a.ts", 20.5), ("b.mpg", 1.5), ("c.mp4", 20.5),
                                               ("d.h264", 20.5), ("e.mkv", 3)])]
    fmts = {"a.ts": "mpegts", "b.mpg": "mpeg", "c.mp4": "mov,mp4,m4a,3gp,3g2,mj2", "d.h264": "h264",
            "e.mkv": "matroska,webm"}
    probes = {src: SimpleNamespace(duration_s=30.0, has_audio=True, start_s=1.4, video_start_s=1.4,
                                   audio_start_s=1.4, format_name=fmt) for src, fmt in fmts.items()}
    plan = _plan_of(scenes, probes)
    assert SEEK_PREROLL_S == 12.0
    assert [sc.clip_preroll_s for sc in plan.scenes] == [12.0, 1.5, 0.0, 20.5, 0.0]
    argv = build_command(plan, {src: src for src in fmts}, "o.mp4")
    joined, graph = " ".join(argv), graph_of(argv)
    assert "-ss 8.5 -t 21.5 -i a.ts" in joined and "-ss 0 -t 30 -i b.mpg" in joined
    assert "-ss 20.5 -t 9.5 -i c.mp4" in joined and "-ss 0 -t 30 -i d.h264" in joined and "-ss 3 -t 27 -i e.mkv" in joined
    assert "[0:V]trim=start=12,setpts=PTS-12/TB,crop='min(iw,ih*1280/720)':'min(ih,iw*720/1280)',scale=" in graph and "[1:V]trim=start=1.5,setpts=PTS-1.5/TB," in graph
    assert "[2:V]crop='min(iw,ih*1280/720)':'min(ih,iw*720/1280)',scale=" in graph and "[4:V]crop='min(iw,ih*1280/720)':'min(ih,iw*720/1280)',scale=" in graph
    assert "[3:V]trim=start=20.5,setpts=PTS-20.5/TB," in graph
    assert "volume=1,atrim=12:21.5,asetpts=PTS-STARTPTS,apad=whole_len=" in graph  # first of its lane, at 0
    assert "volume=1,atrim=0:9.5,asetpts=PTS-STARTPTS" in graph  # c.mp4: as before


def test_mix_loudness_analysis_runs_the_render_audio_graph_and_render_applies_it_linearly():
    from render_job.graph.audio import loudnorm_filter, loudnorm_is_linear
    from render_job.loudness import build_mix_loudness_command
    probes = {**PROBES, "clip.mp4": SimpleNamespace(duration_s=4.0, has_audio=True)}
    spec_data = {"output": {"resolution": "720p", "fps": 30}, "music": {"src": "music.ogg", "ducking": True},
                 "audio": {"loudnessLufs": -14, "truePeakDb": -1},
                 "scenes": [{"id": "s1", "visual": {"type": "video", "src": "clip.mp4", "volume": 0.5}},
                            {"id": "s2", "visual": {"type": "image", "src": "a.png"}, "narration": {"src": "n1.wav"}}]}
    spec = parse_spec(spec_data)
    plan = build_plan(spec, probes)
    assert plan.scenes[0].clip_audio
    for video_pipe in (False, True):  # single run and a segmented render's encoding run
        render = build_command(plan, INPUTS, "o.mp4", video_pipe=video_pipe)
        analysis, measure = build_mix_loudness_command(plan, INPUTS, ffmpeg="/x/ffmpeg")
        stmts = graph_of(analysis).split(";")
        # the render's audio statements (inputs numbered from the analysis' own 0), the mix as it is
        assert len(stmts) == 9 and stmts[-1] == "[mix]anull[aout]"
        strip = [s.split("]", 1)[1] for s in stmts[:-1]]
        assert all(s in graph_of(render) for s in strip), strip
    # the mix run writes raw PCM into a pipe, the measuring run reads it into loudnorm's analysis
    assert analysis[0] == "/x/ffmpeg" and analysis[-10:] == ["-sn", "-c:a", "pcm_f32le", "-ar", "48000", "-ac", "2",
                                                              "-f", "f32le", "pipe:1"]
    assert analysis.count("-i") == 3 and "-vn" in analysis and "-ss" in analysis  # clip opened at its trim
    assert measure[measure.index("-i") - 6:measure.index("-i") + 2] == ["-f", "f32le", "-ar", "48000", "-ch_layout",
                                                                         "stereo", "-i", "pipe:0"]
    assert measure[measure.index("-af") + 1] == "loudnorm=I=-14:TP=-2:LRA=11:print_format=json" and measure[-1] == "-"
    assert "[mix]loudnorm=I=-14:TP=-2:LRA=11,aresample=48000,asetpts=N/SR/TB" in graph_of(render)
    measured = {"input_i": "-30.10", "input_tp": "-20.00", "input_lra": "18.30", "input_thresh": "-40.50",
                "target_offset": "0.20"}
    # linear: one constant gain, target - input_i, as loudnorm's linear mode applies it (no 192 kHz)
    assert loudnorm_filter(plan, measured) == "volume=16.10dB"
    # the ceiling is the target (-1 dBTP) minus the AAC encoder's overshoot margin (1 dB): -2
    assert loudnorm_is_linear(plan, measured)                                # -20 + 16.1 <= -2
    assert not loudnorm_is_linear(plan, {**measured, "input_tp": "-16.00"})  # -16 + 16.1 > -2: dynamic
    # a gain that would put the peak at -1.4 dBTP: under the target, but the encoder would push it over
    peaky = {**measured, "input_tp": "-17.50"}
    assert not loudnorm_is_linear(plan, peaky)
    ln = loudnorm_filter(plan, peaky)
    # dynamic loudnorm from the measured values, LRA target raised to the mix's range
    assert ln == ("loudnorm=I=-14:TP=-2:LRA=19:measured_I=-30.10:measured_TP=-17.50:measured_LRA=18.3"
                  ":measured_thresh=-40.50:offset=0.20:linear=true")
    for video_pipe in (False, True):
        g = graph_of(build_command(plan, INPUTS, "o.mp4", video_pipe=video_pipe, loudness=peaky))
        assert f"[mix]{ln},aresample=48000,asetpts=N/SR/TB," in g
        g = graph_of(build_command(plan, INPUTS, "o.mp4", video_pipe=video_pipe, loudness=measured))
        assert "[mix]volume=16.10dB,aresample=48000,asetpts=N/SR/TB," in g
    # a steady mix measures LRA 0.00, which FFmpeg reads as "not measured" (then never linear)
    assert ":LRA=11:" in loudnorm_filter(plan, {**peaky, "input_lra": "0.00"})
    assert ":measured_LRA=0.01:" in loudnorm_filter(plan, {**peaky, "input_lra": "0.00"})
    assert build_mix_loudness_command(build_plan(make_spec(music=None, scenes=[
        {"id": "c", "visual": {"type": "color"}, "duration": 1}]), {}), {}) is None


def test_a_silent_mix_gets_no_loudnorm():
    from render_job.graph.audio import SILENT_MIX, loudnorm_filter
    from render_job.loudness import mix_is_silent
    silent = '[Parsed_loudnorm_0 @ 0x1]\n{\n "input_i" : "-inf", "input_tp" : "-inf", "input_lra" : "0.00"}'
    quiet = '{"input_i" : "-23.50", "input_tp" : "-9.1", "input_lra" : "3.0"}'
    assert mix_is_silent(silent) and mix_is_silent('{"input_i": "-75.0"}')
    assert not mix_is_silent(quiet) and not mix_is_silent("no json here")
    plan = build_plan(parse_spec({"scenes": [{"id": "a", "visual": {"type": "color"}, "duration": 1}]}), {})
    assert loudnorm_filter(plan, SILENT_MIX) == "anull"
    assert loudnorm_filter(plan).startswith("loudnorm=")
