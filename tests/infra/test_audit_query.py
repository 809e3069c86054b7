"""Tests for `sovstack audit query` and `sovstack audit verify` (infra/audit_query.py) against a local
S3-compatible server with object lock (moto, on 127.0.0.1), through typer's CliRunner and once through a
real subprocess: records in the documented schema and layout are found by every filter and not outside
it, the server refuses to destroy a COMPLIANCE-locked version, and verify tells compliant buckets from
the others. No secret may appear in any output."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner, Result

from sovstack.components import inference_records as records
from sovstack.infra.audit_query import RecordQuery, filter_files, list_record_objects, parse_time
from sovstack.infra.cli import app
from tests import s3_server
from tests.components.test_inference_records import base_record
from tests.infra.conftest import StackWriter
from tests.s3_server import ACCESS_KEY, SECRET_KEY

AUDIT_ENV = {
    "SOVSTACK_AUDIT_ACCESS_KEY_ID": ACCESS_KEY,
    "SOVSTACK_AUDIT_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
}


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), env=AUDIT_ENV if env is None else env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    output = result.stdout + result.stderr
    assert SECRET_KEY not in output and ACCESS_KEY not in output
    assert "Traceback" not in output
    return result


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3_server.moto_s3() as url:
        yield url


def make_bucket(endpoint: str, *, lock: str | None = "COMPLIANCE", days: int = 365, years: int = 0) -> str:
    """A bucket as the AuditSink makes it (object lock, versioning, default retention), or without lock."""
    bucket = s3_server.unique_bucket("audit")
    client = s3_server.client(endpoint)
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=lock is not None)
    if lock is not None:
        retention = {"Mode": lock, **({"Years": years} if years else {"Days": days})}
        client.put_object_lock_configuration(
            Bucket=bucket,
            ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": retention}},
        )
    return bucket


def put_records(endpoint: str, bucket: str, hour: str, lines: list[Any], shipper: str = "gateway") -> str:
    """One gzip JSON-lines object filed under `hour` (YYYY-MM-DDTHH), as the Fluent Bit shipper writes it."""
    filed = datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    key = records.record_object_key(filed, shipper, uuid.uuid4().hex[:8])
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    s3_server.client(endpoint).put_object(Bucket=bucket, Key=key, Body=gzip.compress(text.encode()))
    return key


def rec(time: str, subject: str, model: str, request_id: str) -> dict[str, Any]:
    return base_record(time=time, subject=subject, model=model, request_id=request_id)


R_BEFORE = rec("2026-03-05T09:59:59.999Z", "alice", "mistral-small", "r-before")
R_LATE = rec("2026-03-05T10:05:00.000Z", "carol", "mistral-small", "r-late")  # filed under hour 09
R_START = rec("2026-03-05T10:00:00.000Z", "alice", "mistral-small", "r-start")
R_LLAMA = {
    **rec("2026-03-05T10:30:00.000Z", "bob", "llama-3-70b", "r-llama"),
    "output": {"sha256": "3" * 64, "bytes": 20},
}
R_END = rec("2026-03-05T11:59:59.999Z", "bob", "mistral-small", "r-end")
R_AFTER = rec("2026-03-05T12:00:00.000Z", "alice", "mistral-small", "r-after")
R_DAY_BEFORE = rec("2026-03-04T10:00:00.000Z", "alice", "mistral-small", "r-day-before")


@pytest.fixture(scope="module")
def filled(endpoint: str) -> str:
    """A compliant bucket with records around 2026-03-05 10:00-12:00, plus things that are not records."""
    bucket = make_bucket(endpoint)
    put_records(endpoint, bucket, "2026-03-04T10", [R_DAY_BEFORE])
    put_records(endpoint, bucket, "2026-03-05T09", [R_BEFORE, R_LATE])
    put_records(endpoint, bucket, "2026-03-05T10", [R_LLAMA, R_START], shipper="gateway-b")
    put_records(endpoint, bucket, "2026-03-05T11", [R_END])
    put_records(endpoint, bucket, "2026-03-05T12", [R_AFTER])
    client = s3_server.client(endpoint)
    client.put_object(Bucket=bucket, Key="acme/scw-fr-par/logs/2026/03/05/kube/100000-x.gz", Body=b"other")
    client.put_object(Bucket=bucket, Key="records/v1/2026/03/05/10/README.txt", Body=b"not a record")
    return bucket


@pytest.fixture
def stack_for(write_stack: StackWriter) -> Callable[[str], str]:
    """The industrial-eu example (retentionDays 365, policy minimum 180) with its audit bucket renamed."""

    def make(bucket: str) -> str:
        return str(write_stack("industrial-eu", lambda c: c["audit"].update(bucket=bucket)))

    return make


def query(stack: str, endpoint: str, *options: str) -> Result:
    return invoke("audit", "query", stack, "--endpoint", endpoint, *options)


def ids(result: Result) -> list[str]:
    return [r["request_id"] for r in json.loads(result.stdout)["records"]]


# --- query: the window and each filter --------------------------------------------------------------------


def test_query_finds_the_window_and_nothing_outside(
    endpoint: str, filled: str, stack_for: Callable[[str], str]
) -> None:
    stack = stack_for(filled)
    result = query(stack, endpoint, "--since", "2026-03-05T10:00Z", "--until", "2026-03-05T12:00Z", "--json")
    assert result.exit_code == 0, result.stderr
    assert ids(result) == ["r-start", "r-late", "r-llama", "r-end"]
    payload = json.loads(result.stdout)
    assert payload["records"][0] == R_START
    assert payload["query"] == {
        "since": "2026-03-05T10:00:00.000Z",
        "until": "2026-03-05T12:00:00.000Z",
        "subject": None,
        "model": None,
        "contentSha256": None,
    }
    assert (payload["bucket"], payload["objects"], payload["outsideLayout"]) == (f"s3://{filled}", 4, 1)


def test_query_since_alone_and_until_alone(
    endpoint: str, filled: str, stack_for: Callable[[str], str]
) -> None:
    stack = stack_for(filled)
    assert ids(query(stack, endpoint, "--since", "2026-03-05T11:00Z", "--until", "2027-01-01", "--json")) == [
        "r-end",
        "r-after",
    ]
    assert ids(query(stack, endpoint, "--until", "2026-03-05T10:00:00Z", "--json")) == [
        "r-day-before",
        "r-before",
    ]


def test_query_by_subject(endpoint: str, filled: str, stack_for: Callable[[str], str]) -> None:
    stack = stack_for(filled)
    window = ("--since", "2026-03-05T10:00Z", "--until", "2026-03-05T12:00Z")
    assert ids(query(stack, endpoint, *window, "--subject", "alice", "--json")) == ["r-start"]
    assert ids(query(stack, endpoint, *window, "--subject", "bob", "--json")) == ["r-llama", "r-end"]
    assert ids(query(stack, endpoint, *window, "--subject", "mallory", "--json")) == []


def test_query_by_model(endpoint: str, filled: str, stack_for: Callable[[str], str]) -> None:
    stack = stack_for(filled)
    window = ("--since", "2026-03-05T10:00Z", "--until", "2026-03-05T12:00Z")
    assert ids(query(stack, endpoint, *window, "--model", "llama-3-70b", "--json")) == ["r-llama"]
    assert ids(query(stack, endpoint, *window, "--model", "mistral-small", "--subject", "bob", "--json")) == [
        "r-end"
    ]
    assert ids(query(stack, endpoint, "--until", "2027-01-01", "--model", "gpt-4", "--json")) == []


def test_query_by_content_digest(endpoint: str, filled: str, stack_for: Callable[[str], str]) -> None:
    """Was this exact answer served, when and to whom? The answer's sha256, as the client computes it."""
    stack = stack_for(filled)
    window = ("--since", "2026-03-05T10:00Z", "--until", "2026-03-05T12:00Z")
    assert ids(query(stack, endpoint, *window, "--content-sha256", "3" * 64, "--json")) == ["r-llama"]
    # The prompt's digest matches too; `sha256:` and capitals are accepted as sha256sum users write them.
    assert ids(query(stack, endpoint, *window, "--content-sha256", "SHA256:" + "1" * 64, "--json")) == [
        "r-start",
        "r-late",
        "r-llama",
        "r-end",
    ]
    assert ids(query(stack, endpoint, *window, "--content-sha256", "4" * 64, "--json")) == []
    bad = query(stack, endpoint, "--content-sha256", "abc")
    assert bad.exit_code == 2
    assert "--content-sha256: 'abc' is not a sha256 (64 hex digits)" in bad.stderr


