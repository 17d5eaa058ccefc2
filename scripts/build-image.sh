#!/usr/bin/env bash
# Builds the Dockerfile as IMAGE (default auth-backend:test): with docker when a Docker engine
# answers, otherwise with buildah (Debian's package), whose base image comes from
# scripts/image-base.sh (pulled, or a stand-in where base images cannot be pulled).
# IMAGE_BUILDER=buildah uses buildah even beside a Docker engine (tests/image runs the image
# with buildah).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${1:-auth-backend:test}
BUILDER=${IMAGE_BUILDER:-auto}

if [ "$BUILDER" = docker ] || { [ "$BUILDER" = auto ] && command -v docker >/dev/null 2>&1 \
    && docker info >/dev/null 2>&1; }; then
    exec docker build -t "$IMAGE" .
fi
if ! command -v buildah >/dev/null 2>&1; then
    echo "build-image.sh: no Docker engine and no buildah; as root run: apt-get install -y buildah debootstrap" >&2
    exit 1
fi

bash scripts/image-base.sh
BUILDAH=(buildah --storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}")
previous=$("${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$IMAGE" 2>/dev/null || true)
# vfs: works without fuse-overlayfs or an overlay-capable filesystem; chroot isolation: no
# user namespaces needed. --format docker keeps HEALTHCHECK (the OCI format drops it).
# No --layers: vfs stores every layer as a full copy of the tree, so caching each step made a
# rebuild with nothing changed slower (7 min) than building it all again (3 min, 2 busy cores).
"${BUILDAH[@]}" bud --isolation chroot --pull=never --format docker -t "$IMAGE" .
current=$("${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$IMAGE")
# The image this build replaced, now untagged: a full copy on disk under vfs.
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    "${BUILDAH[@]}" rmi "$previous" >/dev/null 2>&1 || true
fi
"${BUILDAH[@]}" images "$IMAGE"
