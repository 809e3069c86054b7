"""GpuCluster args, validation and the description of what each backend creates (pure, no Pulumi).

`sovstack render` lists `describe_cluster(...).resources` in cloud-resources.json; the Pulumi shell in
`components/gpu_cluster.py` registers the same resources with the same names and static inputs.
The args, the charts.yaml facts and the validation live in `components/builders/gpu_cluster_args.py`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sovstack.components.builders.gpu_cluster_args import (
    Backend,
    ClusterArgsError,
    GpuClusterArgs,
    GpuOperatorOptions,
    GpuPoolArgs,
    OvhOptions,
    ScalewayOptions,
    TalosMachine,
    load_cluster_facts,
    talos_gpu_path,
    talos_gpu_path_problem,
    validate_cluster_args,
)
from sovstack.components.builders.identity import apiserver_oidc_flags, ovh_oidc_inputs, scaleway_oidc_config
from sovstack.components.capacity import get_gpu
from sovstack.components.catalog import Catalog, load_catalog
from sovstack.components.kube import (
    GPU_TAINT,
    LABEL_CUSTOMER,
    LABEL_GPU,
    LABEL_POOL,
    LABEL_REGION,
    LABEL_ZONE,
    dns_name,
    to_yaml,
)


# ------------------------------------------------------------------------------------- description
class ClusterDescription(BaseModel):
    """What a GpuCluster creates, as plain data (`sovstack render` writes it without Pulumi)."""

    model_config = ConfigDict(frozen=True)

    backend: Backend
    region: str
    zones: tuple[str, ...] = Field(description="Every zone the cluster's nodes run in, sorted.")
    resources: list[dict[str, Any]] = Field(
        description="Cloud resources: type, name, region, zone, inputs, protect."
    )
    gpu_nodes: list[dict[str, Any]] = Field(description="Per GPU pool and zone: node labels and taints.")
    node_label_patches: list[dict[str, Any]] = Field(
        description="existing backend: node name and labels to set."
    )
    gpu_pools: list[dict[str, Any]] = Field(
        description="Pool sizes for the serving component to plan against."
    )
    notes: list[str]


def gpu_operator_enabled(args: GpuClusterArgs) -> bool:
    """The operator setting, or the backend's default from charts.yaml."""
    return operator_enabled_for(args.backend, args.gpu_operator)


def operator_enabled_for(backend: Backend, options: GpuOperatorOptions) -> bool:
    """As `gpu_operator_enabled`, from the backend and the operator options alone (no full args)."""
    if options.enabled is not None:
        return options.enabled
    return load_cluster_facts().gpu_operator.backends[backend].enabled


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def operator_chart_for(
    backend: Backend, options: GpuOperatorOptions, talos_version: str | None = None
) -> dict[str, Any] | None:
    """The GPU Operator chart to install for `backend` (name, repository, version, namespace, values), or
    None where the backend brings its own or the options turn it off. The platform layer installs it.
    On Talos the values follow the Talos release (charts.yaml talosGpuPaths); one without a documented
    path sovstack installs raises ClusterArgsError."""
    if not operator_enabled_for(backend, options):
        return None
    facts = load_cluster_facts().gpu_operator
    values = facts.backends[backend].values
    if backend == "talos":
        problem = talos_gpu_path_problem(talos_version or "")
        path = talos_gpu_path(talos_version or "")
        if problem is not None or path is None:
            raise ClusterArgsError(f"talos.talos_version: {problem}")
        values = _merge(values, path.values)
    if options.image_repository:
        values = _merge(values, mirrored_image_values(options.image_repository))
    return {
        "name": facts.name,
        "repository": options.repository or facts.repository,
        "version": options.version or facts.version,
        "namespace": facts.namespace,
        "values": _merge(values, options.extra_values),
    }


def mirrored_image_values(mirror: str) -> dict[str, Any]:
    """Chart values pointing every operator image at `mirror` (charts.yaml lists the values)."""
    facts = load_cluster_facts().gpu_operator
    values: dict[str, Any] = {}
    paths = [(key, mirror) for key in facts.image_repository_values]
    paths.append((facts.nfd_image_value, f"{mirror}/{facts.nfd_image_name}"))
    for dotted, value in paths:
        *parents, leaf = dotted.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return values


