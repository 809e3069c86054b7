"""Pure builder for the audit trail: a write-once (object lock, COMPLIANCE) bucket, the Fluent Bit shippers
that fill it, and the API-server audit policy for self-managed control planes.

Two shippers, so that only the part that must read host files leaves Pod Security `restricted`:
- `events`: a one-replica Deployment reading Kubernetes events through the API; fully `restricted`.
- `logs`: a DaemonSet tailing the serving pods' container logs (and the API-server audit log on
  Talos control planes) from the node's /var/log. Its namespace enforces `privileged` (hostPath is
  refused by `baseline` and `restricted` alike) while audit and warn stay `restricted`.

No Pulumi import: `sovstack render` calls these builders directly.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sovstack.components.inference_records import (
    CAPTURE_KEEPS_CONTENT,
    DEFAULT_CAPTURE,
    RECORD_VERSION,
    Capture,
    access_log_mapping,
    fluent_bit_s3_key_format,
)
from sovstack.components.kube import (
    GPU_TAINT,
    Manifest,
    checkov_skip_annotations,
    dns_name,
    image_is_pinned,
    is_dns_label,
    restricted_container_security_context,
    restricted_pod_security_context,
    standard_labels,
    to_yaml,
)
from sovstack.components.provenance import load_data_file

COMPONENT = "audit-sink"
DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "audit.yaml"
Workload = Literal["events", "logs"]
HTTP_PORT = 2020
CONFIG_DIR = "/fluent-bit/etc/conf"
CONFIG_FILE = "fluent-bit.yaml"
BUFFER_DIR = "/buffer"
CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"
BUCKET_TYPES = {
    "scaleway": "scaleway:object/bucket:Bucket",
    "ovh": "ovh:CloudProject/storage:Storage",
    "minio": "minio:index/s3Bucket:S3Bucket",
    "existing": "existing",
}
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SIZE = re.compile(r"^[1-9][0-9]*[KMG]$")


class _Image(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    image: str
    digest_verified: bool = Field(alias="digestVerified")
    source: str


class _Images(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    fluent_bit: _Image = Field(alias="fluentBit")
    mc: _Image


class _Shipping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    retry_limit: int = Field(alias="retryLimit", ge=1)
    scheduler_base: int = Field(alias="schedulerBase", ge=1)
    scheduler_cap: int = Field(alias="schedulerCap", ge=1)
    reason: str
    source: str


class _AuditData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    images: _Images
    shipping: _Shipping


@cache
def audit_data() -> _AuditData:
    """The image defaults of `components/data/audit.yaml`, validated once."""
    return _AuditData.model_validate(load_data_file(DATA_FILE, keep=False))


class InferenceRecordsArgs(BaseModel):
    """Where the `logs` shipper finds the gateways' JSON access logs that become inference records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gateway_namespaces: list[str] = Field(
        min_length=1,
        description="Namespaces the gateways' Envoy pods run in (Envoy Gateway's GatewayNamespace mode); "
        "their `envoy` containers' logs are read. DNS-1123 labels.",
    )
    shipper: str = Field(
        default="gateway", description="DNS label naming the shipper in each record object's key."
    )
    capture: Capture = Field(
        default=DEFAULT_CAPTURE,
        description="The gateways' content capture policy. Under `full` a record holds up to two bodies of "
        "1 MiB each, so the tail reads lines up to 8 MiB (1 MiB otherwise).",
    )


#: The tag prefix of the records pipeline; the audit-log pipeline matches everything else.
RECORDS_TAG = "records"
#: Fluent Bit parser turning an Envoy JSON access-log line into fields, timed by `start_time`.
RECORDS_PARSER = "envoy-access-log"


