"""Pure builder for alerting and dashboards: PrometheusRule groups for audit shipping, GPUs and model
servers, the PodMonitor that scrapes the audit shippers, and Grafana dashboards as sidecar ConfigMaps.

Thresholds and their reasons live in `components/data/alerts.yaml`, the metric names every expression
may read in `components/data/metrics.yaml`; building refuses an expression that reads any other name.
Dashboards are in `components/builders/observability_dashboards.py`. No Pulumi import.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sovstack.components.builders.audit_sink import COMPONENT as AUDIT_SINK_COMPONENT
from sovstack.components.builders.observability_dashboards import (
    DASHBOARDS,
    AlertGroup,
    dashboard_expressions,
    dashboard_models,
)
from sovstack.components.builders.promql import unknown_metrics
from sovstack.components.kube import Manifest, dns_name, is_dns_label, standard_labels
from sovstack.components.provenance import load_data_file

COMPONENT = "observability"
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
ALERTS_FILE = DATA_DIR / "alerts.yaml"
METRICS_FILE = DATA_DIR / "metrics.yaml"
MONITORING_API = "monitoring.coreos.com/v1"
GRAFANA_SIDECAR_LABEL = "grafana_dashboard"
ALERT_GROUPS: tuple[AlertGroup, ...] = ("audit-shipping", "gpu", "model-serving")
#: The audit shipper's output: `s3.0`, the only output, named after its plugin (no alias is set).
S3_OUTPUT = "s3.*"
AUDIT_METRICS_PATH = "/api/v2/metrics/prometheus"
_DURATION = re.compile(r"^[1-9][0-9]*[smh]$|^0m$")


# ------------------------------------------------------------------------------------------- data
class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Threshold(_Data):
    value: float | str
    reason: str = Field(min_length=20)


class AlertFacts(_Data):
    severity: Literal["critical", "warning"]
    for_: str = Field(alias="for", pattern=_DURATION.pattern)
    runbook: str = Field(pattern=r"^[a-z0-9-]+$")
    summary: str
    reason: str = Field(min_length=20)
    thresholds: dict[str, Threshold]


class AlertCatalog(_Data):
    source: str
    groups: dict[AlertGroup, dict[str, AlertFacts]]

    @model_validator(mode="after")
    def _unique_thresholds(self) -> AlertCatalog:
        seen: set[str] = set()
        for alerts in self.groups.values():
            for facts in alerts.values():
                repeated = seen & set(facts.thresholds)
                if repeated:
                    raise ValueError(f"threshold {sorted(repeated)[0]!r} is defined twice")
                seen |= set(facts.thresholds)
        return self

    def thresholds(self) -> dict[str, Threshold]:
        return {
            key: threshold
            for alerts in self.groups.values()
            for facts in alerts.values()
            for key, threshold in facts.thresholds.items()
        }


class Exporter(_Data):
    version: str
    scrape: str
    labels: list[str]
    source: str = Field(pattern=r"^https://")
    checked: str = Field(min_length=3, description="How the metric names were read from the source.")
    metrics: dict[str, dict[str, str]]


class MetricCatalog(_Data):
    exporters: dict[str, Exporter]

    def types(self) -> dict[str, str]:
        """Every listed metric name and its type, across exporters."""
        return {
            name: facts["type"]
            for exporter in self.exporters.values()
            for name, facts in exporter.metrics.items()
        }


@cache
def alert_catalog() -> AlertCatalog:
    """`components/data/alerts.yaml`, validated once."""
    return AlertCatalog.model_validate(load_data_file(ALERTS_FILE, keep=False, unique_keys=True))


@cache
def metric_catalog() -> MetricCatalog:
    """`components/data/metrics.yaml`, validated once."""
    return MetricCatalog.model_validate(load_data_file(METRICS_FILE, keep=False, unique_keys=True))


# ------------------------------------------------------------------------------------------- args
class ObservabilityArgs(BaseModel):
    """Arguments of `Observability`: whose alerts and dashboards, where they go, which to build."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customer: str = Field(description="Customer key (DNS-1123 label); prefixes every name. Required.")
    region: str = Field(description="sovstack region key; stamped on labels. Required.")
    residency_profile: str = Field(description="Residency profile name; stamped on labels. Required.")
    namespace: str = Field(
        default="monitoring",
        description="Namespace of the PrometheusRules, the PodMonitor and the dashboard ConfigMaps: one the "
        "cluster's Prometheus Operator and Grafana sidecar watch. Default `monitoring`.",
    )
    serving_namespace: str = Field(
        description="Namespace of the model servers (ModelServingArgs.namespace); the model-serving "
        "alerts and dashboard select it. Required."
    )
    audit_namespace: str = Field(
        description="Namespace of the audit `events` shipper Deployment (AuditSinkArgs.namespace). Required."
    )
    audit_logs_namespace: str = Field(
        description="Namespace of the audit `logs` shipper DaemonSet (AuditSinkArgs.logs_namespace); must "
        "differ from `audit_namespace`. Required."
    )
    groups: tuple[AlertGroup, ...] = Field(
        default=("audit-shipping", "model-serving"),
        description="Alert groups (and their dashboards) to build: `audit-shipping`, `gpu`, "
        "`model-serving`. Add `gpu` only where the GPU Operator's DCGM exporter runs and is scraped: "
        "without it the GPU alerts could never fire. Default audit-shipping and model-serving.",
    )
    thresholds: dict[str, float | str] = Field(
        default_factory=dict,
        description="Overrides of thresholds in data/alerts.yaml, by key (`gpu_temperature_celsius: 83`); "
        "a duration stays a duration (`15m`), a number a number. Unknown keys are refused.",
    )
    prometheus_selector_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels on the PrometheusRules and the PodMonitor so the cluster's Prometheus "
        "selects them (kube-prometheus-stack selects `release: <its release name>` unless its "
        "`*SelectorNilUsesHelmValues` are false). Default none.",
    )
    scrape_audit_shippers: bool = Field(
        default=True,
        description="Build a PodMonitor scraping the audit shippers' Fluent Bit metrics (port `http`, "
        f"{AUDIT_METRICS_PATH}); the audit-shipping alerts need them. The shippers' namespaces must let "
        "the monitoring namespace in on port 2020. Default true.",
    )
    alerts: bool = Field(default=True, description="Build the PrometheusRules. Default true.")
    dashboards: bool = Field(default=True, description="Build the dashboard ConfigMaps. Default true.")
    runbook_base_url: str = Field(
        default="docs/operations.md",
        description="Where the runbooks live; each alert's `runbook_url` is `<this>#<section>`. Point it at "
        "your copy of docs/operations.md (a URL) so a link in a page opens. Default docs/operations.md.",
    )

    @model_validator(mode="after")
    def _check(self) -> ObservabilityArgs:
        validate_observability_args(self)
        return self


