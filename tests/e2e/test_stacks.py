"""`pulumi up`, preview, refresh and destroy of every example, as an `existing` cluster, for real.

Each example is copied, switched to the `existing` backend at an operator site (airgap-onprem is one
already), and deployed by `sovstack.infra.deploy` (the Automation API, the real Pulumi CLI and
Kubernetes provider) to the loopback API server. What the mock engine cannot see is checked here:
the objects exist on the server, a second run changes nothing, a change updates in place.
"""

from __future__ import annotations

from typing import Any

import pytest

from sovstack.infra.pipeline import load_stack
from sovstack.infra.plan import run_plan
from tests.e2e.conftest import StackFactory
from tests.e2e.control_plane import ControlPlane
from tests.e2e.harness import E2EStack, as_existing, example_customer, with_chart_mirror

pytestmark = pytest.mark.e2e

EXAMPLES = ("airgap-onprem", "gov-fr", "industrial-eu", "research-se")


def e2e_customer(example: str, mirror: str, gpu_nodes: int | None = None) -> dict[str, Any]:
    """The example as an existing cluster on the loopback chart mirror; `gpu_nodes`: nodes per pool."""
    customer = example_customer(example)
    if gpu_nodes is not None:
        for pool in customer["cluster"]["gpuPools"]:
            pool["maxNodes"] = gpu_nodes
    spec = with_chart_mirror(as_existing(customer), mirror)
    # Not built here: the MinIO provider (its Terraform provider is AGPL); the bucket is the operator's.
    if spec["audit"].get("backend") == "minio":
        spec["audit"]["backend"] = "existing"
    spec["audit"].pop("minioAdminSecret", None)
    # The GPU Operator chart v26.3.3 is not in the Go module proxy (only a 2025 commit of its repository).
    spec["cluster"].setdefault("gpuOperator", {})["enabled"] = False
    return spec


@pytest.fixture(scope="module")
def deployed(make_stack: StackFactory, chart_mirror_url: str) -> dict[str, E2EStack]:
    stacks = {}
    for example in EXAMPLES:
        stack = make_stack(f"e2e-{example}", e2e_customer(example, chart_mirror_url))
        stack.run("up")
        stacks[example] = stack
    return stacks


def kubernetes_objects(stack: E2EStack) -> list[dict[str, Any]]:
    """The Kubernetes objects `sovstack plan` (the mock engine) says `pulumi up` registers."""
    plan = run_plan(load_stack(stack.path))
    return [
        r.inputs
        for r in plan.custom_resources()
        if r.type.startswith("kubernetes:")
        and "Patch" not in r.type
        and not r.type.startswith("kubernetes:helm")
    ]


@pytest.mark.parametrize("example", EXAMPLES)
def test_up_creates_every_planned_object_with_its_labels(deployed: dict[str, E2EStack], example: str) -> None:
    control_plane: ControlPlane = deployed[example].plane
    objects = kubernetes_objects(deployed[example])
    assert len(objects) > 20
    for obj in objects:
        meta = obj["metadata"]
        live = control_plane.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        assert live is not None, (
            f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']} is not on the server"
        )
        labels = live["metadata"].get("labels", {})
        assert labels.items() >= (meta.get("labels") or {}).items(), f"{obj['kind']} {meta['name']}"


@pytest.mark.parametrize("example", EXAMPLES)
def test_a_second_preview_changes_nothing(deployed: dict[str, E2EStack], example: str) -> None:
    deployed[example].run("preview", expect_no_changes=True)
    assert deployed[example].changed() == []


@pytest.mark.parametrize("example", EXAMPLES)
def test_refresh_finds_no_drift(deployed: dict[str, E2EStack], example: str) -> None:
    result = deployed[example].run("refresh", expect_no_changes=True)
    # Every resource read back from the server equals its state: nothing but "same".
    assert set(result.summary.resource_changes) == {"same"}, result.summary.resource_changes
