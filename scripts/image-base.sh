#!/usr/bin/env bash
# Makes sure buildah has the Dockerfile's base image, docker.io/library/python:3.11-slim.
# Pulls it when a registry is reachable; where base images cannot be pulled (as on the
# project's CI machines), builds a stand-in under the same name: Debian bookworm (whose
# python3 is 3.11, like the real base) with a venv at /usr/local, so that /usr/local/bin/python
# and pip behave as in python:3.11-slim and `pip install --prefix=/install` produces the
# layout the Dockerfile's second stage copies into /usr/local.
# Bootstrapping takes minutes, so buildah's storage keeps the result and this script does
# nothing while the image is there.
set -euo pipefail

BASE=docker.io/library/python:3.11-slim
BUILDAH=(buildah --storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}")

if "${BUILDAH[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
    exit 0
fi
if timeout 120 "${BUILDAH[@]}" pull --quiet "$BASE" >/dev/null 2>&1; then
    exit 0
fi
echo "image-base.sh: $BASE cannot be pulled; building a Debian bookworm stand-in" >&2

for tool in debootstrap chroot; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "image-base.sh: $tool is missing; as root run: apt-get install -y buildah debootstrap" >&2
        exit 1
    fi
done

# The Debian mirror apt already uses is the one known to be reachable from this machine.
MIRROR=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
    | grep -oE 'https?://[^ ]+' | head -n 1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}

root=$(mktemp -d /var/tmp/python-slim-standin.XXXXXX)
container=""
cleanup() {
    if [ -n "$container" ]; then
        "${BUILDAH[@]}" rm "$container" >/dev/null 2>&1 || true
    fi
    rm -rf "$root"
}
trap cleanup EXIT

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$MIRROR" >&2
chroot "$root" python3 -m venv /usr/local
# pip inside the build reaches PyPI through whatever TLS interception this machine has;
# the host's bundle carries its CA.
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
# Nothing in the image needs apt's downloads and lists (python:3.11-slim drops them too).
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
    "$root"/var/cache/debconf/*-old

container=$("${BUILDAH[@]}" from scratch)
mountpoint=$("${BUILDAH[@]}" mount "$container")
cp -a "$root"/. "$mountpoint"/
"${BUILDAH[@]}" umount "$container" >/dev/null
"${BUILDAH[@]}" config \
    --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --cmd python3 \
    --label org.opencontainers.image.description="stand-in for python:3.11-slim (Debian bookworm, venv at /usr/local)" \
    "$container"
"${BUILDAH[@]}" commit --quiet --format docker "$container" "$BASE" >/dev/null
echo "image-base.sh: committed $BASE" >&2
