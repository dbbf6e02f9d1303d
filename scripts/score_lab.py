#!/usr/bin/env python3
"""Score bittap's per-flow verdicts against a labels TSV, per capture (scenario) and per kind.

usage: score_lab.py LABELS.tsv PRED_DIR [--title T] [--show N] [--compact]

LABELS.tsv  tab-separated, header with pcap, l4, ip1, port1, ip2, port2, label and `kind` (or nDPI's
            `ndpi_proto`); optional packets, bytes. label: bittorrent | other | ignore.
            The crafted set's FLOWS.tsv layout (file, src, sport, dst, dport, expected_class,
            expected_proto, wire_bytes) is read too. Lines starting with # are comments.
PRED_DIR    <pcap>.csv per capture as written by `bittap analyze <pcap> --flows <PRED_DIR>/<pcap>.csv`
            (columns by header name: l4, src_ip, src_port, dst_ip, dst_port, class, bytes).

A labelled flow matches prediction rows with the same l4 and the same pair of ip:port endpoints in either
order; rows of a flow split by a timeout are summed, and the flow counts as predicted BitTorrent when any of
its rows has class bittorrent. Flow figures count flows; byte figures count the bytes of rows classed
bittorrent (TP/FP) and, for BitTorrent flows, the labelled wire bytes not classed bittorrent (FN).
--compact leaves out table rows (captures, kinds) with no BitTorrent flow and no false positive.
Prints precision/recall per scenario, per kind and overall, the true positives per scenario by bittap's
`method` column (e.g. `port` = found by a port rule alone; not with --compact), the false positives per
negative kind × method (flows and bytes classed bittorrent; a flow counts under the method of its first
row classed bittorrent; with --compact only kinds with a false positive), and lists every FP and FN.
Exit status 0
(it measures; callers decide what is good enough).
"""
import csv
import ipaddress
import os
import sys
from collections import defaultdict


def norm_ip(s):
    s = s.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(s))
    except ValueError:
        return s


def fkey(l4, a, ap, b, bp):
    try:
        x, y = (norm_ip(a), int(float(ap or 0))), (norm_ip(b), int(float(bp or 0)))
    except ValueError:
        return None
    return (l4.strip().lower(),) + tuple(sorted([x, y]))


def fmt_key(k):
    def ep(e):
        return f"[{e[0]}]:{e[1]}" if ":" in e[0] else f"{e[0]}:{e[1]}"
    return f"{k[0]} {ep(k[1])} <-> {ep(k[2])}"


def ratio(a, b):
    return f"{a / b:.3f}" if b else "  -  "


class Tally:
    def __init__(self):
        self.tp = self.fp = self.fn = self.tn = 0
        self.btp = self.bfp = self.bfn = 0
        self.bt = self.other = self.ignored = 0

    def row(self, name, width=20):
        return (f"{name:{width}} {self.bt:5d} {self.other:5d} {self.tp:5d} {self.fp:4d} {self.fn:4d} "
                f"{ratio(self.tp, self.tp + self.fp):>7} {ratio(self.tp, self.tp + self.fn):>7} "
                f"{ratio(self.btp, self.btp + self.bfp):>8} {ratio(self.btp, self.btp + self.bfn):>8}")


HEADER = "  bt other    TP   FP   FN  flow-P  flow-R  bytes-P  bytes-R"


METHODS = ["signature", "correlation", "heuristic", "port"]


