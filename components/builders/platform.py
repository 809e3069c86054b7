"""The platform layer (pure, no Pulumi): the operators and CRDs the workloads stand on.

`describe_platform(args)` says which pinned Helm charts the stack needs (the NVIDIA GPU Operator
where the backend brings none, External Secrets with a ClusterSecretStore, KEDA, Envoy Gateway with
the Gateway API CRDs, the Prometheus Operator CRDs), each only when the spec uses what it provides,
from the chart mirror when one is set, with every image it pulls pointed at the image mirror and
pinned; and the objects around them: each platform namespace at its minimum Pod Security level with
default-deny both ways plus the flows it needs, the ClusterSecretStore, the GatewayClass and the
Gateways routes attach to. Facts (charts, versions, images, values keys) are in
`components/data/platform.yaml` and, for the GPU Operator, `charts.yaml`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sovstack.components.builders.gpu_cluster import operator_chart_for, operator_image_registries
from sovstack.components.builders.gpu_cluster_args import Backend, GpuOperatorOptions, load_cluster_facts
from sovstack.components.inference_records import (
    DEFAULT_CAPTURE,
    STRIPPED_REQUEST_HEADERS,
    Capture,
    content_capture_script,
    envoy_access_log_format,
)
from sovstack.components.kube import (
    Manifest,
    dns_name,
    image_is_pinned,
    is_dns_label,
    standard_labels,
)
from sovstack.components.provenance import load_data_file

DATA_FILE = Path(__file__).resolve().parents[1] / "data" / "platform.yaml"
COMPONENT = "platform"
PSA_MODES = ("enforce", "audit", "warn")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
GATEWAY_CLASS = "sovstack-envoy"
#: The port Envoy listens on inside its pod for a Gateway's 443 (non-root Envoy cannot bind below 1024).
ENVOY_HTTPS_PORT = 10443
GPU_OPERATOR = "gpu-operator"
#: Envoy Gateway's rate limit service gRPC port (internal/infrastructure/kubernetes/ratelimit InfraGRPCPort).
RATE_LIMIT_PORT = 8081


# ---------------------------------------------------------------------------------------- facts
class _Facts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class CrdFact(_Facts):
    group: str
    kind: str


class ImageFact(_Facts):
    name: str
    upstream: str
    #: Each set of values keys that points one of the chart's workloads at this image.
    values_keys: tuple[dict[str, str], ...] = Field(alias="valuesKeys")


class PodSecurityFact(_Facts):
    level: Literal["privileged", "baseline", "restricted"]
    reason: str


class ChartFact(_Facts):
    chart: str
    repository: str
    version: str
    namespace: str
    needed_for: str = Field(alias="neededFor")
    crds: tuple[CrdFact, ...] = ()
    values: dict[str, Any] = Field(default_factory=dict)
    images: tuple[ImageFact, ...] = ()
    pod_security: PodSecurityFact = Field(alias="podSecurity")
    ports: dict[str, int] = Field(default_factory=dict)
    why: str = ""
    source: str


class _PlatformFile(_Facts):
    charts: dict[str, ChartFact]


@cache
def platform_facts() -> dict[str, ChartFact]:
    return dict(_PlatformFile.model_validate(load_data_file(DATA_FILE, keep=False)).charts)


# ---------------------------------------------------------------------------------------- args
class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SecretStoreArgs(_Args):
    """The ClusterSecretStore External Secrets reads from: a Vault (or OpenBao) in region."""

    name: str = Field(description="Name of the ClusterSecretStore; ExternalSecrets refer to it.")
    server: str = Field(pattern=r"^https://", description="The store's address (https URL), in region.")
    path: str = Field(default="sovstack", description="KV mount path the values live under.")
    version: Literal["v1", "v2"] = Field(default="v2", description="KV secrets engine version.")
    auth_mount: str = Field(default="kubernetes", description="Vault's Kubernetes auth mount path.")
    auth_role: str = Field(description="Vault role the External Secrets service account logs in as.")
    cidrs: list[str] = Field(min_length=1, description="Addresses of the store, for the egress rule.")
    port: int = Field(default=8200, ge=1, le=65535, description="The store's TCP port.")


class GatewayArgs(_Args):
    """A Gateway that model routes attach to, with its HTTPS listener."""

    name: str = Field(description="Gateway name (routes' gatewayName).")
    namespace: str = Field(description="Its namespace (routes' gatewayNamespace); Envoy runs there.")
    listener: str = Field(default="https", description="The HTTPS listener's name (routes' sectionName).")
    tls_secret: str = Field(description="Secret with the listener's certificate (cert-manager or by hand).")


class RedisTarget(_Args):
    """Where Envoy Gateway's rate limit service keeps its counters."""

    host: str = Field(description="Redis host name.")
    port: int = Field(ge=1, le=65535, description="Redis port.")
    namespace: str | None = Field(
        default=None, description="Its namespace, when Redis is an in-cluster Service (`<svc>.<ns>.svc...`)."
    )
    cidrs: list[str] = Field(
        default_factory=list,
        description="Its addresses, when it runs outside the cluster (a declared egress).",
    )

    @model_validator(mode="after")
    def _reachable_somewhere(self) -> RedisTarget:
        # An egress rule with no destination would allow every destination: refuse instead.
        if (self.namespace is None) == (not self.cidrs):
            raise ValueError(
                f"rate limit Redis {self.host}: give an in-cluster Service (<svc>.<namespace>.svc) or declare "
                "its host, with its addresses, in network.egress"
            )
        return self


