from __future__ import annotations

import copy
import json
from typing import Any

import pulumi
import pulumi_kubernetes
import pytest
from pydantic import ValidationError

from sovstack.components.builders.model_serving import build_model_serving, service_url
from sovstack.components.builders.model_serving_args import ModelServingArgs, serving_defaults
from sovstack.components.kube import GPU_TAINT, image_is_pinned
from sovstack.components.model_serving import ModelServing
from tests.k8s_schema import assert_all_valid
from tests.pulumi_mocks import FAKE_KUBECONFIG, Recorder

DIGEST = "sha256:" + "b" * 64
IMAGE = f"registry.example.eu/mirror/vllm-openai:v0.14.0@{DIGEST}"
FETCHER = f"registry.example.eu/mirror/rclone:1.75.1@{DIGEST}"
PLANTED = "planted-secret-marker"
S3 = {
    "source": "s3",
    "url": "s3://gov-fr-models/mistral-7b-instruct-v0.3/",
    "endpoint": "https://s3.fr-par.scw.cloud",
    "region": "fr-par",
    "credentials_secret": f"{PLANTED}-s3",
    "fetcher_image": FETCHER,
    "volume_size": "40Gi",
}
PVC = {"source": "pvc", "claim_name": "mistral-weights", "sub_path": "mistral-7b"}
ROUTE = {"gateway_name": "public", "gateway_namespace": "gateway", "hostname": "api.gov-fr.example.eu"}
AUTOSCALING = {
    "min_replicas": 1,
    "max_replicas": 4,
    "prometheus_address": "http://prometheus.monitoring:9090",
}
SECRET_LIKE = ("KEY", "SECRET", "TOKEN", "PASSWORD")


def make(**overrides: Any) -> ModelServingArgs:
    values: dict[str, Any] = {
        "customer": "gov-fr",
        "model_name": "mistral-7b",
        "served_model_name": "mistralai/Mistral-7B-Instruct-v0.3",
        "namespace": "gov-fr",
        "region": "fr-par",
        "residency_profile": "eu-sovereign",
        "pool": "gpu-l4",
        "gpu_type": "L4",
        "image": IMAGE,
        "max_model_len": 32768,
        "weights": S3,
        "api_key_secret": {"name": f"{PLANTED}-api", "key": "api-key"},
    }
    values.update(overrides)
    return ModelServingArgs(**values)


def error_of(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as err:
        make(**overrides)
    return str(err.value.errors()[0]["msg"])


def objects_of(args: ModelServingArgs) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in build_model_serving(args)}


def pod_spec(args: ModelServingArgs) -> dict[str, Any]:
    return objects_of(args)["Deployment"]["spec"]["template"]["spec"]


def container(args: ModelServingArgs, name: str = "vllm") -> dict[str, Any]:
    spec = pod_spec(args)
    return next(c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name)


def all_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"]
    return list(spec["containers"]) + list(spec.get("initContainers", []))


# ------------------------------------------------------------------------------------------ vLLM container
def test_vllm_args_are_exact() -> None:
    assert container(make())["args"] == [
        "--model", "/models/mistral-7b",
        "--served-model-name", "mistralai/Mistral-7B-Instruct-v0.3",
        "--tensor-parallel-size", "1",
        "--max-model-len", "32768",
        "--gpu-memory-utilization", "0.9",
        "--dtype", "bfloat16",
        "--port", "8000",
        "--download-dir", "/hf-home/downloads",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("dtype", "flags"),
    [
        ("bf16", ["--dtype", "bfloat16"]),
        ("fp16", ["--dtype", "float16"]),
        ("fp8", ["--quantization", "fp8"]),
        ("int4-awq", ["--quantization", "awq"]),
        ("int4-gptq", ["--quantization", "gptq"]),
    ],
)
def test_dtype_maps_to_vllm_flags(dtype: str, flags: list[str]) -> None:
    args = container(make(dtype=dtype))["args"]
    start = args.index("--gpu-memory-utilization") + 2
    assert args[start : start + 2] == flags
    assert ("--dtype" in args) == dtype.startswith(("bf", "fp16"))


