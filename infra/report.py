"""The residency report: every finding with its evidence, and where each piece of the stack lives.

Built as plain data (`build_report`); rendered as JSON, or through one view (`sections`: every top-level
key a section, titled from SECTION_TITLES) that the Markdown and HTML templates both print, so the three
formats carry the same sections. A key added to `build_report` shows up in all three with no template
change; give it a title in SECTION_TITLES.

Deterministic: sorted keys, the same stack gives the same bytes, except for when it was generated and
at which git commit. Set SOURCE_DATE_EPOCH (seconds since 1970, the reproducible-builds convention) and
SOVSTACK_GIT_COMMIT to fix both.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from sovstack.components.capacity import get_gpu, get_model
from sovstack.components.catalog import DATA_DIR as CATALOG_DIR
from sovstack.components.catalog import load_catalog, provider_for_backend
from sovstack.components.inference_records import RECORDS_PREFIX, SCHEMA_ID
from sovstack.components.kubernetes_versions import MANAGED, UPSTREAM, load_version_facts
from sovstack.components.licences import get_licence
from sovstack.components.provenance import SOURCED_FIELDS, Sourced
from sovstack.components.residency import Finding, load_location_free, public_addresses
from sovstack.infra import defaults
from sovstack.infra.compose import Composition
from sovstack.infra.gitinfo import git_head
from sovstack.infra.lookups import audit_backend
from sovstack.infra.pipeline import LoadedStack
from sovstack.infra.placeholders import Placeholder, find_placeholders, not_deployable
from sovstack.infra.residency_check import evaluate, manifest_images, model_licence
from sovstack.infra.schema_check import check_manifests

TEMPLATES = Path(__file__).with_name("templates")
#: Kinds whose schema kubernetes-validate does not ship: listed as unchecked when the check could not run.
CUSTOM_KINDS = (
    "Application",
    "BackendTrafficPolicy",
    "CiliumNetworkPolicy",
    "ClientTrafficPolicy",
    "ClusterSecretStore",
    "EnvoyExtensionPolicy",
    "EnvoyProxy",
    "ExternalSecret",
    "Gateway",
    "GatewayClass",
    "HTTPRoute",
    "PodMonitor",
    "PrometheusRule",
    "HTTPRouteFilter",
    "ScaledObject",
    "SecurityPolicy",
    "ServiceMonitor",
)
UNKNOWN = "unknown"
_URL = re.compile(r"https?://[^\s,;)>\]]+")


class ProvenanceError(ValueError):
    """SOURCE_DATE_EPOCH set to something that is not a time."""


# ---------------------------------------------------------------------------------- provenance
def generation_time(path: Path | None = None) -> str:
    """UTC, to the second: $SOURCE_DATE_EPOCH when set (reproducible builds), else the commit time of
    HEAD of the git repository holding `path` (the same commit renders the same bytes on any
    machine), else now."""
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw is None or raw == "":
        head = git_head(path.resolve().parent) if path is not None else None
        moment = datetime.fromtimestamp(head[1], UTC) if head else datetime.now(UTC)
    else:
        try:
            moment = datetime.fromtimestamp(int(raw), UTC)
        except (ValueError, OverflowError, OSError):
            raise ProvenanceError(
                f"SOURCE_DATE_EPOCH: {raw!r} is not a whole number of seconds since 1970-01-01"
            ) from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def time_basis(path: Path | None = None) -> str:
    """What `generation_time` was taken from, said in the report beside it."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return "SOURCE_DATE_EPOCH"
    if path is not None and git_head(path.resolve().parent):
        return "commit time of HEAD"
    return "clock"


def sovstack_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sovstack")
    except PackageNotFoundError:
        return UNKNOWN


