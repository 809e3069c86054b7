"""sovstack as a user installs it: the wheel in an empty virtualenv, run from a folder that is not this
repository, against the real Pulumi CLI.

The wheel's dependencies come from PyPI at the versions constraints.txt pins (the e2e suite may
download; unit tests never do). Everything below runs the *installed* code: the working directory holds
only copies of the stack files, and the test checks where `sovstack` is imported from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml
from pulumi import automation as auto

from sovstack.infra.deploy import DeployOptions, select_stack
from sovstack.infra.pipeline import load_stack
from tests.e2e.conftest import StackFactory
from tests.e2e.harness import KUBECONFIG_KEY, ROOT
from tests.e2e.test_stacks import e2e_customer
from tests.wheel import build_wheel

EXAMPLES = ("industrial-eu", "gov-fr", "research-se", "airgap-onprem")


class Installed:
    def __init__(self, prefix: Path, workdir: Path) -> None:
        self.prefix = prefix
        self.workdir = workdir

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.prefix / "bin" / "sovstack"), *args],
            cwd=self.workdir,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("installed")
    wheels = root / "wheels"
    wheels.mkdir()
    wheel = build_wheel(wheels)
    prefix = root / "venv"
    venv.EnvBuilder(with_pip=True).create(prefix)
    installing = subprocess.run(
        # [schemas]: the residency report's schema check runs, as it does in the checkout.
        [
            str(prefix / "bin" / "pip"),
            "install",
            "-q",
            "-c",
            str(ROOT / "constraints.txt"),
            f"{wheel}[schemas]",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=1800,
        check=False,
    )
    assert installing.returncode == 0, installing.stderr[-4000:]
    workdir = root / "customer-repo"
    (workdir / "stacks").mkdir(parents=True)
    for example in EXAMPLES:
        shutil.copy(ROOT / "stacks" / f"Pulumi.{example}.yaml", workdir / "stacks")
    shutil.copy(ROOT / "Pulumi.yaml", workdir / "Pulumi.yaml")
    return Installed(prefix, workdir)


def test_the_cli_runs_from_the_installed_package(installed: Installed) -> None:
    where = subprocess.run(
        [str(installed.prefix / "bin" / "python"), "-c", "import sovstack; print(sovstack.__file__)"],
        cwd=installed.workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.prefix)
    validated = installed.run("validate", *(f"stacks/Pulumi.{e}.yaml" for e in EXAMPLES))
    assert validated.returncode == 0, validated.stdout + validated.stderr


def tree(folder: Path) -> dict[str, bytes]:
    """Every file of a render but the inputs record, whose digest covers the code's own files (the
    wheel's and the checkout's differ by design: tests, docs)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".sovstack-inputs"
    }


def test_render_from_the_wheel_is_byte_identical_to_render_from_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    """Templates, data files and the catalog all travel in the wheel: the output cannot tell them apart.
    The report's time and commit are fixed (the wheel's stacks are not in a git repository)."""
    fixed = {
        "SOURCE_DATE_EPOCH": "1764547200",
        "SOVSTACK_GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567",
    }
    # Each render at the root of its own repository, so both name the same paths.
    offline = ["--demo", "--repo-url", "https://git.example.eu/platform/gitops.git", "--repo-root"]
    from_wheel = installed.run(
        "render",
        "stacks/Pulumi.gov-fr.yaml",
        "--out",
        str(tmp_path / "wheel"),
        *offline,
        str(tmp_path / "wheel"),
        env=fixed,
    )
    assert from_wheel.returncode == 0, from_wheel.stderr
    from_checkout = subprocess.run(
        [
            str(Path(sys.executable).parent / "sovstack"),
            "render",
            "gov-fr",
            "--out",
            str(tmp_path / "checkout"),
            *offline,
            str(tmp_path / "checkout"),
        ],
        cwd=ROOT,
        env={**os.environ, **fixed},
        capture_output=True,
        text=True,
        check=False,
    )
    assert from_checkout.returncode == 0, from_checkout.stderr
    rendered = tree(tmp_path / "wheel")
    assert len(rendered) > 10
    assert rendered == tree(tmp_path / "checkout")


def test_plan_from_the_wheel_registers_the_whole_stack(installed: Installed) -> None:
    planned = installed.run("plan", "stacks/Pulumi.research-se.yaml", "--json")
    assert planned.returncode == 0, planned.stderr
    resources = yaml.safe_load(planned.stdout)["resources"]
    types = {r["type"] for r in resources}
    assert {"sovstack:stack:SovereignStack", "kubernetes:apps/v1:Deployment"} <= types


def test_the_installed_program_previews_against_a_real_engine(
    installed: Installed, make_stack: StackFactory, chart_mirror_url: str
) -> None:
    """`sovstack preview` from the wheel: the inline program and the policy pack it carries, the built
    Pulumi CLI and provider, the stack's own file backend, a loopback API server."""
    stack = make_stack("e2e-installed", e2e_customer("research-se", chart_mirror_url))
    selected = select_stack(
        load_stack(stack.path), DeployOptions(env=dict(stack.pulumi.env), pulumi_command=stack.pulumi.command)
    )
    selected.set_config(
        KUBECONFIG_KEY, auto.ConfigValue(value=stack.plane_kubeconfig.read_text(), secret=True)
    )
    # The example's placeholders (all-zero weights digests) stay: a demonstration deployment.
    selected.set_config("sovstack:demo", auto.ConfigValue(value="true"))
    previewed = installed.run("preview", str(stack.path), env=stack.pulumi.env)
    assert previewed.returncode == 0, previewed.stdout[-4000:] + previewed.stderr[-4000:]
    assert "kubernetes:apps/v1:Deployment" in previewed.stdout
    assert "to create" in previewed.stdout
    assert "sovstack-residency" in previewed.stdout  # the pack ran, from the installed package
