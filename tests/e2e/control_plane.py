"""A Kubernetes control plane on loopback for the end-to-end suite: etcd, kube-apiserver, kube-controller-manager.

Built from their Go modules (toolchain/), started on free ports with RBAC and the default admission
plugins (PodSecurity among them), and stopped with their whole process group, leaving nothing behind
even when a test fails. There is no scheduler and no kubelet: no pod ever runs, so the harness tells
the Kubernetes provider not to await readiness (see harness.py). The controller manager is there for
what Kubernetes itself does on the server side: the garbage collector (the provider deletes with
foreground propagation), namespace deletion, and the default ServiceAccount of every namespace.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICE_RANGE = "10.0.0.0/24"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ControlPlane:
    """A running control plane: its kubeconfig, API address, admin token and processes."""

    workdir: Path
    server: str
    token: str
    kubeconfig: Path
    kubectl_binary: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        run = subprocess.run(
            [str(self.kubectl_binary), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and run.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({run.returncode}):\n{run.stderr}")
        return run

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The live object, or None when the server has none by that name."""
        group = api_version.rpartition("/")[0]
        resource = f"{kind}.{group}" if group else kind
        where = ["-n", namespace] if namespace else []
        found = self.kubectl("get", resource, name, *where, "-o", "json", check=False)
        if found.returncode != 0:
            if "NotFound" in found.stderr:
                return None
            raise AssertionError(f"kubectl get {resource} {name}: {found.stderr}")
        return dict(json.loads(found.stdout))

    def apply_crds(self, crds: list[dict[str, Any]]) -> None:
        """Create CRDs server-side and wait until each is Established."""
        if not crds:
            return
        manifest = "\n---\n".join(json.dumps(c) for c in crds)
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=manifest)
        pending = {c["metadata"]["name"] for c in crds}
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                crd = self.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
                conditions = crd.get("status", {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    pending.discard(name)
            time.sleep(0.2)
        if pending:
            raise RuntimeError(f"CRDs not established after 60 s: {sorted(pending)}")

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop every process group, newest first; SIGKILL what ignores SIGTERM for 10 s."""
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            if process.poll() is not None:
                continue
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            except ProcessLookupError:
                pass

    def alive(self) -> list[str]:
        return [name for name, process in self.processes.items() if process.poll() is None]


def _start(plane: ControlPlane, name: str, command: list[str]) -> None:
    log = (plane.workdir / f"{name}.log").open("wb")
    plane.processes[name] = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=plane.workdir
    )


def _wait(plane: ControlPlane, name: str, ready: callable, timeout: float = 90) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process = plane.processes[name]
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{plane.log(name)[-4000:]}")
        if ready():
            return
        time.sleep(0.3)
    raise RuntimeError(f"{name} not ready after {timeout:.0f} s:\n{plane.log(name)[-4000:]}")


def _etcd_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _api_ready(server: str, token: str, ca: Path) -> bool:
    if not ca.exists():
        return False
    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(f"{server}/readyz", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (OSError, ssl.SSLError):
        return False


def _service_account_keys(workdir: Path) -> tuple[Path, Path]:
    key, public = workdir / "sa.key", workdir / "sa.pub"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(public)], check=True, capture_output=True
    )
    return key, public


def write_kubeconfig(path: Path, server: str, ca: Path, token: str) -> None:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: e2e\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n"
        "contexts:\n- name: e2e\n  context: {cluster: e2e, user: admin}\ncurrent-context: e2e\n"
        f"users:\n- name: admin\n  user:\n    token: {token}\n",
        encoding="utf-8",
    )


def start_control_plane(workdir: Path, tools: dict[str, Path]) -> ControlPlane:
    """etcd, then kube-apiserver, then kube-controller-manager, each waited for; stops all on failure."""
    for tool in ("openssl",):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is needed to make the service-account key pair")
    workdir.mkdir(parents=True, exist_ok=True)
    etcd_port, peer_port, api_port, cm_port = free_port(), free_port(), free_port(), free_port()
    token = secrets.token_hex(16)
    server = f"https://127.0.0.1:{api_port}"
    certs = workdir / "certs"
    plane = ControlPlane(workdir, server, token, workdir / "kubeconfig", tools["kubectl"])
    try:
        _start(
            plane,
            "etcd",
            [
                str(tools["etcd"]),
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
            ],
        )
        _wait(plane, "etcd", lambda: _etcd_ready(etcd_port))
        key, public = _service_account_keys(workdir)
        tokens = workdir / "tokens.csv"
        tokens.write_text(f"{token},admin,admin,system:masters\n", encoding="utf-8")
        _start(
            plane,
            "kube-apiserver",
            [
                str(tools["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={certs}",
                f"--service-cluster-ip-range={SERVICE_RANGE}",
                "--allow-privileged=true",
                "--authorization-mode=Node,RBAC",
                f"--token-auth-file={tokens}",
                f"--service-account-issuer={server}",
                f"--service-account-key-file={public}",
                f"--service-account-signing-key-file={key}",
            ],
        )
        ca = certs / "apiserver.crt"
        _wait(plane, "kube-apiserver", lambda: _api_ready(server, token, ca))
        write_kubeconfig(plane.kubeconfig, server, ca, token)
        _start(
            plane,
            "kube-controller-manager",
            [
                str(tools["kube-controller-manager"]),
                f"--kubeconfig={plane.kubeconfig}",
                f"--authentication-kubeconfig={plane.kubeconfig}",
                f"--authorization-kubeconfig={plane.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={cm_port}",
                f"--cert-dir={workdir / 'cm-certs'}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={key}",
                f"--root-ca-file={ca}",
                f"--service-cluster-ip-range={SERVICE_RANGE}",
            ],
        )
        _wait(plane, "kube-controller-manager", lambda: _default_service_account(plane))
    except BaseException:
        plane.stop()
        raise
    return plane


def _default_service_account(plane: ControlPlane) -> bool:
    """The controller manager is working once it has made the default namespace's ServiceAccount."""
    return plane.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0
