"""Pure builder for one model served by vLLM's OpenAI-compatible server: Deployment, Service, PDB and the
optional KEDA ScaledObject, Gateway API HTTPRoute and Prometheus ServiceMonitor.

No Pulumi import: `sovstack render` calls `build_model_serving` directly. Defaults live in
`components/data/serving.yaml`. The args, their validators and the serving.yaml loader live in
`components/builders/model_serving_args.py`.
"""

from __future__ import annotations

from typing import Any

from sovstack.components.builders.model_serving_args import (
    DATA_FILE,
    GUARDED_FLAGS,
    GUARDED_PREFIXES,
    Autoscaling,
    Canary,
    DnsLabel,
    LabelValue,
    ModelServingArgs,
    PinnedImage,
    PvcWeights,
    Quantity,
    Route,
    S3Weights,
    SecretKeyRef,
    ServingDefaults,
    ServingResources,
    Subdomain,
    Weights,
    container_resources,
    serving_defaults,
)
from sovstack.components.builders.weights_verify import build_verify_container
from sovstack.components.inference_records import MODEL_HEADER, WEIGHTS_DIGEST_ANNOTATION, WEIGHTS_HEADER
from sovstack.components.kube import (
    GPU_RESOURCE,
    GPU_TAINT,
    LABEL_GPU,
    LABEL_POOL,
    LABEL_REGION,
    LABEL_ZONE,
    Manifest,
    dns_name,
    restricted_container_security_context,
    restricted_pod_security_context,
    standard_labels,
)

# Everything that moved to model_serving_args stays importable from here.
__all__ = [
    "CACHE_DIR",
    "COMPONENT",
    "DATA_FILE",
    "DTYPE_FLAGS",
    "GUARDED_FLAGS",
    "GUARDED_PREFIXES",
    "HF_HOME_DIR",
    "HOME_DIR",
    "MODELS_DIR",
    "SHM_DIR",
    "TMP_DIR",
    "Autoscaling",
    "Canary",
    "DnsLabel",
    "LabelValue",
    "ModelServingArgs",
    "PinnedImage",
    "PvcWeights",
    "Quantity",
    "Route",
    "S3Weights",
    "SecretKeyRef",
    "ServingDefaults",
    "ServingResources",
    "Subdomain",
    "Weights",
    "build_deployment",
    "build_http_route",
    "build_model_serving",
    "build_pdb",
    "build_scaled_object",
    "build_service",
    "build_service_monitor",
    "container_resources",
    "object_labels",
    "progress_deadline_seconds",
    "selector_labels",
    "service_url",
    "serving_defaults",
    "serving_name",
    "vllm_args",
]

COMPONENT = "model-serving"

# Where things live inside the pod. The root filesystem is read-only; every path vLLM, torch, triton or
# rclone writes to is one of these emptyDirs.
MODELS_DIR = "/models"
HOME_DIR = "/home/vllm"
CACHE_DIR = "/cache"
HF_HOME_DIR = "/hf-home"
TMP_DIR = "/tmp"
SHM_DIR = "/dev/shm"

DTYPE_FLAGS: dict[str, list[str]] = {
    "bf16": ["--dtype", "bfloat16"],
    "fp16": ["--dtype", "float16"],
    "fp8": ["--quantization", "fp8"],
    "int4-awq": ["--quantization", "awq"],
    "int4-gptq": ["--quantization", "gptq"],
}


# -------------------------------------------------------------------------------------------- builder
def serving_name(args: ModelServingArgs) -> str:
    """The name of every object built for this model: `<customer>-<model_name>`."""
    return dns_name(args.customer, args.model_name)


def selector_labels(args: ModelServingArgs) -> dict[str, str]:
    """The stable labels the selector, PDB, spread and ServiceMonitor match on (never a version)."""
    return {"app.kubernetes.io/name": serving_name(args), "app.kubernetes.io/component": COMPONENT}


