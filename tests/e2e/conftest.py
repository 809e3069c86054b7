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
from tests.e2e.sources import CHART_SOURCES, chart_mirror, crd_documents

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


PlaneFactory = Callable[[str], ControlPlane]


@pytest.fixture(scope="session")
def control_planes(
    e2e_tools: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlaneFactory]:
    """`control_planes(name)`: a cluster of its own per name (a customer's stack owns its cluster's
    operators, so two stacks never share one), started on first use, all stopped at the end."""
    planes: dict[str, ControlPlane] = {}

    def plane(name: str) -> ControlPlane:
        if name not in planes:
            started = start_control_plane(tmp_path_factory.mktemp(f"plane-{name}"), e2e_tools)
            planes[name] = started
            # The cluster's CNI brings its own CRDs (sovstack installs no CNI): Cilium's, as on Kapsule.
            started.apply_crds(crd_documents("cilium"))
            # The cluster's monitoring stack brings its namespace (sovstack's alert rules, PodMonitor and
            # dashboards go there when a spec asks for observability; sovstack never creates it).
            started.kubectl("create", "namespace", "monitoring")
        return planes[name]

    try:
        yield plane
    finally:
        for started in planes.values():
            started.stop()
        alive = {name: p.alive() for name, p in planes.items() if p.alive()}
        assert not alive, f"still running after stop: {alive}"


@pytest.fixture(scope="session")
def control_plane(control_planes: PlaneFactory) -> ControlPlane:
    """One cluster for tests that need a server but deploy no stack of their own."""
    return control_planes("shared")


@pytest.fixture(scope="session")
def chart_mirror_url() -> Iterator[str]:
    """The platform's charts, built from their Go modules at the pinned versions, served on loopback."""
    with chart_mirror(list(CHART_SOURCES)) as url:
        yield url


@pytest.fixture(scope="session")
def pulumi_cli(e2e_tools: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> PulumiEnv:
    return pulumi_env(tmp_path_factory.mktemp("pulumi"), e2e_tools)


StackFactory = Callable[[str, dict[str, Any]], E2EStack]


@pytest.fixture(scope="session")
def make_stack(
    control_planes: PlaneFactory, pulumi_cli: PulumiEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackFactory]:
    """`make_stack(name, customer)`: a stack copy in its own project and state, on a cluster of its own
    (`control_planes(name)`) with its nodes registered.

    Whatever the session leaves deployed is destroyed at its end (protected resources excepted).
    """
    made: list[E2EStack] = []

    def make(name: str, customer: dict[str, Any]) -> E2EStack:
        plane = control_planes(name)
        for node in nodes_for(customer):
            plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(node))
        stack = new_stack(name, customer, tmp_path_factory.mktemp(name), pulumi_cli, plane.kubeconfig)
        stack.plane = plane
        made.append(stack)
        return stack

    yield make
    for stack in made:
        try:
            stack.run("destroy", exclude_protected=True)
        except Exception as err:  # a failed cleanup must not hide the test's own result
            print(f"cleanup of {stack.name} failed: {err}")