def print_fp_methods(fp_method, per_kind, compact, w):
    """False positives per negative kind × bittap method: `flows/bytes` per cell (bytes of the rows classed
    bittorrent), the kind's negative flows and its totals."""
    if not fp_method:
        return
    seen = sorted({m for d in fp_method.values() for m in d if m} - set(METHODS))
    methods = METHODS + seen
    kinds = sorted(fp_method, key=lambda k: (-sum(c[0] for c in fp_method[k].values()), k))
    if compact:
        kinds = [k for k in kinds if any(c[0] for c in fp_method[k].values())]
    cw = 16

    def cell(c):
        return f"{c[0]}/{c[1]}" if c[0] else "0"
    print(f"\nfalse positives per negative kind × method (flows/bytes classed bittorrent)")
    print(f"{'kind':{w}} {'neg':>5} " + " ".join(f"{m[:cw]:>{cw}}" for m in methods) + f" {'ALL':>{cw}} {'FP-share':>8}")
    col_tot = defaultdict(lambda: [0, 0])
    for k in kinds:
        d = fp_method[k]
        tot = [sum(c[0] for m, c in d.items() if m), sum(c[1] for m, c in d.items() if m)]
        for m, c in d.items():
            if m:
                col_tot[m][0] += c[0]
                col_tot[m][1] += c[1]
        neg = per_kind[k].other
        print(f"{k[:30]:{w}} {neg:5d} " + " ".join(f"{cell(d.get(m, [0, 0])):>{cw}}" for m in methods)
              + f" {cell(tot):>{cw}} {ratio(tot[0], neg):>8}")
    if not kinds:
        print("(no false positive)")
    negs = sum(per_kind[k].other for k in fp_method)
    all_tot = [sum(c[0] for c in col_tot.values()), sum(c[1] for c in col_tot.values())]
    print(f"{'ALL':{w}} {negs:5d} " + " ".join(f"{cell(col_tot.get(m, [0, 0])):>{cw}}" for m in methods)
          + f" {cell(all_tot):>{cw}} {ratio(all_tot[0], negs):>8}")


