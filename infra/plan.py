"""`sovstack plan`: run the real Pulumi program (infra/__main__.py) under Pulumi's mock engine.

Offline, with no CLI and no credentials: every resource `pulumi up` would register, with its URN,
type, name, parent, provider and inputs. Secret values are replaced by `[secret]`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from sovstack.infra.pipeline import LoadedStack
from sovstack.infra.program import STACK_FILE_KEY, ProgramError
from sovstack.infra.stackfile import CUSTOMER_KEY

PROGRAM = Path(__file__).with_name("__main__.py")
SECRET = "[secret]"
#: Pulumi marks a serialized secret with this signature key (sdk/python/lib/pulumi/runtime/rpc.py).
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270"


class PlanError(Exception):
    """The program refused the stack (exit 1 for residency, 2 for invalid input) or failed."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class PlannedResource:
    urn: str
    type: str
    name: str
    parent: str
    provider: str
    custom: bool
    inputs: dict[str, Any]
    protect: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    #: URNs this resource waits for: depends_on and the resources its inputs come from.
    depends_on: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "protect": self.protect,
            "ignoreChanges": self.ignore_changes,
            "dependsOn": self.depends_on,
            "name": self.name,
            "parent": self.parent,
            "provider": self.provider,
            "custom": self.custom,
            "inputs": self.inputs,
        }


@dataclass
class PlanResult:
    stack: str
    resources: list[PlannedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    placeholders: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "resources": [r.to_dict() for r in self.resources],
            "outputs": self.outputs,
            "placeholders": self.placeholders,
            "summary": self.summary(),
        }

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.resources:
            counts[r.type] = counts.get(r.type, 0) + 1
        return dict(sorted(counts.items()))

    def custom_resources(self) -> list[PlannedResource]:
        return [r for r in self.resources if r.custom]


def redact(value: Any) -> Any:
    """Replace every secret-wrapped value with `[secret]`, recursively."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE:
            return SECRET
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class _Mocks(pulumi.runtime.Mocks):
    """Echo inputs back as outputs, plus the few outputs a real provider computes that we read."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        return f"{args.name}-id", {**args.inputs, **_computed_outputs(args.typ, args.inputs)}

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        if args.token == "talos:machine/getConfiguration:getConfiguration":
            return {"machineConfiguration": f"# machine configuration ({args.args.get('machineType')})"}
        if args.token == "talos:client/getConfiguration:getConfiguration":
            return {"talosConfig": "context: plan"}
        return {}


PLACEHOLDER_KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nclusters:\n- name: plan\n  cluster: {server: 'https://plan.invalid:6443'}\n"
    "contexts:\n- name: plan\n  context: {cluster: plan, user: plan}\ncurrent-context: plan\n"
    "users:\n- name: plan\n  user: {token: plan}\n"
)


def _computed_outputs(typ: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs a provider computes that the program reads (placeholders, never real values)."""
    if typ == "scaleway:network/publicGatewayIp:PublicGatewayIp":
        return {"address": "192.0.2.10"}
    if typ == "ovh:CloudProject/networkPrivate:NetworkPrivate":
        return {"regionsOpenstackIds": {r: f"plan-openstack-{r.lower()}" for r in inputs.get("regions", [])}}
    if typ == "scaleway:kubernetes/cluster:Cluster":
        return {"kubeconfigs": [{"configFile": PLACEHOLDER_KUBECONFIG, "host": "https://plan.invalid"}]}
    if typ == "ovh:CloudProject/kube:Kube":
        return {"kubeconfig": PLACEHOLDER_KUBECONFIG}
    if typ == "talos:cluster/kubeconfig:Kubeconfig":
        return {"kubeconfigRaw": PLACEHOLDER_KUBECONFIG}
    if typ == "talos:machine/secrets:Secrets":
        return {"clientConfiguration": {"caCertificate": "ca", "clientCertificate": "c", "clientKey": "k"}}
    return {}


class TransformingMonitor(pulumi_mocks.MockMonitor):
    """Pulumi's mock monitor, running the stack's resource transforms as the engine does.

    The SDK's mock monitor records `register_resource_transform` callbacks but never calls them, so
    a program's guard (infra/program.py `residency_guard`) would pass anything under mocks. This one
    calls each with the resource's type, name and inputs before registering it: a transform that
    raises fails the registration, and so the program, as it does under `pulumi up`.
    """

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        transforms = self.get_registered_transforms()
        if transforms and request.type != "pulumi:pulumi:Stack":
            props = pulumi.runtime.rpc.deserialize_properties(request.object)
            for transform in transforms:
                args = pulumi.ResourceTransformArgs(
                    custom=bool(request.custom),
                    type_=request.type,
                    name=request.name,
                    props=props,
                    opts=pulumi.ResourceOptions(),
                )
                result = transform(args)
                if inspect.isawaitable(result):
                    result = _sync_await(result)
        return super().RegisterResource(request)


class _Monitor(TransformingMonitor):
    """Records parent and provider of every registration, which MockResourceArgs does not carry."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[PlannedResource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = pulumi.runtime.rpc.deserialize_properties(request.object)
            self.recorded.append(
                PlannedResource(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    provider=request.provider,
                    custom=bool(request.custom),
                    inputs=redact(inputs),
                    protect=bool(request.protect),
                    ignore_changes=sorted(request.ignoreChanges),
                    depends_on=sorted(set(request.dependencies)),
                )
            )
        return response


def stack_config(loaded: LoadedStack) -> tuple[dict[str, str], list[str], list[str]]:
    """Config for the mock engine: values as Pulumi passes them; secure values become `[secret]`."""
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in loaded.config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = SECRET
            secret_keys.append(key)
        elif isinstance(value, str):
            config[key] = value
        else:
            config[key] = json.dumps(value)
    placeholders: list[str] = []
    existing = loaded.spec.cluster.existing
    if loaded.spec.cluster.provider == "existing":
        key = existing.kubeconfig_key if existing else "sovstack:kubeconfig"
        if key not in config:
            config[key] = PLACEHOLDER_KUBECONFIG
            secret_keys.append(key)
            placeholders.append(key)
    config[CUSTOMER_KEY] = json.dumps(loaded.config[CUSTOMER_KEY])
    config[STACK_FILE_KEY] = str(loaded.path)
    return config, secret_keys, placeholders


def run_plan(loaded: LoadedStack) -> PlanResult:
    """Run infra/__main__.py for `loaded` under mocks; PlanError when the program refuses it."""
    config, secret_keys, placeholders = stack_config(loaded)
    loop = asyncio.new_event_loop()
    # A refused program leaves registrations pending; their noise is not the user's business.
    loop.set_exception_handler(lambda _loop, _context: None)
    asyncio.set_event_loop(loop)
    pulumi.runtime.settings.reset_options()
    mocks = _Mocks()
    monitor = _Monitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="sovstack", stack=loaded.name, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys)
    try:
        _sync_await(run_pulumi_func(_run_program))
        outputs = _stack_outputs()
    except ProgramError as err:
        raise PlanError(str(err), err.exit_code) from None
    except Exception as err:
        cause = err.__cause__ if isinstance(err.__cause__, ProgramError) else None
        if cause is not None:
            raise PlanError(str(cause), cause.exit_code) from None
        raise PlanError(f"the program failed: {type(err).__name__}: {err}", 3) from None
    finally:
        pulumi.runtime.settings.reset_options()
        pulumi.runtime.set_all_config({})
        loop.close()
        asyncio.set_event_loop(None)
    return PlanResult(loaded.name, _tree_order(monitor.recorded), outputs, placeholders)