class PlatformArgs(_Args):
    """What the stack's workloads need installed, and where charts and images come from."""

    customer: str = Field(description="Customer key (DNS label); stamped on labels.")
    region: str = Field(description="Region or site; stamped on labels.")
    residency_profile: str = Field(description="Residency profile; stamped on labels.")
    backend: Backend = Field(
        description="Cluster backend: decides whether sovstack installs the GPU Operator."
    )
    gpu_operator: GpuOperatorOptions = Field(
        default_factory=GpuOperatorOptions,
        description="NVIDIA GPU Operator options (charts.yaml per backend).",
    )
    talos_version: str | None = Field(
        default=None,
        description="Talos release (`vX.Y.Z`) of a talos backend: picks the GPU Operator values "
        "(charts.yaml talosGpuPaths). Required there; None for other backends.",
    )
    secret_store: SecretStoreArgs | None = Field(
        default=None, description="Install External Secrets and this ClusterSecretStore; None: neither."
    )
    keda: bool = Field(default=False, description="Install KEDA (a model autoscales).")
    gateways: list[GatewayArgs] = Field(
        default_factory=list, description="Install Envoy Gateway and these Gateways (a model has a route)."
    )
    prometheus_crds: bool = Field(
        default=False, description="Install the Prometheus Operator CRDs (a model asks for a ServiceMonitor)."
    )
    chart_repository: str | None = Field(
        default=None,
        description="Chart mirror every platform chart (the GPU Operator's too, unless it names its own) "
        "comes from: an https:// Helm repository or an oci:// registry path. None: each chart's upstream.",
    )
    image_registry: str | None = Field(
        default=None,
        description="Registry path mirroring every platform image (`<registry>/<image name>:<tag>`). None: "
        "upstream registries, which the residency rules then check.",
    )
    image_digests: dict[str, str] = Field(
        default_factory=dict,
        description="sha256 digest per platform image name (platform.yaml `images[].name`) in the mirror; "
        "an image with none keeps its upstream digest if it has one, else an all-zero placeholder.",
    )
    values: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Extra Helm values per chart (platform.yaml key), merged last."
    )
    api_server_cidrs: list[str] = Field(
        min_length=1,
        description="The Kubernetes API server's addresses: operators call it, it calls webhooks.",
    )
    monitoring_namespaces: list[str] = Field(
        default_factory=lambda: ["monitoring"], description="Namespaces whose Prometheus scrapes metrics."
    )
    client_cidrs: list[str] = Field(
        default_factory=list, description="Networks allowed to call the Gateways' HTTPS listeners."
    )
    serving_namespace: str = Field(
        default="", description="Where the model servers the Gateways route to run."
    )
    serving_port: int = Field(default=8000, ge=1, le=65535, description="The model servers' port.")
    jwks_cidrs: list[str] = Field(
        default_factory=list,
        description="Addresses of the issuer's JWKS host, which the Gateways' Envoy fetches keys from (443).",
    )
    rate_limit_redis: RedisTarget | None = Field(
        default=None,
        description="Envoy Gateway's global rate limit service is on and counts in this Redis: Gateways call "
        "the service (gRPC, port 8081), the service calls Redis. None: no rate limit service.",
    )
    gateway_access_log: bool = Field(
        default=False,
        description="Give each Gateway an EnvoyProxy writing the JSON access log inference records are made "
        "of (components/inference_records.py), and a ClientTrafficPolicy stripping the headers a record "
        "trusts from client requests. Default off.",
    )
    content_capture: Capture = Field(
        default=DEFAULT_CAPTURE,
        description="With gateway_access_log: the content policy the Gateways' content-capture Lua filter "
        "applies (none, digest, full); the filter also counts tokens, whatever the policy.",
    )
    dns_namespace: str = Field(default="kube-system", description="Namespace of the cluster DNS.")
    dns_pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"k8s-app": "kube-dns"}, description="Labels of the DNS pods."
    )

    @field_validator("values")
    @classmethod
    def _known_charts(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        known = {*platform_facts(), GPU_OPERATOR}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"values for unknown chart(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return value

    @field_validator("image_digests")
    @classmethod
    def _digests(cls, value: dict[str, str]) -> dict[str, str]:
        for name, digest in value.items():
            if not digest.startswith("sha256:") or len(digest) != 71:
                raise ValueError(f"{name}: {digest!r} is not a sha256 digest (sha256:<64 hex>)")
        return value

    @field_validator("gateways")
    @classmethod
    def _gateway_names(cls, value: list[GatewayArgs]) -> list[GatewayArgs]:
        for gateway in value:
            for field in (gateway.name, gateway.namespace, gateway.tls_secret):
                if not is_dns_label(field):
                    raise ValueError(f"{field!r} is not a DNS-1123 label")
        return value


# ---------------------------------------------------------------------------------------- output
class Release(_Facts):
    """One Helm release the platform installs (what GitOps and `pulumi up` both apply)."""

    key: str = Field(description="platform.yaml key, or gpu-operator.")
    name: str
    chart: str
    repository: str
    version: str
    namespace: str
    values: dict[str, Any]
    crds: tuple[str, ...] = Field(description="`group/Kind` of every CRD the release defines.")
    images: tuple[str, ...] = Field(description="Every image the release's pods pull, as set through values.")
    image_registries: tuple[str, ...] = Field(
        default=(),
        description="Registries a chart pulls from whose images are not listed one by one (the GPU Operator's "
        "dozen components, all pointed at one mirror path).",
    )
    source: str


class PlatformDescription(_Facts):
    releases: tuple[Release, ...]
    kubernetes_objects: tuple[dict[str, Any], ...] = Field(
        description="Namespaces, their network policies, and the custom resources around the releases."
    )
    #: For each custom object above (`namespace/name` or `name`), the release whose CRD defines it.
    defined_by: dict[str, str]
    notes: tuple[str, ...] = ()

    def release(self, key: str) -> Release | None:
        return next((r for r in self.releases if r.key == key), None)

    @property
    def images(self) -> tuple[str, ...]:
        return tuple(sorted({i for r in self.releases for i in r.images}))

    def defines(self, api_version: str, kind: str) -> str | None:
        """The release whose chart defines `kind` in `api_version`'s group, if the platform installs it."""
        group = api_version.rpartition("/")[0]
        wanted = f"{group}/{kind}"
        return next((r.key for r in self.releases if wanted in r.crds), None)


# ---------------------------------------------------------------------------------------- helpers
def _labels(args: PlatformArgs, name: str) -> dict[str, str]:
    return standard_labels(
        name=name,
        component=COMPONENT,
        customer=args.customer,
        region=args.region,
        residency=args.residency_profile,
    )


def _set(values: dict[str, Any], dotted: str, value: Any) -> None:
    node = values
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge (extra wins), new dicts only: Helm's own values precedence."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _split_image(reference: str) -> tuple[str, str, str]:
    """(repository, tag, digest) of `repo:tag@sha256:...`; tag and digest may be empty."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


def chart_image(args: PlatformArgs, image: ImageFact) -> str:
    """The image as the stack pulls it: the mirror's copy (same name, tag and digest), pinned."""
    repository, tag, digest = _split_image(image.upstream)
    digest = args.image_digests.get(image.name, digest) or PLACEHOLDER_DIGEST
    if args.image_registry:
        repository = f"{args.image_registry.rstrip('/')}/{repository.rsplit('/', 1)[-1]}"
    return f"{repository}:{tag}@{digest}" if tag else f"{repository}@{digest}"


def _image_values(reference: str, keys: dict[str, str]) -> dict[str, Any]:
    """Helm values that make a chart pull `reference`, through the keys its values.yaml has."""
    repository, tag, digest = _split_image(reference)
    pinned_tag = f"{tag}@{digest}" if tag else digest
    values: dict[str, Any] = {}
    if "image" in keys:
        _set(values, keys["image"], reference)
    if "registry" in keys:
        registry, _, path = repository.partition("/")
        _set(values, keys["registry"], registry)
        _set(values, keys["repository"], path)
    elif "repository" in keys:
        _set(values, keys["repository"], repository)
    if "tag" in keys:
        _set(values, keys["tag"], pinned_tag)
    return values


def _chart_source(args: PlatformArgs, fact_repository: str) -> str:
    return args.chart_repository.rstrip("/") if args.chart_repository else fact_repository


def _release(args: PlatformArgs, key: str) -> Release:
    fact = platform_facts()[key]
    values = dict(fact.values)
    images = []
    for image in fact.images:
        reference = chart_image(args, image)
        images.append(reference)
        for keys in image.values_keys:
            values = merge(values, _image_values(reference, keys))
    values = merge(values, args.values.get(key, {}))
    return Release(
        key=key,
        name=key,
        chart=fact.chart,
        repository=_chart_source(args, fact.repository),
        version=fact.version,
        namespace=fact.namespace,
        values=values,
        crds=tuple(f"{c.group}/{c.kind}" for c in fact.crds),
        images=tuple(images),
        source=fact.source,
    )


def _gpu_operator_release(args: PlatformArgs) -> Release | None:
    chart = operator_chart_for(args.backend, args.gpu_operator, args.talos_version)
    if chart is None:
        return None
    facts = load_cluster_facts().gpu_operator
    # A repository the spec names for the operator wins; else the platform's chart mirror, else NVIDIA's.
    repository = args.gpu_operator.repository or _chart_source(args, chart["repository"])
    return Release(
        key=GPU_OPERATOR,
        name=chart["name"],
        chart=chart["name"],
        repository=repository,
        version=chart["version"],
        namespace=chart["namespace"],
        values=merge(chart["values"], args.values.get(GPU_OPERATOR, {})),
        crds=("nvidia.com/ClusterPolicy", "nfd.k8s-sigs.io/NodeFeatureRule"),
        images=(),
        image_registries=operator_image_registries(args.gpu_operator),
        source=facts.source,
    )


def platform_releases(args: PlatformArgs) -> list[Release]:
    """The releases the stack needs, in install order (each only when the spec uses it)."""
    releases: list[Release] = []
    operator = _gpu_operator_release(args)
    if operator is not None:
        releases.append(operator)
    if args.prometheus_crds:
        releases.append(_release(args, "prometheus-operator-crds"))
    if args.secret_store is not None:
        releases.append(_release(args, "external-secrets"))
    if args.keda:
        releases.append(_release(args, "keda"))
    if args.gateways:
        releases.append(_release(args, "envoy-gateway"))
    return releases


# ---------------------------------------------------------------------------------------- objects
def namespace(args: PlatformArgs, name: str, level: str) -> Manifest:
    labels = _labels(args, name)
    for mode in PSA_MODES:
        # Enforce the level the namespace needs; audit and warn at restricted, so what the exception
        # allows still shows up in audit logs and warnings.
        labels[f"pod-security.kubernetes.io/{mode}"] = level if mode == "enforce" else "restricted"
        labels[f"pod-security.kubernetes.io/{mode}-version"] = "latest"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _policy(args: PlatformArgs, name: str, ns: str, spec: dict[str, Any]) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns, "labels": _labels(args, name)},
        "spec": spec,
    }


