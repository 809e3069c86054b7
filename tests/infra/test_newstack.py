"""`sovstack new`: templates render valid, plannable stacks; bad input writes nothing.

Every test points `$SOVSTACK_STACKS_DIR` at a temporary folder, so the repository's stacks/ is never
touched. That folder has no `templates/`, so `create_stack` reads the repository's stacks/templates.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from sovstack.infra.cli import app
from sovstack.infra.newstack import (
    NewStackError,
    create_stack,
    list_templates,
    resolve_variables,
    templates_dir,
)
from sovstack.infra.pipeline import load_stack
from sovstack.infra.stackfile import REPO_ROOT
from sovstack.infra.validation import validate_stack
from tests.determinism import assert_same_in_fresh_processes

TEMPLATES = ("airgapped", "eu", "fr-sovereign", "se-sovereign")
#: The resource that proves each backend's cluster is in the plan.
CLUSTER_TYPE = {
    "scaleway": "scaleway:kubernetes/cluster:Cluster",
    "ovh": "ovh:CloudProject/kube:Kube",
    "talos": "talos:machine/bootstrap:Bootstrap",
    "existing": "kubernetes:core/v1:NodePatch",
}
DEFAULT_PLACE = {
    "eu": ("scaleway", "region", "fr-par"),
    "fr-sovereign": ("ovh", "region", "GRA11"),
    "se-sovereign": ("talos", "site", "se-sto-dc1"),
    "airgapped": ("existing", "site", "fr-par-dc1"),
}


@pytest.fixture
def stacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "stacks"
    folder.mkdir()
    monkeypatch.setenv("SOVSTACK_STACKS_DIR", str(folder))
    return folder


def new(*args: str) -> Result:
    return CliRunner().invoke(app, ["new", *args])


def customer(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["config"]["sovstack:customer"]


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------ happy paths
def test_every_profile_has_a_template(stacks: Path) -> None:
    assert list_templates() == list(TEMPLATES)
    assert templates_dir().resolve() == (REPO_ROOT / "stacks" / "templates").resolve()


@pytest.mark.slow
@pytest.mark.parametrize("template", TEMPLATES)
def test_template_alone_gives_a_stack_that_validates_and_plans(stacks: Path, template: str) -> None:
    from sovstack.infra.plan import run_plan

    result = new(f"acme-{template}", "--template", template)

    path = stacks / f"Pulumi.acme-{template}.yaml"
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"created {path}",
        "next:",
        f"  sovstack validate acme-{template}",
        f"  sovstack plan acme-{template}",
        f"  pulumi stack init acme-{template}   # with your in-region backend: see docs/quickstart.md",
        f"  pulumi up --stack acme-{template}",
    ]
    assert files(stacks) == [f"Pulumi.acme-{template}.yaml"]
    spec = customer(path)
    backend, field, place = DEFAULT_PLACE[template]
    assert spec["name"] == f"acme-{template}"
    assert spec["residency"] == {"profile": template}
    assert (spec["cluster"]["provider"], spec["cluster"][field]) == (backend, place)
    validation = validate_stack(f"acme-{template}")
    assert (validation.exit_code, validation.problems) == (0, [])
    assert validation.findings and all(f.passed for f in validation.findings)
    types = {r.type for r in run_plan(load_stack(path)).resources}
    assert {"sovstack:cluster:GpuCluster", "sovstack:serving:ModelServing", CLUSTER_TYPE[backend]} <= types


def test_output_is_deterministic(stacks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = create_stack("acme", "eu", values=["replicas=2"])
    other = tmp_path / "other"
    monkeypatch.setenv("SOVSTACK_STACKS_DIR", str(other))
    second = create_stack("acme", "eu", values=["replicas=2"])
    assert second == other / "Pulumi.acme.yaml"
    assert first.read_bytes() == second.read_bytes()
    assert first.read_text(encoding="utf-8").startswith(
        "# yaml-language-server: $schema=../schema/stack.schema.json\n"
        "# acme: created by `sovstack new acme --template eu --set replicas=2`\n"
    )


def test_provider_and_region_overrides(stacks: Path) -> None:
    result = new("acme", "--template", "eu", "--provider", "ovh", "--region", "GRA11")

    assert result.exit_code == 0, result.stderr
    cluster = customer(stacks / "Pulumi.acme.yaml")["cluster"]
    assert cluster["provider"] == "ovh"
    assert cluster["region"] == "GRA11"
    assert cluster["gpuPools"] == [
        {
            "name": "gpu",
            "gpuType": "L40S",
            "nodeType": "l40s-180",
            "gpusPerNode": 2,
            "minNodes": 1,
            "maxNodes": 2,
            "zones": ["GRA11"],
        }
    ]
    assert "scaleway" not in cluster
    assert validate_stack("acme").exit_code == 0


def test_set_values_override_model_and_pool(stacks: Path) -> None:
    result = new(
        "acme",
        "--template",
        "eu",
        "--set",
        "model=ministral-8b-instruct-2410",
        "--set",
        "modelName=ministral-8b",
        "--set",
        "poolMaxNodes=3",
        "--set",
        "gpusPerNode=1",
        "--set",
        "kubernetesVersion=1.35",
        # Ministral 8B's Mistral Research License does not allow production use on its own.
        "--set",
        "licenceGrant=MAI-2026-001",
    )

    assert result.exit_code == 0, result.stderr
    spec = customer(stacks / "Pulumi.acme.yaml")
    assert spec["licensing"] == {
        "use": "production",
        "grants": [{"model": "ministral-8b-instruct-2410", "reference": "MAI-2026-001"}],
    }
    pool = spec["cluster"]["gpuPools"][0]
    assert (pool["nodeType"], pool["gpusPerNode"], pool["maxNodes"]) == ("H100-1-80G", 1, 3)
    assert spec["cluster"]["kubernetesVersion"] == "1.35"
    assert (spec["models"][0]["name"], spec["models"][0]["model"]) == (
        "ministral-8b",
        "ministral-8b-instruct-2410",
    )
    assert spec["models"][0]["weights"]["s3"]["url"] == "s3://acme-weights/ministral-8b/"
    assert validate_stack("acme").exit_code == 0


def test_a_model_whose_licence_does_not_allow_the_use_is_not_written(stacks: Path) -> None:
    result = new(
        "acme", "--template", "eu", "--set", "model=ministral-8b-instruct-2410", "--set", "modelName=m8"
    )
    assert result.exit_code == 1
    assert "models[0]: [FAIL] model.licence: ministral-8b-instruct-2410 is under the Mistral Research " in (
        result.stderr
    )
    assert not (stacks / "Pulumi.acme.yaml").exists()


def test_talos_machines_follow_the_pool(stacks: Path) -> None:
    create_stack("acme", "se-sovereign", values=["poolMaxNodes=3", "poolMinNodes=3"])
    machines = customer(stacks / "Pulumi.acme.yaml")["cluster"]["talos"]["machines"]
    assert [m["name"] for m in machines] == ["cp-1", "cp-2", "cp-3", "gpu-1", "gpu-2", "gpu-3"]
    assert machines[3] == {
        "name": "gpu-1",
        "address": "10.40.1.21",
        "role": "worker",
        "zone": "se-sto-dc1-a",
        "pool": "gpu",
        "gpuType": "H100-SXM",
        "gpuCount": 8,
    }


def test_set_values_cannot_inject_yaml(stacks: Path) -> None:
    evil = "Acme\n    residency: {profile: eu}\n# x"
    create_stack("acme", "fr-sovereign", values=[f"displayName={evil}"])
    spec = customer(stacks / "Pulumi.acme.yaml")
    assert spec["displayName"] == evil
    assert spec["residency"] == {"profile": "fr-sovereign"}


def test_local_templates_folder_wins(stacks: Path) -> None:
    local = stacks / "templates"
    local.mkdir()
    shutil.copytree(REPO_ROOT / "stacks/templates", local, dirs_exist_ok=True)
    for profile in (local / "profiles").iterdir():
        profile.unlink()
    (local / "profiles" / "house.yaml").write_text("profile: eu\ndefaults: {replicas: 2}\n", encoding="utf-8")
    assert list_templates() == ["house"]
    assert create_stack("acme", "house") == stacks / "Pulumi.acme.yaml"
    assert customer(stacks / "Pulumi.acme.yaml")["models"][0]["replicas"] == 2


# ------------------------------------------------------------------------------------ refusals
def test_existing_stack_is_never_replaced(stacks: Path) -> None:
    assert new("acme", "--template", "eu").exit_code == 0
    path = stacks / "Pulumi.acme.yaml"
    before = path.read_bytes()

    result = new("acme", "--template", "fr-sovereign")

    assert result.exit_code == 2
    assert result.stderr == f"{path}: already exists; nothing was changed (edit it, or choose another NAME)\n"
    assert result.stdout == ""
    assert path.read_bytes() == before
    assert files(stacks) == ["Pulumi.acme.yaml"]


def test_region_outside_the_profile_is_refused(stacks: Path) -> None:
    result = new("acme", "--template", "fr-sovereign", "--provider", "scaleway", "--region", "pl-waw")

    path = stacks / "Pulumi.acme.yaml"
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"{path}: sovstack:customer.cluster.region: [FAIL] region.country: "
        "region scaleway pl-waw (Warsaw, PL, EU) is in PL; policy allows FR"
    )
    assert lines[-1] == f"{path}: not written: {len(lines) - 1} residency rule(s) broken"
    assert files(stacks) == []


def test_invalid_rendered_spec_is_refused_with_field_paths(stacks: Path) -> None:
    result = new("acme", "--template", "eu", "--set", "maxModelLen=100")

    path = stacks / "Pulumi.acme.yaml"
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}: sovstack:customer.models[0].maxModelLen: Input should be greater than or equal to 256",
        f"{path}: not written: 1 problem(s)",
    ]
    assert files(stacks) == []


def test_pool_too_small_for_the_model_is_refused(stacks: Path) -> None:
    result = new("acme", "--template", "eu", "--set", "replicas=5")

    assert result.exit_code == 2
    assert (
        f"{stacks / 'Pulumi.acme.yaml'}: sovstack:customer.cluster.gpuPools[0].maxNodes: models on pool gpu need"
        in (result.stderr)
    )
    assert files(stacks) == []


@pytest.mark.parametrize("name", ["Acme", "acme_eu", "-acme", "a" * 64, ""])
def test_name_must_be_a_dns_label(stacks: Path, name: str) -> None:
    result = new("--template", "eu", "--", name)

    assert result.exit_code == 2
    assert result.stderr == (
        f"NAME: {name!r} is not a DNS-1123 label (lowercase letters, digits and '-', "
        "starting and ending with an alphanumeric, at most 63 characters)\n"
    )
    assert files(stacks) == []


def test_unknown_template_lists_the_known_ones(stacks: Path) -> None:
    result = new("acme", "--template", "us-east")

    assert result.exit_code == 2
    assert result.stderr == (
        "--template: unknown template 'us-east'; known: airgapped, eu, fr-sovereign, se-sovereign "
        f"(in {REPO_ROOT / 'stacks' / 'templates'})\n"
    )
    assert files(stacks) == []


def test_unknown_set_key_lists_the_known_ones(stacks: Path) -> None:
    result = new("acme", "--template", "eu", "--set", "gpu=H100")

    assert result.exit_code == 2
    known = ", ".join(sorted(resolve_variables("eu", None, None, [])[0]))
    assert result.stderr == f"--set gpu: unknown variable of template eu; known: {known}\n"
    assert "adminCidrs, concurrency, displayName" in known
    assert files(stacks) == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["poolMaxNodes=many"], "--set poolMaxNodes: expected an integer, got 'many'"),
        (["poolMaxNodes=true"], "--set poolMaxNodes: expected an integer, got 'true'"),
        (["replicas=[1, 2]"], "--set replicas: give a single value (a YAML scalar), not a list or mapping"),
        (["replicas"], "--set 'replicas': expected key=value"),
    ],
)
def test_bad_set_values(stacks: Path, values: list[str], message: str) -> None:
    with pytest.raises(NewStackError) as caught:
        create_stack("acme", "eu", values=values)
    assert (caught.value.lines, caught.value.exit_code) == ([message], 2)
    assert files(stacks) == []


def test_set_strings_keep_the_text_as_typed(stacks: Path) -> None:
    create_stack("acme", "eu", values=["displayName=2026-01-01", "kubernetesVersion=1.35", "stateBucket=on"])
    spec = customer(stacks / "Pulumi.acme.yaml")
    assert (spec["displayName"], spec["cluster"]["kubernetesVersion"]) == ("2026-01-01", "1.35")
    assert spec["state"]["backendUrl"].startswith("s3://on?endpoint=s3.fr-par.scw.cloud&")


def test_a_version_the_provider_no_longer_creates_is_not_written(stacks: Path) -> None:
    with pytest.raises(NewStackError) as caught:
        create_stack("acme", "eu", values=["kubernetesVersion=1.31"])
    target = stacks / "Pulumi.acme.yaml"
    assert caught.value.lines == [
        f"{target}: sovstack:customer.cluster.kubernetesVersion: scaleway Kubernetes 1.31 can no longer be "
        "created: it was removed from cluster creation on 2025-12-02 (source: https://www.scaleway.com/en/docs/"
        "kubernetes/reference-content/version-support-policy/, retrieved 2026-12-01)",
        f"{target}: not written: 1 problem(s)",
    ]
    assert files(stacks) == []


def test_provider_option_and_set_must_agree(stacks: Path) -> None:
    result = new("acme", "--template", "eu", "--provider", "ovh", "--set", "provider=scaleway")
    assert result.exit_code == 2
    assert result.stderr == "--provider ovh contradicts --set provider=scaleway; give one\n"


def test_place_without_defaults_is_refused(stacks: Path) -> None:
    result = new("acme", "--template", "eu", "--provider", "scaleway", "--region", "nl-ams")

    assert result.exit_code == 2
    assert result.stderr == (
        "template eu: no defaults for provider scaleway at nl-ams; known: scaleway/fr-par, scaleway/pl-waw, "
        "ovh/GRA11, site/fr-par-dc1, site/se-sto-dc1 (site = talos or existing); add the place to places.yaml\n"
    )
    assert files(stacks) == []


def test_gpu_count_without_a_node_type_is_refused(stacks: Path) -> None:
    with pytest.raises(NewStackError) as caught:
        create_stack("acme", "eu", values=["gpusPerNode=3"])
    assert caught.value.lines == [
        "template eu: no scaleway node type has 3x H100 (node types with H100: H100-1-80G (1x), H100-2-80G (2x))"
    ]
    assert files(stacks) == []


# ------------------------------------------------------------------------------------ determinism
RENDER_IN_A_FRESH_PROCESS = """
import sys
from sovstack.infra.newstack import render_template, resolve_variables
for template in sys.argv[1:]:
    variables, _ = resolve_variables(template, None, None, ["displayName=Défense: \\"x\\"", "replicas=2"])
    sys.stdout.write(render_template(template, "acme", variables, "cmd") + "---\\n")
