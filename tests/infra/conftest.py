"""Fixtures for CLI and spec tests: example stacks copied, mutated and written to a temporary folder."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
STACKS_DIR = REPO_ROOT / "stacks"
EXAMPLES = ("industrial-eu", "gov-fr", "research-se", "airgap-onprem")
CUSTOMER_KEY = "sovstack:customer"

Customer = dict[str, Any]
StackWriter = Callable[..., Path]


def example_customer(name: str) -> Customer:
    """A fresh, mutable copy of an example stack's `sovstack:customer` mapping."""
    document = yaml.safe_load((STACKS_DIR / f"Pulumi.{name}.yaml").read_text(encoding="utf-8"))
    return copy.deepcopy(document["config"][CUSTOMER_KEY])


@pytest.fixture(autouse=True)
def reproducible_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports carry when and at which commit they were made: fixed here, so renders (and the golden
    snapshots) are byte-identical across runs and commits. Subprocesses inherit both."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764547200")  # 2025-12-01T00:00:00Z
    monkeypatch.setenv("SOVSTACK_GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567")


@pytest.fixture
def write_stack(tmp_path: Path) -> StackWriter:
    """`write_stack("gov-fr", mutate)` writes the example, changed by `mutate(customer)`, to tmp_path.

    Returns the file's absolute path; the CLI prints it verbatim at the start of every problem line.
    """

    def write(example: str, mutate: Callable[[Customer], None] | None = None, filename: str = "") -> Path:
        customer = example_customer(example)
        if mutate is not None:
            mutate(customer)
        path = tmp_path / (filename or f"Pulumi.{example}.yaml")
        path.write_text(
            yaml.safe_dump({"config": {CUSTOMER_KEY: customer}}, sort_keys=False), encoding="utf-8"
        )
        return path

    return write
