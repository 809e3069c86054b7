"""The report's schema check builds one validator per kind: it must find exactly what
`kubernetes_validate.validate(obj, version, strict=True)` finds, object by object."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from sovstack.infra.pipeline import load_stack
from sovstack.infra.schema_check import check_manifests
from tests.infra.conftest import EXAMPLES, STACKS_DIR


def library_verdict(objects: list[dict[str, Any]], version: str) -> tuple[int, list[str], list[str]]:
    """(checked, failures, unchecked kinds) with the library called once per object."""
    checked, failures, unchecked = 0, [], set()
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unchecked.add(obj["kind"])
            continue
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.path) or "(root)"
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {err.message} at {path}")
        checked += 1
    return checked, failures, sorted(unchecked)


def broken(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each Deployment, Service and ConfigMap once more, wrong in a way its schema refuses."""
    out = []
    for obj in objects:
        bad = copy.deepcopy(obj)
        bad["metadata"]["name"] += "-bad"
        if obj["kind"] == "Deployment":
            bad["spec"]["replicas"] = "two"
        elif obj["kind"] == "Service":
            bad["spec"]["ports"] = [{"port": "http", "unknown": 1}]
        elif obj["kind"] == "ConfigMap":
            bad["data"] = {"a": 1}
        else:
            continue
        out.append(bad)
    return out


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_check_finds_what_the_library_finds(example: str) -> None:
    loaded = load_stack(STACKS_DIR / f"Pulumi.{example}.yaml")
    assert loaded.composition is not None
    objects = loaded.composition.kubernetes_objects()
    objects = [*objects, *broken(objects)]
    for version in ("1.31", "1.33"):
        result = check_manifests(objects, version)
        checked, failures, unchecked = library_verdict(objects, version)
        assert result["ran"] is True
        assert (result["checked"], result["failures"], result["uncheckedKinds"]) == (
            checked,
            failures,
            unchecked,
        )
        assert failures, "the broken copies must fail"