def git_commit(path: Path) -> str:
    """HEAD of the git repository holding `path` ($SOVSTACK_GIT_COMMIT overrides); "unknown" outside one."""
    override = os.environ.get("SOVSTACK_GIT_COMMIT")
    if override:
        return override
    head = git_head(path.resolve().parent)
    return head[0] if head else UNKNOWN


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def catalog_files(directory: Path = CATALOG_DIR) -> list[dict[str, str]]:
    """Every data file the facts come from, by name (bytewise order), with its sha256."""
    files = sorted((p for p in directory.iterdir() if p.is_file()), key=lambda p: p.name.encode())
    return [{"file": p.name, "sha256": sha256_file(p)} for p in files]


def catalog_digest(files: list[dict[str, str]]) -> str:
    """sha256 of the files' `sha256sum` listing: `cd components/data && LC_ALL=C sha256sum * | sha256sum`."""
    listing = "".join(f"{f['sha256']}  {f['file']}\n" for f in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def provenance(path: Path) -> dict[str, Any]:
    """When, by what and from what the report was made (the catalog's files are listed apart)."""
    files = catalog_files()
    return {
        "at": generation_time(path),
        "atFrom": time_basis(path),
        "sovstackVersion": sovstack_version(),
        "gitCommit": git_commit(path),
        "stackFile": path.name,
        "stackSha256": sha256_file(path) if path.is_file() else UNKNOWN,
        "catalogSha256": catalog_digest(files),
    }


# ---------------------------------------------------------------------------------- facts
def fact(subject: str, value: str, source: str, provenance: Sourced | None = None) -> dict[str, Any]:
    """One catalog fact the report relies on, with its public link, the day it was read and whether it
    was checked against that page (components/provenance.py). No link: `noLinkBecause` says why.
    A source that calls itself unverified is never reported verified."""
    known = provenance.provenance() if provenance is not None else {}
    match = _URL.search(source or "")
    link = known.get("url") or (match.group(0) if match else None)
    return {
        "fact": subject,
        "value": value,
        "source": source or None,
        "link": link,
        "noLinkBecause": None if link else known.get("urlMissing") or "no public source recorded",
        "retrieved": known.get("retrieved"),
        "verified": bool(known.get("verified")) and link is not None and "unverified" not in (source or ""),
    }


def facts_summary(facts: list[dict[str, Any]]) -> dict[str, Any]:
    """How many of the report's facts were checked against their source, and how many have no link."""
    verified = sum(1 for f in facts if f["verified"])
    return {
        "facts": len(facts),
        "verified": verified,
        "unverified": len(facts) - verified,
        "withoutLink": sum(1 for f in facts if not f["link"]),
        "oldestRetrieved": min((f["retrieved"] for f in facts if f["retrieved"]), default=None),
    }


def _facts(
    spec: Any, composition: Composition, catalog: Any, region: Any, provider: Any
) -> list[dict[str, Any]]:
    """Every catalog fact the stack's verdict rests on: place, provider, jurisdiction, policy, node
    types, GPUs, models, licences and the Kubernetes version's dates."""
    cluster = spec.cluster
    pools = cluster.gpu_pools
    facts = [
        fact(
            f"{region.code} is in {region.city}, {region.country} ({region.jurisdiction})",
            region.code,
            region.source,
            region,
        ),
        *(
            fact(f"zone {code} of {region.code}", code, zone.source, zone)
            for code in sorted({z for p in pools for z in p.zones})
            if (zone := region.zone(code)) is not None
        ),
        fact(
            f"{provider.name} is headquartered in {provider.headquarters}",
            provider.name,
            provider.source,
            provider,
        ),
        fact(
            f"{region.country} is in jurisdiction {region.jurisdiction}",
            region.country,
            catalog.countries_source,
            catalog.countries,
        ),
        fact(
            f"residency policy {spec.residency.label}",
            spec.residency.label,
            composition.policy.source,
            composition.policy,
        ),
    ]
    nodes = [
        (n, node)
        for n in sorted({p.node_type for p in pools if p.node_type})
        if (node := catalog.node_type(region.provider, n))
    ]
    facts.extend(
        fact(f"{name} carries {node.gpus} x {node.gpu}", name, node.source, node) for name, node in nodes
    )
    for gpu_id in sorted({p.gpu_type for p in pools}):
        try:
            gpu = get_gpu(gpu_id)
        except KeyError:
            continue
        facts.append(
            fact(f"{gpu_id} has {gpu.memory_gb:g} GB {gpu.memory_type}", gpu_id, gpu.source.strip(), gpu)
        )
    licences: set[str] = set()
    for model_id in sorted({m.model for m in spec.models if m.model}):
        try:
            info = get_model(model_id)
        except KeyError:
            continue
        facts.append(fact(f"{model_id}: size and attention shape", model_id, info.source.strip(), info))
        licences.add(info.licence)
    known = [(name, licence) for name in sorted(licences) if (licence := get_licence(name)) is not None]
    facts.extend(fact(f"{n} allows {', '.join(lic.allows)}", n, lic.source, lic) for n, lic in known)
    versions = load_version_facts().get(MANAGED.get(cluster.provider, UPSTREAM))
    if versions is not None and versions.get(cluster.kubernetes_minor) is not None:
        minor = cluster.kubernetes_minor
        facts.append(fact(f"Kubernetes {minor} support dates", minor, versions.source, versions))
    return facts


def build_report(
    loaded: LoadedStack,
    composition: Composition | None = None,
    findings: list[Finding] | None = None,
    generated: dict[str, Any] | None = None,
    *,
    placeholders: list[Placeholder] | None = None,
) -> dict[str, Any]:
    """The report as data. `generated` (from `provenance`) is computed here unless given, so one bundle's
    files can share it."""
    spec = loaded.spec
    composition = composition or Composition(spec)
    findings = findings if findings is not None else evaluate(spec, composition.policy)
    catalog = load_catalog()
    cluster = spec.cluster
    region = catalog.region(provider_for_backend(cluster.provider), cluster.location)
    provider = catalog.provider(region.provider)
    failed = [f for f in findings if not f.passed]
    placeholders = placeholders if placeholders is not None else find_placeholders(spec)
    backend = audit_backend(spec)
    images = sorted(
        {defaults.vllm_image(spec, m) for m in spec.models}
        | {defaults.fluent_bit_image(spec)}
        | ({defaults.weights_fetcher_image(spec)} if any(m.weights.s3 for m in spec.models) else set())
        | ({defaults.minio_client_image(spec)} if backend == "minio" else set())
        | set(composition.platform_description.images)
        | {image for _, image in defaults.talos_installer_images(spec)}
        | _rendered_images(composition)
    )
    # A stack outside its policy may be refused by the components too: report what the spec says.
    try:
        objects = composition.kubernetes_objects()
        cloud_resources, endpoints, refused = composition.cloud_resources(), composition.service_urls(), None
    except ValueError as err:  # pydantic's ValidationError and ClusterArgsError are ValueErrors
        objects, cloud_resources, endpoints, refused = [], [], {}, str(err).splitlines()[0]
    kinds = sorted({o["kind"] for o in objects})
    if refused is None:
        schema = check_manifests(objects, cluster.kubernetes_minor)
    else:
        schema = {"ran": False, "reason": "the components refused the stack: nothing to check"}
    # Kubernetes objects are location-free (they live in the cluster); each cloud resource by its type.
    cloud_types = [(r["type"], r["name"]) for r in cloud_resources] + [
        (f"kubernetes:{kind}", f"{kind} objects") for kind in kinds
    ]
    unchecked = set(schema.get("uncheckedKinds") or ()) if schema["ran"] else set(kinds) & set(CUSTOM_KINDS)
    facts = _facts(spec, composition, catalog, region, provider)
    return {
        "generated": generated or provenance(loaded.path),
        "catalogFiles": catalog_files(),
        "facts": facts,
        "factsSummary": facts_summary(facts),
        "checksRun": [
            {
                "check": "residency rules (sovstack validate)",
                "ran": True,
                "result": f"{len(findings) - len(failed)} of {len(findings)} passed",
            },
            {
                "check": schema.get("check", "Kubernetes schemas, strict mode (kubernetes-validate)"),
                "ran": schema["ran"],
                "result": (
                    f"{schema['checked'] - len(schema['failures'])} of {schema['checked']} objects valid "
                    f"against Kubernetes {schema['kubernetesVersion']} ({schema['tool']})"
                    if schema["ran"]
                    else schema["reason"]
                ),
            },
        ],
        "stack": loaded.name,
        "customer": {"name": spec.name, "displayName": spec.display_name},
        "policy": {
            "label": spec.residency.label,
            **composition.policy.model_dump(mode="json", by_alias=True, exclude=set(SOURCED_FIELDS)),
        },
        "verdict": {"passed": not failed, "checks": len(findings), "failed": len(failed)},
        "findings": [f.model_dump() for f in findings],
        "deployable": {
            "deployable": not failed and not placeholders,
            "summary": not_deployable(len(placeholders)) if placeholders else "deployable",
            "placeholders": [p.to_dict() for p in placeholders],
        },
        "locationFree": [
            {
                "type": e.type,
                "reason": e.reason,
                "resources": sorted(n for t, n in cloud_types if e.matches(t)),
            }
            for e in load_location_free()
        ],
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
                {
                    "name": e.name,
                    "host": e.host,
                    "cidrs": list(e.cidrs),
                    "ports": list(e.ports),
                    "publicAddresses": public_addresses(e.cidrs)[0],
                    "maxPublicAddresses": e.max_public_addresses
                    or composition.policy.max_egress_public_addresses,
                }
                for e in spec.network.egress
            ],
            "endpoints": endpoints,
            "identityIssuer": spec.identity.issuer_url,
            "inferenceRecords": _inference_records(spec, composition),
            # Each model's pinned weights manifest (sovstack weights manifest); all zeros is a placeholder.
            "weights": [
                {
                    "model": m.name,
                    "manifestSha256": m.weights.manifest_sha256,
                    "status": "unverified"
                    if m.weights.manifest_sha256 is None
                    else "placeholder"
                    if m.weights.manifest_sha256 == "sha256:" + "0" * 64
                    else "pinned",
                }
                for m in spec.models
            ],
            "stateBackend": spec.state.backend_url,
            "secretsProvider": spec.state.secrets_provider,
        },
        "models": _model_licences(loaded),
        "composition": {"refused": refused},
        "schemaChecks": {
            "kubernetesVersion": cluster.kubernetes_minor,
            "ran": schema["ran"],
            "tool": schema.get("tool"),
            "checked": schema.get("checked", 0),
            "failures": schema.get("failures", []),
            # Argo CD Applications are always rendered beside the manifests (argocd/).
            "uncheckedKinds": sorted(unchecked | {"Application"}),
        },
    }


