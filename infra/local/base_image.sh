#!/usr/bin/env bash
# A stand-in for the Dockerfile's pinned python:3.11-slim base, made on this machine when no
# container registry is reachable (make image-test): Debian bookworm minbase by debootstrap from the
# Debian mirror apt uses, imported into podman, plus Debian's python3 (3.11) and venv.
#   infra/local/base_image.sh [TAG]     prints TAG (default localhost/sceneflow-test/python:3.11-bookworm)
# Test-only: the production image is built on the pinned base; nothing of this machine goes into it.
set -euo pipefail
TAG=${1:-localhost/sceneflow-test/python:3.11-bookworm}
DEBIAN=localhost/sceneflow-test/debian:bookworm-minbase
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
podman=(podman); command -v runc > /dev/null && podman+=(--runtime runc)
if ! "${podman[@]}" image exists "$DEBIAN"; then
  root=$(mktemp -d "${TMPDIR:-/tmp}/sceneflow-rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >&2
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | "${podman[@]}" import - "$DEBIAN" >&2
fi
if ! "${podman[@]}" image exists "$TAG"; then
  "${podman[@]}" build --ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --build-arg "DEBIAN_IMAGE=$DEBIAN" \
    -t "$TAG" -f "$(dirname "$0")/python-standin.Containerfile" "$(dirname "$0")" >&2
fi
echo "$TAG"
