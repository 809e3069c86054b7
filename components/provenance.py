"""Where each fact in components/data/*.yaml comes from: a public link, the day it was read, and whether
it was checked against that page.

A fact is any mapping in a data file with a `source` (prose: the page, section or key). Beside it:

    url         https link to the public page, or the file at a pinned tag or commit
    retrieved   ISO date the page was read (the fact's expiry clock: re-read it, then move the date)
    verified    true only when the value was compared with the page's text on `retrieved`
    urlMissing  instead of `url`, when no public page exists: the reason (an operator's declaration)
    ref         instead of the four above: the id of an entry in the file's top-level `sources:` table,
                for facts that share one page

`resolve` checks all of them when a loader reads the file (fail closed: a fact without a link or a
reason is an error) and replaces each `ref` by its entry. It never imports Pulumi.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from sovstack.components.kube import load_yaml

#: Keys a fact may carry about its provenance (besides its `source` prose).
PROVENANCE_KEYS = ("url", "urlMissing", "retrieved", "verified", "ref")
#: The field names of `Sourced` (excluded where a model is dumped as configuration, not as a fact).
SOURCED_FIELDS = frozenset({"url", "url_missing", "retrieved", "verified"})
#: The top-level table of shared sources, by id.
SOURCES_KEY = "sources"
_HTTPS = re.compile(r"^https://[^\s/$.?#][^\s]*$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ProvenanceError(ValueError):
    """A fact's url, retrieved date or verified flag is missing or malformed; names file and field."""


class Sourced(BaseModel):
    """The provenance fields a loaded fact keeps (already checked by `resolve`)."""

    url: str | None = Field(default=None, description="https link to the public source.")
    url_missing: str | None = Field(
        default=None, alias="urlMissing", description="Why no public link exists (instead of `url`)."
    )
    retrieved: dt.date | None = Field(default=None, description="The day the source was read.")
    verified: bool = Field(default=False, description="The value was checked against the source text.")

    def provenance(self) -> dict[str, Any]:
        """url, retrieved (ISO string), verified and urlMissing, for reports."""
        return {
            "url": self.url,
            "retrieved": self.retrieved.isoformat() if self.retrieved else None,
            "verified": self.verified,
            "urlMissing": self.url_missing,
        }


def today() -> dt.date:
    """The machine's date. Not SOVSTACK_TODAY: a stack checked "as of" an earlier day still reads
    facts retrieved after it."""
    return dt.date.today()


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def check_provenance(entry: dict[str, Any], where: str, *, need_link: bool = True) -> None:
    """One fact's (or one `sources:` entry's) url, urlMissing, retrieved and verified fields."""
    url, missing = entry.get("url"), entry.get("urlMissing")
    if url is not None and (not isinstance(url, str) or not _HTTPS.fullmatch(url)):
        raise ProvenanceError(f"{where}.url: {url!r} is not an https URL")
    if missing is not None and (not isinstance(missing, str) or len(missing.strip()) < 3):
        raise ProvenanceError(f"{where}.urlMissing: give the reason no public page exists, in words")
    if url is not None and missing is not None:
        raise ProvenanceError(f"{where}: give url or urlMissing, not both")
    if need_link and url is None and missing is None:
        raise ProvenanceError(
            f"{where}: no url; give url (an https link to the public source), ref (an id in `sources:`) "
            "or urlMissing (why no public page exists)"
        )
    retrieved = entry.get("retrieved")
    if retrieved is not None:
        day = _date(retrieved)
        if day is None:
            raise ProvenanceError(f"{where}.retrieved: {retrieved!r} is not an ISO date (YYYY-MM-DD)")
        if day > today():
            raise ProvenanceError(f"{where}.retrieved: {day.isoformat()} is in the future")
    elif url is not None:
        raise ProvenanceError(f"{where}.retrieved: missing; give the day {url} was read (YYYY-MM-DD)")
    verified = entry.get("verified", False)
    if not isinstance(verified, bool):
        raise ProvenanceError(f"{where}.verified: {verified!r} is not true or false")
    if verified and url is None:
        raise ProvenanceError(f"{where}.verified: true needs a url to have been checked against")


