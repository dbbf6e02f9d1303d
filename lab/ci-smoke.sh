#!/usr/bin/env bash
# CI smoke test of the whole path: build lab hosts → real clients → capture → bittap analyze → score.
# Runs the quickest lab scenario (transmission-cli leecher ↔ python3-libtorrent seed via the lab HTTP
# tracker, 1 MB, plain TCP peer wire), checks the capture really holds a BitTorrent handshake, and that
# bittap's flows CSV marks every data-carrying peer-wire flow `bittorrent`. Installs nothing (see
# lab/deps.sh); needs root. Usually takes 20–40 s plus the bittap build.
#   lab/ci-smoke.sh [--bin PATH] [--out DIR] [--size 1M]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY=/usr/bin/python3
BIN="$ROOT/target/release/bittap"; OUT="${TMPDIR:-/tmp}/bittap-ci-smoke"; SIZE=1M
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --size) SIZE="$2"; shift ;;
    *) echo "ci-smoke: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
die() { echo "ci-smoke: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, tcpdump)"
missing=()
for t in ip tcpdump tshark transmission-cli timeout; do command -v "$t" >/dev/null || missing+=("$t"); done
[ -x "$PY" ] || missing+=("/usr/bin/python3")
"$PY" -c 'import libtorrent' 2>/dev/null || missing+=("python3-libtorrent (import libtorrent in /usr/bin/python3)")
if [ ! -x "$BIN" ]; then command -v cargo >/dev/null || missing+=("cargo (to build bittap)"); fi
[ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]} — install them with lab/deps.sh"
ip netns add "btl-probe-$$" 2>/dev/null && ip netns del "btl-probe-$$" || die "cannot create network namespaces here"

T0=$(date +%s)
RUNID="r$(( $$ % 100000 ))"
LABPID=""
cleanup() {
  # stop the lab run (it cleans up after itself on SIGTERM), then remove anything left from its state file
  if [ -n "$LABPID" ] && kill -0 "$LABPID" 2>/dev/null; then kill -TERM "$LABPID" 2>/dev/null || true; wait "$LABPID" 2>/dev/null || true; fi
  "$PY" "$HERE/lab.py" --cleanup --runid "$RUNID" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'echo "interrupted: cleaning up" >&2; cleanup; trap - EXIT; exit 130' INT TERM
rm -rf "$OUT"; mkdir -p "$OUT"
if [ ! -x "$BIN" ]; then
  echo "ci-smoke: building bittap" >&2
  (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
fi
echo "ci-smoke: running lab scenario ci-smoke ($SIZE)" >&2
timeout --kill-after=10 150 "$PY" "$HERE/lab.py" ci-smoke --runid "$RUNID" --out "$OUT" --size "$SIZE" \
  --duration 60 --linger 1 &
LABPID=$!
wait "$LABPID" || die "lab scenario failed (logs in $OUT/work/ci-smoke)"
LABPID=""
PCAP="$OUT/ci-smoke.pcap"
[ -s "$PCAP" ] || die "no capture written"
"$PY" "$HERE/label.py" "$OUT" --only ci-smoke || die "labelling failed"
N=$(tshark -n -r "$PCAP" -Y 'tcp contains 13:42:69:74:54:6f:72:72:65:6e:74:20:70:72:6f:74:6f:63:6f:6c' \
      -T fields -e frame.number 2>/dev/null | wc -l)
[ "$N" -gt 0 ] || die "capture has no BitTorrent handshake (tshark found 0)"
echo "ci-smoke: capture holds $N packets with a cleartext handshake" >&2
mkdir -p "$OUT/pred"
"$BIN" analyze "$PCAP" --flows "$OUT/pred/ci-smoke.pcap.csv" --series "$OUT/pred/ci-smoke.pcap.series.csv" \
  || die "bittap analyze failed"
"$PY" "$ROOT/scripts/score_lab.py" "$OUT/labels.tsv" "$OUT/pred" --title "ci-smoke"
"$PY" - "$OUT/labels.tsv" "$OUT/pred/ci-smoke.pcap.csv" <<'PYEOF' || die "bittap did not mark the peer-wire flow(s) bittorrent"
import csv, ipaddress, sys
def k(l4, a, ap, b, bp):
    n = lambda s: str(ipaddress.ip_address(s.strip("[]")))
    return (l4.lower(),) + tuple(sorted([(n(a), int(ap)), (n(b), int(bp))]))
truth = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")
         if r["label"] == "bittorrent" and r["kind"] == "peerwire" and int(r["packets"]) >= 10]
pred = {}
for r in csv.DictReader(open(sys.argv[2])):
    key = k(r["l4"], r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"])
    pred[key] = pred.get(key, False) or r["class"] == "bittorrent"
if not truth:
    sys.exit("no data-carrying peer-wire flow in the labels")
bad = [r for r in truth if not pred.get(k(r["l4"], r["ip1"], r["port1"], r["ip2"], r["port2"]))]
for r in bad:
    print(f"not bittorrent: {r['l4']} {r['ip1']}:{r['port1']} <-> {r['ip2']}:{r['port2']} ({r['packets']} packets)")
print(f"peer-wire flows marked bittorrent: {len(truth) - len(bad)}/{len(truth)}")
sys.exit(1 if bad else 0)
PYEOF
echo "ci-smoke: OK in $(( $(date +%s) - T0 ))s" >&2