def test_without_slack_a_record_filed_the_hour_before_is_missed(
    endpoint: str, filled: str, stack_for: Callable[[str], str]
) -> None:
    """Why the default lists one hour more: R_LATE sits in the object of hour 09."""
    stack = stack_for(filled)
    window = ("--since", "2026-03-05T10:00Z", "--until", "2026-03-05T12:00Z")
    assert ids(query(stack, endpoint, *window, "--slack", "0", "--json")) == ["r-start", "r-llama", "r-end"]


def test_query_text_output_and_summary(endpoint: str, filled: str, stack_for: Callable[[str], str]) -> None:
    stack = stack_for(filled)
    result = query(stack, endpoint, "--since", "2026-03-05T10:15Z", "--until", "2026-03-05T11:00Z")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "TIME\tREQUEST_ID\tSUBJECT\tCLIENT_ID\tMODEL\tSTATUS\tLATENCY_MS\tINPUT_TOKENS\tOUTPUT_TOKENS",
        "2026-03-05T10:30:00.000Z\tr-llama\tbob\tacme-chat\tllama-3-70b\t200\t1834\t42\t318",
    ]
    lines = result.stderr.splitlines()
    assert lines[0] == f"s3://{filled}: 1 object(s) outside the records/v1 layout left unread"
    assert lines[1].startswith(
        f"s3://{filled}: 1 record(s) from 2026-03-05T10:15:00.000Z to 2026-03-05T11:00:00.000Z in 4 object(s), "
    )


