"""Stable identities: growing a customer stack never renames, replaces or exposes to deletion what exists.

A URN is what Pulumi tracks a resource by: a resource whose URN changes is deleted and created
again. Adding a model or a GPU pool, or changing a replica count, must leave every existing URN in
place. Stateful resources (cluster, pools, Talos secrets, the audit bucket) carry `protect`, and
the audit bucket `retain_on_delete`, so even a wrong change cannot delete them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from sovstack.infra import plan as plan_module
from sovstack.infra.pipeline import load_stack
from sovstack.infra.plan import PlannedResource, PlanResult, run_plan
from sovstack.infra.stackfile import CUSTOMER_KEY
from tests.infra.conftest import example_customer

REPO_ROOT = Path(__file__).resolve().parents[2]

Customer = dict[str, Any]


class OptionsMonitor(plan_module._Monitor):
    """`run_plan`'s monitor, also recording the `protect` and `retainOnDelete` the engine receives.

    Under mocks these options never reach `Mocks.new_resource` (they are not inputs), but the SDK
    sends them in the RegisterResourceRequest, after inheriting `protect` from the parent: this is
    exactly what `pulumi up` would hand the engine, for every resource, so nothing is inferred.
    """

    last: OptionsMonitor | None = None

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.options: dict[str, tuple[bool, bool]] = {}
        OptionsMonitor.last = self

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        response = super().RegisterResource(request)
        self.options[response.urn] = (bool(request.protect), bool(request.retainOnDelete))
        return response


class Planned:
    """One whole-program run: the plan and the options each resource was registered with."""

    def __init__(self, plan: PlanResult, options: dict[str, tuple[bool, bool]]) -> None:
        self.plan = plan
        self.options = options
        self.urns = {r.urn for r in plan.resources}

    def one(self, typ: str, name: str) -> PlannedResource:
        found = [r for r in self.plan.resources if r.type == typ and r.name == name]
        assert len(found) == 1, f"expected one {typ} {name!r}, found {len(found)}"
        return found[0]

    def protect(self, typ: str, name: str) -> bool:
        return self.options[self.one(typ, name).urn][0]

    def retain_on_delete(self, typ: str, name: str) -> bool:
        return self.options[self.one(typ, name).urn][1]


def plan_of(ref: str | Path) -> Planned:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plan_module, "_Monitor", OptionsMonitor)
        plan = run_plan(load_stack(ref))
    assert OptionsMonitor.last is not None
    return Planned(plan, OptionsMonitor.last.options)


# ------------------------------------------------------------------------------------------ changes
def add_model_industrial(c: Customer) -> None:
    c["models"].append(
        {
            "name": "mistral-7b",
            "model": "mistral-7b-instruct-v0-3",
            "pool": "h100",
            "maxModelLen": 16384,
            "concurrency": 8,
            "weights": {
                "s3": {
                    "url": "s3://industrial-eu-weights/mistral-7b/",
                    "endpoint": "https://s3.fr-par.scw.cloud",
                    "credentialsSecret": "weights-s3",
                }
            },
            "apiKeySecret": {"name": "industrial-eu-api-key", "key": "api-key"},
        }
    )


def add_pool_industrial(c: Customer) -> None:
    c["cluster"]["gpuPools"].append(
        {
            "name": "l40s",
            "gpuType": "L40S",
            "nodeType": "L40S-4-48G",
            "gpusPerNode": 4,
            "minNodes": 1,
            "maxNodes": 2,
            "zones": ["fr-par-2"],
        }
    )


def more_replicas_industrial(c: Customer) -> None:
    c["models"][1]["replicas"] = 2  # ministral-8b: 1 -> 2 (the h100 pool has room for it)


def add_model_research(c: Customer) -> None:
    c["models"].append(
        {
            "name": "mistral-7b",
            "model": "mistral-7b-instruct-v0-3",
            "pool": "hgx",
            "maxModelLen": 16384,
            "concurrency": 8,
            "weights": {"pvc": {"claimName": "mistral-7b-weights", "manifestSha256": "ab" * 32}},
            "apiKeySecret": {"name": "research-se-api-key"},
        }
    )


def add_pool_research(c: Customer) -> None:
    c["cluster"]["gpuPools"].append(
        {
            "name": "l40s",
            "gpuType": "L40S",
            "gpusPerNode": 4,
            "minNodes": 1,
            "maxNodes": 1,
            "zones": ["se-sto-dc1-a"],
        }
    )
    c["cluster"]["talos"]["machines"].append(
        {
            "name": "gpu-3",
            "address": "10.40.1.23",
            "role": "worker",
            "zone": "se-sto-dc1-a",
            "pool": "l40s",
            "gpuType": "L40S",
            "gpuCount": 4,
        }
    )


def more_replicas_research(c: Customer) -> None:
    c["models"][1]["replicas"] = 2  # mixtral-8x7b: 1 -> 2


CHANGES: dict[str, tuple[str, Callable[[Customer], None]]] = {
    "industrial-eu+model": ("industrial-eu", add_model_industrial),
    "industrial-eu+pool": ("industrial-eu", add_pool_industrial),
    "industrial-eu+replicas": ("industrial-eu", more_replicas_industrial),
    "research-se+model": ("research-se", add_model_research),
    "research-se+pool": ("research-se", add_pool_research),
    "research-se+replicas": ("research-se", more_replicas_research),
}


@pytest.fixture(scope="module")
def baselines() -> dict[str, Planned]:
    return {name: plan_of(name) for name in ("industrial-eu", "research-se")}


@pytest.fixture(scope="module")
def changed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Planned]]:
    plans: dict[str, Planned] = {}
    for key, (example, change) in CHANGES.items():
        customer = example_customer(example)
        change(customer)
        folder = tmp_path_factory.mktemp(key.replace("+", "-"))
        path = folder / f"Pulumi.{example}.yaml"
        path.write_text(
            yaml.safe_dump({"config": {CUSTOMER_KEY: customer}}, sort_keys=False), encoding="utf-8"
        )
        plans[key] = plan_of(path)
    yield plans


# ---------------------------------------------------------------------------------------- identities
@pytest.mark.parametrize("key", ["industrial-eu+model", "research-se+model"])
def test_adding_a_model_keeps_every_existing_urn(
    baselines: dict[str, Planned], changed: dict[str, Planned], key: str
) -> None:
    example = CHANGES[key][0]
    before, after = baselines[example], changed[key]
    assert before.urns <= after.urns, sorted(before.urns - after.urns)
    added = after.urns - before.urns
    # The change took effect: a new ModelServing with its Deployment, Service and PDB.
    assert after.one("sovstack:serving:ModelServing", f"{example}-mistral-7b").urn in added
    deployment = after.one(
        "kubernetes:apps/v1:Deployment", f"{example}-mistral-7b/{example}-serving/{example}-mistral-7b"
    )
    assert deployment.urn in added
    assert all(":serving:" in urn or "ModelServing$" in urn for urn in added), sorted(added)


@pytest.mark.parametrize(
    ("key", "pool_type", "pool_name"),
    [
        ("industrial-eu+pool", "scaleway:kubernetes/pool:Pool", "industrial-eu-gpu-pool-l40s-fr-par-2"),
        (
            "research-se+pool",
            "talos:machine/configurationApply:ConfigurationApply",
            "research-se-gpu-apply-gpu-3",
        ),
    ],
)
def test_adding_a_gpu_pool_keeps_every_existing_urn(
    baselines: dict[str, Planned], changed: dict[str, Planned], key: str, pool_type: str, pool_name: str
) -> None:
    example = CHANGES[key][0]
    before, after = baselines[example], changed[key]
    assert before.urns <= after.urns, sorted(before.urns - after.urns)
    new_pool = after.one(pool_type, pool_name)
    assert new_pool.urn in after.urns - before.urns


@pytest.mark.parametrize(
    ("key", "deployment", "before_replicas", "after_replicas"),
    [
        (
            "industrial-eu+replicas",
            "industrial-eu-ministral-8b/industrial-eu-serving/industrial-eu-ministral-8b",
            1,
            2,
        ),
        (
            "research-se+replicas",
            "research-se-mixtral-8x7b/research-se-serving/research-se-mixtral-8x7b",
            1,
            2,
        ),
    ],
)
def test_changing_replicas_keeps_the_same_urns(
    baselines: dict[str, Planned],
    changed: dict[str, Planned],
    key: str,
    deployment: str,
    before_replicas: int,
    after_replicas: int,
) -> None:
    example = CHANGES[key][0]
    before, after = baselines[example], changed[key]
    assert before.urns == after.urns
    typ = "kubernetes:apps/v1:Deployment"
    assert before.one(typ, deployment).inputs["spec"]["replicas"] == before_replicas
    assert after.one(typ, deployment).inputs["spec"]["replicas"] == after_replicas


# ---------------------------------------------------------------------------------------- protection
def test_managed_cluster_and_pools_are_protected(baselines: dict[str, Planned]) -> None:
    planned = baselines["industrial-eu"]
    assert planned.protect("scaleway:kubernetes/cluster:Cluster", "industrial-eu-gpu-cluster")
    pools = [r for r in planned.plan.resources if r.type == "scaleway:kubernetes/pool:Pool"]
    assert sorted(r.name for r in pools) == [
        "industrial-eu-gpu-pool-h100-fr-par-2",
        "industrial-eu-gpu-pool-system-fr-par-2",
    ]
    assert all(planned.options[r.urn][0] for r in pools)
    # Control: the recorder tells protected from unprotected (stateless objects are replaceable).
    deployment = "industrial-eu-mistral-small/industrial-eu-serving/industrial-eu-mistral-small"
    assert not planned.protect("kubernetes:apps/v1:Deployment", deployment)


def test_added_pool_is_protected_too(changed: dict[str, Planned]) -> None:
    planned = changed["industrial-eu+pool"]
    assert planned.protect("scaleway:kubernetes/pool:Pool", "industrial-eu-gpu-pool-l40s-fr-par-2")


def test_talos_cluster_identity_is_protected(baselines: dict[str, Planned]) -> None:
    planned = baselines["research-se"]
    # The machine secrets are the cluster's identity (its CAs): lost, the cluster cannot be managed.
    assert planned.protect("talos:machine/secrets:Secrets", "research-se-gpu-secrets")
    assert planned.protect("talos:machine/bootstrap:Bootstrap", "research-se-gpu-bootstrap")


@pytest.mark.parametrize(
    ("example", "typ", "name"),
    [
        ("industrial-eu", "scaleway:object/bucket:Bucket", "industrial-eu-audit-bucket"),
        (
            "industrial-eu",
            "scaleway:object/bucketLockConfiguration:BucketLockConfiguration",
            "industrial-eu-audit-lock",
        ),
        ("research-se", "minio:index/s3Bucket:S3Bucket", "research-se-audit-bucket"),
        ("research-se", "minio:index/s3BucketVersioning:S3BucketVersioning", "research-se-audit-versioning"),
    ],
)
def test_audit_bucket_is_protected_and_retained_on_delete(
    baselines: dict[str, Planned], example: str, typ: str, name: str
) -> None:
    planned = baselines[example]
    assert planned.protect(typ, name)
    assert planned.retain_on_delete(typ, name)


# ------------------------------------------------------------------------------------- weight volumes
def _pod_spec(resource: PlannedResource) -> dict[str, Any]:
    spec: dict[str, Any] = resource.inputs["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("example", ["industrial-eu", "research-se"])
def test_weights_are_never_owned_by_the_stack(baselines: dict[str, Planned], example: str) -> None:
    """sovstack never creates a volume holding model weights, so no stack change can delete one.

    Weights on a PersistentVolumeClaim are pre-provisioned by the operator and only referenced (read
    only) by name; weights fetched from S3 land in an ephemeral pod volume (emptyDir). No
    PersistentVolumeClaim, PersistentVolume or StatefulSet claim template is ever registered.
    """
    planned = baselines[example]
    kinds = {r.type.rsplit(":", 1)[1] for r in planned.plan.resources}
    assert not kinds & {"PersistentVolumeClaim", "PersistentVolume", "StatefulSet"}
    spec = load_stack(example).spec
    for model in spec.models:
        deployment = planned.one(
            "kubernetes:apps/v1:Deployment",
            f"{example}-{model.name}/{example}-serving/{example}-{model.name}",
        )
        volumes = {v["name"]: v for v in _pod_spec(deployment)["volumes"]}
        weights = volumes["weights"]
        if model.weights.pvc is not None:
            assert weights == {
                "name": "weights",
                "persistentVolumeClaim": {"claimName": model.weights.pvc.claim_name, "readOnly": True},
            }
        else:
            assert set(weights) == {"name", "emptyDir"}, weights
        # No volume of the pod is a claim sovstack would own.
        claims = [v for v in volumes.values() if "persistentVolumeClaim" in v or "ephemeral" in v]
        assert claims == ([weights] if model.weights.pvc is not None else [])


def test_research_se_has_both_kinds_of_weights() -> None:
    """The weights test above covers both cases through research-se (one S3 model, one PVC model)."""
    spec = load_stack("research-se").spec
    assert sorted("pvc" if m.weights.pvc else "s3" for m in spec.models) == ["pvc", "s3"]


# ------------------------------------------------------------------------------------------ rollouts
NEW_IMAGE = "rg.fr-par.scw.cloud/sovstack-mirror/vllm-openai:v0.15.0@sha256:" + "a" * 64
NEW_WEIGHTS = {
    "s3": {
        "url": "s3://industrial-eu-weights/mistral-small-3.1-r2/",
        "endpoint": "https://s3.fr-par.scw.cloud",
        "credentialsSecret": "weights-s3",
    }
}


def routed_industrial(c: Customer) -> None:
    """industrial-eu with mistral-small behind a Gateway route (a rollout splits the route)."""
    c["platform"]["imageRegistry"] = "rg.fr-par.scw.cloud/sovstack-mirror"
    c["models"][0]["route"] = {
        "hostname": "llm.industrial.example.eu",
        "gatewayName": "public",
        "gatewayNamespace": "gateway",
    }


def rollout_industrial(c: Customer) -> None:
    routed_industrial(c)
    c["models"][0]["rollout"] = {"image": NEW_IMAGE, "weights": NEW_WEIGHTS, "weight": 10}


def promoted_industrial(c: Customer) -> None:
    routed_industrial(c)
    c["models"][0]["image"] = NEW_IMAGE
    c["models"][0]["weights"] = NEW_WEIGHTS


def _plan_changed(
    tmp_path_factory: pytest.TempPathFactory, key: str, change: Callable[[Customer], None]
) -> Planned:
    customer = example_customer("industrial-eu")
    change(customer)
    path = tmp_path_factory.mktemp(key) / "Pulumi.industrial-eu.yaml"
    path.write_text(yaml.safe_dump({"config": {CUSTOMER_KEY: customer}}, sort_keys=False), encoding="utf-8")
    return plan_of(path)


@pytest.fixture(scope="module")
def rollout_plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Planned]:
    changes = {"routed": routed_industrial, "rollout": rollout_industrial, "promoted": promoted_industrial}
    return {key: _plan_changed(tmp_path_factory, key, change) for key, change in changes.items()}


def _inputs_by_urn(planned: Planned) -> dict[str, Any]:
    return {r.urn: r.inputs for r in planned.plan.resources}


SERVING = "industrial-eu-mistral-small/industrial-eu-serving/industrial-eu-mistral-small"


def test_adding_a_rollout_only_adds_the_canary_and_changes_the_route_weights(
    rollout_plans: dict[str, Planned],
) -> None:
    before, after = rollout_plans["routed"], rollout_plans["rollout"]
    assert before.urns <= after.urns, sorted(before.urns - after.urns)
    added = after.urns - before.urns
    assert added == {
        after.one("kubernetes:apps/v1:Deployment", f"{SERVING}-canary").urn,
        after.one("kubernetes:core/v1:Service", f"{SERVING}-canary").urn,
    }
    old, new = _inputs_by_urn(before), _inputs_by_urn(after)
    changed = {urn for urn in before.urns if old[urn] != new[urn]}
    route = after.one("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", SERVING)
    quota = after.one(
        "kubernetes:core/v1:ResourceQuota", "industrial-eu-network/industrial-eu-serving/sovstack-quota"
    )
    # The route's weights, and the GPU quota (in place) that must make room for the canary's GPUs.
    assert changed == {route.urn, quota.urn}
    assert route.inputs["spec"]["rules"][0]["backendRefs"] == [
        {"kind": "Service", "name": "industrial-eu-mistral-small", "port": 8000, "weight": 90},
        {"kind": "Service", "name": "industrial-eu-mistral-small-canary", "port": 8000, "weight": 10},
    ]
    canary = after.one("kubernetes:apps/v1:Deployment", f"{SERVING}-canary").inputs
    containers = {c["name"]: c for c in canary["spec"]["template"]["spec"]["containers"]}
    assert containers["vllm"]["image"] == NEW_IMAGE
    # The stable Deployment is untouched, name and inputs.
    stable = after.one("kubernetes:apps/v1:Deployment", SERVING)
    assert new[stable.urn] == old[stable.urn]


def test_promoting_updates_the_stable_deployment_in_place_and_removes_the_canary(
    rollout_plans: dict[str, Planned],
) -> None:
    before, rolling, after = rollout_plans["routed"], rollout_plans["rollout"], rollout_plans["promoted"]
    assert after.urns == before.urns  # same names as before the rollout: the canary is gone
    assert rolling.urns - after.urns == {
        rolling.one("kubernetes:apps/v1:Deployment", f"{SERVING}-canary").urn,
        rolling.one("kubernetes:core/v1:Service", f"{SERVING}-canary").urn,
    }
    stable = after.one("kubernetes:apps/v1:Deployment", SERVING)
    containers = {c["name"]: c for c in stable.inputs["spec"]["template"]["spec"]["containers"]}
    assert containers["vllm"]["image"] == NEW_IMAGE
    route = after.one("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", SERVING)
    assert route.inputs["spec"]["rules"][0]["backendRefs"] == [
        {"kind": "Service", "name": "industrial-eu-mistral-small", "port": 8000}
    ]
