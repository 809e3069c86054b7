"""`sovstack preview|up|refresh|destroy STACK`: the real Pulumi engine, run the way the spec declares.

Through Pulumi's Automation API, with the stack's own state backend (`state.backendUrl`), its own
secrets provider (`state.secretsProvider`) and, for preview and up, the CrossGuard pack configured
from the spec's residency policy (a `--policy-pack-config` file written here, never read back from
what the program registers). The program is `sovstack.infra.program.main`, run in this process as an
inline program, so no Pulumi language host is needed; the Pulumi CLI must be on PATH (or given).
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from sovstack.infra.lookups import policy_of
from sovstack.infra.pipeline import LoadedStack
from sovstack.infra.program import STACK_FILE_ENV
from sovstack.infra.program import main as program_main
from sovstack.policies.rules import pack_config_for

OPERATIONS = ("preview", "up", "refresh", "destroy")
#: The policy pack shipped with sovstack (policies/ in a clone, sovstack/policies when installed).
POLICY_PACK = Path(__file__).resolve().parents[1] / "policies"


class DeployError(Exception):
    """The operation could not start (no project, no CLI: exit 2) or Pulumi reported a failure (exit 4:
    a resource failed, the policy pack refused, changes under --expect-no-changes)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class DeployOptions:
    """How to run one operation. `program` and `env` exist for callers that wrap the program (tests)."""

    #: The CrossGuard pack for preview and up: the folder (PulumiPolicy.yaml) or an analyzer binary.
    policy_pack: str | None = str(POLICY_PACK)
    expect_no_changes: bool = False
    on_output: Callable[[str], None] | None = print
    program: Callable[[], None] = program_main
    env: dict[str, str] = field(default_factory=dict)
    pulumi_command: auto.PulumiCommand | None = None
    color: str = "auto"
    on_event: Callable[[auto.EngineEvent], None] | None = None
    #: destroy only: leave protected resources (the audit bucket) and delete everything else.
    exclude_protected: bool = False


def project_dir(stack_file: Path) -> Path:
    """The Pulumi project a stack file belongs to: the nearest folder above it with a Pulumi.yaml."""
    for folder in stack_file.resolve().parents:
        if (folder / "Pulumi.yaml").is_file():
            return folder
    raise DeployError(f"{stack_file}: no Pulumi.yaml above this stack file; run from a sovstack project")


