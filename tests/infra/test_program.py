"""The composed customer stack: what infra/__main__.py registers for each example, and what it refuses.

The whole program runs under the mock engine through `run_plan` (as `sovstack plan` does), once per
example, shared by every test of the module. Refusals are checked on what the engine received: a
refused spec must leave the monitor's record empty (`run_pulumi_func` waits for every pending
registration before it re-raises, so a registration made before the refusal would be recorded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from sovstack.components.residency import Engine, failures, resolve_policy, resource_location_findings
from sovstack.infra import plan as plan_module
from sovstack.infra.lookups import policy_of
from sovstack.infra.pipeline import LoadedStack, load_stack
from sovstack.infra.plan import PlanError, PlannedResource, PlanResult, run_plan
from sovstack.infra.program import ResidencyRefused, residency_guard
from sovstack.infra.stackfile import CUSTOMER_KEY
from tests.infra.conftest import example_customer
from tests.pulumi_mocks import Recorder

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ("industrial-eu", "gov-fr", "research-se", "airgap-onprem")

#: The resources each backend's GpuCluster registers: (type, name suffix after `<customer>-gpu-`).
CLUSTER_RESOURCES: dict[str, set[tuple[str, str]]] = {
    "industrial-eu": {
        ("scaleway:network/vpc:Vpc", "vpc"),
        ("scaleway:network/privateNetwork:PrivateNetwork", "pn"),
        ("scaleway:network/publicGatewayIp:PublicGatewayIp", "gw-ip"),
        ("scaleway:network/publicGateway:PublicGateway", "gw"),
        ("scaleway:network/gatewayNetwork:GatewayNetwork", "gw-pn"),
        ("scaleway:kubernetes/cluster:Cluster", "cluster"),
        ("scaleway:kubernetes/acl:Acl", "acl"),
        ("scaleway:kubernetes/pool:Pool", "pool-system-fr-par-2"),
        ("scaleway:kubernetes/pool:Pool", "pool-h100-fr-par-2"),
        ("pulumi:providers:kubernetes", "k8s"),
        ("pulumi:providers:scaleway", "scaleway"),
    },
    "gov-fr": {
        ("ovh:CloudProject/networkPrivate:NetworkPrivate", "network"),
        ("ovh:CloudProject/networkPrivateSubnetV2:NetworkPrivateSubnetV2", "subnet"),
        ("ovh:CloudProject/kube:Kube", "cluster"),
        ("ovh:CloudProject/kubeIpRestrictions:KubeIpRestrictions", "api-ips"),
        ("ovh:CloudProject/kubeOidc:KubeOidc", "oidc"),
        ("ovh:CloudProject/kubeNodePool:KubeNodePool", "pool-system-gra11"),
        ("ovh:CloudProject/kubeNodePool:KubeNodePool", "pool-l40s-gra11"),
        ("pulumi:providers:kubernetes", "k8s"),
        ("pulumi:providers:ovh", "ovh"),
    },
    "research-se": {
        ("talos:machine/secrets:Secrets", "secrets"),
        # No Image Factory schematic: the GPU installer comes from the Stockholm mirror.
        *{("talos:machine/configurationApply:ConfigurationApply", f"apply-cp-{i}") for i in (1, 2, 3)},
        # The GPU pool: one configured worker per machine of pool `hgx`.
        *{("talos:machine/configurationApply:ConfigurationApply", f"apply-gpu-{i}") for i in (1, 2)},
        ("talos:machine/bootstrap:Bootstrap", "bootstrap"),
        ("talos:cluster/kubeconfig:Kubeconfig", "kubeconfig"),
        ("pulumi:providers:kubernetes", "k8s"),
        ("pulumi:providers:talos", "talos"),
    },
    "airgap-onprem": {
        # An existing cluster: the pool is its labelled nodes, nothing in a cloud.
        ("kubernetes:core/v1:NodePatch", "node-gpu-a1"),
        ("kubernetes:core/v1:NodePatch", "node-gpu-b1"),
        ("pulumi:providers:kubernetes", "k8s"),
    },
}

#: The audit bucket per example (type, name) and whether its location is an input.
AUDIT_BUCKETS = {
    "industrial-eu": ("scaleway:object/bucket:Bucket", "industrial-eu-audit-bucket"),
    "gov-fr": ("ovh:CloudProject/storage:Storage", "gov-fr-audit-bucket"),
    "research-se": ("minio:index/s3Bucket:S3Bucket", "research-se-audit-bucket"),
    "airgap-onprem": ("minio:index/s3Bucket:S3Bucket", "airgap-onprem-audit-bucket"),
}

MODELS = {
    "industrial-eu": ("mistral-small", "ministral-8b"),
    "gov-fr": ("mistral-7b", "mistral-nemo"),
    "research-se": ("mistral-large", "mixtral-8x7b"),
    "airgap-onprem": ("mistral-7b", "devstral"),
}


# ------------------------------------------------------------------------------------------ helpers
class RecordingMonitor(plan_module._Monitor):
    """`run_plan`'s monitor, kept so a test can read what was registered even when the plan refused."""

    instances: list[RecordingMonitor] = []

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        RecordingMonitor.instances.append(self)


