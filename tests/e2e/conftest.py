"""Fixtures of the end-to-end suite (`make e2e`): tools, the control plane, Pulumi and stack copies.

The tools are built from their Go modules by `make e2e-tools` into a cache outside the repository.
Without them the suite skips, except under CI=true, where a missing tool is built and a tool that
cannot be built fails the run: CI never passes on tests that did not run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.control_plane import ControlPlane, start_control_plane
from tests.e2e.harness import E2EStack, PulumiEnv, new_stack, nodes_for, pulumi_env, tool_paths

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def e2e_tools() -> dict[str, Path]:
    try:
        return tool_paths(build_missing=IN_CI)
    except LookupError as missing:
        pytest.skip(str(missing))


@pytest.fixture(scope="session")
def control_plane(
    e2e_tools: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    plane = start_control_plane(tmp_path_factory.mktemp("control-plane"), e2e_tools)
    try:
        yield plane
    finally:
        plane.stop()
        assert not plane.alive(), f"still running after stop: {plane.alive()}"


@pytest.fixture(scope="session")
def pulumi(e2e_tools: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> PulumiEnv:
    return pulumi_env(tmp_path_factory.mktemp("pulumi"), e2e_tools)


StackFactory = Callable[[str, dict[str, Any]], E2EStack]


@pytest.fixture(scope="session")
def make_stack(
    control_plane: ControlPlane, pulumi: PulumiEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackFactory]:
    """`make_stack(name, customer)`: a stack copy in its own project and state, its nodes registered.

    Whatever the session leaves deployed is destroyed at its end (protected resources excepted).
    """
    made: list[E2EStack] = []

    def make(name: str, customer: dict[str, Any]) -> E2EStack:
        for node in nodes_for(customer):
            control_plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(node))
        stack = new_stack(name, customer, tmp_path_factory.mktemp(name), pulumi, control_plane.kubeconfig)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        try:
            stack.run("destroy", exclude_protected=True)
        except Exception as err:  # a failed cleanup must not hide the test's own result
            print(f"cleanup of {stack.name} failed: {err}")
