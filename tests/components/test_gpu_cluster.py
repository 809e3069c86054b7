"""GpuCluster under Pulumi's mock runtime: what each backend registers, where, bound to what, protected how.

Protection: the mock engine does not see resource options, so tests read `resource._protect`, the value the
SDK copies from `ResourceOptions.protect` (or inherits from the parent) and sends in the registration
request (pulumi/resource.py); a wrong `protect=` in the shell makes these assertions fail.
"""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import Any

import pulumi
import pytest

from sovstack.components.builders.gpu_cluster_args import ClusterArgsError, GpuClusterArgs
from sovstack.components.gpu_cluster import GpuCluster
from tests.components.test_gpu_cluster_builder import H100_POOL, existing, ovh, scaleway, talos
from tests.pulumi_mocks import FAKE_KUBECONFIG, Recorder

# pulumi-ovh warns about one of its own deprecated classes when imported (pyproject filters only Scaleway's).
pytestmark = pytest.mark.filterwarnings("ignore:.*has been deprecated.*:DeprecationWarning:pulumi_ovh")

COMPONENT = "sovstack:cluster:GpuCluster$"
SECRET_SIG, SECRET_VALUE = pulumi.runtime.rpc._special_sig_key, pulumi.runtime.rpc._special_secret_sig
TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def children(cluster: GpuCluster) -> list[pulumi.Resource]:
    extra = [cluster.provider, *cluster.node_patches]
    return [
        *cluster.resources.values(),
        *extra,
        *([cluster.cloud_provider] if cluster.cloud_provider else []),
    ]


async def common_checks(cluster: GpuCluster, mocks: Recorder) -> None:
    """Every child under the component, the kubeconfig secret, Kubernetes children on the cluster's provider."""
    urns = [str(await child.urn.future()) for child in children(cluster)]
    assert urns and all(COMPONENT in urn for urn in urns), urns
    assert await cluster.kubeconfig.is_secret()
    assert await cluster.kubeconfig.future() == FAKE_KUBECONFIG
    # Every cloud resource goes through the cluster's own provider, none through a default one.
    if cluster.cloud_provider is not None:
        provider_ref = (
            f"{await cluster.cloud_provider.urn.future()}::{await cluster.cloud_provider.id.future()}"
        )
        cloud = [r for r in mocks.resources if r.custom and not r.typ.startswith(("kubernetes:", "pulumi:"))]
        assert cloud and {r.provider for r in cloud} == {provider_ref}, {r.provider for r in cloud}
    assert not mocks.of_type("kubernetes:helm.sh/v3:Release"), "the platform layer installs charts"
    provider_urn = str(await cluster.provider.urn.future())
    assert provider_urn.endswith("pulumi:providers:kubernetes::c-k8s")
    for registered in mocks.resources:
        if registered.typ.startswith("kubernetes:") and registered.custom:
            assert registered.provider is not None and registered.provider.startswith(provider_urn + "::")


@pulumi.runtime.test
def test_scaleway_registers_network_cluster_acl_and_pools(mocks: Recorder) -> Coroutine[Any, Any, None]:
    cluster = GpuCluster("c", scaleway())

    async def check() -> None:
        await common_checks(cluster, mocks)
        # Registration order is up to the event loop: compare as sorted lists.
        assert sorted(
            r.typ for r in mocks.resources if r.custom and not r.typ.startswith("pulumi:providers")
        ) == [
            "scaleway:kubernetes/acl:Acl",
            "scaleway:kubernetes/cluster:Cluster",
            "scaleway:kubernetes/pool:Pool",
            "scaleway:kubernetes/pool:Pool",
            "scaleway:network/gatewayNetwork:GatewayNetwork",
            "scaleway:network/privateNetwork:PrivateNetwork",
            "scaleway:network/publicGateway:PublicGateway",
            "scaleway:network/publicGatewayIp:PublicGatewayIp",
            "scaleway:network/vpc:Vpc",
        ]
        kapsule = mocks.named("c-cluster").inputs
        assert kapsule["region"] == "fr-par" and kapsule["privateNetworkId"] == "c-pn-id"
        assert kapsule["deleteAdditionalResources"] is False and kapsule["cni"] == "cilium"
        gpu = mocks.named("c-pool-h100-fr-par-2").inputs
        assert gpu["clusterId"] == "c-cluster-id" and gpu["zone"] == "fr-par-2" and gpu["region"] == "fr-par"
        assert gpu["nodeType"] == "H100-1-80G" and gpu["autoscaling"] is True
        assert (gpu["minSize"], gpu["maxSize"]) == (0.0, 2.0)
        assert gpu["publicIpDisabled"] is True and gpu["taints"] == [TAINT]
        assert gpu["labels"]["sovstack.io/pool"] == "h100" and gpu["labels"]["sovstack.io/zone"] == "fr-par-2"
        assert mocks.named("c-pool-system-fr-par-2").inputs["taints"] == []
        assert mocks.named("c-acl").inputs["aclRules"] == [
            {"ip": "203.0.113.0/24", "description": "declared API client network"},
            {"ip": "51.15.0.10/32", "description": "public gateway"},
        ]
        assert mocks.named("c-gw-pn").inputs["privateNetworkId"] == "c-pn-id"
        provider = mocks.named("c-scaleway").inputs
        assert (provider["region"], provider["zone"]) == ("fr-par", "fr-par-2")
        res = cluster.resources
        assert res["c-cluster"]._protect is True and res["c-pool-h100-fr-par-2"]._protect is True
        assert res["c-vpc"]._protect is False
        assert cluster.region == "fr-par" and cluster.zones == ["fr-par-2"]
        assert cluster.gpu_pools[0]["memory_gb_per_gpu"] == 80.0

    return check()


