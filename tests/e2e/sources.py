"""Sources the end-to-end suite reads from Go modules at test time: CRDs and Helm charts.

Pinned in toolchain/versions.yaml (`sources:`) and required in toolchain/go/e2e-sources/go.mod, whose
go.sum checksums every module zip. `go mod download` fetches them into Go's module cache (once per
machine); nothing is copied into the repository. The chart mirror serves the platform layer's charts
on loopback the way an in-region mirror would: an index.yaml and one .tgz per chart.
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.server
import io
import json
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from sovstack.components.builders.platform import platform_facts

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "toolchain" / "versions.yaml"
SOURCES_MODULE = ROOT / "toolchain" / "go" / "e2e-sources"


@cache
def sources() -> dict[str, dict[str, Any]]:
    return dict(yaml.safe_load(VERSIONS.read_text(encoding="utf-8"))["sources"])


@cache
def module_dir(name: str) -> Path:
    """The module's tree in Go's module cache, downloaded (and checksummed against go.sum) if needed."""
    source = sources()[name]
    run = subprocess.run(
        ["go", "mod", "download", "-json", f"{source['module']}@{source['version']}"],
        cwd=SOURCES_MODULE,
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local"},
    )
    info = json.loads(run.stdout) if run.stdout.strip() else {}
    if run.returncode != 0 or "Dir" not in info:
        raise RuntimeError(
            f"go mod download {source['module']}@{source['version']}: {info.get('Error') or run.stderr}"
        )
    return Path(info["Dir"])


def crd_documents(*names: str) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition the named sources list, parsed."""
    documents: list[dict[str, Any]] = []
    for name in names:
        root = module_dir(name)
        for rel in sources()[name].get("crds", []):
            path = root / rel
            files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
            for file in files:
                documents += [
                    doc
                    for doc in yaml.safe_load_all(file.read_text(encoding="utf-8"))
                    if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
                ]
    return documents


# ---------------------------------------------------------------------------------------- charts
#: platform.yaml chart key -> the source carrying it.
CHART_SOURCES = {
    "external-secrets": "external-secrets",
    "keda": "keda-charts",
    "envoy-gateway": "envoy-gateway",
    "prometheus-operator-crds": "prometheus-community-charts",
}


@dataclass(frozen=True)
class PackagedChart:
    name: str
    version: str
    app_version: str
    archive: bytes


def _release_chart_files(key: str, folder: Path) -> dict[str, bytes]:
    """The chart's files as its project releases it, at the version platform.yaml pins.

    What releasing changes, and nothing else: the version fields (set from the tag by each project's
    release job); Envoy Gateway's values.yaml, made from values.tmpl.yaml with the release image;
    External Secrets' optional Bitwarden subchart, disabled by sovstack and not packaged here.
    """
    fact = platform_facts()[key]
    ignored = _helmignore(folder)
    files: dict[str, bytes] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if not ignored(rel):
            files[rel] = path.read_bytes()
    chart = yaml.safe_load(files["Chart.yaml"])
    chart["version"] = fact.version
    if key in ("external-secrets", "envoy-gateway"):
        chart["appVersion"] = fact.version if fact.version.startswith("v") else f"v{fact.version}"
    if key == "external-secrets":
        chart["dependencies"] = [
            d for d in chart.get("dependencies", []) if d["name"] != "bitwarden-sdk-server"
        ]
        files.pop("Chart.lock", None)
        files.update(_external_secrets_crd_templates(folder))
    if key == "envoy-gateway":
        files.pop("values.tmpl.yaml", None)
        template = (folder / "values.tmpl.yaml").read_text(encoding="utf-8")
        image = next(i.upstream for i in fact.images if i.name == "envoy-gateway")
        files["values.yaml"] = (
            template.replace("${GatewayImage}", image)
            .replace("${GatewayImagePullPolicy}", "IfNotPresent")
            .encode()
        )
        files.pop("Chart.lock", None)
    files["Chart.yaml"] = yaml.safe_dump(chart, sort_keys=False).encode()
    return files


def _helmignore(folder: Path) -> Any:
    """What `helm package` leaves out: the chart's .helmignore patterns (globs, dirs ending in /)."""
    path = folder / ".helmignore"
    patterns = [
        line.strip()
        for line in (path.read_text(encoding="utf-8").splitlines() if path.exists() else [])
        if line.strip() and not line.startswith(("#", "!"))
    ]

    def ignored(rel: str) -> bool:
        parts = rel.split("/")
        for pattern in patterns:
            if pattern.endswith("/"):
                if pattern.rstrip("/") in parts[:-1]:
                    return True
            elif fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(parts[-1], pattern):
                return True
        return rel == ".helmignore"

    return ignored


def _external_secrets_crd_templates(chart_folder: Path) -> dict[str, bytes]:
    """templates/crds as External Secrets' release job writes them (hack/helm.generate.sh): each CRD of
    deploy/crds/bundle.yaml in a file of its own, behind the chart's installCRDs (and crds.createX) flags."""
    bundle = chart_folder.parents[1] / "crds" / "bundle.yaml"
    files: dict[str, bytes] = {}
    for doc in yaml.safe_load_all(bundle.read_text(encoding="utf-8")):
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            continue
        kind = doc["spec"]["names"]["kind"]
        if "Cluster" in kind or "PushSecret" in kind:
            guard = f"{{{{- if and (.Values.installCRDs) (.Values.crds.create{kind}) }}}}"
        else:
            guard = "{{- if .Values.installCRDs }}"
        body = yaml.safe_dump(doc, sort_keys=False)
        files[f"templates/crds/{doc['spec']['names']['singular']}.yaml"] = (
            f"{guard}\n{body}{{{{- end }}}}\n".encode()
        )
    return files


def package_chart(key: str) -> PackagedChart:
    source = sources()[CHART_SOURCES[key]]
    folder = module_dir(CHART_SOURCES[key]) / source["chart"]
    files = _release_chart_files(key, folder)
    chart = yaml.safe_load(files["Chart.yaml"])
    name = chart["name"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for rel, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{name}/{rel}")
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return PackagedChart(name, str(chart["version"]), str(chart.get("appVersion", "")), buffer.getvalue())


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:
        data = self.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def chart_mirror(keys: list[str]) -> Iterator[str]:
    """A Helm repository on loopback serving the named platform charts; yields its URL."""
    charts = [package_chart(key) for key in keys]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    entries: dict[str, list[dict[str, Any]]] = {}
    files: dict[str, bytes] = {}
    for chart in charts:
        archive = f"{chart.name}-{chart.version}.tgz"
        files[archive] = chart.archive
        entries.setdefault(chart.name, []).append(
            {
                "apiVersion": "v2",
                "name": chart.name,
                "version": chart.version,
                "appVersion": chart.app_version,
                "digest": hashlib.sha256(chart.archive).hexdigest(),
                "created": "2026-01-01T00:00:00Z",
                "urls": [f"{url}/{archive}"],
            }
        )
    files["index.yaml"] = yaml.safe_dump({"apiVersion": "v1", "entries": entries}).encode()
    handler = type("Handler", (_Handler,), {"files": files})
    server.RequestHandlerClass = handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