def object_labels(args: ModelServingArgs) -> dict[str, str]:
    tag = args.image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    labels = standard_labels(
        name=serving_name(args),
        component=COMPONENT,
        customer=args.customer,
        region=args.region,
        residency=args.residency_profile,
        version=tag or None,
    )
    labels[LABEL_POOL] = args.pool
    return {**args.labels, **labels}


def service_url(args: ModelServingArgs) -> str:
    """The in-cluster base URL of the OpenAI API."""
    return f"http://{serving_name(args)}.{args.namespace}.svc.cluster.local:{args.port}/v1"


def vllm_args(args: ModelServingArgs) -> list[str]:
    """The vLLM server's command-line arguments (the image's entrypoint is `vllm serve`)."""
    return [
        "--model", f"{MODELS_DIR}/{args.model_name}",
        "--served-model-name", args.served_model_name,
        "--tensor-parallel-size", str(args.tensor_parallel_size),
        "--max-model-len", str(args.max_model_len),
        "--gpu-memory-utilization", str(args.gpu_memory_utilization),
        *DTYPE_FLAGS[args.dtype],
        "--port", str(args.port),
        "--download-dir", f"{HF_HOME_DIR}/downloads",
        *args.extra_args,
    ]  # fmt: skip


def _env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _vllm_env(args: ModelServingArgs) -> list[dict[str, Any]]:
    return [
        _env("HOME", HOME_DIR),
        # torch's inductor cache calls getpass.getuser(), which fails for a uid without a passwd entry
        # unless USER is set.
        _env("USER", "vllm"),
        _env("HF_HOME", HF_HOME_DIR),
        _env("HF_HUB_OFFLINE", "1"),
        _env("TRANSFORMERS_OFFLINE", "1"),
        _env("HF_HUB_DISABLE_TELEMETRY", "1"),
        _env("XDG_CACHE_HOME", CACHE_DIR),
        _env("VLLM_CACHE_ROOT", f"{CACHE_DIR}/vllm"),
        _env("TORCHINDUCTOR_CACHE_DIR", f"{CACHE_DIR}/torchinductor"),
        _env("TRITON_CACHE_DIR", f"{CACHE_DIR}/triton"),
        _env("NUMBA_CACHE_DIR", f"{CACHE_DIR}/numba"),
        _env("VLLM_NO_USAGE_STATS", "1"),
        _env("VLLM_DO_NOT_TRACK", "1"),
        _env("DO_NOT_TRACK", "1"),
        _secret_env("VLLM_API_KEY", args.api_key_secret.name, args.api_key_secret.key),
    ]


def _probe(path: str, *, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http", "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
        "successThreshold": 1,
    }


def _vllm_container(args: ModelServingArgs) -> dict[str, Any]:
    data = serving_defaults()
    probes = data.probes
    cpu_request, cpu_limit, memory_request, memory_limit = container_resources(args)
    gpus = str(args.tensor_parallel_size)
    requests = {"cpu": cpu_request, "memory": memory_request, GPU_RESOURCE: gpus}
    if isinstance(args.weights, S3Weights):
        # The scheduler then only picks nodes with room for the copied weights.
        requests["ephemeral-storage"] = args.weights.volume_size
    weights_mount: dict[str, Any] = {"name": "weights", "mountPath": MODELS_DIR, "readOnly": True}
    if isinstance(args.weights, PvcWeights):
        weights_mount["mountPath"] = f"{MODELS_DIR}/{args.model_name}"
        if args.weights.sub_path:
            weights_mount["subPath"] = args.weights.sub_path
    return {
        "name": "vllm",
        "image": args.image,
        "imagePullPolicy": args.image_pull_policy,
        "args": vllm_args(args),
        "env": _vllm_env(args),
        "ports": [{"name": "http", "containerPort": args.port, "protocol": "TCP"}],
        "resources": {
            "requests": requests,
            "limits": {"cpu": cpu_limit, "memory": memory_limit, GPU_RESOURCE: gpus},
        },
        "startupProbe": _probe(
            data.vllm.health_path,
            period=probes.period_seconds,
            timeout=probes.timeout_seconds,
            failures=args.startup_timeout_minutes * 60 // probes.period_seconds,
        ),
        "readinessProbe": _probe(
            data.vllm.health_path,
            period=probes.period_seconds,
            timeout=probes.timeout_seconds,
            failures=probes.readiness_failure_threshold,
        ),
        "livenessProbe": _probe(
            data.vllm.health_path,
            period=probes.liveness_period_seconds,
            timeout=probes.liveness_timeout_seconds,
            failures=probes.liveness_failure_threshold,
        ),
        "lifecycle": {"preStop": {"sleep": {"seconds": data.rollout.pre_stop_sleep_seconds}}},
        "securityContext": restricted_container_security_context(),
        "volumeMounts": [
            weights_mount,
            {"name": "dshm", "mountPath": SHM_DIR},
            {"name": "tmp", "mountPath": TMP_DIR},
            {"name": "home", "mountPath": HOME_DIR},
            {"name": "cache", "mountPath": CACHE_DIR},
            {"name": "hf-home", "mountPath": HF_HOME_DIR},
        ],
    }