def operator_image_registries(options: GpuOperatorOptions) -> tuple[str, ...]:
    """Where the operator's own images come from: the mirror, else the chart's defaults."""
    if options.image_repository:
        return (options.image_repository,)
    return load_cluster_facts().gpu_operator.default_image_registries


def node_labels(args: GpuClusterArgs, zone: str, pool: GpuPoolArgs | None = None) -> dict[str, str]:
    """sovstack's labels for a node in `zone` (of GPU pool `pool`, if any), then the pool's extra labels."""
    labels = {LABEL_CUSTOMER: args.customer, LABEL_REGION: args.region, LABEL_ZONE: zone}
    if pool is not None:
        labels |= {LABEL_GPU: pool.gpu_type, LABEL_POOL: pool.name, **pool.labels}
    return labels


class _Resources(list[dict[str, Any]]):
    """Resource descriptions in registration order; inputs are the SDK's keyword arguments."""

    def __init__(self, region: str) -> None:
        super().__init__()
        self.region = region

    def add(
        self,
        typ: str,
        logical: str,
        /,
        *,
        at: str | None = None,
        protect: bool = False,
        ignore_changes: tuple[str, ...] = (),
        **inputs: Any,
    ) -> None:
        """Describe one resource; `at` is its zone when `zone` is not one of its inputs. `ignore_changes`
        names inputs the world changes after creation (an autoscaled pool's size), never reset by `up`."""
        where = {"region": self.region, "zone": at or inputs.get("zone")}
        entry = {"type": typ, "name": logical, **where, "inputs": inputs, "protect": protect}
        if ignore_changes:
            entry["ignoreChanges"] = list(ignore_changes)
        self.append(entry)


def _node_pools(args: GpuClusterArgs) -> list[tuple[str, GpuPoolArgs | None, str, str | None, int, int]]:
    """(key, GPU pool or None for the system pool, zone, node type, min, max) per cloud node pool."""
    out: list[tuple[str, GpuPoolArgs | None, str, str | None, int, int]] = []
    if args.system_pool is not None:
        s = args.system_pool
        out += [("system", None, zone, s.node_type, s.min_nodes, s.max_nodes) for zone in s.zones]
    for p in args.gpu_pools:
        out += [(p.name, p, zone, p.node_type, p.min_nodes, p.max_nodes) for zone in p.zones]
    return out


SCW = "scaleway:{}"
#: Nodes keep their public interface for egress (no vRack gateway is created); the private network carries
#: node-to-node traffic and load balancers. Both fields are required together by the SDK.
_OVH_PRIVATE_ROUTING = {"default_vrack_gateway": "", "private_network_routing_as_default": False}
OVH = "ovh:CloudProject/{}"


def public_gateway_zone(args: GpuClusterArgs, catalog: Catalog | None = None) -> str:
    """The zone of the cluster's Public Gateway: the first system-pool zone offering one, else the
    region's first (regions.yaml `publicGateway`; fr-par-3 has none). The Private Network is regional,
    so a gateway in any zone serves every pool."""
    assert args.system_pool is not None
    region = (catalog or load_catalog()).region("scaleway", args.region)
    offered = region.public_gateway_zones
    chosen = next((z for z in args.system_pool.zones if z in offered), None) or next(iter(offered), None)
    if chosen is None:
        raise ClusterArgsError(
            f"region: scaleway region {args.region!r} has no zone offering a Public Gateway"
        )
    return chosen


