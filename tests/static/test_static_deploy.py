"""infra/deploy.sh against recording fakes of gcloud, docker and openssl on PATH: every gcloud call
uses only flags that the installed gcloud's `--help` for that command lists; --dry-run works from a
fresh clone without any setting, and README's deploy section lists the same commands in order."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from shared.artifacts import PARTS_PREFIX, PARTS_TTL_DAYS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "infra" / "deploy.sh"

FAKE = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps([name, *sys.argv[1:]]) + "\\n")
    for a in sys.argv[1:]:  # a file the script hands over (deleted when it exits): its content too
        if a.startswith("--lifecycle-file="):
            f.write(json.dumps(["<file>", a.split("=", 1)[1], open(a.split("=", 1)[1]).read()]) + "\\n")
args = sys.argv[1:]
if name == "gcloud" and "describe" in args:
    if args[:2] == ["projects", "describe"]:
        print("123456789012")
        sys.exit(0)
    sys.exit(1)  # nothing exists yet: the script creates everything
if name == "openssl":
    print("0" * 64)
if name == "gcloud" and "--data-file=-" in args:
    sys.stdin.read()
"""


def _flags(help_text: str) -> set[str]:
    out: set[str] = set()
    for m in re.finditer(r"--(\[no-\])?([a-z0-9][a-z0-9-]*)", help_text):
        out.add(m.group(2))
        if m.group(1):
            out.add("no-" + m.group(2))
    return out


