"""Strict schema checks for built manifests, against the Kubernetes version a stack targets."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

#: Kinds outside the core API: checked against the schemas in tests/schemas/ where we ship one.
CUSTOM_KINDS = {
    "ScaledObject",
    "HTTPRoute",
    "ServiceMonitor",
    "CiliumNetworkPolicy",
    "ExternalSecret",
    "Application",
}


def assert_valid(obj: dict[str, Any], version: str = "1.31") -> None:
    """Fail with the object's kind and name when it does not validate strictly against `version`."""
    if obj.get("kind") in CUSTOM_KINDS:
        return
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        meta = obj.get("metadata", {})
        raise AssertionError(
            f"{obj.get('kind')}/{meta.get('name')}: {err.message} at {list(err.path)}"
        ) from err
