"""`sovstack report STACK --bundle DIR`: the evidence an auditor takes away, checkable without sovstack.

The bundle holds the residency report (md, html, json), the rendered manifests (`render/`, what
`sovstack render` writes), the plan (`plan.json`, `sovstack plan --json`), and SHA256SUMS over every one
of those files in `sha256sum` format. With an operator's SSH key, SHA256SUMS is signed
(`ssh-keygen -Y sign -n sovstack-report`, SHA256SUMS.sig) and the public key is written as an
`allowed_signers` line, so `sha256sum -c` and `ssh-keygen -Y verify` are all an auditor needs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from sovstack.infra.gitops import GitOpsError, clean_url, git_output
from sovstack.infra.pipeline import LoadedStack
from sovstack.infra.render import GitSource, render_files
from sovstack.infra.report import UNKNOWN, build_report, provenance, render_report

NAMESPACE = "sovstack-report"
SUMS = "SHA256SUMS"
SIGNATURE = f"{SUMS}.sig"
ALLOWED_SIGNERS = "allowed_signers"
DEFAULT_SIGNER = "operator"


class BundleError(Exception):
    def __init__(self, lines: list[str], exit_code: int) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.exit_code = exit_code


def sha256sums(files: dict[str, bytes]) -> str:
    """`sha256sum` format, bytewise path order: `<hex>  <path>` per line."""
    return "".join(
        f"{hashlib.sha256(body).hexdigest()}  {name}\n"
        for name, body in sorted(files.items(), key=lambda item: item[0].encode())
    )


def bundle_git_source(loaded: LoadedStack) -> GitSource:
    """The repository the bundle's engine objects name: the `origin` of the stack file's repository
    (credentials dropped), else `unknown`; the render sits at `render/` of the bundle."""
    origin = git_output(loaded.path.resolve().parent, "remote", "get-url", "origin")
    try:
        url = clean_url(origin, "origin") if origin else UNKNOWN
    except GitOpsError:
        url = UNKNOWN
    return GitSource(repo_url=url, path="render")


def bundle_files(loaded: LoadedStack, plan: dict[str, Any] | None) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Every file of the bundle but the checksums and signature, and the report data."""
    composition = loaded.composed()
    findings = list(loaded.findings) if loaded.findings is not None else None
    report = build_report(loaded, composition, findings, generated=provenance(loaded.path))
    files: dict[str, bytes] = {
        f"residency-report.{fmt}": render_report(report, fmt).encode() for fmt in ("md", "html", "json")
    }
    # As `sovstack render`: no manifests for a stack outside its policy or refused by the components.
    if report["verdict"]["passed"] and not report["composition"]["refused"]:
        rendered = render_files(loaded, bundle_git_source(loaded), findings, report=report)
        files.update({f"render/{name}": text.encode() for name, text in rendered.items()})
    if plan is not None:  # byte for byte what `sovstack plan --json` prints
        files["plan.json"] = (json.dumps(plan, indent=2, sort_keys=True) + "\n").encode()
    return files, report


def _ssh_keygen(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["ssh-keygen", *args], input=stdin, capture_output=True, timeout=60, check=False
        )
    except FileNotFoundError:
        raise BundleError(
            ["ssh-keygen: not found; install OpenSSH (8.1 or later) to sign a bundle"], 2
        ) from None


def public_key(key: Path) -> str:
    """The public half of an SSH private key (KEY.pub beside it, else derived)."""
    pub = key.with_name(key.name + ".pub")
    if pub.is_file():
        return pub.read_text(encoding="utf-8").strip()
    done = _ssh_keygen("-y", "-f", str(key))
    if done.returncode != 0:
        raise BundleError([f"{key}: not a readable SSH private key: {done.stderr.decode().strip()}"], 2)
    return done.stdout.decode().strip()


def sign(sums: Path, key: Path) -> Path:
    done = _ssh_keygen("-Y", "sign", "-q", "-f", str(key), "-n", NAMESPACE, str(sums))
    if done.returncode != 0:
        raise BundleError([f"{key}: signing failed: {done.stderr.decode().strip()}"], 2)
    return sums.with_name(SIGNATURE)


def check_target(out: Path, sign_key: Path | None) -> None:
    """Refuse before any work: an existing bundle, a missing key."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError([f"{out}: exists and is not empty; a bundle is never overwritten"], 2)
    if sign_key is not None and not sign_key.is_file():
        raise BundleError([f"{sign_key}: --sign-key: no such file"], 2)


def write_bundle(
    loaded: LoadedStack,
    out: Path,
    plan: dict[str, Any] | None,
    sign_key: Path | None = None,
    signer: str = DEFAULT_SIGNER,
) -> dict[str, Any]:
    """Write the bundle into `out` (which must not exist or be empty), atomically; the report data."""
    check_target(out, sign_key)
    files, report = bundle_files(loaded, plan)
    if sign_key is not None:
        if any(c.isspace() for c in signer) or not signer:
            raise BundleError([f"--signer: {signer!r} must be one word"], 2)
        files[ALLOWED_SIGNERS] = f'{signer} namespaces="{NAMESPACE}" {public_key(sign_key)}\n'.encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, body in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
        (staging / SUMS).write_text(sha256sums(files), encoding="utf-8")
        if sign_key is not None:
            sign(staging / SUMS, sign_key)
        if out.exists():
            out.rmdir()
        staging.replace(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report