def environment(loaded: LoadedStack, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What the Pulumi CLI runs with: the spec's backend, and Vault's address for hashivault."""
    state = loaded.spec.state
    env = {"PULUMI_BACKEND_URL": state.backend_url, **(extra or {})}
    if state.secrets_provider.startswith("hashivault") and state.vault_address:
        env.setdefault("VAULT_ADDR", os.environ.get("VAULT_ADDR", state.vault_address))
    return env


def select_stack(loaded: LoadedStack, options: DeployOptions) -> auto.Stack:
    """The stack, created in the spec's backend with the spec's secrets provider if it does not exist."""
    env = environment(loaded, options.env)
    workspace = auto.LocalWorkspaceOptions(
        work_dir=str(project_dir(loaded.path)),
        env_vars=env,
        secrets_provider=loaded.spec.state.secrets_provider,
        pulumi_command=options.pulumi_command,
    )
    try:
        return auto.create_or_select_stack(
            loaded.name, project_name="sovstack", program=options.program, opts=workspace
        )
    except auto.errors.CommandError as err:
        raise DeployError(f"{loaded.path}: pulumi could not select stack {loaded.name}: {err}") from None
    except FileNotFoundError:
        raise DeployError(
            f"{loaded.path}: the Pulumi CLI is not on PATH; install it (docs/quickstart.md, Prerequisites) "
            "or use `sovstack plan` and `sovstack render`, which need no Pulumi CLI"
        ) from None


@contextmanager
def policy_pack_config(loaded: LoadedStack) -> Iterator[Path]:
    """The pack's config for this stack, from the spec's own policy, in a file that lives for the run."""
    config = pack_config_for(policy_of(loaded.spec), public_endpoint=loaded.spec.network.public_endpoint)
    with tempfile.TemporaryDirectory(prefix="sovstack-pack-") as folder:
        path = Path(folder) / "policy-pack-config.json"
        path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
        yield path


def analyzer_launcher(pack: Path, folder: Path) -> Path:
    """An executable that runs the policy pack folder `pack` in this interpreter, as an analyzer plugin.

    Given a folder, the Pulumi CLI would start the pack through its Python language host in the venv
    PulumiPolicy.yaml names (`../.venv`, which only a checkout has). Given an executable, it starts that
    directly with the engine's address as its argument, so the pack runs with the very sovstack (and
    residency engine) that runs this command, installed or checked out.
    """
    launcher = folder / "sovstack-policy-pack"
    launcher.write_text(
        "#!/bin/sh\n# Written by sovstack (infra/deploy.py): runs the CrossGuard pack in sovstack's interpreter.\n"
        f'cd {shlex.quote(str(pack))} && exec {shlex.quote(sys.executable)} -u -m pulumi.policy "$1" {shlex.quote(str(pack))}\n',
        encoding="utf-8",
    )
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return launcher


@contextmanager
def policy_pack_for_run(loaded: LoadedStack, pack: str) -> Iterator[tuple[str, Path]]:
    """(the pack as the CLI should get it, its config file for this stack), both living for the run."""
    with policy_pack_config(loaded) as config:
        if Path(pack).is_dir():
            yield str(analyzer_launcher(Path(pack), config.parent)), config
        else:
            yield pack, config


@contextmanager
def program_environment(loaded: LoadedStack) -> Iterator[None]:
    """What the inline program, which runs in this process, must see as `pulumi up`'s program would:
    the backend this run uses and the stack file it runs (infra/state_check.py reads both)."""
    keys = {"PULUMI_BACKEND_URL": loaded.spec.state.backend_url, STACK_FILE_ENV: str(loaded.path)}
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update(keys)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(loaded: LoadedStack, operation: str, options: DeployOptions | None = None) -> Any:
    """Run `operation` on the stack; returns the Automation API result, DeployError on failure."""
    if operation not in OPERATIONS:
        raise DeployError(f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
    options = options or DeployOptions()
    with program_environment(loaded):
        return _run(loaded, operation, options)


def _run(loaded: LoadedStack, operation: str, options: DeployOptions) -> Any:
    stack = select_stack(loaded, options)
    common: dict[str, Any] = {"color": options.color}
    if options.on_output is not None:
        common["on_output"] = options.on_output
    if options.on_event is not None:
        common["on_event"] = options.on_event
    try:
        if operation in ("preview", "up") and options.policy_pack:
            with policy_pack_for_run(loaded, options.policy_pack) as (pack, config):
                packs: dict[str, Any] = {
                    "policy_packs": [pack],
                    "policy_pack_configs": [str(config)],
                }
                if operation == "preview":
                    return stack.preview(expect_no_changes=options.expect_no_changes, **packs, **common)
                return stack.up(**packs, **common)
        if operation == "preview":
            return stack.preview(expect_no_changes=options.expect_no_changes, **common)
        if operation == "up":
            return stack.up(**common)
        if operation == "refresh":
            return stack.refresh(expect_no_changes=options.expect_no_changes, **common)
        return stack.destroy(exclude_protected=options.exclude_protected, **common)
    except auto.errors.CommandError as err:
        raise DeployError(f"{loaded.path}: pulumi {operation} failed:\n{err}", exit_code=4) from None


def remaining_resources(loaded: LoadedStack, options: DeployOptions | None = None) -> list[str]:
    """URNs still in the stack's state after a destroy: what protection kept (components left out)."""
    stack = select_stack(loaded, options or DeployOptions(on_output=None))
    with program_environment(loaded):
        resources = (stack.export_stack().deployment or {}).get("resources") or []
    return [str(r["urn"]) for r in resources if not str(r["type"]).startswith(("pulumi:", "sovstack:"))]