def _scaleway_resources(args: GpuClusterArgs, name: str) -> list[dict[str, Any]]:
    options = args.scaleway or ScalewayOptions()
    assert args.system_pool is not None
    region, customer, protect = args.region, args.customer, args.protect
    common: dict[str, Any] = {"tags": ["sovstack", f"customer={customer}"]}
    if options.project_id:
        common["project_id"] = options.project_id
    gw_zone = public_gateway_zone(args)
    gw_type = load_cluster_facts().scaleway.public_gateway_type
    oidc: dict[str, Any] = {"open_id_connect_config": scaleway_oidc_config(args.oidc)} if args.oidc else {}
    out = _Resources(region)
    out.add(
        SCW.format("network/vpc:Vpc"), f"{name}-vpc", name=dns_name(customer, "vpc"), region=region, **common
    )
    out.add(
        SCW.format("network/privateNetwork:PrivateNetwork"), f"{name}-pn", name=dns_name(customer, "pn"),
        region=region, ipv4_subnet={"subnet": options.private_network_cidr}, **common,
    )  # fmt: skip
    out.add(SCW.format("network/publicGatewayIp:PublicGatewayIp"), f"{name}-gw-ip", zone=gw_zone, **common)
    out.add(
        SCW.format("network/publicGateway:PublicGateway"), f"{name}-gw", zone=gw_zone,
        name=dns_name(customer, "gw"), type=gw_type, **common,
    )  # fmt: skip
    out.add(
        SCW.format("network/gatewayNetwork:GatewayNetwork"), f"{name}-gw-pn", zone=gw_zone,
        enable_masquerade=True, ipam_configs=[{"push_default_route": True}],
    )  # fmt: skip
    out.add(
        SCW.format("kubernetes/cluster:Cluster"), f"{name}-cluster", protect=protect,
        name=dns_name(customer, "cluster"), region=region, version=args.kubernetes_version, cni=options.cni,
        type=options.cluster_type, delete_additional_resources=False,
        **oidc, **common,
    )  # fmt: skip
    rules = [
        {"ip": cidr, "description": "declared API client network"}
        for cidr in options.api_server_allowed_cidrs
    ]
    out.add(SCW.format("kubernetes/acl:Acl"), f"{name}-acl", region=region, acl_rules=rules)
    for key, pool, zone, node_type, low, high in _node_pools(args):
        out.add(
            SCW.format("kubernetes/pool:Pool"), f"{name}-pool-{key}-{zone}", protect=protect,
            # The autoscaler moves `size` between min and max; `up` must not reset it to the minimum.
            ignore_changes=("size",),
            name=dns_name(customer, key, zone), region=region, zone=zone, node_type=node_type, size=low,
            min_size=low, max_size=high, autoscaling=True, autohealing=True, public_ip_disabled=True,
            labels=node_labels(args, zone, pool), taints=[dict(GPU_TAINT)] if pool else [], **common,
        )  # fmt: skip
    return out


def _ovh_resources(args: GpuClusterArgs, name: str) -> list[dict[str, Any]]:
    options = args.ovh or OvhOptions()
    region, customer, protect = args.region, args.customer, args.protect
    service: dict[str, Any] = {"service_name": options.service_name}
    multi_zone = len(load_catalog().region("ovh", region).zones) > 1
    out = _Resources(region)
    out.add(
        OVH.format("networkPrivate:NetworkPrivate"), f"{name}-network", name=dns_name(customer, "net"),
        regions=[region], vlan_id=options.vlan_id, **service,
    )  # fmt: skip
    out.add(
        OVH.format("networkPrivateSubnetV2:NetworkPrivateSubnetV2"), f"{name}-subnet",
        name=dns_name(customer, "nodes"), region=region, cidr=options.subnet_cidr, dhcp=True,
        enable_gateway_ip=True, **service,
    )  # fmt: skip
    out.add(
        OVH.format("kube:Kube"), f"{name}-cluster", protect=protect, name=dns_name(customer, "cluster"),
        region=region, version=args.kubernetes_version, plan=options.plan, update_policy="MINIMAL_DOWNTIME",
        private_network_configuration=_OVH_PRIVATE_ROUTING, **service,
    )  # fmt: skip
    ips = list(options.api_server_allowed_cidrs)
    out.add(OVH.format("kubeIpRestrictions:KubeIpRestrictions"), f"{name}-api-ips", ips=ips, **service)
    if args.oidc is not None:
        out.add(OVH.format("kubeOidc:KubeOidc"), f"{name}-oidc", **ovh_oidc_inputs(args.oidc), **service)
    for key, pool, zone, flavor, low, high in _node_pools(args):
        metadata = {"labels": node_labels(args, zone, pool), "annotations": {}, "finalizers": []}
        spec = {"taints": [dict(GPU_TAINT)] if pool else [], "unschedulable": False}
        placement = {"availability_zones": [zone]} if multi_zone else {}
        out.add(
            OVH.format("kubeNodePool:KubeNodePool"), f"{name}-pool-{key}-{zone.lower()}", at=zone,
            # The autoscaler moves `desired_nodes` between min and max; `up` must not reset it.
            ignore_changes=("desired_nodes",),
            protect=protect, name=dns_name(customer, key, zone), flavor_name=flavor, autoscale=True,
            min_nodes=low, max_nodes=high, desired_nodes=low, template={"metadata": metadata, "spec": spec},
            **placement, **service,
        )  # fmt: skip
    return out


