"""One entry of a Gateway's JSON access log, as Envoy writes it with `envoy_access_log_format()`: typed
values (dynamic-metadata numbers as JSON floats), null for what it does not have. Tests of the record
reference, the Fluent Bit pipeline and the content-capture filter start from it."""

from __future__ import annotations

import hashlib
from typing import Any

WEIGHTS_PIN = "sha256:" + "ab" * 32


def envoy_entry(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "start_time": "2026-03-05T10:00:00.123Z",
        "x-request-id": "0f8e1c2a-5d4b-4a39-9a51-2f6f3c1d7e90",
        "jwt.iss": "https://id.acme.example/realms/acme",
        "jwt.sub": "u-4711",
        "jwt.azp": "acme-chat",
        "source_ip": "203.0.113.7",
        "sovstack.model": "mistral-small",
        "sovstack.weights_sha256": WEIGHTS_PIN,
        "route_name": "httproute/acme-serving/acme-mistral-small/rule/0/match/0/llm_acme_example",
        "response_code": 200,
        "duration": 1834,
        "sovstack.input_tokens": 21.0,
        "sovstack.output_tokens": 318.0,
        "upstream_host": "10.2.0.14:8000",
        "sovstack.capture": "digest",
        "sovstack.prompt": {"sha256": hashlib.sha256(b"hi").hexdigest(), "bytes": 2.0},
        "sovstack.output": None,
    }
    entry.update(changes or {})
    return entry
