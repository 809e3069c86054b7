"""The pre-commit hook runs `sovstack validate` on stack files, and only on them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_hook_runs_the_console_script_on_stack_files_only() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert hook["entry"].split()[0] in scripts
    assert hook["entry"].split()[1] == "validate"
    pattern = re.compile(hook["files"])
    stacks = [str(p.relative_to(REPO)) for p in (REPO / "stacks").rglob("*") if p.is_file()]
    matched = sorted(s for s in stacks if pattern.search(s))
    assert matched == sorted(str(p.relative_to(REPO)) for p in (REPO / "stacks").glob("Pulumi.*.yaml"))
    assert not any(pattern.search(s) for s in stacks if "/templates/" in s)
