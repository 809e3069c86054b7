"""The content-capture Lua filter (components/lua/content_capture.lua), run as Envoy runs it.

tests/components/lua/harness.lua plays Envoy's part: it feeds the request and response bodies to
`envoy_on_request` and `envoy_on_response` chunk by chunk through `bodyChunks()`, and prints the dynamic
metadata the script set. Each case runs under LuaJIT with its `bit` library (what Envoy embeds), under
LuaJIT without it and under PUC Lua 5.1 (the plain-arithmetic path, which Envoy Gateway's validator, a
Lua 5.1 VM with no `require`, takes). The results must equal the Python reference in
components/inference_records.py, and become valid records through the access log.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sovstack.components import inference_records as records
from tests.components.access_log_sample import envoy_entry

HARNESS = Path(__file__).parent / "lua" / "harness.lua"
RUNTIMES = {"luajit": ("luajit", ""), "luajit-arithmetic": ("luajit", "nobit"), "lua5.1": ("lua5.1", "")}


def installed(name: str) -> tuple[str, str]:
    binary, mode = RUNTIMES[name]
    if shutil.which(binary) is None:
        message = f"{binary} is not installed (apt-get install luajit lua5.1): the filter's Lua runtimes"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    return binary, mode


@pytest.fixture(params=sorted(RUNTIMES))
def runtime(request: pytest.FixtureRequest) -> tuple[str, str]:
    return installed(request.param)


def run_filter(
    runtime: tuple[str, str],
    tmp_path: Path,
    policy: str,
    request: bytes,
    response: bytes,
    chunk: int = 16384,
) -> dict[str, Any]:
    binary, mode = runtime
    (tmp_path / "request").write_bytes(request)
    (tmp_path / "response").write_bytes(response)
    done = subprocess.run(
        [
            binary,
            str(HARNESS),
            str(records.CONTENT_CAPTURE_SCRIPT),
            policy,
            str(tmp_path / "request"),
            str(tmp_path / "response"),
            str(chunk),
            mode,
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def reference(policy: records.Capture, request: bytes, response: bytes) -> dict[str, Any]:
    """What the Python reference says the filter writes."""
    fields = records.capture_fields(policy, request, response)
    expected: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    expected.update({k: v for k, v in records.usage_tokens(response).items() if v is not None})
    return expected


CHAT = json.dumps(
    {"model": "mistral-small", "messages": [{"role": "user", "content": "Grüß Gott ! Quelle heure est-il ?"}]}
).encode()
ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":'
    b'{"role":"assistant","content":"Il est midi."}}],'
    b'"usage":{"prompt_tokens":23,"total_tokens":29,"completion_tokens":6}}'
)


@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 119, 1000, 70_001])
@pytest.mark.parametrize("chunk", [7, 64, 16384])
def test_digests_equal_sha256_whatever_the_sizes_and_chunks(
    runtime: tuple[str, str], tmp_path: Path, size: int, chunk: int
) -> None:
    body = random.Random(size * 31 + chunk).randbytes(size)
    got = run_filter(runtime, tmp_path, "digest", body, ANSWER, chunk)
    assert got.get("prompt") == (
        {"sha256": hashlib.sha256(body).hexdigest(), "bytes": size} if size else None
    )
    assert got == reference("digest", body, ANSWER)


def test_a_large_body_in_the_bit_path(tmp_path: Path) -> None:
    body = random.Random(7).randbytes(3 * 1024 * 1024 + 5)
    got = run_filter(installed("luajit"), tmp_path, "digest", body, ANSWER, 16384)
    assert got["prompt"] == {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}


def test_chat_request_and_answer_under_each_policy(runtime: tuple[str, str], tmp_path: Path) -> None:
    digest = run_filter(runtime, tmp_path, "digest", CHAT, ANSWER)
    assert digest == {
        "capture": "digest",
        "prompt": {"sha256": hashlib.sha256(CHAT).hexdigest(), "bytes": len(CHAT)},
        "output": {"sha256": hashlib.sha256(ANSWER).hexdigest(), "bytes": len(ANSWER)},
        "input_tokens": 23,
        "output_tokens": 6,
    }
    full = run_filter(runtime, tmp_path, "full", CHAT, ANSWER)
    assert (full["prompt"]["text"], full["output"]["text"]) == (CHAT.decode(), ANSWER.decode())
    assert full == reference("full", CHAT, ANSWER)
    # `none` keeps no content, and still counts tokens.
    assert run_filter(runtime, tmp_path, "none", CHAT, ANSWER) == {
        "capture": "none",
        "input_tokens": 23,
        "output_tokens": 6,
    }
    # No policy, or one the script does not know: the documented default.
    assert run_filter(runtime, tmp_path, "-", CHAT, ANSWER) == digest
    assert run_filter(runtime, tmp_path, "everything", CHAT, ANSWER) == digest


def test_a_stream_is_counted_from_its_last_usage_even_split_across_chunks(
    runtime: tuple[str, str], tmp_path: Path
) -> None:
    events = [
        {"choices": [{"delta": {"content": 'say "prompt_tokens": 999'}}], "usage": None},
        {"choices": [{"delta": {"content": "!"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
        {"choices": [], "usage": {"prompt_tokens": 1234, "completion_tokens": 5678}},
    ]
    stream = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    for chunk in (3, 5, 11, 4096):
        got = run_filter(runtime, tmp_path, "digest", CHAT, stream, chunk)
        assert (got["input_tokens"], got["output_tokens"]) == (1234, 5678), chunk
        assert got["output"]["sha256"] == hashlib.sha256(stream).hexdigest()
    assert got == reference("digest", CHAT, stream)


def test_full_falls_back_to_digest_for_both_bodies(tmp_path: Path) -> None:
    runtime = installed("luajit")  # over 1 MiB: the arithmetic path is tested on smaller bodies
    big = b"a" * (records.FULL_TEXT_MAX_BYTES + 1)
    got = run_filter(runtime, tmp_path, "full", CHAT, big)
    assert got["capture"] == "digest"
    assert "text" not in got["prompt"] and "text" not in got["output"]
    assert got == reference("full", CHAT, big)
    exact = b"a" * records.FULL_TEXT_MAX_BYTES
    assert run_filter(runtime, tmp_path, "full", CHAT, exact)["output"]["text"] == exact.decode()


@pytest.mark.parametrize(
    "body", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\x80", "é€😀".encode()]
)
def test_full_keeps_only_utf8_text(runtime: tuple[str, str], tmp_path: Path, body: bytes) -> None:
    got = run_filter(runtime, tmp_path, "full", body, ANSWER)
    assert got == reference("full", body, ANSWER)
    valid = body == "é€😀".encode()
    assert got["capture"] == ("full" if valid else "digest")


def test_what_the_filter_writes_becomes_a_valid_record(runtime: tuple[str, str], tmp_path: Path) -> None:
    for policy in ("none", "digest", "full"):
        metadata = run_filter(runtime, tmp_path, policy, CHAT, ANSWER)
        # Envoy's JSON access log: each operator of the format, null where the metadata has no key.
        entry = envoy_entry()
        namespace = f"%DYNAMIC_METADATA({records.CONTENT_NAMESPACE}:"
        for key, operator in records.envoy_access_log_format().items():
            if operator.startswith(namespace):
                entry[key] = metadata.get(operator.removeprefix(namespace).removesuffix(")%"))
        assert set(entry) == set(records.envoy_access_log_format())
        record = records.record_from_access_log(entry, customer="acme", region="scw-fr-par")
        assert records.record_errors(record) == [], policy
        assert (record["capture"], record["input_tokens"], record["output_tokens"]) == (policy, 23, 6)
        if policy != "none":
            assert record["prompt"]["sha256"] == hashlib.sha256(CHAT).hexdigest()
