"""The content-capture Lua filter passes Envoy Gateway's own strict Lua validation.

Envoy Gateway refuses an EnvoyExtensionPolicy whose Lua fails its validator
(internal/gatewayapi/luavalidator in github.com/envoyproxy/gateway, the version the platform installs):
in the default `Strict` mode it runs the script in gopher-lua after Envoy Gateway's mocks of Envoy's
stream API and its sandbox (no `require`, `load`, `getmetatable`, `_G`...), calling
`envoy_on_request(StreamHandle)` and `envoy_on_response(StreamHandle)`. `eg-luavalidate`
(toolchain/go/eg-luavalidate, built from that module at the pinned version) calls that validator itself;
this test gives it the script exactly as `sovstack render` writes it into gov-fr's EnvoyExtensionPolicy.
Control cases show the validator is in force: scripts that call `require` or a function Envoy's stream
API does not have are refused.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from sovstack.infra.gitops import GitSource
from sovstack.infra.render import render_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def validator(e2e_tools: dict[str, Path]) -> Path:
    return e2e_tools["eg-luavalidate"]


def validate(validator: Path, code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "filter.lua"
    script.write_text(code, encoding="utf-8")
    return subprocess.run(
        [str(validator), str(script)], capture_output=True, text=True, timeout=60, check=False
    )


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


def test_the_rendered_filter_passes_envoy_gateways_strict_validation(validator: Path, tmp_path: Path) -> None:
    run = validate(validator, rendered_script(tmp_path), tmp_path)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    ("code", "refusal"),
    [
        (
            'local b = require("bit")\nfunction envoy_on_request(h) end',
            "failed to validate with envoy_on_request",
        ),
        ("function envoy_on_response(h) h:nothing() end", "failed to validate with envoy_on_response"),
        ("function on_request(h) end", "expected one of envoy_on_request() or envoy_on_response()"),
    ],
)
def test_the_validator_refuses_what_envoy_gateway_refuses(
    validator: Path, tmp_path: Path, code: str, refusal: str
) -> None:
    run = validate(validator, code, tmp_path)
    assert run.returncode == 1 and refusal in run.stderr, run.stderr
