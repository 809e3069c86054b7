"""Identity (pure, no Pulumi): who may reach the cluster's API and the model endpoints, and as whom.

Two places authenticate. The Kubernetes API server trusts the customer's OpenID Connect issuer
(`ClusterOidcArgs`: Kapsule's `open_id_connect_config`, OVHcloud's `KubeOidc`, Talos `oidc-*` API server
flags, the same flags by hand on an existing cluster) and `build_rbac` maps the issuer's groups to three
roles: platform admins, operators (deploy and scale models) and auditors (read-only, the audit bucket
through read-only credentials). The Gateway authenticates every request to a model (`build_gateway_policies`:
an Envoy Gateway SecurityPolicy with the issuer's JWTs or API keys, a BackendTrafficPolicy with a
per-consumer rate limit). Field names are Envoy Gateway v1.9's `gateway.envoyproxy.io/v1alpha1` API
(api/v1alpha1/securitypolicy_types.go, jwt_types.go, api_key_auth_types.go, ratelimit_types.go).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sovstack.components.inference_records import CLAIM_HEADERS
from sovstack.components.kube import Manifest, dns_name, is_dns_label, standard_labels

COMPONENT = "identity"
SECURITY_POLICY_API = "gateway.envoyproxy.io/v1alpha1"
RBAC_API = "rbac.authorization.k8s.io/v1"
#: The request header the Gateway writes the authenticated consumer into (JWT subject or API key client
#: id), which the per-consumer rate limit counts by. Envoy sets it from the verified token or key; a
#: request without a valid credential is refused before the rate limit. The subject claim must be in every
#: token, or a client's own header of that name would be counted (docs/identity.md).
CONSUMER_HEADER = "x-sovstack-consumer"
READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete"]


class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _https(value: str) -> str:
    if not value.startswith("https://"):
        raise ValueError(f"{value!r} is not an https:// URL")
    return value


# ---------------------------------------------------------------------------------------- cluster
class ClusterOidcArgs(_Args):
    """The customer's OpenID Connect issuer, as the Kubernetes API server trusts it."""

    issuer_url: str = Field(description="https:// issuer URL (the `iss` of its tokens). Required.")
    client_id: str = Field(min_length=1, description="Client id tokens are issued for (their `aud`).")
    username_claim: str = Field(default="sub", description="Claim used as the user name.")
    username_prefix: str = Field(
        default="oidc:", description="Prefix of OIDC user names, so they never collide with built-in ones."
    )
    groups_claim: str = Field(default="groups", description="Claim listing the user's groups.")
    groups_prefix: str = Field(
        default="oidc:", description="Prefix of OIDC group names; RBAC subjects carry it."
    )

    @field_validator("issuer_url")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return _https(value)


def scaleway_oidc_config(oidc: ClusterOidcArgs) -> dict[str, Any]:
    """`open_id_connect_config` of a Kapsule `scaleway.kubernetes.Cluster`."""
    return {
        "issuer_url": oidc.issuer_url,
        "client_id": oidc.client_id,
        "username_claim": oidc.username_claim,
        "username_prefix": oidc.username_prefix,
        "groups_claims": [oidc.groups_claim],
        "groups_prefix": oidc.groups_prefix,
    }


def ovh_oidc_inputs(oidc: ClusterOidcArgs) -> dict[str, Any]:
    """Inputs of OVHcloud's `ovh.cloudproject.KubeOidc` (besides service_name and kube_id)."""
    return {
        "issuer_url": oidc.issuer_url,
        "client_id": oidc.client_id,
        "oidc_username_claim": oidc.username_claim,
        "oidc_username_prefix": oidc.username_prefix,
        "oidc_groups_claims": [oidc.groups_claim],
        "oidc_groups_prefix": oidc.groups_prefix,
    }


