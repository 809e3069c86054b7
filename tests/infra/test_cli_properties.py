"""Property: whatever file `sovstack validate` is given, it answers 0, 1 or 2 and never a traceback."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from sovstack.infra.cli import app
from tests.infra.conftest import CUSTOMER_KEY, EXAMPLES, example_customer

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    # Words the spec uses, so generated documents reach deeper validation now and then.
    | st.sampled_from(["scaleway", "ovh", "talos", "existing", "fr-par", "GRA11", "H100", "eu", "1.31"])
)
keys = st.text(max_size=12) | st.sampled_from(
    ["config", CUSTOMER_KEY, "name", "residency", "cluster", "models", "audit", "state", "profile"]
)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)


def _run(path: Path) -> Result:
    return CliRunner().invoke(app, ["validate", str(path)])


def _assert_clean(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{result.stderr}"
    )
    assert result.exit_code in (0, 1, 2), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"{uuid.uuid4().hex}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@SETTINGS
@given(document=documents, wrap=st.booleans())
def test_any_yaml_document_gives_a_clean_answer(tmp_path: Path, document: Any, wrap: bool) -> None:
    if wrap:
        document = {"config": {CUSTOMER_KEY: document}}
    _assert_clean(_run(_write(tmp_path, yaml.safe_dump(document))))


@SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_gives_a_clean_answer(tmp_path: Path, text: str) -> None:
    result = _run(_write(tmp_path, text))
    _assert_clean(result)


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a customer mapping, containers included."""
    found = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _leaves(value, (*path, index))
    return found


@SETTINGS
@given(data=st.data())
def test_an_example_with_one_value_replaced_gives_a_clean_answer(tmp_path: Path, data: st.DataObject) -> None:
    """One field of a valid stack replaced by anything: the deep checks (catalog, capacity, residency)
    see odd values that random documents rarely reach."""
    customer = example_customer(data.draw(st.sampled_from(EXAMPLES), label="example"))
    path = data.draw(st.sampled_from(_leaves(customer)), label="path")
    parent = customer
    for part in path[:-1]:
        parent = parent[part]
    if data.draw(st.booleans(), label="delete") and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(documents, label="value")
    text = yaml.safe_dump({"config": {CUSTOMER_KEY: customer}})
    _assert_clean(_run(_write(tmp_path, text)))


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",  # a recursive alias
        "\x00",
        "!!python/object:os.system x\n",
        "key: !!binary ZZ\n",
        "[" * 2000,  # nesting deep enough to trouble a recursive parser
    ],
)
def test_hostile_yaml_is_refused_cleanly(tmp_path: Path, text: str) -> None:
    result = _run(_write(tmp_path, text))
    _assert_clean(result)
    assert result.exit_code == 2
