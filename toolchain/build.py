"""Build the end-to-end suite's tools from their Go modules into a cache outside the repository.

`python -m toolchain.build` (what `make e2e-tools` runs) builds every tool in toolchain/versions.yaml
that the cache does not hold yet, prints progress, and is safe to interrupt: a tool is built into a
temporary directory and renamed into place only when complete, and Go's own module and build caches
let an interrupted build resume where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
VERSIONS_FILE = HERE / "versions.yaml"
RECIPE_REVISION = "1"  # bump when this file changes how a tool is built (a new field only adds to the key)


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    module: str
    package: str
    gomod: Path
    binary: str
    cgo: bool
    tags: tuple[str, ...]
    ldflags: str
    module_version: str
    embed_from_module: str | None
    #: A main package of our own, committed beside the tool's go.mod, instead of one from the module.
    main_file: Path | None = None

    @property
    def key(self) -> str:
        """Cache directory name: the version and a digest of everything that goes into the build."""
        digest = hashlib.sha256()
        for part in (
            RECIPE_REVISION,
            self.package,
            self.module_version,
            str(self.cgo),
            ",".join(self.tags),
            self.ldflags,
            (self.gomod / "go.mod").read_text(),
            (self.gomod / "go.sum").read_text(),
            *([self.main_file.read_text()] if self.main_file else []),
        ):
            digest.update(part.encode())
            digest.update(b"\0")
        return f"{self.name}-{self.version}-{digest.hexdigest()[:12]}"


def load_tools(path: Path = VERSIONS_FILE) -> dict[str, Tool]:
    data = yaml.safe_load(path.read_text())
    tools = {}
    for name, entry in data["tools"].items():
        tools[name] = Tool(
            name=name,
            version=entry["version"],
            module=entry["module"],
            package=entry["package"],
            gomod=(path.parent / entry["gomod"]).resolve(),
            binary=entry["binary"],
            cgo=bool(entry.get("cgo", False)),
            tags=tuple(entry.get("tags", [])),
            ldflags=" ".join(str(entry.get("ldflags", "")).split()),
            module_version=entry.get("module_version", entry["version"]),
            embed_from_module=entry.get("embed_from_module"),
            main_file=(path.parent / entry["main"]).resolve() if entry.get("main") else None,
        )
    return tools


def cache_root() -> Path:
    configured = os.environ.get("SOVSTACK_TOOLS_CACHE")
    if configured:
        return Path(configured).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (base / "sovstack" / "e2e-tools").resolve()


def tool_dir(tool: Tool, root: Path | None = None) -> Path:
    return (root or cache_root()) / tool.key


def binary_path(tool: Tool, root: Path | None = None) -> Path | None:
    """The built binary, or None when the cache does not hold this exact build."""
    directory = tool_dir(tool, root)
    binary = directory / "bin" / tool.binary
    if (directory / "complete.json").is_file() and binary.is_file():
        return binary
    return None


def required_module_version(tool: Tool) -> str:
    """The version the committed go.mod pins for the tool's module (a pin in two places must agree)."""
    for raw in (tool.gomod / "go.mod").read_text().splitlines():
        words = raw.strip().split()
        if words[:1] == ["require"]:
            words = words[1:]
        if len(words) >= 2 and words[0] == tool.module:
            return words[1]
    raise SystemExit(f"{tool.gomod / 'go.mod'}: does not require {tool.module}")


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")  # build with this machine's Go, never a downloaded one
    return env


def _module_dir(module: str, version: str, workdir: Path) -> Path:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=workdir,
        env=_go_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(json.loads(out.stdout)["Dir"])


