"""Tests for `sovstack validate`, `regions`, `schema` and `capacity` through typer's CliRunner, plus
real subprocesses for exit codes, stderr and the promise that validate never imports Pulumi."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sovstack.infra.cli import app
from tests.infra.conftest import EXAMPLES, REPO_ROOT, STACKS_DIR, Customer, StackWriter

DIGEST = "@sha256:" + "1" * 64
SOVSTACK = Path(sys.executable).parent / "sovstack"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def validate(path: Path, *options: str) -> Result:
    result = invoke("validate", str(path), *options)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def lines(text: str) -> list[str]:
    return text.splitlines()


def refusals(text: str) -> list[str]:
    """The lines of stderr but the example's own placeholders (tested apart, above)."""
    return [line for line in text.splitlines() if "[placeholder]" not in line]


# --- the examples ---------------------------------------------------------------------------------------


#: The placeholders each example keeps on purpose (a reader replaces them), field by field.
EXAMPLE_PLACEHOLDERS = {
    "industrial-eu": [
        "sovstack:customer.cluster.scaleway.apiServerAllowedCidrs[0]",
        "sovstack:customer.models[0].weights.s3.manifestSha256",
    ],
    "gov-fr": [
        "sovstack:customer.cluster.ovh.serviceName",
        "sovstack:customer.models[0].weights.s3.manifestSha256",
        "sovstack:customer.models[1].weights.s3.manifestSha256",
    ],
    "research-se": [
        "sovstack:customer.cluster.talos.installerImage",
        "sovstack:customer.cluster.talos.systemInstallerImage",
        "sovstack:customer.models[0].weights.s3.manifestSha256",
        "sovstack:customer.models[1].weights.pvc.manifestSha256",
    ],
    "airgap-onprem": [
        "sovstack:customer.models[0].weights.pvc.manifestSha256",
        "sovstack:customer.models[1].weights.s3.manifestSha256",
    ],
}
#: A real-looking value for each placeholder field: what an operator fills in.
FILLED = {
    "apiServerAllowedCidrs": ["85.10.0.0/28"],
    "serviceName": "5a1e9c3b7d2f4e6a8b0c1d2e3f4a5b6c",
    "installerImage": "registry.se-sto-dc1.sovstack.internal/mirror/talos-installer-nvidia:v1.14.0"
    "@sha256:" + "7e" * 32,
    "systemInstallerImage": "registry.se-sto-dc1.sovstack.internal/mirror/siderolabs/installer:v1.14.0"
    "@sha256:" + "3c" * 32,
    "manifestSha256": "sha256:" + "5d" * 32,
}


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_are_valid_by_name(example: str) -> None:
    result = invoke("validate", example)
    assert result.exit_code == 0, result.stderr
    file = f"{os.path.relpath(STACKS_DIR, Path.cwd())}/Pulumi.{example}.yaml"
    [line] = [x for x in lines(result.output) if ": valid (" in x]
    assert line.startswith(f"{file}: valid (")
    assert "residency checks passed, policy " in line
    # Each placeholder is a warning line with its field path; the verdict says the stack cannot deploy.
    warned = [x.split(": ")[1] for x in lines(result.stderr) if "[placeholder]" in x]
    assert warned == EXAMPLE_PLACEHOLDERS[example]
    count = len(warned)
    assert line.endswith(f"; not deployable: {count} placeholder{'s' if count != 1 else ''}") == bool(count)
    strict = invoke("validate", example, "--strict")
    assert strict.exit_code == (1 if count else 0), strict.output


def _fill(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in FILLED:
                value[key] = FILLED[key]
            else:
                _fill(item)
    elif isinstance(value, list):
        for item in value:
            _fill(item)


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_with_placeholders_filled_in_are_deployable(write_stack: StackWriter, example: str) -> None:
    path = write_stack(example, _fill)
    result = validate(path, "--strict", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["deployable"], payload["placeholders"]) == (True, [])
    report = json.loads(invoke("report", str(path), "--format", "json").stdout)
    assert report["deployable"] == {"deployable": True, "summary": "deployable", "placeholders": []}


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_copied_to_a_file_are_valid(write_stack: StackWriter, example: str) -> None:
    path = write_stack(example)
    result = validate(path)
    assert result.exit_code == 0, result.stderr
    assert f"{path}: valid (" in result.output


def test_several_stacks_exit_with_the_worst_code(write_stack: StackWriter, tmp_path: Path) -> None:
    good = write_stack("gov-fr")
    result = invoke("validate", str(good), str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2
    assert f"{good}: valid (" in result.stdout
    assert f"{tmp_path / 'missing.yaml'}: no such stack file" in result.stderr


def test_verbose_lists_passing_findings(write_stack: StackWriter) -> None:
    path = write_stack("gov-fr")
    result = validate(path, "--verbose")
    assert result.exit_code == 0
    assert (
        f"{path}: sovstack:customer.cluster.region: [ok] region.country: "
        "region ovh GRA11 (Gravelines, FR, EU) is in FR; policy allows FR"
    ) in lines(result.stdout)


# --- invalid input: exit 2 with the offending path ------------------------------------------------------


def test_unknown_top_level_key(write_stack: StackWriter) -> None:
    path = write_stack("industrial-eu", lambda c: c.update(colour="red"))
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.colour: unknown key (not part of the spec; see `sovstack schema`)"
    ]
    assert result.stdout == ""


def test_unknown_nested_key(write_stack: StackWriter) -> None:
    path = write_stack("industrial-eu", lambda c: c["cluster"]["gpuPools"][0].update(colour="red"))
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.cluster.gpuPools[0].colour: unknown key (not part of the spec; see `sovstack schema`)"
    ]