def validate_observability_args(args: ObservabilityArgs) -> None:
    """Every check, naming the field; the shell calls it again before it registers anything."""
    for field in ("customer", "namespace", "serving_namespace", "audit_namespace", "audit_logs_namespace"):
        if not is_dns_label(getattr(args, field)):
            raise ValueError(f"{field}: {getattr(args, field)!r} is not a DNS-1123 label")
    if args.audit_namespace == args.audit_logs_namespace:
        raise ValueError("audit_logs_namespace: must differ from audit_namespace (as in AuditSinkArgs)")
    if not args.groups:
        raise ValueError("groups: name at least one of " + ", ".join(ALERT_GROUPS))
    if not (args.alerts or args.dashboards):
        raise ValueError("alerts, dashboards: build at least one of them")
    if len(set(args.groups)) != len(args.groups):
        raise ValueError(f"groups: {list(args.groups)} names a group twice")
    known = alert_catalog().thresholds()
    for key, value in sorted(args.thresholds.items()):
        if key not in known:
            raise ValueError(f"thresholds.{key}: unknown threshold; known: {', '.join(sorted(known))}")
        default = known[key].value
        if isinstance(default, str) and not (isinstance(value, str) and _DURATION.match(value)):
            raise ValueError(f"thresholds.{key}: {value!r} is not a duration like {default!r}")
        if not isinstance(default, str) and (isinstance(value, str) or value < 0):
            raise ValueError(f"thresholds.{key}: {value!r} is not a number >= 0")


