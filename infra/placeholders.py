"""Placeholders: values a template or an example leaves for the operator to fill in.

An all-zero image digest or project id, a documentation address range (RFC 5737, RFC 3849), a
reserved host name (`.invalid`, `example.com`, RFC 2606) or a template's unfilled `<value>` passes
every residency rule, yet nothing real is behind it. Each is a finding of its own: `validate` and
the report say "not deployable: N placeholders" with each field path; the Pulumi program and
`render` refuse them unless told the output is a demo (docs/residency.md, "Placeholders").
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from sovstack.infra.spec import CustomerSpec
from sovstack.infra.stackfile import CUSTOMER_KEY

#: Documentation ranges: RFC 5737 (IPv4) and RFC 3849 (IPv6). Addresses there never route.
DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
_ZERO_DIGEST = re.compile(r"@sha256:0{64}$")
_ZERO_ID = re.compile(r"^[0-]{8,}$")
_SEQUENTIAL_ID = re.compile(r"^(?:0123456789abcdef)+$|^(?:0123456789)+$", re.IGNORECASE)
_UNFILLED = re.compile(r"<[A-Za-z][A-Za-z0-9_. -]*>|\b(?:CHANGE-?ME|REPLACE-?ME|TODO|FIXME)\b", re.IGNORECASE)
_HOST = re.compile(r"^[A-Za-z0-9.-]+$")


@dataclass(frozen=True)
class Placeholder:
    """One field whose value stands in for the operator's own."""

    path: str
    value: str
    reason: str

    def line(self, file: str = "") -> str:
        where = f"{file}: {self.path}" if file else self.path
        return f"{where}: [placeholder] {self.reason}"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "value": self.value, "reason": self.reason}


def _reserved_host(host: str) -> str | None:
    host = host.lower().rstrip(".")
    labels = host.split(".")
    if labels[-1] in ("invalid", "example", "test", "localhost"):
        return f"host {host} is under the reserved .{labels[-1]} name (RFC 2606): it resolves nowhere"
    if len(labels) >= 2 and labels[-2] == "example":
        return f"host {host} is an example domain (example.com, .org and .net are reserved by RFC 2606)"
    return None


def _documentation_address(text: str) -> str | None:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    for doc in DOCUMENTATION_NETWORKS:
        if network.version == doc.version and (network.subnet_of(doc) or doc.subnet_of(network)):  # type: ignore[arg-type]
            return f"{text} is in the documentation range {doc} (RFC 5737/3849): it routes nowhere"
    return None


def value_reason(value: str) -> str | None:
    """Why `value` is a placeholder, or None."""
    if _ZERO_DIGEST.search(value):
        return "all-zero image digest: replace it with your mirror's digest (`crane digest IMAGE`)"
    if _ZERO_ID.match(value):
        return "all-zero id: replace it with the real one"
    if _SEQUENTIAL_ID.match(value):
        return "sequential example id (0123456789abcdef...): replace it with the real one"
    if _UNFILLED.search(value):
        return f"unfilled template value {_UNFILLED.search(value).group(0)!r}"  # type: ignore[union-attr]
    found = _documentation_address(value)
    if found:
        return found
    host = ""
    if "://" in value:
        try:
            parsed = urlparse(value)
            host = parsed.hostname or ""
        except ValueError:
            host = ""
        if host:
            found = _documentation_address(host)
            if found:
                return found
    elif "/" in value and "." in value.split("/", 1)[0]:
        host = value.split("/", 1)[0].split(":", 1)[0]  # an image reference's registry
    elif _HOST.match(value) and "." in value:
        host = value
    return _reserved_host(host) if host else None


def _walk(value: Any, path: str) -> list[Placeholder]:
    if isinstance(value, dict):
        return [p for key, v in value.items() for p in _walk(v, f"{path}.{key}")]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in _walk(v, f"{path}[{i}]")]
    if isinstance(value, str):
        reason = value_reason(value)
        return [Placeholder(path, value, reason)] if reason else []
    return []


def find_placeholders(spec: CustomerSpec) -> list[Placeholder]:
    """Every field of the spec (as written, camelCase) whose value is a placeholder, in spec order."""
    written = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return _walk(written, CUSTOMER_KEY)


def repo_url_placeholder(repo_url: str) -> list[Placeholder]:
    """The Git repository Argo CD reads a render from (`render --repo-url`, `$SOVSTACK_GITOPS_REPO`)."""
    reason = value_reason(repo_url)
    return [Placeholder("--repo-url", repo_url, reason)] if reason else []


def not_deployable(count: int) -> str:
    return f"not deployable: {count} placeholder{'s' if count != 1 else ''}"