def apiserver_oidc_flags(oidc: ClusterOidcArgs) -> dict[str, str]:
    """kube-apiserver `--oidc-*` flags (Talos `cluster.apiServer.extraArgs`, or by hand on an existing
    cluster), per https://kubernetes.io/docs/reference/access-authn-authz/authentication/#openid-connect-tokens."""
    return {
        "oidc-issuer-url": oidc.issuer_url,
        "oidc-client-id": oidc.client_id,
        "oidc-username-claim": oidc.username_claim,
        "oidc-username-prefix": oidc.username_prefix,
        "oidc-groups-claim": oidc.groups_claim,
        "oidc-groups-prefix": oidc.groups_prefix,
    }


# ---------------------------------------------------------------------------------------- roles
class RoleGroups(_Args):
    """The issuer's groups (without prefix) that hold each role."""

    platform_admins: tuple[str, ...] = Field(default=(), description="Whole-cluster administrators.")
    operators: tuple[str, ...] = Field(default=(), description="Deploy and scale models (serving namespace).")
    auditors: tuple[str, ...] = Field(
        default=(), description="Read-only everywhere except Secrets; read the audit bucket's read-only key."
    )


class RbacArgs(_Args):
    customer: str
    region: str
    residency_profile: str
    groups_prefix: str = Field(description="The API server's OIDC groups prefix (subjects carry it).")
    roles: RoleGroups
    serving_namespace: str = Field(description="Where operators deploy and scale models.")
    audit_namespace: str = Field(description="Where the audit bucket's read-only credentials live.")
    audit_read_secret: str = Field(
        description="Secret (in the audit namespace) with read-only S3 credentials for the audit bucket."
    )

    @model_validator(mode="after")
    def _names(self) -> RbacArgs:
        for name in (self.serving_namespace, self.audit_namespace, self.audit_read_secret):
            if not is_dns_label(name):
                raise ValueError(f"{name!r} is not a DNS-1123 label")
        for role, groups in self.roles.model_dump().items():
            for group in groups:
                if not group or any(c.isspace() for c in group):
                    raise ValueError(f"roles.{role}: {group!r} is not a group name (empty or with spaces)")
        return self


def _labels(customer: str, region: str, residency: str, name: str) -> dict[str, str]:
    return standard_labels(
        name=name, component=COMPONENT, customer=customer, region=region, residency=residency
    )


def _subjects(args: RbacArgs, groups: tuple[str, ...]) -> list[dict[str, str]]:
    return [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": f"{args.groups_prefix}{g}"}
        for g in sorted(groups)
    ]


#: What an auditor reads, resource by resource (never Secrets, never a wildcard).
AUDITOR_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": [
            "configmaps",
            "events",
            "limitranges",
            "namespaces",
            "nodes",
            "persistentvolumeclaims",
            "persistentvolumes",
            "pods",
            "resourcequotas",
            "serviceaccounts",
            "services",
        ],
    },
    {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "replicasets", "statefulsets"]},
    {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"]},
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["clusterrolebindings", "clusterroles", "rolebindings", "roles"],
    },
    {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["gatewayclasses", "gateways", "httproutes"]},
    {"apiGroups": ["gateway.envoyproxy.io"], "resources": ["backendtrafficpolicies", "securitypolicies"]},
    {"apiGroups": ["keda.sh"], "resources": ["scaledobjects"]},
    {"apiGroups": ["external-secrets.io"], "resources": ["clustersecretstores", "externalsecrets"]},
    {"apiGroups": ["monitoring.coreos.com"], "resources": ["prometheusrules", "servicemonitors"]},
]

#: What an operator does in the serving namespace: deploy, scale and roll models; never read Secrets.
OPERATOR_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": [*READ, *WRITE]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": READ},
    {
        "apiGroups": [""],
        "resources": ["configmaps", "persistentvolumeclaims", "services"],
        "verbs": [*READ, *WRITE],
    },
    {"apiGroups": [""], "resources": ["events", "pods", "pods/log"], "verbs": READ},
    {"apiGroups": ["keda.sh"], "resources": ["scaledobjects"], "verbs": [*READ, *WRITE]},
    {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": [*READ, *WRITE]},
    {"apiGroups": ["monitoring.coreos.com"], "resources": ["servicemonitors"], "verbs": [*READ, *WRITE]},
]


