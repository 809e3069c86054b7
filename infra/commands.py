"""The `sovstack` command line, as typer commands (help, completion, usage errors, did-you-mean).

`infra/cli.py` is the entry point: it runs `validate` and `render` with simple arguments without
importing typer (infra/cli.py says why), and everything else through this app. Exit codes (every command): 0 success; 1 valid input that breaks a residency rule (or, for
`capacity`, a model that does not fit); 2 unreadable or invalid input, or bad usage; 3 an internal
error (a bug: please report it). No input prints a traceback. Only `plan` imports Pulumi.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from sovstack.infra.cli_style import plain_help_types
from sovstack.infra.stackfile import SpecError

EXIT_OK, EXIT_RESIDENCY, EXIT_INVALID, EXIT_INTERNAL, EXIT_PULUMI = 0, 1, 2, 3, 4
#: `-h` as well as `--help`, on every command and group.
HELP = {"help_option_names": ["-h", "--help"]}
plain_help_types()

app = typer.Typer(
    name="sovstack",
    help="Sovereign AI hosting stacks: validate, plan, render and report, per customer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=HELP,
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


StackArg = Annotated[
    str, typer.Argument(metavar="STACK", help="Stack name under stacks/ or a path to a stack file.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON on stdout).")]


def _emit_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, sort_keys=True))


def _fail_spec(err: SpecError, as_json: bool) -> NoReturn:
    if as_json:
        _emit_json({"valid": False, "problems": [p.to_dict() for p in err.problems]})
    else:
        for problem in err.problems:
            typer.echo(problem.line(), err=True)
    raise typer.Exit(EXIT_INVALID)


def _usage(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(EXIT_INVALID)


def _pick(option: str, what: str, value: str, known: Any) -> str:
    """A catalog id as the catalog spells it (case-insensitive), or exit 2 with "did you mean"."""
    from sovstack.infra.cli_style import LookupFailed, pick

    try:
        return pick(option, what, value, known)
    except LookupFailed as err:
        _usage(str(err))


@app.command(epilog="Example: sovstack validate gov-fr industrial-eu --verbose")
def validate(
    stacks: Annotated[
        list[str], typer.Argument(metavar="STACK...", help="Stack names or stack files (several allowed).")
    ],
    as_json: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list passing findings.")] = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Refuse (exit 1) a stack with placeholders: check it is deployable."),
    ] = False,
) -> None:
    """Check stacks against the spec, the catalogs and their residency policy; list placeholders."""
    from sovstack.infra.validation import validate_cli

    raise typer.Exit(validate_cli(stacks, as_json=as_json, verbose=verbose, strict=strict))


@app.command(epilog="Example: sovstack regions --gpu h100 --country fr")
def regions(
    provider: Annotated[
        str | None,
        typer.Option(
            metavar="PROVIDER",
            help="scaleway, ovh, talos, existing or operator (talos and existing run at the operator's sites).",
        ),
    ] = None,
    country: Annotated[
        str | None, typer.Option(metavar="CC", help="ISO 3166 alpha-2 country, e.g. FR.")
    ] = None,
    gpu: Annotated[
        str | None, typer.Option(metavar="GPU", help="GPU id, e.g. H100 (H100 also matches H100-SXM).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the regions and sites of the catalog, optionally filtered."""
    from sovstack.components.capacity import load_gpus
    from sovstack.components.catalog import load_catalog
    from sovstack.infra.cli_style import PROVIDERS, catalog_provider

    catalog = load_catalog()
    typed = (("provider", provider), ("country", country), ("gpu", gpu))
    if provider is not None:
        provider = catalog_provider(_pick("--provider", "provider", provider, PROVIDERS))
    if gpu is not None:
        families = set(load_gpus()) | {g.split("-", 1)[0] for g in load_gpus()}
        gpu = _pick("--gpu", "GPU type", gpu, families)

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
    if not rows:
        filters = " ".join(f"--{name} {value}" for name, value in typed if value)
        typer.echo(f"no region matches {filters}; `sovstack regions` lists them all", err=True)
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        return
    header = f"{'PROVIDER':<9} {'REGION':<13} {'CITY':<12} {'CC':<3} {'LAW':<6} ZONES (GPUs)"
    typer.echo(header)
    for row in rows:
        zone_text = ", ".join(f"{z} ({'/'.join(g) or '-'})" for z, g in row["zones"].items())
        typer.echo(
            f"{row['provider']:<9} {row['region']:<13} {row['city']:<12} {row['country']:<3} "
            f"{row['jurisdiction']:<6} {zone_text}"
        )


