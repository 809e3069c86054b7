"""`make bench`: how fast `sovstack render --all`, `plan` and `validate` are on synthetic fleets.

Prints one Markdown table (figure, value, target, PASS/FAIL) and exits 0 whatever the verdicts: it
reports, it does not gate. Every timed command runs in a fresh child process, so the figures include
interpreter start-up and imports, as a user sees them. See docs/performance.md.

    python -m benchmarks.run [--sizes 10,100,1000] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.content_capture import measure as measure_content_capture
from benchmarks.fleet import generate_fleet
from benchmarks.targets import run_targets

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SOVSTACK = str(BIN / "sovstack") if (BIN / "sovstack").exists() else shutil.which("sovstack") or "sovstack"
EXAMPLE_STACK = REPO_ROOT / "stacks" / "Pulumi.industrial-eu.yaml"
PLAN_FLEET = 10  # plan runs the whole Pulumi program under mocks: ~0.1 to 0.5 s a stack

# Targets.
RENDER_100_MAX_S = 5.0
SPEEDUP_MIN = 30.0
SCALING_MAX = 11.0
VALIDATE_MAX_S = 0.4

#: Runs a command in this fresh child and reports its wall time and the peak RSS of its largest
#: process (RUSAGE_CHILDREN covers every waited-for descendant: render's pool workers too).
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": done.returncode, "seconds": seconds, "maxrss_kib": rss,
                  "stdout": done.stdout, "stderr": done.stderr[-4000:]}))
"""

#: Plans every stack of a folder in one process: one interpreter and one Pulumi import for all of
#: them (cheaper than the CLI's one process per stack).
_PLAN_FLEET = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
from pathlib import Path
from sovstack.infra.plan import run_plan
from sovstack.infra.pipeline import load_stack
from sovstack.infra.stackfile import list_stacks
resources = 0
stacks = list_stacks(Path(sys.argv[1]))
start = time.perf_counter()
for path in stacks:
    resources += len(run_plan(load_stack(path)).resources)
print(json.dumps({"stacks": len(stacks), "resources": resources, "loop_seconds": time.perf_counter() - start}))
"""

#: Renders every stack of a folder in memory, in one process on one core, without writing.
_RENDER_INPROC = """
import json, sys, time
from pathlib import Path
from sovstack.infra.gitops import GitSource
from sovstack.infra.render import render_files
from sovstack.infra.pipeline import load_stack
from sovstack.infra.stackfile import list_stacks
objects = 0
stacks = list_stacks(Path(sys.argv[1]))
start = time.perf_counter()
for path in stacks:
    files = render_files(load_stack(path), GitSource(repo_url="https://git.example.invalid/g.git", path="."))
    objects += sum(1 for p in files if p.startswith(("manifests/", "namespaces/"))) - 2
print(json.dumps({"stacks": len(stacks), "objects": objects, "loop_seconds": time.perf_counter() - start}))
"""

_RENDERED = re.compile(r"rendered (\d+) of (\d+) stacks \((\d+) objects\)")


@dataclass
class Measure:
    seconds: float
    maxrss_kib: int
    stdout: str


@dataclass
class Row:
    figure: str
    value: str
    target: str = ""
    verdict: str = ""


@dataclass
class Results:
    machine: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _env(stacks: Path | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("SOVSTACK_STACKS_DIR", None)
    if stacks is not None:
        env["SOVSTACK_STACKS_DIR"] = str(stacks)
    return env


def measure(command: Sequence[str], stacks: Path | None = None) -> Measure:
    """Run `command` under a fresh measuring child; RuntimeError when it fails."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        env=_env(stacks),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(done.stdout)
    if data["rc"] != 0:
        raise RuntimeError(f"{' '.join(command)} exited {data['rc']}:\n{data['stderr']}")
    return Measure(data["seconds"], data["maxrss_kib"], data["stdout"])


