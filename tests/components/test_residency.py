"""Tests for the residency engine: every rule passing and failing, profiles, overrides, cited sources."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sovstack.components.catalog import DATA_DIR, Catalog, load_catalog_from
from sovstack.components.residency import (
    RULES,
    Engine,
    Finding,
    PolicyError,
    ResidencyPolicy,
    failures,
    load_location_free,
    load_profiles,
    location_free_reason,
    pending_location_keys,
    public_addresses,
    resolve_policy,
    resource_location_findings,
)

DIGEST = "@sha256:" + "1" * 64
EU = Engine(resolve_policy("eu"))
FR = Engine(resolve_policy("fr-sovereign"))
AIRGAP = Engine(resolve_policy("airgapped"))
FR_ONLY_EU = Engine(resolve_policy("eu", overrides={"countries": ["FR"]}))

#: A catalog with a US-headquartered provider and a certified French region, for the rules the
#: shipped catalog cannot fail (its providers are all French; no region claims a certification).
FIXTURE_REGIONS = {
    "providers": {
        "hyperscaler": {
            "name": "Hyperscaler Inc",
            "headquarters": "US",
            "source": "fixture: company register",
        },
        "cloudfr": {"name": "Cloud FR", "headquarters": "FR", "source": "fixture: company register"},
    },
    "regions": [
        {
            "code": "eu-central-1",
            "provider": "hyperscaler",
            "city": "Frankfurt",
            "country": "DE",
            "jurisdiction": "EU",
            "source": "fixture: hyperscaler regions page",
            "zones": [{"code": "euc1-a", "gpus": ["H100"], "source": "fixture: zone list"}],
            "endpoints": [
                {
                    "host": "s3.eu-central-1.hyperscaler.example",
                    "service": "object-storage",
                    "source": "fixture: endpoint list",
                }
            ],
        },
        {
            "code": "paris",
            "provider": "cloudfr",
            "city": "Paris",
            "country": "FR",
            "jurisdiction": "EU",
            "source": "fixture: Cloud FR regions page",
            "zones": [{"code": "paris-1", "gpus": ["L40S"], "source": "fixture: zone list"}],
            "certifications": [
                {"name": "SecNumCloud", "scope": "Cloud FR Kubernetes", "source": "fixture: ANSSI list"}
            ],
        },
    ],
}


def _with_ref(node: Any) -> Any:
    if isinstance(node, list):
        return [_with_ref(item) for item in node]
    if isinstance(node, dict):
        return {
            **{k: _with_ref(v) for k, v in node.items()},
            **({"ref": "fixture"} if "source" in node else {}),
        }
    return node


@pytest.fixture(scope="module")
def fixture_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    folder = tmp_path_factory.mktemp("catalog")
    # Fixture facts have no public page: one shared `sources:` entry says so (components/provenance.py).
    document = {"sources": {"fixture": {"urlMissing": "test fixture"}}, **_with_ref(FIXTURE_REGIONS)}
    (folder / "regions.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    for name in ("sites.yaml", "countries.yaml"):
        shutil.copy(DATA_DIR / name, folder / name)
    return load_catalog_from(folder / "regions.yaml", folder / "sites.yaml", folder / "countries.yaml")


def only(findings: list[Finding], rule: str) -> Finding:
    matching = [f for f in findings if f.rule == rule]
    assert len(matching) == 1, findings
    return matching[0]


# --- every rule, passing and failing: (id, findings, rule, passed, reason) -------------------------------

Case = tuple[str, Callable[[], list[Finding]], str, bool, str]
MNPL = "Mistral Non-Production License (MNPL-0.1)"

CASES: list[Case] = [
    (
        "region-known",
        lambda: EU.region("p", "scaleway", "fr-par"),
        "region.known",
        True,
        "scaleway fr-par (Paris, FR, EU) is catalogued",
    ),
    (
        "region-unknown",
        lambda: EU.region("p", "ovh", "GRA99"),
        "region.known",
        False,
        "unknown ovh region 'GRA99'; did you mean 'GRA9'?; known: AP-SOUTH-MUM, BHS5, DE1, EU-SOUTH-MIL, EU-WEST-PAR, "
        "EU-WEST-RBX, GRA11, GRA7, GRA9, SBG5, SGP1, SYD1, UK1, US-EAST-VA-1, US-WEST-OR-1, WAW1",
    ),
    (
        "country-in",
        lambda: FR.region("p", "ovh", "GRA11"),
        "region.country",
        True,
        "region ovh GRA11 (Gravelines, FR, EU) is in FR; policy allows FR",
    ),
    (
        "country-any-in-jurisdiction",
        lambda: EU.region("p", "scaleway", "pl-waw"),
        "region.country",
        True,
        "region scaleway pl-waw (Warsaw, PL, EU) is in PL; policy restricts jurisdictions only",
    ),
    (
        "country-out",
        lambda: FR.region("p", "scaleway", "pl-waw"),
        "region.country",
        False,
        "region scaleway pl-waw (Warsaw, PL, EU) is in PL; policy allows FR",
    ),
    (
        "site-country-out",
        lambda: FR.region("p", "operator", "se-sto-dc1"),
        "region.country",
        False,
        "site operator se-sto-dc1 (Stockholm, SE, EU) is in SE; policy allows FR",
    ),
    (
        "jurisdiction-in",
        lambda: EU.region("p", "ovh", "WAW1"),
        "region.jurisdiction",
        True,
        "region ovh WAW1 (Warsaw, PL, EU) is under EU law; policy allows EU",
    ),
    (
        "jurisdiction-uk",
        lambda: EU.region("p", "ovh", "UK1"),
        "region.jurisdiction",
        False,
        "region ovh UK1 (London, GB, UK) is under UK law; policy allows EU",
    ),
    (
        "jurisdiction-other",
        lambda: EU.region("p", "ovh", "US-EAST-VA-1"),
        "region.jurisdiction",
        False,
        "region ovh US-EAST-VA-1 (Vint Hill, US, other) is under other law; policy allows EU",
    ),
    (
        "headquarters-eu",
        lambda: EU.region("p", "scaleway", "fr-par"),
        "provider.headquarters",
        True,
        "Scaleway is headquartered in FR (EU); policy requires EU/EEA",
    ),
    (
        "headquarters-operator",
        lambda: EU.region("p", "operator", "fr-par-dc1"),
        "provider.headquarters",
        True,
        "sovstack operator is headquartered in FR (EU); policy requires EU/EEA",
    ),
    (
        "zone-in",
        lambda: [EU.zone("p", "scaleway", "fr-par", "fr-par-2")],
        "zone.in-region",
        True,
        "zone fr-par-2 is in scaleway fr-par (Paris, FR, EU)",
    ),
    (
        "zone-out",
        lambda: [EU.zone("p", "scaleway", "fr-par", "nl-ams-1")],
        "zone.in-region",
        False,
        "zone 'nl-ams-1' is not in scaleway fr-par (Paris, FR, EU) (zones: fr-par-1, fr-par-2, fr-par-3)",
    ),
    (
        "zone-of-unknown-site",
        lambda: [EU.zone("p", "operator", "de-fra-dc1", "a")],
        "zone.in-region",
        False,
        "unknown site 'de-fra-dc1'; known: fr-par-dc1, se-sto-dc1",
    ),
    (
        "storage-known-in-bounds",
        lambda: FR.located("p", "https://gov-fr-weights.s3.gra.io.cloud.ovh.net/x", "weights storage"),
        "storage.location",
        True,
        "weights storage gov-fr-weights.s3.gra.io.cloud.ovh.net is object-storage in ovh GRA11 "
        "(Gravelines, FR, EU)",
    ),
    (
        "storage-known-out-of-bounds",
        lambda: FR.located("p", "https://s3.pl-waw.scw.cloud", "weights storage"),
        "storage.location",
        False,
        "weights storage s3.pl-waw.scw.cloud scaleway pl-waw (Warsaw, PL, EU) is in PL; policy allows FR",
    ),
    (
        "storage-unknown-host",
        lambda: EU.located("p", "https://minio.example.com:9000/bucket", "weights storage"),
        "storage.location",
        False,
        "weights storage host 'minio.example.com' is not a catalogued endpoint, so its location is unknown; "
        "use an endpoint listed in regions.yaml or declare it at a site in sites.yaml",
    ),
    (
        "storage-region-in",
        lambda: FR.storage_region("p", "ovh", "GRA11", "audit bucket b"),
        "storage.location",
        True,
        "audit bucket b is in ovh GRA11 (Gravelines, FR, EU)",
    ),
    (
        "storage-region-out",
        lambda: FR.storage_region("p", "scaleway", "nl-ams", "audit bucket b"),
        "storage.location",
        False,
        "audit bucket b scaleway nl-ams (Amsterdam, NL, EU) is in NL; policy allows FR",
    ),
    (
        "storage-region-unknown",
        lambda: FR.storage_region("p", "scaleway", "de-fra", "audit bucket b"),
        "storage.location",
        False,
        "unknown scaleway region 'de-fra'; known: fr-par, nl-ams, pl-waw",
    ),
    (
        "registry-allowed",
        lambda: EU.image("p", f"rg.fr-par.scw.cloud/mirror/vllm:1{DIGEST}"),
        "image.registry",
        True,
        "registry rg.fr-par.scw.cloud is allowed",
    ),
    (
        "registry-refused",
        lambda: AIRGAP.image("p", f"rg.fr-par.scw.cloud/mirror/vllm:1{DIGEST}"),
        "image.registry",
        False,
        "registry rg.fr-par.scw.cloud is not allowed; allowed: registry.fr-par-dc1.sovstack.internal, "
        "registry.se-sto-dc1.sovstack.internal",
    ),
    (
        "registry-lookalike-host",
        lambda: EU.image("p", f"rg.fr-par.scw.cloud.attacker.example/vllm:1{DIGEST}"),
        "image.registry",
        False,
        "registry rg.fr-par.scw.cloud.attacker.example is not allowed; allowed: rg.fr-par.scw.cloud, "
        "rg.nl-ams.scw.cloud, rg.pl-waw.scw.cloud, registry.fr-par-dc1.sovstack.internal, "
        "registry.se-sto-dc1.sovstack.internal",
    ),
    (
        "pinned",
        lambda: EU.image("p", f"rg.fr-par.scw.cloud/mirror/vllm:1{DIGEST}"),
        "image.pinned",
        True,
        "pinned by sha256 digest",
    ),
    (
        "not-pinned",
        lambda: EU.image("p", "rg.fr-par.scw.cloud/mirror/vllm:latest"),
        "image.pinned",
        False,
        "not pinned: add @sha256:<digest> so every pull is the same",
    ),
    (
        "chart-allowed",
        lambda: [EU.chart_repository("p", "https://helm.ngc.nvidia.com/nvidia/")],
        "chart.repository",
        True,
        "chart repository https://helm.ngc.nvidia.com/nvidia/ is allowed",
    ),
    (
        "chart-refused",
        lambda: [AIRGAP.chart_repository("p", "https://helm.ngc.nvidia.com/nvidia")],
        "chart.repository",
        False,
        "chart repository https://helm.ngc.nvidia.com/nvidia is not allowed; "
        "allowed: https://charts.fr-par-dc1.sovstack.internal",
    ),
    (
        "chart-prefix-lookalike",
        lambda: [EU.chart_repository("p", "https://helm.ngc.nvidia.com/nvidia-evil")],
        "chart.repository",
        False,
        "chart repository https://helm.ngc.nvidia.com/nvidia-evil is not allowed; allowed: "
        "https://helm.ngc.nvidia.com/nvidia, https://charts.fr-par-dc1.sovstack.internal",
    ),
    (
        "egress-allowed-located",
        lambda: EU.egress("p", "s3.fr-par.scw.cloud"),
        "egress.destination",
        True,
        "egress destination s3.fr-par.scw.cloud is object-storage in scaleway fr-par (Paris, FR, EU)",
    ),
    (
        "egress-not-in-allow-list",
        lambda: AIRGAP.egress("p", "huggingface.co"),
        "egress.destination",
        False,
        "egress to huggingface.co is not allowed; allowed: *.fr-par-dc1.sovstack.internal, "
        "*.se-sto-dc1.sovstack.internal",
    ),
    (
        "egress-allowed-but-out-of-bounds",
        lambda: FR_ONLY_EU.egress("p", "s3.pl-waw.scw.cloud"),
        "egress.destination",
        False,
        "egress destination s3.pl-waw.scw.cloud scaleway pl-waw (Warsaw, PL, EU) is in PL; policy allows FR",
    ),
    (
        "egress-allowed-but-unknown",
        lambda: EU.egress("p", "api.scw.cloud"),
        "egress.destination",
        False,
        "egress destination host 'api.scw.cloud' is not a catalogued endpoint, so its location is unknown; "
        "use an endpoint listed in regions.yaml or declare it at a site in sites.yaml",
    ),
    (
        "egress-none-allowed",
        lambda: Engine(ResidencyPolicy()).egress("p", "s3.fr-par.scw.cloud"),
        "egress.destination",
        False,
        "egress to s3.fr-par.scw.cloud is not allowed; allowed: none (no egress)",
    ),
    (
        "state-pulumi-cloud-default",
        lambda: EU.state_backend("p", ""),
        "state.backend",
        False,
        "Pulumi Cloud is a SaaS run by a US company; use a self-managed backend in bounds",
    ),
    (
        "state-pulumi-cloud-url",
        lambda: EU.state_backend("p", "https://api.pulumi.com"),
        "state.backend",
        False,
        "Pulumi Cloud is a SaaS run by a US company; use a self-managed backend in bounds",
    ),
    (
        "state-file",
        lambda: EU.state_backend("p", "file:///var/lib/pulumi"),
        "state.backend",
        True,
        "local file backend: state stays on the machine that runs pulumi, which must be in bounds",
    ),
    (
        "state-s3-without-endpoint",
        lambda: EU.state_backend("p", "s3://state-bucket?region=eu-west-3"),
        "state.backend",
        False,
        "s3:// without endpoint= means AWS S3 (a US provider); add an in-bounds endpoint",
    ),
    (
        "state-s3-in-bounds",
        lambda: FR.state_backend("p", "s3://state?endpoint=s3.gra.io.cloud.ovh.net&region=gra"),
        "state.backend",
        True,
        "state bucket s3.gra.io.cloud.ovh.net is object-storage in ovh GRA11 (Gravelines, FR, EU)",
    ),
    (
        "state-s3-out-of-bounds",
        lambda: FR.state_backend("p", "s3://state?endpoint=s3.nl-ams.scw.cloud"),
        "state.backend",
        False,
        "state bucket s3.nl-ams.scw.cloud scaleway nl-ams (Amsterdam, NL, EU) is in NL; policy allows FR",
    ),
    (
        "state-gcs",
        lambda: EU.state_backend("p", "gs://state-bucket"),
        "state.backend",
        False,
        "gs:// backends are run by non-EU providers; use s3:// with an in-bounds endpoint",
    ),
    (
        "state-azure",
        lambda: EU.state_backend("p", "azblob://state"),
        "state.backend",
        False,
        "azblob:// backends are run by non-EU providers; use s3:// with an in-bounds endpoint",
    ),
    (
        "secrets-passphrase",
        lambda: EU.secrets_provider("p", "passphrase", None, "v"),
        "secrets.provider",
        True,
        "passphrase: the key is derived locally and never leaves the operator",
    ),
    (
        "secrets-vault-in-bounds",
        lambda: FR.secrets_provider(
            "p", "hashivault://sovstack", "https://vault.fr-par-dc1.sovstack.internal:8200", "v"
        ),
        "secrets.provider",
        True,
        "Vault vault.fr-par-dc1.sovstack.internal is vault in operator fr-par-dc1 (Paris, FR, EU)",
    ),
    (
        "secrets-vault-out-of-bounds",
        lambda: FR.secrets_provider(
            "p", "hashivault://sovstack", "https://vault.se-sto-dc1.sovstack.internal:8200", "v"
        ),
        "secrets.provider",
        False,
        "Vault vault.se-sto-dc1.sovstack.internal operator se-sto-dc1 (Stockholm, SE, EU) is in SE; "
        "policy allows FR",
    ),
    (
        "secrets-vault-without-address",
        lambda: EU.secrets_provider("p", "hashivault://sovstack", None, "v"),
        "secrets.provider",
        False,
        "hashivault needs the Vault address to check where the key lives",
    ),
    (
        "secrets-awskms",
        lambda: EU.secrets_provider("p", "awskms://alias/sovstack?region=eu-west-3", None, "v"),
        "secrets.provider",
        False,
        "awskms keeps the key with a non-EU provider; use passphrase or hashivault in bounds",
    ),
    (
        "secrets-default",
        lambda: EU.secrets_provider("p", "", None, "v"),
        "secrets.provider",
        False,
        "default keeps the key with a non-EU provider; use passphrase or hashivault in bounds",
    ),
    (
        "secret-store-in-bounds",
        lambda: FR.located(
            "p", "https://vault.fr-par-dc1.sovstack.internal:8200", "secret store", rule="secrets.store"
        ),
        "secrets.store",
        True,
        "secret store vault.fr-par-dc1.sovstack.internal is vault in operator fr-par-dc1 (Paris, FR, EU)",
    ),
    (
        "secret-store-out-of-bounds",
        lambda: FR.located(
            "p", "https://vault.se-sto-dc1.sovstack.internal:8200", "secret store", rule="secrets.store"
        ),
        "secrets.store",
        False,
        "secret store vault.se-sto-dc1.sovstack.internal operator se-sto-dc1 (Stockholm, SE, EU) is in SE; "
        "policy allows FR",
    ),
    (
        "identity-issuer-at-a-declared-site",
        lambda: FR.located(
            "p",
            "https://sso.fr-par-dc1.sovstack.internal/realms/gov-fr",
            "identity issuer",
            rule="identity.issuer",
        ),
        "identity.issuer",
        True,
        "identity issuer sso.fr-par-dc1.sovstack.internal is identity in operator fr-par-dc1 (Paris, FR, EU)",
    ),
    (
        "identity-issuer-uncatalogued",
        lambda: FR.located(
            "p", "https://login.microsoftonline.com/contoso/v2.0", "identity issuer", rule="identity.issuer"
        ),
        "identity.issuer",
        False,
        "identity issuer host 'login.microsoftonline.com' is not a catalogued endpoint, so its location is "
        "unknown; use an endpoint listed in regions.yaml or declare it at a site in sites.yaml",
    ),
    (
        "egress-coverage-small",
        lambda: [FR.egress_coverage("p", ["51.159.0.0/24", "10.0.0.0/8"])],
        "egress.coverage",
        True,
        "opens 256 public addresses; policy maxEgressPublicAddresses allows 65536",
    ),
    (
        "egress-coverage-two-halves",
        lambda: [FR.egress_coverage("p", ["0.0.0.0/1", "128.0.0.0/1"], limit=1 << 33)],
        "egress.coverage",
        False,
        "the CIDRs together cover every public address (3702258688), the same as 0.0.0.0/0 or ::/0; "
        "list the destination's own networks",
    ),
    (
        "egress-coverage-broad-provider-range",
        lambda: [FR.egress_coverage("p", ["51.158.0.0/15"])],
        "egress.coverage",
        False,
        "opens 131072 public addresses; policy maxEgressPublicAddresses allows 65536",
    ),
    (
        "egress-coverage-flow-override",
        lambda: [FR.egress_coverage("p", ["51.158.0.0/15"], limit=131072)],
        "egress.coverage",
        True,
        "opens 131072 public addresses; its maxPublicAddresses allows 131072",
    ),
    (
        "retention-enough",
        lambda: [FR.retention("p", 365)],
        "audit.retention",
        True,
        "audit logs kept 365 days; policy minimum is 365 days",
    ),
    (
        "retention-short",
        lambda: [FR.retention("p", 364)],
        "audit.retention",
        False,
        "audit logs kept 364 days; policy minimum is 365 days",
    ),
    (
        "licence-allows-use",
        lambda: [EU.licence("p", "mistral-7b-instruct-v0-3", "Apache-2.0", "production", None)],
        "model.licence",
        True,
        "mistral-7b-instruct-v0-3: Apache-2.0 allows production use",
    ),
    (
        "licence-granted",
        lambda: [EU.licence("p", "codestral-22b-v0-1", MNPL, "production", "MAI-2026-7")],
        "model.licence",
        True,
        f"codestral-22b-v0-1: {MNPL} does not allow production use; the stack declares the grant 'MAI-2026-7'",
    ),
    (
        "licence-refuses-use",
        lambda: [EU.licence("p", "codestral-22b-v0-1", MNPL, "production", None)],
        "model.licence",
        False,
        f"codestral-22b-v0-1 is under the {MNPL} (https://mistral.ai/licenses/MNPL-0.1.md), which allows "
        "evaluation, research, not production use: declare your commercial licence in licensing.grants or "
        "serve another model",
    ),
    (
        "licence-unknown",
        lambda: [EU.licence("p", "own-model", "Some Custom Licence", "research", None)],
        "model.licence",
        False,
        "own-model is under the Some Custom Licence (not in data/licences.yaml), which allows nothing "
        "sovstack knows of, not research use: declare your commercial licence in licensing.grants or serve "
        "another model",
    ),
]


@pytest.mark.parametrize(
    ("findings", "rule", "passed", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule(findings: Callable[[], list[Finding]], rule: str, passed: bool, reason: str) -> None:
    finding = only(findings(), rule)
    assert (finding.passed, finding.reason) == (passed, reason)
    assert finding.path in ("p", "v")


def _fixture_findings(catalog: Catalog) -> list[Finding]:
    """What the engine says on the fixture catalog, for the outcomes the shipped catalog cannot produce
    (a US-headquartered provider, a certification held or not)."""
    eu_hq = Engine(resolve_policy(policy={"jurisdictions": ["EU"], "requireEuHeadquarters": True}), catalog)
    certified = Engine(resolve_policy(policy={"requiredCertifications": ["SecNumCloud"]}), catalog)
    return [
        *eu_hq.region("p", "hyperscaler", "eu-central-1"),
        *certified.region("p", "cloudfr", "paris"),
        *certified.region("p", "hyperscaler", "eu-central-1"),
    ]


def test_every_rule_is_exercised_passing_and_failing(fixture_catalog: Catalog) -> None:
    """Each rule of RULES, as the engine itself reports it, both passing and failing somewhere above.

    The outcomes come from running the cases through the engine, not from the cases' own labels: a rule
    the engine stopped emitting, or could no longer fail, shows here.
    """
    produced = {(f.rule, f.passed) for case in CASES for f in case[1]()}
    produced |= {(f.rule, f.passed) for f in _fixture_findings(fixture_catalog)}
    produced |= {(f.rule, f.passed) for f in _resource_findings()}
    assert {rule for rule, _ in produced} <= set(RULES), "the engine emits a rule RULES does not document"
    missing = {(rule, passed) for rule in RULES for passed in (True, False)} - produced
    assert not missing, f"never produced by the engine: {sorted(missing)}"


# --- rules that need a fixture catalog ------------------------------------------------------------------


def test_us_headquartered_provider_fails_when_policy_requires_eu(fixture_catalog: Catalog) -> None:
    engine = Engine(
        resolve_policy(policy={"jurisdictions": ["EU"], "requireEuHeadquarters": True}), fixture_catalog
    )
    findings = engine.region("sovstack:customer.cluster.region", "hyperscaler", "eu-central-1")
    hq = only(findings, "provider.headquarters")
    assert (hq.passed, hq.reason, hq.source) == (
        False,
        "Hyperscaler Inc is headquartered in US (other); policy requires EU/EEA",
        "fixture: company register",
    )
    # The place itself is in bounds: only the headquarters rule fails.
    assert [f.rule for f in failures(findings)] == ["provider.headquarters"]


def test_us_headquartered_provider_passes_when_policy_does_not_restrict(fixture_catalog: Catalog) -> None:
    engine = Engine(resolve_policy(policy={"requireEuHeadquarters": False}), fixture_catalog)
    hq = only(engine.region("p", "hyperscaler", "eu-central-1"), "provider.headquarters")
    assert (hq.passed, hq.reason) == (
        True,
        "Hyperscaler Inc is headquartered in US (other); policy does not restrict",
    )


def test_storage_at_a_us_headquartered_provider_fails(fixture_catalog: Catalog) -> None:
    engine = Engine(resolve_policy(policy={"jurisdictions": ["EU"]}), fixture_catalog)
    [finding] = engine.located("p", "https://bucket.s3.eu-central-1.hyperscaler.example", "weights storage")
    assert (finding.rule, finding.passed, finding.reason, finding.source) == (
        "storage.location",
        False,
        "Hyperscaler Inc is headquartered in US (other); policy requires EU/EEA",
        "fixture: endpoint list",
    )


def test_certification_held_and_not_held(fixture_catalog: Catalog) -> None:
    engine = Engine(resolve_policy(policy={"requiredCertifications": ["SecNumCloud"]}), fixture_catalog)
    held = only(engine.region("p", "cloudfr", "paris"), "region.certification")
    assert (held.passed, held.reason, held.source) == (
        True,
        "cloudfr paris (Paris, FR, EU) holds SecNumCloud for Cloud FR Kubernetes",
        "fixture: ANSSI list",
    )
    missing = only(engine.region("p", "hyperscaler", "eu-central-1"), "region.certification")
    assert (missing.passed, missing.reason, missing.source) == (
        False,
        "no source says hyperscaler eu-central-1 (Frankfurt, DE, EU) holds SecNumCloud; policy requires it",
        "fixture: hyperscaler regions page",
    )


def test_no_certification_finding_when_none_required() -> None:
    assert [f for f in EU.region("p", "scaleway", "fr-par") if f.rule == "region.certification"] == []


def test_shipped_regions_claim_no_certification_yet() -> None:
    """No region claims a certification without a source; a shipped policy requiring one fails."""
    engine = Engine(resolve_policy("fr-sovereign", overrides={"requiredCertifications": ["SecNumCloud"]}))
    finding = only(engine.region("p", "ovh", "GRA11"), "region.certification")
    assert not finding.passed
    assert (
        finding.reason
        == "no source says ovh GRA11 (Gravelines, FR, EU) holds SecNumCloud; policy requires it"
    )


# --- sources and output ---------------------------------------------------------------------------------


def test_region_findings_cite_the_catalog_source() -> None:
    findings = FR.region("p", "ovh", "GRA11")
    assert [f.rule for f in findings] == [
        "region.known",
        "region.country",
        "region.jurisdiction",
        "provider.headquarters",
    ]
    region_source = "ovh/docs MKS datacenters guide 2026-02-03 (Free plan, one zone)"
    assert [f.source for f in findings[:3]] == [region_source] * 3
    assert findings[3].source.startswith("OVH Groupe SA")
    assert all(f.source for f in findings)


def test_zone_and_endpoint_findings_cite_their_own_source() -> None:
    assert EU.zone("p", "ovh", "GRA11", "GRA11").source == (
        "ovh/docs MKS GPU flavors: A100, H100, L4, L40S node pools in GRA11 only"
    )
    [located] = EU.located("p", "s3.fr-par.scw.cloud", "audit endpoint")
    assert located.source == "Scaleway docs object-storage endpoints"
    assert EU.retention("p", 200).source == "EU AI Act Art. 26(6) and Art. 19 (at least six months)"


def test_finding_line() -> None:
    finding = FR.retention("sovstack:customer.audit.retentionDays", 30)
    assert finding.line("stacks/Pulumi.gov-fr.yaml") == (
        "stacks/Pulumi.gov-fr.yaml: sovstack:customer.audit.retentionDays: [FAIL] audit.retention: "
        "audit logs kept 30 days; policy minimum is 365 days"
    )
    assert (
        FR.retention("x", 400).line()
        == "x: [ok] audit.retention: audit logs kept 400 days; policy minimum is 365 days"
    )


def test_failures_keeps_only_failed_findings() -> None:
    findings = [FR.retention("a", 400), FR.retention("b", 1)]
    assert [f.path for f in failures(findings)] == ["b"]


# --- profiles and policies ------------------------------------------------------------------------------


def test_profiles_load() -> None:
    profiles = load_profiles()
    assert sorted(profiles) == ["airgapped", "eu", "fr-sovereign", "se-sovereign"]
    for name, policy in profiles.items():
        assert policy.description, name
        assert policy.source, name
        assert policy.require_eu_headquarters, name
        assert policy.min_audit_retention_days >= 180, name
    assert profiles["fr-sovereign"].countries == ("FR",)
    assert profiles["se-sovereign"].countries == ("SE",)
    assert profiles["eu"].countries == ()
    assert profiles["fr-sovereign"].min_audit_retention_days == 365


def test_overrides_replace_only_the_fields_they_name() -> None:
    policy = resolve_policy("airgapped", overrides={"countries": ["FR"], "minAuditRetentionDays": 400})
    base = load_profiles()["airgapped"]
    assert policy.countries == ("FR",)
    assert policy.min_audit_retention_days == 400
    assert policy.allowed_registries == base.allowed_registries
    assert policy.allowed_egress == base.allowed_egress
    assert policy.description == base.description


def test_policy_spelled_out_starts_from_defaults() -> None:
    policy = resolve_policy(policy={"countries": ["SE"], "allowedEgress": ["*.example.se"]})
    assert policy == ResidencyPolicy(countries=("SE",), allowed_egress=("*.example.se",))
    assert (policy.jurisdictions, policy.require_eu_headquarters, policy.min_audit_retention_days) == (
        ("EU",),
        True,
        180,
    )
    assert policy.allowed_registries == ()


def test_unknown_profile_lists_the_profiles() -> None:
    with pytest.raises(PolicyError) as err:
        resolve_policy("de-sovereign")
    assert (
        str(err.value) == "unknown profile 'de-sovereign'; known: airgapped, eu, fr-sovereign, se-sovereign"
    )


def test_neither_profile_nor_policy_is_an_error() -> None:
    with pytest.raises(PolicyError) as err:
        resolve_policy()
    assert str(err.value) == "name a profile or spell out a policy"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"countries": 5}, "countries: Input should be a valid tuple"),
        ({"bogus": True}, "bogus: Extra inputs are not permitted"),
        ({"jurisdictions": ["Mars"]}, "jurisdictions.0: Input should be 'EU', 'EEA', 'CH', 'UK' or 'other'"),
        ({"jurisdictions": []}, "jurisdictions: Tuple should have at least 1 item after validation, not 0"),
        ({"minAuditRetentionDays": 0}, "minAuditRetentionDays: Input should be greater than or equal to 1"),
    ],
)
def test_bad_override_names_the_field(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError) as err:
        resolve_policy("eu", overrides=overrides)
    assert str(err.value) == message


def test_rules_table_is_documented() -> None:
    """docs/residency.md lists every rule id the engine knows."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "residency.md").read_text(encoding="utf-8")
    missing = [rule for rule in RULES if f"`{rule}`" not in doc]
    assert missing == []