def _tcp(ports: list[int]) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in sorted(set(ports))]


def _cidrs(cidrs: list[str]) -> list[dict[str, Any]]:
    return [{"ipBlock": {"cidr": c}} for c in cidrs]


def _namespaces(names: list[str]) -> list[dict[str, Any]]:
    return [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: n}}} for n in names]


def isolation(
    args: PlatformArgs, ns: str, fact_ports: dict[str, int], *, store: SecretStoreArgs | None
) -> list[Manifest]:
    """Default-deny both ways in a platform namespace, then the flows its operator needs."""
    policies = [
        _policy(args, "default-deny", ns, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _policy(
            args,
            "allow-dns",
            ns,
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {NAMESPACE_NAME_LABEL: args.dns_namespace}
                                },
                                "podSelector": {"matchLabels": dict(args.dns_pod_labels)},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        ),
        # Operators watch and write their resources through the API server.
        _policy(
            args,
            "allow-kubernetes-api",
            ns,
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": _cidrs(args.api_server_cidrs), "ports": _tcp([443, 6443])}],
            },
        ),
    ]
    served = [port for name, port in fact_ports.items() if name not in ("metrics", "xds")]
    if served:
        # Admission and conversion webhooks, the metrics API: called by the API server.
        policies.append(
            _policy(
                args,
                "allow-from-kubernetes-api",
                ns,
                {
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": _cidrs(args.api_server_cidrs), "ports": _tcp(served)}],
                },
            )
        )
    if "metrics" in fact_ports and args.monitoring_namespaces:
        policies.append(
            _policy(
                args,
                "allow-metrics-scrape",
                ns,
                {
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": _namespaces(args.monitoring_namespaces),
                            "ports": _tcp([fact_ports["metrics"]]),
                        }
                    ],
                },
            )
        )
    if store is not None:
        policies.append(
            _policy(
                args,
                "allow-egress-secret-store",
                ns,
                {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{"to": _cidrs(store.cidrs), "ports": _tcp([store.port])}],
                },
            )
        )
    return policies


