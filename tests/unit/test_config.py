"""Settings are checked when read (shared/config.py): a bad number, backend or switch raises one
ConfigError naming every bad variable, its value and what is expected; limits are positive (0 is
refused, never "no limit"), the documented 0-modes stay; a limit capped elsewhere cannot be raised
past its cap (issue 15, adversarial review findings 2, 3, 6)."""
from __future__ import annotations

import pytest

from shared.config import ConfigError, Settings, get_settings, report_target
from shared.setting_rules import CHOICES, NUMBERS
from shared.spec import MAX_SCENES

LIMITS = ["EXPORT_MAX_ASSETS", "EXPORT_MAX_ASSET_BYTES", "EXPORT_MAX_JOB_BYTES", "EXPORT_MAX_OUTPUT_BYTES",
          "EXPORT_MAX_TOTAL_S", "EXPORT_MAX_SCENES", "EXPORT_MAX_BODY_BYTES", "EXPORT_MAX_CAPTION_CHARS",
          "RENDER_MEMORY_BYTES"]


@pytest.fixture
def env(monkeypatch):
    """A clean environment for get_settings: every checked variable unset; set them with env(NAME=value)."""
    for rule in NUMBERS.values():
        monkeypatch.delenv(rule.env, raising=False)
    for var, _ in CHOICES.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("DB_IAM_AUTH", raising=False)
    get_settings.cache_clear()

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()


def problems() -> list[str]:
    with pytest.raises(ConfigError) as info:
        get_settings()
    return info.value.problems


def test_garbage_render_memory_bytes_is_named_with_what_is_expected(env):
    env(RENDER_MEMORY_BYTES="8Gi")
    with pytest.raises(ConfigError) as info:
        get_settings()
    assert info.value.problems == [
        "RENDER_MEMORY_BYTES='8Gi': expected a whole number of bytes, at least 536870912, e.g. 8589934592"]
    assert isinstance(info.value, ValueError) and info.value.CODE == "misconfigured"
    assert str(info.value) == "invalid settings: " + info.value.problems[0]


@pytest.mark.parametrize("name,value", [
    ("RENDER_MEMORY_BYTES", "8e9"), ("RENDER_MEMORY_BYTES", " 8589934592x"), ("RENDER_MEMORY_BYTES", "8.5"),
    ("EXPORT_MAX_BODY_BYTES", "1MB"), ("EXPORT_MAX_BODY_BYTES", "1_000_000"), ("EXPORT_MAX_ASSETS", "４０１"),
    ("EXPORT_MAX_TOTAL_S", "30m"), ("EXPORT_MAX_TOTAL_S", "nan"), ("EXPORT_MAX_TOTAL_S", "inf"),
    ("RENDER_TIMEOUT_PER_OUTPUT_S", "1,5"), ("FFMPEG_THREADS", "auto"), ("RENDER_SEGMENT_SCENES", "-1"),
    ("EXPORT_UPLOAD_URL_TTL_S", "604801"), ("RENDER_MAX_RETRIES", "11"),
])
def test_a_bad_number_is_named(env, name, value):
    env(**{name: value})
    found = problems()
    assert len(found) == 1 and found[0].startswith(f"{name}={value!r}: expected "), found


def test_every_bad_variable_is_named_at_once(env):
    env(RENDER_MEMORY_BYTES="8Gi", EXPORT_MAX_BODY_BYTES="1MB", EXPORT_MAX_JOB_BYTES="0",
        EXPORT_STORAGE_BACKEND="Local", DB_IAM_AUTH="ture", EXPORT_MAX_SCENES="150")
    found = problems()
    assert [p.split("=", 1)[0] for p in found] == ["EXPORT_MAX_BODY_BYTES", "EXPORT_MAX_JOB_BYTES",
                                                   "RENDER_MEMORY_BYTES", "EXPORT_STORAGE_BACKEND", "DB_IAM_AUTH"]
    assert "EXPORT_STORAGE_BACKEND='Local': expected one of google, local" in found
    assert "DB_IAM_AUTH='ture': expected true or false" in found


@pytest.mark.parametrize("name", LIMITS)
@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_limit_of_zero_or_less_is_refused(env, name, value):
    """0 is not 'no limit' anywhere: it is refused when read, so the API and the render cannot disagree."""
    env(**{name: value})
    found = problems()
    assert len(found) == 1 and found[0].startswith(f"{name}={value!r}: expected "), found
    assert ", at least 1" in found[0] or "greater than 0" in found[0] or ", at least 536870912" in found[0]


@pytest.mark.parametrize("field", ["max_assets", "max_asset_bytes", "max_job_bytes", "max_output_bytes",
                                   "max_total_s", "max_scenes", "max_body_bytes", "max_caption_chars",
                                   "render_memory_bytes"])
def test_settings_built_directly_refuse_a_zero_limit(field):
    """Tests and tools that build Settings get the same rule (Settings.__post_init__)."""
    with pytest.raises(ConfigError) as info:
        Settings(**{field: 0})
    assert info.value.problems[0].startswith(f"{NUMBERS[field].env}='0': expected ")