@app.command(epilog="Example: sovstack schema > schema/stack.schema.json   (or: sovstack schema --customer)")
def schema(
    customer: Annotated[
        bool,
        typer.Option("--customer", help="Only the customer spec (the value of config.sovstack:customer)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the JSON Schema of a stack file (stacks/Pulumi.NAME.yaml), for your editor's YAML plugin.
    The schema is JSON whether or not --json is given."""
    from sovstack.infra.stack_schema import customer_schema, stack_schema

    _emit_json(customer_schema() if customer else stack_schema())


@app.command(epilog="Example: sovstack templates --json")
def templates(as_json: JsonOpt = False) -> None:
    """List the templates `sovstack new` takes, with their residency profile and places."""
    from sovstack.infra.newstack import NewStackError, list_templates, load_template, templates_dir

    rows = []
    try:
        for name in list_templates():
            template = load_template(name)
            rows.append({"template": name, "profile": template.profile, "places": sorted(template.places)})
    except NewStackError as err:
        _usage("\n".join(err.lines))
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        typer.echo(f"no templates in {templates_dir()}", err=True)
        return
    typer.echo(f"{'TEMPLATE':<14} {'PROFILE':<14} PLACES (provider/region, site/NAME for talos and existing)")
    for row in rows:
        typer.echo(f"{row['template']:<14} {row['profile']:<14} {', '.join(row['places'])}")


@app.command(epilog="Example: sovstack models --json")
def models(as_json: JsonOpt = False) -> None:
    """List the models of the catalog (components/data/models.yaml): size, context, licence, source."""
    from sovstack.components.capacity import load_models

    rows: list[dict[str, Any]] = [
        {
            "model": m.id,
            "huggingFaceRepo": m.hugging_face_repo,
            "parametersTotal": m.parameters_total,
            "parametersActive": m.parameters_active,
            "maxContext": m.max_context,
            "licence": m.licence,
            "source": m.source,
        }
        for m in sorted(load_models().values(), key=lambda m: m.id)
    ]
    if as_json:
        _emit_json(rows)
        return
    typer.echo(f"{'MODEL':<42} {'PARAMS':>7} {'CONTEXT':>8}  {'LICENCE':<20} HUGGING FACE")
    for row in rows:
        params = f"{row['parametersTotal'] / 1e9:.1f}B"
        typer.echo(
            f"{row['model']:<42} {params:>7} {row['maxContext']:>8}  {row['licence']:<20} {row['huggingFaceRepo']}"
        )


@app.command(
    epilog="Example: sovstack capacity mistral-small-3-1-24b-instruct-2503 --provider scaleway   "
    "(or, for the arithmetic on one GPU type: --gpu h100)"
)
def capacity(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="Model id from the catalog (`sovstack models`).")
    ],
    gpu: Annotated[
        str | None,
        typer.Option(
            "--gpu",
            metavar="GPU",
            help="GPU id: H100, H100-SXM, H200, L4, L40S, A100, B300. Alone: the arithmetic on that GPU "
            "type; with --provider or --region: a filter on the node types.",
        ),
    ] = None,
    provider: Annotated[
        str | None, typer.Option(metavar="PROVIDER", help="Only node types of this provider.")
    ] = None,
    region: Annotated[
        str | None, typer.Option(metavar="REGION", help="Only node types in this region or site.")
    ] = None,
    dtype: Annotated[
        str, typer.Option(metavar="DTYPE", help="bf16, fp16, fp8, int4-awq or int4-gptq.")
    ] = "bf16",
    max_model_len: Annotated[
        int | None, typer.Option(metavar="TOKENS", help="Longest sequence, tokens.")
    ] = None,
    concurrency: Annotated[int, typer.Option(metavar="N", help="Concurrent sequences per replica.")] = 1,
    gpus_per_node: Annotated[
        int,
        typer.Option(
            metavar="N", help="GPUs in one node (TP stays within it); with --gpu, or at the operator's sites."
        ),
    ] = 8,
    gpu_memory_utilization: Annotated[
        float, typer.Option(metavar="FRACTION", help="vLLM's share of GPU memory, e.g. 0.9.")
    ] = 0.9,
    as_json: JsonOpt = False,
) -> None:
    """Does MODEL fit, and on which node types? By default: every node type the catalog offers (per
    provider, region and GPU count), with tensor-parallel size, replicas per node and headroom. With
    --gpu alone: the smallest tensor-parallel size on that GPU type, with the arithmetic."""
    from sovstack.components.capacity import (
        format_offers,
        format_plan,
        get_gpu,
        get_model,
        plan_capacity,
        plan_offers,
    )

    try:
        info = get_model(model)
        gpu_info = get_gpu(gpu) if gpu is not None else None
    except KeyError as err:
        option = "MODEL" if "model" in err.args[0].split("'")[0] else "--gpu"
        _usage(f"sovstack capacity: {option}: {err.args[0]}")
    options: dict[str, Any] = {
        "dtype": dtype,
        "max_model_len": max_model_len,
        "concurrency": concurrency,
        "gpu_memory_utilization": gpu_memory_utilization,
    }
    try:
        if gpu_info is not None and provider is None and region is None:
            result = plan_capacity(info, gpu_info, gpus_per_node=gpus_per_node, **options)
            if as_json:
                _emit_json(result.to_dict())
            else:
                typer.echo(format_plan(result))
            raise typer.Exit(EXIT_OK if result.fits else EXIT_RESIDENCY)
        offers = _node_offers(provider, region, gpu_info.id if gpu_info else None, gpus_per_node)
        rows = plan_offers(info, offers, **options)
    except ValueError as err:
        _usage(f"sovstack capacity: {_option_names(str(err))}")
    if as_json:
        _emit_json({"model": info.id, "nodeTypes": rows})
    elif rows:
        typer.echo(format_offers(info.id, rows))
    if not rows:
        typer.echo("sovstack capacity: no node type matches these filters", err=True)
    raise typer.Exit(EXIT_OK if any(r["fits"] for r in rows) else EXIT_RESIDENCY)


#: The planner's argument names, as the capacity command's options are written.
_CAPACITY_OPTIONS = ("max_model_len", "gpus_per_node", "gpu_memory_utilization", "concurrency")


def _option_names(message: str) -> str:
    """`max_model_len 99 exceeds ...` as `--max-model-len 99 exceeds ...`: the user typed options."""
    import re

    if message.startswith("unknown dtype "):
        return "--dtype: " + message
    for name in _CAPACITY_OPTIONS:
        message = re.sub(rf"(?<![\w-]){name}\b", "--" + name.replace("_", "-"), message)
    return message


def _node_offers(provider: str | None, region: str | None, gpu: str | None, site_gpus: int) -> list[Any]:
    from sovstack.components.capacity import node_offers
    from sovstack.components.catalog import load_catalog
    from sovstack.infra.cli_style import PROVIDERS, catalog_provider

    catalog = load_catalog()
    if provider is not None:
        provider = catalog_provider(_pick("--provider", "provider", provider, PROVIDERS))
    if region is not None:
        places = [r.code for r in catalog.regions if provider is None or r.provider == provider]
        region = _pick("--region", "region", region, places)
    return node_offers(catalog, provider=provider, region=region, gpu=gpu, site_gpus_per_node=site_gpus)


@app.command(
    epilog="Example: sovstack plan gov-fr --json > main.json; (edit the stack) sovstack plan gov-fr --compare main.json"
)
def plan(
    stack: StackArg,
    as_json: JsonOpt = False,
    show_inputs: Annotated[
        bool, typer.Option("--show-inputs", help="Print every resource's inputs in full.")
    ] = False,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            metavar="OLD.json",
            help="A previous `plan --json` (e.g. from the main branch): print what this plan adds, "
            "removes and modifies, input path by input path.",
        ),
    ] = None,
) -> None:
    """Run the Pulumi program under Pulumi's mock engine, offline: every resource `pulumi up` would
    register, as a tree under its components, with protect and ignoreChanges markers. A mock run: it
    cannot show what only the provider knows (updates versus replacements, provider-side defaults and
    diffs, server-side admission); `sovstack preview STACK` runs the real engine for that."""
    from sovstack.infra.plan_view import plan_cli

    raise typer.Exit(plan_cli(stack, as_json=as_json, show_inputs=show_inputs, compare=compare))


@app.command(epilog="Example: sovstack render gov-fr --out build/gov-fr   (or: sovstack render --all)")
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
    force: Annotated[
        bool, typer.Option("--force", help="Render even a stack whose render on disk has the same inputs.")
    ] = False,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Render a stack with placeholders (example digests, documentation addresses, the example "
            "Git URL) anyway: the output is a demo, not for deployment. Without it such a stack exits 1.",
        ),
    ] = False,
) -> None:
    """Write plain manifests, the GitOps engine's objects and the residency report."""
    from sovstack.infra.render import render_cli

    raise typer.Exit(
        render_cli(
            stack, out, all_stacks=all_stacks, jobs=jobs, repo_url=repo_url, repo_root=repo_root,
            revision=revision, flavor=flavor, pko=pko, force=force, demo=demo,
        )
    )  # fmt: skip


@app.command(epilog="Example: sovstack report gov-fr --format html > gov-fr.html")
def report(
    stack: StackArg,
    format: Annotated[
        str, typer.Option("--format", metavar="md|json|html", help="md (default), json or html.")
    ] = "md",
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
    bundle: Annotated[
        Path | None,
        typer.Option(
            "--bundle",
            help="Write an audit bundle here instead (a new directory): the report in md, html and json, "
            "the rendered manifests, the plan, SHA256SUMS.",
        ),
    ] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-key", help="SSH private key: sign SHA256SUMS (ssh-keygen -Y sign -n sovstack-report)."
        ),
    ] = None,
    signer: Annotated[
        str, typer.Option("--signer", help="Principal named in the bundle's allowed_signers.")
    ] = "operator",
) -> None:
    """Print the residency report of a stack: every finding and where everything lives. Its time is
    $SOURCE_DATE_EPOCH when set, else the time of the commit it names ($SOVSTACK_GIT_COMMIT or git's HEAD)."""
    from sovstack.infra.pipeline import load_stack
    from sovstack.infra.report import ProvenanceError, build_report, render_report

    format = format.lower()
    if as_json:
        if format not in ("md", "json"):
            _usage(f"--json contradicts --format {format}; give one")
        format = "json"
    if format not in ("md", "json", "html"):
        from sovstack.components.suggest import did_you_mean

        _usage(
            f"--format: {format!r} is not one of md, json, html{did_you_mean(format, ('md', 'json', 'html'))}"
        )
    if sign_key is not None and bundle is None:
        typer.echo("--sign-key: only with --bundle", err=True)
        raise typer.Exit(EXIT_INVALID)
    try:
        loaded = load_stack(stack)
    except SpecError as err:
        _fail_spec(err, format == "json")
    try:
        if bundle is not None:
            data = _write_bundle(loaded, bundle, sign_key, signer)
        else:
            data = build_report(
                loaded, loaded.composition, list(loaded.findings) if loaded.findings is not None else None
            )
            typer.echo(render_report(data, format), nl=False)
    except ProvenanceError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    raise typer.Exit(EXIT_OK if data["verdict"]["passed"] else EXIT_RESIDENCY)


def _write_bundle(loaded: Any, out: Path, sign_key: Path | None, signer: str) -> dict[str, Any]:
    """The plan is included for a stack inside its policy (a refused one has nothing to plan)."""
    from sovstack.infra.bundle import BundleError, check_target, write_bundle

    try:
        check_target(out, sign_key)
    except BundleError as err:
        for line in err.lines:
            typer.echo(line, err=True)
        raise typer.Exit(err.exit_code) from None
    plan = None
    if loaded.composition is not None and not any(not f.passed for f in loaded.findings or ()):
        from sovstack.infra.plan import PlanError, run_plan

        try:
            plan = run_plan(loaded).to_dict()
        except PlanError as err:
            typer.echo(f"{loaded.path}: {err}", err=True)
            raise typer.Exit(err.exit_code) from None
    try:
        data = write_bundle(loaded, out, plan, sign_key=sign_key, signer=signer)
    except BundleError as err:
        for line in err.lines:
            typer.echo(line, err=True)
        raise typer.Exit(err.exit_code) from None
    signed = f", signed ({out / 'SHA256SUMS.sig'})" if sign_key else ""
    typer.echo(f"wrote bundle {out}: SHA256SUMS{signed}; verify with `cd {out} && sha256sum -c SHA256SUMS`")
    return data


@app.command(epilog="Example: sovstack new acme --template fr-sovereign --provider ovh --region gra11")
def new(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The new customer's name (a DNS label).")],
    template: Annotated[
        str,
        typer.Option(
            metavar="TEMPLATE", help="Template under stacks/templates/ (`sovstack templates` lists them)."
        ),
    ],
    provider: Annotated[
        str | None,
        typer.Option(metavar="PROVIDER", help="scaleway, ovh, talos or existing: override the template's."),
    ] = None,
    region: Annotated[
        str | None, typer.Option(metavar="REGION", help="Override the template's region or site.")
    ] = None,
    set_values: Annotated[
        list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="A template variable (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create stacks/Pulumi.NAME.yaml from a template, validated before it is written."""
    from sovstack.infra.newstack import NewStackError, create_stack

    if provider is not None:
        provider = _pick("--provider", "provider", provider, ("scaleway", "ovh", "talos", "existing"))
    if region is not None:
        from sovstack.components.catalog import load_catalog
        from sovstack.components.suggest import find_id
        from sovstack.infra.cli_style import catalog_provider

        regions = load_catalog().regions
        if provider is not None:
            places = [r.code for r in regions if r.provider == catalog_provider(provider)]
            region = _pick(
                "--region", "region" if provider in ("scaleway", "ovh") else "site", region, places
            )
        else:  # the template's provider decides; only the spelling is settled here
            region = find_id(region, [r.code for r in regions]) or region
    try:
        path = create_stack(name, template, provider=provider, region=region, values=set_values or [])
    except NewStackError as err:
        for line in err.lines:
            typer.echo(line, err=True)
        raise typer.Exit(err.exit_code) from None
    steps = [
        f"sovstack validate {name}",
        f"sovstack plan {name}",
        f"pulumi stack init {name}   # with your in-region backend: see docs/quickstart.md",
        f"pulumi up --stack {name}",
    ]
    if as_json:
        _emit_json({"created": str(path), "next": steps})
        return
    typer.echo(f"created {path}")
    typer.echo("next:")
    for step in steps:
        typer.echo(f"  {step}")


def _deploy(stack: str, operation: str, **options: Any) -> None:
    """Load and check the stack like `validate`, then run Pulumi the way its spec says (infra/deploy.py)."""
    from sovstack.infra.pipeline import load_stack

    try:
        # refresh and destroy read back or remove what exists: an expired Kubernetes version must not block them.
        loaded = load_stack(stack, creating=operation in ("preview", "up"))
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


@app.command(epilog="Example: sovstack preview gov-fr --expect-no-changes")
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


@app.command(epilog="Example: sovstack up gov-fr")
def up(stack: StackArg, no_policy_pack: NoPackOpt = False) -> None:
    """`pulumi up` of STACK, the same way as `preview`: the backend, secrets and policy the spec declares."""
    _deploy(stack, "up", policy_pack=None if no_policy_pack else _pack())


@app.command(epilog="Example: sovstack refresh gov-fr --expect-no-changes")
def refresh(
    stack: StackArg,
    expect_no_changes: Annotated[
        bool, typer.Option("--expect-no-changes", help="Fail on any drift.")
    ] = False,
) -> None:
    """`pulumi refresh` of STACK: read every resource back and show the drift."""
    _deploy(stack, "refresh", expect_no_changes=expect_no_changes)


@app.command(epilog="Example: sovstack destroy gov-fr")
def destroy(stack: StackArg) -> None:
    """Tear STACK down, keeping what is protected (the audit bucket, the cluster), and list what was kept."""
    _deploy(stack, "destroy", exclude_protected=True)


def _pack() -> str:
    from sovstack.infra.deploy import POLICY_PACK

    return str(POLICY_PACK)


# --- sovstack weights: pin model weights like images (infra/weights.py) -----------------------------------
weights_app = typer.Typer(
    help="Pin model weights like images: a manifest of sha256 per file.",
    no_args_is_help=True,
    context_settings=HELP,
)
app.add_typer(weights_app, name="weights")


@weights_app.command("manifest", epilog="Example: sovstack weights manifest ./weights/mistral-7b --out -")
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
    context_settings=HELP,
)
app.add_typer(audit_app, name="audit")
AuditEndpointOpt = Annotated[
    str | None, typer.Option("--endpoint", help="Reach the bucket here instead (a port-forward, a mirror).")
]


@audit_app.command("query", epilog="Example: sovstack audit query gov-fr --since 7d --model mistral --json")
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
    content_sha256: Annotated[
        str | None,
        typer.Option(
            "--content-sha256",
            help="Only requests whose prompt or answer body has this sha256 (`sha256sum` of the body).",
        ),
    ] = None,
    slack: Annotated[int, typer.Option(help="Hours of prefixes listed beyond each end of the window.")] = 1,
    endpoint: AuditEndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the inference records of STACK's audit bucket in a time window, by subject or model."""
    from sovstack.infra.audit_query import audit_query_cli

    raise typer.Exit(
        audit_query_cli(
            stack, since=since, until=until, subject=subject, model=model, endpoint=endpoint,
            slack_hours=slack, as_json=as_json, content_sha256=content_sha256,
        )
    )  # fmt: skip


@audit_app.command("verify", epilog="Example: sovstack audit verify gov-fr")
def audit_verify(stack: StackArg, endpoint: AuditEndpointOpt = None, as_json: JsonOpt = False) -> None:
    """Check the live bucket: versioning, object lock, COMPLIANCE retention of at least the stack's days."""
    from sovstack.infra.audit_query import audit_verify_cli

    raise typer.Exit(audit_verify_cli(stack, endpoint=endpoint, as_json=as_json))
