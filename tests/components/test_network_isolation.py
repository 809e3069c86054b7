from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from sovstack.components.builders.network_isolation import NetworkIsolationArgs, build_network_isolation
from sovstack.components.kube import METADATA_CIDR
from sovstack.components.kubernetes_objects import logical_name
from sovstack.components.network_isolation import NetworkIsolation
from tests.k8s_schema import assert_all_valid
from tests.pulumi_mocks import Recorder

SERVING, AUDIT, LOGS = "acme-serving", "acme-audit", "acme-audit-logs"


def make_args(**overrides: Any) -> NetworkIsolationArgs:
    base: dict[str, Any] = {
        "customer": "acme",
        "region": "scw-fr-par",
        "residency_profile": "eu-strict",
        "namespaces": [SERVING, AUDIT, LOGS],
        "serving_namespace": SERVING,
        "ingress_from_namespaces": ["gateway"],
        "ingress_cidrs": ["10.20.0.0/16"],
        "egress": [
            {"name": "s3", "cidrs": ["51.159.0.0/16"], "ports": [443], "namespaces": [AUDIT, LOGS]},
            {"name": "registry", "cidrs": ["128.0.0.0/1"], "ports": [443, 5000], "namespaces": [SERVING]},
        ],
        "allow_kubernetes_api": {"cidrs": ["10.0.0.10/32"], "namespaces": [AUDIT, LOGS]},
        "gpu_quota": 4,
        "privileged_namespaces": [LOGS],
    }
    base.update(overrides)
    return NetworkIsolationArgs(**base)


def find(objs: list[dict[str, Any]], kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    matches = [
        o
        for o in objs
        if o["kind"] == kind and o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
    ]
    assert len(matches) == 1, (kind, namespace, name)
    return matches[0]


def test_every_manifest_validates_strictly() -> None:
    egress = [
        {
            "name": "s3",
            "hosts": ["s3.fr-par.scw.cloud"],
            "cidrs": ["51.159.0.0/16"],
            "ports": [443],
            "namespaces": [AUDIT],
        }
    ]
    objects = build_network_isolation(make_args(egress=egress, cni="cilium", cilium_fqdn_policies=True))
    assert assert_all_valid(objects, "1.31", "1.34") == {"CiliumNetworkPolicy"}


def test_objects_and_order_are_stable() -> None:
    objs = build_network_isolation(make_args())
    assert [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objs] == [
        ("Namespace", None, SERVING),
        ("NetworkPolicy", SERVING, "default-deny"),
        ("NetworkPolicy", SERVING, "allow-dns"),
        ("NetworkPolicy", SERVING, "allow-serving-ingress"),
        ("NetworkPolicy", SERVING, "allow-egress-registry"),
        ("ResourceQuota", SERVING, "sovstack-quota"),
        ("LimitRange", SERVING, "container-defaults"),
        ("Namespace", None, AUDIT),
        ("NetworkPolicy", AUDIT, "default-deny"),
        ("NetworkPolicy", AUDIT, "allow-dns"),
        ("NetworkPolicy", AUDIT, "allow-kubernetes-api"),
        ("NetworkPolicy", AUDIT, "allow-egress-s3"),
        ("LimitRange", AUDIT, "container-defaults"),
        ("Namespace", None, LOGS),
        ("NetworkPolicy", LOGS, "default-deny"),
        ("NetworkPolicy", LOGS, "allow-dns"),
        ("NetworkPolicy", LOGS, "allow-kubernetes-api"),
        ("NetworkPolicy", LOGS, "allow-egress-s3"),
        ("LimitRange", LOGS, "container-defaults"),
    ]
    assert objs == build_network_isolation(make_args())


def test_psa_labels_on_every_owned_namespace() -> None:
    objs = build_network_isolation(make_args())
    for ns in (SERVING, AUDIT):
        labels = find(objs, "Namespace", None, ns)["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
            assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "latest"
        assert labels["sovstack.io/customer"] == "acme"
        assert labels["sovstack.io/residency"] == "eu-strict"
    logs = find(objs, "Namespace", None, LOGS)["metadata"]["labels"]
    assert logs["pod-security.kubernetes.io/enforce"] == "privileged"
    assert logs["pod-security.kubernetes.io/audit"] == "restricted"
    assert logs["pod-security.kubernetes.io/warn"] == "restricted"


def test_default_deny_both_directions_in_every_namespace() -> None:
    objs = build_network_isolation(make_args())
    for ns in (SERVING, AUDIT, LOGS):
        assert find(objs, "NetworkPolicy", ns, "default-deny")["spec"] == {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
        }


def test_dns_egress_to_kube_dns_udp_and_tcp() -> None:
    spec = find(build_network_isolation(make_args()), "NetworkPolicy", AUDIT, "allow-dns")["spec"]
    assert spec["egress"] == [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }
    ]


def test_serving_ingress_from_declared_namespaces_and_cidrs_only() -> None:
    spec = find(build_network_isolation(make_args()), "NetworkPolicy", SERVING, "allow-serving-ingress")[
        "spec"
    ]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [
        {
            "from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}},
                {"ipBlock": {"cidr": "10.20.0.0/16"}},
            ],
            "ports": [{"protocol": "TCP", "port": 8000}],
        }
    ]


