"""The CrossGuard rules, called directly on hand-built resources, plus one adapter test per rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from sovstack.components.residency import POLICY_ANNOTATION, load_profiles, policy_annotation
from sovstack.policies.rules import (
    NO_POLICY,
    POLICIES,
    RULES,
    Resource,
    Violation,
    audit_bucket_locked,
    check_all,
    find_policies,
    gpu_workloads_pinned,
    images_allowed_and_pinned,
    no_public_services,
    plain,
    region_in_bounds,
)

DIGEST = "@sha256:" + "a" * 64
GOOD_IMAGE = f"rg.fr-par.scw.cloud/mirror/vllm-openai:v0.14.0{DIGEST}"
AUDIT = "urn:pulumi:s::sovstack::sovstack:stack:SovereignStack$sovstack:audit:AuditSink"
AUDIT_PARENT = f"{AUDIT}::acme-audit"


def run(rule: str, resources: list[Resource], config: dict[str, Any] | None = None) -> list[str]:
    return [v.message for v in check_all(resources, {rule: config or {}})[rule]]


def namespace(name: str, region: str = "fr-par", profile: str | None = "eu") -> Resource:
    meta: dict[str, Any] = {"name": name, "labels": {"sovstack.io/region": region}}
    if profile:
        meta["annotations"] = {POLICY_ANNOTATION: policy_annotation(load_profiles()[profile])}
    return Resource("kubernetes:core/v1:Namespace", name, {"metadata": meta}, urn=f"urn:ns:{name}")


def workload(
    kind: str = "Deployment",
    image: str = GOOD_IMAGE,
    gpus: int = 1,
    region: str | None = "fr-par",
    tolerations: list[dict[str, Any]] | None = None,
    init_image: str | None = None,
) -> Resource:
    pod_spec: dict[str, Any] = {
        "containers": [
            {"name": "vllm", "image": image, "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
        ],
        "tolerations": tolerations
        if tolerations is not None
        else [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}],
    }
    if init_image:
        pod_spec["initContainers"] = [{"name": "fetch", "image": init_image}]
    if region:
        expression = {"key": "sovstack.io/region", "operator": "In", "values": [region]}
        pod_spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [expression]}]
                }
            }
        }
    template = {"metadata": {"labels": {"app": "m"}}, "spec": pod_spec}
    spec: dict[str, Any] = {"template": template}
    if kind == "CronJob":
        spec = {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}}
    props = {"metadata": {"name": "m", "namespace": "acme-serving"}, "spec": spec}
    if kind == "Pod":
        props = {"metadata": props["metadata"], "spec": pod_spec}
    group = {"Pod": "core/v1", "Job": "batch/v1", "CronJob": "batch/v1"}.get(kind, "apps/v1")
    return Resource(f"kubernetes:{group}:{kind}", "acme-serving/m", props, urn=f"urn:{kind}:m")


# -- where the policy comes from ----------------------------------------------------------------
def test_policy_from_namespace_annotation() -> None:
    policies, problems = find_policies([namespace("acme-serving", profile="fr-sovereign")], {})
    assert problems == []
    assert [p.countries for p in policies] == [("FR",)]


def test_policy_from_pack_config_with_overrides() -> None:
    policies, problems = find_policies([], {"profile": "eu", "overrides": {"minAuditRetentionDays": 400.0}})
    assert problems == []
    assert policies[0].min_audit_retention_days == 400


def test_no_policy_is_a_violation() -> None:
    assert run("sovstack-region-in-bounds", []) == [NO_POLICY]
    assert run("sovstack-audit-bucket-locked", [], {"profile": "nope"}) == [
        "pack config: unknown profile 'nope'; known: airgapped, eu, fr-sovereign, se-sovereign"
    ]


def test_unreadable_annotation_is_reported_on_the_namespace() -> None:
    broken = namespace("acme-serving")
    broken.props["metadata"]["annotations"][POLICY_ANNOTATION] = "{not json"
    violations = check_all([broken])["sovstack-images-allowed-and-pinned"]
    assert violations[0].urn == "urn:ns:acme-serving"
    assert violations[0].message.startswith(
        f"Namespace acme-serving: annotation {POLICY_ANNOTATION} is not a residency policy: Expecting"
    )


def test_annotation_and_config_both_apply() -> None:
    pool = Resource("scaleway:kubernetes/pool:Pool", "pool", {"region": "nl-ams", "zone": "nl-ams-1"})
    resources = [namespace("acme-serving", profile="eu"), pool]
    assert run("sovstack-region-in-bounds", resources) == []
    messages = run("sovstack-region-in-bounds", resources, {"profile": "fr-sovereign"})
    assert messages == [
        "scaleway:kubernetes/pool:Pool::pool.region: resource scaleway nl-ams (Amsterdam, NL, EU) is in NL; "
        "policy allows FR",
        "scaleway:kubernetes/pool:Pool::pool.zone: resource scaleway nl-ams (Amsterdam, NL, EU) is in NL; "
        "policy allows FR",
    ]


def test_namespaces_with_different_policies_are_reported() -> None:
    resources = [namespace("a", profile="eu"), namespace("b", profile="fr-sovereign")]
    policies, problems = find_policies(resources, {})
    assert len(policies) == 2
    assert problems == [
        Violation("sovstack namespaces carry 2 different residency policies; each one is applied")
    ]


# -- 1. region in bounds ------------------------------------------------------------------------
def test_region_in_bounds_passes_and_fails() -> None:
    ok = Resource("scaleway:kubernetes/pool:Pool", "ok", {"region": "fr-par", "zone": "fr-par-2"})
    us = Resource("scaleway:network/vpc:Vpc", "vpc", {"region": "us-east-1"}, urn="urn:vpc")
    moved = Resource("scaleway:kubernetes/pool:Pool", "gpu", {"region": "fr-par", "zone": "nl-ams-1"})
    aws = Resource("aws:ec2/instance:Instance", "vm", {"availabilityZones": ["us-east-1a"]})
    ns = namespace("acme-serving")
    assert run("sovstack-region-in-bounds", [ns, ok]) == []
    violations = check_all([ns, ok, us, moved, aws])["sovstack-region-in-bounds"]
    assert violations[0] == Violation(
        "scaleway:network/vpc:Vpc::vpc.region: 'us-east-1' is not a catalogued scaleway region, zone or "
        "storage region",
        "urn:vpc",
    )
    assert [v.message for v in violations[1:]] == [
        "scaleway:kubernetes/pool:Pool::gpu.zone: zone 'nl-ams-1' is not in scaleway fr-par (Paris, FR, EU) "
        "(zones: fr-par-1, fr-par-2, fr-par-3)",
        "aws:ec2/instance:Instance::vm.availabilityZones: provider 'aws' is not in the catalog, so "
        "'us-east-1a' cannot be placed in bounds; add it to regions.yaml with sources or use a catalogued provider",
    ]


def test_region_of_a_provider_resource_is_checked() -> None:
    provider = Resource("pulumi:providers:scaleway", "default", {"region": "nl-ams", "zone": "nl-ams-1"})
    messages = run("sovstack-region-in-bounds", [namespace("x", profile="fr-sovereign"), provider])
    assert messages[0] == (
        "pulumi:providers:scaleway::default.region: resource scaleway nl-ams (Amsterdam, NL, EU) is in NL; "
        "policy allows FR"
    )


# -- 2. images ----------------------------------------------------------------------------------
def test_images_allowed_and_pinned() -> None:
    ns = namespace("acme-serving")
    assert run("sovstack-images-allowed-and-pinned", [ns, workload()]) == []
    bad = workload(
        kind="CronJob", image="docker.io/library/nginx:latest", init_image="rg.fr-par.scw.cloud/x:1"
    )
    assert run("sovstack-images-allowed-and-pinned", [ns, bad]) == [
        "CronJob acme-serving/m initContainer fetch: not pinned: add @sha256:<digest> so every pull is the same "
        "(rg.fr-par.scw.cloud/x:1)",
        "CronJob acme-serving/m container vllm: registry docker.io is not allowed; allowed: rg.fr-par.scw.cloud, "
        "rg.nl-ams.scw.cloud, rg.pl-waw.scw.cloud, registry.fr-par-dc1.sovstack.internal, "
        "registry.se-sto-dc1.sovstack.internal (docker.io/library/nginx:latest)",
        "CronJob acme-serving/m container vllm: not pinned: add @sha256:<digest> so every pull is the same "
        "(docker.io/library/nginx:latest)",
    ]


def test_image_missing_or_unknown_is_a_violation() -> None:
    pod = workload(kind="Pod", image="")
    assert run("sovstack-images-allowed-and-pinned", [namespace("acme-serving"), pod]) == [
        "Pod acme-serving/m container vllm: no image is set (or it is unknown at preview)"
    ]


# -- 3. public services -------------------------------------------------------------------------
def service(kind: str, namespace_name: str = "acme-serving") -> Resource:
    props = {"metadata": {"name": "api", "namespace": namespace_name}, "spec": {"type": kind}}
    return Resource("kubernetes:core/v1:Service", f"{namespace_name}/api", props, urn="urn:svc")


def quota(zero: bool) -> Resource:
    hard = {"requests.nvidia.com/gpu": "4"} | (
        {"services.loadbalancers": "0", "services.nodeports": "0"} if zero else {}
    )
    meta = {
        "name": "sovstack-quota",
        "namespace": "acme-serving",
        "labels": {"app.kubernetes.io/managed-by": "sovstack"},
    }
    return Resource("kubernetes:core/v1:ResourceQuota", "q", {"metadata": meta, "spec": {"hard": hard}})


def test_cluster_ip_services_pass() -> None:
    assert run("sovstack-no-public-services", [service("ClusterIP"), quota(zero=True)]) == []


def test_load_balancer_refused_when_quota_closes_it() -> None:
    assert run("sovstack-no-public-services", [service("LoadBalancer"), quota(zero=True)]) == [
        "Service acme-serving/api is type LoadBalancer but the stack declares no public endpoint "
        "(ResourceQuota acme-serving/sovstack-quota sets services.loadbalancers: 0); set "
        "network.publicEndpoint: true in the customer spec"
    ]
    # The quota would refuse it at admission anyway: the pack config cannot open it.
    config = {"publicEndpoint": True}
    assert len(run("sovstack-no-public-services", [service("NodePort"), quota(zero=True)], config)) == 1


def test_public_service_needs_a_declaration() -> None:
    assert run("sovstack-no-public-services", [service("NodePort")]) == [
        "Service acme-serving/api is type NodePort but no public endpoint is declared: namespace acme-serving "
        "has no sovstack ResourceQuota and the pack config does not set publicEndpoint: true"
    ]
    assert run("sovstack-no-public-services", [service("NodePort")], {"publicEndpoint": True}) == []
    assert run("sovstack-no-public-services", [service("LoadBalancer"), quota(zero=False)]) == []


# -- 4. GPU workloads ---------------------------------------------------------------------------
def test_gpu_workload_pinned_passes() -> None:
    assert run("sovstack-gpu-workloads-pinned", [namespace("acme-serving"), workload()]) == []
    anything = workload(tolerations=[{"operator": "Exists"}])
    assert run("sovstack-gpu-workloads-pinned", [namespace("acme-serving"), anything]) == []
    no_gpu = workload(gpus=0, region=None, tolerations=[])
    assert run("sovstack-gpu-workloads-pinned", [namespace("acme-serving"), no_gpu]) == []


def test_gpu_workload_without_affinity_or_toleration() -> None:
    bare = workload(kind="StatefulSet", region=None, tolerations=[])
    assert run("sovstack-gpu-workloads-pinned", [namespace("acme-serving"), bare]) == [
        "StatefulSet acme-serving/m requests nvidia.com/gpu but has no required node affinity on "
        "sovstack.io/region (expected fr-par)",
        "StatefulSet acme-serving/m requests nvidia.com/gpu but does not tolerate the GPU taint "
        "nvidia.com/gpu=present:NoSchedule",
    ]


def test_gpu_workload_pinned_to_the_wrong_region() -> None:
    assert run("sovstack-gpu-workloads-pinned", [namespace("acme-serving"), workload(region="nl-ams")]) == [
        "Deployment acme-serving/m requests nvidia.com/gpu but node affinity term 0 allows sovstack.io/region "
        "in ['nl-ams'], expected ['fr-par']"
    ]


def test_gpu_region_from_pod_label_or_unknown() -> None:
    labelled = workload(region="fr-par")
    labelled.props["spec"]["template"]["metadata"]["labels"]["sovstack.io/region"] = "fr-par"
    assert run("sovstack-gpu-workloads-pinned", [labelled]) == []
    assert run("sovstack-gpu-workloads-pinned", [workload()]) == [
        "Deployment acme-serving/m requests nvidia.com/gpu but its region is unknown: neither namespace "
        "acme-serving nor the pod template carries the sovstack.io/region label"
    ]


# -- 5. audit buckets ---------------------------------------------------------------------------
def scaleway_bucket(lock: bool = True, versioning: bool = True) -> Resource:
    props = {
        "name": "acme-audit",
        "region": "fr-par",
        "objectLockEnabled": lock,
        "versioning": {"enabled": versioning},
    }
    return Resource(
        "scaleway:object/bucket:Bucket",
        "acme-audit-bucket",
        props,
        f"{AUDIT}$b::acme-audit-bucket",
        AUDIT_PARENT,
    )


def scaleway_lock(
    mode: str = "COMPLIANCE", days: float = 365.0, bucket: str | None = "acme-audit"
) -> Resource:
    props = {"bucket": bucket, "region": "fr-par", "rule": {"defaultRetention": {"mode": mode, "days": days}}}
    return Resource(
        "scaleway:object/bucketLockConfiguration:BucketLockConfiguration",
        "acme-audit-lock",
        props,
        "",
        AUDIT_PARENT,
    )


def test_scaleway_audit_bucket() -> None:
    ns = namespace("acme-audit")
    assert run("sovstack-audit-bucket-locked", [ns, scaleway_bucket(), scaleway_lock()]) == []
    # The lock's bucket reference is unknown at preview: matched through the audit component.
    assert run("sovstack-audit-bucket-locked", [ns, scaleway_bucket(), scaleway_lock(bucket=None)]) == []
    where = "audit bucket acme-audit (scaleway:object/bucket:Bucket)"
    bad = [ns, scaleway_bucket(lock=False, versioning=False), scaleway_lock("GOVERNANCE", 30.0)]
    assert run("sovstack-audit-bucket-locked", bad) == [
        f"{where}: object lock is not enabled",
        f"{where}: versioning is not enabled",
        f"{where}: default retention mode is GOVERNANCE, not COMPLIANCE",
        f"{where}: default retention is 30 days; policy minimum is 180 days",
    ]
    assert run("sovstack-audit-bucket-locked", [ns, scaleway_bucket()]) == [
        f"{where}: no default retention is set"
    ]


def test_ovh_audit_bucket_uses_the_strictest_minimum() -> None:
    props = {
        "name": "acme-audit",
        "regionName": "GRA",
        "objectLock": {"rule": {"mode": "compliance", "period": "P200D"}, "status": "enabled"},
        "versioning": {"status": "enabled"},
    }
    storage = Resource("ovh:CloudProject/storage:Storage", "acme-audit-bucket", props)
    assert run("sovstack-audit-bucket-locked", [namespace("a"), storage]) == []
    assert run("sovstack-audit-bucket-locked", [namespace("a"), storage], {"profile": "fr-sovereign"}) == [
        "audit bucket acme-audit (ovh:CloudProject/storage:Storage): default retention is 200 days; "
        "policy minimum is 365 days"
    ]
    off = copy.deepcopy(props)
    off["objectLock"]["status"] = "disabled"
    off["objectLock"]["rule"]["period"] = "P1Y"
    off["versioning"]["status"] = "suspended"
    assert run(
        "sovstack-audit-bucket-locked", [namespace("a"), Resource(storage.type, storage.name, off)]
    ) == [
        "audit bucket acme-audit (ovh:CloudProject/storage:Storage): object lock is not enabled",
        "audit bucket acme-audit (ovh:CloudProject/storage:Storage): versioning is not enabled",
    ]


def minio(days: int = 180, versioned: bool = True) -> list[Resource]:
    bucket = Resource(
        "minio:index/s3Bucket:S3Bucket", "acme-audit-bucket", {"bucket": "acme-audit", "objectLocking": True}
    )
    out = [bucket]
    if versioned:
        props = {"bucket": "acme-audit", "versioningConfiguration": {"status": "Enabled"}}
        out.append(
            Resource("minio:index/s3BucketVersioning:S3BucketVersioning", "acme-audit-versioning", props)
        )
    script = (
        f'mc alias set audit "$S3_ENDPOINT" && mc retention set --default COMPLIANCE {days}d audit/acme-audit'
    )
    job = {
        "metadata": {"name": "acme-audit-retention", "namespace": "acme-audit"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "mc", "command": ["/bin/sh", "-c", script]}]}}
        },
    }
    out.append(Resource("kubernetes:batch/v1:Job", "acme-audit/acme-audit-retention", job))
    return out


def test_minio_audit_bucket_reads_the_retention_job() -> None:
    assert run("sovstack-audit-bucket-locked", [namespace("a"), *minio()]) == []
    where = "audit bucket acme-audit (minio:index/s3Bucket:S3Bucket)"
    assert run("sovstack-audit-bucket-locked", [namespace("a"), *minio(days=90, versioned=False)]) == [
        f"{where}: versioning is not enabled",
        f"{where}: default retention is 90 days; policy minimum is 180 days",
    ]
    assert run("sovstack-audit-bucket-locked", [namespace("a"), *minio()[:2]]) == [
        f"{where}: no default retention is set"
    ]


# -- the pulumi_policy objects and their adapters -----------------------------------------------
def policy_resource(r: Resource, props: Any = None) -> PolicyResource:
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], r.parent or None)
    # As the engine shows them: a custom resource with its (default) provider, a component with none.
    package = r.type.split(":", 1)[0]
    provider = (
        PolicyProviderResource(f"pulumi:providers:{package}", {}, f"urn:default_{package}", "default")
        if r.custom
        else None
    )
    return PolicyResource(
        r.type, props if props is not None else r.props, r.urn, r.name, opts, provider, None, [], {}
    )


def validate(
    policy: StackValidationPolicy, resources: list[Resource], config: dict[str, Any] | None = None
) -> list[tuple[str, str | None]]:
    reported: list[tuple[str, str | None]] = []
    args = StackValidationArgs([policy_resource(r) for r in resources], config or {})
    policy.validate(args, lambda message, urn=None: reported.append((message, urn)))
    return reported


def test_every_policy_is_a_mandatory_stack_policy() -> None:
    assert (
        [p.name for p in POLICIES]
        == [r.name for r in RULES]
        == [
            "sovstack-region-in-bounds",
            "sovstack-images-allowed-and-pinned",
            "sovstack-no-public-services",
            "sovstack-gpu-workloads-pinned",
            "sovstack-audit-bucket-locked",
        ]
    )
    assert all(isinstance(p, StackValidationPolicy) for p in POLICIES)
    assert {p.enforcement_level for p in POLICIES} == {EnforcementLevel.MANDATORY}
    assert region_in_bounds.config_schema is not None
    assert set(region_in_bounds.config_schema.properties) == {"policy", "profile", "overrides"}


def test_adapter_region_in_bounds() -> None:
    vpc = Resource("scaleway:network/vpc:Vpc", "vpc", {"region": "us-east-1"}, urn="urn:vpc")
    assert validate(region_in_bounds, [vpc]) == [(NO_POLICY, None)]
    assert validate(region_in_bounds, [vpc], {"profile": "eu"}) == [
        (
            "scaleway:network/vpc:Vpc::vpc.region: 'us-east-1' is not a catalogued scaleway region, zone or "
            "storage region",
            "urn:vpc",
        )
    ]


def test_adapter_images() -> None:
    reported = validate(
        images_allowed_and_pinned, [namespace("acme-serving"), workload(image=f"quay.io/x{DIGEST}")]
    )
    assert reported == [
        (
            "Deployment acme-serving/m container vllm: registry quay.io is not allowed; allowed: "
            "rg.fr-par.scw.cloud, rg.nl-ams.scw.cloud, rg.pl-waw.scw.cloud, registry.fr-par-dc1.sovstack.internal, "
            f"registry.se-sto-dc1.sovstack.internal (quay.io/x{DIGEST})",
            "urn:Deployment:m",
        )
    ]


def test_adapter_public_services() -> None:
    assert validate(no_public_services, [service("NodePort")], {"publicEndpoint": True}) == []
    assert [urn for _, urn in validate(no_public_services, [service("NodePort")])] == ["urn:svc"]


def test_adapter_gpu_workloads() -> None:
    reported = validate(gpu_workloads_pinned, [namespace("acme-serving"), workload(tolerations=[])])
    assert reported == [
        (
            "Deployment acme-serving/m requests nvidia.com/gpu but does not tolerate the GPU taint "
            "nvidia.com/gpu=present:NoSchedule",
            "urn:Deployment:m",
        )
    ]


def test_adapter_audit_bucket_with_unknown_preview_values() -> None:
    """Values unknown during preview reach the rules as None instead of aborting the whole rule."""
    lock = scaleway_lock(bucket=UNKNOWN_STRING_VALUE)
    resources = [namespace("acme-audit"), scaleway_bucket(), lock]
    args = StackValidationArgs(
        [policy_resource(r, unknown_checking_proxy(copy.deepcopy(dict(r.props)))) for r in resources]
    )
    reported: list[tuple[str, str | None]] = []
    audit_bucket_locked.validate(args, lambda message, urn=None: reported.append((message, urn)))
    assert reported == []
    assert plain(unknown_checking_proxy({"a": [UNKNOWN_STRING_VALUE, {"b": 1}]})) == {"a": [None, {"b": 1}]}


@pytest.mark.parametrize("profile", sorted(load_profiles()))
def test_annotation_round_trips_every_profile(profile: str) -> None:
    policies, problems = find_policies([namespace("n", profile=profile)], {})
    assert problems == []
    assert policy_annotation(policies[0]) == policy_annotation(load_profiles()[profile])
