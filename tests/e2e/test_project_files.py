"""The Pulumi CLI itself reads the project and every committed stack file as sovstack means them.

`Pulumi.yaml` (runtime, `stackConfigDir: stacks`, the template section) and each
`stacks/Pulumi.<customer>.yaml` are parsed by the built CLI in a copy of the project (a `stack init`
writes encryption settings into the stack file, which must not touch the repository).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT, PulumiEnv

EXAMPLES = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "Pulumi.yaml", copy / "Pulumi.yaml")
    shutil.copytree(ROOT / "stacks", copy / "stacks")
    (copy / "state").mkdir()
    return copy


def pulumi(env: PulumiEnv, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(shutil.which("pulumi", path=env.env["PATH"])), *args, "--non-interactive"],
        cwd=project,
        env={**env.env, "PULUMI_BACKEND_URL": f"file://{project / 'state'}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_there_are_examples_to_read() -> None:
    assert {"gov-fr", "industrial-eu", "research-se", "airgap-onprem"} <= set(EXAMPLES)


@pytest.mark.parametrize("stack", EXAMPLES)
def test_pulumi_reads_the_project_and_each_stack_file(
    stack: str, project: Path, pulumi_cli: PulumiEnv
) -> None:
    created = pulumi(pulumi_cli, project, "stack", "init", stack, "--secrets-provider", "passphrase")
    assert created.returncode == 0, created.stderr
    shown = pulumi(pulumi_cli, project, "config", "--stack", stack, "--json")
    assert shown.returncode == 0, shown.stderr
    customer = json.loads(json.loads(shown.stdout)["sovstack:customer"]["value"])
    assert customer["name"] == stack
    # The CLI wrote its encryption settings into the copy's stacks/ folder (stackConfigDir), not beside
    # Pulumi.yaml: the project setting is honoured.
    assert "encryptionsalt" in (project / "stacks" / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8")
    assert not (project / f"Pulumi.{stack}.yaml").exists()