def run_python(code: str, *args: str) -> tuple[float, dict[str, Any]]:
    """Wall time of `python -c code args` in a fresh process, and the JSON it prints last."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=_env(None), cwd=REPO_ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{done.stderr[-4000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def load() -> float:
    return os.getloadavg()[0]


def machine() -> dict[str, Any]:
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total = next(line for line in meminfo.read_text().splitlines() if line.startswith("MemTotal"))
        memory = f"{int(total.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "cpus": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_at_start": round(load(), 2),
    }


def bench_render(size: int, folder: Path, runs: int, results: Results) -> float:
    """Median wall time of `sovstack render --all` over `runs` fresh runs."""
    times: list[float] = []
    rss: list[int] = []
    objects = 0
    loads: list[float] = []
    for _ in range(runs):
        loads.append(load())
        with tempfile.TemporaryDirectory(prefix="sovstack-bench-out-") as out:
            offline = ["--repo-root", out, "--repo-url", "https://git.example.invalid/g.git", "--demo"]
            result = measure([SOVSTACK, "render", "--all", "--out", out, *offline], stacks=folder)
        match = _RENDERED.search(result.stdout)
        if not match or match[1] != match[2] or int(match[2]) != size:
            raise RuntimeError(f"render --all of {size} stacks reported: {result.stdout.strip()}")
        objects = int(match[3])
        times.append(result.seconds)
        rss.append(result.maxrss_kib)
    median = statistics.median(times)
    results.figures[f"render_{size}"] = {
        "stacks": size,
        "runs": runs,
        "seconds": times,
        "median_seconds": median,
        "objects": objects,
        "objects_per_second": objects / median,
        "peak_rss_mib": max(rss) / 1024,
        "load": loads,
    }
    spread = f" (runs: {', '.join(f'{t:.2f}' for t in times)})" if runs > 1 else ""
    label = f"render --all, {size} customers"
    results.rows.append(Row(f"{label}: wall time, median of {runs}", f"{median:.2f} s{spread}"))
    results.rows.append(Row(f"{label}: objects rendered", f"{objects} ({objects / median:.0f} objects/s)"))
    results.rows.append(Row(f"{label}: peak RSS of the largest process", f"{max(rss) / 1024:.0f} MiB"))
    return median


def bench_plan(folder: Path, results: Results) -> None:
    """Plan a sample of the fleet and compare the cost per object with render's.

    Plan's figure is `sovstack plan STACK` run once per stack, as a user runs it (there is no
    `plan --all`), on the first PLAN_FLEET customers. Render's figure is its cost per object at fleet
    scale: `render --all` of the largest fleet measured up to 1,000 customers, whose first PLAN_FLEET
    customers are these same stacks (fleets are generated deterministically). At 10 customers render's
    0.3 s start-up dominates; that end-to-end view is shown too, for information, with the views
    without start-ups.
    """
    sample = results.figures[f"render_{PLAN_FLEET}"]
    objects = sample["objects"]
    stacks = sorted(folder.glob("Pulumi.*.yaml"))
    cli = [measure([SOVSTACK, "plan", str(path)], stacks=folder).seconds for path in stacks]
    plan_cli = sum(cli)
    plan_wall, plan = run_python(_PLAN_FLEET, str(folder))
    _, rendered = run_python(_RENDER_INPROC, str(folder))
    if rendered["objects"] != objects:
        raise RuntimeError(f"in-process render gave {rendered['objects']} objects, render --all {objects}")
    fleet = max(size for size in (PLAN_FLEET, 100, 1000) if f"render_{size}" in results.figures)
    scale = results.figures[f"render_{fleet}"]
    plan_per_object = plan_cli / objects
    render_per_object = scale["median_seconds"] / scale["objects"]
    per_object_render = {
        size: results.figures[f"render_{size}"]["median_seconds"]
        / results.figures[f"render_{size}"]["objects"]
        for size in (100, 1000)
        if f"render_{size}" in results.figures
    }
    speedup = plan_per_object / render_per_object
    small = plan_cli / sample["median_seconds"]
    one_process = plan_wall / sample["median_seconds"]
    engine = plan["loop_seconds"] / rendered["loop_seconds"]
    results.figures["plan"] = {
        "stacks": len(stacks),
        "objects": objects,
        "plan_resources": plan["resources"],
        "plan_cli_seconds": cli,
        "plan_seconds_per_object": plan_per_object,
        "render_fleet": fleet,
        "render_seconds_per_object": render_per_object,
        "speedup_per_object": speedup,
        "speedup_end_to_end_10": small,
        "plan_one_process_wall_seconds": plan_wall,
        "plan_in_process_loop_seconds": plan["loop_seconds"],
        "render_in_process_loop_seconds": rendered["loop_seconds"],
        "speedup_one_process": one_process,
        "speedup_in_process_one_core": engine,
        "load": load(),
    }

    def per(seconds: float, count: int = objects) -> str:
        return f"{seconds / count * 1000:.2f} ms"

    results.rows += [
        Row(
            f"plan, {len(stacks)} customers of the fleet: `sovstack plan` per stack, total",
            f"{plan_cli:.2f} s ({plan['resources']} resources registered for {objects} objects)",
        ),
        Row(
            f"time per object: `sovstack plan` vs `render --all` of {fleet} customers",
            f"{plan_per_object * 1000:.2f} ms vs {render_per_object * 1000:.2f} ms",
        ),
        Row(
            f"render speed-up per object ({fleet} customers)",
            f"{speedup:.1f}x",
            f">= {SPEEDUP_MIN:.0f}x",
            verdict(speedup >= SPEEDUP_MIN),
        ),
        *[
            Row(f"render speed-up per object at {size} customers", f"{plan_per_object / cost:.1f}x", "(info)")
            for size, cost in per_object_render.items()
            if size != fleet
        ],
        Row(
            f"speed-up end to end on the {len(stacks)} customers alone (render's start-up dominates)",
            f"{small:.1f}x ({per(plan_cli)} vs {per(sample['median_seconds'])})",
            "(info)",
        ),
        Row(
            "speed-up, all plans in one process (one start-up) vs `render --all`",
            f"{one_process:.1f}x ({per(plan_wall)} vs {per(sample['median_seconds'])})",
            "(info)",
        ),
        Row(
            "speed-up, both in process on one core (no start-up)",
            f"{engine:.1f}x ({per(plan['loop_seconds'])} vs {per(rendered['loop_seconds'])})",
            "(info)",
        ),
    ]


def bench_validate(runs: int, results: Results) -> None:
    times = [measure([SOVSTACK, "validate", str(EXAMPLE_STACK)]).seconds for _ in range(runs)]
    median = statistics.median(times)
    results.figures["validate"] = {
        "stack": EXAMPLE_STACK.name,
        "runs": runs,
        "seconds": times,
        "load": load(),
    }
    results.rows.append(
        Row(
            f"validate {EXAMPLE_STACK.name}: wall time, median of {runs}",
            f"{median:.3f} s",
            f"< {VALIDATE_MAX_S} s",
            verdict(median < VALIDATE_MAX_S),
        )
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def table(results: Results) -> str:
    lines = ["| Figure | Value | Target | Verdict |", "|---|---|---|---|"]
    lines += [f"| {r.figure} | {r.value} | {r.target} | {r.verdict} |" for r in results.rows]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="fleet sizes, comma-separated")
    parser.add_argument("--quick", action="store_true", help="sizes 10,100, one run each, 3 validate runs")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.quick and args.sizes == parser.get_default("sizes"):
        args.sizes = "10,100"
    args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if not args.sizes or min(args.sizes) < 1:
        parser.error("--sizes: give positive integers, e.g. 10,100")
    return args


def byte_compile() -> bool:
    """Byte-compile sovstack's own modules first, as pip does when it installs the wheel, so every
    timed command reads bytecode as a user's does: with PYTHONDONTWRITEBYTECODE set (as on the
    development machine) a checkout otherwise compiles each module again in every command (about
    90 ms of a validate). Writes only the `__pycache__` folders git ignores."""
    import compileall

    folders = [REPO_ROOT / name for name in ("components", "infra", "policies")]
    done = [compileall.compile_dir(folder, quiet=2) for folder in folders]
    return all(done) and bool(compileall.compile_file(REPO_ROOT / "sovstack" / "__init__.py", quiet=2))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = Results(machine())
    m = results.machine
    if not byte_compile():
        results.notes.append(
            "sovstack's modules could not all be byte-compiled: figures include compiling them"
        )
    print(
        f"machine: {m['cpus']} CPUs, {m['memory']}, Python {m['python']}, load {m['load_at_start']}",
        file=sys.stderr,
    )
    if m["load_at_start"] > (m["cpus"] or 1) / 2:
        results.notes.append(
            f"load average {m['load_at_start']} at start on {m['cpus']} CPUs: other work competes; rerun when idle"
        )
    seconds: dict[int, float] = {}
    plan_folder: Path | None = None
    with tempfile.TemporaryDirectory(prefix="sovstack-bench-") as tmp:
        for size in args.sizes:
            folder = Path(tmp) / f"fleet-{size}"
            start = time.perf_counter()
            customers = generate_fleet(size, folder)
            backends = sorted({c.backend for c in customers})
            print(
                f"fleet of {size}: generated in {time.perf_counter() - start:.1f} s ({', '.join(backends)})",
                file=sys.stderr,
            )
            runs = 1 if args.quick or size >= 1000 else 3
            print(f"render --all, {size} customers, {runs} run(s)...", file=sys.stderr)
            seconds[size] = bench_render(size, folder, runs, results)
            if size == PLAN_FLEET:
                plan_folder = folder
        if plan_folder is not None:
            print(f"plan, {PLAN_FLEET} customers...", file=sys.stderr)
            bench_plan(plan_folder, results)
        print("validate...", file=sys.stderr)
        bench_validate(3 if args.quick else 10, results)
        print("targets where users wait: plan, validate, render, re-render, growth...", file=sys.stderr)
        fleet = Path(tmp) / "fleet-100" if 100 in args.sizes else None
        run_targets(
            SOVSTACK,
            EXAMPLE_STACK,
            fleet,
            measure,
            run_python,
            results,
            Row,
            verdict,
            runs=3 if args.quick else 5,
        )
    print("content capture (the gateways' Lua filter)...", file=sys.stderr)
    capture = measure_content_capture()
    results.rows += [
        Row(figure, value, "no target: the cost a body adds at the gateway") for figure, value in capture
    ]
    if not capture:
        results.notes.append("luajit is not installed: the content-capture figures were not measured")
    add_targets(seconds, results)
    results.machine["load_at_end"] = round(load(), 2)
    print(table(results))
    print()
    print(
        f"Machine: {m['cpus']} CPUs, {m['memory']} RAM, Python {m['python']}, {m['platform']}; "
        f"load average {m['load_at_start']} at start, {m['load_at_end']} at end."
    )
    for note in results.notes:
        print(f"Note: {note}")
    failed = [r.figure for r in results.rows if r.verdict.endswith("FAIL**")]
    print(f"Targets: {'all met' if not failed else f'{len(failed)} missed: ' + '; '.join(failed)}.")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": results.machine,
            "figures": results.figures,
            "rows": [r.__dict__ for r in results.rows],
            "notes": results.notes,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


def add_targets(seconds: dict[int, float], results: Results) -> None:
    """The targets that compare sizes, placed at the end of the table; n/a when a size was skipped."""
    if 10 not in seconds:
        results.rows.append(Row("render speed-up per object", "not measured (needs size 10)", "", "n/a"))
    if 100 in seconds:
        ok = seconds[100] <= RENDER_100_MAX_S
        results.rows.append(
            Row(
                "render --all, 100 customers",
                f"{seconds[100]:.2f} s",
                f"<= {RENDER_100_MAX_S:.0f} s",
                verdict(ok),
            )
        )
    else:
        results.rows.append(Row("render --all, 100 customers", "not measured", "", "n/a"))
    if 100 in seconds and 1000 in seconds:
        ratio = seconds[1000] / seconds[100]
        results.figures["scaling_1000_over_100"] = ratio
        results.rows.append(
            Row(
                "render --all, time(1,000) / time(100)",
                f"{ratio:.1f}x",
                f"<= {SCALING_MAX:.0f}x",
                verdict(ratio <= SCALING_MAX),
            )
        )
    else:
        results.rows.append(Row("render --all, time(1,000) / time(100)", "not measured", "", "n/a"))


if __name__ == "__main__":
    raise SystemExit(main())