def _inference_records(spec: Any, composition: Composition) -> dict[str, Any]:
    """What the stack records of each request to its models, and where (docs/records.md)."""
    wanted = spec.audit.inference_records
    try:
        shipped = composition.inference_records
    except ValueError:  # the components refused the stack: say so rather than guess
        return {"status": "unknown: the components refused the stack", "schema": SCHEMA_ID}
    if shipped is None:
        status = (
            "off (audit.inferenceRecords.enabled: false)"
            if not wanted.enabled
            else ("none: no model has a route, so no request passes a sovstack Gateway")
        )
    else:
        status = "recorded"
    return {
        "status": status,
        "capture": shipped.capture if shipped else None,
        "schema": SCHEMA_ID,
        "location": f"{spec.audit.bucket}/{RECORDS_PREFIX}" if shipped else None,
        "gatewayNamespaces": list(shipped.gateway_namespaces) if shipped else [],
        "recordedModels": sorted(m.name for m in spec.models if m.route) if shipped else [],
        # Reached another way (no route, or an operator's own gateway): no record is made for them.
        "unrecordedModels": sorted(m.name for m in spec.models if not (shipped and m.route)),
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


def _rendered_images(composition: Composition) -> set[str]:
    """Images the rendered objects pull (init containers and jobs included); none for a refused stack."""
    try:
        return {image for _, image in manifest_images(composition.kubernetes_objects())}
    except ValueError:
        return set()


# ---------------------------------------------------------------------------------- the view
#: Section titles and order. A key not listed here still gets a section, after these, titled from its name.
SECTION_TITLES: dict[str, str] = {
    "generated": "Generated",
    "catalogFiles": "Catalog files",
    "verdict": "Verdict",
    "policy": "Policy",
    "inventory": "Where everything lives",
    "inventory.cluster": "Cluster",
    "inventory.cloudResources": "Cloud resources",
    "inventory.buckets": "Buckets and retention",
    "inventory.volumeClaims": "Volume claims",
    "inventory.images": "Images",
    "inventory.chartRepositories": "Charts",
    "inventory.egress": "Egress destinations",
    "inventory.endpoints": "Endpoints",
    "inventory.stateBackend": "State backend",
    "inventory.secretsProvider": "Secrets provider",
    "deployable": "Deployable",
    "deployable.placeholders": "Placeholders",
    "locationFree": "Location-free resources",
    "findings": "Findings",
    "factsSummary": "Facts verified against their sources",
    "facts": "Facts and their sources",
    "checksRun": "Checks run",
    "schemaChecks": "Schema checks",
    "composition": "Composition",
}
#: In the report's header, not sections of their own.
HEADER_KEYS = ("stack", "customer")
#: Dicts shown as one subsection per key rather than as one table.
NESTED = ("inventory", "deployable")


def section_title(path: str) -> str:
    if path in SECTION_TITLES:
        return SECTION_TITLES[path]
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", path.rsplit(".", 1)[-1]).lower()
    return words[:1].upper() + words[1:]


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items()) or "none"
    return str(value)


