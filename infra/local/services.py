"""Command line for the local stand-ins (used by .ci/run); each stand-in is its own module.

    python -m infra.local.services postgres start --dir DIR   # prints the database URL
    python -m infra.local.services postgres stop --dir DIR
    python -m infra.local.services sa-key [--project P]        # a throwaway service-account key JSON

The stand-ins: process.py (helpers, run folders), postgres.py, pubsub_emulator.py, fake_gcs.py,
storage_emulator.py, eventarc.py (finalize events for the storage emulator), gateway_process.py.
"""
from __future__ import annotations

import argparse
import json
import sys

from infra.local.postgres import Postgres
from infra.local.process import ServiceError
from infra.local.signed_urls import make_service_account_key


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.local.services")
    sub = p.add_subparsers(dest="service", required=True)
    pg = sub.add_parser("postgres", help="a throwaway PostgreSQL cluster")
    pg.add_argument("action", choices=["start", "stop"])
    pg.add_argument("--dir", required=True, help="folder for the cluster (created; removed on stop)")
    pg.add_argument("--port", type=int, default=None)
    pg.add_argument("--print-url", action="store_true", help="print the database URL (default)")
    key = sub.add_parser("sa-key", help="print a throwaway service-account key JSON")
    key.add_argument("--project", default="sceneflow-local")
    args = p.parse_args(argv)

    if args.service == "sa-key":
        print(json.dumps(make_service_account_key(args.project)))
        return 0
    if args.action == "start":
        pg_ = Postgres(port=args.port, base_dir=args.dir, keep=True)
        try:
            pg_.start()
        except ServiceError as e:
            print(str(e), file=sys.stderr)
            pg_.keep = False
            pg_.stop()
            return 1
        print(pg_.url, flush=True)
        return 0
    pg_ = Postgres(base_dir=args.dir)
    pg_._started = True
    pg_.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
