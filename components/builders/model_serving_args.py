"""ModelServing args, their validators and the `components/data/serving.yaml` loader (pure, no Pulumi).

The builder, `components/builders/model_serving.py`, turns these args into manifests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from sovstack.components.builders.weights_verify import normalize_sha256
from sovstack.components.kube import image_is_pinned, is_dns_label
from sovstack.components.provenance import Sourced, load_data_file

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "serving.yaml"

#: Flags the builder sets itself, or that would fetch from a hub, move the listener or change the GPU
#: count per pod. vLLM's parser treats `_` and `-` alike in flag names; both are normalised before checking.
GUARDED_FLAGS = frozenset(
    {
        "--model", "--served-model-name", "--tensor-parallel-size", "-tp", "--pipeline-parallel-size",
        "-pp", "--data-parallel-size", "-dp", "--max-model-len", "--gpu-memory-utilization", "--dtype",
        "--quantization", "-q", "--port", "--host", "--uds", "--download-dir", "--api-key", "--config",
        "--headless", "--tokenizer", "--revision", "--code-revision", "--tokenizer-revision", "--hf-token",
        "--ssl-keyfile", "--ssl-certfile", "--ssl-ca-certs",
    }
)  # fmt: skip
GUARDED_PREFIXES = ("--data-parallel-", "--ssl-")

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_QUANTITY_FACTORS: dict[str | None, Decimal] = {
    None: Decimal(1), "m": Decimal("0.001"),
    **{suffix: Decimal(1000**power) for power, suffix in enumerate("kMGTPE", start=1)},
    **{suffix + "i": Decimal(1024**power) for power, suffix in enumerate("KMGTPE", start=1)},
}  # fmt: skip
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SERVED_NAME = r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$"
_S3_URL = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/(?!(.*/)?\.\.(/|$))\S*)?$"
_DURATION = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
_SUB_PATH = r"^(?!/)(?!(.*/)?\.\.(/|$)).*$"
_RESERVED_LABEL_PREFIXES = ("app.kubernetes.io/", "sovstack.io/")


# ---------------------------------------------------------------------------------------------- defaults
class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class _SourcedData(Sourced, _Data):
    """One section of serving.yaml: a fact with its provenance (components/provenance.py)."""


class _VllmData(_SourcedData):
    image: str
    verified: bool
    source: str
    port: int
    port_source: str
    health_path: str
    metrics_path: str
    paths_source: str


class _FetcherData(_SourcedData):
    image: str
    verified: bool
    source: str
    tuning_args: tuple[str, ...]
    tuning_source: str
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    resources_source: str


class _ShmData(_SourcedData):
    size: str
    source: str


class _PerGpuData(_SourcedData):
    cpu_request: int
    cpu_limit: int
    memory_gib: int
    source: str


class _ProbeData(_SourcedData):
    period_seconds: int
    timeout_seconds: int
    startup_timeout_minutes: int
    readiness_failure_threshold: int
    liveness_period_seconds: int
    liveness_timeout_seconds: int
    liveness_failure_threshold: int
    source: str


class _RolloutData(_SourcedData):
    termination_grace_seconds: int
    pre_stop_sleep_seconds: int
    fetch_allowance_minutes: int
    verify_allowance_minutes: int
    margin_minutes: int
    revision_history_limit: int
    source: str


class _AutoscalingData(_SourcedData):
    queue_target_per_replica: int
    polling_interval_seconds: int
    scale_down_stabilization_seconds: int
    source: str


class _ServiceMonitorData(_SourcedData):
    interval: str
    source: str


class ServingDefaults(_Data):
    """`components/data/serving.yaml`, validated."""

    vllm: _VllmData
    fetcher: _FetcherData
    shm: _ShmData
    resources_per_gpu: _PerGpuData
    probes: _ProbeData
    rollout: _RolloutData
    autoscaling: _AutoscalingData
    service_monitor: _ServiceMonitorData

    @model_validator(mode="after")
    def _images_pinned(self) -> ServingDefaults:
        for field, image in (("vllm.image", self.vllm.image), ("fetcher.image", self.fetcher.image)):
            if not image_is_pinned(image):
                raise ValueError(f"serving.yaml {field}: {image!r} is not pinned by digest")
        return self


@cache
def serving_defaults() -> ServingDefaults:
    """Load and validate `components/data/serving.yaml` once."""
    return ServingDefaults.model_validate(load_data_file(DATA_FILE))


# ------------------------------------------------------------------------------------------- validators
# Each checker names the field it guards (pydantic passes it in `info`), so errors read "image: ...".
def _field(info: ValidationInfo) -> str:
    return info.field_name or "value"


def _quantity(value: str, field: str) -> Decimal:
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"{field}: {value!r} is not a Kubernetes quantity such as '500m', '4' or '200Gi'")
    return Decimal(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]


def _is_quantity(value: str, info: ValidationInfo) -> str:
    _quantity(value, _field(info))
    return value


def _is_pinned(value: str, info: ValidationInfo) -> str:
    if not image_is_pinned(value):
        raise ValueError(
            f"{_field(info)}: {value!r} is not pinned by digest; use repository[:tag]@sha256:<64 hex>"
        )
    return value


def _is_dns_label(value: str, info: ValidationInfo) -> str:
    if not is_dns_label(value):
        raise ValueError(
            f"{_field(info)}: {value!r} is not a DNS-1123 label (lowercase letters, digits, '-')"
        )
    return value


def _is_label_value(value: str, info: ValidationInfo) -> str:
    if not _LABEL_NAME.match(value):
        raise ValueError(f"{_field(info)}: {value!r} is not a valid Kubernetes label value")
    return value


def _is_subdomain(value: str, info: ValidationInfo) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(f"{_field(info)}: {value!r} is not a DNS-1123 subdomain")
    return value


def _is_url(schemes: tuple[str, ...]) -> Callable[[str, ValidationInfo], str]:
    def check(value: str, info: ValidationInfo) -> str:
        parts = urlsplit(value)
        if (
            parts.scheme not in schemes
            or not parts.hostname
            or parts.username
            or parts.query
            or parts.fragment
        ):
            wanted = " or ".join(f"{s}://" for s in schemes)
            raise ValueError(
                f"{_field(info)}: {value!r} must be a {wanted} URL with a host and no credentials"
            )
        return value

    return check


def _matches(pattern: str, what: str) -> Callable[[str, ValidationInfo], str]:
    compiled = re.compile(pattern)

    def check(value: str, info: ValidationInfo) -> str:
        if not compiled.match(value):
            raise ValueError(f"{_field(info)}: {value!r} is not {what}")
        return value

    return check


DnsLabel = Annotated[str, AfterValidator(_is_dns_label)]
LabelValue = Annotated[str, AfterValidator(_is_label_value)]
Subdomain = Annotated[str, AfterValidator(_is_subdomain)]
PinnedImage = Annotated[str, AfterValidator(_is_pinned)]
Quantity = Annotated[str, AfterValidator(_is_quantity)]


def _flag_name(arg: str) -> str:
    name = arg.split("=", 1)[0]
    return "--" + name[2:].replace("_", "-") if name.startswith("--") else name


# ----------------------------------------------------------------------------------------------- args
class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SecretKeyRef(_Args):
    """A key in a Kubernetes Secret of the serving namespace; only the reference enters a manifest."""

    name: Subdomain = Field(description="Secret name (DNS-1123 subdomain). Required.")
    key: Annotated[
        str, AfterValidator(_matches(r"^[-._a-zA-Z0-9]{1,253}$", "a Secret key ([-._a-zA-Z0-9]+)"))
    ] = Field(description="Key inside the Secret ([-._a-zA-Z0-9]+). Required.")


def _manifest_sha256(value: str) -> str:
    return "sha256:" + normalize_sha256(value, field="manifest_sha256")


class _PinnedWeights(_Args):
    """What every weights source carries: the digest its files are verified against."""

    manifest_sha256: Annotated[str, AfterValidator(_manifest_sha256)] | None = Field(
        default=None,
        description="sha256 of the weights manifest (`SHA256SUMS`, written by `sovstack weights manifest`), "
        "64 hex digits, `sha256:` allowed. Set: a `verify-weights` init container checks every file against "
        "it before vLLM starts and the pod fails on any mismatch; the Deployment carries it in the "
        "`sovstack.io/weights-sha256` annotation. None: the weights are not verified (a residency policy "
        "with requirePinnedWeights refuses that).",
    )


class S3Weights(_PinnedWeights):
    """Weights copied from an in-region S3 bucket by an init container into a node-local emptyDir."""

    source: Literal["s3"] = Field(default="s3", description="Discriminator: `s3`.")
    url: Annotated[str, AfterValidator(_matches(_S3_URL, "an s3://bucket/prefix URL"))] = Field(
        description="`s3://bucket/prefix` holding the model directory (config.json, *.safetensors). Required."
    )
    endpoint: Annotated[str, AfterValidator(_is_url(("https",)))] = Field(
        description="HTTPS URL of the in-region S3 API (e.g. `https://s3.fr-par.scw.cloud`). Required, no "
        "default, so weights never silently cross a border."
    )
    region: Annotated[str, AfterValidator(_matches(r"^[a-z0-9][a-z0-9-]{0,62}$", "an S3 region name"))] = (
        Field(description="S3 region the endpoint signs for (e.g. `fr-par`, `gra`). Required.")
    )
    credentials_secret: Subdomain = Field(
        description="Secret in the namespace with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "(read-only credentials for the bucket). Required."
    )
    fetcher_image: PinnedImage = Field(
        default_factory=lambda: serving_defaults().fetcher.image,
        description="rclone image doing the copy, pinned by digest. Default in serving.yaml.",
    )
    volume_size: Quantity = Field(
        description="sizeLimit of the weights emptyDir and the pod's ephemeral-storage request "
        "(e.g. `200Gi`); size it above the checkpoint. Required."
    )

    @property
    def bucket_path(self) -> str:
        """`bucket/prefix` as rclone addresses it."""
        return self.url.removeprefix("s3://").rstrip("/")


class PvcWeights(_PinnedWeights):
    """Weights on an existing, pre-provisioned PersistentVolumeClaim, mounted read-only."""

    source: Literal["pvc"] = Field(default="pvc", description="Discriminator: `pvc`.")
    claim_name: Subdomain = Field(description="Existing claim in the namespace. Required.")
    sub_path: Annotated[str, AfterValidator(_matches(_SUB_PATH, "a relative path without '..'"))] = Field(
        default="", description="Directory inside the claim holding the model (relative). Default: its root."
    )
    verifier_image: PinnedImage = Field(
        default_factory=lambda: serving_defaults().fetcher.image,
        description="Image running the verification (needs /bin/sh and sha256sum), pinned by digest. Default: "
        "the weights fetcher's (serving.yaml).",
    )


Weights = Annotated[S3Weights | PvcWeights, Field(discriminator="source")]


class ServingResources(_Args):
    """CPU and memory of the vLLM container; a field left unset is scaled by tensor_parallel_size."""

    cpu_request: Quantity | None = Field(default=None, description="CPU request. Default 4 per GPU.")
    cpu_limit: Quantity | None = Field(default=None, description="CPU limit. Default 8 per GPU.")
    memory_request: Quantity | None = Field(default=None, description="Memory request. Default 32Gi per GPU.")
    memory_limit: Quantity | None = Field(
        default=None, description="Memory limit; /dev/shm counts against it. Default 32Gi per GPU."
    )


class Autoscaling(_Args):
    """KEDA ScaledObject on vLLM's queue depth."""

    min_replicas: int = Field(
        default=1,
        ge=1,
        description="Lowest replica count, at least 1: the queue metric comes from vLLM itself, so at zero "
        "nothing would scale it back up.",
    )
    max_replicas: int = Field(ge=1, description="Highest replica count (>= min_replicas). Required.")
    queue_target: int = Field(
        default_factory=lambda: serving_defaults().autoscaling.queue_target_per_replica,
        ge=1,
        description="Target `vllm:num_requests_waiting` per replica. Default 5 (serving.yaml).",
    )
    prometheus_address: Annotated[str, AfterValidator(_is_url(("http", "https")))] = Field(
        description="URL of the Prometheus server KEDA queries. Required."
    )
    query: str | None = Field(
        default=None,
        description="PromQL replacing the default "
        '`sum(vllm:num_requests_waiting{namespace="<ns>",model_name="<served_model_name>"})`.',
    )

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        return self


