"""`sovstack plan` as a reviewer reads it: the tree with markers and summary, `--show-inputs`, and
`--compare OLD.json`, what a change adds, removes and modifies, input path by input path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from sovstack.infra.cli import app
from sovstack.infra.plan_view import (
    MOCK_NOTE,
    compare_plans,
    flatten,
    format_comparison,
    format_tree,
    read_plan_json,
)
from sovstack.infra.stackfile import CUSTOMER_KEY
from tests.infra.conftest import example_customer

STACK = "urn:pulumi:s::sovstack::pulumi:pulumi:Stack::sovstack-s"


def resource(name: str, typ: str, parent: str = STACK, **fields: Any) -> dict[str, Any]:
    urn = f"urn:pulumi:s::sovstack::{typ}::{name}"
    return {
        "urn": urn, "type": typ, "name": name, "parent": parent, "provider": "", "custom": True,
        "inputs": {}, "protect": False, "ignoreChanges": [], "dependsOn": [], **fields,
    }  # fmt: skip


def small_plan() -> dict[str, Any]:
    component = resource("s-gpu", "sovstack:cluster:GpuCluster", custom=False)
    pool = resource(
        "s-gpu-pool", "scaleway:kubernetes/pool:Pool", component["urn"], protect=True,
        ignoreChanges=["size"], inputs={"size": 1.0, "maxSize": 3.0, "tags": ["a", "b"]},
    )  # fmt: skip
    cluster = resource("s-gpu-cluster", "scaleway:kubernetes/cluster:Cluster", component["urn"], protect=True)
    serving = resource("s-model", "sovstack:serving:ModelServing", custom=False)
    deployment = resource(
        "s-model/deploy", "kubernetes:apps/v1:Deployment", serving["urn"],
        inputs={"metadata": {"labels": {"app.kubernetes.io/name": "m"}}, "spec": {"replicas": 2.0}},
    )  # fmt: skip
    return {
        "stack": "s",
        "resources": [component, cluster, pool, serving, deployment],
        "outputs": {"customer": "s"},
        "placeholders": [],
    }


# --- the tree ------------------------------------------------------------------------------------------------


def test_tree_nests_resources_under_their_components_with_markers_and_summary() -> None:
    lines = format_tree(small_plan()).splitlines()
    assert lines[0] == "Previewing stack s (mock engine, offline: what `pulumi up` would register)"
    body = [line.rstrip() for line in lines[3:8]]
    assert [" ".join(line.split()) for line in body] == [
        "+ sovstack:cluster:GpuCluster s-gpu create",
        "+ ├─ scaleway:kubernetes/cluster:Cluster s-gpu-cluster create protect",
        "+ └─ scaleway:kubernetes/pool:Pool s-gpu-pool create protect; ignoreChanges: size",
        "+ sovstack:serving:ModelServing s-model create",
        "+ └─ kubernetes:apps/v1:Deployment s-model/deploy create",
    ]
    assert "    + 5 to create (3 resources, 2 components; 2 protected)" in lines
    assert lines[-1] == MOCK_NOTE
    assert "replicas" not in "\n".join(lines)


def test_deeper_trees_keep_the_guides_of_open_branches() -> None:
    plan = small_plan()
    component = plan["resources"][0]
    inner = resource("s-gpu-inner", "sovstack:x:Inner", component["urn"], custom=False)
    leaf = resource("s-gpu-leaf", "kubernetes:core/v1:ConfigMap", inner["urn"])
    plan["resources"][1:1] = [inner, leaf]
    labels = [line.split()[1:4] for line in format_tree(plan).splitlines()[3:7]]
    assert labels[1] == ["├─", "sovstack:x:Inner", "s-gpu-inner"]
    assert labels[2] == ["│", "└─", "kubernetes:core/v1:ConfigMap"]


def test_show_inputs_prints_every_input_path_in_full() -> None:
    text = format_tree(small_plan(), show_inputs=True)
    assert '         metadata.labels["app.kubernetes.io/name"]: "m"' in text.splitlines()
    assert "         spec.replicas: 2.0" in text.splitlines()
    assert '         tags[1]: "b"' in text.splitlines()


def test_flatten_names_paths_as_a_reader_writes_them() -> None:
    assert flatten({"a": {"b": [1, {"c": 2}], "x.y/z": 3, "empty": {}}}) == {
        "a.b[0]": 1,
        "a.b[1].c": 2,
        'a["x.y/z"]': 3,
        "a.empty": {},
    }


# --- compare -------------------------------------------------------------------------------------------------


def test_compare_lists_additions_removals_and_input_changes() -> None:
    old = small_plan()
    new = copy.deepcopy(old)
    new["resources"][2]["inputs"]["maxSize"] = 5.0
    new["resources"][2]["inputs"]["tags"].append("c")
    del new["resources"][4]
    new["resources"].append(resource("s-extra", "kubernetes:core/v1:ConfigMap"))
    diff = compare_plans(old, new)
    assert [r["name"] for r in diff["added"]] == ["s-extra"]
    assert [r["name"] for r in diff["removed"]] == ["s-model/deploy"]
    [pool] = diff["modified"]
    assert pool["name"] == "s-gpu-pool"
    assert pool["changes"] == [
        {"op": "change", "path": "maxSize", "old": 3.0, "new": 5.0, "ignored": False},
        {"op": "add", "path": "tags[2]", "new": "c", "ignored": False},
    ]
    assert diff["protectedChanges"] == [pool["urn"]]
    assert diff["summary"] == {"add": 1, "remove": 1, "modify": 1, "unchanged": 3}
    text = format_comparison(diff, "main.json").splitlines()
    assert " ~ scaleway:kubernetes/pool:Pool  s-gpu-pool  ! PROTECTED" in text
    assert "       ~ maxSize: 3 => 5" in text
    assert '       + tags[2]: "c"' in text
    assert " - kubernetes:apps/v1:Deployment  s-model/deploy" in text
    assert "! 1 protected resource(s) changed: review them first" in text


def test_compare_notes_a_change_the_engine_ignores_and_a_protected_removal() -> None:
    old = small_plan()
    new = copy.deepcopy(old)
    new["resources"][2]["inputs"]["size"] = 4.0
    del new["resources"][1]
    diff = compare_plans(old, new)
    assert diff["modified"][0]["changes"] == [
        {"op": "change", "path": "size", "old": 1.0, "new": 4.0, "ignored": True}
    ]
    text = format_comparison(diff, "old.json")
    assert "~ size: 1 => 4  (in ignoreChanges: the engine keeps the live value)" in text
    assert (
        "- scaleway:kubernetes/cluster:Cluster  s-gpu-cluster  ! PROTECTED: the engine refuses to delete it"
        in text
    )


def test_identical_plans_compare_to_no_changes() -> None:
    diff = compare_plans(small_plan(), small_plan())
    assert diff["summary"] == {"add": 0, "remove": 0, "modify": 0, "unchanged": 5}
    assert " no changes" in format_comparison(diff, "old.json").splitlines()


def test_a_file_that_is_not_a_plan_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"stack": "s"}', encoding="utf-8")
    with pytest.raises(ValueError, match="not the output of `sovstack plan --json`"):
        read_plan_json(bad)
    result = CliRunner().invoke(app, ["plan", "gov-fr", "--compare", str(bad)])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"--compare: {bad}: not the output of `sovstack plan --json` (no resources with a urn)\n"
    )
    missing = CliRunner().invoke(app, ["plan", "gov-fr", "--compare", str(tmp_path / "none.json")])
    assert missing.exit_code == 2
    assert missing.stderr.startswith(f"--compare: {tmp_path / 'none.json'}: cannot read: ")


# --- end to end: a model added and a pool resized ------------------------------------------------------------


def _write(folder: Path, customer: dict[str, Any]) -> Path:
    folder.mkdir()
    path = folder / "Pulumi.industrial-eu.yaml"
    path.write_text(yaml.safe_dump({"config": {CUSTOMER_KEY: customer}}, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Result]:
    root = tmp_path_factory.mktemp("compare")
    base = example_customer("industrial-eu")
    changed = copy.deepcopy(base)
    changed["cluster"]["gpuPools"][0]["maxNodes"] = 5
    model = copy.deepcopy(changed["models"][1])
    # Codestral's MNPL would need a grant for industrial-eu's production use (model.licence)
    changed["licensing"]["grants"].append({"model": "codestral-22b-v0-1", "reference": "MAI-2026-IND-015"})
    model.update(name="codestral", model="codestral-22b-v0-1")
    model["weights"]["s3"]["url"] = "s3://industrial-eu-weights/codestral/"
    changed["models"].append(model)
    old = CliRunner().invoke(app, ["plan", str(_write(root / "main", base)), "--json"])
    assert old.exit_code == 0, old.stderr
    (root / "main.json").write_text(old.stdout, encoding="utf-8")
    path = str(_write(root / "branch", changed))
    as_json = CliRunner().invoke(app, ["plan", path, "--compare", str(root / "main.json"), "--json"])
    as_text = CliRunner().invoke(app, ["plan", path, "--compare", str(root / "main.json")])
    return as_json, as_text


def test_compare_shows_exactly_the_model_added_and_the_pool_resized(
    comparison: tuple[Result, Result],
) -> None:
    as_json, _ = comparison
    assert as_json.exit_code == 0, as_json.stderr
    diff = json.loads(as_json.stdout)
    assert diff["removed"] == []
    # The new model: its component and what it registers, nothing else.
    assert sorted((r["type"], r["name"]) for r in diff["added"]) == [
        ("kubernetes:apps/v1:Deployment", "industrial-eu-codestral/industrial-eu-serving/industrial-eu-codestral"),
        ("kubernetes:core/v1:Service", "industrial-eu-codestral/industrial-eu-serving/industrial-eu-codestral"),
        ("kubernetes:policy/v1:PodDisruptionBudget", "industrial-eu-codestral/industrial-eu-serving/industrial-eu-codestral"),
        ("sovstack:serving:ModelServing", "industrial-eu-codestral"),
    ]  # fmt: skip
    modified = {m["name"]: m for m in diff["modified"]}
    # The pool resized (a protected resource: flagged), and the GPU quota that follows every model's replicas.
    assert set(modified) == {
        "industrial-eu-gpu-pool-h100-fr-par-2",
        "industrial-eu-network/industrial-eu-serving/sovstack-quota",
    }
    pool = modified["industrial-eu-gpu-pool-h100-fr-par-2"]
    assert pool["changes"] == [{"op": "change", "path": "maxSize", "old": 3.0, "new": 5.0, "ignored": False}]
    assert diff["protectedChanges"] == [pool["urn"]]
    quota = modified["industrial-eu-network/industrial-eu-serving/sovstack-quota"]
    assert [c["path"] for c in quota["changes"]] == ['spec.hard["requests.nvidia.com/gpu"]']
    assert diff["summary"]["add"] == 4 and diff["summary"]["modify"] == 2


def test_compare_text_reads_like_a_review(comparison: tuple[Result, Result]) -> None:
    _, as_text = comparison
    assert as_text.exit_code == 0, as_text.stderr
    lines = as_text.stdout.splitlines()
    assert " + sovstack:serving:ModelServing  industrial-eu-codestral" in lines
    assert " ~ scaleway:kubernetes/pool:Pool  industrial-eu-gpu-pool-h100-fr-par-2  ! PROTECTED" in lines
    assert "       ~ maxSize: 3 => 5" in lines
    assert '    + endpoints.codestral.servedModelName: "codestral"' in lines
    assert lines[lines.index("Resources:") + 1 : lines.index("Resources:") + 4] == [
        "    + 4 to add",
        "    ~ 2 to modify",
        "    - 0 to remove",
    ]
    assert "! 1 protected resource(s) changed: review them first" in lines
    assert lines[-1] == MOCK_NOTE
