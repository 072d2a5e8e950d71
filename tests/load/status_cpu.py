"""In-process CPU per export_status (RELIABILITY.md, "Where the time of a status read goes"):
ExportService.status and the functions-framework request path, against the bare handler; and the
share of it that sending the body through its published model costs (shared.operations
Operation.wire, on this queued job's body and on a succeeded body with output).

    .venv/bin/python tests/load/status_cpu.py POSTGRES_URL [N] [--profile]

POSTGRES_URL: a server to create a fresh database on (e.g. the one `make test` starts, or
postgresql+pg8000://USER@127.0.0.1:PORT/postgres), or a sqlite:/// URL. Prints, per call: this
process's CPU (ms), the CPU of every postgres process on the machine (ms) and wall time (ms).
"""
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, ROOT)
from functions_framework import create_app  # noqa: E402
from shared import bootstrap  # noqa: E402
from shared.adapters.local_storage import LocalStorage  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.operations import BY_NAME  # noqa: E402
from shared.states import JobStatus as S  # noqa: E402
from infra.local.stack import fresh_postgres_database  # noqa: E402
from tests.fakes import RecordingLauncher, RecordingPublisher  # noqa: E402

pg = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 2000
prof = "--profile" in sys.argv
url = pg if pg.startswith("sqlite") else fresh_postgres_database(pg, prefix="sfbench")
tmp = Path(tempfile.mkdtemp())
s = Settings(database_url=url, storage_backend="local", publisher_backend="local", launcher_backend="local")
svc = bootstrap.build_service(s, storage=LocalStorage(tmp / "gcs"), publisher=RecordingPublisher(),
                              launcher=RecordingLauncher(), migrate_db=True)
bootstrap.use_service(svc)
repo = svc.repo
# a queued job (like the load test)
job, _ = repo.create(spec={"scenes": [{"id": "a"}] * 3}, spec_sha256="0" * 64, status=S.QUEUED,
                     uploads_expected=[], idempotency_key=None)
jid = job.id
client = create_app(target="export_status", source=ROOT + "/functions/main.py").test_client()
bare = create_app(target="bare", source=ROOT + "/tests/load/main.py").test_client()
path = f"/?jobId={jid}"
assert client.get(path).status_code == 200, client.get(path).json

TICK = os.sysconf("SC_CLK_TCK")

def pg_cpu():
    """CPU seconds of every postgres process on this machine (the benchmark's cluster only runs)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if name.startswith("postgres"):
            f = stat.rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
    return total / TICK



def per_call(fn, n=N):
    for _ in range(50):
        fn()
    p0, c0, w0 = pg_cpu(), time.process_time(), time.perf_counter()
    for _ in range(n):
        fn()
    return (1000 * (time.process_time() - c0) / n, 1000 * (time.perf_counter() - w0) / n,
            1000 * (pg_cpu() - p0) / n)


def status_call():
    svc.status(jid)


def http_call():
    r = client.get(path)
    assert r.status_code == 200


def bare_call():
    bare.get("/")


STATUS_OP = BY_NAME["export_status"]
queued_body = svc.status(jid)
succeeded_body = {**queued_body, "status": "succeeded", "progress": 1.0, "history": [
    {"status": st, "at": queued_body["createdAt"]} for st in ("queued", "dispatched", "running", "succeeded")],
    "output": {"uri": "gs://b/exports/x/v.mp4", "filename": "v.mp4", "url": "https://s/" + "a" * 600,
               "durationS": 30.0, "sizeBytes": 10 ** 7, "width": 1920, "height": 1080, "posterUrl": "https://s/p",
               "captions": {"srt": "https://s/s", "vtt": "https://s/v"},
               "scenes": [{"startS": 5.0 * i, "durationS": 5.0} for i in range(6)],
               "loudness": {"integratedLufs": -16.0, "truePeakDb": -1.5, "lra": 4.0}, "warnings": []}}

for name, fn in (("service.status", status_call), ("http export_status", http_call), ("http bare", bare_call),
                 ("wire queued body", lambda: STATUS_OP.wire(200, queued_body)),
                 ("wire succeeded body", lambda: STATUS_OP.wire(200, succeeded_body))):
    cpu, wall, pg = per_call(fn)
    print(f"[{ROOT}] {name:<22} cpu {cpu:.3f} ms/call  postgres cpu {pg:.3f} ms/call  wall {wall:.3f} ms/call  (n={N})")
if prof:
    for name, fn in (("service.status", status_call), ("http export_status", http_call)):
        p = cProfile.Profile()
        p.enable()
        for _ in range(N):
            fn()
        p.disable()
        print(f"\n===== {name}")
        pstats.Stats(p).sort_stats("tottime").print_stats(25)
