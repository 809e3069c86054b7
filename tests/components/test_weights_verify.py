"""Tests for components/builders/weights_verify.py: the verifying script run for real with /bin/sh on
local trees (and with busybox's sh and tools, as in the Alpine-based rclone image, where installed), and
the init container it is shipped in."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sovstack.components.builders.weights_verify import (
    VERIFY_SCRIPT,
    build_verify_container,
    normalize_sha256,
)
from tests.k8s_schema import assert_valid

IMAGE = "registry.example.eu/mirror/rclone:1.75.1@sha256:" + "c" * 64
FILES = {
    "config.json": b'{"architectures": ["MistralForCausalLM"]}\n',
    "model-00001-of-00002.safetensors": bytes(range(256)) * 64,
    "model-00002-of-00002.safetensors": b"\x00\x01" * 5000,
    "tokenizer/tokenizer.json": '{"added_tokens": ["é"]}'.encode(),
}
BUSYBOX = shutil.which("busybox")
BUSYBOX_TOOLS = ("sh", "sha256sum", "find", "awk", "sed", "grep", "cut")


def write_tree(root: Path, files: dict[str, bytes]) -> str:
    """Write `files` and their SHA256SUMS (as `sha256sum` writes it, sorted); return the manifest's sha256."""
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    manifest = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files))
    (root / "SHA256SUMS").write_text(manifest, encoding="utf-8")
    return hashlib.sha256(manifest.encode()).hexdigest()


Runner = Callable[[Path, str], subprocess.CompletedProcess[str]]


