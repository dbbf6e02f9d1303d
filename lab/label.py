#!/usr/bin/env python3
"""Derive per-flow ground truth for lab captures from how they were built, check each capture
independently with tshark, and (optionally) install captures + labels + manifest into pcaps/lab/.

usage: label.py OUTDIR [--install DEST] [--only SCENARIO ...]

Truth comes from the construction recorded in OUTDIR/<scenario>.meta.json (which host runs what,
which ports the BitTorrent clients were configured to listen on, which ports the tracker and the
negative services use) plus `ss -tuanp` snapshots taken inside the namespaces during the run
(OUTDIR/work/<scenario>/ss.txt). It never looks at bittap's verdicts. Payload bytes are looked at
only to pick the `kind` sub-label of a flow already known to be BitTorrent (clear handshake →
peerwire, otherwise peerwire-mse; uTP header vs bencoded KRPC for UDP).

Rules, in order, for a TCP/UDP flow between endpoints A and B:
 1. UDP to the LSD group (239.192.152.143 or ff15::efc0:988f, port 6771) from a BitTorrent host → bittorrent/lsd
 2. one end is the tracker (or web seed) host on its tracker (web seed) port, the other a BitTorrent host
    → bittorrent/tracker-* (webseed)
 3. both ends are BitTorrent hosts and one end's port is a port a client there was configured to listen
    on (same transport), or ss saw a BitTorrent client process own one end → bittorrent/<kind>
 4. an end is a host running only non-BitTorrent software → other/<kind>: the kind of the service that
    end's host declared on that end's port ([l4, port, kind] in the meta; e.g. shadowsocks, iperf3), or of
    the multicast group ([l4, group, port, kind] in `group_kinds`, e.g. mdns), else `other`
 5. anything else (e.g. a BitTorrent host talking to something unexpected) → ignore
Non-TCP/UDP packets (ARP, ICMP, IGMP/MLD) are not listed.
"""
import argparse
import hashlib
import ipaddress
import json
import os
import re
import shutil
import struct
import subprocess
from collections import defaultdict

HS = b"\x13BitTorrent protocol"
HS_HEX = "13:42:69:74:54:6f:72:72:65:6e:74:20:70:72:6f:74:6f:63:6f:6c"
BT_PROCS = ("transmission", "aria2c", "qbittorrent", "rtorrent", "python3", "lt_client")
LABEL_COLUMNS = ["pcap", "l4", "ip1", "port1", "ip2", "port2", "label", "kind", "packets", "bytes"]


