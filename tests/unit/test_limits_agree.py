"""README's Limits table, env.example, shared/config.py's defaults, infra/deploy.sh (as its dry run
prints it) and Terraform's variable defaults name the same value for every limit (issue 15); every
limit of env.example is in the table; each setting is deployed to every process whose code reads it,
also when it is changed before deploying; deploy.sh and Terraform take RENDER_MEMORY in the same
forms; and the values keep the rules they are derived from: 401 uploads for 200 scenes, the task's
memory rule, the FFmpeg time limit inside the task timeout."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import hcl2
import pytest

from shared.config import Settings
from shared.api import StartRequest
from shared.spec import MAX_SCENES

ROOT = Path(__file__).resolve().parents[2]
GIB = 1024 ** 3

# setting -> Settings field
FIELDS = {
    "EXPORT_MAX_SCENES": "max_scenes", "EXPORT_MAX_TOTAL_S": "max_total_s", "EXPORT_MAX_ASSETS": "max_assets",
    "EXPORT_MAX_ASSET_BYTES": "max_asset_bytes", "EXPORT_MAX_JOB_BYTES": "max_job_bytes",
    "EXPORT_MAX_OUTPUT_BYTES": "max_output_bytes", "EXPORT_MAX_BODY_BYTES": "max_body_bytes",
    "EXPORT_MAX_CAPTION_CHARS": "max_caption_chars", "EXPORT_UPLOAD_URL_TTL_S": "upload_url_ttl_s",
    "EXPORT_DOWNLOAD_URL_TTL_S": "download_url_ttl_s", "EXPORT_UPLOAD_TTL_S": "upload_ttl_s",
    "RENDER_MEMORY_BYTES": "render_memory_bytes", "RENDER_TASK_TIMEOUT_S": "render_task_timeout_s",
    "RENDER_TIMEOUT_BASE_S": "render_timeout_base_s", "RENDER_TIMEOUT_PER_OUTPUT_S": "render_timeout_per_output_s",
    "RENDER_MAX_IMAGE_PIXELS": "render_max_image_pixels", "RENDER_MAX_DECODE_PIXELS": "render_max_decode_pixels",
    "RENDER_MAX_MEDIA_S": "render_max_media_s", "RENDER_MAX_PARTS": "render_max_parts",
    "RENDER_STITCH_TASK_TIMEOUT_S": "render_stitch_task_timeout_s",
    "RENDER_PARALLEL_AFTER_S": "render_parallel_after_s", "RENDER_MIN_PART_S": "render_min_part_s",
}
# the Cloud Run job's size: deploy variables (deploy.sh's environment, Terraform), not settings the code reads
DEPLOY_ONLY = {"RENDER_CPU": "render_cpu", "RENDER_MEMORY": "render_memory",
               "RENDER_STITCH_CPU": "render_stitch_cpu", "RENDER_STITCH_MEMORY": "render_stitch_memory"}
EXPORT_LIMITS = [name for name in FIELDS if name.startswith("EXPORT_MAX_")]
# limit-like names outside env.example's Limits and preflight blocks; what matches and is no limit
LIMIT_NAME = re.compile(r"_MAX_|_TTL_S$|TIMEOUT")
NOT_LIMITS = {"RENDER_MAX_RETRIES",  # a retry count (the RENDER_TASK_TIMEOUT_S row names it)
              # a webhook attempt's time limit and the local push's attempts: not limits of a job
              # (README: Receive webhooks)
              "EXPORT_WEBHOOK_TIMEOUT_S", "EXPORT_LOCAL_PUSH_MAX_ATTEMPTS"}
MEMORY_FORM = "^[0-9]+(Gi|Mi)$"  # RENDER_MEMORY as deploy.sh and Terraform both take it
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


def readme_row(name: str) -> list[str]:
    """The cells of the Limits table's row of `name`: setting, default, when exceeded, why."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    line = next(line for line in section.splitlines() if line.startswith(f"| `{name}` |"))
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / "env.example").read_text().splitlines():
        m = re.match(r"([A-Z0-9_]+)=(\S*)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def env_example_blocks() -> dict[str, list[str]]:
    """{first comment line of a block: its settings}; a block starts at a comment line that follows a
    setting (or the file's start)."""
    blocks: dict[str, list[str]] = {}
    head, last_was_setting = None, True
    for line in (ROOT / "env.example").read_text().splitlines():
        if line.startswith("#"):
            if last_was_setting:
                head = line
                blocks[head] = []
            last_was_setting = False
        elif m := re.match(r"([A-Z0-9_]+)=", line):
            blocks[head].append(m.group(1))
            last_was_setting = True
    return blocks


def limit_settings() -> set[str]:
    """env.example's limits: its Limits block, its render preflight block, and every other name that
    reads as a limit (LIMIT_NAME), but NOT_LIMITS."""
    blocks = env_example_blocks()
    heads = [h for h in blocks if h.startswith("# --- Limits") or h.startswith("# Preflight")]
    assert len(heads) == 2, list(blocks)
    names = {n for h in heads for n in blocks[h]}
    names |= {n for names_ in blocks.values() for n in names_ if LIMIT_NAME.search(n)}
    return names - NOT_LIMITS


def readers() -> dict[str, set[str]]:
    """{setting: the processes whose code reads it}: "job" when render_job/ reads its Settings field,
    "functions" when functions/ or shared/ (the API's service, bootstrap, repository) does."""
    def text(paths):
        return "\n".join(p.read_text() for p in paths)

    job = text((ROOT / "render_job").rglob("*.py"))
    fns = text([*(ROOT / "functions").rglob("*.py"),
                *(p for p in (ROOT / "shared").rglob("*.py") if p.name != "config.py")])
    out = {}
    for name, field in FIELDS.items():
        use = re.compile(rf"\.{field}\b")
        out[name] = {who for who, src in (("job", job), ("functions", fns)) if use.search(src)}
    return out


def memory_bytes(quantity: str) -> int:
    m = re.fullmatch(r"(\d+)(Gi|Mi)", quantity)
    assert m, quantity
    return int(m.group(1)) * {"Gi": GIB, "Mi": 1024 ** 2}[m.group(2)]


def dry_run(**settings: str) -> dict:
    """What `deploy.sh --dry-run` deploys with `settings` in its environment: {"job": the render job's
    flags and env, "stitch": the stitch job's (issue 19), "functions": {name: flags and env}}."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **settings}
    r = subprocess.run(["bash", str(ROOT / "infra" / "deploy.sh"), "--dry-run"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out: dict = {"functions": {}}
    for line in r.stdout.splitlines():
        argv = shlex.split(line)
        if argv[:4] != ["gcloud", "run", "jobs", "deploy"] and argv[:3] != ["gcloud", "functions", "deploy"]:
            continue
        flags = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
        values = dict(pair.split("=", 1) for pair in flags.pop("set-env-vars").split(","))
        deployed_ = {**{f"--{k}": v for k, v in flags.items()}, **values}
        if argv[1] == "run":
            out["stitch" if argv[4] == settings.get("RENDER_STITCH_JOB_NAME", "sceneflow-stitch") else "job"] = deployed_
        else:
            out["functions"][argv[3]] = deployed_
    assert "job" in out and "stitch" in out and len(out["functions"]) == 11, out["functions"].keys()
    return out


@pytest.fixture(scope="module")
def deployed() -> dict:
    """What deploy.sh --dry-run deploys with no settings."""
    return dry_run()


@pytest.fixture(scope="module")
def terraform() -> tuple[dict, str]:
    """(variable bodies, main.tf's text, limits.tf's locals)."""
    tf = ROOT / "infra" / "terraform"
    variables = {name: body for block in hcl2.load(open(tf / "variables.tf"))["variable"]
                 for name, body in block.items()}
    locals_ = {k: v for block in hcl2.load(open(tf / "limits.tf"))["locals"] for k, v in block.items()}
    return variables, (tf / "main.tf").read_text(), locals_


def default(body: dict):
    return body["default"][0] if isinstance(body["default"], list) else body["default"]


def tf_variable(name: str) -> str:
    """Terraform's variable of a setting of the table: the setting's name in lower case."""
    return DEPLOY_ONLY.get(name, name.lower())


def test_readme_env_example_and_settings_agree():
    table, example, settings = readme_table(), env_example(), Settings()
    assert set(FIELDS) | set(DEPLOY_ONLY) == set(table), "the Limits table's rows"
    for name, field in FIELDS.items():
        default = getattr(settings, field)
        assert number(table[name]) == default, (name, table[name], default)
        assert number(example[name]) == default, (name, example[name], default)
    assert table["RENDER_CPU"] == "4" and table["RENDER_MEMORY"] == "8Gi"
    assert memory_bytes(table["RENDER_MEMORY"]) == settings.render_memory_bytes
    assert table["RENDER_STITCH_CPU"] == "2" and table["RENDER_STITCH_MEMORY"] == "6Gi"
    # env.example lists settings only: the job's size is deploy.sh's and Terraform's
    assert not set(DEPLOY_ONLY) & set(example)


def test_every_limit_of_env_example_is_in_the_table():
    limits = limit_settings()
    assert {"EXPORT_MAX_JOB_BYTES", "RENDER_MAX_MEDIA_S", "EXPORT_UPLOAD_TTL_S"} <= limits  # the rule sees them
    assert sorted(limits - set(readme_table())) == [], "limits of env.example missing from README's Limits table"


def test_each_setting_is_read_where_it_is_deployed():
    who = readers()
    assert who["EXPORT_UPLOAD_TTL_S"] == who["EXPORT_DOWNLOAD_URL_TTL_S"] == {"functions"}
    assert who["RENDER_TIMEOUT_BASE_S"] == who["RENDER_MAX_MEDIA_S"] == {"job"}
    assert who["EXPORT_MAX_ASSET_BYTES"] == {"functions", "job"}
    assert [name for name, processes in who.items() if not processes] == [], "settings nobody reads"


def _assert_deployed(deployed: dict, values: dict[str, str]) -> None:
    """Every setting of `values` is on each process that reads it (every function, the job)."""
    who = readers()
    for name, value in values.items():
        places = ([("job", deployed["job"])] if "job" in who[name] else []) + (
            list(deployed["functions"].items()) if "functions" in who[name] else [])
        for place, env in places:
            assert name in env, f"{name} is not deployed to {place}"
            assert number(env[name]) == number(value), (name, place, env[name], value)


def test_deploy_sh_deploys_the_same_values(deployed):
    table, job = readme_table(), deployed["job"]
    assert job["--cpu"] == table["RENDER_CPU"]
    assert job["--memory"] == table["RENDER_MEMORY"]
    assert job["--task-timeout"] == table["RENDER_TASK_TIMEOUT_S"] + "s"
    assert int(job["RENDER_MEMORY_BYTES"]) == memory_bytes(job["--memory"])  # from the same value
    _assert_deployed(deployed, {name: table[name] for name in FIELDS})
    for name in EXPORT_LIMITS:  # the functions and the job hold the same limits
        assert number(deployed["functions"]["export-start"][name]) == number(job[name]) == number(table[name])
    _assert_stitch(deployed, table["RENDER_STITCH_CPU"], table["RENDER_STITCH_MEMORY"],
                   table["RENDER_STITCH_TASK_TIMEOUT_S"])


def _assert_stitch(deployed: dict, cpu: str, memory: str, timeout_s: str) -> None:
    """The stitch job (issue 19): its own size and time limit, told to its task as the render job
    tells its own (RENDER_VCPUS, RENDER_MEMORY_BYTES, RENDER_TASK_TIMEOUT_S); every other variable as
    the render job's; one task, and the render job unbounded in parallelism (DESIGN §9)."""
    job, stitch = deployed["job"], deployed["stitch"]
    assert (stitch["--cpu"], stitch["--memory"], stitch["--task-timeout"]) == (cpu, memory, timeout_s + "s")
    assert (stitch["RENDER_VCPUS"], stitch["RENDER_TASK_TIMEOUT_S"]) == (cpu, timeout_s)
    assert int(stitch["RENDER_MEMORY_BYTES"]) == memory_bytes(memory)
    own = {"--cpu", "--memory", "--task-timeout", "RENDER_VCPUS", "RENDER_MEMORY_BYTES", "RENDER_TASK_TIMEOUT_S",
           "--parallelism"}
    assert {k: v for k, v in stitch.items() if k not in own} == {k: v for k, v in job.items() if k not in own}
    assert stitch["--tasks"] == job["--tasks"] == "1" and job["--parallelism"] == "0"
    for fn in deployed["functions"].values():  # the functions launch it by name
        assert fn["RENDER_STITCH_JOB_NAME"] == "sceneflow-stitch"


def test_a_setting_changed_before_deploy_sh_is_deployed():
    table = readme_table()
    changed = {name: str(int(number(table[name]) * 2)) for name in FIELDS if name != "RENDER_MEMORY_BYTES"}
    d = dry_run(**changed, RENDER_CPU="2", RENDER_MEMORY="6144Mi", RENDER_STITCH_CPU="1", RENDER_STITCH_MEMORY="3Gi")
    _assert_deployed(d, {**changed, "RENDER_MEMORY_BYTES": str(6144 * 2**20)})
    assert (d["job"]["--cpu"], d["job"]["--memory"]) == ("2", "6144Mi")
    _assert_stitch(d, "1", "3Gi", changed["RENDER_STITCH_TASK_TIMEOUT_S"])
    assert d["job"]["--task-timeout"] == changed["RENDER_TASK_TIMEOUT_S"] + "s"
    assert d["functions"]["export-status"]["EXPORT_UPLOAD_TTL_S"] == "7200"


def test_deploy_sh_and_terraform_take_render_memory_in_the_same_forms(terraform):
    variables, _, _ = terraform
    deploy = (ROOT / "infra" / "deploy.sh").read_text()
    for name in ("RENDER_MEMORY", "RENDER_STITCH_MEMORY"):
        assert f"[[ ! ${name} =~ {MEMORY_FORM} ]]" in deploy, name
        condition = variables[name.lower()]["validation"][0]["condition"]
        assert f'can(regex("{MEMORY_FORM}",var.{name.lower()}))' in re.sub(r"\s+", "", str(condition)), condition
    assert dry_run(RENDER_MEMORY="08Gi")["job"]["RENDER_MEMORY_BYTES"] == str(8 * GIB)  # not octal
    for bad in ("8G", "8.5Gi", "xGi", "8gi"):
        r = subprocess.run(["bash", str(ROOT / "infra" / "deploy.sh"), "--dry-run"], capture_output=True, text=True,
                           env={"PATH": os.environ["PATH"], "HOME": "/tmp", "RENDER_MEMORY": bad}, timeout=60)
        assert r.returncode == 2 and r.stdout == "", (bad, r.stdout[-300:])
        assert f"RENDER_MEMORY must be a whole number of Gi or Mi (e.g. 8Gi, 6144Mi), not {bad}" in r.stderr, bad


def test_terraform_deploys_the_same_values(terraform):
    variables, main, locals_ = terraform
    table = readme_table()
    for name in set(FIELDS) - set(EXPORT_LIMITS) - {"RENDER_MEMORY_BYTES"} | set(DEPLOY_ONLY):
        value = default(variables[tf_variable(name)])
        assert (value == table[name]) if isinstance(value, str) else (value == number(table[name])), name
    assert {k: number(table[k]) for k in EXPORT_LIMITS} == default(variables["export_limits"])
    # a misspelt key of export_limits is refused: the validation knows exactly the EXPORT_MAX_* keys
    condition = str(variables["export_limits"]["validation"][0]["condition"])
    assert set(re.findall(r"EXPORT_\w+", condition)) == set(EXPORT_LIMITS), condition
    # each setting in the env of the processes that read it: EXPORT_MAX_* through limits_env (both)
    envs = {"job": default({"default": locals_["render_env"]}),
            "functions": default({"default": locals_["functions_limits_env"]})}
    for env in envs.values():
        assert env.startswith("${merge(local.limits_env,{"), env
    assert locals_["limits_env"] == ["${{for name , value in var.export_limits : name => tostring(value)}}"]
    who = readers()
    for name in set(FIELDS) - set(EXPORT_LIMITS):
        source = "local.render_memory_bytes" if name == "RENDER_MEMORY_BYTES" else f"var.{tf_variable(name)}"
        for process in who[name]:
            assert f"'{name}': '${{tostring({source})}}'" in envs[process], (name, process)
    compact = re.sub(r"\s+", "", main)
    assert "environment_variables=merge(local.common_env,local.functions_limits_env," in compact  # every function
    assert "for_each=local.render_env" in compact  # the render job
    common = re.search(r"common_env=\{[^}]*\}", compact).group(0)
    assert [n for n in FIELDS if n + "=" in common] == []  # the limits come from limits.tf only


def test_the_task_timeout_is_per_attempt():
    """Cloud Run applies the task timeout to each attempt of a task (cloud.google.com/run/docs/configuring/
    task-timeout): retries need not fit within one timeout, and the row must not say they do."""
    _, _, exceeded, why = readme_row("RENDER_TASK_TIMEOUT_S")
    assert "within the hour" not in why and "each attempt" in why, why
    assert "retried (`RENDER_MAX_RETRIES`)" in exceeded, exceeded


def test_the_values_keep_their_rules():
    s = Settings()
    assert s.max_scenes == MAX_SCENES
    assert s.max_assets == 2 * MAX_SCENES + 1  # a visual and a narration per scene, plus music
    assert StartRequest.model_fields["uploads"].metadata[0].max_length >= s.max_assets  # the setting speaks
    assert s.max_asset_bytes <= s.max_job_bytes
    # memory >= FFmpeg peak + media files + output MP4 + margin (README: Limits)
    assert FFMPEG_PEAK_BYTES + s.max_job_bytes + s.max_output_bytes + PROCESS_MARGIN_BYTES <= s.render_memory_bytes
    # the FFmpeg time limit of the longest export ends before the task timeout (of each attempt)
    assert s.render_timeout_base_s + s.render_timeout_per_output_s * s.max_total_s < s.render_task_timeout_s
    # a narration, music or clip as long as the longest export is accepted
    assert s.render_max_media_s >= s.max_total_s
    # every still the render decodes at full size is within the header limit too
    assert s.render_max_decode_pixels <= s.render_max_image_pixels
    # the stitch (issue 19): its in-memory disk holds the parts and the joined MP4 (each at most the
    # output limit) + audio and margin; a part holds at least one scene; it ends well before a render would
    stitch_memory = memory_bytes(readme_table()["RENDER_STITCH_MEMORY"])
    assert 2 * s.max_output_bytes + 1e9 <= stitch_memory <= 8 * GIB  # 2 vCPU take up to 8 GiB (Cloud Run)
    assert s.render_max_parts <= s.max_scenes
    assert s.render_stitch_task_timeout_s < s.render_task_timeout_s
