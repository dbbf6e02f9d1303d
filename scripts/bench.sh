#!/usr/bin/env bash
# Speed benchmark (never a test): bittap vs `tcpdump -r FILE -w /dev/null` on one ≥ 1 GB capture.
#
# usage: scripts/bench.sh [--size-mb N] [--keep] [INPUT...]
#   --size-mb N  size of the bench capture in MiB (default 1100)
#   --keep       keep the bench capture for the next run (it is reused while the inputs, the
#                size and tools/benchcap are unchanged); without it the capture is deleted
#   INPUT...     captures or directories (default: pcaps/ recursively without pcaps/crafted/bad,
#                plus ../shared/corpus/ndpi/pcap when present)
# env: BITTAP_BENCH_DIR (default /tmp/bittap-bench) holds the capture, outside the repository.
#      BENCH_RUNS (default 3): runs of each program, alternating; the median is reported.
#      BENCH_OTHER=BIN: also time another bittap binary (an older build, say) in the same
#      alternation, and print its ratio beside this build's.
#      BENCH_THREADS (default 2; 0: not at all): also time `--threads N` of this build (and of
#      BENCH_OTHER) in the same alternation, and print its speed against one thread.
#
# tools/benchcap builds the capture deterministically: copies of the inputs merged in time
# order, each copy with its IPv4/IPv6 addresses rewritten (bijectively) so its flows are
# distinct, shifted in time so the copies overlap; mixed packet sizes come from the inputs.
# bittap runs on one thread: `bittap analyze FILE --series /dev/null -q --no-progress`
# (and with `--threads N`, see BENCH_THREADS).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

