"""Pure builder for tenant isolation: namespaces at Pod Security `restricted`, default-deny network
policies with declared exceptions, GPU quota and container defaults.

No Pulumi import: `sovstack render` calls `build_network_isolation` directly.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sovstack.components.kube import (
    GPU_RESOURCE,
    METADATA_CIDR,
    Manifest,
    dns_name,
    is_dns_label,
    standard_labels,
)

COMPONENT = "network-isolation"
PSA_LEVELS = ("enforce", "audit", "warn")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_METADATA_NETWORK = ipaddress.ip_network(METADATA_CIDR)


def _check_cidr(value: str, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Parse one CIDR; refuse the whole internet and non-canonical networks, naming the field."""
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise ValueError(f"{field}: {value!r} is not a valid network in CIDR notation ({err})") from None
    if network.prefixlen == 0:
        raise ValueError(
            f"{field}: {value!r} opens every address; declare the destination's own network instead"
        )
    return network


def _ip_block(cidr: str) -> dict[str, Any]:
    """A NetworkPolicy ipBlock; the cloud metadata address is excepted whenever the block contains it.

    Kubernetes only accepts `except` entries inside the block, so narrower blocks that cannot reach
    169.254.169.254 carry no `except` (they cannot reach it anyway).
    """
    network = ipaddress.ip_network(cidr)
    block: dict[str, Any] = {"cidr": cidr}
    if network.version == 4 and _METADATA_NETWORK.subnet_of(network):  # type: ignore[arg-type]
        block["except"] = [METADATA_CIDR]
    return block


class EgressDestination(BaseModel):
    """One declared destination pods may reach (an S3 endpoint, a model registry, an identity provider)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        description="DNS-1123 label naming the destination; the policy is `allow-egress-<name>`."
    )
    cidrs: list[str] = Field(
        default_factory=list,
        description="Networks of the destination in CIDR notation. `0.0.0.0/0` and `::/0` are refused. "
        "May be empty only when `hosts` is set and Cilium FQDN policies are on.",
    )
    ports: list[int] = Field(min_length=1, description="TCP ports allowed to the destination (1-65535).")
    hosts: list[str] = Field(
        default_factory=list,
        description="DNS names of the destination, enforced only by Cilium `toFQDNs` "
        "(`cni: cilium` and `cilium_fqdn_policies: true`); ignored by plain NetworkPolicies.",
    )
    namespaces: list[str] = Field(
        min_length=1, description="Owned namespaces whose pods may reach this destination."
    )


class DnsTarget(BaseModel):
    """Where the cluster DNS runs; every owned namespace may query it on port 53 (UDP and TCP)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = Field(default="kube-system", description="Namespace of the cluster DNS pods.")
    pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"k8s-app": "kube-dns"},
        description="Label selector of the cluster DNS pods (CoreDNS keeps the `k8s-app: kube-dns` label).",
    )
    port: int = Field(default=53, ge=1, le=65535, description="DNS port, opened for UDP and TCP.")


class KubernetesApiAccess(BaseModel):
    """Egress to the Kubernetes API server, for namespaces whose pods read the API (the audit shipper)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cidrs: list[str] = Field(
        min_length=1,
        description="Addresses of the API server endpoints (not the `kubernetes` Service IP: most CNIs "
        "evaluate policy after the Service is translated to its endpoints).",
    )
    ports: list[int] = Field(
        default_factory=lambda: [443, 6443], description="API server ports; default 443 and 6443."
    )
    namespaces: list[str] = Field(min_length=1, description="Owned namespaces allowed to reach the API.")


class LimitRangeDefaults(BaseModel):
    """Requests and limits given to containers that declare none, in every owned namespace."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_request: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "100m", "memory": "128Mi"},
        description="Container requests applied when a container sets none.",
    )
    default_limit: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "1", "memory": "512Mi"},
        description="Container limits applied when a container sets none.",
    )


