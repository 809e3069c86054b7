"""The residency report: every finding with its evidence, and where each piece of the stack lives.

Built as plain data (`build_report`), rendered through Jinja2 templates (md, html) or as JSON.
Deterministic: no timestamps, sorted keys, the same stack gives the same bytes.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from sovstack.components.catalog import load_catalog, provider_for_backend
from sovstack.components.licences import get_licence
from sovstack.components.residency import Finding
from sovstack.infra import defaults
from sovstack.infra.compose import Composition
from sovstack.infra.lookups import audit_backend
from sovstack.infra.pipeline import LoadedStack
from sovstack.infra.residency_check import evaluate, model_licence

TEMPLATES = Path(__file__).with_name("templates")
#: Kinds whose schema kubernetes-validate does not ship: listed as unchecked in every report.
CUSTOM_KINDS = (
    "Application",
    "CiliumNetworkPolicy",
    "ClusterSecretStore",
    "ExternalSecret",
    "Gateway",
    "GatewayClass",
    "HTTPRoute",
    "PodMonitor",
    "PrometheusRule",
    "ScaledObject",
    "ServiceMonitor",
)


def build_report(
    loaded: LoadedStack, composition: Composition | None = None, findings: list[Finding] | None = None
) -> dict[str, Any]:
    spec = loaded.spec
    composition = composition or Composition(spec)
    findings = findings if findings is not None else evaluate(spec, composition.policy)
    catalog = load_catalog()
    cluster = spec.cluster
    region = catalog.region(provider_for_backend(cluster.provider), cluster.location)
    provider = catalog.provider(region.provider)
    failed = [f for f in findings if not f.passed]
    backend = audit_backend(spec)
    images = sorted(
        {defaults.vllm_image(spec, m) for m in spec.models}
        | {defaults.fluent_bit_image(spec)}
        | ({defaults.weights_fetcher_image(spec)} if any(m.weights.s3 for m in spec.models) else set())
        | ({defaults.minio_client_image(spec)} if backend == "minio" else set())
        | set(composition.platform_description.images)
    )
    # A stack outside its policy may be refused by the components too: report what the spec says.
    try:
        kinds = sorted({o["kind"] for o in composition.kubernetes_objects()})
        cloud_resources, endpoints, refused = composition.cloud_resources(), composition.service_urls(), None
    except ValueError as err:  # pydantic's ValidationError and ClusterArgsError are ValueErrors
        kinds, cloud_resources, endpoints, refused = [], [], {}, str(err).splitlines()[0]
    return {
        "stack": loaded.name,
        "customer": {"name": spec.name, "displayName": spec.display_name},
        "policy": {
            "label": spec.residency.label,
            **composition.policy.model_dump(mode="json", by_alias=True),
        },
        "verdict": {"passed": not failed, "checks": len(findings), "failed": len(failed)},
        "findings": [f.model_dump() for f in findings],
        "inventory": {
            "cluster": {
                "backend": cluster.provider,
                "provider": provider.name,
                "providerHeadquarters": provider.headquarters,
                "region": region.code,
                "city": region.city,
                "country": region.country,
                "jurisdiction": region.jurisdiction,
                "zones": sorted({z for p in cluster.gpu_pools for z in p.zones}),
                "kubernetesVersion": cluster.kubernetes_version,
                "source": region.source,
            },
            "cloudResources": cloud_resources,
            "buckets": [
                {
                    "purpose": "audit trail (write-once)",
                    "backend": backend,
                    "name": spec.audit.bucket,
                    "endpoint": defaults.audit_endpoint(spec),
                    "retentionDays": defaults.audit_retention_days(spec, composition.policy),
                    "objectLock": "COMPLIANCE",
                }
            ]
            + [
                {
                    "purpose": f"model weights ({m.name})",
                    "url": m.weights.s3.url,
                    "endpoint": m.weights.s3.endpoint,
                }
                for m in spec.models
                if m.weights.s3
            ],
            "volumeClaims": [
                {"purpose": f"model weights ({m.name})", "claim": m.weights.pvc.claim_name}
                for m in spec.models
                if m.weights.pvc
            ],
            "images": images,
            "chartRepositories": [
                {"chart": c["chart"], "repository": c["repository"], "version": c["version"]}
                for c in composition.charts()
            ],
            "egress": [
                {"name": e.name, "host": e.host, "cidrs": list(e.cidrs), "ports": list(e.ports)}
                for e in spec.network.egress
            ],
            "endpoints": endpoints,
            "stateBackend": spec.state.backend_url,
            "secretsProvider": spec.state.secrets_provider,
        },
        "models": _model_licences(loaded),
        "composition": {"refused": refused},
        "schemaChecks": {
            "kubernetesVersion": cluster.kubernetes_minor,
            # Argo CD Applications are always rendered beside the manifests (argocd/).
            "uncheckedKinds": sorted({k for k in kinds if k in CUSTOM_KINDS} | {"Application"}),
        },
    }


def _model_licences(loaded: LoadedStack) -> list[dict[str, Any]]:
    """Every model (and a rollout's new version) with its licence, the stack's use and its grant."""
    spec = loaded.spec
    rows: list[dict[str, Any]] = []
    for i, model in enumerate(spec.models):
        versions = [("stable", f"models[{i}]", False)]
        if model.rollout is not None:
            versions.append((f"rollout ({model.rollout.weight}%)", f"models[{i}].rollout", True))
        for version, path, rollout in versions:
            try:
                model_id, licence = model_licence(spec, i, rollout=rollout)
            except (KeyError, ValueError):
                model_id, licence = model.model or model.name, "unknown"
            known = get_licence(licence)
            rows.append(
                {
                    "name": model.name,
                    "path": path,
                    "version": version,
                    "model": model_id,
                    "licence": licence,
                    "licenceSource": known.source if known else None,
                    "use": spec.licensing.use,
                    "grant": spec.licensing.grant_for(model_id),
                }
            )
    return rows


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["tojson_sorted"] = lambda v: json.dumps(v, sort_keys=True)
    return env


def render_report(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    template = _environment().get_template(f"report.{fmt}.j2")
    return str(template.render(report=data))
