"""`sovstack plan`: the real program under the mock engine, as text and JSON, refusals and secrets.

Each example is planned once per output format (module-scoped fixtures); one run goes through a real
subprocess to check the console entry point, its exit code and its JSON.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from sovstack.infra.cli import app
from sovstack.infra.plan import SECRET
from sovstack.infra.stackfile import CUSTOMER_KEY
from tests.infra.conftest import example_customer

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ("industrial-eu", "gov-fr", "research-se", "airgap-onprem")

#: Lines `sovstack plan` prints for the cluster resources of each backend (type, logical name).
CLUSTER_LINES: dict[str, list[tuple[str, str]]] = {
    "industrial-eu": [
        ("scaleway:kubernetes/cluster:Cluster", "industrial-eu-gpu-cluster"),
        ("scaleway:kubernetes/pool:Pool", "industrial-eu-gpu-pool-system-fr-par-2"),
        ("scaleway:kubernetes/pool:Pool", "industrial-eu-gpu-pool-h100-fr-par-2"),
        ("scaleway:kubernetes/acl:Acl", "industrial-eu-gpu-acl"),
    ],
    "gov-fr": [
        ("ovh:CloudProject/kube:Kube", "gov-fr-gpu-cluster"),
        ("ovh:CloudProject/kubeNodePool:KubeNodePool", "gov-fr-gpu-pool-system-gra11"),
        ("ovh:CloudProject/kubeNodePool:KubeNodePool", "gov-fr-gpu-pool-l40s-gra11"),
        ("ovh:CloudProject/kubeIpRestrictions:KubeIpRestrictions", "gov-fr-gpu-api-ips"),
    ],
    "research-se": [
        ("talos:machine/secrets:Secrets", "research-se-gpu-secrets"),
        ("talos:machine/configurationApply:ConfigurationApply", "research-se-gpu-apply-cp-1"),
        ("talos:machine/configurationApply:ConfigurationApply", "research-se-gpu-apply-gpu-2"),
        ("talos:machine/bootstrap:Bootstrap", "research-se-gpu-bootstrap"),
        ("talos:cluster/kubeconfig:Kubeconfig", "research-se-gpu-kubeconfig"),
    ],
    "airgap-onprem": [
        ("pulumi:providers:kubernetes", "airgap-onprem-gpu-k8s"),
        ("kubernetes:core/v1:NodePatch", "airgap-onprem-gpu-node-gpu-a1"),
        ("kubernetes:core/v1:NodePatch", "airgap-onprem-gpu-node-gpu-b1"),
        # The platform layer installs the operator the spec turns on for this existing cluster.
        ("kubernetes:helm.sh/v3:Release", "airgap-onprem-platform-gpu-operator"),
    ],
}
CLOUD_PACKAGES = {"scaleway", "ovh", "talos"}
#: Packages of the GpuCluster's children: its backend and the providers (`pulumi`), plus node label
#: patches on an existing cluster. Charts are the platform layer's.
CLUSTER_PACKAGES = {
    "industrial-eu": {"scaleway", "pulumi"},
    "gov-fr": {"ovh", "pulumi"},
    "research-se": {"talos", "pulumi"},
    "airgap-onprem": {"pulumi", "kubernetes"},
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


#: One resource line of the text plan: ` +   │  ├─ TYPE   NAME   create   INFO`.
ROW = re.compile(r"^ \+   [│├└─ ]*(?P<type>\S+)\s+(?P<name>\S+)\s+create(?:\s+(?P<info>.*))?$")


def rows(text: str) -> list[tuple[str, str]]:
    """(type, name) of every resource line of a text plan, in order."""
    return [(m["type"], m["name"]) for m in map(ROW.match, text.splitlines()) if m]


def write_config(folder: Path, name: str, config: dict[str, Any]) -> Path:
    path = folder / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def text_plans() -> dict[str, Result]:
    return {name: invoke("plan", name) for name in EXAMPLES}


@pytest.fixture(scope="module")
def json_plans() -> dict[str, dict[str, Any]]:
    plans = {}
    for name in EXAMPLES:
        result = invoke("plan", name, "--json")
        assert result.exit_code == 0, result.stderr
        plans[name] = json.loads(result.stdout)
    return plans


# ------------------------------------------------------------------------------------------- examples
@pytest.mark.parametrize("example", EXAMPLES)
def test_plan_prints_the_cluster_resources_of_the_backend(
    text_plans: dict[str, Result], example: str
) -> None:
    result = text_plans[example]
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"Previewing stack {example} (mock engine, offline: what `pulumi up` would register)"
    listed = rows(result.stdout)
    for typ, name in CLUSTER_LINES[example]:
        assert (typ, name) in listed, f"{typ} {name} missing from the plan"
    assert ("sovstack:cluster:GpuCluster", f"{example}-gpu") in listed
    assert "Resources:" in lines
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("example", EXAMPLES)
def test_plan_lists_only_the_backend_of_the_stack(
    json_plans: dict[str, dict[str, Any]], example: str
) -> None:
    plan = json_plans[example]
    cluster_urn = next(r["urn"] for r in plan["resources"] if r["type"] == "sovstack:cluster:GpuCluster")
    packages = {r["type"].split(":")[0] for r in plan["resources"] if r["parent"] == cluster_urn}
    assert packages == CLUSTER_PACKAGES[example]
    # No other cloud's resources anywhere in the stack.
    everywhere = {r["type"].split(":")[0] for r in plan["resources"]}
    assert everywhere & CLOUD_PACKAGES == CLUSTER_PACKAGES[example] & CLOUD_PACKAGES


def test_airgap_plan_has_only_kubernetes_cluster_resources(json_plans: dict[str, dict[str, Any]]) -> None:
    plan = json_plans["airgap-onprem"]
    cluster_urn = next(r["urn"] for r in plan["resources"] if r["type"] == "sovstack:cluster:GpuCluster")
    types = sorted({r["type"] for r in plan["resources"] if r["parent"] == cluster_urn})
    assert types == ["kubernetes:core/v1:NodePatch", "pulumi:providers:kubernetes"]
    # The only non-Kubernetes resources of the stack are the audit sink's, on the operator's MinIO.
    others = sorted(
        r["type"]
        for r in plan["resources"]
        if r["custom"] and not r["type"].startswith(("kubernetes:", "pulumi:"))
    )
    assert others == ["minio:index/s3Bucket:S3Bucket", "minio:index/s3BucketVersioning:S3BucketVersioning"]


@pytest.mark.parametrize("example", EXAMPLES)
def test_plan_json_shape(json_plans: dict[str, dict[str, Any]], example: str) -> None:
    plan = json_plans[example]
    assert set(plan) == {"stack", "resources", "outputs", "placeholders", "summary"}
    assert plan["stack"] == example
    assert sum(plan["summary"].values()) == len(plan["resources"])
    for resource in plan["resources"]:
        assert set(resource) == {
            "urn",
            "type",
            "name",
            "parent",
            "provider",
            "custom",
            "inputs",
            "protect",
            "ignoreChanges",
            "dependsOn",
        }
        assert resource["urn"].startswith(f"urn:pulumi:{example}::sovstack::")
        assert resource["urn"].endswith(f"::{resource['name']}")
    assert plan["outputs"]["customer"] == example
    assert plan["outputs"]["residency"]["failed"] == 0
    assert plan["placeholders"] == (["sovstack:kubeconfig"] if example == "airgap-onprem" else [])


def test_text_and_json_plans_agree(
    text_plans: dict[str, Result], json_plans: dict[str, dict[str, Any]]
) -> None:
    for example in EXAMPLES:
        text = text_plans[example].stdout
        resources = json_plans[example]["resources"]
        custom = sum(r["custom"] for r in resources)
        assert (
            f"    + {len(resources)} to create ({custom} resources, {len(resources) - custom} components; "
            f"{sum(r['protect'] for r in resources)} protected)"
        ) in text.splitlines()
        # Two separate runs: the plan is listed in the same order every time (registration order is not).
        assert rows(text) == [(r["type"], r["name"]) for r in resources]


@pytest.mark.parametrize("example", EXAMPLES)
def test_plan_lists_parents_before_children(json_plans: dict[str, dict[str, Any]], example: str) -> None:
    resources = json_plans[example]["resources"]
    seen = {resources[0]["urn"]}
    for r in resources[1:]:
        assert r["parent"] in seen, f"{r['name']} listed before its parent"
        seen.add(r["urn"])
    assert resources[0]["type"] == "sovstack:stack:SovereignStack"


def test_plan_through_a_real_subprocess() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sovstack.infra.cli", "plan", "gov-fr", "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    plan = json.loads(completed.stdout)
    assert plan["stack"] == "gov-fr"
    assert plan["summary"]["ovh:CloudProject/kube:Kube"] == 1
    assert plan["summary"]["ovh:CloudProject/kubeNodePool:KubeNodePool"] == 2
    assert plan["outputs"]["kubeconfig"] == SECRET


def test_a_refused_plan_exits_1_through_the_console_entry_point(tmp_path: Path) -> None:
    # The entry point skips the interpreter's teardown once Pulumi is loaded: the exit code and
    # every line written before must still come out.
    customer = example_customer("gov-fr")
    for model in customer["models"]:
        model["weights"]["s3"]["endpoint"] = "https://s3.de.io.cloud.ovh.net"
    customer["network"]["egress"][0]["host"] = "s3.de.io.cloud.ovh.net"
    path = write_config(tmp_path, "gov-fr", {CUSTOMER_KEY: customer})
    completed = subprocess.run(
        [sys.executable, "-m", "sovstack.infra.cli", "plan", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1
    assert completed.stderr.splitlines()[0] == f"{path}: 3 residency rule(s) broken; nothing was registered:"
    assert len(completed.stderr.splitlines()) == 4


# ------------------------------------------------------------------------------------------- refusals
def test_plan_of_an_invalid_stack_exits_2_with_the_path_line(tmp_path: Path) -> None:
    customer = example_customer("gov-fr")
    customer["models"][0]["pool"] = "h100"
    path = write_config(tmp_path, "gov-fr", {CUSTOMER_KEY: customer})
    result = invoke("plan", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: sovstack:customer.models[0].pool: ")
    assert "h100" in lines[0]
    assert "Traceback" not in result.stderr


def test_plan_of_an_invalid_stack_json_lists_the_problem(tmp_path: Path) -> None:
    customer = example_customer("gov-fr")
    del customer["cluster"]["region"]
    path = write_config(tmp_path, "gov-fr", {CUSTOMER_KEY: customer})
    result = invoke("plan", str(path), "--json")
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["valid"] is False
    assert {p["file"] for p in payload["problems"]} == {str(path)}
    assert "Traceback" not in result.stdout + result.stderr


def test_plan_of_a_residency_breaking_stack_exits_1(tmp_path: Path) -> None:
    customer = example_customer("gov-fr")
    # A valid spec (the endpoint is declared egress) whose weights live in OVHcloud's Frankfurt region.
    for model in customer["models"]:
        model["weights"]["s3"]["endpoint"] = "https://s3.de.io.cloud.ovh.net"
    customer["network"]["egress"][0]["host"] = "s3.de.io.cloud.ovh.net"
    path = write_config(tmp_path, "gov-fr", {CUSTOMER_KEY: customer})
    result = invoke("plan", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"{path}: 3 residency rule(s) broken; nothing was registered:"
    where = f"{path}: sovstack:customer."
    assert lines[1] == (
        f"{where}models[0].weights.s3.endpoint: [FAIL] storage.location: weights storage "
        "s3.de.io.cloud.ovh.net ovh DE1 (Frankfurt, DE, EU) is in DE; policy allows FR"
    )
    assert lines[2].startswith(f"{where}models[1].weights.s3.endpoint: [FAIL] storage.location: ")
    assert lines[3].startswith(f"{where}network.egress[0].host: [FAIL] egress.destination: ")
    assert len(lines) == 4
    assert "Traceback" not in result.stderr


# -------------------------------------------------------------------------------------------- secrets
def _kubeconfig_text_absent(text: str) -> None:
    # Neither the placeholder nor the mock cluster's kubeconfig may leak into a plan.
    assert "kind: Config" not in text
    assert "current-context" not in text


@pytest.mark.parametrize("example", EXAMPLES)
def test_kubeconfig_is_a_secret(
    json_plans: dict[str, dict[str, Any]], text_plans: dict[str, Result], example: str
) -> None:
    plan = json_plans[example]
    assert plan["outputs"]["kubeconfig"] == SECRET
    provider = next(r for r in plan["resources"] if r["type"] == "pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"] == SECRET
    _kubeconfig_text_absent(json.dumps(plan))
    _kubeconfig_text_absent(text_plans[example].stdout)
    assert f"    kubeconfig: {json.dumps(SECRET)}" in text_plans[example].stdout.splitlines()


def test_planted_secret_config_never_reaches_the_plan(tmp_path: Path) -> None:
    config = {
        CUSTOMER_KEY: example_customer("airgap-onprem"),
        "sovstack:kubeconfig": {"secure": "v1:SOMECIPHERTEXT"},
    }
    path = write_config(tmp_path, "airgap-onprem", config)
    result = invoke("plan", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    assert "SOMECIPHERTEXT" not in result.stdout + result.stderr
    plan = json.loads(result.stdout)
    assert plan["placeholders"] == []  # the configured secret was used, not the placeholder
    provider = next(r for r in plan["resources"] if r["type"] == "pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"] == SECRET
    assert plan["outputs"]["kubeconfig"] == SECRET
    text = invoke("plan", str(path))
    assert text.exit_code == 0
    assert "SOMECIPHERTEXT" not in text.stdout + text.stderr


def test_the_plan_shows_autoscaled_pools_leave_their_size_to_the_autoscaler(
    json_plans: dict[str, dict[str, Any]],
) -> None:
    """The engine matches ignoreChanges against the schema's names: the plan must show `desiredNodes`
    (translated by the SDK from the Python name), or an `up` would scale the pool back."""
    pools = [
        r
        for r in json_plans["gov-fr"]["resources"]
        if r["type"] == "ovh:CloudProject/kubeNodePool:KubeNodePool"
    ]
    assert pools and all(r["ignoreChanges"] == ["desiredNodes"] for r in pools)
    (cluster,) = [r for r in json_plans["gov-fr"]["resources"] if r["type"] == "ovh:CloudProject/kube:Kube"]
    assert cluster["ignoreChanges"] == []  # a version bump is an update the cluster applies


def test_plan_shows_a_rollouts_traffic_split(tmp_path: Path) -> None:
    customer = example_customer("industrial-eu")
    customer["platform"]["imageRegistry"] = "rg.fr-par.scw.cloud/sovstack-mirror"
    customer["models"][0]["route"] = {
        "hostname": "llm.industrial.example.eu",
        "gatewayName": "public",
        "gatewayNamespace": "gateway",
    }
    customer["models"][0]["rollout"] = {"weight": 25, "replicas": 1}
    path = tmp_path / "Pulumi.industrial-eu.yaml"
    path.write_text(yaml.safe_dump({"config": {CUSTOMER_KEY: customer}}, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 0, result.stderr
    out = result.stdout.splitlines()
    start = out.index("Traffic splits (HTTPRoute weighted backends):")
    assert out[start + 1] == (
        "    industrial-eu-serving/industrial-eu-mistral-small: industrial-eu-mistral-small 75%, "
        "industrial-eu-mistral-small-canary 25%"
    )
    assert out[start + 2] == ""  # the split is the only weighted route
