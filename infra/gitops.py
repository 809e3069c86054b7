"""Objects a GitOps engine reads to apply a render: Argo CD (app of apps), Flux, or the Pulumi Kubernetes Operator.

Every path they name is relative to the root of the Git repository the render is written into, which
`locate_repository` finds (or is told), so Argo CD and Flux take the objects as they are. Pure builders
apart from `locate_repository`, which asks git.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sovstack.components.kube import Manifest, standard_labels
from sovstack.infra.compose import Composition

ARGOCD_NAMESPACE = "argocd"
FLUX_NAMESPACE = "flux-system"
IN_CLUSTER = "https://kubernetes.default.svc"
FLAVORS = ("argocd", "flux")
#: Sync waves of a customer's children: namespaces (with their Pod Security labels) first, then the
#: charts (operators and the CRDs the manifests use: ExternalSecret, ServiceMonitor), then the rest.
WAVE_NAMESPACES, WAVE_CHARTS, WAVE_MANIFESTS = 0, 1, 2
#: A failed sync is retried, waiting 10s, 20s, 40s... up to 5 minutes between attempts.
ARGOCD_RETRY = {"limit": 10, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}}
PKO_NAMESPACE_PREFIX = "pulumi-"
PKO_STACK_NAME_MAX = 42  # the Stack CRD's validation rule: size(self.metadata.name) <= 42
PKO_CONTAINER = "pulumi"  # the workspace pod's container that runs the program
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_COMMIT = re.compile(r"[0-9a-f]{40}")


class GitOpsError(Exception):
    """The render cannot name its repository; `lines` say why (exit code 2: bad input)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True)
class GitSource:
    """Where the engine finds the render: repository URL, revision, and the render's directory inside the
    repository (relative to its root, POSIX). `flavor` picks the engine objects: argocd, flux or pko;
    `program_path` is the Pulumi project's directory in the same repository (pko only)."""

    repo_url: str
    path: str
    revision: str = "main"
    flavor: str = "argocd"
    program_path: str = "."

    def under(self, *parts: str) -> str:
        """A path inside the render, relative to the repository root ("." stays out of the way)."""
        return str(PurePosixPath(self.path, *parts))


# ---------------------------------------------------------------------------------- the repository
def git_output(cwd: Path, *args: str) -> str | None:
    try:
        run = subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return run.stdout.strip() if run.returncode == 0 and run.stdout.strip() else None