def test_gpu_type_not_offered_in_the_pools_zone(write_stack: StackWriter) -> None:
    path = write_stack("industrial-eu", lambda c: c["cluster"]["gpuPools"][0].update(zones=["fr-par-1"]))
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.cluster.gpuPools[0].gpuType: H100 is not offered in zone fr-par-1 "
        "(offered: none; source: Scaleway docs products-availability)"
    ]


# --- facts that expire (components/data/kubernetes.yaml, judged against SOVSTACK_TODAY) ---------------------
SCW_VERSIONS = (
    "(source: https://www.scaleway.com/en/docs/kubernetes/reference-content/version-support-policy/, "
    "retrieved 2026-12-01)"
)


def test_a_kubernetes_version_that_can_no_longer_be_created_is_refused(write_stack: StackWriter) -> None:
    path = write_stack("industrial-eu", lambda c: c["cluster"].update(kubernetesVersion="1.31"))
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.cluster.kubernetesVersion: scaleway Kubernetes 1.31 can no longer be "
        f"created: it was removed from cluster creation on 2025-12-02 {SCW_VERSIONS}"
    ]


def test_a_version_near_its_end_warns_and_still_validates(
    write_stack: StackWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOVSTACK_TODAY", "2027-05-01")
    path = write_stack("industrial-eu")
    warning = (
        f"{path}: sovstack:customer.cluster.kubernetesVersion: warning: scaleway Kubernetes 1.36 is removed "
        f"from cluster creation on 2027-07-07, in 67 days: plan the upgrade {SCW_VERSIONS}"
    )
    result = validate(path)
    assert result.exit_code == 0
    # The example's placeholders follow the warning, each on a line of its own.
    assert lines(result.stderr)[0] == warning
    assert all("[placeholder]" in line for line in lines(result.stderr)[1:])
    assert result.stdout.startswith(f"{path}: valid (")
    payload = json.loads(validate(path, "--json").stdout)
    assert payload["exitCode"] == 0 and payload["problems"] == []
    assert [f"{w['file']}: {w['path']}: {w['message']}" for w in payload["warnings"]] == [warning]


def test_the_same_stack_is_refused_once_the_day_has_passed(
    write_stack: StackWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOVSTACK_TODAY", "2027-07-07")
    path = write_stack("industrial-eu")
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.cluster.kubernetesVersion: scaleway Kubernetes 1.36 can no longer be "
        f"created: it was removed from cluster creation on 2027-07-07 {SCW_VERSIONS}"
    ]


def test_a_today_that_is_not_a_date_is_bad_input(
    write_stack: StackWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOVSTACK_TODAY", "tomorrow")
    path = write_stack("industrial-eu")
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.cluster.kubernetesVersion: SOVSTACK_TODAY='tomorrow' is not a date like "
        "2026-12-01"
    ]


def test_kapsule_refuses_the_kosmos_cni(write_stack: StackWriter) -> None:
    path = write_stack("industrial-eu", lambda c: c["cluster"]["scaleway"].update(cni="kilo"))
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.cluster.scaleway.cni: Input should be 'cilium' or 'calico'"
    ]


def move_gov_fr_to_de1(customer: Customer) -> None:
    cluster = customer["cluster"]
    cluster["region"] = "DE1"
    cluster["systemPool"]["zones"] = ["DE1"]
    cluster["gpuPools"][0]["zones"] = ["DE1"]


def test_region_without_the_pools_gpu_is_invalid_before_residency(write_stack: StackWriter) -> None:
    """OVHcloud DE1 offers no catalogued GPU, so moving gov-fr there fails as a spec problem (exit 2),
    before the residency rules (which would also refuse Germany under fr-sovereign) are applied."""
    path = write_stack("gov-fr", move_gov_fr_to_de1)
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.cluster.gpuPools[0].gpuType: L40S is not offered in zone DE1 "
        "(offered: none; source: ovh/docs MKS GPU flavors (only T2, not catalogued))"
    ]


def test_model_naming_a_missing_pool(write_stack: StackWriter) -> None:
    path = write_stack("gov-fr", lambda c: c["models"][0].update(pool="h100"))
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.models[0].pool: no GPU pool named 'h100' (pools: l40s)"
    ]


