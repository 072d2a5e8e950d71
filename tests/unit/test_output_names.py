"""OUTPUT_NAME (shared/artifacts.py) is the one rule for file names in an export's folder: every name
the render job writes matches it, and the API refuses anything else it reads back."""
import pytest
from hypothesis import given, settings, strategies as st

from shared.artifacts import SIDECAR_FILES, is_output_name, slugify

SRT_FILE, VTT_FILE = SIDECAR_FILES["srt"], SIDECAR_FILES["vtt"]  # the sidecars' names beside the video


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.one_of(st.none(), st.text(max_size=300)))
def test_every_video_name_the_render_job_writes_is_an_output_name(title):
    assert is_output_name(f"{slugify(title)}.mp4")


def test_fixed_output_names_and_refused_names():
    assert all(is_output_name(n) for n in ("poster.jpg", SRT_FILE, VTT_FILE, "a", "A.b-c_d.mp4", "x" * 200))
    for bad in ("", ".", "..", "../x.mp4", "a/b.srt", "/etc/passwd", ".hidden.mp4", "-x.mp4", "a b.mp4",
                "caf\u00e9.mp4", "x" * 201, "a\nb", "a\\b", None, 5):
        assert not is_output_name(bad), bad


@pytest.mark.parametrize("title, slug", [
    ("A Century in Pieces: Europe 1939\u20131945", "a-century-in-pieces-europe-1939-1945"),  # en dash
    ("Before\u2014and After", "before-and-after"),                                          # em dash
    ("\u00abLa R\u00e9sistance\u00bb \u00e0 Lyon", "la-resistance-a-lyon"),                 # guillemets, accents
    ("\u201eDie Mauer\u201c f\u00e4llt", "die-mauer-fallt"),                                # German quotes
    ("Wait\u2026what", "wait-what"),                                                        # ellipsis
    ("Caf\u00e9\u00a0Society", "cafe-society"),                                             # no-break space
    ("Moon \U0001F680 Mission", "moon-mission"),                                            # emoji between words
    ("Sun\U0001F31EMoon", "sun-moon"),                                                      # emoji, no spaces
    ("Tab\tand\nline", "tab-and-line"),                                                     # controls
    ("\u6771\u4eac\u7269\u8a9e", "export"),                                                 # CJK only
    ("\u2014 \u2026 \U0001F680", "export"),                                                 # separators only
    ("Tokyo \u6771\u4eac 2020", "tokyo-2020"),
    ("Moon Mission", "moon-mission"),
])
def test_slug_separates_words_at_any_scripts_punctuation(title, slug):
    assert slugify(title) == slug
    assert is_output_name(f"{slug}.mp4")
