from __future__ import annotations

import pulumi
import pytest

from sovstack.components.kube import dns_name, image_is_pinned, image_registry, image_repository, is_dns_label
from sovstack.components.kubernetes_objects import logical_name, register_objects, resource_token
from tests.pulumi_mocks import Recorder


class Holder(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("sovstack:test:Holder", name)


def test_resource_token_matches_pulumi_kubernetes_typed_classes() -> None:
    assert resource_token({"apiVersion": "v1", "kind": "Namespace"}) == "kubernetes:core/v1:Namespace"
    assert resource_token({"apiVersion": "apps/v1", "kind": "Deployment"}) == "kubernetes:apps/v1:Deployment"
    assert resource_token({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject"}) == (
        "kubernetes:keda.sh/v1alpha1:ScaledObject"
    )


def test_logical_name_is_namespace_qualified() -> None:
    assert logical_name({"metadata": {"name": "a", "namespace": "ns"}}) == "ns/a"
    assert logical_name({"metadata": {"name": "ns"}}) == "ns"


@pytest.mark.parametrize(
    ("parts", "expected"),
    [(("Gov-FR", "mistral_7b"), "gov-fr-mistral-7b"), (("a--b", "-c-"), "a-b-c")],
)
def test_dns_name_normalises(parts: tuple[str, ...], expected: str) -> None:
    assert dns_name(*parts) == expected


def test_dns_name_truncates_with_stable_hash() -> None:
    long = dns_name("customer" * 5, "model" * 10)
    assert len(long) == 63 and is_dns_label(long)
    assert long == dns_name("customer" * 5, "model" * 10)
    assert long != dns_name("customer" * 5, "model" * 11)


def test_image_helpers() -> None:
    digest = "sha256:" + "a" * 64
    assert image_is_pinned(f"vllm/vllm-openai:v0.11.0@{digest}")
    assert not image_is_pinned("vllm/vllm-openai:v0.11.0")
    assert image_registry("vllm/vllm-openai:v1") == "docker.io"
    assert image_registry("rg.fr-par.scw.cloud/ns/vllm:v1") == "rg.fr-par.scw.cloud"
    assert image_registry("localhost:5000/x") == "localhost:5000"
    assert image_repository(f"vllm/vllm-openai:v0.11.0@{digest}") == "docker.io/vllm/vllm-openai"
    assert image_repository("busybox") == "docker.io/library/busybox"
    assert image_repository("harbor.local:443/mirror/vllm:1") == "harbor.local:443/mirror/vllm"


@pulumi.runtime.test
def test_register_objects_passes_manifests_verbatim(mocks: Recorder) -> pulumi.Output[object]:
    holder = Holder("h")
    objs = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns"},
            "spec": {},
        },
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
    ]
    resources = register_objects(objs, owner="h", parent=holder, provider=None)

    def check(urns: list[str]) -> None:
        # Registered namespace first, returned in the order given.
        types = [r.typ for r in mocks.resources if r.custom]
        assert types == ["kubernetes:core/v1:Namespace", "kubernetes:apps/v1:Deployment"]
        assert [u.rsplit("::", 1)[1] for u in urns] == ["h/ns/d", "h/ns"]
        dep = mocks.named("h/ns/d")
        assert dep.inputs == objs[0]

    return pulumi.Output.all(*[r.urn for r in resources]).apply(check)


@pulumi.runtime.test
def test_two_owners_of_the_same_object_never_share_a_urn(mocks: Recorder) -> pulumi.Output[object]:
    """Two clusters in one program each register `gpu-operator`: the owner in the name keeps them apart."""
    objs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gpu-operator"}}]
    first = register_objects(objs, owner="eu1-platform", parent=Holder("eu1"), provider=None)
    second = register_objects(objs, owner="eu2-platform", parent=Holder("eu2"), provider=None)

    def check(urns: list[str]) -> None:
        assert len(set(urns)) == 2, urns
        assert {u.rsplit("::", 1)[1] for u in urns} == {
            "eu1-platform/gpu-operator",
            "eu2-platform/gpu-operator",
        }

    return pulumi.Output.all(first[0].urn, second[0].urn).apply(check)