def _fetch_container(args: ModelServingArgs, weights: S3Weights) -> dict[str, Any]:
    fetcher = serving_defaults().fetcher
    return {
        "name": "fetch-weights",
        "image": weights.fetcher_image,
        "imagePullPolicy": args.image_pull_policy,
        "command": ["rclone"],
        "args": [
            "copy",
            f":s3:{weights.bucket_path}",
            f"{MODELS_DIR}/{args.model_name}",
            "--s3-provider=Other",
            f"--s3-endpoint={weights.endpoint}",
            f"--s3-region={weights.region}",
            "--s3-env-auth=false",
            *fetcher.tuning_args,
        ],
        "env": [
            _env("HOME", TMP_DIR),
            _secret_env("RCLONE_S3_ACCESS_KEY_ID", weights.credentials_secret, "AWS_ACCESS_KEY_ID"),
            _secret_env("RCLONE_S3_SECRET_ACCESS_KEY", weights.credentials_secret, "AWS_SECRET_ACCESS_KEY"),
        ],
        "resources": {
            "requests": {"cpu": fetcher.cpu_request, "memory": fetcher.memory_request},
            "limits": {"cpu": fetcher.cpu_limit, "memory": fetcher.memory_limit},
        },
        "securityContext": restricted_container_security_context(),
        "volumeMounts": [
            {"name": "weights", "mountPath": MODELS_DIR},
            {"name": "tmp", "mountPath": TMP_DIR},
        ],
    }


def _volumes(args: ModelServingArgs) -> list[dict[str, Any]]:
    weights: dict[str, Any]
    if isinstance(args.weights, S3Weights):
        weights = {"name": "weights", "emptyDir": {"sizeLimit": args.weights.volume_size}}
    else:
        weights = {
            "name": "weights",
            "persistentVolumeClaim": {"claimName": args.weights.claim_name, "readOnly": True},
        }
    return [
        weights,
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": args.shm_size}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "home", "emptyDir": {}},
        {"name": "cache", "emptyDir": {}},
        {"name": "hf-home", "emptyDir": {}},
    ]


def _affinity(args: ModelServingArgs) -> dict[str, Any]:
    expressions = [
        {"key": LABEL_REGION, "operator": "In", "values": [args.region]},
        {"key": LABEL_GPU, "operator": "In", "values": [args.gpu_type]},
        {"key": LABEL_POOL, "operator": "In", "values": [args.pool]},
    ]
    if args.zones:
        expressions.append({"key": LABEL_ZONE, "operator": "In", "values": list(args.zones)})
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }


def _metadata(args: ModelServingArgs) -> dict[str, Any]:
    return {"name": serving_name(args), "namespace": args.namespace, "labels": object_labels(args)}


def progress_deadline_seconds(args: ModelServingArgs) -> int:
    """How long a rollout may go without a new ready pod: startup, plus the S3 copy, plus a margin."""
    rollout = serving_defaults().rollout
    minutes = args.startup_timeout_minutes + rollout.margin_minutes
    if isinstance(args.weights, S3Weights):
        minutes += rollout.fetch_allowance_minutes
    if args.weights.manifest_sha256:
        minutes += rollout.verify_allowance_minutes
    return minutes * 60