def test_env_is_offline_private_and_key_from_secret() -> None:
    assert container(make())["env"] == [
        {"name": "HOME", "value": "/home/vllm"},
        {"name": "USER", "value": "vllm"},
        {"name": "HF_HOME", "value": "/hf-home"},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "TRANSFORMERS_OFFLINE", "value": "1"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {"name": "XDG_CACHE_HOME", "value": "/cache"},
        {"name": "VLLM_CACHE_ROOT", "value": "/cache/vllm"},
        {"name": "TORCHINDUCTOR_CACHE_DIR", "value": "/cache/torchinductor"},
        {"name": "TRITON_CACHE_DIR", "value": "/cache/triton"},
        {"name": "NUMBA_CACHE_DIR", "value": "/cache/numba"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "VLLM_DO_NOT_TRACK", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
        {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": f"{PLANTED}-api", "key": "api-key"}}},
    ]


def test_every_written_path_is_a_writable_emptydir() -> None:
    vllm = container(make())
    mounts = {m["mountPath"]: m for m in vllm["volumeMounts"]}
    writable = [path for path, m in mounts.items() if not m.get("readOnly")]
    paths = [e["value"] for e in vllm["env"] if e.get("value", "").startswith("/")]
    paths.append(vllm["args"][vllm["args"].index("--download-dir") + 1])
    for path in paths:
        assert any(path == w or path.startswith(w + "/") for w in writable), path
    assert mounts["/models"]["readOnly"] is True


@pytest.mark.parametrize("planted_in", ["s3", "pvc"])
def test_no_secret_value_anywhere(planted_in: str) -> None:
    objects = build_model_serving(make(weights=S3 if planted_in == "s3" else PVC))
    deployment = objects[0]
    refs = []
    for c in all_containers(deployment):
        for env in c.get("env", []):
            if any(word in env["name"] for word in SECRET_LIKE):
                assert "value" not in env, env
                refs.append(env["valueFrom"]["secretKeyRef"]["name"])
    expected = [f"{PLANTED}-api"] + ([f"{PLANTED}-s3"] * 2 if planted_in == "s3" else [])
    assert sorted(refs) == sorted(expected)
    # The planted name appears only as a Secret reference, never in args, values or other objects.
    text = json.dumps(objects)
    assert text.count(PLANTED) == len(expected)
    for c in all_containers(deployment):
        assert PLANTED not in json.dumps(c.get("args", []))


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_gpu_limit_and_default_resources_scale_with_tensor_parallelism(tp: int) -> None:
    vllm = container(make(tensor_parallel_size=tp))
    assert vllm["args"][vllm["args"].index("--tensor-parallel-size") + 1] == str(tp)
    assert vllm["resources"] == {
        "requests": {
            "cpu": str(4 * tp),
            "memory": f"{32 * tp}Gi",
            "nvidia.com/gpu": str(tp),
            "ephemeral-storage": "40Gi",
        },
        "limits": {"cpu": str(8 * tp), "memory": f"{32 * tp}Gi", "nvidia.com/gpu": str(tp)},
    }


def test_explicit_resources_override_defaults_and_are_checked() -> None:
    vllm = container(make(resources={"cpu_request": "6", "memory_limit": "40Gi"}))
    assert vllm["resources"]["requests"]["cpu"] == "6"
    assert vllm["resources"]["limits"]["memory"] == "40Gi"
    assert (
        error_of(resources={"cpu_request": "10"})
        == "Value error, resources: cpu_request 10 is above cpu_limit 8"
    )
    assert error_of(resources={"memory_limit": "16Gi"}) == (
        "Value error, resources: memory_request 32Gi is above memory_limit 16Gi"
    )
    assert error_of(shm_size="32Gi") == "Value error, shm_size: 32Gi must stay below the memory limit 32Gi"
    assert error_of(resources={"cpu_limit": "lots"}) == (
        "Value error, cpu_limit: 'lots' is not a Kubernetes quantity such as '500m', '4' or '200Gi'"
    )


def test_probes_use_health_with_a_long_startup_window() -> None:
    vllm = container(make())
    health = {"path": "/health", "port": "http", "scheme": "HTTP"}
    assert vllm["startupProbe"] == {
        "httpGet": health, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 180, "successThreshold": 1
    }  # fmt: skip
    assert vllm["readinessProbe"] == {
        "httpGet": health, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3, "successThreshold": 1
    }  # fmt: skip
    assert vllm["livenessProbe"] == {
        "httpGet": health, "periodSeconds": 15, "timeoutSeconds": 10, "failureThreshold": 3, "successThreshold": 1
    }  # fmt: skip
    assert container(make(startup_timeout_minutes=45))["startupProbe"]["failureThreshold"] == 270


def test_security_contexts_are_restricted() -> None:
    args = make()
    deployment = objects_of(args)["Deployment"]
    spec = pod_spec(args)
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
        "fsGroupChangePolicy": "OnRootMismatch",
    }
    assert not {"hostNetwork", "hostPID", "hostIPC"} & spec.keys()
    for c in all_containers(deployment):
        ctx = c["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] >= 10000
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["privileged"] is False
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert image_is_pinned(c["image"]) and ":" in c["image"].split("@")[0].rsplit("/", 1)[-1]
        assert c["imagePullPolicy"] == "IfNotPresent"
        assert set(c["resources"]["requests"]) >= {"cpu", "memory"}
        assert set(c["resources"]["limits"]) >= {"cpu", "memory"}
    assert container(make(image_pull_policy="Always"), "fetch-weights")["imagePullPolicy"] == "Always"


def test_scheduling_pins_region_gpu_and_pool_and_tolerates_the_gpu_taint() -> None:
    spec = pod_spec(make())
    assert spec["affinity"] == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "sovstack.io/region", "operator": "In", "values": ["fr-par"]},
                            {"key": "sovstack.io/gpu", "operator": "In", "values": ["L4"]},
                            {"key": "sovstack.io/pool", "operator": "In", "values": ["gpu-l4"]},
                        ]
                    }
                ]
            }
        }
    }
    assert spec["tolerations"] == [{**GPU_TAINT, "operator": "Equal"}]
    assert "priorityClassName" not in spec and "runtimeClassName" not in spec
    spec = pod_spec(make(priority_class_name="gpu-serving", runtime_class_name="nvidia"))
    assert (spec["priorityClassName"], spec["runtimeClassName"]) == ("gpu-serving", "nvidia")


