"""The Pulumi program: read the customer spec, refuse what is out of bounds, then build the stack.

Nothing is registered before the spec, the catalog checks and every residency rule have passed.
A stack-wide transformation then rejects any resource (even one added by hand) whose region,
zone or location input lies outside the policy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pulumi

from sovstack.components.residency import Engine, ResidencyPolicy, failures, resource_location_findings
from sovstack.infra.checks import semantic_problems
from sovstack.infra.compose import build_composition
from sovstack.infra.residency_check import evaluate
from sovstack.infra.spec import CustomerSpec
from sovstack.infra.stack import SovereignStack
from sovstack.infra.stackfile import CUSTOMER_KEY, Problem, SpecError, format_loc, parse_spec
from sovstack.infra.state_check import state_problems

#: Config key `sovstack plan` sets to the stack file it loaded (messages name it); unset under `pulumi up`.
STACK_FILE_KEY = "sovstack:stackFile"
#: Set by `sovstack up` and friends to the stack file they run (the inline program shares their process).
STACK_FILE_ENV = "SOVSTACK_STACK_FILE"


class ProgramError(pulumi.RunError):
    """A readable refusal: Pulumi prints the message without a traceback."""

    exit_code = 2


class SpecRefused(ProgramError):
    exit_code = 2


class ResidencyRefused(ProgramError):
    exit_code = 1


def load_spec_from_config(file: str) -> CustomerSpec:
    config = pulumi.Config("sovstack")
    raw = config.get_object("customer")
    if raw is None:
        hint = ""
        name = config.get("customerName")
        if name:  # a stack made by `pulumi new` from this repository: its answers, not yet a spec
            profile, provider, region = (config.get(k) or "" for k in ("profile", "provider", "region"))
            hint = (
                f"; write the spec from your `pulumi new` answers with `sovstack new {name} --template {profile}"
                f" --provider {provider} --region {region}`"
            )
        raise SpecRefused(f"{file}: config.{CUSTOMER_KEY}: required key is missing{hint}")
    try:
        spec = parse_spec({CUSTOMER_KEY: raw}, file)
    except SpecError as err:
        raise SpecRefused(str(err)) from None
    problems = [Problem(file, format_loc(loc), msg) for loc, msg in semantic_problems(spec)]
    if problems:
        raise SpecRefused(str(SpecError(problems)))
    return spec


def residency_guard(policy: ResidencyPolicy) -> Any:
    """A resource transform that fails any resource placed outside the policy.

    Provider resources count too: `pulumi:providers:scaleway` is checked by the region it is configured
    for, since it places every resource that sets none.
    """
    engine = Engine(policy)

    def guard(args: pulumi.ResourceTransformArgs) -> None:
        if not args.custom:
            return  # a component places nothing itself; its children are checked one by one
        props = args.props if isinstance(args.props, dict) else {}
        broken = failures(resource_location_findings(engine, args.type_, args.name, props))
        if broken:
            lines = "\n".join(f"  {f.path}: [{f.rule}] {f.reason}" for f in broken)
            raise ResidencyRefused(
                f"resource {args.name} ({args.type_}) is outside the residency policy:\n{lines}"
            )
        return

    return guard


def verify_state(spec: CustomerSpec, stack_file: Path) -> None:
    """Refuse a run against another backend or secrets provider than the spec's; warn what is unseen."""
    problems, notes = state_problems(spec, stack_file)
    if problems:
        raise SpecRefused(
            str(SpecError([Problem(str(stack_file), format_loc(loc), msg) for loc, msg in problems]))
        )
    for note in notes:
        pulumi.log.warn(note)


def main() -> None:
    stack = pulumi.get_stack()
    # `sovstack plan FILE` passes the file it read, so refusals point at it rather than at stacks/.
    file = pulumi.Config("sovstack").get("stackFile") or f"stacks/Pulumi.{stack}.yaml"
    spec = load_spec_from_config(file)
    findings = evaluate(spec)
    broken = failures(findings)
    if broken:
        lines = "\n".join(f.line(file) for f in broken)
        raise ResidencyRefused(f"{len(broken)} residency rule(s) broken; nothing was registered:\n{lines}")
    refusals, composition = build_composition(spec)
    if refusals or composition is None:
        raise SpecRefused(str(SpecError([Problem(file, format_loc(loc), msg) for loc, msg in refusals])))
    if pulumi.Config("sovstack").get("stackFile") is None:  # a deployment, not `sovstack plan`'s mock run
        verify_state(spec, Path(os.environ.get(STACK_FILE_ENV) or file))
    pulumi.runtime.register_resource_transform(residency_guard(composition.policy))

    kubeconfig = None
    if spec.cluster.provider == "existing":
        key = spec.cluster.existing.kubeconfig_key if spec.cluster.existing else "sovstack:kubeconfig"
        namespace, _, name = key.partition(":")
        kubeconfig = pulumi.Config(namespace).get_secret(name)
        if kubeconfig is None:
            raise SpecRefused(
                f"{file}: config.{key}: required for an existing cluster; set it with `pulumi config set --secret {key} < kubeconfig`"
            )
    minio = None
    if composition.audit.backend == "minio":
        config = pulumi.Config("sovstack")
        user, password = config.get_secret("auditMinioUser"), config.get_secret("auditMinioPassword")
        minio = (user, password) if user is not None and password is not None else None
    sovereign = SovereignStack(
        spec.name,
        spec,
        findings=findings,
        kubeconfig=kubeconfig,
        minio_credentials=minio,
        composition=composition,
    )
    for key, value in sovereign.stack_outputs().items():
        pulumi.export(key, value)
