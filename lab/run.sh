#!/usr/bin/env bash
# bittap lab: build private network namespaces, run real BitTorrent clients and negative services,
# capture each scenario with tcpdump.  usage:
#   lab/run.sh [scenario...] [--out DIR] [--size 160K] [--duration S]     (default: all, /tmp/bittap-lab)
#   lab/run.sh list
#   lab/run.sh ... --install      also label the captures and install them into pcaps/lab/
# Needs root and the packages from lab/deps.sh. Cleans up its namespaces and processes on exit.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "lab/run.sh: must run as root (network namespaces, tcpdump)" >&2; exit 1; }
INSTALL=0; OUT=/tmp/bittap-lab; ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --install) INSTALL=1 ;;
    --out) OUT="$2"; ARGS+=("$1" "$2"); shift ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
cleanup() { "$PY" "$HERE/lab.py" --cleanup >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
# hard bound on the whole run: 4 minutes per scenario at most
N=$(printf '%s\n' "${ARGS[@]:-}" | grep -cv -- '^-' || true); [ "$N" -gt 0 ] || N=16
timeout --kill-after=10 $((N * 240)) "$PY" "$HERE/lab.py" "${ARGS[@]}"
if [ "$INSTALL" = 1 ]; then
  "$PY" "$HERE/label.py" "$OUT" --install "$HERE/../pcaps/lab"
else
  "$PY" "$HERE/label.py" "$OUT"
fi