def _walk(node: Any, where: str, sources: dict[str, dict[str, Any]], keep: bool, count: list[int]) -> Any:
    if isinstance(node, list):
        return [_walk(item, f"{where}[{i}]", sources, keep, count) for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out = {k: _walk(v, f"{where}.{k}" if where else str(k), sources, keep, count) for k, v in node.items()}
    here = where or "(top level)"
    is_fact = isinstance(node.get("source"), str)
    has_provenance = any(k in node for k in PROVENANCE_KEYS)
    if not is_fact and not has_provenance:
        return out
    if not is_fact:
        raise ProvenanceError(
            f"{here}: {', '.join(k for k in PROVENANCE_KEYS if k in node)} without a source"
        )
    count[0] += 1
    ref = node.get("ref")
    if ref is not None:
        inline = [k for k in PROVENANCE_KEYS if k != "ref" and k in node]
        if inline:
            raise ProvenanceError(f"{here}: ref {ref!r} and {', '.join(inline)} both given; keep one")
        if ref not in sources:
            known = ", ".join(sorted(sources)) or "none"
            raise ProvenanceError(f"{here}.ref: {ref!r} is not in `sources:` (known: {known})")
        del out["ref"]
        out.update({k: v for k, v in sources[ref].items() if k in PROVENANCE_KEYS})
    else:
        check_provenance(node, here)
    if not keep:
        for key in PROVENANCE_KEYS:
            out.pop(key, None)
    return out


def load_data_file(path: Path, *, keep: bool = True, unique_keys: bool = False) -> Any:
    """A data file read (`load_yaml`, duplicate keys refused when `unique_keys`) and `resolve`d, its
    errors named `data/<file>`."""
    with path.open(encoding="utf-8") as handle:
        document = load_yaml(handle, unique_keys=unique_keys)
    return resolve(document, f"data/{path.name}", keep=keep)


def resolve(document: Any, where: str = "", *, keep: bool = True) -> Any:
    """A data file's content with every fact's provenance checked and each `ref` replaced by its entry
    in the top-level `sources:` table (which is dropped). `keep=False` also drops the provenance keys,
    for loaders whose models do not carry them. Raises ProvenanceError `WHERE: field: message`."""
    try:
        return _resolve(document, keep=keep)[0]
    except ProvenanceError as err:
        raise ProvenanceError(f"{where}: {err}" if where else str(err)) from None


def _resolve(document: Any, *, keep: bool = True) -> tuple[Any, int]:
    sources: dict[str, dict[str, Any]] = {}
    if isinstance(document, dict) and SOURCES_KEY in document:
        table = document[SOURCES_KEY]
        if not isinstance(table, dict):
            raise ProvenanceError(f"{SOURCES_KEY}: a mapping of id to url, retrieved, verified")
        for key, entry in table.items():
            if not isinstance(entry, dict):
                raise ProvenanceError(f"{SOURCES_KEY}.{key}: a mapping with url, retrieved, verified")
            unknown = sorted(set(entry) - {"url", "urlMissing", "retrieved", "verified", "title"})
            if unknown:
                raise ProvenanceError(f"{SOURCES_KEY}.{key}: unknown field(s) {', '.join(unknown)}")
            check_provenance(entry, f"{SOURCES_KEY}.{key}")
            sources[str(key)] = entry
        document = {k: v for k, v in document.items() if k != SOURCES_KEY}
    count = [0]
    return _walk(document, "", sources, keep, count), count[0]


def facts_in(document: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every fact of a data file (after `resolve`), with its path: for tests and summaries."""
    found: list[tuple[str, dict[str, Any]]] = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                visit(item, f"{where}[{i}]")
        elif isinstance(node, dict):
            if isinstance(node.get("source"), str):
                found.append((where or "(top level)", node))
            for key, value in node.items():
                visit(value, f"{where}.{key}" if where else str(key))

    visit(document, "")
    return found
