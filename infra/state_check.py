"""Is this run using the state backend and secrets provider the spec declares (`state:`)?

The program calls `state_problems` before it registers anything. What it can see, it checks:
- the backend: `PULUMI_BACKEND_URL` (what `sovstack up` sets, and what CI usually sets), else the
  project's `backend.url` in Pulumi.yaml, else the account `pulumi login` made current
  (`$PULUMI_HOME/credentials.json`);
- the secrets provider: the stack settings file's `secretsprovider` and its passphrase salt.
What it cannot see (no backend found, a stack file not yet written) is reported as unverified, never
as passed. `docs/residency.md` ("State and secrets") says which path verifies what.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse

import yaml

from sovstack.infra.spec import CustomerSpec

Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class Seen:
    """One thing in use, as far as this process can tell, and where it was read."""

    value: str | None
    source: str


def normalize_backend(url: str) -> str:
    """Comparable form of a backend URL: no trailing slash, query parameters sorted."""
    parsed = urlparse(url.strip())
    query = urlencode(sorted(parse_qsl(parsed.query)))
    path = parsed.path.rstrip("/")
    return parsed._replace(path=path, query=query).geturl()


def backend_in_use(env: dict[str, str], project_dir: Path) -> Seen:
    if env.get("PULUMI_BACKEND_URL"):
        return Seen(env["PULUMI_BACKEND_URL"], "PULUMI_BACKEND_URL")
    project = project_dir / "Pulumi.yaml"
    if project.is_file():
        settings = yaml.safe_load(project.read_text(encoding="utf-8")) or {}
        url = (settings.get("backend") or {}).get("url")
        if url:
            return Seen(str(url), f"{project} backend.url")
    home = Path(env.get("PULUMI_HOME") or Path.home() / ".pulumi")
    credentials = home / "credentials.json"
    if credentials.is_file():
        try:
            current = json.loads(credentials.read_text(encoding="utf-8")).get("current")
        except (OSError, ValueError):
            current = None
        if current:
            return Seen(str(current), f"{credentials} (pulumi login)")
    return Seen(None, "no PULUMI_BACKEND_URL, Pulumi.yaml backend.url or pulumi login found")


def secrets_provider_in_use(stack_file: Path) -> Seen:
    """`passphrase`, a provider URL, or None when the stack file holds no encryption settings yet."""
    if not stack_file.is_file():
        return Seen(None, f"{stack_file} does not exist yet")
    settings = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    provider = settings.get("secretsprovider")
    if provider:
        return Seen(str(provider), f"{stack_file} secretsprovider")
    if settings.get("encryptionsalt"):
        return Seen("passphrase", f"{stack_file} encryptionsalt")
    if settings.get("encryptedkey"):
        return Seen(None, f"{stack_file} has an encrypted key but names no secrets provider")
    return Seen(None, f"{stack_file} holds no secret yet, so no secrets provider is recorded")


def state_problems(
    spec: CustomerSpec, stack_file: Path, env: dict[str, str] | None = None
) -> tuple[list[tuple[Loc, str]], list[str]]:
    """(refusals, unverified notes): a mismatch is a refusal; what cannot be seen is a note."""
    env = dict(os.environ) if env is None else env
    problems: list[tuple[Loc, str]] = []
    notes: list[str] = []
    backend = backend_in_use(
        env, stack_file.parent.parent if stack_file.parent.name == "stacks" else Path.cwd()
    )
    if backend.value is None:
        notes.append(f"state.backendUrl not verified: {backend.source}")
    elif normalize_backend(backend.value) != normalize_backend(spec.state.backend_url):
        problems.append(
            (
                ("state", "backendUrl"),
                f"this run uses the backend {backend.value} ({backend.source}), not the one the spec "
                f"declares; run `sovstack up` or log in to {spec.state.backend_url}",
            )
        )
    secrets = secrets_provider_in_use(stack_file)
    declared = spec.state.secrets_provider
    if secrets.value is None:
        notes.append(f"state.secretsProvider not verified: {secrets.source}")
    elif secrets.value != declared:
        problems.append(
            (
                ("state", "secretsProvider"),
                f"the stack encrypts its secrets with {secrets.value} ({secrets.source}), not {declared}; "
                f"change it with `pulumi stack change-secrets-provider {declared}`",
            )
        )
    return problems, notes