def cluster_secret_store(args: PlatformArgs, store: SecretStoreArgs) -> Manifest:
    service_account = platform_facts()["external-secrets"].namespace
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": store.name, "labels": _labels(args, store.name)},
        "spec": {
            "provider": {
                "vault": {
                    "server": store.server,
                    "path": store.path,
                    "version": store.version,
                    "auth": {
                        "kubernetes": {
                            "mountPath": store.auth_mount,
                            "role": store.auth_role,
                            "serviceAccountRef": {"name": "external-secrets", "namespace": service_account},
                        }
                    },
                }
            }
        },
    }


def _gateway(args: PlatformArgs, gateway: GatewayArgs) -> Manifest:
    listener = {
        "name": gateway.listener,
        "protocol": "HTTPS",
        "port": 443,
        "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": gateway.tls_secret}]},
        "allowedRoutes": {"namespaces": {"from": "All"}},
    }
    spec: dict[str, Any] = {"gatewayClassName": GATEWAY_CLASS, "listeners": [listener]}
    if args.gateway_access_log:
        spec["infrastructure"] = {
            "parametersRef": {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": gateway.name}
        }
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {
            "name": gateway.name,
            "namespace": gateway.namespace,
            "labels": _labels(args, gateway.name),
        },
        "spec": spec,
    }