def test_model_too_big_for_its_pool(write_stack: StackWriter) -> None:
    path = write_stack("gov-fr", lambda c: c["models"][0].update(model="mistral-large-instruct-2411"))
    result = validate(path)
    assert result.exit_code == 2
    [line] = lines(result.stderr)
    assert line.startswith(
        f"{path}: sovstack:customer.models[0].pool: mistral-large-instruct-2411 (bf16, maxModelLen 16384, "
        "concurrency 16) does not fit pool l40s (2x L40S): needs "
    )
    assert " GiB per GPU at tensor-parallel 2 but L40S gives " in line
    assert "(short by " in line


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text("config:\n  sovstack:customer:\n    name: [gov-fr\n", encoding="utf-8")
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: YAML syntax error: line 4, column 1: expected ',' or ']', but got '<stream end>'"
    ]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.empty.yaml"
    path.write_text("", encoding="utf-8")
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: file is empty; expected a Pulumi stack file with config.sovstack:customer"
    ]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.nope.yaml"
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [f"{path}: no such stack file (give a stack name under stacks/ or a path)"]


def test_unknown_stack_name() -> None:
    result = invoke("validate", "no-such-customer")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Pulumi.no-such-customer.yaml: no such stack file (give a stack name under stacks/ or a path)\n"
    )


def test_unknown_audit_region_is_invalid_not_an_internal_error(write_stack: StackWriter) -> None:
    path = write_stack("industrial-eu", lambda c: c["audit"].update(region="de-fra"))
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.audit.region: unknown scaleway region 'de-fra'; known: fr-par, nl-ams, pl-waw"
    ]


def test_unparsable_endpoint_url_is_invalid(write_stack: StackWriter) -> None:
    path = write_stack(
        "industrial-eu", lambda c: c["models"][0]["weights"]["s3"].update(endpoint="https://[::1")
    )
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr)[0] == (
        f"{path}: sovstack:customer.models[0].weights.s3.endpoint: not a valid URL: Invalid IPv6 URL"
    )


def test_bad_policy_override_is_invalid(write_stack: StackWriter) -> None:
    path = write_stack("airgap-onprem", lambda c: c["residency"]["overrides"].update(countries=None))
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.residency.overrides: countries: Input should be a valid tuple"
    ]


# --- valid input breaking residency: exit 1 -------------------------------------------------------------


def move_gov_fr_to_warsaw(customer: Customer) -> None:
    cluster = customer["cluster"]
    cluster.update(provider="scaleway", region="pl-waw")
    del cluster["ovh"]
    cluster["systemPool"]["zones"] = ["pl-waw-2"]
    cluster["gpuPools"][0].update(nodeType="L40S-2-48G", zones=["pl-waw-2"])
    cluster["scaleway"] = {"apiServerAllowedCidrs": ["198.51.100.0/28"]}


def test_region_outside_the_policys_countries(write_stack: StackWriter) -> None:
    path = write_stack("gov-fr", move_gov_fr_to_warsaw)
    result = validate(path)
    assert result.exit_code == 1, result.stderr
    errors = lines(result.stderr)
    assert errors[0] == (
        f"{path}: sovstack:customer.cluster.region: [FAIL] region.country: "
        "region scaleway pl-waw (Warsaw, PL, EU) is in PL; policy allows FR"
    )
    # The audit bucket follows the cluster to Warsaw and is refused too.
    assert (
        f"{path}: sovstack:customer.audit.region: [FAIL] storage.location: "
        "audit bucket gov-fr-audit scaleway pl-waw (Warsaw, PL, EU) is in PL; policy allows FR"
    ) in errors
    broken = [e for e in errors if "[FAIL]" in e]
    assert errors[-1] == f"{path}: {len(broken)} residency rule(s) broken"
    # The placeholder the move brings along is listed too (a warning, not a broken rule).
    assert [e.split(": ")[1] for e in errors if "[placeholder]" in e] == [
        "sovstack:customer.cluster.scaleway.apiServerAllowedCidrs[0]",
        "sovstack:customer.models[0].weights.s3.manifestSha256",
        "sovstack:customer.models[1].weights.s3.manifestSha256",
    ]
    assert result.stdout == ""


def test_registry_not_allowed_when_airgapped(write_stack: StackWriter) -> None:
    image = f"rg.fr-par.scw.cloud/sovstack-mirror/vllm-openai:v0.14.0{DIGEST}"
    path = write_stack("airgap-onprem", lambda c: c["registries"].update(vllm=image))
    result = validate(path)
    assert result.exit_code == 1
    assert refusals(result.stderr) == [
        f"{path}: sovstack:customer.registries.vllm: [FAIL] image.registry: registry rg.fr-par.scw.cloud is "
        "not allowed; allowed: registry.fr-par-dc1.sovstack.internal, registry.se-sto-dc1.sovstack.internal",
        f"{path}: 1 residency rule(s) broken",
    ]


def test_audit_retention_below_the_policy_minimum(write_stack: StackWriter) -> None:
    path = write_stack("gov-fr", lambda c: c["audit"].update(retentionDays=200))
    result = validate(path)
    assert result.exit_code == 1
    assert refusals(result.stderr) == [
        f"{path}: sovstack:customer.audit.retentionDays: [FAIL] audit.retention: "
        "audit logs kept 200 days; policy minimum is 365 days",
        f"{path}: 1 residency rule(s) broken",
    ]


def test_state_in_pulumi_cloud_is_refused(write_stack: StackWriter) -> None:
    path = write_stack("industrial-eu", lambda c: c["state"].update(backendUrl="https://api.pulumi.com"))
    result = validate(path)
    assert result.exit_code == 1
    assert lines(result.stderr)[0] == (
        f"{path}: sovstack:customer.state.backendUrl: [FAIL] state.backend: "
        "Pulumi Cloud is a SaaS run by a US company; use a self-managed backend in bounds"
    )


