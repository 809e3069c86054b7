"""The sample CI pipelines (docs/ci/) deploy through `sovstack preview|up`, which log in to the stack's own
backend and configure the policy pack from the spec; a raw `pulumi preview --policy-pack` would run the
pack with no configuration and on whatever backend the runner is logged in to."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CI = Path(__file__).resolve().parents[1] / "docs" / "ci"


def _scripts(node: object) -> list[str]:
    """Every shell line of a workflow: `run:` values (GitHub) and `script:` entries (GitLab)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "run" and isinstance(value, str):
                found.append(value)
            elif key == "script" and isinstance(value, list):
                found += [v for v in value if isinstance(v, str)]
            else:
                found += _scripts(value)
    elif isinstance(node, list):
        for item in node:
            found += _scripts(item)
    return found


@pytest.mark.parametrize("sample", ["github-actions.yml", "gitlab-ci.yml"])
def test_the_sample_pipelines_deploy_through_sovstack(sample: str) -> None:
    scripts = "\n".join(_scripts(yaml.safe_load((CI / sample).read_text(encoding="utf-8"))))
    assert "sovstack preview" in scripts
    assert "sovstack up" in scripts
    for raw in ("pulumi preview", "pulumi up", "--policy-pack", "pulumi login"):
        assert raw not in scripts, f"{sample} runs `{raw}` by hand"
