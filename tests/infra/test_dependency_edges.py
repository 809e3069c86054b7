"""The order `pulumi up` creates things in, as the program declares it (the mock engine records every
resource's dependencies): a custom resource never without the Helm release that defines its CRD, GPU
workloads after the GPU Operator, workloads after the Secrets they read.

The real engine proves the same on an API server with no CRD until a chart installs it
(tests/e2e/test_stacks.py); these tests name the missing edge when one goes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sovstack.components.builders.platform import platform_facts
from sovstack.infra.pipeline import load_stack
from sovstack.infra.plan import PlannedResource, PlanResult, run_plan
from tests.infra.conftest import CUSTOMER_KEY, EXAMPLES, example_customer

RELEASE = "kubernetes:helm.sh/v3:Release"


def everything_on(customer: dict[str, Any]) -> None:
    """gov-fr with every platform piece in use: autoscaling (KEDA), a route (Envoy Gateway and the
    Gateway API), a ServiceMonitor (the Prometheus Operator CRDs), External Secrets already, a rollout
    and observability."""
    model = customer["models"][0]
    model["autoscaling"] = {"minReplicas": 1, "maxReplicas": 2}
    model["route"] = {
        "hostname": "chat.gov-fr.sovstack.internal",
        "gatewayName": "public",
        "gatewayNamespace": "gov-fr-gateway",
    }
    model["serviceMonitor"] = True
    # A rollout's canary is a GPU workload too; observability's rules and monitors are custom resources.
    model["rollout"] = {"weight": 10}
    customer["observability"] = {"gpu": True}


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PlanResult]:
    found = {name: run_plan(load_stack(name)) for name in EXAMPLES}
    customer = example_customer("gov-fr")
    everything_on(customer)
    path = Path(tmp_path_factory.mktemp("all")) / "Pulumi.gov-fr.yaml"
    path.write_text(yaml.safe_dump({"config": {CUSTOMER_KEY: customer}}, sort_keys=False), encoding="utf-8")
    found["gov-fr+everything"] = run_plan(load_stack(path))
    return found


def crd_owners() -> dict[str, str]:
    """`group/Kind` -> the platform chart key whose release defines it."""
    return {f"{crd.group}/{crd.kind}": key for key, fact in platform_facts().items() for crd in fact.crds}


def group_kind(resource: PlannedResource) -> str | None:
    """`group/Kind` of a Kubernetes object's type token (`kubernetes:keda.sh/v1alpha1:ScaledObject`)."""
    if not resource.type.startswith("kubernetes:") or resource.type.count(":") != 2:
        return None
    _, api, kind = resource.type.split(":")
    return f"{api.rpartition('/')[0]}/{kind}"


def release_for(plan: PlanResult, chart_key: str) -> str:
    (release,) = [r.urn for r in plan.resources if r.type == RELEASE and r.name.endswith(f"-{chart_key}")]
    return release


def test_every_custom_resource_waits_for_the_release_of_its_crd(plans: dict[str, PlanResult]) -> None:
    owners = crd_owners()
    checked = set()
    for name, plan in plans.items():
        for resource in plan.resources:
            kind = group_kind(resource)
            if kind not in owners:
                continue
            release = release_for(plan, owners[kind])
            assert release in resource.depends_on, f"{name}: {resource.urn} does not wait for {release}"
            checked.add(kind)
    # Every kind sovstack creates from a platform CRD was met at least once, so none goes unchecked.
    assert {
        "external-secrets.io/ClusterSecretStore",
        "external-secrets.io/ExternalSecret",
        "keda.sh/ScaledObject",
        "gateway.networking.k8s.io/GatewayClass",
        "gateway.networking.k8s.io/Gateway",
        "gateway.networking.k8s.io/HTTPRoute",
        "gateway.envoyproxy.io/SecurityPolicy",
        "gateway.envoyproxy.io/BackendTrafficPolicy",
        "gateway.envoyproxy.io/HTTPRouteFilter",
        "monitoring.coreos.com/ServiceMonitor",
        "monitoring.coreos.com/PrometheusRule",
        "monitoring.coreos.com/PodMonitor",
    } <= checked


def test_the_canary_waits_for_the_gpu_operator(plans: dict[str, PlanResult]) -> None:
    plan = plans["gov-fr+everything"]
    (operator,) = [r.urn for r in plan.resources if r.type == RELEASE and r.name.endswith("-gpu-operator")]
    (canary,) = [
        r
        for r in plan.resources
        if r.type == "kubernetes:apps/v1:Deployment" and r.name.endswith("/gov-fr-mistral-7b-canary")
    ]
    assert operator in canary.depends_on


def test_the_everything_on_variant_installs_every_platform_chart(plans: dict[str, PlanResult]) -> None:
    releases = {r.name for r in plans["gov-fr+everything"].resources if r.type == RELEASE}
    assert {f"gov-fr-platform-{key}" for key in platform_facts()} <= releases


def test_external_secrets_wait_for_their_store(plans: dict[str, PlanResult]) -> None:
    plan = plans["gov-fr"]
    stores = [r.urn for r in plan.resources if r.type.endswith(":ClusterSecretStore")]
    secrets = [r for r in plan.resources if r.type.endswith(":ExternalSecret")]
    assert stores and secrets
    for secret in secrets:
        assert set(stores) <= set(secret.depends_on), secret.urn


def test_gpu_workloads_wait_for_the_gpu_operator_where_sovstack_installs_it(
    plans: dict[str, PlanResult],
) -> None:
    checked = 0
    for name, plan in plans.items():
        operators = [r.urn for r in plan.resources if r.type == RELEASE and r.name.endswith("-gpu-operator")]
        if not operators:
            continue
        for deployment in (r for r in plan.resources if r.type == "kubernetes:apps/v1:Deployment"):
            if "nvidia.com/gpu" not in str(deployment.inputs):
                continue
            assert operators[0] in deployment.depends_on, f"{name}: {deployment.urn}"
            checked += 1
    assert checked > 0