def test_only_the_windows_prefixes_are_listed(endpoint: str, filled: str) -> None:
    seen: list[str] = []
    inner = s3_server.client(endpoint)

    class Recording:
        def get_paginator(self, name: str) -> Any:
            paginator = inner.get_paginator(name)

            class Paginator:
                def paginate(self, **kwargs: Any) -> Any:
                    seen.append(kwargs["Prefix"])
                    return paginator.paginate(**kwargs)

            return Paginator()

    since, until = datetime(2026, 3, 5, 10, 20, tzinfo=UTC), datetime(2026, 3, 5, 11, 40, tzinfo=UTC)
    listing = list_record_objects(Recording(), filled, RecordQuery(until=until, since=since))
    assert seen == [
        "records/v1/2026/03/05/09/",
        "records/v1/2026/03/05/10/",
        "records/v1/2026/03/05/11/",
        "records/v1/2026/03/05/12/",
    ]
    assert sorted(o.parsed.hour.hour for o in listing.objects) == [9, 10, 11, 12]
    seen.clear()
    list_record_objects(Recording(), filled, RecordQuery(until=until))
    assert seen == ["records/v1/"]


def test_lines_that_are_not_records_are_reported(endpoint: str, stack_for: Callable[[str], str]) -> None:
    bucket = make_bucket(endpoint)
    key = put_records(
        endpoint, bucket, "2026-03-05T10", [R_START, "{broken", "[1, 2]", {"no": "time"}, R_LLAMA]
    )
    result = query(stack_for(bucket), endpoint, "--since", "2026-03-05", "--json")
    assert result.exit_code == 0
    assert ids(result) == ["r-start", "r-llama"]
    assert json.loads(result.stdout)["unreadable"] == {key: 3}
    assert f"s3://{bucket}/{key}: 3 line(s) are not records (not JSON objects with a time)" in result.stderr


