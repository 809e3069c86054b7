"""Pulumi shell of `build_identity`: the OIDC groups' role bindings and the Gateways' authentication.

The stack orders the component after NetworkIsolation (the namespaces the role bindings land in);
each SecurityPolicy and BackendTrafficPolicy also waits for the release whose CRD defines its kind
(`crds`, from `Platform.ready.for_objects`), so none is sent to an API server that does not know it yet.
"""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_kubernetes

from sovstack.components.builders.identity import IdentityArgs, build_identity
from sovstack.components.kube import Manifest
from sovstack.components.kubernetes_objects import register_objects

TYPE_TOKEN = "sovstack:identity:Identity"


class Identity(pulumi.ComponentResource):
    """Role bindings for the customer's issuer groups and the Gateways' policies. Attribute: `objects`."""

    objects: list[pulumi.CustomResource]

    def __init__(
        self,
        name: str,
        args: IdentityArgs,
        *,
        provider: pulumi_kubernetes.Provider | None,
        crds: Callable[[list[Manifest]], list[pulumi.Resource]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        manifests = build_identity(args)  # the args validated themselves; building raises before any child
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.objects = []
        for manifest in manifests:
            depends = crds([manifest]) if crds else []
            self.objects += register_objects(
                [manifest], owner=name, parent=self, provider=provider, depends_on=depends
            )
        self.register_outputs({"objects": len(self.objects)})
