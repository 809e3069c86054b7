"""Compose a customer spec into component args: one pure mapping that `pulumi up` and `render` share.

`compose(spec)` turns the validated spec into the args of GpuCluster, NetworkIsolation, AuditSink
and one ModelServing per model, and answers what the stack will contain (Kubernetes objects,
Helm charts, cloud resources) without importing Pulumi.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlparse

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from sovstack.components.builders.audit_sink import HTTP_PORT as AUDIT_METRICS_PORT
from sovstack.components.builders.audit_sink import (
    AuditSinkArgs,
    InferenceRecordsArgs,
    build_audit_bucket,
    build_audit_policy,
    build_audit_sink,
)
from sovstack.components.builders.external_secrets import (
    ExternalSecretsArgs,
    SecretToSync,
    build_external_secrets,
    default_remote_prefix,
)
from sovstack.components.builders.gpu_cluster import ClusterDescription, describe_cluster
from sovstack.components.builders.gpu_cluster_args import (
    ClusterArgsError,
    ExistingNode,
    ExistingOptions,
    GpuClusterArgs,
    GpuOperatorOptions,
    GpuPoolArgs,
    OvhOptions,
    ScalewayOptions,
    SystemPoolArgs,
    TalosMachine,
    TalosOptions,
)
from sovstack.components.builders.identity import (
    ApiKeyArgs,
    ClusterOidcArgs,
    EndpointIdentityArgs,
    GatewayRef,
    IdentityArgs,
    JwtArgs,
    RateLimitArgs,
    RbacArgs,
    RoleGroups,
    UpstreamKey,
    build_identity,
    rate_limit_values,
    upstream_filter_name,
    upstream_secret_name,
)
from sovstack.components.builders.model_serving import build_model_serving, service_url
from sovstack.components.builders.model_serving_args import (
    Autoscaling,
    Canary,
    ModelServingArgs,
    PvcWeights,
    Route,
    S3Weights,
    SecretKeyRef,
)
from sovstack.components.builders.network_isolation import (
    EgressDestination,
    KubernetesApiAccess,
    MetricsScrape,
    NetworkIsolationArgs,
    build_network_isolation,
)
from sovstack.components.builders.observability import ObservabilityArgs, build_observability
from sovstack.components.builders.platform import (
    GatewayArgs,
    PlatformArgs,
    PlatformDescription,
    RedisTarget,
    SecretStoreArgs,
    describe_platform,
    merge,
)
from sovstack.components.capacity import get_gpu, get_model
from sovstack.components.catalog import load_catalog
from sovstack.components.kube import Manifest
from sovstack.components.residency import POLICY_ANNOTATION, ResidencyPolicy, policy_annotation
from sovstack.infra import defaults
from sovstack.infra.lookups import audit_backend, model_info, plan_model, policy_of
from sovstack.infra.spec import CustomerSpec, GpuPoolSpec, ModelSpec, WeightsSpec

Loc = tuple[int | str, ...]
SpecProblem = tuple[Loc, str]


@dataclass(frozen=True)
class Namespaces:
    serving: str
    audit: str
    logs: str

    def all(self) -> list[str]:
        return [self.serving, self.audit, self.logs]


def namespaces_of(spec: CustomerSpec) -> Namespaces:
    return Namespaces(
        serving=f"{spec.name}-serving", audit=f"{spec.name}-audit", logs=f"{spec.name}-audit-logs"
    )


def _host(url: str) -> str:
    return urlparse(url).hostname or url


def _s3_region_of(endpoint: str, fallback: str) -> str:
    found = load_catalog().locate(_host(endpoint))
    if found and found[1].s3_region:
        return found[1].s3_region
    return fallback.lower()


def platform_args(spec: CustomerSpec) -> PlatformArgs:
    """What the workloads need installed: only what the spec uses."""
    ns = namespaces_of(spec)
    wanted = spec.secrets.external_secrets
    store = None
    if wanted is not None:
        host = _host(wanted.store_endpoint)
        cidrs = [c for e in spec.network.egress if e.host == host for c in e.cidrs]
        store = SecretStoreArgs(
            name=wanted.store,
            server=wanted.store_endpoint,
            path=wanted.vault_path,
            version=wanted.vault_version,
            auth_role=wanted.auth_role or f"sovstack-{spec.name}",
            cidrs=cidrs,
            port=urlparse(wanted.store_endpoint).port or 443,
        )
    gateways: dict[tuple[str, str], GatewayArgs] = {}
    for model in spec.models:
        route = model.route
        if route is not None:
            gateways.setdefault(
                (route.gateway_namespace, route.gateway_name),
                GatewayArgs(
                    name=route.gateway_name,
                    namespace=route.gateway_namespace,
                    listener=route.section_name,
                    tls_secret=route.tls_secret or f"{route.gateway_name}-tls",
                ),
            )
    platform = spec.platform
    values = {k: dict(v) for k, v in platform.values.items()}
    endpoints = spec.identity.endpoints
    redis = None
    jwks_cidrs: list[str] = []
    if gateways and endpoints and endpoints.jwt:
        jwks_host = _host(endpoints.jwt.jwks_uri)
        jwks_cidrs = [c for e in spec.network.egress if e.host == jwks_host for c in e.cidrs]
    if gateways and endpoints and endpoints.rate_limit:
        redis_url = endpoints.rate_limit.redis_url
        redis = _redis_target(spec, redis_url)
        # sovstack's rate-limit settings first, the spec's own values for the chart merged over them.
        values["envoy-gateway"] = merge(rate_limit_values(redis_url), values.get("envoy-gateway", {}))
    return PlatformArgs(
        customer=spec.name,
        region=spec.cluster.location,
        residency_profile=spec.residency.label,
        backend=spec.cluster.provider,
        gpu_operator=GpuOperatorOptions(**spec.cluster.gpu_operator.model_dump()),
        talos_version=spec.cluster.talos.talos_version if spec.cluster.talos is not None else None,
        secret_store=store,
        keda=any(m.autoscaling for m in spec.models),
        gateways=[gateways[k] for k in sorted(gateways)],
        prometheus_crds=any(m.service_monitor for m in spec.models) or spec.observability is not None,
        chart_repository=platform.chart_repository,
        image_registry=platform.image_registry,
        image_digests=dict(platform.image_digests),
        values=values,
        api_server_cidrs=list(spec.network.api_server_cidrs),
        monitoring_namespaces=list(spec.network.monitoring_namespaces),
        client_cidrs=list(spec.network.ingress_cidrs),
        serving_namespace=ns.serving,
        jwks_cidrs=jwks_cidrs,
        rate_limit_redis=redis,
        gateway_access_log=spec.audit.inference_records.enabled,
        content_capture=spec.audit.inference_records.capture,
    )


def _redis_target(spec: CustomerSpec, redis_url: str) -> RedisTarget:
    """An in-cluster Service (`<svc>.<namespace>.svc[.cluster.local]`) or a declared egress host."""
    host, _, port = redis_url.rpartition(":")
    labels = host.split(".")
    if len(labels) >= 3 and labels[2] == "svc":
        return RedisTarget(host=host, port=int(port), namespace=labels[1])
    cidrs = [c for e in spec.network.egress if e.host == host for c in e.cidrs]
    return RedisTarget(host=host, port=int(port), cidrs=cidrs)


def cluster_oidc(spec: CustomerSpec) -> ClusterOidcArgs | None:
    identity = spec.identity
    if identity.cluster is None or identity.issuer_url is None:
        return None
    c = identity.cluster
    return ClusterOidcArgs(
        issuer_url=identity.issuer_url,
        client_id=c.client_id,
        username_claim=c.username_claim,
        username_prefix=c.username_prefix,
        groups_claim=c.groups_claim,
        groups_prefix=c.groups_prefix,
    )


def identity_args(spec: CustomerSpec, gateways: list[GatewayArgs]) -> IdentityArgs:
    """RBAC for the issuer's groups, and the Gateways' authentication, as the spec asks."""
    ns = namespaces_of(spec)
    identity = spec.identity
    labels = {
        "customer": spec.name,
        "region": spec.cluster.location,
        "residency_profile": spec.residency.label,
    }
    rbac = None
    if identity.cluster is not None:
        roles = identity.cluster.roles
        rbac = RbacArgs(
            **labels,
            groups_prefix=identity.cluster.groups_prefix,
            roles=RoleGroups(
                platform_admins=roles.platform_admins, operators=roles.operators, auditors=roles.auditors
            ),
            serving_namespace=ns.serving,
            audit_namespace=ns.audit,
            audit_read_secret=roles.audit_read_secret,
        )
    endpoints = None
    wanted = identity.endpoints
    if wanted is not None and gateways:
        jwt = None
        if wanted.jwt is not None:
            assert identity.issuer_url is not None  # IdentitySpec requires it with jwt
            jwt = JwtArgs(
                issuer=identity.issuer_url,
                audiences=wanted.jwt.audiences,
                jwks_uri=wanted.jwt.jwks_uri,
                subject_claim=wanted.jwt.subject_claim,
            )
        endpoints = EndpointIdentityArgs(
            **labels,
            gateways=tuple(GatewayRef(name=g.name, namespace=g.namespace) for g in gateways),
            jwt=jwt,
            api_keys=ApiKeyArgs(**wanted.api_keys.model_dump()) if wanted.api_keys else None,
            rate_limit=RateLimitArgs(requests=wanted.rate_limit.requests, unit=wanted.rate_limit.unit)
            if wanted.rate_limit
            else None,
            upstream_keys=tuple(
                UpstreamKey(
                    filter_name=upstream_filter_name(spec.name, m.name),
                    namespace=ns.serving,
                    secret=upstream_secret_name(m.api_key_secret.name),
                )
                for m in spec.models
                if m.route is not None
            ),
        )
    return IdentityArgs(rbac=rbac, endpoints=endpoints)


class Composition:
    """The component args of one customer stack, and what they build."""

    def __init__(self, spec: CustomerSpec, policy: ResidencyPolicy | None = None) -> None:
        self.spec = spec
        self.policy = policy or policy_of(spec)
        self.namespaces = namespaces_of(spec)

    # -- component args ---------------------------------------------------------------------
    @cached_property
    def cluster(self) -> GpuClusterArgs:
        c = self.spec.cluster
        options: dict[str, Any] = {}
        if c.scaleway is not None:
            options["scaleway"] = ScalewayOptions(
                project_id=c.scaleway.project_id,
                cluster_type=c.scaleway.type,
                cni=c.scaleway.cni,
                private_network_cidr=c.scaleway.private_network_cidr,
                api_server_allowed_cidrs=c.scaleway.api_server_allowed_cidrs,
            )
        elif c.provider == "scaleway":
            options["scaleway"] = ScalewayOptions()
        if c.ovh is not None:
            options["ovh"] = OvhOptions(**c.ovh.model_dump())
        if c.talos is not None:
            options["talos"] = TalosOptions(
                cluster_endpoint=c.talos.cluster_endpoint,
                talos_version=c.talos.talos_version,
                installer_image=c.talos.installer_image,
                system_installer_image=c.talos.system_installer_image,
                machines=tuple(TalosMachine(**m.model_dump()) for m in c.talos.machines),
                audit_policy=build_audit_policy(self.namespaces.all()),
            )
        if c.provider == "existing":
            nodes = c.existing.nodes if c.existing else ()
            options["existing"] = ExistingOptions(
                context=c.existing.context if c.existing else None,
                nodes=tuple(ExistingNode(name=n.name, pool=n.pool, zone=n.zone) for n in nodes if n.pool),
            )
        return GpuClusterArgs(
            customer=self.spec.name,
            backend=c.provider,
            region=c.location,
            kubernetes_version=c.kubernetes_version,
            residency_profile=self.spec.residency.label,
            # The spec's pools, machines and options carry the args' own field names: a field added to
            # one side only fails loudly here (extra="forbid") rather than being dropped.
            system_pool=SystemPoolArgs(**c.system_pool.model_dump()) if c.system_pool else None,
            gpu_pools=tuple(GpuPoolArgs(**p.model_dump()) for p in c.gpu_pools),
            protect=c.protect,
            gpu_operator=GpuOperatorOptions(**c.gpu_operator.model_dump()),
            oidc=cluster_oidc(self.spec),
            **options,
        )

    @cached_property
    def cluster_description(self) -> ClusterDescription:
        return describe_cluster(self.cluster)

    def tensor_parallel_size(self, index: int) -> int:
        model = self.spec.models[index]
        if model.tensor_parallel_size is not None:
            return model.tensor_parallel_size
        pool = self._pool(model)
        plan = plan_model(model, pool, model_info(self.spec, index), get_gpu(pool.gpu_type))
        if plan.tensor_parallel_size is None:  # checks.capacity_problems refuses this before compose
            raise ValueError(f"models[{index}]: {model.name} does not fit pool {pool.name}")
        return int(plan.tensor_parallel_size)

    def _pool(self, model: ModelSpec) -> GpuPoolSpec:
        return next(p for p in self.spec.cluster.gpu_pools if p.name == model.pool)

    @cached_property
    def serving(self) -> list[ModelServingArgs]:
        return [self._serving_args(i, m) for i, m in enumerate(self.spec.models)]

    def _weights(self, given: WeightsSpec) -> S3Weights | PvcWeights:
        spec = self.spec
        if given.s3 is not None:
            s3 = given.s3
            return S3Weights(
                url=s3.url,
                endpoint=s3.endpoint,
                region=_s3_region_of(s3.endpoint, spec.cluster.location),
                credentials_secret=s3.credentials_secret,
                fetcher_image=defaults.weights_fetcher_image(spec),
                volume_size=s3.volume_size,
                manifest_sha256=given.manifest_sha256,
            )
        assert given.pvc is not None
        return PvcWeights(
            claim_name=given.pvc.claim_name,
            manifest_sha256=given.manifest_sha256,
            verifier_image=defaults.weights_fetcher_image(spec),
        )

    def _canary(self, index: int, model: ModelSpec) -> Canary | None:
        """The new version of `models[index].rollout`: what it leaves out, it keeps from the stable model."""
        rollout = model.rollout
        if rollout is None:
            return None
        tensor_parallel = self.tensor_parallel_size(index)
        if rollout.model is not None and rollout.model != model.model:
            pool = self._pool(model)
            plan = plan_model(model, pool, get_model(rollout.model), get_gpu(pool.gpu_type))
            if plan.tensor_parallel_size is None:
                raise ValueError(f"models[{index}].rollout: {rollout.model} does not fit pool {pool.name}")
            tensor_parallel = int(plan.tensor_parallel_size)
        return Canary(
            image=rollout.image or defaults.vllm_image(self.spec, model),
            weights=self._weights(rollout.weights or model.weights),
            weight=rollout.weight,
            replicas=rollout.replicas,
            tensor_parallel_size=tensor_parallel,
        )

    def _serving_args(self, index: int, model: ModelSpec) -> ModelServingArgs:
        spec = self.spec
        pool = self._pool(model)
        weights = self._weights(model.weights)
        extra: dict[str, Any] = {}
        if model.autoscaling is not None:
            extra["autoscaling"] = Autoscaling(**model.autoscaling.model_dump())
        else:
            extra["replicas"] = model.replicas
        if model.route is not None:
            # With endpoint identity the Gateway authenticates the client, then gives vLLM its own key.
            injected = (
                upstream_filter_name(spec.name, model.name) if spec.identity.endpoints is not None else None
            )
            extra["route"] = Route(
                **model.route.model_dump(exclude={"tls_secret"}), credential_filter=injected
            )
        canary = self._canary(index, model)
        if canary is not None:
            extra["canary"] = canary
        return ModelServingArgs(
            customer=spec.name,
            model_name=model.name,
            served_model_name=model.served_model_name or model.name,
            namespace=self.namespaces.serving,
            region=spec.cluster.location,
            residency_profile=spec.residency.label,
            pool=pool.name,
            gpu_type=pool.gpu_type,
            tensor_parallel_size=self.tensor_parallel_size(index),
            image=defaults.vllm_image(spec, model),
            max_model_len=model.max_model_len,
            gpu_memory_utilization=model.gpu_memory_utilization,
            dtype=model.dtype,
            weights=weights,
            api_key_secret=SecretKeyRef(name=model.api_key_secret.name, key=model.api_key_secret.key),
            zones=list(pool.zones),
            service_monitor=model.service_monitor,
            **extra,
        )

    @cached_property
    def network(self) -> NetworkIsolationArgs:
        spec, ns = self.spec, self.namespaces
        audit_endpoint = defaults.audit_endpoint(spec)
        audit_host = _host(audit_endpoint) if audit_endpoint else None
        weight_hosts = {_host(m.weights.s3.endpoint) for m in spec.models if m.weights.s3}
        store = spec.secrets.external_secrets
        store_host = _host(store.store_endpoint) if store else None
        wanted = spec.identity.endpoints
        jwks_host = _host(wanted.jwt.jwks_uri) if wanted and wanted.jwt else None
        redis_host = wanted.rate_limit.redis_url.rpartition(":")[0] if wanted and wanted.rate_limit else None
        egress = []
        for e in spec.network.egress:
            if e.host in (store_host, jwks_host, redis_host):
                # The External Secrets Operator reads the store, the Gateways' Envoy the issuer's keys, the
                # rate limit service its Redis (platform layer); no workload does.
                continue
            users: list[str] = []
            if e.host in weight_hosts or e.host != audit_host:
                users.append(ns.serving)
            if e.host == audit_host:
                users += [ns.audit, ns.logs]
            egress.append(
                EgressDestination(
                    name=e.name, cidrs=list(e.cidrs), ports=list(e.ports), hosts=[e.host], namespaces=users
                )
            )
        api = (
            KubernetesApiAccess(cidrs=list(spec.network.api_server_cidrs), namespaces=[ns.audit, ns.logs])
            if spec.network.api_server_cidrs
            else None
        )
        return NetworkIsolationArgs(
            customer=spec.name,
            region=spec.cluster.location,
            residency_profile=spec.residency.label,
            namespaces=ns.all(),
            serving_namespace=ns.serving,
            ingress_from_namespaces=self._ingress_namespaces(),
            ingress_cidrs=list(spec.network.ingress_cidrs),
            egress=egress,
            allow_kubernetes_api=api,
            gpu_quota=max(1, self.gpu_ceiling()),
            public_endpoint=spec.network.public_endpoint,
            cni=spec.network.cni,
            cilium_fqdn_policies=spec.network.cilium_fqdn_policies,
            privileged_namespaces=[ns.logs],
            namespace_annotations={POLICY_ANNOTATION: policy_annotation(self.policy)},
            **self._metrics_scrape(),
        )

    def _metrics_scrape(self) -> dict[str, Any]:
        """With observability, its Prometheus may scrape the audit shippers' Fluent Bit metrics."""
        wanted = self.spec.observability
        if wanted is None:
            return {}
        ns = self.namespaces
        return {
            "metrics_scrape": MetricsScrape(
                namespaces=[ns.audit, ns.logs], from_namespaces=[wanted.namespace], port=AUDIT_METRICS_PORT
            )
        }

    def _ingress_namespaces(self) -> list[str]:
        """Gateways (declared, or named by a model's route) call the models; Prometheus scrapes /metrics
        (same port) only where a model asks for it."""
        network = self.spec.network
        names = list(network.gateway_namespaces)
        # A model's HTTPRoute attaches to a Gateway whose pods must reach it.
        names += [
            m.route.gateway_namespace
            for m in self.spec.models
            if m.route and m.route.gateway_namespace not in names
        ]
        if any(m.service_monitor for m in self.spec.models):
            names += [n for n in network.monitoring_namespaces if n not in names]
        return names

    def gpu_ceiling(self) -> int:
        """GPUs the serving namespace may request: every model at its most replicas."""
        total = 0
        for i, model in enumerate(self.spec.models):
            replicas = model.autoscaling.max_replicas if model.autoscaling else model.replicas
            total += replicas * self.serving[i].tensor_parallel_size
            canary = self.serving[i].canary
            if canary is not None:  # the new version runs beside the stable one
                total += canary.replicas * canary.tensor_parallel_size
        return total

    @cached_property
    def audit(self) -> AuditSinkArgs:
        spec, ns = self.spec, self.namespaces
        backend = audit_backend(spec)
        endpoint = defaults.audit_endpoint(spec)
        assert endpoint is not None  # checks._audit_problems requires one where the catalog has none
        s3_region = defaults.audit_s3_region(spec)
        extra: dict[str, Any] = {}
        if spec.registries.minio_client:
            extra["mc_image"] = spec.registries.minio_client
        talos = self.cluster.talos
        return AuditSinkArgs(
            customer=spec.name,
            region=spec.cluster.location,
            residency_profile=spec.residency.label,
            namespace=ns.audit,
            logs_namespace=ns.logs,
            serving_namespace=ns.serving,
            backend=backend,
            bucket=spec.audit.bucket,
            retention_days=defaults.audit_retention_days(spec, self.policy),
            min_retention_days=self.policy.min_audit_retention_days,
            endpoint=endpoint,
            s3_region=s3_region,
            project_id=spec.cluster.scaleway.project_id if spec.cluster.scaleway else None,
            service_name=spec.cluster.ovh.service_name if spec.cluster.ovh else None,
            region_name=s3_region.upper() if backend == "ovh" else None,
            credentials_secret=spec.audit.credentials_secret,
            minio_admin_secret=spec.audit.minio_admin_secret if backend == "minio" else None,
            fluent_bit_image=defaults.fluent_bit_image(spec),
            buffer_size=spec.audit.buffer_size,
            apiserver_audit_log_path=talos.audit_log_path if talos else None,
            inference_records=self.inference_records,
            **extra,
        )

    @cached_property
    def inference_records(self) -> InferenceRecordsArgs | None:
        """The gateways whose access logs become inference records; None when off or no model has a route."""
        if not self.spec.audit.inference_records.enabled:
            return None
        gateways = sorted({g.namespace for g in self.platform.gateways})
        if not gateways:
            return None
        return InferenceRecordsArgs(
            gateway_namespaces=gateways, capture=self.spec.audit.inference_records.capture
        )

    @cached_property
    def observability(self) -> ObservabilityArgs | None:
        """Alert rules, the audit shippers' PodMonitor and dashboards, when the spec asks for them."""
        wanted = self.spec.observability
        if wanted is None:
            return None
        spec, ns = self.spec, self.namespaces
        groups = ("audit-shipping", *(("gpu",) if wanted.gpu else ()), "model-serving")
        return ObservabilityArgs(
            customer=spec.name,
            region=spec.cluster.location,
            residency_profile=spec.residency.label,
            namespace=wanted.namespace,
            serving_namespace=ns.serving,
            audit_namespace=ns.audit,
            audit_logs_namespace=ns.logs,
            groups=groups,
            prometheus_selector_labels=dict(wanted.prometheus_selector_labels),
            alerts=wanted.alerts,
            dashboards=wanted.dashboards,
        )

    def observability_objects(self) -> list[Manifest]:
        return build_observability(self.observability) if self.observability else []

    # -- what the stack contains ------------------------------------------------------------
    @cached_property
    def external_secrets(self) -> ExternalSecretsArgs | None:
        """ExternalSecrets for every Secret the workloads reference, when the spec names a store."""
        wanted = self.spec.secrets.external_secrets
        if wanted is None:
            return None
        spec, ns = self.spec, self.namespaces
        credentials = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        found: dict[tuple[str, str], tuple[str, ...]] = {}
        for model in spec.models:
            key = (ns.serving, model.api_key_secret.name)
            found[key] = tuple(sorted({*found.get(key, ()), model.api_key_secret.key}))
            if model.route is not None and spec.identity.endpoints is not None:
                # `Bearer <key>`, which the Gateway injects (docs/identity.md).
                found[(ns.serving, upstream_secret_name(model.api_key_secret.name))] = ("credential",)
            if model.weights.s3 is not None:
                found[(ns.serving, model.weights.s3.credentials_secret)] = credentials
        for namespace in (ns.audit, ns.logs):
            found[(namespace, spec.audit.credentials_secret)] = credentials
        if spec.identity.cluster is not None and spec.identity.cluster.roles.auditors:
            found[(ns.audit, spec.identity.cluster.roles.audit_read_secret)] = credentials
        if self.audit.backend == "minio":
            found[(ns.audit, spec.audit.minio_admin_secret)] = credentials
        return ExternalSecretsArgs(
            customer=spec.name,
            region=spec.cluster.location,
            residency_profile=spec.residency.label,
            store_name=wanted.store,
            store_kind=wanted.store_kind,
            remote_prefix=wanted.remote_prefix or default_remote_prefix(spec.name),
            secrets=tuple(
                SecretToSync(name=n, namespace=space, keys=keys) for (space, n), keys in found.items()
            ),
        )

    def kubernetes_objects(self) -> list[Manifest]:
        """Every Kubernetes object of the stack, in a stable order (cluster, network, audit, models).

        Built once per composition; callers read the dicts and never change them.
        """
        return self._objects

    @cached_property
    def platform(self) -> PlatformArgs:
        return platform_args(self.spec)

    @cached_property
    def platform_description(self) -> PlatformDescription:
        return describe_platform(self.platform)

    @cached_property
    def identity(self) -> IdentityArgs:
        return identity_args(self.spec, self.platform.gateways)

    @cached_property
    def _objects(self) -> list[Manifest]:
        objects: list[Manifest] = list(self.platform_description.kubernetes_objects)
        objects += build_network_isolation(self.network)
        objects += build_audit_sink(self.audit)
        for args in self.serving:
            objects += build_model_serving(args)
        objects += self.external_secret_objects()
        objects += build_identity(self.identity)
        objects += self.observability_objects()
        return objects

    def external_secret_objects(self) -> list[Manifest]:
        return build_external_secrets(self.external_secrets) if self.external_secrets else []

    def charts(self) -> list[dict[str, Any]]:
        """The platform's Helm releases (name, chart, repository, version, namespace, values), install order."""
        return [r.model_dump() for r in self.platform_description.releases]

    def cloud_resources(self) -> list[dict[str, Any]]:
        """Non-Kubernetes resources `pulumi up` would create, with their regions."""
        resources = [dict(r) for r in self.cluster_description.resources]
        bucket = build_audit_bucket(self.audit)
        if bucket["managed"]:
            resources.append(dict(bucket))
        return resources

    def service_urls(self) -> dict[str, str]:
        return {a.model_name: service_url(a) for a in self.serving}