def test_an_empty_bucket_gives_no_record(endpoint: str, stack_for: Callable[[str], str]) -> None:
    bucket = make_bucket(endpoint)
    result = query(stack_for(bucket), endpoint, "--since", "1d")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "0 record(s) from " in result.stderr


# --- query: bad input -------------------------------------------------------------------------------------


def test_bad_times_are_refused(endpoint: str, filled: str, stack_for: Callable[[str], str]) -> None:
    stack = stack_for(filled)
    bad = query(stack, endpoint, "--since", "last tuesday")
    assert (bad.exit_code, bad.stderr) == (
        2,
        "--since/--until: 'last tuesday' is not a time: use now, 30m, 12h, 7d, 2026-03-05 or "
        "2026-03-05T10:00[:00][Z|+01:00]\n",
    )
    backwards = query(stack, endpoint, "--since", "2026-03-06", "--until", "2026-03-05")
    assert (backwards.exit_code, backwards.stderr) == (
        2,
        "--since: 2026-03-06T00:00:00.000Z is not before --until 2026-03-05T00:00:00.000Z\n",
    )


def test_credentials_come_from_the_environment_only(
    endpoint: str, filled: str, stack_for: Callable[[str], str]
) -> None:
    stack = stack_for(filled)
    none: dict[str, str | None] = dict.fromkeys(AUDIT_ENV)
    missing = invoke("audit", "query", stack, "--endpoint", endpoint, env=none)
    assert (missing.exit_code, missing.stderr) == (
        2,
        f"{stack}: credentials: set SOVSTACK_AUDIT_ACCESS_KEY_ID and SOVSTACK_AUDIT_SECRET_ACCESS_KEY "
        "(read-only keys for the audit bucket), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n",
    )
    aws = {**none, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    fallback = invoke(
        "audit",
        "query",
        stack,
        "--endpoint",
        endpoint,
        "--since",
        "2026-03-05T11:00Z",
        "--until",
        "2026-03-05T11:30Z",
        "--json",
        env=aws,
    )
    assert fallback.exit_code == 0, fallback.stderr
    assert [r["request_id"] for r in json.loads(fallback.stdout)["records"]] == []


def test_plain_http_is_only_for_loopback(filled: str, stack_for: Callable[[str], str]) -> None:
    stack = stack_for(filled)
    result = invoke("audit", "verify", stack, "--endpoint", "http://s3.fr-par.scw.cloud")
    assert (result.exit_code, result.stderr) == (
        2,
        f"{stack}: --endpoint: 'http://s3.fr-par.scw.cloud' is not an https:// URL "
        "(plain http only to 127.0.0.1, localhost or ::1)\n",
    )


def test_an_invalid_stack_is_reported_like_validate(tmp_path: Path, endpoint: str) -> None:
    result = invoke("audit", "verify", str(tmp_path / "missing.yaml"), "--endpoint", endpoint)
    assert (result.exit_code, result.stderr) == (
        2,
        f"{tmp_path / 'missing.yaml'}: no such stack file (give a stack name under stacks/ or a path)\n",
    )


def test_a_missing_bucket_is_one_clean_line(endpoint: str, stack_for: Callable[[str], str]) -> None:
    stack = stack_for("no-such-audit-bucket")
    result = query(stack, endpoint, "--since", "2026-03-05")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"{stack}: sovstack:customer.audit.bucket: s3://no-such-audit-bucket/records/v1/2026/03/04/23/: cannot list: "
        "NoSuchBucket (The specified bucket does not exist), HTTP 404"
    )


# --- the server enforces COMPLIANCE -----------------------------------------------------------------------


