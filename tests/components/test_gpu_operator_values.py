"""The GPU Operator values sovstack sets exist in the pinned chart's own values.yaml.

Unit tests cannot download the chart: components/data/gpu-operator-values-keys.yaml is an extract of
its values.yaml at the pinned version, made by toolchain/chart_keys.py (its docstring gives the
command). A key the chart does not have is ignored by Helm without a word: a mirrored image would
still come from nvcr.io while the residency report says otherwise.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from sovstack.components.builders.gpu_cluster import mirrored_image_values
from sovstack.components.builders.gpu_cluster_args import load_cluster_facts
from toolchain.chart_keys import extract, repository_keys, values_keys

EXTRACT = Path(__file__).resolve().parents[2] / "components" / "data" / "gpu-operator-values-keys.yaml"


def _extract() -> dict[str, Any]:
    return dict(yaml.safe_load(EXTRACT.read_text(encoding="utf-8")))


def _dotted(values: dict[str, Any], prefix: str = "") -> list[str]:
    return values_keys(values, prefix)


def test_the_extraction_lists_leaf_keys_and_image_repositories() -> None:
    sample = """
operator: {repository: nvcr.io/nvidia, image: gpu-operator, initContainer: {}}
gdrcopy: {enabled: false, repository: nvcr.io/nvidia/cloud-native}
vgpuManager: {repository: "", driverManager: {repository: nvcr.io/nvidia/cloud-native}}
daemonsets: {tolerations: [{key: nvidia.com/gpu}]}
"""
    text = extract(sample, "gpu-operator", "v0.0.1", "https://example.org/values.yaml", dt.date(2026, 12, 1))
    document = yaml.safe_load(text)
    assert document["repositoryKeys"] == [
        "operator.repository",
        "gdrcopy.repository",
        "vgpuManager.repository",
        "vgpuManager.driverManager.repository",
    ]
    assert "operator.initContainer" in document["valuesKeys"]  # an empty map is a leaf, not a repository
    assert "daemonsets.tolerations" in document["valuesKeys"]
    assert (document["version"], document["retrieved"]) == ("v0.0.1", "2026-12-01")
    assert repository_keys({"a": {"repository": "x"}}) == ["a.repository"]


def test_the_extract_is_of_the_pinned_chart_version() -> None:
    facts = load_cluster_facts().gpu_operator
    document = _extract()
    assert (document["chart"], document["version"]) == (facts.name, facts.version)
    assert document["source"] == (
        f"https://github.com/NVIDIA/gpu-operator/blob/{facts.version}/deployments/gpu-operator/values.yaml"
    )


def test_mirrored_keys_are_exactly_the_charts_image_repositories() -> None:
    ours = list(load_cluster_facts().gpu_operator.image_repository_values)
    charts = _extract()["repositoryKeys"]
    assert sorted(ours) == sorted(charts)
    assert len(ours) == len(set(ours))
    # The defects this replaced: a misspelt key, two keys the chart no longer has, two it has.
    assert "gdrcopy.repository" in ours and "gdrCopy.repository" not in ours
    assert not {"operator.initContainer.repository", "kataManager.repository"} & set(ours)
    assert {"kataSandboxDevicePlugin.repository", "vgpuManager.driverManager.repository"} <= set(ours)


def test_every_value_sovstack_sets_is_a_key_of_the_chart() -> None:
    """Per-backend values, the Talos paths' values and the mirror's keys (the NFD subchart's own key aside:
    node-feature-discovery's values.yaml is not part of the gpu-operator chart)."""
    facts = load_cluster_facts()
    chart = set(_extract()["valuesKeys"])
    subchart = facts.gpu_operator.nfd_image_value.split(".")[0]
    ours = {k for b in facts.gpu_operator.backends.values() for k in _dotted(b.values)}
    ours |= {k for p in facts.talos_gpu_paths for k in _dotted(p.values)}
    ours |= {k for k in _dotted(mirrored_image_values("mirror.example/nvidia")) if not k.startswith(subchart)}
    assert sorted(ours - chart) == []
    assert {"driver.enabled", "toolkit.enabled", "hostPaths.driverInstallDir", "gdrcopy.repository"} <= ours
