#!/usr/bin/env python3
"""False positives per negative kind × bittap method for several binaries, side by side.

usage: fp_compare.py LABELS.tsv NAME=PRED_DIR [NAME=PRED_DIR ...] [--pcaps SUBSTRING] [--compact]

LABELS.tsv and each PRED_DIR as for scripts/score_lab.py (PRED_DIR/<pcap>.csv from `bittap analyze
--flows`). For every kind of the flows labelled `other` it prints, per binary, the false-positive flows
and bytes (bytes of the rows classed bittorrent) under the method of the flow's first row classed
bittorrent (signature, correlation, heuristic, port, ...). --pcaps keeps only captures whose name
contains SUBSTRING (e.g. `-1dir`); --compact leaves out kinds without a false positive in any binary
(the ALL row still counts every negative flow). Exit status 0 (it measures).
"""
import csv
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from score_lab import METHODS, fkey  # noqa: E402


def load_truth(path, only):
    truth = defaultdict(dict)
    with open(path, newline="") as f:
        rows = [line for line in f if not line.startswith("#")]
    for r in csv.DictReader(rows, delimiter="\t"):
        pcap = r.get("pcap") or r.get("file")
        if only and only not in pcap:
            continue
        k = fkey(r["l4"], r.get("ip1") or r.get("src"), r.get("port1") or r.get("sport"),
                 r.get("ip2") or r.get("dst"), r.get("port2") or r.get("dport"))
        if k is not None:
            lab = (r.get("label") or r.get("expected_class") or "").strip().lower()
            truth[pcap][k] = (lab, r.get("kind") or r.get("ndpi_proto") or r.get("expected_proto") or "?")
    return truth


def fp_table(truth, pred_dir):
    """kind -> method -> [flows, bytes]; kind -> negative flows."""
    fp = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    negs = defaultdict(int)
    for pcap, flows in truth.items():
        pred = defaultdict(lambda: [False, 0, ""])
        path = os.path.join(pred_dir, pcap + ".csv")
        if os.path.exists(path):
            with open(path, newline="") as f:
                for r in csv.DictReader(f):
                    k = fkey(r.get("l4", ""), r.get("src_ip", ""), r.get("src_port", ""), r.get("dst_ip", ""),
                             r.get("dst_port", ""))
                    if k is None or r.get("class", "").strip().lower() != "bittorrent":
                        continue
                    p = pred[k]
                    p[0] = True
                    p[1] += int(float(r.get("bytes") or 0))
                    p[2] = p[2] or r.get("method", "") or "?"
        for k, (lab, kind) in flows.items():
            if lab != "other":
                continue
            negs[kind] += 1
            is_bt, b, m = pred.get(k, (False, 0, ""))
            if is_bt:
                fp[kind][m][0] += 1
                fp[kind][m][1] += b
    return fp, negs


def main():
    args = sys.argv[1:]
    only = None
    compact = "--compact" in args
    if compact:
        args.remove("--compact")
    if "--pcaps" in args:
        i = args.index("--pcaps")
        only = args[i + 1]
        del args[i:i + 2]
    if len(args) < 2 or any("=" not in a for a in args[1:]):
        print(__doc__)
        sys.exit(2)
    truth = load_truth(args[0], only)
    sets = [a.split("=", 1) for a in args[1:]]
    tables = [(name, *fp_table(truth, d)) for name, d in sets]
    negs = tables[0][2]
    methods = METHODS + sorted({m for _, fp, _ in tables for d in fp.values() for m in d} - set(METHODS))
    kinds = sorted(negs, key=lambda k: (-max(sum(c[0] for c in fp[k].values()) for _, fp, _ in tables), k))
    names = [n for n, _ in sets]
    shown = [k for k in kinds if not compact or any(fp.get(k) for _, fp, _ in tables)]
    w = max([16] + [len(k) for k in kinds])

    def cell(c):
        return f"{c[0]}/{c[1]}" if c[0] else "0"
    cw = max(14, max(len(n) for n in names) + 1)
    title = " | ".join(names)
    print(f"false positives per negative kind × method, flows/bytes classed bittorrent ({title})"
          + (f"; captures matching '{only}'" if only else ""))
    print(f"{'kind':{w}} {'neg':>5}  " + "  ".join(f"{m[:12]:^{len(names) * (cw + 1)}}" for m in methods + ["ALL"]))
    print(f"{'':{w}} {'':>5}  " + "  ".join(" ".join(f"{n[:cw]:>{cw}}" for n in names) for _ in methods + ["ALL"]))
    tot = [[defaultdict(lambda: [0, 0]) for _ in names]]

    def line(label, n, per):   # per[i][method] -> [flows, bytes]
        cols = []
        for m in methods + ["ALL"]:
            vals = []
            for d in per:
                c = [sum(x[0] for x in d.values()), sum(x[1] for x in d.values())] if m == "ALL" else d.get(m, [0, 0])
                vals.append(f"{cell(c):>{cw}}")
            cols.append(" ".join(vals))
        print(f"{label[:w]:{w}} {n:5d}  " + "  ".join(cols))
    for k in kinds:
        per = [fp.get(k, {}) for _, fp, _ in tables]
        for i, d in enumerate(per):
            for m, c in d.items():
                tot[0][i][m][0] += c[0]
                tot[0][i][m][1] += c[1]
        if k in shown:
            line(k, negs[k], per)
    if len(shown) < len(kinds):
        print(f"({len(kinds) - len(shown)} more kinds: no false positive)")
    line("ALL", sum(negs.values()), tot[0])


if __name__ == "__main__":
    main()
