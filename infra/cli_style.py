"""What every `sovstack` command shares: colour, the provider vocabulary and id look-ups.

Pure Python and light: imported by every command, so it must not import Pulumi.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TextIO

from sovstack.components.suggest import did_you_mean, find_id

#: The provider names users write, in every command: the `cluster.provider` values of a stack, plus
#: `operator` (the catalog's name for the operator's own sites, where talos and existing clusters run).
PROVIDERS = ("scaleway", "ovh", "talos", "existing", "operator")

_CODES = {"red": "31", "green": "32", "yellow": "33", "bold": "1", "dim": "2"}


def colour_enabled(stream: TextIO | None = None) -> bool:
    """Colour only on a terminal, never with `NO_COLOR` set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    stream = stream or sys.stdout
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, colour: str, *, err: bool = False) -> str:
    """`text` in `colour` (red, green, yellow, bold, dim) when the stream it goes to is a terminal."""
    if not colour_enabled(sys.stderr if err else sys.stdout):
        return text
    return f"\x1b[{_CODES[colour]}m{text}\x1b[0m"


class LookupFailed(ValueError):
    """An unknown id given to an option; the message names the option, the closest id and all known."""


def pick(option: str, what: str, value: str, known: Iterable[str]) -> str:
    """`value` as the catalog spells it (ids are case-insensitive); LookupFailed when unknown."""
    choices = sorted(known)
    found = find_id(value, choices)
    if found is None:
        raise LookupFailed(
            f"{option}: unknown {what} {value!r}{did_you_mean(value, choices)}; known: {', '.join(choices)}"
        )
    return found


def catalog_provider(provider: str) -> str:
    """The region catalog's provider for a provider name users write (talos/existing: operator sites)."""
    from sovstack.components.catalog import provider_for_backend

    return provider_for_backend(provider)