def _tree_order(resources: list[PlannedResource]) -> list[PlannedResource]:
    """Parents before their children, siblings by type and name.

    Registration order follows when each resource's inputs resolve and varies from run to run; a
    plan must read (and diff) the same every time.
    """
    children: dict[str, list[PlannedResource]] = {}
    for r in resources:
        children.setdefault(r.parent, []).append(r)
    urns = {r.urn for r in resources}
    ordered: list[PlannedResource] = []

    def visit(parent: str) -> None:
        for child in sorted(children.get(parent, []), key=lambda r: (r.type, r.name)):
            ordered.append(child)
            visit(child.urn)

    for root in sorted({r.parent for r in resources if r.parent not in urns}):
        visit(root)
    return ordered


def _run_program() -> None:
    runpy.run_path(str(PROGRAM), run_name="__main__")


def _stack_outputs() -> dict[str, Any]:
    root = pulumi.runtime.settings.get_root_resource()
    outputs = getattr(root, "outputs", {}) or {}
    resolved: dict[str, Any] = {}
    for key in sorted(outputs):
        value = outputs[key]
        output = pulumi.Output.from_input(value)
        is_secret = _sync_await(output.is_secret())
        resolved[key] = SECRET if is_secret else redact(_sync_await(output.future()))
    return resolved


HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"


def traffic_splits(result: PlanResult) -> dict[str, str]:
    """Each HTTPRoute with weighted backends (a rollout): `ns/name` -> `stable-svc 90%, canary-svc 10%`."""
    splits: dict[str, str] = {}
    for r in result.resources:
        if r.type != HTTP_ROUTE:
            continue
        meta = r.inputs.get("metadata", {})
        for rule in r.inputs.get("spec", {}).get("rules", []):
            refs = rule.get("backendRefs", [])
            if any("weight" in ref for ref in refs):
                total = sum(int(ref.get("weight", 1)) for ref in refs) or 1
                splits[f"{meta.get('namespace')}/{meta.get('name')}"] = ", ".join(
                    f"{ref['name']} {round(100 * int(ref.get('weight', 1)) / total)}%" for ref in refs
                )
    return splits


def format_plan(result: PlanResult) -> str:
    lines = [f"Plan for stack {result.stack}: {len(result.resources)} resources (mock engine, offline)"]
    for r in result.resources:
        kind = "" if r.custom else " (component)"
        lines.append(f"  + {r.type}  {r.name}{kind}")
        lines.append(f"      urn: {r.urn}")
        if r.parent:
            lines.append(f"      parent: {r.parent}")
        if r.provider:
            lines.append(f"      provider: {r.provider}")
        if r.inputs:
            rendered = json.dumps(r.inputs, sort_keys=True)
            lines.append(f"      inputs: {rendered if len(rendered) < 400 else rendered[:397] + '...'}")
    if result.outputs:
        lines.append("Outputs:")
        for key, value in result.outputs.items():
            lines.append(f"  {key}: {json.dumps(value, sort_keys=True)}")
    splits = traffic_splits(result)
    if splits:
        lines.append("Traffic splits (HTTPRoute weighted backends):")
        lines.extend(f"  {route}: {split}" for route, split in splits.items())
    if result.placeholders:
        lines.append(f"Placeholders used for missing secret config: {', '.join(result.placeholders)}")
    lines.append("Summary:")
    lines.extend(f"  {count:4d}  {typ}" for typ, count in result.summary().items())
    return "\n".join(lines) + "\n"
