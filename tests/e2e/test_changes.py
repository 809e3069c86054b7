"""Day 2 with the real engine: what a change previews as, what the server refuses, what destroy leaves.

One stack (a copy of gov-fr as an existing cluster, External Secrets and all) on a cluster of its
own; each test previews a changed copy of the spec against what is deployed, or acts on the server.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from typing import Any

import pulumi
import pytest
import yaml

from sovstack.infra.deploy import DeployError
from sovstack.infra.program import main as program_main
from tests.e2e.conftest import StackFactory
from tests.e2e.harness import E2EStack, skip_await
from tests.e2e.test_stacks import e2e_customer

pytestmark = pytest.mark.e2e

#: Types a model change must never replace or delete (stateful or shared: namespaces, the platform).
NEVER_REPLACED = (
    "kubernetes:core/v1:Namespace",
    "kubernetes:helm.sh/v3:Release",
    "kubernetes:external-secrets.io/v1:ClusterSecretStore",
)


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory, chart_mirror_url: str) -> E2EStack:
    # A third GPU node, so that a third model fits the pool.
    deployed = make_stack("e2e-changes", e2e_customer("gov-fr", chart_mirror_url, gpu_nodes=3))
    deployed.run("up")
    return deployed


def preview_of(stack: E2EStack, change: Any) -> dict[str, set[str]]:
    """Preview the spec changed by `change`, then put the deployed spec back; op -> resource types."""
    deployed = copy.deepcopy(stack.customer)
    changed = copy.deepcopy(deployed)
    change(changed)
    try:
        stack.write(changed)
        stack.run("preview")
        return stack.ops()
    finally:
        stack.write(deployed)


def test_adding_a_model_previews_as_creates_only(stack: E2EStack) -> None:
    def add_model(spec: dict[str, Any]) -> None:
        extra = copy.deepcopy(spec["models"][0])
        extra["name"] = "ministral-3b"
        extra["model"] = "mistral-7b-instruct-v0-3"
        spec["models"].append(extra)

    ops = preview_of(stack, add_model)
    # Nothing replaced or deleted; the one update is the serving namespace's GPU quota, which grows
    # by the new model's GPUs (in place).
    assert set(ops) <= {"same", "create", "update"}, ops
    assert ops["update"] == {"kubernetes:core/v1:ResourceQuota"}
    assert {"kubernetes:apps/v1:Deployment", "sovstack:serving:ModelServing"} <= ops["create"]


@pytest.mark.parametrize(
    ("field", "value", "updated"),
    [
        # More replicas also raise the serving namespace's GPU quota, in place.
        ("replicas", 2, {"kubernetes:apps/v1:Deployment", "kubernetes:core/v1:ResourceQuota"}),
        # 14336 keeps the tensor-parallel size (2 GPUs), so only the server's arguments change.
        ("maxModelLen", 14336, {"kubernetes:apps/v1:Deployment"}),
    ],
)
def test_changing_a_model_updates_in_place(
    stack: E2EStack, field: str, value: int, updated: set[str]
) -> None:
    def change(spec: dict[str, Any]) -> None:
        spec["models"][0][field] = value

    ops = preview_of(stack, change)
    assert set(ops) <= {"same", "update"}, ops
    assert ops["update"] == updated
    assert not set(NEVER_REPLACED) & ops.get("replace", set())


def test_pod_security_is_enforced_by_the_server(stack: E2EStack) -> None:
    namespace = "gov-fr-serving"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": namespace},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": f"registry.example.eu/busybox@sha256:{'0' * 64}",
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    refused = stack.plane.kubectl("apply", "-f", "-", stdin=json.dumps(pod), check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr
    assert "privileged" in refused.stderr


def test_the_policy_pack_refuses_a_resource_added_by_hand_naming_the_rule(stack: E2EStack) -> None:
    """The pack runs in the real engine: a Deployment slipped into the program with an unpinned
    public image passes the program's own guard (which places resources) and is refused at preview."""

    def program_with_a_stray() -> None:
        pulumi.runtime.register_resource_transform(skip_await)
        program_main()
        pulumi.CustomResource(
            "kubernetes:apps/v1:Deployment",
            "stray",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "stray", "namespace": "gov-fr-serving"},
                "spec": {
                    "selector": {"matchLabels": {"app": "stray"}},
                    "template": {
                        "metadata": {"labels": {"app": "stray"}},
                        "spec": {"containers": [{"name": "web", "image": "docker.io/library/nginx:latest"}]},
                    },
                },
            },
        )

    with pytest.raises(DeployError) as refused:
        stack.run("preview", program=program_with_a_stray)
    message = str(refused.value)
    assert "sovstack-images-allowed-and-pinned" in message
    assert "docker.io/library/nginx:latest" in message


def test_destroy_removes_the_unprotected_and_refuses_the_protected(stack: E2EStack) -> None:
    """A protected resource (here marked with `pulumi state protect`, as the audit bucket and the
    cluster are by sovstack) stops a destroy; `exclude_protected` tears down the rest and keeps it."""
    namespace_urn = next(
        e["urn"]
        for e in _urns(stack)
        if e["type"] == "kubernetes:core/v1:Namespace" and "gov-fr-audit" in e["urn"]
    )
    _pulumi(stack, "state", "protect", namespace_urn, "--yes")
    with pytest.raises(DeployError) as refused:
        stack.run("destroy")
    assert "protected" in str(refused.value)
    assert stack.plane.get("v1", "Namespace", "gov-fr-audit") is not None
    stack.run("destroy", exclude_protected=True)
    # What is left: the protected namespace (and the components it sits under, which own nothing else).
    left = [e for e in _urns(stack) if not e["type"].startswith(("pulumi:", "sovstack:"))]
    assert [e["urn"] for e in left] == [namespace_urn]
    assert stack.plane.get("apps/v1", "Deployment", "gov-fr-mistral-7b", "gov-fr-serving") is None
    _pulumi(stack, "state", "unprotect", namespace_urn, "--yes")
    stack.run("destroy")
    assert _urns(stack) == []


def _pulumi(stack: E2EStack, *args: str) -> str:
    """The Pulumi CLI on the stack's own backend (the harness's PATH carries the built CLI)."""
    env = {**os.environ, **stack.pulumi.env, "PULUMI_BACKEND_URL": stack.customer["state"]["backendUrl"]}
    run = subprocess.run(
        ["pulumi", *args, "--stack", stack.name],
        cwd=stack.project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def _urns(stack: E2EStack) -> list[dict[str, str]]:
    state = yaml.safe_load(_pulumi(stack, "stack", "export")) or {}
    resources = state.get("deployment", {}).get("resources") or []
    return [{"urn": r["urn"], "type": r["type"]} for r in resources]
