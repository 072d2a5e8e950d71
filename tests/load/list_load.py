"""The listing scenario of `make load` (issue 18): export_list through the real HTTP function on a
table of 100,000 jobs of the caller (plus 10,000 of other owners), in PostgreSQL.

Run by tests/load/load_test.py after its own phases (or alone: `--list-only`). Inserts the jobs with
tests/bulk_jobs.py (one INSERT ... SELECT generate_series, then ANALYZE), then times GET export_list:
- first page: pageSize 20, no filter;
- walk: every page of the owner's list at pageSize 100, one after another (a client paging through
  all of it), each following the previous nextPageToken;
- deep page: pageSize 20 from tokens taken all along the walk (a page anywhere in the list);
- status: pageSize 20 of status=running (one status: its own index);
- label, common: label=book:b7 (1 job in 100); label, rare: label=rare:yes (1 in 1,000).
Timed phases have 8 requests in flight (the walk: 1). For each: requests, p50 and p99 latency
(ms), wall seconds, and the CPU seconds the functions gateway process and the stack's PostgreSQL
(postmaster and its children) spent meanwhile.
"""
from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from shared.clock import utcnow
from shared.identity import DEFAULT_OWNER

TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited: its CPU is lost (backends stay for the pool's connections)
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def _children(parent: int) -> set[int]:
    out = {parent}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    out.add(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _postmaster(stack) -> int | None:
    pg = getattr(stack, "postgres", None)
    try:
        return int((pg.data_dir / "postmaster.pid").read_text().split()[0]) if pg else None
    except (OSError, ValueError, AssertionError):
        return None  # a --database-url server: its CPU is not ours to read


async def measure_listing(stack, run_phase, jobs: int, concurrency: int, samples: int) -> list[dict]:
    """Insert `jobs` jobs of DEFAULT_OWNER (the gateway's caller without a client token) and time the
    phases (module docstring). Returns one row per phase."""
    from shared.db import engine_for_url
    from tests.bulk_jobs import insert_jobs

    engine = engine_for_url(stack.env["DATABASE_URL"])
    t0 = time.perf_counter()
    with engine.begin() as c:
        insert_jobs(c, DEFAULT_OWNER, jobs, jobs // 10, utcnow() - timedelta(days=1))
        total = c.execute(text("SELECT count(*) FROM export_jobs WHERE owner = :o"), {"o": DEFAULT_OWNER}).scalar()
    engine.dispose()
    print(f"listing: inserted {jobs:,} + {jobs // 10:,} jobs in {time.perf_counter() - t0:.1f} s", flush=True)
    url = f"{stack.base}/export_list"
    gateway = stack.gateway.proc.pid
    postmaster = _postmaster(stack)
    rows = []

    async def timed(name: str, n: int, conc: int, request, on_ok=None) -> None:
        pids = _children(postmaster) if postmaster else set()
        gw0, pg0, w0 = _cpu_s({gateway}), _cpu_s(pids), time.perf_counter()
        phase = await run_phase(name, n, conc, request, on_ok=on_ok)
        wall = time.perf_counter() - w0
        pids |= _children(postmaster) if postmaster else set()
        row = phase.row() | {"wall_s": round(wall, 2), "gateway_cpu_s": round(_cpu_s({gateway}) - gw0, 2),
                             "postgres_cpu_s": round(_cpu_s(pids) - pg0, 2) if postmaster else None}
        if phase.errors:
            row["error_samples"] = phase.errors[:3]
        rows.append(row)

    await run_phase("warmup-list", 50, concurrency, lambda i: ("GET", url, {"params": {"pageSize": "20"}}))
    await timed("list: first page", samples, concurrency, lambda i: ("GET", url, {"params": {"pageSize": "20"}}))
    # the walk: one request after another, each with the token of the one before
    tokens: list[str] = []
    seen = 0

    def walk_req(i: int):
        params = {"pageSize": "100"} | ({"pageToken": tokens[-1]} if tokens else {})
        return ("GET", url, {"params": params})

    def walked(i: int, body: bytes) -> None:
        nonlocal seen
        page = json.loads(body)
        seen += len(page["exports"])
        if page.get("nextPageToken"):
            tokens.append(page["nextPageToken"])

    await timed("list: walk (100/page)", -(-total // 100), 1, walk_req, on_ok=walked)
    rows[-1]["jobs_seen"], rows[-1]["jobs_of_owner"] = seen, total
    if seen != total or len(tokens) != -(-total // 100) - 1:
        rows[-1]["error_samples"] = [f"the walk saw {seen} jobs of {total} ({len(tokens)} tokens)"]
    deep = tokens[:: max(1, len(tokens) // 200)]
    await timed("list: deep page", samples, concurrency,
                lambda i: ("GET", url, {"params": {"pageSize": "20", "pageToken": deep[i % len(deep)]}}))
    for name, params in (("list: status=running", {"status": "running"}),
                         ("list: label book:b7", {"label": "book:b7"}),
                         ("list: label rare:yes", {"label": "rare:yes"})):
        await timed(name, samples, concurrency, lambda i, p=params: ("GET", url, {"params": {"pageSize": "20", **p}}))
    return rows


def report_listing(rows: list[dict]) -> bool:
    """Print the phases; True when none had an error."""
    print(f"\n{'listing phase':<24}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'wall s':>8}{'gateway CPU s':>15}"
          f"{'postgres CPU s':>16}  codes")
    for r in rows:
        pg = "n/a" if r["postgres_cpu_s"] is None else r["postgres_cpu_s"]
        print(f"{r['phase']:<24}{r['requests']:>9}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['wall_s']:>8}"
              f"{r['gateway_cpu_s']:>15}{pg:>16}  {r['codes']}"
              + (f"  jobs seen {r['jobs_seen']:,} of {r['jobs_of_owner']:,}" if "jobs_seen" in r else ""))
    errors = [s for r in rows for s in r.get("error_samples", [])]
    if errors:
        print("listing error samples:", *errors, sep="\n  ")
    return not errors
