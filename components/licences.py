"""Model licences as data: which uses each licence allows, read from `components/data/licences.yaml`.

The residency engine's `model.licence` rule (components/residency.py) refuses a model whose licence
does not allow the stack's declared use unless the stack declares a commercial grant. No Pulumi import.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from sovstack.components.provenance import Sourced, load_data_file

LICENCES_FILE = Path(__file__).parent / "data" / "licences.yaml"
Use = Literal["production", "evaluation", "research"]
USES: tuple[Use, ...] = get_args(Use)


class Licence(Sourced, BaseModel):
    """One licence: the uses it allows without another agreement, and where its text is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Exact licence name as models.yaml gives it.")
    allows: tuple[Use, ...] = Field(description="Uses allowed without a commercial grant.")
    source: str = Field(pattern=r"^https://", description="The licence text.")
    reason: str = Field(min_length=20, description="Which clause decides the allowed uses.")


@cache
def load_licences() -> dict[str, Licence]:
    """The licence catalog by name (read and validated once)."""
    raw = load_data_file(LICENCES_FILE, unique_keys=True)
    return {name: Licence.model_validate({"name": name, **body}) for name, body in raw["licences"].items()}


def get_licence(name: str) -> Licence | None:
    """The licence named `name`, or None when the catalog does not know it (it then allows nothing)."""
    return load_licences().get(name)