def test_a_locked_version_cannot_be_deleted_even_with_bypass(endpoint: str) -> None:
    bucket = make_bucket(endpoint)
    key = put_records(endpoint, bucket, "2026-03-05T10", [R_START])
    client = s3_server.client(endpoint)
    version = client.head_object(Bucket=bucket, Key=key)
    assert version["ObjectLockMode"] == "COMPLIANCE"
    for bypass in (False, True):
        with pytest.raises(ClientError) as refused:
            client.delete_object(
                Bucket=bucket, Key=key, VersionId=version["VersionId"], BypassGovernanceRetention=bypass
            )
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert client.get_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])["Body"].read()


def test_an_overwrite_adds_a_version_and_the_locked_one_survives(endpoint: str) -> None:
    """S3 has no in-place overwrite: a PUT to the same key makes a new version; the locked one stays,
    byte for byte, and still cannot be deleted."""
    bucket = make_bucket(endpoint)
    key = put_records(endpoint, bucket, "2026-03-05T10", [R_START])
    client = s3_server.client(endpoint)
    original = client.head_object(Bucket=bucket, Key=key)["VersionId"]
    before = client.get_object(Bucket=bucket, Key=key, VersionId=original)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=gzip.compress(b'{"forged": true}\n'))
    versions = client.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert len(versions) == 2
    assert client.get_object(Bucket=bucket, Key=key, VersionId=original)["Body"].read() == before
    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=bucket, Key=key, VersionId=original)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_governance_mode_can_be_bypassed(endpoint: str) -> None:
    """Why verify insists on COMPLIANCE: a GOVERNANCE lock yields to BypassGovernanceRetention."""
    bucket = make_bucket(endpoint, lock="GOVERNANCE")
    key = put_records(endpoint, bucket, "2026-03-05T10", [R_START])
    client = s3_server.client(endpoint)
    version = client.head_object(Bucket=bucket, Key=key)["VersionId"]
    client.delete_object(Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True)
    assert "Versions" not in client.list_object_versions(Bucket=bucket, Prefix=key)


# --- verify -----------------------------------------------------------------------------------------------


def verify(stack: str, endpoint: str, *options: str) -> Result:
    return invoke("audit", "verify", stack, "--endpoint", endpoint, *options)


def test_verify_passes_on_a_compliant_bucket(endpoint: str, stack_for: Callable[[str], str]) -> None:
    bucket = make_bucket(endpoint, days=365)
    stack = stack_for(bucket)
    result = verify(stack, endpoint)
    assert (result.exit_code, result.stderr) == (0, "")
    field = f"{stack}: sovstack:customer.audit.bucket"
    assert result.stdout.splitlines() == [
        f"{field}: [ok] versioning: versioning is Enabled",
        f"{field}: [ok] object-lock: object lock is enabled",
        f"{field}: [ok] retention-mode: default retention mode is COMPLIANCE",
        f"{field}: [ok] retention-days: default retention is 365 days, at least 365 "
        "(policy minimum 180, audit.retentionDays 365)",
        f"{stack}: s3://{bucket} is write-once (COMPLIANCE, 365+ days) and versioned",
    ]


def test_verify_counts_years(endpoint: str, stack_for: Callable[[str], str]) -> None:
    result = verify(stack_for(make_bucket(endpoint, years=1)), endpoint, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["checks"][3] == {
        "name": "retention-days",
        "passed": True,
        "detail": "default retention is 365 days, at least 365 (policy minimum 180, audit.retentionDays 365)",
    }


def test_verify_fails_without_object_lock(endpoint: str, stack_for: Callable[[str], str]) -> None:
    stack = stack_for(make_bucket(endpoint, lock=None))
    result = verify(stack, endpoint)
    assert result.exit_code == 1
    field = f"{stack}: sovstack:customer.audit.bucket"
    assert result.stderr.splitlines() == [
        f"{field}: [FAIL] versioning: versioning is not enabled, not Enabled: an overwrite would replace a record",
        f"{field}: [FAIL] object-lock: object lock is not enabled: records can be deleted",
        f"{stack}: s3://{stack_bucket(stack)}: 2 check(s) failed",
    ]
    assert result.stdout == ""


def stack_bucket(stack: str) -> str:
    import yaml

    return str(yaml.safe_load(Path(stack).read_text())["config"]["sovstack:customer"]["audit"]["bucket"])


def test_verify_fails_in_governance_mode(endpoint: str, stack_for: Callable[[str], str]) -> None:
    stack = stack_for(make_bucket(endpoint, lock="GOVERNANCE", days=400))
    result = verify(stack, endpoint)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{stack}: sovstack:customer.audit.bucket: [FAIL] retention-mode: default retention mode is GOVERNANCE, "
        "not COMPLIANCE: it can be bypassed or shortened",
        f"{stack}: s3://{stack_bucket(stack)}: 1 check(s) failed",
    ]


