"""`sovstack weights manifest`: pin model weights like images.

A weights source (a local directory, or `s3://bucket/prefix` read through an S3 endpoint) gets a
manifest, `SHA256SUMS`: one `sha256  relative/path` line per file, sorted by path in byte order, the
format `sha256sum -c` reads. The stack pins the manifest's own sha256; the verify-weights init container
(components/builders/weights_verify.py) checks both after every copy. The same files always give the same
manifest, byte for byte, whichever way they were read.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sovstack.components.builders.weights_verify import MANIFEST_NAME
from sovstack.infra.s3access import (
    AWS_VARIABLES,
    S3AccessError,
    check_endpoint,
    describe_error,
    env_credentials,
    make_client,
    s3_errors,
    stderr_progress,
)

CHUNK = 1 << 20
Progress = Callable[[int], None]


class WeightsError(Exception):
    """A source that cannot be read or manifested; `lines` are `SOURCE: path: message` problems."""

    exit_code = 2

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class WeightsManifest:
    """The files of one weights source, sorted by path."""

    source: str
    entries: tuple[ManifestEntry, ...]

    def text(self) -> str:
        return "".join(f"{e.sha256}  {e.path}\n" for e in self.entries)

    def sha256(self) -> str:
        """The digest a stack pins (`weights.manifestSha256`)."""
        return hashlib.sha256(self.text().encode("utf-8")).hexdigest()

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256(),
            "files": len(self.entries),
            "bytes": self.total_bytes,
        }


def path_problem(path: str) -> str | None:
    """Why `path` cannot be a manifest entry the verify script and `sha256sum -c` both read alike."""
    if not path:
        return "empty path"
    if any(c in path for c in "\n\r\\"):
        return "a newline, carriage return or backslash in the name (sha256sum would escape it)"
    if path.startswith("/") or "//" in path or path.endswith("/"):
        return "not a plain relative path"
    if any(part in (".", "..") for part in path.split("/")):
        return "a '.' or '..' path segment"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return "a control character in the name"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "a name that is not UTF-8"
    return None


def build_manifest(source: str, entries: list[ManifestEntry]) -> WeightsManifest:
    """Sort `entries` by path (UTF-8 byte order, as `LC_ALL=C sort`), refusing bad or repeated paths."""
    problems = [f"{source}: {e.path!r}: {why}" for e in entries if (why := path_problem(e.path))]
    seen: set[str] = set()
    for entry in entries:
        if entry.path in seen:
            problems.append(f"{source}: {entry.path}: listed twice")
        seen.add(entry.path)
    if not entries:
        problems.append(f"{source}: no files: nothing to pin")
    if problems:
        raise WeightsError(problems)
    ordered = sorted(entries, key=lambda e: e.path.encode("utf-8"))
    return WeightsManifest(source, tuple(ordered))


# ----------------------------------------------------------------------------------- a local directory
def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    for directory, dirs, files in os.walk(root, followlinks=False):
        here = Path(directory)
        for name in sorted(dirs):
            if (here / name).is_symlink():
                files.append(name)  # reported below as the link it is
        dirs[:] = sorted(d for d in dirs if not (here / d).is_symlink())
        for name in sorted(files):
            path = here / name
            yield path.relative_to(root).as_posix(), path


def local_files(root: Path) -> list[tuple[str, Path, int]]:
    """(relative path, path, size) of every regular file under `root`, the root's manifest left out."""
    if not root.is_dir():
        raise WeightsError([f"{root}: no such directory"])
    found, problems = [], []
    for relative, path in _walk(root):
        if relative == MANIFEST_NAME:
            continue
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            problems.append(f"{root}: {relative}: symbolic link; weights must be regular files")
        elif not stat.S_ISREG(mode):
            problems.append(f"{root}: {relative}: not a regular file")
        else:
            found.append((relative, path, path.stat().st_size))
    if problems:
        raise WeightsError(problems)
    return found


def manifest_of_directory(root: Path, progress: Progress | None = None) -> WeightsManifest:
    """The manifest of the files under `root` (its own SHA256SUMS excluded)."""
    entries = []
    for relative, path, size in local_files(root):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                if progress:
                    progress(len(chunk))
        entries.append(ManifestEntry(relative, digest.hexdigest(), size))
    return build_manifest(str(root), entries)


