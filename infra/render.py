"""`sovstack render`: plain manifests, the GitOps engine's objects and the residency report.

From the same builders the Pulumi components use, without importing Pulumi. Output is
deterministic (the same spec gives the same bytes on any machine), atomic (written to a
temporary directory beside the target, then renamed: nothing partial on error) and free of
secret values (workloads reference Secrets by name; none is rendered).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from sovstack.components.kube import Manifest
from sovstack.components.residency import Finding
from sovstack.infra.compose import Composition
from sovstack.infra.gitops import (
    FLAVORS,
    PKO_STACK_NAME_MAX,
    GitOpsError,
    GitSource,
    argocd_children,
    argocd_parent,
    flux_objects,
    locate_repository,
    pko_objects,
)
from sovstack.infra.pipeline import LoadedStack, load_stack
from sovstack.infra.placeholders import Placeholder, find_placeholders, not_deployable, repo_url_placeholder
from sovstack.infra.render_cache import INPUTS_FILE, inputs_digest, inputs_record, unchanged
from sovstack.infra.report import ProvenanceError, build_report, render_report
from sovstack.infra.residency_check import evaluate
from sovstack.infra.stackfile import SpecError, list_stacks, resolve, stack_name, stacks_dir

MARKER = ".sovstack-render"
CLUSTER_DIR = "_cluster"
TOP_KEYS = ("apiVersion", "kind", "metadata", "spec", "data", "stringData", "rules", "roleRef", "subjects")


class RenderError(Exception):
    def __init__(self, lines: list[str], exit_code: int) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.exit_code = exit_code


# ---------------------------------------------------------------------------------- YAML output
class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml when available; never emits anchors, writes multi-line strings as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def _ordered(value: Any, top: bool = False) -> Any:
    """Keys sorted at every level; at the top, Kubernetes' usual order first."""
    if isinstance(value, dict):
        keys = sorted(value)
        if top:
            keys = [k for k in TOP_KEYS if k in value] + [k for k in keys if k not in TOP_KEYS]
        return {k: _ordered(value[k]) for k in keys}
    if isinstance(value, list | tuple):
        return [_ordered(v) for v in value]
    return value


def dump_yaml(obj: Any) -> str:
    return str(
        yaml.dump(_ordered(obj, top=True), Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=True)
    )


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------- content
def manifest_path(obj: Manifest) -> str:
    """Where an object lives in the render: namespaces apart (applied first), then by namespace."""
    if obj["kind"] == "Namespace" and obj["apiVersion"] == "v1":
        return f"namespaces/namespace-{obj['metadata']['name']}.yaml"
    namespace = obj["metadata"].get("namespace") or CLUSTER_DIR
    return f"manifests/{namespace}/{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def _kustomization(files: dict[str, str], folder: str) -> str:
    resources = sorted(p.removeprefix(f"{folder}/") for p in files if p.startswith(f"{folder}/"))
    return dump_yaml(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}
    )


def engine_files(composition: Composition, git: GitSource) -> dict[str, str]:
    """The objects the chosen engine reads: Argo CD's app of apps, Flux's, or the Pulumi operator's."""
    files: dict[str, str] = {}
    if git.flavor == "argocd":
        parent = argocd_parent(composition, git)
        files[f"argocd/application-{parent['metadata']['name']}.yaml"] = dump_yaml(parent)
        for app in argocd_children(composition, git):
            files[f"argocd/apps/application-{app['metadata']['name']}.yaml"] = dump_yaml(app)
    elif git.flavor == "flux":
        files |= {f"flux/{rel}": dump_yaml(obj) for rel, obj in flux_objects(composition, git).items()}
        if any(p.startswith("flux/charts/") for p in files):
            files["flux/charts/kustomization.yaml"] = _kustomization(files, "flux/charts")
    elif git.flavor == "pko":
        files |= {f"pko/{rel}": dump_yaml(obj) for rel, obj in pko_objects(composition, git).items()}
    else:
        raise RenderError([f"--flavor: {git.flavor!r} is not one of {', '.join(FLAVORS)}"], 2)
    return files