@pytest.mark.parametrize(
    ("zones", "when", "affinity"),
    [
        ([], "ScheduleAnyway", False),
        (["fr-par-1"], "ScheduleAnyway", True),
        (["fr-par-1", "fr-par-2"], "DoNotSchedule", True),
    ],
)
def test_zone_spread(zones: list[str], when: str, affinity: bool) -> None:
    spec = pod_spec(make(zones=zones))
    assert spec["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "sovstack.io/zone",
            "whenUnsatisfiable": when,
            "labelSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "gov-fr-mistral-7b",
                    "app.kubernetes.io/component": "model-serving",
                }
            },
            "matchLabelKeys": ["pod-template-hash"],
            "nodeTaintsPolicy": "Honor",
        }
    ]
    expressions = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    zone_terms = [e for e in expressions[0]["matchExpressions"] if e["key"] == "sovstack.io/zone"]
    assert zone_terms == (
        [{"key": "sovstack.io/zone", "operator": "In", "values": zones}] if affinity else []
    )
    assert error_of(zones=["a", "a"]) == "Value error, zones: ['a', 'a'] lists a zone twice"


def test_volumes_shm_and_scratch() -> None:
    spec = pod_spec(make(shm_size="4Gi"))
    assert spec["volumes"] == [
        {"name": "weights", "emptyDir": {"sizeLimit": "40Gi"}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "home", "emptyDir": {}},
        {"name": "cache", "emptyDir": {}},
        {"name": "hf-home", "emptyDir": {}},
    ]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in spec["containers"][0]["volumeMounts"]
    assert pod_spec(make())["volumes"][1]["emptyDir"]["sizeLimit"] == "2Gi"


