"""`sovstack audit query` and `sovstack audit verify`: a stack's audit bucket, read through the S3 API.

`query` lists only the time-partitioned prefixes of the window asked for (components/inference_records.py
holds the layout), downloads those objects to a temporary folder and filters their JSON lines with DuckDB,
which reads months of gzip records many times faster than Python does. `verify` checks on the live bucket
what the AuditSink promises: versioning, object lock, default retention COMPLIANCE for at least the
stack's days. Credentials: read-only keys in SOVSTACK_AUDIT_ACCESS_KEY_ID / _SECRET_ACCESS_KEY (else the
AWS_* ones), never printed. Exit codes as everywhere: 0 fine, 1 a bucket that breaks the promise, 2
unreadable input (stack, options, credentials, bucket).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sovstack.components.inference_records import (
    RECORDS_PREFIX,
    RecordObject,
    parse_record_key,
    window_prefixes,
)
from sovstack.components.residency import PolicyError
from sovstack.infra import defaults
from sovstack.infra.lookups import policy_of
from sovstack.infra.pipeline import LoadedStack, load_stack
from sovstack.infra.s3access import (
    AWS_VARIABLES,
    Credentials,
    S3AccessError,
    check_endpoint,
    describe_error,
    env_credentials,
    make_client,
    s3_errors,
    stderr_progress,
)
from sovstack.infra.stackfile import SpecError

AUDIT_VARIABLES = (
    "SOVSTACK_AUDIT_ACCESS_KEY_ID",
    "SOVSTACK_AUDIT_SECRET_ACCESS_KEY",
    "SOVSTACK_AUDIT_SESSION_TOKEN",
)
BUCKET_FIELD = "sovstack:customer.audit.bucket"
#: Hours listed beyond each end of the window: an object is filed under the hour of its first record
#: and holds up to `upload_timeout` (10 minutes) of later ones; a request is logged when it ends.
DEFAULT_SLACK_HOURS = 1
DOWNLOAD_WORKERS = 8
EXIT_OK, EXIT_BROKEN, EXIT_INVALID = 0, 1, 2


class AuditError(Exception):
    """A problem that stops the command; `lines` are printed as they are (no secret in any)."""

    def __init__(self, lines: Sequence[str], exit_code: int = EXIT_INVALID) -> None:
        self.lines = list(lines)
        self.exit_code = exit_code
        super().__init__("\n".join(self.lines))


# ------------------------------------------------------------------------------------ the stack's bucket
@dataclass(frozen=True)
class AuditTarget:
    """Where a stack keeps its audit records, and how long they must be locked."""

    file: str
    stack: str
    bucket: str
    endpoint: str
    region: str
    required_days: int
    policy_minimum: int
    declared_days: int | None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}"


def audit_target(loaded: LoadedStack, endpoint: str | None = None) -> AuditTarget:
    """The stack's bucket, endpoint (or `endpoint`, e.g. a port-forward) and required retention: the
    larger of the policy minimum and the spec's `audit.retentionDays`."""
    spec, file = loaded.spec, str(loaded.path)
    try:
        minimum = policy_of(spec).min_audit_retention_days
    except PolicyError as err:
        raise AuditError([f"{file}: sovstack:customer.residency: {err}"]) from None
    chosen = endpoint or defaults.audit_endpoint(spec)
    if chosen is None:
        raise AuditError([f"{file}: sovstack:customer.audit.endpoint: required (the catalog has none here)"])
    try:
        check_endpoint(chosen)
    except ValueError as err:
        where = "--endpoint" if endpoint else "sovstack:customer.audit.endpoint"
        raise AuditError([f"{file}: {where}: {err}"]) from None
    declared = spec.audit.retention_days
    return AuditTarget(
        file=file,
        stack=loaded.name,
        bucket=spec.audit.bucket,
        endpoint=chosen,
        region=defaults.audit_s3_region(spec),
        required_days=max(minimum, declared or 0),
        policy_minimum=minimum,
        declared_days=declared,
    )


