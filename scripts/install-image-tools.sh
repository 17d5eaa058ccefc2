#!/usr/bin/env bash
# Installs Debian's buildah and debootstrap for `make test-image` unless they are there
# (no Docker engine on these machines; scripts/image-base.sh makes the base image).
# Idempotent: with both present it does nothing.
set -euo pipefail

missing=()
for tool in buildah debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-image-tools.sh: ${missing[*]} missing; as root run:" >&2
        echo "  apt-get update && apt-get install -y buildah debootstrap" >&2
        exit 1
    fi
    SUDO="sudo"
fi
echo "install-image-tools.sh: installing Debian's ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq buildah debootstrap >/dev/null
