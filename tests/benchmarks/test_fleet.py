"""The synthetic fleet the benchmarks render: valid stacks, mixed backends (functional only, no timing)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.fleet import Customer, generate_fleet, plan_fleet, stack_text, template_places
from sovstack.infra.newstack import list_templates, render_template, resolve_variables
from sovstack.infra.validation import validate_stack

CUSTOMER_KEY = "sovstack:customer"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Customer]]:
    folder = tmp_path_factory.mktemp("fleet")
    return folder, generate_fleet(8, folder, validate="all")


def test_writes_one_stack_file_per_customer(fleet: tuple[Path, list[Customer]]) -> None:
    folder, customers = fleet
    names = [f"cust-{i:05d}" for i in range(8)]
    assert [c.name for c in customers] == names
    assert sorted(p.name for p in folder.iterdir()) == [f"Pulumi.{n}.yaml" for n in names]


def test_every_stack_passes_validate(fleet: tuple[Path, list[Customer]]) -> None:
    folder, customers = fleet
    for customer in customers:
        result = validate_stack(str(folder / f"Pulumi.{customer.name}.yaml"))
        assert (result.exit_code, result.problems) == (0, []), customer
        assert result.findings and all(f.passed for f in result.findings)


def test_stack_carries_its_customer_name(fleet: tuple[Path, list[Customer]]) -> None:
    folder, customers = fleet
    for customer in customers:
        document = yaml.safe_load((folder / f"Pulumi.{customer.name}.yaml").read_text(encoding="utf-8"))
        spec = document["config"][CUSTOMER_KEY]
        assert spec["name"] == customer.name
        assert spec["cluster"]["provider"] == customer.provider
        assert spec["audit"]["bucket"] == f"{customer.name}-audit"


def test_fleet_covers_all_templates_and_four_backends(fleet: tuple[Path, list[Customer]]) -> None:
    _, customers = fleet
    assert {c.template for c in customers} == set(list_templates())
    assert {c.backend for c in customers} == {"scaleway", "ovh", "talos", "existing"}


def test_same_count_gives_same_fleet() -> None:
    assert list(plan_fleet(8)) == list(plan_fleet(8))
    assert list(plan_fleet(12))[:8] == list(plan_fleet(8))


def test_cached_render_equals_a_direct_render() -> None:
    customer = Customer("cust-00042", "eu", "ovh", "GRA11")
    variables, _ = resolve_variables("eu", "ovh", "GRA11", ())
    direct = render_template("eu", customer.name, variables, "cmd")
    # Only the first line (the creating command) differs.
    assert stack_text(customer).splitlines()[1:] == direct.splitlines()[1:]


def test_places_come_from_the_template() -> None:
    places = template_places("eu")
    assert ("scaleway", "fr-par") in places
    assert ("ovh", "GRA11") in places
    assert ("talos", "se-sto-dc1") in places and ("existing", "se-sto-dc1") in places
