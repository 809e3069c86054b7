from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

# In CI, property tests explore the same examples on every run: a red build is reproducible, never a
# roll of the dice. Locally they keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Facts that expire (components/data/kubernetes.yaml) are judged against SOVSTACK_TODAY: the suite
# runs on the day the facts were last checked, so a test result never depends on the calendar.
# Subprocesses the tests start inherit it. Tests of the date logic pass their own day.
os.environ.setdefault("SOVSTACK_TODAY", "2026-12-01")

if TYPE_CHECKING:
    from tests.pulumi_mocks import Recorder


@pytest.fixture
def mocks() -> Iterator[Recorder]:
    """A fresh Pulumi mock engine per test; `mocks.resources` lists what was registered."""
    from tests.pulumi_mocks import start_mocks

    yield from start_mocks()
