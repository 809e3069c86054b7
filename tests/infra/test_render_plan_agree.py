"""Render and plan agree: the objects `render` writes are exactly the Kubernetes inputs `plan` registers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sovstack.infra.gitops import GitSource
from sovstack.infra.pipeline import load_stack
from sovstack.infra.plan import run_plan
from sovstack.infra.render import render_stack

EXAMPLES = ["industrial-eu", "gov-fr", "research-se", "airgap-onprem"]
#: Registered by the program but not rendered as manifests: the provider itself, the GPU Operator
#: release (an Argo CD Application in render) and node label patches (in cloud-resources.json).
NOT_MANIFESTS = (
    "pulumi:providers:kubernetes",
    "kubernetes:helm.sh/v3:Release",
    "kubernetes:core/v1:NodePatch",
)


def key(obj: dict) -> tuple[str, str, str]:
    return (obj["metadata"].get("namespace", ""), obj["kind"], obj["metadata"]["name"])


@pytest.mark.parametrize("stack", EXAMPLES)
def test_rendered_objects_equal_planned_kubernetes_inputs(stack: str, tmp_path: Path) -> None:
    out = tmp_path / stack
    render_stack(stack, out, GitSource(repo_url="https://git.example.eu/g.git", path="."), demo=True)
    rendered = {
        key(obj): obj
        for obj in (
            yaml.safe_load(p.read_text())
            for folder in ("namespaces", "manifests")
            for p in (out / folder).rglob("*.yaml")
            if p.name != "kustomization.yaml"
        )
    }
    result = run_plan(load_stack(stack))
    planned = {
        key(r.inputs): r.inputs
        for r in result.resources
        if r.custom and r.type.startswith("kubernetes:") and r.type not in NOT_MANIFESTS
    }
    assert sorted(rendered) == sorted(planned)
    for k, obj in rendered.items():
        # Pulumi's mock engine returns integers as floats; compare through JSON numbers.
        assert json.loads(json.dumps(obj)) == json.loads(json.dumps(planned[k]), parse_float=_int_if_whole), k

    charts = {
        a
        for a in (out / "argocd/apps").iterdir()
        if not a.name.endswith(("-manifests.yaml", "-namespaces.yaml"))
    }
    releases = [r for r in result.resources if r.type == "kubernetes:helm.sh/v3:Release"]
    assert len(charts) == len(releases)
    cloud = json.loads((out / "cloud-resources.json").read_text())["resources"]
    planned_cloud = [
        r for r in result.resources if r.custom and not r.type.startswith(("kubernetes:", "pulumi:"))
    ]
    # Cluster resources carry their Pulumi logical names; buckets their real bucket name.
    assert {r["type"] for r in cloud} <= {r.type for r in planned_cloud}
    clusters = {(r["type"], r["name"]) for r in cloud if "protect" in r}
    assert clusters <= {(r.type, r.name) for r in planned_cloud}


def _int_if_whole(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value