# --------------------------------------------------------------------------------------------- weights
def test_s3_weights_are_copied_by_a_pinned_init_container() -> None:
    fetch = container(make(), "fetch-weights")
    assert fetch["image"] == FETCHER
    assert fetch["command"] == ["rclone"]
    assert fetch["args"] == [
        "copy",
        ":s3:gov-fr-models/mistral-7b-instruct-v0.3",
        "/models/mistral-7b",
        "--s3-provider=Other",
        "--s3-endpoint=https://s3.fr-par.scw.cloud",
        "--s3-region=fr-par",
        "--s3-env-auth=false",
        *serving_defaults().fetcher.tuning_args,
    ]
    assert fetch["env"] == [
        {"name": "HOME", "value": "/tmp"},
        {
            "name": "RCLONE_S3_ACCESS_KEY_ID",
            "valueFrom": {"secretKeyRef": {"name": f"{PLANTED}-s3", "key": "AWS_ACCESS_KEY_ID"}},
        },
        {
            "name": "RCLONE_S3_SECRET_ACCESS_KEY",
            "valueFrom": {"secretKeyRef": {"name": f"{PLANTED}-s3", "key": "AWS_SECRET_ACCESS_KEY"}},
        },
    ]
    assert fetch["volumeMounts"] == [
        {"name": "weights", "mountPath": "/models"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    assert fetch["resources"] == {
        "requests": {"cpu": "1", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }
    vllm = container(make())
    assert {"name": "weights", "mountPath": "/models", "readOnly": True} in vllm["volumeMounts"]
    assert objects_of(make())["Deployment"]["spec"]["progressDeadlineSeconds"] == (30 + 10 + 60) * 60


def test_pvc_weights_are_mounted_read_only_without_init_container() -> None:
    args = make(weights=PVC)
    spec = pod_spec(args)
    assert "initContainers" not in spec
    assert spec["volumes"][0] == {
        "name": "weights",
        "persistentVolumeClaim": {"claimName": "mistral-weights", "readOnly": True},
    }
    vllm = spec["containers"][0]
    assert vllm["volumeMounts"][0] == {
        "name": "weights",
        "mountPath": "/models/mistral-7b",
        "readOnly": True,
        "subPath": "mistral-7b",
    }
    assert "ephemeral-storage" not in vllm["resources"]["requests"]
    root = container(make(weights={"source": "pvc", "claim_name": "w"}))["volumeMounts"][0]
    assert root == {"name": "weights", "mountPath": "/models/mistral-7b", "readOnly": True}
    deployment = objects_of(args)["Deployment"]
    assert deployment["spec"]["progressDeadlineSeconds"] == (30 + 10) * 60
    assert deployment["metadata"]["annotations"] == {"pulumi.com/timeoutSeconds": "2400"}


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({**S3, "endpoint": "http://s3.fr-par.scw.cloud"}, "endpoint: 'http://s3.fr-par.scw.cloud' must be a https:// URL with a host and no credentials"),
        ({**S3, "endpoint": "https://user:pw@s3.example.eu"}, "endpoint: 'https://user:pw@s3.example.eu' must be a https:// URL with a host and no credentials"),
        ({**S3, "url": "s3://bucket/../other"}, "url: 's3://bucket/../other' is not an s3://bucket/prefix URL"),
        ({**S3, "url": "https://bucket/x"}, "url: 'https://bucket/x' is not an s3://bucket/prefix URL"),
        ({**S3, "fetcher_image": "rclone/rclone:1.75.1"}, "fetcher_image: 'rclone/rclone:1.75.1' is not pinned by digest; use repository[:tag]@sha256:<64 hex>"),
        ({**S3, "volume_size": "200GB"}, "volume_size: '200GB' is not a Kubernetes quantity such as '500m', '4' or '200Gi'"),
        ({**PVC, "sub_path": "../etc"}, "sub_path: '../etc' is not a relative path without '..'"),
        ({**PVC, "sub_path": "/abs"}, "sub_path: '/abs' is not a relative path without '..'"),
    ],
)  # fmt: skip
def test_bad_weights_are_refused(weights: dict[str, Any], message: str) -> None:
    assert error_of(weights=weights) == f"Value error, {message}"


def test_s3_without_endpoint_is_refused() -> None:
    with pytest.raises(ValidationError) as err:
        make(weights={k: v for k, v in S3.items() if k != "endpoint"})
    assert err.value.errors()[0]["loc"] == ("weights", "s3", "endpoint")
    assert err.value.errors()[0]["type"] == "missing"


# ------------------------------------------------------------------------------------------ validation
def test_unpinned_image_is_refused_with_exact_text() -> None:
    assert error_of(image="vllm/vllm-openai:v0.14.0") == (
        "Value error, image: 'vllm/vllm-openai:v0.14.0' is not pinned by digest; "
        "use repository[:tag]@sha256:<64 hex>"
    )
    assert make(image=f"vllm/vllm-openai@{DIGEST}").image == f"vllm/vllm-openai@{DIGEST}"


@pytest.mark.parametrize(
    "flag",
    ["--api-key=abc", "--api_key=abc", "--model=org/model", "-tp", "--tensor_parallel_size=2", "--port=9000",
     "--tokenizer=org/tok", "--revision=main", "--hf-token=x", "--config=/x.yaml", "--download-dir=/x",
     "--data-parallel-size-local=2", "--ssl-keyfile=/k"],
)  # fmt: skip
def test_guarded_extra_args_are_refused(flag: str) -> None:
    name = flag.split("=")[0]
    name = "--" + name[2:].replace("_", "-") if name.startswith("--") else name
    assert error_of(extra_args=[flag]) == (
        f"Value error, extra_args: {name} is set by ModelServing or would bypass its guards"
    )


def test_extra_args_must_be_flags_and_are_appended() -> None:
    assert error_of(extra_args=["org/model"]) == (
        "Value error, extra_args: 'org/model' is not a flag; write '--flag' or '--flag=value'"
    )
    args = container(make(extra_args=["--enable-prefix-caching", "--max-num-seqs=64"]))["args"]
    assert args[-2:] == ["--enable-prefix-caching", "--max-num-seqs=64"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"namespace": "default"}, "namespace: 'default' is shared; deploy into the customer's own namespace"),
        ({"namespace": "kube-system"}, "namespace: 'kube-system' is shared; deploy into the customer's own namespace"),
        ({"customer": "Gov_FR"}, "customer: 'Gov_FR' is not a DNS-1123 label (lowercase letters, digits, '-')"),
        ({"gpu_type": "H100 SXM"}, "gpu_type: 'H100 SXM' is not a valid Kubernetes label value"),
        ({"served_model_name": 'evil"}'}, "served_model_name: 'evil\"}' is not [A-Za-z0-9][A-Za-z0-9._/:-]*"),
        ({"labels": {"sovstack.io/customer": "x"}}, "labels: 'sovstack.io/customer' is reserved for labels sovstack sets"),
        ({"labels": {"team": "a b"}}, "labels: 'a b' (for 'team') is not a valid Kubernetes label value"),
        ({"api_key_secret": {"name": "Key", "key": "k"}}, "name: 'Key' is not a DNS-1123 subdomain"),
        ({"autoscaling": AUTOSCALING, "replicas": 2}, "replicas conflicts with autoscaling: set autoscaling.min_replicas instead"),
        ({"autoscaling": {**AUTOSCALING, "max_replicas": 0}}, None),
        ({"autoscaling": {**AUTOSCALING, "min_replicas": 3, "max_replicas": 2}}, "max_replicas (2) is below min_replicas (3)"),
        ({"route": {**ROUTE, "request_timeout": "10 minutes"}}, "request_timeout: '10 minutes' is not a Gateway API duration"),
    ],
)  # fmt: skip
def test_invalid_args_are_refused(overrides: dict[str, Any], message: str | None) -> None:
    with pytest.raises(ValidationError) as err:
        make(**overrides)
    if message is not None:
        assert err.value.errors()[0]["msg"] == f"Value error, {message}"