class Route(_Args):
    """A Gateway API HTTPRoute exposing `/v1` through an existing Gateway's HTTPS listener."""

    gateway_name: DnsLabel = Field(description="Name of the parent Gateway. Required.")
    gateway_namespace: DnsLabel = Field(description="Namespace of the parent Gateway. Required.")
    section_name: DnsLabel = Field(
        default="https", description="Gateway listener to attach to; it terminates TLS. Default `https`."
    )
    hostname: Subdomain = Field(description="Public hostname of the API (no wildcard). Required.")
    request_timeout: Annotated[str, AfterValidator(_matches(_DURATION, "a Gateway API duration"))] | None = (
        Field(
            default=None,
            description="Whole-request timeout (Gateway API duration, e.g. `600s`); streamed completions "
            "outlast some implementations' default (Envoy: 15 s). Default: the Gateway's.",
        )
    )
    credential_filter: DnsLabel | None = Field(
        default=None,
        description="Envoy Gateway HTTPRouteFilter (in the model's namespace) that puts the model server's "
        "own API key in the forwarded request, once the Gateway has authenticated the client (docs/identity.md). "
        "Default: the client's Authorization header reaches vLLM unchanged.",
    )


class Canary(_Args):
    """A new version served beside the stable one: one more Deployment and Service, `<name>-canary`,
    sharing the route by weight. The stable objects keep their names, so promoting (moving these fields
    onto the stable args and dropping the canary) updates the stable Deployment in place."""

    image: PinnedImage = Field(description="vLLM image of the new version, pinned by digest. Required.")
    weights: Weights = Field(description="Weights of the new version. Required.")
    weight: int = Field(
        ge=0, le=100, description="Percent of the route's requests to the new version; the rest stay stable."
    )
    replicas: int = Field(default=1, ge=1, description="Replicas of the new version. Default 1.")
    tensor_parallel_size: Literal[1, 2, 4, 8] = Field(
        default=1, description="GPUs per replica of the new version. Default 1."
    )


