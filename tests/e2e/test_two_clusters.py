"""Two clusters in one Pulumi program, for real: no URN collision, each cluster its own platform.

A primary cluster and a disaster-recovery one, both under one EU policy, each an existing cluster of
its own; one program composes a SovereignStack for each. Models autoscale and have routes, so KEDA,
Envoy Gateway and the Gateway API CRDs are installed and the ScaledObjects and HTTPRoutes wait for
them: the ordering a mock engine cannot see.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi import automation as auto

from sovstack.infra.checks import semantic_problems
from sovstack.infra.compose import build_composition
from sovstack.infra.residency_check import evaluate
from sovstack.infra.spec import CustomerSpec
from sovstack.infra.stack import SovereignStack
from tests.e2e.conftest import PlaneFactory
from tests.e2e.harness import PASSPHRASE, PulumiEnv, nodes_for, skip_await
from tests.e2e.test_stacks import e2e_customer

pytestmark = pytest.mark.e2e


def customer(name: str, mirror: str) -> dict[str, Any]:
    spec = e2e_customer("industrial-eu", mirror)
    spec["name"] = name
    spec["audit"]["bucket"] = f"{name}-audit"
    # KEDA's and Envoy Gateway's images from the operator's mirror, as the eu profile requires.
    spec["platform"]["imageRegistry"] = "registry.fr-par-dc1.sovstack.internal/mirror"
    model = spec["models"][0]
    model["autoscaling"] = {"minReplicas": 1, "maxReplicas": 2}
    model["route"] = {
        "hostname": f"{name}.models.example.eu",
        "gatewayName": "models",
        "gatewayNamespace": "gateway",
    }
    for other in spec["models"]:
        other["apiKeySecret"] = {"name": f"{name}-api-key"}
    return spec


def test_two_clusters_in_one_program(
    control_planes: PlaneFactory, pulumi_cli: PulumiEnv, chart_mirror_url: str, tmp_path: Path
) -> None:
    specs = {
        name: CustomerSpec.model_validate(customer(name, chart_mirror_url))
        for name in ("primary", "recovery")
    }
    planes = {name: control_planes(f"two-{name}") for name in specs}
    for name, spec in specs.items():
        assert semantic_problems(spec) == []
        for node in nodes_for(spec.model_dump(by_alias=True, mode="json")):
            planes[name].kubectl("apply", "-f", "-", stdin=yaml.safe_dump(node))

    def program() -> None:
        pulumi.runtime.register_resource_transform(skip_await)
        for name, spec in specs.items():
            findings = evaluate(spec)
            assert all(f.passed for f in findings), [f.line() for f in findings if not f.passed]
            refusals, composition = build_composition(spec)
            assert not refusals and composition is not None, refusals
            kubeconfig = pulumi.Output.secret(planes[name].kubeconfig.read_text())
            SovereignStack(name, spec, findings=findings, kubeconfig=kubeconfig, composition=composition)

    project = tmp_path / "project"
    project.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    env = {**pulumi_cli.env, "PULUMI_BACKEND_URL": f"file://{state}", "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE}
    stack = auto.create_or_select_stack(
        "two-clusters",
        project_name="sovstack-two-clusters",
        program=program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(project),
            env_vars=env,
            pulumi_command=pulumi_cli.command,
            project_settings=auto.ProjectSettings(name="sovstack-two-clusters", runtime="python"),
        ),
    )
    result = stack.up(color="never")
    assert result.summary.result == "succeeded"
    exported = stack.export_stack().deployment["resources"]
    urns = [r["urn"] for r in exported]
    assert len(urns) == len(set(urns))
    # Each cluster got its own platform: KEDA and Envoy Gateway on each, under its own component.
    releases = sorted(
        r["urn"].rsplit("::", 1)[1] for r in exported if r["type"] == "kubernetes:helm.sh/v3:Release"
    )
    assert releases == [
        f"{name}-platform-{chart}"
        for name in ("primary", "recovery")
        for chart in ("envoy-gateway", "keda", "prometheus-operator-crds")
    ]
    for name, plane in planes.items():
        assert (
            plane.get("keda.sh/v1alpha1", "ScaledObject", f"{name}-mistral-small", f"{name}-serving")
            is not None
        )
        assert plane.get(
            "gateway.networking.k8s.io/v1", "HTTPRoute", f"{name}-mistral-small", f"{name}-serving"
        )
        assert plane.get("gateway.networking.k8s.io/v1", "Gateway", "models", "gateway") is not None
    # A second run changes nothing, across both clusters.
    again = stack.preview(color="never", expect_no_changes=True)
    assert set(again.change_summary) == {"same"}
    stack.destroy(color="never")


def test_a_custom_resource_without_its_crd_fails_with_no_matches_for_kind(
    control_planes: PlaneFactory, pulumi_cli: PulumiEnv, tmp_path: Path
) -> None:
    """Why the platform layer exists: the ExternalSecrets component alone, on a cluster where nothing
    installed External Secrets, is refused by the API server."""
    from sovstack.components.builders.external_secrets import ExternalSecretsArgs, SecretToSync
    from sovstack.components.external_secrets import ExternalSecrets

    plane = control_planes("no-crd")
    plane.kubectl("create", "namespace", "acme-serving")
    args = ExternalSecretsArgs(
        customer="acme",
        region="fr-par-dc1",
        residency_profile="eu",
        store_name="vault",
        store_kind="ClusterSecretStore",
        remote_prefix="sovstack/acme",
        secrets=(SecretToSync(name="acme-api-key", namespace="acme-serving", keys=("api-key",)),),
    )

    def program() -> None:
        pulumi.runtime.register_resource_transform(skip_await)
        import pulumi_kubernetes

        provider = pulumi_kubernetes.Provider("k8s", kubeconfig=plane.kubeconfig.read_text())
        ExternalSecrets("acme-secrets", copy.deepcopy(args), provider=provider)

    state = tmp_path / "state"
    state.mkdir()
    stack = auto.create_or_select_stack(
        "no-crd",
        project_name="sovstack-no-crd",
        program=program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(tmp_path),
            env_vars={**pulumi_cli.env, "PULUMI_BACKEND_URL": f"file://{state}"},
            pulumi_command=pulumi_cli.command,
            project_settings=auto.ProjectSettings(name="sovstack-no-crd", runtime="python"),
        ),
    )
    with pytest.raises(auto.errors.CommandError) as failed:
        stack.up(color="never")
    assert 'no matches for kind "ExternalSecret"' in str(failed.value)
