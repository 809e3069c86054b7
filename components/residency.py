"""Residency policy and rules: where data may live and flow, checked against the region catalog.

Each check returns `Finding`s (rule id, spec path, observed value, pass or fail, and a reason that
cites the catalog fact relied on). Components call the checks on their own args; the application
walks a whole customer spec through them (infra/residency_check.py). No Pulumi import here.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sovstack.components.catalog import Catalog, CatalogError, Jurisdiction, Region, load_catalog
from sovstack.components.kube import image_is_pinned, image_registry, image_repository
from sovstack.components.licences import LICENCES_FILE, get_licence
from sovstack.components.provenance import SOURCED_FIELDS, Sourced, load_data_file

POLICIES_FILE = Path(__file__).parent / "data" / "policies.yaml"
#: The resolved residency policy, as JSON, on every namespace sovstack owns, so an auditor reading the
#: cluster sees which policy the stack was checked against.
POLICY_ANNOTATION = "sovstack.io/residency-policy"
EU_EEA: tuple[Jurisdiction, ...] = ("EU", "EEA")

#: Every rule the engine knows, with what it guarantees. docs/residency.md lists the same table.
RULES: dict[str, str] = {
    "region.known": "The cluster region, zone or site exists in the catalog.",
    "region.country": "Where the cluster, a bucket or an endpoint lives is one of the policy's countries.",
    "region.jurisdiction": "That place is in one of the policy's jurisdictions (EU, EEA, CH, UK, other).",
    "provider.headquarters": "The provider (or the operator, for own sites) is headquartered in the EU/EEA.",
    "region.certification": "The region's offering holds each certification the policy requires.",
    "zone.in-region": "Every pool zone belongs to the cluster's region or site.",
    "storage.location": "Buckets and object-storage endpoints (audit, weights) are located in bounds.",
    "image.registry": "Every container image comes from an allowed registry.",
    "image.pinned": "Every container image is pinned by sha256 digest.",
    "chart.repository": "Every Helm chart comes from an allowed chart repository.",
    "egress.destination": "Every declared egress destination is allowed by the policy and located in bounds.",
    "egress.coverage": "No egress flow opens more public address space than the policy allows (the union of "
    "its CIDRs, private and reserved ranges not counted).",
    "state.backend": "The Pulumi state backend stores state in bounds (no SaaS outside the EU).",
    "secrets.provider": "The Pulumi secrets provider keeps its key in bounds.",
    "secrets.store": "The store the workloads' Secrets are synced from (External Secrets) is located in bounds.",
    "identity.issuer": "The OpenID Connect issuer the cluster and the Gateways trust, and its key set, are located "
    "in bounds.",
    "audit.retention": "Audit logs are retained at least the policy minimum (AI Act Art. 26(6)).",
    "resource.location": "Every cloud resource is placed: by a location input, by an explicit provider "
    "whose location was checked, or by a location-free type listed with its reason (policies.yaml).",
    "model.licence": "Every model's licence allows the stack's declared use, or a commercial grant is declared.",
}


class ResidencyPolicy(Sourced, BaseModel):
    """Which places, suppliers and flows a customer's data may touch."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    description: str = Field(default="", description="What the policy is for, in one sentence.")
    source: str = Field(default="", description="The law, standard or contract the policy implements.")
    countries: tuple[str, ...] = Field(
        default=(),
        description="ISO 3166 alpha-2 countries data may live in. Empty: any country of the allowed jurisdictions.",
    )
    jurisdictions: tuple[Jurisdiction, ...] = Field(
        default=("EU",), min_length=1, description="Legal areas data may live in: EU, EEA, CH, UK, other."
    )
    require_eu_headquarters: bool = Field(
        default=True,
        alias="requireEuHeadquarters",
        description="Providers must be headquartered in the EU/EEA (no extraterritorial exposure).",
    )
    required_certifications: tuple[str, ...] = Field(
        default=(),
        alias="requiredCertifications",
        description="Certifications the region's offering must hold (names as in regions.yaml).",
    )
    allowed_registries: tuple[str, ...] = Field(
        default=(),
        alias="allowedRegistries",
        description="Registry hosts, or host/path prefixes, images may come from.",
    )
    allowed_chart_repositories: tuple[str, ...] = Field(
        default=(), alias="allowedChartRepositories", description="Helm chart repository URLs (prefixes)."
    )
    allowed_egress: tuple[str, ...] = Field(
        default=(),
        alias="allowedEgress",
        description="Host patterns (shell-style, `*.scw.cloud`) workloads may reach. Empty: no egress.",
    )
    max_egress_public_addresses: int = Field(
        default=65536,
        ge=1,
        alias="maxEgressPublicAddresses",
        description="Most public addresses one egress flow may open (the union of its CIDRs, private and "
        "reserved ranges not counted); 65536 is a /16. A flow may raise its own limit (maxPublicAddresses).",
    )
    min_audit_retention_days: int = Field(
        default=180,
        ge=1,
        alias="minAuditRetentionDays",
        description="Minimum audit-log retention in days; 180 is the AI Act Art. 26(6) floor.",
    )
    require_pinned_weights: bool = Field(
        default=False,
        alias="requirePinnedWeights",
        description="Every model's weights must be pinned (`weights.*.manifestSha256`), so pods verify them "
        "before serving. Off: unpinned weights are reported, not refused.",
    )

    @field_validator("countries")
    @classmethod
    def _alpha2(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if not (len(code) == 2 and code.isascii() and code.isalpha() and code.isupper()):
                raise ValueError(f"{code!r} is not an ISO 3166 alpha-2 country code (e.g. FR, SE)")
        return value


class PolicyError(ValueError):
    """A policy or profile could not be built; the message names the field."""


class Finding(BaseModel):
    """One rule applied to one place in the spec."""

    model_config = ConfigDict(frozen=True)

    rule: str
    path: str
    observed: str
    passed: bool
    reason: str
    source: str = ""

    def line(self, prefix: str = "") -> str:
        verdict = "ok" if self.passed else "FAIL"
        where = f"{prefix}: {self.path}" if prefix else self.path
        return f"{where}: [{verdict}] {self.rule}: {self.reason}"


class LocationFree(BaseModel):
    """A resource type that places no data of its own, and why (policies.yaml `locationFree`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(
        min_length=1, description="Pulumi type token, or a shell-style pattern (`kubernetes:*`)."
    )
    reason: str = Field(min_length=10, description="Why the type places no data: shown in the report.")

    def matches(self, type_token: str) -> bool:
        return fnmatch.fnmatchcase(type_token, self.type)


@cache
def _policies_file() -> dict[str, Any]:
    raw: dict[str, Any] = load_data_file(POLICIES_FILE)
    return raw


@cache
def load_profiles() -> dict[str, ResidencyPolicy]:
    raw = _policies_file()
    return {name: ResidencyPolicy.model_validate(body) for name, body in raw["profiles"].items()}


@cache
def load_location_free() -> tuple[LocationFree, ...]:
    """The resource types the stack guard accepts without a location (policies.yaml `locationFree`)."""
    return tuple(LocationFree.model_validate(entry) for entry in _policies_file().get("locationFree", ()))


def location_free_reason(type_token: str) -> str | None:
    """Why `type_token` needs no location, or None when the policy data does not list it."""
    return next((e.reason for e in load_location_free() if e.matches(type_token)), None)


def resolve_policy(
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
) -> ResidencyPolicy:
    """A named profile with overrides applied, or a policy spelled out in full."""
    if policy is not None:
        base: dict[str, Any] = {}
    elif profile is not None:
        profiles = load_profiles()
        if profile not in profiles:
            raise PolicyError(f"unknown profile {profile!r}; known: {', '.join(sorted(profiles))}")
        base = profiles[profile].model_dump(by_alias=True)
    else:
        raise PolicyError("name a profile or spell out a policy")
    merged = {**base, **(policy or {}), **(overrides or {})}
    try:
        return ResidencyPolicy.model_validate(merged)
    except ValidationError as err:
        first = err.errors()[0]
        raise PolicyError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


class Engine:
    """Applies one policy, with one catalog, to the places a spec names."""

    def __init__(self, policy: ResidencyPolicy, catalog: Catalog | None = None) -> None:
        self.policy = policy
        self.catalog = catalog or load_catalog()

    # -- helpers ------------------------------------------------------------------------------
    def _finding(
        self, rule: str, path: str, observed: object, passed: bool, reason: str, source: str = ""
    ) -> Finding:
        return Finding(
            rule=rule, path=path, observed=str(observed), passed=passed, reason=reason, source=source
        )

    def _place(self, path: str, region: Region, what: str) -> list[Finding]:
        """Country and jurisdiction of a place the catalog knows."""
        p = self.policy
        place = f"{what} {region.describe()}"
        if p.countries:
            ok = region.country in p.countries
            country = self._finding(
                "region.country",
                path,
                region.code,
                ok,
                f"{place} is in {region.country}; policy allows {', '.join(p.countries)}",
                region.source,
            )
        else:
            country = self._finding(
                "region.country",
                path,
                region.code,
                True,
                f"{place} is in {region.country}; policy restricts jurisdictions only",
                region.source,
            )
        jurisdiction = self._finding(
            "region.jurisdiction",
            path,
            region.code,
            region.jurisdiction in p.jurisdictions,
            f"{place} is under {region.jurisdiction} law; policy allows {', '.join(p.jurisdictions)}",
            region.source,
        )
        return [country, jurisdiction]

    def _headquarters(self, path: str, provider_code: str) -> Finding:
        provider = self.catalog.provider(provider_code)
        juris = self.catalog.jurisdiction_of(provider.headquarters)
        ok = (not self.policy.require_eu_headquarters) or juris in EU_EEA
        need = "policy requires EU/EEA" if self.policy.require_eu_headquarters else "policy does not restrict"
        return self._finding(
            "provider.headquarters",
            path,
            provider_code,
            ok,
            f"{provider.name} is headquartered in {provider.headquarters} ({juris}); {need}",
            provider.source,
        )

    # -- rules --------------------------------------------------------------------------------
    def region(self, path: str, provider: str, code: str) -> list[Finding]:
        """Cluster region (or site): known, in bounds, provider headquarters, certifications."""
        try:
            region = self.catalog.region(provider, code)
        except CatalogError as err:
            return [self._finding("region.known", path, code, False, str(err))]
        findings = [
            self._finding(
                "region.known", path, code, True, f"{region.describe()} is catalogued", region.source
            )
        ]
        findings += self._place(path, region, "region" if not region.is_site else "site")
        findings.append(self._headquarters(path, provider))
        held = {c.name: c for c in region.certifications}
        for cert in self.policy.required_certifications:
            has = held.get(cert)
            findings.append(
                self._finding(
                    "region.certification",
                    path,
                    code,
                    has is not None,
                    f"{region.describe()} holds {cert} for {has.scope}"
                    if has
                    else f"no source says {region.describe()} holds {cert}; policy requires it",
                    has.source if has else region.source,
                )
            )
        return findings

    def zone(self, path: str, provider: str, region_code: str, zone: str) -> Finding:
        try:
            region = self.catalog.region(provider, region_code)
        except CatalogError as err:
            return self._finding("zone.in-region", path, zone, False, str(err))
        found = region.zone(zone)
        if found is None:
            return self._finding(
                "zone.in-region",
                path,
                zone,
                False,
                f"zone {zone!r} is not in {region.describe()} (zones: {', '.join(region.zone_codes)})",
                region.source,
            )
        return self._finding(
            "zone.in-region", path, zone, True, f"zone {zone} is in {region.describe()}", found.source
        )

    def located(self, path: str, url: str, what: str, rule: str = "storage.location") -> list[Finding]:
        """An endpoint given by URL or host: located through the catalog, then checked for bounds."""
        host = _host_of(url)
        where = self.catalog.locate(host) if host else None
        if where is None:
            return [
                self._finding(
                    rule,
                    path,
                    url,
                    False,
                    f"{what} host {host or url!r} is not a catalogued endpoint, so its location is unknown; "
                    "use an endpoint listed in regions.yaml or declare it at a site in sites.yaml",
                )
            ]
        region, endpoint = where
        place = self._place(path, region, f"{what} {host}")
        hq = self._headquarters(path, region.provider)
        ok = all(f.passed for f in place) and hq.passed
        reasons = "; ".join(f.reason for f in [*place, hq] if not f.passed) or (
            f"{what} {host} is {endpoint.service} in {region.describe()}"
        )
        return [self._finding(rule, path, url, ok, reasons, endpoint.source)]

    def storage_region(self, path: str, provider: str, region_code: str, what: str) -> list[Finding]:
        """A bucket placed by provider region code (Scaleway, OVHcloud)."""
        try:
            region = self.catalog.region(provider, region_code)
        except CatalogError as err:
            return [self._finding("storage.location", path, region_code, False, str(err))]
        place = self._place(path, region, what)
        ok = all(f.passed for f in place)
        reasons = "; ".join(f.reason for f in place if not f.passed) or f"{what} is in {region.describe()}"
        return [self._finding("storage.location", path, region_code, ok, reasons, region.source)]

    def registry(self, path: str, image: str) -> Finding:
        """Only where an image (or an image repository a chart pulls from) comes from."""
        allowed = self.policy.allowed_registries
        registry = image_registry(image)
        repository = image_repository(image)
        ok = any(registry == a or repository.startswith(a.rstrip("/") + "/") for a in allowed)
        return self._finding(
            "image.registry",
            path,
            image,
            ok,
            f"registry {registry} is allowed"
            if ok
            else f"registry {registry} is not allowed; allowed: {', '.join(allowed) or 'none'}",
        )

    def image(self, path: str, image: str) -> list[Finding]:
        registry_finding = self.registry(path, image)
        pinned = image_is_pinned(image)
        pinned_finding = self._finding(
            "image.pinned",
            path,
            image,
            pinned,
            "pinned by sha256 digest"
            if pinned
            else "not pinned: add @sha256:<digest> so every pull is the same",
        )
        return [registry_finding, pinned_finding]

    def chart_repository(self, path: str, repository: str) -> Finding:
        allowed = self.policy.allowed_chart_repositories
        repo = repository.rstrip("/")
        ok = any(repo == a.rstrip("/") or repo.startswith(a.rstrip("/") + "/") for a in allowed)
        return self._finding(
            "chart.repository",
            path,
            repository,
            ok,
            f"chart repository {repository} is allowed"
            if ok
            else f"chart repository {repository} is not allowed; allowed: {', '.join(allowed) or 'none'}",
        )

    def egress(self, path: str, host: str) -> list[Finding]:
        patterns = self.policy.allowed_egress
        name = _host_of(host) or host
        if not any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns):
            return [
                self._finding(
                    "egress.destination",
                    path,
                    host,
                    False,
                    f"egress to {name} is not allowed; allowed: {', '.join(patterns) or 'none (no egress)'}",
                )
            ]
        return self.located(path, name, "egress destination", rule="egress.destination")

    def egress_coverage(self, path: str, cidrs: Iterable[str], limit: int | None = None) -> Finding:
        """The public address space one flow opens: its CIDRs' union, private and reserved ranges left out.

        Two halves (`0.0.0.0/1`, `128.0.0.0/1`) are the whole internet as surely as `0.0.0.0/0`; a flow
        covering every public address is refused whatever its limit.
        """
        allowed = limit if limit is not None else self.policy.max_egress_public_addresses
        where = "its maxPublicAddresses" if limit is not None else "policy maxEgressPublicAddresses"
        text = ", ".join(cidrs)
        try:
            count, whole = public_addresses(cidrs)
        except ValueError as err:
            return self._finding("egress.coverage", path, text, False, f"not a CIDR list: {err}")
        if whole:
            return self._finding(
                "egress.coverage",
                path,
                text,
                False,
                f"the CIDRs together cover every public address ({count}), the same as 0.0.0.0/0 or ::/0; "
                "list the destination's own networks",
            )
        return self._finding(
            "egress.coverage",
            path,
            text,
            count <= allowed,
            f"opens {count} public addresses; {where} allows {allowed}",
        )

    def state_backend(self, path: str, url: str) -> list[Finding]:
        try:
            parsed = urlparse(url)
        except ValueError as err:
            return [self._finding("state.backend", path, url, False, f"not a valid URL: {err}")]
        scheme = parsed.scheme
        if not url or parsed.netloc in ("api.pulumi.com", "app.pulumi.com"):
            return [
                self._finding(
                    "state.backend",
                    path,
                    url or "(Pulumi Cloud default)",
                    False,
                    "Pulumi Cloud is a SaaS run by a US company; use a self-managed backend in bounds",
                )
            ]
        if scheme == "file":
            return [
                self._finding(
                    "state.backend",
                    path,
                    url,
                    True,
                    "local file backend: state stays on the machine that runs pulumi, which must be in bounds",
                )
            ]
        if scheme == "s3":
            endpoint = parse_qs(parsed.query).get("endpoint", [""])[0]
            if not endpoint:
                return [
                    self._finding(
                        "state.backend",
                        path,
                        url,
                        False,
                        "s3:// without endpoint= means AWS S3 (a US provider); add an in-bounds endpoint",
                    )
                ]
            return self.located(path, endpoint, "state bucket", rule="state.backend")
        return [
            self._finding(
                "state.backend",
                path,
                url,
                False,
                f"{scheme}:// backends are run by non-EU providers; use s3:// with an in-bounds endpoint",
            )
        ]

    def secrets_provider(
        self, path: str, provider: str, vault_address: str | None, vault_path: str
    ) -> list[Finding]:
        scheme = provider.split("://", 1)[0] if "://" in provider else provider
        if scheme == "passphrase":
            return [
                self._finding(
                    "secrets.provider",
                    path,
                    provider,
                    True,
                    "passphrase: the key is derived locally and never leaves the operator",
                )
            ]
        if scheme == "hashivault":
            if not vault_address:
                return [
                    self._finding(
                        "secrets.provider",
                        path,
                        provider,
                        False,
                        "hashivault needs the Vault address to check where the key lives",
                    )
                ]
            return self.located(vault_path, vault_address, "Vault", rule="secrets.provider")
        return [
            self._finding(
                "secrets.provider",
                path,
                provider or "(Pulumi Cloud default)",
                False,
                f"{scheme or 'default'} keeps the key with a non-EU provider; use passphrase or hashivault in bounds",
            )
        ]

    def retention(self, path: str, days: int) -> Finding:
        minimum = self.policy.min_audit_retention_days
        return self._finding(
            "audit.retention",
            path,
            days,
            days >= minimum,
            f"audit logs kept {days} days; policy minimum is {minimum} days",
            "EU AI Act Art. 26(6) and Art. 19 (at least six months)",
        )

    def weights_pinned(self, path: str, manifest_sha256: str | None) -> Finding:
        """A model's weights: pinned by their manifest's sha256, or refused where the policy says so."""
        required = self.policy.require_pinned_weights
        if manifest_sha256 is not None:
            reason = f"weights verified against manifest {manifest_sha256} before the model serves"
        elif required:
            reason = "weights not pinned: this policy requires manifestSha256 (sovstack weights manifest)"
        else:
            reason = "weights not pinned: served unverified (this policy allows it)"
        return self._finding(
            "weights.pinned",
            path,
            manifest_sha256 or "unpinned",
            manifest_sha256 is not None or not required,
            reason,
            "EU AI Act Art. 12 (which exact model served each request), Art. 15 (integrity); docs/records.md",
        )

    def licence(self, path: str, model: str, licence: str, use: str, grant: str | None) -> Finding:
        """`model` (a catalog id or a custom model's name) under `licence`, used for `use`.

        Passes when the licence allows the use, or when the stack declares a commercial grant for the
        model; a licence missing from data/licences.yaml allows nothing (fail closed).
        """
        known = get_licence(licence)
        source = known.source if known else f"not in {LICENCES_FILE.parent.name}/{LICENCES_FILE.name}"
        allows = known.allows if known else ()
        if use in allows:
            return self._finding(
                "model.licence", path, licence, True, f"{model}: {licence} allows {use} use", source
            )
        if grant is not None:
            return self._finding(
                "model.licence",
                path,
                licence,
                True,
                f"{model}: {licence} does not allow {use} use; the stack declares the grant {grant!r}",
                source,
            )
        allowed = ", ".join(allows) if allows else "nothing sovstack knows of"
        return self._finding(
            "model.licence",
            path,
            licence,
            False,
            f"{model} is under the {licence} ({source}), which allows {allowed}, not {use} use: declare "
            "your commercial licence in licensing.grants or serve another model",
            source,
        )


def policy_annotation(policy: ResidencyPolicy) -> str:
    """The policy as compact, sorted JSON (the value of POLICY_ANNOTATION)."""
    body = policy.model_dump(mode="json", by_alias=True, exclude={"description", "source", *SOURCED_FIELDS})
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


#: Address space that is not the public internet (RFC 6890 special-purpose registries): not counted.
_NOT_PUBLIC_V4 = tuple(
    ipaddress.collapse_addresses(
        ipaddress.IPv4Network(n)
        for n in (
            "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
            "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
            "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        )
    )
)  # fmt: skip
#: IPv6: only global unicast (2000::/3) is public, less documentation, IETF and 6to4 space.
_GLOBAL_V6 = ipaddress.IPv6Network("2000::/3")
_NOT_PUBLIC_V6 = tuple(
    ipaddress.collapse_addresses(
        ipaddress.IPv6Network(n) for n in ("2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20")
    )
)
_ALL_PUBLIC_V4 = (1 << 32) - sum(n.num_addresses for n in _NOT_PUBLIC_V4)
_ALL_PUBLIC_V6 = _GLOBAL_V6.num_addresses - sum(n.num_addresses for n in _NOT_PUBLIC_V6)


def _overlap(a: Any, b: Any) -> int:
    """Addresses two CIDRs share: they nest or are disjoint."""
    if a.version != b.version:
        return 0
    if a.subnet_of(b):
        return int(a.num_addresses)
    if b.subnet_of(a):
        return int(b.num_addresses)
    return 0


def public_addresses(cidrs: Iterable[str]) -> tuple[int, bool]:
    """(public addresses the union of `cidrs` covers, whether it covers all of one family's)."""
    v4 = list(
        ipaddress.collapse_addresses(ipaddress.IPv4Network(c, strict=False) for c in cidrs if ":" not in c)
    )
    v6 = list(ipaddress.collapse_addresses(ipaddress.IPv6Network(c, strict=False) for c in cidrs if ":" in c))
    count4 = sum(n.num_addresses - sum(_overlap(n, r) for r in _NOT_PUBLIC_V4) for n in v4)
    count6 = sum(_overlap(n, _GLOBAL_V6) - sum(_overlap(n, r) for r in _NOT_PUBLIC_V6) for n in v6)
    return count4 + count6, count4 >= _ALL_PUBLIC_V4 or count6 >= _ALL_PUBLIC_V6


def failures(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if not f.passed]


def _host_of(url: str) -> str:
    """The host of a URL, or the string itself when it is already a host."""
    if "://" in url:
        try:
            return (urlparse(url).hostname or "").lower()
        except ValueError:  # an unparsable URL has no host the catalog could know
            return ""
    return url.split("/", 1)[0].split(":", 1)[0].lower()


#: Input property names that place a cloud resource somewhere (Pulumi camelCase and snake_case).
LOCATION_KEYS = (
    "region",
    "regionName",
    "region_name",
    "regions",
    "zone",
    "location",
    "availabilityZones",
    "availability_zones",
)


def location_values(props: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, value) for every plain-string location input; Outputs not yet known are skipped."""
    found: list[tuple[str, str]] = []
    for key in LOCATION_KEYS:
        value = props.get(key)
        values = value if isinstance(value, list | tuple) else [value]
        found.extend((key, v) for v in values if isinstance(v, str) and v)
    return found


def pending_location_keys(props: dict[str, Any]) -> list[str]:
    """Location inputs whose value is not known yet (a Pulumi Output, or a list holding one): the stack
    guard checks them when they resolve, before the resource is created."""

    def pending(value: Any) -> bool:
        if isinstance(value, list | tuple):
            return any(pending(v) for v in value)
        return value is not None and not isinstance(value, str | int | float | bool | dict)

    return [key for key in LOCATION_KEYS if pending(props.get(key))]


#: Explicit providers placed by another input than `region`: (type token, input, what it is).
PROVIDER_ENDPOINT_KEYS = {"pulumi:providers:minio": ("minioServer", "MinIO server")}


def resource_location_findings(
    engine: Engine,
    type_token: str,
    name: str,
    props: dict[str, Any],
    *,
    placed_by_provider: str | None = None,
) -> list[Finding]:
    """Stack-wide safety net: any resource whose region, zone or location input is out of bounds, or
    whose place cannot be determined at all (fail closed).

    The provider comes from the type token (`scaleway:...`, `ovh:...`); a located value may be a
    region code, a zone code or an object-storage region (`GRA`). A provider the catalog does not
    know, with a location input, is refused: sovstack cannot tell where it puts data. A resource with no
    location input passes only when its explicit provider was itself placed and checked
    (`placed_by_provider` names it) or when policies.yaml lists its type as location-free.
    """
    path = f"{type_token}::{name}"
    package = type_token.split(":", 1)[0]
    if type_token.startswith("pulumi:providers:"):
        # A provider resource places what it creates by its configured region.
        package = type_token.rsplit(":", 1)[-1]
    endpoint = PROVIDER_ENDPOINT_KEYS.get(type_token)
    if endpoint is not None and isinstance(props.get(endpoint[0]), str) and props[endpoint[0]]:
        key, what = endpoint
        return engine.located(f"{path}.{key}", props[key], what, rule="resource.location")
    values = location_values(props)
    if not values:
        if pending_location_keys(props):
            return []  # checked when the Output resolves (infra/program.py residency_guard)
        return [_unplaced(engine, type_token, path, placed_by_provider)]
    if package not in engine.catalog.providers:
        key, value = values[0]
        return [
            engine._finding(
                "region.known",
                f"{path}.{key}",
                value,
                False,
                f"provider {package!r} is not in the catalog, so {value!r} cannot be placed in bounds; "
                "add it to regions.yaml with sources or use a catalogued provider",
            )
        ]
    findings: list[Finding] = []
    for key, value in values:
        region = _region_for_value(engine.catalog, package, value)
        if region is None:
            findings.append(
                engine._finding(
                    "region.known",
                    f"{path}.{key}",
                    value,
                    False,
                    f"{value!r} is not a catalogued {package} region, zone or storage region",
                )
            )
            continue
        findings += engine._place(f"{path}.{key}", region, "resource")
        findings.append(engine._headquarters(f"{path}.{key}", package))
    return findings


def _unplaced(engine: Engine, type_token: str, path: str, placed_by_provider: str | None) -> Finding:
    """A resource with no location input: location-free by policy data, placed by its provider, or refused."""
    reason = location_free_reason(type_token)
    if reason is not None:
        return engine._finding(
            "resource.location",
            path,
            type_token,
            True,
            f"location-free: {reason}",
            "policies.yaml locationFree",
        )
    if placed_by_provider is not None:
        return engine._finding(
            "resource.location",
            path,
            type_token,
            True,
            f"placed by its explicit {placed_by_provider}, whose location was checked",
        )
    return engine._finding(
        "resource.location",
        path,
        type_token,
        False,
        "sovstack cannot determine where this resource places data: it has no region, zone or location "
        "input, no explicit provider whose location was checked, and policies.yaml does not list "
        f"{type_token} as location-free; set its location or add the type to locationFree with the reason",
    )


def _region_for_value(catalog: Catalog, provider: str, value: str) -> Region | None:
    wanted = value.lower()
    for region in catalog.regions_of(provider):
        if region.code.lower() == wanted or any(z.code.lower() == wanted for z in region.zones):
            return region
        if any((e.s3_region or "").lower() == wanted for e in region.endpoints):
            return region
    return None
