#!/usr/bin/env bash
# Build the render image from infra/Dockerfile: the one build of `make image`, `make image-test` and
# infra/deploy.sh (Terraform takes the pushed tag as var.render_image).
#   infra/image.sh [--tag IMAGE] [--base PYTHON_IMAGE] [--ca FILE] [--no-cache]
#     --tag   the image name (default sceneflow-render:local)
#     --base  the Dockerfile's PYTHON_IMAGE (default: its pinned python:3.11-slim digest)
#     --ca    a CA bundle the build trusts for pip's downloads (a build secret, not kept in the image)
#     --no-cache  build every layer again (make bench-image times cold builds)
# Engine: $CONTAINER_ENGINE, else podman, else docker. Prints the tag on its last line.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=sceneflow-render:local BASE= CA= NO_CACHE=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tag) TAG=${2:?--tag IMAGE}; shift 2 ;;
    --base) BASE=${2:?--base PYTHON_IMAGE}; shift 2 ;;
    --ca) CA=${2:?--ca FILE}; shift 2 ;;
    --no-cache) NO_CACHE=1; shift ;;
    *) echo "infra/image.sh: unknown option '$1' (see the header of infra/image.sh)" >&2; exit 2 ;;
  esac
done
ENGINE=${CONTAINER_ENGINE:-$(command -v podman || command -v docker || true)}
[[ -n "$ENGINE" ]] || { echo "infra/image.sh: neither podman nor docker is installed" >&2; exit 2; }
args=(build -f "$ROOT/infra/Dockerfile" -t "$TAG")
[[ -n "$BASE" ]] && args+=(--build-arg "PYTHON_IMAGE=$BASE")
[[ -n "$CA" ]] && args+=(--secret "id=build-ca,src=$CA")
[[ -n "$NO_CACHE" ]] && args+=(--no-cache)
engine=("$ENGINE")
if [[ "$(basename "$ENGINE")" == podman ]]; then
  # crun fails on hybrid cgroup hosts: prefer runc where installed; a container's open-file limit
  # may not exceed the host's hard limit (podman's default does on some hosts)
  command -v runc > /dev/null && engine+=(--runtime runc)
  args+=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)")
fi
if ! "${engine[@]}" "${args[@]}" "$ROOT" >&2; then
  echo "infra/image.sh: the build failed. No registry for the base? --base NAME (make image IMAGE_BASE=NAME;" \
    "a local stand-in for tests: infra/local/base_image.sh). pip refused a certificate (a TLS-inspecting" \
    "proxy)? --ca FILE (make image IMAGE_CA=/etc/ssl/certs/ca-certificates.crt)." >&2
  exit 1
fi
echo "$TAG"
