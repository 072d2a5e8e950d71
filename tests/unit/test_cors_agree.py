"""One CORS rule (shared/cors.py) deployed three ways: Terraform's bucket cors blocks and the
functions' env, infra/deploy.sh's --cors-file JSON (written by the module itself) and its functions'
env, all from one origins variable. deploy.sh runs for real against recording fakes of gcloud,
docker and openssl (as tests/static/test_static_deploy.py does), so the JSON checked is what gcloud
would be given."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest

from shared import cors

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "infra" / "terraform"
ORIGINS = "https://app.example.com,http://localhost:5173"
CLIENT_FUNCTIONS = {"export-start", "export-status", "export-cancel", "export-list", "export-webhook-secret"}

FAKE = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    files = {{a.split("=", 1)[0]: open(a.split("=", 1)[1]).read() for a in args if a.startswith("--cors-file=")}}
    f.write(json.dumps([os.path.basename(sys.argv[0]), args, files]) + "\\n")
if "describe" in args:
    if args[:2] == ["projects", "describe"]:
        print("123456789012")
        sys.exit(0)
    sys.exit(1)
if os.path.basename(sys.argv[0]) == "openssl":
    print("0" * 64)
if "--data-file=-" in args:
    sys.stdin.read()
"""


def _one(v):
    while isinstance(v, list) and len(v) == 1:
        v = v[0]
    return v


def deploy(tmp: Path, origins: str | None) -> tuple[subprocess.CompletedProcess, list]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name in ("gcloud", "docker", "openssl", "fake-python"):
        (bin_dir / name).write_text(FAKE.format(python=sys.executable))
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp), "FAKE_LOG": str(tmp / "calls.jsonl"),
           "GOOGLE_CLOUD_PROJECT": "acme", "INSTANCE_CONNECTION_NAME": "acme:europe-west1:sql",
           "DB_MIGRATE_USER": "ops@acme.test", "MIGRATE_PYTHON": str(bin_dir / "fake-python"),
           "BUNDLE_DIR": str(tmp / "bundle"), **({"EXPORT_CORS_ORIGINS": origins} if origins is not None else {})}
    r = subprocess.run(["bash", str(ROOT / "infra" / "deploy.sh")], env=env, capture_output=True, text=True,
                       timeout=300)
    log = tmp / "calls.jsonl"
    return r, [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def bucket_cors_files(calls: list) -> dict[str, list]:
    """{bucket: the CORS JSON gcloud was handed for it}."""
    out = {}
    for name, args, files in calls:
        if name == "gcloud" and args[:3] == ["storage", "buckets", "update"] and files:
            out[args[3].removeprefix("gs://")] = json.loads(files["--cors-file"])
    return out


def function_env(calls: list) -> dict[str, dict[str, str]]:
    """{function: its --set-env-vars} (gcloud's escaped commas split)."""
    out = {}
    for name, args, _ in calls:
        if name == "gcloud" and args[:2] == ["functions", "deploy"]:
            raw = next(a for a in args if a.startswith("--set-env-vars=")).split("=", 1)[1]
            out[args[2]] = dict(item.split("=", 1) for item in raw.split(","))
    return out


def test_deploy_sh_applies_the_modules_rule_to_both_buckets_and_tells_the_functions(tmp_path):
    r, calls = deploy(tmp_path, ORIGINS)
    assert r.returncode == 0, r.stderr
    origins = cors.parse_origins(ORIGINS)
    assert bucket_cors_files(calls) == {"acme-sceneflow-input": cors.bucket_cors("input", origins),
                                        "acme-sceneflow-output": cors.bucket_cors("output", origins)}
    envs = function_env(calls)
    for fn in CLIENT_FUNCTIONS:  # the value, space-separated (gcloud splits at commas): the same origins
        assert cors.parse_origins(envs[fn]["EXPORT_CORS_ORIGINS"]) == origins


def test_deploy_sh_default_is_no_origin_and_a_malformed_one_stops_it(tmp_path):
    (tmp_path / "default").mkdir()
    r, calls = deploy(tmp_path / "default", None)
    assert r.returncode == 0, r.stderr
    assert set(map(json.dumps, bucket_cors_files(calls).values())) == {"[]"}  # CORS cleared on both
    assert function_env(calls)["export-start"]["EXPORT_CORS_ORIGINS"] == ""
    (tmp_path / "bad").mkdir()
    r, calls = deploy(tmp_path / "bad", "https://app.example.com/")
    assert r.returncode != 0 and not [c for c in calls if c[0] == "gcloud"]  # nothing deployed
    assert "EXPORT_CORS_ORIGINS: 'https://app.example.com/' is not an origin" in r.stderr


def _terraform() -> tuple[dict, dict, dict]:
    main = hcl2.load(open(TF / "main.tf"))
    locals_ = {k: v for block in main["locals"] for k, v in block.items()}
    buckets = {n: b for block in main["resource"] for n, b in block.get("google_storage_bucket", {}).items()}
    variables = {n: b for block in hcl2.load(open(TF / "variables.tf"))["variable"] for n, b in block.items()}
    return locals_, buckets, variables


@pytest.mark.parametrize("bucket", ["input", "output"])
def test_terraform_builds_each_bucket_rule_from_the_module(bucket):
    locals_, buckets, variables = _terraform()
    rule = _one(locals_["cors"])
    methods, headers = cors.BUCKET_RULES[bucket]
    assert _one(rule[bucket])["method"] == list(methods)
    assert _one(rule[bucket])["response_header"] == list(headers)
    assert _one(rule["max_age_seconds"]) == cors.MAX_AGE_S
    dynamic = _one(_one(buckets[bucket]["dynamic"])["cors"])
    assert _one(dynamic["for_each"]) == f"${{length(var.cors_origins) > 0 ? ['${{local.cors.{bucket}}}'] : []}}"
    content = _one(dynamic["content"])
    assert (_one(content["origin"]), _one(content["method"]), _one(content["response_header"]),
            _one(content["max_age_seconds"])) == ("${var.cors_origins}", "${cors.value.method}",
                                                  "${cors.value.response_header}", "${local.cors.max_age_seconds}")
    assert variables["cors_origins"]["default"] in ([], [[]])  # no browser origin unless named


def test_terraform_tells_every_function_the_same_origins():
    locals_, _, _ = _terraform()
    env = _one(locals_["common_env"])
    assert env["EXPORT_CORS_ORIGINS"] .replace(" ", "") == '${join(",",var.cors_origins)}'
    # the client functions are deployed with common_env
    main = (TF / "main.tf").read_text()
    assert "environment_variables            = merge(local.common_env," in main
