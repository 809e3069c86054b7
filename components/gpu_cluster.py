"""GpuCluster: a region-bound Kubernetes cluster with GPU pools on Scaleway, OVHcloud, Talos or an existing cluster.

The pure builder (`components/builders/gpu_cluster.py`) validates the args and describes every resource with
its logical name and static inputs; this shell registers exactly those, adding the references between them.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from sovstack.components.builders.gpu_cluster import (
    describe_cluster,
    talos_controlplane_patch,
    talos_gpu_installer,
    talos_machine_patch,
)
from sovstack.components.builders.gpu_cluster_args import GpuClusterArgs, TalosMachine
from sovstack.components.kube import dns_name

TYPE_TOKEN = "sovstack:cluster:GpuCluster"


def _machine_patch(args: GpuClusterArgs, machine: TalosMachine, installer: str) -> str:
    return json.dumps(talos_machine_patch(args, machine, installer), sort_keys=True)


class GpuCluster(pulumi.ComponentResource):
    """A Kubernetes cluster whose GPU nodes carry sovstack's pool, zone and GPU labels and the GPU taint.

    Attributes: `kubeconfig` (secret Output[str]), `provider` (the cluster's Kubernetes provider, named
    `<name>-k8s`), `cloud_provider` (the explicit Scaleway, OVHcloud or Talos provider every cloud
    resource of the cluster uses, configured for its region; None for `existing`), `region`, `zones`,
    `gpu_pools` (pool sizes for serving), `description`, `resources` (logical name -> child), `nodes`
    (what must exist before operators are installed: the pools, the node label patches).
    """

    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(
        self,
        name: str,
        args: GpuClusterArgs,
        *,
        kubeconfig: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # Everything is checked before super().__init__ registers the component: bad args register nothing.
        description = describe_cluster(args, name=name)
        if (args.backend == "existing") != (kubeconfig is not None):
            raise ValueError("kubeconfig: required for the existing backend and only there")
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.args = args
        self.description = description
        self.region = args.region
        self.zones = list(description.zones)
        self.gpu_pools = description.gpu_pools
        self.resources: dict[str, pulumi.CustomResource] = {}
        self._by_name = {r["name"]: r for r in description.resources}
        self._pools: list[pulumi.Resource] = []
        self._prefix = name
        self.cloud_provider = self._cloud_provider(name)

        backends = {"scaleway": self._scaleway, "ovh": self._ovh, "talos": self._talos}
        raw = backends[args.backend]() if args.backend in backends else kubeconfig
        assert raw is not None
        self.kubeconfig = pulumi.Output.secret(raw)
        context = args.existing.context if args.existing else None
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            context=context,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.node_patches = [
            k8s.core.v1.NodePatch(
                f"{name}-node-{patch['name']}",
                metadata={"name": patch["name"], "labels": patch["labels"]},
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
            )
            for patch in description.node_label_patches
        ]
        self.nodes: list[pulumi.Resource] = [*self._pools, *self.node_patches]
        self.register_outputs(
            {
                "kubeconfig": self.kubeconfig,
                "region": self.region,
                "zones": self.zones,
                "gpuPools": self.gpu_pools,
            }
        )

    # ------------------------------------------------------------------------------------ helpers
    def _opts(self, resource: dict[str, Any], **extra: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=self,
            provider=self.cloud_provider,
            protect=resource["protect"],
            ignore_changes=resource.get("ignoreChanges"),
            **extra,
        )

    def _cloud_provider(self, name: str) -> pulumi.ProviderResource | None:
        """One explicit provider per cluster, set to its region: no resource falls back to a default
        provider configured elsewhere (environment, another stack's config)."""
        args, opts = self.args, pulumi.ResourceOptions(parent=self)
        if args.backend == "scaleway":
            import pulumiverse_scaleway as scw

            options = args.scaleway
            project = options.project_id if options else None
            zone = next((r["zone"] for r in self.description.resources if r.get("zone")), None)
            return scw.Provider(
                f"{name}-scaleway", region=args.region, zone=zone, project_id=project, opts=opts
            )
        if args.backend == "ovh":
            import pulumi_ovh as ovh

            return ovh.Provider(f"{name}-ovh", endpoint="ovh-eu", opts=opts)
        if args.backend == "talos":
            import pulumiverse_talos as talos

            return talos.Provider(f"{name}-talos", opts=opts)
        return None

    def _add(self, cls: Any, logical: str, *, options: dict[str, Any] | None = None, **refs: Any) -> Any:
        """Register the described resource `logical` with its static inputs plus `refs`."""
        resource = self._by_name[logical]
        inputs = {**resource["inputs"], **refs}
        child = cls(logical, **inputs, opts=self._opts(resource, **(options or {})))
        self.resources[logical] = child
        return child

    def _of_type(self, typ: str) -> list[str]:
        return [r["name"] for r in self.description.resources if r["type"] == typ]

    # ----------------------------------------------------------------------------------- backends
    def _scaleway(self) -> pulumi.Output[str]:
        import pulumiverse_scaleway as scw

        n = self._prefix
        vpc = self._add(scw.network.Vpc, f"{n}-vpc")
        pn = self._add(scw.network.PrivateNetwork, f"{n}-pn", vpc_id=vpc.id)
        ip = self._add(scw.network.PublicGatewayIp, f"{n}-gw-ip")
        gateway = self._add(scw.network.PublicGateway, f"{n}-gw", ip_id=ip.id)
        attach = self._add(
            scw.network.GatewayNetwork, f"{n}-gw-pn", gateway_id=gateway.id, private_network_id=pn.id
        )
        cluster = self._add(
            scw.kubernetes.Cluster, f"{n}-cluster", private_network_id=pn.id, options={"depends_on": [attach]}
        )
        # Nodes leave through the gateway: its IP must pass the ACL too.
        declared = self._by_name[f"{n}-acl"]["inputs"]["acl_rules"]
        gateway_rule = ip.address.apply(
            lambda address: {"ip": f"{address}/32", "description": "public gateway"}
        )
        self._add(scw.kubernetes.Acl, f"{n}-acl", cluster_id=cluster.id, acl_rules=[*declared, gateway_rule])
        for logical in self._of_type("scaleway:kubernetes/pool:Pool"):
            self._pools.append(self._add(scw.kubernetes.Pool, logical, cluster_id=cluster.id))
        return cluster.kubeconfigs.apply(lambda configs: configs[0].config_file)

    def _ovh(self) -> pulumi.Output[str]:
        import pulumi_ovh as ovh

        n, region = self._prefix, self.args.region
        network = self._add(ovh.cloudproject.NetworkPrivate, f"{n}-network")
        openstack_id = network.regions_openstack_ids.apply(lambda ids: ids[region])
        subnet = self._add(ovh.cloudproject.NetworkPrivateSubnetV2, f"{n}-subnet", network_id=openstack_id)
        kube = self._add(
            ovh.cloudproject.Kube, f"{n}-cluster", private_network_id=openstack_id, nodes_subnet_id=subnet.id
        )
        self._add(ovh.cloudproject.KubeIpRestrictions, f"{n}-api-ips", kube_id=kube.id)
        if f"{n}-oidc" in self._by_name:  # the customer's OpenID Connect issuer for the API server
            self._add(ovh.cloudproject.KubeOidc, f"{n}-oidc", kube_id=kube.id)
        for logical in self._of_type("ovh:CloudProject/kubeNodePool:KubeNodePool"):
            self._pools.append(self._add(ovh.cloudproject.KubeNodePool, logical, kube_id=kube.id))
        return kube.kubeconfig

    def _talos(self) -> pulumi.Output[str]:
        import pulumiverse_talos as talos

        args, n = self.args, self._prefix
        options = args.talos
        assert options is not None
        secrets = self._add(talos.machine.Secrets, f"{n}-secrets")
        installer: pulumi.Input[str] = talos_gpu_installer(args)
        if f"{n}-schematic" in self._by_name:
            schematic = self._add(talos.imagefactory.Schematic, f"{n}-schematic")
            installer = schematic.id.apply(lambda sid: talos_gpu_installer(args, sid))
        configs = {
            role: talos.machine.get_configuration_output(
                cluster_name=dns_name(args.customer),
                cluster_endpoint=options.cluster_endpoint,
                machine_type=role,
                machine_secrets=secrets.machine_secrets,
                kubernetes_version=args.kubernetes_version,
                talos_version=options.talos_version,
                config_patches=[json.dumps(talos_controlplane_patch(args), sort_keys=True)]
                if role == "controlplane"
                else [],
                opts=pulumi.InvokeOutputOptions(parent=self, provider=self.cloud_provider),
            ).machine_configuration
            for role in ("controlplane", "worker")
        }
        control_planes: list[pulumi.Resource] = []
        for machine in options.machines:
            patch = pulumi.Output.from_input(installer).apply(partial(_machine_patch, args, machine))
            applied = self._add(
                talos.machine.ConfigurationApply,
                f"{n}-apply-{machine.name}",
                client_configuration=secrets.client_configuration,
                machine_configuration_input=configs[machine.role],
                config_patches=[patch],
            )
            (control_planes if machine.role == "controlplane" else self._pools).append(applied)
        client = secrets.client_configuration
        bootstrap = self._add(
            talos.machine.Bootstrap,
            f"{n}-bootstrap",
            client_configuration=client,
            options={"depends_on": control_planes},
        )
        credentials = client.apply(
            lambda c: {
                "ca_certificate": c.ca_certificate,
                "client_certificate": c.client_certificate,
                "client_key": c.client_key,
            }
        )
        # Nothing reads the cluster before Talos reports every machine and Kubernetes healthy: the
        # platform's charts would otherwise race a control plane that is still coming up.
        addresses = {
            role: [m.address for m in options.machines if m.role == role]
            for role in ("controlplane", "worker")
        }
        health = talos.cluster.get_health_output(
            client_configuration=credentials,
            control_plane_nodes=addresses["controlplane"],
            worker_nodes=addresses["worker"],
            endpoints=addresses["controlplane"],
            opts=pulumi.InvokeOutputOptions(
                parent=self, provider=self.cloud_provider, depends_on=[bootstrap]
            ),
        )
        kubeconfig = self._add(
            talos.cluster.Kubeconfig,
            f"{n}-kubeconfig",
            client_configuration=pulumi.Output.all(health, credentials).apply(lambda both: both[1]),
            options={"depends_on": [bootstrap]},
        )
        return kubeconfig.kubeconfig_raw