class AuditSinkArgs(BaseModel):
    """Arguments of `AuditSink`: where audit records go, how long they are locked, how they are shipped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customer: str = Field(description="Customer key (DNS-1123 label); prefixes names and object keys.")
    region: str = Field(description="sovstack region key; stamped on labels and in every record.")
    residency_profile: str = Field(description="Residency profile name; stamped on labels.")
    namespace: str = Field(description="Namespace of the `events` Deployment (PSA restricted).")
    logs_namespace: str = Field(
        description="Namespace of the `logs` DaemonSet; must enforce PSA `privileged` (list it in "
        "NetworkIsolationArgs.privileged_namespaces) because it mounts host paths. Must differ from "
        "`namespace`."
    )
    serving_namespace: str = Field(description="Namespace whose container logs are shipped.")
    backend: Literal["scaleway", "ovh", "minio", "existing"] = Field(
        description="Who provides the bucket. `existing`: nothing is created; the bucket is declared to "
        "exist with object lock (sovstack cannot verify it)."
    )
    bucket: str = Field(description="Bucket name: 3-63 characters, lowercase letters, digits, '.', '-'.")
    retention_days: int = Field(
        description="Default COMPLIANCE retention of every object, in days; at least `min_retention_days`."
    )
    min_retention_days: int = Field(
        default=180,
        ge=1,
        description="Floor for `retention_days`; default 180 (EU AI Act Art. 19 and 26(6): six months).",
    )
    endpoint: str = Field(description="HTTPS S3 API endpoint of the bucket, in the bucket's region.")
    s3_region: str = Field(description="Region string the S3 API expects (Scaleway `fr-par`, OVH `gra`).")
    project_id: str | None = Field(default=None, description="Scaleway project id; default the provider's.")
    service_name: str | None = Field(default=None, description="OVH cloud project id; required for `ovh`.")
    region_name: str | None = Field(
        default=None, description="OVH storage region (`GRA`); required for `ovh`."
    )
    credentials_secret: str = Field(
        description="Secret (in both shipper namespaces) with keys AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY: write-only S3 credentials for Fluent Bit."
    )
    minio_admin_secret: str | None = Field(
        default=None,
        description="`minio` only, required there: Secret in `namespace` with AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY of a MinIO user allowed to set the bucket's object-lock configuration.",
    )
    fluent_bit_image: str = Field(
        default_factory=lambda: audit_data().images.fluent_bit.image,
        description="Fluent Bit image pinned by digest; default from data/audit.yaml.",
    )
    mc_image: str = Field(
        default_factory=lambda: audit_data().images.mc.image,
        description="MinIO client image pinned by digest (`minio` backend only); default from "
        "data/audit.yaml.",
    )
    buffer_size: str = Field(
        default="10G",
        description="Disk buffer per shipper pod (`storage.total_limit_size`, `store_dir_limit_size`): "
        "<n>K|M|G. The oldest data is dropped past it: size it for the outage you promise to survive.",
    )
    buffer_host_path: str | None = Field(
        default="/var/lib/sovstack/audit-buffer",
        description="Node directory keeping the DaemonSet's buffer across pod restarts and node reboots; "
        "None uses an emptyDir (survives container restarts only).",
    )
    apiserver_audit_log_path: str | None = Field(
        default=None,
        description="Glob of the API-server audit log on control-plane nodes, under /var/log (Talos: "
        "`/var/log/audit/kube/*.log`); default None (managed control planes).",
    )
    upload_timeout: str = Field(default="10m", description="Upload a file at least this often; default 10m.")
    total_file_size: str = Field(default="50M", description="Upload a file when it reaches this size.")
    inference_records: InferenceRecordsArgs | None = Field(
        default=None,
        description="Ship the gateways' access logs as inference records under records/v1/ (same bucket, "
        "buffer, retries and object lock as the audit logs); None: no records.",
    )
    resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        },
        description="Container requests and limits of every shipper pod.",
    )

    @model_validator(mode="after")
    def _check(self) -> AuditSinkArgs:
        validate_audit_sink_args(self)
        return self


def validate_audit_sink_args(args: AuditSinkArgs) -> None:
    """Every check, naming the field; the shell calls it again before it registers anything."""
    if args.retention_days < args.min_retention_days:
        raise ValueError(
            f"retention_days: {args.retention_days} is below min_retention_days {args.min_retention_days} "
            "(EU AI Act Art. 26(6): keep logs at least six months)"
        )
    for field in ("customer", "namespace", "logs_namespace", "serving_namespace", "credentials_secret"):
        if not is_dns_label(getattr(args, field)):
            raise ValueError(f"{field}: {getattr(args, field)!r} is not a DNS-1123 label")
    if args.inference_records is not None:
        records = args.inference_records
        for i, ns in enumerate(records.gateway_namespaces):
            if not is_dns_label(ns):
                raise ValueError(f"inference_records.gateway_namespaces[{i}]: {ns!r} is not a DNS-1123 label")
        if not is_dns_label(records.shipper):
            raise ValueError(f"inference_records.shipper: {records.shipper!r} is not a DNS-1123 label")
    if args.namespace == args.logs_namespace:
        raise ValueError("logs_namespace: must differ from namespace (it enforces PSA privileged)")
    if not _BUCKET_NAME.match(args.bucket) or ".." in args.bucket:
        raise ValueError(f"bucket: {args.bucket!r} is not a valid S3 bucket name")
    if not args.endpoint.startswith("https://"):
        raise ValueError(f"endpoint: {args.endpoint!r} must be an https:// URL")
    for field in ("fluent_bit_image", "mc_image"):
        if not image_is_pinned(getattr(args, field)):
            raise ValueError(f"{field}: {getattr(args, field)!r} is not pinned by a sha256 digest")
    if not _SIZE.match(args.buffer_size):
        raise ValueError(f"buffer_size: {args.buffer_size!r} must look like 10G, 512M or 100K")
    if args.buffer_host_path is not None and not args.buffer_host_path.startswith("/"):
        raise ValueError("buffer_host_path: must be an absolute path")
    path = args.apiserver_audit_log_path
    if path is not None and (not path.startswith("/var/log/") or ".." in path):
        raise ValueError("apiserver_audit_log_path: must be under /var/log/ (the only host path mounted)")
    if args.backend == "ovh" and (not args.service_name or not args.region_name):
        raise ValueError("service_name and region_name: both are required for backend 'ovh'")
    if args.backend == "minio" and not args.minio_admin_secret:
        raise ValueError("minio_admin_secret: required for backend 'minio' (sets the default retention)")


def build_audit_bucket(args: AuditSinkArgs) -> dict[str, Any]:
    """The bucket as data, for the shell and for render's cloud-resource inventory."""
    region = args.region_name if args.backend == "ovh" else args.s3_region
    return {
        "type": BUCKET_TYPES[args.backend],
        "name": args.bucket,
        "region": region,
        "endpoint": args.endpoint,
        "objectLock": {"mode": "COMPLIANCE", "days": args.retention_days},
        "versioning": True,
        "managed": args.backend != "existing",
    }