def talos_schematic(args: GpuClusterArgs) -> str:
    """Image Factory schematic (YAML) adding the NVIDIA system extensions to the installer."""
    extensions = list(load_cluster_facts().talos.extensions)
    return to_yaml(
        {"customization": {"systemExtensions": {"officialExtensions": extensions}}}, sort_keys=True
    )


def talos_controlplane_patch(args: GpuClusterArgs) -> dict[str, Any]:
    """Control-plane patch: the audit policy and the audit log path; the OIDC issuer when one is set."""
    assert args.talos is not None
    extra_args = {"audit-log-path": args.talos.audit_log_path}
    if args.oidc is not None:
        extra_args.update(apiserver_oidc_flags(args.oidc))
    api_server: dict[str, Any] = {"extraArgs": extra_args}
    if args.talos.audit_policy is not None:
        api_server["auditPolicy"] = args.talos.audit_policy
    return {"cluster": {"apiServer": api_server}}


def talos_machine_patch(args: GpuClusterArgs, machine: TalosMachine, gpu_installer: str) -> dict[str, Any]:
    """Per-machine patch: installer image, node labels; GPU workers add kernel modules and the GPU taint."""
    assert args.talos is not None
    facts = load_cluster_facts().talos
    pool = next((p for p in args.gpu_pools if p.name == machine.pool), None)
    labels = {
        "topology.kubernetes.io/region": args.region,
        "topology.kubernetes.io/zone": machine.zone,
        **node_labels(args, machine.zone, pool),
    }
    install = gpu_installer if pool else talos_system_installer(args)
    patch: dict[str, Any] = {"install": {"image": install}, "nodeLabels": labels}
    if pool is not None:
        patch["kernel"] = {"modules": [{"name": module} for module in facts.kernel_modules]}
        patch["sysctls"] = dict(facts.sysctls)
        patch["nodeTaints"] = {GPU_TAINT["key"]: f"{GPU_TAINT['value']}:{GPU_TAINT['effect']}"}
    return {"machine": patch}


def talos_system_installer(args: GpuClusterArgs) -> str:
    """The installer of control-plane and non-GPU machines: the mirror's, else Sidero Labs' (charts.yaml)."""
    assert args.talos is not None
    if args.talos.system_installer_image:
        return args.talos.system_installer_image
    return load_cluster_facts().talos.default_installer.format(version=args.talos.talos_version)


def talos_gpu_installer(args: GpuClusterArgs, schematic_id: str = "<schematic-id>") -> str:
    assert args.talos is not None
    if args.talos.installer_image:
        return args.talos.installer_image
    template = load_cluster_facts().talos.factory_installer
    return template.format(schematic=schematic_id, version=args.talos.talos_version)