def _cluster_role(args: RbacArgs, name: str, rules: list[dict[str, Any]]) -> Manifest:
    return {
        "apiVersion": RBAC_API,
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": _labels(args.customer, args.region, args.residency_profile, name),
        },
        "rules": rules,
    }


def _binding(
    args: RbacArgs,
    kind: str,
    name: str,
    role_kind: str,
    role: str,
    groups: tuple[str, ...],
    ns: str | None = None,
) -> Manifest:
    metadata: dict[str, Any] = {"name": name}
    if ns is not None:
        metadata["namespace"] = ns
    metadata["labels"] = _labels(args.customer, args.region, args.residency_profile, name)
    return {
        "apiVersion": RBAC_API,
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": _subjects(args, groups),
    }


def build_rbac(args: RbacArgs) -> list[Manifest]:
    """ClusterRoles, ClusterRoleBindings and RoleBindings giving each role's OIDC groups their rights.

    A role with no group gets no binding (and no role object of its own): nobody holds it.
    """
    c = args.customer
    roles = args.roles
    objects: list[Manifest] = []
    if roles.platform_admins:
        objects.append(
            _binding(
                args, "ClusterRoleBinding", dns_name(c, "platform-admins"), "ClusterRole", "cluster-admin",
                roles.platform_admins,
            )
        )  # fmt: skip
    if roles.operators:
        role = dns_name(c, "model-operator")
        objects.append(_cluster_role(args, role, OPERATOR_RULES))
        objects.append(
            _binding(
                args, "RoleBinding", dns_name(c, "model-operators"), "ClusterRole", role, roles.operators,
                ns=args.serving_namespace,
            )
        )  # fmt: skip
    if roles.auditors:
        role = dns_name(c, "auditor")
        objects.append(_cluster_role(args, role, [{**r, "verbs": READ} for r in AUDITOR_RULES]))
        objects.append(
            _binding(args, "ClusterRoleBinding", dns_name(c, "auditors"), "ClusterRole", role, roles.auditors)
        )
        reader = dns_name(c, "audit-bucket-reader")
        objects.append(
            {
                "apiVersion": RBAC_API,
                "kind": "Role",
                "metadata": {
                    "name": reader,
                    "namespace": args.audit_namespace,
                    "labels": _labels(c, args.region, args.residency_profile, reader),
                },
                # Only the read-only key, by name: the shipper's write key stays out of reach.
                "rules": [
                    {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [args.audit_read_secret], "verbs": ["get"]}
                ],
            }
        )  # fmt: skip
        objects.append(
            _binding(
                args, "RoleBinding", dns_name(c, "audit-bucket-readers"), "Role", reader, roles.auditors,
                ns=args.audit_namespace,
            )
        )  # fmt: skip
    return objects


# ---------------------------------------------------------------------------------------- endpoints
class JwtArgs(_Args):
    """JWTs from the customer's issuer, checked by Envoy against the issuer's keys."""

    issuer: str = Field(description="Expected `iss` claim (the issuer URL).")
    audiences: tuple[str, ...] = Field(min_length=1, max_length=8, description="Accepted `aud` values.")
    jwks_uri: str = Field(description="https:// URL of the issuer's JSON Web Key Set.")
    subject_claim: str = Field(default="sub", description="Claim naming the consumer (rate-limit key).")

    @field_validator("jwks_uri")
    @classmethod
    def _jwks(cls, value: str) -> str:
        return _https(value)


