"""A stack file through the whole pipeline: parse → check → evaluate → compose, once per command.

`load_stack` is what every command that needs a composed stack calls (plan, render, report, new);
`sovstack validate` walks the same stages itself so it can report each kind of problem with its own
exit code. This module stands above parse, checks, residency and composition and imports each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sovstack.components.residency import Finding, PolicyError
from sovstack.infra.checks import semantic_problems
from sovstack.infra.compose import Composition, build_composition
from sovstack.infra.residency_check import evaluate
from sovstack.infra.spec import CustomerSpec
from sovstack.infra.stackfile import (
    Problem,
    SpecError,
    format_loc,
    parse_spec,
    read_config,
    resolve,
    stack_name,
)


@dataclass(frozen=True)
class LoadedStack:
    name: str
    path: Path
    config: dict[str, Any]
    spec: CustomerSpec
    #: Residency findings, when the policy resolved (computed once, reused by every command).
    findings: tuple[Finding, ...] | None = None
    #: The composed components, for a stack inside its policy.
    composition: Composition | None = None

    def composed(self) -> Composition:
        """The composition, composing here when the stack was loaded without one."""
        return self.composition or Composition(self.spec)


def load_stack(ref: str | Path, *, creating: bool = True) -> LoadedStack:
    """Read, parse and check a stack's spec (catalog, capacity, component args).

    Residency is evaluated separately by the caller (exit 1, not 2). Component args are only built
    for a stack inside its policy, so a value both rules refuse (a short retention) reports as the
    residency finding it is. `creating` False (refresh, destroy) skips the checks that only stop new
    clusters (checks.semantic_problems).
    """
    path = resolve(ref) if isinstance(ref, str) else ref
    config = read_config(path)
    spec = parse_spec(config, str(path))
    problems = semantic_problems(spec, creating=creating)
    findings: tuple[Finding, ...] | None = None
    composition: Composition | None = None
    if not problems:
        findings = _findings(spec)
        if findings is not None and all(f.passed for f in findings):
            problems, composition = build_composition(spec)
    if problems:
        raise SpecError([Problem(str(path), format_loc(loc), msg) for loc, msg in problems])
    return LoadedStack(stack_name(path), path, config, spec, findings, composition)


def _findings(spec: CustomerSpec) -> tuple[Finding, ...] | None:
    try:
        return tuple(evaluate(spec))
    except PolicyError:
        return None  # reported by the caller with its path
