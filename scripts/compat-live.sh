#!/usr/bin/env bash
# `make compat-live`: the compatibility test against Backstage as it answers today rather
# than against the committed recording. Records a running Backstage peer into a scratch
# file (scripts/record-compat-fixtures.sh: same driver, config and mock IdP as the test),
# then runs tests/compat/test_backstage_peer.py with that recording. The two servers
# take turns on ports 7007/8080, Backstage first.
#
#   scripts/compat-live.sh [--check]    --check: only say whether a peer is there
#   PEER_DIR, PEER_WORK, NODEDIR: as for scripts/record-compat-fixtures.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = --check ]; then
  exec "$root/scripts/record-compat-fixtures.sh" --check
fi
scratch=$(mktemp -d)
"$root/scripts/record-compat-fixtures.sh" --out "$scratch/transcripts.md"
cd "$root"
COMPAT_TRANSCRIPTS="$scratch/transcripts.md" "${PYTHON_BIN:-.venv/bin/python}" -m pytest \
  tests/compat/test_backstage_peer.py -q
echo "Backstage's live recording: $scratch/transcripts.md"
echo "(compare with tests/compat/fixtures/transcripts.md to see what moved since it was recorded)"
