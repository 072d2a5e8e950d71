"""README's Limits table, env.example, shared/config.py's defaults, infra/deploy.sh (as its dry run
prints it) and Terraform's variable defaults name the same value for every limit (issue 15), and the
values keep the rules they are derived from: 401 uploads for 200 scenes, the task's memory rule, the
FFmpeg time limit inside the task timeout."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import hcl2
import pytest

from shared.config import Settings
from shared.service import StartRequest
from shared.spec import MAX_SCENES

ROOT = Path(__file__).resolve().parents[2]
GIB = 1024 ** 3

# setting -> Settings field (RENDER_CPU and RENDER_MEMORY are the Cloud Run job's own, not settings)
FIELDS = {
    "EXPORT_MAX_SCENES": "max_scenes", "EXPORT_MAX_TOTAL_S": "max_total_s", "EXPORT_MAX_ASSETS": "max_assets",
    "EXPORT_MAX_ASSET_BYTES": "max_asset_bytes", "EXPORT_MAX_JOB_BYTES": "max_job_bytes",
    "EXPORT_MAX_OUTPUT_BYTES": "max_output_bytes", "EXPORT_MAX_BODY_BYTES": "max_body_bytes",
    "EXPORT_MAX_CAPTION_CHARS": "max_caption_chars", "EXPORT_UPLOAD_URL_TTL_S": "upload_url_ttl_s",
    "EXPORT_DOWNLOAD_URL_TTL_S": "download_url_ttl_s", "EXPORT_UPLOAD_TTL_S": "upload_ttl_s",
    "RENDER_MEMORY_BYTES": "render_memory_bytes", "RENDER_TASK_TIMEOUT_S": "render_task_timeout_s",
    "RENDER_TIMEOUT_BASE_S": "render_timeout_base_s", "RENDER_TIMEOUT_PER_OUTPUT_S": "render_timeout_per_output_s",
}
EXPORT_LIMITS = [name for name in FIELDS if name.startswith("EXPORT_MAX_")]
FFMPEG_PEAK_BYTES = 2.3e9  # FFmpeg at 1080p with 24 scenes per segment, measured (issue 15; README: Limits)
PROCESS_MARGIN_BYTES = 0.5e9  # Python, ffprobe and margin


def number(text: str) -> float:
    return float(text)


def readme_table() -> dict[str, str]:
    """{setting: default} of README's Limits table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\n## Limits\n" in readme, "README has no Limits section"
    section = readme.split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `([A-Z0-9_]+)` \| `([^`]+)` \|", line)
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} twice in the Limits table"
            rows[m.group(1)] = m.group(2)
    return rows


def env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / "env.example").read_text().splitlines():
        m = re.match(r"([A-Z0-9_]+)=(\S*)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def memory_bytes(quantity: str) -> int:
    m = re.fullmatch(r"(\d+)(Gi|Mi)", quantity)
    assert m, quantity
    return int(m.group(1)) * {"Gi": GIB, "Mi": 1024 ** 2}[m.group(2)]


@pytest.fixture(scope="module")
def deployed() -> dict[str, dict[str, str]]:
    """What deploy.sh --dry-run deploys with no settings: {"job": flags and env, "export-start": env}."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    r = subprocess.run(["bash", str(ROOT / "infra" / "deploy.sh"), "--dry-run"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        argv = shlex.split(line)
        if argv[:4] == ["gcloud", "run", "jobs", "deploy"]:
            key = "job"
        elif argv[:3] == ["gcloud", "functions", "deploy"] and argv[3] == "export-start":
            key = "export-start"
        else:
            continue
        flags = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
        values = dict(pair.split("=", 1) for pair in flags.pop("set-env-vars").split(","))
        out[key] = {**{f"--{k}": v for k, v in flags.items()}, **values}
    assert set(out) == {"job", "export-start"}
    return out


@pytest.fixture(scope="module")
def terraform() -> tuple[dict, str]:
    """(variable defaults, main.tf's text)."""
    defaults = {}
    for block in hcl2.load(open(ROOT / "infra" / "terraform" / "variables.tf"))["variable"]:
        for name, body in block.items():
            if "default" in body:
                defaults[name] = body["default"][0] if isinstance(body["default"], list) else body["default"]
    return defaults, (ROOT / "infra" / "terraform" / "main.tf").read_text()


def test_readme_env_example_and_settings_agree():
    table, example, settings = readme_table(), env_example(), Settings()
    assert set(FIELDS) | {"RENDER_CPU", "RENDER_MEMORY"} == set(table), "the Limits table's rows"
    for name, field in FIELDS.items():
        default = getattr(settings, field)
        assert number(table[name]) == default, (name, table[name], default)
        assert number(example[name]) == default, (name, example[name], default)
    assert table["RENDER_CPU"] == "4" and table["RENDER_MEMORY"] == "8Gi"
    assert memory_bytes(table["RENDER_MEMORY"]) == settings.render_memory_bytes


def test_deploy_sh_deploys_the_same_values(deployed):
    table, job, fn = readme_table(), deployed["job"], deployed["export-start"]
    assert job["--cpu"] == table["RENDER_CPU"]
    assert job["--memory"] == table["RENDER_MEMORY"]
    assert job["--task-timeout"] == table["RENDER_TASK_TIMEOUT_S"] + "s"
    assert int(job["RENDER_MEMORY_BYTES"]) == memory_bytes(job["--memory"])  # from the same value
    for name in ("RENDER_TASK_TIMEOUT_S", "RENDER_TIMEOUT_PER_OUTPUT_S"):
        assert number(job[name]) == number(table[name]), name
    for name in EXPORT_LIMITS:  # the functions and the job hold the same limits
        assert number(fn[name]) == number(job[name]) == number(table[name]), name
    assert number(fn["RENDER_TASK_TIMEOUT_S"]) == number(table["RENDER_TASK_TIMEOUT_S"])


def test_terraform_deploys_the_same_values(terraform):
    defaults, main = terraform
    table = readme_table()
    assert defaults["render_cpu"] == table["RENDER_CPU"]
    assert defaults["render_memory"] == table["RENDER_MEMORY"]
    assert defaults["render_task_timeout_s"] == number(table["RENDER_TASK_TIMEOUT_S"])
    assert defaults["render_timeout_per_output_s"] == number(table["RENDER_TIMEOUT_PER_OUTPUT_S"])
    assert {k: number(table[k]) for k in EXPORT_LIMITS} == defaults["export_limits"]
    # RENDER_MEMORY_BYTES is computed from render_memory (a whole number of Gi, validated)
    compact = re.sub(r"\s+", "", main)
    assert 'RENDER_MEMORY_BYTES=tostring(tonumber(trimsuffix(var.render_memory,"Gi"))*1073741824)' in compact
    assert memory_bytes(defaults["render_memory"]) == number(table["RENDER_MEMORY_BYTES"])
    assert "merge(local.common_env,local.limits_env," in compact  # every function gets the limits
    assert "for_each=local.render_env" in compact  # and so does the render job, with its own three


def test_the_values_keep_their_rules():
    s = Settings()
    assert s.max_scenes == MAX_SCENES
    assert s.max_assets == 2 * MAX_SCENES + 1  # a visual and a narration per scene, plus music
    assert StartRequest.model_fields["uploads"].metadata[0].max_length >= s.max_assets  # the setting speaks
    assert s.max_asset_bytes <= s.max_job_bytes
    # memory >= FFmpeg peak + media files + output MP4 + margin (README: Limits)
    assert FFMPEG_PEAK_BYTES + s.max_job_bytes + s.max_output_bytes + PROCESS_MARGIN_BYTES <= s.render_memory_bytes
    # the FFmpeg time limit of the longest export ends before the task timeout
    assert s.render_timeout_base_s + s.render_timeout_per_output_s * s.max_total_s < s.render_task_timeout_s
