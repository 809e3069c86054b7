"""`sovstack report --bundle`: an auditor verifies it with sha256sum and ssh-keygen alone, and any byte
changed after signing is caught."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovstack.infra.bundle import sha256sums
from sovstack.infra.cli import app
from tests.infra.conftest import StackWriter
from tests.infra.test_cli_validate import move_gov_fr_to_warsaw

pytestmark = pytest.mark.slow
SIGNER = "ops@example.eu"


def _tools() -> None:
    for tool in ("sha256sum", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


def run(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(args), cwd=cwd, input=stdin, capture_output=True, timeout=60, check=False)


def verify(bundle: Path) -> tuple[subprocess.CompletedProcess[bytes], subprocess.CompletedProcess[bytes]]:
    sums = run("sha256sum", "-c", "--quiet", "SHA256SUMS", cwd=bundle)
    signature = run(
        "ssh-keygen", "-Y", "verify", "-f", "allowed_signers", "-I", SIGNER, "-n", "sovstack-report",
        "-s", "SHA256SUMS.sig", cwd=bundle, stdin=(bundle / "SHA256SUMS").read_bytes(),
    )  # fmt: skip
    return sums, signature


@pytest.fixture(scope="module")
def signed_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _tools()
    root = tmp_path_factory.mktemp("bundle")
    key = root / "operator"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", SIGNER, "-f", str(key)], check=True)
    mp = pytest.MonkeyPatch()  # module scope: the function-scoped autouse fixture has not run yet
    mp.setenv("SOURCE_DATE_EPOCH", "1764547200")
    mp.setenv("SOVSTACK_GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    try:
        result = CliRunner().invoke(
            app,
            ["report", "gov-fr", "--bundle", str(root / "out"), "--sign-key", str(key), "--signer", SIGNER],
        )
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
    return root / "out"


def test_a_signed_bundle_holds_the_report_manifests_and_plan(signed_bundle: Path) -> None:
    names = {str(p.relative_to(signed_bundle)) for p in signed_bundle.rglob("*") if p.is_file()}
    for name in ("residency-report.md", "residency-report.html", "residency-report.json", "plan.json",
                 "SHA256SUMS", "SHA256SUMS.sig", "allowed_signers", "render/manifests/kustomization.yaml"):  # fmt: skip
        assert name in names
    listed = [line.split("  ", 1)[1] for line in (signed_bundle / "SHA256SUMS").read_text().splitlines()]
    assert sorted(listed) == sorted(names - {"SHA256SUMS", "SHA256SUMS.sig"})
    assert listed == sorted(listed, key=str.encode)
    plan = (signed_bundle / "plan.json").read_text()
    assert json.loads(plan)["resources"], "the plan lists what pulumi up would register"
    assert plan == CliRunner().invoke(app, ["plan", "gov-fr", "--json"]).stdout
    report = json.loads((signed_bundle / "residency-report.json").read_text())
    assert report["generated"]["at"] == "2025-12-01T00:00:00Z"
    # The render's copy of the report is the same report, made once.
    assert (signed_bundle / "render/residency-report.json").read_text() == json.dumps(
        report, indent=2, sort_keys=True
    ) + "\n"
    line = (signed_bundle / "allowed_signers").read_text()
    assert line.startswith(f'{SIGNER} namespaces="sovstack-report" ssh-ed25519 AAAA')


def test_the_bundle_verifies_with_sha256sum_and_ssh_keygen(signed_bundle: Path) -> None:
    sums, signature = verify(signed_bundle)
    assert sums.returncode == 0, sums.stdout + sums.stderr
    assert signature.returncode == 0, signature.stderr
    assert f'Good "sovstack-report" signature for {SIGNER}' in signature.stdout.decode()


def test_one_changed_byte_fails_verification(signed_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(signed_bundle, copy)
    target = copy / "render/manifests/kustomization.yaml"
    body = bytearray(target.read_bytes())
    body[0] ^= 1
    target.write_bytes(bytes(body))
    sums, signature = verify(copy)
    assert sums.returncode == 1
    assert b"render/manifests/kustomization.yaml: FAILED" in sums.stdout
    assert signature.returncode == 0  # the list itself is intact: the file no longer matches it
    # Covering the change by rewriting SHA256SUMS breaks the signature instead.
    files = {str(p.relative_to(copy)): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    for name in ("SHA256SUMS", "SHA256SUMS.sig"):
        files.pop(name)
    (copy / "SHA256SUMS").write_text(sha256sums(files))
    sums, signature = verify(copy)
    assert sums.returncode == 0
    assert signature.returncode != 0


def test_a_bundle_is_never_written_over(signed_bundle: Path) -> None:
    result = CliRunner().invoke(app, ["report", "gov-fr", "--bundle", str(signed_bundle)])
    assert result.exit_code == 2
    assert f"{signed_bundle}: exists and is not empty; a bundle is never overwritten" in result.output


def test_sign_key_needs_a_bundle_and_an_existing_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "gov-fr", "--sign-key", str(tmp_path / "k")])
    assert result.exit_code == 2
    assert "--sign-key: only with --bundle" in result.output
    result = CliRunner().invoke(
        app, ["report", "gov-fr", "--bundle", str(tmp_path / "b"), "--sign-key", str(tmp_path / "k")]
    )
    assert result.exit_code == 2
    assert f"{tmp_path / 'k'}: --sign-key: no such file" in result.output


def test_a_stack_outside_its_policy_gets_a_bundle_without_a_plan_and_exit_1(
    write_stack: StackWriter, tmp_path: Path
) -> None:
    """Evidence of a failure is still evidence; there is nothing to plan."""
    path = write_stack("gov-fr", move_gov_fr_to_warsaw)
    done = subprocess.run(
        [sys.executable, "-m", "sovstack.infra.cli", "report", str(path), "--bundle", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    names = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert "plan.json" not in names and "render" not in names and "SHA256SUMS.sig" not in names
    assert {"SHA256SUMS", "residency-report.json", "residency-report.md", "residency-report.html"} <= set(
        names
    )
    report = json.loads((tmp_path / "b" / "residency-report.json").read_text())
    assert report["verdict"]["passed"] is False
    assert run("sha256sum", "-c", "--quiet", "SHA256SUMS", cwd=tmp_path / "b").returncode == 0


def test_a_bad_source_date_epoch_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1.5")
    result = CliRunner().invoke(app, ["report", "gov-fr"])
    assert result.exit_code == 2
    assert result.stderr == "SOURCE_DATE_EPOCH: '1.5' is not a whole number of seconds since 1970-01-01\n"