def clean_url(url: str, where: str) -> str:
    """The URL without credentials; refused when an engine in the cluster could not clone it."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise GitOpsError([f"{where}: {url!r} has no host"])
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    if parts.scheme == "ssh" or re.fullmatch(r"[\w.-]+@[\w.-]+:[^/].*", url):
        return url  # ssh keys are configured in the engine; the URL holds no secret
    raise GitOpsError(
        [
            f"{where}: {url!r} is not a URL a controller in the cluster can clone "
            "(https://, ssh:// or git@host:path); give --repo-url"
        ]
    )


def locate_repository(
    out: Path,
    repo_url: str | None,
    revision: str = "main",
    repo_root: Path | None = None,
    flavor: str = "argocd",
    program_dir: Path | None = None,
) -> GitSource:
    """The GitSource of a render written to `out`: its path relative to the repository's root (the top
    of the git work tree holding `out`, or `repo_root`), the URL (`repo_url`, else the `origin` remote)."""
    target = out.resolve()
    if repo_root is None:
        existing = next((p for p in (target, *target.parents) if p.is_dir()), Path("/"))
        top = git_output(existing, "rev-parse", "--show-toplevel")
        if top is None:
            raise GitOpsError(
                [
                    f"--out {out}: not inside a git repository; render into a clone of the repository "
                    "Argo CD or Flux reads (or give --repo-root)"
                ]
            )
        root = Path(top).resolve()
    else:
        root = repo_root.resolve()
    try:
        rel = target.relative_to(root)
    except ValueError:
        raise GitOpsError(
            [f"--out {out}: outside the repository at {root}; the engine only reads paths inside it"]
        ) from None
    if repo_url:
        url = clean_url(repo_url, "--repo-url")
    else:
        origin = git_output(root, "remote", "get-url", "origin")
        if origin is None:
            raise GitOpsError(
                [
                    f"{root}: no repository URL: give --repo-url (or $SOVSTACK_GITOPS_REPO), "
                    "or add an `origin` remote"
                ]
            )
        url = clean_url(origin, f"{root}: remote origin")
    program = "."
    if flavor == "pko":
        project = (program_dir or Path.cwd()).resolve()
        if not (project / "Pulumi.yaml").is_file():
            raise GitOpsError([f"{project}: no Pulumi.yaml; the operator needs the sovstack Pulumi project"])
        try:
            program = project.relative_to(root).as_posix() or "."
        except ValueError:
            raise GitOpsError(
                [
                    f"{project}: the Pulumi project is outside the repository at {root}; the operator "
                    "fetches the program from that repository"
                ]
            ) from None
    return GitSource(
        repo_url=url, path=rel.as_posix() or ".", revision=revision, flavor=flavor, program_path=program
    )


# ---------------------------------------------------------------------------------- Argo CD
def _labels(composition: Composition) -> dict[str, str]:
    spec = composition.spec
    return standard_labels(
        name=f"{spec.name}-gitops",
        component="gitops",
        customer=spec.name,
        region=spec.cluster.location,
        residency=spec.residency.label,
    )


def _application(
    name: str,
    labels: dict[str, str],
    wave: int,
    source: dict[str, Any],
    namespace: str | None,
    options: list[str],
) -> Manifest:
    destination = {"server": IN_CLUSTER, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": ARGOCD_NAMESPACE,
            "labels": labels,
            "annotations": {"argocd.argoproj.io/sync-wave": str(wave)},
        },
        "spec": {
            "project": "default",
            "source": source,
            "destination": destination,
            "syncPolicy": {
                # prune: false: nothing is deleted behind a reviewer's back.
                "automated": {"prune": False, "selfHeal": True},
                "syncOptions": options,
                "retry": ARGOCD_RETRY,
            },
        },
    }


def argocd_children(composition: Composition, git: GitSource) -> list[Manifest]:
    """The customer's applications, each a resource of the parent, so its sync wave orders them."""
    name = composition.spec.name
    labels = _labels(composition)
    plain = ["ServerSideApply=true"]

    def from_git(path: str) -> dict[str, Any]:
        return {"repoURL": git.repo_url, "targetRevision": git.revision, "path": path}

    apps = [
        _application(
            f"{name}-namespaces", labels, WAVE_NAMESPACES, from_git(git.under("namespaces")), None, plain
        ),
        _application(
            f"{name}-manifests", labels, WAVE_MANIFESTS, from_git(git.under("manifests")), None, plain
        ),
    ]
    for chart in composition.charts():
        source = {
            # Argo CD names an OCI registry without its scheme.
            "repoURL": chart["repository"].removeprefix("oci://"),
            "chart": chart["chart"],
            "targetRevision": chart["version"],
            "helm": {"releaseName": chart["name"], "valuesObject": chart.get("values", {})},
        }
        apps.append(
            _application(
                f"{name}-{chart['name']}",
                labels,
                WAVE_CHARTS,
                source,
                chart["namespace"],
                [*plain, "CreateNamespace=false"],
            )
        )
    return apps


def argocd_parent(composition: Composition, git: GitSource) -> Manifest:
    """The customer's app of apps: its source is the directory of the children."""
    name = composition.spec.name
    source = {
        "repoURL": git.repo_url,
        "targetRevision": git.revision,
        "path": git.under("argocd", "apps"),
        "directory": {"recurse": False},
    }
    return _application(
        f"{name}-apps", _labels(composition), 0, source, ARGOCD_NAMESPACE, ["ServerSideApply=true"]
    )


# ---------------------------------------------------------------------------------- Flux
def _flux_kustomization(
    name: str, labels: dict[str, str], path: str, source: str, depends: list[str]
) -> Manifest:
    spec: dict[str, Any] = {
        "interval": "10m",
        "retryInterval": "1m",
        "timeout": "10m",
        "path": f"./{path}",
        "prune": False,
        "wait": True,
        "sourceRef": {"kind": "GitRepository", "name": source},
    }
    if depends:
        spec["dependsOn"] = [{"name": d} for d in depends]
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": FLUX_NAMESPACE, "labels": labels},
        "spec": spec,
    }


