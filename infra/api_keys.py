"""Server keys of apps' backends: create, list, revoke (table api_keys of DATABASE_URL, or Cloud SQL
through INSTANCE_CONNECTION_NAME: the same settings as the functions, shared.config).

    python -m infra.api_keys create --name storyapp   # prints the key once: sfk_<key id>_<secret>
    python -m infra.api_keys list                      # key id, name, created, last used, revoked (no secret)
    python -m infra.api_keys revoke KEY_ID             # refused (401) from the next request on

Only the SHA-256 of the secret is stored, so a lost key cannot be shown again: revoke it and create
another (names are unique, revoked keys keep theirs). A key acts for the owner its request names in
X-SceneFlow-Owner, else for key:NAME (README, "Authenticate"). The schema must be
migrated (`python -m shared.db`, or EXPORT_AUTO_MIGRATE=1 locally). Exit status 0, 1 on a refusal
(a name taken or not an owner id, an unknown key id), 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import json
import sys

from shared.auth import new_server_key
from shared.clock import iso
from shared.config import ConfigError, get_settings
from shared.db import make_engine, migrate, session_factory
from shared.errors import Conflict, ExportError
from shared.identity import is_owner, key_owner
from shared.key_store import SqlApiKeyStore


def _store() -> SqlApiKeyStore:
    settings = get_settings()
    engine = make_engine(settings)
    if settings.auto_migrate:
        migrate(engine)
    return SqlApiKeyStore(session_factory(engine))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.api_keys", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="make a key and print it once")
    create.add_argument("--name", required=True, help="unique; the key acts for key:NAME without X-SceneFlow-Owner")
    create.add_argument("--json", action="store_true", help="print {keyId, name, key} as JSON")
    listing = sub.add_parser("list", help="every key, revoked ones included (never a secret)")
    listing.add_argument("--json", action="store_true")
    revoke = sub.add_parser("revoke", help="refuse a key from its next use on")
    revoke.add_argument("key_id")
    args = p.parse_args(argv)
    try:
        return _run(args, _store())
    except (ExportError, ConfigError) as exc:  # a database that cannot be reached, a bad setting
        print(f"{getattr(exc, 'message', exc)} (DATABASE_URL names the deployment's database; env.example)",
              file=sys.stderr)
        return 2


def _run(args, store) -> int:
    if args.action == "create":
        if not is_owner(key_owner(args.name)):
            print(f"--name must be 1-124 printable ASCII characters, no space or comma: {args.name!r}",
                  file=sys.stderr)
            return 1
        key = new_server_key()
        try:
            store.create(key.key_id, args.name, key.secret_sha256)
        except Conflict as exc:
            print(exc.message, file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps({"keyId": key.key_id, "name": args.name, "key": key.text}))
        else:
            print(key.text)
            print(f"key id {key.key_id} ({args.name}): shown once, only its SHA-256 is stored", file=sys.stderr)
        return 0
    if args.action == "list":
        rows = [{"keyId": r.key_id, "name": r.name, "createdAt": iso(r.created_at),
                 "lastUsedAt": iso(r.last_used_at), "revokedAt": iso(r.revoked_at)} for r in store.list()]
        if args.json:
            print(json.dumps(rows))
        else:
            for r in rows:
                state = f"revoked {r['revokedAt']}" if r["revokedAt"] else "active"
                print(f"{r['keyId']}  {r['name']:<24} created {r['createdAt']}  last used {r['lastUsedAt'] or '-'}  {state}")
        return 0
    record = store.revoke(args.key_id)
    if record is None:
        print(f"no server key {args.key_id!r}", file=sys.stderr)
        return 1
    print(f"revoked {record.key_id} ({record.name}) at {iso(record.revoked_at)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
