"""Tests for `sovstack weights manifest` (infra/weights.py): deterministic manifests in `sha256sum -c`
format from a directory and from an S3 prefix (a local moto server), accepted by the verify-weights
script, and clean errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sovstack.components.builders.weights_verify import VERIFY_SCRIPT
from sovstack.infra.cli import app
from sovstack.infra.weights import ManifestEntry, WeightsError, build_manifest, path_problem
from tests import s3_server
from tests.s3_server import ACCESS_KEY, SECRET_KEY

FILES = {
    "config.json": b'{"architectures": ["MistralForCausalLM"]}\n',
    "model-00001-of-00002.safetensors": bytes(range(256)) * 40,
    "model-00002-of-00002.safetensors": b"\x07" * 3000,
    "tokenizer/tokenizer.json": '{"added_tokens": ["é"]}'.encode(),
    "tokenizer-extra.json": b"{}",
    "Z-upper.txt": b"Z",
    "vocab é.txt": "é\n".encode(),
}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert SECRET_KEY not in result.stdout + result.stderr
    return result


def write_tree(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def sha256sum_manifest(root: Path) -> str:
    """What GNU `sha256sum` writes for the same files, sorted the C way."""
    names = sorted((p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()), key=str.encode)
    out = subprocess.run(
        ["sha256sum", "--", *names], cwd=root, capture_output=True, text=True, check=True, env={"LC_ALL": "C"}
    )
    return out.stdout


# --- a directory ------------------------------------------------------------------------------------------


def test_directory_manifest_is_sha256sum_format_sorted_and_pinned(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "mistral")
    expected = sha256sum_manifest(root)
    result = invoke("weights", "manifest", str(root))
    assert result.exit_code == 0, result.stderr
    written = (root / "SHA256SUMS").read_text(encoding="utf-8")
    assert written == expected
    assert [line.split("  ", 1)[1] for line in written.splitlines()] == [
        "Z-upper.txt",
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "tokenizer-extra.json",
        "tokenizer/tokenizer.json",
        "vocab é.txt",
    ]
    digest = hashlib.sha256(written.encode()).hexdigest()
    assert result.stdout == f"{digest}\n"
    assert result.stderr.splitlines() == [
        f"{root}/SHA256SUMS: 7 files, {sum(map(len, FILES.values()))} bytes; pin sha256 {digest} in the stack "
        "and keep SHA256SUMS beside the weights"
    ]


def test_the_manifest_is_left_out_so_a_second_run_gives_the_same_digest(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "m")
    first = invoke("weights", "manifest", str(root)).stdout
    assert invoke("weights", "manifest", str(root)).stdout == first


def test_the_written_manifest_passes_the_verify_script(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "m")
    digest = invoke("weights", "manifest", str(root)).stdout.strip()
    check = subprocess.run(
        ["/bin/sh", "-c", VERIFY_SCRIPT, "verify-weights", str(root), digest],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (check.returncode, check.stderr) == (0, "")


def test_out_dash_prints_the_manifest(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "m")
    result = invoke("weights", "manifest", str(root), "--out", "-")
    assert result.exit_code == 0
    assert result.stdout == sha256sum_manifest(root)
    assert not (root / "SHA256SUMS").exists()
    digest = hashlib.sha256(result.stdout.encode()).hexdigest()
    assert (
        result.stderr.splitlines()[-1]
        == f"7 files, {sum(map(len, FILES.values()))} bytes; manifest sha256 {digest}"
    )


def test_json_output(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "m")
    out = tmp_path / "pinned.sums"
    result = invoke("weights", "manifest", str(root), "--out", str(out), "--json")
    assert json.loads(result.stdout) == {
        "source": str(root),
        "manifest": str(out),
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "files": 7,
        "bytes": sum(map(len, FILES.values())),
    }


def test_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "m")
    (root / "link.json").symlink_to(root / "config.json")
    (root / "linkdir").symlink_to(root / "tokenizer")
    result = invoke("weights", "manifest", str(root))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{root}: link.json: symbolic link; weights must be regular files",
        f"{root}: linkdir: symbolic link; weights must be regular files",
    ]
    assert result.stdout == ""


def test_missing_and_empty_directories(tmp_path: Path) -> None:
    assert (
        invoke("weights", "manifest", str(tmp_path / "absent")).stderr
        == f"{tmp_path / 'absent'}: no such directory\n"
    )
    (tmp_path / "empty").mkdir()
    result = invoke("weights", "manifest", str(tmp_path / "empty"))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"{tmp_path / 'empty'}: no files: nothing to pin"


def test_a_name_sha256sum_would_escape_is_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "m", {"a\nb.bin": b"x"})
    result = invoke("weights", "manifest", str(root))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"{root}: 'a\\nb.bin': a newline, carriage return or backslash in the name (sha256sum would escape it)"
    )


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "empty path"),
        ("a\\b", "a newline, carriage return or backslash in the name (sha256sum would escape it)"),
        ("/etc/passwd", "not a plain relative path"),
        ("a//b", "not a plain relative path"),
        ("a/../b", "a '.' or '..' path segment"),
        ("./a", "a '.' or '..' path segment"),
        ("a\tb", "a control character in the name"),
        ("dir/ok name é.json", None),
    ],
)
def test_path_problems(path: str, problem: str | None) -> None:
    assert path_problem(path) == problem


def test_repeated_paths_are_refused() -> None:
    entry = ManifestEntry("a", "0" * 64, 1)
    with pytest.raises(WeightsError) as caught:
        build_manifest("src", [entry, entry])
    assert caught.value.lines == ["src: a: listed twice"]


# --- an S3 prefix -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3_server.moto_s3() as url:
        yield url


def upload(endpoint: str, bucket: str, prefix: str, files: dict[str, bytes]) -> None:
    client = s3_server.client(endpoint)
    client.create_bucket(Bucket=bucket)
    for name, data in files.items():
        client.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=data)


def test_s3_manifest_equals_the_directory_manifest(endpoint: str, tmp_path: Path) -> None:
    bucket = s3_server.unique_bucket("weights")
    upload(endpoint, bucket, "mistral/", FILES)
    client = s3_server.client(endpoint)
    client.put_object(Bucket=bucket, Key="mistral/tokenizer/", Body=b"")  # a directory marker
    client.put_object(Bucket=bucket, Key="mistral/SHA256SUMS", Body=b"stale")  # its own, left out
    client.put_object(Bucket=bucket, Key="mistral-v2/config.json", Body=b"{}")  # a sibling prefix
    out = tmp_path / "SHA256SUMS"
    result = invoke(
        "weights", "manifest", f"s3://{bucket}/mistral", "--endpoint", endpoint, "--region", "fr-par", "--out", str(out),
        env=CREDENTIALS,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    local = write_tree(tmp_path / "local")
    assert out.read_text(encoding="utf-8") == sha256sum_manifest(local)
    assert result.stdout == f"{hashlib.sha256(out.read_bytes()).hexdigest()}\n"


def test_s3_manifest_writes_to_the_current_directory_by_default(
    endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.unique_bucket("weights")
    upload(endpoint, bucket, "", {"config.json": b"{}"})
    monkeypatch.chdir(tmp_path)
    result = invoke("weights", "manifest", f"s3://{bucket}", "--endpoint", endpoint, env=CREDENTIALS)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "SHA256SUMS").read_text() == f"{hashlib.sha256(b'{}').hexdigest()}  config.json\n"


def test_s3_needs_an_endpoint_and_credentials(endpoint: str) -> None:
    no_endpoint = invoke("weights", "manifest", "s3://b/p", env=CREDENTIALS)
    assert (no_endpoint.exit_code, no_endpoint.stderr) == (
        2,
        "s3://b/p: --endpoint: required for s3:// sources (there is no default)\n",
    )
    plain = invoke("weights", "manifest", "s3://b/p", "--endpoint", "http://s3.example.eu", env=CREDENTIALS)
    assert plain.stderr == (
        "s3://b/p: --endpoint: 'http://s3.example.eu' is not an https:// URL "
        "(plain http only to 127.0.0.1, localhost or ::1)\n"
    )
    empty = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    missing = invoke("weights", "manifest", "s3://b/p", "--endpoint", endpoint, env=empty)
    assert (missing.exit_code, missing.stderr) == (
        2,
        "s3://b/p: credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (read-only is enough)\n",
    )


def test_s3_errors_are_one_line_without_secrets(endpoint: str) -> None:
    result = invoke("weights", "manifest", "s3://no-such-bucket/x", "--endpoint", endpoint, env=CREDENTIALS)
    assert result.exit_code == 2
    assert result.stderr == (
        "s3://no-such-bucket/x: cannot list: NoSuchBucket (The specified bucket does not exist), HTTP 404\n"
    )
    assert ACCESS_KEY not in result.stderr


def test_an_empty_prefix_is_refused(endpoint: str) -> None:
    bucket = s3_server.unique_bucket("weights")
    upload(endpoint, bucket, "", {"other/config.json": b"{}"})
    result = invoke("weights", "manifest", f"s3://{bucket}/mistral", "--endpoint", endpoint, env=CREDENTIALS)
    assert (result.exit_code, result.stderr.splitlines()[-1]) == (
        2,
        f"s3://{bucket}/mistral: no files: nothing to pin",
    )


# --- the console script -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_console_script(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "m")
    sovstack = Path(sys.executable).parent / "sovstack"
    env = {**os.environ, "PYTHONHASHSEED": "7"}
    good = subprocess.run(
        [str(sovstack), "weights", "manifest", str(root)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert good.returncode == 0
    assert good.stdout == f"{hashlib.sha256((root / 'SHA256SUMS').read_bytes()).hexdigest()}\n"
    bad = subprocess.run(
        [str(sovstack), "weights", "manifest", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (bad.returncode, bad.stdout, bad.stderr) == (2, "", f"{tmp_path / 'x'}: no such directory\n")
