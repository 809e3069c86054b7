"""Facts that expire: Kubernetes versions per provider, refused when they can no longer be created and
warned 90 days before their end, against an injected date."""

from __future__ import annotations

import datetime as dt

import pytest

from sovstack.components.kubernetes_versions import (
    VersionFactsError,
    VersionVerdict,
    check,
    load_version_facts,
    today,
)

SCW = "(source: https://www.scaleway.com/en/docs/kubernetes/reference-content/version-support-policy/, retrieved 2026-12-01)"
OVH = (
    "(source: https://github.com/ovh/docs/blob/develop/pages/public_cloud/containers_orchestration/"
    "managed_kubernetes/eos-eol-policies/guide.en-gb.md, retrieved 2026-12-01)"
)
UPSTREAM = "(source: https://kubernetes.io/releases/, retrieved 2026-12-01)"
DAY = dt.date(2026, 12, 1)


def test_every_provider_dates_its_versions_in_order_with_a_public_source() -> None:
    facts = load_version_facts()
    assert set(facts) == {"scaleway", "ovh", "upstream"}
    for key, provider in facts.items():
        assert provider.source.startswith("https://") and "/work" not in provider.source_text, key
        minors = [int(v.minor.split(".")[1]) for v in provider.versions]
        assert minors == sorted(minors) and len(set(minors)) == len(minors), key
        for v in provider.versions:
            assert v.available < v.end_of_support, (key, v.minor)
            if v.deprecated is not None:
                assert v.available < v.deprecated <= v.end_of_support, (key, v.minor)
        assert (key == "upstream") == all(v.deprecated is None for v in provider.versions)


@pytest.mark.parametrize(
    ("backend", "version", "message"),
    [
        # The reported defect: 1.31 in every example, no longer creatable on either provider.
        ("scaleway", "1.31", f"scaleway Kubernetes 1.31 can no longer be created: it was removed from cluster creation on 2025-12-02 {SCW}"),
        ("ovh", "1.31", f"ovh Kubernetes 1.31 can no longer be created: it was removed from cluster creation on 2025-10-28 {OVH}"),
        ("scaleway", "1.34", f"scaleway Kubernetes 1.34 can no longer be created: it was removed from cluster creation on 2026-09-29 {SCW}"),
        ("scaleway", "1.30", f"scaleway has no Kubernetes 1.30 in kubernetes.yaml (known: 1.31, 1.32, 1.33, 1.34, 1.35, 1.36) {SCW}"),
        ("ovh", "1.37", f"ovh has no Kubernetes 1.37 in kubernetes.yaml (known: 1.31, 1.32, 1.33, 1.34, 1.35, 1.36) {OVH}"),
    ],
)  # fmt: skip
def test_what_can_no_longer_be_created_is_refused(backend: str, version: str, message: str) -> None:
    assert check(backend, version, DAY) == VersionVerdict(True, message)


@pytest.mark.parametrize(
    ("backend", "version", "message"),
    [
        ("scaleway", "1.35", f"scaleway Kubernetes 1.35 is removed from cluster creation on 2027-01-19, in 49 days: plan the upgrade {SCW}"),
        ("ovh", "1.35", f"ovh Kubernetes 1.35 is removed from cluster creation on 2027-02-28, in 89 days: plan the upgrade {OVH}"),
        ("talos", "1.33.4", f"Kubernetes 1.33 reached its upstream end of life on 2026-06-28: no more security fixes {UPSTREAM}"),
        ("existing", "1.35", f"upstream Kubernetes 1.35 reaches end of support on 2027-02-28, in 89 days: plan the upgrade {UPSTREAM}"),
    ],
)  # fmt: skip
def test_an_end_within_90_days_is_a_warning(backend: str, version: str, message: str) -> None:
    assert check(backend, version, DAY) == VersionVerdict(False, message)


@pytest.mark.parametrize(
    ("backend", "version"), [("scaleway", "1.36"), ("ovh", "1.36"), ("talos", "1.36.4"), ("existing", "1.37")]
)
def test_the_examples_versions_are_fine_today(backend: str, version: str) -> None:
    assert check(backend, version, DAY) is None


def test_the_warning_starts_90_days_before_and_the_refusal_on_the_day() -> None:
    assert check("scaleway", "1.36", dt.date(2027, 4, 7)) is None  # 91 days before 2027-07-07
    warned = check("scaleway", "1.36", dt.date(2027, 4, 8))
    assert warned is not None and not warned.refused and "in 90 days" in warned.message
    refused = check("scaleway", "1.36", dt.date(2027, 7, 7))
    assert refused is not None and refused.refused
    early = check("scaleway", "1.36", dt.date(2026, 7, 6))
    assert early == VersionVerdict(True, f"scaleway offers Kubernetes 1.36 only from 2026-07-07 {SCW}")


def test_today_comes_from_sovstack_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOVSTACK_TODAY", "2027-07-07")
    assert today() == dt.date(2027, 7, 7)
    refused = check("scaleway", "1.36")
    assert refused is not None and refused.refused
    monkeypatch.setenv("SOVSTACK_TODAY", "July 2027")
    with pytest.raises(
        VersionFactsError, match=r"^SOVSTACK_TODAY='July 2027' is not a date like 2026-12-01$"
    ):
        today()
    monkeypatch.delenv("SOVSTACK_TODAY")
    assert today() == dt.date.today()
