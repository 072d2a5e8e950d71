"""Many export jobs in PostgreSQL in one statement (INSERT ... SELECT generate_series), for the
listing tests and `make load`: `n` jobs of `owner` and `others` jobs of ten other owners
("other-0".."other-9"), three per created_at going back one second at a time from t0 (so the id
breaks ties), statuses in turn (queued, running, succeeded, failed, canceled), labels
{book: b0..b99, lang: en|fr} plus {rare: yes} on one job in 1,000, externalRef "ref-<i>"."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, text

BULK = text("""
WITH p AS (SELECT CAST(:salt AS text) AS salt, CAST(:n AS int) AS n, CAST(:others AS int) AS others,
                  CAST(:owner AS text) AS owner, CAST(:t0 AS timestamptz) AS t0)
INSERT INTO export_jobs (id, owner, status, progress, spec, spec_sha256, uploads_expected, attempts,
                         created_at, updated_at, labels, external_ref)
SELECT md5(p.salt || i)::uuid::text,
       CASE WHEN i <= p.n THEN p.owner ELSE 'other-' || mod(i, 10) END,
       (ARRAY['queued','running','succeeded','failed','canceled'])[1 + mod(i, 5)], 0, '{}'::json, repeat('0', 64),
       '[]'::json, 0, p.t0 - (i / 3) * interval '1 second', p.t0,
       jsonb_build_object('book', 'b' || mod(i, 100), 'lang', CASE WHEN mod(i, 2) = 0 THEN 'en' ELSE 'fr' END)
         || CASE WHEN mod(i, 1000) = 0 THEN '{"rare": "yes"}'::jsonb ELSE '{}'::jsonb END,
       'ref-' || i
FROM p, generate_series(1, p.n + p.others) AS i
""")


def insert_jobs(conn: Connection, owner: str, n: int, others: int, t0: datetime) -> None:
    """Insert the jobs (module docstring) and ANALYZE, so the planner knows the table's new size."""
    conn.execute(BULK, {"salt": uuid.uuid4().hex, "n": n, "others": others, "owner": owner, "t0": t0})
    conn.execute(text("ANALYZE export_jobs"))
