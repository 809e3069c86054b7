"""`sovstack new`: write `stacks/Pulumi.NAME.yaml` from a template, checked in full before it is written.

One template for every profile, written as data: `build_stack` assembles the stack file as a YAML
document (ruamel.yaml keeps its comments) from three data files in TEMPLATES:
- `variables.yaml`: every variable, its default and what it means;
- `places.yaml`: per-place defaults (zone, node types, object storage, mirror) for each region or site;
- `profiles/<template>.yaml`: a template is a residency profile plus its own defaults.
No value is ever pasted into YAML text, so no value can change the document's structure.

TEMPLATES is the `templates/` folder of the stacks directory (`stacks_dir()`, which honours
`$SOVSTACK_STACKS_DIR`) when it has one, else the templates installed with sovstack (the repository's
`stacks/templates`). Nothing is written unless the stack passes the spec, catalog, capacity and
residency checks; the file then appears atomically and never replaces an existing one.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from sovstack.components.builders.audit_sink import audit_data
from sovstack.components.builders.model_serving_args import serving_defaults
from sovstack.components.catalog import load_catalog
from sovstack.components.kube import is_dns_label
from sovstack.components.residency import PolicyError
from sovstack.components.suggest import did_you_mean, find_id
from sovstack.infra.pipeline import load_stack
from sovstack.infra.residency_check import evaluate
from sovstack.infra.stack_schema import modeline
from sovstack.infra.stackfile import Problem, SpecError, format_loc, stacks_dir

EXIT_RESIDENCY, EXIT_INVALID = 1, 2
VARIABLES_FILE = "variables.yaml"
PLACES_FILE = "places.yaml"
PROFILES_DIR = "profiles"
#: The repository's templates, when sovstack runs from a clone (an installed sovstack carries a copy as
#: sovstack/stack_templates, which the repository links to stacks/templates).
REPOSITORY_TEMPLATES = Path(__file__).resolve().parents[1] / "stacks" / "templates"
#: Providers that run on one of the operator's own sites (`site/<name>` in places.yaml).
SITE_PROVIDERS = ("talos", "existing")


class NewStackError(Exception):
    """The stack could not be created; `lines` explain why, `exit_code` is the CLI's exit code."""

    def __init__(self, lines: Sequence[str], exit_code: int = EXIT_INVALID) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)
        self.exit_code = exit_code


# ------------------------------------------------------------------------------------ template data
def templates_dir() -> Path:
    """`<stacks dir>/templates` when it exists, else the templates shipped with sovstack."""
    local = stacks_dir() / "templates"
    if local.is_dir():
        return local
    return _shipped_templates()


@cache
def _shipped_templates() -> Path:
    import sovstack

    for candidate in (REPOSITORY_TEMPLATES, Path(sovstack.__file__).parent / "stack_templates"):
        if (candidate / VARIABLES_FILE).is_file():
            return candidate
    raise NewStackError(["no stack templates found: is sovstack installed whole?"])


def list_templates(folder: Path | None = None) -> list[str]:
    folder = folder or templates_dir()
    return sorted(p.stem for p in (folder / PROFILES_DIR).glob("*.yaml"))


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise NewStackError([f"{path}: cannot read: {err}"]) from None


@dataclass(frozen=True)
class Template:
    """A profile's template: its residency profile, its variables (defaults applied) and the places."""

    name: str
    profile: str
    defaults: dict[str, Any]
    help: dict[str, str]
    places: dict[str, dict[str, Any]]
    charts_from_mirror: bool


def load_template(template: str, folder: Path | None = None) -> Template:
    folder = folder or templates_dir()
    variables_path = folder / VARIABLES_FILE
    raw = _read(variables_path)
    if not isinstance(raw, dict) or not all(isinstance(v, dict) and "default" in v for v in raw.values()):
        raise NewStackError([f"{variables_path}: expected `name: {{default: ..., help: ...}}` entries"])
    bad = sorted(k for k, v in raw.items() if isinstance(v["default"], dict | list))
    if bad:
        raise NewStackError([f"{variables_path}: {', '.join(bad)}: defaults must be scalars (or null)"])
    profile_path = folder / PROFILES_DIR / f"{template}.yaml"
    profile = _read(profile_path)
    if not isinstance(profile, dict) or not isinstance(profile.get("profile"), str):
        raise NewStackError([f"{profile_path}: expected a mapping with `profile:` (a residency profile)"])
    overrides = profile.get("defaults") or {}
    unknown = sorted(set(overrides) - set(raw))
    if unknown:
        raise NewStackError([f"{profile_path}: defaults: {', '.join(unknown)}: not in {VARIABLES_FILE}"])
    places = _read(folder / PLACES_FILE)
    if not isinstance(places, dict):
        raise NewStackError([f"{folder / PLACES_FILE}: expected a mapping of places"])
    return Template(
        name=template,
        profile=profile["profile"],
        defaults={**{k: v["default"] for k, v in raw.items()}, **overrides},
        help={k: str(v.get("help", "")) for k, v in raw.items()},
        places=places,
        charts_from_mirror=bool(profile.get("chartsFromMirror", False)),
    )


