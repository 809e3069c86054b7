"""The speed targets where users wait, each measured beside its goal and its reference in one run.

- `plan` of one stack against a bare script registering the same resources with Pulumi's mock engine;
- `validate` and `render` of one stack, wall time as a user sees it;
- re-rendering a fleet where nothing changed against rendering it in full;
- growth with the number of models in one stack (plan and render, 1, 10 and 100 models);
- the YAML emitter's share of a render (PyYAML's C emitter, the floor: sovstack writes no YAML itself).

Called by benchmarks/run.py (`make bench`); every timed command runs in a fresh process.
"""

from __future__ import annotations

import copy
import hashlib
import json
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PLAN_RATIO_MAX = 1.2
VALIDATE_ONE_MAX_S = 0.2
RENDER_ONE_MAX_S = 0.25
RERENDER_SPEEDUP_MIN = 5.0
#: Linear growth: the cost of a model between 10 and 100 models at most this multiple of its cost
#: between 1 and 10 (1.0 is perfectly linear; above it, something grows faster than the model count).
GROWTH_MAX = 1.3
#: References: what the same figure was before this work (docs/performance.md, 2026-11 runs).
REFERENCE = {
    "plan_ratio": "about 2x",
    "validate": "0.30 s",
    "render_one": "0.40 s",
    "rerender": "1x (every stack rendered again)",
    "growth": "plan 18% slower per model at 100 models (garbage collector)",
}

#: Registers the resources of a `plan --json` with Pulumi's mock engine, generically (no provider
#: SDK): the floor a `plan` of the same resources could reach.
BARE_PLAN = """
import asyncio, json, sys
import pulumi
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

class Echo(pulumi.runtime.Mocks):
    def new_resource(self, args):
        return f"{args.name}-id", dict(args.inputs)
    def call(self, args):
        return {}

resources = json.load(open(sys.argv[1]))
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
pulumi.runtime.set_mocks(Echo(), project="sovstack", stack="bare", preview=False)

def program():
    made = {}
    for r in resources:
        opts = pulumi.ResourceOptions(parent=made.get(r["parent"]), protect=r["protect"])
        if r["type"].startswith("pulumi:providers:"):
            made[r["urn"]] = pulumi.ProviderResource(r["type"].split(":")[2], r["name"], r["inputs"], opts)
        elif r["custom"]:
            made[r["urn"]] = pulumi.CustomResource(r["type"], r["name"], r["inputs"], opts)
        else:
            made[r["urn"]] = pulumi.ComponentResource(r["type"], r["name"], None, opts)

_sync_await(run_pulumi_func(program))
print(json.dumps({"resources": len(resources)}))
"""

#: Times plan and render of one stack in process (no start-up), and the YAML emitter's share.
IN_PROCESS = """
import json, sys, time
import yaml
from sovstack.infra.pipeline import load_stack
from sovstack.infra.plan import run_plan
from sovstack.infra.render import dump_yaml, render_files
path = sys.argv[1]
start = time.perf_counter(); loaded = load_stack(path); load_s = time.perf_counter() - start
run_plan(loaded)  # warm: the first run imports the provider SDKs; the figure is the second
start = time.perf_counter(); plan = run_plan(loaded); plan_s = time.perf_counter() - start
loaded = load_stack(path)
from sovstack.infra.gitops import GitSource
git = GitSource(repo_url="https://git.example.invalid/g.git", path=".")
start = time.perf_counter(); files = render_files(loaded, git); render_s = time.perf_counter() - start
objects = [yaml.load(text, Loader=yaml.CSafeLoader) for name, text in files.items()
           if name.startswith("manifests/") and name.endswith(".yaml")]
start = time.perf_counter()
for obj in objects:
    dump_yaml(obj)
yaml_s = time.perf_counter() - start
start = time.perf_counter()
for obj in objects:
    yaml.dump(obj, Dumper=yaml.CSafeDumper)
floor_s = time.perf_counter() - start
start = time.perf_counter()
for obj in objects:
    json.dumps(obj, sort_keys=True)
json_s = time.perf_counter() - start
print(json.dumps({"load": load_s, "plan": plan_s, "render": render_s, "yaml": yaml_s, "json": json_s,
                  "yaml_floor": floor_s,
                  "objects": len(objects), "resources": len(plan.resources)}))
"""


def offline(root: Path) -> list[str]:
    """render's flags for a render outside any git clone (the examples keep placeholders: --demo)."""
    return ["--repo-root", str(root), "--repo-url", "https://git.example.invalid/g.git", "--demo"]


def median_of(runs: int, timed: Callable[[], float]) -> tuple[float, list[float]]:
    times = [timed() for _ in range(runs)]
    return statistics.median(times), times