@pulumi.runtime.test
def test_unprotected_test_stack(mocks: Recorder) -> Coroutine[Any, Any, None]:
    cluster = GpuCluster("c", scaleway(protect=False))

    async def check() -> None:
        await cluster.resources["c-cluster"].urn.future()
        assert all(child._protect is False for child in cluster.resources.values())

    return check()


@pulumi.runtime.test
def test_ovh_registers_private_network_kube_ip_restrictions_pools_and_operator(
    mocks: Recorder,
) -> Coroutine[Any, Any, None]:
    cluster = GpuCluster("c", ovh())

    async def check() -> None:
        await common_checks(cluster, mocks)
        kube = mocks.named("c-cluster").inputs
        assert kube["region"] == "GRA11" and kube["serviceName"] == "0123abcd"
        assert kube["privateNetworkId"] == "mock-openstack-gra11" and kube["nodesSubnetId"] == "c-subnet-id"
        assert mocks.named("c-subnet").inputs["networkId"] == "mock-openstack-gra11"
        assert mocks.named("c-network").inputs["regions"] == ["GRA11"]
        assert mocks.named("c-api-ips").inputs["ips"] == ["203.0.113.0/24"]
        pool = mocks.named("c-pool-h100-gra11").inputs
        assert (
            pool["flavorName"] == "h100-380"
            and pool["autoscale"] is True
            and pool["kubeId"] == "c-cluster-id"
        )
        assert (pool["minNodes"], pool["maxNodes"], pool["desiredNodes"]) == (0.0, 2.0, 0.0)
        assert pool["template"]["spec"]["taints"] == [TAINT]
        assert pool["template"]["metadata"]["labels"]["sovstack.io/gpu"] == "H100"
        assert mocks.named("c-ovh").inputs == {"endpoint": "ovh-eu"}
        assert cluster.resources["c-cluster"]._protect is True
        assert cluster.resources["c-pool-h100-gra11"]._protect is True

    return check()


@pulumi.runtime.test
def test_talos_bootstraps_machines_with_nvidia_patches(mocks: Recorder) -> Coroutine[Any, Any, None]:
    cluster = GpuCluster("c", talos())

    async def check() -> None:
        await common_checks(cluster, mocks)
        types = {r.typ for r in mocks.resources if r.custom}
        assert {
            "talos:machine/secrets:Secrets",
            "talos:imageFactory/schematic:Schematic",
            "talos:machine/configurationApply:ConfigurationApply",
            "talos:machine/bootstrap:Bootstrap",
            "talos:cluster/kubeconfig:Kubeconfig",
            "pulumi:providers:talos",
        } <= types
        gpu = mocks.named("c-apply-gpu1").inputs
        machine = json.loads(gpu["configPatches"][0])["machine"]
        assert machine["install"]["image"] == "factory.talos.dev/installer/c-schematic-id:v1.14.0"
        assert machine["nodeTaints"] == {"nvidia.com/gpu": "present:NoSchedule"}
        # The machine configuration holds cluster secrets: it reaches the engine as a secret.
        config_input = gpu["machineConfigurationInput"]
        assert config_input[SECRET_SIG] == SECRET_VALUE
        assert config_input["value"] == json.dumps({"machine": {"type": "worker"}})
        assert gpu["node"] == "10.0.0.21"
        assert mocks.named("c-bootstrap").inputs["node"] == "10.0.0.11"
        config_calls = [
            a for token, a in mocks.calls if token == "talos:machine/getConfiguration:getConfiguration"
        ]
        by_type = {a["machineType"]: a for a in config_calls}
        cp_patch = json.loads(by_type["controlplane"]["configPatches"][0])
        assert cp_patch["cluster"]["apiServer"]["auditPolicy"]["kind"] == "Policy"
        assert by_type["worker"]["configPatches"] == []
        assert by_type["controlplane"]["kubernetesVersion"] == "1.31.4"
        # The kubeconfig is read only once Talos reports the machines healthy.
        (health,) = [a for token, a in mocks.calls if token == "talos:cluster/getHealth:getHealth"]
        assert health["controlPlaneNodes"] == ["10.0.0.11"] and health["workerNodes"] == ["10.0.0.21"]
        assert cluster.resources["c-secrets"]._protect is True
        assert cluster.resources["c-bootstrap"]._protect is True

    return check()


