#!/usr/bin/env bash
# Conservation check: for every capture given (files or directories), the packets and wire
# bytes of bittap's per-minute series must equal what capinfos (Wireshark) counts.
# usage: scripts/conservation.sh CAPTURE|DIR...   (default: pcaps/ and ../shared/corpus/ndpi/pcap)
set -u
cd "$(dirname "$0")/.."
command -v capinfos >/dev/null || { echo "capinfos missing: apt-get install tshark (wireshark-common)" >&2; exit 2; }
bin=target/release/bittap
[ -x "$bin" ] || cargo build --release -q || exit 2
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  args=(pcaps)
  [ -d ../shared/corpus/ndpi/pcap ] && args+=(../shared/corpus/ndpi/pcap)
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ok=0; bad=0; skipped=0
while IFS= read -r f; do
  # Only captures capinfos reads without error: on corrupt or truncated files its counts
  # follow its own recovery rules (the integration tests pin bittap's exact counts there).
  if ! line=$(capinfos -c -d -M -T -r "$f" 2>/dev/null) || [ -z "$line" ]; then
    skipped=$((skipped + 1)); echo "skipped (capinfos reports an error): $f"; continue
  fi
  line=$(tail -n 1 <<<"$line")
  want_p=$(cut -f2 <<<"$line"); want_b=$(cut -f3 <<<"$line")
  "$bin" analyze "$f" --series "$tmp/s.csv" -q --no-progress 2>/dev/null
  got=$(awk -F, 'NR>1 {p+=$6; b+=$7} END {printf "%d\t%d", p, b}' "$tmp/s.csv" 2>/dev/null)
  if [ "$got" == "$want_p	$want_b" ]; then
    ok=$((ok + 1))
  else
    bad=$((bad + 1)); echo "MISMATCH $f: capinfos $want_p packets $want_b bytes, bittap ${got:-nothing}"
  fi
done < <(for a in "${args[@]}"; do
  if [ -d "$a" ]; then find "$a" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.gz' -o -name '*.cap' \) | sort; else echo "$a"; fi
done)
echo "conservation: $ok captures equal, $bad differ, $skipped skipped because capinfos reports an error"
[ "$bad" -eq 0 ]
