"""`sovstack preview|refresh|destroy` for real, and a run against another backend or secrets provider
refused before anything is registered.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto
from typer.testing import CliRunner

from sovstack.infra import cli, deploy
from sovstack.infra.program import STACK_FILE_ENV
from tests.e2e.conftest import StackFactory
from tests.e2e.harness import E2EStack, e2e_program
from tests.e2e.test_stacks import e2e_customer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory, chart_mirror_url: str) -> E2EStack:
    deployed = make_stack("e2e-deploy", e2e_customer("airgap-onprem", chart_mirror_url))
    deployed.run("up")
    return deployed


def sovstack(stack: E2EStack, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    """The CLI in this process, with the harness's Pulumi home and PATH (the built CLI and provider)."""
    for key, value in stack.pulumi.env.items():
        monkeypatch.setenv(key, value)
    real_run = deploy.run

    def run_harness_program(loaded: Any, operation: str, options: deploy.DeployOptions) -> Any:
        # The harness's program: the real one plus the transform that skips await on objects no
        # controller serves on a bare apiserver (tests/e2e/harness.py).
        return real_run(loaded, operation, dataclasses.replace(options, program=e2e_program))

    monkeypatch.setattr(deploy, "run", run_harness_program)
    return CliRunner().invoke(cli.app, list(args))


def test_preview_and_refresh_run_on_the_stacks_own_backend(
    stack: E2EStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    previewed = sovstack(stack, monkeypatch, "preview", str(stack.path), "--expect-no-changes")
    assert previewed.exit_code == 0, previewed.output
    assert "sovstack-residency" in previewed.output  # the pack ran
    refreshed = sovstack(stack, monkeypatch, "refresh", str(stack.path), "--expect-no-changes")
    assert refreshed.exit_code == 0, refreshed.output


def _run_against(
    stack: E2EStack, backend: str, secrets_provider: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A plain Automation API run (as `pulumi up` would be) on `backend`, the program seeing what the
    language host would show it; returns the error text."""
    monkeypatch.setenv("PULUMI_BACKEND_URL", backend)
    monkeypatch.setenv(STACK_FILE_ENV, str(stack.path))
    workspace = auto.LocalWorkspaceOptions(
        work_dir=str(stack.project),
        env_vars={**stack.pulumi.env, "PULUMI_BACKEND_URL": backend},
        secrets_provider=secrets_provider,
        pulumi_command=stack.pulumi.command,
    )
    other = auto.create_or_select_stack(
        stack.name, project_name="sovstack", program=e2e_program, opts=workspace
    )
    other.set_config(
        "sovstack:kubeconfig", auto.ConfigValue(value=stack.plane_kubeconfig.read_text(), secret=True)
    )
    with pytest.raises(auto.errors.CommandError) as refused:
        other.up(color="never")
    return str(refused.value)


def test_a_run_on_another_backend_is_refused_before_anything_is_registered(
    stack: E2EStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "other-backend"
    other.mkdir()
    message = _run_against(stack, f"file://{other}", "passphrase", monkeypatch)
    assert "sovstack:customer.state.backendUrl: this run uses the backend file://" in message
    # Nothing reached that backend's state but the stack itself.
    assert registered_types(other) in ([], ["pulumi:pulumi:Stack"])


def registered_types(backend: Path) -> list[str]:
    """The resource types a file backend's checkpoints hold."""
    types = []
    for checkpoint in (backend / ".pulumi" / "stacks").rglob("*.json"):
        latest = json.loads(checkpoint.read_text(encoding="utf-8")).get("checkpoint", {}).get("latest") or {}
        types += [r["type"] for r in latest.get("resources") or []]
    return types


def test_a_stack_encrypted_by_another_secrets_provider_is_refused(
    stack: E2EStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    declared = copy.deepcopy(stack.customer)
    declared["state"]["secretsProvider"] = "hashivault://sovstack-e2e"
    declared["state"]["vaultAddress"] = "https://vault.fr-par-dc1.sovstack.internal:8200"
    deployed = copy.deepcopy(stack.customer)
    try:
        stack.write(declared)
        message = _run_against(stack, stack.customer["state"]["backendUrl"], "passphrase", monkeypatch)
    finally:
        stack.write(deployed)
    assert (
        "sovstack:customer.state.secretsProvider: the stack encrypts its secrets with passphrase" in message
    )


def test_destroy_tears_the_stack_down_and_lists_what_it_kept(
    stack: E2EStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    destroyed = sovstack(stack, monkeypatch, "destroy", str(stack.path))
    assert destroyed.exit_code == 0, destroyed.output
    assert "kept (protected" not in destroyed.output  # nothing is protected on an existing cluster here
    namespace = stack.plane.get("v1", "Namespace", "airgap-onprem-serving")
    assert namespace is None or "deletionTimestamp" in namespace["metadata"]
