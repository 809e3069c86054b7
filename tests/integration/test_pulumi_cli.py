"""Integration tests that need the Pulumi CLI. They skip cleanly where `pulumi` is absent.

Run them in your own CI (the CLI installed, a runner in region):

    make integration                                    # project and stack files, offline
    SOVSTACK_INTEGRATION_STACK=gov-fr make integration  # plus a real preview with the policy pack

The preview test needs the stack's cloud credentials in the environment (see docs/quickstart.md);
it uses a throwaway local state backend, so it never touches your real state.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PULUMI = shutil.which("pulumi")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PULUMI is None, reason="the Pulumi CLI is not installed"),
]


@pytest.fixture
def local_backend(tmp_path: Path) -> dict[str, str]:
    """Environment for a throwaway file:// backend and passphrase secrets."""
    home = tmp_path / "pulumi-home"
    state = tmp_path / "state"
    state.mkdir()
    return {
        **os.environ,
        "PULUMI_HOME": str(home),
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": os.environ.get("PULUMI_CONFIG_PASSPHRASE", "integration-only"),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }


def pulumi(*args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    assert PULUMI is not None
    return subprocess.run(
        [PULUMI, *args, "--non-interactive"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("stack", ["industrial-eu", "gov-fr", "research-se", "airgap-onprem"])
def test_pulumi_reads_the_project_and_each_stack_file(stack: str, local_backend: dict[str, str]) -> None:
    """Pulumi.yaml (with its template section) and stacks/Pulumi.<stack>.yaml parse as Pulumi sees them."""
    created = pulumi("stack", "init", stack, "--secrets-provider", "passphrase", env=local_backend)
    assert created.returncode == 0, created.stderr
    shown = pulumi("config", "--stack", stack, "--json", env=local_backend)
    assert shown.returncode == 0, shown.stderr
    config = json.loads(shown.stdout)
    customer = json.loads(config["sovstack:customer"]["value"])
    assert customer["name"] == stack


@pytest.mark.skipif(
    not os.environ.get("SOVSTACK_INTEGRATION_STACK"),
    reason="set SOVSTACK_INTEGRATION_STACK and cloud credentials",
)
def test_preview_with_the_policy_pack(local_backend: dict[str, str]) -> None:
    stack = os.environ["SOVSTACK_INTEGRATION_STACK"]
    assert (
        pulumi("stack", "init", stack, "--secrets-provider", "passphrase", env=local_backend).returncode == 0
    )
    preview = pulumi(
        "preview", "--stack", stack, "--policy-pack", "policies", "--diff", env=local_backend, timeout=1800
    )
    assert preview.returncode == 0, preview.stdout[-4000:] + preview.stderr[-4000:]
    assert "sovstack:stack:SovereignStack" in preview.stdout
