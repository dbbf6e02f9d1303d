#!/usr/bin/env bash
# bittap lab: build private network namespaces, run real BitTorrent clients and negative services,
# capture each scenario with tcpdump, then label the captures (lab/label.py).
#   lab/run.sh [scenario...] [--out DIR] [--size 56K] [--duration S] [--linger S] [--install]
#   lab/run.sh list
# Default: every scenario, into /tmp/bittap-lab. --install copies the captures, labels.tsv and
# MANIFEST.tsv into pcaps/lab/ and pcaps/ (only do that with the default small --size).
# Needs root and the packages from lab/deps.sh. Removes its namespaces and processes on exit.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY=/usr/bin/python3
INSTALL=0; OUT=/tmp/bittap-lab; ARGS=(); NSC=0
while [ $# -gt 0 ]; do
  case "$1" in
    --install) INSTALL=1 ;;
    --out) OUT="$2"; ARGS+=("$1" "$2"); shift ;;
    --size|--duration|--linger) ARGS+=("$1" "$2"); shift ;;
    list) exec "$PY" "$HERE/lab.py" list ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) ARGS+=("$1"); NSC=$((NSC + 1)) ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "lab/run.sh: must run as root (network namespaces, tcpdump)" >&2; exit 1; }
RUNID="r$(( $$ % 100000 ))"
LABPID=""
cleanup() {
  # stop the lab run (it cleans up after itself on SIGTERM), then remove anything left from its state file
  if [ -n "$LABPID" ] && kill -0 "$LABPID" 2>/dev/null; then kill -TERM "$LABPID" 2>/dev/null || true; wait "$LABPID" 2>/dev/null || true; fi
  "$PY" "$HERE/lab.py" --cleanup --runid "$RUNID" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'echo "interrupted: cleaning up" >&2; cleanup; trap - EXIT; exit 130' INT TERM
[ "$NSC" -gt 0 ] || NSC=$("$PY" "$HERE/lab.py" list | grep -vc 'not in the default set')
# hard bound on the whole run: 3 minutes per scenario at most (each one bounds itself more tightly)
# (in the background so that a signal to this script is handled at once)
timeout --kill-after=10 $((NSC * 180)) "$PY" "$HERE/lab.py" --runid "$RUNID" "${ARGS[@]}" &
LABPID=$!
wait "$LABPID"
LABPID=""
if [ "$INSTALL" = 1 ]; then
  "$PY" "$HERE/label.py" "$OUT" --install "$HERE/../pcaps/lab"
else
  "$PY" "$HERE/label.py" "$OUT"
fi