def threshold_values(args: ObservabilityArgs) -> dict[str, float | str]:
    """Every threshold in effect: data/alerts.yaml's values with the args' overrides."""
    values = {key: threshold.value for key, threshold in alert_catalog().thresholds().items()}
    return {**values, **args.thresholds}


# ----------------------------------------------------------------------------------------- promql
def _number(value: float | str) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _selector(metric: str, **matchers: str) -> str:
    """`metric{label="value", label=~"regex"}`: a key ending in `__re` is a regex matcher."""
    parts = []
    for key, value in matchers.items():
        label, _, regex = key.partition("__")
        parts.append(f'{label}{"=~" if regex else "="}"{value}"')
    return f"{metric}{{{', '.join(parts)}}}" if parts else metric


def audit_shipper_name(customer: str, workload: Literal["events", "logs"]) -> str:
    """The audit shipper's object name, as components/builders/audit_sink.py `workload_name` builds it."""
    return dns_name(customer, "audit", workload)


def alert_expressions(args: ObservabilityArgs) -> dict[str, str]:
    """The PromQL expression of every alert, by alert name (every group, whatever `groups` says)."""
    t = threshold_values(args)
    audit = {"namespace__re": f"{args.audit_namespace}|{args.audit_logs_namespace}"}
    s3 = {**audit, "name__re": S3_OUTPUT}
    serving = {"namespace": args.serving_namespace}
    api = {**serving, "handler__re": "/v1/.*"}
    by_pod = "sum by (namespace, pod)"
    window = t["audit_stall_window"]
    return {
        "AuditShippingStalled": (
            f"({by_pod} (increase({_selector('fluentbit_input_records_total', **audit)}[{window}])) > 0)"
            " unless on (namespace, pod) "
            f"({by_pod} (increase({_selector('fluentbit_output_proc_records_total', **s3)}[{window}])) > 0)"
        ),
        "AuditShippingRetrying": (
            f"{by_pod} (increase({_selector('fluentbit_output_retries_total', **s3)}[15m]))"
            f" > {_number(t['audit_retries_per_15m'])}"
        ),
        "AuditRecordsDropped": (
            f"({by_pod} (increase({_selector('fluentbit_output_retries_failed_total', **s3)}[15m])) > 0)"
            f" or ({by_pod} (increase({_selector('fluentbit_output_dropped_records_total', **s3)}[15m])) > 0)"
        ),
        "AuditBufferFilling": (
            "100 - min by (namespace, pod) "
            f"({_selector('fluentbit_output_chunk_available_capacity_percent', **s3)})"
            f" > {_number(t['audit_buffer_used_percent'])}"
        ),
        # One `workload` label for both, so the alert reads the same for the DaemonSet and the Deployment.
        "AuditShipperUnavailable": (
            "label_replace("
            + _selector(
                "kube_daemonset_status_number_unavailable",
                namespace=args.audit_logs_namespace,
                daemonset=audit_shipper_name(args.customer, "logs"),
            )
            + f' > {_number(t["audit_unavailable_pods"])}, "workload", "$1", "daemonset", "(.+)")'
            + " or label_replace("
            + _selector(
                "kube_deployment_status_replicas_unavailable",
                namespace=args.audit_namespace,
                deployment=audit_shipper_name(args.customer, "events"),
            )
            + f' > {_number(t["audit_unavailable_pods"])}, "workload", "$1", "deployment", "(.+)")'
        ),
        "GpuFramebufferNearlyFull": (
            "100 * DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)"
            f" > {_number(t['gpu_framebuffer_used_percent'])}"
        ),
        "GpuTemperatureHigh": f"DCGM_FI_DEV_GPU_TEMP > {_number(t['gpu_temperature_celsius'])}",
        "GpuXidError": "DCGM_FI_DEV_XID_ERRORS > 0",
        "ModelQueueBacklog": (
            f"avg by (namespace, model_name) ({_selector('vllm:num_requests_waiting', **serving)})"
            f" > {_number(t['model_waiting_requests_per_replica'])}"
        ),
        "ModelTimeToFirstTokenSlow": (
            "histogram_quantile(0.95, sum by (namespace, model_name, le) "
            f"(rate({_selector('vllm:time_to_first_token_seconds_bucket', **serving)}[5m])))"
            f" > {_number(t['model_ttft_p95_seconds'])}"
        ),
        "ModelServerErrors": (
            "sum by (namespace, service) "
            f"(rate({_selector('http_requests_total', **api, status='5xx')}[5m]))"
            f" / sum by (namespace, service) (rate({_selector('http_requests_total', **api)}[5m]))"
            f" > {_number(t['model_error_ratio'])}"
        ),
        "ModelKvCacheFull": (
            f"max by (namespace, model_name, pod) ({_selector('vllm:kv_cache_usage_perc', **serving)})"
            f" > {_number(t['model_kv_cache_usage_ratio'])}"
        ),
    }


