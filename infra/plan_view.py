"""How `sovstack plan` reads: a `pulumi preview`-like tree with a closing summary, and `--compare`, the
difference between two `plan --json` documents, input path by input path.

Works on the JSON form of a plan (`PlanResult.to_dict()`), so that a plan from another branch compares
with this one; only `plan_cli`, the command itself, imports Pulumi (through infra/plan.py) when it runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sovstack.infra.cli_style import echo, emit_json, paint

#: What a mock run cannot say, printed under every plan and comparison.
MOCK_NOTE = (
    "A mock run (no provider, no state): whether a change updates a resource in place or replaces it, "
    "what the provider computes and diffs, and what admission refuses, only `sovstack preview STACK` "
    "(a real `pulumi preview`) can tell."
)
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def plan_cli(
    stack: str, *, as_json: bool = False, show_inputs: bool = False, compare: Path | None = None
) -> int:
    """`sovstack plan STACK`: the tree (or JSON, or the comparison with `compare`); the exit code."""
    from sovstack.infra.pipeline import load_stack
    from sovstack.infra.stackfile import SpecError

    old: dict[str, Any] | None = None
    if compare is not None:
        try:
            old = read_plan_json(compare)
        except ValueError as err:
            echo(f"--compare: {err}", err=True)
            return 2
    try:
        loaded = load_stack(stack)
    except SpecError as err:
        if as_json:
            emit_json({"valid": False, "problems": [p.to_dict() for p in err.problems]})
        else:
            for problem in err.problems:
                echo(problem.line(), err=True)
        return 2
    from sovstack.infra.plan import PlanError, run_plan

    try:
        result = run_plan(loaded)
    except PlanError as err:
        echo(f"{loaded.path}: {err}", err=True)
        return err.exit_code
    if old is not None:
        diff = compare_plans(old, result.to_dict())
        if as_json:
            emit_json(diff)
        else:
            echo(format_comparison(diff, str(compare)), nl=False)
        return 0
    if as_json:
        emit_json(result.to_dict())
    else:
        echo(format_tree(result.to_dict(), show_inputs=show_inputs), nl=False)
    return 0


def read_plan_json(path: Path) -> dict[str, Any]:
    """A previous `sovstack plan --json`; ValueError naming the file when it is not one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"{path}: cannot read: {err.strerror or err}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not JSON: {err}") from None
    resources = document.get("resources") if isinstance(document, dict) else None
    if not isinstance(resources, list) or not all(isinstance(r, dict) and "urn" in r for r in resources):
        raise ValueError(f"{path}: not the output of `sovstack plan --json` (no resources with a urn)")
    return document


# ------------------------------------------------------------------------------------ the tree
def _markers(resource: dict[str, Any]) -> str:
    marks = []
    if resource.get("protect"):
        marks.append("protect")
    if resource.get("ignoreChanges"):
        marks.append("ignoreChanges: " + ", ".join(resource["ignoreChanges"]))
    return "; ".join(marks)


def _depths(resources: list[dict[str, Any]]) -> dict[str, int]:
    by_urn = {r["urn"]: r for r in resources}
    depths: dict[str, int] = {}
    for r in resources:
        depth, parent = 0, r.get("parent", "")
        while parent in by_urn and depth < 100:
            depth, parent = depth + 1, by_urn[parent].get("parent", "")
        depths[r["urn"]] = depth
    return depths


