"""`Observability`: alert rules, the audit shippers' PodMonitor and Grafana dashboards (Pulumi shell).

The builder (`components/builders/observability.py`) builds every object; this component checks the
args, then registers the objects under itself with the cluster's Kubernetes provider.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes

from sovstack.components.builders.observability import (
    ObservabilityArgs,
    build_observability,
    validate_observability_args,
)
from sovstack.components.kubernetes_objects import register_objects

TYPE_TOKEN = "sovstack:observability:Observability"


class Observability(pulumi.ComponentResource):
    """PrometheusRules per alert group, a PodMonitor for the audit shippers and dashboard ConfigMaps.

    Attributes: `objects` (every registered resource, builder order), `rules` (the PrometheusRules),
    `dashboards` (the ConfigMaps). Output: `alerts`, the names of the alerts built.
    `depends_on`: what must exist first, typically the Prometheus Operator's release or CRDs that define
    PrometheusRule and PodMonitor.
    """

    objects: list[pulumi.CustomResource]
    rules: list[pulumi.CustomResource]
    dashboards: list[pulumi.CustomResource]

    def __init__(
        self,
        name: str,
        args: ObservabilityArgs,
        *,
        provider: pulumi_kubernetes.Provider | None,
        depends_on: list[pulumi.Resource] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # Checked and built before the component or any child is registered (args may come from
        # model_construct or model_copy, which skip validation).
        validate_observability_args(args)
        manifests = build_observability(args)
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.objects = register_objects(
            manifests, owner=name, parent=self, provider=provider, depends_on=depends_on
        )
        kinds = [m["kind"] for m in manifests]
        self.rules = [r for r, k in zip(self.objects, kinds, strict=True) if k == "PrometheusRule"]
        self.dashboards = [r for r, k in zip(self.objects, kinds, strict=True) if k == "ConfigMap"]
        alerts = [
            rule["alert"]
            for manifest in manifests
            if manifest["kind"] == "PrometheusRule"
            for group in manifest["spec"]["groups"]
            for rule in group["rules"]
        ]
        self.alerts: pulumi.Output[list[str]] = pulumi.Output.from_input(alerts)
        self.register_outputs({"alerts": self.alerts})
