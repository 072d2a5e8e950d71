"""The API load test (issue 5, item 8): `make load`, or

    .venv/bin/python tests/load/load_test.py [--starts 2000] [--reads 10000] [--concurrency 32]
                                             [--rounds 5] [--json FILE] [--no-strict]
                                             [--list-jobs 100000] [--list-samples 1000] [--list-only]

What runs (all on this machine, each on a free loopback port):
- a throwaway PostgreSQL cluster (or a fresh database on --database-url's server), the Pub/Sub
  emulator and fake-gcs-server: infra.local.stack.EmulatedStack(push=False), i.e. the emulated
  cloud without push subscriptions or storage notifications, so nothing dispatches or renders;
- the functions behind the gateway (python -m infra.local.gateway: functions-framework apps in one
  threaded werkzeug server), with EXPORT_PUBLISHER_BACKEND=google and PUBSUB_EMULATOR_HOST;
- the baseline: tests/load/main.py `bare` (constant JSON) served by the same gateway code;
- for the duplicate check only, after the measurements: tests/load/dispatch_main.py
  (dispatch_export with a recording launcher) behind a third gateway.

The client is one bounded asyncio (aiohttp) client, `--concurrency` requests in flight.

Phases:
1. starts: --starts POST export_start of a color-only spec (no uploads: queued at once, one publish);
2. status vs bare, in the same run: --reads GET export_status (round robin over the new jobs) and
   as many GET bare, in --rounds alternating chunks so that both see the same machine load;
3. checks: rows in export_jobs == starts; messages on the topic (a pull subscription created before
   the run) == starts, one per job; zero errors (any non-2xx or exception);
4. duplicates: every pulled message delivered twice, concurrently, to dispatch_export;
   "render execution started" must appear exactly once per job.

5. listing (issue 18, tests/load/list_load.py): --list-jobs jobs inserted, then export_list pages
   timed (first, a walk through all, deep, status, labels) with the gateway's and PostgreSQL's CPU
   seconds next to wall (BENCHMARKS.md, "Listing"); --list-only runs this phase alone.

Prints throughput (req/s), p50 and p99 (ms) per phase, status/bare throughput ratio and p99 ratio,
and the 1-minute load average before and after. Targets: status throughput >= 0.5 x bare, status
p99 <= 3 x bare p99. Exit status 1 when a check fails or (unless --no-strict) a target is missed.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from infra.local.gateway_process import Gateway  # noqa: E402
from infra.local.process import make_run_dir  # noqa: E402
from infra.local.stack import EmulatedStack  # noqa: E402
from tests.load.list_load import measure_listing, report_listing  # noqa: E402

HERE = Path(__file__).resolve().parent
SPEC = {"version": 1, "title": "Load",
        "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 30, "quality": "draft"},
        "scenes": [{"id": "c", "visual": {"type": "color", "color": "#203040"}, "duration": 2,
                    "caption": {"text": "Load test"}}],
        "captions": {"burnIn": True, "sidecar": ["srt", "vtt"]}}


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)  # seconds
    elapsed: float = 0.0
    codes: collections.Counter = field(default_factory=collections.Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        """q-quantile latency in ms (nearest rank)."""
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return 1000 * xs[min(len(xs) - 1, max(0, int(round(q * len(xs) + 0.5)) - 1))]

    def merge(self, other: "Phase") -> None:
        self.latencies += other.latencies
        self.elapsed += other.elapsed
        self.codes.update(other.codes)
        self.errors += other.errors

    def row(self) -> dict:
        return {"phase": self.name, "requests": self.count, "seconds": round(self.elapsed, 2),
                "rps": round(self.rps, 1), "p50_ms": round(self.pct(0.50), 2), "p99_ms": round(self.pct(0.99), 2),
                "codes": dict(self.codes), "errors": len(self.errors)}


async def run_phase(name: str, n: int, concurrency: int, request, ok=(200,), on_ok=None) -> Phase:
    """n requests, `concurrency` in flight. request(i) -> (method, url, kwargs)."""
    phase = Phase(name)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    indices = iter(range(n))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def worker() -> None:
            for i in indices:
                method, url, kw = request(i)
                t0 = time.perf_counter()
                try:
                    async with session.request(method, url, **kw) as r:
                        body = await r.read()
                        status = r.status
                except Exception as exc:  # noqa: BLE001 - counted as an error
                    phase.latencies.append(time.perf_counter() - t0)
                    phase.codes["exception"] += 1
                    phase.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                phase.latencies.append(time.perf_counter() - t0)
                phase.codes[status] += 1
                if status not in ok:
                    phase.errors.append(f"{status}: {body[:300]!r}")
                elif on_ok is not None:
                    on_ok(i, body)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        phase.elapsed = time.perf_counter() - t0
    return phase


def pull_all(stack: EmulatedStack, subscription: str, quiet_s: float = 3.0) -> list[dict]:
    """Every message on a pull subscription (until none arrives for quiet_s), acknowledged."""
    from google.pubsub_v1 import SubscriberClient

    client = SubscriberClient(transport=stack.pubsub._transport("subscriber"))
    out: list[dict] = []
    last = time.monotonic()
    while time.monotonic() - last < quiet_s:
        resp = client.pull(subscription=subscription, max_messages=1000, timeout=10)
        if not resp.received_messages:
            time.sleep(0.2)
            continue
        last = time.monotonic()
        for m in resp.received_messages:
            out.append({"messageId": m.message.message_id, "data": bytes(m.message.data),
                        "attributes": dict(m.message.attributes)})
        client.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in resp.received_messages])
    return out


def create_pull_subscription(stack: EmulatedStack, name: str) -> str:
    from google.pubsub_v1 import SubscriberClient, Subscription

    client = SubscriberClient(transport=stack.pubsub._transport("subscriber"))
    path = f"projects/{stack.project}/subscriptions/{name}"
    client.create_subscription(request=Subscription(name=path, topic=f"projects/{stack.project}/topics/{stack.jobs_topic}",
                                                    ack_deadline_seconds=60))
    return path


def db_count(url: str, sql: str):
    import pg8000.native
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = pg8000.native.Connection(u.username or "postgres", host=u.host, port=u.port, password=u.password,
                                    database=u.database)
    try:
        return conn.run(sql)
    finally:
        conn.close()


def load1() -> float:
    return round(os.getloadavg()[0], 2)


async def measure(args, stack: EmulatedStack, bare: Gateway, dispatch: Gateway, sub: str) -> dict:
    base, c = stack.base, args.concurrency
    # warm-up: build the service (engine, pool, publisher client) in every gateway; no job created
    unknown = str(uuid.uuid4())
    await run_phase("warmup-status", 200, c, lambda i: ("GET", f"{base}/export_status", {"params": {"jobId": unknown}}),
                    ok=(404,))
    await run_phase("warmup-start", 64, c, lambda i: ("POST", f"{base}/export_start", {"json": {"spec": {}}}), ok=(400,))
    await run_phase("warmup-bare", 200, c, lambda i: ("GET", f"{bare.base}/bare", {}))

    load_before = load1()
    job_ids: list[str] = [""] * args.starts

    def got_job(i: int, body: bytes) -> None:
        job_ids[i] = json.loads(body)["jobId"]

    starts = await run_phase("export_start", args.starts, c,
                             lambda i: ("POST", f"{base}/export_start", {"json": {"spec": SPEC}}), ok=(202,),
                             on_ok=got_job)
    created = [j for j in job_ids if j]
    if not created:
        raise SystemExit(f"no job was created: {starts.errors[:3]}")

    spy = None
    if args.profile:  # py-spy on the functions gateway while it serves the status reads
        import shutil
        import subprocess

        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        spy = subprocess.Popen([exe, "record", "-p", str(stack.gateway.proc.pid), "-o", args.profile,
                                "--format", "raw", "-r", "250", "--nonblocking"] + (["--idle"] if args.idle else []),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    status, bare_phase = Phase("export_status"), Phase("bare")
    per_round = args.reads // args.rounds
    offset = 0
    for r in range(args.rounds):
        def status_req(i: int, off=offset):
            return ("GET", f"{base}/export_status", {"params": {"jobId": created[(off + i) % len(created)]}})

        def bare_req(i: int):
            return ("GET", f"{bare.base}/bare", {})

        order = [("status", status_req), ("bare", bare_req)]
        if r % 2:
            order.reverse()
        for kind, req in order:
            p = await run_phase(kind, per_round, c, req)
            (status if kind == "status" else bare_phase).merge(p)
        offset += per_round
    load_after = load1()
    if spy is not None:
        import signal

        spy.send_signal(signal.SIGINT)
        spy.wait(30)

    # checks
    rows = db_count(stack.env["DATABASE_URL"], "SELECT count(*) FROM export_jobs")[0][0]
    queued = db_count(stack.env["DATABASE_URL"], "SELECT count(*) FROM export_jobs WHERE status = 'queued'")[0][0]
    messages = pull_all(stack, sub)
    msg_jobs = collections.Counter(json.loads(m["data"])["jobId"] for m in messages)

    # duplicates: each message delivered twice, concurrently (adjacent indices), to dispatch_export
    topic_path = f"/projects/{stack.project}/topics/{stack.jobs_topic}"

    def push(i: int):
        m = messages[i // 2]
        body = {"message": {"data": base64.b64encode(m["data"]).decode(), "attributes": m["attributes"],
                            "messageId": m["messageId"], "publishTime": "2026-01-01T00:00:00Z"},
                "subscription": sub}
        return ("POST", f"{dispatch.base}/dispatch_export{topic_path}", {"json": body})

    dispatched = await run_phase("dispatch_export x2", 2 * len(messages), c, push, ok=(200, 204))
    started_logs = collections.Counter()
    for line in dispatch.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"render execution started"' in line:
            started_logs[json.loads(line).get("jobId")] += 1
    dispatched_rows = db_count(stack.env["DATABASE_URL"],
                               "SELECT count(*) FROM export_jobs WHERE status = 'dispatched'")[0][0]

    return {
        "machine": {"cpus": os.cpu_count(), "load1_before": load_before, "load1_after": load_after,
                    "uptime": os.popen("uptime").read().strip()},
        "settings": {"starts": args.starts, "reads": args.reads, "concurrency": c, "rounds": args.rounds,
                     "server": "infra.local.gateway (functions-framework apps, threaded werkzeug), one process each"},
        "phases": [starts.row(), status.row(), bare_phase.row(), dispatched.row()],
        "ratios": {"status_rps_over_bare": round(status.rps / bare_phase.rps, 3),
                   "status_p99_over_bare_p99": round(status.pct(0.99) / bare_phase.pct(0.99), 3)},
        "checks": {"rows": rows, "queued_rows": queued, "created_202": len(created),
                   "messages": len(messages), "distinct_message_jobs": len(msg_jobs),
                   "messages_match_jobs": set(msg_jobs) == set(created),
                   "errors": len(starts.errors) + len(status.errors) + len(bare_phase.errors),
                   "dispatch_errors": len(dispatched.errors),
                   "executions": sum(started_logs.values()), "jobs_with_execution": len(started_logs),
                   "duplicate_executions": sum(n - 1 for n in started_logs.values() if n > 1),
                   "dispatched_rows": dispatched_rows},
        "error_samples": (starts.errors + status.errors + bare_phase.errors + dispatched.errors)[:5],
    }


def report(res: dict, args) -> bool:
    print(f"\nSceneFlow API load test — {res['machine']['uptime']}")
    print(f"{'phase':<22}{'requests':>9}{'seconds':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  codes")
    for p in res["phases"]:
        print(f"{p['phase']:<22}{p['requests']:>9}{p['seconds']:>9}{p['rps']:>9}{p['p50_ms']:>9}{p['p99_ms']:>9}"
              f"  {p['codes']}")
    r, k = res["ratios"], res["checks"]
    t1 = r["status_rps_over_bare"] >= 0.5
    t2 = r["status_p99_over_bare_p99"] <= 3.0
    print(f"status throughput / bare = {r['status_rps_over_bare']:.3f}  (target >= 0.5: {'met' if t1 else 'MISSED'})")
    print(f"status p99 / bare p99    = {r['status_p99_over_bare_p99']:.3f}  (target <= 3: {'met' if t2 else 'MISSED'})")
    want = args.starts
    checks = {
        f"rows == {want}": k["rows"] == want,
        f"messages on the topic == {want}, one per job": k["messages"] == want and k["messages_match_jobs"],
        "zero errors": k["errors"] == 0 and k["dispatch_errors"] == 0,
        f"one execution per job ({want}), zero duplicates": k["jobs_with_execution"] == want
        and k["duplicate_executions"] == 0 and k["dispatched_rows"] == want,
    }
    print(f"rows {k['rows']} (queued {k['queued_rows']}), 202s {k['created_202']}, messages {k['messages']} "
          f"({k['distinct_message_jobs']} jobs), errors {k['errors']}, executions {k['executions']} for "
          f"{k['jobs_with_execution']} jobs, duplicate executions {k['duplicate_executions']}")
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    if res["error_samples"]:
        print("error samples:", *res["error_samples"], sep="\n  ")
    print(f"load average (1 min): {res['machine']['load1_before']} before, {res['machine']['load1_after']} after "
          f"({res['machine']['cpus']} CPUs)")
    ok = all(checks.values())
    return ok and (t1 and t2 or not args.strict)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tests/load/load_test.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--starts", type=int, default=2000)
    p.add_argument("--reads", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5, help="alternating status/bare chunks")
    p.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"),
                   help="a PostgreSQL server to create a fresh database on (default: a throwaway cluster)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--no-strict", dest="strict", action="store_false", help="a missed target does not fail")
    p.add_argument("--profile", help="py-spy the functions gateway during the status reads into this file "
                                      "(collapsed stacks; needs py-spy, e.g. .venv/bin/pip install py-spy)")
    p.add_argument("--idle", action="store_true", help="with --profile: include threads waiting on I/O")
    p.add_argument("--list-jobs", type=int, default=100_000, help="jobs of the listing phase (0: no listing)")
    p.add_argument("--list-samples", type=int, default=1000, help="requests per timed listing phase")
    p.add_argument("--list-only", action="store_true", help="run the listing phase alone")
    args = p.parse_args(argv)

    ok, reason = EmulatedStack.available()
    if not ok and not (args.database_url and "PostgreSQL" in reason):
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    run_dir = make_run_dir("load")
    env = {"RECONCILE_QUEUED_AFTER_S": "3600"}
    with EmulatedStack(run_dir=run_dir, database_url=args.database_url, push=False, extra_env=env) as stack:
        sub = create_pull_subscription(stack, f"load-count-{uuid.uuid4().hex[:6]}")
        gw_env = stack.process_env()
        bare = Gateway(gw_env, run_dir=run_dir, source=HERE / "main.py", functions=["bare"], name="gateway-bare")
        dispatch = Gateway(gw_env, run_dir=run_dir, source=HERE / "dispatch_main.py",
                           functions=["dispatch_export"], name="gateway-dispatch")
        try:
            bare.start()
            dispatch.start()
            print(stack.describe(), flush=True)
            res = {} if args.list_only else asyncio.run(measure(args, stack, bare, dispatch, sub))
            if args.list_jobs > 0:
                res["listing"] = asyncio.run(measure_listing(stack, run_phase, args.list_jobs, 8, args.list_samples))
        finally:
            dispatch.stop()
            bare.stop()
    passed = args.list_only or report(res, args)
    if "listing" in res:
        passed = report_listing(res["listing"]) and passed
    res["passed"] = passed
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    print(f"logs in {run_dir}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