def _tree_prefixes(resources: list[dict[str, Any]]) -> list[str]:
    """`├─ ` / `└─ ` guides, like `pulumi preview`, for resources already in tree order."""
    depth_of = _depths(resources)
    depths = [depth_of[r["urn"]] for r in resources]

    def more_at(index: int, level: int) -> bool:
        """Another resource at `level` follows before the tree goes back above it."""
        for later in depths[index + 1 :]:
            if later < level:
                return False
            if later == level:
                return True
        return False

    prefixes = []
    for i, depth in enumerate(depths):
        if depth == 0:
            prefixes.append("")
            continue
        guide = "".join("│  " if more_at(i, level) else "   " for level in range(1, depth))
        prefixes.append(guide + ("├─ " if more_at(i, depth) else "└─ "))
    return prefixes


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Leaves of a JSON value by path (`spec.template.spec.containers[0].image`); empty containers are leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key in sorted(value):
            part = f".{key}" if _PLAIN_KEY.fullmatch(str(key)) else f"[{json.dumps(str(key))}]"
            out.update(flatten(value[key], (path + part) if path or not part.startswith(".") else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{path}[{i}]"))
        return out
    return {path: value}


HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"


def traffic_splits(resources: list[dict[str, Any]]) -> dict[str, str]:
    """Each HTTPRoute with weighted backends (a rollout): `ns/name` -> `stable-svc 90%, canary-svc 10%`."""
    splits: dict[str, str] = {}
    for r in resources:
        if r["type"] != HTTP_ROUTE:
            continue
        meta = r.get("inputs", {}).get("metadata", {})
        for rule in r.get("inputs", {}).get("spec", {}).get("rules", []):
            refs = rule.get("backendRefs", [])
            if any("weight" in ref for ref in refs):
                total = sum(int(ref.get("weight", 1)) for ref in refs) or 1
                splits[f"{meta.get('namespace')}/{meta.get('name')}"] = ", ".join(
                    f"{ref['name']} {round(100 * int(ref.get('weight', 1)) / total)}%" for ref in refs
                )
    return splits


def format_tree(plan: dict[str, Any], *, show_inputs: bool = False) -> str:
    resources = plan["resources"]
    prefixes = _tree_prefixes(resources)
    names = [p + r["type"] for p, r in zip(prefixes, resources, strict=True)]
    width = max([len(n) for n in names] + [4]) + 2
    name_width = max([len(r["name"]) for r in resources] + [4]) + 2
    lines = [
        f"Previewing stack {plan['stack']} (mock engine, offline: what `pulumi up` would register)",
        "",
        f"     {'Type':<{width}}{'Name':<{name_width}}{'Plan':<8}Info",
    ]
    for label, r in zip(names, resources, strict=True):
        lines.append(
            f" {paint('+', 'green')}   {label:<{width}}{r['name']:<{name_width}}{'create':<8}{_markers(r)}".rstrip()
        )
        if show_inputs:
            for path, value in flatten(r.get("inputs", {})).items():
                lines.append(f"         {path}: {json.dumps(value, sort_keys=True)}")
    if plan.get("outputs"):
        lines += ["", "Outputs:"]
        lines += [f"    {k}: {json.dumps(v, sort_keys=True)}" for k, v in plan["outputs"].items()]
    splits = traffic_splits(resources)
    if splits:
        lines += ["", "Traffic splits (HTTPRoute weighted backends):"]
        lines += [f"    {route}: {split}" for route, split in splits.items()]
    if plan.get("placeholders"):
        lines += ["", f"Placeholders used for missing secret config: {', '.join(plan['placeholders'])}"]
    custom = sum(bool(r.get("custom")) for r in resources)
    protected = sum(bool(r.get("protect")) for r in resources)
    lines += [
        "",
        "Resources:",
        f"    {paint(f'+ {len(resources)} to create', 'green')} "
        f"({custom} resources, {len(resources) - custom} components; {protected} protected)",
    ]
    if not show_inputs:
        lines.append("    (inputs: --show-inputs; everything: --json)")
    lines += ["", MOCK_NOTE]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ compare
def _input_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    before, after = flatten(old), flatten(new)
    changes = []
    for path in sorted(set(before) | set(after)):
        if path not in after:
            changes.append({"op": "remove", "path": path, "old": before[path]})
        elif path not in before:
            changes.append({"op": "add", "path": path, "new": after[path]})
        elif before[path] != after[path]:
            changes.append({"op": "change", "path": path, "old": before[path], "new": after[path]})
    return changes


def _ignored(path: str, ignore_changes: list[str]) -> bool:
    return any(path == i or path.startswith((i + ".", i + "[")) for i in ignore_changes)


def compare_plans(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What `new` adds, removes and modifies relative to `old` (both `plan --json` documents), by URN."""
    before = {r["urn"]: r for r in old["resources"]}
    after = {r["urn"]: r for r in new["resources"]}

    def brief(r: dict[str, Any]) -> dict[str, Any]:
        return {"urn": r["urn"], "type": r["type"], "name": r["name"], "protect": bool(r.get("protect"))}

    added = [brief(r) for r in new["resources"] if r["urn"] not in before]
    removed = [brief(r) for r in old["resources"] if r["urn"] not in after]
    modified = []
    for r in new["resources"]:
        was = before.get(r["urn"])
        if was is None:
            continue
        changes = _input_changes(was.get("inputs", {}), r.get("inputs", {}))
        for key in ("protect", "ignoreChanges", "provider", "parent", "dependsOn"):
            if was.get(key) != r.get(key):
                changes.append({"op": "change", "path": f"({key})", "old": was.get(key), "new": r.get(key)})
        if changes:
            ignore = list(r.get("ignoreChanges") or [])
            for change in changes:
                change["ignored"] = _ignored(change["path"], ignore)
            protect = bool(r.get("protect") or was.get("protect"))
            modified.append({**brief(r), "protect": protect, "changes": changes})
    outputs = _input_changes(old.get("outputs", {}), new.get("outputs", {}))
    protected = [m["urn"] for m in modified if m["protect"]] + [r["urn"] for r in removed if r["protect"]]
    return {
        "old": old.get("stack"),
        "new": new.get("stack"),
        "added": added,
        "removed": removed,
        "modified": modified,
        "outputs": outputs,
        "protectedChanges": protected,
        "summary": {
            "add": len(added),
            "remove": len(removed),
            "modify": len(modified),
            "unchanged": len(after) - len(added) - len(modified),
        },
    }


def _value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # the mock engine hands integers back as floats
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def format_comparison(diff: dict[str, Any], old_file: str) -> str:
    lines = [f"Comparing stack {diff['new']} with {old_file} (stack {diff['old']}), mock engine, offline", ""]
    lines.extend(
        f" {paint('+', 'green')} {r['type']}  {r['name']}" + ("  [protect]" if r["protect"] else "")
        for r in diff["added"]
    )
    for r in diff["removed"]:
        flag = paint("  ! PROTECTED: the engine refuses to delete it", "red") if r["protect"] else ""
        lines.append(f" {paint('-', 'red')} {r['type']}  {r['name']}{flag}")
    for m in diff["modified"]:
        flag = paint("  ! PROTECTED", "red") if m["protect"] else ""
        lines.append(f" {paint('~', 'yellow')} {m['type']}  {m['name']}{flag}")
        for c in m["changes"]:
            note = "  (in ignoreChanges: the engine keeps the live value)" if c["ignored"] else ""
            if c["op"] == "add":
                lines.append(f"       + {c['path']}: {_value(c['new'])}{note}")
            elif c["op"] == "remove":
                lines.append(f"       - {c['path']}: {_value(c['old'])}{note}")
            else:
                lines.append(f"       ~ {c['path']}: {_value(c['old'])} => {_value(c['new'])}{note}")
    if diff["outputs"]:
        lines += ["", "Outputs:"]
        for c in diff["outputs"]:
            sign = {"add": "+", "remove": "-", "change": "~"}[c["op"]]
            before = _value(c["old"]) + " => " if "old" in c and "new" in c else ""
            lines.append(f"    {sign} {c['path']}: {before}{_value(c.get('new', c.get('old')))}")
    add, modify, remove = (diff["summary"][k] for k in ("add", "modify", "remove"))
    if not (diff["added"] or diff["removed"] or diff["modified"]):
        lines.append(" no changes")
    lines += [
        "",
        "Resources:",
        "    " + paint(f"+ {add} to add", "green"),
        "    " + paint(f"~ {modify} to modify", "yellow"),
        "    " + paint(f"- {remove} to remove", "red"),
        f"    {diff['summary']['unchanged']} unchanged",
    ]
    if diff["protectedChanges"]:
        lines.append(
            paint(
                f"! {len(diff['protectedChanges'])} protected resource(s) changed: review them first", "red"
            )
        )
    lines += ["", MOCK_NOTE]
    return "\n".join(lines) + "\n"