def test_autoscaling_cannot_scale_to_zero() -> None:
    with pytest.raises(ValidationError) as err:
        make(autoscaling={**AUTOSCALING, "min_replicas": 0})
    assert err.value.errors()[0]["loc"] == ("autoscaling", "min_replicas")


# ------------------------------------------------------------------------------------ names and objects
def test_names_are_stable_and_independent_of_other_models() -> None:
    first, second = build_model_serving(make()), build_model_serving(make())
    assert first == second and json.dumps(first) == json.dumps(second)
    assert {o["metadata"]["name"] for o in first} == {"gov-fr-mistral-7b"}
    assert {o["metadata"]["namespace"] for o in first} == {"gov-fr"}
    changed = build_model_serving(
        make(replicas=3, image=f"vllm/vllm-openai:v0.11.0@{DIGEST}", tensor_parallel_size=2)
    )
    assert [o["metadata"]["name"] for o in changed] == [o["metadata"]["name"] for o in first]
    other = build_model_serving(make(model_name="mistral-small"))
    assert {o["metadata"]["name"] for o in other} == {"gov-fr-mistral-small"}


def test_selector_is_a_stable_subset_of_the_labels() -> None:
    deployment = objects_of(make(labels={"team": "ml"}))["Deployment"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector == {
        "app.kubernetes.io/name": "gov-fr-mistral-7b",
        "app.kubernetes.io/component": "model-serving",
    }
    assert selector.items() <= labels.items()
    assert labels["app.kubernetes.io/version"] == "v0.14.0"
    assert labels["sovstack.io/pool"] == "gpu-l4"
    assert labels["sovstack.io/residency"] == "eu-sovereign"
    assert labels["team"] == "ml"
    v11 = objects_of(make(image=f"vllm/vllm-openai:v0.11.0@{DIGEST}"))["Deployment"]
    assert v11["spec"]["selector"] == deployment["spec"]["selector"]
    for obj in build_model_serving(make(labels={"team": "ml"}, route=ROUTE, service_monitor=True)):
        assert obj["metadata"]["labels"]["team"] == "ml"


def test_default_objects_are_deployment_service_and_pdb() -> None:
    objects = build_model_serving(make(replicas=2))
    assert [o["kind"] for o in objects] == ["Deployment", "Service", "PodDisruptionBudget"]
    deployment, service, pdb = objects
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }
    surge = objects_of(make(update_strategy="surge"))["Deployment"]["spec"]["strategy"]["rollingUpdate"]
    assert surge == {"maxSurge": 1, "maxUnavailable": 0}
    assert service["spec"] == {
        "type": "ClusterIP",
        "selector": deployment["spec"]["selector"]["matchLabels"],
        "ports": [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}],
    }
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }
    assert service_url(make()) == "http://gov-fr-mistral-7b.gov-fr.svc.cluster.local:8000/v1"


def test_optional_objects_appear_only_when_enabled() -> None:
    full = make(autoscaling=AUTOSCALING, route=ROUTE, service_monitor=True)
    assert [o["kind"] for o in build_model_serving(full)] == [
        "Deployment", "Service", "PodDisruptionBudget", "ScaledObject", "HTTPRoute", "ServiceMonitor"
    ]  # fmt: skip
    assert [o["kind"] for o in build_model_serving(make(route=ROUTE))][3:] == ["HTTPRoute"]
    assert [o["kind"] for o in build_model_serving(make(service_monitor=True))][3:] == ["ServiceMonitor"]


def test_scaled_object_targets_queue_depth_and_owns_the_replica_count() -> None:
    objects = objects_of(make(autoscaling=AUTOSCALING))
    assert "replicas" not in objects["Deployment"]["spec"]
    scaled = objects["ScaledObject"]
    assert (scaled["apiVersion"], scaled["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    assert scaled["metadata"]["name"] == "gov-fr-mistral-7b"
    assert scaled["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gov-fr-mistral-7b"},
        "minReplicaCount": 1,
        "maxReplicaCount": 4,
        "pollingInterval": 15,
        "advanced": {
            "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}}
        },
        "triggers": [
            {
                "type": "prometheus",
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": "http://prometheus.monitoring:9090",
                    "query": 'sum(vllm:num_requests_waiting{namespace="gov-fr",'
                    'model_name="mistralai/Mistral-7B-Instruct-v0.3"})',
                    "threshold": "5",
                },
            }
        ],
    }
    custom = objects_of(make(autoscaling={**AUTOSCALING, "query": "sum(x)", "queue_target": 2}))[
        "ScaledObject"
    ]
    assert custom["spec"]["triggers"][0]["metadata"]["query"] == "sum(x)"
    assert custom["spec"]["triggers"][0]["metadata"]["threshold"] == "2"