def _talos_resources(args: GpuClusterArgs, name: str) -> list[dict[str, Any]]:
    talos = args.talos
    assert talos is not None
    out = _Resources(args.region)
    out.add(
        "talos:machine/secrets:Secrets",
        f"{name}-secrets",
        protect=args.protect,
        talos_version=talos.talos_version,
    )
    if talos.installer_image is None and any(m.pool for m in talos.machines):
        out.add(
            "talos:imageFactory/schematic:Schematic", f"{name}-schematic", schematic=talos_schematic(args)
        )
    installer = talos_gpu_installer(args)
    for m in talos.machines:
        patches = [json.dumps(talos_machine_patch(args, m, installer), sort_keys=True)]
        out.add(
            "talos:machine/configurationApply:ConfigurationApply", f"{name}-apply-{m.name}", at=m.zone,
            node=m.address, endpoint=m.address, config_patches=patches,
        )  # fmt: skip
    first = next(m for m in talos.machines if m.role == "controlplane")
    reach: dict[str, Any] = {"node": first.address, "endpoint": first.address}
    out.add(
        "talos:machine/bootstrap:Bootstrap",
        f"{name}-bootstrap",
        at=first.zone,
        protect=args.protect,
        **reach,
    )
    out.add("talos:cluster/kubeconfig:Kubeconfig", f"{name}-kubeconfig", at=first.zone, **reach)
    return out


def describe_cluster(
    args: GpuClusterArgs, *, name: str | None = None, catalog: Catalog | None = None
) -> ClusterDescription:
    """Validate `args` and describe what the backend creates. `name` is the component's name (logical
    names are `<name>-<part>`); default `<customer>-gpu`."""
    validate_cluster_args(args, catalog)
    name = name or dns_name(args.customer, "gpu")
    builders = {"scaleway": _scaleway_resources, "ovh": _ovh_resources, "talos": _talos_resources}
    resources = builders[args.backend](args, name) if args.backend in builders else []
    zones = {z for p in args.gpu_pools for z in p.zones} | set(
        args.system_pool.zones if args.system_pool else ()
    )
    if args.talos:
        zones |= {m.zone for m in args.talos.machines}
    gpu_nodes = [
        {
            "pool": pool.name,
            "zone": zone,
            "labels": node_labels(args, zone, pool),
            "taints": [dict(GPU_TAINT)],
        }
        for pool in args.gpu_pools
        for zone in pool.zones
    ]
    pools = {p.name: p for p in args.gpu_pools}
    patches = [
        {"name": node.name, "labels": node_labels(args, node.zone, pools[node.pool])}
        for node in (args.existing.nodes if args.existing else ())
    ]
    return ClusterDescription(
        backend=args.backend,
        region=args.region,
        zones=tuple(sorted(zones)),
        resources=resources,
        gpu_nodes=gpu_nodes,
        node_label_patches=patches,
        gpu_pools=[
            {
                "name": p.name,
                "gpu_type": p.gpu_type,
                "gpus_per_node": p.gpus_per_node,
                "memory_gb_per_gpu": get_gpu(p.gpu_type).memory_gb,
                "zones": list(p.zones),
                "min_nodes": p.min_nodes,
                "max_nodes": p.max_nodes,
            }
            for p in args.gpu_pools
        ],
        notes=_notes(args),
    )


def _notes(args: GpuClusterArgs) -> list[str]:
    facts = load_cluster_facts().gpu_operator.backends[args.backend]
    notes = [f"GPU Operator: {facts.reason.strip()}"]
    path = talos_gpu_path(args.talos.talos_version) if args.talos is not None else None
    if path is not None:
        notes.append(f"Talos {path.label} GPU path ({path.path}): {path.reason.strip()}")
    if args.backend == "scaleway":
        notes.append(
            "The API endpoint stays public; the ACL admits only the declared networks and the gateway IP."
        )
    if args.backend == "existing":
        notes.append(
            "Taints are not patched on existing nodes: the operator registers GPU nodes with the taint."
        )
        if args.oidc is not None:
            notes.append(
                "OIDC: sovstack cannot configure an existing API server; add these flags (docs/identity.md): "
                + " ".join(f"--{k}={v}" for k, v in apiserver_oidc_flags(args.oidc).items())
            )
    return notes
