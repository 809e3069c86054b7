"""The shape of the code: one package name, imports in one direction, no circle.

Every import statement is read with `ast`, function-local ones included (a local import hides a
circle from Python, not from this test).
"""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("components", "infra", "policies")

#: infra's pipeline, bottom first: each module may import only the ones before it (and components).
INFRA_ORDER = (
    "gitinfo",
    "cli_style",
    "spec",
    "stackfile",
    "stack_schema",
    "lookups",
    "defaults",
    "checks",
    "compose",
    "residency_check",
    "placeholders",
    "pipeline",
    "validation",
    "schema_check",
    "report",
    "render_cache",
    "gitops",
    "render",
    "bundle",
    "newstack",
    "stack",
    "state_check",
    "program",
    "plan",
    "plan_view",
    "deploy",
    "s3access",
    "weights",
    "audit_query",
    "commands",
    "cli",
    "__main__",
)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found["sovstack." + ".".join(parts)] = path
    return found


#: Parses files in a fresh interpreter and pickles the trees back.
_PARSE = "import ast, pickle, sys; sys.stdout.buffer.write(pickle.dumps([ast.parse(open(p, encoding='utf-8').read(), p) for p in sys.argv[1:]]))"


@cache
def _trees() -> dict[Path, ast.Module]:
    """Every file's syntax tree, parsed in a child process: in CPython 3.11.7 `ast.parse` can raise
    "AST constructor recursion depth mismatch" in a process whose earlier tests left the interpreter's
    recursion accounting skewed (python/cpython#106905, fixed in 3.11.8)."""
    paths = sorted({p for package in PACKAGES for p in (ROOT / package).rglob("*.py")})
    done = subprocess.run([sys.executable, "-c", _PARSE, *map(str, paths)], capture_output=True, check=True)
    return dict(zip(paths, pickle.loads(done.stdout), strict=True))


def _parse(path: Path) -> ast.Module:
    return _trees().get(path) or ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth."""
    tree = _parse(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            # `from sovstack.infra import defaults` imports the module sovstack.infra.defaults
            out += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {name for _, name in _imports(path, module) if name in modules and name != module}
        graph[module] = targets
    return graph


def test_code_imports_its_packages_only_under_the_sovstack_name() -> None:
    offenders = []
    for module, path in _modules().items():
        for line, name in _imports(path, module):
            if name.split(".")[0] in PACKAGES:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: import {name}")
    assert not offenders, "\n".join(offenders)


def test_no_import_circle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a graph with a circle is reported."""
    circular = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    monkeypatch.setattr(f"{__name__}._graph", lambda: circular)
    with pytest.raises(AssertionError, match="a -> b -> c -> a"):
        test_no_import_circle()


def test_infra_imports_only_what_stands_before_it_in_the_pipeline() -> None:
    graph = _graph()
    infra = sorted(m.rpartition(".")[2] for m in graph if m.startswith("sovstack.infra."))
    assert sorted(INFRA_ORDER) == infra, "add the new module to INFRA_ORDER where it stands in the pipeline"
    rank = {name: i for i, name in enumerate(INFRA_ORDER)}
    wrong = []
    for name in INFRA_ORDER:
        for target in graph[f"sovstack.infra.{name}"]:
            if target.startswith("sovstack.infra."):
                other = target.rpartition(".")[2]
                if rank[other] >= rank[name]:
                    wrong.append(f"infra/{name}.py imports infra/{other}.py, which stands after it")
    assert not wrong, "\n".join(wrong)


def test_components_never_import_the_application_and_policies_only_components() -> None:
    wrong = []
    for module, targets in _graph().items():
        for target in targets:
            if module.startswith("sovstack.components") and not target.startswith("sovstack.components"):
                wrong.append(f"{module} imports {target}")
            if module.startswith("sovstack.policies") and target.startswith("sovstack.infra"):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_builders_and_the_engine_do_not_import_pulumi() -> None:
    """The pure core runs without Pulumi: validate, render, report and new never import it."""
    pure = [
        m
        for m in _modules()
        if m.startswith("sovstack.components.builders")
        or m
        in {
            "sovstack.components.residency",
            "sovstack.components.catalog",
            "sovstack.components.capacity",
            "sovstack.components.kube",
        }
    ]
    modules = _modules()
    wrong = [
        f"{m}: import {name}"
        for m in pure
        for _, name in _imports(modules[m], m)
        if name.split(".")[0].startswith("pulumi")
    ]
    assert not wrong, "\n".join(wrong)
