#!/usr/bin/env bash
# Builds the Dockerfile as IMAGE (default auth-backend:test): with docker when a Docker engine
# answers, otherwise with buildah (Debian's package), whose base image comes from
# scripts/image-base.sh (pulled, or a stand-in where base images cannot be pulled).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${1:-auth-backend:test}

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    exec docker build -t "$IMAGE" .
fi
if ! command -v buildah >/dev/null 2>&1; then
    echo "build-image.sh: no Docker engine and no buildah; as root run: apt-get install -y buildah debootstrap" >&2
    exit 1
fi

bash scripts/image-base.sh
# vfs: works without fuse-overlayfs or an overlay-capable filesystem; chroot isolation: no
# user namespaces needed. --format docker keeps HEALTHCHECK (the OCI format drops it);
# --layers reuses the dependency layer while the locks do not change.
buildah --storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}" bud --isolation chroot --pull=never \
    --format docker --layers -t "$IMAGE" .
buildah --storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}" images "$IMAGE"
