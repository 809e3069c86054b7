"""Read-only access to an S3-compatible bucket (weights, audit records) for the CLI: endpoint checks,
credentials from named environment variables only, and errors worded without any secret.

boto3 is imported when a client is made, so commands that never touch S3 never load it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: Plain http is refused except to these hosts: a port-forward or a local test server.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class S3AccessError(Exception):
    """A bucket that cannot be reached or read; the message names no secret."""


@dataclass(frozen=True)
class Credentials:
    """An access key pair and where it came from; the secret never shows in a repr."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    source: str = ""


def check_endpoint(url: str) -> str:
    """`url` when it is an https:// URL, or http:// to a loopback address; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return url
    raise ValueError(f"{url!r} is not an https:// URL (plain http only to 127.0.0.1, localhost or ::1)")


def env_credentials(
    environ: Mapping[str, str], pairs: Sequence[tuple[str, str, str | None]]
) -> Credentials | None:
    """The first complete (key id, secret, optional session token) variable triple set in `environ`."""
    for key_name, secret_name, token_name in pairs:
        key, secret = environ.get(key_name), environ.get(secret_name)
        if key and secret:
            token = environ.get(token_name) if token_name else None
            return Credentials(key, secret, token or None, f"{key_name}/{secret_name}")
    return None


AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def make_client(endpoint: str, region: str, credentials: Credentials) -> Any:
    """An S3 client for `endpoint` with exactly these credentials (no profile, no instance metadata),
    path-style addressing (MinIO needs it; Scaleway and OVH accept it) and checksums only where the
    API requires them, as S3-compatible stores do not all know the newer ones."""
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        user_agent_extra="sovstack",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=check_endpoint(endpoint),
        region_name=region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        config=config,
    )


def describe_error(err: BaseException) -> str:
    """A one-line reason for a failed S3 call: the service's error code and message, or the connection
    problem; never the request's headers, so never a key."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code = error.get("Code") or "error"
        message = error.get("Message") or ""
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = f"{code} ({message})" if message and message != code else str(code)
        return f"{detail}, HTTP {status}" if status else detail
    if isinstance(err, BotoCoreError):
        return str(err)
    return f"{type(err).__name__}: {err}"


def s3_errors() -> tuple[type[BaseException], ...]:
    """The exceptions an S3 call raises for a remote or network problem (not a bug of ours)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError, OSError)


class _Silent:
    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n_steps: int) -> None:
        return None


def stderr_progress(length: int, label: str) -> Any:
    """A progress bar on stderr for long reads, shown only on a terminal (logs get no bar lines)."""
    import sys

    import typer

    if not sys.stderr.isatty():
        return _Silent()
    return typer.progressbar(length=length, label=label, file=sys.stderr, show_eta=True)