def test_http_route_attaches_to_the_https_listener_and_exposes_only_v1() -> None:
    route = objects_of(make(route={**ROUTE, "request_timeout": "600s"}))["HTTPRoute"]
    assert (route["apiVersion"], route["kind"]) == ("gateway.networking.k8s.io/v1", "HTTPRoute")
    assert route["spec"] == {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": "public",
                "namespace": "gateway",
                "sectionName": "https",
            }
        ],
        "hostnames": ["api.gov-fr.example.eu"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                "backendRefs": [{"kind": "Service", "name": "gov-fr-mistral-7b", "port": 8000}],
                # Names the model for the inference records; `set` replaces a client's own value.
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {
                            "set": [
                                {"name": "x-sovstack-model", "value": "mistralai/Mistral-7B-Instruct-v0.3"}
                            ]
                        },
                    }
                ],
                "timeouts": {"request": "600s"},
            }
        ],
    }
    plain = objects_of(make(route=ROUTE))["HTTPRoute"]
    assert "timeouts" not in plain["spec"]["rules"][0]


def test_service_monitor_scrapes_metrics_on_the_http_port() -> None:
    monitor = objects_of(make(service_monitor=True))["ServiceMonitor"]
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    assert monitor["spec"] == {
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "gov-fr-mistral-7b",
                "app.kubernetes.io/component": "model-serving",
            }
        },
        "namespaceSelector": {"matchNames": ["gov-fr"]},
        "endpoints": [{"port": "http", "path": "/metrics", "scheme": "http", "interval": "30s"}],
    }


@pytest.mark.parametrize("version", ["1.31", "1.34"])
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"weights": PVC, "replicas": 0},
        {"tensor_parallel_size": 8, "zones": ["a", "b", "c"], "autoscaling": AUTOSCALING, "route": ROUTE,
         "service_monitor": True, "priority_class_name": "high", "runtime_class_name": "nvidia", "dtype": "fp8",
         "update_strategy": "surge", "labels": {"example.eu/team": "ml"}},
    ],
)  # fmt: skip
def test_every_object_validates_against_the_schema(overrides: dict[str, Any], version: str) -> None:
    args = make(**overrides)
    custom = assert_all_valid(build_model_serving(args), version)
    expected = {"ScaledObject"} if args.autoscaling else set()
    expected |= {"HTTPRoute"} if args.route else set()
    expected |= {"ServiceMonitor"} if args.service_monitor else set()
    assert custom == expected


def test_builder_does_not_mutate_args_and_defaults_are_sourced() -> None:
    args = make(zones=["a", "b"])
    before = copy.deepcopy(args.model_dump())
    build_model_serving(args)
    assert args.model_dump() == before
    defaults = serving_defaults()
    assert image_is_pinned(defaults.vllm.image) and image_is_pinned(defaults.fetcher.image)
    for section in defaults.model_dump().values():
        assert section["source"]
    plain = ModelServingArgs(**{k: v for k, v in make().model_dump().items() if k != "image"})
    assert plain.image == defaults.vllm.image


# ------------------------------------------------------------------------------------------ Pulumi shell
@pulumi.runtime.test
def test_component_registers_children_with_its_provider(mocks: Recorder) -> pulumi.Output[None]:
    provider = pulumi_kubernetes.Provider("k8s", kubeconfig=FAKE_KUBECONFIG)
    component = ModelServing(
        "gov-fr-mistral",
        make(autoscaling=AUTOSCALING, route=ROUTE, service_monitor=True),
        provider=provider,
    )

    def check(values: list[Any]) -> None:
        urns, url, served = values[:-2], values[-2], values[-1]
        kinds = [
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "ScaledObject",
            "HTTPRoute",
            "ServiceMonitor",
        ]
        for urn, kind in zip(urns, kinds, strict=True):
            assert "::sovstack:serving:ModelServing$kubernetes:" in urn and urn.endswith(
                f":{kind}::gov-fr-mistral/gov-fr/gov-fr-mistral-7b"
            )
        children = [r for r in mocks.resources if r.typ.startswith("kubernetes:") and r.custom]
        # The mock engine records registrations as they complete, not in program order.
        assert sorted(r.typ for r in children) == [
            "kubernetes:apps/v1:Deployment",
            "kubernetes:core/v1:Service",
            "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
            "kubernetes:keda.sh/v1alpha1:ScaledObject",
            "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
            "kubernetes:policy/v1:PodDisruptionBudget",
        ]
        for child in children:
            assert child.provider is not None and "pulumi:providers:kubernetes::k8s::" in child.provider
        deployment = mocks.of_type("kubernetes:apps/v1:Deployment")[0]
        assert (
            deployment.inputs["spec"]["template"]["spec"]["containers"][0]["args"][1] == "/models/mistral-7b"
        )
        assert "replicas" not in deployment.inputs["spec"]
        assert url == "http://gov-fr-mistral-7b.gov-fr.svc.cluster.local:8000/v1"
        assert served == "mistralai/Mistral-7B-Instruct-v0.3"
        assert component.deployment is component.objects[0] and component.service is component.objects[1]

    return pulumi.Output.all(
        *[r.urn for r in component.objects], component.service_url, component.served_model_name
    ).apply(check)


