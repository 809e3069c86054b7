"""Inference records and pinned weights in the spec: the checks, the residency rule, the composition, the report."""

from __future__ import annotations

from typing import Any

import pytest

from sovstack.components.builders.audit_sink import InferenceRecordsArgs
from sovstack.infra.checks import semantic_problems
from sovstack.infra.compose import Composition
from sovstack.infra.pipeline import load_stack
from sovstack.infra.report import build_report
from sovstack.infra.residency_check import evaluate
from sovstack.infra.stackfile import CUSTOMER_KEY, SpecError, format_loc, parse_spec
from tests.infra.conftest import Customer, example_customer

PIN = "ab" * 32
ZERO = "0" * 64


def spec_of(customer: Customer) -> Any:
    return parse_spec({CUSTOMER_KEY: customer}, "f.yaml")


def problems(customer: Customer) -> list[str]:
    return [f"{format_loc(loc)}: {message}" for loc, message in semantic_problems(spec_of(customer))]


# --- spec -------------------------------------------------------------------------------------------
def test_manifest_sha256_on_either_source_and_normalised() -> None:
    customer = example_customer("research-se")
    customer["models"][0]["weights"]["s3"]["manifestSha256"] = f"sha256:{PIN}"
    customer["models"][1]["weights"]["pvc"]["manifestSha256"] = PIN
    spec = spec_of(customer)
    assert [m.weights.manifest_sha256 for m in spec.models] == [f"sha256:{PIN}", f"sha256:{PIN}"]


@pytest.mark.parametrize("value", ["AB" * 32, "ab" * 31, "md5:" + PIN])
def test_a_malformed_manifest_sha256_is_refused_with_its_path(value: str) -> None:
    customer = example_customer("gov-fr")
    customer["models"][0]["weights"]["s3"]["manifestSha256"] = value
    with pytest.raises(SpecError) as err:
        spec_of(customer)
    (problem,) = err.value.problems
    assert problem.path == "sovstack:customer.models[0].weights.s3.manifestSha256"
    assert problem.message.startswith("String should match pattern")


def test_inference_records_default_on_with_digest_capture() -> None:
    records = spec_of(example_customer("gov-fr")).audit.inference_records
    assert (records.enabled, records.capture) == (True, "digest")


# --- capture full: only into a write-once bucket in the region ---------------------------------------
def test_capture_full_is_accepted_into_a_bucket_sovstack_makes_write_once_in_region() -> None:
    customer = example_customer("gov-fr")  # ovh bucket, in the cluster's region (checked separately)
    customer["audit"]["inferenceRecords"] = {"capture": "full"}
    assert problems(customer) == []


def test_capture_full_is_refused_for_an_existing_bucket() -> None:
    customer = example_customer("research-se")
    customer["audit"]["backend"] = "existing"
    customer["audit"]["inferenceRecords"] = {"capture": "full"}
    assert problems(customer) == [
        "sovstack:customer.audit.inferenceRecords.capture: full is refused for an existing audit bucket: sovstack cannot make "
        "or prove it write-once; use digest, or a bucket sovstack creates (scaleway, ovh, minio)"
    ]


def test_capture_full_is_refused_when_the_catalog_cannot_place_the_bucket() -> None:
    customer = example_customer("airgap-onprem")
    customer["audit"]["endpoint"] = "https://s3.unknown.example.eu"
    customer["network"]["egress"].append(
        {"name": "unknown", "host": "s3.unknown.example.eu", "cidrs": ["192.0.2.0/24"], "ports": [443]}
    )
    customer["audit"]["inferenceRecords"] = {"capture": "full"}
    assert (
        "sovstack:customer.audit.inferenceRecords.capture: full is refused: the catalog does not place the audit endpoint "
        "s3.unknown.example.eu at the cluster's fr-par-dc1, so prompts could leave the region; use digest"
    ) in problems(customer)


def test_capture_full_with_records_off_is_no_problem() -> None:
    customer = example_customer("research-se")
    customer["audit"]["backend"] = "existing"
    customer["audit"]["inferenceRecords"] = {"enabled": False, "capture": "full"}
    assert problems(customer) == []


