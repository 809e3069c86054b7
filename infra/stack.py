"""`SovereignStack`: one regulated customer's whole stack, composed from the components.

A GpuCluster, then on its Kubernetes provider: the Platform (operators and CRDs), NetworkIsolation,
AuditSink, ExternalSecrets, one ModelServing per model and Observability (when asked), each waiting for what it needs through
typed readiness (`Platform.ready`, `ExternalSecrets.ready`). Names derive from the customer and each
model's own name only, so adding a model or a pool never renames (or replaces) what exists.
"""

from __future__ import annotations

from typing import Any

import pulumi

from sovstack.components.audit_sink import AuditSink
from sovstack.components.builders.model_serving import build_model_serving
from sovstack.components.external_secrets import ExternalSecrets
from sovstack.components.gpu_cluster import GpuCluster
from sovstack.components.identity import Identity
from sovstack.components.kube import dns_name
from sovstack.components.model_serving import ModelServing
from sovstack.components.network_isolation import NetworkIsolation
from sovstack.components.observability import Observability
from sovstack.components.platform import MovedFrom, Platform
from sovstack.components.residency import Finding
from sovstack.infra.compose import Composition
from sovstack.infra.spec import CustomerSpec

TYPE_TOKEN = "sovstack:stack:SovereignStack"


class SovereignStack(pulumi.ComponentResource):
    """The customer's cluster, tenancy, audit trail and model servers."""

    def __init__(
        self,
        name: str,
        spec: CustomerSpec,
        *,
        findings: list[Finding],
        kubeconfig: pulumi.Input[str] | None = None,
        minio_credentials: tuple[pulumi.Input[str], pulumi.Input[str]] | None = None,
        composition: Composition | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # The program passes the composition its checks already built; standalone use composes here.
        composition = composition or Composition(spec)
        composition.kubernetes_objects()  # every builder runs (and refuses) before the first registration
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.spec = spec
        self.composition = composition
        self.findings = findings
        child = pulumi.ResourceOptions(parent=self)

        cluster_name = dns_name(spec.name, "gpu")
        self.cluster = GpuCluster(cluster_name, composition.cluster, kubeconfig=kubeconfig, opts=child)
        provider = self.cluster.provider
        self.platform = Platform(
            dns_name(spec.name, "platform"),
            composition.platform,
            provider=provider,
            nodes=self.cluster.nodes,
            moved_from=MovedFrom(self.cluster, cluster_name),
            opts=child,
        )
        self.network = NetworkIsolation(
            dns_name(spec.name, "network"), composition.network, provider=provider, opts=child
        )
        after_network = pulumi.ResourceOptions(parent=self, depends_on=[self.network])
        # The Secrets the workloads reference, created from the in-region store (when the spec names one).
        self.external_secrets = (
            ExternalSecrets(
                dns_name(spec.name, "secrets"),
                composition.external_secrets,
                provider=provider,
                store_ready=self.platform.ready.secret_store,
                opts=after_network,
            )
            if composition.external_secrets
            else None
        )
        self.audit = AuditSink(
            dns_name(spec.name, "audit"),
            composition.audit,
            provider=provider,
            # Scaleway and OVHcloud buckets live with the cluster, through its provider.
            cloud_provider=self.cluster.cloud_provider
            if composition.audit.backend == spec.cluster.provider
            else None,
            minio_credentials=minio_credentials,
            needs=self.external_secrets.ready_in(composition.namespaces.audit, composition.namespaces.logs)
            if self.external_secrets
            else [],
            opts=after_network,
        )
        serving = composition.namespaces.serving
        secrets_ready = self.external_secrets.ready_in(serving) if self.external_secrets else []
        self.models: dict[str, ModelServing] = {}
        for args in composition.serving:
            needs = [
                *self.platform.ready.gpu_operator,
                *self.platform.ready.for_objects(build_model_serving(args)),
                *secrets_ready,
            ]
            self.models[args.model_name] = ModelServing(
                dns_name(spec.name, args.model_name), args, provider=provider, needs=needs, opts=after_network
            )
        # Role bindings land in the owned namespaces; Gateway policies after Envoy Gateway's CRDs.
        identity = composition.identity
        self.identity = (
            Identity(
                dns_name(spec.name, "identity"),
                identity,
                provider=provider,
                crds=self.platform.ready.for_objects,
                opts=after_network,
            )
            if identity.rbac or identity.endpoints
            else None
        )
        # Alert rules, the PodMonitor and dashboards, after the release that defines their kinds.
        self.observability = (
            Observability(
                dns_name(spec.name, "observability"),
                composition.observability,
                provider=provider,
                depends_on=self.platform.ready.for_objects(composition.observability_objects()),
                opts=child,
            )
            if composition.observability
            else None
        )
        self.register_outputs(self.stack_outputs())

    def stack_outputs(self) -> dict[str, Any]:
        """What `pulumi stack output` shows: endpoints, region, verdict, kubeconfig (secret)."""
        passed = sum(f.passed for f in self.findings)
        return {
            "customer": self.spec.name,
            "region": self.spec.cluster.location,
            "zones": self.cluster.zones,
            "residency": {
                "policy": self.spec.residency.label,
                "checks": len(self.findings),
                "passed": passed,
                "failed": len(self.findings) - passed,
            },
            "endpoints": {
                name: {"url": url, "servedModelName": args.served_model_name}
                for (name, url), args in zip(
                    self.composition.service_urls().items(), self.composition.serving, strict=True
                )
            },
            "auditBucket": self.spec.audit.bucket,
            "kubeconfig": self.cluster.kubeconfig,
        }
