"""Pure builder for the init container that checks copied model weights against their pinned manifest.

Weights are pinned like images: the weights source carries `SHA256SUMS` (one `sha256  path` line per
file, sorted, as `sovstack weights manifest` writes it and `sha256sum -c` reads it), and the stack pins
the sha256 of that manifest. After the copy into `/models/<name>`, `VERIFY_SCRIPT` checks the manifest
against the pin, refuses any entry or file it cannot vouch for, then checks every file; any mismatch
exits non-zero, so the pod never reaches vLLM. No Pulumi import.
"""

from __future__ import annotations

import re
from typing import Any

from sovstack.components.kube import image_is_pinned, is_dns_label, restricted_container_security_context

MANIFEST_NAME = "SHA256SUMS"
CONTAINER_NAME = "verify-weights"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

#: POSIX sh, run as `sh -c VERIFY_SCRIPT verify-weights DIR PINNED_SHA256`. Needs only sha256sum, find,
#: awk, sed and grep, as busybox (Alpine, the rclone image) and GNU coreutils both provide them. Writes
#: nothing, so the weights volume can be mounted read-only. Checks, cheapest first: the manifest's own
#: digest; its entries (relative paths, no `..`, no duplicates); no symbolic link; no file it does not
#: list; then every listed file's sha256 (a missing file fails there).
VERIFY_SCRIPT = r"""set -u
manifest=SHA256SUMS
fail() { printf 'verify-weights: %s\n' "$*" >&2; exit 1; }
[ "$#" -eq 2 ] || { echo 'usage: verify-weights DIR PINNED_SHA256' >&2; exit 2; }
dir=$1
pinned=${2#sha256:}
case $pinned in *[!0-9a-f]*) fail "pinned digest $2 is not a sha256 (64 lowercase hex digits)" ;; esac
[ "${#pinned}" -eq 64 ] || fail "pinned digest $2 is not a sha256 (64 lowercase hex digits)"
cd "$dir" 2>/dev/null || fail "$dir: no such directory"
[ -f "$manifest" ] || fail "$dir/$manifest: missing; the weights source must carry its manifest"
actual=$(sha256sum "$manifest") || fail "$dir/$manifest: cannot be read"
actual=${actual%% *}
[ "$actual" = "$pinned" ] || fail "$dir/$manifest: sha256 is $actual, but the stack pins $pinned"
bad=$(awk '
  { path = substr($0, 67) }
  length($0) < 67 || substr($0, 1, 64) !~ /^[0-9a-f]+$/ || substr($0, 65, 2) != "  " ||
    path ~ /^\// || path ~ /^\.\// || ("/" path "/") ~ /\/\.\.\// || seen[path]++ {
    printf "line %d: %s\n", NR, $0
  }' "$manifest")
[ -z "$bad" ] || fail "$dir/$manifest: entries that are not 'sha256  relative/path' or repeat a path:
$bad"
links=$(find . -type l | sed 's|^\./||')
[ -z "$links" ] || fail "$dir: symbolic links are not weights:
$links"
extra=$(find . ! -type d ! -path "./$manifest" | sed 's|^\./||' \
  | awk -v manifest="$manifest" 'FILENAME == manifest { listed[substr($0, 67)] = 1; next } !($0 in listed)' \
    "$manifest" -)
[ -z "$extra" ] || fail "$dir: files the manifest does not list:
$extra"
if ! result=$(sha256sum -c "$manifest" 2>&1); then
  printf '%s\n' "$result" | grep -v ': OK$' >&2
  fail "$dir: the files above do not match $manifest (sha256 $pinned)"
fi
count=$(grep -c '' "$manifest")
echo "verify-weights: $dir: $count files match $manifest sha256:$pinned"
"""

DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "500m", "memory": "64Mi"},
    "limits": {"cpu": "1", "memory": "128Mi"},
}


def normalize_sha256(value: str, *, field: str = "manifest_sha256") -> str:
    """The 64 lowercase hex digits of `value` (`sha256:` prefix allowed); ValueError naming `field`."""
    digits = value.removeprefix("sha256:")
    if not _SHA256.match(digits):
        raise ValueError(f"{field}: {value!r} is not a sha256 (64 lowercase hex digits, optionally sha256:)")
    return digits


def build_verify_container(
    *,
    model_name: str,
    manifest_sha256: str,
    image: str,
    image_pull_policy: str = "IfNotPresent",
    resources: dict[str, dict[str, str]] | None = None,
    models_dir: str = "/models",
    volume: str = "weights",
) -> dict[str, Any]:
    """The `verify-weights` init container: goes after the weights fetcher, before vLLM.

    `image` needs `/bin/sh` and the tools of `VERIFY_SCRIPT` (the pinned rclone image has them) and must be
    pinned by digest; `volume` is the weights volume, mounted read-only at `models_dir`, the model in
    `models_dir/model_name`. Runs under the restricted security context every sovstack container has.
    """
    digest = normalize_sha256(manifest_sha256)
    if not is_dns_label(model_name):
        raise ValueError(f"model_name: {model_name!r} is not a DNS-1123 label")
    if not image_is_pinned(image):
        raise ValueError(f"image: {image!r} is not pinned by a sha256 digest")
    if image_pull_policy not in ("IfNotPresent", "Always", "Never"):
        raise ValueError(f"image_pull_policy: {image_pull_policy!r} is not IfNotPresent, Always or Never")
    if not models_dir.startswith("/"):
        raise ValueError(f"models_dir: {models_dir!r} is not an absolute path")
    chosen = resources or DEFAULT_RESOURCES
    return {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": image_pull_policy,
        "command": ["/bin/sh", "-c", VERIFY_SCRIPT, CONTAINER_NAME, f"{models_dir}/{model_name}", digest],
        "resources": {kind: dict(values) for kind, values in sorted(chosen.items())},
        "securityContext": restricted_container_security_context(),
        "volumeMounts": [{"name": volume, "mountPath": models_dir, "readOnly": True}],
    }