def test_egress_blocks_except_metadata_when_they_contain_it() -> None:
    objs = build_network_isolation(make_args())
    broad = find(objs, "NetworkPolicy", SERVING, "allow-egress-registry")["spec"]["egress"][0]
    assert broad["to"] == [{"ipBlock": {"cidr": "128.0.0.0/1", "except": [METADATA_CIDR]}}]
    assert broad["ports"] == [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 5000}]
    narrow = find(objs, "NetworkPolicy", AUDIT, "allow-egress-s3")["spec"]["egress"][0]
    assert narrow["to"] == [{"ipBlock": {"cidr": "51.159.0.0/16"}}]
    link_local = make_args(
        egress=[{"name": "x", "cidrs": ["169.254.0.0/16"], "ports": [80], "namespaces": [AUDIT]}]
    )
    block = find(build_network_isolation(link_local), "NetworkPolicy", AUDIT, "allow-egress-x")
    assert block["spec"]["egress"][0]["to"] == [
        {"ipBlock": {"cidr": "169.254.0.0/16", "except": [METADATA_CIDR]}}
    ]


def test_no_open_internet_anywhere() -> None:
    text = json.dumps(build_network_isolation(make_args(cni="cilium", cilium_fqdn_policies=True)))
    assert "0.0.0.0/0" not in text and "::/0" not in text


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"])
def test_open_egress_refused_naming_the_field(cidr: str) -> None:
    egress = [
        {"name": "ok", "cidrs": ["10.0.0.0/8"], "ports": [443], "namespaces": [AUDIT]},
        {"name": "bad", "cidrs": ["10.0.0.0/8", cidr], "ports": [443], "namespaces": [AUDIT]},
    ]
    with pytest.raises(ValueError, match=rf"egress\[1\]\.cidrs\[1\]: '{cidr}' opens every address"):
        make_args(egress=egress)


def test_open_ingress_and_bad_cidrs_refused() -> None:
    with pytest.raises(ValueError, match=r"ingress_cidrs\[0\]: '0.0.0.0/0' opens every address"):
        make_args(ingress_cidrs=["0.0.0.0/0"])
    with pytest.raises(ValueError, match=r"ingress_cidrs\[0\]: '10.0.0.1/8' is not a valid network"):
        make_args(ingress_cidrs=["10.0.0.1/8"])


def test_cross_references_are_checked() -> None:
    with pytest.raises(ValueError, match=r"serving_namespace: 'other' is not in namespaces"):
        make_args(serving_namespace="other")
    with pytest.raises(
        ValueError, match=r"privileged_namespaces: the serving namespace must stay restricted"
    ):
        make_args(privileged_namespaces=[SERVING])
    with pytest.raises(ValueError, match=r"egress\[0\]\.namespaces\[0\]: 'nope' is not in namespaces"):
        make_args(egress=[{"name": "x", "cidrs": ["10.0.0.0/8"], "ports": [1], "namespaces": ["nope"]}])
    with pytest.raises(ValueError, match=r"egress\[0\]: no cidrs, and hosts are only enforced"):
        make_args(egress=[{"name": "x", "hosts": ["a.example"], "ports": [443], "namespaces": [AUDIT]}])
    with pytest.raises(ValueError, match=r"cilium_fqdn_policies: needs cni 'cilium'"):
        make_args(cilium_fqdn_policies=True, cni="calico")


def test_quota_forbids_load_balancers_unless_public() -> None:
    quota = find(build_network_isolation(make_args()), "ResourceQuota", SERVING, "sovstack-quota")
    assert quota["spec"]["hard"] == {
        "requests.nvidia.com/gpu": "4",
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }
    public = find(
        build_network_isolation(make_args(public_endpoint=True)), "ResourceQuota", SERVING, "sovstack-quota"
    )
    assert public["spec"]["hard"] == {"requests.nvidia.com/gpu": "4"}


def test_limit_range_defaults() -> None:
    limits = find(build_network_isolation(make_args()), "LimitRange", AUDIT, "container-defaults")["spec"][
        "limits"
    ]
    assert limits == [
        {
            "type": "Container",
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
            "default": {"cpu": "1", "memory": "512Mi"},
        }
    ]


