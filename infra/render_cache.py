"""Skip re-rendering a stack whose inputs are those of the render already on disk.

A render is a pure function of the stack file, the sovstack code and data that read it, and the Git
source the Argo CD applications point at. Their digest is written beside each render
(`INPUTS_FILE`); `render --all` compares it before doing any work and leaves an unchanged stack's
directory as it is. Standard library only, so the check costs no import of the builders.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

from sovstack.infra.gitinfo import git_head

INPUTS_FILE = ".sovstack-inputs"
#: Bumped when what goes into the digest changes.
_SCHEME = b"sovstack-render-inputs/1\n"
_CODE_SUFFIXES = {".py", ".yaml", ".yml", ".json", ".j2", ".sh", ".txt", ".md"}
#: Environment variables that change a render's bytes (the report's generation time and commit).
_ENVIRONMENT = ("SOURCE_DATE_EPOCH", "SOVSTACK_GIT_COMMIT")


@cache
def code_digest() -> str:
    """sha256 over every code, data and template file of the installed sovstack package."""
    import sovstack

    package = Path(sovstack.__file__).parent
    digest = hashlib.sha256()
    paths: list[tuple[str, Path]] = []
    # The repository's package links its top-level folders in: follow the links.
    for folder, dirs, names in os.walk(package, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        base = Path(folder)
        for name in names:
            path = base / name
            if path.suffix in _CODE_SUFFIXES:
                paths.append((path.relative_to(package).as_posix(), path))
    for rel, path in sorted(paths):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def inputs_digest(stack_file: Path, *git: str | None) -> str:
    """Digest of everything a render of `stack_file` reads: its bytes, the code, the Git source."""
    digest = hashlib.sha256(_SCHEME)
    digest.update(code_digest().encode() + b"\0")
    digest.update(hashlib.sha256(stack_file.read_bytes()).digest())
    # The report names the commit the stack file is read from, and takes its time from it.
    digest.update(repr(git_head(stack_file.resolve().parent)).encode())
    for value in (*git, *(os.environ.get(name) for name in _ENVIRONMENT)):
        digest.update(b"\0" + (value if value is not None else "\x01none").encode())
    return digest.hexdigest()


def inputs_record(digest: str, objects: int) -> str:
    return f"inputs {digest}\nobjects {objects}\n"


def unchanged(out: Path, digest: str) -> int | None:
    """The object count of the render in `out` when it was made from these inputs, else None."""
    try:
        lines = (out / INPUTS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    fields = dict(line.split(" ", 1) for line in lines if " " in line)
    if fields.get("inputs") != digest or not fields.get("objects", "").isdigit():
        return None
    return int(fields["objects"])