# --- --json ---------------------------------------------------------------------------------------------


def test_json_carries_the_same_problems(write_stack: StackWriter) -> None:
    path = write_stack("industrial-eu", lambda c: c["cluster"]["gpuPools"][0].update(colour="red"))
    text = validate(path)
    result = validate(path, "--json")
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload == {
        "file": str(path),
        "valid": False,
        "exitCode": 2,
        "policy": "",
        "problems": [
            {
                "file": str(path),
                "path": "sovstack:customer.cluster.gpuPools[0].colour",
                "message": "unknown key (not part of the spec; see `sovstack schema`)",
            }
        ],
        "warnings": [],
        "findings": [],
        "deployable": False,
        "placeholders": [],
    }
    assert [f"{p['file']}: {p['path']}: {p['message']}" for p in payload["problems"]] == lines(text.stderr)


def test_json_carries_the_same_findings(write_stack: StackWriter) -> None:
    path = write_stack("gov-fr", lambda c: c["audit"].update(retentionDays=200))
    result = validate(path, "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert (payload["valid"], payload["exitCode"], payload["policy"], payload["problems"]) == (
        False,
        1,
        "fr-sovereign",
        [],
    )
    failed = [f for f in payload["findings"] if not f["passed"]]
    assert failed == [
        {
            "file": str(path),
            "rule": "audit.retention",
            "path": "sovstack:customer.audit.retentionDays",
            "observed": "200",
            "passed": False,
            "reason": "audit logs kept 200 days; policy minimum is 365 days",
            "source": "EU AI Act Art. 26(6) and Art. 19 (at least six months)",
        }
    ]
    region = next(f for f in payload["findings"] if f["path"] == "sovstack:customer.cluster.region")
    assert region["source"] == "ovh/docs MKS datacenters guide 2026-02-03 (Free plan, one zone)"


def test_json_of_several_stacks_is_a_list(write_stack: StackWriter, tmp_path: Path) -> None:
    good = write_stack("research-se")
    result = invoke("validate", str(good), str(tmp_path / "nope.yaml"), "--json")
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert [(p["file"], p["exitCode"], p["valid"]) for p in payload] == [
        (str(good), 0, True),
        (str(tmp_path / "nope.yaml"), 2, False),
    ]


# --- regions, schema, capacity --------------------------------------------------------------------------


def test_regions_filtered_by_gpu_and_country() -> None:
    result = invoke("regions", "--gpu", "H100", "--country", "FR", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [(r["provider"], r["region"]) for r in rows] == [
        ("scaleway", "fr-par"),
        ("ovh", "GRA11"),
        ("operator", "fr-par-dc1"),
    ]
    for row in rows:
        assert row["country"] == "FR"
        assert row["source"]
        for zone, gpus in row["zones"].items():
            assert any(g == "H100" or g.startswith("H100-") for g in gpus), (row["region"], zone)
    # Only zones offering the GPU are listed: fr-par-1 and fr-par-3 have none.
    assert list(rows[0]["zones"]) == ["fr-par-2"]
    assert list(rows[2]["zones"]) == ["fr-par-dc1-a"]


def test_regions_text_table() -> None:
    result = invoke("regions", "--provider", "operator")
    assert result.exit_code == 0
    assert lines(result.stdout) == [
        "PROVIDER  REGION        CITY         CC  LAW    ZONES (GPUs)",
        "operator  fr-par-dc1    Paris        FR  EU     fr-par-dc1-a (L40S/H100-SXM), fr-par-dc1-b (L40S)",
        "operator  se-sto-dc1    Stockholm    SE  EU     se-sto-dc1-a (H100-SXM/L40S)",
    ]


def test_regions_unknown_provider() -> None:
    result = invoke("regions", "--provider", "aws")
    assert result.exit_code == 2
    assert result.stderr == (
        "--provider: unknown provider 'aws'; known: existing, operator, ovh, scaleway, talos\n"
    )


def test_regions_nothing_matches() -> None:
    result = invoke("regions", "--country", "US", "--gpu", "B300")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "no region matches --country US --gpu B300; `sovstack regions` lists them all\n"


def _properties_without_description(schema: dict[str, Any]) -> list[str]:
    missing = []
    models = {"CustomerSpec": schema, **schema["$defs"]}
    for model_name, model in models.items():
        for prop, body in model.get("properties", {}).items():
            if not str(body.get("description", "")).strip():
                missing.append(f"{model_name}.{prop}")
    return missing


def test_schema_is_json_with_a_description_on_every_property() -> None:
    result = invoke("schema", "--customer")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "sovstack customer spec (config.sovstack:customer)"
    assert schema["additionalProperties"] is False
    assert {"name", "residency", "cluster", "models", "audit", "state"} <= set(schema["properties"])
    # camelCase, as users write it
    assert "gpuPools" in schema["$defs"]["ClusterSpec"]["properties"]
    assert len(schema["$defs"]) >= 20
    assert _properties_without_description(schema) == []


def test_schema_walk_would_notice_a_missing_description() -> None:
    schema = json.loads(invoke("schema", "--customer").stdout)
    del schema["$defs"]["GpuPoolSpec"]["properties"]["zones"]["description"]
    assert _properties_without_description(schema) == ["GpuPoolSpec.zones"]


def test_capacity_fits() -> None:
    result = invoke("capacity", "mistral-7b-instruct-v0-3", "--gpu", "L4")
    assert result.exit_code == 0
    assert lines(result.stdout)[0] == (
        "mistral-7b-instruct-v0-3 (bf16, KV cache auto) on L4: fits on 1 x L4 (tensor parallel 1)"
    )


def test_capacity_does_not_fit_says_by_how_much() -> None:
    result = invoke("capacity", "mistral-large-instruct-2411", "--gpu", "L4", "--gpus-per-node", "1")
    assert result.exit_code == 1
    assert lines(result.stdout)[0] == (
        "mistral-large-instruct-2411 (bf16, KV cache auto) on L4: does not fit on up to 1 x L4"
    )
    assert "    shortfall           257.49 GiB" in lines(result.stdout)
    assert "short by 257.49 GiB" in result.stdout


def test_capacity_json() -> None:
    result = invoke(
        "capacity", "mistral-large-instruct-2411", "--gpu", "L4", "--gpus-per-node", "1", "--json"
    )
    assert result.exit_code == 1
    plan = json.loads(result.stdout)
    assert (plan["fits"], plan["tensor_parallel_size"], plan["shortfall_per_gpu_gib"]) == (
        False,
        None,
        257.489,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "--gpu", "H100"), "sovstack capacity: MODEL: unknown model 'nope'; known models: "),
        (
            ("mistral-7b-instruct-v0-3", "--gpu", "TPU"),
            "sovstack capacity: --gpu: unknown GPU type 'TPU'; known GPU types: ",
        ),
    ],
)
def test_capacity_unknown_ids_exit_2(args: tuple[str, ...], message: str) -> None:
    result = invoke("capacity", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)