@pytest.fixture
def monitors(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingMonitor]]:
    RecordingMonitor.instances = []
    monkeypatch.setattr(plan_module, "_Monitor", RecordingMonitor)
    yield RecordingMonitor.instances


def write_stack(folder: Path, name: str, customer: dict[str, Any]) -> Path:
    path = folder / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": {CUSTOMER_KEY: customer}}, sort_keys=False), encoding="utf-8")
    return path


def by_type(plan: PlanResult, typ: str) -> list[PlannedResource]:
    return [r for r in plan.resources if r.type == typ]


def one(plan: PlanResult, typ: str, name: str) -> PlannedResource:
    found = [r for r in plan.resources if r.type == typ and r.name == name]
    assert len(found) == 1, f"expected one {typ} {name!r}, found {len(found)}"
    return found[0]


def qualified_type(urn: str) -> str:
    return urn.split("::")[2]


@pytest.fixture(scope="module")
def plans() -> dict[str, PlanResult]:
    return {name: run_plan(load_stack(name)) for name in EXAMPLES}


# ------------------------------------------------------------------------------- the full composition
@pytest.mark.parametrize("example", EXAMPLES)
def test_cluster_resources_of_the_backend(plans: dict[str, PlanResult], example: str) -> None:
    plan = plans[example]
    cluster = one(plan, "sovstack:cluster:GpuCluster", f"{example}-gpu")
    children = {
        (r.type, r.name.removeprefix(f"{example}-gpu-")) for r in plan.resources if r.parent == cluster.urn
    }
    # The cluster installs nothing in it: operators and charts are the platform layer's.
    assert children == CLUSTER_RESOURCES[example]


def test_airgap_cluster_registers_no_cloud_resource(plans: dict[str, PlanResult]) -> None:
    plan = plans["airgap-onprem"]
    packages = {r.type.split(":")[0] for r in plan.custom_resources()}
    # Kubernetes objects, the Kubernetes provider and the operator's own MinIO audit bucket, through an
    # explicit provider pointed at the site's MinIO.
    assert packages == {"kubernetes", "pulumi", "minio"}
    assert sorted(r.type for r in plan.custom_resources() if r.type.startswith("pulumi:")) == [
        "pulumi:providers:kubernetes",
        "pulumi:providers:minio",
    ]
    minio = one(plan, "pulumi:providers:minio", "airgap-onprem-audit-minio")
    assert minio.inputs["minioServer"] == "s3.fr-par-dc1.sovstack.internal"