class MetricsScrape(BaseModel):
    """Prometheus in `from_namespaces` may scrape pods of owned `namespaces` on `port` (their /metrics)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespaces: list[str] = Field(min_length=1, description="Owned namespaces whose pods are scraped.")
    from_namespaces: list[str] = Field(
        min_length=1, description="Namespaces the scraping Prometheus runs in."
    )
    port: int = Field(ge=1, le=65535, description="The metrics port (Fluent Bit's HTTP server: 2020).")


class NetworkIsolationArgs(BaseModel):
    """Arguments of `NetworkIsolation`: which namespaces sovstack owns and what may cross their borders."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customer: str = Field(description="Customer key (DNS-1123 label); stamped on every object's labels.")
    region: str = Field(description="Region key the namespaces live in; stamped on labels.")
    residency_profile: str = Field(description="Residency profile name; stamped on labels.")
    namespaces: list[str] = Field(
        min_length=1, description="Namespaces sovstack owns (for example serving and audit), DNS-1123 labels."
    )
    serving_namespace: str = Field(description="The owned namespace running the model servers.")
    serving_port: int = Field(default=8000, ge=1, le=65535, description="Model server port; default 8000.")
    ingress_from_namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces (gateways) whose pods may reach the serving port; matched on "
        "`kubernetes.io/metadata.name`.",
    )
    ingress_cidrs: list[str] = Field(
        default_factory=list,
        description="Networks allowed to reach the serving port. `0.0.0.0/0` and `::/0` are refused.",
    )
    egress: list[EgressDestination] = Field(
        default_factory=list, description="Declared destinations; everything else is denied."
    )
    dns: DnsTarget = Field(default_factory=DnsTarget, description="Cluster DNS every namespace may query.")
    allow_kubernetes_api: KubernetesApiAccess | None = Field(
        default=None, description="Egress to the API server for the listed namespaces; default none."
    )
    gpu_quota: int = Field(
        ge=0, description=f"Ceiling of `requests.{GPU_RESOURCE}` in the serving namespace."
    )
    public_endpoint: bool = Field(
        default=False,
        description="Allow LoadBalancer and NodePort Services in the serving namespace; default False "
        "(the quota sets both to 0).",
    )
    cni: Literal["cilium", "calico", "other"] = Field(
        default="other", description="The cluster's CNI; `cilium` enables FQDN policies when asked."
    )
    cilium_fqdn_policies: bool = Field(
        default=False,
        description="Emit CiliumNetworkPolicies with `toFQDNs` for destinations' `hosts`; needs "
        "`cni: cilium`.",
    )
    namespace_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations on every owned namespace, e.g. the resolved residency policy "
        "(`sovstack.io/residency-policy`) that the CrossGuard pack and auditors read. Default none.",
    )
    privileged_namespaces: list[str] = Field(
        default_factory=list,
        description="Owned namespaces whose Pod Security `enforce` level is `privileged` (audit and warn "
        "stay `restricted`). Reserved for the audit log collector, which must read host logs; never the "
        "serving namespace.",
    )
    metrics_scrape: MetricsScrape | None = Field(
        default=None,
        description="Let Prometheus scrape metrics in owned namespaces (the audit shippers); default none.",
    )
    limits: LimitRangeDefaults = Field(
        default_factory=LimitRangeDefaults, description="Container defaults for every owned namespace."
    )

    @model_validator(mode="after")
    def _check(self) -> NetworkIsolationArgs:
        for i, ns in enumerate(self.namespaces):
            if not is_dns_label(ns):
                raise ValueError(f"namespaces[{i}]: {ns!r} is not a DNS-1123 label")
        if len(set(self.namespaces)) != len(self.namespaces):
            raise ValueError("namespaces: names must be unique")
        owned = set(self.namespaces)
        if self.serving_namespace not in owned:
            raise ValueError(f"serving_namespace: {self.serving_namespace!r} is not in namespaces")
        for i, ns in enumerate(self.privileged_namespaces):
            if ns not in owned:
                raise ValueError(f"privileged_namespaces[{i}]: {ns!r} is not in namespaces")
            if ns == self.serving_namespace:
                raise ValueError("privileged_namespaces: the serving namespace must stay restricted")
        for i, cidr in enumerate(self.ingress_cidrs):
            _check_cidr(cidr, f"ingress_cidrs[{i}]")
        names: set[str] = set()
        for i, dest in enumerate(self.egress):
            if not is_dns_label(dest.name):
                raise ValueError(f"egress[{i}].name: {dest.name!r} is not a DNS-1123 label")
            if dest.name in names:
                raise ValueError(f"egress[{i}].name: {dest.name!r} is declared twice")
            names.add(dest.name)
            for j, cidr in enumerate(dest.cidrs):
                _check_cidr(cidr, f"egress[{i}].cidrs[{j}]")
            for j, port in enumerate(dest.ports):
                if not 1 <= port <= 65535:
                    raise ValueError(f"egress[{i}].ports[{j}]: {port} is not a port number")
            for j, ns in enumerate(dest.namespaces):
                if ns not in owned:
                    raise ValueError(f"egress[{i}].namespaces[{j}]: {ns!r} is not in namespaces")
            if not dest.cidrs and not (dest.hosts and self.fqdn_policies):
                raise ValueError(
                    f"egress[{i}]: no cidrs, and hosts are only enforced with cni 'cilium' and "
                    "cilium_fqdn_policies on"
                )
        if self.cilium_fqdn_policies and self.cni != "cilium":
            raise ValueError("cilium_fqdn_policies: needs cni 'cilium'")
        if self.metrics_scrape is not None:
            for j, ns in enumerate(self.metrics_scrape.namespaces):
                if ns not in owned:
                    raise ValueError(f"metrics_scrape.namespaces[{j}]: {ns!r} is not in namespaces")
        api = self.allow_kubernetes_api
        if api is not None:
            for j, cidr in enumerate(api.cidrs):
                _check_cidr(cidr, f"allow_kubernetes_api.cidrs[{j}]")
            for j, ns in enumerate(api.namespaces):
                if ns not in owned:
                    raise ValueError(f"allow_kubernetes_api.namespaces[{j}]: {ns!r} is not in namespaces")
        return self

    @property
    def fqdn_policies(self) -> bool:
        return self.cni == "cilium" and self.cilium_fqdn_policies


