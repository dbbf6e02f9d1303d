#!/usr/bin/env bash
# Evaluate bittap's per-flow verdicts against ground truth.
#   scripts/eval.sh [--bin PATH] [--compare PATH] [--out DIR] [--lab-only|--corpus-only] [--show N]
# Runs `bittap analyze` over every capture listed in pcaps/lab/labels.tsv (the lab captures, see
# pcaps/MANIFEST.tsv), over pcaps/crafted if it has a labels.tsv, and over ../shared/corpus/ndpi when
# present, then prints flow and byte precision/recall per scenario and per kind, the false positives
# per negative kind × bittap method (signature/correlation/heuristic/port; flows and bytes), and every
# false positive and false negative (scripts/score_lab.py). If ../shared/tools/score_flows.py exists its
# summary is printed too. Builds target/release/bittap if it is missing. For the nDPI corpus only
# captures and kinds with BitTorrent flows or false positives get a table row. --compare PATH also runs
# a second binary over the same captures and prints both binaries' false positives per negative kind ×
# method side by side (scripts/fp_compare.py), for every capture and for the `-1dir` ones alone.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BIN="$ROOT/target/release/bittap"; OUT="${TMPDIR:-/tmp}/bittap-eval"; MODE=all; SHOW=1000; CMP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift ;;
    --compare) CMP="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --lab-only) MODE=lab ;;
    --corpus-only) MODE=corpus ;;
    --show) SHOW="$2"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "eval.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
PY="$(command -v python3)"
if [ ! -x "$BIN" ]; then
  echo "eval.sh: building bittap (cargo build --release)" >&2
  cargo build --release --quiet
fi
[ -x "$BIN" ] || { echo "eval.sh: no bittap binary at $BIN" >&2; exit 1; }
[ -z "$CMP" ] || [ -x "$CMP" ] || { echo "eval.sh: no bittap binary at $CMP (--compare)" >&2; exit 1; }

# analyze SET_NAME LABELS PCAP_DIR [BIN]: one flows CSV per capture listed in LABELS
analyze() {
  local name="$1" labels="$2" dir="$3" bin="${4:-$BIN}" pred="$OUT/$1" n=0 fail=0
  rm -rf "$pred"; mkdir -p "$pred"
  while IFS= read -r pcap; do
    [ -n "$pcap" ] || continue
    if [ ! -f "$dir/$pcap" ]; then echo "eval.sh: $dir/$pcap missing" >&2; continue; fi
    n=$((n + 1))
    mkdir -p "$(dirname "$pred/$pcap")"
    if ! "$bin" analyze ${BITTAP_ARGS:-} "$dir/$pcap" --flows "$pred/$pcap.csv" --series "$pred/$pcap.series.csv" \
         >"$pred/$pcap.log" 2>&1; then
      fail=$((fail + 1)); echo "eval.sh: bittap failed on $pcap (see $pred/$pcap.log)" >&2
    fi
  done < <(grep -v '^#' "$labels" | awk -F'\t' 'NR==1{for(i=1;i<=NF;i++) if($i=="pcap"||$i=="file") c=i; next} {print $c}' | sort -u)
  echo "analyzed $n captures of $name ($fail failed) -> $pred" >&2
}

# compare SET_NAME LABELS PCAP_DIR [--compact]: the --compare binary over the same set, FP tables side by side
compare() {
  local name="$1" labels="$2" dir="$3" a b; shift 3
  [ -n "$CMP" ] || return 0
  analyze "$name-compare" "$labels" "$dir" "$CMP"
  a="$(basename "$BIN")"; b="$(basename "$CMP")"
  [ "$a" != "$b" ] || b="$b(compare)"
  "$PY" "$ROOT/scripts/fp_compare.py" "$labels" "$a=$OUT/$name" "$b=$OUT/$name-compare" "$@"
  if grep -q -- '-1dir' "$labels"; then
    echo; "$PY" "$ROOT/scripts/fp_compare.py" "$labels" "$a=$OUT/$name" "$b=$OUT/$name-compare" --pcaps -1dir
  fi
  echo
}

score() {
  local name="$1" labels="$2"; shift 2
  "$PY" "$ROOT/scripts/score_lab.py" "$labels" "$OUT/$name" --title "$name ($labels)" --show "$SHOW" "$@"
  local shared="$ROOT/../shared/tools/score_flows.py"
  # the shared scorer reads the nDPI-style columns (ip1/port1/...) only
  if [ -f "$shared" ] && head -1 "$labels" | tr '\t' '\n' | grep -qx ip1; then
    echo "-- ../shared/tools/score_flows.py summary"
    "$PY" "$shared" "$labels" "$OUT/$name" --show 0 | sed -n '1,4p' || true
  fi
  echo
}

if [ "$MODE" != corpus ]; then
  analyze lab pcaps/lab/labels.tsv pcaps/lab
  score lab pcaps/lab/labels.tsv
  compare lab pcaps/lab/labels.tsv pcaps/lab
  for t in pcaps/crafted/labels.tsv pcaps/crafted/FLOWS.tsv; do
    if [ -f "$t" ]; then analyze crafted "$t" pcaps/crafted; score crafted "$t"; break; fi
  done
fi
if [ "$MODE" != lab ]; then
  CORPUS="$ROOT/../shared/corpus/ndpi"
  if [ -f "$CORPUS/labels.tsv" ]; then
    analyze ndpi "$CORPUS/labels.tsv" "$CORPUS/pcap"
    score ndpi "$CORPUS/labels.tsv" --compact
    compare ndpi "$CORPUS/labels.tsv" "$CORPUS/pcap" --compact
  else
    echo "(no ../shared/corpus/ndpi here; corpus skipped)"
  fi
fi
