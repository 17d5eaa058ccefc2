#!/usr/bin/env bash
# Record real Backstage's answers to the compatibility driver again (the fixtures that
# tests/compat/test_backstage_peer.py compares this server with). Not part of `make test`:
# it installs the peer's ~700 npm packages and builds better-sqlite3 (~2-3 min), which a
# plain clone has no business needing. See tests/compat/fixtures/README.md.
#
#   scripts/record-compat-fixtures.sh [--out FILE]   record (default: the committed fixture)
#   scripts/record-compat-fixtures.sh --check        only say whether everything is there
#
#   PEER_DIR   the Backstage reference peer (default: ../shared/peers/backstage beside the
#              repository, the workspace's read-only copy)
#   PEER_WORK  where the peer is copied and installed (default: a new temporary directory;
#              name one to reuse its installation on the next run)
#   NODEDIR    where the Node headers are (default /usr: include/node/node.h)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
compat=$root/tests/compat
peer_dir=$(realpath -m "${PEER_DIR:-$root/../shared/peers/backstage}")
out=$compat/fixtures/transcripts.md
check_only=false
while [ $# -gt 0 ]; do
  case $1 in
    --check) check_only=true ;;
    --out) out=$2; shift ;;
    *) echo "usage: $0 [--check] [--out FILE]" >&2; exit 64 ;;
  esac
  shift
done

# Everything that is missing, all at once: one run should say what to provide.
missing=()
if [ ! -d "$peer_dir" ]; then
  missing+=("the Backstage peer: $peer_dir does not exist (set PEER_DIR to a copy of the workspace's shared/peers/backstage)")
else
  for f in index.js package.json package-lock.json install.sh start.sh stop.sh; do
    [ -f "$peer_dir/$f" ] || missing+=("$peer_dir/$f (PEER_DIR is not the Backstage peer)")
  done
fi
for tool in node npm curl make g++ python3; do
  command -v "$tool" >/dev/null || missing+=("$tool (the peer's install.sh and start.sh need it)")
done
[ -f "${NODEDIR:-/usr}/include/node/node.h" ] ||
  missing+=("${NODEDIR:-/usr}/include/node/node.h (Node headers, to build better-sqlite3; set NODEDIR)")
# start.sh waits for *something* to answer on these ports: another server there would be
# recorded as Backstage.
for port in 7007 8080; do
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
    missing+=("a free port $port (something already answers there; stop it first)")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Cannot run against a real Backstage; missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 2
fi
echo "Backstage peer: $peer_dir"
if $check_only; then exit 0; fi

# shared/ is read-only and install.sh writes node_modules/ and .venv/: work on a copy.
if [ -n "${PEER_WORK:-}" ]; then
  work=$PEER_WORK
  discard=
else
  work=$(mktemp -d)
  discard=$work  # ~360 MB of node_modules nobody asked to keep
fi
peer=$work/backstage
trap 'rm -rf "$discard"' EXIT
if [ ! -f "$peer/.compat-installed" ]; then
  rm -rf "$peer"
  mkdir -p "$work"
  cp -r "$peer_dir" "$peer"
  chmod -R u+w "$peer"
  echo "installing the peer in $peer (npm ci + better-sqlite3 from source, ~2-3 min)"
  (cd "$peer" && ./install.sh)
  touch "$peer/.compat-installed"
fi

# Record with exactly what the test runs against this server, and say where the peer's
# own copies have moved on since they were copied into the repository.
for pair in driver/drive.py:drive.py peer_idp/idp.mjs:idp.mjs fixtures/app-config.yaml:app-config.yaml; do
  ours=$compat/${pair%%:*}
  theirs=$peer_dir/${pair##*:}
  if ! cmp -s "$ours" "$theirs"; then
    echo "note: $theirs differs from ${ours#"$root"/}; recording with the repository's copy"
  fi
  cp "$ours" "$peer/${pair##*:}"
done

(cd "$peer" && ./stop.sh >/dev/null)  # a run interrupted before its trap leaves PID files
trap '(cd "$peer" && ./stop.sh); rm -rf "$discard"' EXIT
(cd "$peer" && ./start.sh)
mkdir -p "$(dirname "$out")"
(cd "$peer" && ./.venv/bin/python drive.py --out "$(realpath -m "$out")")
echo "recorded: $out"
