"""What the gateways' content-capture Lua filter costs a request: SHA-256 throughput in Lua.

The filter (components/lua/content_capture.lua) hashes every request and response body as it streams
through Envoy, in Envoy's LuaJIT with its `bit` library. This benchmark feeds it bodies of 10 KiB,
1 MiB and 10 MiB in 16 KiB chunks through the test harness (tests/components/lua/harness.lua, which plays
Envoy's stream API) and reports the time a body takes beyond an empty one, so interpreter start-up is
not counted. The plain-arithmetic path (no `bit`: Envoy Gateway's validator) is measured on 256 KiB.

    python -m benchmarks.content_capture
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HARNESS = REPO_ROOT / "tests" / "components" / "lua" / "harness.lua"
SCRIPT = REPO_ROOT / "components" / "lua" / "content_capture.lua"
CHUNK = 16384
ANSWER = b'{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":345}}'


def _seconds(runtime: list[str], body: Path, answer: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            [
                *runtime[:1],
                str(HARNESS),
                str(SCRIPT),
                "digest",
                str(body),
                str(answer),
                str(CHUNK),
                *runtime[1:],
            ],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure() -> list[tuple[str, str]]:
    """(figure, value) rows; empty when LuaJIT is not installed."""
    if shutil.which("luajit") is None:
        return []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        answer = folder / "answer"
        answer.write_bytes(ANSWER)
        empty = folder / "empty"
        empty.write_bytes(b"")
        for mode, runtime, sizes in (
            ("LuaJIT with bit (Envoy)", ["luajit"], (10 * 1024, 1024 * 1024, 10 * 1024 * 1024)),
            ("LuaJIT, plain arithmetic (Envoy Gateway's validator path)", ["luajit", "nobit"], (256 * 1024,)),
        ):
            base = _seconds(runtime, empty, answer, 5)
            for size in sizes:
                body = folder / f"body-{size}"
                body.write_bytes(bytes(range(256)) * (size // 256))
                spent = max(_seconds(runtime, body, answer, 5) - base, 1e-6)
                label = f"{size // 1024} KiB" if size < 1024 * 1024 else f"{size // (1024 * 1024)} MiB"
                rows.append(
                    (
                        f"content capture, {mode}: one {label} body",
                        f"{spent * 1000:.1f} ms ({size / spent / 1e6:.1f} MB/s)",
                    )
                )
    return rows


def main() -> int:
    rows = measure()
    if not rows:
        print("luajit is not installed (apt-get install luajit): content-capture figures skipped")
        return 0
    print("| figure | value |\n|---|---|")
    for figure, value in rows:
        print(f"| {figure} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
