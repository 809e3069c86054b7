"""Catalog look-ups for a spec that every later stage shares: its policy, audit backend and model figures.

The bottom of the pipeline (parse → check → compose → evaluate → program, render, report): this
module imports only the spec and the components' catalogs, so checks, composition and the
residency walk can all use it without importing each other.
"""

from __future__ import annotations

from sovstack.components.capacity import (
    CapacityPlan,
    GpuInfo,
    ModelInfo,
    custom_model,
    get_model,
    plan_capacity,
)
from sovstack.components.residency import ResidencyPolicy, resolve_policy
from sovstack.infra.spec import CustomerSpec, GpuPoolSpec, ModelSpec


def policy_of(spec: CustomerSpec) -> ResidencyPolicy:
    """The spec's residency policy: a profile with overrides, or a policy spelled out (PolicyError)."""
    r = spec.residency
    return resolve_policy(profile=r.profile, overrides=r.overrides or None, policy=r.policy)


def default_audit_backend(cluster_backend: str) -> str:
    """A managed cluster keeps its audit bucket with its provider; own sites use MinIO."""
    return cluster_backend if cluster_backend in ("scaleway", "ovh") else "minio"


def audit_backend(spec: CustomerSpec) -> str:
    return spec.audit.backend or default_audit_backend(spec.cluster.provider)


def model_info(spec: CustomerSpec, index: int) -> ModelInfo:
    """The catalog or custom figures of `spec.models[index]` (raises KeyError or ValidationError)."""
    model = spec.models[index]
    if model.custom is not None:
        return custom_model(model.name, model.custom)
    assert model.model is not None
    return get_model(model.model)


def plan_model(model: ModelSpec, pool: GpuPoolSpec, info: ModelInfo, gpu: GpuInfo) -> CapacityPlan:
    """The capacity plan of one model on its pool: the one call validation and composition share."""
    return plan_capacity(
        info,
        gpu,
        dtype=model.dtype,
        max_model_len=model.max_model_len,
        concurrency=model.concurrency,
        gpus_per_node=pool.gpus_per_node,
        gpu_memory_utilization=model.gpu_memory_utilization,
        tensor_parallel_size=model.tensor_parallel_size,
    )