def alert_descriptions(args: ObservabilityArgs) -> dict[str, str]:
    """The `description` annotation of every alert: Prometheus templates over the alert's labels."""
    t = threshold_values(args)
    pod = "{{ $labels.namespace }}/{{ $labels.pod }}"
    gpu = "GPU {{ $labels.gpu }} ({{ $labels.modelName }}) on {{ $labels.Hostname }}"
    model = "{{ $labels.model_name }} in {{ $labels.namespace }}"
    return {
        "AuditShippingStalled": f"{pod} read audit records but its s3 output took none in {t['audit_stall_window']}.",
        "AuditShippingRetrying": (
            f"{pod} retried S3 uploads more than {_number(t['audit_retries_per_15m'])} times in 15m."
        ),
        "AuditRecordsDropped": f"{pod} gave up on or dropped audit records in the last 15m.",
        "AuditBufferFilling": (
            f"{pod} has used more than {_number(t['audit_buffer_used_percent'])}% of its s3 output's "
            "storage.total_limit_size; past 100% the oldest records are dropped."
        ),
        "AuditShipperUnavailable": (
            "{{ $labels.namespace }}/{{ $labels.workload }} has unavailable pods: part of the audit trail "
            "is not being shipped."
        ),
        "GpuFramebufferNearlyFull": (
            f"{gpu} uses more than {_number(t['gpu_framebuffer_used_percent'])}% of its framebuffer memory."
        ),
        "GpuTemperatureHigh": f"{gpu} is above {_number(t['gpu_temperature_celsius'])} C.",
        "GpuXidError": f"{gpu} reported XID {{{{ $value }}}}.",
        "ModelQueueBacklog": (
            f"{model} has more than {_number(t['model_waiting_requests_per_replica'])} waiting requests "
            "per replica."
        ),
        "ModelTimeToFirstTokenSlow": (
            f"{model}: 95th percentile time to first token above {_number(t['model_ttft_p95_seconds'])} s."
        ),
        "ModelServerErrors": (
            "{{ $labels.namespace }}/{{ $labels.service }} answers more than "
            f"{_number(float(t['model_error_ratio']) * 100)}% of API requests with 5xx."
        ),
        "ModelKvCacheFull": (
            f"{model} ({{{{ $labels.pod }}}}): KV cache above "
            f"{_number(float(t['model_kv_cache_usage_ratio']) * 100)}% full."
        ),
    }


def check_metric_names(expressions: dict[str, str]) -> None:
    """Refuse any expression that reads a metric data/metrics.yaml does not list, naming it."""
    known = metric_catalog().types()
    for name, expr in sorted(expressions.items()):
        unknown = unknown_metrics([expr], known)
        if unknown:
            raise ValueError(
                f"{name}: reads {', '.join(unknown)}, not listed in components/data/metrics.yaml"
            )


# ---------------------------------------------------------------------------------------- objects
def _labels(args: ObservabilityArgs, name: str) -> dict[str, str]:
    return standard_labels(
        name=name,
        component=COMPONENT,
        customer=args.customer,
        region=args.region,
        residency=args.residency_profile,
    )


def rule_name(args: ObservabilityArgs, group: AlertGroup) -> str:
    return dns_name(args.customer, "alerts", group)


