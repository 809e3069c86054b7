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


def echo(message: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Write a line as `typer.echo` does (one write, then a flush, so stdout and stderr keep their order
    in a shared pipe), for the command runners `infra/cli.py` calls without importing typer."""
    stream = sys.stderr if err else sys.stdout
    stream.write(message + "\n" if nl else message)
    stream.flush()


def emit_json(payload: object) -> None:
    """`--json` output: indented, keys sorted, on stdout."""
    import json

    echo(json.dumps(payload, indent=2, sort_keys=True))


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


#: How a value is written, for options that name no metavar of their own.
_VALUE_WORDS = {"<int>": "N", "<float>": "NUMBER", "<str>": "TEXT", "<path>": "PATH", "<Path>": "PATH"}


def plain_help_types() -> None:
    """Help that shows values as users write them, not Python types.

    typer 0.29 labels every parameter with its annotation (`<str>`, `<bool>`, `<list[str]>`): a flag
    takes no value, an argument's name already says what it is, and an option shows its metavar
    (`--gpu GPU`, `--max-model-len TOKENS`) or a plain word (N, TEXT, PATH).
    """
    from typer.core import TyperArgument, TyperOption

    if getattr(TyperOption, "_sovstack_plain", False):
        return
    option_type = TyperOption.display_type_rich

    def _option(self: TyperOption, ctx: object) -> str | None:
        if self.is_flag:
            return None
        shown = option_type(self, ctx)  # type: ignore[arg-type]
        if shown is None or self.metavar is not None:
            return shown
        base, dots = (shown[:-3], "...") if shown.endswith("...") else (shown, "")
        return _VALUE_WORDS.get(base, base.strip("<>").upper()) + dots

    TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]
    TyperOption.display_type_rich = _option  # type: ignore[method-assign]
    TyperOption._sovstack_plain = True  # type: ignore[attr-defined]
