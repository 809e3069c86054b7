"""Suggestions ("did you mean") for unknown ids and keys, and case-insensitive lookup of catalog ids.

Pure Python (difflib), shared by the catalogs, the spec checks and the CLI.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str], limit: int = 1) -> list[str]:
    """The choices nearest to `word`, ignoring case (difflib's ratio, cut-off 0.75)."""
    by_folded: dict[str, str] = {}
    for choice in choices:
        by_folded.setdefault(choice.casefold(), choice)
    folded = word.casefold()
    # A unique prefix (`mistral-small` for `mistral-small-3-1-24b-instruct-2503`) beats a similar spelling.
    prefixed = [f for f in by_folded if f.startswith(folded)] if folded else []
    if len(prefixed) == 1:
        return [by_folded[prefixed[0]]]
    found = difflib.get_close_matches(folded, list(by_folded), n=limit, cutoff=0.75)
    return [by_folded[f] for f in found]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'X'?` when a choice is close to `word`, else an empty string."""
    found = closest(word, choices)
    return f"; did you mean {found[0]!r}?" if found else ""


def find_id(word: str, choices: Iterable[str]) -> str | None:
    """The choice equal to `word` ignoring case (an exact match wins), or None."""
    options = list(choices)
    if word in options:
        return word
    folded = [c for c in options if c.casefold() == word.casefold()]
    return folded[0] if len(folded) == 1 else None