class ModelServingArgs(_Args):
    """One model served by vLLM in one customer namespace on one GPU pool."""

    customer: DnsLabel = Field(description="Customer id (DNS-1123 label); first part of every object name.")
    model_name: DnsLabel = Field(description="The stack's name for the model; weights live in /models/<it>.")
    served_model_name: Annotated[
        str, AfterValidator(_matches(_SERVED_NAME, "[A-Za-z0-9][A-Za-z0-9._/:-]*"))
    ] = Field(description="Name clients send as `model` ([A-Za-z0-9][A-Za-z0-9._/:-]*, <= 128 characters).")
    namespace: DnsLabel = Field(
        description="Namespace to deploy into (DNS-1123 label; not `default`, `kube-*`)."
    )
    region: LabelValue = Field(
        description="Region; pods only schedule on nodes labelled `sovstack.io/region`."
    )
    residency_profile: LabelValue = Field(
        description="Residency profile, stamped as `sovstack.io/residency`."
    )
    pool: LabelValue = Field(description="GPU pool name (`sovstack.io/pool` node label value).")
    gpu_type: LabelValue = Field(description="GPU type (`sovstack.io/gpu` node label value, e.g. `H100`).")
    tensor_parallel_size: Literal[1, 2, 4, 8] = Field(
        default=1, description="GPUs per replica: `--tensor-parallel-size` and the `nvidia.com/gpu` limit."
    )
    replicas: int = Field(
        default=1, ge=0, description="Replica count. Default 1. Conflicts with `autoscaling`."
    )
    image: PinnedImage = Field(
        default_factory=lambda: serving_defaults().vllm.image,
        description="vLLM OpenAI server image, `repo[:tag]@sha256:...`. Default in serving.yaml.",
    )
    image_pull_policy: Literal["IfNotPresent", "Always"] = Field(
        default="IfNotPresent",
        description="IfNotPresent (digest-pinned: no registry round-trip on restart) or Always (checkov "
        "CKV_K8S_15; re-checks pull credentials on every start).",
    )
    max_model_len: int = Field(
        gt=0, description="`--max-model-len`: context the KV cache is sized for. Required."
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, le=1, description="`--gpu-memory-utilization`, fraction of GPU memory in (0, 1]."
    )
    dtype: Literal["bf16", "fp16", "fp8", "int4-awq", "int4-gptq"] = Field(
        default="bf16",
        description="bf16/fp16 give `--dtype bfloat16|float16`; fp8, int4-awq, int4-gptq give "
        "`--quantization fp8|awq|gptq`.",
    )
    weights: Weights = Field(description="Where weights come from: `s3` (in-region copy) or `pvc`. Required.")
    api_key_secret: SecretKeyRef = Field(
        description="Secret key holding the API key, injected as VLLM_API_KEY via secretKeyRef. Required."
    )
    resources: ServingResources = Field(
        default_factory=ServingResources,
        description="CPU and memory; defaults scale with tensor_parallel_size.",
    )
    shm_size: Quantity = Field(
        default_factory=lambda: serving_defaults().shm.size,
        description="sizeLimit of the memory-backed /dev/shm emptyDir. Default 2Gi.",
    )
    port: int = Field(
        default_factory=lambda: serving_defaults().vllm.port,
        ge=1024,
        le=65535,
        description="Port. Default 8000.",
    )
    zones: list[LabelValue] = Field(
        default_factory=list,
        description="Zones (`sovstack.io/zone` values) the pods may use; two or more make the spread strict.",
    )
    startup_timeout_minutes: int = Field(
        default_factory=lambda: serving_defaults().probes.startup_timeout_minutes,
        ge=1,
        le=240,
        description="How long the startup probe lets vLLM load before a restart. Default 30.",
    )
    update_strategy: Literal["replace", "surge"] = Field(
        default="replace",
        description="`replace` (maxSurge 0: no spare GPU needed; a single replica is down while it restarts) "
        "or `surge` (maxUnavailable 0: needs GPUs for one extra replica).",
    )
    autoscaling: Autoscaling | None = Field(default=None, description="KEDA ScaledObject. Default off.")
    route: Route | None = Field(default=None, description="Gateway API HTTPRoute. Default off.")
    service_monitor: bool = Field(default=False, description="ServiceMonitor on /metrics. Default off.")
    canary: Canary | None = Field(
        default=None,
        description="A new version beside this one with `canary.weight`% of the route's traffic. Needs "
        "`route`. Default none.",
    )
    extra_args: list[str] = Field(
        default_factory=list,
        description="More vLLM flags, each `--flag` or `--flag=value`; guarded flags (model, port, API key, "
        "parallelism, hub revisions, config file, TLS) are refused.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels on every object; `app.kubernetes.io/*`, `sovstack.io/*` refused.",
    )
    priority_class_name: Subdomain | None = Field(default=None, description="PriorityClass of the pods.")
    runtime_class_name: Subdomain | None = Field(
        default=None, description="RuntimeClass, e.g. `nvidia` where it is not the node's default runtime."
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if value == "default" or value.startswith("kube-"):
            raise ValueError(f"namespace: {value!r} is shared; deploy into the customer's own namespace")
        return value

    @field_validator("served_model_name")
    @classmethod
    def _served_length(cls, value: str) -> str:
        if len(value) > 128:
            raise ValueError(f"served_model_name: {value!r} is longer than 128 characters")
        return value

    @field_validator("zones")
    @classmethod
    def _zones(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"zones: {value!r} lists a zone twice")
        return value

    @field_validator("extra_args")
    @classmethod
    def _extra_args(cls, value: list[str]) -> list[str]:
        for arg in value:
            if not arg.startswith("-"):
                raise ValueError(f"extra_args: {arg!r} is not a flag; write '--flag' or '--flag=value'")
            name = _flag_name(arg)
            if name in GUARDED_FLAGS or name.startswith(GUARDED_PREFIXES):
                raise ValueError(f"extra_args: {name} is set by ModelServing or would bypass its guards")
        return value

    @field_validator("labels")
    @classmethod
    def _extra_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            prefix, _, name = key.rpartition("/")
            if not _LABEL_NAME.match(name) or (prefix and not _DNS_SUBDOMAIN.match(prefix)):
                raise ValueError(f"labels: {key!r} is not a valid label key")
            if key.startswith(_RESERVED_LABEL_PREFIXES):
                raise ValueError(f"labels: {key!r} is reserved for labels sovstack sets")
            if val and not _LABEL_NAME.match(val):
                raise ValueError(f"labels: {val!r} (for {key!r}) is not a valid Kubernetes label value")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> ModelServingArgs:
        if self.autoscaling is not None and "replicas" in self.model_fields_set:
            raise ValueError("replicas conflicts with autoscaling: set autoscaling.min_replicas instead")
        if self.canary is not None and self.route is None:
            raise ValueError("canary: needs route (the split is the HTTPRoute's backend weights)")
        cpu_request, cpu_limit, memory_request, memory_limit = container_resources(self)
        if _quantity(cpu_request, "cpu_request") > _quantity(cpu_limit, "cpu_limit"):
            raise ValueError(f"resources: cpu_request {cpu_request} is above cpu_limit {cpu_limit}")
        if _quantity(memory_request, "memory_request") > _quantity(memory_limit, "memory_limit"):
            raise ValueError(
                f"resources: memory_request {memory_request} is above memory_limit {memory_limit}"
            )
        if _quantity(self.shm_size, "shm_size") >= _quantity(memory_limit, "memory_limit"):
            raise ValueError(f"shm_size: {self.shm_size} must stay below the memory limit {memory_limit}")
        return self


# ------------------------------------------------------------------------------------------ resources
# Shared by the builder and `ModelServingArgs`' own cross-check, so it lives beside the args.
def container_resources(args: ModelServingArgs) -> tuple[str, str, str, str]:
    """(cpu request, cpu limit, memory request, memory limit) of the vLLM container."""
    per_gpu = serving_defaults().resources_per_gpu
    tp = args.tensor_parallel_size
    given = args.resources
    return (
        given.cpu_request or str(per_gpu.cpu_request * tp),
        given.cpu_limit or str(per_gpu.cpu_limit * tp),
        given.memory_request or f"{per_gpu.memory_gib * tp}Gi",
        given.memory_limit or f"{per_gpu.memory_gib * tp}Gi",
    )
