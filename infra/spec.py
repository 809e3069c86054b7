"""The customer spec: a typed description of one regulated customer's stack.

Read from the `sovstack:customer` key of `stacks/Pulumi.<name>.yaml`. Field names are camelCase
in YAML (Pulumi's convention) and snake_case in Python. Every field's description becomes the
JSON Schema (`sovstack schema`) that editors complete from. No Pulumi import here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from sovstack.components.kube import is_dns_label

Backend = Literal["scaleway", "ovh", "talos", "existing"]
#: Versions whose schemas the manifests are checked against (tests/infra/test_render.py).
SUPPORTED_KUBERNETES = re.compile(r"1\.3[0-7](\.[0-9]{1,2})?")
Dtype = Literal["bf16", "fp16", "fp8", "int4-awq", "int4-gptq"]


def _dns_label(value: str) -> str:
    if not is_dns_label(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label (lowercase letters, digits and '-', "
            "starting and ending with an alphanumeric, at most 63 characters)"
        )
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]


class SpecModel(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=False,
    )


# ---------------------------------------------------------------------------------- residency
class ResidencySpec(SpecModel):
    profile: str | None = Field(
        default=None, description="Named residency profile: eu, fr-sovereign, se-sovereign or airgapped."
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Policy fields replacing the profile's (same names as a full policy, e.g. countries).",
    )
    policy: dict[str, Any] | None = Field(
        default=None, description="A whole policy spelled out instead of a profile (see docs/residency.md)."
    )

    @model_validator(mode="after")
    def _profile_or_policy(self) -> ResidencySpec:
        if self.profile is None and self.policy is None:
            raise ValueError("name a profile or spell out a policy")
        if self.profile is not None and self.policy is not None:
            raise ValueError("give either profile (with overrides) or policy, not both")
        return self

    @property
    def label(self) -> str:
        return self.profile or "custom"


# ---------------------------------------------------------------------------------- cluster
class SystemPoolSpec(SpecModel):
    node_type: str = Field(description="Instance type or flavor for the system (non-GPU) nodes.")
    min_nodes: int = Field(default=1, ge=1, le=100, description="Autoscaling lower bound.")
    max_nodes: int = Field(default=3, ge=1, le=100, description="Autoscaling upper bound (>= minNodes).")
    zones: tuple[str, ...] = Field(
        min_length=1, description="Zones of the cluster's region to place nodes in."
    )


class GpuPoolSpec(SpecModel):
    name: DnsLabel = Field(
        description="Pool name, a DNS label; models refer to it. Never rename a live pool."
    )
    gpu_type: str = Field(description="GPU id from the catalog: H100, H100-SXM, H200, L4, L40S, A100, B300.")
    node_type: str | None = Field(
        default=None, description="Provider instance type or flavor (Scaleway, OVHcloud); omit for own sites."
    )
    gpus_per_node: int = Field(default=1, ge=1, le=8, description="GPUs on each node of the pool.")
    min_nodes: int = Field(default=1, ge=0, le=100, description="Autoscaling lower bound.")
    max_nodes: int = Field(default=1, ge=1, le=100, description="Autoscaling upper bound (>= minNodes).")
    zones: tuple[str, ...] = Field(
        min_length=1, description="Zones of the cluster's region for the pool's nodes."
    )


class ScalewayOptions(SpecModel):
    project_id: str | None = Field(
        default=None, description="Scaleway project; the provider default if omitted."
    )
    type: str = Field(
        default="kapsule", description="Kapsule control plane type: kapsule or kapsule-dedicated-*."
    )
    cni: Literal["cilium", "calico"] = Field(
        default="cilium",
        description="CNI plugin of the Kapsule cluster: cilium or calico, the two Kapsule supports (kilo is "
        "Kosmos's only).",
    )
    private_network_cidr: str = Field(
        default="172.16.0.0/22", description="IPv4 subnet of the private network."
    )
    api_server_allowed_cidrs: tuple[str, ...] = Field(
        default=(),
        description="Networks allowed to reach the API server (a Kapsule ACL). Required: Kapsule's endpoint is "
        "public, so name your admins' and CI runners' egress addresses.",
    )


class OvhOptions(SpecModel):
    service_name: str = Field(description="OVHcloud Public Cloud project id (service name).")
    plan: Literal["free", "standard"] = Field(default="free", description="Managed Kubernetes plan.")
    vlan_id: int = Field(default=0, ge=0, le=4000, description="vRack VLAN id of the private network.")
    subnet_cidr: str = Field(default="10.10.0.0/16", description="Subnet of the private network for nodes.")
    api_server_allowed_cidrs: tuple[str, ...] = Field(
        default=(), description="CIDRs allowed to reach the API server; empty leaves OVHcloud's default."
    )


class MachineSpec(SpecModel):
    name: DnsLabel = Field(description="Node name, a DNS label.")
    address: str = Field(description="IP address Talos's API answers on.")
    role: Literal["controlplane", "worker"] = Field(description="Talos machine type.")
    zone: str = Field(description="Zone of the site the machine stands in.")
    pool: str | None = Field(default=None, description="GPU pool the worker belongs to (GPU workers only).")
    gpu_type: str | None = Field(default=None, description="GPU id of the machine's GPUs.")
    gpu_count: int = Field(default=0, ge=0, le=16, description="GPUs in the machine.")


class TalosOptions(SpecModel):
    cluster_endpoint: str = Field(description="https://VIP:6443, the control plane's private endpoint.")
    talos_version: str = Field(
        default="v1.14.0",
        description="Talos Linux version of the machine configs; picks the GPU path (charts.yaml talosGpuPaths).",
    )
    installer_image: str | None = Field(
        default=None,
        description="Talos installer with the NVIDIA extensions, from your mirror, pinned by digest. If "
        "omitted, GPU workers install from Sidero Labs' Image Factory (factory.talos.dev), which the "
        "residency rules check like any other registry.",
    )
    system_installer_image: str | None = Field(
        default=None,
        description="Talos installer of the control-plane and non-GPU machines, from your mirror, pinned by "
        "digest. If omitted they install Sidero Labs' ghcr.io/siderolabs/installer:<talosVersion>, which the "
        "residency rules check like any other image (an air-gapped profile refuses it).",
    )
    machines: tuple[MachineSpec, ...] = Field(min_length=1, description="The machines of the site to use.")


class ExistingOptions(SpecModel):
    context: str | None = Field(
        default=None, description="kubeconfig context; its current context if omitted."
    )
    kubeconfig_key: str = Field(
        default="sovstack:kubeconfig",
        description="Secret stack config key holding the kubeconfig (`pulumi config set --secret`).",
    )
    nodes: tuple[MachineSpec, ...] = Field(default=(), description="Nodes to label with pool, zone and GPU.")


class GpuOperatorSpec(SpecModel):
    enabled: bool | None = Field(
        default=None, description="Install the NVIDIA GPU Operator; default per backend (never on Scaleway)."
    )
    version: str | None = Field(
        default=None, description="Chart version; the catalog's pinned one if omitted."
    )
    repository: str | None = Field(default=None, description="Chart repository, e.g. an in-house mirror.")
    image_repository: str | None = Field(
        default=None,
        description="Registry path mirroring NVIDIA's operator images (every image of the chart is pointed "
        "at it), checked by the registry rules. Default: nvcr.io and registry.k8s.io.",
    )


class ClusterSpec(SpecModel):
    provider: Backend = Field(
        description="scaleway, ovh, talos (own bare metal) or existing (bring a cluster)."
    )
    region: str | None = Field(default=None, description="Provider region (scaleway, ovh): fr-par, GRA11...")
    site: str | None = Field(default=None, description="Operator site (talos, existing) from sites.yaml.")
    kubernetes_version: str = Field(
        default="1.36",
        description="Kubernetes version, 1.30 to 1.37 (the manifests use the preStop sleep action, on by "
        "default since 1.30, and are schema-checked per version): a minor (`1.31`) for managed clusters, a "
        "patch release (`1.36.4`) for Talos, whose control-plane images it names. The provider must still "
        "create it today (components/data/kubernetes.yaml; validate warns 90 days before its end).",
    )
    protect: bool = Field(
        default=True, description="Protect cluster and pools from deletion; false for tests."
    )
    system_pool: SystemPoolSpec | None = Field(default=None, description="Non-GPU pool (scaleway, ovh).")
    gpu_pools: tuple[GpuPoolSpec, ...] = Field(min_length=1, description="GPU node pools.")
    scaleway: ScalewayOptions | None = Field(default=None, description="Scaleway Kapsule options.")
    ovh: OvhOptions | None = Field(default=None, description="OVHcloud Managed Kubernetes options.")
    talos: TalosOptions | None = Field(default=None, description="Talos bare-metal options.")
    existing: ExistingOptions | None = Field(default=None, description="Existing cluster options.")
    gpu_operator: GpuOperatorSpec = Field(default_factory=GpuOperatorSpec, description="NVIDIA GPU Operator.")

    @field_validator("kubernetes_version", mode="before")
    @classmethod
    def _version_is_text(cls, value: Any) -> Any:
        if isinstance(value, int | float):
            raise ValueError(
                f'write the version in quotes, e.g. "1.31": YAML read this one as the number {value!r} '
                "(a bare 1.30 even becomes 1.3)"
            )
        return value

    @field_validator("kubernetes_version")
    @classmethod
    def _supported_version(cls, value: str) -> str:
        if not SUPPORTED_KUBERNETES.fullmatch(value):
            raise ValueError(
                f"{value!r} is not supported: sovstack supports Kubernetes 1.30 to 1.37, as a minor "
                '("1.31") or, for Talos, a patch release ("1.32.4")'
            )
        return value

    @property
    def kubernetes_minor(self) -> str:
        """`1.32` for `1.32.4`: the schema version manifests are checked against."""
        return ".".join(self.kubernetes_version.split(".")[:2])

    @property
    def location(self) -> str:
        """The region code or site code, whichever the backend uses."""
        return (self.region if self.provider in ("scaleway", "ovh") else self.site) or ""


# ---------------------------------------------------------------------------------- models
#: The digest every weights source may carry (S3 and claim alike).
ManifestSha256 = Annotated[
    str | None,
    Field(
        pattern=r"^(sha256:)?[0-9a-f]{64}$",
        description="sha256 of the weights manifest SHA256SUMS that `sovstack weights manifest` printed "
        "(64 lowercase hex digits, `sha256:` allowed): the pod verifies every file against it before vLLM "
        "starts and fails on any mismatch. Omitted: unverified weights, which profiles with "
        "requirePinnedWeights (fr-sovereign, se-sovereign, airgapped) refuse. All zeros is a placeholder.",
    ),
]


class S3WeightsSpec(SpecModel):
    url: str = Field(pattern=r"^s3://[a-z0-9.\-]+/.*", description="s3://bucket/prefix holding the weights.")
    endpoint: str = Field(pattern=r"^https://", description="In-region S3 API endpoint (https URL).")
    credentials_secret: DnsLabel = Field(
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    )
    volume_size: str = Field(default="200Gi", description="Size of the volume the weights are copied into.")
    manifest_sha256: ManifestSha256 = None


class PvcWeightsSpec(SpecModel):
    claim_name: DnsLabel = Field(description="Existing PersistentVolumeClaim holding the weights.")
    manifest_sha256: ManifestSha256 = None


class WeightsSpec(SpecModel):
    s3: S3WeightsSpec | None = Field(default=None, description="Copy weights from in-region object storage.")
    pvc: PvcWeightsSpec | None = Field(default=None, description="Mount a pre-provisioned volume claim.")

    @model_validator(mode="after")
    def _exactly_one(self) -> WeightsSpec:
        if (self.s3 is None) == (self.pvc is None):
            raise ValueError("give exactly one of s3 or pvc")
        return self

    @property
    def manifest_sha256(self) -> str | None:
        """The pinned manifest digest as `sha256:<hex>`, or None when the weights are not pinned."""
        source = self.s3 or self.pvc
        value = source.manifest_sha256 if source is not None else None
        return None if value is None else "sha256:" + value.removeprefix("sha256:")


class SecretRefSpec(SpecModel):
    name: DnsLabel = Field(description="Name of an existing Secret (created by External Secrets or by hand).")
    key: str = Field(default="api-key", description="Key inside the Secret.")


class AutoscalingSpec(SpecModel):
    min_replicas: int = Field(default=1, ge=1, description="KEDA lower bound.")
    max_replicas: int = Field(default=2, ge=1, description="KEDA upper bound.")
    queue_target: int = Field(default=5, ge=1, description="Waiting requests per replica before scaling out.")
    prometheus_address: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090", description="Prometheus KEDA queries."
    )


class RouteSpec(SpecModel):
    hostname: str = Field(description="Public or internal host name of the endpoint.")
    gateway_name: DnsLabel = Field(
        description="Gateway API Gateway to attach to; the platform layer creates it (Envoy Gateway)."
    )
    gateway_namespace: DnsLabel = Field(description="Namespace of that Gateway; its Envoy proxies run there.")
    section_name: str = Field(default="https", description="The Gateway's TLS listener.")
    tls_secret: DnsLabel | None = Field(
        default=None,
        description="Secret in the Gateway's namespace holding its certificate (cert-manager or by hand); "
        "<gatewayName>-tls if omitted.",
    )


class RolloutSpec(SpecModel):
    """A new version of a model served beside the stable one, with a share of the route's traffic.

    Promote: copy these fields onto the model (model, image, weights) and remove `rollout`. Roll back:
    remove `rollout`. The stable Deployment keeps its name throughout; the new version runs as
    `<customer>-<name>-canary` (one Deployment and one Service).
    """

    model: str | None = Field(
        default=None,
        description="Catalog id of the new version; the stable model's if omitted. Its licence is checked "
        "like the stable model's.",
    )
    image: str | None = Field(
        default=None,
        description="vLLM image of the new version, pinned by digest; the stable model's if omitted.",
    )
    weights: WeightsSpec | None = Field(
        default=None,
        description="Where the new version's weights come from (checked like the stable model's); the "
        "stable model's if omitted.",
    )
    weight: int = Field(
        ge=0,
        le=100,
        description="Percent of the route's requests sent to the new version (0 to 100); the stable "
        "version gets the rest. Needs the model's `route`.",
    )
    replicas: int = Field(default=1, ge=1, le=64, description="Replicas of the new version.")


class ModelSpec(SpecModel):
    name: DnsLabel = Field(description="The stack's name for this deployment, a DNS label; stable forever.")
    model: str | None = Field(
        default=None, description="Model id from the model catalog (`sovstack capacity`)."
    )
    custom: dict[str, Any] | None = Field(
        default=None,
        description="Figures of a model not in the catalog, with the fields of components/data/models.yaml "
        "(parametersTotal, layers, attentionHeads, kvHeads, headDim, hiddenSize, vocabSize, maxContext, "
        "licence, source, huggingFaceRepo).",
    )
    served_model_name: str | None = Field(default=None, description="Name clients ask for; defaults to name.")
    pool: str = Field(description="GPU pool (cluster.gpuPools[].name) the model runs on.")
    dtype: Dtype = Field(default="bf16", description="Weights precision or quantisation.")
    max_model_len: int = Field(default=8192, ge=256, description="Longest sequence served, in tokens.")
    concurrency: int = Field(default=8, ge=1, description="Concurrent sequences each replica must hold.")
    tensor_parallel_size: int | None = Field(
        default=None, description="GPUs per replica; the capacity planner's choice if omitted."
    )
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=0.98, description="vLLM's memory share.")
    replicas: int = Field(default=1, ge=1, le=64, description="Replicas (the KEDA minimum when autoscaling).")
    image: str | None = Field(
        default=None, description="vLLM image pinned by digest; registries.vllm if omitted."
    )
    weights: WeightsSpec = Field(description="Where the weights come from; never from the internet.")
    api_key_secret: SecretRefSpec = Field(description="Secret holding the API key clients must present.")
    autoscaling: AutoscalingSpec | None = Field(default=None, description="KEDA scaling on the queue depth.")
    route: RouteSpec | None = Field(default=None, description="Gateway API HTTPRoute with TLS.")
    service_monitor: bool = Field(default=False, description="Create a Prometheus ServiceMonitor.")
    rollout: RolloutSpec | None = Field(
        default=None,
        description="A new version served beside this one with a weighted share of the route's traffic "
        "(docs/operations.md, Rollouts).",
    )

    @model_validator(mode="after")
    def _model_or_custom(self) -> ModelSpec:
        if (self.model is None) == (self.custom is None):
            raise ValueError("give exactly one of model (a catalog id) or custom (the model's figures)")
        if self.rollout is not None:
            if self.route is None:
                raise ValueError("rollout: needs route: the traffic split is the HTTPRoute's backend weights")
            if self.custom is not None and self.rollout.model is not None:
                raise ValueError("rollout.model: a custom model rolls out a new image or weights only")
            changes_model = self.rollout.model is not None and self.rollout.model != self.model
            if changes_model and self.rollout.weights is None:
                raise ValueError("rollout.weights: required when rollout.model names another model")
        return self


# ---------------------------------------------------------------------------------- network, audit
class EgressSpec(SpecModel):
    name: DnsLabel = Field(description="Name of the destination, used in policy names.")
    host: str = Field(description="Host name; checked against the policy's allowed egress and located.")
    cidrs: tuple[str, ...] = Field(min_length=1, description="Addresses of the host; never 0.0.0.0/0.")
    ports: tuple[int, ...] = Field(default=(443,), min_length=1, description="TCP ports.")
    max_public_addresses: int | None = Field(
        default=None,
        ge=1,
        description="Raise (or lower) the policy's maxEgressPublicAddresses for this flow only, e.g. for a "
        "provider's published range; shown in the residency report. Never allows every public address.",
    )


class NetworkSpec(SpecModel):
    cni: Literal["cilium", "calico", "other"] = Field(default="cilium", description="The cluster's CNI.")
    gateway_namespaces: tuple[DnsLabel, ...] = Field(
        default=(), description="Namespaces allowed to call models (DNS labels)."
    )
    ingress_cidrs: tuple[str, ...] = Field(default=(), description="CIDRs allowed to call models directly.")
    monitoring_namespaces: tuple[str, ...] = Field(
        default=("monitoring",),
        description="Namespaces whose Prometheus scrapes the model servers' /metrics; allowed in only when a "
        "model asks for a ServiceMonitor.",
    )
    egress: tuple[EgressSpec, ...] = Field(default=(), description="Declared egress destinations.")
    public_endpoint: bool = Field(default=False, description="Allow LoadBalancer/NodePort Services.")
    api_server_cidrs: tuple[str, ...] = Field(
        default=(),
        description="Required: the Kubernetes API server's addresses (CIDRs), the one egress the audit "
        "shippers need to read events and pod metadata.",
    )
    cilium_fqdn_policies: bool = Field(default=False, description="Add CiliumNetworkPolicies by DNS name.")


class InferenceRecordsSpec(SpecModel):
    enabled: bool = Field(
        default=True,
        description="Write one inference record per request to the model gateways into the audit bucket "
        "(records/v1/...; docs/records.md). Needs a model with a route (the gateway's access log).",
    )
    capture: Literal["none", "digest", "full"] = Field(
        default="digest",
        description="Prompt and output content policy: none, digest (sha256 only, the default) or full "
        "(the text too; refused unless the audit bucket is write-once and in the cluster's region). Applied "
        "at the gateway by the content-capture Lua filter (docs/records.md).",
    )


class AuditSpec(SpecModel):
    backend: Literal["scaleway", "ovh", "minio", "existing"] | None = Field(
        default=None,
        description="Bucket backend; scaleway/ovh follow the cluster, minio or existing at sites.",
    )
    bucket: DnsLabel = Field(description="Bucket name.")
    region: str | None = Field(default=None, description="Bucket region; the cluster's region if omitted.")
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https://",
        description="S3 API endpoint; the catalog's for the region if omitted.",
    )
    retention_days: int | None = Field(
        default=None, ge=1, description="Object-lock retention in days; the policy minimum if omitted."
    )
    credentials_secret: DnsLabel = Field(
        default="audit-s3-credentials", description="Secret with the shipper's S3 credentials."
    )
    buffer_size: str = Field(default="8G", description="Fluent Bit's on-disk buffer ceiling per node.")
    minio_admin_secret: DnsLabel = Field(
        default="audit-minio-admin",
        description="minio backend: Secret with MinIO admin credentials for the job that sets default retention.",
    )
    inference_records: InferenceRecordsSpec = Field(
        default_factory=InferenceRecordsSpec,
        description="One record per inference request, shipped with the audit logs (docs/records.md).",
    )


class RegistriesSpec(SpecModel):
    vllm: str | None = Field(default=None, description="Default vLLM image, pinned by digest.")
    fluent_bit: str | None = Field(default=None, description="Fluent Bit image, pinned by digest.")
    weights_fetcher: str | None = Field(default=None, description="S3 copy image for weights, pinned.")
    minio_client: str | None = Field(
        default=None, description="MinIO client image (minio audit backend: sets default retention), pinned."
    )


class ExternalSecretsSpec(SpecModel):
    store: str = Field(
        description="Name of the ClusterSecretStore (External Secrets Operator) holding the values."
    )
    store_kind: Literal["ClusterSecretStore", "SecretStore"] = Field(
        default="ClusterSecretStore", description="Kind of the store."
    )
    store_endpoint: str = Field(
        pattern=r"^https://",
        description="Address of the backend the store reads (e.g. the in-region Vault), checked like any "
        "other endpoint by the residency rules.",
    )
    remote_prefix: str | None = Field(
        default=None,
        description="Path of the values in the store: `<prefix>/<secret name>`; sovstack/<name>.",
    )
    vault_path: str = Field(default="sovstack", description="KV mount of the store's Vault.")
    vault_version: Literal["v1", "v2"] = Field(default="v2", description="KV secrets engine version.")
    auth_role: str | None = Field(
        default=None,
        description="Vault Kubernetes-auth role the External Secrets Operator logs in as; sovstack-<name>.",
    )


class SecretsSpec(SpecModel):
    external_secrets: ExternalSecretsSpec | None = Field(
        default=None,
        description="Create the Secrets the workloads reference (API keys, S3 credentials) from an in-region "
        "store with External Secrets; omit to create them yourself.",
    )


class PlatformSpec(SpecModel):
    chart_repository: str | None = Field(
        default=None,
        pattern=r"^(https://|oci://|http://(127\.0\.0\.1|localhost)[:/])",
        description="Chart mirror every platform chart comes from (https:// Helm repository or oci:// path; "
        "plain http only on loopback, for a port-forward), checked by the chart rules; the charts' upstream "
        "repositories if omitted.",
    )
    image_registry: str | None = Field(
        default=None,
        description="Registry path mirroring every platform image (External Secrets, KEDA, Envoy Gateway), "
        "checked by the registry rules; upstream registries if omitted.",
    )
    image_digests: dict[str, str] = Field(
        default_factory=dict,
        description="sha256 digest of each platform image in the mirror, by name (components/data/platform.yaml); "
        "an image without one is a placeholder until given.",
    )
    values: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Extra Helm values per platform chart, merged over sovstack's."
    )


# ---------------------------------------------------------------------------------- identity
class IdentityRolesSpec(SpecModel):
    platform_admins: tuple[str, ...] = Field(
        default=(), description="Issuer groups (without prefix) bound to cluster-admin."
    )
    operators: tuple[str, ...] = Field(
        default=(), description="Issuer groups that deploy and scale models in the serving namespace."
    )
    auditors: tuple[str, ...] = Field(
        default=(),
        description="Issuer groups with read-only access everywhere but Secrets, plus the audit bucket's "
        "read-only credentials (auditReadSecret).",
    )
    audit_read_secret: DnsLabel = Field(
        default="audit-s3-readonly",
        description="Secret in the audit namespace with read-only S3 credentials for the audit bucket "
        "(synced from the store with secrets.externalSecrets, else created by hand); auditors may read it.",
    )


class ClusterIdentitySpec(SpecModel):
    client_id: str = Field(min_length=1, description="Client id the issuer gives the Kubernetes API (`aud`).")
    username_claim: str = Field(default="sub", description="Claim used as the Kubernetes user name.")
    username_prefix: str = Field(default="oidc:", description="Prefix of OIDC user names.")
    groups_claim: str = Field(default="groups", description="Claim listing the user's groups.")
    groups_prefix: str = Field(
        default="oidc:", description="Prefix of OIDC group names; the role bindings' subjects carry it."
    )
    roles: IdentityRolesSpec = Field(
        default_factory=IdentityRolesSpec, description="Issuer groups holding each sovstack role."
    )


class JwtSpec(SpecModel):
    audiences: tuple[str, ...] = Field(
        min_length=1, max_length=8, description="Accepted `aud` values of the endpoint tokens."
    )
    jwks_uri: str = Field(
        pattern=r"^https://",
        description="The issuer's JSON Web Key Set URL, which Envoy fetches; checked by the identity.issuer "
        "rule, and its host must be a declared network.egress destination.",
    )
    subject_claim: str = Field(default="sub", description="Claim naming the consumer (the rate-limit key).")


class ApiKeysSpec(SpecModel):
    secret: DnsLabel = Field(
        description="Opaque Secret in each Gateway's namespace: keys are client ids, values the API keys."
    )
    header: str = Field(default="x-api-key", description="Request header carrying the key.")


class RateLimitSpec(SpecModel):
    requests: int = Field(ge=1, description="Requests each consumer may make per unit.")
    unit: Literal["Second", "Minute", "Hour", "Day"] = Field(default="Minute", description="The unit.")
    redis_url: str = Field(
        pattern=r"^[a-z0-9.\-]+:[0-9]{1,5}$",
        description="host:port of the Redis (in the cluster or at the site) Envoy Gateway's rate limit "
        "service counts in.",
    )


class EndpointIdentitySpec(SpecModel):
    jwt: JwtSpec | None = Field(default=None, description="JWTs from the issuer (identity.issuerUrl).")
    api_keys: ApiKeysSpec | None = Field(default=None, description="API keys from a Secret instead of JWTs.")
    rate_limit: RateLimitSpec | None = Field(default=None, description="Per-consumer request rate limit.")

    @model_validator(mode="after")
    def _one_method(self) -> EndpointIdentitySpec:
        if (self.jwt is None) == (self.api_keys is None):
            raise ValueError(
                "give exactly one of jwt or apiKeys (Envoy Gateway requires every configured method to pass)"
            )
        return self


class IdentitySpec(SpecModel):
    issuer_url: str | None = Field(
        default=None,
        pattern=r"^https://",
        description="The customer's OpenID Connect issuer (Keycloak realm, Entra ID tenant in the EU...), "
        "checked by the identity.issuer residency rule.",
    )
    cluster: ClusterIdentitySpec | None = Field(
        default=None, description="Kubernetes API sign-in through the issuer, and the roles of its groups."
    )
    endpoints: EndpointIdentitySpec | None = Field(
        default=None, description="Authentication and rate limits at the Gateway for model routes."
    )

    @model_validator(mode="after")
    def _issuer_needed(self) -> IdentitySpec:
        uses = self.cluster is not None or (self.endpoints is not None and self.endpoints.jwt is not None)
        if uses and self.issuer_url is None:
            raise ValueError("issuerUrl: required when cluster or endpoints.jwt is set")
        return self


class LicenceGrantSpec(SpecModel):
    model: str = Field(
        description="Catalog id of the model the grant covers (a custom model: its name in this stack)."
    )
    reference: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:/#()-]{0,127}$",
        description="Reference of the commercial licence agreement (contract number, ticket), printed in "
        "reports: never a secret or a key.",
    )


class LicensingSpec(SpecModel):
    use: Literal["production", "evaluation", "research"] = Field(
        default="production",
        description="What the customer uses the models for: production (live use in its business), "
        "evaluation (testing, no live use) or research (non-commercial). Checked against each model's "
        "licence (components/data/licences.yaml). Default production.",
    )
    grants: tuple[LicenceGrantSpec, ...] = Field(
        default=(),
        description="Commercial licence grants the customer holds, for models whose licence does not "
        "allow its use on its own.",
    )

    def grant_for(self, model: str) -> str | None:
        """The reference of the grant covering `model`, if any."""
        return next((g.reference for g in self.grants if g.model == model), None)


class ObservabilitySpec(SpecModel):
    alerts: bool = Field(default=True, description="PrometheusRules for audit shipping and model servers.")
    dashboards: bool = Field(default=True, description="Grafana dashboards as sidecar ConfigMaps.")
    gpu: bool = Field(
        default=False,
        description="GPU alerts and dashboard too; only where the GPU Operator's DCGM exporter is scraped.",
    )
    namespace: DnsLabel = Field(
        default="monitoring",
        description="Namespace the cluster's Prometheus Operator and Grafana sidecar watch; also allowed "
        "to scrape the audit shippers.",
    )
    prometheus_selector_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels the cluster's Prometheus selects rules and monitors by (e.g. release: kps).",
    )

    @model_validator(mode="after")
    def _enables_something(self) -> ObservabilitySpec:
        if not (self.alerts or self.dashboards):
            raise ValueError("enable alerts, dashboards or both (or remove observability)")
        return self


class StateSpec(SpecModel):
    backend_url: str = Field(
        description="Pulumi state backend: s3://bucket?endpoint=...&region=... or file://"
    )
    secrets_provider: str = Field(default="passphrase", description="passphrase or hashivault://KEY.")
    vault_address: str | None = Field(default=None, description="Vault address for hashivault.")


class CustomerSpec(SpecModel):
    """One regulated customer's stack."""

    name: DnsLabel = Field(description="Customer name, a DNS label; prefixes every resource name.")
    display_name: str = Field(default="", description="Human-readable customer name for reports.")
    residency: ResidencySpec = Field(description="The residency policy this stack must obey.")
    cluster: ClusterSpec = Field(description="Where and how the Kubernetes cluster runs.")
    models: tuple[ModelSpec, ...] = Field(default=(), description="Models to serve.")
    network: NetworkSpec = Field(default_factory=NetworkSpec, description="Tenancy and allowed flows.")
    audit: AuditSpec = Field(description="The write-once audit trail.")
    registries: RegistriesSpec = Field(default_factory=RegistriesSpec, description="Default images.")
    state: StateSpec = Field(description="Pulumi state backend and secrets provider.")
    secrets: SecretsSpec = Field(
        default_factory=SecretsSpec, description="Where the workloads' Secrets come from."
    )
    platform: PlatformSpec = Field(
        default_factory=PlatformSpec,
        description="Where the platform layer's charts and images come from (operators and CRDs the models need).",
    )
    identity: IdentitySpec = Field(
        default_factory=IdentitySpec,
        description="Who may reach the Kubernetes API and the model endpoints (docs/identity.md).",
    )
    licensing: LicensingSpec = Field(
        default_factory=LicensingSpec,
        description="What the models are used for and the commercial licence grants held (rule model.licence).",
    )
    observability: ObservabilitySpec | None = Field(
        default=None,
        description="Alert rules, the audit shippers' PodMonitor and Grafana dashboards (docs/operations.md).",
    )

    @property
    def serving_namespace(self) -> str:
        return f"{self.name}-serving"

    @property
    def audit_namespace(self) -> str:
        return f"{self.name}-audit"
