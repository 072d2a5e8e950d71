"""Terraform's limits, evaluated by Terraform itself (`terraform console` on variables.tf and limits.tf,
which read variables only, so no provider is needed): the render job and the functions get the same
values as deploy.sh deploys, a changed variable reaches the env, and a misspelt `export_limits` key
or a memory form deploy.sh refuses is refused too. Skipped when terraform is not installed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_limits_agree import dry_run

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "infra" / "terraform"
REQUIRED = ["-var", "project_id=p", "-var", "render_image=i"]


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """console(*vars) -> (the value of both envs or None, stderr without colours)."""
    if not shutil.which("terraform"):
        pytest.skip("terraform is not installed")
    work = tmp_path_factory.mktemp("tf-limits")
    for name in ("variables.tf", "limits.tf"):
        shutil.copy(TF / name, work / name)
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}

    def run(*variables: str) -> tuple[dict | None, str]:
        argv = ["terraform", "console", "-no-color", *REQUIRED]
        for v in variables:
            argv += ["-var", v]
        r = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=60,
                           input='jsonencode({job = local.render_env, functions = local.functions_limits_env, '
                                 'stitch = local.stitch_env})\n')
        out = r.stdout.strip()
        return (json.loads(json.loads(out)) if out.startswith('"') else None), r.stderr

    return run


def test_terraform_and_deploy_sh_deploy_the_same_env(console):
    envs, err = console()
    assert envs is not None, err
    d = dry_run()
    job = {k: v for k, v in d["job"].items() if k in envs["job"]}
    assert envs["job"] == job  # every key Terraform sets on the job, with deploy.sh's value
    fn = {k: v for k, v in d["functions"]["export-start"].items() if k in envs["functions"]}
    assert envs["functions"] == fn
    stitch = {k: v for k, v in d["stitch"].items() if k in envs["stitch"]}
    assert envs["stitch"] == stitch and set(envs["stitch"]) == set(envs["job"])  # issue 19's stitch job
    assert (envs["stitch"]["RENDER_MEMORY_BYTES"], envs["stitch"]["RENDER_VCPUS"]) == (str(6 * 2**30), "2")
    assert envs["functions"]["RENDER_MAX_PARTS"] == "16" and envs["functions"]["RENDER_STITCH_TASK_TIMEOUT_S"] == "900"
    assert envs["job"]["RENDER_MEMORY_BYTES"] == "8589934592" and envs["functions"]["EXPORT_UPLOAD_TTL_S"] == "3600"


def test_a_changed_variable_reaches_the_env(console):
    envs, err = console("render_memory=6144Mi", "export_upload_ttl_s=7200", "render_max_media_s=5400",
                        'export_limits={EXPORT_MAX_SCENES=100}', "render_stitch_memory=3Gi",
                        "render_stitch_task_timeout_s=1200", "render_max_parts=8")
    assert envs is not None, err
    assert envs["stitch"]["RENDER_MEMORY_BYTES"] == str(3 * 2**30) and envs["stitch"]["RENDER_TASK_TIMEOUT_S"] == "1200"
    assert envs["stitch"]["RENDER_MAX_MEDIA_S"] == "5400" and envs["functions"]["RENDER_MAX_PARTS"] == "8"
    assert envs["job"]["RENDER_MEMORY_BYTES"] == str(6144 * 2**20)
    assert envs["functions"]["EXPORT_UPLOAD_TTL_S"] == "7200" and "EXPORT_UPLOAD_TTL_S" not in envs["job"]
    assert envs["job"]["RENDER_MAX_MEDIA_S"] == "5400" and "RENDER_MAX_MEDIA_S" not in envs["functions"]
    assert envs["job"]["EXPORT_MAX_SCENES"] == envs["functions"]["EXPORT_MAX_SCENES"] == "100"


@pytest.mark.parametrize("variable, message", [
    ('export_limits={EXPORT_MAX_SCENE=100}', "unknown: EXPORT_MAX_SCENE."),
    ('export_limits={EXPORT_MAX_SCENES=100,EXPORT_UPLOAD_TTL_S=7200}', "unknown: EXPORT_UPLOAD_TTL_S."),
    ("render_memory=8G", "render_memory must be a whole number of Gi or Mi (e.g. 8Gi, 6144Mi)."),
    ("render_memory=8.5Gi", "render_memory must be a whole number of Gi or Mi (e.g. 8Gi, 6144Mi)."),
    ("render_stitch_memory=6G", "render_stitch_memory must be a whole number of Gi or Mi (e.g. 6Gi, 6144Mi)."),
])
def test_a_value_deploy_sh_would_refuse_is_refused(console, variable, message):
    _, err = console(variable)
    assert "Error: Invalid value for variable" in err, err[-1000:]
    assert message in " ".join(err.split()), err[-1000:]


@pytest.mark.parametrize("origin", ["https://app.example.com:443", "http://localhost:80", "http://localhost:0",
                                    "http://localhost:0808", "http://localhost:99999", "https://App.example.com",
                                    "https://app.example.com/"])
def test_an_origin_the_functions_refuse_is_refused_by_terraform(console, origin):
    """var.cors_origins becomes the functions' EXPORT_CORS_ORIGINS: an origin shared.cors refuses
    would pass `terraform apply` and then turn every client function into a 503 misconfigured."""
    with pytest.raises(ValueError):
        from shared.cors import parse_origins
        parse_origins(origin)
    envs, err = console(f'cors_origins=["{origin}"]')
    assert envs is None and "cors_origins: exact origins" in err, err


@pytest.mark.parametrize("origins", ['["http://127.0.0.1:5173","https://app.example.com"]', '["http://[::1]:8080"]',
                                     '["*"]', "[]"])
def test_origins_the_functions_take_pass_terraform(console, origins):
    envs, err = console(f"cors_origins={origins}")
    assert envs is not None, err