# --- real subprocesses ----------------------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False)


@pytest.mark.slow
def test_console_script_exit_code_and_stderr(write_stack: StackWriter) -> None:
    path = write_stack("gov-fr", lambda c: c["audit"].update(retentionDays=30))
    bad = run(str(SOVSTACK), "validate", str(path))
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert refusals(bad.stderr) == [
        f"{path}: sovstack:customer.audit.retentionDays: [FAIL] audit.retention: "
        "audit logs kept 30 days; policy minimum is 365 days",
        f"{path}: 1 residency rule(s) broken",
    ]
    assert "Traceback" not in bad.stderr
    good = run(str(SOVSTACK), "validate", "airgap-onprem")
    assert (good.returncode, refusals(good.stderr)) == (0, [])
    assert good.stdout.startswith("stacks/Pulumi.airgap-onprem.yaml: valid (")


@pytest.mark.slow
def test_bad_usage_exits_2_through_the_console_script() -> None:
    result = run(str(SOVSTACK), "validate")
    assert result.returncode == 2
    assert "Missing argument 'STACK...'." in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_validate_does_not_import_pulumi() -> None:
    code = (
        "import sys\n"
        "from sovstack.infra.cli import main\n"
        "sys.argv = ['sovstack', 'validate', 'industrial-eu']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "loaded = sorted(m for m in sys.modules if m == 'pulumi' or m.startswith(('pulumi.', 'pulumi_')))\n"
        "assert not loaded, loaded\n"
        "print('no pulumi')\n"
    )
    result = run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "no pulumi"


def test_version_option() -> None:
    from importlib.metadata import version

    from typer.testing import CliRunner

    from sovstack.infra.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"sovstack {version('sovstack')}\n"


def test_talos_gpu_installer_from_the_image_factory_is_refused_under_se_sovereign(tmp_path: Path) -> None:
    """Without a mirrored installer, GPU workers would install from factory.talos.dev: out of bounds."""
    from typer.testing import CliRunner

    from sovstack.infra.cli import app

    source = (Path(__file__).resolve().parents[2] / "stacks" / "Pulumi.research-se.yaml").read_text()
    stack = tmp_path / "Pulumi.research-se.yaml"
    lines = [line for line in source.splitlines(keepends=True) if "installerImage:" not in line]
    stack.write_text("".join(lines))
    result = CliRunner().invoke(app, ["validate", str(stack)])
    assert result.exit_code == 1
    path = f"{stack}: sovstack:customer.cluster.talos.installerImage"
    assert (
        f"{path}: [FAIL] image.registry: registry factory.talos.dev is not allowed; allowed: "
        in result.output
    )
    assert f"{path}: [FAIL] image.pinned: not pinned" in result.output


def test_identity_issuer_outside_the_policy(write_stack: StackWriter) -> None:
    """gov-fr's Keycloak moved to the Stockholm site: sign-in data would leave France."""

    def to_stockholm(customer: Customer) -> None:
        customer["identity"]["issuerUrl"] = "https://vault.se-sto-dc1.sovstack.internal/realms/gov-fr"

    path = write_stack("gov-fr", to_stockholm)
    result = validate(path)
    assert result.exit_code == 1, result.stderr
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.identity.issuerUrl: [FAIL] identity.issuer: identity issuer "
        "vault.se-sto-dc1.sovstack.internal operator se-sto-dc1 (Stockholm, SE, EU) is in SE; policy allows FR",
        # gov-fr's own placeholders (its OVHcloud project id) are listed too
        *[line for line in lines(result.stderr) if "[placeholder]" in line],
        f"{path}: 1 residency rule(s) broken",
    ]


