"""Register built manifest dicts as Pulumi Kubernetes resources, one resource per object.

Every component registers its builder's output through `register_objects`, so the inputs Pulumi
sends are exactly the dicts `sovstack render` writes: one source of truth, two ways out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pulumi
import pulumi_kubernetes
from pulumi_kubernetes import _utilities as k8s_utilities

from sovstack.components.kube import Manifest


def resource_token(obj: Mapping[str, object]) -> str:
    """The Pulumi type token pulumi-kubernetes uses for an object (`kubernetes:apps/v1:Deployment`)."""
    api_version = str(obj["apiVersion"])
    if "/" not in api_version:
        api_version = f"core/{api_version}"
    return f"kubernetes:{api_version}:{obj['kind']}"


def logical_name(obj: Mapping[str, object]) -> str:
    """A stable Pulumi resource name: `namespace/name`, or `name` for cluster-scoped objects."""
    meta = obj["metadata"]
    assert isinstance(meta, Mapping)
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def register_objects(
    objects: Iterable[Manifest],
    *,
    parent: pulumi.Resource,
    provider: pulumi_kubernetes.Provider | None,
    protect: bool = False,
    depends_on: list[pulumi.Resource] | None = None,
) -> list[pulumi.CustomResource]:
    """Register each object as a resource parented to `parent` and bound to `provider`.

    Namespaces are registered first and every namespaced object depends on its namespace, so an
    apply never races the namespace it lands in.
    """
    ordered = sorted(objects, key=lambda o: (o["kind"] != "Namespace",))
    namespaces: dict[str, pulumi.CustomResource] = {}
    registered: list[pulumi.CustomResource] = []
    for obj in ordered:
        ns = obj["metadata"].get("namespace")
        deps = list(depends_on or [])
        if ns and ns in namespaces:
            deps.append(namespaces[ns])
        opts = pulumi.ResourceOptions(
            parent=parent,
            provider=provider,
            protect=protect,
            depends_on=deps,
            version=k8s_utilities.get_version(),
        )
        resource = pulumi.CustomResource(resource_token(obj), logical_name(obj), dict(obj), opts)
        if obj["kind"] == "Namespace":
            namespaces[obj["metadata"]["name"]] = resource
        registered.append(resource)
    return registered
