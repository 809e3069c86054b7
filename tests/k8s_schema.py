"""Strict schema checks for built manifests, against the Kubernetes version a stack targets.

kubernetes-validate ships the schemas of the core API only. Custom kinds (KEDA, Gateway API,
Prometheus Operator, Cilium, External Secrets, Argo CD) are not checked here: the end-to-end suite
sends every rendered object to a real kube-apiserver with those projects' own CRDs installed
(tests/e2e/test_render_accepted.py), which validates them against the CRDs' schemas.
`assert_valid` refuses a custom kind rather than passing it unchecked; `assert_all_valid` checks the
core objects of a list and returns the custom kinds it left to the API server, for callers to assert.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kubernetes_validate

#: Kinds outside the core API, validated against their CRDs by the API server in tests/e2e.
CUSTOM_KINDS = frozenset(
    {
        "Application",
        "BackendTrafficPolicy",
        "CiliumNetworkPolicy",
        "ClientTrafficPolicy",
        "ClusterSecretStore",
        "EnvoyExtensionPolicy",
        "EnvoyProxy",
        "ExternalSecret",
        "Gateway",
        "GatewayClass",
        "HTTPRoute",
        "HTTPRouteFilter",
        "PodMonitor",
        "PrometheusRule",
        "ScaledObject",
        "SecurityPolicy",
        "ServiceMonitor",
    }
)


def assert_valid(obj: dict[str, Any], version: str = "1.31") -> None:
    """Fail with the object's kind and name when it does not validate strictly against `version`."""
    if obj.get("kind") in CUSTOM_KINDS:
        raise AssertionError(
            f"{obj.get('kind')} has no schema in kubernetes-validate: use assert_all_valid, which leaves it "
            "to the API server in tests/e2e"
        )
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        meta = obj.get("metadata", {})
        raise AssertionError(
            f"{obj.get('kind')}/{meta.get('name')}: {err.message} at {list(err.path)}"
        ) from err


def assert_all_valid(objects: Iterable[dict[str, Any]], *versions: str) -> set[str]:
    """Validate every core object at each version; the custom kinds met (checked in tests/e2e)."""
    custom: set[str] = set()
    for obj in objects:
        if obj.get("kind") in CUSTOM_KINDS:
            custom.add(str(obj["kind"]))
            continue
        for version in versions or ("1.31",):
            assert_valid(obj, version)
    return custom
