"""Cross-field checks of a customer spec against the catalogs: what pydantic alone cannot see.

Each problem is `(loc, message)`, loc being the path inside `sovstack:customer` as a tuple.
Residency (is this place allowed?) is separate: see infra/residency_check.py. In the pipeline this
module stands after parsing and before composition: it imports neither.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlparse

from pydantic import ValidationError

from sovstack.components.capacity import get_gpu, load_models
from sovstack.components.catalog import CatalogError, Region, load_catalog, provider_for_backend
from sovstack.components.kubernetes_versions import VersionFactsError
from sovstack.components.kubernetes_versions import check as check_kubernetes_version
from sovstack.components.residency import PolicyError, load_profiles
from sovstack.infra.lookups import audit_backend, model_info, plan_model, policy_of
from sovstack.infra.spec import CustomerSpec

Loc = tuple[int | str, ...]
SpecProblem = tuple[Loc, str]


def semantic_problems(spec: CustomerSpec, *, creating: bool = True) -> list[SpecProblem]:
    """Everything wrong with the spec but residency and the components' own refusals.

    Callers apply the residency rules next (their findings carry the spec path), then
    `composition_problems` only for a stack inside its policy. `creating` False (refresh, destroy)
    leaves out what only stops new clusters: a Kubernetes version the provider no longer creates must
    not keep an operator from reading back or tearing down the cluster running it.
    """
    problems = list(_cluster_problems(spec))
    if creating:
        problems += version_problems(spec)
    problems += _model_problems(spec)
    problems += _audit_problems(spec)
    problems += _duplicates(("network", "egress"), [e.name for e in spec.network.egress])
    problems += _egress_declared(spec)
    problems += _cidr_problems(spec)
    if not spec.network.api_server_cidrs:
        problems.append(
            (
                ("network", "apiServerCidrs"),
                "required: the audit shippers read events and pod metadata from the Kubernetes API, which "
                "default-deny egress blocks unless its addresses are given",
            )
        )
    problems += _policy_problems(spec)
    if not problems:
        problems += capacity_problems(spec)
    return problems


def version_problems(spec: CustomerSpec) -> list[SpecProblem]:
    """A Kubernetes version the provider no longer creates (or never offered) is refused: exit 2."""
    try:
        verdict = check_kubernetes_version(spec.cluster.provider, spec.cluster.kubernetes_version)
    except VersionFactsError as err:  # SOVSTACK_TODAY is not a date: bad input, not a bug
        return [(("cluster", "kubernetesVersion"), str(err))]
    if verdict is not None and verdict.refused:
        return [(("cluster", "kubernetesVersion"), verdict.message)]
    return []


def fact_warnings(spec: CustomerSpec) -> list[SpecProblem]:
    """Facts about to expire (a version's end of support within 90 days): printed, never refused."""
    try:
        verdict = check_kubernetes_version(spec.cluster.provider, spec.cluster.kubernetes_version)
    except VersionFactsError:
        return []  # version_problems reports it
    if verdict is not None and not verdict.refused:
        return [(("cluster", "kubernetesVersion"), verdict.message)]
    return []


def _policy_problems(spec: CustomerSpec) -> list[SpecProblem]:
    """The residency policy must resolve (known profile, valid overrides) before anything is composed."""
    try:
        policy_of(spec)
    except PolicyError as err:
        r = spec.residency
        if r.policy is not None:
            field = "policy"
        elif r.profile not in load_profiles():
            field = "profile"
        else:
            field = "overrides"
        return [(("residency", field), str(err))]
    return []


def _egress_declared(spec: CustomerSpec) -> list[SpecProblem]:
    """Endpoints the stack talks to (object storage, the secret store, the issuer's keys, the rate limit's
    Redis) must be declared egress, or the network policy blocks them."""
    declared = {e.host for e in spec.network.egress}
    endpoints: list[tuple[Loc, str]] = [
        (("models", i, "weights", "s3", "endpoint"), model.weights.s3.endpoint)
        for i, model in enumerate(spec.models)
        if model.weights.s3 is not None
    ]
    endpoints += [
        (("models", i, "rollout", "weights", "s3", "endpoint"), model.rollout.weights.s3.endpoint)
        for i, model in enumerate(spec.models)
        if model.rollout is not None and model.rollout.weights is not None and model.rollout.weights.s3
    ]
    if spec.audit.endpoint is not None:
        endpoints.append((("audit", "endpoint"), spec.audit.endpoint))
    if spec.secrets.external_secrets is not None:
        # The External Secrets Operator reads the store: its namespace's egress rule needs the addresses.
        endpoints.append(
            (("secrets", "externalSecrets", "storeEndpoint"), spec.secrets.external_secrets.store_endpoint)
        )
    wanted = spec.identity.endpoints
    if wanted is not None and any(m.route for m in spec.models):
        # The Gateways' Envoy fetches the issuer's keys; the rate limit service reaches its Redis.
        if wanted.jwt is not None:
            endpoints.append((("identity", "endpoints", "jwt", "jwksUri"), wanted.jwt.jwks_uri))
        if wanted.rate_limit is not None:
            host = wanted.rate_limit.redis_url.rpartition(":")[0]
            labels = host.split(".")
            if not (len(labels) >= 3 and labels[2] == "svc"):  # an in-cluster Service needs no egress
                endpoints.append((("identity", "endpoints", "rateLimit", "redisUrl"), f"redis://{host}"))
    problems: list[SpecProblem] = []
    for loc, url in endpoints:
        try:
            host = urlparse(url).hostname or ""
        except ValueError as err:  # e.g. an unclosed IPv6 bracket
            problems.append((loc, f"not a valid URL: {err}"))
            continue
        if host not in declared:
            problems.append((loc, f"{host} is not declared in network.egress"))
    return problems


def _cidr_problems(spec: CustomerSpec) -> list[SpecProblem]:
    """Every egress CIDR parses, strictly (no host bits): the coverage rule measures them."""
    problems: list[SpecProblem] = []
    for i, egress in enumerate(spec.network.egress):
        for j, cidr in enumerate(egress.cidrs):
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as err:
                problems.append((("network", "egress", i, "cidrs", j), f"not a CIDR: {err}"))
    return problems


def _duplicates(loc: Loc, names: list[str]) -> list[SpecProblem]:
    counts = Counter(names)
    return [((*loc, i, "name"), f"duplicate name {n!r}") for i, n in enumerate(names) if counts[n] > 1]


def _cluster_region(spec: CustomerSpec) -> tuple[Region | None, list[SpecProblem]]:
    cluster = spec.cluster
    catalog = load_catalog()
    backend = cluster.provider
    field_name = "region" if backend in ("scaleway", "ovh") else "site"
    other = "site" if field_name == "region" else "region"
    problems: list[SpecProblem] = []
    if getattr(cluster, other) is not None:
        problems.append(((("cluster", other)), f"not used by provider {backend}; give {field_name} instead"))
    code = getattr(cluster, field_name)
    if code is None:
        problems.append(((("cluster", field_name)), f"required for provider {backend}"))
        return None, problems
    try:
        return catalog.region(provider_for_backend(backend), code), problems
    except CatalogError as err:
        problems.append(((("cluster", field_name)), str(err)))
        return None, problems


def _cluster_problems(spec: CustomerSpec) -> Iterator[SpecProblem]:
    cluster = spec.cluster
    catalog = load_catalog()
    backend = cluster.provider
    provider = provider_for_backend(backend)
    region, problems = _cluster_region(spec)
    yield from problems
    if getattr(cluster, backend) is None and backend in ("ovh", "talos"):
        yield ("cluster", backend), f"required for provider {backend}"
    for name in ("scaleway", "ovh", "talos", "existing"):
        if name != backend and getattr(cluster, name) is not None:
            yield ("cluster", name), f"options for {name} given but cluster.provider is {backend}"
    if backend in ("scaleway", "ovh") and cluster.system_pool is None:
        yield ("cluster", "systemPool"), f"required for provider {backend}"
    yield from _duplicates(("cluster", "gpuPools"), [p.name for p in cluster.gpu_pools])

    pools: list[tuple[Loc, tuple[str, ...]]] = []
    if cluster.system_pool is not None:
        sp = cluster.system_pool
        if sp.min_nodes > sp.max_nodes:
            yield ("cluster", "systemPool", "maxNodes"), f"{sp.max_nodes} is below minNodes {sp.min_nodes}"
        pools.append((("cluster", "systemPool"), sp.zones))
    for i, pool in enumerate(cluster.gpu_pools):
        loc: Loc = ("cluster", "gpuPools", i)
        pools.append((loc, pool.zones))
        if pool.min_nodes > pool.max_nodes:
            yield (*loc, "maxNodes"), f"{pool.max_nodes} is below minNodes {pool.min_nodes}"
        if backend in ("scaleway", "ovh"):
            if pool.node_type is None:
                yield (*loc, "nodeType"), f"required for provider {backend}"
            else:
                node = catalog.node_type(provider, pool.node_type)
                if node is None:
                    known = ", ".join(n.name for n in catalog.provider(provider).node_types)
                    yield (
                        (*loc, "nodeType"),
                        f"unknown {backend} node type {pool.node_type!r}; known: {known}",
                    )
                elif node.gpu != pool.gpu_type or node.gpus != pool.gpus_per_node:
                    yield (
                        (*loc, "nodeType"),
                        f"{node.name} has {node.gpus}x {node.gpu}, but the pool says "
                        f"gpuType {pool.gpu_type} and gpusPerNode {pool.gpus_per_node}",
                    )
        if region is None:
            continue
        # A zone outside the region is the residency rule zone.in-region (exit 1), not a spec problem.
        for zone_code in pool.zones:
            zone = region.zone(zone_code)
            if zone is not None and pool.gpu_type not in zone.gpus:
                offered = ", ".join(zone.gpus) or "none"
                yield (
                    (*loc, "gpuType"),
                    f"{pool.gpu_type} is not offered in zone {zone_code} (offered: {offered}; source: {zone.source})",
                )
    yield from _machine_problems(spec, region)


def _machine_problems(spec: CustomerSpec, region: Region | None) -> Iterator[SpecProblem]:
    cluster = spec.cluster
    pools = {p.name: p for p in cluster.gpu_pools}
    if cluster.talos is not None:
        machines, loc = cluster.talos.machines, ("cluster", "talos", "machines")
        if not any(m.role == "controlplane" for m in machines):
            yield loc, "at least one machine must have role controlplane"
    elif cluster.existing is not None:
        machines, loc = cluster.existing.nodes, ("cluster", "existing", "nodes")
    else:
        return
    yield from _duplicates(loc, [m.name for m in machines])
    for i, machine in enumerate(machines):
        if machine.pool is None:
            continue
        pool = pools.get(machine.pool)
        if pool is None:
            yield (*loc, i, "pool"), f"no GPU pool named {machine.pool!r} (pools: {', '.join(pools)})"
        elif machine.gpu_type != pool.gpu_type or machine.gpu_count != pool.gpus_per_node:
            yield (
                (*loc, i, "gpuType"),
                f"machine has {machine.gpu_count}x {machine.gpu_type}; pool {pool.name} expects "
                f"{pool.gpus_per_node}x {pool.gpu_type}",
            )


def _model_problems(spec: CustomerSpec) -> Iterator[SpecProblem]:
    pools = {p.name: p for p in spec.cluster.gpu_pools}
    yield from _duplicates(("models",), [m.name for m in spec.models])
    for i, model in enumerate(spec.models):
        if model.pool not in pools:
            yield ("models", i, "pool"), f"no GPU pool named {model.pool!r} (pools: {', '.join(pools)})"
        if model.autoscaling and model.autoscaling.min_replicas > model.autoscaling.max_replicas:
            yield ("models", i, "autoscaling", "maxReplicas"), "is below minReplicas"
        yield from _rollout_problems(spec, i)
    served = {m.model or m.name for m in spec.models} | {
        m.rollout.model for m in spec.models if m.rollout and m.rollout.model
    }
    for j, grant in enumerate(spec.licensing.grants):
        if grant.model not in served:
            yield (
                ("licensing", "grants", j, "model"),
                f"{grant.model!r} is not served by this stack (models: {', '.join(sorted(served))})",
            )


def _rollout_problems(spec: CustomerSpec, index: int) -> Iterator[SpecProblem]:
    model = spec.models[index]
    if model.rollout is None:
        return
    canary = f"{model.name}-canary"
    if any(m.name == canary for m in spec.models):
        yield ("models", index, "rollout"), f"the new version runs as {canary}, the name of another model"
    if model.rollout.model is not None and model.rollout.model not in load_models():
        yield (
            ("models", index, "rollout", "model"),
            f"unknown model {model.rollout.model!r}; known models: {', '.join(sorted(load_models()))}",
        )


def _audit_problems(spec: CustomerSpec) -> Iterator[SpecProblem]:
    audit, backend = spec.audit, spec.cluster.provider
    chosen = audit_backend(spec)
    if chosen in ("scaleway", "ovh") and chosen != backend:
        yield (
            ("audit", "backend"),
            f"a {chosen} bucket needs a {chosen} cluster (cluster.provider is {backend})",
        )
    if chosen in ("minio", "existing") and audit.endpoint is None:
        yield ("audit", "endpoint"), f"required for backend {chosen}"
    if chosen in ("scaleway", "ovh") and chosen == backend and audit.region is not None:
        try:
            load_catalog().region(chosen, audit.region)
        except CatalogError as err:
            yield ("audit", "region"), str(err)
            return
        if audit.region != spec.cluster.location:
            yield (
                ("audit", "region"),
                f"the audit bucket must be in the cluster's region {spec.cluster.location}, not "
                f"{audit.region}: audit records stay where the workloads run",
            )
    if chosen in ("minio", "existing") and audit.endpoint is not None:
        yield from _audit_endpoint_at_cluster(spec, audit.endpoint)
    yield from _capture_problems(spec, chosen)


def _capture_problems(spec: CustomerSpec, backend: str) -> Iterator[SpecProblem]:
    """`capture: full` keeps prompts and answers: only in a bucket sovstack makes write-once, in region.

    Fail closed: `existing` buckets are declared, not created (object lock unverifiable here), and an
    endpoint the catalog cannot place is not known to be in the cluster's region.
    """
    records = spec.audit.inference_records
    if not records.enabled or records.capture != "full":
        return
    loc = ("audit", "inferenceRecords", "capture")
    if backend == "existing":
        yield (
            loc,
            (
                "full is refused for an existing audit bucket: sovstack cannot make or prove it write-once; "
                "use digest, or a bucket sovstack creates (scaleway, ovh, minio)"
            ),
        )
        return
    if backend == "minio" and spec.audit.endpoint is not None:
        host = urlparse(spec.audit.endpoint).hostname or ""
        if load_catalog().locate(host) is None:
            yield (
                loc,
                (
                    f"full is refused: the catalog does not place the audit endpoint {host} at the cluster's "
                    f"{spec.cluster.location}, so prompts could leave the region; use digest"
                ),
            )


def _audit_endpoint_at_cluster(spec: CustomerSpec, endpoint: str) -> Iterator[SpecProblem]:
    """An operator's S3 endpoint must be one the catalog places at the cluster's own site or region."""
    try:
        host = urlparse(endpoint).hostname or ""
    except ValueError:
        return  # reported by _egress_declared
    catalog = load_catalog()
    try:
        cluster_region = catalog.region(provider_for_backend(spec.cluster.provider), spec.cluster.location)
    except CatalogError:
        return  # an unknown region or site is reported on cluster.region or cluster.site
    found = catalog.locate(host)
    if found is None:
        yield (
            ("audit", "endpoint"),
            f"{host} is not a catalogued endpoint at the cluster's {spec.cluster.location}: audit records "
            "stay where the workloads run; declare the endpoint at the site in sites.yaml",
        )
    elif found[0] != cluster_region:
        yield (
            ("audit", "endpoint"),
            f"{host} is at {found[0].describe()}, not at the cluster's {spec.cluster.location}: "
            "audit records stay where the workloads run",
        )


def capacity_problems(spec: CustomerSpec) -> list[SpecProblem]:
    """Each model must fit its pool's GPUs (with the planner's numbers), and each pool must hold its models."""
    pools = {p.name: p for p in spec.cluster.gpu_pools}
    problems: list[SpecProblem] = []
    gpus_used: Counter[str] = Counter()
    for i, model in enumerate(spec.models):
        pool = pools.get(model.pool)
        if pool is None:
            continue  # reported by _model_problems
        try:
            info = model_info(spec, i)
        except KeyError as err:
            problems.append((("models", i, "model"), str(err.args[0])))
            continue
        except ValidationError as err:
            first = err.errors()[0]
            problems.append((("models", i, "custom", *first["loc"]), first["msg"]))
            continue
        try:
            gpu = get_gpu(pool.gpu_type)
        except KeyError as err:
            problems.append(
                (("cluster", "gpuPools", list(pools).index(pool.name), "gpuType"), str(err.args[0]))
            )
            continue
        try:
            plan = plan_model(model, pool, info, gpu)
        except ValueError as err:
            field = "tensorParallelSize" if "tensor_parallel" in str(err) else "maxModelLen"
            problems.append((("models", i, field), str(err)))
            continue
        if not plan.fits:
            tp = plan.evaluated_tensor_parallel_size
            need = plan.total_need_per_gpu_gib
            detail = (
                f"needs {need:.1f} GiB per GPU at tensor-parallel {tp} but {pool.gpu_type} gives "
                f"{plan.budget_per_gpu_gib:.1f} GiB at utilisation {model.gpu_memory_utilization} "
                f"(short by {plan.shortfall_per_gpu_gib:.1f} GiB)"
                if need is not None
                else "; ".join(plan.explanation[-1:])
            )
            problems.append(
                (
                    ("models", i, "pool"),
                    f"{info.id} ({model.dtype}, maxModelLen {model.max_model_len}, concurrency "
                    f"{model.concurrency}) does not fit pool {pool.name} ({pool.gpus_per_node}x {pool.gpu_type}): "
                    f"{detail}; see `sovstack capacity {info.id} --gpu {pool.gpu_type}`",
                )
            )
            continue
        assert plan.tensor_parallel_size is not None
        gpus_used[pool.name] += plan.tensor_parallel_size * (
            model.autoscaling.min_replicas if model.autoscaling else model.replicas
        )
    for j, pool in enumerate(spec.cluster.gpu_pools):
        ceiling = pool.max_nodes * pool.gpus_per_node
        if gpus_used[pool.name] > ceiling:
            problems.append(
                (
                    ("cluster", "gpuPools", j, "maxNodes"),
                    f"models on pool {pool.name} need {gpus_used[pool.name]} GPUs but {pool.max_nodes} nodes "
                    f"x {pool.gpus_per_node} GPUs give {ceiling}",
                )
            )
    return problems
