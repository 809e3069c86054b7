"""The end-to-end harness: the real Pulumi CLI and Kubernetes provider, a loopback control plane, and
stack copies that run there.

Everything here belongs to the tests, nothing to the product: the transform that tells the
Kubernetes provider not to await readiness (no kubelet ever runs a pod here) is registered by the
program wrapper below, and `sovstack.infra.deploy.run` takes that wrapper as its `program`.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi import automation as auto

from sovstack.infra.deploy import POLICY_PACK, DeployOptions, run, select_stack
from sovstack.infra.pipeline import LoadedStack, load_stack
from sovstack.infra.program import main as program_main
from toolchain.build import Tool, binary_path, ensure, load_tools

ROOT = Path(__file__).resolve().parents[2]
CUSTOMER_KEY = "sovstack:customer"
KUBECONFIG_KEY = "sovstack:kubeconfig"
PASSPHRASE = "sovstack-e2e"
SKIP_AWAIT = "pulumi.com/skipAwait"


# ------------------------------------------------------------------------------------------ tools
def missing_tools() -> list[Tool]:
    return [tool for tool in load_tools().values() if binary_path(tool) is None]


def tool_paths(build_missing: bool) -> dict[str, Path]:
    """Every tool's binary; builds what is missing when asked (CI), else raises LookupError."""
    missing = missing_tools()
    if missing and not build_missing:
        names = ", ".join(t.name for t in missing)
        raise LookupError(f"e2e tools not built: {names}; run `make e2e-tools` (tens of minutes, once)")
    return ensure(quiet=True)