def compose(spec: CustomerSpec, policy: ResidencyPolicy | None = None) -> Composition:
    return Composition(spec, policy)


def _to_spec_path(component_path: str) -> Loc:
    """`gpu_pools[0].zones[1]` (component args) to ('cluster', 'gpuPools', 0, 'zones', 1) (spec)."""
    loc: list[int | str] = ["cluster"]
    for part in component_path.split("."):
        match = re.fullmatch(r"([a-z_0-9]+)((?:\[\d+\])*)", part)
        if match is None:
            loc.append(part)
            continue
        loc.append(to_camel(match.group(1)))
        loc += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    return tuple(loc)


#: Component args fields (by args class) and the spec fields they are built from, longest prefix first:
#: a component refusing its args must name what the user wrote, never the args' internal names.
ARGS_TO_SPEC: dict[str, list[tuple[str, Loc]]] = {
    "NetworkIsolationArgs": [
        ("allow_kubernetes_api.cidrs", ("network", "apiServerCidrs")),
        ("allow_kubernetes_api", ("network", "apiServerCidrs")),
        ("ingress_cidrs", ("network", "ingressCidrs")),
        ("egress", ("network", "egress")),
        ("cilium_fqdn_policies", ("network", "ciliumFqdnPolicies")),
        ("public_endpoint", ("network", "publicEndpoint")),
        ("cni", ("network", "cni")),
    ],
}
#: Args lists copied item for item from their spec list, so an index means the same in both.
ARGS_ITEM_FOR_ITEM = {"allow_kubernetes_api.cidrs", "ingress_cidrs"}
_ARGS_PATH = re.compile(r"([a-z_][a-z_0-9]*(?:\[\d+\])*(?:\.[a-z_][a-z_0-9]*(?:\[\d+\])*)*): (.*)", re.S)