def template_defaults(template: str, folder: Path | None = None) -> dict[str, Any]:
    """The variables of a template and their defaults."""
    return load_template(template, folder).defaults


def template_places(template: str, folder: Path | None = None) -> list[tuple[str, str]]:
    """(provider, region) for every place the template has defaults for, in file order."""
    out: list[tuple[str, str]] = []
    for key in load_template(template, folder).places:
        kind, _, region = key.partition("/")
        out += [(p, region) for p in (SITE_PROVIDERS if kind == "site" else (kind,))]
    return out


def node_type(provider: str, gpu: str, gpus: int) -> str:
    """The catalog's instance type (Scaleway) or flavor (OVHcloud) with `gpus` x `gpu`."""
    catalog = load_catalog()
    known = catalog.providers.get(provider)
    if known is None:
        raise NewStackError([f"provider {provider!r} has no node types in the catalog"])
    for candidate in known.node_types:
        if candidate.gpu == gpu and candidate.gpus == gpus:
            return candidate.name
    offered = ", ".join(f"{n.name} ({n.gpus}x)" for n in known.node_types if n.gpu == gpu) or "none"
    raise NewStackError([f"no {provider} node type has {gpus}x {gpu} (node types with {gpu}: {offered})"])


# ------------------------------------------------------------------------------------ the document
def _flow(**items: Any) -> CommentedMap:
    """A mapping written on one line (`{name: gpu-1, role: worker}`), None values left out."""
    out = CommentedMap((k, v) for k, v in items.items() if v is not None)
    out.fa.set_flow_style()
    return out


def _flow_list(items: Sequence[Any]) -> CommentedSeq:
    out = CommentedSeq(items)
    out.fa.set_flow_style()
    return out


def _block(**items: Any) -> CommentedMap:
    return CommentedMap((k, v) for k, v in items.items() if v is not None)


def _comment(mapping: CommentedMap, key: str, text: str, indent: int) -> None:
    mapping.yaml_set_comment_before_after_key(key, before=text, indent=indent)


