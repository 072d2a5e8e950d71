"""export_list: the caller's exports, newest first, filtered and in pages (DESIGN §4).

GET ?status=&label=&externalRef=&createdAfter=&createdBefore=&pageSize=&pageToken= ->
{exports: [ExportSummary], nextPageToken?}. Parameters (ListQuery):
- status: one or several states, repeated (`status=queued&status=running`) or comma-separated;
- label: `key:value`, repeatable, every one must match (keys and values: shared.api's label rules);
- externalRef: exactly the reference given at export_start;
- createdAfter (inclusive), createdBefore (exclusive): RFC 3339 date-times with an offset;
- pageSize: 1..MAX_PAGE_SIZE, default DEFAULT_PAGE_SIZE;
- pageToken: the previous page's nextPageToken, sent with the same filters (pageSize may change).
Errors: InvalidRequest (400) naming the parameter: unknown, given twice (single-valued ones), a bad
value, or a page token that is malformed or was issued for other filters.

The page token is keyset, not an offset: base64url (no padding) of the JSON {"v": 1, "t": created_at
of the page's last row (UTC, microseconds), "id": its job id, "f": FILTER digest}; the next page is
the rows after (t, id) in (created_at DESC, id DESC) order, so jobs created meanwhile never shift or
repeat a page. It is validated, not signed: the owner always comes from the caller, so a hand-made
token only picks a starting point inside the caller's own list, which createdBefore does too.

Pure (parsing, token, views) apart from Listing.list_exports, which reads through the repository port.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Mapping

from pydantic import BeforeValidator, Field, ValidationError

from shared.api import _Wire, details
from shared.labels import external_ref_problems, label_problems
from shared.clock import iso
from shared.errors import InvalidRequest
from shared.identity import DEFAULT_CALLER, Caller
from shared.ports import JobFilter, JobSummary
from shared.responses import ExportList, ExportSummary, JobError, JobState
from shared.states import JobStatus
from shared.status_view import sorted_labels

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_TOKEN_CHARS = 400
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DIGEST = re.compile(r"[0-9a-f]{16}")


def rfc3339(value: Any) -> Any:
    """An RFC 3339 date-time string with an offset, as an aware UTC datetime (fractions beyond
    microseconds dropped); anything else is left to pydantic's own error."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-02T03:04:05Z")
    head, frac, zone = re.fullmatch(r"([^.]{19})(\.\d+)?(.*)", value).groups()
    text = head.replace("t", "T").replace(" ", "T") + (frac[:7] if frac else "") + zone.upper().replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).astimezone(timezone.utc)
    except (ValueError, OverflowError):  # e.g. 9999-12-31T23:59:59-00:01 is past year 9999 in UTC
        raise ValueError("is not a valid date-time") from None


DateTime = Annotated[datetime, BeforeValidator(rfc3339)]


class ListQuery(_Wire):
    """export_list's query parameters (camelCase on the wire)."""

    status: list[JobState] = Field(default_factory=list, max_length=len(JobStatus))
    label: list[str] = Field(default_factory=list, max_length=16, description="key:value; all must match")
    external_ref: str | None = Field(None, min_length=1, max_length=200)
    created_after: DateTime | None = Field(None, description="inclusive, RFC 3339")
    created_before: DateTime | None = Field(None, description="exclusive, RFC 3339")
    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    page_token: str | None = Field(None, min_length=1, max_length=MAX_TOKEN_CHARS)


_REPEATABLE = frozenset({"status", "label"})


@dataclass(frozen=True)
class PageRequest:
    """A parsed export_list query: the filter, the keyset to start after, the page size, and the
    filter's digest (carried in the page token)."""

    where: JobFilter
    after: tuple[datetime, str] | None
    page_size: int
    digest: str


def _bad(problems: list[dict[str, str]]) -> InvalidRequest:
    names = ", ".join(dict.fromkeys(p["path"].split(".")[0].split("[")[0] for p in problems))
    return InvalidRequest(f"list query is invalid: {names}", details=problems)


