"""GpuCluster args, the charts.yaml facts loader and the args validation (pure, no Pulumi).

The description of what each backend creates lives in `components/builders/gpu_cluster.py`.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field

from sovstack.components.builders.identity import ClusterOidcArgs
from sovstack.components.capacity import get_gpu
from sovstack.components.catalog import Catalog, CatalogError, Region, load_catalog, provider_for_backend
from sovstack.components.kube import image_is_pinned, is_dns_label
from sovstack.components.provenance import load_data_file

FACTS_FILE = Path(__file__).parent.parent / "data" / "charts.yaml"
Backend = Literal["scaleway", "ovh", "talos", "existing"]
CLOUD_BACKENDS = ("scaleway", "ovh")


# ------------------------------------------------------------------------------------------- facts
class _Fact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class BackendChartValues(_Fact):
    enabled: bool
    values: dict[str, Any]
    reason: str = Field(min_length=3)
    source: str = Field(min_length=3)


class PodSecurityFact(_Fact):
    level: Literal["privileged", "baseline", "restricted"]
    reason: str = Field(min_length=3)
    source: str = Field(min_length=3)


class GpuOperatorFacts(_Fact):
    name: str
    repository: str
    version: str
    namespace: str
    source: str = Field(min_length=3)
    namespace_pod_security: PodSecurityFact = Field(alias="namespacePodSecurity")
    image_repository_values: tuple[str, ...] = Field(alias="imageRepositoryValues", min_length=1)
    nfd_image_value: str = Field(alias="nfdImageValue")
    nfd_image_name: str = Field(alias="nfdImageName")
    default_image_registries: tuple[str, ...] = Field(alias="defaultImageRegistries", min_length=1)
    images_source: str = Field(alias="imagesSource", min_length=3)
    backends: dict[Backend, BackendChartValues]


class TalosFacts(_Fact):
    extensions: tuple[str, ...] = Field(min_length=1)
    extensions_source: str = Field(alias="extensionsSource", min_length=3)
    kernel_modules: tuple[str, ...] = Field(alias="kernelModules")
    sysctls: dict[str, str]
    kernel_modules_source: str = Field(alias="kernelModulesSource", min_length=3)
    factory_installer: str = Field(alias="factoryInstaller")
    default_installer: str = Field(alias="defaultInstaller")
    installer_source: str = Field(alias="installerSource", min_length=3)
    audit_log_dir: str = Field(alias="auditLogDir")
    audit_source: str = Field(alias="auditSource", min_length=3)
    node_labels_source: str = Field(alias="nodeLabelsSource", min_length=3)


class TalosGpuPath(_Fact):
    """How GPUs reach pods on a range of Talos releases (charts.yaml talosGpuPaths)."""

    from_minor: str = Field(alias="from", pattern=r"^1\.\d+$")
    through: str = Field(pattern=r"^1\.\d+$")
    path: Literal["device-plugin", "gpu-operator"]
    supported: bool = Field(description="sovstack installs this path (False: refused, with the reason).")
    values: dict[str, Any] = Field(description="GPU Operator values for this path.")
    reason: str = Field(min_length=3)
    source: str = Field(min_length=3)

    def covers(self, minor: int) -> bool:
        return int(self.from_minor.split(".")[1]) <= minor <= int(self.through.split(".")[1])

    @property
    def label(self) -> str:
        return f"v{self.from_minor}" + ("" if self.from_minor == self.through else f" to v{self.through}")


class ScalewayFacts(_Fact):
    public_gateway_type: str = Field(alias="publicGatewayType")
    public_gateway_source: str = Field(alias="publicGatewaySource", min_length=3)


class ClusterFacts(_Fact):
    gpu_operator: GpuOperatorFacts = Field(alias="gpuOperator")
    talos_gpu_paths: tuple[TalosGpuPath, ...] = Field(alias="talosGpuPaths", min_length=1)
    talos: TalosFacts
    scaleway: ScalewayFacts


@cache
def load_cluster_facts() -> ClusterFacts:
    """charts.yaml, read and validated once."""
    return ClusterFacts.model_validate(load_data_file(FACTS_FILE, keep=False))


def talos_gpu_path(talos_version: str) -> TalosGpuPath | None:
    """The documented GPU path for `vX.Y.Z`, or None when no range of charts.yaml covers it."""
    match = re.match(r"^v1\.(\d+)\.\d+$", talos_version)
    if match is None:
        return None
    minor = int(match.group(1))
    return next((p for p in load_cluster_facts().talos_gpu_paths if p.covers(minor)), None)


def talos_gpu_path_problem(talos_version: str) -> str | None:
    """Why `talos_version` has no GPU path sovstack installs, or None when it has one."""
    path = talos_gpu_path(talos_version)
    if path is None:
        known = ", ".join(f"{p.label} {p.path}" for p in load_cluster_facts().talos_gpu_paths)
        return (
            f"no documented GPU path for Talos {talos_version} in charts.yaml talosGpuPaths (known: {known}); "
            "add its range with its source before using it"
        )
    if not path.supported:
        return f"Talos {path.label}: {path.reason.strip()} (source: {path.source.strip()})"
    return None


# -------------------------------------------------------------------------------------------- args
class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SystemPoolArgs(_Args):
    """The CPU pool running cluster add-ons (cloud backends only), one node pool per zone."""

    node_type: str = Field(description="Provider instance type or flavor (e.g. `PRO2-S`, `b3-16`). Required.")
    min_nodes: int = Field(default=1, ge=1, description="Autoscaling floor per zone; default 1, at least 1.")
    max_nodes: int = Field(
        default=3, ge=1, description="Autoscaling ceiling per zone; default 3, >= min_nodes."
    )
    zones: tuple[str, ...] = Field(description="Zones of the region to run in; non-empty. Required.")


class GpuPoolArgs(_Args):
    """A set of identical GPU nodes; cloud backends create one node pool per zone."""

    name: str = Field(
        description="Pool name, a DNS-1123 label unique in the cluster; part of every name. Required."
    )
    gpu_type: str = Field(description="GPU id from the catalog (H100, H100-SXM, H200, L4, L40S, A100, B300).")
    node_type: str | None = Field(
        default=None,
        description="Cloud backends: catalog node type whose GPU is `gpu_type` and whose GPU count is "
        "`gpus_per_node` (e.g. `H100-1-80G`, `h100-380`). Required there; refused for talos/existing.",
    )
    gpus_per_node: int = Field(ge=1, description="GPUs on each node. Required.")
    min_nodes: int = Field(
        default=0, ge=0, description="Autoscaling floor per zone; default 0 (scale to zero)."
    )
    max_nodes: int = Field(ge=1, description="Autoscaling ceiling per zone; >= min_nodes. Required.")
    zones: tuple[str, ...] = Field(
        description="Zones of the region offering `gpu_type`; non-empty. Required."
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra node labels. Keys under `sovstack.io/` are reserved and refused. Default none.",
    )


class ScalewayOptions(_Args):
    """Scaleway Kapsule settings."""

    project_id: str | None = Field(default=None, description="Project to create in; default the provider's.")
    cluster_type: Literal["kapsule", "kapsule-dedicated-4", "kapsule-dedicated-8", "kapsule-dedicated-16"] = (
        Field(
            default="kapsule",
            description="Control plane offer; default `kapsule` (shared). Audit logs need a dedicated type.",
        )
    )
    # Kapsule supports cilium and calico only; kilo is Kosmos's CNI (Scaleway's version support policy,
    # "Supported Container Network Interfaces": https://www.scaleway.com/en/docs/kubernetes/reference-content/version-support-policy/).
    cni: Literal["cilium", "calico"] = Field(
        default="cilium",
        description="CNI, `cilium` or `calico` (Kapsule's only two; kilo is Kosmos's); default `cilium`.",
    )
    private_network_cidr: str = Field(
        default="172.16.0.0/22",
        description="IPv4 subnet of the cluster's Private Network; default 172.16.0.0/22.",
    )
    api_server_allowed_cidrs: tuple[str, ...] = Field(
        default=(),
        description="Networks allowed to reach the (public) API endpoint through the cluster ACL; at least "
        "one, `0.0.0.0/0` refused. The Public Gateway's IP is added for the nodes.",
    )


class OvhOptions(_Args):
    """OVHcloud Managed Kubernetes settings."""

    service_name: str | None = Field(default=None, description="Public Cloud project id. Required for ovh.")
    plan: Literal["free", "standard"] = Field(
        default="free", description="MKS plan; default `free`. 3-zone regions need `standard`."
    )
    vlan_id: int = Field(
        default=0, ge=0, le=4000, description="vRack VLAN of the private network; default 0."
    )
    subnet_cidr: str = Field(default="10.42.0.0/20", description="Nodes subnet; default 10.42.0.0/20.")
    api_server_allowed_cidrs: tuple[str, ...] = Field(
        default=(),
        description="Networks allowed to reach the API (`KubeIpRestrictions`); at least one, `0.0.0.0/0` refused.",
    )


class TalosMachine(_Args):
    """One Talos machine the operator racked, with its role and placement."""

    name: str = Field(description="Hostname and node name, a DNS-1123 label unique in the cluster. Required.")
    address: str = Field(description="IP address or DNS name the Talos API is reached at. Required.")
    role: Literal["controlplane", "worker"] = Field(description="Machine role. Required.")
    zone: str = Field(description="Site zone (hall) the machine stands in. Required.")
    pool: str | None = Field(
        default=None, description="GPU pool name for GPU workers; None for CPU machines."
    )
    gpu_type: str | None = Field(
        default=None, description="GPU id installed; must equal the pool's gpu_type."
    )
    gpu_count: int = Field(
        default=0, ge=0, description="GPUs installed; must equal the pool's gpus_per_node."
    )


class TalosOptions(_Args):
    """Talos Linux on the operator's machines."""

    cluster_endpoint: str = Field(
        description="`https://<VIP or DNS>:6443`, the control-plane endpoint. Required."
    )
    talos_version: str = Field(
        description="Talos version, `vX.Y.Z`; picks the installer and config contract."
    )
    installer_image: str | None = Field(
        default=None,
        description="Installer for GPU workers pinned by digest (an air-gapped mirror). Default: an Image "
        "Factory schematic with the NVIDIA extensions (charts.yaml).",
    )
    system_installer_image: str | None = Field(
        default=None,
        description="Installer for control-plane and non-GPU machines pinned by digest (a mirror). Default: "
        "Sidero Labs' installer (charts.yaml defaultInstaller).",
    )
    machines: tuple[TalosMachine, ...] = Field(
        default=(), description="Every machine; at least one controlplane."
    )
    audit_policy: dict[str, Any] | None = Field(
        default=None,
        description="kube-apiserver audit Policy (`audit.k8s.io/v1`) from the audit component; None keeps "
        "Talos's built-in policy.",
    )
    audit_log_path: str = Field(
        default="/var/log/audit/kube/kube-apiserver.log",
        description="API-server audit log file; must be under /var/log/audit/kube/ (mounted by Talos).",
    )


