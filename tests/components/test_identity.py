"""The identity builder: role bindings for the customer's OIDC groups, the Gateways' authentication."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from sovstack.components.builders.identity import (
    CONSUMER_HEADER,
    EndpointIdentityArgs,
    IdentityArgs,
    RbacArgs,
    build_gateway_policies,
    build_identity,
    build_rbac,
    rate_limit_values,
)
from tests.k8s_schema import assert_valid

WHERE = {"customer": "acme", "region": "fr-par", "residency_profile": "eu"}
GATEWAYS = [{"name": "public", "namespace": "edge"}]
JWT = {
    "issuer": "https://sso.example.eu/realms/acme",
    "audiences": ["acme-models"],
    "jwks_uri": "https://sso.example.eu/realms/acme/protocol/openid-connect/certs",
}


def rbac(**roles: Any) -> RbacArgs:
    return RbacArgs(
        **WHERE,
        groups_prefix="oidc:",
        roles=roles,
        serving_namespace="acme-serving",
        audit_namespace="acme-audit",
        audit_read_secret="audit-s3-readonly",
    )


def endpoints(**over: Any) -> EndpointIdentityArgs:
    return EndpointIdentityArgs.model_validate({**WHERE, "gateways": GATEWAYS, **over})


def by_name(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


# --- RBAC ------------------------------------------------------------------------------------------------
def test_each_role_binds_its_prefixed_groups() -> None:
    objects = by_name(
        build_rbac(rbac(platform_admins=["admins"], operators=["mlops"], auditors=["compliance"]))
    )
    assert sorted(objects) == [
        "ClusterRole/acme-auditor",
        "ClusterRole/acme-model-operator",
        "ClusterRoleBinding/acme-auditors",
        "ClusterRoleBinding/acme-platform-admins",
        "Role/acme-audit-bucket-reader",
        "RoleBinding/acme-audit-bucket-readers",
        "RoleBinding/acme-model-operators",
    ]
    admins = objects["ClusterRoleBinding/acme-platform-admins"]
    assert admins["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "cluster-admin",
    }
    assert admins["subjects"] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "oidc:admins"}
    ]
    operators = objects["RoleBinding/acme-model-operators"]
    # Operators act in the serving namespace only: a RoleBinding to the ClusterRole, not a ClusterRoleBinding.
    assert operators["metadata"]["namespace"] == "acme-serving"
    assert operators["roleRef"]["name"] == "acme-model-operator"
    assert operators["subjects"][0]["name"] == "oidc:mlops"
    assert objects["ClusterRoleBinding/acme-auditors"]["subjects"][0]["name"] == "oidc:compliance"


def test_operators_deploy_and_scale_but_never_read_secrets() -> None:
    role = by_name(build_rbac(rbac(operators=["mlops"])))["ClusterRole/acme-model-operator"]
    verbs = {
        (g, r): set(rule["verbs"])
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert {"create", "update", "patch", "delete"} <= verbs[("apps", "deployments")]
    assert verbs[("apps", "deployments/scale")] == {"get", "patch", "update"}
    assert verbs[("", "pods/log")] == {"get", "list", "watch"}
    assert not any(r == "secrets" or "*" in (g, r) for g, r in verbs)


def test_auditors_read_only_and_only_the_read_only_bucket_key() -> None:
    objects = by_name(build_rbac(rbac(auditors=["compliance"])))
    auditor = objects["ClusterRole/acme-auditor"]
    assert {v for rule in auditor["rules"] for v in rule["verbs"]} == {"get", "list", "watch"}
    assert not any("secrets" in rule["resources"] or "*" in rule["resources"] for rule in auditor["rules"])
    reader = objects["Role/acme-audit-bucket-reader"]
    assert reader["metadata"]["namespace"] == "acme-audit"
    assert reader["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["audit-s3-readonly"],
            "verbs": ["get"],
        }
    ]
    binding = objects["RoleBinding/acme-audit-bucket-readers"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "acme-audit-bucket-reader",
    }


def test_a_role_without_groups_is_not_created() -> None:
    assert build_rbac(rbac()) == []
    assert [o["kind"] for o in build_rbac(rbac(platform_admins=["admins"]))] == ["ClusterRoleBinding"]


def test_rbac_objects_are_valid_kubernetes() -> None:
    for obj in build_rbac(rbac(platform_admins=["a"], operators=["b"], auditors=["c"])):
        for version in ("1.30", "1.31", "1.33"):
            assert_valid(obj, version)


def test_a_group_with_spaces_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"roles\.auditors: 'conformité interne' is not a group name"):
        rbac(auditors=["conformité interne"])


# --- Gateway: SecurityPolicy, BackendTrafficPolicy -------------------------------------------------------
def test_jwt_security_policy_on_each_gateway() -> None:
    (policy,) = build_gateway_policies(endpoints(jwt=JWT))
    assert policy["apiVersion"] == "gateway.envoyproxy.io/v1alpha1"
    assert policy["kind"] == "SecurityPolicy"
    assert (policy["metadata"]["name"], policy["metadata"]["namespace"]) == ("public-identity", "edge")
    assert policy["spec"] == {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}],
        "jwt": {
            "providers": [
                {
                    "name": "acme-oidc",
                    "issuer": "https://sso.example.eu/realms/acme",
                    "audiences": ["acme-models"],
                    "remoteJWKS": {"uri": "https://sso.example.eu/realms/acme/protocol/openid-connect/certs"},
                    # The rate limit's consumer, then the claims each inference record names.
                    "claimToHeaders": [
                        {"header": CONSUMER_HEADER, "claim": "sub"},
                        {"header": "x-sovstack-jwt-iss", "claim": "iss"},
                        {"header": "x-sovstack-jwt-sub", "claim": "sub"},
                        {"header": "x-sovstack-jwt-azp", "claim": "azp"},
                    ],
                }
            ]
        },
    }


def test_api_key_security_policy_reads_keys_from_a_secret() -> None:
    (policy,) = build_gateway_policies(endpoints(api_keys={"secret": "acme-clients"}))
    assert policy["spec"]["apiKeyAuth"] == {
        "credentialRefs": [{"group": "", "kind": "Secret", "name": "acme-clients"}],
        "extractFrom": [{"headers": ["x-api-key"]}],
        "forwardClientIDHeader": CONSUMER_HEADER,
        "sanitize": True,
    }
    assert "jwt" not in policy["spec"]


def test_rate_limit_counts_per_distinct_consumer_globally() -> None:
    objects = build_gateway_policies(endpoints(jwt=JWT, rate_limit={"requests": 120, "unit": "Minute"}))
    assert [o["kind"] for o in objects] == ["SecurityPolicy", "BackendTrafficPolicy"]
    traffic = objects[1]
    assert (traffic["metadata"]["name"], traffic["metadata"]["namespace"]) == ("public-rate-limit", "edge")
    assert traffic["spec"] == {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}],
        "rateLimit": {
            "global": {
                "rules": [
                    {
                        "clientSelectors": [{"headers": [{"name": CONSUMER_HEADER, "type": "Distinct"}]}],
                        "limit": {"requests": 120, "unit": "Minute"},
                    }
                ]
            }
        },
    }


def test_rate_limit_service_fails_closed_on_redis() -> None:
    assert rate_limit_values("redis.site.internal:6379") == {
        "config": {
            "envoyGateway": {
                "rateLimit": {
                    "backend": {"type": "Redis", "redis": {"url": "redis.site.internal:6379"}},
                    "failClosed": True,
                }
            }
        }
    }


@pytest.mark.parametrize("methods", [{}, {"jwt": JWT, "api_keys": {"secret": "k"}}])
def test_exactly_one_authentication_method(methods: dict[str, Any]) -> None:
    with pytest.raises(
        ValidationError, match="give exactly one of jwt or apiKeys: Envoy Gateway requires every"
    ):
        endpoints(**methods)


def test_jwks_over_plain_http_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"'http://sso\.example\.eu/certs' is not an https:// URL"):
        endpoints(jwt={**JWT, "jwks_uri": "http://sso.example.eu/certs"})


def test_every_gateway_gets_its_own_policies_in_a_stable_order() -> None:
    args = endpoints(
        jwt=JWT,
        rate_limit={"requests": 5},
        gateways=[{"name": "b", "namespace": "edge"}, {"name": "a", "namespace": "edge"}],
    )
    names = [o["metadata"]["name"] for o in build_gateway_policies(args)]
    assert names == ["a-identity", "a-rate-limit", "b-identity", "b-rate-limit"]


def test_build_identity_puts_rbac_before_gateway_policies() -> None:
    args = IdentityArgs(rbac=rbac(platform_admins=["a"]), endpoints=endpoints(jwt=JWT))
    assert [o["kind"] for o in build_identity(args)] == ["ClusterRoleBinding", "SecurityPolicy"]
    assert build_identity(IdentityArgs()) == []


def test_the_gateway_gives_each_routed_model_its_own_key() -> None:
    args = endpoints(
        jwt=JWT,
        upstream_keys=[
            {
                "filter_name": "acme-llm-upstream-key",
                "namespace": "acme-serving",
                "secret": "acme-api-key-bearer",
            }
        ],
    )
    objects = build_gateway_policies(args)
    assert [o["kind"] for o in objects] == ["SecurityPolicy", "HTTPRouteFilter"]
    injected = objects[1]
    assert (injected["metadata"]["name"], injected["metadata"]["namespace"]) == (
        "acme-llm-upstream-key",
        "acme-serving",
    )
    assert injected["spec"] == {
        "credentialInjection": {
            "header": "Authorization",
            "overwrite": True,
            "credential": {"valueRef": {"group": "", "kind": "Secret", "name": "acme-api-key-bearer"}},
        }
    }
