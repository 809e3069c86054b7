"""The Kubernetes schema check the residency report may claim: every rendered object against its
Kubernetes version's schema in strict mode (kubernetes-validate), run when the report is built.

kubernetes-validate is an optional dependency (`sovstack[schemas]`, about 100 MB of schemas): where it
is not installed the check does not run and
the report says so, rather than claiming a check nobody made. Kinds it ships no schema for (custom
resources: KEDA, Gateway API, Argo CD...) are listed as unchecked.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

CHECK_NAME = "Kubernetes schemas, strict mode (kubernetes-validate)"


def _cache_schema_files() -> None:
    """kubernetes-validate reads its schema files, the multi-megabyte definitions included, on every
    call (40 ms an object), and lists its schema directories twice per object (1 ms); neither changes
    within a process, so each is read once (3 ms an object, then 2 ms)."""
    from kubernetes_validate import utils

    if not hasattr(utils.schema_contents, "cache_info"):
        utils.schema_contents = cache(utils.schema_contents)
    if not hasattr(utils.all_versions, "cache_info"):
        utils.all_versions = cache(utils.all_versions)


def check_manifests(objects: Iterable[dict[str, Any]], version: str) -> dict[str, Any]:
    """What ran and what it found: {ran, tool, kubernetesVersion, checked, failures, uncheckedKinds, reason}."""
    objects = list(objects)
    result: dict[str, Any] = {
        "check": CHECK_NAME,
        "kubernetesVersion": version,
        "ran": False,
        "tool": None,
        "checked": 0,
        "failures": [],
        "uncheckedKinds": [],
        "reason": None,
    }
    try:
        import kubernetes_validate  # noqa: F401  (installed: the check runs)
        from kubernetes_validate.utils import SchemaNotFoundError, VersionNotSupportedError
    except ImportError:
        result["reason"] = "kubernetes-validate is not installed (pip install 'sovstack[schemas]'): not run"
        return result
    from importlib.metadata import version as package_version

    from kubernetes_validate import utils

    _cache_schema_files()
    if utils.major_minor(version) > utils.latest_version():  # the library's own test, before any object
        result["reason"] = f"kubernetes-validate has no schemas for Kubernetes {version}: not run"
        return result
    result["tool"] = f"kubernetes-validate {package_version('kubernetes-validate')}"
    unchecked: set[str] = set()
    failures: list[str] = []
    checked = 0
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            validator = _validator(version, str(obj["kind"]), str(obj["apiVersion"]))
        except SchemaNotFoundError:
            unchecked.add(str(obj.get("kind")))
            continue
        except VersionNotSupportedError:
            result["reason"] = f"kubernetes-validate has no schemas for Kubernetes {version}: not run"
            result["tool"] = None
            return result
        error = next(iter(validator.iter_errors(obj)), None)  # what validator.validate raises
        if error is not None:
            failures.append(f"{name}: {error.message} at {'.'.join(str(p) for p in error.path) or '(root)'}")
        checked += 1
    result.update(ran=True, checked=checked, failures=failures, uncheckedKinds=sorted(unchecked))
    return result


@cache
def _validator(desired_version: str, kind: str, api_version: str) -> Any:
    """The validator `kubernetes_validate.validate(obj, desired_version, strict=True)` builds for an
    object of this kind, built once per kind instead of once per object (with its schema registry:
    two thirds of the check's time). The same schema file, registry and validator class, so the same
    verdict and, through `best_match` as `validator.validate` uses it, the same first error."""
    import re

    from jsonschema.validators import Draft202012Validator
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    if desired_version.startswith("v"):
        desired_version = desired_version[1:]
    if utils.major_minor(desired_version) > utils.latest_version():
        raise utils.VersionNotSupportedError(version=utils.major_minor(desired_version))
    version = [v for v in utils.all_versions() if utils.major_minor(v) <= utils.major_minor(desired_version)][
        -1
    ]
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema_dir = f"v{version}-local-strict"
    try:
        schema = utils.schema_contents(
            f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group_version}.json", desired_version
        )
    except FileNotFoundError:
        raise utils.SchemaNotFoundError(
            version=utils.major_minor(desired_version), kind=kind, api_version=api_version
        ) from None
    definitions = utils.schema_contents(
        f"kubernetes-json-schema/{schema_dir}/_definitions.json", desired_version
    )
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return Draft202012Validator(schema, registry=registry)
