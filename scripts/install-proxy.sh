#!/usr/bin/env bash
# Installs Debian's tinyproxy, the real forward proxy of the corporate-network tests
# (tests/integration/test_corporate_network.py), unless it is there. Idempotent. The tests
# start their own tinyproxy process with their own config; the Debian service is not used.
set -euo pipefail

TINYPROXY=/usr/bin/tinyproxy
if [ -x "$TINYPROXY" ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-proxy.sh: $TINYPROXY is missing; as root run:" >&2
        echo "  apt-get update && apt-get install -y tinyproxy" >&2
        exit 1
    fi
    SUDO="sudo"
fi

echo "install-proxy.sh: installing Debian's tinyproxy" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The package's service would listen on 8888; the tests never use it.
$SUDO apt-get install -y -qq --no-install-recommends tinyproxy-bin >/dev/null 2>&1 \
    || $SUDO apt-get install -y -qq --no-install-recommends tinyproxy >/dev/null
"$TINYPROXY" -v >&2