class ExistingNode(_Args):
    """A GPU node of an existing cluster to label."""

    name: str = Field(description="Kubernetes node name. Required.")
    pool: str = Field(description="GPU pool the node belongs to. Required.")
    zone: str = Field(description="Site zone the node stands in; must be one of the pool's zones. Required.")


class ExistingOptions(_Args):
    """An existing cluster reached through a kubeconfig (passed to the shell as a secret, never here)."""

    context: str | None = Field(default=None, description="kubeconfig context; default its current context.")
    nodes: tuple[ExistingNode, ...] = Field(
        default=(),
        description="GPU nodes to label with pool/zone labels; default none (labelled out of band).",
    )


class GpuOperatorOptions(_Args):
    """NVIDIA GPU Operator release; defaults per backend come from charts.yaml."""

    enabled: bool | None = Field(
        default=None,
        description="Install the operator. Default: scaleway False (Kapsule installs it; True is refused), "
        "ovh True, talos True (driver and toolkit disabled), existing False.",
    )
    version: str | None = Field(
        default=None, description="Chart version; default the pinned one in charts.yaml."
    )
    repository: str | None = Field(
        default=None,
        description="Chart repository (https); default NVIDIA's. Point it at an in-house mirror.",
    )
    image_repository: str | None = Field(
        default=None,
        description="Registry path mirroring NVIDIA's operator images (e.g. `harbor.example/mirror/nvidia`): "
        "every image value of the chart is pointed at it. Default: the chart's own registries (nvcr.io).",
    )
    extra_values: dict[str, Any] = Field(
        default_factory=dict, description="Values merged over the backend's values (e.g. mirrored images)."
    )