def gateway_record_objects(args: PlatformArgs, gateway: GatewayArgs) -> list[Manifest]:
    """What makes a Gateway's Envoy write inference records: an EnvoyProxy (the Gateway's
    `infrastructure.parametersRef`; Envoy Gateway v1.9 api/v1alpha1 `ProxyAccessLog`) with a JSON access log
    to stdout; a ClientTrafficPolicy removing, before anything reads them, the request headers the
    record trusts (`headers.earlyRequestHeaders.remove`): a client cannot name its own subject or model;
    and an EnvoyExtensionPolicy running the content-capture Lua filter on every route of the Gateway
    (api/v1alpha1 `Lua`: the script inline, the policy as its filter context), which writes the body
    digests and token counts the access log reads."""
    meta = {"name": gateway.name, "namespace": gateway.namespace, "labels": _labels(args, gateway.name)}
    access_log = {
        # No `type`: every route, and the listener when no route matched (404s are recorded too).
        "settings": [
            {
                "format": {"type": "JSON", "json": envoy_access_log_format()},
                "sinks": [{"type": "File", "file": {"path": "/dev/stdout"}}],
            }
        ]
    }
    return [
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "EnvoyProxy",
            "metadata": dict(meta),
            "spec": {"telemetry": {"accessLog": access_log}},
        },
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "ClientTrafficPolicy",
            "metadata": dict(meta),
            "spec": {
                "targetRefs": [
                    {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.name}
                ],
                "headers": {"earlyRequestHeaders": {"remove": list(STRIPPED_REQUEST_HEADERS)}},
            },
        },
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "EnvoyExtensionPolicy",
            "metadata": {**meta, "name": f"{gateway.name}-content-capture"},
            "spec": {
                "targetRefs": [
                    {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.name}
                ],
                "lua": [
                    {
                        "type": "Inline",
                        "inline": content_capture_script(),
                        "filterContext": {"capture": args.content_capture},
                    }
                ],
            },
        },
    ]


def gateway_objects(args: PlatformArgs) -> list[Manifest]:
    objects: list[Manifest] = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS, "labels": _labels(args, GATEWAY_CLASS)},
            "spec": {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"},
        }
    ]
    for gateway in sorted(args.gateways, key=lambda g: (g.namespace, g.name)):
        objects.append(_gateway(args, gateway))
        if args.gateway_access_log:
            objects += gateway_record_objects(args, gateway)
    return objects