def _labels(args: NetworkIsolationArgs, name: str) -> dict[str, str]:
    return standard_labels(
        name=name,
        component=COMPONENT,
        customer=args.customer,
        region=args.region,
        residency=args.residency_profile,
    )


def _meta(args: NetworkIsolationArgs, name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": _labels(args, name)}


def build_namespace(args: NetworkIsolationArgs, namespace: str) -> Manifest:
    """A Namespace at Pod Security `restricted`; `enforce: privileged` only where declared."""
    labels = _labels(args, namespace)
    enforce = "privileged" if namespace in args.privileged_namespaces else "restricted"
    for mode in PSA_LEVELS:
        level = enforce if mode == "enforce" else "restricted"
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = "latest"
    metadata: dict[str, Any] = {"name": namespace, "labels": labels}
    if args.namespace_annotations:
        metadata["annotations"] = dict(sorted(args.namespace_annotations.items()))
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def _policy(args: NetworkIsolationArgs, name: str, namespace: str, spec: dict[str, Any]) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(args, name, namespace),
        "spec": spec,
    }


def _dns_peer(args: NetworkIsolationArgs) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: args.dns.namespace}},
        "podSelector": {"matchLabels": dict(args.dns.pod_labels)},
    }


def _tcp(ports: list[int]) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def build_policies(args: NetworkIsolationArgs, namespace: str) -> list[Manifest]:
    """default-deny, allow-dns, then the declared exceptions that apply to `namespace`."""
    policies = [
        _policy(args, "default-deny", namespace, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _policy(
            args,
            "allow-dns",
            namespace,
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [_dns_peer(args)],
                        "ports": [
                            {"protocol": "UDP", "port": args.dns.port},
                            {"protocol": "TCP", "port": args.dns.port},
                        ],
                    }
                ],
            },
        ),
    ]
    if namespace == args.serving_namespace and (args.ingress_from_namespaces or args.ingress_cidrs):
        peers: list[dict[str, Any]] = [
            {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ns}}}
            for ns in args.ingress_from_namespaces
        ]
        peers += [{"ipBlock": _ip_block(c)} for c in args.ingress_cidrs]
        policies.append(
            _policy(
                args,
                "allow-serving-ingress",
                namespace,
                {
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": peers, "ports": _tcp([args.serving_port])}],
                },
            )
        )
    scrape = args.metrics_scrape
    if scrape is not None and namespace in scrape.namespaces:
        policies.append(
            _policy(
                args,
                "allow-metrics-scrape",
                namespace,
                {
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [
                                {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ns}}}
                                for ns in scrape.from_namespaces
                            ],
                            "ports": _tcp([scrape.port]),
                        }
                    ],
                },
            )
        )
    api = args.allow_kubernetes_api
    if api is not None and namespace in api.namespaces:
        policies.append(
            _policy(
                args,
                "allow-kubernetes-api",
                namespace,
                {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {"to": [{"ipBlock": _ip_block(c)} for c in api.cidrs], "ports": _tcp(api.ports)}
                    ],
                },
            )
        )
    for dest in args.egress:
        if namespace not in dest.namespaces or not dest.cidrs:
            continue
        policies.append(
            _policy(
                args,
                dns_name("allow-egress", dest.name),
                namespace,
                {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {"to": [{"ipBlock": _ip_block(c)} for c in dest.cidrs], "ports": _tcp(dest.ports)}
                    ],
                },
            )
        )
    return policies


