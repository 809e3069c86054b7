"""`sovstack new`: write `stacks/Pulumi.NAME.yaml` from a template, checked in full before it is written.

A template is `TEMPLATES/<t>.yaml.j2` (Jinja2) with its variables and their defaults in
`TEMPLATES/<t>.defaults.yaml`. TEMPLATES is the `templates/` folder of the stacks directory
(`stacks_dir()`, which honours `$SOVSTACK_STACKS_DIR`) when it has one, else the repository's
`stacks/templates`. Nothing is written unless the rendered stack passes the spec, catalog, capacity
and residency checks; the file then appears atomically and never replaces an existing one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import jinja2
import yaml

from sovstack.components.catalog import load_catalog
from sovstack.components.kube import is_dns_label
from sovstack.components.residency import PolicyError
from sovstack.infra.pipeline import load_stack
from sovstack.infra.residency_check import evaluate
from sovstack.infra.stackfile import REPO_ROOT, Problem, SpecError, format_loc, stacks_dir

EXIT_RESIDENCY, EXIT_INVALID = 1, 2
TEMPLATE_SUFFIX = ".yaml.j2"
DEFAULTS_SUFFIX = ".defaults.yaml"
#: Variables every template receives from `create_stack`, not from its defaults file.
RESERVED = frozenset({"name", "template", "command"})
#: Strings written without quotes: they read back as the same string in any YAML context.
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


class NewStackError(Exception):
    """The stack could not be created; `lines` explain why, `exit_code` is the CLI's exit code."""

    def __init__(self, lines: Sequence[str], exit_code: int = EXIT_INVALID):
        super().__init__("\n".join(lines))
        self.lines = list(lines)
        self.exit_code = exit_code


class TemplateFailure(Exception):
    """Raised by `fail(...)` inside a template: the chosen variables have no sensible rendering."""


# ------------------------------------------------------------------------------------ templates
def templates_dir() -> Path:
    """`<stacks dir>/templates` when it exists, else the repository's `stacks/templates`."""
    local = stacks_dir() / "templates"
    return local if local.is_dir() else REPO_ROOT / "stacks" / "templates"


def list_templates(folder: Path | None = None) -> list[str]:
    folder = folder or templates_dir()
    return sorted(p.name.removesuffix(TEMPLATE_SUFFIX) for p in folder.glob(f"*{TEMPLATE_SUFFIX}"))


def template_defaults(template: str, folder: Path | None = None) -> dict[str, Any]:
    """The variables of a template and their defaults (`<t>.defaults.yaml`)."""
    path = (folder or templates_dir()) / f"{template}{DEFAULTS_SUFFIX}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise NewStackError([f"{path}: cannot read the template's defaults: {err}"]) from None
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise NewStackError([f"{path}: expected a mapping of variable names to default values"])
    bad = sorted(k for k, v in data.items() if isinstance(v, dict | list))
    if bad:
        raise NewStackError([f"{path}: {', '.join(bad)}: defaults must be scalars (or null)"])
    reserved = sorted(set(data) & RESERVED)
    if reserved:
        raise NewStackError([f"{path}: {', '.join(reserved)}: reserved names (set by sovstack new)"])
    return data


def yaml_scalar(value: Any) -> str:
    """A value as a YAML scalar: plain when unambiguous, else JSON-quoted (JSON is YAML)."""
    if isinstance(value, str) and _PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def node_type(provider: str, gpu: str, gpus: int) -> str:
    """The catalog's instance type (Scaleway) or flavor (OVHcloud) with `gpus` x `gpu`."""
    catalog = load_catalog()
    known = catalog.providers.get(provider)
    if known is None:
        _fail(f"provider {provider!r} has no node types in the catalog")
    for candidate in known.node_types:
        if candidate.gpu == gpu and candidate.gpus == gpus:
            return candidate.name
    offered = ", ".join(f"{n.name} ({n.gpus}x)" for n in known.node_types if n.gpu == gpu) or "none"
    _fail(f"no {provider} node type has {gpus}x {gpu} (node types with {gpu}: {offered})")


def _fail(message: str) -> NoReturn:
    raise TemplateFailure(message)