def audit_credentials(environ: Any, file: str) -> Credentials:
    found = env_credentials(environ, [AUDIT_VARIABLES, AWS_VARIABLES])
    if found is None:
        raise AuditError(
            [
                f"{file}: credentials: set SOVSTACK_AUDIT_ACCESS_KEY_ID and SOVSTACK_AUDIT_SECRET_ACCESS_KEY "
                "(read-only keys for the audit bucket), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ]
        )
    return found


def _connect(stack: str, endpoint: str | None) -> tuple[AuditTarget, Any]:
    try:
        loaded = load_stack(stack)
    except SpecError as err:
        raise AuditError([p.line() for p in err.problems]) from None
    target = audit_target(loaded, endpoint)
    credentials = audit_credentials(os.environ, target.file)
    return target, make_client(target.endpoint, target.region, credentials)


# ------------------------------------------------------------------------------------------------ time
_RELATIVE = re.compile(r"^(?P<n>[0-9]+)(?P<unit>[mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, now: datetime) -> datetime:
    """An instant from `now`, `30m`, `12h` or `7d` (that long before now), an ISO date (midnight UTC) or
    an ISO date-time (UTC unless it carries an offset). ValueError says what is accepted."""
    value = text.strip()
    if value == "now":
        return now
    relative = _RELATIVE.match(value)
    if relative:
        return now - timedelta(**{_UNITS[relative["unit"]]: int(relative["n"])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use now, 30m, 12h, 7d, 2026-03-05 or 2026-03-05T10:00[:00][Z|+01:00]"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# ----------------------------------------------------------------------------------------------- query
@dataclass(frozen=True)
class RecordQuery:
    """Records with `since <= time < until` (UTC), optionally of one subject and one model, and whose
    prompt or output has one sha256 (a body the gateway hashed: was this exact request or answer served?)."""

    until: datetime
    since: datetime | None = None
    subject: str | None = None
    model: str | None = None
    slack_hours: int = DEFAULT_SLACK_HOURS
    content_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": _iso(self.since) if self.since else None,
            "until": _iso(self.until),
            "subject": self.subject,
            "model": self.model,
            "contentSha256": self.content_sha256,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    parsed: RecordObject


@dataclass
class Listing:
    prefixes: list[str]
    objects: list[ListedObject] = field(default_factory=list)
    outside_layout: int = 0


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def list_record_objects(client: Any, bucket: str, query: RecordQuery) -> Listing:
    """The record objects that may hold records of the window: only its prefixes are listed (with
    `slack_hours` either side), and keys outside the layout are counted, not read."""
    slack = timedelta(hours=query.slack_hours)
    latest = query.until + slack
    earliest = None if query.since is None else _floor_hour(query.since - slack)
    # Without a lower bound every hour up to `latest` may hold records: list the whole layout.
    prefixes = [RECORDS_PREFIX] if earliest is None else window_prefixes(earliest, latest)
    listing = Listing(prefixes)
    for prefix in prefixes:
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    parsed = parse_record_key(item["Key"])
                    if parsed is None:
                        listing.outside_layout += 1
                    elif parsed.hour <= latest and (earliest is None or parsed.hour >= earliest):
                        listing.objects.append(ListedObject(item["Key"], int(item["Size"]), parsed))
        except s3_errors() as err:
            raise S3AccessError(f"s3://{bucket}/{prefix}: cannot list: {describe_error(err)}") from None
    return listing


def download(client: Any, bucket: str, objects: Sequence[ListedObject], directory: Path) -> dict[str, str]:
    """Fetch `objects` into `directory` (in parallel); local file name -> key."""
    names = {}
    jobs = []
    for index, item in enumerate(objects):
        suffix = ".jsonl.gz" if item.key.endswith(".gz") else ".jsonl"
        local = directory / f"{index:07d}{suffix}"
        names[str(local)] = item.key
        jobs.append((item, local))
    total = sum(item.size for item in objects)

    def fetch(job: tuple[ListedObject, Path]) -> int:
        item, local = job
        try:
            client.download_file(bucket, item.key, str(local))
        except s3_errors() as err:
            raise S3AccessError(f"s3://{bucket}/{item.key}: cannot read: {describe_error(err)}") from None
        return item.size

    with stderr_progress(total, "downloading") as bar, ThreadPoolExecutor(DOWNLOAD_WORKERS) as pool:
        for size in pool.map(fetch, jobs):
            bar.update(size)
    return names


@dataclass
class QueryResult:
    records: list[dict[str, Any]]
    objects: int
    bytes: int
    unreadable: dict[str, int]
    outside_layout: int


def filter_files(files: Sequence[str], query: RecordQuery) -> tuple[list[str], dict[str, int]]:
    """(matching records as stored, unreadable line count per file): lines that are not a JSON object with
    a readable `time` are counted, never silently dropped."""
    if not files:
        return [], {}
    import duckdb

    # No extension may be fetched: json and icu are built into the wheel.
    connection = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    try:
        connection.execute("SET TimeZone = 'UTC'")
        conditions = ["t < ?"]
        params: list[Any] = [list(files), query.until]
        if query.since is not None:
            conditions.append("t >= ?")
            params.append(query.since)
        for name, value in (("subject", query.subject), ("model", query.model)):
            if value is not None:
                conditions.append(f"json_extract_string(json, '$.{name}') = ?")
                params.append(value)
        if query.content_sha256 is not None:
            conditions.append(
                "(json_extract_string(json, '$.prompt.sha256') = ? OR json_extract_string(json, '$.output.sha256') = ?)"
            )
            params += [query.content_sha256, query.content_sha256]
        sql = f"""
            SELECT filename, json, t IS NULL AS unreadable FROM (
                SELECT filename, json,
                    CASE WHEN json_type(json) = 'OBJECT'
                        THEN try_cast(json_extract_string(json, '$.time') AS TIMESTAMPTZ) END AS t
                FROM read_ndjson_objects(?, compression = 'auto', ignore_errors = true, filename = true)
            )
            WHERE t IS NULL OR ({" AND ".join(conditions)})
            ORDER BY t, json_extract_string(json, '$.request_id'), json
        """  # only fixed field names are formatted in; every value is a parameter
        rows = connection.execute(sql, params).fetchall()
    finally:
        connection.close()
    matches: list[str] = []
    unreadable: dict[str, int] = {}
    for filename, text, bad in rows:
        if bad:
            unreadable[filename] = unreadable.get(filename, 0) + 1
        else:
            matches.append(text)
    return matches, unreadable


def run_query(client: Any, bucket: str, query: RecordQuery) -> QueryResult:
    listing = list_record_objects(client, bucket, query)
    with tempfile.TemporaryDirectory(prefix="sovstack-audit-") as tmp:
        names = download(client, bucket, listing.objects, Path(tmp))
        texts, unreadable = filter_files(sorted(names), query)
    return QueryResult(
        records=[json.loads(text) for text in texts],
        objects=len(listing.objects),
        bytes=sum(o.size for o in listing.objects),
        unreadable={names[f]: n for f, n in sorted(unreadable.items())},
        outside_layout=listing.outside_layout,
    )


COLUMNS = (
    "time",
    "request_id",
    "subject",
    "client_id",
    "model",
    "status",
    "latency_ms",
    "input_tokens",
    "output_tokens",
)


def format_records(records: Sequence[dict[str, Any]]) -> str:
    """One line per record, tab-separated, with a header; `-` for a null or missing value."""
    lines = ["\t".join(c.upper() for c in COLUMNS)]
    lines += ["\t".join("-" if r.get(c) is None else str(r[c]) for c in COLUMNS) for r in records]
    return "\n".join(lines) + "\n"


def audit_query_cli(
    stack: str,
    *,
    since: str | None,
    until: str | None,
    subject: str | None,
    model: str | None,
    endpoint: str | None,
    slack_hours: int,
    as_json: bool,
    content_sha256: str | None = None,
    now: datetime | None = None,
) -> int:
    """`sovstack audit query`: print the matching records (stdout), a summary and warnings (stderr)."""
    import typer

    try:
        moment = now or datetime.now(UTC)
        try:
            end = parse_time(until, moment) if until else moment
            start = parse_time(since, moment) if since else None
        except ValueError as err:
            raise AuditError([f"--since/--until: {err}"]) from None
        if start is not None and start >= end:
            raise AuditError([f"--since: {_iso(start)} is not before --until {_iso(end)}"])
        if slack_hours < 0:
            raise AuditError([f"--slack: {slack_hours} is negative"])
        digest = content_sha256.lower().removeprefix("sha256:") if content_sha256 is not None else None
        if digest is not None and not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise AuditError([f"--content-sha256: {content_sha256!r} is not a sha256 (64 hex digits)"])
        target, client = _connect(stack, endpoint)
        query = RecordQuery(
            until=end,
            since=start,
            subject=subject,
            model=model,
            slack_hours=slack_hours,
            content_sha256=digest,
        )
        result = run_query(client, target.bucket, query)
    except AuditError as err:
        for line in err.lines:
            typer.echo(line, err=True)
        return err.exit_code
    except S3AccessError as err:
        typer.echo(f"{stack}: {BUCKET_FIELD}: {err}", err=True)
        return EXIT_INVALID

    if as_json:
        payload = {
            "stack": target.stack,
            "bucket": target.url,
            "endpoint": target.endpoint,
            "query": query.to_dict(),
            "objects": result.objects,
            "bytes": result.bytes,
            "records": result.records,
            "unreadable": result.unreadable,
            "outsideLayout": result.outside_layout,
        }
        typer.echo(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False))
    elif result.records:
        typer.echo(format_records(result.records), nl=False)
    for key, count in result.unreadable.items():
        typer.echo(
            f"{target.url}/{key}: {count} line(s) are not records (not JSON objects with a time)", err=True
        )
    if result.outside_layout:
        typer.echo(
            f"{target.url}: {result.outside_layout} object(s) outside the records/v1 layout left unread",
            err=True,
        )
    window = f"{query.to_dict()['since'] or 'the beginning'} to {query.to_dict()['until']}"
    typer.echo(
        f"{target.url}: {len(result.records)} record(s) from {window} in {result.objects} object(s), "
        f"{result.bytes} bytes",
        err=True,
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- verify
@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def verify_bucket(client: Any, bucket: str, required_days: int, *, required_from: str = "") -> list[Check]:
    """Versioning on; object lock on with a default retention in COMPLIANCE mode of at least
    `required_days` (a year counts as 365 days). S3AccessError when the bucket cannot be read."""
    from botocore.exceptions import ClientError

    checks = []
    try:
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    except s3_errors() as err:
        raise S3AccessError(f"s3://{bucket}: cannot read versioning: {describe_error(err)}") from None
    checks.append(
        Check("versioning", status == "Enabled", f"versioning is {status or 'not enabled'}"
              + ("" if status == "Enabled" else ", not Enabled: an overwrite would replace a record"))
    )  # fmt: skip
    try:
        config = client.get_object_lock_configuration(Bucket=bucket).get("ObjectLockConfiguration", {})
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ObjectLockConfigurationNotFoundError":
            raise S3AccessError(f"s3://{bucket}: cannot read object lock: {describe_error(err)}") from None
        config = {}
    except s3_errors() as err:
        raise S3AccessError(f"s3://{bucket}: cannot read object lock: {describe_error(err)}") from None
    enabled = config.get("ObjectLockEnabled") == "Enabled"
    checks.append(
        Check("object-lock", enabled, "object lock is enabled" if enabled
              else "object lock is not enabled: records can be deleted")
    )  # fmt: skip
    retention = config.get("Rule", {}).get("DefaultRetention") if enabled else None
    if not retention:
        if enabled:
            checks.append(Check("retention-mode", False, "no default retention: new records are not locked"))
        return checks
    mode = retention.get("Mode")
    checks.append(
        Check("retention-mode", mode == "COMPLIANCE", f"default retention mode is {mode}"
              + ("" if mode == "COMPLIANCE" else ", not COMPLIANCE: it can be bypassed or shortened"))
    )  # fmt: skip
    days = int(retention.get("Days") or 0) + 365 * int(retention.get("Years") or 0)
    long_enough = days >= required_days
    checks.append(
        Check("retention-days", long_enough, f"default retention is {days} days"
              + (f", at least {required_days}" if long_enough else f", below the required {required_days}")
              + (f" ({required_from})" if required_from else ""))
    )  # fmt: skip
    return checks


def audit_verify_cli(stack: str, *, endpoint: str | None, as_json: bool) -> int:
    """`sovstack audit verify`: exit 0 when the live bucket keeps the promise, 1 with the reasons if not."""
    import typer

    try:
        target, client = _connect(stack, endpoint)
        origin = f"policy minimum {target.policy_minimum}"
        if target.declared_days is not None:
            origin += f", audit.retentionDays {target.declared_days}"
        checks = verify_bucket(client, target.bucket, target.required_days, required_from=origin)
    except AuditError as err:
        for line in err.lines:
            typer.echo(line, err=True)
        return err.exit_code
    except S3AccessError as err:
        typer.echo(f"{stack}: {BUCKET_FIELD}: {err}", err=True)
        return EXIT_INVALID
    passed = all(c.passed for c in checks)
    if as_json:
        payload = {
            "stack": target.stack,
            "bucket": target.url,
            "endpoint": target.endpoint,
            "requiredRetentionDays": target.required_days,
            "checks": [c.to_dict() for c in checks],
            "passed": passed,
        }
        typer.echo(json.dumps(payload, indent=2, sort_keys=True))
        return EXIT_OK if passed else EXIT_BROKEN
    for check in checks:
        mark = "ok" if check.passed else "FAIL"
        typer.echo(
            f"{target.file}: {BUCKET_FIELD}: [{mark}] {check.name}: {check.detail}", err=not check.passed
        )
    if passed:
        typer.echo(
            f"{target.file}: {target.url} is write-once (COMPLIANCE, {target.required_days}+ days) and versioned"
        )
        return EXIT_OK
    failed = sum(not c.passed for c in checks)
    typer.echo(f"{target.file}: {target.url}: {failed} check(s) failed", err=True)
    return EXIT_BROKEN
