"""Tests for components/provenance.py: every fact in every data file has a link (or a reason), a date and a flag."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from sovstack.components.provenance import ProvenanceError, facts_in, resolve

DATA = Path(__file__).resolve().parents[2] / "components" / "data"
DATA_FILES = sorted(DATA.glob("*.yaml"))


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.name)
def test_every_fact_in_every_data_file_has_an_https_url_and_date_or_a_reason(path: Path) -> None:
    document = resolve(yaml.safe_load(path.read_text(encoding="utf-8")), path.name)
    for where, fact in facts_in(document):
        url, missing = fact.get("url"), fact.get("urlMissing")
        assert (url is None) != (missing is None), f"{path.name}: {where}: url or urlMissing, exactly one"
        if url is not None:
            assert url.startswith("https://"), f"{path.name}: {where}: {url}"
            day = fact["retrieved"]
            day = day if isinstance(day, dt.date) else dt.date.fromisoformat(day)
            assert day <= dt.date.today(), f"{path.name}: {where}: retrieved {day} in the future"
        else:
            assert len(missing) > 10 and not fact.get("verified"), f"{path.name}: {where}"
        assert isinstance(fact.get("verified", False), bool), f"{path.name}: {where}"
        assert "/work/" not in str(url) and "/work/shared" not in fact["source"], f"{path.name}: {where}"


def test_the_data_files_hold_facts_and_some_are_verified() -> None:
    facts = [f for p in DATA_FILES for _, f in facts_in(resolve(yaml.safe_load(p.read_text()), p.name))]
    assert len(facts) > 150
    assert any(f.get("verified") for f in facts)


def _fact(**fields: Any) -> dict[str, Any]:
    return {"items": [{"name": "x", "source": "Some docs page, section 2", **fields}]}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {},
            "items[0]: no url; give url (an https link to the public source), ref (an id in `sources:`) "
            "or urlMissing (why no public page exists)",
        ),
        (
            {"url": "http://example.org/a", "retrieved": "2026-01-01"},
            "items[0].url: 'http://example.org/a' is not an https URL",
        ),
        (
            {"url": "docs.example.org/a", "retrieved": "2026-01-01"},
            "items[0].url: 'docs.example.org/a' is not an https URL",
        ),
        (
            {"url": "https://example.org/a"},
            "items[0].retrieved: missing; give the day https://example.org/a was read (YYYY-MM-DD)",
        ),
        (
            {"url": "https://example.org/a", "retrieved": "01/02/2026"},
            "items[0].retrieved: '01/02/2026' is not an ISO date (YYYY-MM-DD)",
        ),
        (
            {"url": "https://example.org/a", "retrieved": "2026-02-30"},
            "items[0].retrieved: '2026-02-30' is not an ISO date (YYYY-MM-DD)",
        ),
        (
            {"url": "https://example.org/a", "retrieved": dt.date(2999, 1, 1)},
            "items[0].retrieved: 2999-01-01 is in the future",
        ),
        (
            {"url": "https://example.org/a", "retrieved": "2026-01-01", "verified": "yes"},
            "items[0].verified: 'yes' is not true or false",
        ),
        (
            {"urlMissing": "operator declaration", "verified": True},
            "items[0].verified: true needs a url to have been checked against",
        ),
        (
            {"urlMissing": "operator declaration", "url": "https://example.org/a", "retrieved": "2026-01-01"},
            "items[0]: give url or urlMissing, not both",
        ),
        ({"ref": "nope"}, "items[0].ref: 'nope' is not in `sources:` (known: none)"),
        (
            {"ref": "nope", "url": "https://example.org/a"},
            "items[0]: ref 'nope' and url both given; keep one",
        ),
    ],
)
def test_a_bad_fact_is_refused_naming_the_file_and_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ProvenanceError) as err:
        resolve(_fact(**fields), "data/x.yaml")
    assert str(err.value) == f"data/x.yaml: {message}"


def test_provenance_without_a_source_is_refused() -> None:
    with pytest.raises(ProvenanceError) as err:
        resolve({"a": {"url": "https://example.org", "retrieved": "2026-01-01"}}, "data/x.yaml")
    assert str(err.value) == "data/x.yaml: a: url, retrieved without a source"


def test_a_ref_takes_its_shared_entry_and_the_table_is_dropped() -> None:
    document = {
        "sources": {
            "docs": {
                "title": "t",
                "url": "https://example.org/p",
                "retrieved": "2026-01-02",
                "verified": True,
            }
        },
        **_fact(ref="docs"),
    }
    assert resolve(document) == {
        "items": [
            {
                "name": "x",
                "source": "Some docs page, section 2",
                "url": "https://example.org/p",
                "retrieved": "2026-01-02",
                "verified": True,
            }
        ]
    }
    assert resolve(document, keep=False) == {"items": [{"name": "x", "source": "Some docs page, section 2"}]}


def test_a_bad_shared_entry_is_refused() -> None:
    with pytest.raises(ProvenanceError) as err:
        resolve({"sources": {"docs": {"url": "https://example.org/p"}}}, "data/x.yaml")
    assert str(err.value) == (
        "data/x.yaml: sources.docs.retrieved: missing; give the day https://example.org/p was read (YYYY-MM-DD)"
    )
    with pytest.raises(ProvenanceError) as err:
        resolve({"sources": {"docs": {"link": "https://example.org/p"}}}, "data/x.yaml")
    assert str(err.value) == "data/x.yaml: sources.docs: unknown field(s) link"