def _args_problem(err: ValidationError) -> SpecProblem:
    """A component's refusal of its args, as the spec field the user wrote (`network.apiServerCidrs[0]`)."""
    first = err.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
    match = _ARGS_PATH.fullmatch(message)
    if not path and match:
        path, message = match.group(1), match.group(2)
    for prefix, spec_loc in ARGS_TO_SPEC.get(err.title, []):
        if path == prefix or path.startswith((prefix + "[", prefix + ".")):
            rest = path[len(prefix) :]
            # Keep list indexes only where the args list is the spec list, item for item.
            indexes = [int(i) for i in re.findall(r"^\[(\d+)\]", rest)]
            if prefix in ARGS_ITEM_FOR_ITEM:
                return (*spec_loc, *indexes), message
            return spec_loc, message
    component = re.sub(r"(?<!^)(?=[A-Z])", " ", err.title.removesuffix("Args")).lower()
    return (), f"the {component} component refuses this stack: {message}"


def build_composition(spec: CustomerSpec) -> tuple[list[SpecProblem], Composition | None]:
    """The composition of a stack with every manifest built, or the problems that refused it."""
    composition = compose(spec)
    try:
        composition.kubernetes_objects()
    except ClusterArgsError as err:
        path, _, message = str(err).partition(": ")
        return [(_to_spec_path(path), message)], None
    except ValidationError as err:
        return [_args_problem(err)], None
    except ValueError as err:
        return [((), str(err))], None
    return [], composition


def composition_problems(spec: CustomerSpec) -> list[SpecProblem]:
    """Build every component's args and manifests: whatever a component refuses, refused here first."""
    return build_composition(spec)[0]