# ------------------------------------------------------------------- the stack guard's findings (fail closed)
def _resource_findings() -> list[Finding]:
    return [
        *resource_location_findings(FR, "kubernetes:core/v1:ConfigMap", "c", {"data": {}}),
        *resource_location_findings(FR, "aws:s3/bucket:Bucket", "b", {"bucket": "b"}),
    ]


@pytest.mark.parametrize(
    ("type_token", "props", "placed_by", "passed", "reason"),
    [
        (
            "aws:s3/bucket:Bucket",
            {"bucket": "b"},
            None,
            False,
            "sovstack cannot determine where this resource places data: it has no region, zone or location "
            "input, no explicit provider whose location was checked, and policies.yaml does not list "
            "aws:s3/bucket:Bucket as location-free; set its location or add the type to locationFree with "
            "the reason",
        ),
        (
            "pulumi:providers:scaleway",
            {},
            None,
            False,
            "sovstack cannot determine where this resource places data: it has no region, zone or location "
            "input, no explicit provider whose location was checked, and policies.yaml does not list "
            "pulumi:providers:scaleway as location-free; set its location or add the type to locationFree "
            "with the reason",
        ),
        (
            "scaleway:network/vpc:Vpc",
            {"name": "v"},
            "scaleway provider",
            True,
            "placed by its explicit scaleway provider, whose location was checked",
        ),
        (
            "kubernetes:core/v1:Namespace",
            {},
            None,
            True,
            "location-free: a Kubernetes object lives in the cluster, whose region or site the cluster rules "
            "check",
        ),
        (
            "pulumi:providers:minio",
            {"minioServer": "s3.fr-par-dc1.sovstack.internal"},
            None,
            True,
            "MinIO server s3.fr-par-dc1.sovstack.internal is object-storage in operator fr-par-dc1 (Paris, FR, EU)",
        ),
        (
            "pulumi:providers:minio",
            {"minioServer": "s3.amazonaws.com"},
            None,
            False,
            "MinIO server host 's3.amazonaws.com' is not a catalogued endpoint, so its location is unknown; use "
            "an endpoint listed in regions.yaml or declare it at a site in sites.yaml",
        ),
    ],
)
def test_resource_without_location_fails_closed(
    type_token: str, props: dict[str, object], placed_by: str | None, passed: bool, reason: str
) -> None:
    [finding] = resource_location_findings(FR, type_token, "r", props, placed_by_provider=placed_by)
    assert (finding.rule, finding.passed, finding.reason) == ("resource.location", passed, reason)