def main():
    args = sys.argv[1:]
    show, title = 1000, None
    compact = "--compact" in args
    if compact:
        args.remove("--compact")
    for opt in ("--show", "--title"):
        if opt in args:
            i = args.index(opt)
            v = args[i + 1]
            del args[i:i + 2]
            if opt == "--show":
                show = int(v)
            elif opt == "--title":
                title = v
    if len(args) != 2:
        print(__doc__)
        sys.exit(2)
    labels_path, pred_dir = args
    truth = defaultdict(dict)   # pcap -> key -> (label, kind, bytes)
    with open(labels_path, newline="") as f:
        rows = [l for l in f if not l.startswith("#")]
    alias = {"file": "pcap", "src": "ip1", "sport": "port1", "dst": "ip2", "dport": "port2",
             "expected_class": "label", "expected_proto": "kind", "wire_bytes": "bytes"}
    for r in csv.DictReader(rows, delimiter="\t"):
        for a, b in alias.items():
            if a in r and b not in r:
                r[b] = r[a]
        k = fkey(r["l4"], r["ip1"], r["port1"], r["ip2"], r["port2"])
        if k is None:
            continue
        kind = r.get("kind") or r.get("ndpi_proto") or "?"
        truth[r["pcap"]][k] = (r["label"].strip().lower(), kind, int(float(r.get("bytes") or 0)))
    per_pcap, per_kind, total = defaultdict(Tally), defaultdict(Tally), Tally()
    tp_method = defaultdict(lambda: defaultdict(int))   # pcap -> bittap method -> true positives
    fp_method = defaultdict(lambda: defaultdict(lambda: [0, 0]))   # negative kind -> method -> [flows, bytes]
    errors, missing, unlabelled = [], [], []
    for pcap, flows in sorted(truth.items()):
        path = os.path.join(pred_dir, pcap + ".csv")
        if not os.path.exists(path):
            missing.append(pcap)
            continue
        pred = defaultdict(lambda: [False, 0, 0, ""])  # is_bt, bt_bytes, all_bytes, proto/method
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                k = fkey(r.get("l4", ""), r.get("src_ip", ""), r.get("src_port", ""), r.get("dst_ip", ""),
                         r.get("dst_port", ""))
                if k is None:
                    continue
                p = pred[k]
                b = int(float(r.get("bytes") or 0))
                is_bt = r.get("class", "").strip().lower() == "bittorrent"
                p[0] = p[0] or is_bt
                p[1] += b if is_bt else 0
                p[2] += b
                if is_bt and not p[3]:
                    p[3] = f"{r.get('proto', '')}/{r.get('method', '')}"
        for k, (lab, kind, lbytes) in flows.items():
            tallies = (per_pcap[pcap], per_kind[kind], total)
            if lab == "ignore":
                for t in tallies:
                    t.ignored += 1
                continue
            is_bt, bt_bytes, all_bytes, how = pred.get(k, (False, 0, 0, ""))
            for t in tallies:
                if lab == "bittorrent":
                    t.bt += 1
                    if is_bt:
                        t.tp += 1
                    else:
                        t.fn += 1
                    t.btp += bt_bytes
                    t.bfn += max(max(lbytes, all_bytes) - bt_bytes, 0)
                else:
                    t.other += 1
                    if is_bt:
                        t.fp += 1
                    else:
                        t.tn += 1
                    t.bfp += bt_bytes
            if lab == "bittorrent" and is_bt:
                tp_method[pcap][how.partition("/")[2] or "?"] += 1
            if lab == "bittorrent" and not is_bt:
                errors.append(("FN" if k in pred else "FN-noflow", pcap, kind, k, max(lbytes, all_bytes), ""))
            elif lab == "other" and is_bt:
                errors.append(("FP", pcap, kind, k, bt_bytes, how))
            if lab == "other":
                cell = fp_method[kind][(how.partition("/")[2] or "?") if is_bt else ""]
                cell[0] += 1 if is_bt else 0
                cell[1] += bt_bytes
        for k, (is_bt, bt_bytes, _a, how) in pred.items():
            if is_bt and k not in flows:
                unlabelled.append((pcap, k, bt_bytes, how))
    if title:
        print(f"== {title}")
    def short(p):
        for ext in (".gz", ".pcapng", ".pcap"):
            if p.endswith(ext):
                p = p[:-len(ext)]
        return p if len(p) <= 40 else p[:37] + "..."
    w = max([20] + [len(short(p)) for p in per_pcap] + [len(k[:30]) for k in per_kind])
    def shown(t):
        return not compact or t.bt or t.fp
    print(f"{'scenario':{w}} {HEADER}")
    for pcap, t in sorted(per_pcap.items()):
        if shown(t):
            print(t.row(short(pcap), w))
    hidden = sum(1 for t in per_pcap.values() if not shown(t))
    if hidden:
        print(f"{'(' + str(hidden) + ' more: no BitTorrent, no FP)':{w}}")
    print(total.row("ALL", w))
    print(f"\n{'kind':{w}} {HEADER}")
    hidden = 0
    for kind, t in sorted(per_kind.items(), key=lambda kv: (-(kv[1].bt + kv[1].other), kv[0])):
        if shown(t):
            print(t.row(kind[:30], w))
        else:
            hidden += 1
    if hidden:
        print(f"({hidden} more kinds: no BitTorrent, no FP)")
    methods = sorted({m for d in tp_method.values() for m in d})
    if methods and not compact:
        # how bittap found the true positives (flows CSV column `method`): `port` = a port rule alone
        print(f"\n{'TP by method':{w}} " + " ".join(f"{m[:10]:>10}" for m in methods))
        for pcap in sorted(tp_method):
            print(f"{short(pcap):{w}} " + " ".join(f"{tp_method[pcap].get(m, 0):10d}" for m in methods))
        print(f"{'ALL':{w}} " + " ".join(f"{sum(d.get(m, 0) for d in tp_method.values()):10d}" for m in methods))
    print_fp_methods(fp_method, per_kind, compact, w)
    ign = total.ignored
    print(f"\n(flows labelled ignore: {ign}; byte figures in wire bytes)")
    if missing:
        print(f"captures without a prediction file: {len(missing)}: {' '.join(missing[:20])}")
    if unlabelled:
        print(f"predicted-BitTorrent flows with no labelled counterpart: {len(unlabelled)}")
        for pcap, k, b, how in unlabelled[:show]:
            print(f"  UNLABELLED-BT {pcap} {fmt_key(k)} bytes={b} {how}")
    fps = [e for e in errors if e[0] == "FP"]
    fns = [e for e in errors if e[0] != "FP"]
    print(f"false positives: {len(fps)}")
    for e in fps[:show]:
        print(f"  FP {e[1]} {fmt_key(e[3])} kind={e[2]} bt_bytes={e[4]} as={e[5]}")
    if len(fps) > show:
        print(f"  ... {len(fps) - show} more")
    print(f"false negatives: {len(fns)}")
    for e in fns[:show]:
        print(f"  {e[0]} {e[1]} {fmt_key(e[3])} kind={e[2]} bytes={e[4]}")
    if len(fns) > show:
        print(f"  ... {len(fns) - show} more")


if __name__ == "__main__":
    main()
