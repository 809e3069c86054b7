"""Grafana dashboards for model servers, GPUs and the audit trail, as data: each a list of panels, each
panel a title, a unit and its PromQL queries, laid out two to a row. No Pulumi import.

`components/builders/observability.py` wraps each dashboard in a ConfigMap for Grafana's sidecar and
checks every query's metric names against components/data/metrics.yaml.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sovstack.components.kube import dns_name

AlertGroup = Literal["audit-shipping", "gpu", "model-serving"]
#: Grafana's JSON model version these dashboards are written in (Grafana 11).
SCHEMA_VERSION = 39
PANEL_WIDTH = 12
PANEL_HEIGHT = 8
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
REF_IDS = "ABCDEFGH"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str  # a Grafana unit id: short, s, percent, percentunit, reqps, celsius, watt, mbytes
    queries: tuple[Query, ...]
    description: str = ""


@dataclass(frozen=True)
class DashboardSpec:
    slug: str
    title: str


DASHBOARDS: dict[AlertGroup, DashboardSpec] = {
    "audit-shipping": DashboardSpec("audit-trail", "Audit trail shipping"),
    "gpu": DashboardSpec("gpus", "GPUs"),
    "model-serving": DashboardSpec("model-servers", "Model servers"),
}


def _rate(metric: str, selector: str, by: str, window: str = "5m") -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{window}]))"


def model_server_panels(namespace: str) -> list[Panel]:
    ns = f'namespace="{namespace}"'
    api = f'{ns}, handler=~"/v1/.*"'

    def quantile(metric: str, q: str) -> Query:
        expr = f"histogram_quantile({q}, sum by (model_name, le) (rate({metric}_bucket{{{ns}}}[5m])))"
        return Query(expr, f"p{q[2:]} {{{{model_name}}}}")

    return [
        Panel(
            "Requests waiting and running",
            "short",
            (
                Query(f"sum by (model_name) (vllm:num_requests_waiting{{{ns}}})", "waiting {{model_name}}"),
                Query(f"sum by (model_name) (vllm:num_requests_running{{{ns}}})", "running {{model_name}}"),
            ),
            "Waiting requests are the queue KEDA scales on; alert ModelQueueBacklog.",
        ),
        Panel(
            "Time to first token",
            "s",
            (
                quantile("vllm:time_to_first_token_seconds", "0.50"),
                quantile("vllm:time_to_first_token_seconds", "0.95"),
            ),
            "Queueing plus prefill; alert ModelTimeToFirstTokenSlow.",
        ),
        Panel(
            "Inter-token latency",
            "s",
            (
                quantile("vllm:inter_token_latency_seconds", "0.50"),
                quantile("vllm:inter_token_latency_seconds", "0.95"),
            ),
        ),
        Panel(
            "End-to-end request latency",
            "s",
            (
                quantile("vllm:e2e_request_latency_seconds", "0.50"),
                quantile("vllm:e2e_request_latency_seconds", "0.95"),
            ),
        ),
        Panel(
            "API requests by status",
            "reqps",
            (Query(_rate("http_requests_total", api, "service, status"), "{{service}} {{status}}"),),
            "OpenAI API handlers only; alert ModelServerErrors on the 5xx share.",
        ),
        Panel(
            "Finished requests by reason",
            "reqps",
            (
                Query(
                    _rate("vllm:request_success_total", ns, "model_name, finished_reason"),
                    "{{model_name}} {{finished_reason}}",
                ),
            ),
            "stop and length are normal ends, abort a client that left, error a failure (a 500).",
        ),
        Panel(
            "KV cache usage",
            "percentunit",
            (Query(f"max by (pod) (vllm:kv_cache_usage_perc{{{ns}}})", "{{pod}}"),),
            "1 is full: vLLM preempts requests from there; alert ModelKvCacheFull.",
        ),
        Panel(
            "Tokens per second and preemptions",
            "short",
            (
                Query(_rate("vllm:prompt_tokens_total", ns, "model_name"), "prompt {{model_name}}"),
                Query(_rate("vllm:generation_tokens_total", ns, "model_name"), "generated {{model_name}}"),
                Query(_rate("vllm:num_preemptions_total", ns, "model_name"), "preemptions {{model_name}}"),
            ),
        ),
    ]


def gpu_panels() -> list[Panel]:
    gpu = "{{Hostname}} GPU {{gpu}}"
    return [
        Panel(
            "Framebuffer memory used",
            "percent",
            (Query("100 * DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)", gpu),),
            "vLLM reserves about 90% up front by design; alert GpuFramebufferNearlyFull.",
        ),
        Panel("Temperature", "celsius", (Query("DCGM_FI_DEV_GPU_TEMP", gpu),), "Alert GpuTemperatureHigh."),
        Panel("Utilisation", "percent", (Query("DCGM_FI_DEV_GPU_UTIL", gpu),)),
        Panel("Tensor pipe active", "percentunit", (Query("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", gpu),)),
        Panel("Power draw", "watt", (Query("DCGM_FI_DEV_POWER_USAGE", gpu),)),
        Panel(
            "Last XID error",
            "short",
            (Query("DCGM_FI_DEV_XID_ERRORS", gpu),),
            "0 means none since the exporter started; alert GpuXidError.",
        ),
    ]


def audit_panels(
    audit_namespace: str, audit_logs_namespace: str, events_deployment: str, logs_daemonset: str
) -> list[Panel]:
    audit = f'namespace=~"{audit_namespace}|{audit_logs_namespace}"'
    s3 = f'{audit}, name=~"s3.*"'
    logs = f'namespace="{audit_logs_namespace}", daemonset="{logs_daemonset}"'
    events = f'namespace="{audit_namespace}", deployment="{events_deployment}"'
    return [
        Panel(
            "Records read and handed to S3",
            "short",
            (
                Query(_rate("fluentbit_input_records_total", audit, "pod"), "read {{pod}}"),
                Query(_rate("fluentbit_output_proc_records_total", s3, "pod"), "to s3 {{pod}}"),
            ),
            "Records per second; the two lines should move together. Alert AuditShippingStalled.",
        ),
        Panel(
            "S3 retries, errors and losses",
            "short",
            (
                Query(_rate("fluentbit_output_retries_total", s3, "pod"), "retries {{pod}}"),
                Query(_rate("fluentbit_output_errors_total", s3, "pod"), "errors {{pod}}"),
                Query(_rate("fluentbit_output_retries_failed_total", s3, "pod"), "given up {{pod}}"),
                Query(_rate("fluentbit_output_dropped_records_total", s3, "pod"), "dropped {{pod}}"),
            ),
            "Given up and dropped are records lost; alerts AuditShippingRetrying, AuditRecordsDropped.",
        ),
        Panel(
            "Disk buffer used",
            "percent",
            (Query(f"100 - fluentbit_output_chunk_available_capacity_percent{{{s3}}}", "{{pod}}"),),
            "Share of storage.total_limit_size in use; at 100% the oldest records go. Alert "
            "AuditBufferFilling.",
        ),
        Panel(
            "Filesystem chunks",
            "short",
            (
                Query(f"sum by (pod) (fluentbit_storage_fs_chunks{{{audit}}})", "all {{pod}}"),
                Query(f"sum by (pod) (fluentbit_storage_fs_chunks_down{{{audit}}})", "on disk only {{pod}}"),
                Query(
                    f"sum by (pod) (fluentbit_input_storage_overlimit{{{audit}}})", "inputs paused {{pod}}"
                ),
            ),
        ),
        Panel(
            "Shipper pods unavailable",
            "short",
            (
                Query(f"kube_daemonset_status_number_unavailable{{{logs}}}", "logs unavailable"),
                Query(f"kube_daemonset_status_desired_number_scheduled{{{logs}}}", "logs desired"),
                Query(f"kube_deployment_status_replicas_unavailable{{{events}}}", "events unavailable"),
            ),
            "Alert AuditShipperUnavailable.",
        ),
    ]


def dashboard(uid: str, title: str, tags: Iterable[str], panels: list[Panel]) -> dict[str, Any]:
    """A Grafana dashboard JSON model: a Prometheus data-source variable and the panels, two to a row."""
    return {
        "annotations": {"list": []},
        "editable": False,
        "panels": [
            {
                "datasource": DATASOURCE,
                "description": panel.description,
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "gridPos": {
                    "h": PANEL_HEIGHT,
                    "w": PANEL_WIDTH,
                    "x": (index % 2) * PANEL_WIDTH,
                    "y": (index // 2) * PANEL_HEIGHT,
                },
                "id": index + 1,
                "targets": [
                    {"datasource": DATASOURCE, "expr": query.expr, "legendFormat": query.legend, "refId": ref}
                    for ref, query in zip(REF_IDS, panel.queries, strict=False)
                ],
                "title": panel.title,
                "type": "timeseries",
            }
            for index, panel in enumerate(panels)
        ],
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": sorted(tags),
        "templating": {
            "list": [
                {
                    "label": "Data source",
                    "name": "datasource",
                    "query": "prometheus",
                    "type": "datasource",
                }
            ]
        },
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "utc",
        "title": title,
        "uid": uid,
        "version": 1,
    }


def dashboard_models(
    *,
    customer: str,
    groups: Iterable[AlertGroup],
    serving_namespace: str,
    audit_namespace: str,
    audit_logs_namespace: str,
    events_deployment: str,
    logs_daemonset: str,
) -> dict[AlertGroup, dict[str, Any]]:
    """The dashboard of each group, by group; Grafana uids are at most 40 characters."""
    panels: dict[AlertGroup, list[Panel]] = {
        "audit-shipping": audit_panels(
            audit_namespace, audit_logs_namespace, events_deployment, logs_daemonset
        ),
        "gpu": gpu_panels(),
        "model-serving": model_server_panels(serving_namespace),
    }
    models: dict[AlertGroup, dict[str, Any]] = {}
    for group in groups:
        spec = DASHBOARDS[group]
        for panel in panels[group]:
            if len(panel.queries) > len(REF_IDS):
                raise ValueError(f"{spec.slug}: panel {panel.title!r} has more queries than refIds")
        models[group] = dashboard(
            dns_name(customer, spec.slug, max_length=40),
            f"{spec.title} ({customer})",
            ("sovstack", customer),
            panels[group],
        )
    return models


def dashboard_expressions(models: Mapping[Any, Mapping[str, Any]]) -> dict[str, str]:
    """Every query of the given dashboard models, keyed `<dashboard key>/<panel title>/<refId>`."""
    return {
        f"{key}/{panel['title']}/{target['refId']}": target["expr"]
        for key, model in models.items()
        for panel in model["panels"]
        for target in panel["targets"]
    }