def _labels(args: AuditSinkArgs, name: str) -> dict[str, str]:
    return standard_labels(
        name=name,
        component=COMPONENT,
        customer=args.customer,
        region=args.region,
        residency=args.residency_profile,
    )


def _meta(args: AuditSinkArgs, name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": _labels(args, name)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def workload_name(args: AuditSinkArgs, workload: Workload) -> str:
    return dns_name(args.customer, "audit", workload)


def _s3_output(args: AuditSinkArgs, workload: Workload) -> dict[str, Any]:
    # Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment, never from here.
    return {
        "name": "s3",
        **_audit_match(args, workload),
        "bucket": args.bucket,
        "region": args.s3_region,
        "endpoint": args.endpoint,
        "use_put_object": "on",
        "send_content_md5": "true",  # object-lock buckets refuse PutObject without Content-MD5
        "compression": "gzip",
        "total_file_size": args.total_file_size,
        "upload_timeout": args.upload_timeout,
        "store_dir": f"{BUFFER_DIR}/s3",
        "store_dir_limit_size": args.buffer_size,
        "storage.total_limit_size": args.buffer_size,
        # An explicit limit: out_s3 caps an unlimited one at a few attempts, then drops the file.
        "retry_limit": audit_data().shipping.retry_limit,
        "preserve_data_ordering": "true",
        "s3_key_format": f"/{args.customer}/{args.region}/{workload}/%Y/%m/%d/$TAG/%H%M%S-$UUID.gz",
    }


def _audit_match(args: AuditSinkArgs, workload: Workload) -> dict[str, str]:
    """What the audit-log filters and output take: everything, or everything but the records' tags."""
    if workload == "logs" and args.inference_records is not None:
        return {"match_regex": r"^(kube|audit)\."}
    return {"match": "*"}


def _records_output(args: AuditSinkArgs) -> dict[str, Any]:
    """The records' own s3 output: the audit output's bucket, buffer and retries, the records layout."""
    assert args.inference_records is not None
    output = _s3_output(args, "logs")
    output.pop("match_regex", None)
    output.update(
        {
            "match": f"{RECORDS_TAG}.*",
            "store_dir": f"{BUFFER_DIR}/s3-records",
            "s3_key_format": fluent_bit_s3_key_format(args.inference_records.shipper),
            "json_date_key": "false",  # a record has exactly the schema's fields
        }
    )
    return output


def _tail(tag: str, path: str, db: str, buffer_max_size: str, *, cri: bool = True) -> dict[str, Any]:
    """A `tail` input with the shippers' common guarantees: its read position in a locked database on the
    buffer volume, chunks buffered on the filesystem, memory bounded; a line over `buffer_max_size` is
    skipped. `cri`: container logs, whose long lines the runtime splits (the CRI multiline parser joins)."""
    return {
        "name": "tail",
        "tag": tag,
        "path": path,
        **({"multiline.parser": "cri"} if cri else {}),
        "db": f"{BUFFER_DIR}/tail-{db}.db",
        "db.locking": "true",
        "read_from_head": "true",
        "mem_buf_limit": "50M",
        "buffer_max_size": buffer_max_size,
        "skip_long_lines": "on",
        "storage.type": "filesystem",
    }


def _records_pipeline(args: AuditSinkArgs) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The tail input of the gateways' Envoy containers and the filters making each access-log line an
    inference record (components/inference_records.py `record_from_access_log` is the reference)."""
    assert args.inference_records is not None
    paths = [f"/var/log/containers/*_{ns}_envoy-*.log" for ns in args.inference_records.gateway_namespaces]
    tail = _tail(
        f"{RECORDS_TAG}.*",
        ",".join(paths),
        "records",
        # A line longer than this is skipped: it must hold the longest record the gateway can write.
        "8M" if args.inference_records.capture == "full" else "1M",
    )
    match = f"{RECORDS_TAG}.*"
    filters: list[dict[str, Any]] = [
        # The access-log line is the container log's `log`; everything else (stream, CRI tag) goes.
        {
            "name": "parser",
            "match": match,
            "key_name": "log",
            "parser": RECORDS_PARSER,
            "reserve_data": "off",
        },
        # Envoy's own diagnostics share the container's stdout/stderr: only access-log lines go on.
        {"name": "grep", "match": match, "regex": "start_time ^[0-9]{4}-"},
        {
            "name": "modify",
            "match": match,
            "rename": [f"{key} {field}" for key, field in access_log_mapping().items() if key != field],
            # Static fields (`capture` only where the access log had no such key at all).
            "add": [
                f"record_version {RECORD_VERSION}",
                "capture none",
                f"customer {args.customer}",
                f"region {args.region}",
            ],
        },
        # A request the content-capture filter did not see (no route matched: `capture` null) or saw under
        # `none` keeps no content: it says `capture: none`, without `prompt` and `output`. A null value
        # exists as a key and matches no regex (Fluent Bit filter_modify), so the condition holds for it.
        {
            "name": "modify",
            "match": match,
            "condition": [f"Key_value_does_not_match capture {CAPTURE_KEEPS_CONTENT}"],
            "set": ["capture none"],
            "remove": ["prompt", "output"],
        },
    ]
    return tail, filters


def records_parser() -> dict[str, Any]:
    """The parser of an Envoy JSON access-log line: the record's time is its `start_time`, kept."""
    return {
        "name": RECORDS_PARSER,
        "format": "json",
        "time_key": "start_time",
        "time_format": "%Y-%m-%dT%H:%M:%S.%LZ",
        "time_keep": "on",
    }


def _record_filter(args: AuditSinkArgs, workload: Workload = "events") -> dict[str, Any]:
    return {
        "name": "record_modifier",
        **_audit_match(args, workload),
        "record": [f"sovstack_customer {args.customer}", f"sovstack_region {args.region}"],
    }


def build_fluent_bit_config(args: AuditSinkArgs, workload: Workload = "logs") -> str:
    """Fluent Bit YAML configuration of one shipper (YAML is the standard format since Fluent Bit 3.2)."""
    service = {
        "flush": 5,
        "grace": 30,
        "log_level": "info",
        "http_server": "on",
        "http_listen": "0.0.0.0",
        "http_port": HTTP_PORT,
        "health_check": "on",
        "storage.path": f"{BUFFER_DIR}/storage/",
        "storage.sync": "full",
        "storage.checksum": "on",
        "storage.backlog.mem_limit": "50M",
        "storage.metrics": "on",
        "scheduler.base": audit_data().shipping.scheduler_base,
        "scheduler.cap": audit_data().shipping.scheduler_cap,
    }
    filters: list[dict[str, Any]] = []
    if workload == "events":
        inputs: list[dict[str, Any]] = [
            {
                "name": "kubernetes_events",
                "tag": "k8s_events",
                "db": f"{BUFFER_DIR}/events.db",
                "kube_url": "https://kubernetes.default.svc",
                "storage.type": "filesystem",
            }
        ]
    else:
        inputs = [
            _tail("kube.*", f"/var/log/containers/*_{args.serving_namespace}_*.log", "containers", "1M")
        ]
        if args.apiserver_audit_log_path:
            inputs.append(_tail("audit.apiserver", args.apiserver_audit_log_path, "audit", "4M", cri=False))
        filters.append(
            {
                "name": "kubernetes",
                "match": "kube.*",
                "kube_url": "https://kubernetes.default.svc:443",
                "kube_tag_prefix": "kube.var.log.containers.",
                "merge_log": "off",
                "labels": "on",
                "annotations": "off",
                "k8s-logging.exclude": "off",  # a pod must not be able to opt out of the audit trail
            }
        )
    filters.append(_record_filter(args, workload))
    outputs = [_s3_output(args, workload)]
    config: dict[str, Any] = {"service": service}
    if workload == "logs" and args.inference_records is not None:
        records_input, records_filters = _records_pipeline(args)
        inputs.append(records_input)
        filters += records_filters
        outputs.append(_records_output(args))
        config["parsers"] = [records_parser()]
    config["pipeline"] = {"inputs": inputs, "filters": filters, "outputs": outputs}
    return to_yaml(config)


def _credentials_env(secret: str) -> list[dict[str, Any]]:
    return [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}} for key in CREDENTIAL_KEYS
    ]


