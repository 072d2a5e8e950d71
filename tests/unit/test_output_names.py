"""OUTPUT_NAME (shared/outputs.py) is the one rule for file names in an export's folder: every name
the render job writes matches it, and the API refuses anything else it reads back."""
from hypothesis import given, settings, strategies as st

from render_job.subtitles import SRT_FILE, VTT_FILE
from shared.outputs import is_output_name, slugify


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.one_of(st.none(), st.text(max_size=300)))
def test_every_video_name_the_render_job_writes_is_an_output_name(title):
    assert is_output_name(f"{slugify(title)}.mp4")


def test_fixed_output_names_and_refused_names():
    assert all(is_output_name(n) for n in ("poster.jpg", SRT_FILE, VTT_FILE, "a", "A.b-c_d.mp4", "x" * 200))
    for bad in ("", ".", "..", "../x.mp4", "a/b.srt", "/etc/passwd", ".hidden.mp4", "-x.mp4", "a b.mp4",
                "caf\u00e9.mp4", "x" * 201, "a\nb", "a\\b", None, 5):
        assert not is_output_name(bad), bad
