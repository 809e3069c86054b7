"""The distribution: `pip install sovstack` adds the `sovstack` package and nothing else, data included.

The wheel is built from this checkout without network (no build isolation: the dev extra brings
setuptools and wheel). Installing it into an empty virtualenv and running the CLI and the Pulumi
program from there needs the dependencies from PyPI: tests/e2e/test_installed_package.py does that.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.wheel import build_wheel

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    built = build_wheel(tmp_path_factory.mktemp("wheel"))
    return zipfile.ZipFile(built)


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"sovstack"}
    top_level = [n for n in wheel.namelist() if n.endswith(".dist-info/top_level.txt")]
    if top_level:
        assert wheel.read(top_level[0]).decode().split() == ["sovstack"]


@pytest.mark.slow
def test_the_wheel_carries_code_data_templates_and_the_policy_pack(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    expected = {
        "sovstack/__init__.py",
        "sovstack/components/residency.py",
        "sovstack/components/builders/model_serving.py",
        "sovstack/components/data/regions.yaml",
        "sovstack/components/data/inference-record.schema.json",
        "sovstack/infra/__main__.py",
        "sovstack/infra/cli.py",
        "sovstack/infra/templates/report.md.j2",
        "sovstack/stack_templates/variables.yaml",
        "sovstack/stack_templates/places.yaml",
        "sovstack/stack_templates/profiles/eu.yaml",
        "sovstack/policies/__main__.py",
        "sovstack/policies/PulumiPolicy.yaml",
    }
    assert expected <= names, sorted(expected - names)
    data = {n for n in names if n.startswith("sovstack/components/data/")}
    shipped = {
        f"sovstack/components/data/{p.name}"
        for pattern in ("*.yaml", "*.json")
        for p in (ROOT / "components" / "data").glob(pattern)
    }
    assert data == shipped


@pytest.mark.slow
def test_the_console_script_points_into_the_package(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "sovstack = sovstack.infra.cli:main" in wheel.read(entry_points).decode()


def pins() -> dict[str, str]:
    """constraints.txt as {normalized name: version}."""
    found = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            found[name.lower().replace("_", "-")] = version
    return found


def test_the_python_kubernetes_sdk_is_pinned_to_the_provider_the_e2e_suite_builds() -> None:
    import yaml

    versions = yaml.safe_load((ROOT / "toolchain" / "versions.yaml").read_text(encoding="utf-8"))
    package = versions["tools"]["pulumi-resource-kubernetes"]["python_package"]
    name, _, version = package.partition("==")
    assert pins()[name] == version


def test_every_dependency_is_pinned() -> None:
    """A dependency left out of constraints.txt would float on a fresh clone."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    names = {
        d.split(";")[0]
        .split("[")[0]
        .split(">")[0]
        .split("<")[0]
        .split("=")[0]
        .strip()
        .lower()
        .replace("_", "-")
        for d in declared
    }
    assert names - set(pins()) == set()
