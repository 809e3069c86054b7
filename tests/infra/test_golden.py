"""Golden snapshots: each example stack's full render, committed and reviewed when it changes.

A change to a builder, a default or an example shows up here as a plain diff of manifests. When the
change is intended, refresh the snapshots and review the diff like code:

    make golden          # SOVSTACK_UPDATE_GOLDEN=1 pytest tests/infra/test_golden.py
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sovstack.infra.render import GitSource, render_stack
from sovstack.infra.render_cache import INPUTS_FILE

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLES = ["industrial-eu", "gov-fr", "research-se", "airgap-onprem"]
#: Fixed so snapshots do not depend on $SOVSTACK_GITOPS_REPO or on where the render is written.
GIT = "https://git.example.eu/platform/gitops.git"


def files(root: Path) -> dict[str, str]:
    # The inputs digest covers sovstack's own code: it changes with every commit, by design.
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != INPUTS_FILE
    }


@pytest.mark.parametrize("stack", EXAMPLES)
def test_render_matches_the_golden_snapshot(stack: str, tmp_path: Path) -> None:
    out = tmp_path / stack
    render_stack(stack, out, GitSource(repo_url=GIT, path=stack), demo=True)
    golden = GOLDEN / stack
    if os.environ.get("SOVSTACK_UPDATE_GOLDEN"):
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(out, golden, ignore=shutil.ignore_patterns(INPUTS_FILE))
    assert golden.is_dir(), f"no snapshot for {stack}: run `make golden` and review the new files"
    expected, actual = files(golden), files(out)
    assert sorted(actual) == sorted(expected), "files added or removed: run `make golden` and review"
    changed = [name for name in actual if actual[name] != expected[name]]
    assert not changed, f"rendered output changed in {changed}: run `make golden` and review the diff"


@pytest.mark.parametrize("flavor", ["flux", "pko"])
def test_other_engines_objects_match_their_golden_snapshot(flavor: str, tmp_path: Path) -> None:
    """gov-fr's Flux and Pulumi operator objects (the manifests are those of the snapshot above)."""
    out = tmp_path / "gov-fr"
    render_stack(
        "gov-fr", out, GitSource(repo_url=GIT, path="gov-fr", flavor=flavor, program_path="."), demo=True
    )
    golden = GOLDEN / "engines" / "gov-fr" / flavor
    if os.environ.get("SOVSTACK_UPDATE_GOLDEN"):
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(out / flavor, golden)
    assert golden.is_dir(), f"no snapshot for {flavor}: run `make golden` and review the new files"
    assert files(out / flavor) == files(golden), "engine objects changed: run `make golden` and review"