class ApiKeyArgs(_Args):
    """API keys kept as an option: one Secret in each Gateway's namespace, client id -> key."""

    secret: str = Field(description="Opaque Secret whose keys are client ids and values the API keys.")
    header: str = Field(default="x-api-key", description="Request header carrying the key.")


class RateLimitArgs(_Args):
    """Requests each consumer may make per unit, counted across every Envoy replica (global)."""

    requests: int = Field(ge=1, description="Requests per unit and consumer.")
    unit: Literal["Second", "Minute", "Hour", "Day"] = Field(default="Minute", description="The unit.")


class GatewayRef(_Args):
    name: str
    namespace: str


class UpstreamKey(_Args):
    """A routed model's own API key, which the Gateway puts in the request it forwards: the client's
    credential (a JWT, a gateway API key) is not the key vLLM checks."""

    filter_name: str = Field(description="The HTTPRouteFilter the model's HTTPRoute references.")
    namespace: str = Field(description="The model's namespace (the HTTPRoute's).")
    secret: str = Field(
        description="Opaque Secret there whose key `credential` holds `Bearer <the model's API key>`."
    )


class EndpointIdentityArgs(_Args):
    customer: str
    region: str
    residency_profile: str
    gateways: tuple[GatewayRef, ...] = Field(description="Gateways the policies attach to.")
    jwt: JwtArgs | None = None
    api_keys: ApiKeyArgs | None = None
    rate_limit: RateLimitArgs | None = None
    upstream_keys: tuple[UpstreamKey, ...] = Field(
        default=(), description="Routed models whose API key the Gateway injects."
    )

    @model_validator(mode="after")
    def _one_method(self) -> EndpointIdentityArgs:
        if (self.jwt is None) == (self.api_keys is None):
            # Envoy chains both filters: every configured method would have to pass, not either.
            raise ValueError(
                "give exactly one of jwt or apiKeys: Envoy Gateway requires every method a SecurityPolicy "
                "configures to pass"
            )
        for gateway in self.gateways:
            for name in (gateway.name, gateway.namespace):
                if not is_dns_label(name):
                    raise ValueError(f"{name!r} is not a DNS-1123 label")
        for key in self.upstream_keys:
            for name in (key.filter_name, key.namespace, key.secret):
                if not is_dns_label(name):
                    raise ValueError(f"{name!r} is not a DNS-1123 label")
        if self.api_keys is not None and not is_dns_label(self.api_keys.secret):
            raise ValueError(f"apiKeys.secret: {self.api_keys.secret!r} is not a DNS-1123 label")
        return self


def _target(gateway: GatewayRef) -> list[dict[str, str]]:
    return [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.name}]


def security_policy(args: EndpointIdentityArgs, gateway: GatewayRef) -> Manifest:
    spec: dict[str, Any] = {"targetRefs": _target(gateway)}
    if args.jwt is not None:
        jwt = args.jwt
        spec["jwt"] = {
            "providers": [
                {
                    "name": dns_name(args.customer, "oidc"),
                    "issuer": jwt.issuer,
                    "audiences": list(jwt.audiences),
                    "remoteJWKS": {"uri": jwt.jwks_uri},
                    # The consumer for the rate limit, and the claims each inference record names
                    # (issuer, subject, client: components/inference_records.py CLAIM_HEADERS).
                    "claimToHeaders": [
                        {"header": CONSUMER_HEADER, "claim": jwt.subject_claim},
                        *({"header": header, "claim": claim} for claim, header in CLAIM_HEADERS.items()),
                    ],
                }
            ]
        }
    if args.api_keys is not None:
        keys = args.api_keys
        spec["apiKeyAuth"] = {
            "credentialRefs": [{"group": "", "kind": "Secret", "name": keys.secret}],
            "extractFrom": [{"headers": [keys.header]}],
            "forwardClientIDHeader": CONSUMER_HEADER,
            "sanitize": True,  # the model server never sees the key
        }
    name = dns_name(gateway.name, "identity")
    return {
        "apiVersion": SECURITY_POLICY_API,
        "kind": "SecurityPolicy",
        "metadata": {
            "name": name,
            "namespace": gateway.namespace,
            "labels": _labels(args.customer, args.region, args.residency_profile, name),
        },
        "spec": spec,
    }


