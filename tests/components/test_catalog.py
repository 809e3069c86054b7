"""Tests for the region catalog: integrity of the shipped data, lookups, locating endpoints, broken files."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sovstack.components.capacity import load_gpus
from sovstack.components.catalog import (
    DATA_DIR,
    OPERATOR,
    Catalog,
    CatalogError,
    load_catalog,
    load_catalog_from,
    provider_for_backend,
)

CATALOG = load_catalog()


# --- integrity of the shipped data ----------------------------------------------------------------------


def test_regions_and_sites_are_unique_per_provider() -> None:
    keys = Counter((r.provider, r.code) for r in CATALOG.regions)
    assert [key for key, count in keys.items() if count > 1] == []


def test_zone_codes_are_unique_across_the_catalog() -> None:
    zones = Counter(z.code for r in CATALOG.regions for z in r.zones)
    assert [code for code, count in zones.items() if count > 1] == []


def test_every_region_has_a_zone_and_a_known_provider() -> None:
    for region in CATALOG.regions:
        assert region.zones, region.code
        assert region.provider in CATALOG.providers, region.code


def test_every_gpu_in_a_zone_is_in_the_gpu_catalog() -> None:
    known = set(load_gpus())
    unknown = {
        (r.code, z.code, g) for r in CATALOG.regions for z in r.zones for g in z.gpus if g not in known
    }
    assert unknown == set()


def test_every_node_type_gpu_is_in_the_gpu_catalog() -> None:
    known = set(load_gpus())
    for provider in CATALOG.providers.values():
        for node in provider.node_types:
            assert node.gpu in known, (provider.code, node.name)
            assert node.gpus >= 1, (provider.code, node.name)
    assert CATALOG.gpu_ids() <= known


def test_every_fact_has_a_source() -> None:
    for provider in CATALOG.providers.values():
        assert provider.source.strip(), provider.code
        for node in provider.node_types:
            assert node.source.strip(), (provider.code, node.name)
    for region in CATALOG.regions:
        assert region.source.strip(), region.code
        for zone in region.zones:
            assert zone.source.strip(), zone.code
        for endpoint in region.endpoints:
            assert endpoint.source.strip(), endpoint.host
        for cert in region.certifications:
            assert cert.source.strip(), (region.code, cert.name)
    assert CATALOG.countries_source.strip()


def test_each_region_jurisdiction_agrees_with_its_country() -> None:
    disagree = {
        (r.provider, r.code, r.country, r.jurisdiction)
        for r in CATALOG.regions
        if r.jurisdiction != CATALOG.jurisdiction_of(r.country)
    }
    assert disagree == set()


def test_endpoint_hosts_are_lowercase_and_unique() -> None:
    hosts = [e.host for r in CATALOG.regions for e in r.endpoints]
    assert [h for h in hosts if h != h.lower() or h.endswith(".")] == []
    assert [h for h, count in Counter(hosts).items() if count > 1] == []


def test_known_facts_the_examples_rely_on() -> None:
    fr_par = CATALOG.region("scaleway", "fr-par")
    assert fr_par.describe() == "scaleway fr-par (Paris, FR, EU)"
    assert fr_par.zone_codes == ("fr-par-1", "fr-par-2", "fr-par-3")
    assert fr_par.gpus == ("B300", "H100", "H100-SXM", "L4", "L40S")
    assert CATALOG.region("ovh", "GRA11").zone("GRA11") is not None
    assert CATALOG.region(OPERATOR, "se-sto-dc1").is_site
    assert not fr_par.is_site
    node = CATALOG.node_type("scaleway", "H100-2-80G")
    assert node is not None
    assert (node.gpu, node.gpus) == ("H100", 2)
    assert CATALOG.node_type("scaleway", "nope") is None
    assert CATALOG.node_type("aws", "p5.48xlarge") is None


@pytest.mark.parametrize(
    ("country", "jurisdiction"),
    [("FR", "EU"), ("SE", "EU"), ("NO", "EEA"), ("CH", "CH"), ("GB", "UK"), ("US", "other"), ("", "other")],
)
def test_jurisdiction_of(country: str, jurisdiction: str) -> None:
    assert CATALOG.jurisdiction_of(country) == jurisdiction


@pytest.mark.parametrize(
    ("backend", "provider"),
    [("scaleway", "scaleway"), ("ovh", "ovh"), ("talos", OPERATOR), ("existing", OPERATOR)],
)
def test_provider_for_backend(backend: str, provider: str) -> None:
    assert provider_for_backend(backend) == provider


# --- locating endpoints ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "region", "service"),
    [
        ("s3.fr-par.scw.cloud", "fr-par", "object-storage"),
        ("industrial-eu-audit.s3.fr-par.scw.cloud", "fr-par", "object-storage"),  # virtual-hosted bucket
        ("My-Bucket.S3.PL-WAW.scw.cloud.", "pl-waw", "object-storage"),  # case and trailing dot
        ("rg.nl-ams.scw.cloud", "nl-ams", "registry"),
        ("gov-fr-weights.s3.gra.io.cloud.ovh.net", "GRA11", "object-storage"),
        ("vault.se-sto-dc1.sovstack.internal", "se-sto-dc1", "vault"),
    ],
)
def test_locate_known_hosts(host: str, region: str, service: str) -> None:
    found = CATALOG.locate(host)
    assert found is not None
    assert (found[0].code, found[1].service) == (region, service)


@pytest.mark.parametrize(
    "host",
    [
        "evils3.fr-par.scw.cloud",  # a suffix match that is not a sub-domain
        "s3.fr-par.scw.cloud.attacker.example",
        "s3.amazonaws.com",
        "",
    ],
)
def test_locate_unknown_hosts(host: str) -> None:
    assert CATALOG.locate(host) is None


# --- lookups that fail ----------------------------------------------------------------------------------


def test_unknown_region_lists_the_providers_regions() -> None:
    with pytest.raises(CatalogError) as err:
        CATALOG.region("scaleway", "de-fra")
    assert str(err.value) == "unknown scaleway region 'de-fra'; known: fr-par, nl-ams, pl-waw"


def test_unknown_site_lists_the_sites() -> None:
    with pytest.raises(CatalogError) as err:
        CATALOG.region(OPERATOR, "de-fra-dc1")
    assert str(err.value) == "unknown site 'de-fra-dc1'; known: fr-par-dc1, se-sto-dc1"


def test_region_of_an_unknown_provider_says_none_are_known() -> None:
    with pytest.raises(CatalogError) as err:
        CATALOG.region("aws", "eu-west-3")
    assert str(err.value) == "unknown aws region 'eu-west-3'; known: none"


def test_unknown_provider_lists_the_providers() -> None:
    with pytest.raises(CatalogError) as err:
        CATALOG.provider("aws")
    assert str(err.value) == "unknown provider 'aws'; known: operator, ovh, scaleway"


def test_catalog_error_is_a_value_error() -> None:
    assert issubclass(CatalogError, ValueError)


# --- loading files --------------------------------------------------------------------------------------


def _copy_data(tmp_path: Path) -> tuple[Path, Path, Path]:
    regions, sites, countries = (tmp_path / n for n in ("regions.yaml", "sites.yaml", "countries.yaml"))
    for path in (regions, sites, countries):
        shutil.copy(DATA_DIR / path.name, path)
    return regions, sites, countries


def _edit(path: Path, change: Callable[[Any], object]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def test_load_catalog_from_copies_gives_the_same_catalog(tmp_path: Path) -> None:
    catalog = load_catalog_from(*_copy_data(tmp_path))
    assert isinstance(catalog, Catalog)
    assert [(r.provider, r.code) for r in catalog.regions] == [(r.provider, r.code) for r in CATALOG.regions]
    assert catalog.provider(OPERATOR).code == OPERATOR
    assert catalog.provider("ovh").code == "ovh"


def test_load_catalog_is_cached() -> None:
    assert load_catalog() is load_catalog()


def test_region_without_source_names_file_and_field(tmp_path: Path) -> None:
    regions, sites, countries = _copy_data(tmp_path)
    _edit(regions, lambda d: d["regions"][1].pop("source"))
    with pytest.raises(CatalogError) as err:
        load_catalog_from(regions, sites, countries)
    assert str(err.value) == f"invalid catalog data ({regions}): regions[1]: ref without a source"


def test_zone_with_empty_source_is_refused(tmp_path: Path) -> None:
    regions, sites, countries = _copy_data(tmp_path)
    _edit(regions, lambda d: d["regions"][0]["zones"][1].update(source=""))
    with pytest.raises(CatalogError) as err:
        load_catalog_from(regions, sites, countries)
    assert str(err.value) == (
        f"invalid catalog data ({regions}): regions.0.zones.1.source: String should have at least 3 characters"
    )


def test_bad_jurisdiction_in_sites_names_file_and_field(tmp_path: Path) -> None:
    regions, sites, countries = _copy_data(tmp_path)
    _edit(sites, lambda d: d["sites"][0].update(jurisdiction="Mars"))
    with pytest.raises(CatalogError) as err:
        load_catalog_from(regions, sites, countries)
    assert str(err.value).startswith(
        f"invalid catalog data ({sites}): sites.0.jurisdiction: Input should be "
    )


def test_unknown_field_in_a_node_type_is_refused(tmp_path: Path) -> None:
    regions, sites, countries = _copy_data(tmp_path)
    _edit(regions, lambda d: d["providers"]["scaleway"]["nodeTypes"][0].update(price=3))
    with pytest.raises(CatalogError) as err:
        load_catalog_from(regions, sites, countries)
    assert str(err.value) == (
        f"invalid catalog data ({regions}): providers.scaleway.nodeTypes.0.price: Extra inputs are not permitted"
    )


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "sites: 3\n", "sites: [3]\n"])
def test_malformed_sites_file_is_a_catalog_error(tmp_path: Path, text: str) -> None:
    regions, sites, countries = _copy_data(tmp_path)
    sites.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=rf"^invalid catalog data \({sites}\): "):
        load_catalog_from(regions, sites, countries)


def test_yaml_syntax_error_is_a_catalog_error(tmp_path: Path) -> None:
    regions, sites, countries = _copy_data(tmp_path)
    countries.write_text("jurisdictions: [EU\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=rf"^invalid catalog data \({countries}\): while parsing"):
        load_catalog_from(regions, sites, countries)


def test_missing_file_is_a_catalog_error(tmp_path: Path) -> None:
    regions, sites, _ = _copy_data(tmp_path)
    missing = tmp_path / "nope.yaml"
    with pytest.raises(CatalogError, match=rf"^invalid catalog data \({missing}\): .*No such file"):
        load_catalog_from(regions, sites, missing)


def test_public_gateways_are_catalogued_per_zone() -> None:
    """Scaleway's products-availability page: Public Gateway in PAR1, PAR2, AMS1-3, WAW1-3 (not PAR3)."""
    catalog = load_catalog()
    assert catalog.region("scaleway", "fr-par").public_gateway_zones == ("fr-par-1", "fr-par-2")
    assert all(r.public_gateway_zones for r in catalog.regions_of("scaleway"))
    assert not any(r.public_gateway_zones for r in catalog.regions_of("ovh"))


def test_a_fact_with_a_plain_http_link_names_file_and_field(tmp_path: Path) -> None:
    regions, sites, countries = _copy_data(tmp_path)
    _edit(regions, lambda d: d["sources"]["scw-company"].update(url="http://www.scaleway.com/en/about-us/"))
    with pytest.raises(CatalogError) as err:
        load_catalog_from(regions, sites, countries)
    assert str(err.value) == (
        f"invalid catalog data ({regions}): sources.scw-company.url: "
        "'http://www.scaleway.com/en/about-us/' is not an https URL"
    )


def test_catalog_facts_keep_their_link_date_and_flag() -> None:
    catalog = load_catalog()
    zone = catalog.region("scaleway", "fr-par").zone("fr-par-2")
    assert zone is not None and zone.verified is True and zone.retrieved == dt.date(2026, 12, 1)
    assert zone.url == (
        "https://github.com/scaleway/docs-content/blob/00ec3d1cb6978e4f4df284b8dd0dd9f056c9f687/"
        "pages/account/reference-content/products-availability.mdx"
    )
    site = catalog.region("operator", "fr-par-dc1")
    assert site.url is None and site.verified is False and site.url_missing
