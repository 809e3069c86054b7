"""The region catalog: providers, regions, zones, GPUs per zone, operator sites and located endpoints.

Facts live in `components/data/{regions,sites,countries}.yaml`, each with its source; this module
loads and validates them once. It never imports Pulumi.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sovstack.components.kube import load_yaml
from sovstack.components.provenance import ProvenanceError, Sourced, resolve
from sovstack.components.suggest import did_you_mean

DATA_DIR = Path(__file__).parent / "data"

Jurisdiction = Literal["EU", "EEA", "CH", "UK", "other"]
EndpointService = Literal["object-storage", "registry", "charts", "vault", "kubernetes", "identity", "other"]

#: Backends that run at an operator site rather than in a provider's region.
SITE_BACKENDS = ("talos", "existing")
OPERATOR = "operator"


class CatalogError(ValueError):
    """A lookup in the catalog failed; the message lists what exists."""


class _Fact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class NodeType(Sourced, _Fact):
    name: str = Field(description="The provider's instance type or flavor name.")
    gpu: str | None = Field(default=None, description="GPU id (gpus.yaml) on this node type.")
    gpus: int = Field(default=0, ge=0, description="GPUs per node.")
    source: str = Field(min_length=3)


class Provider(Sourced, _Fact):
    code: str = ""
    name: str
    headquarters: str = Field(description="ISO 3166 country of the provider's headquarters.")
    kubernetes: str | None = Field(default=None, description="The managed Kubernetes offering's name.")
    source: str = Field(min_length=3)
    node_types: tuple[NodeType, ...] = Field(default=(), alias="nodeTypes")


class Zone(Sourced, _Fact):
    code: str
    gpus: tuple[str, ...] = ()
    source: str = Field(min_length=3)
    public_gateway: bool = Field(
        default=False,
        alias="publicGateway",
        description="Scaleway: the zone offers Public Gateways (nodes without public IPs egress through one).",
    )


class Endpoint(Sourced, _Fact):
    host: str
    service: EndpointService
    s3_region: str | None = Field(default=None, alias="s3Region")
    source: str = Field(min_length=3)

    def matches(self, host: str) -> bool:
        """True for the host itself and virtual-hosted names below it (`bucket.s3.fr-par.scw.cloud`)."""
        host = host.lower().rstrip(".")
        return host == self.host or host.endswith("." + self.host)


class Certification(Sourced, _Fact):
    name: str
    scope: str = Field(description="The offering the certificate covers.")
    source: str = Field(min_length=3)


class Region(Sourced, _Fact):
    code: str
    provider: str
    city: str
    country: str = Field(pattern=r"^[A-Z]{2}$")
    jurisdiction: Jurisdiction
    source: str = Field(min_length=3)
    zones: tuple[Zone, ...]
    endpoints: tuple[Endpoint, ...] = ()
    certifications: tuple[Certification, ...] = ()

    @property
    def is_site(self) -> bool:
        return self.provider == OPERATOR

    @property
    def zone_codes(self) -> tuple[str, ...]:
        return tuple(z.code for z in self.zones)

    def zone(self, code: str) -> Zone | None:
        return next((z for z in self.zones if z.code == code), None)

    @property
    def public_gateway_zones(self) -> tuple[str, ...]:
        """Zones offering a Public Gateway, in catalog order."""
        return tuple(z.code for z in self.zones if z.public_gateway)

    @property
    def gpus(self) -> tuple[str, ...]:
        """Every GPU type offered in any zone of the region, sorted."""
        return tuple(sorted({g for z in self.zones for g in z.gpus}))

    def describe(self) -> str:
        return f"{self.provider} {self.code} ({self.city}, {self.country}, {self.jurisdiction})"


class _RegionsFile(_Fact):
    providers: dict[str, Provider]
    regions: tuple[Region, ...]


class _SitesFile(_Fact):
    operator: Provider
    sites: tuple[Region, ...]

    @model_validator(mode="before")
    @classmethod
    def _sites_belong_to_operator(cls, data: Any) -> Any:
        # Anything malformed is left as it is for field validation to report with its location.
        sites = data.get("sites") if isinstance(data, dict) else None
        for site in sites if isinstance(sites, list) else []:
            if isinstance(site, dict):
                site.setdefault("provider", OPERATOR)
        return data


class _CountriesFile(Sourced, _Fact):
    source: str
    jurisdictions: dict[Jurisdiction, tuple[str, ...]]


class Catalog:
    """Regions of every provider plus the operator's sites, looked up by (provider, code)."""

    def __init__(
        self, providers: dict[str, Provider], regions: tuple[Region, ...], countries: _CountriesFile
    ) -> None:
        self.providers = providers
        self.regions = regions
        self._by_key = {(r.provider, r.code): r for r in regions}
        self._country_jurisdiction = {c: j for j, cs in countries.jurisdictions.items() for c in cs}
        self.countries_source = countries.source
        self.countries = countries

    # -- lookups ------------------------------------------------------------------------------
    def provider(self, code: str) -> Provider:
        try:
            return self.providers[code]
        except KeyError:
            raise CatalogError(
                f"unknown provider {code!r}{did_you_mean(code, self.providers)}; "
                f"known: {', '.join(sorted(self.providers))}"
            ) from None

    def region(self, provider: str, code: str) -> Region:
        """The region (or, for provider 'operator', the site) with this code."""
        found = self._by_key.get((provider, code))
        if found is None:
            known = sorted(r.code for r in self.regions if r.provider == provider)
            what = "site" if provider == OPERATOR else f"{provider} region"
            raise CatalogError(
                f"unknown {what} {code!r}{did_you_mean(code, known)}; known: {', '.join(known) or 'none'}"
            )
        return found

    def regions_of(self, provider: str) -> list[Region]:
        return [r for r in self.regions if r.provider == provider]

    def node_type(self, provider: str, name: str) -> NodeType | None:
        prov = self.providers.get(provider)
        if prov is None:
            return None
        return next((n for n in prov.node_types if n.name == name), None)

    def jurisdiction_of(self, country: str) -> Jurisdiction:
        return self._country_jurisdiction.get(country, "other")

    def locate(self, host: str) -> tuple[Region, Endpoint] | None:
        """The region or site an endpoint host lives in, when the catalog knows it."""
        for region in self.regions:
            for endpoint in region.endpoints:
                if endpoint.matches(host):
                    return region, endpoint
        return None

    def gpu_ids(self) -> set[str]:
        return {g for r in self.regions for z in r.zones for g in z.gpus} | {
            n.gpu for p in self.providers.values() for n in p.node_types if n.gpu
        }


