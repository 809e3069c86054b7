"""CrossGuard rules for sovstack stacks, sharing the residency engine the components use.

Each rule is a pure check over plain `Resource`s (type, name, urn, parent, props) that returns
`Violation`s, wrapped in a `StackValidationPolicy` whose validate function only adapts
pulumi_policy's args. The pack is built in `policies/__main__.py` alone: constructing a
`PolicyPack` starts a gRPC server and never returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from sovstack.components.catalog import CatalogError
from sovstack.components.kube import GPU_RESOURCE, GPU_TAINT, LABEL_REGION
from sovstack.components.residency import (
    POLICY_ANNOTATION,
    Engine,
    PolicyError,
    ResidencyPolicy,
    failures,
    resolve_policy,
    resource_location_findings,
)

NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE = "kubernetes:core/v1:Service"
QUOTA = "kubernetes:core/v1:ResourceQuota"
JOB = "kubernetes:batch/v1:Job"
#: Kinds whose pods sovstack checks; a CronJob's pod spec sits one level deeper.
WORKLOAD_KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
SCALEWAY_BUCKET = "scaleway:object/bucket:Bucket"
SCALEWAY_LOCK = "scaleway:object/bucketLockConfiguration:BucketLockConfiguration"
OVH_STORAGE = "ovh:CloudProject/storage:Storage"
MINIO_BUCKET = "minio:index/s3Bucket:S3Bucket"
MINIO_VERSIONING = "minio:index/s3BucketVersioning:S3BucketVersioning"
AUDIT_COMPONENT = "sovstack:audit:AuditSink"
MANAGED_BY = "app.kubernetes.io/managed-by"
NO_POLICY = (
    f"no residency policy: no Namespace carries the {POLICY_ANNOTATION} annotation and the pack config "
    'names no profile; pass --policy-pack-config with {"<rule>": {"profile": "eu"}}'
)


@dataclass(frozen=True)
class Resource:
    """One resource as the rules see it: plain values, unknown (preview) values as None."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    parent: str = ""
    #: False for component resources (and the stack): their props are outputs, they place nothing.
    custom: bool = True


@dataclass(frozen=True)
class Violation:
    message: str
    urn: str | None = None


Check = Callable[[Sequence[Resource], Sequence[ResidencyPolicy], Mapping[str, Any]], list[Violation]]


# -- reading values -----------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """Proxied props as plain dicts and lists; a value unknown during preview becomes None."""
    if isinstance(value, Mapping):
        return {key: _read(value, key) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_read(value, index) for index in range(len(value))]
    return value


def _read(container: Any, key: Any) -> Any:
    try:
        return plain(container[key])
    except UnknownValueError:  # the proxy raises on access to a value known only after the update
        return None


def dig(value: Any, *path: str) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _labels(obj: Any) -> Mapping[str, Any]:
    labels = dig(obj, "metadata", "labels")
    return labels if isinstance(labels, Mapping) else {}


def _kind(resource: Resource) -> str:
    return resource.type.rsplit(":", 1)[-1] if resource.type.startswith("kubernetes:") else ""


def _where(resource: Resource) -> str:
    """`Kind namespace/name` of a Kubernetes object, falling back to the Pulumi name."""
    meta = resource.props.get("metadata")
    name = dig(meta, "name") or resource.name
    namespace = dig(meta, "namespace")
    return f"{_kind(resource)} {namespace}/{name}" if namespace else f"{_kind(resource)} {name}"


def _namespace_of(resource: Resource) -> str:
    return str(dig(resource.props, "metadata", "namespace") or "default")


def pod_template(resource: Resource) -> Mapping[str, Any] | None:
    """The pod (metadata and spec) a workload runs, or None for anything else."""
    kind = _kind(resource)
    if kind not in WORKLOAD_KINDS:
        return None
    if kind == "Pod":
        return resource.props
    spec = dig(resource.props, "spec")
    if kind == "CronJob":
        spec = dig(spec, "jobTemplate", "spec")
    template = dig(spec, "template")
    return template if isinstance(template, Mapping) else None