def build_cilium_fqdn_policy(args: NetworkIsolationArgs, namespace: str) -> Manifest | None:
    """Egress by DNS name for destinations with `hosts`, plus the DNS proxy rule Cilium needs to learn IPs."""
    dests = [d for d in args.egress if d.hosts and namespace in d.namespaces]
    if not args.fqdn_policies or not dests:
        return None
    dns_rule = {
        "toEndpoints": [
            {
                "matchLabels": {
                    "k8s:io.kubernetes.pod.namespace": args.dns.namespace,
                    **{f"k8s:{k}": v for k, v in sorted(args.dns.pod_labels.items())},
                }
            }
        ],
        "toPorts": [
            {
                "ports": [{"port": str(args.dns.port), "protocol": "ANY"}],
                "rules": {"dns": [{"matchPattern": "*"}]},
            }
        ],
    }
    egress = [dns_rule] + [
        {
            "toFQDNs": [{"matchName": host} for host in d.hosts],
            "toPorts": [{"ports": [{"port": str(p), "protocol": "TCP"} for p in d.ports]}],
        }
        for d in dests
    ]
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": _meta(args, "allow-egress-fqdn", namespace),
        "spec": {"endpointSelector": {}, "egress": egress},
    }


def build_resource_quota(args: NetworkIsolationArgs) -> Manifest:
    """GPU ceiling for the serving namespace; no LoadBalancer or NodePort unless `public_endpoint`.

    Only `requests.` is set for the GPU: Kubernetes quotas extended resources by requests only
    (requests must equal limits for them, so a `limits.` entry would add nothing).
    """
    hard = {f"requests.{GPU_RESOURCE}": str(args.gpu_quota)}
    if not args.public_endpoint:
        hard |= {"services.loadbalancers": "0", "services.nodeports": "0"}
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(args, "sovstack-quota", args.serving_namespace),
        "spec": {"hard": hard},
    }


def build_limit_range(args: NetworkIsolationArgs, namespace: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta(args, "container-defaults", namespace),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "defaultRequest": dict(args.limits.default_request),
                    "default": dict(args.limits.default_limit),
                }
            ]
        },
    }


def build_network_isolation(args: NetworkIsolationArgs) -> list[Manifest]:
    """Every object, namespace by namespace in the declared order: Namespace, policies, defaults."""
    objects: list[Manifest] = []
    for namespace in args.namespaces:
        objects.append(build_namespace(args, namespace))
        objects.extend(build_policies(args, namespace))
        cilium = build_cilium_fqdn_policy(args, namespace)
        if cilium is not None:
            objects.append(cilium)
        if namespace == args.serving_namespace:
            objects.append(build_resource_quota(args))
        objects.append(build_limit_range(args, namespace))
    return objects