def build_stack(template: Template, name: str, variables: Mapping[str, Any], command: str) -> CommentedMap:
    """The stack file for NAME as a YAML document with its comments (NewStackError when no place fits)."""
    v = variables
    provider, region = str(v["provider"]), str(v["region"])
    site = provider in SITE_PROVIDERS
    key = f"{'site' if site else provider}/{region}"
    if key not in template.places:
        raise NewStackError(
            [
                f"template {template.name}: no defaults for provider {provider} at {region}; known: "
                f"{', '.join(template.places)} (site = talos or existing); add the place to places.yaml"
            ]
        )
    place = template.places[key]
    gpu = v["gpuType"] or place["gpu"]
    gpus = v["gpusPerNode"] or place["gpus"]
    talos = place.get("talos", {})
    k8s = v["kubernetesVersion"] or (
        talos["kubernetesVersion"] if provider == "talos" else place["kubernetesVersion"]
    )
    admins = [c.strip() for c in str(v["adminCidrs"]).split(",") if c.strip()]
    private_cidr = f"{place['net']}.0.0/24" if site else place["privateCidr"]
    pool_name = v["poolName"]

    cluster = _block(provider=provider)
    cluster["site" if site else "region"] = region
    cluster["kubernetesVersion"] = str(k8s)
    if not site:
        cluster["systemPool"] = _flow(
            nodeType=place["systemNodeType"], minNodes=2, maxNodes=3, zones=_flow_list([place["zone"]])
        )
    try:
        pool_node_type = None if site else node_type(provider, gpu, gpus)
    except NewStackError as err:
        raise NewStackError([f"template {template.name}: {line}" for line in err.lines]) from None
    cluster["gpuPools"] = [
        _block(
            name=pool_name,
            gpuType=gpu,
            nodeType=pool_node_type,
            gpusPerNode=gpus,
            minNodes=v["poolMinNodes"],
            maxNodes=v["poolMaxNodes"],
            zones=_flow_list([place["zone"]]),
        )
    ]
    if provider != "scaleway":
        operator = _block(
            repository=place["charts"] if template.charts_from_mirror and "charts" in place else None,
            imageRepository=f"{place['registry']}/nvidia",
        )
        if "repository" not in operator:
            operator.fa.set_flow_style()
        cluster["gpuOperator"] = operator
        _comment(
            cluster,
            "gpuOperator",
            "The GPU Operator's chart and images from the in-house mirror only (Scaleway installs its own)."
            if "repository" in operator
            else "The GPU Operator's images from the place's mirror, not nvcr.io (Scaleway installs its own).",
            6,
        )
    if provider == "scaleway":
        cluster["scaleway"] = _block(
            type="kapsule",
            cni="cilium",
            privateNetworkCidr=place["privateCidr"],
            apiServerAllowedCidrs=_flow_list(admins),
        )
        _comment(
            cluster["scaleway"],
            "apiServerAllowedCidrs",
            "Kapsule's API endpoint is public: only these networks may reach it (admins' VPN, CI runners).",
            8,
        )
    elif provider == "ovh":
        cluster["ovh"] = _block(
            serviceName=str(v["ovhServiceName"]),
            plan="free",
            subnetCidr=place["privateCidr"],
            apiServerAllowedCidrs=_flow_list(admins),
        )
        cluster["ovh"].yaml_add_eol_comment("your Public Cloud project id", "serviceName")
    elif provider == "talos":
        machines = [
            _flow(name=f"cp-{i}", address=f"{place['net']}.0.1{i}", role="controlplane", zone=place["zone"])
            for i in range(1, 4)
        ]
        machines += [
            _flow(
                name=f"gpu-{i}",
                address=f"{place['net']}.1.{20 + i}",
                role="worker",
                zone=place["zone"],
                pool=pool_name,
                gpuType=gpu,
                gpuCount=gpus,
            )
            for i in range(1, int(v["poolMaxNodes"]) + 1)
        ]
        cluster["talos"] = _block(
            clusterEndpoint=f"https://{place['net']}.0.10:6443",
            talosVersion=talos["version"],
            installerImage=f"{place['registry']}/talos-installer-nvidia:{talos['version']}@sha256:{'0' * 64}",
            systemInstallerImage=f"{place['registry']}/siderolabs/installer:{talos['version']}@sha256:{'0' * 64}",
            machines=machines,
        )
        _comment(
            cluster["talos"],
            "systemInstallerImage",
            "control-plane installer from the site's mirror, not ghcr.io: replace the digest with your\n"
            "mirror's (a placeholder until you do: `sovstack validate` lists it).",
            8,
        )
        _comment(
            cluster["talos"],
            "installerImage",
            "GPU installer (NVIDIA extensions) from the site's mirror, not the Image Factory: replace the\n"
            'digest with your mirror\'s (docs/components/gpu-cluster.md, "Mirror the GPU installer").',
            8,
        )
    elif provider == "existing":
        nodes = [
            _flow(
                name=f"gpu-{i}",
                address=f"{place['net']}.1.{10 + i}",
                role="worker",
                zone=place["zone"],
                pool=pool_name,
                gpuType=gpu,
                gpuCount=gpus,
            )
            for i in range(1, int(v["poolMaxNodes"]) + 1)
        ]
        cluster["existing"] = _block(nodes=nodes)

    model = _block(
        name=v["modelName"],
        model=v["model"],
        pool=pool_name,
        maxModelLen=v["maxModelLen"],
        concurrency=v["concurrency"],
        replicas=v["replicas"],
        weights=_block(
            s3=_flow(
                url=f"s3://{name}-weights/{v['modelName']}/",
                endpoint=f"https://{place['s3']}",
                credentialsSecret="weights-s3",
                # All zeros: a placeholder the verify-weights init container refuses (docs/records.md).
                manifestSha256="0" * 64,
            )
        ),
        apiKeySecret=_flow(name=f"{name}-api-key"),
    )
    storage = f"s3-{region.lower()}"
    network = _block(
        cni="cilium" if provider in ("scaleway", "talos") else "calico",
        gatewayNamespaces=_flow_list(["gateway"]),
        egress=[
            _flow(
                name=storage, host=place["s3"], cidrs=_flow_list([place["s3Cidr"]]), ports=_flow_list([443])
            )
        ],
        apiServerCidrs=_flow_list([private_cidr]),
    )
    _comment(
        network,
        "egress",
        f"Object storage of the place (weights{', audit' if site else ''}). Narrow to the addresses "
        f"`dig {place['s3']}` gives.",
        6,
    )
    audit = _block(
        backend="minio" if site else None,
        bucket=f"{name}-audit",
        endpoint=f"https://{place['s3']}" if site else None,
        retentionDays=v["retentionDays"],
    )
    registry = place["registry"]
    images = audit_data().images
    registries = _block(
        vllm=mirrored(serving_defaults().vllm.image, registry),
        fluentBit=mirrored(images.fluent_bit.image, registry),
        weightsFetcher=mirrored(serving_defaults().fetcher.image, registry),
        minioClient=mirrored(images.mc.image, registry) if site else None,
    )
    secrets_provider = str(v["secretsProvider"])
    state = _block(
        backendUrl=f"s3://{v['stateBucket'] or 'sovstack-state-' + name}?endpoint={place['s3']}"
        f"&region={place['s3Region']}&s3ForcePathStyle=true",
        secretsProvider=secrets_provider,
        vaultAddress=(v["vaultAddress"] or f"https://{place['vault']}:8200")
        if secrets_provider.startswith("hashivault")
        else None,
    )
    customer = _block(
        name=name,
        displayName=v["displayName"] or name,
        residency=_block(profile=template.profile),
        cluster=cluster,
        models=[model],
        network=network,
        audit=audit,
        registries=registries,
        licensing=_block(
            use=v["licenceUse"],
            grants=[_flow(model=v["model"], reference=v["licenceGrant"])] if v["licenceGrant"] else None,
        ),
        state=state,
    )
    document = CommentedMap(config=CommentedMap({"sovstack:customer": customer}))
    header = [
        f"{name}: created by `{command}`",
        f"Template {template.name} (residency profile {template.profile}), {provider} at {region}. This file "
        "is now the",
        f"source of truth: edit it, then `sovstack validate {name}` and `sovstack plan {name}`.",
    ]
    if provider == "existing":
        header.append("Before `pulumi up`: pulumi config set --secret sovstack:kubeconfig < kubeconfig.yaml")
    document.yaml_set_start_comment("\n".join(header))
    return document