"""


@pytest.mark.slow
def test_render_is_the_same_in_every_process() -> None:
    """Byte for byte across interpreters with different hash seeds (set and dict order would show)."""
    text = assert_same_in_fresh_processes(RENDER_IN_A_FRESH_PROCESS, *TEMPLATES)
    documents = list(yaml.safe_load_all(text))[:-1]
    assert [d["config"]["sovstack:customer"]["displayName"] for d in documents] == ['Défense: "x"'] * 4


@pytest.mark.parametrize("template", ["airgapped", "se-sovereign"])
def test_talos_stacks_from_templates_mirror_the_operator_and_installer(
    template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Talos the GPU Operator is installed: its chart and images, and the installer, come from the mirror."""
    from sovstack.infra.pipeline import load_stack
    from sovstack.infra.validation import validate_stack

    monkeypatch.setenv("SOVSTACK_STACKS_DIR", str(tmp_path))
    site = "fr-par-dc1" if template == "airgapped" else "se-sto-dc1"
    result = CliRunner().invoke(
        app, ["new", "t", "--template", template, "--provider", "talos", "--region", site]
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / "Pulumi.t.yaml"
    assert validate_stack(str(path)).exit_code == 0
    cluster = load_stack(path).spec.cluster
    assert cluster.gpu_operator.image_repository == f"registry.{site}.sovstack.internal/mirror/nvidia"
    assert cluster.talos is not None
    assert cluster.talos.installer_image is not None
    assert cluster.talos.installer_image.startswith(f"registry.{site}.sovstack.internal/mirror/")


def test_every_talos_machine_installs_from_the_mirror_and_the_report_lists_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control plane's installer too: it was ghcr.io/siderolabs/installer:v1.11.5, unpinned and unchecked."""
    import json

    from sovstack.infra.pipeline import load_stack
    from sovstack.infra.report import build_report
    from sovstack.infra.residency_check import evaluate

    monkeypatch.setenv("SOVSTACK_STACKS_DIR", str(tmp_path))
    result = CliRunner().invoke(
        app, ["new", "t", "--template", "airgapped", "--provider", "talos", "--region", "fr-par-dc1"]
    )
    assert result.exit_code == 0, result.output
    loaded = load_stack(tmp_path / "Pulumi.t.yaml")
    applies = [
        r
        for r in loaded.composed().cloud_resources()
        if r["type"] == "talos:machine/configurationApply:ConfigurationApply"
    ]
    images = {
        r["name"]: json.loads(r["inputs"]["config_patches"][0])["machine"]["install"]["image"]
        for r in applies
    }
    zero = "@sha256:" + "0" * 64
    mirror = "registry.fr-par-dc1.sovstack.internal/mirror"
    assert {n: i for n, i in images.items() if n.endswith(("cp-1", "cp-2", "cp-3"))} == {
        f"t-gpu-apply-cp-{i}": f"{mirror}/siderolabs/installer:v1.14.0{zero}" for i in (1, 2, 3)
    }
    assert all(i.startswith(mirror + "/") for i in images.values())
    report = build_report(loaded)
    assert set(images.values()) <= set(report["inventory"]["images"])
    checked = {(f.rule, f.path) for f in evaluate(loaded.spec)}
    for rule in ("image.registry", "image.pinned"):
        assert (rule, "sovstack:customer.cluster.talos.systemInstallerImage") in checked
        assert (rule, "sovstack:customer.cluster.talos.installerImage") in checked


def test_control_plane_installer_from_a_public_registry_breaks_the_airgapped_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOVSTACK_STACKS_DIR", str(tmp_path))
    CliRunner().invoke(
        app, ["new", "t", "--template", "airgapped", "--provider", "talos", "--region", "fr-par-dc1"]
    )
    path = tmp_path / "Pulumi.t.yaml"
    document = yaml.safe_load(path.read_text())
    del document["config"]["sovstack:customer"]["cluster"]["talos"]["systemInstallerImage"]
    path.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert (
        f"{path}: sovstack:customer.cluster.talos.systemInstallerImage: [FAIL] image.registry: registry ghcr.io "
        "is not allowed; allowed: registry.fr-par-dc1.sovstack.internal, registry.se-sto-dc1.sovstack.internal"
    ) in result.output
    assert (
        f"{path}: sovstack:customer.cluster.talos.systemInstallerImage: [FAIL] image.pinned: not pinned: add "
        "@sha256:<digest> so every pull is the same"
    ) in result.output


# ------------------------------------------------------------------------------------ `pulumi new`
PULUMI_NEW_STUB = """\
secretsprovider: hashivault://sovstack-acme
encryptedkey: dmF1bHQ6djE6ZmFrZQ==
config:
  sovstack:customerName: acme
  sovstack:displayName: Acme Industries
  sovstack:profile: eu
  sovstack:provider: scaleway
  sovstack:region: pl-waw
  sovstack:model: mistral-7b-instruct-v0-3
"""


def test_the_pulumi_new_hint_completes_the_stack_pulumi_new_wrote(stacks: Path) -> None:
    """`pulumi new` writes the answers; the command the program then names writes the spec beside them."""
    path = stacks / "Pulumi.acme.yaml"
    path.write_text(PULUMI_NEW_STUB, encoding="utf-8")

    # The command infra/program.py prints for this stub.
    result = new("acme", "--template", "eu", "--provider", "scaleway", "--region", "pl-waw")

    assert result.exit_code == 0, result.output
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    # The secrets provider `pulumi new` set up survives, or the stack's secrets could not be read.
    assert document["secretsprovider"] == "hashivault://sovstack-acme"
    assert document["encryptedkey"] == "dmF1bHQ6djE6ZmFrZQ=="
    spec = document["config"]["sovstack:customer"]
    assert spec["displayName"] == "Acme Industries"
    assert spec["cluster"]["region"] == "pl-waw"
    assert set(document["config"]) == {"sovstack:customer"}
    # The spec names the secrets provider the stack was created with.
    assert spec["state"]["secretsProvider"] == "hashivault://sovstack-acme"
    assert validate_stack("acme").exit_code == 0
    assert files(stacks) == ["Pulumi.acme.yaml"]


def test_the_answers_fill_what_the_command_leaves_out(stacks: Path) -> None:
    path = stacks / "Pulumi.acme.yaml"
    path.write_text(PULUMI_NEW_STUB.replace("pl-waw", "fr-par"), encoding="utf-8")
    assert new("acme", "--template", "eu").exit_code == 0
    assert customer(path)["cluster"]["region"] == "fr-par"
    assert customer(path)["displayName"] == "Acme Industries"


def test_a_stub_with_anything_else_is_never_replaced(stacks: Path) -> None:
    path = stacks / "Pulumi.acme.yaml"
    path.write_text(PULUMI_NEW_STUB + "  sovstack:customer: {name: acme}\n", encoding="utf-8")
    before = path.read_bytes()
    result = new("acme", "--template", "eu")
    assert result.exit_code == 2
    assert result.stderr == f"{path}: already exists; nothing was changed (edit it, or choose another NAME)\n"
    assert path.read_bytes() == before


def test_pulumi_new_answers_match_the_project_template() -> None:
    from sovstack.infra.newstack import PULUMI_NEW_ANSWERS

    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert sorted(k.removeprefix("sovstack:") for k in project["template"]["config"]) == sorted(
        PULUMI_NEW_ANSWERS
    )
