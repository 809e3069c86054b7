"""ExternalSecret objects that materialise, from an in-region secret store, the Secrets workloads reference.

Workloads only ever name a Secret (the API key, the S3 credentials); nothing in a manifest, a render
or a report carries a value. With GitOps, something still has to create those Secrets in the cluster:
the External Secrets Operator does, from a (Cluster)SecretStore the platform team runs in region (for
example Vault). This builder writes one ExternalSecret per referenced Secret. Pure: no Pulumi import.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sovstack.components.kube import Manifest, dns_name, is_dns_label, standard_labels

COMPONENT = "external-secrets"
API_VERSION = "external-secrets.io/v1"


class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SecretToSync(_Args):
    """One Kubernetes Secret a workload references, and the keys it must hold."""

    name: str = Field(description="Secret name (a DNS label), as the workloads reference it. Required.")
    namespace: str = Field(description="Namespace of the workloads that read it. Required.")
    keys: tuple[str, ...] = Field(min_length=1, description="Keys the workloads read. Required.")


class ExternalSecretsArgs(_Args):
    """Where the secret values live, and which Secrets to create from them."""

    customer: str = Field(
        description="Customer id (DNS label), in labels and the default remote prefix. Required."
    )
    region: str = Field(description="Region or site label value. Required.")
    residency_profile: str = Field(description="Residency label value. Required.")
    store_name: str = Field(description="Name of the (Cluster)SecretStore the operator runs. Required.")
    store_kind: Literal["ClusterSecretStore", "SecretStore"] = Field(
        default="ClusterSecretStore", description="Kind of that store. Default ClusterSecretStore."
    )
    remote_prefix: str = Field(
        description="Path in the store under which each Secret's values live: `<prefix>/<secret name>`, one "
        "property per key. Required."
    )
    refresh_interval: str = Field(default="1h", description="How often the operator re-reads the store.")
    secrets: tuple[SecretToSync, ...] = Field(description="The Secrets to create. Required.")


def build_external_secrets(args: ExternalSecretsArgs) -> list[Manifest]:
    """One ExternalSecret per (namespace, Secret), in a stable order; the Secret it creates is owned by it."""
    for secret in args.secrets:
        if not is_dns_label(secret.name):
            raise ValueError(f"secrets: {secret.name!r} is not a DNS-1123 label")
    objects: list[Manifest] = []
    for secret in sorted(args.secrets, key=lambda s: (s.namespace, s.name)):
        labels = standard_labels(
            name=secret.name,
            component=COMPONENT,
            customer=args.customer,
            region=args.region,
            residency=args.residency_profile,
        )
        objects.append(
            {
                "apiVersion": API_VERSION,
                "kind": "ExternalSecret",
                "metadata": {"name": secret.name, "namespace": secret.namespace, "labels": labels},
                "spec": {
                    "refreshInterval": args.refresh_interval,
                    "secretStoreRef": {"kind": args.store_kind, "name": args.store_name},
                    "target": {"name": secret.name, "creationPolicy": "Owner", "deletionPolicy": "Retain"},
                    "data": [
                        {
                            "secretKey": key,
                            "remoteRef": {"key": f"{args.remote_prefix}/{secret.name}", "property": key},
                        }
                        for key in secret.keys
                    ],
                },
            }
        )
    return objects


def default_remote_prefix(customer: str) -> str:
    return f"sovstack/{dns_name(customer)}"