def _cell(value: Any) -> dict[str, Any]:
    text = _text(value)
    href = text if isinstance(value, str) and _URL.fullmatch(value) else None
    return {"text": text, "href": href}


def _block(value: Any) -> dict[str, Any]:
    """How one value prints: a table of records, a key/value table, a list, or a line of text."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        headers: list[str] = []
        for row in value:
            headers.extend(k for k in row if k not in headers)
        return {
            "kind": "table",
            "headers": headers,
            "rows": [[_cell(row.get(h)) for h in headers] for row in value],
        }
    if isinstance(value, dict) and value:
        return {
            "kind": "table",
            "headers": ["field", "value"],
            "rows": [[_cell(k), _cell(v)] for k, v in value.items()],
        }
    if isinstance(value, list) and value:
        return {"kind": "list", "entries": [_cell(v) for v in value]}
    if value in (None, [], {}, ""):
        return {"kind": "text", "cell": _cell("none")}
    return {"kind": "text", "cell": _cell(value)}


def _key_order(keys: list[str], prefix: str = "") -> list[str]:
    known = [
        k.removeprefix(prefix)
        for k in SECTION_TITLES
        if k.startswith(prefix) and "." not in k.removeprefix(prefix)
    ]
    return [k for k in known if k in keys] + sorted(k for k in keys if k not in known)


def sections(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every top-level key but the header's as a section {id, title, level, block, children}."""
    out = []
    for key in _key_order([k for k in report if k not in HEADER_KEYS]):
        value = report[key]
        section: dict[str, Any] = {"id": key, "title": section_title(key), "level": 2, "children": []}
        if key in NESTED and isinstance(value, dict):
            section["block"] = None
            section["children"] = [
                {
                    "id": f"{key}-{sub}",
                    "title": section_title(f"{key}.{sub}"),
                    "level": 3,
                    "block": _block(value[sub]),
                    "children": [],
                }
                for sub in _key_order(list(value), f"{key}.")
            ]
        else:
            section["block"] = _block(value)
        out.append(section)
    return out


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
    env.filters["md_cell"] = _md_cell
    return env


def render_report(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    template = _environment().get_template(f"report.{fmt}.j2")
    return str(template.render(report=data, sections=sections(data))).rstrip("\n") + "\n"


def _md_cell(cell: dict[str, Any]) -> str:
    """A table cell's Markdown: pipes escaped, one line, URLs as links."""
    text = cell["text"].replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return f"<{cell['href']}>" if cell["href"] else text