@pulumi.runtime.test
def test_existing_cluster_only_labels_nodes(mocks: Recorder) -> Coroutine[Any, Any, None]:
    cluster = GpuCluster("c", existing(), kubeconfig=FAKE_KUBECONFIG)

    async def check() -> None:
        await common_checks(cluster, mocks)
        types = sorted(r.typ for r in mocks.resources if r.custom)
        assert types == ["kubernetes:core/v1:NodePatch", "pulumi:providers:kubernetes"]
        patch = mocks.named("c-node-node-7").inputs
        assert patch["metadata"]["name"] == "node-7"
        assert patch["metadata"]["labels"]["sovstack.io/pool"] == "h100"

    return check()


BAD_ZONE: dict[str, Any] = {
    "scaleway": scaleway(gpu_pools=[{**H100_POOL, "zones": ["nl-ams-1"]}]),
    "ovh": ovh(gpu_pools=[{**H100_POOL, "node_type": "h100-380", "zones": ["GRA9"]}]),
    "talos": talos(
        gpu_pools=[
            {
                "name": "l40s",
                "gpu_type": "L40S",
                "gpus_per_node": 2,
                "max_nodes": 1,
                "zones": ["se-sto-dc1-a"],
            }
        ]
    ),
    "existing": existing(
        gpu_pools=[
            {
                "name": "h100",
                "gpu_type": "H100-SXM",
                "gpus_per_node": 8,
                "max_nodes": 1,
                "zones": ["fr-par-dc1-a"],
            }
        ]
    ),
}
BAD_GPU: dict[str, Any] = {
    "scaleway": scaleway(gpu_pools=[{**H100_POOL, "zones": ["fr-par-1"]}]),
    "ovh": ovh(
        region="GRA9",
        system_pool={"node_type": "b3-16", "zones": ["GRA9"]},
        gpu_pools=[{**H100_POOL, "node_type": "h100-380", "zones": ["GRA9"]}],
    ),
    "talos": talos(
        gpu_pools=[
            {
                "name": "l40s",
                "gpu_type": "B300",
                "gpus_per_node": 2,
                "max_nodes": 1,
                "zones": ["fr-par-dc1-a"],
            }
        ]
    ),
    "existing": existing(
        gpu_pools=[
            {"name": "h100", "gpu_type": "L4", "gpus_per_node": 8, "max_nodes": 1, "zones": ["se-sto-dc1-a"]}
        ]
    ),
}


def run_program(program: Any) -> None:
    """Run `program` as a Pulumi program: every registration it started has reached the mock when this
    returns or raises, so `mocks.resources == []` afterwards really means nothing was registered."""
    pulumi.runtime.test(program)()


def test_run_program_sees_registrations_made_before_an_error(mocks: Recorder) -> None:
    def program() -> None:
        pulumi.CustomResource("test:index:Probe", "probe", {})
        raise ClusterArgsError("late")

    with pytest.raises(ClusterArgsError):
        run_program(program)
    assert [r.name for r in mocks.resources] == ["probe"]


@pytest.mark.parametrize("backend", ["scaleway", "ovh", "talos", "existing"])
@pytest.mark.parametrize(
    ("cases", "expected"), [(BAD_ZONE, r"\.zones\[0\]: zone "), (BAD_GPU, r"\.gpu_type: ")]
)
def test_bad_placement_registers_nothing(
    mocks: Recorder, backend: str, cases: dict[str, GpuClusterArgs], expected: str
) -> None:
    kubeconfig = FAKE_KUBECONFIG if backend == "existing" else None
    with pytest.raises(ClusterArgsError, match=r"^gpu_pools\[0\]" + expected):
        run_program(lambda: GpuCluster("c", cases[backend], kubeconfig=kubeconfig))
    assert mocks.resources == []


def test_existing_backend_needs_a_kubeconfig(mocks: Recorder) -> None:
    with pytest.raises(ValueError, match=r"^kubeconfig: required for the existing backend and only there$"):
        run_program(lambda: GpuCluster("c", existing()))
    assert mocks.resources == []


