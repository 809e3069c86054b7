"""Which backend and secrets provider a run uses, as the program sees it before registering anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sovstack.infra import cli
from sovstack.infra.pipeline import load_stack
from sovstack.infra.state_check import normalize_backend, state_problems
from tests.infra.conftest import StackWriter, example_customer

STATE = example_customer("gov-fr")["state"]
BACKEND, DECLARED = STATE["backendUrl"], STATE["secretsProvider"]
DECLARED_SETTINGS = {"secretsprovider": DECLARED, "encryptedkey": "dmF1bHQ6djE6YWJj"}


def stack_with_settings(write_stack: StackWriter, settings: dict[str, str] | None = None) -> Path:
    """gov-fr in tmp/stacks/, with the encryption settings Pulumi would have written into it."""
    path = write_stack("gov-fr")
    stacks = path.parent / "stacks"
    stacks.mkdir()
    moved = stacks / path.name
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document.update(settings or {})
    moved.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return moved


def check(path: Path, env: dict[str, str]) -> tuple[list[tuple[tuple[int | str, ...], str]], list[str]]:
    return state_problems(load_stack(str(path)).spec, path, env)


def test_backend_urls_compare_without_trailing_slash_or_query_order() -> None:
    assert normalize_backend("s3://b/?region=gra&endpoint=e") == normalize_backend(
        "s3://b?endpoint=e&region=gra"
    )
    assert normalize_backend("s3://b?region=gra") != normalize_backend("s3://b?region=sbg")


def test_the_declared_backend_and_provider_pass(write_stack: StackWriter, tmp_path: Path) -> None:
    path = stack_with_settings(write_stack, DECLARED_SETTINGS)
    problems, notes = check(path, {"PULUMI_BACKEND_URL": BACKEND, "PULUMI_HOME": str(tmp_path)})
    assert (problems, notes) == ([], [])


def test_another_backend_is_a_refusal_naming_the_field_and_the_source(
    write_stack: StackWriter, tmp_path: Path
) -> None:
    path = stack_with_settings(write_stack, DECLARED_SETTINGS)
    problems, _ = check(path, {"PULUMI_BACKEND_URL": "file:///tmp/elsewhere", "PULUMI_HOME": str(tmp_path)})
    assert [loc for loc, _ in problems] == [("state", "backendUrl")]
    assert "file:///tmp/elsewhere (PULUMI_BACKEND_URL)" in problems[0][1]


def test_the_project_backend_then_pulumi_login_are_read_when_no_variable_is_set(
    write_stack: StackWriter, tmp_path: Path
) -> None:
    path = stack_with_settings(write_stack, DECLARED_SETTINGS)
    home = tmp_path / "home"
    home.mkdir()
    (home / "credentials.json").write_text(json.dumps({"current": "https://api.pulumi.com"}))
    problems, _ = check(path, {"PULUMI_HOME": str(home)})
    assert "https://api.pulumi.com" in problems[0][1] and "pulumi login" in problems[0][1]
    (path.parent.parent / "Pulumi.yaml").write_text(yaml.safe_dump({"backend": {"url": BACKEND}}))
    problems, notes = check(path, {"PULUMI_HOME": str(home)})
    assert (problems, notes) == ([], [])


def test_what_cannot_be_seen_is_unverified_not_passed(write_stack: StackWriter, tmp_path: Path) -> None:
    path = stack_with_settings(write_stack)
    problems, notes = check(path, {"PULUMI_HOME": str(tmp_path)})
    assert problems == []
    assert [note.split(":")[0] for note in notes] == [
        "state.backendUrl not verified",
        "state.secretsProvider not verified",
    ]


@pytest.mark.parametrize(
    ("settings", "seen"),
    [
        ({"secretsprovider": "hashivault://other"}, "hashivault://other"),
        ({"encryptionsalt": "v1:abc"}, "passphrase"),
    ],
)
def test_another_secrets_provider_is_a_refusal(
    write_stack: StackWriter, tmp_path: Path, settings: dict[str, str], seen: str
) -> None:
    path = stack_with_settings(write_stack, settings)
    problems, _ = check(path, {"PULUMI_BACKEND_URL": BACKEND, "PULUMI_HOME": str(tmp_path)})
    assert [loc for loc, _ in problems] == [("state", "secretsProvider")]
    assert f"encrypts its secrets with {seen}" in problems[0][1]
    assert f"pulumi stack change-secrets-provider {DECLARED}" in problems[0][1]


def test_sovstack_up_without_the_pulumi_cli_says_so(
    write_stack: StackWriter, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = stack_with_settings(write_stack)
    (path.parent.parent / "Pulumi.yaml").write_text("name: sovstack\nruntime: python\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = CliRunner().invoke(cli.app, ["preview", str(path)])
    assert result.exit_code == 2, result.output
    assert "the Pulumi CLI is not on PATH" in result.output
    assert "Traceback" not in result.output


def test_sovstack_up_outside_a_project_names_the_file(
    write_stack: StackWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = stack_with_settings(write_stack)
    monkeypatch.chdir(path.parent)
    result = CliRunner().invoke(cli.app, ["up", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}: no Pulumi.yaml above this stack file" in result.output
