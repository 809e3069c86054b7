"""Build sovstack's wheel from this checkout, offline (no build isolation: the dev extra brings
setuptools and wheel), for the packaging tests and the installed-package end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(out: Path) -> Path:
    """The wheel, written into `out`."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (built,) = out.glob("sovstack-*.whl")
    return built