def _verify_container(args: ModelServingArgs) -> dict[str, Any] | None:
    """`verify-weights`, after the fetch and before vLLM: the pod never starts on other weights."""
    weights = args.weights
    if weights.manifest_sha256 is None:
        return None
    image = weights.fetcher_image if isinstance(weights, S3Weights) else weights.verifier_image
    container = build_verify_container(
        model_name=args.model_name,
        manifest_sha256=weights.manifest_sha256,
        image=image,
        image_pull_policy=args.image_pull_policy,
        models_dir=MODELS_DIR,
        volume="weights",
    )
    if isinstance(weights, PvcWeights):
        # The claim holds the model at its root or at sub_path: mount exactly what vLLM mounts.
        mount: dict[str, Any] = {
            "name": "weights",
            "mountPath": f"{MODELS_DIR}/{args.model_name}",
            "readOnly": True,
        }
        if weights.sub_path:
            mount["subPath"] = weights.sub_path
        container["volumeMounts"] = [mount]
    return container


def build_deployment(args: ModelServingArgs) -> Manifest:
    data = serving_defaults()
    selector = selector_labels(args)
    deadline = progress_deadline_seconds(args)
    strategy = (
        {"maxSurge": 0, "maxUnavailable": 1}
        if args.update_strategy == "replace"
        else {"maxSurge": 1, "maxUnavailable": 0}
    )
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {**restricted_pod_security_context(), "fsGroupChangePolicy": "OnRootMismatch"},
        "terminationGracePeriodSeconds": data.rollout.termination_grace_seconds,
        "affinity": _affinity(args),
        "tolerations": [{**GPU_TAINT, "operator": "Equal"}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": LABEL_ZONE,
                "whenUnsatisfiable": "DoNotSchedule" if len(args.zones) > 1 else "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector},
                "matchLabelKeys": ["pod-template-hash"],
                "nodeTaintsPolicy": "Honor",
            }
        ],
        "containers": [_vllm_container(args)],
        "volumes": _volumes(args),
    }
    init_containers = [_fetch_container(args, args.weights)] if isinstance(args.weights, S3Weights) else []
    verify = _verify_container(args)
    if verify is not None:
        init_containers.append(verify)
    if init_containers:
        pod_spec["initContainers"] = init_containers
    if args.priority_class_name:
        pod_spec["priorityClassName"] = args.priority_class_name
    if args.runtime_class_name:
        pod_spec["runtimeClassName"] = args.runtime_class_name
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": strategy},
        "progressDeadlineSeconds": deadline,
        "revisionHistoryLimit": data.rollout.revision_history_limit,
        "template": {"metadata": {"labels": object_labels(args)}, "spec": pod_spec},
    }
    digest = args.weights.manifest_sha256
    if digest:
        # On the template too: new weights roll the pods, and each pod says which weights it verified.
        spec["template"]["metadata"]["annotations"] = {WEIGHTS_DIGEST_ANNOTATION: digest}
    if args.autoscaling is None:
        # With KEDA the HPA owns the count; a replicas field here would fight it on every update.
        spec = {"replicas": args.replicas, **spec}
    metadata = _metadata(args)
    # pulumi-kubernetes waits 10 minutes for a Deployment by default; model loads take longer.
    metadata["annotations"] = {"pulumi.com/timeoutSeconds": str(deadline)}
    if digest:
        metadata["annotations"][WEIGHTS_DIGEST_ANNOTATION] = digest
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def build_service(args: ModelServingArgs) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(args),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(args),
            "ports": [{"name": "http", "port": args.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def build_pdb(args: ModelServingArgs) -> Manifest:
    # maxUnavailable 1 for any count: never blocks a drain of a single replica (minAvailable 1 would,
    # forever), and drains a multi-replica model one pod at a time.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(args),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(args)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def build_scaled_object(args: ModelServingArgs, scaling: Autoscaling) -> Manifest:
    defaults = serving_defaults().autoscaling
    query = scaling.query or (
        f'sum(vllm:num_requests_waiting{{namespace="{args.namespace}",model_name="{args.served_model_name}"}})'
    )
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(args),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": serving_name(args)},
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": defaults.polling_interval_seconds,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {"stabilizationWindowSeconds": defaults.scale_down_stabilization_seconds}
                    }
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": scaling.prometheus_address,
                        "query": query,
                        "threshold": str(scaling.queue_target),
                    },
                }
            ],
        },
    }


