"""What `compose` makes of the spec's observability and rollout sections (the rest is covered through
render, plan and the golden snapshots)."""

from __future__ import annotations

from typing import Any

from sovstack.infra.compose import compose
from sovstack.infra.spec import CustomerSpec
from tests.infra.conftest import example_customer


def spec_of(example: str, **changes: Any) -> CustomerSpec:
    customer = example_customer(example)
    customer.update(changes)
    return CustomerSpec.model_validate(customer)


def test_observability_is_composed_only_when_the_spec_asks() -> None:
    plain = compose(spec_of("gov-fr"))
    assert plain.observability is None and plain.observability_objects() == []
    assert plain.network.metrics_scrape is None

    composed = compose(
        spec_of("gov-fr", observability={"gpu": True, "prometheusSelectorLabels": {"release": "kps"}})
    )
    args = composed.observability
    assert args is not None
    assert (args.namespace, args.groups, args.prometheus_selector_labels) == (
        "monitoring",
        ("audit-shipping", "gpu", "model-serving"),
        {"release": "kps"},
    )
    assert (args.serving_namespace, args.audit_namespace, args.audit_logs_namespace) == (
        "gov-fr-serving",
        "gov-fr-audit",
        "gov-fr-audit-logs",
    )
    # Its objects are part of the stack, and the CRDs they need are installed.
    kinds = [
        o["kind"] for o in composed.kubernetes_objects() if o["metadata"].get("namespace") == "monitoring"
    ]
    assert kinds == ["PrometheusRule"] * 3 + ["PodMonitor"] + ["ConfigMap"] * 3
    assert "prometheus-operator-crds" in [c["chart"] for c in composed.charts()]
    assert "prometheus-operator-crds" not in [c["chart"] for c in plain.charts()]
    # Monitoring may scrape the audit shippers' Fluent Bit metrics.
    scrape = composed.network.metrics_scrape
    assert scrape is not None
    assert (scrape.namespaces, scrape.from_namespaces, scrape.port) == (
        ["gov-fr-audit", "gov-fr-audit-logs"],
        ["monitoring"],
        2020,
    )


def test_a_rollout_composes_a_canary_and_its_gpus_count_in_the_quota() -> None:
    customer = example_customer("gov-fr")
    model = customer["models"][0]
    model["route"] = {"hostname": "chat.gov-fr.example.eu", "gatewayName": "public", "gatewayNamespace": "gw"}
    before = compose(CustomerSpec.model_validate(customer))
    model["rollout"] = {"weight": 5, "replicas": 2}
    after = compose(CustomerSpec.model_validate(customer))
    canary = after.serving[0].canary
    assert canary is not None
    # What the rollout leaves out it keeps from the stable model.
    assert (canary.image, canary.weights, canary.weight, canary.replicas) == (
        before.serving[0].image,
        before.serving[0].weights,
        5,
        2,
    )
    assert canary.tensor_parallel_size == before.serving[0].tensor_parallel_size
    assert after.gpu_ceiling() == before.gpu_ceiling() + 2 * canary.tensor_parallel_size