def _prepare_embed(tool: Tool, workdir: Path) -> None:
    """Copy a main package that embeds generated files, and generate them as upstream's generate.go does."""
    assert tool.embed_from_module is not None
    source = _module_dir(tool.module, tool.module_version, workdir) / tool.embed_from_module
    for name in ("main.go",):
        shutil.copyfile(source / name, workdir / name)
    schema = json.loads((source / "schema.json").read_text())
    schema["version"] = tool.version.removeprefix("v")
    (workdir / "schema-embed.json").write_text(json.dumps(schema, separators=(",", ":")))
    mapping = json.loads((source / "terraform-mapping.json").read_text())
    (workdir / "terraform-mapping-embed.json").write_text(json.dumps(mapping, separators=(",", ":")))


def build(tool: Tool, root: Path, log: bool = True) -> Path:
    pinned = required_module_version(tool)
    if pinned != tool.module_version:
        raise SystemExit(
            f"toolchain/versions.yaml pins {tool.module} at {tool.module_version} but "
            f"{tool.gomod / 'go.mod'} requires {pinned}: make them agree"
        )
    final = tool_dir(tool, root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{tool.key}.", dir=root))
    try:
        workdir = staging / "src"
        workdir.mkdir()
        shutil.copyfile(tool.gomod / "go.mod", workdir / "go.mod")
        shutil.copyfile(tool.gomod / "go.sum", workdir / "go.sum")
        target = tool.package
        if tool.embed_from_module:
            _prepare_embed(tool, workdir)
            target = "."
        if tool.main_file:
            shutil.copyfile(tool.main_file, workdir / "main.go")
            target = "."
        (staging / "bin").mkdir()
        # -mod=readonly: modules are verified against the committed go.sum, which nothing edits.
        command = ["go", "build", "-mod=readonly", "-trimpath", "-o", str(staging / "bin" / tool.binary)]
        if tool.tags:
            command += ["-tags", ",".join(tool.tags)]
        command += ["-ldflags", f"-s -w {tool.ldflags}".strip(), target]
        env = _go_env()
        env["CGO_ENABLED"] = "1" if tool.cgo else "0"
        subprocess.run(command, cwd=workdir, env=env, check=True)
        shutil.rmtree(workdir)
        go_version = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True)
        (staging / "complete.json").write_text(
            json.dumps(
                {
                    "tool": tool.name,
                    "version": tool.version,
                    "module": f"{tool.module}@{tool.module_version}",
                    "go": go_version.stdout.strip(),
                },
                indent=2,
            )
            + "\n"
        )
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final / "bin" / tool.binary


def ensure(names: list[str] | None = None, root: Path | None = None, quiet: bool = False) -> dict[str, Path]:
    """Every requested tool's binary, building what the cache lacks."""
    root = root or cache_root()
    tools = load_tools()
    wanted = names or list(tools)
    unknown = sorted(set(wanted) - set(tools))
    if unknown:
        raise SystemExit(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(tools)}")
    if shutil.which("go") is None:
        raise SystemExit("the Go toolchain (go) is not on PATH: it is needed to build the e2e tools")
    paths: dict[str, Path] = {}
    for index, name in enumerate(wanted, start=1):
        tool = tools[name]
        found = binary_path(tool, root)
        prefix = f"[{index}/{len(wanted)}] {name} {tool.version}"
        if found:
            if not quiet:
                print(f"{prefix}: cached in {found.parent.parent}", flush=True)
            paths[name] = found
            continue
        print(f"{prefix}: building from {tool.module}@{tool.module_version} ...", flush=True)
        started = time.monotonic()
        paths[name] = build(tool, root)
        print(f"{prefix}: built in {time.monotonic() - started:.0f} s -> {paths[name]}", flush=True)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.build", description=__doc__)
    parser.add_argument("tools", nargs="*", help="tools to build (default: all in versions.yaml)")
    parser.add_argument("--print-paths", action="store_true", help="print NAME=PATH for each tool")
    args = parser.parse_args(argv)
    print(f"tool cache: {cache_root()}", flush=True)
    paths = ensure(args.tools or None)
    if args.print_paths:
        for name, path in paths.items():
            print(f"{name}={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