def _environment(folder: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["v"] = yaml_scalar
    env.globals["node_type"] = node_type
    env.globals["fail"] = _fail
    return env


def render_template(template: str, name: str, variables: dict[str, Any], command: str = "") -> str:
    """The stack file text for NAME; NewStackError when the template refuses or is broken."""
    folder = templates_dir()
    file = f"{folder / (template + TEMPLATE_SUFFIX)}"
    try:
        source = _environment(folder).get_template(template + TEMPLATE_SUFFIX)
        return source.render(**variables, name=name, template=template, command=command)
    except TemplateFailure as err:
        raise NewStackError([f"template {template}: {err}"]) from None
    except jinja2.TemplateSyntaxError as err:
        raise NewStackError(
            [f"{err.filename or file}:{err.lineno}: template syntax error: {err.message}"]
        ) from None
    except jinja2.TemplateError as err:
        raise NewStackError([f"{file}: template error: {err}"]) from None


# ------------------------------------------------------------------------------------ variables
def _coerce(key: str, raw: str, default: Any) -> Any:
    """`--set` text as the variable's type: that of its default; a null default means a string."""
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # not YAML at all: the text as typed (a string variable takes it as is)
    if isinstance(value, dict | list):
        raise NewStackError([f"--set {key}: give a single value (a YAML scalar), not a list or mapping"])
    if default is None or isinstance(default, str):
        # Strings keep the text as typed: `kubernetesVersion=1.32` stays "1.32", `stateBucket=on` "on".
        return None if value is None else value if isinstance(value, str) else raw.strip()
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise NewStackError([f"--set {key}: expected true or false, got {raw!r}"])
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise NewStackError([f"--set {key}: expected an integer, got {raw!r}"])
        return value
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise NewStackError([f"--set {key}: expected a number, got {raw!r}"])
    return float(value)


def resolve_variables(
    template: str, provider: str | None, region: str | None, values: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(all variables, the ones the user chose); `--provider`/`--region` are `--set provider=`/`region=`."""
    defaults = template_defaults(template)
    chosen: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise NewStackError([f"--set {item!r}: expected key=value"])
        if key not in defaults:
            raise NewStackError(
                [
                    f"--set {key}: unknown variable of template {template}; known: {', '.join(sorted(defaults))}"
                ]
            )
        chosen[key] = _coerce(key, raw, defaults[key])
    for key, option in (("provider", provider), ("region", region)):
        if option is None:
            continue
        if key in chosen and chosen[key] != option:
            raise NewStackError([f"--{key} {option} contradicts --set {key}={chosen[key]}; give one"])
        if key not in defaults:
            raise NewStackError([f"--{key}: template {template} has no {key} variable"])
        chosen[key] = option
    return {**defaults, **chosen}, chosen


def _command(name: str, template: str, chosen: dict[str, Any]) -> str:
    parts = ["sovstack", "new", name, "--template", template]
    for key, value in chosen.items():
        if key in ("provider", "region"):
            parts += [f"--{key}", str(value)]
        else:
            parts += ["--set", f"{key}={'' if value is None else value}"]
    # One comment line, whatever the values contain.
    return shlex.join(parts).replace("\r", "\\r").replace("\n", "\\n")


# ------------------------------------------------------------------------------------ checking
def check_stack_file(path: Path, target: Path) -> None:
    """Every check `sovstack validate` runs, on `path`; problems are reported against `target`."""
    file = str(target)
    try:
        loaded = load_stack(path)
    except SpecError as err:
        lines = [Problem(file, p.path, p.message).line() for p in err.problems]
        raise NewStackError([*lines, f"{file}: not written: {len(lines)} problem(s)"]) from None
    try:
        findings = evaluate(loaded.spec)
    except PolicyError as err:
        where = format_loc(("residency", "overrides" if loaded.spec.residency.profile else "policy"))
        raise NewStackError([Problem(file, where, str(err)).line(), f"{file}: not written"]) from None
    broken = [f.line(file) for f in findings if not f.passed]
    if broken:
        summary = f"{file}: not written: {len(broken)} residency rule(s) broken"
        raise NewStackError([*broken, summary], EXIT_RESIDENCY)


def create_stack(
    name: str,
    template: str,
    *,
    provider: str | None = None,
    region: str | None = None,
    values: Sequence[str] = (),
) -> Path:
    """Render TEMPLATE for NAME, check it like `sovstack validate`, then write `stacks/Pulumi.NAME.yaml`.

    Raises NewStackError (exit 2: bad input or invalid stack; exit 1: residency rule broken) and then
    writes nothing. Prints nothing.
    """
    if not is_dns_label(name):
        raise NewStackError(
            [
                f"NAME: {name!r} is not a DNS-1123 label (lowercase letters, digits and '-', "
                "starting and ending with an alphanumeric, at most 63 characters)"
            ]
        )
    known = list_templates()
    if template not in known:
        raise NewStackError(
            [
                f"--template: unknown template {template!r}; known: {', '.join(known) or 'none'} (in {templates_dir()})"
            ]
        )
    folder = stacks_dir()
    target = folder / f"Pulumi.{name}.yaml"
    if target.exists():
        raise NewStackError(
            [f"{target}: already exists; nothing was changed (edit it, or choose another NAME)"]
        )
    variables, chosen = resolve_variables(template, provider, region, values)
    text = render_template(template, name, variables, _command(name, template, chosen))
    folder.mkdir(parents=True, exist_ok=True)
    # The temporary file does not match `Pulumi.*.yaml`, so no command mistakes it for a stack.
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".new-{name}-", suffix=".tmp")
    tmp = Path(temporary)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        check_stack_file(tmp, target)
        _publish(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target


def _publish(tmp: Path, target: Path) -> None:
    """Give the checked file its name atomically, never replacing a file created meanwhile."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise NewStackError([f"{target}: appeared while checking; nothing was changed"]) from None
    except OSError:  # no hard links on this filesystem: the rename is still atomic
        if target.exists():
            raise NewStackError([f"{target}: appeared while checking; nothing was changed"]) from None
        os.replace(tmp, target)