def test_identity_key_set_at_an_uncatalogued_host(write_stack: StackWriter) -> None:
    def jwks_elsewhere(customer: Customer) -> None:
        customer["identity"]["endpoints"]["jwt"]["jwksUri"] = "https://login.example.com/keys"
        customer["network"]["egress"].append(
            {"name": "idp", "host": "login.example.com", "cidrs": ["192.0.2.10/32"], "ports": [443]}
        )

    path = write_stack("gov-fr", jwks_elsewhere)
    result = validate(path)
    assert result.exit_code == 1, result.stderr
    assert (
        f"{path}: sovstack:customer.identity.endpoints.jwt.jwksUri: [FAIL] identity.issuer: issuer key set host "
        "'login.example.com' is not a catalogued endpoint, so its location is unknown; use an endpoint listed in "
        "regions.yaml or declare it at a site in sites.yaml"
    ) in lines(result.stderr)


# --- placeholders, egress coverage and consistency of exit codes ------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "path", "reason"),
    [
        (
            lambda c: c["cluster"]["ovh"].update(serviceName="0" * 32),
            "cluster.ovh.serviceName",
            "all-zero id: replace it with the real one",
        ),
        (
            lambda c: c["network"]["egress"][0].update(cidrs=["203.0.113.0/24"]),
            "network.egress[0].cidrs[0]",
            "203.0.113.0/24 is in the documentation range 203.0.113.0/24 (RFC 5737/3849): it routes nowhere",
        ),
        (
            lambda c: c["network"].update(apiServerCidrs=["2001:db8::/48"]),
            "network.apiServerCidrs[0]",
            "2001:db8::/48 is in the documentation range 2001:db8::/32 (RFC 5737/3849): it routes nowhere",
        ),
        (
            lambda c: c["network"]["egress"][0].update(cidrs=["192.0.2.8/29"]),
            "network.egress[0].cidrs[0]",
            "192.0.2.8/29 is in the documentation range 192.0.2.0/24 (RFC 5737/3849): it routes nowhere",
        ),
    ],
)
def test_placeholders_are_findings_of_their_own(
    write_stack: StackWriter, mutate: Any, path: str, reason: str
) -> None:
    file = write_stack("gov-fr", lambda c: (c["cluster"]["ovh"].update(serviceName="5a1e" * 8), mutate(c)))
    result = validate(file)
    assert result.exit_code == 0, result.output
    assert f"{file}: sovstack:customer.{path}: [placeholder] {reason}" in lines(result.stderr)
    assert validate(file, "--strict").exit_code == 1


def test_egress_two_halves_of_the_internet_are_refused(write_stack: StackWriter) -> None:
    path = write_stack(
        "gov-fr", lambda c: c["network"]["egress"][0].update(cidrs=["0.0.0.0/1", "128.0.0.0/1"])
    )
    result = validate(path)
    assert result.exit_code == 1, result.output
    assert (
        f"{path}: sovstack:customer.network.egress[0].cidrs: [FAIL] egress.coverage: the CIDRs together cover "
        "every public address (3702258688), the same as 0.0.0.0/0 or ::/0; list the destination's own networks"
    ) in lines(result.stderr)


def test_egress_broader_than_the_policy_allows_needs_a_per_flow_limit(write_stack: StackWriter) -> None:
    path = write_stack("gov-fr", lambda c: c["network"]["egress"][0].update(cidrs=["141.94.0.0/15"]))
    result = validate(path)
    assert result.exit_code == 1, result.output
    assert (
        f"{path}: sovstack:customer.network.egress[0].cidrs: [FAIL] egress.coverage: opens 131072 public "
        "addresses; policy maxEgressPublicAddresses allows 65536"
    ) in lines(result.stderr)
    raised = write_stack(
        "gov-fr",
        lambda c: c["network"]["egress"][0].update(cidrs=["141.94.0.0/15"], maxPublicAddresses=131072),
    )
    assert validate(raised).exit_code == 0
    report = json.loads(invoke("report", str(raised), "--format", "json").stdout)
    flow = report["inventory"]["egress"][0]
    assert (flow["publicAddresses"], flow["maxPublicAddresses"]) == (131072, 131072)


def test_zone_outside_the_region_is_the_residency_rule_exit_1(write_stack: StackWriter) -> None:
    """docs/residency.md documents zone.in-region as a rule: exit 1, with the rule's line."""
    path = write_stack("industrial-eu", lambda c: c["cluster"]["systemPool"].update(zones=["nl-ams-1"]))
    result = validate(path)
    assert result.exit_code == 1, result.output
    assert lines(result.stderr)[0] == (
        f"{path}: sovstack:customer.cluster.systemPool.zones[0]: [FAIL] zone.in-region: zone 'nl-ams-1' is "
        "not in scaleway fr-par (Paris, FR, EU) (zones: fr-par-1, fr-par-2, fr-par-3)"
    )


