"""The stack-file schema: `sovstack schema` describes a whole stack file, the committed copy is up to date,
the examples validate against it, and stacks `sovstack new` writes point at it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from sovstack.infra.cli import app
from sovstack.infra.stack_schema import SCHEMA_FILE, modeline, schema_text
from tests.infra.conftest import EXAMPLES, REPO_ROOT, STACKS_DIR


def test_the_committed_schema_is_up_to_date() -> None:
    assert SCHEMA_FILE == REPO_ROOT / "schema" / "stack.schema.json"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "schema/stack.schema.json is stale: run `sovstack schema > schema/stack.schema.json`"
    )


def test_schema_command_prints_the_stack_file_schema() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.stdout == schema_text()
    document = json.loads(result.stdout)
    assert document["title"] == "sovstack stack file (stacks/Pulumi.NAME.yaml)"
    assert document["required"] == ["config"]
    config = document["properties"]["config"]
    assert config["required"] == ["sovstack:customer"]
    assert config["properties"]["sovstack:customer"] == {"$ref": "#/$defs/CustomerSpec"}
    assert "gpuPools" in document["$defs"]["ClusterSpec"]["properties"]


def test_customer_option_keeps_the_bare_spec_schema() -> None:
    bare = json.loads(CliRunner().invoke(app, ["schema", "--customer"]).stdout)
    assert bare["title"] == "sovstack customer spec (config.sovstack:customer)"
    assert "config" not in bare["properties"]
    assert {"name", "cluster", "models"} <= set(bare["properties"])


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_validates_against_the_schema(example: str) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    document = yaml.safe_load((STACKS_DIR / f"Pulumi.{example}.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(document)


def test_the_schema_refuses_what_validate_refuses() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    document = yaml.safe_load((STACKS_DIR / "Pulumi.gov-fr.yaml").read_text(encoding="utf-8"))
    document["config"]["sovstack:customer"]["cluster"]["gpuPools"][0]["colour"] = "red"
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(document))
    assert [list(e.absolute_path) for e in errors] == [
        ["config", "sovstack:customer", "cluster", "gpuPools", 0]
    ]
    del document["config"]["sovstack:customer"]
    assert not jsonschema.Draft202012Validator(schema).is_valid(document)


def test_modeline_is_relative_to_the_stacks_folder(tmp_path: Path) -> None:
    assert modeline(STACKS_DIR) == "# yaml-language-server: $schema=../schema/stack.schema.json\n"
    assert modeline(REPO_ROOT / "stacks" / "eu" / "prod") == (
        "# yaml-language-server: $schema=../../../schema/stack.schema.json\n"
    )
    # Outside this repository: the schema beside the stacks folder.
    assert modeline(tmp_path / "stacks") == "# yaml-language-server: $schema=../schema/stack.schema.json\n"


def test_new_stack_starts_with_the_schema_line_and_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "stacks"
    monkeypatch.setenv("SOVSTACK_STACKS_DIR", str(folder))
    result = CliRunner().invoke(app, ["new", "acme", "--template", "EU"])
    assert result.exit_code == 0, result.stderr
    text = (folder / "Pulumi.acme.yaml").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=../schema/stack.schema.json"
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(text))


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_points_its_editor_at_the_schema(example: str) -> None:
    first = (STACKS_DIR / f"Pulumi.{example}.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first + "\n" == modeline(STACKS_DIR)
