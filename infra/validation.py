"""`sovstack validate`: spec, catalog and capacity problems (exit 2), then residency findings (exit 1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.residency import Finding, PolicyError
from infra.stackfile import Problem, SpecError, format_loc, load_stack, resolve

EXIT_OK, EXIT_RESIDENCY, EXIT_INVALID = 0, 1, 2


@dataclass
class ValidationResult:
    file: str
    problems: list[Problem] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    policy_label: str = ""

    @property
    def exit_code(self) -> int:
        if self.problems:
            return EXIT_INVALID
        if any(not f.passed for f in self.findings):
            return EXIT_RESIDENCY
        return EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "valid": self.exit_code == EXIT_OK,
            "exitCode": self.exit_code,
            "policy": self.policy_label,
            "problems": [p.to_dict() for p in self.problems],
            "findings": [{"file": self.file, **f.model_dump()} for f in self.findings],
        }


def validate_stack(ref: str) -> ValidationResult:
    from infra.residency_check import evaluate

    file = str(resolve(ref))
    try:
        loaded = load_stack(ref)
    except SpecError as err:
        return ValidationResult(file, problems=err.problems)
    try:
        findings = evaluate(loaded.spec)
    except PolicyError as err:
        where = format_loc(("residency", "overrides" if loaded.spec.residency.profile else "policy"))
        return ValidationResult(file, problems=[Problem(file, where, str(err))])
    return ValidationResult(file, findings=findings, policy_label=loaded.spec.residency.label)