CANARY_SUFFIX = "canary"


def canary_args(args: ModelServingArgs) -> ModelServingArgs | None:
    """The args of the new version: the stable args with the canary's image, weights and replicas, named
    `<model_name>-canary`, without route, autoscaling, ServiceMonitor or canary of its own."""
    canary = args.canary
    if canary is None:
        return None
    data = args.model_dump(exclude_unset=True, exclude={"canary", "route", "autoscaling", "service_monitor"})
    data.update(
        model_name=f"{args.model_name}-{CANARY_SUFFIX}",
        image=canary.image,
        weights=canary.weights.model_dump(),
        replicas=canary.replicas,
        tensor_parallel_size=canary.tensor_parallel_size,
    )
    return ModelServingArgs.model_validate(data)


def build_http_route(args: ModelServingArgs, route: Route) -> Manifest:
    stable = {"kind": "Service", "name": serving_name(args), "port": args.port}
    new = canary_args(args)
    if args.canary is None or new is None:
        backends = [stable]
    else:  # Gateway API weighted backendRefs: each gets weight / sum of weights of the requests.
        backends = [
            {**stable, "weight": 100 - args.canary.weight},
            {"kind": "Service", "name": serving_name(new), "port": args.port, "weight": args.canary.weight},
        ]
    rule: dict[str, Any] = {
        # Only the API: /metrics and /health stay inside the cluster.
        "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
        "backendRefs": backends,
    }
    # Name the model and its pinned weights for the gateway's access log (the inference records).
    # `set` replaces whatever a client sent under the same names; the gateway strips them earlier too.
    headers = [{"name": MODEL_HEADER, "value": args.served_model_name}]
    if args.weights.manifest_sha256:
        headers.append({"name": WEIGHTS_HEADER, "value": args.weights.manifest_sha256})
    rule["filters"] = [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": headers}}]
    if route.request_timeout:
        rule["timeouts"] = {"request": route.request_timeout}
    if route.credential_filter:
        rule["filters"] = [
            {
                "type": "ExtensionRef",
                "extensionRef": {
                    "group": "gateway.envoyproxy.io",
                    "kind": "HTTPRouteFilter",
                    "name": route.credential_filter,
                },
            }
        ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _metadata(args),
        "spec": {
            "parentRefs": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": route.gateway_name,
                    "namespace": route.gateway_namespace,
                    "sectionName": route.section_name,
                }
            ],
            "hostnames": [route.hostname],
            "rules": [rule],
        },
    }


def build_service_monitor(args: ModelServingArgs) -> Manifest:
    data = serving_defaults()
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(args),
        "spec": {
            "selector": {"matchLabels": selector_labels(args)},
            "namespaceSelector": {"matchNames": [args.namespace]},
            "endpoints": [
                {
                    "port": "http",
                    "path": data.vllm.metrics_path,
                    "scheme": "http",
                    "interval": data.service_monitor.interval,
                }
            ],
        },
    }


def build_model_serving(args: ModelServingArgs) -> list[Manifest]:
    """Deployment, Service, PodDisruptionBudget, then ScaledObject, HTTPRoute, ServiceMonitor when enabled,
    then the canary's Deployment and Service."""
    objects = [build_deployment(args), build_service(args), build_pdb(args)]
    if args.autoscaling is not None:
        objects.append(build_scaled_object(args, args.autoscaling))
    if args.route is not None:
        objects.append(build_http_route(args, args.route))
    if args.service_monitor:
        objects.append(build_service_monitor(args))
    new = canary_args(args)
    if new is not None:  # appended last: the stable objects keep their names and their order
        objects += [build_deployment(new), build_service(new)]
    return objects