@pytest.fixture(params=["dash-coreutils", "busybox"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Runner:
    """Run VERIFY_SCRIPT the way the init container does: `sh -c SCRIPT verify-weights DIR DIGEST`."""
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    shell = "/bin/sh"
    if request.param == "busybox":
        if BUSYBOX is None:
            message = "busybox is not installed (apt-get install busybox): the rclone image's tools"
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(f"CI=true: {message}")
            pytest.skip(message)
        bin_dir = tmp_path_factory.mktemp("busybox-bin")
        for tool in BUSYBOX_TOOLS:
            (bin_dir / tool).symlink_to(BUSYBOX)
        env["PATH"] = str(bin_dir)
        shell = str(bin_dir / "sh")

    def go(directory: Path, pinned: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [shell, "-c", VERIFY_SCRIPT, "verify-weights", str(directory), pinned],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    return go


def test_a_good_tree_passes(tmp_path: Path, run: Runner) -> None:
    pinned = write_tree(tmp_path, FILES)
    result = run(tmp_path, pinned)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"verify-weights: {tmp_path}: 4 files match SHA256SUMS sha256:{pinned}\n"


def test_the_pin_may_carry_its_algorithm(tmp_path: Path, run: Runner) -> None:
    pinned = write_tree(tmp_path, FILES)
    assert run(tmp_path, f"sha256:{pinned}").returncode == 0


def test_a_modified_byte_fails_naming_the_file(tmp_path: Path, run: Runner) -> None:
    pinned = write_tree(tmp_path, FILES)
    shard = tmp_path / "model-00002-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[4321] ^= 0x01
    shard.write_bytes(bytes(data))
    result = run(tmp_path, pinned)
    assert result.returncode == 1
    assert "model-00002-of-00002.safetensors: FAILED" in result.stderr.splitlines()
    assert "config.json: OK" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"verify-weights: {tmp_path}: the files above do not match SHA256SUMS (sha256 {pinned})"
    )
    assert result.stdout == ""


def test_an_extra_file_fails(tmp_path: Path, run: Runner) -> None:
    pinned = write_tree(tmp_path, FILES)
    (tmp_path / "tokenizer" / "added.py").write_text("import os\n")
    result = run(tmp_path, pinned)
    assert result.returncode == 1
    assert result.stderr == (
        f"verify-weights: {tmp_path}: files the manifest does not list:\ntokenizer/added.py\n"
    )


def test_a_missing_file_fails_naming_it(tmp_path: Path, run: Runner) -> None:
    pinned = write_tree(tmp_path, FILES)
    (tmp_path / "model-00001-of-00002.safetensors").unlink()
    result = run(tmp_path, pinned)
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if "FAILED" in line]
    assert failed and all(line.startswith("model-00001-of-00002.safetensors: FAILED") for line in failed)
    assert result.stderr.splitlines()[-1].endswith("do not match SHA256SUMS (sha256 " + pinned + ")")


def test_a_wrong_manifest_digest_fails(tmp_path: Path, run: Runner) -> None:
    pinned = write_tree(tmp_path, FILES)
    result = run(tmp_path, "0" * 64)
    assert result.returncode == 1
    assert result.stderr == (
        f"verify-weights: {tmp_path}/SHA256SUMS: sha256 is {pinned}, but the stack pins {'0' * 64}\n"
    )


def test_a_manifest_edited_to_match_changed_weights_fails(tmp_path: Path, run: Runner) -> None:
    pinned = write_tree(tmp_path, FILES)
    write_tree(tmp_path, {**FILES, "config.json": b'{"architectures": ["Evil"]}\n'})
    result = run(tmp_path, pinned)
    assert result.returncode == 1
    assert "but the stack pins" in result.stderr


def test_a_missing_manifest_fails(tmp_path: Path, run: Runner) -> None:
    write_tree(tmp_path, FILES)
    (tmp_path / "SHA256SUMS").unlink()
    result = run(tmp_path, "a" * 64)
    assert (result.returncode, result.stderr) == (
        1,
        f"verify-weights: {tmp_path}/SHA256SUMS: missing; the weights source must carry its manifest\n",
    )


def test_a_missing_directory_fails(tmp_path: Path, run: Runner) -> None:
    result = run(tmp_path / "absent", "a" * 64)
    assert (result.returncode, result.stderr) == (
        1,
        f"verify-weights: {tmp_path / 'absent'}: no such directory\n",
    )


@pytest.mark.parametrize("pinned", ["", "A" * 64, "a" * 63, "sha512:" + "a" * 64, "a" * 64 + " "])
def test_a_malformed_pin_fails(tmp_path: Path, run: Runner, pinned: str) -> None:
    write_tree(tmp_path, FILES)
    result = run(tmp_path, pinned)
    assert (result.returncode, result.stderr) == (
        1,
        f"verify-weights: pinned digest {pinned} is not a sha256 (64 lowercase hex digits)\n",
    )


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("../outside.bin", "parent"),
        ("/etc/passwd", "absolute"),
        ("./config.json", "dot-slash"),
        ("sub/../config.json", "inner parent"),
    ],
)
def test_manifest_entries_outside_the_tree_are_refused(
    tmp_path: Path, run: Runner, entry: str, why: str
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    write_tree(model, FILES)
    line = f"{'e' * 64}  {entry}\n"
    manifest = (model / "SHA256SUMS").read_text() + line
    (model / "SHA256SUMS").write_text(manifest)
    result = run(model, hashlib.sha256(manifest.encode()).hexdigest())
    assert result.returncode == 1, why
    assert result.stderr == (
        f"verify-weights: {model}/SHA256SUMS: entries that are not 'sha256  relative/path' or repeat a path:\n"
        f"line 5: {line}"
    )


def test_a_repeated_entry_is_refused(tmp_path: Path, run: Runner) -> None:
    write_tree(tmp_path, FILES)
    manifest = (tmp_path / "SHA256SUMS").read_text()
    manifest += manifest.splitlines(keepends=True)[0]
    (tmp_path / "SHA256SUMS").write_text(manifest)
    result = run(tmp_path, hashlib.sha256(manifest.encode()).hexdigest())
    assert result.returncode == 1
    assert result.stderr.splitlines()[1] == f"line 5: {manifest.splitlines()[0]}"


def test_a_symbolic_link_is_refused(tmp_path: Path, run: Runner) -> None:
    pinned = write_tree(tmp_path, FILES)
    (tmp_path / "config.json").unlink()
    (tmp_path / "config.json").symlink_to(tmp_path / "tokenizer" / "tokenizer.json")
    result = run(tmp_path, pinned)
    assert (result.returncode, result.stderr) == (
        1,
        f"verify-weights: {tmp_path}: symbolic links are not weights:\nconfig.json\n",
    )


def test_the_script_writes_nothing(tmp_path: Path, run: Runner) -> None:
    """It runs on a read-only mount: nothing in the tree may change (a permission test would be void
    here, where tests may run as root)."""
    model = tmp_path / "model"
    model.mkdir()
    pinned = write_tree(model, FILES)

    def snapshot() -> list[tuple[str, int, bytes]]:
        return [
            (str(p), p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
            for p in sorted(model.rglob("*"))
        ]

    before = snapshot()
    assert run(model, pinned).returncode == 0
    assert snapshot() == before
    assert sorted(tmp_path.iterdir()) == [model]


def test_the_script_is_posix_sh() -> None:
    """dash -n parses it, and none of the bash-only forms a later edit might bring in is there."""
    assert subprocess.run(["/bin/sh", "-n", "-c", VERIFY_SCRIPT], check=False).returncode == 0
    for bashism in ("[[", "local ", "function ", "pipefail", "<<<", "${!"):
        assert bashism not in VERIFY_SCRIPT, bashism


# --- the init container -----------------------------------------------------------------------------------


def test_the_init_container() -> None:
    container = build_verify_container(
        model_name="mistral-small", manifest_sha256="sha256:" + "d" * 64, image=IMAGE
    )
    assert container == {
        "name": "verify-weights",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", VERIFY_SCRIPT, "verify-weights", "/models/mistral-small", "d" * 64],
        "resources": {
            "limits": {"cpu": "1", "memory": "128Mi"},
            "requests": {"cpu": "500m", "memory": "64Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "weights", "mountPath": "/models", "readOnly": True}],
    }


def test_the_init_container_is_a_valid_pod_container() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [build_verify_container(model_name="m", manifest_sha256="d" * 64, image=IMAGE)],
            "containers": [{"name": "vllm", "image": IMAGE}],
            "volumes": [{"name": "weights", "emptyDir": {}}],
        },
    }
    assert_valid(pod, "1.31")


def test_the_init_containers_own_command_verifies_a_tree(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    pinned = write_tree(tmp_path / "m", FILES)
    container = build_verify_container(
        model_name="m", manifest_sha256=pinned, image=IMAGE, models_dir=str(tmp_path)
    )
    result = subprocess.run(container["command"], capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"manifest_sha256": "abc"},
            "manifest_sha256: 'abc' is not a sha256 (64 lowercase hex digits, optionally sha256:)",
        ),
        ({"model_name": "Mistral_7B"}, "model_name: 'Mistral_7B' is not a DNS-1123 label"),
        ({"image": "rclone/rclone:1.75.1"}, "image: 'rclone/rclone:1.75.1' is not pinned by a sha256 digest"),
        (
            {"image_pull_policy": "Sometimes"},
            "image_pull_policy: 'Sometimes' is not IfNotPresent, Always or Never",
        ),
        ({"models_dir": "models"}, "models_dir: 'models' is not an absolute path"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field(changes: dict[str, str], message: str) -> None:
    args = {"model_name": "m", "manifest_sha256": "d" * 64, "image": IMAGE, **changes}
    with pytest.raises(ValueError) as caught:
        build_verify_container(**args)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_normalize_sha256() -> None:
    assert normalize_sha256("sha256:" + "0" * 64) == "0" * 64
    with pytest.raises(ValueError, match=r"^weights\.manifestSha256: 'x' is not a sha256"):
        normalize_sha256("x", field="weights.manifestSha256")