def gateway_namespace_objects(args: PlatformArgs, ns: str) -> list[Manifest]:
    """A Gateway's namespace: Envoy runs there (GatewayNamespace mode), restricted, default-deny, then
    clients in on HTTPS, Envoy out to the model servers and to Envoy Gateway's xDS server."""
    control = platform_facts()["envoy-gateway"]
    objects = [namespace(args, ns, "restricted")]
    objects += isolation(args, ns, {}, store=None)[:2]  # default-deny and DNS; Envoy never calls the API
    if args.client_cidrs:
        objects.append(
            _policy(
                args,
                "allow-https-clients",
                ns,
                {
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": _cidrs(args.client_cidrs), "ports": _tcp([ENVOY_HTTPS_PORT])}],
                },
            )
        )
    egress: list[dict[str, Any]] = [
        {"to": _namespaces([control.namespace]), "ports": _tcp([control.ports["xds"]])}
    ]
    if args.serving_namespace:
        egress.append({"to": _namespaces([args.serving_namespace]), "ports": _tcp([args.serving_port])})
    if args.jwks_cidrs:  # the issuer's signing keys, for the JWTs the SecurityPolicy checks
        egress.append({"to": _cidrs(args.jwks_cidrs), "ports": _tcp([443])})
    if args.rate_limit_redis:  # Envoy Gateway's rate limit service counts each consumer's requests
        egress.append({"to": _namespaces([control.namespace]), "ports": _tcp([RATE_LIMIT_PORT])})
    objects.append(
        _policy(
            args,
            "allow-envoy-upstreams",
            ns,
            {"podSelector": {}, "policyTypes": ["Egress"], "egress": egress},
        )
    )
    return objects


def rate_limit_flows(args: PlatformArgs, ns: str, redis: RedisTarget) -> list[Manifest]:
    """Envoy Gateway's namespace with the global rate limit on: the Gateways' Envoy in to the rate limit
    service, the service out to its Redis."""
    gateway_namespaces = sorted({g.namespace for g in args.gateways})
    to = _namespaces([redis.namespace]) if redis.namespace else _cidrs(redis.cidrs)
    return [
        _policy(
            args,
            "allow-rate-limit-from-gateways",
            ns,
            {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": _namespaces(gateway_namespaces), "ports": _tcp([RATE_LIMIT_PORT])}],
            },
        ),
        _policy(
            args,
            "allow-egress-rate-limit-redis",
            ns,
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": to, "ports": _tcp([redis.port])}],
            },
        ),
    ]


def _key(obj: Manifest) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


def describe_platform(args: PlatformArgs) -> PlatformDescription:
    """Validate the args and describe the releases and objects of the platform layer."""
    releases = platform_releases(args)
    facts = platform_facts()
    objects: list[Manifest] = []
    defined_by: dict[str, str] = {}
    for release in releases:
        if release.key == GPU_OPERATOR:
            level = load_cluster_facts().gpu_operator.namespace_pod_security.level
            ports: dict[str, int] = {"metrics": 9400}  # the DCGM exporter's
        else:
            level = facts[release.key].pod_security.level
            ports = facts[release.key].ports
        objects.append(namespace(args, release.namespace, level))
        store = args.secret_store if release.key == "external-secrets" else None
        objects += isolation(args, release.namespace, ports, store=store)
        if release.key == "envoy-gateway" and args.rate_limit_redis is not None:
            objects += rate_limit_flows(args, release.namespace, args.rate_limit_redis)
    extras: list[tuple[str, Manifest]] = []
    if args.secret_store is not None:
        extras.append(("external-secrets", cluster_secret_store(args, args.secret_store)))
    if args.gateways:
        for ns in sorted({g.namespace for g in args.gateways}):
            objects += gateway_namespace_objects(args, ns)
        extras += [("envoy-gateway", obj) for obj in gateway_objects(args)]
    for key, obj in extras:
        objects.append(obj)
        defined_by[_key(obj)] = key
    notes = []
    unpinned = [i for r in releases for i in r.images if not image_is_pinned(i)]
    if unpinned:
        notes.append(f"images not pinned by digest: {', '.join(sorted(unpinned))}")
    return PlatformDescription(
        releases=tuple(releases), kubernetes_objects=tuple(objects), defined_by=defined_by, notes=tuple(notes)
    )


def release_name(component: str, key: str) -> str:
    """The Pulumi logical name of a platform release: its owner component, then the chart key."""
    return dns_name(component, key)
