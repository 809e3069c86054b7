"""The git commit a stack file is read from: its id and time, for the report's provenance and the
render cache's inputs. Standard library only."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path


@cache
def git_head(folder: Path) -> tuple[str, int] | None:
    """(commit, commit time in seconds) of HEAD of the git repository holding `folder`; None outside
    one or without git. Cached per folder for the life of the process (`git_head.cache_clear()`)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "log", "-1", "--format=%H %ct"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    fields = done.stdout.split()
    if done.returncode != 0 or len(fields) != 2 or not re.fullmatch(r"[0-9a-f]{40,64}", fields[0]):
        return None
    return fields[0], int(fields[1])
