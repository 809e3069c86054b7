"""Register built manifest dicts as Pulumi Kubernetes resources, one resource per object.

Every component registers its builder's output through `register_objects`, so the inputs Pulumi
sends are exactly the dicts `sovstack render` writes: one source of truth, two ways out. Each
object's logical name starts with its owner (the component's name), so two instances of a component
in one program (two clusters) never share a URN; the name an object had before owners were part of
it stays as an alias, so upgrading sovstack renames nothing on a live stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import version

import pulumi
import pulumi_kubernetes

from sovstack.components.kube import Manifest


@cache
def provider_version() -> str:
    """The Kubernetes provider version the installed SDK asks for (its package's own version)."""
    return version("pulumi_kubernetes")


def resource_token(obj: Mapping[str, object]) -> str:
    """The Pulumi type token pulumi-kubernetes uses for an object (`kubernetes:apps/v1:Deployment`)."""
    api_version = str(obj["apiVersion"])
    if "/" not in api_version:
        api_version = f"core/{api_version}"
    return f"kubernetes:{api_version}:{obj['kind']}"


def logical_name(obj: Mapping[str, object]) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects: the object's own identity."""
    meta = obj["metadata"]
    assert isinstance(meta, Mapping)
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def owned_name(owner: str, obj: Mapping[str, object]) -> str:
    """The Pulumi logical name: the owner component's name, then the object's identity."""
    return f"{owner}/{logical_name(obj)}"


def register_objects(
    objects: Iterable[Manifest],
    *,
    owner: str,
    parent: pulumi.Resource,
    provider: pulumi_kubernetes.Provider | None,
    protect: bool = False,
    depends_on: list[pulumi.Resource] | None = None,
    moved_from: Mapping[str, pulumi.Resource] | None = None,
) -> list[pulumi.CustomResource]:
    """Register each object as a resource parented to `parent` and bound to `provider`.

    Namespaces are registered first and every namespaced object depends on its namespace, so an
    apply never races the namespace it lands in. `moved_from` maps an object's identity to the
    component that registered it before (an alias under that parent keeps it from being replaced).
    Returns the resources in the order of `objects`.
    """
    given = list(objects)
    ordered = sorted(range(len(given)), key=lambda i: (given[i]["kind"] != "Namespace", i))
    namespaces: dict[str, pulumi.CustomResource] = {}
    registered: dict[int, pulumi.CustomResource] = {}
    for index in ordered:
        obj = given[index]
        ns = obj["metadata"].get("namespace")
        deps = list(depends_on or [])
        if ns and ns in namespaces:
            deps.append(namespaces[ns])
        identity = logical_name(obj)
        aliases: list[pulumi.Input[pulumi.Alias]] = [pulumi.Alias(name=identity)]
        if moved_from and identity in moved_from:
            aliases.append(pulumi.Alias(name=identity, parent=moved_from[identity]))
        opts = pulumi.ResourceOptions(
            parent=parent,
            provider=provider,
            protect=protect,
            depends_on=deps,
            version=provider_version(),
            aliases=aliases,
        )
        resource = pulumi.CustomResource(resource_token(obj), owned_name(owner, obj), dict(obj), opts)
        if obj["kind"] == "Namespace":
            namespaces[obj["metadata"]["name"]] = resource
        registered[index] = resource
    return [registered[i] for i in range(len(given))]
