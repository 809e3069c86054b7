"""The Pulumi program: read the customer spec, refuse what is out of bounds, then build the stack.

Nothing is registered before the spec, the catalog checks and every residency rule have passed.
A stack-wide transform then rejects any resource (even one added by hand) whose region, zone or
location input lies outside the policy, or whose place it cannot determine at all (fail closed).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pulumi

from sovstack.components.residency import (
    LOCATION_KEYS,
    Engine,
    Finding,
    ResidencyPolicy,
    failures,
    pending_location_keys,
    resource_location_findings,
)
from sovstack.infra.checks import semantic_problems
from sovstack.infra.compose import build_composition
from sovstack.infra.placeholders import find_placeholders, not_deployable
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
    """A resource transform that fails any resource placed outside the policy, or not placed at all.

    Provider resources count too: `pulumi:providers:scaleway` is checked by the region it is configured
    for, since it places every resource that sets none; a resource with no location input passes only
    through such a checked provider or when policies.yaml lists its type as location-free (fail closed).
    A location still held in an Output is checked when it resolves, before the resource is created: the
    guard makes the input depend on an Output that raises on a value out of bounds. An unknown value
    (a preview, before the value exists) is checked by the run that knows it.
    """
    engine = Engine(policy)
    placed_packages: set[str] = set()  # packages with an explicit provider whose location was checked

    def refuse(name: str, type_: str, broken: list[Finding]) -> NoReturn:
        lines = "\n".join(f"  {f.path}: [{f.rule}] {f.reason}" for f in broken)
        raise ResidencyRefused(f"resource {name} ({type_}) is outside the residency policy:\n{lines}")

    def guard(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
        if not args.custom:
            return None  # a component places nothing itself; its children are checked one by one
        raw = args.props if isinstance(args.props, dict) else {}
        props = {k: _plain(v) for k, v in raw.items()}
        package = _provider_package(args.opts, args.type_)
        placed_by = f"{package} provider" if package in placed_packages else None
        unknown = [k for k in LOCATION_KEYS if _is_unknown(props.get(k))]
        known = {k: v for k, v in props.items() if k not in unknown}
        pending = pending_location_keys(known)
        findings = resource_location_findings(
            engine, args.type_, args.name, known, placed_by_provider=placed_by
        )
        if unknown:  # placed by a value the engine does not know yet: the run that knows it checks it
            findings = [f for f in findings if f.rule != "resource.location"]
        broken = failures(findings)
        if broken:
            refuse(args.name, args.type_, broken)
        # A provider placed by a checked location (or by one checked when it is known) places its children.
        if args.type_.startswith("pulumi:providers:") and (
            unknown
            or pending
            or any(
                f.rule != "resource.location" or not f.reason.startswith("location-free") for f in findings
            )
        ):
            placed_packages.add(args.type_.rsplit(":", 1)[-1])
        if not pending:
            return None

        def checker(key: str) -> Callable[[Any], Any]:
            def checked(value: Any) -> Any:
                late = failures(
                    resource_location_findings(
                        engine, args.type_, args.name, {**props, key: value}, placed_by_provider=placed_by
                    )
                )
                if late:
                    refuse(args.name, args.type_, late)
                return value

            return checked

        new_props = dict(raw)
        for key in pending:
            new_props[key] = pulumi.Output.from_input(raw[key]).apply(checker(key))
        return pulumi.ResourceTransformResult(props=new_props, opts=args.opts)

    return guard


def _plain(value: Any) -> Any:
    """A secret-wrapped input as the engine sends it, unwrapped: a secret region is still a region."""
    if pulumi.runtime.rpc.is_rpc_secret(value):
        return pulumi.runtime.rpc.unwrap_rpc_secret(value)
    return value


def _is_unknown(value: Any) -> bool:
    values = value if isinstance(value, list | tuple) else [value]
    return any(v == pulumi.runtime.rpc.UNKNOWN for v in values)


def _provider_package(opts: pulumi.ResourceOptions | None, type_: str) -> str | None:
    """The package of the resource's explicit provider when it is the resource's own package, else None.
    The engine passes the provider as a reference whose `package` the SDK parses from its URN."""
    provider = getattr(opts, "provider", None) if opts is not None else None
    package = getattr(provider, "package", None)
    return package if package == type_.split(":", 1)[0] else None


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
    demo = pulumi.Config("sovstack").get_bool("demo") or False
    mock_run = pulumi.Config("sovstack").get("stackFile") is not None  # `sovstack plan`: nothing deployed
    placeholders = find_placeholders(spec)
    if placeholders and not (demo or mock_run):
        lines = "\n".join(p.line(file) for p in placeholders)
        raise ResidencyRefused(
            f"{not_deployable(len(placeholders))}; nothing was registered (fill them in, or set "
            f"`sovstack:demo: true` for a demonstration stack):\n{lines}"
        )
    for placeholder in placeholders:
        pulumi.log.warn(placeholder.line(file))
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
