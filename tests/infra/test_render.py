"""`sovstack render` and `sovstack report`: schema-valid, deterministic, atomic, secret-free output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sovstack.infra import render as render_mod
from sovstack.infra.cli import app
from sovstack.infra.gitops import GitSource
from sovstack.infra.pipeline import load_stack
from tests.determinism import assert_same_in_fresh_processes
from tests.k8s_schema import assert_all_valid

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ["industrial-eu", "gov-fr", "research-se", "airgap-onprem"]
URL = "https://git.example.eu/platform/gitops.git"
#: A render at the root of its repository (library calls); CLI calls name the repository with OFFLINE.
GIT = GitSource(repo_url=URL, path=".")
runner = CliRunner()


def offline(root: Path) -> list[str]:
    return ["--repo-url", URL, "--repo-root", str(root), "--demo"]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render")
    code = render_mod.render_all(
        [REPO / "stacks" / f"Pulumi.{s}.yaml" for s in EXAMPLES], out, progress=False, git=GIT, demo=True
    )
    assert code == 0
    return out


def manifests(root: Path) -> list[dict]:
    """The namespaces and every other manifest: all that `plan` would register."""
    return [
        yaml.safe_load(p.read_text())
        for folder in ("namespaces", "manifests")
        for p in sorted((root / folder).rglob("*.yaml"))
        if p.name != "kustomization.yaml"
    ]


@pytest.mark.parametrize("stack", EXAMPLES)
def test_every_manifest_is_valid_for_the_stacks_kubernetes_version(rendered: Path, stack: str) -> None:
    version = load_stack(stack).spec.cluster.kubernetes_minor
    objects = manifests(rendered / stack)
    assert len(objects) > 30
    custom = assert_all_valid(objects, version)
    report = json.loads((rendered / stack / "residency-report.json").read_text())
    assert report["schemaChecks"]["uncheckedKinds"] == sorted(custom | {"Application"})


@pytest.mark.parametrize("stack", EXAMPLES)
def test_layout_one_object_per_file_and_kustomization_lists_all(rendered: Path, stack: str) -> None:
    root = rendered / stack / "manifests"
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.yaml") if p.name != "kustomization.yaml")
    assert kustomization["resources"] == files
    for rel in files:
        obj = yaml.safe_load((root / rel).read_text())
        namespace = obj["metadata"].get("namespace", "_cluster")
        assert rel == f"{namespace}/{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        assert obj["kind"] != "Namespace"
    assert (root / "_cluster").is_dir()
    text = (root / files[0]).read_text()
    assert text.startswith("apiVersion: ")
    # Namespaces apart, applied first (wave 0, or the first Flux Kustomization).
    namespaces = rendered / stack / "namespaces"
    listed = yaml.safe_load((namespaces / "kustomization.yaml").read_text())["resources"]
    assert listed == sorted(p.name for p in namespaces.glob("namespace-*.yaml"))
    assert len(listed) >= 4
    assert {yaml.safe_load((namespaces / f).read_text())["kind"] for f in listed} == {"Namespace"}


def test_argocd_points_at_pinned_charts_in_allowed_repositories(rendered: Path) -> None:
    apps = {p.name: yaml.safe_load(p.read_text()) for p in (rendered / "gov-fr" / "argocd/apps").iterdir()}
    chart = apps["application-gov-fr-gpu-operator.yaml"]["spec"]["source"]
    assert chart["chart"] == "gpu-operator"
    assert chart["targetRevision"].startswith("v")
    # The stack's chart mirror serves the platform's charts, the GPU Operator's included.
    assert chart["repoURL"] == "https://charts.fr-par-dc1.sovstack.internal"
    eso = apps["application-gov-fr-external-secrets.yaml"]["spec"]["source"]
    assert (eso["chart"], eso["targetRevision"]) == ("external-secrets", "0.16.2")
    manifests_app = apps["application-gov-fr-manifests.yaml"]["spec"]
    assert manifests_app["source"]["path"] == "gov-fr/manifests"
    assert manifests_app["syncPolicy"]["automated"]["prune"] is False
    airgap = yaml.safe_load(
        (rendered / "airgap-onprem/argocd/apps/application-airgap-onprem-gpu-operator.yaml").read_text()
    )
    assert airgap["spec"]["source"]["repoURL"] == "https://charts.fr-par-dc1.sovstack.internal"
    # Scaleway installs its own GPU Operator: only the Prometheus CRDs its ServiceMonitor needs.
    assert sorted(p.name for p in (rendered / "industrial-eu" / "argocd/apps").iterdir()) == [
        "application-industrial-eu-manifests.yaml",
        "application-industrial-eu-namespaces.yaml",
        "application-industrial-eu-prometheus-operator-crds.yaml",
    ]


def test_cloud_inventory_and_report(rendered: Path) -> None:
    cloud = json.loads((rendered / "industrial-eu" / "cloud-resources.json").read_text())
    types = {r["type"] for r in cloud["resources"]}
    assert {
        "scaleway:kubernetes/cluster:Cluster",
        "scaleway:kubernetes/pool:Pool",
        "scaleway:object/bucket:Bucket",
    } <= types
    assert all(
        r["region"] == "fr-par" for r in cloud["resources"] if r["type"].startswith("scaleway:kubernetes")
    )
    existing = json.loads((rendered / "airgap-onprem" / "cloud-resources.json").read_text())
    assert [r for r in existing["resources"] if not r["type"].startswith("minio:")] == []
    report = (rendered / "gov-fr" / "residency-report.md").read_text()
    assert "verdict: **PASS**" in report
    assert "| region.country | sovstack:customer.cluster.region | GRA11 | yes |" in report
    data = json.loads((rendered / "gov-fr" / "residency-report.json").read_text())
    assert data["inventory"]["cluster"]["country"] == "FR"
    assert data["inventory"]["stateBackend"].startswith("s3://")


RENDER_AND_LIST = """
import hashlib, sys, tempfile
from pathlib import Path
from sovstack.infra.gitops import GitSource
from sovstack.infra.render import render_stack
for stack in sys.argv[1:]:
    out = Path(tempfile.mkdtemp()) / "render"
    git = GitSource(repo_url="https://git.example.eu/g.git", path=".")
    render_stack(stack, out, git, demo=True)
    render_stack(stack, out, git, demo=True)  # a re-render over an old render writes the same bytes
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(stack, path.relative_to(out), hashlib.sha256(path.read_bytes()).hexdigest())
"""


@pytest.mark.slow
def test_renders_are_byte_identical_in_every_process() -> None:
    listing = assert_same_in_fresh_processes(RENDER_AND_LIST, *EXAMPLES)
    assert {line.split()[0] for line in listing.splitlines()} == set(EXAMPLES)


def test_a_failed_render_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    calls = {"n": 0}
    real = Path.write_text

    def flaky(self: Path, *args: object, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 10:
            raise OSError("disk full")
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", flaky)
    with pytest.raises(OSError, match="disk full"):
        render_mod.render_stack("gov-fr", out, GIT, demo=True)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rerender_keeps_the_previous_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    render_mod.render_stack("gov-fr", out, GIT, demo=True)
    before = tree(out)
    monkeypatch.setattr(Path, "write_text", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        render_mod.write_tree({"manifests/x.yaml": "a"}, out)
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_render_refuses_to_replace_a_directory_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["render", "gov-fr", "--out", str(out), *offline(tmp_path)])
    assert result.exit_code == 2
    assert "is not a sovstack render" in result.output
    assert (out / "notes.txt").read_text() == "keep me"


def test_no_secret_value_reaches_any_rendered_file(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.airgap-onprem.yaml"
    text = (REPO / "stacks" / "Pulumi.airgap-onprem.yaml").read_text()
    stack.write_text(
        text
        + "  sovstack:kubeconfig:\n    secure: v1:PLANTEDCIPHERTEXT0123456789\n"
        + "  sovstack:apiToken: PLANTED-PLAINTEXT-TOKEN\n"
    )
    out = tmp_path / "out"
    assert runner.invoke(app, ["render", str(stack), "--out", str(out), *offline(tmp_path)]).exit_code == 0
    for rel, content in tree(out).items():
        assert b"PLANTEDCIPHERTEXT" not in content, rel
        assert b"PLANTED-PLAINTEXT-TOKEN" not in content, rel
    kinds = {o["kind"] for o in manifests(out)}
    assert "Secret" not in kinds


def test_invalid_stack_renders_nothing(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text("config:\n  sovstack:customer:\n    name: Bad_Name\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", str(stack), "--out", str(out), *offline(tmp_path)])
    assert result.exit_code == 2
    assert f"{stack}: sovstack:customer.name:" in result.output
    assert not out.exists()


def test_render_all_renders_the_good_stacks_and_lists_the_bad(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for name in ("gov-fr", "industrial-eu"):
        shutil.copy(REPO / "stacks" / f"Pulumi.{name}.yaml", stacks)
    (stacks / "Pulumi.broken.yaml").write_text("config: [")
    out = tmp_path / "out"
    code = render_mod.render_all(
        sorted(stacks.glob("Pulumi.*.yaml")), out, jobs=2, progress=False, git=GIT, demo=True
    )
    assert code == 2
    assert sorted(p.name for p in out.iterdir()) == ["gov-fr", "industrial-eu"]


def test_render_all_cli_progress_and_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    shutil.copy(REPO / "stacks" / "Pulumi.gov-fr.yaml", stacks)
    (stacks / "Pulumi.broken.yaml").write_text("")
    monkeypatch.setenv("SOVSTACK_STACKS_DIR", str(stacks))
    result = runner.invoke(app, ["render", "--all", "--out", str(tmp_path / "out"), *offline(tmp_path)])
    assert result.exit_code == 2
    assert "broken: FAILED (exit 2)" in result.output
    assert "gov-fr: ok" in result.output
    assert "file is empty" in result.output


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("stack", EXAMPLES)
def test_kubectl_kustomize_builds(rendered: Path, stack: str) -> None:
    built = 0
    for folder in ("namespaces", "manifests"):
        result = subprocess.run(
            ["kubectl", "kustomize", str(rendered / stack / folder)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        built += len(list(yaml.safe_load_all(result.stdout)))
    assert built == len(manifests(rendered / stack))


def checkov_command() -> str | None:
    candidate = os.environ.get("SOVSTACK_CHECKOV") or str(REPO / ".venv-tools" / "bin" / "checkov")
    return candidate if Path(candidate).is_file() else shutil.which("checkov")


@pytest.mark.skipif(checkov_command() is None, reason="checkov is not installed (make tools installs it)")
@pytest.mark.parametrize("stack", EXAMPLES)
def test_checkov_reports_no_failed_check(rendered: Path, stack: str) -> None:
    skips = yaml.safe_load((REPO / "components" / "data" / "checkov-skips.yaml").read_text())
    command = [
        str(checkov_command()),
        "-d",
        str(rendered / stack / "manifests"),
        "--framework",
        "kubernetes",
        "--skip-download",
        "--output",
        "json",
        "--skip-check",
        ",".join(sorted(skips["global"])),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    summary = report["summary"] if isinstance(report, dict) else report[0]["summary"]
    failed = (report if isinstance(report, dict) else report[0])["results"]["failed_checks"]
    assert summary["failed"] == 0, [(f["check_id"], f["resource"]) for f in failed]
    assert summary["passed"] > 300
    # Every inline skip is one the skip file lists for that workload, with its reason.
    skipped = (report if isinstance(report, dict) else report[0])["results"]["skipped_checks"]
    listed = {check for checks in skips["workloads"].values() for check in checks}
    assert skipped, "the audit shippers' inline skips should show"
    assert {s["check_id"] for s in skipped} <= listed


@pytest.mark.parametrize("fmt", ["md", "json", "html"])
def test_report_command_formats(fmt: str) -> None:
    result = runner.invoke(app, ["report", "research-se", "--format", fmt])
    assert result.exit_code == 0
    if fmt == "json":
        assert json.loads(result.output)["verdict"]["passed"] is True
    elif fmt == "html":
        assert result.output.startswith("<!doctype html>")
        assert "se-sto-dc1" in result.output
    else:
        assert result.output.startswith("# Residency report: research-se")


def test_report_exits_1_when_a_rule_breaks(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.gov-fr.yaml"
    stack.write_text(
        (REPO / "stacks" / "Pulumi.gov-fr.yaml")
        .read_text()
        .replace("retentionDays: 365", "retentionDays: 200")
    )
    result = runner.invoke(app, ["report", str(stack), "--format", "json"])
    assert result.exit_code == 1
    failed = [f for f in json.loads(result.output)["findings"] if not f["passed"]]
    assert [(f["rule"], f["path"]) for f in failed] == [
        ("audit.retention", "sovstack:customer.audit.retentionDays")
    ]


def test_render_does_not_import_pulumi(tmp_path: Path) -> None:
    code = (
        "import sys; from sovstack.infra.render import GitSource, render_stack; "
        f"render_stack('gov-fr', __import__('pathlib').Path({str(tmp_path / 'o')!r}), GitSource('https://g/r.git', 'o'), demo=True); "
        "assert not [m for m in sys.modules if m == 'pulumi' or m.startswith('pulumi.')], 'pulumi imported'"
    )
    result = subprocess.run(
        [os.sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("version", ["1.30", "1.37"])
def test_manifests_are_valid_across_the_supported_kubernetes_range(version: str) -> None:
    """The spec accepts 1.30 to 1.37; the builders' output must hold at both ends of that range."""
    for stack in EXAMPLES:
        assert_all_valid(load_stack(stack).composed().kubernetes_objects(), version)