def test_machine_zone_outside_the_site_is_the_residency_rule_exit_1(write_stack: StackWriter) -> None:
    path = write_stack(
        "airgap-onprem", lambda c: c["cluster"]["existing"]["nodes"][0].update(zone="se-sto-dc1-a")
    )
    result = validate(path)
    assert result.exit_code == 1, result.output
    assert any(
        x.startswith(f"{path}: sovstack:customer.cluster.existing.nodes[0].zone: [FAIL] zone.in-region:")
        for x in lines(result.stderr)
    )


def test_policy_override_with_an_alpha3_country_is_invalid_exit_2(write_stack: StackWriter) -> None:
    path = write_stack("airgap-onprem", lambda c: c["residency"]["overrides"].update(countries=["FRA"]))
    result = validate(path)
    assert result.exit_code == 2, result.output
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.residency.overrides: countries: Value error, 'FRA' is not an ISO 3166 "
        "alpha-2 country code (e.g. FR, SE)"
    ]


def test_aws_audit_endpoint_at_an_airgapped_site_is_invalid_exit_2(write_stack: StackWriter) -> None:
    def to_aws(c: Customer) -> None:
        c["audit"]["endpoint"] = "https://s3.eu-west-3.amazonaws.com"
        c["network"]["egress"].append(
            {"name": "aws", "host": "s3.eu-west-3.amazonaws.com", "cidrs": ["52.95.154.0/24"]}
        )

    path = write_stack("airgap-onprem", to_aws)
    result = validate(path)
    assert result.exit_code == 2, result.output
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.audit.endpoint: s3.eu-west-3.amazonaws.com is not a catalogued endpoint "
        "at the cluster's fr-par-dc1: audit records stay where the workloads run; declare the endpoint at the "
        "site in sites.yaml"
    ]


def test_gateway_namespace_must_be_a_dns_label_exit_2(write_stack: StackWriter) -> None:
    path = write_stack("airgap-onprem", lambda c: c["network"].update(gatewayNamespaces=["Gate_Way"]))
    result = validate(path)
    assert result.exit_code == 2, result.output
    assert lines(result.stderr) == [
        f"{path}: sovstack:customer.network.gatewayNamespaces[0]: 'Gate_Way' is not a DNS-1123 label "
        "(lowercase letters, digits and '-', starting and ending with an alphanumeric, at most 63 characters)"
    ]


def test_yaml_merge_keys_are_accepted_and_duplicates_still_refused(tmp_path: Path) -> None:
    text = (STACKS_DIR / "Pulumi.airgap-onprem.yaml").read_text(encoding="utf-8")
    pool = "- {name: l40s, gpuType: L40S, gpusPerNode: 4, minNodes: 2, maxNodes: 2, zones: [fr-par-dc1-a, fr-par-dc1-b]}"
    assert pool in text
    merged = text.replace(
        "          - {name: gpu-b1, address: 10.50.1.12, role: worker, zone: fr-par-dc1-b, pool: l40s, "
        "gpuType: L40S, gpuCount: 4}",
        "          - <<: {role: worker, pool: l40s, gpuType: L40S, gpuCount: 4}\n"
        "            name: gpu-b1\n            address: 10.50.1.12\n            zone: fr-par-dc1-b",
    )
    assert merged != text
    path = tmp_path / "Pulumi.merged.yaml"
    path.write_text(merged, encoding="utf-8")
    assert validate(path).exit_code == 0, validate(path).output
    path.write_text(
        merged.replace("name: gpu-b1\n", "name: gpu-b1\n            name: gpu-b2\n"), encoding="utf-8"
    )
    result = validate(path)
    assert result.exit_code == 2
    assert "found duplicate key 'name'" in result.stderr


# --- licences (rule model.licence) -------------------------------------------------------------------

MRL_REFUSAL = (
    "sovstack:customer.models[1]: [FAIL] model.licence: ministral-8b-instruct-2410 is under the Mistral "
    "Research License (https://mistral.ai/licenses/MRL-0.1.md), which allows research, not production use: "
    "declare your commercial licence in licensing.grants or serve another model"
)


def without_licensing(customer: Customer) -> None:
    """industrial-eu as it was before licences were checked: no use, no grant."""
    del customer["licensing"]


def test_industrial_eu_without_its_grant_is_refused_naming_the_model_and_licence(
    write_stack: StackWriter,
) -> None:
    path = write_stack("industrial-eu", without_licensing)
    result = validate(path)
    assert result.exit_code == 1
    assert refusals(result.stderr) == [f"{path}: {MRL_REFUSAL}", f"{path}: 1 residency rule(s) broken"]


def test_industrial_eu_with_its_declared_grant_validates(write_stack: StackWriter) -> None:
    def grant_only(customer: Customer) -> None:
        customer["licensing"] = {"grants": [{"model": "ministral-8b-instruct-2410", "reference": "MAI-7"}]}

    result = validate(write_stack("industrial-eu", grant_only), "--verbose")
    assert result.exit_code == 0, result.stderr
    assert (
        "sovstack:customer.models[1]: [ok] model.licence: ministral-8b-instruct-2410: Mistral Research License "
        "does not allow production use; the stack declares the grant 'MAI-7'" in result.stdout
    )


