"""`sovstack validate`: spec, catalog and capacity problems (exit 2), then residency findings (exit 1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sovstack.components.residency import Finding, PolicyError
from sovstack.infra.checks import fact_warnings, semantic_problems
from sovstack.infra.cli_style import echo, emit_json, paint
from sovstack.infra.compose import composition_problems
from sovstack.infra.placeholders import Placeholder, find_placeholders, not_deployable
from sovstack.infra.residency_check import evaluate
from sovstack.infra.stackfile import Problem, SpecError, format_loc, parse_spec, read_config, resolve

EXIT_OK, EXIT_RESIDENCY, EXIT_INVALID = 0, 1, 2


@dataclass
class ValidationResult:
    file: str
    problems: list[Problem] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    policy_label: str = ""
    #: Facts about to expire (docs/residency.md "Facts that expire"): printed, never change the exit code.
    warnings: list[Problem] = field(default_factory=list)
    placeholders: list[Placeholder] = field(default_factory=list)
    #: `validate --strict`: a stack with placeholders is refused (exit 1), not only warned about.
    strict: bool = False

    @property
    def exit_code(self) -> int:
        if self.problems:
            return EXIT_INVALID
        if any(not f.passed for f in self.findings):
            return EXIT_RESIDENCY
        if self.strict and self.placeholders:
            return EXIT_RESIDENCY
        return EXIT_OK

    @property
    def deployable(self) -> bool:
        return self.exit_code == EXIT_OK and not self.placeholders

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "valid": self.exit_code == EXIT_OK,
            "exitCode": self.exit_code,
            "policy": self.policy_label,
            "deployable": self.deployable,
            "placeholders": [p.to_dict() for p in self.placeholders],
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [w.to_dict() for w in self.warnings],
            "findings": [{"file": self.file, **f.model_dump()} for f in self.findings],
        }


def validate_stack(ref: str, strict: bool = False) -> ValidationResult:
    """Spec and catalog problems (exit 2), then residency (exit 1), then what the components refuse (exit 2).

    Residency comes before composing the components: a component refuses args that break a rule
    (retention below the minimum), and the rule's finding names the spec path where the component
    error cannot.
    """
    path = resolve(ref)
    file = str(path)
    try:
        spec = parse_spec(read_config(path), file)
    except SpecError as err:
        return ValidationResult(file, problems=err.problems)
    warnings = [Problem(file, format_loc(loc), f"warning: {msg}") for loc, msg in fact_warnings(spec)]
    problems = semantic_problems(spec)
    if problems:
        return ValidationResult(
            file, problems=[Problem(file, format_loc(loc), msg) for loc, msg in problems], warnings=warnings
        )
    try:
        findings = evaluate(spec)
    except PolicyError as err:
        where = format_loc(("residency", "overrides" if spec.residency.profile else "policy"))
        return ValidationResult(file, problems=[Problem(file, where, str(err))])
    if all(f.passed for f in findings):
        problems = composition_problems(spec)
        if problems:
            return ValidationResult(
                file,
                problems=[Problem(file, format_loc(loc), msg) for loc, msg in problems],
                warnings=warnings,
            )
    return ValidationResult(
        file,
        findings=findings,
        policy_label=spec.residency.label,
        placeholders=find_placeholders(spec),
        strict=strict,
        warnings=warnings,
    )


def validate_cli(
    stacks: list[str], *, as_json: bool = False, verbose: bool = False, strict: bool = False
) -> int:
    """`sovstack validate STACK...`: print every problem, failed finding and placeholder; the exit code."""
    results = [validate_stack(ref, strict=strict) for ref in stacks]
    code = max(r.exit_code for r in results)
    if as_json:
        payload = [r.to_dict() for r in results]
        emit_json(payload[0] if len(payload) == 1 else payload)
        return code
    for result in results:
        for problem in [*result.warnings, *result.problems]:
            echo(problem.line(), err=True)
        for finding in result.findings:
            if verbose or not finding.passed:
                stream = not finding.passed
                line = finding.line(result.file)
                if not finding.passed:
                    line = line.replace("[FAIL]", paint("[FAIL]", "red", err=True), 1)
                echo(line, err=stream)
        for placeholder in result.placeholders:
            echo(placeholder.line(result.file), err=True)
        failed = sum(not f.passed for f in result.findings)
        if not result.problems and not failed:
            passed = sum(f.passed for f in result.findings)
            verdict = f"; {not_deployable(len(result.placeholders))}" if result.placeholders else ""
            echo(
                f"{result.file}: {paint('valid', 'green')} ({passed} residency checks passed, "
                f"policy {result.policy_label}){verdict}"
            )
        elif result.exit_code == EXIT_RESIDENCY:
            echo(f"{result.file}: {paint(f'{failed} residency rule(s) broken', 'red', err=True)}", err=True)
    if len(results) > 1:
        valid = sum(r.exit_code == EXIT_OK for r in results)
        broken = sum(r.exit_code == EXIT_RESIDENCY for r in results)
        invalid = len(results) - valid - broken
        summary = (
            f"{len(results)} stacks: {valid} valid, {broken} breaking residency rules"
            f"{' or not deployable' if strict else ''}, {invalid} invalid"
        )
        echo(paint(summary, "green" if code == EXIT_OK else "red", err=code != EXIT_OK), err=code != EXIT_OK)
    return code


__all__ = ["ValidationResult", "not_deployable", "validate_cli", "validate_stack"]