def containers(pod: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for field in CONTAINER_LISTS:
        for container in _items(dig(pod, "spec", field)):
            if isinstance(container, Mapping):
                yield field, container


# -- where the residency policy comes from ------------------------------------------------------
def find_policies(
    resources: Sequence[Resource], config: Mapping[str, Any]
) -> tuple[list[ResidencyPolicy], list[Violation]]:
    """Every policy that applies: the namespaces' annotation(s) and the pack config's profile.

    A stack is checked under each of them, so neither the program nor the operator can loosen what
    the other asks. Problems reading them, or finding none, come back as violations.
    """
    found: dict[str, ResidencyPolicy] = {}
    problems: list[Violation] = []
    for r in resources:
        raw = dig(r.props, "metadata", "annotations", POLICY_ANNOTATION) if r.type == NAMESPACE else None
        if raw is None:
            continue
        try:
            policy = resolve_policy(policy=json.loads(raw))
        except (TypeError, ValueError) as err:  # JSONDecodeError and PolicyError are ValueErrors
            problems.append(
                Violation(
                    f"{_where(r)}: annotation {POLICY_ANNOTATION} is not a residency policy: {err}", r.urn
                )
            )
            continue
        found.setdefault(policy.model_dump_json(by_alias=True, exclude={"description", "source"}), policy)
    if len(found) > 1:
        problems.append(
            Violation(
                f"sovstack namespaces carry {len(found)} different residency policies; each one is applied"
            )
        )
    policies = list(found.values())
    profile, overrides, spelled = config.get("profile"), config.get("overrides"), config.get("policy")
    if profile or overrides or spelled:
        try:
            policies.append(
                resolve_policy(
                    profile=profile,
                    overrides=dict(overrides or {}),
                    policy=dict(spelled) if spelled else None,
                )
            )
        except (PolicyError, TypeError) as err:
            problems.append(Violation(f"pack config: {err}"))
    if not policies and not problems:
        problems.append(Violation(NO_POLICY))
    return policies, problems


# -- 1. region in bounds ------------------------------------------------------------------------
def check_regions(
    resources: Sequence[Resource], policies: Sequence[ResidencyPolicy], config: Mapping[str, Any]
) -> list[Violation]:
    """Every region, zone or location input in bounds, and a zone inside the resource's own region."""
    out: list[Violation] = []
    for policy in policies:
        engine = Engine(policy)
        # Provider resources (`pulumi:providers:scaleway`) place the resources of their package that set
        # no location, as the program's stack guard accepts them; a provider placed by nothing fails.
        placed = {
            r.type.rsplit(":", 1)[-1]
            for r in resources
            if r.custom
            and r.type.startswith("pulumi:providers:")
            and any(
                f.passed and not f.reason.startswith("location-free")
                for f in resource_location_findings(engine, r.type, r.name, dict(r.props))
            )
        }
        for r in resources:
            if not r.custom:
                continue  # a component's `region` output repeats its children's; they are checked
            token = r.type
            package = token.split(":", 1)[0]
            by = f"{package} provider" if package in placed else None
            findings = resource_location_findings(engine, token, r.name, dict(r.props), placed_by_provider=by)
            findings += _zone_in_region(engine, token, r)
            out += [Violation(f"{f.path}: {f.reason}", r.urn) for f in failures(findings)]
    return _unique(out)


def _zone_in_region(engine: Engine, token: str, r: Resource) -> list[Any]:
    package, region, zone = token.split(":", 1)[0], r.props.get("region"), r.props.get("zone")
    if token.startswith("pulumi:providers:"):
        package = token.rsplit(":", 1)[-1]
    if not (isinstance(region, str) and isinstance(zone, str)) or package not in engine.catalog.providers:
        return []
    try:
        engine.catalog.region(package, region)
    except CatalogError:  # not a region code (a storage region, or unknown: region.known reports it)
        return []
    return [engine.zone(f"{token}::{r.name}.zone", package, region, zone)]


# -- 2. images allowed and pinned ---------------------------------------------------------------
def check_images(
    resources: Sequence[Resource], policies: Sequence[ResidencyPolicy], config: Mapping[str, Any]
) -> list[Violation]:
    """Every container image of every workload from an allowed registry and pinned by digest."""
    out: list[Violation] = []
    for policy in policies:
        engine = Engine(policy)
        for r in resources:
            pod = pod_template(r)
            for field, container in containers(pod) if pod is not None else ():
                where = f"{_where(r)} {field[:-1]} {container.get('name')}"
                image = container.get("image")
                if not isinstance(image, str) or not image:
                    out.append(Violation(f"{where}: no image is set (or it is unknown at preview)", r.urn))
                    continue
                out += [
                    Violation(f"{where}: {f.reason} ({image})", r.urn)
                    for f in failures(engine.image(where, image))
                ]
    return _unique(out)


# -- 3. no public services ----------------------------------------------------------------------
PUBLIC_TYPES = {"LoadBalancer": "services.loadbalancers", "NodePort": "services.nodeports"}


def check_public_services(
    resources: Sequence[Resource], policies: Sequence[ResidencyPolicy], config: Mapping[str, Any]
) -> list[Violation]:
    """No LoadBalancer or NodePort Service unless the stack (or the pack config) declares a public endpoint.

    The declaration is sovstack's own ResourceQuota in the Service's namespace: NetworkIsolation
    zeroes `services.loadbalancers` and `services.nodeports` unless `network.publicEndpoint` is true.
    """
    quotas: dict[str, list[Resource]] = {}
    for r in resources:
        if r.type == QUOTA:
            quotas.setdefault(_namespace_of(r), []).append(r)
    out: list[Violation] = []
    for r in resources:
        service_type = dig(r.props, "spec", "type")
        if r.type != SERVICE or service_type not in PUBLIC_TYPES:
            continue
        key, namespace = PUBLIC_TYPES[service_type], _namespace_of(r)
        closed = [
            q for q in quotas.get(namespace, []) if str(dig(q.props, "spec", "hard", key)) in ("0", "0.0")
        ]
        declared = [q for q in quotas.get(namespace, []) if _labels(q.props).get(MANAGED_BY) == "sovstack"]
        if closed:
            out.append(
                Violation(
                    f"{_where(r)} is type {service_type} but the stack declares no public endpoint "
                    f"({_where(closed[0])} sets {key}: 0); set network.publicEndpoint: true in the customer spec",
                    r.urn,
                )
            )
        elif not declared and config.get("publicEndpoint") is not True:
            out.append(
                Violation(
                    f"{_where(r)} is type {service_type} but no public endpoint is declared: namespace "
                    f"{namespace} has no sovstack ResourceQuota and the pack config does not set publicEndpoint: true",
                    r.urn,
                )
            )
    return out


# -- 4. GPU workloads pinned --------------------------------------------------------------------
def check_gpu_pinning(
    resources: Sequence[Resource], policies: Sequence[ResidencyPolicy], config: Mapping[str, Any]
) -> list[Violation]:
    """Every workload requesting GPUs requires its region by node affinity and tolerates the GPU taint."""
    regions = {
        str(dig(r.props, "metadata", "name")): _labels(r.props).get(LABEL_REGION)
        for r in resources
        if r.type == NAMESPACE
    }
    out: list[Violation] = []
    for r in resources:
        pod = pod_template(r)
        if pod is None or not _requests_gpu(pod):
            continue
        namespace = _namespace_of(r)
        expected = regions.get(namespace) or _labels(pod).get(LABEL_REGION)
        if not expected:
            out.append(
                Violation(
                    f"{_where(r)} requests {GPU_RESOURCE} but its region is unknown: neither namespace "
                    f"{namespace} nor the pod template carries the {LABEL_REGION} label",
                    r.urn,
                )
            )
        else:
            problem = _region_affinity_problem(pod, str(expected))
            if problem:
                out.append(Violation(f"{_where(r)} requests {GPU_RESOURCE} but {problem}", r.urn))
        if not _tolerates_gpu_taint(pod):
            taint = f"{GPU_TAINT['key']}={GPU_TAINT['value']}:{GPU_TAINT['effect']}"
            out.append(
                Violation(
                    f"{_where(r)} requests {GPU_RESOURCE} but does not tolerate the GPU taint {taint}", r.urn
                )
            )
    return out


def _requests_gpu(pod: Mapping[str, Any]) -> bool:
    for _, container in containers(pod):
        for part in ("requests", "limits"):
            amount = dig(container, "resources", part, GPU_RESOURCE)
            if amount is not None and str(amount) not in ("0", "0.0"):
                return True
    return False


def _region_affinity_problem(pod: Mapping[str, Any], expected: str) -> str:
    """Why the pod may land outside `expected`, or '' when every way it can schedule pins the region."""
    if dig(pod, "spec", "nodeSelector", LABEL_REGION) == expected:
        return ""
    required = dig(pod, "spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution")
    terms = _items(dig(required, "nodeSelectorTerms"))
    if not terms:
        return f"has no required node affinity on {LABEL_REGION} (expected {expected})"
    for index, term in enumerate(terms):  # terms are ORed: each one must pin the region
        pins = [
            e
            for e in _items(dig(term, "matchExpressions"))
            if dig(e, "key") == LABEL_REGION and dig(e, "operator") == "In"
        ]
        values = sorted({str(v) for e in pins for v in _items(dig(e, "values"))})
        if not pins:
            return f"node affinity term {index} does not require {LABEL_REGION} (expected {expected})"
        if values != [expected]:
            return f"node affinity term {index} allows {LABEL_REGION} in {values}, expected [{expected!r}]"
    return ""


def _tolerates_gpu_taint(pod: Mapping[str, Any]) -> bool:
    for t in _items(dig(pod, "spec", "tolerations")):
        key, operator, effect = dig(t, "key"), dig(t, "operator") or "Equal", dig(t, "effect")
        if effect not in (None, "", GPU_TAINT["effect"]):
            continue
        if operator == "Exists" and key in (None, "", GPU_TAINT["key"]):
            return True
        if operator == "Equal" and key == GPU_TAINT["key"] and dig(t, "value") == GPU_TAINT["value"]:
            return True
    return False


# -- 5. audit bucket locked ---------------------------------------------------------------------
AUDIT_BUCKETS = (SCALEWAY_BUCKET, OVH_STORAGE, MINIO_BUCKET)
MC_RETENTION = re.compile(r"retention set --default (\w+) (\d+)([dy]) [\w.-]+/([\w.-]+)")
ISO_PERIOD = re.compile(r"^P(\d+)([DY])$")


def check_audit_buckets(
    resources: Sequence[Resource], policies: Sequence[ResidencyPolicy], config: Mapping[str, Any]
) -> list[Violation]:
    """Audit buckets: object lock on, COMPLIANCE default retention of at least the policy minimum, versioning on."""
    minimum = max(p.min_audit_retention_days for p in policies)
    out: list[Violation] = []
    for bucket in resources:
        if bucket.type not in AUDIT_BUCKETS or not _is_audit_bucket(bucket):
            continue
        name = str(bucket.props.get("bucket" if bucket.type == MINIO_BUCKET else "name") or bucket.name)
        lock_on, versioned, retention = _bucket_state(bucket, name, resources)
        where = f"audit bucket {name} ({bucket.type})"
        if not lock_on:
            out.append(Violation(f"{where}: object lock is not enabled", bucket.urn))
        if not versioned:
            out.append(Violation(f"{where}: versioning is not enabled", bucket.urn))
        if retention is None:
            out.append(Violation(f"{where}: no default retention is set", bucket.urn))
        else:
            mode, days = retention
            if mode.upper() != "COMPLIANCE":
                out.append(
                    Violation(f"{where}: default retention mode is {mode}, not COMPLIANCE", bucket.urn)
                )
            if days < minimum:
                out.append(
                    Violation(
                        f"{where}: default retention is {days} days; policy minimum is {minimum} days",
                        bucket.urn,
                    )
                )
    return out


def _is_audit_bucket(r: Resource) -> bool:
    """Buckets the audit component registers, or any bucket whose name says it holds audit logs."""
    return f"{AUDIT_COMPONENT}$" in r.urn or "audit" in r.name.lower()


def _bucket_state(
    bucket: Resource, name: str, resources: Sequence[Resource]
) -> tuple[bool, bool, tuple[str, int] | None]:
    """(object lock on, versioning on, (default retention mode, days) or None) for one bucket."""
    p = bucket.props
    if bucket.type == OVH_STORAGE:
        period = ISO_PERIOD.match(str(dig(p, "objectLock", "rule", "period") or ""))
        mode = dig(p, "objectLock", "rule", "mode")
        retention = (str(mode), _days(period.group(1), period.group(2))) if period and mode else None
        return (
            dig(p, "objectLock", "status") == "enabled",
            dig(p, "versioning", "status") == "enabled",
            retention,
        )
    companions = [r for r in resources if _refers_to(r, bucket, name)]
    if bucket.type == SCALEWAY_BUCKET:
        retention = None
        for lock in (r for r in companions if r.type == SCALEWAY_LOCK):
            rule = dig(lock.props, "rule", "defaultRetention")
            amount = dig(rule, "days") or dig(rule, "years")
            if dig(rule, "mode") and amount is not None:
                retention = (str(dig(rule, "mode")), _days(amount, "D" if dig(rule, "days") else "Y"))
        return p.get("objectLockEnabled") is True, dig(p, "versioning", "enabled") is True, retention
    versioned = any(
        r.type == MINIO_VERSIONING and dig(r.props, "versioningConfiguration", "status") == "Enabled"
        for r in companions
    )
    return p.get("objectLocking") is True, versioned, _minio_retention(name, resources)


def _refers_to(r: Resource, bucket: Resource, name: str) -> bool:
    target = r.props.get("bucket")
    # A reference still unknown at preview is matched by the component both belong to.
    return target == name or (target is None and bool(bucket.parent) and r.parent == bucket.parent)


def _minio_retention(name: str, resources: Sequence[Resource]) -> tuple[str, int] | None:
    """MinIO's default retention is set by the audit component's `mc retention set` Job."""
    for job in (r for r in resources if r.type == JOB):
        pod = pod_template(job)
        for _, container in containers(pod) if pod is not None else ():
            script = " ".join(
                str(part) for part in [*_items(container.get("command")), *_items(container.get("args"))]
            )
            for mode, amount, unit, target in MC_RETENTION.findall(script):
                if target == name:
                    return mode, _days(amount, unit.upper())
    return None


def _days(amount: Any, unit: str) -> int:
    return int(float(amount)) * (365 if unit == "Y" else 1)


# -- adapters to pulumi_policy ------------------------------------------------------------------
def resource_of(r: PolicyResource) -> Resource:
    parent = r.parent.urn if r.parent is not None else (r.opts.parent or "")
    # A custom resource has a provider; a provider resource is one. Components (sovstack's own, and
    # the stack itself) have neither: the engine shows them with their outputs as props.
    custom = r.provider is not None or r.resource_type.startswith("pulumi:providers:")
    return Resource(
        type=r.resource_type, name=r.name, props=plain(r.props), urn=r.urn, parent=parent, custom=custom
    )


def _unique(violations: Iterable[Violation]) -> list[Violation]:
    return list(dict.fromkeys(violations))


@dataclass(frozen=True)
class Rule:
    """A pure check, whether it needs the residency policy, and how CrossGuard shows and configures it."""

    name: str
    description: str
    check: Check
    needs_policy: bool
    config_schema: dict[str, Any] | None = None

    def run(self, resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Violation]:
        """The check over plain resources, after finding the policy when the rule needs one."""
        if not self.needs_policy:
            return self.check(resources, [], config)
        policies, problems = find_policies(resources, config)
        return problems + (self.check(resources, policies, config) if policies else [])

    def validate(self, args: StackValidationArgs, report_violation: ReportViolation) -> None:
        """The StackValidationPolicy's validate function: adapts args, reports each violation."""
        resources = [resource_of(r) for r in args.resources]
        for violation in self.run(resources, args.get_config()):
            report_violation(violation.message, violation.urn)

    def policy(self) -> StackValidationPolicy:
        schema = PolicyConfigSchema(properties=self.config_schema) if self.config_schema else None
        return StackValidationPolicy(
            name=self.name,
            description=self.description,
            validate=self.validate,
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=schema,
        )


POLICY_CONFIG = {
    "policy": {
        "type": "object",
        "description": "A whole residency policy (camelCase fields), as `sovstack preview` and `up` pass it.",
    },
    "profile": {
        "type": "string",
        "description": "Residency profile (components/data/policies.yaml) applied in addition to the "
        "policy the stack's namespaces carry; required for stacks without sovstack namespaces.",
    },
    "overrides": {
        "type": "object",
        "description": "ResidencyPolicy fields (camelCase, e.g. minAuditRetentionDays) applied over the profile.",
    },
}
PUBLIC_CONFIG = {
    "publicEndpoint": {
        "type": "boolean",
        "default": False,
        "description": "Allow LoadBalancer/NodePort Services in namespaces without a sovstack ResourceQuota.",
    }
}

RULES: tuple[Rule, ...] = (
    Rule(
        "sovstack-region-in-bounds",
        "Every region, zone and location input (providers included) is inside the residency policy, "
        "and every zone belongs to its resource's region.",
        check_regions,
        True,
        POLICY_CONFIG,
    ),
    Rule(
        "sovstack-images-allowed-and-pinned",
        "Every container image of Pods, Deployments, StatefulSets, DaemonSets, Jobs and CronJobs comes "
        "from an allowed registry and is pinned by sha256 digest.",
        check_images,
        True,
        POLICY_CONFIG,
    ),
    Rule(
        "sovstack-no-public-services",
        "No LoadBalancer or NodePort Service unless the stack declares a public endpoint.",
        check_public_services,
        False,
        PUBLIC_CONFIG,
    ),
    Rule(
        "sovstack-gpu-workloads-pinned",
        f"Every workload requesting {GPU_RESOURCE} requires its namespace's {LABEL_REGION} by node "
        "affinity and tolerates the GPU taint.",
        check_gpu_pinning,
        False,
    ),
    Rule(
        "sovstack-audit-bucket-locked",
        "Audit buckets have object lock on, a COMPLIANCE default retention of at least the policy "
        "minimum, and versioning on.",
        check_audit_buckets,
        True,
        POLICY_CONFIG,
    ),
)
#: The CrossGuard policy objects, in the order `policies/__main__.py` registers them.
POLICIES: tuple[StackValidationPolicy, ...] = tuple(rule.policy() for rule in RULES)
(
    region_in_bounds,
    images_allowed_and_pinned,
    no_public_services,
    gpu_workloads_pinned,
    audit_bucket_locked,
) = POLICIES


def check_all(
    resources: Sequence[Resource], config: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, list[Violation]]:
    """Every rule over `resources`; `config` is the --policy-pack-config mapping (rule name -> config)."""
    return {rule.name: rule.run(resources, (config or {}).get(rule.name, {})) for rule in RULES}


def pack_config_for(policy: ResidencyPolicy, *, public_endpoint: bool = False) -> dict[str, dict[str, Any]]:
    """The --policy-pack-config for a stack: its whole policy for every rule that needs one."""
    body = policy.model_dump(mode="json", by_alias=True, exclude={"description", "source"})
    config: dict[str, dict[str, Any]] = {}
    for rule in RULES:
        entry: dict[str, Any] = {}
        if rule.needs_policy:
            entry["policy"] = body
        if rule.config_schema and "publicEndpoint" in rule.config_schema:
            entry["publicEndpoint"] = public_endpoint
        if entry:
            config[rule.name] = entry
    return config
