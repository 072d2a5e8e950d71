"""FFmpeg argv building: filters, offsets, loudness, encoding options, no caption text (pure, fast)."""
import re
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # until the project's pytest config sets pythonpath
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from render_job.ffmpeg import QUALITY, build_command, build_poster_command, fmt_s  # noqa: E402
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


def test_xfade_offsets_equal_plan_starts_and_cut_uses_concat(plan):
    argv = build_command(plan, INPUTS, "output.mp4", "captions.ass")
    graph = graph_of(argv)
    offsets = [float(x) for x in re.findall(r"xfade=transition=\w+:duration=[\d.]+:offset=([\d.]+)", graph)]
    assert offsets == pytest.approx([plan.scenes[1].start, plan.scenes[2].start], abs=1e-6)
    assert "xfade=transition=fade:duration=0.5:" in graph
    assert "xfade=transition=wipeleft:duration=0.733333:" in graph  # 0.75 s rounded down to 22 frames
    assert "concat=n=2:v=1:a=0" in graph
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
    assert "force_original_aspect_ratio=increase" in graph and "crop=1280:720" in graph
    assert "force_original_aspect_ratio=decrease" in graph and "pad=1280:720:(ow-iw)/2:(oh-ih)/2" in graph
    assert "out_range=tv" in graph and "out_color_matrix=bt709" in graph
    assert graph.count("setsar=1") >= 4 and "format=yuv420p" in graph
    for opt in ("-colorspace", "-color_primaries", "-color_trc"):
        assert argv[argv.index(opt) + 1] == "bt709"
    assert argv[argv.index("-color_range") + 1] == "tv"


def test_audio_graph_narration_music_ducking_loudnorm(plan):
    graph = graph_of(build_command(plan, INPUTS, "output.mp4", "captions.ass"))
    assert graph.count("aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo") >= 4
    delays = [int(x) for x in re.findall(r"adelay=(\d+):all=1", graph)]
    assert delays == [round(plan.scenes[i].start * 1000) for i in range(3)]
    assert "volume=0.8" in graph
    assert "amix=inputs=3:normalize=0" in graph
    assert "sidechaincompress" in graph and "asplit=2" in graph
    assert "afade=t=in:st=0:d=1" in graph
    assert f"afade=t=out:st={fmt_s(plan.total_s - 2)}:d=2" in graph
    assert "loudnorm=I=-14:TP=-1:LRA=11" in graph
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
    assert CAPTIONS[0] in srt and CAPTIONS[1] in srt
    assert CAPTIONS[0] in vtt and vtt.startswith("WEBVTT")
    assert "00:00:00,000 --> " in srt
    assert vtt_text([type(plan.cues[0])(0, 1, "a < b & c")]).count("a &lt; b &amp; c") == 1


def test_pure_modules_import_no_io_libraries():
    for mod in ("plan", "ffmpeg", "progress"):
        src = (ROOT / "render_job" / f"{mod}.py").read_text()
        imports = re.findall(r"^\s*(?:import|from)\s+([\w.]+)", src, flags=re.M)
        for banned in ("subprocess", "sqlalchemy", "google", "requests", "av", "os", "shutil"):
            assert not any(i == banned or i.startswith(banned + ".") for i in imports), (mod, banned)
        assert "open(" not in src
