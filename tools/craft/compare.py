#!/usr/bin/env python3
"""Runs `bittap analyze` on every crafted capture and compares its output with the ground
truth in pcaps/crafted (SUMMARY.tsv, FLOWS.tsv, MINUTES.tsv).

Usage: tools/craft/compare.py [--bittap target/release/bittap] [--dir pcaps/crafted] [-v]
Exit status 0 when everything matches, 1 otherwise. Only the standard library is used.
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile
from collections import defaultdict


def tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def key(l4, a, ap, b, bp):
    ends = sorted([(a, str(ap)), (b, str(bp))])
    return (l4, ends[0], ends[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bittap", default="target/release/bittap")
    ap.add_argument("--dir", default="pcaps/crafted")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    summary = tsv(os.path.join(args.dir, "SUMMARY.tsv"))
    flows = defaultdict(list)
    for r in tsv(os.path.join(args.dir, "FLOWS.tsv")):
        flows[r["file"]].append(r)
    minutes = defaultdict(dict)
    for r in tsv(os.path.join(args.dir, "MINUTES.tsv")):
        minutes[r["file"]][(r["minute"], r["class"])] = (int(r["packets"]), int(r["wire_bytes"]))

    problems = 0
    checked = 0
    for s in summary:
        name = s["file"]
        issues = []
        with tempfile.TemporaryDirectory() as tmp:
            fl, se, he = (os.path.join(tmp, n) for n in ("f.csv", "s.csv", "h.csv"))
            p = subprocess.run(
                [args.bittap, "analyze", "-q", "--no-progress", "--flows", fl, "--series", se,
                 "--health", he, os.path.join(args.dir, name)],
                capture_output=True, text=True, timeout=120)
            got_flows, got_series, got_health = read_csv(fl), read_csv(se), read_csv(he)
        msg = (p.stderr.strip().splitlines() or [""])[-1]

        # Problems: an error must make bittap say so; a warning must be reported, too.
        if s["problem"] == "error" and p.returncode == 0 and not p.stderr.strip():
            issues.append(f"expected an error ({s['problem_detail']}), got none")
        if s["problem"] == "warning" and not p.stderr.strip():
            issues.append(f"expected a warning ({s['problem_detail']}), stderr empty")
        if s["problem"] == "none" and p.returncode != 0:
            issues.append(f"exit {p.returncode}: {msg}")

        # Totals.
        pk = sum(int(r["packets"]) for r in got_health)
        by = sum(int(r["bytes"]) for r in got_health)
        if (pk, by) != (int(s["packets"]), int(s["wire_bytes"])):
            issues.append(f"totals {pk} pkts {by} B, expected {s['packets']} pkts {s['wire_bytes']} B")
        for col, exp in (("non_ip", "nonip_packets"), ("undecodable", "undecodable_packets")):
            g = sum(int(r.get(col, 0) or 0) for r in got_health)
            if g != int(s[exp]):
                issues.append(f"{col} {g}, expected {s[exp]}")

        # Flows.
        got = defaultdict(list)
        for r in got_flows:
            got[key(r["l4"], r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"])].append(r)
        for f in flows[name]:
            k = key(f["l4"], f["src"], f["sport"], f["dst"], f["dport"])
            rows = got.pop(k, [])
            label = f"{f['l4']} {f['src']}:{f['sport']}>{f['dst']}:{f['dport']}"
            if not rows:
                issues.append(f"flow {label} missing")
                continue
            gp = sum(int(r["packets"]) for r in rows)
            gb = sum(int(r["bytes"]) for r in rows)
            classes = {(r["class"], r["proto"]) for r in rows}
            want = (f["expected_class"], f["expected_proto"])
            if f["expected_class"] == "bittorrent":
                ok_class = classes == {want} and {r["method"] for r in rows} == {f["expected_method"]}
            else:
                ok_class = all(c[0] != "bittorrent" for c in classes)
            if not ok_class:
                got_v = sorted({(r["class"], r["proto"], r["method"]) for r in rows})
                issues.append(f"flow {label}: verdict {got_v}, expected {want + (f['expected_method'],)}")
            if (gp, gb) != (int(f["packets"]), int(f["wire_bytes"])):
                issues.append(f"flow {label}: {gp} pkts {gb} B, expected {f['packets']} pkts {f['wire_bytes']} B")
            rows.sort(key=lambda r: r["first_seen"])
            first = rows[0]
            if (first["src_ip"], first["src_port"]) != (f["src"], f["sport"]):
                issues.append(f"flow {label}: src {first['src_ip']}:{first['src_port']}, expected the first sender {f['src']}:{f['sport']}")
        for k, rows in got.items():
            issues.append(f"unexpected flow {k} ({rows[0]['class']}/{rows[0]['proto']}, {sum(int(r['packets']) for r in rows)} pkts)")

        # Minutes, per class; bittap puts non-IP and undecodable frames in class `other` with
        # proto `non-ip` / `undecodable`.
        gm = defaultdict(lambda: [0, 0])
        for r in got_series:
            c = r["class"]
            if c == "other" and r["proto"] in ("non-ip", "undecodable"):
                c = {"non-ip": "nonip", "undecodable": "undecodable"}[r["proto"]]
            gm[(r["time"], c)][0] += int(r["packets"])
            gm[(r["time"], c)][1] += int(r["bytes"])
        want_m = dict(minutes[name])
        got_m = {k: tuple(v) for k, v in gm.items()}
        if got_m != want_m:
            issues.append(f"minutes {sorted(got_m.items())}, expected {sorted(want_m.items())}")

        checked += 1
        if issues:
            problems += 1
            print(f"MISMATCH {name}")
            for i in issues:
                print(f"    {i}")
        elif args.verbose:
            print(f"ok       {name}")
    print(f"compare: {checked - problems} passed, {problems} failed")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