def test_the_documented_zero_modes_are_kept(env):
    env(RENDER_SEGMENT_SCENES="0", FFMPEG_THREADS="0", RENDER_MAX_RETRIES="0", RECONCILE_STALE_AFTER_S="0",
        RENDER_REPORT_INTERVAL_S="0")
    s = get_settings()
    assert (s.render_segment_scenes, s.ffmpeg_threads, s.render_max_retries) == (0, 0, 0)
    assert (s.reconcile_stale_after_s, s.render_report_interval_s) == (0.0, 0.0)
    assert s.replace(render_segment_scenes=0).render_segment_scenes == 0


def test_valid_values_are_read(env):
    env(RENDER_MEMORY_BYTES=" 4294967296 ", EXPORT_MAX_TOTAL_S="1.2e3", RENDER_TIMEOUT_PER_OUTPUT_S=".5",
        EXPORT_MAX_SCENES="150", DB_IAM_AUTH="TRUE", EXPORT_STORAGE_BACKEND="local", EXPORT_MAX_ASSETS="")
    s = get_settings()
    assert (s.render_memory_bytes, s.max_total_s, s.render_timeout_per_output_s) == (4 * 2**30, 1200.0, 0.5)
    assert (s.max_scenes, s.db_iam_auth, s.storage_backend, s.max_assets) == (150, True, "local", 401)
    assert type(s.render_memory_bytes) is int and type(s.max_total_s) is float


def test_export_max_scenes_can_only_lower_the_specs_max_scenes(env):
    """The spec refuses 201+ scenes whatever the setting: a higher setting would have no effect."""
    env(EXPORT_MAX_SCENES="250")
    assert problems() == ["EXPORT_MAX_SCENES='250': expected a whole number of scenes, at least 1 and at "
                          "most 200, the spec's MAX_SCENES (the setting can only lower it), e.g. 200"]
    env(EXPORT_MAX_SCENES=str(MAX_SCENES))
    assert get_settings().max_scenes == MAX_SCENES


@pytest.mark.parametrize("name,cap", [("EXPORT_MAX_ASSETS", 500), ("EXPORT_MAX_CAPTION_CHARS", 500),
                                      ("EXPORT_MAX_ASSET_BYTES", 5 * 1024 ** 4),
                                      ("EXPORT_DOWNLOAD_URL_TTL_S", 604800), ("RENDER_TASK_TIMEOUT_S", 604800)])
def test_other_limits_capped_elsewhere_can_only_lower_their_cap(env, name, cap):
    env(**{name: str(cap + 1)})
    found = problems()
    assert len(found) == 1 and f"at most {cap}, " in found[0] and "can only lower it" in found[0], found
    env(**{name: str(cap)})
    field = next(f for f, rule in NUMBERS.items() if rule.env == name)
    assert getattr(get_settings(), field) == cap


def test_a_failed_read_is_not_cached(env):
    env(EXPORT_MAX_BODY_BYTES="1MB")
    problems()
    env(EXPORT_MAX_BODY_BYTES="2000000")
    assert get_settings().max_body_bytes == 2_000_000


def test_report_target_needs_no_other_setting():
    """The render task reports a misconfiguration with these two strings alone."""
    assert report_target({"EXPORT_API_BASE": "http://api:8080/", "EXPORT_WORKER_TOKEN": "t",
                          "RENDER_MEMORY_BYTES": "8Gi"}) == ("http://api:8080/export_complete", "t")
    assert report_target({"EXPORT_COMPLETE_URL": "http://x/done"}) == ("http://x/done", "")
    assert report_target({}) == (Settings().complete_url, "")


@pytest.mark.parametrize("name, value, expected", [
    # a number meant in MiB or GiB: Cloud Run's smallest task memory is 512 MiB
    ("RENDER_MEMORY_BYTES", "8192", "expected a whole number of bytes, at least 536870912, e.g. 8589934592"),
    # waits compared with timestamps: 1e11 s overflowed `now - wait` (every reconcile a 500)
    ("RECONCILE_STALE_AFTER_S", "1e11", "and at most 3153600000, 100 years (the setting can only lower it)"),
    ("RECONCILE_QUEUED_AFTER_S", "1e11", "and at most 3153600000, 100 years"),
    ("EXPORT_UPLOAD_TTL_S", "1e11", "and at most 3153600000, 100 years"),
    # the MP4 is one object; 1e20 overflowed FFmpeg's -fs (every render failed)
    ("EXPORT_MAX_OUTPUT_BYTES", "100000000000000000000", "at most 5497558138880, Cloud Storage's largest object"),
])
def test_values_that_parse_but_cannot_be_used_are_refused(env, name, value, expected):
    env(**{name: value})
    found = problems()
    assert len(found) == 1 and found[0].startswith(f"{name}={value!r}: expected ") and expected in found[0], found
