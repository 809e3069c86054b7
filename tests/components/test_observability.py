"""Observability: alert rules, the audit shippers' PodMonitor and dashboards; every metric name sourced,
every alert evaluated by promtool against recorded samples, firing and quiet."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sovstack.components.builders.audit_sink import AuditSinkArgs, workload_name
from sovstack.components.builders.observability import (
    ObservabilityArgs,
    alert_catalog,
    alert_descriptions,
    alert_expressions,
    build_alert_rules,
    build_observability,
    check_metric_names,
    every_expression,
    metric_catalog,
)
from sovstack.components.builders.promql import is_exposed, metric_names, unknown_metrics
from sovstack.components.kube import standard_labels
from sovstack.components.observability import Observability
from tests.determinism import assert_same_in_fresh_processes
from tests.k8s_schema import assert_all_valid
from tests.pulumi_mocks import Recorder

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

ARGS = ObservabilityArgs(
    customer="acme",
    region="scw-fr-par",
    residency_profile="eu-strict",
    serving_namespace="acme-serving",
    audit_namespace="acme-audit",
    audit_logs_namespace="acme-audit-logs",
    groups=("audit-shipping", "gpu", "model-serving"),
)
OBJECTS = build_observability(ARGS)


def labels(name: str) -> dict[str, str]:
    return standard_labels(
        name=name, component="observability", customer="acme", region="scw-fr-par", residency="eu-strict"
    )


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in OBJECTS if o["kind"] == kind]


# --- objects -----------------------------------------------------------------------------------------
def test_objects_in_order_with_names_namespaces_and_labels() -> None:
    assert [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in OBJECTS] == [
        ("PrometheusRule", "monitoring", "acme-alerts-audit-shipping"),
        ("PrometheusRule", "monitoring", "acme-alerts-gpu"),
        ("PrometheusRule", "monitoring", "acme-alerts-model-serving"),
        ("PodMonitor", "monitoring", "acme-audit-shippers"),
        ("ConfigMap", "monitoring", "acme-dashboard-audit-trail"),
        ("ConfigMap", "monitoring", "acme-dashboard-gpus"),
        ("ConfigMap", "monitoring", "acme-dashboard-model-servers"),
    ]
    for obj in OBJECTS:
        name = obj["metadata"]["name"]
        extra = {"grafana_dashboard": "1"} if obj["kind"] == "ConfigMap" else {}
        assert obj["metadata"]["labels"] == {**labels(name), **extra}


def test_each_alert_with_group_for_severity_and_runbook() -> None:
    table = [
        (
            rule["metadata"]["name"],
            group["name"],
            r["alert"],
            r["for"],
            r["labels"],
            r["annotations"]["runbook_url"],
        )
        for rule in of_kind("PrometheusRule")
        for group in rule["spec"]["groups"]
        for r in group["rules"]
    ]
    crit = {"severity": "critical", "sovstack_customer": "acme"}
    warn = {"severity": "warning", "sovstack_customer": "acme"}
    ops = "docs/operations.md#"
    assert table == [
        ("acme-alerts-audit-shipping", "sovstack.audit-shipping", "AuditShippingStalled", "15m", crit, ops + "audit-shipping-stalled"),
        ("acme-alerts-audit-shipping", "sovstack.audit-shipping", "AuditShippingRetrying", "15m", warn, ops + "audit-shipping-retrying"),
        ("acme-alerts-audit-shipping", "sovstack.audit-shipping", "AuditRecordsDropped", "0m", crit, ops + "audit-records-dropped"),
        ("acme-alerts-audit-shipping", "sovstack.audit-shipping", "AuditBufferFilling", "10m", warn, ops + "audit-buffer-filling"),
        ("acme-alerts-audit-shipping", "sovstack.audit-shipping", "AuditShipperUnavailable", "15m", crit, ops + "audit-shipper-unavailable"),
        ("acme-alerts-gpu", "sovstack.gpu", "GpuFramebufferNearlyFull", "15m", warn, ops + "gpu-framebuffer-nearly-full"),
        ("acme-alerts-gpu", "sovstack.gpu", "GpuTemperatureHigh", "10m", warn, ops + "gpu-temperature-high"),
        ("acme-alerts-gpu", "sovstack.gpu", "GpuXidError", "0m", crit, ops + "gpu-xid-error"),
        ("acme-alerts-model-serving", "sovstack.model-serving", "ModelQueueBacklog", "10m", warn, ops + "model-queue-backlog"),
        ("acme-alerts-model-serving", "sovstack.model-serving", "ModelTimeToFirstTokenSlow", "10m", warn, ops + "model-time-to-first-token-slow"),
        ("acme-alerts-model-serving", "sovstack.model-serving", "ModelServerErrors", "10m", crit, ops + "model-server-errors"),
        ("acme-alerts-model-serving", "sovstack.model-serving", "ModelKvCacheFull", "15m", warn, ops + "model-kv-cache-full"),
    ]  # fmt: skip
    rule = of_kind("PrometheusRule")[1]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"][0]["rules"][1] == {
        "alert": "GpuTemperatureHigh",
        "expr": "DCGM_FI_DEV_GPU_TEMP > 85",
        "for": "10m",
        "labels": {"severity": "warning", "sovstack_customer": "acme"},
        "annotations": {
            "summary": "A GPU runs hot.",
            "description": "GPU {{ $labels.gpu }} ({{ $labels.modelName }}) on {{ $labels.Hostname }} is above 85 C.",
            "runbook_url": "docs/operations.md#gpu-temperature-high",
        },
    }


def test_default_groups_leave_out_gpus_and_selector_labels_reach_rules_and_pod_monitor() -> None:
    args = ARGS.model_copy(update={"groups": ("audit-shipping", "model-serving")})
    assert ObservabilityArgs.model_fields["groups"].default == ("audit-shipping", "model-serving")
    args = ObservabilityArgs(**{**args.model_dump(), "prometheus_selector_labels": {"release": "kps"}})
    objects = build_observability(args)
    assert [o["metadata"]["name"] for o in objects] == [
        "acme-alerts-audit-shipping",
        "acme-alerts-model-serving",
        "acme-audit-shippers",
        "acme-dashboard-audit-trail",
        "acme-dashboard-model-servers",
    ]
    assert [o["metadata"]["labels"].get("release") for o in objects] == ["kps", "kps", "kps", None, None]
    no_audit = ObservabilityArgs(**{**args.model_dump(), "groups": ("model-serving",)})
    assert [o["kind"] for o in build_observability(no_audit)] == ["PrometheusRule", "ConfigMap"]


def test_pod_monitor_scrapes_both_shippers_v2_metrics() -> None:
    (monitor,) = of_kind("PodMonitor")
    assert monitor["spec"] == {
        "selector": {
            "matchLabels": {"app.kubernetes.io/component": "audit-sink", "sovstack.io/customer": "acme"}
        },
        "namespaceSelector": {"matchNames": ["acme-audit", "acme-audit-logs"]},
        "podMetricsEndpoints": [{"port": "http", "path": "/api/v2/metrics/prometheus", "interval": "30s"}],
    }
    without = ObservabilityArgs(**{**ARGS.model_dump(), "scrape_audit_shippers": False})
    assert "PodMonitor" not in [o["kind"] for o in build_observability(without)]


def test_alerts_name_the_audit_sinks_own_workloads() -> None:
    sink = AuditSinkArgs(
        customer="acme",
        region="scw-fr-par",
        residency_profile="eu-strict",
        namespace="acme-audit",
        logs_namespace="acme-audit-logs",
        serving_namespace="acme-serving",
        backend="scaleway",
        bucket="acme-audit-trail",
        retention_days=200,
        endpoint="https://s3.fr-par.scw.cloud",
        s3_region="fr-par",
        credentials_secret="audit-s3",
    )
    expr = alert_expressions(ARGS)["AuditShipperUnavailable"]
    assert f'daemonset="{workload_name(sink, "logs")}"' in expr
    assert f'deployment="{workload_name(sink, "events")}"' in expr


def test_dashboards_are_sidecar_config_maps_with_sorted_json() -> None:
    titles = {}
    for config_map in of_kind("ConfigMap"):
        name = config_map["metadata"]["name"]
        assert list(config_map["data"]) == [f"{name}.json"]
        text = config_map["data"][f"{name}.json"]
        model = json.loads(text)
        assert text == json.dumps(model, sort_keys=True, indent=2) + "\n"
        assert len(model["uid"]) <= 40
        assert model["templating"]["list"][0]["type"] == "datasource"
        assert {p["datasource"]["uid"] for p in model["panels"]} == {"${datasource}"}
        assert [p["id"] for p in model["panels"]] == list(range(1, len(model["panels"]) + 1))
        titles[model["title"]] = [p["title"] for p in model["panels"]]
    assert titles == {
        "Audit trail shipping (acme)": [
            "Records read and handed to S3",
            "S3 retries, errors and losses",
            "Disk buffer used",
            "Filesystem chunks",
            "Shipper pods unavailable",
        ],
        "GPUs (acme)": [
            "Framebuffer memory used",
            "Temperature",
            "Utilisation",
            "Tensor pipe active",
            "Power draw",
            "Last XID error",
        ],
        "Model servers (acme)": [
            "Requests waiting and running",
            "Time to first token",
            "Inter-token latency",
            "End-to-end request latency",
            "API requests by status",
            "Finished requests by reason",
            "KV cache usage",
            "Tokens per second and preemptions",
        ],
    }


def test_config_maps_are_valid_and_the_custom_kinds_are_named() -> None:
    assert assert_all_valid(OBJECTS, "1.31", "1.35") == {"PrometheusRule", "PodMonitor"}


@pytest.mark.slow
def test_objects_are_the_same_in_every_process() -> None:
    assert_same_in_fresh_processes(
        "import json\n"
        "from tests.components.test_observability import ARGS\n"
        "from sovstack.components.builders.observability import build_observability\n"
        "print(json.dumps(build_observability(ARGS)))"
    )


# --- args --------------------------------------------------------------------------------------------
def test_a_threshold_override_reaches_the_expression_and_the_description() -> None:
    args = ObservabilityArgs(**{**ARGS.model_dump(), "thresholds": {"gpu_temperature_celsius": 83}})
    assert alert_expressions(args)["GpuTemperatureHigh"] == "DCGM_FI_DEV_GPU_TEMP > 83"
    assert alert_descriptions(args)["GpuTemperatureHigh"].endswith("is above 83 C.")
    args = ObservabilityArgs(**{**ARGS.model_dump(), "thresholds": {"audit_stall_window": "30m"}})
    assert "[30m]" in alert_expressions(args)["AuditShippingStalled"]


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"thresholds": {"gpu_temp": 80}}, "thresholds.gpu_temp: unknown threshold; known: audit_buffer_used_percent"),
        ({"thresholds": {"audit_stall_window": 5}}, "thresholds.audit_stall_window: 5.0 is not a duration like '15m'"),
        ({"thresholds": {"model_error_ratio": "5%"}}, "thresholds.model_error_ratio: '5%' is not a number >= 0"),
        ({"audit_logs_namespace": "acme-audit"}, "audit_logs_namespace: must differ from audit_namespace"),
        ({"serving_namespace": "Serving"}, "serving_namespace: 'Serving' is not a DNS-1123 label"),
        ({"groups": ()}, "groups: name at least one of audit-shipping, gpu, model-serving"),
        ({"groups": ("gpu", "gpu")}, "groups: ['gpu', 'gpu'] names a group twice"),
    ],
)  # fmt: skip
def test_bad_args_are_refused_naming_the_field(update: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ObservabilityArgs(**{**ARGS.model_dump(), **update})


# --- metric names ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (le, pod) (rate(a_bucket{x="y", le=~"1|2"}[5m]))', {"a_bucket"}),
        ("sum(rate(a[5m])) by (job) / on (job) group_left (x) b offset 1h", {"a", "b"}),
        ('max without (instance) (vllm:kv_cache_usage_perc{namespace="by"}) > bool 0.9', {"vllm:kv_cache_usage_perc"}),
        ('label_replace(x > 0, "w", "$1", "d", "(.+)") or y unless z and sum(Inf) > NaN', {"x", "y", "z"}),
        ("histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m:1m]))) > 1e3", {"h_bucket"}),
        ("count(a) - min by (on) (b) + 0x1f", {"a", "b"}),
    ],
)  # fmt: skip
def test_metric_names_ignore_functions_labels_keywords_and_literals(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ('a{x="y"', "unclosed '{'"),
        ("sum(a", "unclosed '('"),
        ("a)", "unbalanced ')'"),
        ("a ! b", "unexpected '!' at position 2"),
        ("sum by (a", "unclosed label list after 'by'"),
    ],
)
def test_text_that_is_not_promql_is_refused(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        metric_names(expr)


@given(st.text(max_size=80))
def test_any_text_gives_names_or_a_clean_error(text: str) -> None:
    try:
        names = metric_names(text)
    except ValueError:
        return
    assert all(name and name in text for name in names)


def test_every_metric_read_by_an_alert_or_a_dashboard_is_listed_with_its_source() -> None:
    known = metric_catalog().types()
    expressions = every_expression(OBJECTS)
    assert len(expressions) == 12 + 33  # twelve alerts, 33 dashboard queries
    assert unknown_metrics(expressions.values(), known) == []
    for exporter in metric_catalog().exporters.values():
        assert exporter.source.startswith("https://") and exporter.checked


def test_every_listed_metric_is_read_by_something() -> None:
    read = set().union(*(metric_names(e) for e in every_expression(OBJECTS).values()))
    unused = [
        n
        for n in metric_catalog().types()
        if not any(is_exposed(r, {n: metric_catalog().types()[n]}) for r in read)
    ]
    assert unused == []


def test_a_made_up_metric_is_refused_by_name() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape("Made: reads vllm:made_up_total, not listed in components/data/metrics.yaml"),
    ):
        check_metric_names({"Made": 'rate(vllm:made_up_total{namespace="x"}[5m]) > 0'})
    # A histogram is read through its series, never by its bare name.
    with pytest.raises(ValueError, match="reads vllm:time_to_first_token_seconds,"):
        check_metric_names({"Bare": "vllm:time_to_first_token_seconds > 1"})


def test_a_renamed_metric_in_an_alert_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from sovstack.components.builders import observability

    renamed = {**alert_expressions(ARGS), "GpuXidError": "DCGM_FI_DEV_XID_ERROR > 0"}
    monkeypatch.setattr(observability, "alert_expressions", lambda args: renamed)
    with pytest.raises(ValueError, match="GpuXidError: reads DCGM_FI_DEV_XID_ERROR, not listed"):
        build_alert_rules(ARGS)


# --- data and docs -----------------------------------------------------------------------------------
def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_alert_has_its_reasons_and_a_runbook_section() -> None:
    anchors = _anchors((ROOT / "docs" / "operations.md").read_text(encoding="utf-8"))
    catalog = alert_catalog()
    alerts = {name: facts for group in catalog.groups.values() for name, facts in group.items()}
    assert set(alerts) == set(alert_expressions(ARGS)) == set(alert_descriptions(ARGS))
    for name, facts in alerts.items():
        assert facts.runbook in anchors, f"{name}: docs/operations.md has no section #{facts.runbook}"
        assert all(len(t.reason) > 40 for t in facts.thresholds.values()), name
        assert name in (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def test_the_alert_table_agrees_with_the_data() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", text, flags=re.MULTILINE)}
    alerts = {name: facts for group in alert_catalog().groups.values() for name, facts in group.items()}
    assert list(rows) == list(alerts)
    for name, facts in alerts.items():
        cells = rows[name].split(" | ")
        assert cells[-2] == f"{facts.severity}, {facts.for_}", name
        assert cells[-1] == f"[{facts.runbook}](#{facts.runbook}) |", name
        for threshold in facts.thresholds.values():
            value = threshold.value if isinstance(threshold.value, str) else f"{threshold.value:g}"
            assert f"`{value}`" in cells[2], f"{name}: the table does not say {value}"


# --- promtool ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """Series (text -> promtool values) and the label sets of the alerts firing at `at` (none: quiet)."""

    series: dict[str, str]
    fires: tuple[dict[str, str], ...] = ()
    at: str = ""
    value: str = ""


def series(metric: str, values: str, **labels: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {f"{metric}{{{inner}}}": values}


POD = {"namespace": "acme-audit-logs", "pod": "acme-audit-logs-7xk2p"}
GPU = {
    "gpu": "0",
    "UUID": "GPU-8c4e8d3e-1b7c-4f7a-9d51-2a8f1f0c6b11",
    "pci_bus_id": "00000000:0F:00.0",
    "device": "nvidia0",
    "modelName": "NVIDIA H100 80GB HBM3",
    "Hostname": "gpu-node-1",
}
MODEL = {
    "namespace": "acme-serving",
    "model_name": "mistral-small",
    "engine": "0",
    "service": "acme-mistral-small",
}
KSM = {"job": "kube-state-metrics"}


def ttft(bucket_counts: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for le, values in bucket_counts.items():
        out |= series(
            "vllm:time_to_first_token_seconds_bucket", values, le=le, pod="acme-mistral-small-0", **MODEL
        )
    return out


def http(**per_status: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for status, values in per_status.items():
        out |= series(
            "http_requests_total", values, handler="/v1/chat/completions", method="POST",
            status=status.replace("s", ""), pod="acme-mistral-small-0", **{k: v for k, v in MODEL.items() if k != "model_name"},
        )  # fmt: skip
    return out


SCENARIOS: dict[str, list[Case]] = {
    "AuditShippingStalled": [
        Case(
            series("fluentbit_input_records_total", "0+100x60", name="tail.0", **POD)
            | series("fluentbit_output_proc_records_total", "0x60", name="s3.0", **POD),
            fires=(POD,),
        ),
        Case(
            series("fluentbit_input_records_total", "0+100x60", name="tail.0", **POD)
            | series("fluentbit_output_proc_records_total", "0+100x60", name="s3.0", **POD)
        ),
    ],
    "AuditShippingRetrying": [
        Case(series("fluentbit_output_retries_total", "0+1x60", name="s3.0", **POD), fires=(POD,)),
        Case(series("fluentbit_output_retries_total", "0+0.25x60", name="s3.0", **POD)),
    ],
    "AuditRecordsDropped": [
        Case(
            series("fluentbit_output_retries_failed_total", "0x5 1x55", name="s3.0", **POD)
            | series("fluentbit_output_dropped_records_total", "0x60", name="s3.0", **POD),
            fires=(POD,),
        ),
        Case(series("fluentbit_output_dropped_records_total", "0x5 40x55", name="s3.0", **POD), fires=(POD,)),
        Case(
            series("fluentbit_output_retries_failed_total", "0x60", name="s3.0", **POD)
            | series("fluentbit_output_dropped_records_total", "0x60", name="s3.0", **POD)
        ),
    ],
    "AuditBufferFilling": [
        Case(series("fluentbit_output_chunk_available_capacity_percent", "15x60", name="s3.0", **POD), fires=(POD,)),
        Case(series("fluentbit_output_chunk_available_capacity_percent", "25x60", name="s3.0", **POD)),
    ],
    "AuditShipperUnavailable": [
        Case(
            series("kube_daemonset_status_number_unavailable", "1x60", namespace="acme-audit-logs", daemonset="acme-audit-logs", **KSM)
            | series("kube_deployment_status_replicas_unavailable", "0x60", namespace="acme-audit", deployment="acme-audit-events", **KSM),
            fires=({"namespace": "acme-audit-logs", "daemonset": "acme-audit-logs", "workload": "acme-audit-logs", **KSM},),
        ),
        Case(
            series("kube_deployment_status_replicas_unavailable", "1x60", namespace="acme-audit", deployment="acme-audit-events", **KSM),
            fires=({"namespace": "acme-audit", "deployment": "acme-audit-events", "workload": "acme-audit-events", **KSM},),
        ),
        Case(
            series("kube_daemonset_status_number_unavailable", "0x60", namespace="acme-audit-logs", daemonset="acme-audit-logs", **KSM)
            | series("kube_daemonset_status_number_unavailable", "3x60", namespace="other-audit-logs", daemonset="other-audit-logs", **KSM)
        ),
    ],
    "GpuFramebufferNearlyFull": [
        Case(series("DCGM_FI_DEV_FB_USED", "79000x60", **GPU) | series("DCGM_FI_DEV_FB_FREE", "1000x60", **GPU), fires=(GPU,)),
        Case(series("DCGM_FI_DEV_FB_USED", "72000x60", **GPU) | series("DCGM_FI_DEV_FB_FREE", "8000x60", **GPU)),
    ],
    "GpuTemperatureHigh": [
        Case(series("DCGM_FI_DEV_GPU_TEMP", "90x60", **GPU), fires=(GPU,)),
        Case(series("DCGM_FI_DEV_GPU_TEMP", "84x60", **GPU)),
    ],
    "GpuXidError": [
        Case(series("DCGM_FI_DEV_XID_ERRORS", "0x5 79x55", **GPU), fires=(GPU,), value="79"),
        Case(series("DCGM_FI_DEV_XID_ERRORS", "0x60", **GPU)),
    ],
    "ModelQueueBacklog": [
        Case(
            series("vllm:num_requests_waiting", "12x60", pod="acme-mistral-small-0", **MODEL)
            | series("vllm:num_requests_waiting", "14x60", pod="acme-mistral-small-1", **MODEL),
            fires=({"namespace": "acme-serving", "model_name": "mistral-small"},),
        ),
        Case(
            series("vllm:num_requests_waiting", "12x60", pod="acme-mistral-small-0", **MODEL)
            | series("vllm:num_requests_waiting", "6x60", pod="acme-mistral-small-1", **MODEL)
            | series("vllm:num_requests_waiting", "50x60", pod="x-0", **{**MODEL, "namespace": "other"})
        ),
    ],
    "ModelTimeToFirstTokenSlow": [
        Case(
            ttft({"0.5": "0x60", "1.0": "0x60", "2.5": "0x60", "5.0": "0+10x60", "+Inf": "0+10x60"}),
            fires=({"namespace": "acme-serving", "model_name": "mistral-small"},),
        ),
        Case(ttft({"0.5": "0x60", "1.0": "0+10x60", "2.5": "0+10x60", "5.0": "0+10x60", "+Inf": "0+10x60"})),
    ],
    "ModelServerErrors": [
        Case(http(s5xx="0+1x60", s2xx="0+9x60"), fires=({"namespace": "acme-serving", "service": "acme-mistral-small"},)),
        Case(http(s5xx="0+1x60", s2xx="0+99x60")),
        Case(http(s4xx="0+5x60", s2xx="0+5x60", s5xx="0x60")),
    ],
    "ModelKvCacheFull": [
        Case(
            series("vllm:kv_cache_usage_perc", "0.97x60", pod="acme-mistral-small-0", **MODEL),
            fires=({"namespace": "acme-serving", "model_name": "mistral-small", "pod": "acme-mistral-small-0"},),
        ),
        Case(series("vllm:kv_cache_usage_perc", "0.9x60", pod="acme-mistral-small-0", **MODEL)),
    ],
}  # fmt: skip


def _minutes(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1 / 60, "m": 1, "h": 60}[duration[-1]]  # type: ignore[return-value]


def _render(template: str, labels: dict[str, str], value: str) -> str:
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)
    return text.replace("{{ $value }}", value)


def promtool_tests(args: ObservabilityArgs) -> list[dict[str, Any]]:
    """promtool unit tests: every case at its time, and every alert still pending just before its `for`."""
    rules = {r["alert"]: r for o in build_alert_rules(args) for g in o["spec"]["groups"] for r in g["rules"]}
    tests = []
    for alert, cases in SCENARIOS.items():
        rule = rules[alert]
        wait = _minutes(rule["for"])
        for number, case in enumerate(cases, 1):
            evaluations = [(case.at or f"{wait + 10}m", case.fires)]
            if case.fires and wait:
                evaluations.append((f"{wait - 1}m", ()))  # condition true, `for` not yet elapsed
            tests.append(
                {
                    "name": f"{alert} case {number}",
                    "interval": "1m",
                    "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                    "alert_rule_test": [
                        {
                            "eval_time": at,
                            "alertname": alert,
                            "exp_alerts": [
                                {
                                    "exp_labels": {**fired, **rule["labels"]},
                                    "exp_annotations": {
                                        **rule["annotations"],
                                        "description": _render(
                                            rule["annotations"]["description"], fired, case.value
                                        ),
                                    },
                                }
                                for fired in fires
                            ],
                        }
                        for at, fires in evaluations
                    ],
                }
            )
    return tests


@pytest.fixture(scope="module")
def promtool() -> Path:
    """The pinned promtool, which `make test` builds before the tests run (`make promtool`).

    Skipped when missing, except under CI=true, where a missing tool fails: a unit test never builds
    or downloads anything itself.
    """
    from toolchain.build import binary_path, load_tools

    found = binary_path(load_tools()["promtool"])
    if found:
        return found
    message = "promtool not built: run `make promtool` (about 12 minutes, once)"
    if IN_CI:
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


def _write_rules(directory: Path, args: ObservabilityArgs) -> Path:
    groups = [g for o in build_alert_rules(args) for g in o["spec"]["groups"]]
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def _run(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    assert set(SCENARIOS) == set(alert_expressions(ARGS))
    for alert, cases in SCENARIOS.items():
        assert any(c.fires for c in cases) and any(not c.fires for c in cases), alert


def test_promtool_accepts_the_rules(promtool: Path, tmp_path: Path) -> None:
    _write_rules(tmp_path, ARGS)
    run = _run(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 12 rules found" in run.stdout


def test_each_alert_fires_on_its_samples_and_stays_quiet_otherwise(promtool: Path, tmp_path: Path) -> None:
    _write_rules(tmp_path, ARGS)
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": promtool_tests(ARGS)}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    run = _run(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_catches_a_renamed_metric(promtool: Path, tmp_path: Path) -> None:
    """The samples are the exporters' names: rename one in a rule and its firing case fails."""
    _write_rules(tmp_path, ARGS)
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules.read_text().replace("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_GPU_TEMPERATURE"))
    only = [t for t in promtool_tests(ARGS) if t["name"].startswith("GpuTemperatureHigh")]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": only}))
    run = _run(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "GpuTemperatureHigh case 1" in run.stdout + run.stderr


# --- component ---------------------------------------------------------------------------------------
@pulumi.runtime.test
def test_the_component_registers_each_object_under_itself_with_the_provider(mocks: Recorder) -> None:
    provider = pulumi_kubernetes.Provider("k8s", kubeconfig="apiVersion: v1")
    component = Observability("acme-observability", ARGS, provider=provider)

    def check(values: list[Any]) -> None:
        alerts, *urns = values
        assert sorted((r.typ, r.name) for r in mocks.resources if r.typ.startswith("kubernetes:")) == [
            ("kubernetes:core/v1:ConfigMap", "acme-observability/monitoring/acme-dashboard-audit-trail"),
            ("kubernetes:core/v1:ConfigMap", "acme-observability/monitoring/acme-dashboard-gpus"),
            ("kubernetes:core/v1:ConfigMap", "acme-observability/monitoring/acme-dashboard-model-servers"),
            (
                "kubernetes:monitoring.coreos.com/v1:PodMonitor",
                "acme-observability/monitoring/acme-audit-shippers",
            ),
            (
                "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
                "acme-observability/monitoring/acme-alerts-audit-shipping",
            ),
            (
                "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
                "acme-observability/monitoring/acme-alerts-gpu",
            ),
            (
                "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
                "acme-observability/monitoring/acme-alerts-model-serving",
            ),
        ]
        registered = [
            r for r in mocks.resources if r.typ.startswith("kubernetes:") and "Provider" not in r.typ
        ]
        assert all(r.provider and "::k8s::" in r.provider for r in registered)
        assert all("sovstack:observability:Observability$" in urn for urn in urns)
        gpu_rule = mocks.named("acme-observability/monitoring/acme-alerts-gpu")
        assert gpu_rule.inputs["spec"] == OBJECTS[1]["spec"]
        assert len(alerts) == 12 and alerts[0] == "AuditShippingStalled"
        assert len(component.rules) == 3 and len(component.dashboards) == 3

    return pulumi.Output.all(component.alerts, *[o.urn for o in component.objects]).apply(check)


def test_bad_args_register_nothing(mocks: Recorder) -> None:
    bad = ObservabilityArgs.model_construct(**{**dict(ARGS), "serving_namespace": "Bad_Namespace"})
    # Run as a program, so every registration started has reached the mock before the assertion.
    with pytest.raises(ValueError, match="serving_namespace: 'Bad_Namespace' is not a DNS-1123 label"):
        pulumi.runtime.test(lambda: Observability("acme-observability", bad, provider=None))()
    assert mocks.resources == []


@pytest.mark.parametrize(
    ("alerts", "dashboards", "kinds"),
    [
        (True, False, ["PrometheusRule", "PrometheusRule", "PrometheusRule", "PodMonitor"]),
        (False, True, ["PodMonitor", "ConfigMap", "ConfigMap", "ConfigMap"]),
    ],
)
def test_alerts_and_dashboards_can_be_left_out(alerts: bool, dashboards: bool, kinds: list[str]) -> None:
    args = ARGS.model_copy(update={"alerts": alerts, "dashboards": dashboards})
    assert [o["kind"] for o in build_observability(args)] == kinds


def test_neither_alerts_nor_dashboards_is_refused() -> None:
    with pytest.raises(ValueError, match="alerts, dashboards: build at least one of them"):
        ObservabilityArgs(**{**ARGS.model_dump(), "alerts": False, "dashboards": False})
