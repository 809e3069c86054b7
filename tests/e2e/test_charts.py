"""platform.yaml's `valuesKeys` exist in each pinned chart's own values.yaml (read from its Go module).

A key the chart does not have is silently ignored by Helm: the image would stay upstream while the
residency report says it comes from the mirror. The GPU Operator's keys are checked in the unit suite
against an extract of its values.yaml (tests/components/test_gpu_operator_values.py), since its
release tags are not served as a Go module.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sovstack.components.builders.platform import platform_facts
from tests.e2e.sources import CHART_SOURCES, _release_chart_files, module_dir, sources


def _has(values: Any, dotted: str) -> bool:
    node = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("key", sorted(CHART_SOURCES))
def test_every_values_key_is_in_the_pinned_charts_values(key: str) -> None:
    source = sources()[CHART_SOURCES[key]]
    files = _release_chart_files(key, module_dir(CHART_SOURCES[key]) / source["chart"])
    values = yaml.safe_load(files["values.yaml"]) or {}
    missing = [
        f"{image.name}: {path}"
        for image in platform_facts()[key].images
        for keys in image.values_keys
        for path in keys.values()
        if not _has(values, path)
    ]
    assert missing == [], f"{key}: keys absent from the chart's values.yaml"
