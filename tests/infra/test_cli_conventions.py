"""The CLI's shared conventions (issue 14): one provider vocabulary, case-insensitive ids, --json and
-h everywhere, an example in every help, "did you mean", colour only on a terminal, spec names (never
component internals) in messages, help types as users write them, and no Pulumi import where none is
needed."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sovstack.infra import cli_style
from sovstack.infra.cli import app
from tests.infra.conftest import REPO_ROOT, StackWriter

#: Every command and sub-command, as typed.
COMMANDS = [
    ("validate",), ("regions",), ("schema",), ("templates",), ("models",), ("capacity",), ("plan",),
    ("render",), ("report",), ("new",), ("preview",), ("up",), ("refresh",), ("destroy",),
    ("weights", "manifest"), ("audit", "query"), ("audit", "verify"),
]  # fmt: skip
#: Commands that print data: each takes --json.
DATA_COMMANDS = [
    ("validate",), ("regions",), ("schema",), ("templates",), ("models",), ("capacity",), ("plan",),
    ("report",), ("new",), ("weights", "manifest"), ("audit", "query"), ("audit", "verify"),
]  # fmt: skip


def invoke(*args: str, **kwargs: object) -> Result:
    return CliRunner().invoke(app, list(args), **kwargs)  # type: ignore[arg-type]


# --- help ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_short_help_with_an_example(command: tuple[str, ...]) -> None:
    result = invoke(*command, "-h")
    assert result.exit_code == 0, result.output
    assert f"Usage: sovstack {' '.join(command)}" in result.output
    assert "Example: sovstack " + command[0] in " ".join(result.output.split())


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_values_not_python_types(command: tuple[str, ...]) -> None:
    output = invoke(*command, "--help").output
    for python_type in ("<str>", "<bool>", "<int>", "<float>", "<list", "<Path>", "<path>"):
        assert python_type not in output, (command, python_type)


def test_help_names_values_as_users_write_them() -> None:
    words = " ".join(invoke("capacity", "-h").output.split())
    for shown in (
        "--gpu GPU",
        "--max-model-len TOKENS",
        "--gpu-memory-utilization FRACTION",
        "--region REGION",
    ):
        assert shown in words, shown
    assert "--compare OLD.json" in " ".join(invoke("plan", "-h").output.split())


def test_group_help_takes_h() -> None:
    for group in ((), ("weights",), ("audit",)):
        result = invoke(*group, "-h")
        assert result.exit_code == 0
        assert "Usage: sovstack" in result.output


@pytest.mark.parametrize("command", DATA_COMMANDS, ids=" ".join)
def test_every_data_command_takes_json(command: tuple[str, ...]) -> None:
    assert "--json" in invoke(*command, "-h").output


# --- one vocabulary ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["talos", "existing", "operator", "OPERATOR", "Talos"])
def test_regions_take_the_provider_names_new_takes(provider: str) -> None:
    result = invoke("regions", "--provider", provider, "--json")
    assert result.exit_code == 0, result.stderr
    assert {r["region"] for r in json.loads(result.stdout)} == {"fr-par-dc1", "se-sto-dc1"}


def test_ids_are_case_insensitive_everywhere() -> None:
    upper = json.loads(invoke("regions", "--gpu", "H100", "--country", "FR", "--json").stdout)
    lower = json.loads(
        invoke("regions", "--gpu", "h100", "--country", "fr", "--provider", "SCALEWAY", "--json").stdout
    )
    assert [r["region"] for r in lower] == ["fr-par"]
    assert lower == [r for r in upper if r["provider"] == "scaleway"]
    result = invoke("capacity", "MISTRAL-7B-instruct-v0-3", "--gpu", "l4")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("mistral-7b-instruct-v0-3 (bf16, KV cache auto) on L4: fits")
    result = invoke("report", "gov-fr", "--format", "JSON")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["verdict"]["passed"] is True


def test_report_json_is_format_json() -> None:
    assert (
        invoke("report", "gov-fr", "--json").stdout == invoke("report", "gov-fr", "--format", "json").stdout
    )
    clash = invoke("report", "gov-fr", "--json", "--format", "html")
    assert (clash.exit_code, clash.stderr) == (2, "--json contradicts --format html; give one\n")


# --- did you mean -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("regions", "--provider", "scalway"), "--provider: unknown provider 'scalway'; did you mean 'scaleway'?; known: "),
        (("regions", "--gpu", "L40"), "--gpu: unknown GPU type 'L40'; did you mean 'L40S'?; known: "),
        (("capacity", "mistral-small", "--gpu", "H100"), "sovstack capacity: MODEL: unknown model 'mistral-small'; did you mean 'mistral-small-3-1-24b-instruct-2503'?; "),
        (("capacity", "mistral-7b-instruct-v0-3", "--gpu", "H10"), "sovstack capacity: --gpu: unknown GPU type 'H10'; did you mean 'H100'?; "),
        (("capacity", "mistral-7b-instruct-v0-3", "--provider", "ovh", "--region", "GRA1"), "--region: unknown region 'GRA1'; did you mean 'GRA11'?; known: "),
        (("new", "acme", "--template", "fr-sovereing"), "--template: unknown template 'fr-sovereing'; did you mean 'fr-sovereign'?; known: "),
        (("report", "gov-fr", "--format", "htm"), "--format: 'htm' is not one of md, json, html; did you mean 'html'?"),
    ],
)  # fmt: skip
def test_unknown_ids_suggest_the_closest(args: tuple[str, ...], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message), result.stderr


def test_unknown_key_in_a_stack_suggests_the_closest(write_stack: StackWriter) -> None:
    path = write_stack("industrial-eu", lambda c: c["cluster"]["gpuPools"][0].update(maxNode=4))
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert result.stderr == (
        f"{path}: sovstack:customer.cluster.gpuPools[0].maxNode: unknown key (not part of the spec; "
        "did you mean 'maxNodes'?; see `sovstack schema`)\n"
    )


def test_unknown_region_in_a_stack_suggests_the_closest(write_stack: StackWriter) -> None:
    path = write_stack("gov-fr", lambda c: c["cluster"].update(region="GRA1"))
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert "unknown ovh region 'GRA1'; did you mean 'GRA11'?; known: " in result.stderr


# --- several stacks, empty filters -----------------------------------------------------------------------


def test_several_stacks_end_with_a_summary_line(write_stack: StackWriter, tmp_path: Path) -> None:
    broken = write_stack(
        "gov-fr", lambda c: c["audit"].update(retentionDays=30), filename="Pulumi.short.yaml"
    )
    result = invoke("validate", "industrial-eu", "gov-fr", str(broken), str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "4 stacks: 2 valid, 1 breaking residency rules, 1 invalid"
    one = invoke("validate", "gov-fr")
    assert "stacks:" not in one.output


def test_several_valid_stacks_summary_goes_to_stdout() -> None:
    result = invoke("validate", "industrial-eu", "gov-fr")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "2 stacks: 2 valid, 0 breaking residency rules, 0 invalid"


def test_a_filter_matching_nothing_says_so() -> None:
    result = invoke("regions", "--provider", "talos", "--gpu", "A100", "--json")
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])
    assert (
        result.stderr == "no region matches --provider talos --gpu A100; `sovstack regions` lists them all\n"
    )
    capacity = invoke("capacity", "mistral-7b-instruct-v0-3", "--provider", "talos", "--gpu", "A100")
    assert capacity.exit_code == 1
    assert capacity.stderr == "sovstack capacity: no node type matches these filters\n"


# --- colour -------------------------------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli_style.colour_enabled(_Tty()) is True
    assert cli_style.colour_enabled(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli_style.colour_enabled(_Tty()) is False


def test_validate_is_coloured_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_style, "colour_enabled", lambda stream=None: True)
    result = invoke("validate", "gov-fr", color=True)
    assert "\x1b[32mvalid\x1b[0m" in result.stdout


def test_piped_output_has_no_escape_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    for args in (("validate", "gov-fr"), ("capacity", "mistral-7b-instruct-v0-3"), ("regions",)):
        assert "\x1b[" not in invoke(*args).output


# --- spec names, not component internals ---------------------------------------------------------------


def test_component_refusal_names_the_spec_field(write_stack: StackWriter) -> None:
    path = write_stack(
        "industrial-eu", lambda c: c["network"].update(apiServerCidrs=["172.16.0.0/22", "10.0.0.300/32"])
    )
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"{path}: sovstack:customer.network.apiServerCidrs[1]: '10.0.0.300/32' is not a valid network in CIDR notation"
    )
    assert "allow_kubernetes_api" not in result.stderr


def test_component_refusal_of_ingress_names_the_spec_field(write_stack: StackWriter) -> None:
    path = write_stack("industrial-eu", lambda c: c["network"].update(ingressCidrs=["0.0.0.0/0"]))
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert (
        f"{path}: sovstack:customer.network.ingressCidrs[0]: '0.0.0.0/0' opens every address" in result.stderr
    )
    assert "ingress_cidrs" not in result.stderr


# --- templates, models -------------------------------------------------------------------------------------


def test_templates_lists_what_new_takes() -> None:
    rows = json.loads(invoke("templates", "--json").stdout)
    assert [r["template"] for r in rows] == ["airgapped", "eu", "fr-sovereign", "se-sovereign"]
    eu = next(r for r in rows if r["template"] == "eu")
    assert "scaleway/fr-par" in eu["places"]
    text = invoke("templates").stdout.splitlines()
    assert text[0].startswith("TEMPLATE       PROFILE")
    assert len(text) == 5


def test_models_lists_the_catalog() -> None:
    from sovstack.components.capacity import load_models

    rows = json.loads(invoke("models", "--json").stdout)
    assert [r["model"] for r in rows] == sorted(load_models())
    mistral = next(r for r in rows if r["model"] == "mistral-7b-instruct-v0-3")
    assert mistral["huggingFaceRepo"] == "mistralai/Mistral-7B-Instruct-v0.3"
    assert mistral["source"]
    assert len(invoke("models").stdout.splitlines()) == len(rows) + 1


def test_new_json_says_what_it_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOVSTACK_STACKS_DIR", str(tmp_path))
    result = invoke(
        "new", "acme", "--template", "fr-sovereign", "--provider", "OVH", "--region", "gra11", "--json"
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["created"] == str(tmp_path / "Pulumi.acme.yaml")
    assert payload["next"][0] == "sovstack validate acme"
    assert "region: GRA11" in (tmp_path / "Pulumi.acme.yaml").read_text(encoding="utf-8")


# --- no Pulumi where none is needed ------------------------------------------------------------------------


@pytest.mark.slow
def test_commands_without_the_engine_do_not_import_pulumi() -> None:
    code = (
        "import sys\n"
        "from sovstack.infra.cli import main\n"
        "runs = [['validate', 'industrial-eu', 'gov-fr'], ['regions', '--gpu', 'h100'], ['schema'],\n"
        "        ['templates'], ['models', '--json'], ['capacity', 'mistral-7b-instruct-v0-3'],\n"
        "        ['capacity', 'mistral-7b-instruct-v0-3', '--gpu', 'L4'], ['report', 'gov-fr'], ['validate', '-h']]\n"
        "for args in runs:\n"
        "    sys.argv = ['sovstack', *args]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code in (0, None), (args, exit.code)\n"
        "loaded = sorted(m for m in sys.modules if m == 'pulumi' or m.startswith(('pulumi.', 'pulumi_')))\n"
        "assert not loaded, loaded\n"
        "print('no pulumi')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "no pulumi"


# --- capacity answers with what can be bought ----------------------------------------------------------------


def test_capacity_by_default_lists_the_node_types_of_the_catalog() -> None:
    result = invoke(
        "capacity", "mistral-small-3-1-24b-instruct-2503", "--provider", "scaleway", "--region", "FR-PAR"
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "mistral-small-3-1-24b-instruct-2503: 9 of 13 node types fit"
    assert lines[1].split() == [
        "PROVIDER",
        "REGION",
        "NODE",
        "TYPE",
        "GPUS",
        "FITS",
        "TP",
        "REPLICAS",
        "HEADROOM",
    ]
    assert lines[2].split() == [
        "scaleway",
        "fr-par",
        "H100-2-80G",
        "2",
        "x",
        "H100",
        "yes",
        "2",
        "1",
        "47.6%",
    ]
    assert lines[-1].split()[:7] == ["scaleway", "fr-par", "L4-2-24G", "2", "x", "L4", "no"]


def test_capacity_json_of_node_types_and_the_thin_headroom_warning() -> None:
    result = invoke(
        "capacity", "mistral-7b-instruct-v0-3", "--provider", "scaleway", "--gpu", "l4", "--region", "fr-par",
        "--max-model-len", "32768", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model"] == "mistral-7b-instruct-v0-3"
    one = next(r for r in payload["nodeTypes"] if r["nodeType"] == "L4-1-24G")
    assert (one["fits"], one["tensorParallelSize"], one["replicasPerNode"], one["headroomFraction"]) == (
        True,
        1,
        1,
        0.001,
    )
    assert one["warnings"][-1].startswith("headroom 0.1% of the per-GPU budget, under 5%")
    text = invoke(
        "capacity", "mistral-7b-instruct-v0-3", "--provider", "scaleway", "--gpu", "L4", "--region", "fr-par",
        "--max-model-len", "32768",
    ).stdout.splitlines()  # fmt: skip
    assert "0.1% !" in next(line for line in text if " L4-1-24G " in line)
    assert text[-1] == "! headroom under 5% of the per-GPU budget: see --gpu for the arithmetic"


def test_new_takes_a_region_in_any_case_without_a_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOVSTACK_STACKS_DIR", str(tmp_path))
    result = invoke("new", "acme", "--template", "eu", "--region", "PL-WAW")
    assert result.exit_code == 0, result.stderr
    assert "region: pl-waw" in (tmp_path / "Pulumi.acme.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--max-model-len", "99999999"), "sovstack capacity: --max-model-len 99999999 exceeds the maximum context of mistral-7b-instruct-v0-3 (32768 tokens)\n"),
        (("--concurrency", "0"), "sovstack capacity: --concurrency must be at least 1, got 0\n"),
        (("--dtype", "fp9"), "sovstack capacity: --dtype: unknown dtype 'fp9': expected one of bf16, fp16, fp8, int4-awq, int4-gptq\n"),
    ],
)  # fmt: skip
def test_capacity_errors_name_the_options_typed(options: tuple[str, ...], message: str) -> None:
    result = invoke("capacity", "mistral-7b-instruct-v0-3", "--gpu", "L4", *options)
    assert (result.exit_code, result.stderr) == (2, message)
