"""Pulumi component serving one model with vLLM: registers what `build_model_serving` builds."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes

from sovstack.components.builders.model_serving import build_model_serving, service_url
from sovstack.components.builders.model_serving_args import ModelServingArgs
from sovstack.components.kubernetes_objects import register_objects


class ModelServing(pulumi.ComponentResource):
    """vLLM's OpenAI-compatible server for one model: Deployment, Service, PodDisruptionBudget and, when
    enabled, a KEDA ScaledObject, a Gateway API HTTPRoute and a ServiceMonitor.

    Attributes: `deployment`, `service`, `objects` (every registered resource, builder order),
    `service_url` (`http://<name>.<namespace>.svc.cluster.local:<port>/v1`), `served_model_name`.
    """

    deployment: pulumi.CustomResource
    service: pulumi.CustomResource
    objects: list[pulumi.CustomResource]
    service_url: pulumi.Output[str]
    served_model_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ModelServingArgs,
        *,
        provider: pulumi_kubernetes.Provider | None,
        needs: list[pulumi.Resource] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`needs`: what must exist before the model's objects (the GPU Operator, the releases that
        define its custom kinds, the ExternalSecrets that create its Secrets): Platform.ready and
        ExternalSecrets.ready give them."""
        # Validate again (model_copy(update=...) skips validation) and build everything before the
        # component or any child is registered.
        # The weights union is discriminated by `source`, a default that exclude_unset would drop.
        data = args.model_dump(exclude_unset=True)
        data["weights"] = args.weights.model_dump()
        if args.canary is not None:
            data["canary"] = {
                **args.canary.model_dump(exclude_unset=True),
                "weights": args.canary.weights.model_dump(),
            }
        args = ModelServingArgs.model_validate(data)
        manifests = build_model_serving(args)
        super().__init__("sovstack:serving:ModelServing", name, None, opts)
        self.objects = register_objects(
            manifests, owner=name, parent=self, provider=provider, depends_on=list(needs or [])
        )
        by_kind: dict[str, pulumi.CustomResource] = {}
        for manifest, resource in zip(manifests, self.objects, strict=True):
            by_kind.setdefault(manifest["kind"], resource)  # the stable's, not a canary's
        self.deployment = by_kind["Deployment"]
        self.service = by_kind["Service"]
        self.service_url = pulumi.Output.from_input(service_url(args))
        self.served_model_name = pulumi.Output.from_input(args.served_model_name)
        self.register_outputs({"service_url": self.service_url, "served_model_name": self.served_model_name})
