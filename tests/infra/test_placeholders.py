"""infra/placeholders.py: which values stand in for the operator's own, and why."""

from __future__ import annotations

import pytest

from sovstack.infra.placeholders import repo_url_placeholder, value_reason

ZERO = "@sha256:" + "0" * 64


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            f"registry.x/installer:v1{ZERO}",
            "all-zero image digest: replace it with your mirror's digest (`crane digest IMAGE`)",
        ),
        ("0" * 32, "all-zero id: replace it with the real one"),
        ("00000000-0000-0000-0000-000000000000", "all-zero id: replace it with the real one"),
        (
            "0123456789abcdef0123456789abcdef",
            "sequential example id (0123456789abcdef...): replace it with the real one",
        ),
        (
            "192.0.2.10",
            "192.0.2.10 is in the documentation range 192.0.2.0/24 (RFC 5737/3849): it routes nowhere",
        ),
        (
            "198.51.100.0/28",
            "198.51.100.0/28 is in the documentation range 198.51.100.0/24 (RFC 5737/3849): it routes nowhere",
        ),
        (
            "203.0.113.0/24",
            "203.0.113.0/24 is in the documentation range 203.0.113.0/24 (RFC 5737/3849): it routes nowhere",
        ),
        (
            "2001:db8::1",
            "2001:db8::1 is in the documentation range 2001:db8::/32 (RFC 5737/3849): it routes nowhere",
        ),
        (
            "https://192.0.2.10:6443",
            "192.0.2.10 is in the documentation range 192.0.2.0/24 (RFC 5737/3849): it routes nowhere",
        ),
        (
            "https://git.example.invalid/platform/gitops.git",
            "host git.example.invalid is under the reserved .invalid name (RFC 2606): it resolves nowhere",
        ),
        (
            "https://s3.example.com",
            "host s3.example.com is an example domain (example.com, .org and .net are reserved by RFC 2606)",
        ),
        (
            "registry.example.eu/vllm:1",
            "host registry.example.eu is an example domain (example.com, .org and .net are reserved by RFC 2606)",
        ),
        (
            "vault.example.org",
            "host vault.example.org is an example domain (example.com, .org and .net are reserved by RFC 2606)",
        ),
        ("factory.talos.dev/installer/<schematic-id>:v1.11.5", "unfilled template value '<schematic-id>'"),
        ("CHANGE-ME", "unfilled template value 'CHANGE-ME'"),
    ],
)
def test_placeholder_values(value: str, reason: str) -> None:
    assert value_reason(value) == reason


@pytest.mark.parametrize(
    "value",
    [
        f"registry.x/installer:v1@sha256:{'1' * 64}",
        "10.50.0.0/24",
        "141.95.0.0/16",
        "https://s3.fr-par.scw.cloud",
        "5a1e9c3b7d2f4e6a8b0c1d2e3f4a5b6c",
        "0",
        "v1.11.5",
        "mistral-7b-instruct-v0-3",
        "s3://sovstack-state?endpoint=s3.fr-par-dc1.sovstack.internal&region=fr-par-dc1",
    ],
)
def test_real_values_are_not_placeholders(value: str) -> None:
    assert value_reason(value) is None


def test_repo_url_placeholder_names_the_option() -> None:
    [found] = repo_url_placeholder("https://git.example.invalid/platform/gitops.git")
    assert (found.path, found.line("f")) == (
        "--repo-url",
        "f: --repo-url: [placeholder] host git.example.invalid is under the reserved .invalid name (RFC 2606): "
        "it resolves nowhere",
    )
    assert repo_url_placeholder("https://git.acme.fr/platform/gitops.git") == []
