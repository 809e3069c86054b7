"""The entry point's fast path (infra/cli.py): `validate`, `render` and `plan` with plain arguments run
without typer, and print, write and exit exactly as the typer app does with the same arguments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sovstack.infra.cli import _fast_command
from tests.infra.conftest import REPO_ROOT, StackWriter

#: The entry point, and the typer app alone (what the entry point ran for every command before).
MAIN = "from sovstack.infra.cli import main; main()"
TYPER = "from sovstack.infra.commands import app; app()"
URL = "https://git.example.invalid/platform/sovstack.git"


def run(*args: str, code: str = MAIN, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "SOVSTACK_GITOPS_REPO")}
    return subprocess.run(
        [sys.executable, "-c", f"import sys; sys.argv[0] = 'sovstack'; {code}", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**env, "PYTHONWARNINGS": "ignore", **extra_env},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("argv", "fast"),
    [
        (["validate", "industrial-eu", "gov-fr"], True),
        (["validate", "-v", "--strict", "gov-fr"], True),
        (["validate", "--json", "research-se"], True),
        (["render", "gov-fr", "--demo", "--force", "--out=build/x", "--repo-root", ".", "--jobs", "2"], True),
        (["render", "--all", "--pko", "--flavor", "flux"], True),
        (["plan", "gov-fr", "--json", "--show-inputs"], True),
        (["plan", "gov-fr", "--compare", "old.json"], True),
        (["plan", "gov-fr", "--compare", "-"], False),  # a value starting with '-': typer reads it
        (["validate", "-h"], False),
        (["validate"], False),
        (["validate", "--", "gov-fr"], False),
        (["validate", "--jsn", "gov-fr"], False),
        (["validate", "-vv", "gov-fr"], False),
        (["validate", "--json=1", "gov-fr"], False),
        (["render", "a", "b"], False),
        (["render", "gov-fr", "--out"], False),
        (["render", "gov-fr", "--out="], False),
        (["render", "gov-fr", "--jobs", "two"], False),
        (["plan"], False),
        (["plan", "a", "b"], False),
        (["regions"], False),
        ([], False),
    ],
    ids=lambda a: " ".join(a) if isinstance(a, list) else str(a),
)
def test_the_fast_path_takes_plain_arguments_only(argv: list[str], fast: bool) -> None:
    assert (_fast_command(argv) is not None) is fast


@pytest.mark.slow
def test_validate_and_render_need_neither_typer_nor_pulumi(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = (
        "import sys\n"
        "from sovstack.infra.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "heavy = ('typer', 'click', 'pulumi', 'pulumi_kubernetes', 'pulumiverse_scaleway', 'rich')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    for argv in (
        ["validate", "industrial-eu"],
        ["render", "gov-fr", "--out", str(out), "--repo-root", str(tmp_path), "--demo", "--repo-url", URL],
    ):
        result = run(*argv, code=code)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "[]", argv


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "industrial-eu", "gov-fr", "research-se", "airgap-onprem"],
        ["validate", "--verbose", "--strict", "gov-fr"],
        ["validate", "--json", "industrial-eu", "no-such-stack"],
        ["validate", "stacks/templates"],
    ],
    ids=lambda a: " ".join(a),
)
def test_validate_prints_and_exits_as_typer_does(argv: list[str]) -> None:
    fast, typer = run(*argv), run(*argv, code=TYPER)
    assert _fast_command(argv) is not None
    assert (fast.returncode, fast.stdout, fast.stderr) == (typer.returncode, typer.stdout, typer.stderr)
    assert fast.stdout or fast.stderr


@pytest.mark.slow
def test_render_writes_and_exits_as_typer_does(tmp_path: Path, write_stack: StackWriter) -> None:
    refused = write_stack("gov-fr")
    trees = {}
    for way in ("fast", "typer"):
        out = tmp_path / "out"
        argv = ["render", "gov-fr", "--out", str(out), "--repo-root", str(tmp_path), "--demo", "--force"]
        # the repository URL from $SOVSTACK_GITOPS_REPO, which typer reads for --repo-url
        result = run(*argv, code=MAIN if way == "fast" else TYPER, SOVSTACK_GITOPS_REPO=URL)
        assert result.returncode == 0, result.stderr
        trees[way] = (
            result.stdout,
            result.stderr,
            {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()},
        )
        # without --demo a stack with placeholders is refused, with the same lines both ways
        no_demo = ["render", str(refused), "--out", str(tmp_path / "no"), "--repo-root", str(tmp_path)]
        result = run(*no_demo, "--repo-url", URL, code=MAIN if way == "fast" else TYPER)
        trees[way + "-refused"] = (result.returncode, result.stdout, result.stderr)
    assert trees["fast"] == trees["typer"]
    assert trees["fast-refused"] == trees["typer-refused"]
    assert trees["fast-refused"][0] == 1
