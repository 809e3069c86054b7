"""`ExternalSecrets`: the Secrets workloads reference, synced from an in-region store (Pulumi shell).

The builder (`components/builders/external_secrets.py`) writes one ExternalSecret per Secret; this
component registers them under itself with the cluster's Kubernetes provider.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes

from sovstack.components.builders.external_secrets import ExternalSecretsArgs, build_external_secrets
from sovstack.components.kubernetes_objects import register_objects

TYPE_TOKEN = "sovstack:secrets:ExternalSecrets"


class ExternalSecrets(pulumi.ComponentResource):
    """ExternalSecret objects for the named Secrets; `objects` holds the registered resources and
    `ready_in(namespace)` what a workload there waits for (the ExternalSecrets creating its Secrets)."""

    def __init__(
        self,
        name: str,
        args: ExternalSecretsArgs,
        *,
        provider: pulumi_kubernetes.Provider | None,
        store_ready: list[pulumi.Resource] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`store_ready`: the External Secrets Operator and the store (Platform.ready.secret_store)."""
        manifests = build_external_secrets(args)  # refuses bad args before anything is registered
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.objects = register_objects(
            manifests, owner=name, parent=self, provider=provider, depends_on=list(store_ready or [])
        )
        self._by_namespace: dict[str, list[pulumi.Resource]] = {}
        for manifest, resource in zip(manifests, self.objects, strict=True):
            self._by_namespace.setdefault(manifest["metadata"]["namespace"], []).append(resource)
        self.register_outputs(
            {"secrets": [f"{m['metadata']['namespace']}/{m['metadata']['name']}" for m in manifests]}
        )

    def ready_in(self, *namespaces: str) -> list[pulumi.Resource]:
        return [r for ns in namespaces for r in self._by_namespace.get(ns, [])]