def provider_for_backend(backend: str) -> str:
    """Catalog provider of a cluster backend: scaleway and ovh are providers, talos and existing sites."""
    return OPERATOR if backend in SITE_BACKENDS else backend


_File = TypeVar("_File", bound=_Fact)


def _read(path: Path, model: type[_File]) -> _File:
    """One catalog file, validated; any problem raises CatalogError naming the file and the field."""
    try:
        with path.open(encoding="utf-8") as handle:
            data = load_yaml(handle)
    except (OSError, yaml.YAMLError) as err:
        raise CatalogError(f"invalid catalog data ({path}): {err}") from None
    try:
        return model.model_validate(resolve(data))
    except ProvenanceError as err:
        raise CatalogError(f"invalid catalog data ({path}): {err}") from None
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise CatalogError(f"invalid catalog data ({path}): {loc}: {first['msg']}") from None


def load_catalog_from(regions_path: Path, sites_path: Path, countries_path: Path) -> Catalog:
    """Load and validate catalog files; a broken file raises CatalogError naming the file and field."""
    regions = _read(regions_path, _RegionsFile)
    sites = _read(sites_path, _SitesFile)
    countries = _read(countries_path, _CountriesFile)
    providers = {code: p.model_copy(update={"code": code}) for code, p in regions.providers.items()}
    providers[OPERATOR] = sites.operator.model_copy(update={"code": OPERATOR})
    return Catalog(providers, regions.regions + sites.sites, countries)


@cache
def load_catalog() -> Catalog:
    """The shipped catalog, loaded once per process."""
    return load_catalog_from(DATA_DIR / "regions.yaml", DATA_DIR / "sites.yaml", DATA_DIR / "countries.yaml")
