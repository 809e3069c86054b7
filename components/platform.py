"""`Platform` (Pulumi shell): the operators and CRDs the workloads stand on, installed and owned.

The builder (`components/builders/platform.py`) decides which pinned charts the stack needs and
describes the namespaces, network policies and custom resources around them; this component
registers them with the cluster's Kubernetes provider, in order: namespaces, then each Helm release,
then the custom resources its CRDs define. Consumers depend on `ready`, never on the children.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from sovstack.components.builders.platform import (
    GPU_OPERATOR,
    PlatformArgs,
    PlatformDescription,
    Release,
    describe_platform,
    release_name,
)
from sovstack.components.kube import Manifest
from sovstack.components.kubernetes_objects import register_objects

TYPE_TOKEN = "sovstack:platform:Platform"


@dataclass(frozen=True)
class MovedFrom:
    """Where the GPU Operator was installed before the platform layer existed: GpuCluster `name`."""

    parent: pulumi.Resource
    name: str


@dataclass
class PlatformReadiness:
    """What a consumer waits for, by need; each a list to put in `depends_on`."""

    #: The release that defines each CRD the platform installs, by `group/Kind`.
    crds: dict[str, list[pulumi.Resource]] = field(default_factory=dict)
    #: The GPU Operator's release, where sovstack installs it (GPU pods need its device plugin).
    gpu_operator: list[pulumi.Resource] = field(default_factory=list)
    #: External Secrets and the ClusterSecretStore (ExternalSecrets need both).
    secret_store: list[pulumi.Resource] = field(default_factory=list)

    def for_objects(self, objects: list[Manifest]) -> list[pulumi.Resource]:
        """Everything the given objects' kinds need to exist first (their CRDs' releases)."""
        needed: list[pulumi.Resource] = []
        for obj in objects:
            group = str(obj["apiVersion"]).rpartition("/")[0]
            for resource in self.crds.get(f"{group}/{obj['kind']}", []):
                if resource not in needed:
                    needed.append(resource)
        return needed


class Platform(pulumi.ComponentResource):
    """The platform layer of one cluster. Attributes: `description`, `releases` (key -> Release),
    `objects` (namespaces, policies, custom resources), `ready` (PlatformReadiness)."""

    def __init__(
        self,
        name: str,
        args: PlatformArgs,
        *,
        provider: k8s.Provider | None,
        nodes: list[pulumi.Resource] | None = None,
        moved_from: MovedFrom | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`nodes`: what must exist before operators are installed (the GPU pools). `moved_from`: the
        GpuCluster that installed the GPU Operator before the platform layer did (aliases keep its
        release and namespace from being replaced)."""
        description = describe_platform(args)  # refuses bad args before anything is registered
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.description: PlatformDescription = description
        self.ready = PlatformReadiness()
        self.releases: dict[str, k8s.helm.v3.Release] = {}
        self.objects: list[pulumi.CustomResource] = []
        custom = [o for o in description.kubernetes_objects if _object_key(o) in description.defined_by]
        plain = [o for o in description.kubernetes_objects if _object_key(o) not in description.defined_by]
        moved = moved_from
        self.objects += register_objects(
            plain,
            owner=name,
            parent=self,
            provider=provider,
            depends_on=list(nodes or []),
            moved_from={"gpu-operator": moved.parent} if moved is not None else None,
        )
        namespaces = {
            str(o["metadata"]["name"]): r
            for o, r in zip(plain, self.objects, strict=True)
            if o["kind"] == "Namespace"
        }
        for release in description.releases:
            resource = self._release(name, release, provider, namespaces, nodes or [], moved)
            self.releases[release.key] = resource
            for crd in release.crds:
                self.ready.crds.setdefault(crd, []).append(resource)
        if GPU_OPERATOR in self.releases:
            self.ready.gpu_operator = [self.releases[GPU_OPERATOR]]
        for obj in custom:
            owner_release = self.releases[description.defined_by[_object_key(obj)]]
            registered = register_objects(
                [obj], owner=name, parent=self, provider=provider, depends_on=[owner_release]
            )
            self.objects += registered
            if obj["kind"] == "ClusterSecretStore":
                self.ready.secret_store = [owner_release, *registered]
        self.register_outputs(
            {
                "releases": {
                    key: f"{r.chart}@{r.version}" for key, r in ((r.key, r) for r in description.releases)
                },
                "images": list(description.images),
            }
        )

    def _release(
        self,
        name: str,
        release: Release,
        provider: k8s.Provider | None,
        namespaces: dict[str, pulumi.CustomResource],
        nodes: list[pulumi.Resource],
        moved: MovedFrom | None,
    ) -> k8s.helm.v3.Release:
        aliases: list[pulumi.Input[pulumi.Alias]] = []
        if release.key == GPU_OPERATOR and moved is not None:
            # Installed by GpuCluster (as `<cluster>-gpu-operator`) before the platform layer existed.
            aliases.append(pulumi.Alias(name=f"{moved.name}-gpu-operator", parent=moved.parent))
        if release.repository.startswith("oci://"):
            chart, repository_opts = f"{release.repository}/{release.chart}", None
        else:
            chart, repository_opts = release.chart, k8s.helm.v3.RepositoryOptsArgs(repo=release.repository)
        depends = [*nodes]
        if release.namespace in namespaces:
            depends.append(namespaces[release.namespace])
        return k8s.helm.v3.Release(
            release_name(name, release.key),
            name=release.name,
            chart=chart,
            version=release.version,
            repository_opts=repository_opts,
            namespace=release.namespace,
            create_namespace=False,
            values=release.values,
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=depends, aliases=aliases),
        )


def _object_key(obj: Manifest) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])
