"""Every example's `sovstack render` output is accepted by a real API server, custom resources included.

The CRDs come from their projects' own Go modules (External Secrets, KEDA, Gateway API, Envoy Gateway,
Prometheus Operator, Cilium, Argo CD, Flux), pinned in toolchain/versions.yaml. Each engine's objects are
checked: Argo CD's app of apps and Flux's (`--flavor flux`); the Pulumi operator's module is not served
here (see the note by the test). Namespaces are created for real (a
server-side dry run of a namespaced object needs its namespace); every other object goes through
`kubectl apply --server-side --dry-run=server`, which runs the full admission chain and validates
custom resources against their CRD's schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sovstack.infra.gitops import GitSource
from sovstack.infra.render import render_stack
from tests.e2e.conftest import PlaneFactory
from tests.e2e.control_plane import ControlPlane
from tests.e2e.sources import crd_documents

pytestmark = pytest.mark.e2e

EXAMPLES = ("airgap-onprem", "gov-fr", "industrial-eu", "research-se")
CRD_SOURCES = (
    "external-secrets",
    "keda",
    "gateway-api",
    "envoy-gateway",
    "prometheus-operator",
    "cilium",
    "argo-cd",
    "flux-kustomize-controller",
    "flux-source-controller",
    "flux-helm-controller",
)
URL = "https://git.example.eu/platform/gitops.git"


@pytest.fixture(scope="module")
def plane(control_planes: PlaneFactory) -> ControlPlane:
    plane = control_planes("render-accepted")
    plane.apply_crds(crd_documents(*CRD_SOURCES))
    for namespace in ("argocd", "flux-system"):
        plane.kubectl("create", "namespace", namespace, check=False)
    return plane


def objects_of(folder: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(folder.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    return found


# Not "pko": the Pulumi Kubernetes Operator's module is not served here, so its CRDs cannot be installed
# (toolchain/versions.yaml); its objects are checked against the operator's Go types in test_gitops.py.
@pytest.mark.parametrize("flavor", ["argocd", "flux"])
@pytest.mark.parametrize("example", EXAMPLES)
def test_every_rendered_object_is_accepted_by_the_server(
    plane: ControlPlane, example: str, flavor: str, tmp_path: Path
) -> None:
    out = tmp_path / example
    render_stack(example, out, GitSource(repo_url=URL, path=example, flavor=flavor), demo=True)
    engine = objects_of(out / flavor)
    assert engine
    objects = objects_of(out / "namespaces") + objects_of(out / "manifests") + engine
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    others = [o for o in objects if o["kind"] != "Namespace"]
    assert namespaces and others
    plane.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(namespaces))
    accepted = plane.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(others),
        check=False,
    )
    assert accepted.returncode == 0, accepted.stderr
    kinds = {o["kind"] for o in others}
    # Not vacuous: the workloads' custom kinds went through their CRDs' schemas (airgap-onprem has none of
    # its own: Calico, no secret store, no monitor; its engine's kinds below are checked all the same).
    if example != "airgap-onprem":
        assert kinds & {
            "ExternalSecret",
            "ClusterSecretStore",
            "ServiceMonitor",
            "CiliumNetworkPolicy",
        }
    # The engine's own kinds went through their CRDs too.
    assert (
        kinds
        >= {
            "argocd": {"Application"},
            "flux": {
                "GitRepository",
                "Kustomization",
                *(("HelmRelease", "HelmRepository") if len(engine) > 4 else ()),
            },
        }[flavor]
    )
    assert accepted.stdout.count("(server dry run)") == len(others)
    if example == "gov-fr":  # endpoint identity went through Envoy Gateway's own CRDs
        assert {"SecurityPolicy", "BackendTrafficPolicy"} <= kinds


def test_an_invalid_custom_resource_is_refused_by_its_crd(plane: ControlPlane) -> None:
    """The check can fail: a ServiceMonitor with a field its CRD does not have is refused."""
    bad = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "notAField": True}]},
    }
    refused = plane.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        stdin=yaml.safe_dump(bad),
        check=False,
    )
    assert refused.returncode != 0
    assert "notAField" in refused.stderr