def render_files(
    loaded: LoadedStack,
    git: GitSource,
    findings: list[Finding] | None = None,
    report: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Every file of a render, relative path to text. No Pulumi; reads only the stack file, the catalog
    and git's HEAD for the report's provenance (`report`, when given, is used as it is)."""
    composition = loaded.composition or Composition(loaded.spec)
    if findings is None:
        findings = (
            list(loaded.findings)
            if loaded.findings is not None
            else evaluate(loaded.spec, composition.policy)
        )
    objects = composition.kubernetes_objects()
    files: dict[str, str] = {}
    for obj in objects:
        path = manifest_path(obj)
        if path in files:
            raise RenderError([f"{loaded.path}: two objects render to {path}"], 3)
        files[path] = dump_yaml(obj)
    files["namespaces/kustomization.yaml"] = _kustomization(files, "namespaces")
    files["manifests/kustomization.yaml"] = _kustomization(files, "manifests")
    if git.flavor == "pko" and len(loaded.spec.name) > PKO_STACK_NAME_MAX:
        raise RenderError(
            [
                f"{loaded.path}: sovstack:customer.name: {loaded.spec.name!r} is longer than "
                f"{PKO_STACK_NAME_MAX} characters, the Pulumi Kubernetes Operator's limit for a Stack's name"
            ],
            2,
        )
    files |= engine_files(composition, git)
    report = report or build_report(
        loaded, composition, findings, placeholders=render_placeholders(loaded, git)
    )
    files["residency-report.json"] = render_report(report, "json")
    files["residency-report.md"] = render_report(report, "md")
    files["cloud-resources.json"] = dump_json(
        {
            "stack": loaded.name,
            "resources": composition.cloud_resources(),
            "nodeLabels": composition.cluster_description.node_label_patches,
            "notes": composition.cluster_description.notes,
        }
    )
    files[MARKER] = (
        f"sovstack render of stack {loaded.name}; this directory is replaced by the next render.\n"
    )
    return dict(sorted(files.items()))


# ---------------------------------------------------------------------------------- writing
def _is_replaceable(out: Path) -> bool:
    return not out.exists() or (out.is_dir() and ((out / MARKER).is_file() or not any(out.iterdir())))


def write_tree(files: dict[str, str], out: Path) -> None:
    """Write into a temporary sibling, then swap it in; an old render is replaced, anything else refused."""
    if not _is_replaceable(out):
        raise RenderError(
            [f"{out}: exists and is not a sovstack render; choose another --out or remove it"], 2
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel, text in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.replace(old / "tree")
            staging.replace(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.replace(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def render_placeholders(loaded: LoadedStack, git: GitSource) -> list[Placeholder]:
    """The spec's placeholders and the Git repository's, when it is the example one."""
    return find_placeholders(loaded.spec) + repo_url_placeholder(git.repo_url)


def _digest(path: Path, git: GitSource, demo: bool = False) -> str:
    return inputs_digest(
        path, git.repo_url, git.revision, git.path, git.flavor, git.program_path, "demo" if demo else "real"
    )


def render_stack(
    ref: str | Path,
    out: Path,
    git: GitSource,
    force: bool = False,
    inputs: str | None = None,
    *,
    demo: bool = False,
) -> int:
    """Render one stack into `out`, found in its repository at `git.path`; RenderError for invalid input,
    a refused residency rule, or (unless `demo`) a placeholder, each named by its field path (exit 1).

    A render already in `out` from the same inputs (stack file, sovstack code and data, Git source,
    demo or not) is left as it is, unless `force`.
    """
    path = resolve(ref) if isinstance(ref, str) else ref
    # `inputs`: the digest the caller computed (render --all's parent, whose environment counts).
    digest = inputs or (_digest(path, git, demo) if path.is_file() else None)
    if digest and not force and (count := unchanged(out, digest)) is not None:
        return count
    try:
        loaded = load_stack(path)
    except SpecError as err:
        raise RenderError([p.line() for p in err.problems], 2) from None
    findings = list(loaded.findings) if loaded.findings is not None else evaluate(loaded.spec)
    broken = [f.line(str(loaded.path)) for f in findings if not f.passed]
    if broken:
        raise RenderError([*broken, f"{loaded.path}: residency rules broken; nothing rendered"], 1)
    placeholders = render_placeholders(loaded, git)
    if placeholders and not demo:
        raise RenderError(
            [
                *(p.line(str(loaded.path)) for p in placeholders),
                f"{loaded.path}: {not_deployable(len(placeholders))}; nothing rendered (fill them in, or "
                "pass --demo for a demonstration render)",
            ],
            1,
        )
    try:
        files = render_files(loaded, git, findings)
    except ProvenanceError as err:
        raise RenderError([str(err)], 2) from None
    schema = json.loads(files["residency-report.json"])["schemaChecks"]
    if schema["failures"]:  # a builder bug: never hand an API server what its schema refuses
        lines = [
            f"{loaded.path}: schema (Kubernetes {schema['kubernetesVersion']}): {f}"
            for f in schema["failures"]
        ]
        raise RenderError([*lines, f"{loaded.path}: manifests fail their schema; nothing rendered"], 3)
    count = sum(1 for path in files if path.startswith(("manifests/", "namespaces/"))) - 2
    write_tree({**files, **({INPUTS_FILE: inputs_record(digest, count)} if digest else {})}, out)
    return count


def render_cli(
    stack: str | None,
    out: Path,
    *,
    all_stacks: bool = False,
    jobs: int = 0,
    repo_url: str | None = None,
    repo_root: Path | None = None,
    revision: str = "main",
    flavor: str | None = None,
    pko: bool = False,
    force: bool = False,
    demo: bool = False,
) -> int:
    """`sovstack render`: STACK or --all, into `out`; the exit code."""
    if all_stacks == (stack is not None):
        print("render: give either STACK or --all", file=sys.stderr, flush=True)
        return 2
    if pko and flavor is not None:
        print("render: --pko and --flavor choose the engine both; give one", file=sys.stderr, flush=True)
        return 2
    chosen = "pko" if pko else (flavor or "argocd")
    git = locate_cli(out, repo_url, revision, repo_root, chosen, stacks_dir().resolve().parent)
    if isinstance(git, int):
        return git
    if all_stacks:
        return render_all_cli(out, git, jobs=jobs or None, force=force, demo=demo)
    assert stack is not None
    return render_one_cli(stack, out, git, force=force, demo=demo)


def render_one_cli(ref: str, out: Path, git: GitSource, force: bool = False, *, demo: bool = False) -> int:
    try:
        count = render_stack(ref, out, git, force=force, demo=demo)
    except RenderError as err:
        for line in err.lines:
            print(line, file=sys.stderr)
        return err.exit_code
    print(f"rendered {count} objects to {out}")
    return 0


def _render_worker(
    path: str, out: str, git: GitSource, inputs: str | None, demo: bool = False
) -> tuple[str, int, list[str], int]:
    name = stack_name(Path(path))
    try:
        count = render_stack(
            Path(path), Path(out) / name, replace(git, path=git.under(name)), True, inputs, demo=demo
        )
    except RenderError as err:
        return name, err.exit_code, err.lines, 0
    except Exception as err:  # one broken stack must not stop the fleet
        return name, 3, [f"{path}: internal error: {type(err).__name__}: {err}"], 0
    return name, 0, [], count


def render_all(
    paths: Iterable[Path],
    out: Path,
    jobs: int | None = None,
    progress: bool = True,
    *,
    git: GitSource,
    force: bool = False,
    demo: bool = False,
) -> int:
    """Render every stack into out/<stack> (`git.path` is out's); the others render when one fails.

    A stack whose render on disk came from the same inputs is skipped before any worker starts.
    """
    stacks = list(paths)
    out.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[str, int, list[str]]] = []
    objects = 0
    done = 0
    todo: list[tuple[Path, str | None]] = []
    for path in stacks:
        name = stack_name(path)
        digest = _digest(path, replace(git, path=git.under(name)), demo) if path.is_file() else None
        count = None if force or digest is None else unchanged(out / name, digest)
        if count is None:
            todo.append((path, digest))
        else:
            objects += count
    skipped = len(stacks) - len(todo)
    workers = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    if todo:
        # forkserver, not fork: a parent that runs gRPC threads (Pulumi's, in a test or a program
        # embedding sovstack) would hand its workers locks held by threads that do not exist in the child.
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_render_worker, str(p), str(out), git, digest, demo) for p, digest in todo]
            for future in as_completed(futures):
                name, code, lines, count = future.result()
                done += 1
                objects += count
                if code:
                    failures.append((name, code, lines))
                if progress:
                    status = "ok" if not code else f"FAILED (exit {code})"
                    print(f"[{done:>{len(str(len(todo)))}}/{len(todo)}] {name}: {status}", file=sys.stderr)
    unchanged_note = f"; {skipped} unchanged (same inputs as the render on disk)" if skipped else ""
    print(
        f"rendered {len(stacks) - len(failures)} of {len(stacks)} stacks ({objects} objects) to {out}"
        + unchanged_note
    )
    if failures:
        print(f"{len(failures)} stack(s) failed:", file=sys.stderr)
        for name, code, lines in sorted(failures):
            print(f"  {name} (exit {code})", file=sys.stderr)
            for line in lines:
                print(f"    {line}", file=sys.stderr)
        return max(code for _, code, _ in failures)
    return 0


def locate_cli(
    out: Path,
    repo_url: str | None,
    revision: str,
    repo_root: Path | None,
    flavor: str,
    program_dir: Path | None = None,
) -> GitSource | int:
    """The render's GitSource, or the exit code after printing why it has none."""
    if flavor not in (*FLAVORS, "pko"):
        print(f"--flavor: {flavor!r} is not one of {', '.join(FLAVORS)}", file=sys.stderr)
        return 2
    try:
        return locate_repository(out, repo_url, revision, repo_root, flavor, program_dir)
    except GitOpsError as err:
        for line in err.lines:
            print(line, file=sys.stderr)
        return 2


def render_all_cli(
    out: Path, git: GitSource, jobs: int | None = None, force: bool = False, demo: bool = False
) -> int:
    stacks = list_stacks()
    if not stacks:
        print("no stacks found under stacks/", file=sys.stderr)
        return 2
    return render_all(stacks, out, jobs=jobs, progress=True, git=git, force=force, demo=demo)