def rate_limit_policy(args: EndpointIdentityArgs, gateway: GatewayRef) -> Manifest:
    """Per-consumer requests: a global rule with one counter per distinct consumer header value (local
    rate limits cannot count per distinct value in Envoy Gateway)."""
    assert args.rate_limit is not None
    limit = args.rate_limit
    name = dns_name(gateway.name, "rate-limit")
    return {
        "apiVersion": SECURITY_POLICY_API,
        "kind": "BackendTrafficPolicy",
        "metadata": {
            "name": name,
            "namespace": gateway.namespace,
            "labels": _labels(args.customer, args.region, args.residency_profile, name),
        },
        "spec": {
            "targetRefs": _target(gateway),
            "rateLimit": {
                "global": {
                    "rules": [
                        {
                            "clientSelectors": [{"headers": [{"name": CONSUMER_HEADER, "type": "Distinct"}]}],
                            "limit": {"requests": limit.requests, "unit": limit.unit},
                        }
                    ]
                }
            },
        },
    }


def credential_filter(args: EndpointIdentityArgs, key: UpstreamKey) -> Manifest:
    """Replace the client's Authorization header with the model server's own key, from a Secret."""
    return {
        "apiVersion": SECURITY_POLICY_API,
        "kind": "HTTPRouteFilter",
        "metadata": {
            "name": key.filter_name,
            "namespace": key.namespace,
            "labels": _labels(args.customer, args.region, args.residency_profile, key.filter_name),
        },
        "spec": {
            "credentialInjection": {
                "header": "Authorization",
                "overwrite": True,
                "credential": {"valueRef": {"group": "", "kind": "Secret", "name": key.secret}},
            }
        },
    }


def build_gateway_policies(args: EndpointIdentityArgs) -> list[Manifest]:
    """For each Gateway: its SecurityPolicy, then its BackendTrafficPolicy when a rate limit is set; for
    each routed model, the filter giving vLLM its own key."""
    objects: list[Manifest] = []
    for gateway in sorted(args.gateways, key=lambda g: (g.namespace, g.name)):
        objects.append(security_policy(args, gateway))
        if args.rate_limit is not None:
            objects.append(rate_limit_policy(args, gateway))
    keys = sorted(args.upstream_keys, key=lambda k: (k.namespace, k.filter_name))
    objects += [credential_filter(args, key) for key in keys]
    return objects


def upstream_filter_name(customer: str, model_name: str) -> str:
    return dns_name(customer, model_name, "upstream-key")


def upstream_secret_name(api_key_secret: str) -> str:
    """The Secret holding `Bearer <key>` for the model's API key Secret `api_key_secret`."""
    return dns_name(api_key_secret, "bearer")


def rate_limit_values(redis_url: str) -> dict[str, Any]:
    """Envoy Gateway chart values turning on its global rate limit service, counting in `redis_url`
    (host:port), failing closed: a request is refused when the limit cannot be checked."""
    return {
        "config": {
            "envoyGateway": {
                "rateLimit": {"backend": {"type": "Redis", "redis": {"url": redis_url}}, "failClosed": True}
            }
        }
    }


# ---------------------------------------------------------------------------------------- all
class IdentityArgs(_Args):
    """Everything the Identity component registers in the cluster."""

    rbac: RbacArgs | None = None
    endpoints: EndpointIdentityArgs | None = None


def build_identity(args: IdentityArgs) -> list[Manifest]:
    objects = build_rbac(args.rbac) if args.rbac else []
    if args.endpoints is not None:
        objects += build_gateway_policies(args.endpoints)
    return objects
