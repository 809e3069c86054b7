"""Pure helpers shared by the component builders: stable names, labels and hardened pod settings.

Nothing here imports Pulumi: `sovstack render` and the Pulumi shells both call these.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path
from typing import Any

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_MAX = 63

#: Label keys sovstack stamps on every object it builds and every GPU node it provisions.
LABEL_CUSTOMER = "sovstack.io/customer"
LABEL_REGION = "sovstack.io/region"
LABEL_ZONE = "sovstack.io/zone"
LABEL_GPU = "sovstack.io/gpu"
LABEL_POOL = "sovstack.io/pool"
LABEL_RESIDENCY = "sovstack.io/residency"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}

#: The cloud metadata address every egress rule must exclude.
METADATA_CIDR = "169.254.169.254/32"

Manifest = dict[str, Any]


def is_dns_label(value: str) -> bool:
    """True when `value` is a valid DNS-1123 label (lowercase, digits, '-', at most 63 characters)."""
    return len(value) <= DNS1123_MAX and bool(DNS1123_LABEL.match(value))


def dns_name(*parts: str, max_length: int = DNS1123_MAX) -> str:
    """Join parts into a DNS-1123 label; names that would be too long are cut and given a stable hash suffix.

    The same parts always give the same name, on any machine, so resource names never drift.
    """
    raw = "-".join(p.strip("-").lower() for p in parts if p)
    cleaned = re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")
    cleaned = re.sub(r"-{2,}", "-", cleaned)
    if len(cleaned) <= max_length and cleaned:
        return cleaned
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    head = cleaned[: max_length - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


def standard_labels(
    *,
    name: str,
    component: str,
    customer: str,
    region: str,
    residency: str,
    part_of: str = "sovstack",
    version: str | None = None,
) -> dict[str, str]:
    """The labels every sovstack object carries: the Kubernetes recommended set plus residency labels."""
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": part_of,
        "app.kubernetes.io/managed-by": "sovstack",
        LABEL_CUSTOMER: customer,
        LABEL_REGION: region,
        LABEL_RESIDENCY: residency,
    }
    if version:
        labels["app.kubernetes.io/version"] = label_value(version)
    return labels


def label_value(value: str) -> str:
    """A value Kubernetes accepts as a label value (63 characters, alphanumerics, '-', '_', '.')."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-_.")
    return cleaned[:63].rstrip("-_.")


def restricted_container_security_context(*, user: int = 65532) -> dict[str, Any]:
    """Pod Security Standards `restricted`, plus a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod_security_context(*, user: int = 65532) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "fsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def image_is_pinned(image: str) -> bool:
    """True when an image reference carries a sha256 digest (`repo@sha256:...` or `repo:tag@sha256:...`)."""
    return bool(re.search(r"@sha256:[0-9a-f]{64}$", image))


def image_registry(image: str) -> str:
    """The registry host of an image reference, with Docker Hub's implicit host made explicit."""
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def image_repository(image: str) -> str:
    """`registry/path` of an image, without tag or digest, Docker Hub names made explicit."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)
    if ":" in last[-1]:
        ref = ref[: ref.rfind(":")]
    registry = image_registry(image)
    if ref.startswith(registry + "/"):
        return ref
    path = ref if "/" in ref else f"library/{ref}"
    return f"{registry}/{path}"


def checkov_skip_annotations(workload: str) -> dict[str, str]:
    """`checkov.io/skipN` annotations for a workload listed in data/checkov-skips.yaml (else none)."""
    entries = _checkov_skips()["workloads"].get(workload, {})
    return {
        f"checkov.io/skip{i}": f"{check}={reason}"
        for i, (check, reason) in enumerate(sorted(entries.items()), 1)
    }


@cache
def _checkov_skips() -> dict[str, Any]:
    path = Path(__file__).parent / "data" / "checkov-skips.yaml"
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = load_yaml(handle)
    return data


def load_yaml(stream: Any, *, unique_keys: bool = False) -> Any:
    """Safe-load YAML (a string or an open file) through libyaml's C parser when PyYAML has it.

    `unique_keys` refuses a mapping that repeats a key, which PyYAML otherwise resolves silently by
    keeping the last: in a stack file, the first of two `gpuOperator:` blocks would simply vanish.
    """
    import yaml

    loader = _unique_key_loader() if unique_keys else getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(stream, Loader=loader)


@cache
def _unique_key_loader() -> Any:
    import yaml

    class DuplicateKeyError(yaml.constructor.ConstructorError, ValueError):
        """A mapping repeats a key (a YAML error that is also a ValueError)."""

    class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        pass

    def construct_mapping(loader: Any, node: Any) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base`: merged keys may be overridden; the mapping's own keys stay unique
            key = loader.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: construct_mapping reports it
            if duplicate:
                raise DuplicateKeyError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return loader.construct_mapping(node)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return UniqueKeyLoader


def to_yaml(value: Any, *, sort_keys: bool = False) -> str:
    """Block-style YAML text, through libyaml's C emitter when PyYAML has it (several times faster)."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return str(yaml.dump(value, Dumper=dumper, sort_keys=sort_keys, default_flow_style=False))
