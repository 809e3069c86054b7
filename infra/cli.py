"""The `sovstack` entry point (the console script and `python -m sovstack.infra.cli`).

Exit codes (every command): 0 success; 1 valid input that breaks a residency rule (or, for
`capacity`, a model that does not fit); 2 unreadable or invalid input, or bad usage; 3 an internal
error (a bug: please report it). No input prints a traceback. Only `plan` imports Pulumi.

`validate`, `render` and `plan`, the commands a user waits for at every edit, run here without
importing typer and click (35 ms of a command that should take 0.2 s: docs/performance.md, "Where
users wait") when their arguments are plain: known options, values that cannot be read two ways. Anything
else (help, `--`, an unknown or abbreviated option, a missing value, shell completion) goes to the
typer app in infra/commands.py, which prints its usage errors, did-you-mean and help as it always
has; both ways call the same runner (validation.validate_cli, render.render_cli, plan_view.plan_cli).
"""

from __future__ import annotations

import errno
import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

# sovstack uses no pydantic plugin; looking for them reads every installed package's metadata on the
# first model (30 ms of each command). Set PYDANTIC_DISABLE_PLUGINS yourself to choose otherwise.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

EXIT_OK, EXIT_RESIDENCY, EXIT_INVALID, EXIT_INTERNAL, EXIT_PULUMI = 0, 1, 2, 3, 4

#: Each fast command: its flags, its options taking one value, and its arguments' count (least, most).
_FLAGS = {
    "validate": {"--json": "as_json", "--verbose": "verbose", "-v": "verbose", "--strict": "strict"},
    "render": {"--all": "all_stacks", "--pko": "pko", "--force": "force", "--demo": "demo"},
    "plan": {"--json": "as_json", "--show-inputs": "show_inputs"},
}
_VALUES = {
    "validate": {},
    "plan": {"--compare": "compare"},
    "render": {
        "--out": "out",
        "--jobs": "jobs",
        "--repo-url": "repo_url",
        "--repo-root": "repo_root",
        "--revision": "revision",
        "--flavor": "flavor",
    },
}
_ARGUMENTS = {"validate": (1, sys.maxsize), "render": (0, 1), "plan": (1, 1)}


def _parse(command: str, args: list[str]) -> tuple[list[str], dict[str, str | bool]] | None:
    """The arguments and options of a fast command, or None for anything typer must read."""
    flags, values = _FLAGS[command], _VALUES[command]
    positional: list[str] = []
    options: dict[str, str | bool] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("-"):
            name, equals, value = arg.partition("=")
            if name in flags and not equals:
                options[flags[name]] = True
            elif name in values:
                if not equals:
                    index += 1
                    if index == len(args):
                        return None
                    value = args[index]
                if not value or value.startswith("-"):
                    return None
                options[values[name]] = value
            else:
                return None
        else:
            positional.append(arg)
        index += 1
    least, most = _ARGUMENTS[command]
    if not least <= len(positional) <= most:
        return None
    return positional, options


def _fast_command(argv: list[str]) -> Callable[[], int] | None:
    """The runner for `validate`, `render` or `plan` with plain arguments; None sends argv to typer."""
    if not argv or argv[0] not in _FLAGS or "_SOVSTACK_COMPLETE" in os.environ:
        return None
    parsed = _parse(argv[0], argv[1:])
    if parsed is None:
        return None
    positional, options = parsed
    # A command builds hundreds of thousands of objects (pydantic's validators, the composition) and
    # frees few before it exits; at the default young-generation threshold (700 allocations) the
    # garbage collector ran 90 to 140 times and found almost nothing: 20 ms of a validate, 50 ms of a
    # render. Every 100,000 allocations, it still runs in a long `render --all` worker.
    gc.set_threshold(100_000, 50, 1000)
    if argv[0] == "validate":
        from sovstack.infra.validation import validate_cli

        return lambda: validate_cli(
            positional,
            as_json=bool(options.get("as_json")),
            verbose=bool(options.get("verbose")),
            strict=bool(options.get("strict")),
        )
    if argv[0] == "plan":
        from sovstack.infra.plan_view import plan_cli

        compare = options.get("compare")
        return lambda: plan_cli(
            positional[0],
            as_json=bool(options.get("as_json")),
            show_inputs=bool(options.get("show_inputs")),
            compare=Path(str(compare)) if compare is not None else None,
        )
    jobs = str(options.get("jobs", "0"))
    if not (jobs.isascii() and jobs.isdigit()):
        return None  # typer says why it is not a number
    repo_root = options.get("repo_root")
    # As typer reads --repo-url's envvar: unset and empty both mean "not given".
    repo_url = options.get("repo_url") or os.environ.get("SOVSTACK_GITOPS_REPO") or None
    from sovstack.infra.render import render_cli

    return lambda: render_cli(
        positional[0] if positional else None,
        Path(str(options.get("out", "build/render"))),
        all_stacks=bool(options.get("all_stacks")),
        jobs=int(jobs),
        repo_url=str(repo_url) if repo_url is not None else None,
        repo_root=Path(str(repo_root)) if repo_root is not None else None,
        revision=str(options.get("revision", "main")),
        flavor=str(options["flavor"]) if "flavor" in options else None,
        pko=bool(options.get("pko")),
        force=bool(options.get("force")),
        demo=bool(options.get("demo")),
    )


def _exit_now(code: int | str | None) -> NoReturn:
    """Exit without the interpreter's teardown once Pulumi is loaded: its gRPC threads, asyncio
    loops and thousands of SDK modules take a fifth of a `plan` to tear down, and nothing is left
    to flush but the standard streams."""
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def _run(argv: list[str]) -> None:
    """Run one command line and exit (SystemExit) as typer's standalone mode does."""
    command = _fast_command(argv)
    if command is None:
        from sovstack.infra.commands import app

        app()
        return
    try:
        code = command()
    except KeyboardInterrupt:
        code = 130  # typer's answer to ^C: exit 130, no message
    except OSError as err:
        if err.errno != errno.EPIPE:
            raise
        code = 1  # the reader went away (`| head`): typer exits 1 quietly
        sys.stdout = _Quiet(sys.stdout)
        sys.stderr = _Quiet(sys.stderr)
    sys.exit(code)


class _Quiet:
    """A stream whose flush ignores a closed pipe, so exiting after EPIPE prints nothing (click's
    PacifyFlushWrapper does the same for typer)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as err:
            if err.errno != errno.EPIPE:
                raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main() -> None:
    """Entry point: typer's own usage errors exit 2; anything unexpected exits 3 without a traceback."""
    try:
        _run(sys.argv[1:])
    except SystemExit as done:
        if "pulumi" in sys.modules:
            _exit_now(done.code)
        # Exiting, the interpreter runs its garbage collector over every object the command made,
        # several times (45 ms of a 0.3 s validate); frozen objects are skipped. atexit handlers and
        # the flushing of streams and files still run, unlike plan's os._exit.
        gc.freeze()
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    except Exception as err:  # the promise: no traceback, whatever the input
        print(
            f"sovstack: internal error: {type(err).__name__}: {err} (please report this)",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(EXIT_INTERNAL)


def __getattr__(name: str) -> Any:
    """The typer app and its commands, for callers that import them from here (`cli.app`)."""
    if name.startswith("__"):
        raise AttributeError(name)
    from sovstack.infra import commands

    return getattr(commands, name)


if __name__ == "__main__":
    main()