class GpuClusterArgs(_Args):
    """A region-bound Kubernetes cluster with GPU pools."""

    customer: str = Field(description="Customer key, a DNS-1123 label; prefixes every name. Required.")
    backend: Backend = Field(description="`scaleway`, `ovh`, `talos` or `existing`. Required.")
    region: str = Field(
        description="Provider region code (`fr-par`, `GRA11`) or site code for talos/existing."
    )
    kubernetes_version: str = Field(description="Kubernetes minor or patch version, e.g. `1.31`. Required.")
    residency_profile: str = Field(
        default="eu", description="Residency profile stamped on labels; default `eu`."
    )
    system_pool: SystemPoolArgs | None = Field(
        default=None, description="CPU pool; required for scaleway/ovh, refused for talos/existing."
    )
    gpu_pools: tuple[GpuPoolArgs, ...] = Field(description="GPU pools; at least one. Required.")
    protect: bool = Field(
        default=True,
        description="Protect clusters, pools and Talos secrets from deletion; False for test stacks.",
    )
    scaleway: ScalewayOptions | None = Field(
        default=None, description="scaleway backend only; defaults apply."
    )
    ovh: OvhOptions | None = Field(default=None, description="ovh backend only; `service_name` required.")
    talos: TalosOptions | None = Field(default=None, description="talos backend only; required there.")
    existing: ExistingOptions | None = Field(
        default=None, description="existing backend only; defaults apply."
    )
    gpu_operator: GpuOperatorOptions = Field(
        default_factory=GpuOperatorOptions, description="NVIDIA GPU Operator release settings."
    )
    oidc: ClusterOidcArgs | None = Field(
        default=None,
        description="The customer's OpenID Connect issuer for the Kubernetes API (Kapsule "
        "open_id_connect_config, OVHcloud KubeOidc, Talos oidc-* API server flags); existing clusters take "
        "the flags by hand (docs/identity.md). None: the provider's credentials only.",
    )