def test_an_apache_model_needs_no_grant(write_stack: StackWriter) -> None:
    def apache_only(customer: Customer) -> None:
        del customer["licensing"]  # production, the default, and no grant at all
        customer["models"][1]["model"] = "mistral-7b-instruct-v0-3"

    result = validate(write_stack("industrial-eu", apache_only), "--verbose")
    assert result.exit_code == 0, result.stderr
    assert (
        "sovstack:customer.models[1]: [ok] model.licence: mistral-7b-instruct-v0-3: Apache-2.0 allows "
        "production use" in result.stdout
    )


def test_codestral_in_production_is_refused_but_evaluation_is_allowed(write_stack: StackWriter) -> None:
    def codestral(use: str) -> Callable[[Customer], None]:
        def change(customer: Customer) -> None:
            customer["models"][1]["model"] = "codestral-22b-v0-1"
            customer["licensing"] = {"use": use}

        return change

    refused = validate(write_stack("industrial-eu", codestral("production")))
    assert refused.exit_code == 1
    assert "models[1]: [FAIL] model.licence: codestral-22b-v0-1 is under the Mistral Non-Production " in (
        refused.stderr
    )
    assert validate(write_stack("industrial-eu", codestral("evaluation"))).exit_code == 0


def test_research_use_of_a_research_licence_needs_no_grant(write_stack: StackWriter) -> None:
    result = validate(write_stack("research-se"), "--verbose")
    assert result.exit_code == 0, result.stderr
    assert "model.licence: mistral-large-instruct-2411: Mistral Research License allows research use" in (
        result.stdout
    )


def test_a_grant_for_a_model_not_served_is_invalid(write_stack: StackWriter) -> None:
    def typo(customer: Customer) -> None:
        customer["licensing"]["grants"][0]["model"] = "ministral-8b-instruct"

    path = write_stack("industrial-eu", typo)
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr)[0] == (
        f"{path}: sovstack:customer.licensing.grants[0].model: 'ministral-8b-instruct' is not served by this "
        "stack (models: ministral-8b-instruct-2410, mistral-small-3-1-24b-instruct-2503)"
    )


def test_a_rollouts_new_model_is_licence_checked(write_stack: StackWriter) -> None:
    def roll_out_codestral(customer: Customer) -> None:
        customer["platform"]["imageRegistry"] = "rg.fr-par.scw.cloud/sovstack-mirror"
        customer["models"][0]["route"] = {
            "hostname": "llm.industrial.example.eu",
            "gatewayName": "public",
            "gatewayNamespace": "gateway",
        }
        customer["models"][0]["rollout"] = {
            "model": "codestral-22b-v0-1",
            "weights": {"pvc": {"claimName": "codestral-weights"}},
            "weight": 10,
        }

    path = write_stack("industrial-eu", roll_out_codestral)
    result = validate(path)
    assert result.exit_code == 1
    assert lines(result.stderr)[0].startswith(
        f"{path}: sovstack:customer.models[0].rollout: [FAIL] model.licence: codestral-22b-v0-1 is under the "
        "Mistral Non-Production License (MNPL-0.1) (https://mistral.ai/licenses/MNPL-0.1.md)"
    )


def test_the_report_lists_every_model_with_its_licence_use_and_grant(write_stack: StackWriter) -> None:
    result = invoke("report", str(write_stack("industrial-eu")), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["models"] == [
        {
            "name": "mistral-small",
            "path": "models[0]",
            "version": "stable",
            "model": "mistral-small-3-1-24b-instruct-2503",
            "licence": "Apache-2.0",
            "licenceSource": "https://www.apache.org/licenses/LICENSE-2.0",
            "use": "production",
            "grant": None,
        },
        {
            "name": "ministral-8b",
            "path": "models[1]",
            "version": "stable",
            "model": "ministral-8b-instruct-2410",
            "licence": "Mistral Research License",
            "licenceSource": "https://mistral.ai/licenses/MRL-0.1.md",
            "use": "production",
            "grant": "Mistral AI commercial licence MAI-2026-IND-014",
        },
    ]


@pytest.mark.parametrize(
    ("rollout", "route", "message"),
    [
        ({"weight": 10}, False, "rollout: needs route: the traffic split is the HTTPRoute's backend weights"),
        (
            {"model": "mistral-nemo-instruct-2407", "weight": 10},
            True,
            "rollout.weights: required when rollout.model names another model",
        ),
    ],
)
def test_a_rollout_without_what_it_needs_is_invalid(
    write_stack: StackWriter, rollout: dict[str, Any], route: bool, message: str
) -> None:
    def change(customer: Customer) -> None:
        if route:
            customer["models"][0]["route"] = {
                "hostname": "a.example.eu",
                "gatewayName": "g",
                "gatewayNamespace": "gw",
            }
        else:
            customer["models"][0].pop("route", None)
        customer["models"][0]["rollout"] = rollout

    path = write_stack("gov-fr", change)
    result = validate(path)
    assert result.exit_code == 2
    assert lines(result.stderr)[0] == f"{path}: sovstack:customer.models[0]: {message}"