size_mb=1100
keep=0
inputs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) size_mb=${2:?--size-mb needs a value}; shift 2 ;;
    --size-mb=*) size_mb=${1#*=}; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    *) inputs+=("$1"); shift ;;
  esac
done
[[ "$size_mb" =~ ^[0-9]+$ ]] && [ "$size_mb" -gt 0 ] || { echo "bench.sh: --size-mb wants a positive integer" >&2; exit 2; }
runs=${BENCH_RUNS:-3}

# ---- tools -----------------------------------------------------------------------------
need=()
command -v tcpdump >/dev/null || need+=(tcpdump)
[ -x /usr/bin/time ] || need+=(time)
command -v capinfos >/dev/null || need+=(wireshark-common)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bench.sh: installing ${need[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2 ||
    { echo "bench.sh: could not install ${need[*]}" >&2; exit 2; }
fi
tcpdump_bin=$(command -v tcpdump)

echo "== building (release)" >&2
cargo build --release -q
cargo build --release -q --manifest-path tools/benchcap/Cargo.toml
bin=$root/target/release/bittap
benchcap=$root/tools/benchcap/target/release/benchcap

# ---- the bench capture ------------------------------------------------------------------
if [ ${#inputs[@]} -eq 0 ]; then
  mapfile -t inputs < <(find pcaps -type f -not -path 'pcaps/crafted/bad/*' | LC_ALL=C sort)
  [ -d ../shared/corpus/ndpi/pcap ] && inputs+=(../shared/corpus/ndpi/pcap)
fi
dir=${BITTAP_BENCH_DIR:-/tmp/bittap-bench}
mkdir -p "$dir"
case "$(cd "$dir" && pwd -P)/" in
  "$(pwd -P)/"*) echo "bench.sh: BITTAP_BENCH_DIR must be outside the repository" >&2; exit 2 ;;
esac
cap=$dir/bench.pcap
stampf=$dir/bench.stamp
# What the capture depends on: size, inputs' contents, and the generator's source.
stamp=$( {
  echo "size_mb=$size_mb"
  for a in "${inputs[@]}"; do
    if [ -d "$a" ]; then find "$a" -type f | LC_ALL=C sort; else echo "$a"; fi
  done | while IFS= read -r f; do printf '%s  %s\n' "$(sha256sum < "$f" | cut -c1-64)" "$f"; done
  cat tools/benchcap/Cargo.toml tools/benchcap/Cargo.lock tools/benchcap/src/*.rs
} | sha256sum | cut -c1-64)
if [ -f "$cap" ] && [ -f "$stampf" ] && [ "$(cat "$stampf")" == "$stamp" ]; then
  echo "== reusing $cap (same inputs, size and generator)" >&2
else
  rm -f "$cap" "$stampf"
  echo "== building $cap ($size_mb MiB)" >&2
  "$benchcap" --out "$cap" --size-mb "$size_mb" "${inputs[@]}" >&2
  echo "$stamp" > "$stampf"
fi
cleanup() { if [ "$keep" -eq 0 ]; then rm -f "$cap" "$stampf"; fi; rm -f "$dir"/rss.*; }
trap cleanup EXIT

echo "== counting (capinfos)" >&2
line=$(capinfos -c -d -M -T -r "$cap" | tail -n 1)
packets=$(cut -f2 <<<"$line")
bytes=$(cut -f3 <<<"$line")
file_bytes=$(stat -c %s "$cap")

echo "== warming the page cache" >&2
cat "$cap" > /dev/null

# Wall time (ns) and peak RSS (kB) of one command.
measure() {
  local rssf=$dir/rss.$$ t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -f %M -o "$rssf" "$@" >/dev/null 2>"$dir/rss.err.$$" ||
    { echo "bench.sh: failed: $*" >&2; cat "$dir/rss.err.$$" >&2; exit 1; }
  t1=$(date +%s%N)
  echo "$((t1 - t0)) $(tail -n 1 "$rssf")"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
td_t=(); bt_t=(); bt_rss=(); td_rss=(); ot_t=(); btn_t=(); btn_rss=(); otn_t=()
other=${BENCH_OTHER:-}
threads=${BENCH_THREADS:-2}
[[ "$threads" =~ ^[0-9]+$ ]] || { echo "bench.sh: BENCH_THREADS wants a number" >&2; exit 2; }
for i in $(seq 1 "$runs"); do
  echo "== run $i/$runs: tcpdump" >&2
  read -r t r < <(measure "$tcpdump_bin" -r "$cap" -w /dev/null)
  td_t+=("$t"); td_rss+=("$r")
  echo "== run $i/$runs: bittap" >&2
  read -r t r < <(measure "$bin" analyze "$cap" --series /dev/null -q --no-progress)
  bt_t+=("$t"); bt_rss+=("$r")
  if [ -n "$other" ]; then
    echo "== run $i/$runs: $other" >&2
    read -r t r < <(measure "$other" analyze "$cap" --series /dev/null -q --no-progress)
    ot_t+=("$t")
  fi
  if [ "$threads" -gt 0 ]; then
    echo "== run $i/$runs: bittap --threads $threads" >&2
    read -r t r < <(measure "$bin" analyze "$cap" --series /dev/null -q --no-progress --threads "$threads")
    btn_t+=("$t"); btn_rss+=("$r")
    if [ -n "$other" ]; then
      echo "== run $i/$runs: $other --threads $threads" >&2
      read -r t r < <(measure "$other" analyze "$cap" --series /dev/null -q --no-progress --threads "$threads")
      otn_t+=("$t")
    fi
  fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

td=$(median "${td_t[@]}")
bt=$(median "${bt_t[@]}")
rss=$(printf '%s\n' "${bt_rss[@]}" | sort -n | tail -n 1)
td_rss_max=$(printf '%s\n' "${td_rss[@]}" | sort -n | tail -n 1)
secs() { printf '%s\n' "$@" | awk '{printf "%s%.3f", (NR > 1 ? " " : ""), $1 / 1e9}'; }

awk -v p="$packets" -v b="$bytes" -v fb="$file_bytes" -v td="$td" -v bt="$bt" -v rss="$rss" \
    -v tdrss="$td_rss_max" -v tds="$(secs "${td_t[@]}")" -v bts="$(secs "${bt_t[@]}")" \
    -v runs="$runs" -v cpus="$(nproc)" -v lb="$load_before" -v la="$load_after" \
    -v cap="$cap" 'BEGIN {
  tdr = p / (td / 1e9); btr = p / (bt / 1e9)
  printf "bench capture      %s: %.0f MB on disk\n", cap, fb / 1e6
  printf "packets            %d\n", p
  printf "bytes (wire)       %d (%.2f GB)\n", b, b / 1e9
  printf "mean packet size   %.1f B\n", b / p
  printf "tcpdump -r -w null %.3f s median of %d [%s], %.0f pkts/s, %.2f Gbit/s, peak RSS %.1f MB\n", td / 1e9, runs, tds, tdr, b * 8 / (td / 1e9) / 1e9, tdrss / 1024
  printf "bittap analyze     %.3f s median of %d [%s]\n", bt / 1e9, runs, bts
  printf "bittap pkts/s      %.0f\n", btr
  printf "bittap Gbit/s      %.3f (wire bits)\n", b * 8 / (bt / 1e9) / 1e9
  printf "bittap peak RSS    %.1f MB\n", rss / 1024
  printf "ratio              %.3f x tcpdump packet rate (bar: 0.35, one thread)\n", btr / tdr
  printf "machine            %d CPUs, load average %s before, %s after (shared machine: figures are noisy)\n", cpus, lb, la
}'
if [ -n "$other" ]; then
  ot=$(median "${ot_t[@]}")
  awk -v p="$packets" -v td="$td" -v bt="$bt" -v ot="$ot" -v o="$other" -v ots="$(secs "${ot_t[@]}")" 'BEGIN {
    printf "other binary       %s: %.3f s median [%s], ratio %.3f x tcpdump; this build / other: %.3f x speed\n", o, ot / 1e9, ots, (p / (ot / 1e9)) / (p / (td / 1e9)), ot / bt
  }'
fi
if [ "$threads" -gt 0 ]; then
  btn=$(median "${btn_t[@]}")
  btn_rss_max=$(printf '%s\n' "${btn_rss[@]}" | sort -n | tail -n 1)
  awk -v p="$packets" -v bt="$bt" -v btn="$btn" -v n="$threads" -v s="$(secs "${btn_t[@]}")" \
      -v rss="$btn_rss_max" -v runs="$runs" 'BEGIN {
    printf "bittap --threads %d %.3f s median of %d [%s], %.0f pkts/s, peak RSS %.1f MB: %.3f x one thread\n", n, btn / 1e9, runs, s, p / (btn / 1e9), rss / 1024, bt / btn
  }'
  if [ -n "$other" ]; then
    otn=$(median "${otn_t[@]}")
    awk -v ot="$ot" -v otn="$otn" -v btn="$btn" -v n="$threads" -v s="$(secs "${otn_t[@]}")" 'BEGIN {
      printf "other --threads %d  %.3f s median [%s]: %.3f x its one thread; this build / other with %d threads: %.3f x speed\n", n, otn / 1e9, s, ot / otn, n, otn / btn
    }'
  fi
fi
