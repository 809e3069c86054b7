"""The pack over every example stack's real plan (the Pulumi program under mocks): zero violations,
and the right rules firing once a plan is made non-compliant."""

from __future__ import annotations

import copy
from functools import cache

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
)

from sovstack.components.residency import POLICY_ANNOTATION
from sovstack.infra.pipeline import load_stack
from sovstack.infra.plan import PlannedResource, run_plan
from sovstack.policies.rules import AUDIT_BUCKETS, POLICIES, Resource, check_all, containers, pod_template

EXAMPLES = ("industrial-eu", "gov-fr", "research-se", "airgap-onprem")


@cache
def planned(stack: str) -> tuple[PlannedResource, ...]:
    """The custom resources `pulumi up` would register; one mock run per stack for the whole module."""
    return tuple(r for r in run_plan(load_stack(stack)).resources if r.custom)


def resources_of(plan: tuple[PlannedResource, ...]) -> list[Resource]:
    return [Resource(r.type, r.name, copy.deepcopy(r.inputs), r.urn, r.parent) for r in plan]


def policy_resources(resources: list[Resource]) -> list[PolicyResource]:
    def one(r: Resource) -> PolicyResource:
        opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], r.parent)
        return PolicyResource(r.type, r.props, r.urn, r.name, opts, None, None, [], {})

    return [one(r) for r in resources]


@pytest.mark.parametrize("stack", EXAMPLES)
def test_every_example_passes_every_rule(stack: str) -> None:
    resources = resources_of(planned(stack))
    # The rules have something to look at: the audit bucket, GPU workloads and the policy annotation.
    assert sum("AuditSink$" in r.urn and r.type in AUDIT_BUCKETS for r in resources) == 1
    pods = [pod for pod in map(pod_template, resources) if pod is not None]
    assert sum(any("nvidia.com/gpu" in str(c.get("resources")) for _, c in containers(p)) for p in pods) == 2
    assert any(POLICY_ANNOTATION in str(r.props) for r in resources)
    args = StackValidationArgs(policy_resources(resources))
    reported: list[tuple[str, str | None]] = []
    for policy in POLICIES:
        policy.validate(args, lambda message, urn=None, name=policy.name: reported.append((name, message)))
    assert reported == []


def mutate(resources: list[Resource]) -> None:
    """An nginx:latest model server, a GPU pool moved to Amsterdam and a VPC in us-east-1."""
    for r in resources:
        if r.type == "kubernetes:apps/v1:Deployment" and r.name.endswith("-mistral-small"):
            r.props["spec"]["template"]["spec"]["containers"][0]["image"] = "docker.io/library/nginx:latest"
        if r.type == "scaleway:kubernetes/pool:Pool" and "-h100-" in r.name:
            r.props["zone"] = "nl-ams-1"
        if r.type == "scaleway:network/vpc:Vpc":
            r.props["region"] = "us-east-1"


def test_non_compliant_plan_fires_the_right_rules() -> None:
    resources = resources_of(planned("industrial-eu"))
    mutate(resources)
    found = {name: [v.message for v in violations] for name, violations in check_all(resources).items()}
    # Registration order under the mock engine follows Output resolution: compare as sets.
    assert sorted(found["sovstack-region-in-bounds"]) == sorted(
        [
            "scaleway:network/vpc:Vpc::industrial-eu-gpu-vpc.region: 'us-east-1' is not a catalogued scaleway "
            "region, zone or storage region",
            "scaleway:kubernetes/pool:Pool::industrial-eu-gpu-pool-h100-fr-par-2.zone: zone 'nl-ams-1' is not in "
            "scaleway fr-par (Paris, FR, EU) (zones: fr-par-1, fr-par-2, fr-par-3)",
        ]
    )
    where = "Deployment industrial-eu-serving/industrial-eu-mistral-small container vllm"
    assert found["sovstack-images-allowed-and-pinned"] == [
        f"{where}: registry docker.io is not allowed; allowed: rg.fr-par.scw.cloud, rg.nl-ams.scw.cloud, "
        "rg.pl-waw.scw.cloud, registry.fr-par-dc1.sovstack.internal, registry.se-sto-dc1.sovstack.internal "
        "(docker.io/library/nginx:latest)",
        f"{where}: not pinned: add @sha256:<digest> so every pull is the same (docker.io/library/nginx:latest)",
    ]
    assert found["sovstack-no-public-services"] == []
    assert found["sovstack-gpu-workloads-pinned"] == []
    assert found["sovstack-audit-bucket-locked"] == []


def test_operator_profile_tightens_the_stack_policy() -> None:
    """industrial-eu's own policy allows the whole EU; the operator's fr-sovereign profile does not."""
    resources = resources_of(planned("industrial-eu"))
    mutate(resources)
    found = check_all(resources, {"sovstack-region-in-bounds": {"profile": "fr-sovereign"}})
    assert (
        "scaleway:kubernetes/pool:Pool::industrial-eu-gpu-pool-h100-fr-par-2.zone: resource scaleway nl-ams "
        "(Amsterdam, NL, EU) is in NL; policy allows FR"
    ) in [v.message for v in found["sovstack-region-in-bounds"]]


def test_public_service_and_short_retention_in_gov_fr() -> None:
    resources = resources_of(planned("gov-fr"))
    for r in resources:
        if r.type == "kubernetes:core/v1:Service" and r.name.endswith("-mistral-7b"):
            r.props["spec"]["type"] = "LoadBalancer"
        if r.type == "ovh:CloudProject/storage:Storage":
            r.props["objectLock"]["rule"]["period"] = "P180D"
    found = check_all(resources)
    assert [v.message for v in found["sovstack-no-public-services"]] == [
        "Service gov-fr-serving/gov-fr-mistral-7b is type LoadBalancer but the stack declares no public endpoint "
        "(ResourceQuota gov-fr-serving/sovstack-quota sets services.loadbalancers: 0); set "
        "network.publicEndpoint: true in the customer spec"
    ]
    assert [v.message for v in found["sovstack-audit-bucket-locked"]] == [
        "audit bucket gov-fr-audit (ovh:CloudProject/storage:Storage): default retention is 180 days; "
        "policy minimum is 365 days"
    ]
