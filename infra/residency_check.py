"""Walk a customer spec through the residency engine: every place data lives or flows, one finding each."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sovstack.components.builders.platform import GPU_OPERATOR, describe_platform
from sovstack.components.capacity import get_model
from sovstack.components.catalog import provider_for_backend
from sovstack.components.residency import Engine, Finding, ResidencyPolicy
from sovstack.infra import defaults
from sovstack.infra.compose import platform_args
from sovstack.infra.lookups import audit_backend, model_info, policy_of
from sovstack.infra.spec import CustomerSpec

PREFIX = "sovstack:customer"


def evaluate(spec: CustomerSpec, policy: ResidencyPolicy | None = None) -> list[Finding]:
    """Every finding for the spec, in spec order (deterministic)."""
    engine = Engine(policy or policy_of(spec))
    cluster = spec.cluster
    provider = provider_for_backend(cluster.provider)
    where = "region" if cluster.provider in ("scaleway", "ovh") else "site"
    p = f"{PREFIX}.cluster"
    findings = engine.region(f"{p}.{where}", provider, cluster.location)
    if cluster.system_pool is not None:
        for j, zone in enumerate(cluster.system_pool.zones):
            findings.append(engine.zone(f"{p}.systemPool.zones[{j}]", provider, cluster.location, zone))
    for i, pool in enumerate(cluster.gpu_pools):
        for j, zone in enumerate(pool.zones):
            findings.append(engine.zone(f"{p}.gpuPools[{i}].zones[{j}]", provider, cluster.location, zone))
    machines = (
        ("talos.machines", cluster.talos.machines)
        if cluster.talos is not None
        else ("existing.nodes", cluster.existing.nodes)
        if cluster.existing is not None
        else ("", ())
    )
    for j, machine in enumerate(machines[1]):
        findings.append(engine.zone(f"{p}.{machines[0]}[{j}].zone", provider, cluster.location, machine.zone))
    # Every installer a machine pulls: GPU workers' and the control plane's (and non-GPU workers').
    for field, image in defaults.talos_installer_images(spec):
        findings += engine.image(f"{p}.talos.{field}", image)
    findings += _platform_findings(engine, spec)

    # Audit trail: where the bucket lives, how long it keeps, the shipper's image.
    a = f"{PREFIX}.audit"
    backend = audit_backend(spec)
    if backend in ("scaleway", "ovh"):
        region = spec.audit.region or cluster.location
        findings += engine.storage_region(
            f"{a}.region", provider, region, f"audit bucket {spec.audit.bucket}"
        )
    endpoint = defaults.audit_endpoint(spec)
    if endpoint is not None:
        findings += engine.located(f"{a}.endpoint", endpoint, "audit endpoint")
    findings.append(
        engine.retention(f"{a}.retentionDays", defaults.audit_retention_days(spec, engine.policy))
    )
    findings += engine.image(f"{PREFIX}.registries.fluentBit", defaults.fluent_bit_image(spec))
    if backend == "minio":
        findings += engine.image(f"{PREFIX}.registries.minioClient", defaults.minio_client_image(spec))

    for i, model in enumerate(spec.models):
        m = f"{PREFIX}.models[{i}]"
        image_path = f"{m}.image" if model.image else f"{PREFIX}.registries.vllm"
        findings += engine.image(image_path, defaults.vllm_image(spec, model))
        source = "s3" if model.weights.s3 is not None else "pvc"
        findings.append(
            engine.weights_pinned(f"{m}.weights.{source}.manifestSha256", model.weights.manifest_sha256)
        )
        if model.weights.pvc is not None and model.weights.manifest_sha256 is not None:
            findings += engine.image(
                f"{PREFIX}.registries.weightsFetcher", defaults.weights_fetcher_image(spec)
            )
        if model.weights.s3 is not None:
            findings += engine.located(
                f"{m}.weights.s3.endpoint", model.weights.s3.endpoint, "weights storage"
            )
            findings += engine.image(
                f"{PREFIX}.registries.weightsFetcher", defaults.weights_fetcher_image(spec)
            )
        findings += _licence_findings(engine, spec, i)
        findings += _rollout_findings(engine, spec, i)

    for i, egress in enumerate(spec.network.egress):
        findings += engine.egress(f"{PREFIX}.network.egress[{i}].host", egress.host)
        findings.append(
            engine.egress_coverage(
                f"{PREFIX}.network.egress[{i}].cidrs", egress.cidrs, egress.max_public_addresses
            )
        )

    external = spec.secrets.external_secrets
    if external is not None:
        findings += engine.located(
            f"{PREFIX}.secrets.externalSecrets.storeEndpoint",
            external.store_endpoint,
            "secret store",
            rule="secrets.store",
        )

    # Sign-in tokens, user names and groups flow to and from the customer's issuer.
    identity = spec.identity
    if identity.issuer_url is not None:
        findings += engine.located(
            f"{PREFIX}.identity.issuerUrl", identity.issuer_url, "identity issuer", rule="identity.issuer"
        )
    if identity.endpoints is not None and identity.endpoints.jwt is not None:
        findings += engine.located(
            f"{PREFIX}.identity.endpoints.jwt.jwksUri",
            identity.endpoints.jwt.jwks_uri,
            "issuer key set",
            rule="identity.issuer",
        )

    s = f"{PREFIX}.state"
    findings += engine.state_backend(f"{s}.backendUrl", spec.state.backend_url)
    findings += engine.secrets_provider(
        f"{s}.secretsProvider", spec.state.secrets_provider, spec.state.vault_address, f"{s}.vaultAddress"
    )
    return _dedupe(findings)


def model_licence(spec: CustomerSpec, index: int, rollout: bool = False) -> tuple[str, str]:
    """(the model's id for grants, its licence): the catalog id, or a custom model's stack name."""
    model = spec.models[index]
    if rollout and model.rollout is not None and model.rollout.model is not None:
        return model.rollout.model, get_model(model.rollout.model).licence
    return model.model or model.name, model_info(spec, index).licence


def _licence_findings(engine: Engine, spec: CustomerSpec, index: int) -> list[Finding]:
    try:
        model_id, licence = model_licence(spec, index)
    except (KeyError, ValueError):  # an unknown or malformed model: checks.semantic_problems names it
        return []
    use, grant = spec.licensing.use, spec.licensing.grant_for(model_id)
    return [engine.licence(f"{PREFIX}.models[{index}]", model_id, licence, use, grant)]


def _rollout_findings(engine: Engine, spec: CustomerSpec, index: int) -> list[Finding]:
    """The new version is checked like the stable one: its image, its weights' endpoint, its licence."""
    model = spec.models[index]
    rollout = model.rollout
    if rollout is None:
        return []
    r = f"{PREFIX}.models[{index}].rollout"
    findings: list[Finding] = []
    if rollout.image is not None:
        findings += engine.image(f"{r}.image", rollout.image)
    if rollout.weights is not None and rollout.weights.s3 is not None:
        findings += engine.located(f"{r}.weights.s3.endpoint", rollout.weights.s3.endpoint, "weights storage")
        findings += engine.image(f"{PREFIX}.registries.weightsFetcher", defaults.weights_fetcher_image(spec))
    if rollout.model is not None:
        try:
            model_id, licence = model_licence(spec, index, rollout=True)
        except KeyError:
            return findings
        grant = spec.licensing.grant_for(model_id)
        findings.append(engine.licence(r, model_id, licence, spec.licensing.use, grant))
    return findings


def _platform_findings(engine: Engine, spec: CustomerSpec) -> list[Finding]:
    """Every chart the platform layer installs comes from an allowed repository; every image its pods
    pull (each one set through values) from an allowed registry, pinned."""
    findings: list[Finding] = []
    operator = spec.cluster.gpu_operator
    for release in describe_platform(platform_args(spec)).releases:
        if release.key == GPU_OPERATOR and (operator.repository or not spec.platform.chart_repository):
            where = f"{PREFIX}.cluster.gpuOperator.repository"
        else:
            where = f"{PREFIX}.platform.chartRepository"
        findings.append(engine.chart_repository(where, release.repository))
        findings += [
            engine.registry(f"{PREFIX}.cluster.gpuOperator.imageRepository", registry)
            for registry in release.image_registries
        ]
        for image in release.images:
            findings += engine.image(f"{PREFIX}.platform.imageRegistry", image)
    return findings


#: Where a pod spec sits in each workload kind that runs containers.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def manifest_images(objects: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(where, image) of every container, init container and ephemeral container image the rendered
    Kubernetes objects pull, in object order: the evidence that the rules saw every image."""
    out: list[tuple[str, str]] = []
    for obj in objects:
        path = _POD_SPEC_PATHS.get(str(obj.get("kind")))
        if path is None:
            continue
        pod: Any = obj
        for key in path:
            pod = pod.get(key, {}) if isinstance(pod, dict) else {}
        meta = obj.get("metadata", {})
        where = f"{obj['kind']}/{meta.get('namespace', '')}/{meta.get('name', '')}"
        for field in ("initContainers", "containers", "ephemeralContainers"):
            for i, container in enumerate(pod.get(field, ()) if isinstance(pod, dict) else ()):
                if isinstance(container, dict) and container.get("image"):
                    out.append((f"{where}.{field}[{i}].image", str(container["image"])))
    return out


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """The same image checked twice (two models on the default image) is reported once per path."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for f in findings:
        key = (f.rule, f.path, f.observed)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
