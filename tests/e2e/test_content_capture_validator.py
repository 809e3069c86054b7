"""The content-capture Lua filter passes Envoy Gateway's own strict Lua validation.

Envoy Gateway refuses an EnvoyExtensionPolicy whose Lua fails its validator
(internal/gatewayapi/luavalidator in github.com/envoyproxy/gateway, the version the platform installs):
in the default `Strict` mode it runs Envoy Gateway's mocks of Envoy's stream API (mocks.lua), then its
sandbox (security.lua: no `require`, `load`, `getmetatable`, `_G`...), then the script followed by a call
of `envoy_on_request(StreamHandle)`, and again of `envoy_on_response(StreamHandle)`, each in a fresh Lua
5.1 VM (gopher-lua). This test takes both files from that module and does the same in PUC Lua 5.1 on
the script exactly as `sovstack render` writes it into gov-fr's EnvoyExtensionPolicy. A control case
shows the sandbox is in force: a script that calls `require` is refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sovstack.infra.gitops import GitSource
from sovstack.infra.render import render_stack
from tests.e2e.sources import module_dir

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = "internal/gatewayapi/luavalidator"

#: Runs mocks, sandbox and code as separate chunks, as the validator's successive DoString calls do;
#: `loadfile` is kept before the sandbox removes it. Exit 0 when all three ran.
DRIVER = """
local loadfile, error, pcall, exit = loadfile, error, pcall, os.exit
print = function() end
for i = 1, 3 do
  local chunk, err = loadfile(arg[i])
  if not chunk then io.stderr:write(err, "\\n") exit(2) end
  local ok, failure = pcall(chunk)
  if not ok then io.stderr:write(tostring(failure), "\\n") exit(1) end
end
exit(0)
"""


def lua51() -> str:
    binary = shutil.which("lua5.1")
    if binary is None:
        message = "lua5.1 is not installed (apt-get install lua5.1)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    return binary


def validate(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Envoy Gateway's strict validation of `code`, for each entry point it defines."""
    folder = module_dir("envoy-gateway") / VALIDATOR
    (tmp_path / "driver.lua").write_text(DRIVER, encoding="utf-8")
    last = subprocess.CompletedProcess[str]([], 0, "", "")
    for entry in ("envoy_on_request", "envoy_on_response"):
        if entry not in code:
            continue
        (tmp_path / "code.lua").write_text(f"{code}\n{entry}(StreamHandle)", encoding="utf-8")
        last = subprocess.run(
            [
                lua51(),
                str(tmp_path / "driver.lua"),
                str(folder / "mocks.lua"),
                str(folder / "security.lua"),
                str(tmp_path / "code.lua"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if last.returncode != 0:
            return last
    return last


def rendered_script(tmp_path: Path) -> str:
    source = GitSource(repo_url="https://git.example.eu/platform/gitops.git", path="gov-fr", flavor="argocd")
    out = tmp_path / "render"
    render_stack(ROOT / "stacks" / "Pulumi.gov-fr.yaml", out, source, demo=True)
    policies = [
        doc
        for path in sorted(out.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("kind") == "EnvoyExtensionPolicy"
    ]
    assert policies, "gov-fr renders no EnvoyExtensionPolicy"
    (lua,) = policies[0]["spec"]["lua"]
    assert (lua["type"], lua["filterContext"]) == ("Inline", {"capture": "digest"})
    script: str = lua["inline"]
    return script


def test_the_rendered_filter_passes_envoy_gateways_strict_validation(tmp_path: Path) -> None:
    run = validate(rendered_script(tmp_path), tmp_path)
    assert run.returncode == 0, run.stderr


def test_the_validation_refuses_what_envoy_gateway_refuses(tmp_path: Path) -> None:
    run = validate('local b = require("bit")\nfunction envoy_on_request(h) end', tmp_path)
    assert run.returncode == 1 and "require" in run.stderr, run.stderr
    run = validate("function envoy_on_response(h) h:nothing() end", tmp_path)
    assert run.returncode == 1 and "nothing" in run.stderr, run.stderr
