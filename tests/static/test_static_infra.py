"""Static checks of infra/: the Terraform parses (python-hcl2) and holds every resource of the
deployment; checkov finds no failed check that README does not justify; the render Dockerfile
passes hadolint and keeps its promises (multi-stage, pinned base, non-root, FFmpeg and fonts)."""
from __future__ import annotations

import glob
import json
import re
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest

from shared.artifacts import PARTS_PREFIX, PARTS_TTL_DAYS

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "infra" / "terraform"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def tf() -> dict:
    merged: dict[str, list] = {}
    for path in sorted(glob.glob(str(TF / "*.tf"))):
        with open(path) as f:
            for key, blocks in hcl2.load(f).items():
                merged.setdefault(key, []).extend(blocks)
    return merged


def _resources(tf: dict) -> dict[str, dict]:
    out = {}
    for block in tf.get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                out[f"{rtype}.{name}"] = body
    return out


def _one(v):
    """The hcl2 parser (bc-python-hcl2, checkov's fork of python-hcl2) wraps values and blocks in lists."""
    while isinstance(v, list) and len(v) == 1:
        v = v[0]
    return v


def test_terraform_parses_and_holds_every_resource(tf):
    res = _resources(tf)
    kinds = {k.split(".")[0] for k in res}
    for kind in ["google_storage_bucket", "google_pubsub_topic", "google_pubsub_subscription",
                 "google_sql_database_instance", "google_service_account", "google_secret_manager_secret",
                 "google_secret_manager_secret_version", "google_artifact_registry_repository",
                 "google_cloud_run_v2_job", "google_cloudfunctions2_function", "google_cloud_scheduler_job",
                 "google_logging_metric", "google_monitoring_alert_policy"]:
        assert kind in kinds, kind
    variables = {name for block in tf["variable"] for name in block}
    assert {"project_id", "region", "name_prefix", "input_bucket_name", "output_bucket_name",
            "input_retention_days", "output_retention_days", "create_sql_instance",
            "existing_instance_connection_name", "render_image"} <= variables

    for b in ("input", "output"):
        bucket = res[f"google_storage_bucket.{b}"]
        assert _one(bucket["uniform_bucket_level_access"]) is True
        assert _one(bucket["public_access_prevention"]) == "enforced"
        assert "_retention_days}" in json.dumps(bucket["lifecycle_rule"])
    # CORS from var.cors_origins, methods and headers from local.cors (tests/unit/test_cors_agree.py)
    assert "local.cors.input" in json.dumps(res["google_storage_bucket.input"]["dynamic"])
    assert "local.cors.output" in json.dumps(res["google_storage_bucket.output"]["dynamic"])
    # issue 19: a parallel render's pieces left behind go after PARTS_TTL_DAYS (the code's constant)
    rules = res["google_storage_bucket.output"]["lifecycle_rule"]
    parts_rule = _one(next(r for r in rules if "matches_prefix" in json.dumps(r))["condition"])
    assert _one(parts_rule["matches_prefix"]) == PARTS_PREFIX and _one(parts_rule["age"]) == "${local.parts_ttl_days}"
    assert _one(next(b for b in tf["locals"] if "parts_ttl_days" in b)["parts_ttl_days"]) == PARTS_TTL_DAYS

    sub = res["google_pubsub_subscription.dispatch"]
    dlp = _one(sub["dead_letter_policy"])
    assert "google_pubsub_topic.dead_letter" in _one(dlp["dead_letter_topic"]) and "max_delivery_attempts" in dlp

    job = _one(_one(res["google_cloud_run_v2_job.render"]["template"])["template"])
    assert {"timeout", "max_retries", "service_account", "containers"} <= set(job)
    container = _one(job["containers"])
    assert {"cpu", "memory"} <= set(_one(_one(container["resources"])["limits"]))
    assert any("secret_key_ref" in json.dumps(e) for e in container["env"])

    # issue 19: the render job runs any task count at once (RunJob overrides task_count, not
    # parallelism); the stitch job has its own size and time limit, the same account, secret and settings
    render = _one(res["google_cloud_run_v2_job.render"]["template"])
    assert (_one(render["task_count"]), _one(render["parallelism"])) == (1, 0)
    stitch = _one(_one(res["google_cloud_run_v2_job.stitch"]["template"])["template"])
    assert _one(stitch["timeout"]) == "${var.render_stitch_task_timeout_s}s"
    assert _one(stitch["service_account"]) == _one(job["service_account"])
    s_container = _one(stitch["containers"])
    assert _one(s_container["image"]) == _one(container["image"]) == "${var.render_image}"
    assert _one(_one(s_container["resources"])["limits"]) == {"cpu": "${var.render_stitch_cpu}",
                                                              "memory": "${var.render_stitch_memory}"}
    assert json.dumps(s_container["env"]) == json.dumps(container["env"])  # the same variables ...
    assert "local.stitch_env" in json.dumps(s_container["dynamic"])  # ... and its own size in them
    assert "google_cloud_run_v2_job.stitch.name" in json.dumps(res["google_cloud_run_v2_job_iam_member.stitch_launchers"])

    fn = res["google_cloudfunctions2_function.fn"]
    trig = _one(_one(fn["dynamic"])["event_trigger"])  # the bucket functions' Eventarc trigger
    assert _one(_one(trig["content"])["retry_policy"]) == "RETRY_POLICY_RETRY"
    svc = _one(fn["service_config"])
    assert {"max_instance_count", "service_account_email", "environment_variables"} <= set(svc)

    locals_ = {k: v for block in tf["locals"] for k, v in block.items()}
    entries = {_one(v["entry"]) for v in _one(locals_["functions"]).values()}
    main = (ROOT / "functions" / "main.py").read_text()
    assert entries == set(re.findall(r"@functions_framework\.\w+\ndef (\w+)", main))


def _justified() -> dict[str, str]:
    """Check id -> reason, from README's table of justified checkov findings."""
    readme = (ROOT / "README.md").read_text()
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `(CKV2?_[A-Z]+_\d+)` \|[^|]*\|([^|]+)\|",
                                                                  readme, re.M)}


def test_checkov_finds_nothing_readme_does_not_justify():
    r = subprocess.run([str(BIN / "checkov"), "-d", str(TF), "--framework", "terraform", "--quiet", "--compact",
                        "-o", "json", "--skip-download"], capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    report = json.loads(r.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] >= 40
    failed = {(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]}
    justified = _justified()
    unjustified = sorted(f"{cid} {res}" for cid, res in failed if cid not in justified)
    assert not unjustified, "checkov findings README does not justify:\n" + "\n".join(unjustified)


def test_dockerfile_passes_hadolint_and_keeps_its_promises():
    dockerfile = ROOT / "infra" / "Dockerfile"
    r = subprocess.run([str(BIN / "hadolint"), "--failure-threshold", "info", str(dockerfile)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    text = dockerfile.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2  # multi-stage
    assert re.search(r"python:[\d.]+-slim-bookworm@sha256:[0-9a-f]{64}", text)  # pinned by digest
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    install = re.search(r"apt-get install [^&]*", text).group(0).split()
    # the fonts README promises (Symbola: emoji libass can draw) and no second FFmpeg (Debian's)
    assert {"fontconfig", "fonts-noto-core", "fonts-noto-cjk", "fonts-symbola", "fonts-dejavu-core"} <= set(install)
    assert "ffmpeg" not in install and "fonts-noto-color-emoji" not in install