def mirrored(image: str, registry: str) -> str:
    """A default image as the place's mirror serves it: same name, tag and digest, the mirror's host."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    digest = image.split("@", 1)[1] if "@" in image else ""
    return f"{registry}/{name}@{digest}" if digest else f"{registry}/{name}"


def dump_document(document: CommentedMap) -> str:
    writer = YAML()
    writer.width = 4096
    writer.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    writer.dump(document, buffer)
    return buffer.getvalue()


def render_template(template: str, name: str, variables: Mapping[str, Any], command: str = "") -> str:
    """The stack file text for NAME; NewStackError when the template has no place for the variables."""
    return dump_document(build_stack(load_template(template), name, variables, command))


# ------------------------------------------------------------------------------------ variables
def _coerce(key: str, raw: str, default: Any) -> Any:
    """`--set` text as the variable's type: that of its default; a null default means a string.

    A string variable keeps the text exactly as typed (`displayName=Acme: R&D`, `kubernetesVersion=1.32`);
    an empty value means null (the place's default).
    """
    if default is None or isinstance(default, str):
        return raw if raw.strip() else None
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, dict | list):
        raise NewStackError([f"--set {key}: give a single value (a YAML scalar), not a list or mapping"])
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
    found = find_id(template, known)
    if found is None:
        raise NewStackError(
            [
                f"--template: unknown template {template!r}{did_you_mean(template, known)}; "
                f"known: {', '.join(known) or 'none'} (in {templates_dir()})"
            ]
        )
    template = found
    folder = stacks_dir()
    target = folder / f"Pulumi.{name}.yaml"
    stub: PulumiNewStub | None = None
    if target.exists():
        stub = read_pulumi_new_stub(target)
        if stub is None:
            raise NewStackError(
                [f"{target}: already exists; nothing was changed (edit it, or choose another NAME)"]
            )
        provider, region, values = stub.merged_options(provider, region, values)
    variables, chosen = resolve_variables(template, provider, region, values)
    text = render_template(template, name, variables, _command(name, template, chosen))
    if stub is not None:
        text += stub.kept_text()
    folder.mkdir(parents=True, exist_ok=True)
    # First line: the schema, so an editor's YAML plugin validates the file as it is typed.
    text = modeline(folder) + text
    # The temporary file does not match `Pulumi.*.yaml`, so no command mistakes it for a stack.
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".new-{name}-", suffix=".tmp")
    tmp = Path(temporary)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        tmp.chmod(0o644)
        check_stack_file(tmp, target)
        if stub is None:
            _publish(tmp, target)
        else:
            stub.replace_with(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target


# ------------------------------------------------------------------------------------ `pulumi new`
#: The answers `pulumi new` asks for (Pulumi.yaml `template.config`), by template variable.
PULUMI_NEW_ANSWERS = ("customerName", "displayName", "profile", "provider", "region", "model")
#: What else `pulumi new` writes in a stack file: the secrets provider's keys, which must survive.
PULUMI_KEPT_KEYS = ("secretsprovider", "encryptedkey", "encryptionsalt")


@dataclass(frozen=True)
class PulumiNewStub:
    """A stack file `pulumi new` wrote from this project's template: its answers, no customer spec yet."""

    raw: bytes
    answers: dict[str, str]
    kept: dict[str, str]

    def merged_options(
        self, provider: str | None, region: str | None, values: Sequence[str]
    ) -> tuple[str | None, str | None, list[str]]:
        """The answers fill in what the command line leaves unsaid; the command line wins."""
        given = {item.partition("=")[0].strip() for item in values}
        if provider is None and "provider" not in given:
            provider = self.answers.get("provider")
        if region is None and "region" not in given:
            region = self.answers.get("region")
        extra = [
            f"{k}={self.answers[k]}" for k in ("displayName", "model") if k in self.answers and k not in given
        ]
        if "secretsprovider" in self.kept and "secretsProvider" not in given:
            extra.append(f"secretsProvider={self.kept['secretsprovider']}")
        return provider, region, [*extra, *values]

    def kept_text(self) -> str:
        kept = yaml.safe_dump(self.kept, sort_keys=False, default_flow_style=False) if self.kept else ""
        return ("# Written by `pulumi new` (the stack's secrets provider); keep it.\n" + kept) if kept else ""

    def replace_with(self, tmp: Path, target: Path) -> None:
        """Replace the stub, unless someone changed it while it was being checked."""
        try:
            unchanged = target.read_bytes() == self.raw
        except OSError:
            unchanged = False
        if not unchanged:
            raise NewStackError([f"{target}: changed while checking; nothing was changed"])
        tmp.replace(target)


def read_pulumi_new_stub(path: Path) -> PulumiNewStub | None:
    """The stub when `path` holds only `pulumi new`'s answers (and secrets provider keys), else None."""
    try:
        raw = path.read_bytes()
        document = yaml.safe_load(raw)
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(document, dict) or not set(document) <= {"config", *PULUMI_KEPT_KEYS}:
        return None
    config = document.get("config") or {}
    if not isinstance(config, dict):
        return None
    answers = {k.removeprefix("sovstack:"): v for k, v in config.items() if isinstance(k, str)}
    if not answers or not set(answers) <= set(PULUMI_NEW_ANSWERS):
        return None
    if not all(isinstance(v, str | int | float) for v in answers.values()):
        return None
    kept = {k: str(document[k]) for k in PULUMI_KEPT_KEYS if k in document}
    return PulumiNewStub(raw, {k: str(v) for k, v in answers.items()}, kept)


def _publish(tmp: Path, target: Path) -> None:
    """Give the checked file its name atomically, never replacing a file created meanwhile."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise NewStackError([f"{target}: appeared while checking; nothing was changed"]) from None
    except OSError:  # no hard links on this filesystem: the rename is still atomic
        if target.exists():
            raise NewStackError([f"{target}: appeared while checking; nothing was changed"]) from None
        tmp.replace(target)