def build_alert_rules(args: ObservabilityArgs) -> list[Manifest]:
    """One PrometheusRule per alert group in `args.groups`, in ALERT_GROUPS order."""
    expressions = alert_expressions(args)
    check_metric_names(expressions)
    descriptions = alert_descriptions(args)
    catalog = alert_catalog()
    rules: list[Manifest] = []
    for group in (g for g in ALERT_GROUPS if g in args.groups):
        name = rule_name(args, group)
        alerts = [
            {
                "alert": alert,
                "expr": expressions[alert],
                "for": facts.for_,
                "labels": {"severity": facts.severity, "sovstack_customer": args.customer},
                "annotations": {
                    "summary": facts.summary,
                    "description": descriptions[alert],
                    "runbook_url": f"{args.runbook_base_url}#{facts.runbook}",
                },
            }
            for alert, facts in catalog.groups[group].items()
        ]
        rules.append(
            {
                "apiVersion": MONITORING_API,
                "kind": "PrometheusRule",
                "metadata": {
                    "name": name,
                    "namespace": args.namespace,
                    "labels": {**args.prometheus_selector_labels, **_labels(args, name)},
                },
                "spec": {"groups": [{"name": f"sovstack.{group}", "rules": alerts}]},
            }
        )
    return rules


def build_audit_pod_monitor(args: ObservabilityArgs) -> Manifest:
    """Scrapes the Fluent Bit metrics (storage metrics included) of both audit shippers."""
    name = dns_name(args.customer, "audit", "shippers")
    return {
        "apiVersion": MONITORING_API,
        "kind": "PodMonitor",
        "metadata": {
            "name": name,
            "namespace": args.namespace,
            "labels": {**args.prometheus_selector_labels, **_labels(args, name)},
        },
        "spec": {
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/component": AUDIT_SINK_COMPONENT,
                    "sovstack.io/customer": args.customer,
                }
            },
            "namespaceSelector": {"matchNames": sorted({args.audit_namespace, args.audit_logs_namespace})},
            "podMetricsEndpoints": [{"port": "http", "path": AUDIT_METRICS_PATH, "interval": "30s"}],
        },
    }


def dashboard_name(args: ObservabilityArgs, group: AlertGroup) -> str:
    return dns_name(args.customer, "dashboard", DASHBOARDS[group].slug)


def build_dashboard_config_maps(args: ObservabilityArgs) -> list[Manifest]:
    """One ConfigMap per dashboard, in ALERT_GROUPS order, labelled for Grafana's dashboard sidecar.

    The sidecar writes each data key as a file into one folder, so the key carries the customer too.
    """
    models = dashboard_models(
        customer=args.customer,
        groups=[g for g in ALERT_GROUPS if g in args.groups],
        serving_namespace=args.serving_namespace,
        audit_namespace=args.audit_namespace,
        audit_logs_namespace=args.audit_logs_namespace,
        events_deployment=audit_shipper_name(args.customer, "events"),
        logs_daemonset=audit_shipper_name(args.customer, "logs"),
    )
    check_metric_names(dashboard_expressions(models))
    config_maps: list[Manifest] = []
    for group, model in models.items():
        name = dashboard_name(args, group)
        config_maps.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "namespace": args.namespace,
                    "labels": {**_labels(args, name), GRAFANA_SIDECAR_LABEL: "1"},
                },
                "data": {f"{name}.json": json.dumps(model, sort_keys=True, indent=2) + "\n"},
            }
        )
    return config_maps


def build_observability(args: ObservabilityArgs) -> list[Manifest]:
    """PrometheusRules (with alerts), the PodMonitor (with audit-shipping and scrape_audit_shippers),
    dashboards (with dashboards)."""
    objects = build_alert_rules(args) if args.alerts else []
    if "audit-shipping" in args.groups and args.scrape_audit_shippers:
        objects.append(build_audit_pod_monitor(args))
    return [*objects, *(build_dashboard_config_maps(args) if args.dashboards else [])]


def every_expression(objects: list[Manifest]) -> dict[str, str]:
    """Every PromQL expression in built objects: alerts by alert name, panels by `<dashboard>/<title>/<refId>`."""
    found: dict[str, str] = {}
    for obj in objects:
        if obj["kind"] == "PrometheusRule":
            for group in obj["spec"]["groups"]:
                found.update({rule["alert"]: rule["expr"] for rule in group["rules"]})
        elif obj["kind"] == "ConfigMap":
            for key, text in obj["data"].items():
                found.update(dashboard_expressions({key: json.loads(text)}))
    return found