def test_kubernetes_older_than_the_supported_range_is_refused(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.gov-fr.yaml"
    stack.write_text((REPO / "stacks" / "Pulumi.gov-fr.yaml").read_text().replace('"1.36"', '"1.29"'))
    result = runner.invoke(app, ["validate", str(stack)])
    assert result.exit_code == 2
    assert (
        f"{stack}: sovstack:customer.cluster.kubernetesVersion: '1.29' is not supported: sovstack supports "
        'Kubernetes 1.30 to 1.37, as a minor ("1.31") or, for Talos, a patch release ("1.32.4")'
    ) in result.output


def test_placeholders_refuse_a_render_unless_it_is_a_demo(tmp_path: Path) -> None:
    """The example Git URL and the example's documentation address passed silently before."""
    out = tmp_path / "out"
    flags = ["--repo-url", "https://git.example.invalid/platform/gitops.git", "--repo-root", str(tmp_path)]
    result = runner.invoke(app, ["render", "industrial-eu", "--out", str(out), *flags])
    assert result.exit_code == 1, result.output
    file = "stacks/Pulumi.industrial-eu.yaml"
    assert result.output.splitlines()[-4:] == [
        f"{file}: sovstack:customer.cluster.scaleway.apiServerAllowedCidrs[0]: [placeholder] 198.51.100.0/28 is "
        "in the documentation range 198.51.100.0/24 (RFC 5737/3849): it routes nowhere",
        f"{file}: sovstack:customer.models[0].weights.s3.manifestSha256: [placeholder] all-zero id: replace it "
        "with the real one",
        f"{file}: --repo-url: [placeholder] host git.example.invalid is under the reserved .invalid name "
        "(RFC 2606): it resolves nowhere",
        f"{file}: not deployable: 3 placeholders; nothing rendered (fill them in, or pass --demo for a "
        "demonstration render)",
    ]
    assert not out.exists()
    demo = runner.invoke(app, ["render", "industrial-eu", "--out", str(out), *flags, "--demo"])
    assert demo.exit_code == 0, demo.output
    report = json.loads((out / "residency-report.json").read_text())
    assert report["deployable"]["summary"] == "not deployable: 3 placeholders"
    assert [p["path"] for p in report["deployable"]["placeholders"]] == [
        "sovstack:customer.cluster.scaleway.apiServerAllowedCidrs[0]",
        "sovstack:customer.models[0].weights.s3.manifestSha256",
        "--repo-url",
    ]
    assert "**not deployable: 3 placeholders**" in (out / "residency-report.md").read_text()