def test_cilium_fqdn_policy_only_when_enabled() -> None:
    egress = [{"name": "s3", "hosts": ["s3.fr-par.scw.cloud"], "ports": [443], "namespaces": [AUDIT]}]
    assert not [o for o in build_network_isolation(make_args()) if o["kind"] == "CiliumNetworkPolicy"]
    objs = build_network_isolation(make_args(egress=egress, cni="cilium", cilium_fqdn_policies=True))
    cilium = [o for o in objs if o["kind"] == "CiliumNetworkPolicy"]
    assert [o["metadata"]["namespace"] for o in cilium] == [AUDIT]
    assert cilium[0]["apiVersion"] == "cilium.io/v2"
    assert cilium[0]["spec"] == {
        "endpointSelector": {},
        "egress": [
            {
                "toEndpoints": [
                    {
                        "matchLabels": {
                            "k8s:io.kubernetes.pod.namespace": "kube-system",
                            "k8s:k8s-app": "kube-dns",
                        }
                    }
                ],
                "toPorts": [
                    {"ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": [{"matchPattern": "*"}]}}
                ],
            },
            {
                "toFQDNs": [{"matchName": "s3.fr-par.scw.cloud"}],
                "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}],
            },
        ],
    }
    # hosts-only destinations get no ipBlock policy
    assert not [o for o in objs if o["metadata"]["name"] == "allow-egress-s3"]


@pulumi.runtime.test
def test_shell_registers_every_object(mocks: Recorder) -> pulumi.Output[None]:
    args = make_args()
    component = NetworkIsolation("iso", args, provider=None)
    assert list(component.namespaces) == [SERVING, AUDIT, LOGS]
    manifests = build_network_isolation(args)

    def check(_: object) -> None:
        custom = [r for r in mocks.resources if r.custom]
        assert len(custom) == len(manifests) == len(component.objects)
        # Each object's logical name is its owner's, then its own: two components never share a URN.
        expected = {f"iso/{logical_name(m)}" for m in manifests}
        assert {r.name for r in custom} == expected
        namespaces = {r.name for r in custom if r.typ == "kubernetes:core/v1:Namespace"}
        assert namespaces == {f"iso/{SERVING}", f"iso/{AUDIT}", f"iso/{LOGS}"}
        assert mocks.named(f"iso/{AUDIT}/default-deny").inputs == find(
            manifests, "NetworkPolicy", AUDIT, "default-deny"
        )
        component_rec = [r for r in mocks.resources if not r.custom]
        assert [(r.typ, r.name) for r in component_rec] == [("sovstack:network:NetworkIsolation", "iso")]

    return pulumi.Output.all(*[r.urn for r in component.objects]).apply(check)


@pulumi.runtime.test
def test_shell_namespace_attribute_maps_names_to_namespace_resources(mocks: Recorder) -> pulumi.Output[None]:
    component = NetworkIsolation("iso", make_args(), provider=None)

    def check(urns: list[str]) -> None:
        assert [urn.rsplit("::", 1)[1] for urn in urns] == [f"iso/{SERVING}", f"iso/{AUDIT}", f"iso/{LOGS}"]
        assert all("kubernetes:core/v1:Namespace" in urn for urn in urns)

    return pulumi.Output.all(*[ns.urn for ns in component.namespaces.values()]).apply(check)


def test_metrics_scrape_lets_only_the_monitoring_namespace_in_on_the_metrics_port() -> None:
    scrape = {"namespaces": [AUDIT, LOGS], "from_namespaces": ["monitoring"], "port": 2020}
    objs = build_network_isolation(make_args(metrics_scrape=scrape))
    for namespace in (AUDIT, LOGS):
        policy = find(objs, "NetworkPolicy", namespace, "allow-metrics-scrape")
        assert policy["spec"] == {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
                    ],
                    "ports": [{"protocol": "TCP", "port": 2020}],
                }
            ],
        }
    assert not [
        o
        for o in objs
        if o["metadata"]["name"] == "allow-metrics-scrape" and o["metadata"]["namespace"] == SERVING
    ]
    assert not [
        o for o in build_network_isolation(make_args()) if o["metadata"]["name"] == "allow-metrics-scrape"
    ]


def test_metrics_scrape_only_in_owned_namespaces() -> None:
    scrape = {"namespaces": ["kube-system"], "from_namespaces": ["monitoring"], "port": 2020}
    with pytest.raises(
        ValueError, match=r"metrics_scrape.namespaces\[0\]: 'kube-system' is not in namespaces"
    ):
        make_args(metrics_scrape=scrape)