def _used_flags(rest: list[str]) -> list[str]:
    return [a[2:].split("=", 1)[0] for a in rest if a.startswith("--")]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(calls, stdout) of a real (not dry) run of deploy.sh with fakes on PATH."""
    tmp = tmp_path_factory.mktemp("deploy")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name in ("gcloud", "docker", "openssl", "fake-python"):
        p = bin_dir / name
        p.write_text(FAKE.format(python=sys.executable))
        p.chmod(0o755)
    log = tmp / "calls.jsonl"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp), "FAKE_LOG": str(log),
           "GOOGLE_CLOUD_PROJECT": "acme-video", "GOOGLE_CLOUD_REGION": "europe-west1",
           "INSTANCE_CONNECTION_NAME": "acme-video:europe-west1:sceneflow", "DB_MIGRATE_USER": "ops@acme.test",
           "MIGRATE_PYTHON": str(bin_dir / "fake-python"), "BUNDLE_DIR": str(tmp / "bundle")}
    r = subprocess.run(["bash", str(DEPLOY)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return calls, tmp


def test_deploy_runs_the_whole_deployment(recorded):
    calls, tmp = recorded
    gcloud = [c[1:] for c in calls if c[0] == "gcloud"]
    deployed = [c[2] for c in gcloud if c[:2] == ["functions", "deploy"]]
    assert sorted(deployed) == sorted(["export-start", "export-status", "export-cancel", "export-list",
                                       "reconcile-exports", "export-complete", "dispatch-export",
                                       "on-finalized-input", "on-finalized-output", "export-webhook-secret",
                                       "deliver-webhook"])
    for c in gcloud:
        if c[:2] == ["functions", "deploy"]:
            assert f"--source={tmp / 'bundle'}" in c and "--gen2" in c
            if c[2].startswith("on-finalized"):
                assert "--retry" in c
    assert (tmp / "bundle" / "main.py").exists() and (tmp / "bundle" / "shared" / "service.py").exists()
    sub = next(c for c in gcloud if c[:3] == ["pubsub", "subscriptions", "create"] and "--push-endpoint" in
               " ".join(c))
    assert "--dead-letter-topic=export-jobs-dead-letter" in sub and "--max-delivery-attempts=10" in sub
    events = next(c for c in gcloud if c[:4] == ["pubsub", "subscriptions", "create", "export-events-deliver"])
    assert "--dead-letter-topic=export-events-dead-letter" in events and "--max-delivery-attempts=8" in events
    assert "--push-endpoint=https://europe-west1-acme-video.cloudfunctions.net/deliver-webhook/projects/" \
           "acme-video/topics/export-events" in events
    job = next(c for c in gcloud if c[:3] == ["run", "jobs", "deploy"])
    assert "--tasks=1" in job and "--task-timeout=3600s" in job
    assert ["fake-python", "-m", "shared.db"] == calls[-1]  # the migration runs last
    # issue 19: the output bucket (new or existing) deletes leftover pieces after PARTS_TTL_DAYS
    update = next(c for c in gcloud if c[:3] == ["storage", "buckets", "update"] and "gs://acme-video-sceneflow-output"
                  in c and any(a.startswith("--lifecycle-file=") for a in c))
    path = next(a for a in update if a.startswith("--lifecycle-file=")).split("=", 1)[1]
    rules = json.loads(next(c[2] for c in calls if c[:2] == ["<file>", path]))["rule"]
    assert {"action": {"type": "Delete"}, "condition": {"age": PARTS_TTL_DAYS, "matchesPrefix": [PARTS_PREFIX]}} \
        in rules and len(rules) == 2
    # the image comes from infra/image.sh (the build of make image), then is pushed
    build = next(c for c in calls if c[:2] == ["docker", "build"])
    assert build[2:4] == ["-f", str(DEPLOY.parent / "Dockerfile")] and build[-1] == str(DEPLOY.parents[1])
    assert calls.index(build) < next(i for i, c in enumerate(calls) if c[:2] == ["docker", "push"])


def test_deploy_refuses_the_local_only_webhook_settings(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GOOGLE_CLOUD_PROJECT": "acme-video",
           "INSTANCE_CONNECTION_NAME": "acme-video:europe-west1:sceneflow",
           "EXPORT_WEBHOOK_ALLOW_PRIVATE_HOSTS": "127.0.0.1/32"}
    r = subprocess.run(["bash", str(DEPLOY), "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "EXPORT_WEBHOOK_ALLOW_PRIVATE_HOSTS is for the local stacks only" in r.stderr


def test_every_gcloud_flag_is_listed_by_gcloud_help(recorded, gcloud_help):
    calls, _ = recorded
    gcloud = [c[1:] for c in calls if c[0] == "gcloud"]
    split = [gcloud_help.split(c) for c in gcloud]
    # `describe` probes (exists checks) are checked against the SDK's command tree; every command that
    # changes something against its --help (about 1-2 s of CPU each, fetched in parallel once)
    gcloud_help.prefetch(path for path, _ in split if path[-1] != "describe")
    global_flags = _flags(gcloud_help.text(("storage", "buckets", "create")).split("GCLOUD WIDE FLAGS")[-1])
    problems = []
    for (path, rest), argv in zip(split, gcloud):
        assert len(path) >= 2, f"not a gcloud command: {argv}"
        if path[-1] == "describe":
            node = gcloud_help.tree
            for p in path:
                node = node["commands"][p]
            allowed = {f[2:] for f in node["flags"]} | global_flags
        else:
            allowed = _flags(gcloud_help.text(path)) | global_flags
        problems += [f"gcloud {' '.join(path)}: --{f}" for f in _used_flags(rest) if f not in allowed]
    assert not problems, "flags the installed gcloud does not list:\n" + "\n".join(problems)


def _dry_run_commands() -> list[list[str]]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}  # a fresh shell: no settings
    r = subprocess.run(["bash", str(DEPLOY), "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cmds = []
    for line in r.stdout.splitlines():
        for part in line.split(" | "):
            cmds.append(shlex.split(part))
    return cmds


def test_dry_run_from_a_fresh_clone_prints_the_deployment(gcloud_help):
    cmds = _dry_run_commands()
    paths = []
    for c in cmds:
        if c[0] == "gcloud":
            path, rest = gcloud_help.split(c[1:])
            paths.append("gcloud " + " ".join(path))
    assert "gcloud functions deploy" in paths and "gcloud run jobs deploy" in paths
    assert all("my-project" in " ".join(c) for c in cmds if c[0] == "gcloud" and "configure-docker" not in c)

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deploying", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"<!-- deploy-commands -->\s*```text\n(.*?)```", section, re.S)
    assert block, "README's Deploying section lists deploy.sh's commands in a ```text block after <!-- deploy-commands -->"
    listed = [line.strip() for line in block.group(1).splitlines() if line.strip()]
    ordered = []
    for c in cmds:
        name = ("gcloud " + " ".join(gcloud_help.split(c[1:])[0])) if c[0] == "gcloud" else " ".join(c[:2])
        if c[0] == "env":
            name = "python -m shared.db"
        if c[0].endswith("/infra/image.sh"):
            name = "infra/image.sh"
        if name not in ordered:
            ordered.append(name)
    assert listed == ordered, "README's deploy command list differs from `infra/deploy.sh --dry-run`"
