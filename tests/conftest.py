from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.pulumi_mocks import Recorder


@pytest.fixture
def mocks() -> Iterator[Recorder]:
    """A fresh Pulumi mock engine per test; `mocks.resources` lists what was registered."""
    from tests.pulumi_mocks import start_mocks

    yield from start_mocks()