@pulumi.runtime.test
def test_component_without_options_registers_three_objects(mocks: Recorder) -> pulumi.Output[None]:
    component = ModelServing("m", make(weights=PVC, replicas=2), provider=None)

    def check(_: Any) -> None:
        children = [r for r in mocks.resources if r.typ.startswith("kubernetes:")]
        assert sorted(r.typ.rsplit(":", 1)[-1] for r in children) == [
            "Deployment",
            "PodDisruptionBudget",
            "Service",
        ]
        assert mocks.of_type("kubernetes:apps/v1:Deployment")[0].inputs["spec"]["replicas"] == 2.0
        components = [r for r in mocks.resources if r.typ == "sovstack:serving:ModelServing"]
        assert [c.name for c in components] == ["m"]

    return pulumi.Output.all(*[r.urn for r in component.objects]).apply(check)


@pulumi.runtime.test
def test_invalid_args_register_nothing(mocks: Recorder) -> None:
    broken = make().model_copy(update={"extra_args": ["--api-key=literal"]})  # model_copy skips validation
    with pytest.raises(ValidationError, match="extra_args: --api-key is set by ModelServing"):
        ModelServing("m", broken, provider=None)
    assert mocks.resources == []


def test_shell_revalidation_keeps_unset_fields_unset() -> None:
    args = make(autoscaling=AUTOSCALING)
    assert ModelServingArgs.model_validate(args.model_dump(exclude_unset=True)) == args


# --- pinned weights -----------------------------------------------------------------------------------
PIN = "sha256:" + "c" * 64


def test_pinned_s3_weights_are_verified_after_the_fetch_before_vllm() -> None:
    args = make(weights={**S3, "manifest_sha256": "c" * 64})
    spec = pod_spec(args)
    assert [c["name"] for c in spec["initContainers"]] == ["fetch-weights", "verify-weights"]
    verify = spec["initContainers"][1]
    assert verify["image"] == FETCHER  # the fetcher's pinned image: no new image to trust
    assert verify["command"][-2:] == ["/models/mistral-7b", "c" * 64]
    assert verify["volumeMounts"] == [{"name": "weights", "mountPath": "/models", "readOnly": True}]
    assert verify["securityContext"]["readOnlyRootFilesystem"] is True
    deployment = objects_of(args)["Deployment"]
    assert deployment["metadata"]["annotations"]["sovstack.io/weights-sha256"] == PIN
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {"sovstack.io/weights-sha256": PIN}


def test_verification_adds_its_allowance_to_the_progress_deadline() -> None:
    rollout = serving_defaults().rollout
    plain = objects_of(make())["Deployment"]["spec"]["progressDeadlineSeconds"]
    pinned = objects_of(make(weights={**S3, "manifest_sha256": PIN}))["Deployment"]
    assert pinned["spec"]["progressDeadlineSeconds"] == plain + rollout.verify_allowance_minutes * 60
    assert pinned["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == str(
        pinned["spec"]["progressDeadlineSeconds"]
    )


def test_pinned_pvc_weights_are_verified_where_vllm_reads_them() -> None:
    args = make(weights={**PVC, "manifest_sha256": PIN, "verifier_image": FETCHER})
    spec = pod_spec(args)
    (verify,) = spec["initContainers"]
    assert verify["name"] == "verify-weights"
    assert verify["volumeMounts"] == [
        {"name": "weights", "mountPath": "/models/mistral-7b", "readOnly": True, "subPath": "mistral-7b"}
    ]
    vllm_mount = next(m for m in container(args)["volumeMounts"] if m["name"] == "weights")
    assert (vllm_mount["mountPath"], vllm_mount["subPath"]) == ("/models/mistral-7b", "mistral-7b")


def test_unpinned_weights_get_no_verification_and_no_annotation() -> None:
    deployment = objects_of(make())["Deployment"]
    assert [c["name"] for c in deployment["spec"]["template"]["spec"]["initContainers"]] == ["fetch-weights"]
    assert "sovstack.io/weights-sha256" not in deployment["metadata"]["annotations"]
    assert "annotations" not in deployment["spec"]["template"]["metadata"]
    assert "initContainers" not in pod_spec(make(weights=PVC))


