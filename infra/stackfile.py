"""Find and read a stack file, turning every problem into `FILE: path.to.field: message` lines.

STACK, in every command, is a stack name under `stacks/` or a path to a YAML file.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sovstack.components.kube import load_yaml
from sovstack.components.suggest import did_you_mean
from sovstack.infra.spec import CustomerSpec

CUSTOMER_KEY = "sovstack:customer"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, tied to a file and a field path."""

    file: str
    path: str
    message: str

    def line(self) -> str:
        return f"{self.file}: {self.path}: {self.message}" if self.path else f"{self.file}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "path": self.path, "message": self.message}


@dataclass
class SpecError(Exception):
    """The input could not be turned into a valid spec (exit code 2)."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(p.line() for p in self.problems)


def stacks_dir() -> Path:
    """`$SOVSTACK_STACKS_DIR`, else the `stacks/` beside the nearest Pulumi.yaml, else the repository's."""
    env = os.environ.get("SOVSTACK_STACKS_DIR")
    if env:
        return Path(env)
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if (folder / "Pulumi.yaml").is_file() and (folder / "stacks").is_dir():
            return _short(folder / "stacks")
    return _short(REPO_ROOT / "stacks")


def _short(path: Path) -> Path:
    """A path relative to the working directory when it lies below it (shorter error lines)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def resolve(ref: str) -> Path:
    """A stack name (`gov-fr`) or a file path to the file it names."""
    candidate = Path(ref)
    if candidate.suffix in (".yaml", ".yml") or os.sep in ref or "/" in ref:
        return candidate
    return stacks_dir() / f"Pulumi.{ref}.yaml"


def stack_name(path: Path) -> str:
    name = path.name
    for suffix in (".yaml", ".yml"):
        name = name.removesuffix(suffix)
    return name.removeprefix("Pulumi.")


def list_stacks(folder: Path | None = None) -> list[Path]:
    folder = folder or stacks_dir()
    return sorted(folder.glob("Pulumi.*.yaml"))


def format_loc(loc: Sequence[int | str], prefix: str = CUSTOMER_KEY) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The spec model that holds the mapping at `loc` (aliases, list indexes and dict keys followed)."""
    model: Any = CustomerSpec
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """The pydantic model inside `X`, `X | None`, `list[X]`, `tuple[X, ...]` or `dict[str, X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _clean_message(error: Any) -> str:
    msg = str(error["msg"])
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1]) if error["loc"] else ""
        model = _model_at(error["loc"][:-1])
        known = [f.alias or name for name, f in model.model_fields.items()] if model else []
        hint = did_you_mean(key, known)
        return f"unknown key (not part of the spec{hint}; see `sovstack schema`)"
    if error["type"] == "missing":
        return "required field is missing"
    return msg.removeprefix("Value error, ")


def _without_spurious_too_short(errors: list[Any]) -> list[Any]:
    """Drop pydantic's `too_short` on a tuple whose items failed: it counts only the valid items
    ("at least 1 item, not 0") and hides the real error, which is reported below it."""

    def has_item_error(loc: tuple[int | str, ...]) -> bool:
        return any(len(e["loc"]) > len(loc) and tuple(e["loc"][: len(loc)]) == loc for e in errors)

    return [e for e in errors if not (e["type"] == "too_short" and has_item_error(tuple(e["loc"])))]


def read_config(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file; SpecError for anything unreadable."""
    file = str(path)
    if not path.is_file():
        raise SpecError([Problem(file, "", "no such stack file (give a stack name under stacks/ or a path)")])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError([Problem(file, "", f"cannot read: {err}")]) from None
    try:
        document = _parse_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError([Problem(file, "", f"YAML syntax error: {where}{problem}")]) from None
    except (RecursionError, ValueError) as err:
        raise SpecError([Problem(file, "", f"YAML cannot be parsed: {type(err).__name__}")]) from None
    if document is None:
        raise SpecError(
            [Problem(file, "", f"file is empty; expected a Pulumi stack file with config.{CUSTOMER_KEY}")]
        )
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise SpecError([Problem(file, "", f"expected a mapping at the top level, found {kind}")])
    config = document.get("config")
    if not isinstance(config, dict):
        raise SpecError(
            [Problem(file, "config", "missing or not a mapping; a stack file keeps settings there")]
        )
    return config


def _parse_yaml(text: str) -> Any:
    """libyaml's C parser where PyYAML has it (the same safe subset, several times faster), refusing
    repeated keys; a document it refuses is parsed again by the Python parser, whose messages say what
    it found."""
    try:
        return load_yaml(text, unique_keys=True)
    except yaml.constructor.ConstructorError:
        raise  # a repeated key: already a precise message
    except yaml.YAMLError:
        pass
    return yaml.load(text, Loader=yaml.SafeLoader)


def parse_spec(config: dict[str, Any], file: str) -> CustomerSpec:
    raw = config.get(CUSTOMER_KEY)
    if raw is None:
        raise SpecError([Problem(file, f"config.{CUSTOMER_KEY}", "required key is missing")])
    if not isinstance(raw, dict):
        raise SpecError([Problem(file, f"config.{CUSTOMER_KEY}", "must be a mapping (the customer spec)")])
    try:
        return CustomerSpec.model_validate(raw)
    except ValidationError as err:
        errors = _without_spurious_too_short(err.errors())
        problems = [Problem(file, format_loc(e["loc"]), _clean_message(e)) for e in errors]
        raise SpecError(problems) from None
    except RecursionError:
        raise SpecError([Problem(file, CUSTOMER_KEY, "nested too deeply")]) from None
