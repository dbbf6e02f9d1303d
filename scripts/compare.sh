#!/usr/bin/env bash
# Byte-for-byte comparison of two bittap binaries' outputs (issue 15: a restructuring must not
# change one output byte). Runs `analyze` with --series, --flows, --port-series, --health,
# --hosts and --line-protocol (and the series and flows as NDJSON, the exit status, stdout
# and stderr) on every capture in pcaps/ one file at a time, on pcaps/lab and pcaps/crafted
# as one stream each (lab also with --look-ahead), and on every capture of
# ../shared/corpus/ndpi when it is there, then compares the files. Also says whether
# --threads 2 gives the series of one thread.
#   scripts/compare.sh OLD_BIN [NEW_BIN]      (NEW_BIN: target/release/bittap)
# Prints the number of files compared and every difference; exits 1 if any differ.
# NEW_FIELDS=a,b: fields the new binary adds on purpose (CSV columns by header name, NDJSON
# keys, line-protocol fields) are taken out of its outputs before comparing, so the rest
# must still be byte-identical.
set -uo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: scripts/compare.sh OLD_BIN [NEW_BIN]}
new=${2:-target/release/bittap}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
compared=0
differ=0

# run BIN OUTDIR ARGS...: one analyze run writing every output into OUTDIR; the exit status
# and stderr (warnings) are outputs too.
run() {
  local bin=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  "$bin" analyze --quiet --no-progress --probe cmp \
    --series "$dir/series.csv" --flows "$dir/flows.csv" --port-series "$dir/port.csv" \
    --health "$dir/health.csv" --hosts "$dir/hosts.csv" --line-protocol "$dir/lines.lp" \
    "$@" >"$dir/stdout" 2>"$dir/stderr"
  echo $? >"$dir/status"
  # The same series as NDJSON: the other renderer of the same rows.
  "$bin" analyze --quiet --no-progress --series "$dir/series.ndjson" --flows "$dir/flows.ndjson" \
    "$@" >/dev/null 2>&1
}

case_() {
  local name=$1
  shift
  run "$old" "$work/old/$name" "$@"
  run "$new" "$work/new/$name" "$@"
  local f
  if [ -n "${NEW_FIELDS:-}" ]; then
    python3 - "$NEW_FIELDS" "$work/new/$name" <<'PY'
import json, os, re, sys
drop = set(sys.argv[1].split(','))
d = sys.argv[2]
for n in os.listdir(d):
    p = os.path.join(d, n)
    text = open(p, encoding='utf-8', errors='surrogateescape').read()
    if n.endswith('.csv'):
        lines = text.split('\n')
        head = lines[0].split(',')
        keep = [i for i, h in enumerate(head) if h not in drop]
        if len(keep) == len(head):
            continue
        out = [','.join(r.split(',')[i] for i in keep) if r else r for r in lines]
        text = '\n'.join(out)
    elif n.endswith('.lp'):
        for f in drop:
            text = re.sub(',' + re.escape(f) + r'=[0-9-]+i', '', text)
    elif n.endswith('.ndjson'):
        rows = []
        for r in text.split('\n'):
            o = json.loads(r) if r else {}
            if drop & o.keys():
                r = json.dumps({k: v for k, v in o.items() if k not in drop}, separators=(',', ':'))
            rows.append(r)
        text = '\n'.join(rows)
    else:
        continue
    open(p, 'w', encoding='utf-8', errors='surrogateescape').write(text)
PY
  fi
  for f in "$work/old/$name"/*; do
    local b
    b=$(basename "$f")
    compared=$((compared + 1))
    if ! cmp -s "$f" "$work/new/$name/$b"; then
      differ=$((differ + 1))
      echo "DIFFERS: $name/$b"
      diff <(head -c 200000 "$f") <(head -c 200000 "$work/new/$name/$b") | head -8
    fi
  done
}

n=0
while IFS= read -r -d '' p; do
  n=$((n + 1))
  case_ "pcaps-$n-$(basename "$p")" "$p"
done < <(find pcaps -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.gz' -o -name '*.cap' \) -print0 | sort -z)
case_ lab-stream pcaps/lab
case_ lab-look-ahead --look-ahead pcaps/lab
case_ crafted-stream pcaps/crafted
if [ -d ../shared/corpus/ndpi/pcap ]; then
  while IFS= read -r -d '' p; do
    n=$((n + 1))
    case_ "ndpi-$n-$(basename "$p")" "$p"
  done < <(find ../shared/corpus/ndpi/pcap -type f -print0 | sort -z)
  case_ ndpi-stream ../shared/corpus/ndpi/pcap
fi
# Two threads: the series of one thread, byte for byte (issue 17), with one reader (the
# default: lookups made before the other worker passed their position are answered again once
# it has) and with BITTAP_THREADS_ORDERED=1 (each worker reads the stream, lookups wait). A
# difference in either is counted. THREADS_FILES="A B": more inputs for this check (the bench
# capture, say).
for d in pcaps/lab ../shared/corpus/ndpi/pcap ${THREADS_FILES:-}; do
  [ -e "$d" ] || continue
  "$new" analyze --quiet --no-progress --threads 1 --series "$work/t1.csv" "$d" >/dev/null 2>&1
  for mode in reader ordered; do
    if [ $mode = ordered ]; then o=1; else o=0; fi
    BITTAP_THREADS_ORDERED=$o "$new" analyze --quiet --no-progress --threads 2 --series "$work/t2.csv" "$d" >/dev/null 2>&1
    if cmp -s "$work/t1.csv" "$work/t2.csv"; then
      echo "threads ($mode): --threads 2 series of $d equal one thread's"
    else
      echo "threads ($mode): --threads 2 series of $d differ from one thread's in $(diff "$work/t1.csv" "$work/t2.csv" | grep -c '^>') rows"
      differ=$((differ + 1))
    fi
    compared=$((compared + 1))
  done
done
echo "compare: $compared files compared, $differ differ ($old against $new)"
[ "$differ" -eq 0 ]
