#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (tests/browser) unless it is there.
# Idempotent: with /usr/bin/chromium present it does nothing. Playwright drives this browser
# (executable_path=/usr/bin/chromium); it never downloads one: never run `playwright install`.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-browser.sh: $CHROMIUM is missing; as root run:" >&2
        echo "  apt-get update && apt-get install -y chromium" >&2
        exit 1
    fi
    SUDO="sudo"
fi

echo "install-browser.sh: installing Debian's chromium" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
"$CHROMIUM" --version >&2
