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
    """ExternalSecret objects for the named Secrets; `objects` holds the registered resources."""

    def __init__(
        self,
        name: str,
        args: ExternalSecretsArgs,
        *,
        provider: pulumi_kubernetes.Provider | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        manifests = build_external_secrets(args)  # refuses bad args before anything is registered
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.objects = register_objects(manifests, parent=self, provider=provider)
        self.register_outputs(
            {"secrets": [f"{m['metadata']['namespace']}/{m['metadata']['name']}" for m in manifests]}
        )