class ClusterArgsError(ValueError):
    """Invalid GpuCluster args; the message starts with the field path."""


# --------------------------------------------------------------------------------------- validation
_KUBERNETES_VERSION = re.compile(r"^1\.\d{2}(\.\d+)?$")
_TALOS_VERSION = re.compile(r"^v1\.\d+\.\d+$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
RESERVED_POOL_NAMES = ("system",)


def _fail(path: str, message: str) -> None:
    raise ClusterArgsError(f"{path}: {message}")


def _where(region: Region) -> str:
    return f"site {region.code!r}" if region.is_site else f"{region.provider} region {region.code!r}"


def _check_zones(path: str, zones: tuple[str, ...], region: Region) -> None:
    if not zones:
        _fail(path, f"name at least one zone of {_where(region)} (zones: {', '.join(region.zone_codes)})")
    for index, zone in enumerate(zones):
        if region.zone(zone) is None:
            _fail(
                f"{path}[{index}]",
                f"zone {zone!r} is not in {_where(region)} (zones: {', '.join(region.zone_codes)})",
            )
        if zone in zones[:index]:
            _fail(f"{path}[{index}]", f"zone {zone!r} is listed twice")


def _check_network(path: str, value: str) -> None:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        _fail(path, f"{value!r} is not an IPv4 network in CIDR notation (e.g. 172.16.0.0/22)")
        return
    if network.version != 4 or not network.is_private:
        _fail(path, f"{value} is not a private IPv4 network")


def _check_api_cidrs(path: str, cidrs: tuple[str, ...]) -> None:
    if not cidrs:
        _fail(path, "name at least one network allowed to reach the Kubernetes API (its endpoint is public)")
    for index, cidr in enumerate(cidrs):
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            _fail(f"{path}[{index}]", f"{cidr!r} is not a network in CIDR notation")
            return
        if network.prefixlen == 0:
            _fail(f"{path}[{index}]", f"{cidr} would open the API to the whole internet")


def validate_cluster_args(args: GpuClusterArgs, catalog: Catalog | None = None) -> Region:
    """Check everything the catalog and the backend can tell; returns the region or site.

    Raises ClusterArgsError whose message starts with the field path.
    """
    catalog = catalog or load_catalog()
    if not is_dns_label(args.customer):
        _fail("customer", f"{args.customer!r} is not a DNS-1123 label (a-z, 0-9, '-', at most 63 characters)")
    try:
        region = catalog.region(provider_for_backend(args.backend), args.region)
    except CatalogError as err:
        raise ClusterArgsError(f"region: {err}") from None
    if not _KUBERNETES_VERSION.match(args.kubernetes_version):
        _fail("kubernetes_version", f"{args.kubernetes_version!r} is not a version like '1.31' or '1.31.4'")
    for block in ("scaleway", "ovh", "talos", "existing"):
        if block != args.backend and getattr(args, block) is not None:
            _fail(block, f"set, but the backend is {args.backend!r}")
    _check_system_pool(args, region)
    _check_gpu_pools(args, region, catalog)
    if args.backend == "scaleway":
        options = args.scaleway or ScalewayOptions()
        if not region.public_gateway_zones:
            _fail(
                "region",
                f"scaleway region {region.code!r} has no zone offering a Public Gateway (regions.yaml)",
            )
        _check_network("scaleway.private_network_cidr", options.private_network_cidr)
        _check_api_cidrs("scaleway.api_server_allowed_cidrs", options.api_server_allowed_cidrs)
    elif args.backend == "ovh":
        _check_ovh(args.ovh or OvhOptions(), region)
    elif args.backend == "talos":
        _check_talos(args, region)
    else:
        _check_existing(args, region)
    _check_gpu_operator(args)
    return region


def _check_system_pool(args: GpuClusterArgs, region: Region) -> None:
    pool = args.system_pool
    if args.backend not in CLOUD_BACKENDS:
        if pool is not None:
            _fail("system_pool", f"not used by the {args.backend} backend (the operator provides CPU nodes)")
        return
    if pool is None:
        _fail(
            "system_pool", f"required for the {args.backend} backend (node_type, min_nodes, max_nodes, zones)"
        )
        return
    if not pool.node_type:
        _fail("system_pool.node_type", "required")
    _check_zones("system_pool.zones", pool.zones, region)
    if pool.min_nodes > pool.max_nodes:
        _fail("system_pool.min_nodes", f"{pool.min_nodes} is greater than max_nodes {pool.max_nodes}")


def _check_gpu_pools(args: GpuClusterArgs, region: Region, catalog: Catalog) -> None:
    if not args.gpu_pools:
        _fail("gpu_pools", "declare at least one GPU pool")
    provider = provider_for_backend(args.backend)
    for index, pool in enumerate(args.gpu_pools):
        path = f"gpu_pools[{index}]"
        if not is_dns_label(pool.name) or pool.name in RESERVED_POOL_NAMES:
            _fail(
                f"{path}.name",
                f"{pool.name!r} is not a DNS-1123 label or is reserved ({', '.join(RESERVED_POOL_NAMES)})",
            )
        if any(other.name == pool.name for other in args.gpu_pools[:index]):
            _fail(f"{path}.name", f"pool {pool.name!r} is declared twice")
        try:
            get_gpu(pool.gpu_type)
        except KeyError as err:
            _fail(f"{path}.gpu_type", str(err.args[0]))
        _check_zones(f"{path}.zones", pool.zones, region)
        for zone_code in pool.zones:
            zone = region.zone(zone_code)
            assert zone is not None
            if pool.gpu_type not in zone.gpus:
                offered = ", ".join(zone.gpus) or "none"
                _fail(
                    f"{path}.gpu_type",
                    f"{pool.gpu_type} is not offered in zone {zone_code} (offered: {offered})",
                )
        if pool.min_nodes > pool.max_nodes:
            _fail(f"{path}.min_nodes", f"{pool.min_nodes} is greater than max_nodes {pool.max_nodes}")
        for key, value in pool.labels.items():
            if key.startswith("sovstack.io/"):
                _fail(f"{path}.labels", f"{key!r} is reserved: sovstack sets sovstack.io/* labels itself")
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
                _fail(f"{path}.labels", f"{key}={value!r} is not a valid Kubernetes label")
        if args.backend not in CLOUD_BACKENDS:
            if pool.node_type is not None:
                _fail(
                    f"{path}.node_type",
                    f"not used by the {args.backend} backend (machines are listed instead)",
                )
            continue
        wanted = f"{pool.gpus_per_node} x {pool.gpu_type}"
        matching = sorted(
            n.name
            for n in catalog.provider(provider).node_types
            if n.gpu == pool.gpu_type and n.gpus == pool.gpus_per_node
        )
        if pool.node_type is None:
            _fail(
                f"{path}.node_type", f"required for {args.backend}; {wanted}: {', '.join(matching) or 'none'}"
            )
            return
        node_type = catalog.node_type(provider, pool.node_type)
        if node_type is None:
            known = sorted(n.name for n in catalog.provider(provider).node_types if n.gpu)
            _fail(
                f"{path}.node_type",
                f"unknown {provider} node type {pool.node_type!r}; known: {', '.join(known)}",
            )
            return
        if node_type.gpu != pool.gpu_type or node_type.gpus != pool.gpus_per_node:
            _fail(
                f"{path}.node_type",
                f"{node_type.name} has {node_type.gpus} x {node_type.gpu}, not {wanted} (gpu_type, gpus_per_node)",
            )


def _check_ovh(options: OvhOptions, region: Region) -> None:
    if not options.service_name:
        _fail("ovh.service_name", "required for the ovh backend (the Public Cloud project id)")
    _check_network("ovh.subnet_cidr", options.subnet_cidr)
    _check_api_cidrs("ovh.api_server_allowed_cidrs", options.api_server_allowed_cidrs)
    if len(region.zones) > 1 and options.plan != "standard":
        _fail("ovh.plan", f"region {region.code} has {len(region.zones)} zones and needs plan 'standard'")


def _check_talos(args: GpuClusterArgs, site: Region) -> None:
    talos = args.talos
    if talos is None:
        _fail("talos", "required for the talos backend (cluster_endpoint, talos_version, machines)")
        return
    url = urlparse(talos.cluster_endpoint)
    if url.scheme != "https" or not url.hostname or url.port is None or url.path not in ("", "/"):
        _fail("talos.cluster_endpoint", f"{talos.cluster_endpoint!r} is not https://<host>:<port>")
    if args.kubernetes_version.count(".") != 2:
        _fail(
            "kubernetes_version",
            "Talos needs a patch version (e.g. '1.31.4'): it names the control-plane images",
        )
    if not _TALOS_VERSION.match(talos.talos_version):
        _fail("talos.talos_version", f"{talos.talos_version!r} is not a Talos version like 'v1.11.5'")
    operator_on = (
        args.gpu_operator.enabled
        if args.gpu_operator.enabled is not None
        else load_cluster_facts().gpu_operator.backends["talos"].enabled
    )
    problem = talos_gpu_path_problem(talos.talos_version) if operator_on else None
    if problem is not None:
        _fail("talos.talos_version", problem)
    if talos.installer_image is not None and not image_is_pinned(talos.installer_image):
        _fail("talos.installer_image", f"{talos.installer_image!r} is not pinned by digest (@sha256:...)")
    system = talos.system_installer_image
    if system is not None and not image_is_pinned(system):
        _fail("talos.system_installer_image", f"{system!r} is not pinned by digest (@sha256:...)")
    audit_dir = load_cluster_facts().talos.audit_log_dir
    if not talos.audit_log_path.startswith(audit_dir + "/") or ".." in talos.audit_log_path:
        _fail(
            "talos.audit_log_path",
            f"{talos.audit_log_path!r} is not under {audit_dir}/ (the directory Talos mounts)",
        )
    policy = talos.audit_policy
    if policy is not None and (
        policy.get("apiVersion") != "audit.k8s.io/v1" or policy.get("kind") != "Policy"
    ):
        _fail("talos.audit_policy", "not an audit.k8s.io/v1 Policy")
    if not talos.machines:
        _fail("talos.machines", "list at least one machine (one controlplane or more)")
    if not any(m.role == "controlplane" for m in talos.machines):
        _fail("talos.machines", "no machine has role 'controlplane'")
    pools = {p.name: p for p in args.gpu_pools}
    counts: dict[tuple[str, str], int] = {}
    for index, machine in enumerate(talos.machines):
        path = f"talos.machines[{index}]"
        if not is_dns_label(machine.name):
            _fail(f"{path}.name", f"{machine.name!r} is not a DNS-1123 label")
        earlier = talos.machines[:index]
        if any(m.name == machine.name for m in earlier) or any(m.address == machine.address for m in earlier):
            _fail(path, f"name {machine.name!r} or address {machine.address!r} is used twice")
        if site.zone(machine.zone) is None:
            _fail(
                f"{path}.zone",
                f"zone {machine.zone!r} is not in {_where(site)} (zones: {', '.join(site.zone_codes)})",
            )
        if machine.pool is None:
            if machine.gpu_count or machine.gpu_type:
                _fail(f"{path}.pool", "a machine with GPUs must name its GPU pool")
            continue
        pool = pools.get(machine.pool)
        if pool is None:
            _fail(f"{path}.pool", f"no GPU pool named {machine.pool!r} (pools: {', '.join(pools)})")
            return
        if machine.role != "worker":
            _fail(f"{path}.role", "GPU pools take workers only")
        if machine.zone not in pool.zones:
            _fail(
                f"{path}.zone",
                f"zone {machine.zone} is not one of pool {pool.name}'s zones ({', '.join(pool.zones)})",
            )
        if machine.gpu_type != pool.gpu_type or machine.gpu_count != pool.gpus_per_node:
            _fail(
                f"{path}.gpu_type",
                f"{machine.gpu_count} x {machine.gpu_type} does not match pool {pool.name} "
                f"({pool.gpus_per_node} x {pool.gpu_type})",
            )
        counts[(pool.name, machine.zone)] = counts.get((pool.name, machine.zone), 0) + 1
    for index, pool in enumerate(args.gpu_pools):
        for zone in pool.zones:
            count = counts.get((pool.name, zone), 0)
            if not pool.min_nodes <= count <= pool.max_nodes:
                _fail(
                    f"gpu_pools[{index}]",
                    f"{count} machines in zone {zone}, outside min_nodes..max_nodes ({pool.min_nodes}..{pool.max_nodes})",
                )


def _check_existing(args: GpuClusterArgs, site: Region) -> None:
    pools = {p.name: p for p in args.gpu_pools}
    nodes = (args.existing or ExistingOptions()).nodes
    for index, node in enumerate(nodes):
        path = f"existing.nodes[{index}]"
        if not node.name or any(n.name == node.name for n in nodes[:index]):
            _fail(f"{path}.name", f"{node.name!r} is empty or listed twice")
        pool = pools.get(node.pool)
        if pool is None:
            _fail(f"{path}.pool", f"no GPU pool named {node.pool!r} (pools: {', '.join(pools)})")
            return
        if node.zone not in pool.zones:
            _fail(
                f"{path}.zone",
                f"zone {node.zone!r} is not one of pool {pool.name}'s zones ({', '.join(pool.zones)})",
            )


def _check_gpu_operator(args: GpuClusterArgs) -> None:
    options = args.gpu_operator
    if args.backend == "scaleway" and options.enabled:
        _fail(
            "gpu_operator.enabled",
            "Kapsule installs the NVIDIA GPU Operator on GPU pools; never install a second one",
        )
    if options.repository is not None:
        url = urlparse(options.repository)
        if url.scheme != "https" or not url.hostname:
            _fail("gpu_operator.repository", f"{options.repository!r} is not an https:// chart repository")
    if options.version is not None and not options.version.strip():
        _fail("gpu_operator.version", "empty")