def parse_list_query(args: Mapping[str, list[str]]) -> PageRequest:
    """The query parameters (name -> every value given, e.g. werkzeug's args.to_dict(flat=False)) as
    a PageRequest. Raises InvalidRequest naming each bad parameter."""
    fields = {f.alias or name for name, f in ListQuery.model_fields.items()}
    problems = [{"path": name[:60], "message": "unknown parameter"} for name in args if name not in fields]
    problems += [{"path": name, "message": f"given {len(values)} times; give it once"}
                 for name, values in args.items() if name in fields - _REPEATABLE and len(values) > 1]
    if problems:
        raise _bad(problems)
    data: dict[str, Any] = {name: values[0] for name, values in args.items() if name not in _REPEATABLE}
    if "status" in args:
        data["status"] = [part.strip() for value in args["status"] for part in value.split(",") if part.strip()]
    if "label" in args:
        data["label"] = list(args["label"])
    try:
        q = ListQuery.model_validate(data)
    except ValidationError as exc:
        raise _bad(details(exc)) from None
    labels: dict[str, str] = {}
    for text in q.label:
        key, sep, value = text.partition(":")
        if not sep:
            problems.append({"path": "label", "message": f"{text[:80]!r} is not key:value"})
        elif labels.get(key, value) != value:
            problems.append({"path": f"label.{key[:63]}", "message": "one key, two values: nothing can match"})
        else:
            problems += label_problems({key: value}, "label")
            labels[key] = value
    problems += external_ref_problems(q.external_ref)
    if q.created_after and q.created_before and q.created_after >= q.created_before:
        problems.append({"path": "createdBefore", "message": "must be later than createdAfter"})
    if problems:
        raise _bad(problems)
    where = JobFilter(statuses=tuple(sorted(set(q.status))), labels=tuple(sorted(labels.items())),
                      external_ref=q.external_ref, created_after=q.created_after, created_before=q.created_before)
    digest = filter_digest(where)
    return PageRequest(where, decode_token(q.page_token, digest) if q.page_token else None, q.page_size, digest)


def filter_digest(where: JobFilter) -> str:
    """16 hex digits naming the filter (a page token is valid only with the filter it came from)."""
    text = json.dumps([list(where.statuses), [list(p) for p in where.labels], where.external_ref,
                       _exact(where.created_after), _exact(where.created_before)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _exact(dt: datetime | None) -> str | None:
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds") if dt else None


def encode_token(last: JobSummary, digest: str) -> str:
    """The page token after row `last` for the filter of `digest`."""
    raw = json.dumps({"v": 1, "t": _exact(last.created_at), "id": last.id, "f": digest}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, digest: str) -> tuple[datetime, str]:
    """(created_at, id) of a page token. Raises InvalidRequest (path pageToken) when it is not one of
    ours or was issued for another filter than `digest`'s."""
    def bad(message: str) -> InvalidRequest:
        return InvalidRequest(f"pageToken {message}", details=[{"path": "pageToken", "message": message}])

    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not (isinstance(data, dict) and set(data) == {"v", "t", "id", "f"} and data["v"] == 1
                and isinstance(data["id"], str) and _UUID.fullmatch(data["id"])
                and isinstance(data["f"], str) and _DIGEST.fullmatch(data["f"])):
            raise ValueError
        at = rfc3339(data["t"].replace("+00:00", "Z") if isinstance(data["t"], str) else None)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise bad("is malformed: send the nextPageToken of the previous page unchanged") from None
    if data["f"] != digest:
        raise bad("was issued for other filters: send the same status, label, externalRef, createdAfter "
                  "and createdBefore as for the first page")
    return at, data["id"]


def summary(row: JobSummary) -> ExportSummary:
    """A row as the list shows it: progress to 4 decimals, labels in key order, error when set."""
    error = JobError.model_construct(code=row.error_code, message=row.error_message or "") if row.error_code else None
    return ExportSummary.model_construct(
        job_id=row.id, status=JobStatus(row.status).value, stage=row.stage, progress=round(float(row.progress), 4),
        labels=sorted_labels(row.labels), external_ref=row.external_ref, created_at=iso(row.created_at),
        updated_at=iso(row.updated_at), finished_at=iso(row.finished_at), error=error)


def page_body(rows: list[JobSummary], next_token: str | None) -> dict:
    """The JSON body of one page (error and nextPageToken left out when there is none)."""
    page = ExportList.model_construct(exports=[summary(r) for r in rows], next_page_token=next_token)
    body = page.model_dump(by_alias=True, mode="json")
    for item in body["exports"]:
        if item["error"] is None:
            del item["error"]
    if next_token is None:
        del body["nextPageToken"]
    return body


class Listing:
    """The export_list use case of ExportService (uses its `repo`)."""

    def list_exports(self, args: Mapping[str, list[str]], caller: Caller = DEFAULT_CALLER) -> dict:
        """One page of the caller's exports (module docstring). Raises InvalidRequest, TransientError."""
        page = parse_list_query(args)
        rows = self.repo.list_jobs(caller.owner, page.where, page.after, page.page_size + 1)
        more = len(rows) > page.page_size
        rows = rows[:page.page_size]
        return page_body(rows, encode_token(rows[-1], page.digest) if more else None)
