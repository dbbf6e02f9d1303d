#!/usr/bin/env bash
# Live-capture benchmark (never a test; needs root): the highest replay rate `bittap live`
# takes without losing a frame, AF_PACKET fanout against libpcap, with 1 and with 2 workers;
# and the speed-up of `bittap analyze --threads 2` over `--threads 1` on the bench capture.
#
# usage: sudo scripts/bench-live.sh [--size-mb N] [--packets N] [--live-only]
#   --size-mb N   size of the bench capture built by tools/benchcap (default 1100 MiB, as bench.sh)
#   --packets N   packets replayed per live step (default 300000), from the bench capture
#   --live-only   skip the analyze comparison
# env: BITTAP_BENCH_DIR (default /tmp/bittap-bench-live), BENCH_RUNS (default 3) analyze runs.
#
# Live: a private network namespace with a veth pair; tcpreplay sends at --mbps rates that
# double from 250 Mbit/s until a frame is lost, then --topspeed. A frame is lost when bittap
# reports a kernel or queue drop, or reads fewer frames than tcpreplay sent (the veth's
# backlog drops before any capture sees the frame). tcpreplay shares the CPUs with bittap,
# so on a small machine the figure is a floor, not the NIC's limit. One run: ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
size_mb=1100
packets=300000
live_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) size_mb=${2:?}; shift 2 ;;
    --packets) packets=${2:?}; shift 2 ;;
    --live-only) live_only=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
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
if [ "$live_only" -eq 0 ]; then
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
fi

# ---- live ---------------------------------------------------------------------------------
ns=bittap-bench-$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link add rp type veth peer name cp
for k in all default rp cp; do ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$k.disable_ipv6=1"; done
for i in rp cp; do ip netns exec "$ns" ip link set "$i" mtu 65535 up; done

# One step: prints "lost pps mbps ns" (lost: kernel + queue drops + frames sent but not read;
# ns: bittap's CPU time, user and system, per frame read).
step() {
  local backend=$1 workers=$2 rate=$3 out=$dir/live.err pid
  ip netns exec "$ns" "$bin" live -i cp -q --capture "$backend" --threads "$workers" \
    --series /dev/null --buffer-size 67108864 2> "$out" &
  pid=$!
  for _ in $(seq 100); do grep -q "capturing on" "$out" && break; sleep 0.05; done
  # `ip netns exec` execs bittap in place: $pid is bittap's. CPU ticks (10 ms) from here on,
  # so the start (AF_PACKET rings are allocated and zeroed then) is left out.
  local ticks0
  ticks0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local speed=(--mbps "$rate")
  [ "$rate" = top ] && speed=(--topspeed)
  local rep
  rep=$(ip netns exec "$ns" tcpreplay -i rp --preload-pcap --limit "$packets" "${speed[@]}" "$cap" 2>&1)
  sleep 0.5
  local ticks
  ticks=$(( $(awk '{print $14 + $15}' "/proc/$pid/stat") - ticks0 ))
  kill -TERM "$pid"; wait "$pid" || true
  local line k q r sent
  line=$(grep "stopped:" "$out")
  k=$(sed -E 's/.*kernel ([0-9]+).*/\1/' <<<"$line")
  q=$(sed -E 's/.*queue ([0-9]+).*/\1/' <<<"$line")
  r=$(sed -E 's/.*read ([0-9]+) packets.*/\1/' <<<"$line")
  sent=$(grep -oE 'Successful packets: +[0-9]+' <<<"$rep" | awk '{print $3}')
  local pps mbps
  pps=$(grep -oE 'Rated: [0-9.]+ Bps, [0-9.]+ Mbps, [0-9.]+ pps' <<<"$rep" | awk '{print $6}')
  mbps=$(grep -oE 'Rated: [0-9.]+ Bps, [0-9.]+ Mbps' <<<"$rep" | awk '{print $4}')
  local lost=$((k + q + ${sent:-0} - r))
  [ "$lost" -ge 0 ] || lost=0
  local ns_per=$(( r > 0 ? ticks * 10000000 / r : 0 ))
  echo "$lost ${pps:-0} ${mbps:-0} $ns_per"
}

declare -A best cpu500
for backend in pcap afpacket; do
  for workers in 1 2; do
    b="0 0"
    for rate in 250 500 1000 2000 4000 8000 top; do
      read -r lost pps mbps cpu < <(step "$backend" "$workers" "$rate")
      echo "$backend workers=$workers target=$rate Mbit/s: achieved $mbps Mbit/s, $pps pkts/s, lost $lost, bittap CPU $cpu ns/frame" >&2
      [ "$rate" = 500 ] && cpu500[$backend$workers]=$cpu
      [ "$lost" -eq 0 ] || { echo "live --capture $backend --threads $workers: first loss at $mbps Mbit/s ($pps pkts/s)"; break; }
      if awk -v a="$pps" -v b="${b#* }" 'BEGIN {exit !(a > b)}'; then b="$mbps $pps"; fi
    done
    best[$backend$workers]=$b
    echo "live --capture $backend --threads $workers: highest lossless replay rate ${b% *} Mbit/s (${b#* } pkts/s)"
  done
done
awk -v p1="${best[pcap1]#* }" -v p2="${best[pcap2]#* }" -v a1="${best[afpacket1]#* }" -v a2="${best[afpacket2]#* }" 'BEGIN {
  printf "afpacket / pcap, 1 worker   %s\n", (p1 > 0 ? sprintf("%.2f x", a1 / p1) : "n/a")
  printf "afpacket / pcap, 2 workers  %s\n", (p2 > 0 ? sprintf("%.2f x", a2 / p2) : "n/a")
  printf "2 / 1 workers, pcap         %s\n", (p1 > 0 ? sprintf("%.2f x", p2 / p1) : "n/a")
  printf "2 / 1 workers, afpacket     %s\n", (a1 > 0 ? sprintf("%.2f x", a2 / a1) : "n/a")
}'
# CPU per frame at 500 Mbit/s (every configuration takes that rate without loss here), all
# of bittap's threads from the replay's start to SIGTERM.
for k in pcap1 pcap2 afpacket1 afpacket2; do
  echo "bittap CPU at 500 Mbit/s, ${k%[12]} ${k: -1} worker(s): ${cpu500[$k]:-n/a} ns/frame"
done
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared: figures are noisy)"
