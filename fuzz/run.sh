#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a while from its seeds, one at a time, with
# debug assertions (overflow and `unsafe` preconditions checked) and no sanitizer: stable
# Rust, see fuzz/README.md. New inputs go to fuzz/corpus/TARGET (not committed); a crash
# stops the run with the target's name and leaves the input in fuzz/artifacts/TARGET.
#   bash fuzz/run.sh [--seconds N] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=15
if [ "${1:-}" = "--seconds" ]; then secs=$2; shift 2; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
python3 make-seeds.py >/dev/null
cargo fuzz build -s none -a >/dev/null 2>&1 || cargo fuzz build -s none -a
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  if ! cargo fuzz run -s none -a "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $t FAILED (input in fuzz/artifacts/$t)" >&2
    rm -f "$log"
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  echo "fuzz: $t ok: $execs executions in ${secs}s, coverage $cov"
  rm -f "$log"
done
