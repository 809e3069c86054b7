"""Pulumi's mock runtime, as every Pulumi test in this suite uses it (see CONVENTIONS.md for its traps)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi

from sovstack.infra.plan import TransformingMonitor

FAKE_KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nclusters:\n- name: mock\n  cluster:\n    server: https://10.0.0.1:6443\n"
    "contexts:\n- name: mock\n  context: {cluster: mock, user: mock}\ncurrent-context: mock\n"
    "users:\n- name: mock\n  user: {token: mock-token}\n"
)

#: Outputs the mock engine returns per resource type, for outputs that are not inputs.
FAKE_OUTPUTS: dict[str, dict[str, Any]] = {
    "scaleway:kubernetes/cluster:Cluster": {
        "kubeconfigs": [{"configFile": FAKE_KUBECONFIG, "host": "https://mock", "clusterCaCertificate": "x"}],
        "apiserverUrl": "https://mock.api.k8s.fr-par.scw.cloud:6443",
    },
    "ovh:CloudProject/kube:Kube": {"kubeconfig": FAKE_KUBECONFIG, "url": "mock.c1.gra11.k8s.ovh.net"},
    # GpuCluster: the gateway IP goes into the Kapsule ACL; the per-region OpenStack id feeds the subnet and Kube.
    "scaleway:network/publicGatewayIp:PublicGatewayIp": {"address": "51.15.0.10"},
    "ovh:CloudProject/networkPrivate:NetworkPrivate": {
        "regionsOpenstackIds": {"GRA11": "mock-openstack-gra11", "EU-WEST-PAR": "mock-openstack-eu-west-par"}
    },
    "talos:cluster/kubeconfig:Kubeconfig": {"kubeconfigRaw": FAKE_KUBECONFIG},
    "talos:machine/secrets:Secrets": {
        "clientConfiguration": {"caCertificate": "ca", "clientCertificate": "cert", "clientKey": "key"},
        "machineSecrets": {},
    },
}


@dataclass
class Registered:
    """One resource the program registered, as the mock engine saw it."""

    typ: str
    name: str
    inputs: dict[str, Any]
    provider: str | None
    resource_id: str | None
    custom: bool
    urn: str = ""


@dataclass
class Recorder(pulumi.runtime.Mocks):
    resources: list[Registered] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(
            Registered(args.typ, args.name, dict(args.inputs), args.provider, args.resource_id, args.custom)
        )
        return f"{args.name}-id", {**args.inputs, **FAKE_OUTPUTS.get(args.typ, {})}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "talos:machine/getConfiguration:getConfiguration":
            return {"machineConfiguration": json.dumps({"machine": {"type": args.args.get("machineType")}})}
        if args.token == "talos:client/getConfiguration:getConfiguration":
            return {"talosConfig": "context: mock"}
        return {}

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, name: str) -> Registered:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name!r}, got {len(matches)}"
        return matches[0]


def start_mocks(config: dict[str, str] | None = None) -> Iterator[Recorder]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.settings.reset_options()
    recorder = Recorder()
    # The stack's resource transforms run as under the engine (the SDK's mock monitor skips them).
    monitor = TransformingMonitor(recorder)
    pulumi.runtime.set_mocks(recorder, project="sovstack", stack="test", preview=False, monitor=monitor)
    if config:
        pulumi.runtime.set_all_config(config)
    try:
        yield recorder
    finally:
        pulumi.runtime.settings.reset_options()
        pulumi.runtime.set_all_config({})
        loop.close()
        asyncio.set_event_loop(None)
