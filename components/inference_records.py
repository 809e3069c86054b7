"""Inference records: one JSON object per request to a served model, kept in the audit bucket.

The schema is `data/inference-record.schema.json` (JSON Schema 2020-12, versioned by its `$id`). This
module loads and checks records against it, computes the content digest of a capture policy, names the
bucket layout records are written under, and says as data how the gateway's JSON access log becomes a
record (which access-log key feeds which field, and which fields the Fluent Bit shipper adds).
Pure: no Pulumi, no network.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "inference-record.schema.json"
SCHEMA_ID = "https://sovstack.eu/schemas/inference-record/v1.json"
RECORD_VERSION = "v1"

Capture = Literal["none", "digest", "full"]
CAPTURE_POLICIES: tuple[Capture, ...] = ("none", "digest", "full")
DEFAULT_CAPTURE: Capture = "digest"

#: Where the full weights digest lives on a model's Deployment (and pod template). An annotation, not a
#: label: `sha256:` plus 64 hex digits is longer than a label value may be (63) and has a colon.
WEIGHTS_DIGEST_ANNOTATION = "sovstack.io/weights-sha256"

#: Request headers a model's HTTPRoute sets (RequestHeaderModifier `set`, so a client's own value is
#: replaced) for the access log to read: the served model's name and its pinned weights digest.
MODEL_HEADER = "x-sovstack-model"
WEIGHTS_HEADER = "x-sovstack-weights-sha256"


# ----------------------------------------------------------------------------------------- the schema
@cache
def load_schema() -> dict[str, Any]:
    """The inference-record JSON Schema, read once."""
    with SCHEMA_FILE.open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator, FormatChecker

    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    # Only the formats the standard library checks: `date-time` would depend on whether an optional
    # package is installed, so `time` is checked by `_semantic_errors` instead, the same everywhere.
    return Draft202012Validator(schema, format_checker=FormatChecker(formats=("ipv4", "ipv6")))


def required_fields() -> tuple[str, ...]:
    return tuple(load_schema()["required"])


def record_fields() -> tuple[str, ...]:
    return tuple(load_schema()["properties"])


@dataclass(frozen=True, order=True)
class RecordError:
    """One problem with one record: `path` is dotted (`prompt.sha256`), empty for the record itself."""

    path: str
    message: str
    line: int | None = None

    def text(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.path or '(record)'}: {self.message}"


class RecordsInvalid(ValueError):
    """Records that break the schema; `errors` lists every problem."""

    def __init__(self, errors: list[RecordError]) -> None:
        self.errors = errors
        super().__init__("; ".join(e.text() for e in errors))


_REQUIRED = re.compile(r"^'(?P<name>.+)' is a required property$")


def _dotted(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts)


def record_errors(record: Any) -> list[RecordError]:
    """Every way `record` breaks the schema, sorted by path, with messages a person can act on."""
    errors = []
    for error in _validator().iter_errors(record):
        path = list(error.absolute_path)
        message = error.message
        required = _REQUIRED.match(message) if error.validator == "required" else None
        if required:
            path.append(required.group("name"))
            message = "required"
        elif error.validator == "not" and error.validator_value == {}:
            # `{"not": {}}` marks a field forbidden in this context (a `false` schema would do, but
            # jsonschema reports those without the field's path).
            message = "not allowed here"
        errors.append(RecordError(_dotted(path), message))
    if not errors:
        errors += _semantic_errors(record)
    return sorted(set(errors))


def _semantic_errors(record: Mapping[str, Any]) -> list[RecordError]:
    """What JSON Schema cannot say: a real instant, and a text that matches its digest."""
    errors = []
    try:
        datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        errors.append(RecordError("time", f"{record['time']!r} is not a real UTC time"))
    for field in ("prompt", "output"):
        content = record.get(field)
        if isinstance(content, dict) and "text" in content:
            data = content["text"].encode("utf-8")
            if hashlib.sha256(data).hexdigest() != content["sha256"]:
                errors.append(RecordError(f"{field}.sha256", f"is not the sha256 of {field}.text"))
            if "bytes" in content and content["bytes"] != len(data):
                errors.append(RecordError(f"{field}.bytes", f"is not the length of {field}.text"))
    return errors


def validate_record(record: Any) -> None:
    """Raise RecordsInvalid when `record` breaks the schema."""
    errors = record_errors(record)
    if errors:
        raise RecordsInvalid(errors)


def iter_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | None, list[RecordError]]]:
    """(line number, record or None, its problems) for each non-empty JSON line, problems numbered."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            yield number, None, [RecordError("", f"not JSON: {err.msg}", number)]
            continue
        problems = [RecordError(e.path, e.message, number) for e in record_errors(record)]
        yield number, (record if isinstance(record, dict) else None), problems


