"""Tests for components/inference_records.py: the record schema, content digests, the access-log mapping
and the bucket layout."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sovstack.components import inference_records as records
from sovstack.components.inference_records import RecordError, RecordsInvalid
from tests.components.access_log_sample import envoy_entry

DIGEST = "sha256:" + "ab" * 32


def base_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "record_version": "v1",
        "time": "2026-03-05T10:00:00.123Z",
        "request_id": "0f8e1c2a-5d4b-4a39-9a51-2f6f3c1d7e90",
        "issuer": "https://id.acme.example/realms/acme",
        "subject": "u-4711",
        "client_id": "acme-chat",
        "source_address": "203.0.113.7",
        "model": "mistral-small",
        "weights_digest": DIGEST,
        "route": "httproute/acme-serving/acme-mistral-small/rule/0/match/0/llm_acme_example",
        "status": 200,
        "latency_ms": 1834,
        "input_tokens": 42,
        "output_tokens": 318,
        "capture": "digest",
        "prompt": {"sha256": "1" * 64, "bytes": 10},
        "output": {"sha256": "2" * 64, "bytes": 20},
        "customer": "acme",
        "region": "scw-fr-par",
    }
    record.update(changes)
    return record


def errors(record: Any) -> list[tuple[str, str]]:
    return [(e.path, e.message) for e in records.record_errors(record)]


# --- the schema itself ------------------------------------------------------------------------------------


def test_schema_is_draft_2020_12_with_a_versioned_id() -> None:
    from jsonschema import Draft202012Validator

    schema = records.load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == records.SCHEMA_ID == "https://sovstack.eu/schemas/inference-record/v1.json"
    assert schema["properties"]["record_version"]["const"] == records.RECORD_VERSION == "v1"


def test_every_field_is_described_with_its_producer() -> None:
    producers = {"envoy-gateway", "envoy-ai-gateway", "fluent-bit", "content-capture"}
    for name, field in records.load_schema()["properties"].items():
        assert len(field.get("description", "")) > 40, name
        assert field.get("x-producer") in producers, name


# --- valid records ----------------------------------------------------------------------------------------


def test_a_digest_record_is_valid() -> None:
    assert errors(base_record()) == []
    records.validate_record(base_record())


def test_a_none_record_leaves_out_prompt_and_output() -> None:
    record = base_record(capture="none")
    del record["prompt"], record["output"]
    assert errors(record) == []


def test_a_full_record_carries_text_matching_its_digest() -> None:
    record = base_record(**records.capture_fields("full", "Bonjour", '{"role":"assistant"}'))
    assert record["prompt"] == {
        "sha256": hashlib.sha256(b"Bonjour").hexdigest(),
        "bytes": 7,
        "text": "Bonjour",
    }
    assert errors(record) == []


def test_a_refused_request_has_nulls_where_nothing_was_known() -> None:
    record = base_record(
        issuer=None,
        subject=None,
        client_id=None,
        model=None,
        weights_digest=None,
        route=None,
        status=401,
        input_tokens=None,
        output_tokens=None,
        prompt=None,
        output=None,
    )
    assert errors(record) == []


def test_ipv6_source_address_is_valid() -> None:
    assert errors(base_record(source_address="2001:db8::7")) == []


# --- invalid records: exact paths and messages ------------------------------------------------------------


def test_missing_fields_are_named() -> None:
    record = base_record()
    del record["subject"], record["status"]
    assert errors(record) == [("status", "required"), ("subject", "required")]


def test_wrong_types_name_the_field() -> None:
    assert errors(base_record(status="200", input_tokens=-1)) == [
        ("input_tokens", "-1 is less than the minimum of 0"),
        ("status", "'200' is not of type 'integer'"),
    ]


def test_unknown_field_is_refused() -> None:
    assert errors(base_record(colour="red")) == [
        ("", "Additional properties are not allowed ('colour' was unexpected)")
    ]


def test_time_must_be_utc_with_milliseconds_and_real() -> None:
    pattern = records.load_schema()["properties"]["time"]["pattern"]
    assert errors(base_record(time="2026-03-05T10:00:00Z")) == [
        ("time", f"'2026-03-05T10:00:00Z' does not match {pattern!r}")
    ]
    assert errors(base_record(time="2026-02-30T10:00:00.000Z")) == [
        ("time", "'2026-02-30T10:00:00.000Z' is not a real UTC time")
    ]


def test_weights_digest_and_source_address_formats() -> None:
    assert errors(base_record(weights_digest="ab" * 32, source_address="somewhere")) == [
        ("source_address", "'somewhere' is not valid under any of the given schemas"),
        ("weights_digest", f"'{'ab' * 32}' does not match '^sha256:[0-9a-f]{{64}}$'"),
    ]


def test_capture_none_forbids_content() -> None:
    assert errors(base_record(capture="none")) == [
        ("output", "not allowed here"),
        ("prompt", "not allowed here"),
    ]


def test_capture_digest_requires_both_and_forbids_text() -> None:
    record = base_record(prompt={"sha256": "1" * 64, "text": "secret"})
    del record["output"]
    assert errors(record) == [("output", "required"), ("prompt.text", "not allowed here")]


def test_capture_full_requires_text_that_matches() -> None:
    assert errors(base_record(capture="full")) == [("output.text", "required"), ("prompt.text", "required")]
    wrong = base_record(
        capture="full",
        prompt={"sha256": "1" * 64, "text": "Bonjour"},
        output={"sha256": hashlib.sha256(b"ok").hexdigest(), "bytes": 3, "text": "ok"},
    )
    assert errors(wrong) == [
        ("output.bytes", "is not the length of output.text"),
        ("prompt.sha256", "is not the sha256 of prompt.text"),
    ]


def test_a_record_that_is_not_an_object() -> None:
    assert errors([1, 2]) == [("", "[1, 2] is not of type 'object'")]


def test_validate_record_raises_with_every_problem() -> None:
    with pytest.raises(RecordsInvalid) as caught:
        records.validate_record(base_record(status=700, capture="maybe"))
    assert caught.value.errors == [
        RecordError("capture", "'maybe' is not one of ['none', 'digest', 'full']"),
        RecordError("status", "700 is greater than the maximum of 599"),
    ]
    assert str(caught.value) == (
        "capture: 'maybe' is not one of ['none', 'digest', 'full']; "
        "status: 700 is greater than the maximum of 599"
    )


def test_load_records_numbers_the_lines() -> None:
    good = json.dumps(base_record())
    bad = json.dumps(base_record(status="x"))
    assert records.load_records([good, "", good]) == [base_record(), base_record()]
    with pytest.raises(RecordsInvalid) as caught:
        records.load_records([good, "{not json", "", bad])
    assert [e.text() for e in caught.value.errors] == [
        "line 2: (record): not JSON: Expecting property name enclosed in double quotes",
        "line 4: status: 'x' is not of type 'integer'",
    ]


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=10,
    )
)
def test_any_json_value_gives_errors_never_a_crash(value: Any) -> None:
    result = records.record_errors(value)
    assert all(isinstance(e, RecordError) for e in result)


@given(
    st.dictionaries(st.sampled_from(records.record_fields()), st.none() | st.integers() | st.text(max_size=8))
)
def test_any_record_shaped_value_gives_errors_never_a_crash(changes: dict[str, Any]) -> None:
    records.record_errors(base_record(**changes))


# --- content digests per policy ---------------------------------------------------------------------------
CHAT_REQUEST = (
    '{"model":"m","messages":[{"role":"user","content":"Grüß Gott, my tax number is 12 345 678 901"}]}'
)


def test_digest_covers_the_body_bytes_as_they_crossed_the_gateway() -> None:
    field = records.content_field(CHAT_REQUEST, "digest")
    data = CHAT_REQUEST.encode()
    assert field == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    # Not a canonical form: the same JSON spaced differently is another body, another digest.
    assert records.content_field(CHAT_REQUEST.replace(",", ", "), "digest") != field
    assert records.content_field(b"\xff\x00", "digest") == {
        "sha256": hashlib.sha256(b"\xff\x00").hexdigest(),
        "bytes": 2,
    }


def test_digest_policy_keeps_no_text() -> None:
    fields = records.capture_fields("digest", CHAT_REQUEST, None)
    assert fields == {
        "capture": "digest",
        "prompt": {
            "sha256": hashlib.sha256(CHAT_REQUEST.encode()).hexdigest(),
            "bytes": len(CHAT_REQUEST.encode()),
        },
        "output": None,
    }
    record = base_record(**fields)
    assert errors(record) == []
    assert "12 345" not in json.dumps(record)


def test_full_policy_keeps_the_text() -> None:
    field = records.content_field('{"choices":[{"text":"Oui."}]}', "full")
    assert field is not None
    assert field["text"] == '{"choices":[{"text":"Oui."}]}'
    assert hashlib.sha256(field["text"].encode()).hexdigest() == field["sha256"]


def test_full_policy_falls_back_to_digest_for_long_or_binary_bodies() -> None:
    big = "x" * (records.FULL_TEXT_MAX_BYTES + 1)
    assert records.capture_fields("full", "hi", big)["capture"] == "digest"
    assert "text" not in records.capture_fields("full", "hi", big)["prompt"]
    assert records.capture_fields("full", b"\xff", "ok")["capture"] == "digest"
    exact = "x" * records.FULL_TEXT_MAX_BYTES
    assert records.capture_fields("full", exact, None)["prompt"]["text"] == exact


def test_none_policy_has_no_content_fields() -> None:
    assert records.capture_fields("none", "hello", "world") == {"capture": "none"}
    with pytest.raises(ValueError, match=r"^capture: 'none' records carry no prompt or output field$"):
        records.content_field("hello", "none")
    with pytest.raises(ValueError, match=r"^capture: 'some' is not one of none, digest, full$"):
        records.capture_fields("some", "a", "b")  # type: ignore[arg-type]
    assert records.content_field(b"", "digest") is None


def test_default_policy_is_digest() -> None:
    assert records.DEFAULT_CAPTURE == "digest"


def test_usage_tokens_takes_the_last_counts_in_the_body() -> None:
    body = '{"choices":[],"usage":{"prompt_tokens":12,"total_tokens":357,"completion_tokens":345}}'
    assert records.usage_tokens(body) == {"input_tokens": 12, "output_tokens": 345}
    stream = (
        'data: {"choices":[{"delta":{"content":"\\"prompt_tokens\\": 9"}}],"usage":null}\n\n'
        'data: {"choices":[],"usage":{"prompt_tokens": 7,"completion_tokens": 3}}\n\n'
        "data: [DONE]\n\n"
    )
    assert records.usage_tokens(stream) == {"input_tokens": 7, "output_tokens": 3}
    assert records.usage_tokens('{"data":[],"usage":{"prompt_tokens":4,"total_tokens":4}}') == {
        "input_tokens": 4,
        "output_tokens": None,
    }
    assert records.usage_tokens("") == {"input_tokens": None, "output_tokens": None}


# --- the access-log mapping -------------------------------------------------------------------------------


def test_the_mapping_covers_every_required_field_exactly_once() -> None:
    mapped = list(records.access_log_mapping().values())
    added = list(records.SHIPPER_FIELDS)
    assert len(mapped + added) == len(set(mapped + added)), "a field is produced twice"
    assert set(records.required_fields()) <= set(mapped + added)
    assert set(mapped + added) == set(records.record_fields())


def test_the_mapping_agrees_with_the_schemas_producers() -> None:
    properties = records.load_schema()["properties"]
    for item in records.ACCESS_LOG_FIELDS:
        assert properties[item.field]["x-producer"] == item.producer, item.field
        assert item.operator in properties[item.field]["description"], item.field
    for field in records.SHIPPER_FIELDS:
        assert properties[field]["x-producer"] in ("fluent-bit", "content-capture"), field


def test_envoy_format_and_mapping_share_their_keys() -> None:
    assert list(records.envoy_access_log_format()) == list(records.access_log_mapping())
    assert records.envoy_access_log_format()["jwt.sub"] == "%REQ(X-SOVSTACK-JWT-SUB)%"
    assert records.access_log_mapping()["sovstack.input_tokens"] == "input_tokens"
    assert (
        records.envoy_access_log_format()["sovstack.prompt"] == "%DYNAMIC_METADATA(sovstack.content:prompt)%"
    )
    for operator in records.envoy_access_log_format().values():
        assert operator.startswith("%") and operator.endswith("%")
    headers = {h.upper() for h in records.CLAIM_HEADERS.values()}
    assert headers == {
        op.removeprefix("%REQ(").removesuffix(")%")
        for op in records.envoy_access_log_format().values()
        if "JWT" in op
    }


ENVOY_LINE = envoy_entry({"sovstack.input_tokens": "42", "sovstack.weights_sha256": DIGEST})


def test_an_access_log_line_becomes_a_valid_record() -> None:
    record = records.record_from_access_log(ENVOY_LINE, customer="acme", region="scw-fr-par")
    assert errors(record) == []
    assert (record["capture"], record["prompt"]["bytes"], record["output"]) == ("digest", 2, None)
    assert list(record) == [f for f in records.record_fields() if f in record]
    assert (record["input_tokens"], record["output_tokens"], record["weights_digest"]) == (42, 318, DIGEST)
    assert record["upstream_host"] == "10.2.0.14:8000"


def test_a_refused_request_line_becomes_a_valid_record_with_nulls() -> None:
    line = copy.deepcopy(ENVOY_LINE)
    line.update(
        {
            "jwt.iss": "-",
            "jwt.sub": None,
            "jwt.azp": "",
            "sovstack.model": "-",
            "sovstack.weights_sha256": None,
            "route_name": "-",
            "response_code": 401,
            "sovstack.input_tokens": "-",
            "sovstack.output_tokens": None,
            "upstream_host": "-",
            # No route matched: the content-capture filter never ran.
            "sovstack.capture": None,
            "sovstack.prompt": None,
            "sovstack.output": None,
        }
    )
    record = records.record_from_access_log(line, customer="acme", region="scw-fr-par")
    assert errors(record) == []
    assert record["capture"] == "none"
    assert "prompt" not in record and "output" not in record
    assert "upstream_host" not in record
    assert [record[f] for f in ("issuer", "subject", "client_id", "model", "weights_digest")] == [None] * 5


# --- bucket layout ----------------------------------------------------------------------------------------


def test_object_keys_round_trip() -> None:
    hour = datetime(2026, 3, 5, 9, 59, tzinfo=UTC)
    key = records.record_object_key(hour, "gateway", "Ab12cD34")
    assert key == "records/v1/2026/03/05/09/gateway-Ab12cD34.jsonl.gz"
    parsed = records.parse_record_key(key)
    assert parsed == records.RecordObject(key, datetime(2026, 3, 5, 9, tzinfo=UTC), "gateway", "Ab12cD34")


@pytest.mark.parametrize(
    "key",
    [
        "records/v2/2026/03/05/09/gateway-x.jsonl.gz",
        "records/v1/2026/13/05/09/gateway-x.jsonl.gz",
        "records/v1/2026/03/05/24/gateway-x.jsonl.gz",
        "records/v1/2026/03/05/09/Gateway-x.jsonl.gz",
        "records/v1/2026/03/05/09/gateway.jsonl.gz",
        "records/v1/2026/03/05/gateway-x.jsonl.gz",
    ],
)
def test_keys_outside_the_layout_are_not_records(key: str) -> None:
    assert records.parse_record_key(key) is None


def test_fluent_bit_key_format_matches_the_layout() -> None:
    assert records.fluent_bit_s3_key_format("gateway") == "/records/v1/%Y/%m/%d/%H/gateway-$UUID.jsonl.gz"
    with pytest.raises(ValueError, match=r"^shipper: 'Gate way' is not a DNS label$"):
        records.fluent_bit_s3_key_format("Gate way")


def test_window_prefixes_use_whole_days_months_and_years() -> None:
    assert records.window_prefixes(
        datetime(2026, 2, 27, 22, 30, tzinfo=UTC), datetime(2026, 4, 2, 1, 5, tzinfo=UTC)
    ) == [
        "records/v1/2026/02/27/22/",
        "records/v1/2026/02/27/23/",
        "records/v1/2026/02/28/",
        "records/v1/2026/03/",
        "records/v1/2026/04/01/",
        "records/v1/2026/04/02/00/",
        "records/v1/2026/04/02/01/",
    ]
    assert records.window_prefixes(
        datetime(2025, 12, 31, 23, tzinfo=UTC), datetime(2027, 1, 1, 0, tzinfo=UTC)
    ) == ["records/v1/2025/12/31/23/", "records/v1/2026/", "records/v1/2027/01/01/00/"]
    assert records.window_prefixes(datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC)) == []


moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


@given(moments, st.integers(min_value=0, max_value=24 * 800))
def test_window_prefixes_cover_exactly_the_hours_of_the_window(since: datetime, hours: int) -> None:
    until = since + timedelta(hours=hours)
    prefixes = records.window_prefixes(since, until)
    assert len(prefixes) <= 2 * (23 + 30 + 11) + 3
    first = since.replace(minute=0, second=0, microsecond=0)
    for probe in (first - timedelta(hours=1), first, until, until + timedelta(hours=1)):
        inside = first <= probe <= until
        key = records.record_object_key(probe, "gateway", "x")
        assert sum(key.startswith(p) for p in prefixes) == (1 if inside else 0), (probe, prefixes)