def test_verify_fails_with_a_short_retention(endpoint: str, stack_for: Callable[[str], str]) -> None:
    stack = stack_for(make_bucket(endpoint, days=200))
    result = verify(stack, endpoint, "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert (payload["passed"], payload["requiredRetentionDays"]) == (False, 365)
    assert [c for c in payload["checks"] if not c["passed"]] == [
        {
            "name": "retention-days",
            "passed": False,
            "detail": "default retention is 200 days, below the required 365 "
            "(policy minimum 180, audit.retentionDays 365)",
        }
    ]


def test_verify_fails_when_the_lock_has_no_default_retention(
    endpoint: str, stack_for: Callable[[str], str]
) -> None:
    bucket = s3_server.unique_bucket("audit")
    s3_server.client(endpoint).create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    stack = stack_for(bucket)
    result = verify(stack, endpoint)
    assert result.exit_code == 1
    assert (
        f"{stack}: sovstack:customer.audit.bucket: [FAIL] retention-mode: no default retention: new records are "
        "not locked"
    ) in result.stderr.splitlines()


# --- pieces -----------------------------------------------------------------------------------------------


NOW = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("90m", datetime(2026, 3, 5, 10, 30, tzinfo=UTC)),
        ("12h", datetime(2026, 3, 5, 0, 0, tzinfo=UTC)),
        ("7d", datetime(2026, 2, 26, 12, 0, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T08:15", datetime(2026, 3, 1, 8, 15, tzinfo=UTC)),
        ("2026-03-01T08:15:00Z", datetime(2026, 3, 1, 8, 15, tzinfo=UTC)),
        ("2026-03-01T09:15:00+01:00", datetime(2026, 3, 1, 8, 15, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


def test_filter_files_reads_local_json_lines(tmp_path: Path) -> None:
    plain = tmp_path / "a.jsonl"
    plain.write_text(
        json.dumps(R_START)
        + "\n\nnot json\n"
        + json.dumps({**R_LLAMA, "time": "2026-03-05T12:30:00+02:00"})
        + "\n"
    )
    query = RecordQuery(until=datetime(2026, 3, 6, tzinfo=UTC), since=datetime(2026, 3, 5, tzinfo=UTC))
    found, unreadable = filter_files([str(plain)], query)
    assert [json.loads(t)["request_id"] for t in found] == ["r-start", "r-llama"]
    assert unreadable == {str(plain): 1}
    assert filter_files([], query) == ([], {})


# --- a real process ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_console_script_exit_codes(endpoint: str, stack_for: Callable[[str], str]) -> None:
    sovstack = Path(sys.executable).parent / "sovstack"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOVSTACK_AUDIT_"))}
    env.update({"SOVSTACK_AUDIT_ACCESS_KEY_ID": ACCESS_KEY, "SOVSTACK_AUDIT_SECRET_ACCESS_KEY": SECRET_KEY})
    for bucket, code in ((make_bucket(endpoint), 0), (make_bucket(endpoint, lock="GOVERNANCE"), 1)):
        done = subprocess.run(
            [str(sovstack), "audit", "verify", stack_for(bucket), "--endpoint", endpoint],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == code, done.stderr
        assert SECRET_KEY not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
