"""GitOps objects: paths relative to the repository's root, an app of apps whose waves order its children,
retries, Flux's dependsOn chain, and Pulumi Kubernetes Operator Stacks pinned to their region, restricted."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from sovstack.infra.cli import app
from sovstack.infra.gitops import (
    ARGOCD_RETRY,
    GitOpsError,
    GitSource,
    clean_url,
    locate_repository,
)
from sovstack.infra.pipeline import load_stack
from sovstack.infra.render import RenderError, render_files

REPO = Path(__file__).resolve().parents[2]
URL = "https://git.example.eu/platform/gitops.git"
runner = CliRunner()


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    root = tmp_path / "gitops-repo"
    root.mkdir()
    git(root, "init", "-q")
    return root


def objects(files: dict[str, str], prefix: str) -> dict[str, dict[str, Any]]:
    return {k.removeprefix(prefix): yaml.safe_load(v) for k, v in files.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def gov_fr() -> Any:
    return load_stack("gov-fr")


# ---------------------------------------------------------------------------------- the repository
def test_paths_are_relative_to_the_repository_root_wherever_render_runs(
    repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOVSTACK_GITOPS_REPO", raising=False)
    git(repository, "remote", "add", "origin", "https://robot:s3cr3t@git.example.eu/platform/gitops.git")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the repository root: the path must not depend on the cwd
    out = repository / "fleet" / "gov-fr"
    result = runner.invoke(app, ["render", "--demo", "gov-fr", "--out", str(out), "--revision", "prod"])
    assert result.exit_code == 0, result.output
    manifests = yaml.safe_load((out / "argocd/apps/application-gov-fr-manifests.yaml").read_text())
    # The origin's credentials never reach a file; Argo CD holds its own.
    assert manifests["spec"]["source"] == {
        "path": "fleet/gov-fr/manifests",
        "repoURL": URL,
        "targetRevision": "prod",
    }
    assert "s3cr3t" not in "".join(p.read_text() for p in out.rglob("*") if p.is_file())


def test_locate_names_the_path_and_the_given_url(repository: Path) -> None:
    source = locate_repository(repository / "a" / "b", "git@git.example.eu:platform/gitops.git", "v2")
    assert source == GitSource(repo_url="git@git.example.eu:platform/gitops.git", path="a/b", revision="v2")
    assert locate_repository(repository, URL).path == "."


def test_an_output_outside_the_repository_is_refused(repository: Path, tmp_path: Path) -> None:
    out = tmp_path / "outside"
    result = runner.invoke(
        app,
        ["render", "--demo", "gov-fr", "--out", str(out), "--repo-url", URL, "--repo-root", str(repository)],
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"--out {out}: outside the repository at {repository}; the engine only reads paths inside it\n"
    )
    assert not out.exists()


def test_an_output_in_no_repository_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", "--demo", "gov-fr", "--out", str(out), "--repo-url", URL])
    assert result.exit_code == 2
    assert result.stderr == (
        f"--out {out}: not inside a git repository; render into a clone of the repository Argo CD or "
        "Flux reads (or give --repo-root)\n"
    )
    assert not out.exists()


def test_no_url_is_refused(repository: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOVSTACK_GITOPS_REPO", raising=False)
    result = runner.invoke(app, ["render", "--demo", "gov-fr", "--out", str(repository / "gov-fr")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"{repository.resolve()}: no repository URL: give --repo-url (or $SOVSTACK_GITOPS_REPO), "
        "or add an `origin` remote\n"
    )


def test_a_local_origin_is_refused(repository: Path) -> None:
    git(repository, "remote", "add", "origin", "/srv/git/gitops.git")
    with pytest.raises(GitOpsError) as refused:
        locate_repository(repository / "x", None)
    assert refused.value.lines == [
        f"{repository.resolve()}: remote origin: '/srv/git/gitops.git' is not a URL a controller in the "
        "cluster can clone (https://, ssh:// or git@host:path); give --repo-url"
    ]


def test_clean_url_keeps_host_port_and_path() -> None:
    assert clean_url("https://u:p@git.example.eu:8443/a/b.git", "x") == "https://git.example.eu:8443/a/b.git"
    assert clean_url("ssh://git@git.example.eu/a.git", "x") == "ssh://git@git.example.eu/a.git"


def test_demo_target_renders_offline() -> None:
    """`make demo` names its repository so it renders without a remote or a network."""
    demo = (REPO / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "--repo-root . \\\n\t  --repo-url https://git.example.invalid/platform/sovstack.git" in demo


# ---------------------------------------------------------------------------------- Argo CD
def test_argocd_app_of_apps_orders_its_children_by_wave(gov_fr: Any) -> None:
    files = render_files(gov_fr, GitSource(repo_url=URL, path="fleet/gov-fr"))
    parents = objects(files, "argocd/application-")
    assert list(parents) == ["gov-fr-apps.yaml"]
    parent = parents["gov-fr-apps.yaml"]
    # Its source is the directory holding exactly the children: they are its resources, so Argo CD
    # syncs them wave by wave.
    assert parent["spec"]["source"] == {
        "repoURL": URL,
        "targetRevision": "main",
        "path": "fleet/gov-fr/argocd/apps",
        "directory": {"recurse": False},
    }
    assert parent["spec"]["destination"] == {
        "server": "https://kubernetes.default.svc",
        "namespace": "argocd",
    }
    children = objects(files, "argocd/apps/")
    waves = {
        c["metadata"]["name"]: c["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        for c in children.values()
    }
    assert waves == {
        "gov-fr-namespaces": "0",
        "gov-fr-envoy-gateway": "1",
        "gov-fr-external-secrets": "1",
        "gov-fr-gpu-operator": "1",
        "gov-fr-manifests": "2",
    }
    assert {c["metadata"]["namespace"] for c in children.values()} == {"argocd"}
    paths = {c["metadata"]["name"]: c["spec"]["source"].get("path") for c in children.values()}
    assert paths["gov-fr-namespaces"] == "fleet/gov-fr/namespaces"
    assert paths["gov-fr-manifests"] == "fleet/gov-fr/manifests"
    # The manifests need the charts' CRDs (ExternalSecret): no Namespace in them, no CRD-less kind first.
    assert not any(k.startswith("manifests/") and "kind: Namespace\n" in v for k, v in files.items())


def test_every_application_retries_with_backoff(gov_fr: Any) -> None:
    files = render_files(gov_fr, GitSource(repo_url=URL, path="."))
    apps = objects(files, "argocd/")
    assert len(apps) == 6  # the parent, namespaces, three charts (Envoy Gateway for the routes), manifests
    for app_ in apps.values():
        policy = app_["spec"]["syncPolicy"]
        assert policy["retry"] == {
            "limit": 10,
            "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"},
        }
        assert policy["automated"] == {"prune": False, "selfHeal": True}
    assert ARGOCD_RETRY["limit"] == 10


# ---------------------------------------------------------------------------------- Flux
def test_flux_objects_depend_on_each_other_in_order(gov_fr: Any) -> None:
    files = render_files(gov_fr, GitSource(repo_url=URL, path="fleet/gov-fr", revision="prod", flavor="flux"))
    assert not any(k.startswith("argocd/") for k in files)
    flux = objects(files, "flux/")
    assert sorted(flux) == [
        "charts/helmrelease-gov-fr-envoy-gateway.yaml",
        "charts/helmrelease-gov-fr-external-secrets.yaml",
        "charts/helmrelease-gov-fr-gpu-operator.yaml",
        "charts/helmrepository-gov-fr-envoy-gateway.yaml",
        "charts/helmrepository-gov-fr-external-secrets.yaml",
        "charts/helmrepository-gov-fr-gpu-operator.yaml",
        "charts/kustomization.yaml",
        "gitrepository-gov-fr.yaml",
        "kustomization-gov-fr-charts.yaml",
        "kustomization-gov-fr-manifests.yaml",
        "kustomization-gov-fr-namespaces.yaml",
    ]
    source = flux["gitrepository-gov-fr.yaml"]
    assert (source["apiVersion"], source["kind"]) == ("source.toolkit.fluxcd.io/v1", "GitRepository")
    assert source["spec"] == {"interval": "5m", "url": URL, "ref": {"branch": "prod"}}
    chain = {
        name: (k["spec"]["path"], [d["name"] for d in k["spec"].get("dependsOn", [])])
        for name, k in flux.items()
        if name.startswith("kustomization-")
    }
    assert chain == {
        "kustomization-gov-fr-namespaces.yaml": ("./fleet/gov-fr/namespaces", []),
        "kustomization-gov-fr-charts.yaml": ("./fleet/gov-fr/flux/charts", ["gov-fr-namespaces"]),
        "kustomization-gov-fr-manifests.yaml": ("./fleet/gov-fr/manifests", ["gov-fr-charts"]),
    }
    manifests = flux["kustomization-gov-fr-manifests.yaml"]
    assert manifests["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert manifests["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "gov-fr"}
    # wait: a dependent starts only once what it depends on is ready; retryInterval: failures retried.
    assert (manifests["spec"]["prune"], manifests["spec"]["wait"], manifests["spec"]["retryInterval"]) == (
        False,
        True,
        "1m",
    )
    release = flux["charts/helmrelease-gov-fr-gpu-operator.yaml"]
    assert release["apiVersion"] == "helm.toolkit.fluxcd.io/v2"
    assert release["spec"]["chart"]["spec"]["sourceRef"] == {
        "kind": "HelmRepository",
        "name": "gov-fr-gpu-operator",
    }
    assert release["spec"]["targetNamespace"] == "gpu-operator"
    assert flux["charts/helmrepository-gov-fr-gpu-operator.yaml"]["spec"]["url"] == (
        "https://charts.fr-par-dc1.sovstack.internal"
    )
    assert flux["charts/kustomization.yaml"]["resources"] == sorted(
        k.removeprefix("charts/") for k in flux if k.startswith("charts/h")
    )


def test_flux_pins_a_commit_when_given_one() -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    files = render_files(load_stack("industrial-eu"), GitSource(URL, ".", revision=commit, flavor="flux"))
    assert yaml.safe_load(files["flux/gitrepository-industrial-eu.yaml"])["spec"]["ref"] == {"commit": commit}
    assert yaml.safe_load(files["flux/kustomization-industrial-eu-namespaces.yaml"])["spec"]["path"] == (
        "./namespaces"
    )


# ---------------------------------------------------------------------------------- Pulumi Kubernetes Operator
def test_pko_stack_runs_in_region_restricted_with_referenced_credentials(gov_fr: Any) -> None:
    git_source = GitSource(
        repo_url=URL, path="fleet/gov-fr", revision="prod", flavor="pko", program_path="ops"
    )
    files = render_files(gov_fr, git_source)
    assert not any(k.startswith(("argocd/", "flux/")) for k in files)
    pko = objects(files, "pko/")
    assert sorted(pko) == [
        "clusterrolebinding-gov-fr-pulumi.yaml",
        "namespace-pulumi-gov-fr.yaml",
        "serviceaccount-gov-fr-pulumi.yaml",
        "stack-gov-fr.yaml",
    ]
    stack = pko["stack-gov-fr.yaml"]
    assert (stack["apiVersion"], stack["kind"], stack["metadata"]["namespace"]) == (
        "pulumi.com/v1",
        "Stack",
        "pulumi-gov-fr",
    )
    spec = stack["spec"]
    assert (spec["stack"], spec["projectRepo"], spec["repoDir"], spec["branch"]) == (
        "gov-fr",
        URL,
        "ops",
        "prod",
    )
    assert spec["backend"] == gov_fr.spec.state.backend_url
    assert spec["backend"].startswith("s3://")
    assert spec["secretsProvider"] == gov_fr.spec.state.secrets_provider
    assert spec["serviceAccountName"] == "gov-fr-pulumi"
    assert (spec["useLocalStackOnly"], spec["destroyOnFinalize"]) == (True, False)
    # Every credential is a reference to a Secret key; no value is rendered.
    assert spec["envRefs"] == {
        "AWS_ACCESS_KEY_ID": {
            "type": "Secret",
            "secret": {"name": "gov-fr-pulumi-state", "key": "AWS_ACCESS_KEY_ID"},
        },
        "AWS_SECRET_ACCESS_KEY": {
            "type": "Secret",
            "secret": {"name": "gov-fr-pulumi-state", "key": "AWS_SECRET_ACCESS_KEY"},
        },
        "OVH_APPLICATION_KEY": {
            "type": "Secret",
            "secret": {"name": "gov-fr-cloud", "key": "OVH_APPLICATION_KEY"},
        },
        "OVH_APPLICATION_SECRET": {
            "type": "Secret",
            "secret": {"name": "gov-fr-cloud", "key": "OVH_APPLICATION_SECRET"},
        },
        "OVH_CONSUMER_KEY": {"type": "Secret", "secret": {"name": "gov-fr-cloud", "key": "OVH_CONSUMER_KEY"}},
        "OVH_ENDPOINT": {"type": "Secret", "secret": {"name": "gov-fr-cloud", "key": "OVH_ENDPOINT"}},
        "VAULT_ADDR": {"type": "Literal", "literal": {"value": gov_fr.spec.state.vault_address}},
        "VAULT_TOKEN": {"type": "Secret", "secret": {"name": "gov-fr-pulumi-secrets", "key": "VAULT_TOKEN"}},
    }
    workspace = spec["workspaceTemplate"]
    assert (workspace["apiVersion"], workspace["kind"]) == ("auto.pulumi.com/v1alpha1", "Workspace")
    assert workspace["spec"]["securityProfile"] == "restricted"
    pod = workspace["spec"]["podTemplate"]["spec"]
    assert pod["nodeSelector"] == {"topology.kubernetes.io/region": "GRA11"}
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["containers"] == [
        {
            "name": "pulumi",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        }
    ]
    namespace = pko["namespace-pulumi-gov-fr.yaml"]["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"
    binding = pko["clusterrolebinding-gov-fr-pulumi.yaml"]
    assert binding["roleRef"]["name"] == "system:auth-delegator"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "gov-fr-pulumi", "namespace": "pulumi-gov-fr"}
    ]


def test_pko_passphrase_stacks_reference_the_passphrase() -> None:
    loaded = load_stack("industrial-eu")
    assert loaded.spec.state.secrets_provider == "passphrase"
    files = render_files(loaded, GitSource(URL, ".", flavor="pko"))
    spec = yaml.safe_load(files["pko/stack-industrial-eu.yaml"])["spec"]
    pod = spec["workspaceTemplate"]["spec"]["podTemplate"]["spec"]
    assert pod["nodeSelector"] == {"topology.kubernetes.io/region": "fr-par"}
    assert sorted(spec["envRefs"]) == [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PULUMI_CONFIG_PASSPHRASE",
        "SCW_ACCESS_KEY",
        "SCW_DEFAULT_PROJECT_ID",
        "SCW_SECRET_KEY",
    ]
    assert spec["envRefs"]["PULUMI_CONFIG_PASSPHRASE"] == {
        "type": "Secret",
        "secret": {"name": "industrial-eu-pulumi-secrets", "key": "PULUMI_CONFIG_PASSPHRASE"},
    }


def test_render_all_pko_writes_a_stack_per_customer(
    repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stacks = repository / "ops" / "stacks"
    stacks.mkdir(parents=True)
    shutil.copy(REPO / "Pulumi.yaml", repository / "ops")
    for name in ("gov-fr", "industrial-eu"):
        shutil.copy(REPO / "stacks" / f"Pulumi.{name}.yaml", stacks)
    monkeypatch.setenv("SOVSTACK_STACKS_DIR", str(stacks))
    out = repository / "fleet"
    result = runner.invoke(
        app, ["render", "--demo", "--all", "--pko", "--out", str(out), "--repo-url", URL, "--jobs", "1"]
    )
    assert result.exit_code == 0, result.output
    for name in ("gov-fr", "industrial-eu"):
        spec = yaml.safe_load((out / name / "pko" / f"stack-{name}.yaml").read_text())["spec"]
        assert (spec["stack"], spec["repoDir"], spec["projectRepo"]) == (name, "ops", URL)
    assert not (out / "gov-fr" / "argocd").exists()


def test_pko_refuses_a_program_outside_the_repository(repository: Path) -> None:
    # The stacks are the repository's own (REPO/stacks), outside this repository.
    result = runner.invoke(
        app, ["render", "--demo", "gov-fr", "--pko", "--out", str(repository / "x"), "--repo-url", URL]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"{REPO}: the Pulumi project is outside the repository at {repository.resolve()}; the operator "
        "fetches the program from that repository\n"
    )


def test_pko_and_flavor_are_exclusive(repository: Path) -> None:
    result = runner.invoke(
        app,
        [
            "render",
            "--demo",
            "gov-fr",
            "--pko",
            "--flavor",
            "flux",
            "--out",
            str(repository / "x"),
            "--repo-url",
            URL,
        ],
    )
    assert result.exit_code == 2
    assert result.stderr == "render: --pko and --flavor choose the engine both; give one\n"


def test_an_unknown_flavor_is_refused(repository: Path) -> None:
    result = runner.invoke(
        app,
        [
            "render",
            "--demo",
            "gov-fr",
            "--flavor",
            "fleet",
            "--out",
            str(repository / "x"),
            "--repo-url",
            URL,
        ],
    )
    assert result.exit_code == 2
    assert result.stderr == "--flavor: 'fleet' is not one of argocd, flux\n"


def test_pko_refuses_a_name_its_stack_crd_would_refuse(tmp_path: Path) -> None:
    long_name = "a" * 43
    source = REPO / "stacks" / "Pulumi.industrial-eu.yaml"
    stack = tmp_path / f"Pulumi.{long_name}.yaml"
    stack.write_text(source.read_text().replace("name: industrial-eu", f"name: {long_name}", 1))
    loaded = load_stack(stack)
    assert loaded.spec.name == long_name
    with pytest.raises(RenderError) as refused:
        render_files(loaded, GitSource(URL, ".", flavor="pko"))
    assert (refused.value.exit_code, refused.value.lines) == (
        2,
        [
            f"{stack}: sovstack:customer.name: {long_name!r} is longer than 42 characters, the Pulumi "
            "Kubernetes Operator's limit for a Stack's name"
        ],
    )
