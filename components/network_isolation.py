"""Pulumi shell of `build_network_isolation`: registers the namespaces, policies, quota and defaults."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes

from sovstack.components.builders.network_isolation import NetworkIsolationArgs, build_network_isolation
from sovstack.components.kubernetes_objects import register_objects


class NetworkIsolation(pulumi.ComponentResource):
    """Owned namespaces at Pod Security `restricted`, default-deny both ways, declared exceptions only.

    Attributes: `namespaces` (namespace name -> Namespace resource), `objects` (every registered resource).
    """

    namespaces: dict[str, pulumi.CustomResource]
    objects: list[pulumi.CustomResource]

    def __init__(
        self,
        name: str,
        args: NetworkIsolationArgs,
        *,
        provider: pulumi_kubernetes.Provider | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovstack:network:NetworkIsolation", name, None, opts)
        # The args model validated itself on construction; building is pure and raises before any child.
        manifests = build_network_isolation(args)
        self.objects = register_objects(manifests, owner=name, parent=self, provider=provider)
        self.namespaces = {
            m["metadata"]["name"]: r
            for m, r in zip(manifests, self.objects, strict=True)
            if m["kind"] == "Namespace"
        }
        self.register_outputs({"namespaces": list(self.namespaces)})