def read_pcap(path):
    """Yield (ts, orig_len, frame bytes) from a classic pcap file (tcpdump's default)."""
    with open(path, "rb") as f:
        gh = f.read(24)
        if len(gh) < 24:
            return
        magic = gh[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            e = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            e = ">"
        else:
            raise ValueError(f"{path}: not a classic pcap file")
        linktype = struct.unpack(e + "I", gh[20:24])[0]
        if linktype != 1:
            raise ValueError(f"{path}: linktype {linktype}, expected Ethernet")
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            ts, tsf, incl, orig = struct.unpack(e + "IIII", h)
            yield ts + tsf / 1e6, orig, f.read(incl)


def parse(frame):
    """Return (l4, src, sport, dst, dport, payload) or None."""
    if len(frame) < 14:
        return None
    et = struct.unpack("!H", frame[12:14])[0]
    off = 14
    while et in (0x8100, 0x88A8) and len(frame) >= off + 4:
        et = struct.unpack("!H", frame[off + 2:off + 4])[0]
        off += 4
    if et == 0x0800:
        ip = frame[off:]
        if len(ip) < 20:
            return None
        ihl = (ip[0] & 15) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        proto = ip[9]
        if struct.unpack("!H", ip[6:8])[0] & 0x1FFF:
            return None  # non-first fragment
        src, dst = str(ipaddress.IPv4Address(ip[12:16])), str(ipaddress.IPv4Address(ip[16:20]))
        l4 = ip[ihl:total]
    elif et == 0x86DD:
        ip = frame[off:]
        if len(ip) < 40:
            return None
        plen = struct.unpack("!H", ip[4:6])[0]
        proto = ip[6]
        src, dst = str(ipaddress.IPv6Address(ip[8:24])), str(ipaddress.IPv6Address(ip[24:40]))
        l4 = ip[40:40 + plen]
        while proto in (0, 43, 60) and len(l4) >= 8:
            proto, l4 = l4[0], l4[(l4[1] + 1) * 8:]
    else:
        return None
    if proto == 6 and len(l4) >= 20:
        sp, dp = struct.unpack("!HH", l4[:4])
        doff = (l4[12] >> 4) * 4
        return "tcp", src, sp, dst, dp, l4[doff:], l4[13]
    if proto == 17 and len(l4) >= 8:
        sp, dp = struct.unpack("!HH", l4[:4])
        return "udp", src, sp, dst, dp, l4[8:], 0
    return None


def is_utp(p):
    return len(p) >= 20 and (p[0] & 15) == 1 and (p[0] >> 4) <= 4 and p[1] <= 3


def is_krpc(p):
    return p[:1] == b"d" and (b"1:y1:q" in p or b"1:y1:r" in p or b"1:y1:e" in p)


class Flow:
    def __init__(self, l4, a, ap, b, bp, ts):
        self.l4, self.a, self.ap, self.b, self.bp = l4, a, ap, b, bp
        self.first = ts
        self.packets = 0
        self.bytes = 0
        self.stream = {0: b"", 1: b""}  # first bytes of TCP payload per direction
        self.utp = 0
        self.krpc = 0
        self.lsd = 0
        self.utrk = 0


def flows_of(pcap):
    flows = {}
    for ts, orig, fr in read_pcap(pcap):
        p = parse(fr)
        if not p:
            continue
        l4, s, sp, d, dp, pl, _flags = p
        k = (l4,) + tuple(sorted([(s, sp), (d, dp)]))
        f = flows.get(k)
        if f is None:
            f = flows[k] = Flow(l4, s, sp, d, dp, ts)
        f.packets += 1
        f.bytes += orig
        direction = 0 if (s, sp) == (f.a, f.ap) else 1
        if l4 == "tcp":
            if pl and len(f.stream[direction]) < 128:
                f.stream[direction] += pl[:128]
        elif pl:
            if is_utp(pl):
                f.utp += 1
            elif is_krpc(pl):
                f.krpc += 1
            elif pl.startswith(b"BT-SEARCH"):
                f.lsd += 1
    return flows


def load_ss(path):
    """(host, l4, ip, port) -> set of process names, from `ss -tuanpH` snapshots."""
    own = defaultdict(set)
    if not os.path.exists(path):
        return own
    for line in open(path, errors="replace"):
        parts = line.rstrip("\n").split("\t", 1)
        if len(parts) != 2:
            continue
        host, rest = parts
        cols = rest.split()
        if len(cols) < 6:
            continue
        l4 = cols[0]
        local = cols[4]
        ip, _, port = local.rpartition(":")
        ip = ip.strip("[]").split("%")[0]
        procs = set(re.findall(r'\(\("([^"]+)"', rest))
        try:
            own[(host, l4, ip, int(port))] |= procs
        except ValueError:
            pass
    return own


def other_kind(f, ends, hs, groups):
    """The software a non-BitTorrent flow belongs to, from the construction: a service declared on one end's
    (host, l4, port) -- the server end first, i.e. the end whose port is declared -- or a multicast group."""
    for i in (1, 0):
        h = hs[i]
        for l4, port, kd in (h["services"] if h else []):
            if l4 == f.l4 and port == ends[i][1] and kd != "other":
                return kd
    for ip, port in ends:
        kd = groups.get((f.l4, str(ipaddress.ip_address(ip)), port))
        if kd:
            return kd
    return "other"


def label_scenario(outdir, meta):
    pcap = os.path.join(outdir, meta["pcap"])
    flows = flows_of(pcap)
    ss = load_ss(os.path.join(outdir, "work", meta["scenario"], "ss.txt"))
    by_ip = {}
    for h in meta["hosts"]:
        by_ip[h["ip4"]] = h
        by_ip[str(ipaddress.ip_address(h["ip6"]))] = h
    lsd = {(str(ipaddress.ip_address(g)), p) for g, p in meta["lsd_groups"]}
    groups = {(l4, str(ipaddress.ip_address(g)), p): kd for l4, g, p, kd in meta.get("group_kinds", [])}
    rows = []
    for k, f in sorted(flows.items(), key=lambda kv: kv[1].first):
        ends = [(f.a, f.ap), (f.b, f.bp)]
        hs = [by_ip.get(ip) for ip, _ in ends]
        roles = [h["role"] if h else None for h in hs]
        label, kind = "ignore", "other"

        def bt_port(i):
            h = hs[i]
            if not h or h["role"] != "bt":
                return False
            if ends[i][1] in h["bt_ports"].get(f.l4, []):
                return True
            procs = ss.get((h["name"], f.l4, ends[i][0], ends[i][1]), set())
            procs |= ss.get((h["name"], f.l4, "*", ends[i][1]), set())
            procs |= ss.get((h["name"], f.l4, "0.0.0.0", ends[i][1]), set())
            return any(p.startswith(BT_PROCS) for p in procs)

        def tracker_kind(i):
            h = hs[i]
            if not h or h["role"] not in ("tracker", "webseed"):
                return None
            for l4, port, kd in h["services"]:
                if l4 == f.l4 and port == ends[i][1]:
                    return kd
            return None

        if f.l4 == "udp" and any(e in lsd for e in ends) and "bt" in roles:
            label, kind = "bittorrent", "lsd"
        elif any(tracker_kind(i) and roles[1 - i] == "bt" for i in (0, 1)):
            label = "bittorrent"
            kind = tracker_kind(0) or tracker_kind(1)
        elif roles == ["bt", "bt"] and (bt_port(0) or bt_port(1)):
            label = "bittorrent"
            if f.l4 == "tcp":
                clear = f.stream[0].startswith(HS) or f.stream[1].startswith(HS)
                if clear or not (f.stream[0] or f.stream[1]):
                    kind = "peerwire"
                else:
                    kind = "peerwire-mse"
            else:
                kind = "utp" if f.utp >= f.krpc and f.utp else ("dht" if f.krpc else "utp")
        elif any(r in ("service", "client", "webseed") for r in roles):
            label, kind = "other", other_kind(f, ends, hs, groups)
        rows.append({"pcap": meta["pcap"], "l4": f.l4.upper(), "ip1": f.a, "port1": f.ap, "ip2": f.b,
                     "port2": f.bp, "label": label, "kind": kind, "packets": f.packets, "bytes": f.bytes,
                     "_flow": f})
    return rows


def tshark_count(pcap, yfilter, extra=()):
    try:
        r = subprocess.run(["tshark", "-n", "-r", pcap, *extra, "-Y", yfilter, "-T", "fields", "-e",
                            "frame.number"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    return len([x for x in r.stdout.split("\n") if x.strip()])


# independent checks: (name, tshark display filter, extra args, predicate on count, description)
CHECKS = {
    "handshake": ("tcp contains " + HS_HEX, [], "cleartext \\x13BitTorrent protocol in TCP"),
    "handshake_any": ("frame contains " + HS_HEX, [], "cleartext \\x13BitTorrent protocol anywhere"),
    "utp_handshake": ("udp contains " + HS_HEX, [], "handshake inside UDP (uTP DATA)"),
    "utp": ("bt-utp", ["--enable-heuristic", "bt_utp_udp"], "uTP packets (tshark bt-utp heuristic)"),
    "dht_query": ("udp contains 64:31:3a:61:64:32:3a:69:64:32:30:3a", [], "DHT query d1:ad2:id20:"),
    "http_announce": ("tcp contains \"GET /announce?\"", [], "HTTP tracker announce"),
    "udp_tracker": ("udp.payload[0:12] == 00:00:04:17:27:10:19:80:00:00:00:00", [],
                    "BEP 15 connect request"),
    "webseed_get": ("tcp contains \"GET /webseed.bin\"", [], "HTTP GET of the web-seeded file"),
    "lsd": ("udp contains \"BT-SEARCH * HTTP/1.1\"", [], "LSD BT-SEARCH"),
    "pex": ("tcp contains \"ut_pex\"", [], "ut_pex in extension handshakes"),
    "pex_added": ("tcp contains \"5:added\"", [], "ut_pex messages with peers (5:added)"),
    "ipv6_tcp": ("ipv6 && tcp", [], "IPv6 TCP packets"),
    "ipv4_tcp": ("ip && tcp", [], "IPv4 TCP packets"),
    "tls": ("tls.handshake.type == 1", ["-d", "tcp.port==51413,tls", "-d", "tcp.port==443,tls"],
            "TLS ClientHello"),
    "ssh": ("ssh.protocol", [], "SSH banners"),
    "dns": ("dns", [], "DNS messages"),
    "http": ("http.request", ["-d", "tcp.port==6881,http"], "HTTP requests"),
    # (a set, not `tcp.port >= 6881 && tcp.port <= 6889`: tcp.port holds both ports, and each comparison
    # would be satisfied by either one of them)
    "classic_ports": ("tcp.port in {6881..6889, 51413} || udp.port in {6881..6889, 51413}", [],
                      "packets on the classic client ports 6881-6889 / 51413"),
    "port_6969": ("tcp.port == 6969 || udp.port == 6969", [], "packets on the tracker port 6969"),
    "edns_announce_shape": ("udp.payload[8:4] == 00:00:00:01 && udp.length >= 106", [],
                            "UDP datagrams of 98+ bytes with 00 00 00 01 at offset 8 (EDNS: NSCOUNT 0, ARCOUNT 1)"),
    "mdns": ("mdns", [], "mDNS messages"),
    "wireguard_init": ("udp.length == 156 && udp.payload[0:4] == 01:00:00:00", [],
                       "WireGuard handshake initiations (type 1, 148 bytes)"),
    "tls443": ("tls.handshake.type == 1 && tcp.dstport == 443", [], "TLS ClientHello to 443 (stunnel4)"),
    "tor_tls": ("tls.handshake.type == 1", ["-d", "tcp.port==20049,tls"], "TLS ClientHello to the tor bridge"),
    "outside_lab": ("(ip && !(ip.src == 10.77.0.0/24 && (ip.dst == 10.77.0.0/24 || ip.dst == 224.0.0.0/4))) || "
                    "(ipv6 && !((ipv6.src == fd00:77::/64 || ipv6.src == fe80::/10 || ipv6.src == ::) && "
                    "(ipv6.dst == fd00:77::/64 || ipv6.dst == fe80::/10 || ipv6.dst == ff00::/8)))", [],
                    "packets with an address outside the lab's 10.77.0.0/24, fd00:77::/64, link-local, multicast"),
}
# expectations per scenario: check name -> "+" (must be > 0) or "0" (must be 0)
EXPECT = {
    "ci-smoke": {"handshake": "+", "http_announce": "+"},
    "bt-plain-http": {"handshake": "+", "http_announce": "+", "utp": "0"},
    "bt-udp-tracker": {"handshake": "+", "udp_tracker": "+", "http_announce": "0"},
    "bt-mse-required": {"handshake_any": "0", "http_announce": "+"},
    "bt-mse-preferred": {"http_announce": "+"},
    "bt-utp": {"utp": "+", "utp_handshake": "+", "handshake": "0"},
    "bt-utp-mse": {"utp": "+", "handshake_any": "0"},
    "bt-dht-magnet": {"dht_query": "+", "handshake": "+", "http_announce": "0"},
    "bt-lsd": {"lsd": "+", "handshake": "+", "http_announce": "0"},
    "bt-pex": {"pex": "+", "pex_added": "+", "handshake": "+"},
    "bt-ipv6": {"ipv6_tcp": "+", "ipv4_tcp": "0", "handshake": "+"},
    "bt-webseed": {"webseed_get": "+", "handshake_any": "0"},
    "bt-mixed": {"handshake": "+", "utp": "+", "http_announce": "+", "udp_tracker": "+", "port_6969": "+"},
    "bt-classic-ports": {"handshake": "+", "utp": "+", "dht_query": "+", "http_announce": "+", "udp_tracker": "+",
                         "classic_ports": "+", "port_6969": "+"},
    "neg-http-tls": {"handshake_any": "0", "tls": "+", "dht_query": "0"},
    "neg-ssh": {"handshake_any": "0", "ssh": "+"},
    "neg-dns": {"handshake_any": "0", "dns": "+"},
    "neg-random": {"handshake_any": "0", "dht_query": "0"},
    "neg-btports": {"handshake_any": "0", "tls": "+", "http": "+"},
    "neg-lookalike": {"handshake_any": "0", "dht_query": "0"},
    "neg-tunnels": {"handshake_any": "0", "tls443": "+", "tor_tls": "+", "wireguard_init": "+"},
    "neg-dns-edns": {"handshake_any": "0", "dns": "+", "mdns": "+", "edns_announce_shape": "+"},
    "neg-iperf3": {"handshake_any": "0", "classic_ports": "+"},
}
# one-direction variants (lab.py one_direction): the same checks, all of which hold on either side's packets
# but the TLS ClientHellos and WireGuard initiations (sent by the client)
for _sc in ("neg-lookalike", "neg-tunnels", "neg-dns-edns", "neg-iperf3"):
    EXPECT[_sc + "-1dir"] = dict(EXPECT[_sc])
    EXPECT[_sc + "-1dir-server"] = {k: v for k, v in EXPECT[_sc].items()
                                    if k not in ("tls443", "tor_tls", "wireguard_init")}

# BitTorrent clients listen on random high ports everywhere but bt-classic-ports (lab.py Lab.port), and
# the tracker uses 6969 only in bt-classic-ports and bt-mixed: a port rule cannot find those flows
for _sc, _exp in EXPECT.items():
    if _sc != "bt-classic-ports" and (_sc.startswith("bt-") or _sc == "ci-smoke"):
        _exp.setdefault("classic_ports", "0")
        _exp.setdefault("port_6969", "0")
EXPECT["neg-btports"]["classic_ports"] = "+"


def run_checks(pcap, scenario, meta=None):
    res = []
    ok = True
    checks = dict(CHECKS)
    todo = list(EXPECT.get(scenario, {}).items()) + [("outside_lab", "0")]
    if meta and meta.get("one_dir_senders"):
        # a one-direction capture holds no TCP/UDP packet sent by any other host
        src = [h[k] for h in meta["hosts"] if h["name"] in meta["one_dir_senders"] for k in ("ip4", "ip6")]
        v4 = ", ".join(a for a in src if ":" not in a)
        v6 = ", ".join(a for a in src if ":" in a)
        checks["other_direction"] = (f"(tcp || udp) && !(ip.src in {{{v4}}} || ipv6.src in {{{v6}}})", [],
                                     "TCP/UDP packets not sent by the one-direction capture's senders")
        todo.append(("other_direction", "0"))
    for name, want in todo:
        filt, extra, desc = checks[name]
        n = tshark_count(pcap, filt, extra)
        good = n is not None and ((want == "+" and n > 0) or (want == "0" and n == 0))
        ok &= good
        res.append({"check": name, "filter": filt, "args": extra, "count": n,
                    "expect": ">0" if want == "+" else "0", "ok": good, "what": desc})
    return ok, res


def pex_evidence(rows, meta):
    """PEX scenario: peer-wire flows between hosts the tracker never handed out to each other."""
    hub = [h for h in meta["hosts"] if h["name"] == "hub-lt"]
    if not hub:
        return None
    hub_ip = hub[0]["ip4"]
    n = sum(1 for r in rows if r["label"] == "bittorrent" and r["kind"].startswith("peerwire")
            and hub_ip not in (r["ip1"], r["ip2"]) and r["_flow"].stream[0] and r["_flow"].stream[1])
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--install", metavar="DEST")
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    metas = []
    for fn in sorted(os.listdir(a.outdir)):
        if fn.endswith(".meta.json"):
            m = json.load(open(os.path.join(a.outdir, fn)))
            if a.only and m["scenario"] not in a.only:
                continue
            if os.path.exists(os.path.join(a.outdir, m["pcap"])):
                metas.append(m)
    all_rows, manifest = [], []
    for m in metas:
        rows = label_scenario(a.outdir, m)
        pcap = os.path.join(a.outdir, m["pcap"])
        ok, checks = run_checks(pcap, m["scenario"], m)
        extra = {}
        if m["scenario"] == "bt-pex":
            extra["pex_flows_between_non_hub_peers"] = pex_evidence(rows, m)
            ok &= bool(extra["pex_flows_between_non_hub_peers"])
        cnt = defaultdict(int)
        for r in rows:
            cnt[(r["label"], r["kind"])] += 1
        summary = " ".join(f"{lab}/{kd}={n}" for (lab, kd), n in sorted(cnt.items()))
        print(f"{m['scenario']:18} {'OK ' if ok else 'BAD'} flows={len(rows)} {summary}")
        for c in checks:
            print(f"    {'ok ' if c['ok'] else 'BAD'} {c['check']}: {c['count']} (expect {c['expect']})")
        for k, v in extra.items():
            print(f"    {k}: {v}")
        all_rows += rows
        with open(pcap, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        manifest.append({"m": m, "ok": ok, "checks": checks, "extra": extra, "summary": summary,
                         "sha256": digest, "bytes": os.path.getsize(pcap), "nflows": len(rows)})
    write_outputs(a.outdir, all_rows, manifest)
    if a.install:
        dest = a.install
        os.makedirs(dest, exist_ok=True)
        for e in manifest:
            shutil.copy(os.path.join(a.outdir, e["m"]["pcap"]), os.path.join(dest, e["m"]["pcap"]))
        # merge: rows of the captures installed now replace theirs; every other capture's rows stay as they
        # are (so `run.sh --install neg-x` adds or remakes one capture and leaves the others byte-identical)
        done = {e["m"]["pcap"] for e in manifest}
        merge_rows(os.path.join(a.outdir, "labels.tsv"), os.path.join(dest, "labels.tsv"), 0, done)
        merge_rows(os.path.join(a.outdir, "MANIFEST.tsv"), os.path.join(dest, "..", "MANIFEST.tsv"), 1, done)
        print(f"installed {len(manifest)} captures into {dest}, their rows into labels.tsv and {dest}/../MANIFEST.tsv")


def merge_rows(new_path, dest_path, col, pcaps):
    """Write dest_path = header and comments of new_path, dest's rows whose capture (column `col`, a pcap
    name or a lab/<pcap> path) is not in `pcaps`, and new_path's rows; rows ordered by capture as label.py
    orders them (by <scenario>.meta.json), each capture's rows in their own order."""
    def parse_file(path):
        head, rows = [], []
        if not os.path.exists(path):
            return head, rows
        seen_header = False
        for line in open(path):
            if not seen_header:
                head.append(line)
                seen_header = not line.startswith("#")
            else:
                rows.append(line)
        return head, rows

    def cap(line):
        c = line.split("\t")[col]
        return os.path.basename(c)

    head, new_rows = parse_file(new_path)
    _, old_rows = parse_file(dest_path)
    keep = [r for r in old_rows if cap(r) not in pcaps]
    order = lambda r: cap(r)[:-len(".pcap")] + ".meta.json" if cap(r).endswith(".pcap") else cap(r)  # noqa: E731
    merged = sorted(keep + new_rows, key=order)   # stable: each capture's rows keep their order
    with open(dest_path, "w") as f:
        f.writelines(head + merged)


def write_outputs(outdir, rows, manifest):
    with open(os.path.join(outdir, "labels.tsv"), "w") as f:
        f.write("\t".join(LABEL_COLUMNS) + "\n")
        for r in rows:
            f.write("\t".join(str(r[c]) for c in LABEL_COLUMNS) + "\n")
    with open(os.path.join(outdir, "MANIFEST.tsv"), "w") as f:
        f.write("# bittap lab captures: one row per capture, made by lab/run.sh (see lab/README.md).\n"
                "# Per-flow truth is in pcaps/lab/labels.tsv (columns of the nDPI corpus labels, with `kind`).\n"
                "# Truth comes from the construction (hosts' roles, configured client listen ports, tracker and\n"
                "# service ports, ss snapshots in the namespaces), never from bittap. `checks` are independent\n"
                "# tshark looks: name=count(expected) with the display filter listed in lab/label.py CHECKS.\n"
                "# Columns: scenario, pcap (relative to pcaps/), bytes, sha256, flows (TCP/UDP 5-tuples), truth (flows per\n"
                "# label/kind), checks_ok, checks, description, hosts (role: clients with versions, ports, settings),\n"
                "# made_with (command and capture settings).\n")
        f.write("scenario\tpcap\tbytes\tsha256\tflows\ttruth\tchecks_ok\tchecks\tdescription\thosts\tmade_with\n")
        for e in manifest:
            m = e["m"]
            checks = "; ".join(f"{c['check']}[{c['filter']}{' ' + ' '.join(c['args']) if c['args'] else ''}]"
                               f"={c['count']}({c['expect']})" for c in e["checks"])
            for k, v in e["extra"].items():
                checks += f"; {k}={v}(>0)"
            hosts = "; ".join(f"{h['name']} {h['ip4']} {h['ip6']} [{h['role']}]: " + ", ".join(h["clients"])
                              for h in m["hosts"])
            desc = m["description"] + f" (payload {m['size']} bytes per swarm, run {m['elapsed_s']}s)"
            made_with = m.get("made_with") or (f"lab/run.sh {m['scenario']} --size {m['size']} (lab.py); "
                                               "capture: tcpdump -i br0 -s 0 -U in the switch namespace")
            f.write("\t".join([m["scenario"], "lab/" + m["pcap"], str(e["bytes"]), e["sha256"], str(e["nflows"]),
                               e["summary"], "yes" if e["ok"] else "NO", checks, desc,
                               hosts.replace("\t", " "), made_with]) + "\n")


if __name__ == "__main__":
    main()
