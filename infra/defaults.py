"""Effective values of a spec where it leaves a choice to sovstack: images, charts, endpoints, retention.

Defaults come from the components' data files; this module only decides which applies.
"""

from __future__ import annotations

from sovstack.components.builders.audit_sink import audit_data
from sovstack.components.builders.gpu_cluster_args import GpuOperatorOptions, load_cluster_facts
from sovstack.components.builders.model_serving_args import serving_defaults
from sovstack.components.catalog import load_catalog, provider_for_backend
from sovstack.components.residency import ResidencyPolicy
from sovstack.infra.spec import CustomerSpec, ModelSpec


def vllm_image(spec: CustomerSpec, model: ModelSpec) -> str:
    return model.image or spec.registries.vllm or serving_defaults().vllm.image


def weights_fetcher_image(spec: CustomerSpec) -> str:
    return spec.registries.weights_fetcher or serving_defaults().fetcher.image


def fluent_bit_image(spec: CustomerSpec) -> str:
    return spec.registries.fluent_bit or audit_data().images.fluent_bit.image


def audit_endpoint(spec: CustomerSpec) -> str | None:
    """The audit bucket's S3 endpoint: the spec's, else the catalog's object storage of the bucket's region."""
    if spec.audit.endpoint:
        return spec.audit.endpoint
    provider = provider_for_backend(spec.cluster.provider)
    catalog = load_catalog()
    region = catalog.region(provider, spec.audit.region or spec.cluster.location)
    storage = [e for e in region.endpoints if e.service == "object-storage"]
    return f"https://{storage[0].host}" if storage else None


def audit_s3_region(spec: CustomerSpec) -> str:
    """The region string the S3 API expects for the audit endpoint (catalog `s3Region`)."""
    endpoint = audit_endpoint(spec)
    if endpoint:
        found = load_catalog().locate(endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0])
        if found and found[1].s3_region:
            return found[1].s3_region
    return spec.audit.region or spec.cluster.location


def audit_retention_days(spec: CustomerSpec, policy: ResidencyPolicy) -> int:
    return spec.audit.retention_days or policy.min_audit_retention_days


def minio_client_image(spec: CustomerSpec) -> str:
    return spec.registries.minio_client or audit_data().images.mc.image


def talos_installer_image(spec: CustomerSpec) -> str:
    """The image GPU workers install Talos from: the spec's mirror, else the Image Factory's (charts.yaml)."""
    talos = spec.cluster.talos
    assert talos is not None
    if talos.installer_image:
        return talos.installer_image
    template = load_cluster_facts().talos.factory_installer
    return template.format(schematic="<schematic-id>", version=talos.talos_version)


def gpu_operator_options(spec: CustomerSpec) -> GpuOperatorOptions:
    return GpuOperatorOptions(**spec.cluster.gpu_operator.model_dump())


def talos_system_installer_image(spec: CustomerSpec) -> str:
    """The image control-plane and non-GPU machines install Talos from: the spec's mirror, else Sidero Labs'."""
    talos = spec.cluster.talos
    assert talos is not None
    if talos.system_installer_image:
        return talos.system_installer_image
    return load_cluster_facts().talos.default_installer.format(version=talos.talos_version)


def talos_installer_images(spec: CustomerSpec) -> list[tuple[str, str]]:
    """(spec field, image) of every installer a Talos machine pulls, one per role that has machines."""
    talos = spec.cluster.talos
    if talos is None:
        return []
    out = []
    if any(m.pool for m in talos.machines):
        out.append(("installerImage", talos_installer_image(spec)))
    if any(not m.pool for m in talos.machines):
        out.append(("systemInstallerImage", talos_system_installer_image(spec)))
    return out
