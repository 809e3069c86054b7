"""Facts that expire: which Kubernetes minor each backend can create today, and until when.

`components/data/kubernetes.yaml` dates each version per provider (available, deprecated, end of
support) with its source; `check` compares them with today's date and says whether a version is
refused (it can no longer be created, or it is unknown) or merits a warning (its end is near).
Today's date is `SOVSTACK_TODAY` (ISO) when set, so tests and audits are reproducible. No Pulumi.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from sovstack.components.provenance import Sourced, load_data_file

FACTS_FILE = Path(__file__).parent / "data" / "kubernetes.yaml"
TODAY_ENV = "SOVSTACK_TODAY"
#: Warn when a version's end of support (or, for a managed offer, its removal from cluster creation)
#: is this close.
WARN_DAYS = 90
#: Backends whose provider creates the control plane; the others follow the upstream dates.
MANAGED = {"scaleway": "scaleway", "ovh": "ovh"}
UPSTREAM = "upstream"


class VersionFactsError(ValueError):
    """kubernetes.yaml is unreadable, or SOVSTACK_TODAY is not a date."""


class _Fact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class VersionDates(_Fact):
    minor: str = Field(pattern=r"^1\.\d{2}$")
    available: dt.date
    deprecated: dt.date | None = Field(
        default=None, description="No longer offered for new clusters from this day (managed offers)."
    )
    end_of_support: dt.date = Field(alias="endOfSupport")
    note: str | None = None


class ProviderVersions(Sourced, _Fact):
    source: str = Field(pattern=r"^https://")
    source_text: str = Field(alias="sourceText", min_length=3)
    retrieved: dt.date
    versions: tuple[VersionDates, ...] = Field(min_length=1)

    def get(self, minor: str) -> VersionDates | None:
        return next((v for v in self.versions if v.minor == minor), None)


class _File(_Fact):
    providers: dict[str, ProviderVersions]


@cache
def load_version_facts(path: Path = FACTS_FILE) -> dict[str, ProviderVersions]:
    """kubernetes.yaml, validated once."""
    try:
        return _File.model_validate(load_data_file(path)).providers
    except (OSError, ValueError) as err:  # ValidationError and ProvenanceError are ValueErrors
        raise VersionFactsError(f"invalid version facts ({path}): {err}") from None


def today() -> dt.date:
    """`SOVSTACK_TODAY` (YYYY-MM-DD) when set, else the machine's date."""
    raw = os.environ.get(TODAY_ENV)
    if not raw:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise VersionFactsError(f"{TODAY_ENV}={raw!r} is not a date like 2026-12-01") from None


@dataclass(frozen=True)
class VersionVerdict:
    """What `check` found: refused (exit 2 in validate) or a warning; `message` ends with the source."""

    refused: bool
    message: str


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def check(backend: str, version: str, on: dt.date | None = None) -> VersionVerdict | None:
    """None when `version` can be created on `backend` and nothing ends within WARN_DAYS of `on`."""
    on = on or today()
    key = MANAGED.get(backend, UPSTREAM)
    facts = load_version_facts()[key]
    minor = _minor(version)
    dates = facts.get(minor)
    cite = f"(source: {facts.source}, retrieved {facts.retrieved})"
    known = ", ".join(v.minor for v in facts.versions)
    if dates is None:
        if key == UPSTREAM:
            return VersionVerdict(
                False, f"Kubernetes {minor} has no dates in kubernetes.yaml (known: {known}) {cite}"
            )
        return VersionVerdict(
            True, f"{backend} has no Kubernetes {minor} in kubernetes.yaml (known: {known}) {cite}"
        )
    # (day, what happens on it, past tense) for the managed cut-offs and the end of support.
    ends = [
        (day, soon, past)
        for day, soon, past in (
            (dates.deprecated, "is removed from cluster creation", "was removed from cluster creation"),
            (dates.end_of_support, "reaches end of support", "reached end of support"),
        )
        if day is not None
    ]
    if key != UPSTREAM:
        if on < dates.available:
            return VersionVerdict(
                True, f"{backend} offers Kubernetes {minor} only from {dates.available} {cite}"
            )
        for day, _, past in ends:
            if on >= day:
                return VersionVerdict(
                    True, f"{backend} Kubernetes {minor} can no longer be created: it {past} on {day} {cite}"
                )
    elif on >= dates.end_of_support:
        return VersionVerdict(
            False,
            f"Kubernetes {minor} reached its upstream end of life on {dates.end_of_support}: no more "
            f"security fixes {cite}",
        )
    who = backend if key != UPSTREAM else "upstream"
    for day, soon, _ in ends:
        left = (day - on).days
        if left <= WARN_DAYS:
            return VersionVerdict(
                False, f"{who} Kubernetes {minor} {soon} on {day}, in {left} days: plan the upgrade {cite}"
            )
    return None