def flux_objects(composition: Composition, git: GitSource) -> dict[str, Manifest]:
    """flux/ file name to object: the GitRepository and the Kustomizations, ordered by dependsOn; and
    flux/charts/, the HelmRepository and HelmRelease of each chart, which the charts Kustomization applies."""
    name = composition.spec.name
    labels = _labels(composition)
    ref = {"commit": git.revision} if _COMMIT.fullmatch(git.revision) else {"branch": git.revision}
    files: dict[str, Manifest] = {
        f"gitrepository-{name}.yaml": {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": FLUX_NAMESPACE, "labels": labels},
            "spec": {"interval": "5m", "url": git.repo_url, "ref": ref},
        }
    }
    steps = [(f"{name}-namespaces", git.under("namespaces"))]
    charts = composition.charts()
    if charts:
        steps.append((f"{name}-charts", git.under("flux", "charts")))
    steps.append((f"{name}-manifests", git.under("manifests")))
    for index, (step, path) in enumerate(steps):
        depends = [steps[index - 1][0]] if index else []
        files[f"kustomization-{step}.yaml"] = _flux_kustomization(step, labels, path, name, depends)
    for chart in charts:
        repository = chart["repository"]
        repo_spec: dict[str, Any] = {"interval": "1h", "url": repository}
        if repository.startswith("oci://"):
            repo_spec["type"] = "oci"
        source_name = f"{name}-{chart['name']}"
        files[f"charts/helmrepository-{source_name}.yaml"] = {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": source_name, "namespace": FLUX_NAMESPACE, "labels": labels},
            "spec": repo_spec,
        }
        files[f"charts/helmrelease-{source_name}.yaml"] = {
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": source_name, "namespace": FLUX_NAMESPACE, "labels": labels},
            "spec": {
                "interval": "10m",
                "releaseName": chart["name"],
                "targetNamespace": chart["namespace"],
                "chart": {
                    "spec": {
                        "chart": chart["chart"],
                        "version": chart["version"],
                        "sourceRef": {"kind": "HelmRepository", "name": source_name},
                    }
                },
                "install": {"createNamespace": False, "remediation": {"retries": 3}},
                "upgrade": {"remediation": {"retries": 3}},
                "values": chart.get("values", {}),
            },
        }
    return files


# ---------------------------------------------------------------------------------- Pulumi Kubernetes Operator
def _secret_ref(secret: str, key: str) -> dict[str, Any]:
    return {"type": "Secret", "secret": {"name": secret, "key": key}}


def pko_env_refs(composition: Composition) -> dict[str, Any]:
    """The runner's environment, by reference: state bucket keys, the secrets provider's, the cloud's."""
    spec = composition.spec
    state = f"{spec.name}-pulumi-state"
    refs: dict[str, Any] = {}
    if spec.state.backend_url.startswith("s3://"):
        refs |= {k: _secret_ref(state, k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    if spec.state.secrets_provider.startswith("hashivault://"):
        refs["VAULT_TOKEN"] = _secret_ref(f"{spec.name}-pulumi-secrets", "VAULT_TOKEN")
        if spec.state.vault_address:
            refs["VAULT_ADDR"] = {"type": "Literal", "literal": {"value": spec.state.vault_address}}
    else:
        refs["PULUMI_CONFIG_PASSPHRASE"] = _secret_ref(
            f"{spec.name}-pulumi-secrets", "PULUMI_CONFIG_PASSPHRASE"
        )
    cloud = f"{spec.name}-cloud"
    keys = {
        "scaleway": ("SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID"),
        "ovh": ("OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"),
    }.get(spec.cluster.provider, ())
    refs |= {k: _secret_ref(cloud, k) for k in keys}
    return dict(sorted(refs.items()))


def pko_objects(composition: Composition, git: GitSource) -> dict[str, Manifest]:
    """pko/ file name to object: the customer's namespace, the runner's ServiceAccount (allowed to review
    tokens, which the workspace's agent needs) and the Stack with its Workspace template."""
    spec = composition.spec
    name = spec.name
    namespace = f"{PKO_NAMESPACE_PREFIX}{name}"
    account = f"{name}-pulumi"
    labels = {
        **_labels(composition),
        "app.kubernetes.io/name": f"{name}-pulumi",
        "app.kubernetes.io/component": "pulumi-operator",
    }
    region = spec.cluster.location
    ref = {"commit": git.revision} if _COMMIT.fullmatch(git.revision) else {"branch": git.revision}
    workspace = {
        "apiVersion": "auto.pulumi.com/v1alpha1",
        "kind": "Workspace",
        "spec": {
            "securityProfile": "restricted",
            "podTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    # The runner holds the state and cloud credentials: it runs in the customer's region.
                    "nodeSelector": {"topology.kubernetes.io/region": region},
                    "automountServiceAccountToken": True,  # the agent authenticates the operator with it
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": PKO_CONTAINER, "securityContext": RESTRICTED_CONTAINER}],
                },
            },
        },
    }
    stack = {
        "apiVersion": "pulumi.com/v1",
        "kind": "Stack",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "stack": name,
            "projectRepo": git.repo_url,
            "repoDir": git.program_path,
            **ref,
            "backend": spec.state.backend_url,
            "secretsProvider": spec.state.secrets_provider,
            "envRefs": pko_env_refs(composition),
            "serviceAccountName": account,
            # The stack file is in the repository: never create a stack it does not describe.
            "useLocalStackOnly": True,
            "refresh": True,
            "destroyOnFinalize": False,
            "workspaceTemplate": workspace,
        },
    }
    return {
        f"namespace-{namespace}.yaml": {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {
                    **labels,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
        },
        f"serviceaccount-{account}.yaml": {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": namespace, "labels": labels},
        },
        f"clusterrolebinding-{account}.yaml": {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{namespace}-{account}-auth-delegator", "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:auth-delegator",
            },
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
        f"stack-{name}.yaml": stack,
    }