# ------------------------------------------------------------------------------------------ program
def skip_await(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """Annotate every Kubernetes object with pulumi.com/skipAwait: no pod ever becomes ready here.

    A Helm release is told not to wait for its workloads, and not to run its hooks (a hook Job, such
    as Envoy Gateway's certificate generator, never completes without a kubelet).
    """
    if args.type_ == "kubernetes:helm.sh/v3:Release" and isinstance(args.props, dict):
        return pulumi.ResourceTransformResult(
            props={**args.props, "skipAwait": True, "disableWebhooks": True}, opts=args.opts
        )
    if not args.type_.startswith("kubernetes:") or args.type_.startswith("kubernetes:helm"):
        return None
    props = args.props if isinstance(args.props, dict) else None
    metadata = props.get("metadata") if props else None
    if props is None or not isinstance(metadata, dict):
        return None
    annotations = dict(metadata.get("annotations") or {})
    annotations[SKIP_AWAIT] = "true"
    return pulumi.ResourceTransformResult(
        props={**props, "metadata": {**metadata, "annotations": annotations}}, opts=args.opts
    )


def e2e_program() -> None:
    """sovstack's own program, with the harness's transform registered first."""
    pulumi.runtime.register_resource_transform(skip_await)
    program_main()


# ------------------------------------------------------------------------------------------ pulumi
@dataclass
class PulumiEnv:
    """A private PULUMI_HOME with the built Kubernetes provider installed, and the CLI to drive."""

    home: Path
    bin_dir: Path
    command: auto.PulumiCommand
    env: dict[str, str] = field(default_factory=dict)
    policy_pack: Path | None = None


def pulumi_env(workdir: Path, tools: dict[str, Path]) -> PulumiEnv:
    home = workdir / "pulumi-home"
    bin_dir = workdir / "bin"
    home.mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "PULUMI_HOME": str(home),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_CONFIRMATIONS": "true",
        "PATH": f"{bin_dir}{os.pathsep}{tools['pulumi'].parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = auto.PulumiCommand(root=str(tools["pulumi"].parent.parent), skip_version_check=True)
    version = load_tools()["pulumi-resource-kubernetes"].version.removeprefix("v")
    import subprocess

    subprocess.run(
        [
            str(tools["pulumi"]),
            "plugin",
            "install",
            "resource",
            "kubernetes",
            version,
            "--file",
            str(tools["pulumi-resource-kubernetes"]),
        ],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return PulumiEnv(home, bin_dir, command, env, POLICY_PACK)


# ------------------------------------------------------------------------------------------ stacks
def example_customer(name: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text(encoding="utf-8"))
    return copy.deepcopy(document["config"][CUSTOMER_KEY])


#: The operator site a copy of each example moves to when switched to the `existing` backend.
SITE_OF_PROFILE = {
    "eu": "fr-par-dc1",
    "fr-sovereign": "fr-par-dc1",
    "se-sovereign": "se-sto-dc1",
    "airgapped": "fr-par-dc1",
}
SITE_NET = {"fr-par-dc1": "10.50", "se-sto-dc1": "10.40"}
#: GPUs the catalogued sites offer instead of a cloud-only type of the same memory.
SITE_GPU = {"H100": "H100-SXM"}


def as_existing(customer: dict[str, Any]) -> dict[str, Any]:
    """A copy of an example moved to a cluster the operator brings (`existing`) at its own site.

    Pools keep their GPUs (a cloud-only type becomes the site's equivalent), one labelled node per pool
    node; the audit trail moves to the site's object storage (`existing` bucket, since the MinIO
    provider is not built here); the state backend is left for the harness to set.
    """
    spec = copy.deepcopy(customer)
    cluster = spec["cluster"]
    if cluster["provider"] == "existing":
        return spec
    site = SITE_OF_PROFILE[spec["residency"].get("profile", "eu")]
    zone = f"{site}-a"
    net = SITE_NET[site]
    for key in ("region", "systemPool", "scaleway", "ovh", "talos"):
        cluster.pop(key, None)
    cluster.update(provider="existing", site=site)
    cluster["kubernetesVersion"] = ".".join(str(cluster.get("kubernetesVersion", "1.33")).split(".")[:2])
    nodes = []
    for pool in cluster["gpuPools"]:
        pool.pop("nodeType", None)
        pool["gpuType"] = SITE_GPU.get(pool["gpuType"], pool["gpuType"])
        pool["zones"] = [zone]
        for i in range(1, int(pool.get("maxNodes", 1)) + 1):
            nodes.append(
                {
                    "name": f"{pool['name']}-{i}",
                    "address": f"{net}.1.{len(nodes) + 11}",
                    "role": "worker",
                    "zone": zone,
                    "pool": pool["name"],
                    "gpuType": pool["gpuType"],
                    "gpuCount": pool.get("gpusPerNode", 1),
                }
            )
    cluster["existing"] = {"nodes": nodes}
    storage = f"s3.{site}.sovstack.internal"
    audit = spec["audit"]
    audit.pop("region", None)
    audit.update(backend="existing", endpoint=f"https://{storage}")
    network = spec.setdefault("network", {})
    egress = network.setdefault("egress", [])
    if not any(e["host"] == storage for e in egress):
        egress.append({"name": f"s3-{site}", "host": storage, "cidrs": [f"{net}.8.0/24"], "ports": [443]})
    network["apiServerCidrs"] = [f"{net}.0.0/24"]
    return spec


#: Chart values that only this control plane needs: no pod runs here, so no webhook server answers;
#: the API server would refuse every object a validating webhook covers.
NO_WEBHOOKS = {
    "external-secrets": {
        "webhook": {"create": False},
        "certController": {"create": False},
        "crds": {"conversion": {"enabled": False}},
    },
    "keda": {"webhooks": {"enabled": False}},
}


def with_chart_mirror(customer: dict[str, Any], mirror: str) -> dict[str, Any]:
    """The stack pulling its platform charts from the loopback mirror (allowed by its policy)."""
    spec = copy.deepcopy(customer)
    platform = spec.setdefault("platform", {})
    platform["chartRepository"] = mirror
    values = platform.setdefault("values", {})
    for chart, extra in NO_WEBHOOKS.items():
        values[chart] = {**values.get(chart, {}), **extra}
    residency = spec["residency"]
    if "policy" in residency:
        policy = residency["policy"]
        policy["allowedChartRepositories"] = [*policy.get("allowedChartRepositories", []), mirror]
    else:
        from sovstack.components.residency import load_profiles

        base = load_profiles()[residency["profile"]].allowed_chart_repositories
        overrides = residency.setdefault("overrides", {})
        overrides["allowedChartRepositories"] = [*overrides.get("allowedChartRepositories", base), mirror]
    return spec


@dataclass
class E2EStack:
    """A stack copy in its own project folder, deployed through `sovstack.infra.deploy`."""

    name: str
    project: Path
    plane_kubeconfig: Path
    pulumi: PulumiEnv
    customer: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.project / "stacks" / f"Pulumi.{self.name}.yaml"

    def write(self, customer: dict[str, Any] | None = None) -> LoadedStack:
        """Write the customer spec into the stack file (keeping the encrypted config) and load it."""
        if customer is not None:
            self.customer = customer
        document: dict[str, Any] = {"config": {}}
        if self.path.exists():
            document = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {"config": {}}
        document.setdefault("config", {})[CUSTOMER_KEY] = self.customer
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return load_stack(self.path)

    def options(self, **overrides: Any) -> DeployOptions:
        self.events = []

        def record(event: auto.EngineEvent) -> None:
            pre = event.resource_pre_event
            if pre is not None and pre.metadata is not None:
                self.events.append(
                    {"op": str(pre.metadata.op.value), "urn": pre.metadata.urn, "type": pre.metadata.type}
                )

        settings: dict[str, Any] = {
            "program": e2e_program,
            "env": dict(self.pulumi.env),
            "pulumi_command": self.pulumi.command,
            "on_output": None,
            "color": "never",
            "on_event": record,
            "policy_pack": str(self.pulumi.policy_pack),
        }
        settings.update(overrides)
        return DeployOptions(**settings)

    def run(self, operation: str, **overrides: Any) -> Any:
        loaded = load_stack(self.path)
        options = self.options(**overrides)
        stack = select_stack(loaded, options)
        stack.set_config(
            KUBECONFIG_KEY, auto.ConfigValue(value=self.plane_kubeconfig.read_text(), secret=True)
        )
        # Test stacks copied from the examples may keep their placeholders: a demonstration deployment.
        stack.set_config("sovstack:demo", auto.ConfigValue(value="true"))
        return run(loaded, operation, options)

    def ops(self) -> dict[str, set[str]]:
        """What the last operation did to each resource: op -> types."""
        found: dict[str, set[str]] = {}
        for event in self.events:
            found.setdefault(event["op"], set()).add(event["type"])
        return found

    def changed(self) -> list[tuple[str, str]]:
        """(op, urn) of every step that was not `same`."""
        return sorted((e["op"], e["urn"]) for e in self.events if e["op"] not in ("same", "read", "refresh"))


def new_stack(
    name: str, customer: dict[str, Any], workdir: Path, pulumi: PulumiEnv, kubeconfig: Path
) -> E2EStack:
    project = workdir / f"project-{name}"
    (project / "stacks").mkdir(parents=True, exist_ok=True)
    (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    if not (project / "infra").exists():  # the project's `main: infra/`, as in a clone
        (project / "infra").symlink_to(ROOT / "infra", target_is_directory=True)
    state = workdir / f"state-{name}"
    state.mkdir(exist_ok=True)
    spec = copy.deepcopy(customer)
    spec["state"] = {"backendUrl": f"file://{state}", "secretsProvider": "passphrase"}
    stack = E2EStack(name, project, kubeconfig, pulumi, spec)
    stack.write()
    return stack


def nodes_for(customer: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Node objects for an existing cluster's declared nodes (kubelets register them in a real one)."""
    for node in customer["cluster"].get("existing", {}).get("nodes", []):
        yield {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node["name"], "labels": {"kubernetes.io/hostname": node["name"]}},
            "status": {"capacity": {"nvidia.com/gpu": str(node.get("gpuCount", 0))}},
        }


def json_of(run: Callable[..., Any], *args: str) -> Any:
    return json.loads(run(*args, "-o", "json").stdout)