# --- residency: pinned weights ------------------------------------------------------------------------
def _pinned_findings(customer: Customer) -> list[tuple[str, str, bool]]:
    return [(f.path, f.observed, f.passed) for f in evaluate(spec_of(customer)) if f.rule == "weights.pinned"]


def test_sovereign_profiles_refuse_unpinned_weights() -> None:
    customer = example_customer("gov-fr")  # fr-sovereign
    del customer["models"][1]["weights"]["s3"]["manifestSha256"]
    assert _pinned_findings(customer) == [
        ("sovstack:customer.models[0].weights.s3.manifestSha256", f"sha256:{ZERO}", True),
        ("sovstack:customer.models[1].weights.s3.manifestSha256", "unpinned", False),
    ]


def test_the_eu_profile_reports_unpinned_weights_without_refusing() -> None:
    findings = [f for f in evaluate(load_stack("industrial-eu").spec) if f.rule == "weights.pinned"]
    assert [(f.observed, f.passed) for f in findings] == [(f"sha256:{ZERO}", True), ("unpinned", True)]
    assert findings[1].reason == "weights not pinned: served unverified (this policy allows it)"


# --- composition and report ---------------------------------------------------------------------------
ROUTE = {"hostname": "llm.industrial.example.eu", "gatewayName": "public", "gatewayNamespace": "gateway"}


def test_records_follow_the_gateways_and_the_switch() -> None:
    # No example gives a model a route: sovstack then runs no gateway, and nothing is recorded.
    assert Composition(load_stack("industrial-eu").spec).audit.inference_records is None
    customer = example_customer("industrial-eu")
    customer["models"][0]["route"] = ROUTE
    composition = Composition(spec_of(customer))
    assert composition.audit.inference_records == InferenceRecordsArgs(gateway_namespaces=["gateway"])
    assert composition.platform.gateway_access_log is True
    kinds = [o["kind"] for o in composition.kubernetes_objects()]
    assert (kinds.count("EnvoyProxy"), kinds.count("ClientTrafficPolicy")) == (1, 1)
    route = next(o for o in composition.kubernetes_objects() if o["kind"] == "HTTPRoute")
    assert route["spec"]["rules"][0]["filters"][0]["requestHeaderModifier"]["set"] == [
        {"name": "x-sovstack-model", "value": "mistral-small-3.1"},
        {"name": "x-sovstack-weights-sha256", "value": f"sha256:{ZERO}"},
    ]
    customer["audit"]["inferenceRecords"] = {"enabled": False}
    off = Composition(spec_of(customer))
    assert off.audit.inference_records is None
    assert off.platform.gateway_access_log is False
    assert not [o for o in off.kubernetes_objects() if o["kind"] == "EnvoyProxy"]


def test_pinned_weights_reach_the_deployments() -> None:
    composition = Composition(load_stack("research-se").spec)
    deployments = {
        o["metadata"]["name"]: o for o in composition.kubernetes_objects() if o["kind"] == "Deployment"
    }
    for name in ("research-se-mistral-large", "research-se-mixtral-8x7b"):
        annotations = deployments[name]["metadata"]["annotations"]
        assert annotations["sovstack.io/weights-sha256"] == f"sha256:{ZERO}", name
        init = deployments[name]["spec"]["template"]["spec"]["initContainers"]
        assert init[-1]["name"] == "verify-weights", name


def test_the_report_lists_each_models_weights_digest() -> None:
    report = build_report(load_stack("industrial-eu"))
    assert report["inventory"]["weights"] == [
        {"model": "mistral-small", "manifestSha256": f"sha256:{ZERO}", "status": "placeholder"},
        {"model": "ministral-8b", "manifestSha256": None, "status": "unverified"},
    ]
    gov = build_report(load_stack("gov-fr"))["inventory"]["weights"]
    assert [w["status"] for w in gov] == ["placeholder", "placeholder"]
