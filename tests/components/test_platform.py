"""The platform layer: which charts a stack gets, from where, with which images, and what waits for them."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes
import pytest

from sovstack.components.builders.platform import (
    GPU_OPERATOR,
    PLACEHOLDER_DIGEST,
    PlatformArgs,
    describe_platform,
    platform_facts,
)
from sovstack.components.platform import Platform
from tests.k8s_schema import assert_all_valid
from tests.pulumi_mocks import Recorder

STORE = {
    "name": "vault-fr",
    "server": "https://vault.fr-par-dc1.sovstack.internal:8200",
    "auth_role": "sovstack-acme",
    "cidrs": ["10.50.4.10/32"],
}
GATEWAY = {"name": "public", "namespace": "gateway", "tls_secret": "public-tls"}
MIRROR = "registry.fr-par-dc1.sovstack.internal/mirror"
CHARTS = "https://charts.fr-par-dc1.sovstack.internal"


def make(**over: Any) -> PlatformArgs:
    base: dict[str, Any] = {
        "customer": "acme",
        "region": "fr-par-dc1",
        "residency_profile": "eu",
        "backend": "existing",
        "api_server_cidrs": ["10.50.0.0/24"],
        "serving_namespace": "acme-serving",
    }
    if over.get("backend") == "talos":
        base["talos_version"] = "v1.14.0"  # the GPU Operator's values follow the Talos release
    return PlatformArgs(**{**base, **over})


def everything(**over: Any) -> PlatformArgs:
    return make(
        secret_store=STORE,
        keda=True,
        gateways=[GATEWAY],
        prometheus_crds=True,
        chart_repository=CHARTS,
        image_registry=MIRROR,
        client_cidrs=["192.0.2.0/24"],
        **over,
    )


# ---------------------------------------------------------------------------------------- what is installed
@pytest.mark.parametrize(
    ("over", "releases"),
    [
        ({}, []),
        ({"secret_store": STORE}, ["external-secrets"]),
        ({"keda": True}, ["keda"]),
        ({"gateways": [GATEWAY]}, ["envoy-gateway"]),
        ({"prometheus_crds": True}, ["prometheus-operator-crds"]),
        ({"backend": "ovh"}, [GPU_OPERATOR]),
        ({"backend": "scaleway"}, []),
        ({"backend": "talos", "keda": True}, [GPU_OPERATOR, "keda"]),
    ],
)
def test_each_piece_is_installed_exactly_when_the_spec_uses_it(
    over: dict[str, Any], releases: list[str]
) -> None:
    assert [r.key for r in describe_platform(make(**over)).releases] == releases


def test_the_gpu_operator_per_backend_with_its_pinned_version_and_values() -> None:
    ovh = describe_platform(make(backend="ovh")).release(GPU_OPERATOR)
    assert ovh is not None
    assert (ovh.chart, ovh.repository, ovh.version, ovh.namespace) == (
        "gpu-operator",
        "https://helm.ngc.nvidia.com/nvidia",
        "v26.3.3",  # charts.yaml's pin: a bump is reviewed here too
        "gpu-operator",
    )
    assert ovh.values == {"driver": {"enabled": True}, "toolkit": {"enabled": True}}
    talos = describe_platform(make(backend="talos")).release(GPU_OPERATOR)
    assert talos is not None and talos.values == {
        "driver": {"enabled": False},
        "toolkit": {"enabled": False},
        "hostPaths": {"driverInstallDir": "/usr/local"},
    }
    # Talos v1.15's extension no longer carries the container toolkit: the operator installs it.
    talos15 = describe_platform(make(backend="talos", talos_version="v1.15.2")).release(GPU_OPERATOR)
    assert talos15 is not None and talos15.values == {
        "driver": {"enabled": False},
        "toolkit": {"enabled": True},
        "hostPaths": {"driverInstallDir": "/usr/local"},
    }
    # The chart mirror serves the operator too, unless the spec names the operator's own repository.
    mirrored = describe_platform(make(backend="ovh", chart_repository=CHARTS)).release(GPU_OPERATOR)
    assert mirrored is not None and mirrored.repository == CHARTS
    own = make(backend="ovh", chart_repository=CHARTS, gpu_operator={"repository": "https://nv.example.eu"})
    release = describe_platform(own).release(GPU_OPERATOR)
    assert release is not None and release.repository == "https://nv.example.eu"


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
            "v1.16.0",
            "talos.talos_version: no documented GPU path for Talos v1.16.0 in charts.yaml talosGpuPaths (known: "
            "v1.0 to v1.12 device-plugin, v1.13 to v1.14 gpu-operator, v1.15 gpu-operator); add its range with "
            "its source before using it",
        ),
        (
            None,
            "talos.talos_version: no documented GPU path for Talos  in charts.yaml talosGpuPaths (known: "
            "v1.0 to v1.12 device-plugin, v1.13 to v1.14 gpu-operator, v1.15 gpu-operator); add its range with "
            "its source before using it",
        ),
    ],
)
def test_a_talos_release_without_a_gpu_operator_path_is_refused(version: str | None, message: str) -> None:
    from sovstack.components.builders.gpu_cluster_args import ClusterArgsError

    with pytest.raises(ClusterArgsError) as refused:
        describe_platform(make(backend="talos", talos_version=version))
    assert str(refused.value) == message


def test_charts_come_from_the_mirror_and_images_from_the_image_mirror_pinned() -> None:
    description = describe_platform(everything(image_digests={"keda": "sha256:" + "a" * 64}))
    assert {r.repository for r in description.releases} == {CHARTS}
    keda = description.release("keda")
    assert keda is not None
    assert keda.images[0] == f"{MIRROR}/keda:2.20.2@sha256:{'a' * 64}"
    assert keda.values["image"]["keda"] == {
        "registry": "registry.fr-par-dc1.sovstack.internal",
        "repository": "mirror/keda",
        "tag": f"2.20.2@sha256:{'a' * 64}",
    }
    # No digest given and none upstream: an all-zero placeholder, never an unpinned tag.
    assert keda.images[1] == f"{MIRROR}/keda-metrics-apiserver:2.20.2@{PLACEHOLDER_DIGEST}"
    envoy = description.release("envoy-gateway")
    assert envoy is not None
    # Envoy Gateway pins the proxy's digest upstream; the mirror serves the same digest.
    assert envoy.values["global"]["images"]["envoyProxy"]["image"] == (
        f"{MIRROR}/envoy:distroless-v1.39.1@sha256:eb2c01c13125d1629637cb4e4cce7207009fb7cc2c8027f9742758549d15b6f4"
    )
    eso = description.release("external-secrets")
    assert eso is not None
    assert {eso.values[k]["image"]["repository"] for k in ("webhook", "certController")} | {
        eso.values["image"]["repository"]
    } == {f"{MIRROR}/external-secrets"}


def test_every_image_a_chart_pulls_is_listed_and_set_through_values() -> None:
    description = describe_platform(everything())
    for release in description.releases:
        fact = platform_facts()[release.key]
        assert len(release.images) == len(fact.images)
        assert all("@sha256:" in image for image in release.images)


def test_user_values_are_merged_last_and_unknown_charts_refused() -> None:
    args = everything(values={"keda": {"resources": {"operator": {"limits": {"memory": "1Gi"}}}}})
    keda = describe_platform(args).release("keda")
    assert keda is not None and keda.values["resources"] == {"operator": {"limits": {"memory": "1Gi"}}}
    assert keda.values["crds"] == {"install": True}
    with pytest.raises(ValueError, match="values for unknown chart"):
        make(values={"cert-manager": {}})


# ---------------------------------------------------------------------------------------- isolation
def test_every_platform_namespace_is_default_deny_both_ways() -> None:
    objects = describe_platform(everything(backend="talos")).kubernetes_objects
    namespaces = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    assert namespaces == {
        "gpu-operator",
        "external-secrets",
        "keda",
        "envoy-gateway-system",
        "sovstack-crds",
        "gateway",
    }
    for ns in namespaces:
        deny = [
            o
            for o in objects
            if o["kind"] == "NetworkPolicy"
            and o["metadata"]["namespace"] == ns
            and o["metadata"]["name"] == "default-deny"
        ]
        assert len(deny) == 1 and deny[0]["spec"] == {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
        }, ns


def test_pod_security_is_the_minimum_each_namespace_needs() -> None:
    objects = describe_platform(everything(backend="talos")).kubernetes_objects
    levels = {
        o["metadata"]["name"]: o["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        for o in objects
        if o["kind"] == "Namespace"
    }
    assert levels.pop("gpu-operator") == "privileged"  # host device access (charts.yaml says why)
    assert set(levels.values()) == {"restricted"}
    for obj in objects:
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["labels"]["pod-security.kubernetes.io/audit"] == "restricted"


def test_each_operator_gets_exactly_the_flows_it_needs() -> None:
    objects = describe_platform(everything()).kubernetes_objects
    policies = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"]
        for o in objects
        if o["kind"] == "NetworkPolicy"
    }
    # The API server calls External Secrets' webhook; the controller reads the store on its port only.
    assert policies[("external-secrets", "allow-from-kubernetes-api")]["ingress"] == [
        {"from": [{"ipBlock": {"cidr": "10.50.0.0/24"}}], "ports": [{"protocol": "TCP", "port": 10250}]}
    ]
    assert policies[("external-secrets", "allow-egress-secret-store")]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "10.50.4.10/32"}}], "ports": [{"protocol": "TCP", "port": 8200}]}
    ]
    # Envoy in the gateway namespace: clients in on HTTPS, out to the models and to its control plane.
    assert policies[("gateway", "allow-https-clients")]["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": 10443}
    ]
    egress = policies[("gateway", "allow-envoy-upstreams")]["egress"]
    assert {e["ports"][0]["port"] for e in egress} == {18000, 8000}
    assert ("gateway", "allow-kubernetes-api") not in policies
    assert ("sovstack-crds", "allow-from-kubernetes-api") not in policies


def test_custom_objects_name_the_release_that_defines_them() -> None:
    description = describe_platform(everything())
    assert description.defined_by == {
        "vault-fr": "external-secrets",
        "sovstack-envoy": "envoy-gateway",
        "gateway/public": "envoy-gateway",
    }
    store = next(o for o in description.kubernetes_objects if o["kind"] == "ClusterSecretStore")
    assert store["spec"]["provider"]["vault"]["server"] == STORE["server"]
    assert store["spec"]["provider"]["vault"]["auth"]["kubernetes"]["role"] == "sovstack-acme"
    assert description.defines("monitoring.coreos.com/v1", "ServiceMonitor") == "prometheus-operator-crds"
    assert description.defines("keda.sh/v1alpha1", "ScaledObject") == "keda"
    assert description.defines("apps/v1", "Deployment") is None


@pytest.mark.parametrize("kube_version", ["1.31", "1.35"])
def test_core_objects_are_valid_and_custom_ones_left_to_the_api_server(kube_version: str) -> None:
    custom = assert_all_valid(describe_platform(everything(backend="talos")).kubernetes_objects, kube_version)
    assert custom == {"ClusterSecretStore", "GatewayClass", "Gateway"}


# ---------------------------------------------------------------------------------------- the shell
@pulumi.runtime.test
def test_releases_wait_for_their_namespace_and_custom_objects_for_their_release(mocks: Recorder) -> Any:
    provider = pulumi_kubernetes.Provider("k8s", kubeconfig="apiVersion: v1")
    platform = Platform("acme-platform", everything(backend="talos"), provider=provider)

    def check(_: object) -> None:
        releases = mocks.of_type("kubernetes:helm.sh/v3:Release")
        assert sorted(r.name for r in releases) == [
            "acme-platform-envoy-gateway",
            "acme-platform-external-secrets",
            "acme-platform-gpu-operator",
            "acme-platform-keda",
            "acme-platform-prometheus-operator-crds",
        ]
        keda = mocks.named("acme-platform-keda").inputs
        assert (keda["chart"], keda["version"], keda["namespace"]) == ("keda", "2.20.2", "keda")
        assert keda["repositoryOpts"] == {"repo": CHARTS} and keda["createNamespace"] is False
        assert all(r.provider and "::k8s::" in r.provider for r in releases)
        # The readiness the workloads depend on is the releases themselves.
        assert platform.ready.crds["keda.sh/ScaledObject"] == [platform.releases["keda"]]
        assert platform.ready.gpu_operator == [platform.releases[GPU_OPERATOR]]
        assert platform.ready.secret_store[0] is platform.releases["external-secrets"]

    return pulumi.Output.all(
        *[r.urn for r in platform.releases.values()], *[o.urn for o in platform.objects]
    ).apply(check)


# ---------------------------------------------------------------------------------- inference records
def test_gateways_write_the_records_access_log_and_strip_the_headers_a_record_trusts() -> None:
    from sovstack.components.inference_records import CONTENT_CAPTURE_SCRIPT, envoy_access_log_format

    description = describe_platform(make(gateways=[GATEWAY], gateway_access_log=True))
    objects = {(o["kind"], o["metadata"]["name"]): o for o in description.kubernetes_objects}
    gateway = objects[("Gateway", "public")]
    assert gateway["spec"]["infrastructure"] == {
        "parametersRef": {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": "public"}
    }
    proxy = objects[("EnvoyProxy", "public")]
    assert (proxy["apiVersion"], proxy["metadata"]["namespace"]) == (
        "gateway.envoyproxy.io/v1alpha1",
        "gateway",
    )
    assert proxy["spec"] == {
        "telemetry": {
            "accessLog": {
                "settings": [
                    {
                        "format": {"type": "JSON", "json": envoy_access_log_format()},
                        "sinks": [{"type": "File", "file": {"path": "/dev/stdout"}}],
                    }
                ]
            }
        }
    }
    policy = objects[("ClientTrafficPolicy", "public")]
    assert policy["spec"] == {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}],
        "headers": {
            "earlyRequestHeaders": {
                "remove": [
                    "x-sovstack-jwt-iss",
                    "x-sovstack-jwt-sub",
                    "x-sovstack-jwt-azp",
                    "x-sovstack-model",
                    "x-sovstack-weights-sha256",
                ]
            }
        },
    }
    # Every request through the Gateway passes the content-capture filter, with the stack's policy.
    capture = objects[("EnvoyExtensionPolicy", "public-content-capture")]
    assert capture["metadata"]["namespace"] == "gateway"
    assert capture["spec"] == {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}],
        "lua": [
            {
                "type": "Inline",
                "inline": CONTENT_CAPTURE_SCRIPT.read_text(encoding="utf-8"),
                "filterContext": {"capture": "digest"},
            }
        ],
    }
    full = describe_platform(make(gateways=[GATEWAY], gateway_access_log=True, content_capture="full"))
    (lua,) = next(o for o in full.kubernetes_objects if o["kind"] == "EnvoyExtensionPolicy")["spec"]["lua"]
    assert lua["filterContext"] == {"capture": "full"}
    # The kinds come with Envoy Gateway's chart: they wait for its release.
    assert description.defined_by["gateway/public"] == "envoy-gateway"
    kinds = {c["kind"] for c in platform_facts()["envoy-gateway"].model_dump(by_alias=True)["crds"]}
    assert {"EnvoyProxy", "ClientTrafficPolicy", "EnvoyExtensionPolicy"} <= kinds


def test_without_records_a_gateway_has_no_proxy_parameters() -> None:
    description = describe_platform(make(gateways=[GATEWAY]))
    kinds = sorted({o["kind"] for o in description.kubernetes_objects})
    assert not {"EnvoyProxy", "ClientTrafficPolicy", "EnvoyExtensionPolicy"} & set(kinds)
    gateway = next(o for o in description.kubernetes_objects if o["kind"] == "Gateway")
    assert "infrastructure" not in gateway["spec"]