def many_models(source: Path, count: int, folder: Path) -> Path:
    """A copy of `source` (an example on the `existing` backend) serving `count` copies of its first
    model, each with its own name and weights claim, on a pool large enough for all of them."""
    doc = yaml.safe_load(source.read_text())
    spec = doc["config"]["sovstack:customer"]
    first = spec["models"][0]
    spec["models"] = [
        {
            **copy.deepcopy(first),
            "name": f"m-{i:03d}",
            "replicas": 1,
            "weights": {
                "pvc": {
                    "claimName": f"weights-{i:03d}",
                    "manifestSha256": hashlib.sha256(f"weights-{i:03d}".encode()).hexdigest(),
                }
            },
        }
        for i in range(count)
    ]
    pool = spec["cluster"]["gpuPools"][0]
    pool["maxNodes"] = max(pool["minNodes"], -(-count // pool.get("gpusPerNode", 1)))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"Pulumi.models-{count}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_targets(
    sovstack: str,
    example: Path,
    fleet: Path | None,
    measure: Callable[..., Any],
    run_python: Callable[..., tuple[float, dict[str, Any]]],
    results: Any,
    row: Callable[..., Any],
    verdict: Callable[[bool], str],
    runs: int = 5,
) -> None:
    """Append one row per target to `results.rows`, each with its goal, reference and verdict."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sovstack-targets-") as tmp:
        work = Path(tmp)
        # plan of one stack vs the bare registration of the same resources
        plan_json = work / "plan.json"
        done = measure([sovstack, "plan", str(example), "--json"])
        resources = json.loads(done.stdout)["resources"]
        plan_json.write_text(json.dumps(resources))
        plan_s, plan_runs = median_of(runs, lambda: measure([sovstack, "plan", str(example)]).seconds)
        bare_s, bare_runs = median_of(runs, lambda: run_python(BARE_PLAN, str(plan_json))[0])
        ratio = plan_s / bare_s
        figures["plan_vs_bare"] = {"plan": plan_runs, "bare": bare_runs, "resources": len(resources)}
        results.rows.append(
            row(
                f"`sovstack plan {example.name}` vs a bare script registering its {len(resources)} "
                f"resources with the mock engine (median of {runs})",
                f"{ratio:.2f}x ({plan_s:.2f} s vs {bare_s:.2f} s); before: {REFERENCE['plan_ratio']}",
                f"<= {PLAN_RATIO_MAX}x",
                verdict(ratio <= PLAN_RATIO_MAX),
            )
        )
        # validate and render of one stack
        validate_s, validate_runs = median_of(
            runs * 2, lambda: measure([sovstack, "validate", str(example)]).seconds
        )
        out = work / "render-one"
        render_s, render_runs = median_of(
            runs * 2,
            lambda: (
                measure(
                    [sovstack, "render", str(example), "--out", str(out), "--force", *offline(work)]
                ).seconds
            ),
        )
        figures["validate_one"] = validate_runs
        figures["render_one"] = render_runs
        results.rows += [
            row(
                f"`sovstack validate {example.name}` (median of {runs * 2})",
                f"{validate_s:.3f} s; before: {REFERENCE['validate']}",
                f"< {VALIDATE_ONE_MAX_S} s",
                verdict(validate_s < VALIDATE_ONE_MAX_S),
            ),
            row(
                f"`sovstack render {example.name}` (median of {runs * 2})",
                f"{render_s:.3f} s; before: {REFERENCE['render_one']}",
                f"< {RENDER_ONE_MAX_S} s",
                verdict(render_s < RENDER_ONE_MAX_S),
            ),
        ]
        # re-render of an unchanged fleet
        if fleet is not None:
            count = len(list(fleet.glob("Pulumi.*.yaml")))
            out = work / "fleet"
            command = [sovstack, "render", "--all", "--out", str(out), *offline(work)]
            full = measure(command, stacks=fleet).seconds
            again_s, again_runs = median_of(3, lambda: measure(command, stacks=fleet).seconds)
            speedup = full / again_s
            figures["rerender"] = {"stacks": count, "full": full, "unchanged": again_runs}
            results.rows.append(
                row(
                    f"re-render of {count} unchanged customers vs a full render",
                    f"{speedup:.1f}x faster ({again_s:.2f} s vs {full:.2f} s); before: {REFERENCE['rerender']}",
                    f">= {RERENDER_SPEEDUP_MIN:.0f}x",
                    verdict(speedup >= RERENDER_SPEEDUP_MIN),
                )
            )
        # growth with the number of models, and the YAML emitter's share
        growth: dict[int, dict[str, Any]] = {}
        for count in (1, 10, 100):
            path = many_models(example.parent / "Pulumi.airgap-onprem.yaml", count, work / "models")
            _, growth[count] = run_python(IN_PROCESS, str(path))
        figures["growth"] = growth
        for step in ("plan", "render"):
            first = (growth[10][step] - growth[1][step]) / 9
            second = (growth[100][step] - growth[10][step]) / 90
            ratio = second / first if first > 0 else float("inf")
            results.rows.append(
                row(
                    f"{step}: cost of a model from 10 to 100 models vs from 1 to 10 "
                    f"({growth[1][step]:.2f} s, {growth[10][step]:.2f} s, {growth[100][step]:.2f} s at 1, 10, 100)",
                    f"{ratio:.2f}x ({second * 1000:.1f} ms vs {first * 1000:.1f} ms a model); "
                    f"before: {REFERENCE['growth']}",
                    f"<= {GROWTH_MAX}x",
                    verdict(ratio <= GROWTH_MAX),
                )
            )
        big = growth[100]
        share = big["yaml"] / big["render"]
        results.rows.append(
            row(
                f"YAML emitter (PyYAML's C emitter) in a render of 100 models: {big['objects']} objects",
                f"{big['yaml'] * 1000:.0f} ms of {big['render'] * 1000:.0f} ms ({share:.0%}); "
                f"{big['yaml'] / big['objects'] * 1e6:.0f} µs an object; a bare `yaml.dump` with "
                f"CSafeDumper {big['yaml_floor'] / big['objects'] * 1e6:.0f} µs, json.dumps "
                f"{big['json'] / big['objects'] * 1e6:.0f} µs",
                "(info: the floor)",
            )
        )
    results.figures["targets"] = figures
