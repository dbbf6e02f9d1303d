#!/usr/bin/env bash
# Live-capture benchmark (never a test; needs root): the highest replay rate `bittap live`
# takes with zero kernel and queue drops, with 1 and with 2 workers; and the speed-up of
# `bittap analyze --threads 2` over `--threads 1` on the bench capture.
#
# usage: sudo scripts/bench-live.sh [--size-mb N] [--packets N]
#   --size-mb N   size of the bench capture built by tools/benchcap (default 1100 MiB, as bench.sh)
#   --packets N   packets replayed per live step (default 300000), from the bench capture
# env: BITTAP_BENCH_DIR (default /tmp/bittap-bench-live), BENCH_RUNS (default 3) analyze runs.
#
# Live: a private network namespace with a veth pair; tcpreplay sends at --mbps rates that
# double from 250 Mbit/s until bittap reports drops, then --topspeed. tcpreplay shares the
# CPUs with bittap, so on a small machine the figure is a floor, not the NIC's limit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
size_mb=1100
packets=300000
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) size_mb=${2:?}; shift 2 ;;
    --packets) packets=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bench-live.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-live.sh: needs root (network namespace, tcpreplay)" >&2; exit 2; }
command -v tcpreplay >/dev/null || { echo "bench-live.sh: install tcpreplay (scripts/deps.sh)" >&2; exit 2; }
runs=${BENCH_RUNS:-3}

cargo build --release -q
cargo build --release -q --manifest-path tools/benchcap/Cargo.toml
bin=$root/target/release/bittap
dir=${BITTAP_BENCH_DIR:-/tmp/bittap-bench-live}
mkdir -p "$dir"
cap=$dir/bench.pcap
if [ ! -f "$cap" ] || [ "$(stat -c %s "$cap")" -lt $((size_mb * 1000000)) ]; then
  echo "== building $cap ($size_mb MiB)" >&2
  mapfile -t inputs < <(find pcaps -type f -not -path 'pcaps/crafted/bad/*' | LC_ALL=C sort)
  tools/benchcap/target/release/benchcap --out "$cap" --size-mb "$size_mb" "${inputs[@]}" >&2
fi
# The live steps replay the first $packets packets (tcpreplay --limit).
total=$(capinfos -c -M -T -r "$cap" | tail -n 1 | cut -f2)
cat "$cap" > /dev/null

# ---- analyze --threads 1 vs 2 -----------------------------------------------------------
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
t1=(); t2=(); c1=(); c2=()
for i in $(seq 1 "$runs"); do
  for n in 1 2; do
    s=$(date +%s%N)
    cpu=$( { /usr/bin/time -f "%U %S" "$bin" analyze "$cap" --series /dev/null -q --no-progress --threads "$n" >/dev/null; } 2>&1 | tail -n 1 | awk '{print $1 + $2}')
    e=$(date +%s%N)
    if [ "$n" -eq 1 ]; then t1+=($((e - s))); c1+=("$cpu"); else t2+=($((e - s))); c2+=("$cpu"); fi
  done
done
m1=$(median "${t1[@]}"); m2=$(median "${t2[@]}")
awk -v p="$total" -v a="$m1" -v b="$m2" -v r="$runs" -v ca="$(median "${c1[@]}")" -v cb="$(median "${c2[@]}")" 'BEGIN {
  printf "bench capture        %d packets\n", p
  printf "analyze --threads 1  %.3f s wall (%.0f pkts/s), %.2f s CPU, median of %d\n", a / 1e9, p / (a / 1e9), ca, r
  printf "analyze --threads 2  %.3f s wall (%.0f pkts/s), %.2f s CPU, median of %d\n", b / 1e9, p / (b / 1e9), cb, r
  printf "speed-up             %.2f x (wall)\n", a / b
}'

# ---- live ---------------------------------------------------------------------------------
ns=bittap-bench-$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link add rp type veth peer name cp
for k in all default rp cp; do ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$k.disable_ipv6=1"; done
for i in rp cp; do ip netns exec "$ns" ip link set "$i" mtu 65535 up; done

# One step: prints "drops pps mbps".
step() {
  local workers=$1 rate=$2 out=$dir/live.err pid
  ip netns exec "$ns" "$bin" live -i cp -q --threads "$workers" --series /dev/null \
    --buffer-size 67108864 2> "$out" &
  pid=$!
  for _ in $(seq 100); do grep -q "capturing on" "$out" && break; sleep 0.05; done
  local speed=(--mbps "$rate")
  [ "$rate" = top ] && speed=(--topspeed)
  local rep
  rep=$(ip netns exec "$ns" tcpreplay -i rp --preload-pcap --limit "$packets" "${speed[@]}" "$cap" 2>&1)
  sleep 0.5
  kill -TERM "$pid"; wait "$pid" || true
  local line k q
  line=$(grep "stopped:" "$out")
  k=$(sed -E 's/.*kernel ([0-9]+).*/\1/' <<<"$line")
  q=$(sed -E 's/.*queue ([0-9]+).*/\1/' <<<"$line")
  local pps mbps
  pps=$(grep -oE 'Rated: [0-9.]+ Bps, [0-9.]+ Mbps, [0-9.]+ pps' <<<"$rep" | awk '{print $6}')
  mbps=$(grep -oE 'Rated: [0-9.]+ Bps, [0-9.]+ Mbps' <<<"$rep" | awk '{print $4}')
  echo "$((k + q)) ${pps:-0} ${mbps:-0}"
}

for workers in 1 2; do
  best="none"; best_pps=0
  for rate in 250 500 1000 2000 4000 8000 top; do
    read -r drops pps mbps < <(step "$workers" "$rate")
    echo "workers=$workers target=$rate Mbit/s: achieved $mbps Mbit/s, $pps pkts/s, drops $drops" >&2
    [ "$drops" -eq 0 ] || { echo "live --threads $workers: first drops at $mbps Mbit/s ($pps pkts/s)"; break; }
    if awk -v a="$pps" -v b="$best_pps" 'BEGIN {exit !(a > b)}'; then
      best="$mbps Mbit/s ($pps pkts/s)"; best_pps=$pps
    fi
  done
  echo "live --threads $workers: highest zero-drop replay rate $best"
done
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared: figures are noisy)"