@pytest.mark.parametrize("example", EXAMPLES)
def test_namespaces_and_default_deny_policies(plans: dict[str, PlanResult], example: str) -> None:
    plan = plans[example]
    network = one(plan, "sovstack:network:NetworkIsolation", f"{example}-network")
    tenant = [f"{example}-serving", f"{example}-audit", f"{example}-audit-logs"]
    owner = f"{example}-network/"
    namespaces = {r.name for r in by_type(plan, "kubernetes:core/v1:Namespace") if r.parent == network.urn}
    assert namespaces == {owner + ns for ns in tenant}
    policies = {
        r.name.removeprefix(owner)
        for r in by_type(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if r.parent == network.urn
    }
    for namespace in tenant:
        assert {f"{namespace}/default-deny", f"{namespace}/allow-dns"} <= policies
    assert f"{example}-serving/allow-serving-ingress" in policies
    quota = one(plan, "kubernetes:core/v1:ResourceQuota", f"{owner}{example}-serving/sovstack-quota")
    assert quota.parent == network.urn


@pytest.mark.parametrize("example", EXAMPLES)
def test_audit_bucket_and_shippers(plans: dict[str, PlanResult], example: str) -> None:
    plan = plans[example]
    audit = one(plan, "sovstack:audit:AuditSink", f"{example}-audit")
    typ, name = AUDIT_BUCKETS[example]
    bucket = one(plan, typ, name)
    assert bucket.parent == audit.urn
    assert bucket.inputs.get("name", bucket.inputs.get("bucket")) == f"{example}-audit"
    shipper = one(
        plan, "kubernetes:apps/v1:DaemonSet", f"{example}-audit/{example}-audit-logs/{example}-audit-logs"
    )
    events = one(
        plan, "kubernetes:apps/v1:Deployment", f"{example}-audit/{example}-audit/{example}-audit-events"
    )
    assert shipper.parent == events.parent == audit.urn


@pytest.mark.parametrize("example", EXAMPLES)
def test_one_vllm_deployment_per_model(plans: dict[str, PlanResult], example: str) -> None:
    plan = plans[example]
    serving_ns = f"{example}-serving"
    deployments = [r for r in by_type(plan, "kubernetes:apps/v1:Deployment") if f"/{serving_ns}/" in r.name]
    assert sorted(r.name for r in deployments) == sorted(
        f"{example}-{m}/{serving_ns}/{example}-{m}" for m in MODELS[example]
    )
    for model in MODELS[example]:
        component = one(plan, "sovstack:serving:ModelServing", f"{example}-{model}")
        deployment = one(
            plan, "kubernetes:apps/v1:Deployment", f"{example}-{model}/{serving_ns}/{example}-{model}"
        )
        assert deployment.parent == component.urn
        assert deployment.inputs["metadata"]["name"] == f"{example}-{model}"
        container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
        assert "vllm-openai" in container["image"]
        service = one(plan, "kubernetes:core/v1:Service", f"{example}-{model}/{serving_ns}/{example}-{model}")
        assert service.parent == component.urn
    assert set(plan.outputs["endpoints"]) == set(MODELS[example])


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_kubernetes_resource_uses_the_cluster_provider(
    plans: dict[str, PlanResult], example: str
) -> None:
    plan = plans[example]
    provider = one(plan, "pulumi:providers:kubernetes", f"{example}-gpu-k8s")
    assert provider.inputs["kubeconfig"] == "[secret]"
    kubernetes = [r for r in plan.resources if r.type.startswith("kubernetes:")]
    assert len(kubernetes) > 30
    # A provider reference is `<provider urn>::<provider id>`.
    strays = [r.name for r in kubernetes if not r.provider.startswith(provider.urn + "::")]
    assert strays == []


#: The location inputs the check sees per example (resource name and input); on-prem resources have none.
LOCATED_INPUTS = {
    "industrial-eu": {
        *(f"industrial-eu-gpu-{n}.region" for n in ("vpc", "pn", "cluster", "acl")),
        *(f"industrial-eu-gpu-{n}.zone" for n in ("gw-ip", "gw", "gw-pn")),
        *(f"industrial-eu-gpu-pool-{p}-fr-par-2.{k}" for p in ("system", "h100") for k in ("region", "zone")),
        # The cluster's own Scaleway provider, placed by the region and zone it is configured for.
        "industrial-eu-gpu-scaleway.region",
        "industrial-eu-gpu-scaleway.zone",
        "industrial-eu-audit-bucket.region",
        "industrial-eu-audit-lock.region",
    },
    "gov-fr": {
        "gov-fr-gpu-network.regions",
        "gov-fr-gpu-subnet.region",
        "gov-fr-gpu-cluster.region",
        "gov-fr-audit-bucket.regionName",
    },
    "research-se": set(),
    "airgap-onprem": set(),
}


@pytest.mark.parametrize("example", EXAMPLES)
def test_no_location_input_outside_the_policy(plans: dict[str, PlanResult], example: str) -> None:
    plan = plans[example]
    engine = Engine(policy_of(load_stack(example).spec))
    findings = [
        finding
        for r in plan.custom_resources()
        for finding in resource_location_findings(
            engine, r.type, r.name, r.inputs, placed_by_provider="its provider" if r.provider else None
        )
    ]
    assert [f.line() for f in failures(findings)] == []
    # Not vacuous: every region and zone input of the managed clouds was placed and passed.
    located = {f.path.split("::")[1] for f in findings if f.rule != "resource.location"}
    assert located == LOCATED_INPUTS[example]
    # Fail closed: every other custom resource was accepted for a stated reason, none silently.
    reasons = {
        f.path.split("::")[1].removesuffix(".minioServer") for f in findings if f.rule == "resource.location"
    }
    assert reasons | {p.rsplit(".", 1)[0] for p in located} >= {r.name for r in plan.custom_resources()}


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_child_is_under_its_component(plans: dict[str, PlanResult], example: str) -> None:
    plan = plans[example]
    urns = [r.urn for r in plan.resources]
    assert len(urns) == len(set(urns)), "two resources share a URN"
    by_urn = {r.urn: r for r in plan.resources}
    root = one(plan, "sovstack:stack:SovereignStack", example)
    assert root.parent.endswith("::pulumi:pulumi:Stack::sovstack-" + example)
    for r in plan.resources:
        if r is root:
            continue
        parent = by_urn.get(r.parent)
        assert parent is not None, f"{r.name}: parent {r.parent} is not a resource of the stack"
        assert not parent.custom and parent.type.startswith("sovstack:"), f"{r.name}: parent {parent.type}"
        # The mock engine qualifies a URN's type with its parent's type, as the engine does.
        assert qualified_type(r.urn) == f"{parent.type}${r.type}"
        if parent is root:
            assert r.type.startswith("sovstack:"), f"{r.type} {r.name} hangs directly on the stack"
        else:
            assert r.name.startswith(parent.name) or r.type.startswith("kubernetes:"), r.name


# ------------------------------------------------------------------------------------------ refusals
def _gov_fr_storage_in_germany(customer: dict[str, Any]) -> None:
    for model in customer["models"]:
        model["weights"]["s3"]["endpoint"] = "https://s3.de.io.cloud.ovh.net"
    customer["network"]["egress"] = [
        {"name": "ovh-s3-de", "host": "s3.de.io.cloud.ovh.net", "cidrs": ["141.95.0.0/16"], "ports": [443]},
        *(e for e in customer["network"]["egress"] if e["host"].startswith(("vault.", "sso.", "redis."))),
    ]


def _scaleway_cluster_in_poland(customer: dict[str, Any]) -> None:
    customer["residency"] = {"profile": "fr-sovereign"}
    customer["cluster"]["region"] = "pl-waw"
    customer["cluster"]["systemPool"]["zones"] = ["pl-waw-2"]
    customer["cluster"]["gpuPools"][0]["zones"] = ["pl-waw-2"]


@pytest.mark.parametrize(
    ("example", "mutate", "expected"),
    [
        # OVHcloud DE1 offers no catalogued GPU, so a gov-fr cluster moved there is a spec error
        # (exit 2); its weights moved to OVHcloud's Frankfurt object storage break residency only.
        (
            "gov-fr",
            _gov_fr_storage_in_germany,
            [
                "models[0].weights.s3.endpoint: [FAIL] storage.location",
                "models[1].weights.s3.endpoint: [FAIL] storage.location",
                "network.egress[0].host: [FAIL] egress.destination",
            ],
        ),
        (
            "industrial-eu",
            _scaleway_cluster_in_poland,
            [
                "cluster.region: [FAIL] region.country",
                "audit.region: [FAIL] storage.location",
                "audit.endpoint: [FAIL] storage.location",
                # industrial-eu leaves ministral-8b unpinned, which fr-sovereign refuses.
                "models[1].weights.s3.manifestSha256: [FAIL] weights.pinned",
            ],
        ),
    ],
)
def test_residency_breach_registers_nothing(
    tmp_path: Path,
    monitors: list[RecordingMonitor],
    example: str,
    mutate: Callable[[dict[str, Any]], None],
    expected: list[str],
) -> None:
    customer = example_customer(example)
    mutate(customer)
    path = write_stack(tmp_path, example, customer)
    loaded = load_stack(path)  # a valid spec: only residency breaks
    with pytest.raises(PlanError) as err:
        run_plan(loaded)
    assert err.value.exit_code == 1
    message = str(err.value)
    assert message.startswith(f"{len(expected)} residency rule(s) broken; nothing was registered:\n")
    lines = message.splitlines()[1:]
    assert len(lines) == len(expected)
    for line, fragment in zip(lines, expected, strict=True):
        assert line.startswith(f"{path}: sovstack:customer.{fragment}: "), line
    assert len(monitors) == 1
    assert monitors[0].recorded == []


def test_recording_monitor_sees_registrations_made_before_a_refusal(
    monitors: list[RecordingMonitor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control for the refusal tests: an empty record is evidence, not an artefact of the capture."""
    from sovstack.infra.stack import SovereignStack

    def refuse(self: SovereignStack) -> dict[str, Any]:
        raise ResidencyRefused("refused after registering")

    monkeypatch.setattr(SovereignStack, "stack_outputs", refuse)
    with pytest.raises(PlanError) as err:
        run_plan(load_stack("gov-fr"))
    assert (err.value.exit_code, str(err.value)) == (1, "refused after registering")
    assert len(monitors[0].recorded) > 30


def test_spec_breach_in_config_registers_nothing(monitors: list[RecordingMonitor]) -> None:
    """The program checks the spec itself: config that bypassed `load_stack` is refused with exit 2."""
    good = load_stack("gov-fr")
    customer = example_customer("gov-fr")
    customer["models"][1]["pool"] = "h100"
    broken = LoadedStack(good.name, good.path, {CUSTOMER_KEY: customer}, good.spec)
    with pytest.raises(PlanError) as err:
        run_plan(broken)
    assert err.value.exit_code == 2
    assert str(err.value).startswith(f"{good.path}: sovstack:customer.models[1].pool: ")
    assert "h100" in str(err.value)
    assert monitors[0].recorded == []


def test_missing_pool_is_refused_by_load_stack(tmp_path: Path) -> None:
    from sovstack.infra.stackfile import SpecError

    customer = example_customer("gov-fr")
    customer["models"][0]["pool"] = "h100"
    path = write_stack(tmp_path, "gov-fr", customer)
    with pytest.raises(SpecError) as err:
        load_stack(path)
    assert [p.path for p in err.value.problems] == ["sovstack:customer.models[0].pool"]


# ------------------------------------------------------------------------------- the stack-wide guard
FR_SOVEREIGN = resolve_policy("fr-sovereign")


def _stray_scaleway() -> pulumi.Resource:
    from pulumiverse_scaleway import object as scw_object

    return scw_object.Bucket("stray", region="nl-ams")


def _stray_ovh() -> pulumi.Resource:
    import pulumi_ovh

    return pulumi_ovh.cloudproject.Storage("stray-ovh", service_name="0" * 32, region_name="BHS", name="b")


def _stray_unknown_provider() -> pulumi.Resource:
    return pulumi.CustomResource("aws:s3/bucket:Bucket", "stray-aws", {"region": "eu-west-3"})


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            _stray_scaleway,
            "resource stray (scaleway:object/bucket:Bucket) is outside the residency policy:\n"
            "  scaleway:object/bucket:Bucket::stray.region: [region.country] resource scaleway nl-ams "
            "(Amsterdam, NL, EU) is in NL; policy allows FR",
        ),
        (
            _stray_ovh,
            "resource stray-ovh (ovh:CloudProject/storage:Storage) is outside the residency policy:\n"
            "  ovh:CloudProject/storage:Storage::stray-ovh.regionName: [region.known] 'BHS' is not a "
            "catalogued ovh region, zone or storage region",
        ),
        (
            _stray_unknown_provider,
            "resource stray-aws (aws:s3/bucket:Bucket) is outside the residency policy:\n"
            "  aws:s3/bucket:Bucket::stray-aws.region: [region.known] provider 'aws' is not in the catalog, "
            "so 'eu-west-3' cannot be placed in bounds; add it to regions.yaml with sources or use a "
            "catalogued provider",
        ),
    ],
)
def test_stack_guard_rejects_hand_added_out_of_bounds_resource(
    mocks: Any, make: Callable[[], pulumi.Resource], expected: str
) -> None:
    from pulumiverse_scaleway import object as scw_object

    @pulumi.runtime.test
    def program() -> pulumi.Output[list[str]]:
        pulumi.runtime.register_resource_transform(residency_guard(FR_SOVEREIGN))
        kept = scw_object.Bucket("kept", region="fr-par")
        return pulumi.Output.all(kept.urn, make().urn)

    with pytest.raises(ResidencyRefused) as err:
        program()
    assert str(err.value) == expected
    assert err.value.exit_code == 1
    # Nothing out of bounds reached the engine. Whether the in-bounds bucket did depends on timing: the
    # refusal ends the program, and its registration may or may not have been sent by then.
    assert {(r.typ, r.name) for r in mocks.resources} <= {("scaleway:object/bucket:Bucket", "kept")}


def test_stack_guard_passes_in_bounds_resources(mocks: Any) -> None:
    import pulumi_ovh
    from pulumiverse_scaleway import object as scw_object

    @pulumi.runtime.test
    def program() -> pulumi.Output[list[str]]:
        pulumi.runtime.register_resource_transform(residency_guard(FR_SOVEREIGN))
        a = scw_object.Bucket("par", region="fr-par")
        b = pulumi_ovh.cloudproject.Storage("gra", service_name="0" * 32, region_name="GRA", name="b")
        c = pulumi.CustomResource("kubernetes:core/v1:ConfigMap", "no-location", {"data": {"a": "b"}})
        return pulumi.Output.all(a.urn, b.urn, c.urn)

    program()
    assert sorted(r.name for r in mocks.resources) == ["gra", "no-location", "par"]


def _transformation_args(
    type_: str, name: str, props: Any, custom: bool = True
) -> pulumi.ResourceTransformArgs:
    return pulumi.ResourceTransformArgs(
        custom=custom, type_=type_, name=name, props=props, opts=pulumi.ResourceOptions()
    )


def test_residency_guard_as_a_plain_function() -> None:
    guard = residency_guard(FR_SOVEREIGN)
    assert guard(_transformation_args("scaleway:object/bucket:Bucket", "ok", {"region": "fr-par"})) is None
    assert guard(_transformation_args("ovh:CloudProject/kube:Kube", "k", {"region": "GRA11"})) is None
    # No location input: only a location-free type (policies.yaml) passes; anything else fails closed.
    assert guard(_transformation_args("kubernetes:core/v1:Namespace", "n", None)) is None
    with pytest.raises(ResidencyRefused) as unplaced:
        guard(_transformation_args("aws:s3/bucket:Bucket", "x", {"bucket": "b"}))
    assert str(unplaced.value) == (
        "resource x (aws:s3/bucket:Bucket) is outside the residency policy:\n"
        "  aws:s3/bucket:Bucket::x: [resource.location] sovstack cannot determine where this resource places "
        "data: it has no region, zone or location input, no explicit provider whose location was checked, "
        "and policies.yaml does not list aws:s3/bucket:Bucket as location-free; set its location or add the "
        "type to locationFree with the reason"
    )

    with pytest.raises(ResidencyRefused) as err:
        guard(_transformation_args("scaleway:kubernetes/pool:Pool", "p", {"zone": "nl-ams-1"}))
    assert str(err.value) == (
        "resource p (scaleway:kubernetes/pool:Pool) is outside the residency policy:\n"
        "  scaleway:kubernetes/pool:Pool::p.zone: [region.country] resource scaleway nl-ams "
        "(Amsterdam, NL, EU) is in NL; policy allows FR"
    )
    with pytest.raises(ResidencyRefused, match=r"ovh:CloudProject/kube:Kube::k\.region: \[region\.country\]"):
        guard(_transformation_args("ovh:CloudProject/kube:Kube", "k", {"region": "DE1"}))
    with pytest.raises(ResidencyRefused, match=r"\.regions: \[region\.country\]"):
        guard(
            _transformation_args(
                "ovh:CloudProject/networkPrivate:NetworkPrivate", "n", {"regions": ["GRA11", "WAW1"]}
            )
        )


def test_explicit_provider_is_checked_by_its_region_and_places_its_children() -> None:
    from sovstack.infra.plan import ProviderReference

    guard = residency_guard(FR_SOVEREIGN)
    scaleway = ProviderReference(package="scaleway", urn="urn:pulumi:s::p::pulumi:providers:scaleway::scw")
    child = pulumi.ResourceTransformArgs(
        custom=True, type_="scaleway:network/vpc:Vpc", name="vpc", props={"name": "v"},
        opts=pulumi.ResourceOptions(provider=scaleway),  # type: ignore[arg-type]
    )  # fmt: skip
    # Before any checked Scaleway provider exists, a Scaleway resource without a region is unplaced.
    with pytest.raises(ResidencyRefused, match=r"vpc: \[resource\.location\] sovstack cannot determine"):
        guard(child)
    with pytest.raises(ResidencyRefused, match=r"pulumi:providers:scaleway::bad: \[resource\.location\]"):
        guard(_transformation_args("pulumi:providers:scaleway", "bad", {}))
    with pytest.raises(ResidencyRefused, match=r"pulumi:providers:scaleway::nl\.region: \[region\.country\]"):
        guard(_transformation_args("pulumi:providers:scaleway", "nl", {"region": "nl-ams"}))
    assert guard(_transformation_args("pulumi:providers:scaleway", "scw", {"region": "fr-par"})) is None
    assert guard(child) is None
    # A provider of another package places nothing for a Scaleway resource.
    ovh_child = pulumi.ResourceTransformArgs(
        custom=True, type_="scaleway:network/vpc:Vpc", name="vpc2", props={},
        opts=pulumi.ResourceOptions(provider=ProviderReference("ovh", "u")),  # type: ignore[arg-type]
    )  # fmt: skip
    residency_guard(FR_SOVEREIGN)(_transformation_args("pulumi:providers:ovh", "o", {"endpoint": "ovh-eu"}))
    with pytest.raises(ResidencyRefused):
        residency_guard(FR_SOVEREIGN)(ovh_child)


def test_unknown_location_in_a_preview_is_left_to_the_run_that_knows_it() -> None:
    guard = residency_guard(FR_SOVEREIGN)
    unknown = pulumi.runtime.rpc.UNKNOWN
    assert guard(_transformation_args("scaleway:object/bucket:Bucket", "b", {"region": unknown})) is None
    # A provider whose region is not known yet still places its children in that preview.
    from sovstack.infra.plan import ProviderReference

    assert guard(_transformation_args("pulumi:providers:scaleway", "p", {"region": unknown})) is None
    child = pulumi.ResourceTransformArgs(
        custom=True, type_="scaleway:network/vpc:Vpc", name="vpc", props={},
        opts=pulumi.ResourceOptions(provider=ProviderReference("scaleway", "u")),  # type: ignore[arg-type]
    )  # fmt: skip
    assert guard(child) is None


def test_output_valued_location_out_of_bounds_fails_the_registration(mocks: Recorder) -> None:
    """The guard makes the input depend on an Output that raises: the resource is never registered."""
    from pulumiverse_scaleway import object as scw_object

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        # Called as a transform sees an Output-valued input (no stack transform here: the Output alone refuses).
        region = pulumi.Output.from_input("nl-ams")
        guarded = residency_guard(FR_SOVEREIGN)(
            _transformation_args("scaleway:object/bucket:Bucket", "late", {"region": region})
        )
        assert guarded is not None
        return scw_object.Bucket("late", region=guarded.props["region"]).urn

    with pytest.raises(ResidencyRefused) as err:
        program()
    assert str(err.value) == (
        "resource late (scaleway:object/bucket:Bucket) is outside the residency policy:\n"
        "  scaleway:object/bucket:Bucket::late.region: [region.country] resource scaleway nl-ams "
        "(Amsterdam, NL, EU) is in NL; policy allows FR"
    )
    assert [r.name for r in mocks.resources] == []


def test_output_valued_location_in_bounds_registers(mocks: Recorder) -> None:
    from pulumiverse_scaleway import object as scw_object

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        guarded = residency_guard(FR_SOVEREIGN)(
            _transformation_args(
                "scaleway:object/bucket:Bucket", "ok", {"region": pulumi.Output.from_input("fr-par")}
            )
        )
        assert guarded is not None
        return scw_object.Bucket("ok", region=guarded.props["region"]).urn

    program()
    assert [(r.name, r.inputs["region"]) for r in mocks.resources] == [("ok", "fr-par")]


@pulumi.runtime.test
def test_a_pulumi_new_stack_is_told_how_to_write_its_spec(mocks: Recorder) -> None:
    """`pulumi new` leaves only the template's answers; the program names the command that writes the spec."""
    from sovstack.infra.program import SpecRefused, load_spec_from_config

    pulumi.runtime.set_all_config(
        {
            "sovstack:customerName": "acme",
            "sovstack:profile": "eu",
            "sovstack:provider": "scaleway",
            "sovstack:region": "fr-par",
        }
    )
    with pytest.raises(SpecRefused) as refused:
        load_spec_from_config("stacks/Pulumi.acme.yaml")
    assert str(refused.value) == (
        "stacks/Pulumi.acme.yaml: config.sovstack:customer: required key is missing; write the spec from "
        "your `pulumi new` answers with `sovstack new acme --template eu --provider scaleway --region fr-par`"
    )
    assert mocks.resources == []


# ------------------------------------------------------------------------------------------ placeholders
def test_a_deployment_with_placeholders_is_refused_unless_it_is_a_demo(
    mocks: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pulumi up` of gov-fr as shipped: its OVHcloud project id is an example; nothing is registered."""
    import json

    from sovstack.infra import program

    customer = example_customer("gov-fr")
    pulumi.runtime.set_all_config({"sovstack:customer": json.dumps(customer)})
    with pytest.raises(ResidencyRefused) as err:
        program.main()
    file = f"stacks/Pulumi.{pulumi.get_stack()}.yaml"
    zeros = "[placeholder] all-zero id: replace it with the real one"
    assert str(err.value) == (
        "not deployable: 3 placeholders; nothing was registered (fill them in, or set `sovstack:demo: true` "
        f"for a demonstration stack):\n{file}: sovstack:customer.cluster.ovh.serviceName: [placeholder] "
        "sequential example id (0123456789abcdef...): replace it with the real one\n"
        f"{file}: sovstack:customer.models[0].weights.s3.manifestSha256: {zeros}\n"
        f"{file}: sovstack:customer.models[1].weights.s3.manifestSha256: {zeros}"
    )
    assert err.value.exit_code == 1
    assert mocks.resources == []

    class PastPlaceholders(Exception):
        pass

    def stop(*_: Any) -> None:
        raise PastPlaceholders

    monkeypatch.setattr(program, "verify_state", stop)
    pulumi.runtime.set_all_config({"sovstack:customer": json.dumps(customer), "sovstack:demo": "true"})
    with pytest.raises(PastPlaceholders):
        program.main()