# ------------------------------------------------------------------------------------------ a bucket
def split_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix ending with '/' or empty) of `s3://bucket[/prefix]`."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not url.startswith("s3://") or not bucket:
        raise WeightsError([f"{url}: not an s3://bucket/prefix URL"])
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def s3_objects(client: Any, url: str) -> list[tuple[str, str, int]]:
    """(relative path, key, size) of every object under the URL's prefix, as rclone copies them:
    directory markers and the prefix's own SHA256SUMS left out."""
    bucket, prefix = split_s3_url(url)
    found = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key, size = item["Key"], int(item["Size"])
                relative = key[len(prefix) :]
                if relative == MANIFEST_NAME or (relative.endswith("/") and size == 0):
                    continue
                found.append((relative, key, size))
    except s3_errors() as err:
        raise S3AccessError(f"{url}: cannot list: {describe_error(err)}") from None
    return found


def manifest_of_s3(client: Any, url: str, progress: Progress | None = None) -> WeightsManifest:
    """The manifest of the objects under `url`, each read once through `client` (hashed as it streams)."""
    bucket, _ = split_s3_url(url)
    objects = s3_objects(client, url)
    bad = [f"{url}: {rel!r}: {why}" for rel, _, _ in objects if (why := path_problem(rel))]
    if bad:
        raise WeightsError(bad)
    entries = []
    for relative, key, size in objects:
        digest = hashlib.sha256()
        read = 0
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(CHUNK):
                digest.update(chunk)
                read += len(chunk)
                if progress:
                    progress(len(chunk))
        except s3_errors() as err:
            raise S3AccessError(f"{url}: {relative}: cannot read: {describe_error(err)}") from None
        if read != size:
            raise WeightsError([f"{url}: {relative}: read {read} bytes, the listing says {size}"])
        entries.append(ManifestEntry(relative, digest.hexdigest(), size))
    return build_manifest(url, entries)


def total_size(source: str, *, client: Any = None) -> int:
    """Bytes to hash, for a progress bar."""
    if source.startswith("s3://"):
        return sum(size for _, _, size in s3_objects(client, source))
    return sum(size for _, _, size in local_files(Path(source)))


# ------------------------------------------------------------------------------------------- the CLI
def weights_manifest_cli(
    source: str, *, out: str | None, endpoint: str | None, region: str | None, as_json: bool
) -> int:
    """`sovstack weights manifest`: write the manifest, print its sha256 on stdout, explain on stderr.

    Credentials for an s3:// source come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and
    AWS_SESSION_TOKEN) only; the region from --region, AWS_REGION or AWS_DEFAULT_REGION, else us-east-1.
    """
    import json

    import typer

    def say(line: str) -> None:
        typer.echo(line, err=True)

    if as_json and out == "-":
        say("--json and --out -: both would write to stdout; choose one")
        return 2
    client = None
    try:
        if source.startswith("s3://"):
            split_s3_url(source)
            if not endpoint:
                raise WeightsError(
                    [f"{source}: --endpoint: required for s3:// sources (there is no default)"]
                )
            try:
                check_endpoint(endpoint)
            except ValueError as err:
                raise WeightsError([f"{source}: --endpoint: {err}"]) from None
            credentials = env_credentials(os.environ, [AWS_VARIABLES])
            if credentials is None:
                raise WeightsError(
                    [
                        f"{source}: credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (read-only is enough)"
                    ]
                )
            env_region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            client = make_client(endpoint, region or env_region or "us-east-1", credentials)
            default_out = Path(MANIFEST_NAME)
        else:
            default_out = Path(source) / MANIFEST_NAME
        total = total_size(source, client=client)
        with stderr_progress(total, "hashing") as bar:
            if client is not None:
                manifest = manifest_of_s3(client, source, bar.update)
            else:
                manifest = manifest_of_directory(Path(source), bar.update)
    except WeightsError as err:
        for line in err.lines:
            say(line)
        return err.exit_code
    except S3AccessError as err:
        say(str(err))
        return 2
    except OSError as err:
        say(f"{err.filename or source}: cannot read: {err.strerror or err}")
        return 2

    target = out or str(default_out)
    digest = manifest.sha256()
    summary = f"{len(manifest.entries)} files, {manifest.total_bytes} bytes"
    if target == "-":
        typer.echo(manifest.text(), nl=False)
        say(f"{summary}; manifest sha256 {digest}")
        return 0
    try:
        Path(target).write_text(manifest.text(), encoding="utf-8")
    except OSError as err:
        say(f"{target}: cannot write: {err.strerror or err}")
        return 2
    if as_json:
        typer.echo(json.dumps({**manifest.to_dict(), "manifest": target}, indent=2, sort_keys=True))
    else:
        typer.echo(digest)
    say(f"{target}: {summary}; pin sha256 {digest} in the stack and keep {MANIFEST_NAME} beside the weights")
    return 0