@pytest.mark.parametrize("value", ["c" * 63, "C" * 64, "sha512:" + "c" * 64, ""])
def test_a_malformed_manifest_sha256_is_refused(value: str) -> None:
    assert error_of(weights={**S3, "manifest_sha256": value}) == (
        f"Value error, manifest_sha256: {value!r} is not a sha256 (64 lowercase hex digits, optionally sha256:)"
    )


def test_the_route_names_the_model_and_its_weights_for_the_records() -> None:
    route = objects_of(make(route=ROUTE, weights={**S3, "manifest_sha256": PIN}))["HTTPRoute"]
    assert route["spec"]["rules"][0]["filters"] == [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {
                "set": [
                    {"name": "x-sovstack-model", "value": "mistralai/Mistral-7B-Instruct-v0.3"},
                    {"name": "x-sovstack-weights-sha256", "value": PIN},
                ]
            },
        }
    ]


def test_pinned_manifests_validate_strictly() -> None:
    objects = build_model_serving(make(route=ROUTE, weights={**S3, "manifest_sha256": PIN}))
    assert assert_all_valid(objects, "1.31") == {"HTTPRoute"}


# ------------------------------------------------------------------------------------------- canary
NEW_IMAGE = f"registry.example.eu/mirror/vllm-openai:v0.15.0@sha256:{'c' * 64}"
CANARY = {"image": NEW_IMAGE, "weights": PVC, "weight": 10}


def test_a_canary_adds_one_deployment_and_service_after_the_stable_objects() -> None:
    stable = build_model_serving(make(route=ROUTE))
    rolling = build_model_serving(make(route=ROUTE, canary=CANARY))
    names = [(o["kind"], o["metadata"]["name"]) for o in rolling]
    assert names == [
        *[(o["kind"], o["metadata"]["name"]) for o in stable],
        ("Deployment", "gov-fr-mistral-7b-canary"),
        ("Service", "gov-fr-mistral-7b-canary"),
    ]
    # Everything the stable version had is unchanged but the route's backends.
    assert [o for o in rolling[: len(stable)] if o["kind"] != "HTTPRoute"] == [
        o for o in stable if o["kind"] != "HTTPRoute"
    ]
    assert_all_valid(rolling)


def test_the_route_splits_by_weight_and_the_canary_runs_the_new_version() -> None:
    objects = build_model_serving(make(route=ROUTE, canary=CANARY))
    route = next(o for o in objects if o["kind"] == "HTTPRoute")
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"kind": "Service", "name": "gov-fr-mistral-7b", "port": 8000, "weight": 90},
        {"kind": "Service", "name": "gov-fr-mistral-7b-canary", "port": 8000, "weight": 10},
    ]
    canary = objects[-2]
    assert canary["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "gov-fr-mistral-7b-canary",
        "app.kubernetes.io/component": "model-serving",
    }
    pod = canary["spec"]["template"]["spec"]
    vllm = next(c for c in pod["containers"] if c["name"] == "vllm")
    assert vllm["image"] == NEW_IMAGE
    # Clients keep asking for the same model name, whichever version answers.
    assert vllm["args"][vllm["args"].index("--served-model-name") + 1] == "mistralai/Mistral-7B-Instruct-v0.3"
    assert [
        v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    ] == ["mistral-weights"]
    # The stable Service never selects the canary's pods.
    stable_service = next(o for o in objects if o["kind"] == "Service")
    assert stable_service["spec"]["selector"]["app.kubernetes.io/name"] == "gov-fr-mistral-7b"


def test_a_canary_needs_a_route() -> None:
    assert "canary: needs route" in error_of(canary=CANARY)


@pytest.mark.parametrize("weight", [-1, 101])
def test_a_canary_weight_is_a_percentage(weight: int) -> None:
    with pytest.raises(ValidationError, match=r"canary\.weight"):
        make(route=ROUTE, canary={**CANARY, "weight": weight})


@pulumi.runtime.test
def test_component_with_a_canary_keeps_the_stable_deployment_as_its_own(
    mocks: Recorder,
) -> pulumi.Output[None]:
    # S3 weights on the canary: their `source` default must survive the shell's re-validation.
    component = ModelServing("m", make(route=ROUTE, canary={**CANARY, "weights": S3}), provider=None)

    def check(names: list[str]) -> None:
        assert names[-2:] == ["m/gov-fr/gov-fr-mistral-7b-canary", "m/gov-fr/gov-fr-mistral-7b-canary"]
        assert component.deployment is component.objects[0] and component.service is component.objects[1]

    return pulumi.Output.all(*[r.urn for r in component.objects]).apply(
        lambda urns: check([u.rsplit("::", 1)[-1] for u in urns])
    )