def test_location_free_types_each_give_a_reason() -> None:
    entries = load_location_free()
    assert {e.type for e in entries} >= {"kubernetes:*", "pulumi:providers:kubernetes", "talos:*"}
    assert all(len(e.reason) >= 10 for e in entries)
    assert location_free_reason("aws:s3/bucket:Bucket") is None


def test_output_valued_location_is_left_to_the_guard() -> None:
    class Pending:  # stands for a pulumi.Output: not a plain value
        pass

    assert pending_location_keys({"region": Pending(), "zone": "fr-par-1"}) == ["region"]
    assert pending_location_keys({"regions": ["GRA11", Pending()]}) == ["regions"]
    assert resource_location_findings(FR, "scaleway:object/bucket:Bucket", "b", {"region": Pending()}) == []


@pytest.mark.parametrize(
    ("cidrs", "count", "whole"),
    [
        (["0.0.0.0/1", "128.0.0.0/1"], 3702258688, True),
        (["10.0.0.0/8", "192.168.0.0/16", "192.0.2.0/24"], 0, False),
        (["51.159.0.0/24", "51.159.0.0/25"], 256, False),
        (["2000::/3"], (1 << 125) - (1 << 105) - (1 << 96) - (1 << 112) - (1 << 108), True),
        (["2001:db8::/32"], 0, False),
    ],
)
def test_public_addresses_of_a_flow(cidrs: list[str], count: int, whole: bool) -> None:
    assert public_addresses(cidrs) == (count, whole)


def test_policy_countries_are_alpha2() -> None:
    with pytest.raises(PolicyError) as err:
        resolve_policy("eu", overrides={"countries": ["FRA"]})
    assert (
        str(err.value)
        == "countries: Value error, 'FRA' is not an ISO 3166 alpha-2 country code (e.g. FR, SE)"
    )
