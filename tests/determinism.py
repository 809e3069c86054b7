"""Determinism across processes: the same code run by fresh interpreters with different hash seeds.

A check inside one process cannot see order that depends on `hash()` (sets, dicts built from sets),
on the time, or on anything else a new interpreter draws afresh; these helpers run the code in
several, each with its own PYTHONHASHSEED, and return what each printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ("0", "1", "4242")


def outputs_in_fresh_processes(code: str, *args: str, seeds: tuple[str, ...] = SEEDS) -> list[str]:
    """stdout of `python -c code args...` once per seed, from the repository root."""
    outputs = []
    for seed in seeds:
        run = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout)
    return outputs


def assert_same_in_fresh_processes(code: str, *args: str) -> str:
    """The one output every process printed; fails naming the seeds when two differ."""
    outputs = outputs_in_fresh_processes(code, *args)
    distinct = sorted(set(outputs))
    assert len(distinct) == 1, f"output differs between PYTHONHASHSEED {', '.join(SEEDS)}"
    assert distinct[0], "the code printed nothing to compare"
    return distinct[0]