# --- the customer's OpenID Connect issuer, per backend ---------------------------------------------------
OIDC = {
    "issuer_url": "https://sso.fr-par-dc1.sovstack.internal/realms/acme",
    "client_id": "kubernetes",
    "username_claim": "preferred_username",
}


@pulumi.runtime.test
def test_scaleway_kapsule_trusts_the_issuer(mocks: Recorder) -> Coroutine[Any, Any, None]:
    cluster = GpuCluster("c", scaleway(oidc=OIDC))

    async def check() -> None:
        await common_checks(cluster, mocks)
        assert mocks.named("c-cluster").inputs["openIdConnectConfig"] == {
            "issuerUrl": "https://sso.fr-par-dc1.sovstack.internal/realms/acme",
            "clientId": "kubernetes",
            "usernameClaim": "preferred_username",
            "usernamePrefix": "oidc:",
            "groupsClaims": ["groups"],
            "groupsPrefix": "oidc:",
        }

    return check()


@pulumi.runtime.test
def test_scaleway_without_issuer_sends_no_oidc_config(mocks: Recorder) -> Coroutine[Any, Any, None]:
    cluster = GpuCluster("c", scaleway())

    async def check() -> None:
        await common_checks(cluster, mocks)
        assert "openIdConnectConfig" not in mocks.named("c-cluster").inputs

    return check()


@pulumi.runtime.test
def test_ovh_registers_kube_oidc_on_the_cluster(mocks: Recorder) -> Coroutine[Any, Any, None]:
    cluster = GpuCluster("c", ovh(oidc=OIDC))

    async def check() -> None:
        await common_checks(cluster, mocks)
        (oidc,) = mocks.of_type("ovh:CloudProject/kubeOidc:KubeOidc")
        assert oidc.name == "c-oidc"
        assert oidc.inputs == {
            "serviceName": "0123abcd",
            "kubeId": "c-cluster-id",
            "issuerUrl": "https://sso.fr-par-dc1.sovstack.internal/realms/acme",
            "clientId": "kubernetes",
            "oidcUsernameClaim": "preferred_username",
            "oidcUsernamePrefix": "oidc:",
            "oidcGroupsClaims": ["groups"],
            "oidcGroupsPrefix": "oidc:",
        }
        provider_ref = (
            f"{await cluster.cloud_provider.urn.future()}::{await cluster.cloud_provider.id.future()}"  # type: ignore[union-attr]
        )
        assert oidc.provider == provider_ref

    return check()


@pulumi.runtime.test
def test_ovh_without_issuer_registers_no_kube_oidc(mocks: Recorder) -> Coroutine[Any, Any, None]:
    cluster = GpuCluster("c", ovh())

    async def check() -> None:
        await common_checks(cluster, mocks)
        assert mocks.of_type("ovh:CloudProject/kubeOidc:KubeOidc") == []

    return check()


@pulumi.runtime.test
def test_talos_api_server_gets_the_oidc_flags(mocks: Recorder) -> Coroutine[Any, Any, None]:
    cluster = GpuCluster("c", talos(oidc=OIDC))

    async def check() -> None:
        await common_checks(cluster, mocks)
        calls = [a for token, a in mocks.calls if token == "talos:machine/getConfiguration:getConfiguration"]
        by_type = {a["machineType"]: a for a in calls}
        extra = json.loads(by_type["controlplane"]["configPatches"][0])["cluster"]["apiServer"]["extraArgs"]
        assert extra == {
            "audit-log-path": "/var/log/audit/kube/kube-apiserver.log",
            "oidc-issuer-url": "https://sso.fr-par-dc1.sovstack.internal/realms/acme",
            "oidc-client-id": "kubernetes",
            "oidc-username-claim": "preferred_username",
            "oidc-username-prefix": "oidc:",
            "oidc-groups-claim": "groups",
            "oidc-groups-prefix": "oidc:",
        }
        assert by_type["worker"]["configPatches"] == []

    return check()


def test_existing_cluster_notes_the_flags_to_set_by_hand() -> None:
    from sovstack.components.builders.gpu_cluster import describe_cluster

    notes = describe_cluster(existing(oidc=OIDC)).notes
    assert notes[-1] == (
        "OIDC: sovstack cannot configure an existing API server; add these flags (docs/identity.md): "
        "--oidc-issuer-url=https://sso.fr-par-dc1.sovstack.internal/realms/acme --oidc-client-id=kubernetes "
        "--oidc-username-claim=preferred_username --oidc-username-prefix=oidc: --oidc-groups-claim=groups "
        "--oidc-groups-prefix=oidc:"
    )


def test_a_plain_http_issuer_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'http://sso\.example/realms/acme' is not an https:// URL"):
        scaleway(oidc={**OIDC, "issuer_url": "http://sso.example/realms/acme"})
