"""The `sovstack` command line.

Exit codes (every command): 0 success; 1 valid input that breaks a residency rule (or, for
`capacity`, a model that does not fit); 2 unreadable or invalid input, or bad usage; 3 an internal
error (a bug: please report it). No input prints a traceback. Only `plan` imports Pulumi.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from sovstack.infra.stackfile import SpecError

EXIT_OK, EXIT_RESIDENCY, EXIT_INVALID, EXIT_INTERNAL, EXIT_PULUMI = 0, 1, 2, 3, 4

app = typer.Typer(
    name="sovstack",
    help="Sovereign AI hosting stacks: validate, plan, render and report, per customer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"sovstack {version('sovstack')}")
        except PackageNotFoundError:
            typer.echo("sovstack (not installed)")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Sovereign AI hosting stacks: validate, plan, render and report, per customer."""


StackArg = Annotated[str, typer.Argument(help="Stack name under stacks/ or a path to a stack file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _emit_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, sort_keys=True))


def _fail_spec(err: SpecError, as_json: bool) -> NoReturn:
    if as_json:
        _emit_json({"valid": False, "problems": [p.to_dict() for p in err.problems]})
    else:
        for problem in err.problems:
            typer.echo(problem.line(), err=True)
    raise typer.Exit(EXIT_INVALID)


@app.command()
def validate(
    stacks: Annotated[list[str], typer.Argument(help="Stack names or stack files (several allowed).")],
    as_json: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list passing findings.")] = False,
) -> None:
    """Check stacks against the spec, the catalogs and their residency policy."""
    from sovstack.infra.validation import validate_stack

    results = [validate_stack(ref) for ref in stacks]
    code = max(r.exit_code for r in results)
    if as_json:
        payload = [r.to_dict() for r in results]
        _emit_json(payload[0] if len(payload) == 1 else payload)
        raise typer.Exit(code)
    for result in results:
        for problem in result.problems:
            typer.echo(problem.line(), err=True)
        for finding in result.findings:
            if verbose or not finding.passed:
                stream = not finding.passed
                typer.echo(finding.line(result.file), err=stream)
        if result.exit_code == EXIT_OK:
            passed = sum(f.passed for f in result.findings)
            typer.echo(
                f"{result.file}: valid ({passed} residency checks passed, policy {result.policy_label})"
            )
        elif result.exit_code == EXIT_RESIDENCY:
            failed = sum(not f.passed for f in result.findings)
            typer.echo(f"{result.file}: {failed} residency rule(s) broken", err=True)
    raise typer.Exit(code)


@app.command()
def regions(
    provider: Annotated[str | None, typer.Option(help="scaleway, ovh or operator (own sites).")] = None,
    country: Annotated[str | None, typer.Option(help="ISO 3166 alpha-2 country, e.g. FR.")] = None,
    gpu: Annotated[str | None, typer.Option(help="GPU id, e.g. H100 (H100 also matches H100-SXM).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the regions and sites of the catalog, optionally filtered."""
    from sovstack.components.catalog import load_catalog

    catalog = load_catalog()
    if provider is not None and provider not in catalog.providers:
        typer.echo(
            f"--provider: unknown provider {provider!r}; known: {', '.join(sorted(catalog.providers))}",
            err=True,
        )
        raise typer.Exit(EXIT_INVALID)

    def offers(gpus: tuple[str, ...]) -> bool:
        return gpu is None or any(
            g.upper() == gpu.upper() or g.upper().startswith(gpu.upper() + "-") for g in gpus
        )

    rows: list[dict[str, Any]] = []
    for region in catalog.regions:
        if provider and region.provider != provider:
            continue
        if country and region.country != country.upper():
            continue
        matching = [z for z in region.zones if offers(z.gpus)]
        if not matching:
            continue
        rows.append(
            {
                "provider": region.provider,
                "region": region.code,
                "city": region.city,
                "country": region.country,
                "jurisdiction": region.jurisdiction,
                "headquarters": catalog.provider(region.provider).headquarters,
                "zones": {z.code: list(z.gpus) for z in matching},
                "source": region.source,
            }
        )
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        typer.echo("no region matches", err=True)
        return
    header = f"{'PROVIDER':<9} {'REGION':<13} {'CITY':<12} {'CC':<3} {'LAW':<6} ZONES (GPUs)"
    typer.echo(header)
    for row in rows:
        zone_text = ", ".join(f"{z} ({'/'.join(g) or '-'})" for z, g in row["zones"].items())
        typer.echo(
            f"{row['provider']:<9} {row['region']:<13} {row['city']:<12} {row['country']:<3} "
            f"{row['jurisdiction']:<6} {zone_text}"
        )


@app.command()
def schema() -> None:
    """Print the customer spec's JSON Schema (point your editor's YAML plugin at it)."""
    from sovstack.infra.spec import CustomerSpec

    document = CustomerSpec.model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "sovstack customer spec (config.sovstack:customer)"
    _emit_json(document)


@app.command()
def capacity(
    model: Annotated[str, typer.Argument(help="Model id from the catalog (see docs/capacity.md).")],
    gpu: Annotated[str, typer.Option("--gpu", help="GPU id: H100, H100-SXM, H200, L4, L40S, A100, B300.")],
    dtype: Annotated[str, typer.Option(help="bf16, fp16, fp8, int4-awq or int4-gptq.")] = "bf16",
    max_model_len: Annotated[int | None, typer.Option(help="Longest sequence, tokens.")] = None,
    concurrency: Annotated[int, typer.Option(help="Concurrent sequences per replica.")] = 1,
    gpus_per_node: Annotated[int, typer.Option(help="GPUs in one node (TP stays within it).")] = 8,
    gpu_memory_utilization: Annotated[float, typer.Option(help="vLLM's share of GPU memory.")] = 0.9,
    as_json: JsonOpt = False,
) -> None:
    """Does MODEL fit GPU? The smallest tensor-parallel size, with the arithmetic."""
    from sovstack.components.capacity import format_plan, get_gpu, get_model, plan_capacity

    try:
        plan = plan_capacity(
            get_model(model),
            get_gpu(gpu),
            dtype=dtype,
            max_model_len=max_model_len,
            concurrency=concurrency,
            gpus_per_node=gpus_per_node,
            gpu_memory_utilization=gpu_memory_utilization,
        )
    except KeyError as err:
        typer.echo(f"sovstack capacity: {err.args[0]}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except ValueError as err:
        typer.echo(f"sovstack capacity: {err}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        _emit_json(plan.to_dict())
    else:
        typer.echo(format_plan(plan))
    raise typer.Exit(EXIT_OK if plan.fits else EXIT_RESIDENCY)


@app.command()
def plan(stack: StackArg, as_json: JsonOpt = False) -> None:
    """Run the Pulumi program under Pulumi's mock engine, offline: every resource `pulumi up` would
    register, with its inputs, parent, provider and options. A mock run: it cannot show what only the
    provider knows (updates versus replacements, provider-side defaults and diffs, server-side
    admission); `sovstack preview STACK` runs the real engine for that."""
    from sovstack.infra.pipeline import load_stack

    try:
        loaded = load_stack(stack)
    except SpecError as err:
        _fail_spec(err, as_json)
    from sovstack.infra.plan import PlanError, format_plan, run_plan

    try:
        result = run_plan(loaded)
    except PlanError as err:
        typer.echo(f"{loaded.path}: {err}", err=True)
        raise typer.Exit(err.exit_code) from None
    if as_json:
        _emit_json(result.to_dict())
    else:
        typer.echo(format_plan(result))


@app.command()
def render(
    stack: Annotated[str | None, typer.Argument(help="Stack name or file; omit with --all.")] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Output directory (created; replaced if it exists).")
    ] = Path("build/render"),
    all_stacks: Annotated[
        bool, typer.Option("--all", help="Render every stack under stacks/ into OUT/<stack>.")
    ] = False,
    jobs: Annotated[int, typer.Option(help="Worker processes for --all (default: all cores).")] = 0,
    repo_url: Annotated[
        str | None,
        typer.Option(
            envvar="SOVSTACK_GITOPS_REPO",
            help="Git repository the engine reads OUT from (default: the `origin` remote of OUT's repository).",
        ),
    ] = None,
    repo_root: Annotated[
        Path | None,
        typer.Option(help="Root of that repository's checkout (default: the git work tree holding OUT)."),
    ] = None,
    revision: Annotated[str, typer.Option(help="Git branch (or 40-hex commit) the engine tracks.")] = "main",
    flavor: Annotated[
        str | None, typer.Option(help="argocd (default: an app of apps per customer) or flux.")
    ] = None,
    pko: Annotated[
        bool,
        typer.Option(
            "--pko", help="Write Pulumi Kubernetes Operator Stacks (pko/) instead of Argo CD or Flux objects."
        ),
    ] = False,
) -> None:
    """Write plain manifests, the GitOps engine's objects and the residency report."""
    import sovstack.infra.render as render_mod
    from sovstack.infra.stackfile import stacks_dir

    if all_stacks == (stack is not None):
        typer.echo("render: give either STACK or --all", err=True)
        raise typer.Exit(EXIT_INVALID)
    if pko and flavor is not None:
        typer.echo("render: --pko and --flavor choose the engine both; give one", err=True)
        raise typer.Exit(EXIT_INVALID)
    chosen = "pko" if pko else (flavor or "argocd")
    git = render_mod.locate_cli(out, repo_url, revision, repo_root, chosen, stacks_dir().resolve().parent)
    if isinstance(git, int):
        raise typer.Exit(git)
    if all_stacks:
        raise typer.Exit(render_mod.render_all_cli(out, git, jobs=jobs or None))
    assert stack is not None
    raise typer.Exit(render_mod.render_one_cli(stack, out, git))


@app.command()
def report(
    stack: StackArg,
    format: Annotated[str, typer.Option("--format", help="md, json or html.")] = "md",
) -> None:
    """Print the residency report of a stack: every finding and where everything lives."""
    from sovstack.infra.pipeline import load_stack
    from sovstack.infra.report import build_report, render_report

    if format not in ("md", "json", "html"):
        typer.echo(f"--format: {format!r} is not one of md, json, html", err=True)
        raise typer.Exit(EXIT_INVALID)
    try:
        loaded = load_stack(stack)
    except SpecError as err:
        _fail_spec(err, False)
    data = build_report(
        loaded, loaded.composition, list(loaded.findings) if loaded.findings is not None else None
    )
    typer.echo(render_report(data, format), nl=False)
    raise typer.Exit(EXIT_OK if data["verdict"]["passed"] else EXIT_RESIDENCY)


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="The new customer's name (a DNS label).")],
    template: Annotated[str, typer.Option(help="Template under stacks/templates/ (e.g. eu, fr-sovereign).")],
    provider: Annotated[str | None, typer.Option(help="Override the template's provider.")] = None,
    region: Annotated[str | None, typer.Option(help="Override the template's region or site.")] = None,
    set_values: Annotated[
        list[str] | None, typer.Option("--set", help="key=value template variable.")
    ] = None,
) -> None:
    """Create stacks/Pulumi.NAME.yaml from a template, validated before it is written."""
    from sovstack.infra.newstack import NewStackError, create_stack

    try:
        path = create_stack(name, template, provider=provider, region=region, values=set_values or [])
    except NewStackError as err:
        for line in err.lines:
            typer.echo(line, err=True)
        raise typer.Exit(err.exit_code) from None
    typer.echo(f"created {path}")
    typer.echo("next:")
    typer.echo(f"  sovstack validate {name}")
    typer.echo(f"  sovstack plan {name}")
    typer.echo(f"  pulumi stack init {name}   # with your in-region backend: see docs/quickstart.md")
    typer.echo(f"  pulumi up --stack {name}")


def _deploy(stack: str, operation: str, **options: Any) -> None:
    """Load and check the stack like `validate`, then run Pulumi the way its spec says (infra/deploy.py)."""
    from sovstack.infra.pipeline import load_stack

    try:
        loaded = load_stack(stack)
    except SpecError as err:
        _fail_spec(err, False)
    broken = [f for f in loaded.findings or () if not f.passed]
    if broken:
        for finding in broken:
            typer.echo(finding.line(str(loaded.path)), err=True)
        typer.echo(f"{loaded.path}: {len(broken)} residency rule(s) broken; nothing was run", err=True)
        raise typer.Exit(EXIT_RESIDENCY)
    from sovstack.infra.deploy import DeployError, DeployOptions, run

    try:
        run(loaded, operation, DeployOptions(on_output=lambda line: typer.echo(line, nl=False), **options))
    except DeployError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(err.exit_code) from None
    if operation == "destroy":
        from sovstack.infra.deploy import remaining_resources

        left = remaining_resources(loaded)
        if left:
            typer.echo(f"kept (protected, as the audit trail must be): {len(left)} resource(s)")
            for urn in left:
                typer.echo(f"  {urn}")


NoPackOpt = Annotated[
    bool,
    typer.Option(
        "--no-policy-pack", help="Skip the CrossGuard pack (it runs by default, configured from the spec)."
    ),
]


@app.command()
def preview(
    stack: StackArg,
    expect_no_changes: Annotated[
        bool, typer.Option("--expect-no-changes", help="Fail if anything would change.")
    ] = False,
    no_policy_pack: NoPackOpt = False,
) -> None:
    """`pulumi preview` of STACK on its own state backend, with its secrets provider and policy pack."""
    _deploy(
        stack, "preview", expect_no_changes=expect_no_changes, policy_pack=None if no_policy_pack else _pack()
    )


@app.command()
def up(stack: StackArg, no_policy_pack: NoPackOpt = False) -> None:
    """`pulumi up` of STACK, the same way as `preview`: the backend, secrets and policy the spec declares."""
    _deploy(stack, "up", policy_pack=None if no_policy_pack else _pack())


@app.command()
def refresh(
    stack: StackArg,
    expect_no_changes: Annotated[
        bool, typer.Option("--expect-no-changes", help="Fail on any drift.")
    ] = False,
) -> None:
    """`pulumi refresh` of STACK: read every resource back and show the drift."""
    _deploy(stack, "refresh", expect_no_changes=expect_no_changes)


@app.command()
def destroy(stack: StackArg) -> None:
    """Tear STACK down, keeping what is protected (the audit bucket, the cluster), and list what was kept."""
    _deploy(stack, "destroy", exclude_protected=True)


def _pack() -> str:
    from sovstack.infra.deploy import POLICY_PACK

    return str(POLICY_PACK)


# --- sovstack weights: pin model weights like images (infra/weights.py) -----------------------------------
weights_app = typer.Typer(
    help="Pin model weights like images: a manifest of sha256 per file.", no_args_is_help=True
)
app.add_typer(weights_app, name="weights")


@weights_app.command("manifest")
def weights_manifest(
    source: Annotated[
        str, typer.Argument(help="A weights directory, or s3://bucket/prefix with --endpoint.")
    ],
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Where to write SHA256SUMS ('-' for stdout); default DIR/SHA256SUMS, or ./SHA256SUMS for s3://.",
        ),
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="HTTPS S3 endpoint of an s3:// source.")] = None,
    region: Annotated[
        str | None, typer.Option(help="S3 region to sign for; default $AWS_REGION or us-east-1.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write SOURCE's manifest (sha256sum -c format, sorted) and print the manifest's own sha256 to pin."""
    from sovstack.infra.weights import weights_manifest_cli

    raise typer.Exit(weights_manifest_cli(source, out=out, endpoint=endpoint, region=region, as_json=as_json))


# --- sovstack audit: read the audit bucket (infra/audit_query.py) ---------------------------------------
audit_app = typer.Typer(
    help="Read a stack's audit bucket: query inference records, verify it is write-once. Read-only keys "
    "from SOVSTACK_AUDIT_ACCESS_KEY_ID / SOVSTACK_AUDIT_SECRET_ACCESS_KEY (else AWS_*).",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")
AuditEndpointOpt = Annotated[
    str | None, typer.Option("--endpoint", help="Reach the bucket here instead (a port-forward, a mirror).")
]


@audit_app.command("query")
def audit_query(
    stack: StackArg,
    since: Annotated[
        str | None, typer.Option(help="From (included): 7d, 12h, 2026-03-05, 2026-03-05T10:00Z.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="To (excluded); default now. Same forms as --since.")
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Only this authenticated subject (the token's sub).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only this served model name.")] = None,
    slack: Annotated[int, typer.Option(help="Hours of prefixes listed beyond each end of the window.")] = 1,
    endpoint: AuditEndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the inference records of STACK's audit bucket in a time window, by subject or model."""
    from sovstack.infra.audit_query import audit_query_cli

    raise typer.Exit(
        audit_query_cli(
            stack, since=since, until=until, subject=subject, model=model, endpoint=endpoint,
            slack_hours=slack, as_json=as_json,
        )
    )  # fmt: skip


@audit_app.command("verify")
def audit_verify(stack: StackArg, endpoint: AuditEndpointOpt = None, as_json: JsonOpt = False) -> None:
    """Check the live bucket: versioning, object lock, COMPLIANCE retention of at least the stack's days."""
    from sovstack.infra.audit_query import audit_verify_cli

    raise typer.Exit(audit_verify_cli(stack, endpoint=endpoint, as_json=as_json))


def main() -> None:
    """Entry point: typer's own usage errors exit 2; anything unexpected exits 3 without a traceback."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as err:  # the promise: no traceback, whatever the input
        typer.echo(f"sovstack: internal error: {type(err).__name__}: {err} (please report this)", err=True)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
