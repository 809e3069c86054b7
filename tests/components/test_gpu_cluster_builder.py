"""GpuCluster's pure builder: validation messages, descriptions, charts and name stability."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
import yaml

from sovstack.components.builders.gpu_cluster import (
    describe_cluster,
    talos_controlplane_patch,
    talos_schematic,
)
from sovstack.components.builders.gpu_cluster_args import ClusterArgsError, GpuClusterArgs, load_cluster_facts
from tests.determinism import assert_same_in_fresh_processes

DIGEST = "sha256:" + "b" * 64
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
H100_POOL = {
    "name": "h100",
    "gpu_type": "H100",
    "node_type": "H100-1-80G",
    "gpus_per_node": 1,
    "max_nodes": 2,
}
AUDIT_POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Metadata"}]}


def scaleway(**over: Any) -> GpuClusterArgs:
    spec: dict[str, Any] = {
        "customer": "acme",
        "backend": "scaleway",
        "region": "fr-par",
        "kubernetes_version": "1.31",
        "system_pool": {"node_type": "PRO2-S", "zones": ["fr-par-2"]},
        "gpu_pools": [{**H100_POOL, "zones": ["fr-par-2"]}],
        "scaleway": {"api_server_allowed_cidrs": ["203.0.113.0/24"]},
    }
    return GpuClusterArgs.model_validate({**spec, **over})


def ovh(**over: Any) -> GpuClusterArgs:
    spec: dict[str, Any] = {
        "customer": "acme",
        "backend": "ovh",
        "region": "GRA11",
        "kubernetes_version": "1.31",
        "system_pool": {"node_type": "b3-16", "zones": ["GRA11"]},
        "gpu_pools": [{**H100_POOL, "node_type": "h100-380", "zones": ["GRA11"]}],
        "ovh": {"service_name": "0123abcd", "api_server_allowed_cidrs": ["203.0.113.0/24"]},
    }
    return GpuClusterArgs.model_validate({**spec, **over})


def talos(machines: list[dict[str, Any]] | None = None, **over: Any) -> GpuClusterArgs:
    spec: dict[str, Any] = {
        "customer": "acme",
        "backend": "talos",
        "region": "fr-par-dc1",
        "kubernetes_version": "1.31.4",
        "gpu_pools": [
            {
                "name": "l40s",
                "gpu_type": "L40S",
                "gpus_per_node": 2,
                "min_nodes": 1,
                "max_nodes": 1,
                "zones": ["fr-par-dc1-a"],
            }
        ],
        "talos": {
            "cluster_endpoint": "https://10.0.0.10:6443",
            "talos_version": "v1.14.0",
            "audit_policy": AUDIT_POLICY,
            "machines": machines
            if machines is not None
            else [
                {"name": "cp1", "address": "10.0.0.11", "role": "controlplane", "zone": "fr-par-dc1-a"},
                {
                    "name": "gpu1",
                    "address": "10.0.0.21",
                    "role": "worker",
                    "zone": "fr-par-dc1-a",
                    "pool": "l40s",
                    "gpu_type": "L40S",
                    "gpu_count": 2,
                },
            ],
        },
    }
    return GpuClusterArgs.model_validate({**spec, **over})


def existing(**over: Any) -> GpuClusterArgs:
    spec: dict[str, Any] = {
        "customer": "acme",
        "backend": "existing",
        "region": "se-sto-dc1",
        "kubernetes_version": "1.31",
        "gpu_pools": [
            {
                "name": "h100",
                "gpu_type": "H100-SXM",
                "gpus_per_node": 8,
                "max_nodes": 4,
                "zones": ["se-sto-dc1-a"],
            }
        ],
        "existing": {"nodes": [{"name": "node-7", "pool": "h100", "zone": "se-sto-dc1-a"}]},
    }
    return GpuClusterArgs.model_validate({**spec, **over})


def with_installer(args: GpuClusterArgs, image: str) -> GpuClusterArgs:
    assert args.talos is not None
    return args.model_copy(update={"talos": args.talos.model_copy(update={"installer_image": image})})


def error(args: GpuClusterArgs) -> str:
    with pytest.raises(ClusterArgsError) as caught:
        describe_cluster(args)
    return str(caught.value)


# ----------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            scaleway(gpu_pools=[{**H100_POOL, "zones": ["fr-par-2", "nl-ams-1"]}]),
            "gpu_pools[0].zones[1]: zone 'nl-ams-1' is not in scaleway region 'fr-par' "
            "(zones: fr-par-1, fr-par-2, fr-par-3)",
        ),
        (
            scaleway(gpu_pools=[{**H100_POOL, "zones": ["fr-par-1"]}]),
            "gpu_pools[0].gpu_type: H100 is not offered in zone fr-par-1 (offered: none)",
        ),
        (
            scaleway(region="us-east"),
            "region: unknown scaleway region 'us-east'; known: fr-par, nl-ams, pl-waw",
        ),
        (
            scaleway(gpu_pools=[{**H100_POOL, "node_type": "H100-2-80G", "zones": ["fr-par-2"]}]),
            "gpu_pools[0].node_type: H100-2-80G has 2 x H100, not 1 x H100 (gpu_type, gpus_per_node)",
        ),
        (
            scaleway(gpu_pools=[{**H100_POOL, "node_type": None, "zones": ["fr-par-2"]}]),
            "gpu_pools[0].node_type: required for scaleway; 1 x H100: H100-1-80G",
        ),
        (
            scaleway(gpu_pools=[{**H100_POOL, "min_nodes": 3, "zones": ["fr-par-2"]}]),
            "gpu_pools[0].min_nodes: 3 is greater than max_nodes 2",
        ),
        (
            scaleway(gpu_pools=[{**H100_POOL, "zones": []}]),
            "gpu_pools[0].zones: name at least one zone of scaleway region 'fr-par' "
            "(zones: fr-par-1, fr-par-2, fr-par-3)",
        ),
        (
            scaleway(gpu_pools=[{**H100_POOL, "zones": ["fr-par-2"], "labels": {"sovstack.io/zone": "x"}}]),
            "gpu_pools[0].labels: 'sovstack.io/zone' is reserved: sovstack sets sovstack.io/* labels itself",
        ),
        (
            scaleway(customer="Acme"),
            "customer: 'Acme' is not a DNS-1123 label (a-z, 0-9, '-', at most 63 characters)",
        ),
        (
            scaleway(system_pool=None),
            "system_pool: required for the scaleway backend (node_type, min_nodes, max_nodes, zones)",
        ),
        (scaleway(ovh={"service_name": "x"}), "ovh: set, but the backend is 'scaleway'"),
        (
            scaleway(scaleway={}),
            "scaleway.api_server_allowed_cidrs: name at least one network allowed to reach the Kubernetes API "
            "(its endpoint is public)",
        ),
        (
            scaleway(scaleway={"api_server_allowed_cidrs": ["0.0.0.0/0"]}),
            "scaleway.api_server_allowed_cidrs[0]: 0.0.0.0/0 would open the API to the whole internet",
        ),
        (
            scaleway(gpu_operator={"enabled": True}),
            "gpu_operator.enabled: Kapsule installs the NVIDIA GPU Operator on GPU pools; never install a second one",
        ),
        (
            ovh(ovh={"api_server_allowed_cidrs": ["203.0.113.0/24"]}),
            "ovh.service_name: required for the ovh backend (the Public Cloud project id)",
        ),
        (
            ovh(gpu_pools=[{**H100_POOL, "node_type": "h100-380", "zones": ["GRA11"], "gpu_type": "L4"}]),
            "gpu_pools[0].node_type: h100-380 has 1 x H100, not 1 x L4 (gpu_type, gpus_per_node)",
        ),
        (ovh(region="GRA9"), "system_pool.zones[0]: zone 'GRA11' is not in ovh region 'GRA9' (zones: GRA9)"),
        (talos(machines=[]), "talos.machines: list at least one machine (one controlplane or more)"),
        (
            talos(system_pool={"node_type": "x", "zones": ["fr-par-dc1-a"]}),
            "system_pool: not used by the talos backend (the operator provides CPU nodes)",
        ),
        (
            talos(
                machines=[
                    {"name": "cp1", "address": "10.0.0.11", "role": "controlplane", "zone": "fr-par-dc1-a"},
                    {
                        "name": "gpu1",
                        "address": "10.0.0.21",
                        "role": "worker",
                        "zone": "fr-par-dc1-a",
                        "pool": "h100",
                        "gpu_type": "L40S",
                        "gpu_count": 2,
                    },
                ]
            ),
            "talos.machines[1].pool: no GPU pool named 'h100' (pools: l40s)",
        ),
        (
            talos(
                machines=[
                    {"name": "cp1", "address": "10.0.0.11", "role": "controlplane", "zone": "se-sto-dc1-a"},
                ]
            ),
            "talos.machines[0].zone: zone 'se-sto-dc1-a' is not in site 'fr-par-dc1' (zones: fr-par-dc1-a, fr-par-dc1-b)",
        ),
        (
            talos(
                machines=[
                    {"name": "cp1", "address": "10.0.0.11", "role": "controlplane", "zone": "fr-par-dc1-a"},
                    {
                        "name": "gpu1",
                        "address": "10.0.0.21",
                        "role": "worker",
                        "zone": "fr-par-dc1-a",
                        "pool": "l40s",
                        "gpu_type": "L40S",
                        "gpu_count": 1,
                    },
                ]
            ),
            "talos.machines[1].gpu_type: 1 x L40S does not match pool l40s (2 x L40S)",
        ),
        (
            talos(
                machines=[
                    {"name": "cp1", "address": "10.0.0.11", "role": "controlplane", "zone": "fr-par-dc1-a"}
                ]
            ),
            "gpu_pools[0]: 0 machines in zone fr-par-dc1-a, outside min_nodes..max_nodes (1..1)",
        ),
        (
            talos(kubernetes_version="1.31"),
            "kubernetes_version: Talos needs a patch version (e.g. '1.31.4'): it names the control-plane images",
        ),
        (
            talos(
                gpu_pools=[
                    {
                        "name": "l40s",
                        "gpu_type": "H100",
                        "gpus_per_node": 2,
                        "max_nodes": 1,
                        "zones": ["fr-par-dc1-a"],
                    }
                ]
            ),
            "gpu_pools[0].gpu_type: H100 is not offered in zone fr-par-dc1-a (offered: L40S, H100-SXM)",
        ),
        (
            existing(existing={"nodes": [{"name": "n", "pool": "h100", "zone": "se-sto-dc1-b"}]}),
            "existing.nodes[0].zone: zone 'se-sto-dc1-b' is not one of pool h100's zones (se-sto-dc1-a)",
        ),
        (
            existing(region="fr-par"),
            "region: unknown site 'fr-par'; did you mean 'fr-par-dc1'?; known: fr-par-dc1, se-sto-dc1",
        ),
    ],
)
def test_validation_messages_name_the_field(args: GpuClusterArgs, message: str) -> None:
    assert error(args) == message


def test_talos_machine_zone_must_be_one_of_the_pool_zones() -> None:
    args = talos(
        machines=[
            {"name": "cp1", "address": "10.0.0.11", "role": "controlplane", "zone": "fr-par-dc1-a"},
            {
                "name": "gpu1",
                "address": "10.0.0.21",
                "role": "worker",
                "zone": "fr-par-dc1-b",
                "pool": "l40s",
                "gpu_type": "L40S",
                "gpu_count": 2,
            },
        ]
    )
    assert (
        error(args)
        == "talos.machines[1].zone: zone fr-par-dc1-b is not one of pool l40s's zones (fr-par-dc1-a)"
    )


def test_talos_installer_must_be_pinned() -> None:
    unpinned = with_installer(talos(), "mirror/installer:v1")
    assert (
        error(unpinned)
        == "talos.installer_image: 'mirror/installer:v1' is not pinned by digest (@sha256:...)"
    )


def test_args_are_frozen_and_refuse_unknown_fields() -> None:
    with pytest.raises(pydantic.ValidationError, match="extra_forbidden"):
        scaleway(node_count=3)
    with pytest.raises(pydantic.ValidationError):
        scaleway().customer = "other"  # type: ignore[misc]


# ---------------------------------------------------------------------------------- descriptions
def test_gpu_pools_carry_labels_and_the_gpu_taint() -> None:
    description = describe_cluster(scaleway())
    assert description.gpu_nodes == [
        {
            "pool": "h100",
            "zone": "fr-par-2",
            "labels": {
                "sovstack.io/customer": "acme",
                "sovstack.io/region": "fr-par",
                "sovstack.io/zone": "fr-par-2",
                "sovstack.io/gpu": "H100",
                "sovstack.io/pool": "h100",
            },
            "taints": [GPU_TAINT],
        }
    ]
    pools = {r["name"]: r for r in description.resources if r["type"] == "scaleway:kubernetes/pool:Pool"}
    gpu = pools["acme-gpu-pool-h100-fr-par-2"]
    assert gpu["inputs"]["taints"] == [GPU_TAINT]
    assert gpu["inputs"]["labels"] == description.gpu_nodes[0]["labels"]
    assert (gpu["inputs"]["min_size"], gpu["inputs"]["max_size"], gpu["inputs"]["size"]) == (0, 2, 0)
    assert gpu["inputs"]["public_ip_disabled"] is True and gpu["protect"] is True
    assert pools["acme-gpu-pool-system-fr-par-2"]["inputs"]["taints"] == []
    assert description.gpu_pools == [
        {
            "name": "h100",
            "gpu_type": "H100",
            "gpus_per_node": 1,
            "memory_gb_per_gpu": 80.0,
            "zones": ["fr-par-2"],
            "min_nodes": 0,
            "max_nodes": 2,
        }
    ]


def test_pinned_chart_version_is_recent_enough_for_talos() -> None:
    version = load_cluster_facts().gpu_operator.version
    assert version.startswith("v")
    assert tuple(int(p) for p in version[1:].split(".")) >= (26, 3, 1)


def test_adding_a_pool_renames_nothing() -> None:
    before = describe_cluster(scaleway())
    l4 = {
        "name": "l4",
        "gpu_type": "L4",
        "node_type": "L4-1-24G",
        "gpus_per_node": 1,
        "max_nodes": 3,
        "zones": ["fr-par-2"],
    }
    after = describe_cluster(scaleway(gpu_pools=[l4, {**H100_POOL, "zones": ["fr-par-2"]}]))
    after_by_name = {r["name"]: r for r in after.resources}
    for resource in before.resources:
        assert after_by_name[resource["name"]] == resource
    assert {r["name"] for r in after.resources} - {r["name"] for r in before.resources} == {
        "acme-gpu-pool-l4-fr-par-2"
    }


@pytest.mark.slow
def test_descriptions_are_the_same_in_every_process() -> None:
    assert_same_in_fresh_processes(
        "import json, sys\n"
        "from tests.components import test_gpu_cluster_builder as t\n"
        "from sovstack.components.builders.gpu_cluster import describe_cluster\n"
        "for backend in sys.argv[1:]:\n"
        "    print(json.dumps(describe_cluster(getattr(t, backend)()).model_dump()))",
        "scaleway",
        "ovh",
        "talos",
        "existing",
    )


def test_the_cluster_installs_no_chart_the_platform_layer_does() -> None:
    for args in (scaleway(), ovh(), talos(), existing()):
        assert not hasattr(describe_cluster(args), "gpu_operator_chart")


def test_autoscaled_pools_leave_their_size_to_the_autoscaler() -> None:
    pools = [r for r in describe_cluster(ovh()).resources if r["type"].endswith("KubeNodePool")]
    assert pools and all(r["ignoreChanges"] == ["desired_nodes"] for r in pools)
    scw = [r for r in describe_cluster(scaleway()).resources if r["type"] == "scaleway:kubernetes/pool:Pool"]
    assert scw and all(r["ignoreChanges"] == ["size"] for r in scw)
    # The cluster itself ignores nothing: a version bump is an update it applies.
    cluster = next(r for r in describe_cluster(ovh()).resources if r["type"].endswith("kube:Kube"))
    assert "ignoreChanges" not in cluster


def test_description_is_named_from_the_component() -> None:
    names = [r["name"] for r in describe_cluster(ovh(), name="eu1").resources]
    assert names == [
        "eu1-network",
        "eu1-subnet",
        "eu1-cluster",
        "eu1-api-ips",
        "eu1-pool-system-gra11",
        "eu1-pool-h100-gra11",
    ]


def test_ovh_pools_in_a_one_zone_region_have_no_availability_zones() -> None:
    pool = describe_cluster(ovh()).resources[-1]
    assert pool["type"] == "ovh:CloudProject/kubeNodePool:KubeNodePool"
    assert "availability_zones" not in pool["inputs"]
    assert pool["inputs"]["template"]["spec"]["taints"] == [GPU_TAINT]
    assert pool["inputs"]["flavor_name"] == "h100-380" and pool["zone"] == "GRA11"


def test_talos_patches_load_nvidia_modules_taint_gpu_workers_and_set_audit_policy() -> None:
    args = talos()
    resources = {r["name"]: r for r in describe_cluster(args).resources}
    gpu_patch = json.loads(resources["acme-gpu-apply-gpu1"]["inputs"]["config_patches"][0])["machine"]
    assert gpu_patch["install"]["image"] == "factory.talos.dev/installer/<schematic-id>:v1.14.0"
    assert gpu_patch["kernel"]["modules"] == [
        {"name": "nvidia"},
        {"name": "nvidia_uvm"},
        {"name": "nvidia_drm"},
        {"name": "nvidia_modeset"},
    ]
    assert gpu_patch["nodeTaints"] == {"nvidia.com/gpu": "present:NoSchedule"}
    assert gpu_patch["nodeLabels"]["sovstack.io/pool"] == "l40s"
    cp_patch = json.loads(resources["acme-gpu-apply-cp1"]["inputs"]["config_patches"][0])["machine"]
    assert cp_patch["install"]["image"] == "ghcr.io/siderolabs/installer:v1.14.0"
    assert "nodeTaints" not in cp_patch and "kernel" not in cp_patch
    assert talos_controlplane_patch(args) == {
        "cluster": {
            "apiServer": {
                "auditPolicy": AUDIT_POLICY,
                "extraArgs": {"audit-log-path": "/var/log/audit/kube/kube-apiserver.log"},
            }
        }
    }
    assert yaml.safe_load(talos_schematic(args)) == {
        "customization": {
            "systemExtensions": {
                "officialExtensions": [
                    "siderolabs/nonfree-kmod-nvidia-production",
                    "siderolabs/nvidia-container-toolkit-production",
                ]
            }
        }
    }
    assert resources["acme-gpu-secrets"]["protect"] and resources["acme-gpu-bootstrap"]["protect"]


def test_talos_with_a_pinned_installer_needs_no_schematic() -> None:
    args = talos()
    pinned = f"harbor.fr-par-dc1.sovstack.internal/talos/installer:v1.14.0@{DIGEST}"
    args = with_installer(args, pinned)
    resources = {r["name"]: r for r in describe_cluster(args).resources}
    assert "acme-gpu-schematic" not in resources
    assert json.loads(resources["acme-gpu-apply-gpu1"]["inputs"]["config_patches"][0])["machine"][
        "install"
    ] == {"image": pinned}


def test_existing_backend_creates_no_cloud_resource_and_labels_nodes() -> None:
    description = describe_cluster(existing())
    assert description.resources == []
    assert description.node_label_patches == [
        {
            "name": "node-7",
            "labels": {
                "sovstack.io/customer": "acme",
                "sovstack.io/region": "se-sto-dc1",
                "sovstack.io/zone": "se-sto-dc1-a",
                "sovstack.io/gpu": "H100-SXM",
                "sovstack.io/pool": "h100",
            },
        }
    ]


# ------------------------------------------------------------------------------- facts checked at their source
def _gateway_zones(args: GpuClusterArgs) -> set[str]:
    return {r["zone"] for r in describe_cluster(args).resources if r["type"].startswith("scaleway:network/")
            and r.get("zone")}  # fmt: skip


@pytest.mark.parametrize(
    ("system_zones", "gateway_zone"),
    [
        (["fr-par-3"], "fr-par-1"),  # PAR3 offers no Public Gateway: the region's first zone that does
        (["fr-par-3", "fr-par-2"], "fr-par-2"),  # a system-pool zone offering one wins
        (["fr-par-2"], "fr-par-2"),
    ],
)
def test_the_public_gateway_goes_in_a_zone_that_offers_one(
    system_zones: list[str], gateway_zone: str
) -> None:
    args = scaleway(system_pool={"node_type": "PRO2-S", "zones": system_zones})
    assert _gateway_zones(args) == {gateway_zone}


def test_kapsule_refuses_kilo_the_kosmos_cni() -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        scaleway(scaleway={"api_server_allowed_cidrs": ["203.0.113.0/24"], "cni": "kilo"})
    [error] = refused.value.errors()
    assert error["loc"] == ("scaleway", "cni") and error["msg"] == "Input should be 'cilium' or 'calico'"


@pytest.mark.parametrize("flavor", ["a100-360", "a100-720"])
def test_ovh_a100_flavors_not_documented_for_managed_kubernetes_are_refused(flavor: str) -> None:
    pool = {**H100_POOL, "gpu_type": "A100", "gpus_per_node": 2, "node_type": flavor, "zones": ["GRA11"]}
    with pytest.raises(ClusterArgsError) as refused:
        describe_cluster(ovh(gpu_pools=[pool]))
    assert str(refused.value) == (
        f"gpu_pools[0].node_type: unknown ovh node type {flavor!r}; known: a100-180, h100-1520, h100-380, "
        "h100-760, l4-180, l4-360, l4-90, l40s-180, l40s-360, l40s-90"
    )


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (
            "v1.11.5",
            "talos.talos_version: Talos v1.0 to v1.12: Talos up to v1.12 documents the standalone NVIDIA device "
            "plugin (the nvidia-device-plugin chart with runtimeClassName nvidia), not the GPU Operator; sovstack "
            "installs the GPU Operator only. Use Talos v1.13 or later. (source: https://docs.siderolabs.com/talos/"
            "v1.12/configure-your-talos-cluster/hardware-and-drivers/nvidia-gpu-proprietary)",
        ),
        (
            "v1.16.1",
            "talos.talos_version: no documented GPU path for Talos v1.16.1 in charts.yaml talosGpuPaths (known: "
            "v1.0 to v1.12 device-plugin, v1.13 to v1.14 gpu-operator, v1.15 gpu-operator); add its range with "
            "its source before using it",
        ),
    ],
)
def test_a_talos_release_without_a_documented_gpu_operator_path_is_refused(
    version: str, message: str
) -> None:
    args = talos()
    assert args.talos is not None
    with pytest.raises(ClusterArgsError) as refused:
        describe_cluster(
            args.model_copy(update={"talos": args.talos.model_copy(update={"talos_version": version})})
        )
    assert str(refused.value) == message


def test_the_talos_paths_cover_every_minor_once_in_order() -> None:
    paths = load_cluster_facts().talos_gpu_paths
    minors = [m for p in paths for m in range(int(p.from_minor[2:]), int(p.through[2:]) + 1)]
    assert minors == list(range(16))
    assert all(p.source.strip().startswith("https://docs.siderolabs.com/talos/v1.1") for p in paths)


def test_talos_control_plane_installs_from_the_system_installer_mirror() -> None:
    args = talos()
    mirror = f"harbor.fr-par-dc1.sovstack.internal/siderolabs/installer:v1.14.0@{DIGEST}"
    assert args.talos is not None
    args = args.model_copy(update={"talos": args.talos.model_copy(update={"system_installer_image": mirror})})
    resources = {r["name"]: r for r in describe_cluster(args).resources}
    patch = json.loads(resources["acme-gpu-apply-cp1"]["inputs"]["config_patches"][0])["machine"]
    assert patch["install"] == {"image": mirror}
    unpinned = args.model_copy(
        update={"talos": args.talos.model_copy(update={"system_installer_image": "mirror/installer:v1"})}
    )
    assert error(unpinned) == (
        "talos.system_installer_image: 'mirror/installer:v1' is not pinned by digest (@sha256:...)"
    )