def _selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": COMPONENT}


def _rbac(
    args: AuditSinkArgs, workload: Workload, namespace: str, rules: list[dict[str, Any]]
) -> list[Manifest]:
    name = workload_name(args, workload)
    cluster_name = dns_name("sovstack", name)
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(args, name, namespace),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(args, cluster_name),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(args, cluster_name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def logs_container_security_context() -> dict[str, Any]:
    """The narrow exception of the `logs` DaemonSet: root (log files are root-owned, and capabilities
    of non-root processes never become effective in Kubernetes) with every capability dropped except
    DAC_READ_SEARCH (read any file, write none), no privilege escalation, read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": False,
        "runAsUser": 0,
        "runAsGroup": 0,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_spec(
    args: AuditSinkArgs,
    workload: Workload,
    config_name: str,
    volumes: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    name = workload_name(args, workload)
    logs = workload == "logs"
    container = {
        "name": "fluent-bit",
        "image": args.fluent_bit_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/fluent-bit/bin/fluent-bit"],
        "args": ["--workdir=/fluent-bit/etc", f"--config={CONFIG_DIR}/{CONFIG_FILE}"],
        "env": _credentials_env(args.credentials_secret),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        # Liveness only asks "is the process serving"; readiness reflects output health, so an S3 outage
        # marks the pod unready without restarting it (restarts would not help and churn the buffer).
        "livenessProbe": {
            "httpGet": {"path": "/", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "readinessProbe": {"httpGet": {"path": "/api/v1/health", "port": "http"}, "periodSeconds": 10},
        "resources": {k: dict(v) for k, v in sorted(args.resources.items())},
        "securityContext": logs_container_security_context()
        if logs
        else restricted_container_security_context(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "buffer", "mountPath": BUFFER_DIR},
            *mounts,
        ],
    }
    pod_security = (
        {"seccompProfile": {"type": "RuntimeDefault"}} if logs else restricted_pod_security_context()
    )
    spec: dict[str, Any] = {
        "serviceAccountName": name,
        "automountServiceAccountToken": True,  # both read the API (events; pod metadata)
        "securityContext": pod_security,
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": config_name}}, *volumes],
    }
    if logs:
        tolerations = [{"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}]
        if args.apiserver_audit_log_path:
            tolerations.append({"key": CONTROL_PLANE_TAINT, "operator": "Exists", "effect": "NoSchedule"})
        spec["tolerations"] = tolerations
    return spec


def _workload(args: AuditSinkArgs, workload: Workload) -> list[Manifest]:
    name = workload_name(args, workload)
    namespace = args.logs_namespace if workload == "logs" else args.namespace
    config = build_fluent_bit_config(args, workload)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(args, name, namespace),
        "data": {CONFIG_FILE: config},
    }
    if workload == "logs":
        rules = [{"apiGroups": [""], "resources": ["namespaces", "pods"], "verbs": ["get", "list", "watch"]}]
        if args.buffer_host_path:
            buffer: dict[str, Any] = {
                "name": "buffer",
                "hostPath": {"path": args.buffer_host_path, "type": "DirectoryOrCreate"},
            }
        else:
            buffer = {"name": "buffer", "emptyDir": {"sizeLimit": args.buffer_size}}
        volumes = [buffer, {"name": "varlog", "hostPath": {"path": "/var/log", "type": "Directory"}}]
        mounts = [{"name": "varlog", "mountPath": "/var/log", "readOnly": True}]
    else:
        rules = [{"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]}]
        volumes = [{"name": "buffer", "emptyDir": {"sizeLimit": args.buffer_size}}]
        mounts = []
    template = {
        "metadata": {
            "labels": _labels(args, name),
            "annotations": {"sovstack.io/config-sha256": hashlib.sha256(config.encode()).hexdigest()},
        },
        "spec": _pod_spec(args, workload, name, volumes, mounts),
    }
    # The exceptions this workload needs, each with its reason (components/data/checkov-skips.yaml).
    controller_meta = _meta(args, name, namespace)
    controller_meta["annotations"] = checkov_skip_annotations(f"audit-{workload}")
    if workload == "logs":
        controller: Manifest = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": controller_meta,
            "spec": {"selector": {"matchLabels": _selector(name)}, "template": template},
        }
    else:
        controller = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": controller_meta,
            # One reader: two would ship every event twice; Recreate keeps it one during rollouts.
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": _selector(name)},
                "template": template,
            },
        }
    return [*_rbac(args, workload, namespace, rules), config_map, controller]


def build_minio_retention_job(args: AuditSinkArgs) -> Manifest:
    """`minio` only: a Job setting the bucket's default COMPLIANCE retention with `mc`, since pulumi-minio
    0.17 has no resource for it. Runs fully restricted; credentials come from `minio_admin_secret`."""
    name = dns_name(args.customer, "audit", "retention")
    mc = "mc --config-dir /tmp/mc"
    script = (
        f'{mc} alias set audit "$S3_ENDPOINT" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" && '
        f"{mc} retention set --default COMPLIANCE {args.retention_days}d audit/{args.bucket}"
    )
    container = {
        "name": "mc",
        "image": args.mc_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", script],
        "env": [
            {"name": "S3_ENDPOINT", "value": args.endpoint},
            *_credentials_env(str(args.minio_admin_secret)),
        ],
        "resources": {k: dict(v) for k, v in sorted(args.resources.items())},
        "securityContext": restricted_container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(args, name, args.namespace),
        "spec": {
            "backoffLimit": 6,
            "template": {
                "metadata": {"labels": _labels(args, name)},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "automountServiceAccountToken": False,
                    "securityContext": restricted_pod_security_context(),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }


def build_audit_sink(args: AuditSinkArgs) -> list[Manifest]:
    """Kubernetes objects: the `events` and `logs` shippers (RBAC, ConfigMap, controller) and, for
    `minio`, the retention Job first."""
    objects: list[Manifest] = []
    if args.backend == "minio":
        objects.append(build_minio_retention_job(args))
    return [*objects, *_workload(args, "events"), *_workload(args, "logs")]


def build_audit_policy(sovstack_namespaces: list[str]) -> dict[str, Any]:
    """`audit.k8s.io/v1` Policy for self-managed API servers (Talos). First matching rule wins."""
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            {
                "level": "None",
                "nonResourceURLs": ["/healthz*", "/livez*", "/readyz*", "/version", "/metrics", "/openapi/*"],
            },
            {
                "level": "None",
                "users": ["system:kube-proxy"],
                "verbs": ["watch"],
                "resources": [{"group": "", "resources": ["endpoints", "services", "services/status"]}],
            },
            {
                "level": "None",
                "userGroups": ["system:nodes"],
                "verbs": ["get", "list", "watch"],
                "resources": [{"group": "", "resources": ["nodes", "nodes/status"]}],
            },
            {
                "level": "None",
                "verbs": ["get", "list", "watch"],
                "resources": [
                    {"group": "", "resources": ["events"]},
                    {"group": "coordination.k8s.io", "resources": ["leases"]},
                ],
            },
            # Never a body for Secrets, ConfigMaps, tokens or token reviews: who touched what, not the values.
            {
                "level": "Metadata",
                "resources": [
                    {"group": "", "resources": ["secrets", "configmaps", "serviceaccounts/token"]},
                    {"group": "authentication.k8s.io", "resources": ["tokenreviews"]},
                ],
            },
            {
                "level": "RequestResponse",
                "verbs": ["create", "update", "patch", "delete", "deletecollection"],
                "namespaces": sorted(sovstack_namespaces),
            },
            {"level": "Metadata"},
        ],
    }