def load_records(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Parse and validate JSON lines; raise RecordsInvalid naming every bad line and field."""
    records, errors = [], []
    for _, record, problems in iter_records(lines):
        errors += problems
        if record is not None and not problems:
            records.append(record)
    if errors:
        raise RecordsInvalid(errors)
    return records


# ------------------------------------------------------------------------------------ content capture
#: The Envoy Lua filter that reads request and response bodies as they stream through the gateway and
#: writes the content digests (and, under `full`, the text) and the token counts into dynamic metadata
#: (namespace CONTENT_NAMESPACE), where the access log reads them. Attached to every sovstack Gateway by an
#: EnvoyExtensionPolicy (components/builders/platform.py); tested under LuaJIT and Lua 5.1.
CONTENT_CAPTURE_SCRIPT = Path(__file__).resolve().parent / "lua" / "content_capture.lua"
CONTENT_NAMESPACE = "sovstack.content"
#: Under `full`, a body's text is kept up to this many bytes (the script's FULL_TEXT_MAX); a longer body,
#: or one that is not UTF-8, is recorded as a digest and the record says `capture: digest`.
FULL_TEXT_MAX_BYTES = 1048576


@cache
def content_capture_script() -> str:
    """The content-capture Lua filter's source, as the EnvoyExtensionPolicy carries it inline."""
    return CONTENT_CAPTURE_SCRIPT.read_text(encoding="utf-8")


def _body_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def content_field(body: bytes | str | None, policy: Capture) -> dict[str, Any] | None:
    """The `prompt` or `output` value under `policy`, as the content-capture filter writes it: the sha256
    and length of the body's bytes exactly as they crossed the gateway (a request body as received, a
    response body as sent, a stream's bytes in order), and under `full` the body as text. None for no
    body. Raises ValueError for `none`, under which the field is left out altogether."""
    if policy not in CAPTURE_POLICIES:
        raise ValueError(f"capture: {policy!r} is not one of {', '.join(CAPTURE_POLICIES)}")
    if policy == "none":
        raise ValueError("capture: 'none' records carry no prompt or output field")
    if body is None or len(body) == 0:
        return None
    data = _body_bytes(body)
    field: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    if policy == "full":
        field["text"] = data.decode("utf-8")
    return field


def _text_kept(body: bytes | str | None) -> bool:
    if body is None:
        return True
    data = _body_bytes(body)
    if len(data) > FULL_TEXT_MAX_BYTES:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def capture_fields(policy: Capture, prompt: bytes | str | None, output: bytes | str | None) -> dict[str, Any]:
    """`capture`, `prompt` and `output` of a record under `policy` (`none` leaves both out). Under `full`,
    a body over FULL_TEXT_MAX_BYTES or not UTF-8 makes the record a `digest` one: text for both or neither."""
    if policy not in CAPTURE_POLICIES:
        raise ValueError(f"capture: {policy!r} is not one of {', '.join(CAPTURE_POLICIES)}")
    if policy == "none":
        return {"capture": "none"}
    if policy == "full" and not (_text_kept(prompt) and _text_kept(output)):
        policy = "digest"
    return {
        "capture": policy,
        "prompt": content_field(prompt, policy),
        "output": content_field(output, policy),
    }


#: What the content-capture filter counts in a response body: the last value of each key wins (a stream
#: with `stream_options.include_usage` carries the totals in its last chunk).
USAGE_KEYS = {"input_tokens": "prompt_tokens", "output_tokens": "completion_tokens"}


def usage_tokens(response_body: bytes | str) -> dict[str, int | None]:
    """The token counts the content-capture filter reads from a response body: the last
    `"prompt_tokens": N` and `"completion_tokens": N` in it (JSON, or a stream's server-sent events)."""
    text = _body_bytes(response_body).decode("utf-8", errors="replace")
    counts: dict[str, int | None] = {}
    for field, key in USAGE_KEYS.items():
        found = re.findall(rf'"{key}"\s*:\s*([0-9]+)', text)
        counts[field] = int(found[-1]) if found else None
    return counts


# --------------------------------------------------------------------------- from access log to record
Producer = Literal["envoy-gateway", "fluent-bit", "content-capture"]


@dataclass(frozen=True)
class AccessLogField:
    """One key of the gateway's JSON access log, the Envoy command operator that fills it, and the
    record field it becomes."""

    key: str
    operator: str
    field: str
    producer: Producer


#: The gateway's JSON access log (EnvoyProxy `spec.telemetry.accessLog.settings[].format.json`), in
#: record order. The JWT claims arrive as request headers that Envoy Gateway's SecurityPolicy sets with
#: `claimToHeaders`; the gateway strips the same headers from client requests first (ClientTrafficPolicy
#: `headers.earlyRequestHeaders.remove`, see docs/records.md). The model and its weights digest are the
#: headers the model's HTTPRoute sets. The content digests, the policy applied and the token counts are the
#: dynamic metadata the content-capture Lua filter writes (CONTENT_NAMESPACE); Envoy writes null for what
#: it did not set (a request no route matched never reaches the filter).
ACCESS_LOG_FIELDS: tuple[AccessLogField, ...] = (
    AccessLogField("start_time", "%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%", "time", "envoy-gateway"),
    AccessLogField("x-request-id", "%REQ(X-REQUEST-ID)%", "request_id", "envoy-gateway"),
    AccessLogField("jwt.iss", "%REQ(X-SOVSTACK-JWT-ISS)%", "issuer", "envoy-gateway"),
    AccessLogField("jwt.sub", "%REQ(X-SOVSTACK-JWT-SUB)%", "subject", "envoy-gateway"),
    AccessLogField("jwt.azp", "%REQ(X-SOVSTACK-JWT-AZP)%", "client_id", "envoy-gateway"),
    AccessLogField(
        "source_ip", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "source_address", "envoy-gateway"
    ),
    AccessLogField("sovstack.model", "%REQ(X-SOVSTACK-MODEL)%", "model", "envoy-gateway"),
    AccessLogField(
        "sovstack.weights_sha256", "%REQ(X-SOVSTACK-WEIGHTS-SHA256)%", "weights_digest", "envoy-gateway"
    ),
    AccessLogField("route_name", "%ROUTE_NAME%", "route", "envoy-gateway"),
    AccessLogField("response_code", "%RESPONSE_CODE%", "status", "envoy-gateway"),
    AccessLogField("duration", "%DURATION%", "latency_ms", "envoy-gateway"),
    AccessLogField(
        "sovstack.input_tokens",
        f"%DYNAMIC_METADATA({CONTENT_NAMESPACE}:input_tokens)%",
        "input_tokens",
        "content-capture",
    ),
    AccessLogField(
        "sovstack.output_tokens",
        f"%DYNAMIC_METADATA({CONTENT_NAMESPACE}:output_tokens)%",
        "output_tokens",
        "content-capture",
    ),
    AccessLogField("upstream_host", "%UPSTREAM_HOST%", "upstream_host", "envoy-gateway"),
    AccessLogField(
        "sovstack.capture", f"%DYNAMIC_METADATA({CONTENT_NAMESPACE}:capture)%", "capture", "content-capture"
    ),
    AccessLogField(
        "sovstack.prompt", f"%DYNAMIC_METADATA({CONTENT_NAMESPACE}:prompt)%", "prompt", "content-capture"
    ),
    AccessLogField(
        "sovstack.output", f"%DYNAMIC_METADATA({CONTENT_NAMESPACE}:output)%", "output", "content-capture"
    ),
)

#: The request headers Envoy Gateway's JWT authentication writes (SecurityPolicy
#: `jwt.providers[].claimToHeaders`), claim -> header.
CLAIM_HEADERS: dict[str, str] = {
    "iss": "x-sovstack-jwt-iss",
    "sub": "x-sovstack-jwt-sub",
    "azp": "x-sovstack-jwt-azp",
}

#: Request headers the gateway removes from every client request before anything else reads it: a client
#: must not be able to write its own subject, model or weights digest into the record.
STRIPPED_REQUEST_HEADERS: tuple[str, ...] = (*CLAIM_HEADERS.values(), MODEL_HEADER, WEIGHTS_HEADER)

#: Record fields the access log does not carry, and who adds them.
SHIPPER_FIELDS: dict[str, str] = {
    "record_version": f"Fluent Bit modify filter `add`: the constant {RECORD_VERSION!r}",
    "customer": "Fluent Bit modify filter `add`: the AuditSink's customer",
    "region": "Fluent Bit modify filter `add`: the AuditSink's region",
}

#: Fluent Bit `modify` condition: a record whose `capture` is not a policy that keeps content (`none`, or
#: null where the content-capture filter never ran) says `capture: none` and loses `prompt` and `output`.
CAPTURE_KEEPS_CONTENT = "^(digest|full)$"

_INTEGER_FIELDS = frozenset({"status", "latency_ms", "input_tokens", "output_tokens"})


def access_log_mapping() -> dict[str, str]:
    """Access-log key -> record field: what the shipper renames (Fluent Bit `modify` filter `rename`)."""
    return {f.key: f.field for f in ACCESS_LOG_FIELDS}


def envoy_access_log_format() -> dict[str, str]:
    """Access-log key -> Envoy command operator: the `json` of the gateway's access-log format."""
    return {f.key: f.operator for f in ACCESS_LOG_FIELDS}


def _absent(value: Any) -> bool:
    # Envoy writes "-" (text) or null (JSON) for a value it does not have; a header may arrive empty.
    return value is None or value in ("-", "")


def _integral(value: Any) -> bool:
    """A count Envoy wrote as text ("42") or as a JSON float (42.0): dynamic metadata keeps numbers so."""
    if isinstance(value, str):
        return value.isdigit()
    return isinstance(value, float) and value.is_integer()


def record_from_access_log(
    entry: Mapping[str, Any],
    *,
    customer: str,
    region: str,
) -> dict[str, Any]:
    """The record one access-log entry becomes: the reference for what the Fluent Bit shipper does.

    Keys are renamed by `access_log_mapping()`, absent values become null, numbers written as strings
    become integers, and the shipper's fields are added. A `capture` other than digest or full (none, or
    null where the content-capture filter did not run) becomes `none`, without `prompt` and `output`.
    """
    record: dict[str, Any] = {"record_version": RECORD_VERSION}
    for item in ACCESS_LOG_FIELDS:
        raw: Any = entry.get(item.key)
        value = (
            None if _absent(raw) else int(raw) if item.field in _INTEGER_FIELDS and _integral(raw) else raw
        )
        if item.field == "upstream_host" and value is None:
            continue  # optional: left out rather than null
        record[item.field] = value
    if not (isinstance(record.get("capture"), str) and re.match(CAPTURE_KEEPS_CONTENT, record["capture"])):
        record["capture"] = "none"
        record.pop("prompt", None)
        record.pop("output", None)
    record["customer"] = customer
    record["region"] = region
    return {key: record[key] for key in record_fields() if key in record}


# ------------------------------------------------------------------------------------- bucket layout
#: Every record object lives under this prefix, then the UTC hour of its first record.
RECORDS_PREFIX = f"records/{RECORD_VERSION}/"
_KEY = re.compile(
    r"^records/v1/(?P<y>[0-9]{4})/(?P<m>[0-9]{2})/(?P<d>[0-9]{2})/(?P<h>[0-9]{2})/"
    r"(?P<shipper>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<unique>[A-Za-z0-9]+)\.jsonl(?P<gz>\.gz)?$"
)


@dataclass(frozen=True)
class RecordObject:
    """A record object's key, read: the hour it is filed under, the shipper that wrote it."""

    key: str
    hour: datetime
    shipper: str
    unique: str


def fluent_bit_s3_key_format(shipper: str) -> str:
    """Fluent Bit `s3` output `s3_key_format` for this layout. Fluent Bit fills %Y/%m/%d/%H from the
    UTC time of the first record in the object and $UUID with a random string."""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", shipper):
        raise ValueError(f"shipper: {shipper!r} is not a DNS label")
    return f"/{RECORDS_PREFIX}%Y/%m/%d/%H/{shipper}-$UUID.jsonl.gz"


def record_object_key(hour: datetime, shipper: str, unique: str) -> str:
    """`records/v1/YYYY/MM/DD/HH/<shipper>-<unique>.jsonl.gz` for a record object filed at `hour` (UTC)."""
    hour = hour.astimezone(UTC)
    key = f"{RECORDS_PREFIX}{hour:%Y/%m/%d/%H}/{shipper}-{unique}.jsonl.gz"
    if parse_record_key(key) is None:
        raise ValueError(f"shipper {shipper!r} or unique {unique!r} does not fit the layout")
    return key


def parse_record_key(key: str) -> RecordObject | None:
    """The parts of a record object's key, or None for a key outside the layout."""
    match = _KEY.match(key)
    if match is None:
        return None
    try:
        hour = datetime(int(match["y"]), int(match["m"]), int(match["d"]), int(match["h"]), tzinfo=UTC)
    except ValueError:
        return None
    return RecordObject(key, hour, match["shipper"], match["unique"])


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def window_prefixes(since: datetime, until: datetime) -> list[str]:
    """The fewest layout prefixes whose objects cover the hours from `since` to `until` (both included,
    floored to the hour, UTC): whole years, months and days as one prefix each, hours at the edges."""
    start, end = _floor_hour(since), _floor_hour(until)
    if start > end:
        return []
    prefixes: list[str] = []
    hour = start
    while hour <= end:
        for unit in ("year", "month", "day"):
            span_end = _unit_end(hour, unit)
            if _unit_start(hour, unit) == hour and span_end - timedelta(hours=1) <= end:
                prefixes.append(f"{RECORDS_PREFIX}{hour:{_UNIT_FORMAT[unit]}}/")
                hour = span_end
                break
        else:
            prefixes.append(f"{RECORDS_PREFIX}{hour:%Y/%m/%d/%H}/")
            hour += timedelta(hours=1)
    return prefixes


_UNIT_FORMAT = {"year": "%Y", "month": "%Y/%m", "day": "%Y/%m/%d"}


def _unit_start(hour: datetime, unit: str) -> datetime:
    if unit == "year":
        return hour.replace(month=1, day=1, hour=0)
    if unit == "month":
        return hour.replace(day=1, hour=0)
    return hour.replace(hour=0)


def _unit_end(hour: datetime, unit: str) -> datetime:
    start = _unit_start(hour, unit)
    if unit == "year":
        return start.replace(year=start.year + 1)
    if unit == "month":
        return (start + timedelta(days=32)).replace(day=1)
    return start + timedelta(days=1)
