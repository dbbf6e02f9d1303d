#!/usr/bin/env python3
"""Builds the fuzz targets' seed corpora in fuzz/seeds/TARGET/ from the project's captures
(pcaps/crafted, the first packets of pcaps/lab) and rule files, plus a few hand-made inputs
(report CSV and database replies, spool batch names, the issue 18 frame). Deterministic;
the whole seed set stays well under 1 MB. Run from anywhere: python3 fuzz/make-seeds.py
"""
import gzip
import hashlib
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "seeds")
# Index in bittap_fuzz::LINKTYPES of each link type.
LINKTYPES = [0, 1, 101, 12, 14, 108, 113, 228, 229, 276, 9, 50, 104, 192, 147]
MAX_SEED = 4096
PER_TARGET = 60


def put(target, data, limit=MAX_SEED):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if len(os.listdir(d)) >= PER_TARGET or len(data) > limit:
        return
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read_pcap(path):
    """(linktype, [(sec, frac, frame, wire_len)]) of a pcap file, or None for other formats."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:2] == b"\x1f\x8b":
        try:
            b = gzip.decompress(b)
        except Exception:
            return None
    if len(b) < 24:
        return None
    magic = b[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return None
    lt = struct.unpack(e + "I", b[20:24])[0]
    out, p = [], 24
    while p + 16 <= len(b):
        sec, frac, cap, wire = struct.unpack(e + "IIII", b[p:p + 16])
        if cap > 262144 or p + 16 + cap > len(b):
            break
        out.append((sec, frac, b[p + 16:p + 16 + cap], wire))
        p += 16 + cap
    return lt, out


def l4(linktype, frame):
    """(proto, sport, dport, payload) of a plain Ethernet/raw IPv4/IPv6 TCP or UDP frame."""
    if linktype == 1:
        if len(frame) < 14:
            return None
        et = struct.unpack(">H", frame[12:14])[0]
        ip = frame[14:]
        if et == 0x8100 and len(frame) >= 18:
            et = struct.unpack(">H", frame[16:18])[0]
            ip = frame[18:]
    elif linktype in (101, 228, 229, 12, 14):
        ip = frame
        et = 0x0800 if ip[:1] and ip[0] >> 4 == 4 else 0x86DD
    else:
        return None
    if et == 0x0800 and len(ip) >= 20:
        ihl = (ip[0] & 15) * 4
        proto, rest = ip[9], ip[ihl:]
    elif et == 0x86DD and len(ip) >= 40:
        proto, rest = ip[6], ip[40:]
    else:
        return None
    if proto == 6 and len(rest) >= 20:
        off = (rest[12] >> 4) * 4
        sport, dport = struct.unpack(">HH", rest[:4])
        return 6, sport, dport, rest[off:], rest
    if proto == 17 and len(rest) >= 8:
        sport, dport = struct.unpack(">HH", rest[:4])
        return 17, sport, dport, rest[8:], rest
    return None


def captures():
    for sub in ("crafted", "crafted/linktypes", "crafted/bad", "crafted/gzip", "lab"):
        d = os.path.join(ROOT, "pcaps", sub)
        if not os.path.isdir(d):
            continue
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if os.path.isfile(p) and not n.endswith((".md", ".tsv")):
                yield sub, p


def pcap_bytes(linktype, recs):
    b = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for sec, frac, frame, wire in recs:
        b += struct.pack("<IIII", sec, frac, len(frame), wire) + frame
    return b


def frames_seed(linktype, recs):
    """bittap_fuzz::frames format: start time, then (link index, step, extra, len, frame)."""
    if linktype not in LINKTYPES or not recs:
        return None
    sec0 = recs[0][0]
    b = struct.pack("<q", sec0 * 1_000_000_000)
    prev = sec0
    for sec, _, frame, wire in recs:
        frame = frame[:255]
        step = max(-100, min(100, (sec - prev) * 4))
        prev = sec
        extra = min(255, max(0, wire - len(frame)) // 16)
        b += bytes([LINKTYPES.index(linktype), step & 0xFF, extra, len(frame)]) + frame
    return b


def sflow_datagram(frames):
    """An sFlow v5 datagram (IPv4 agent) with one flow sample per frame: a raw packet
    header record (Ethernet, the first 128 bytes) at sampling rate 10, after the 1-byte
    length-and-gap header of `chunks`."""
    u32 = lambda v: struct.pack(">I", v)
    samples = b""
    for i, frame in enumerate(frames):
        hdr = frame[:128]
        pad = b"\0" * (-len(hdr) % 4)
        raw = u32(1) + u32(len(frame)) + u32(4) + u32(len(hdr)) + hdr + pad
        rec = u32(1) + u32(len(raw)) + raw
        body = u32(i) + u32(3) + u32(10) + u32(i * 10) + u32(0) + u32(3) + u32(7) + u32(1) + rec
        samples += u32(1) + u32(len(body)) + body
    return u32(5) + u32(1) + bytes([192, 0, 2, 1]) + u32(0) + u32(1) + u32(1000) + u32(len(frames)) + samples


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    tcp_payloads, udp_payloads, flows = [], [], {}
    for sub, path in captures():
        with open(path, "rb") as f:
            raw = f.read()
        lab = sub == "lab"
        # Whole small files; the first 3 kB of the lab's (a truncated last record included).
        put("capture_file", raw[:3072] if lab else raw)
        if raw[:4] == b"\x0a\x0d\x0d\x0a":
            put("capture_pcapng", raw)
        parsed = read_pcap(path)
        if parsed is None:
            continue
        lt, recs = parsed
        if lab:
            recs = recs[:400]
        if raw[:4] != b"\x0a\x0d\x0d\x0a":
            small = pcap_bytes(lt, recs[:6])
            put("capture_merged", small + b"\xff\xfe\xfd\xfc" + pcap_bytes(lt, recs[6:10]))
        seed = frames_seed(lt, recs[:24] if lab else recs)
        if seed:
            put("pipeline", seed)
        if lt == 1 and recs:
            d = sflow_datagram([frame for (_, _, frame, _) in recs[:1]])
            if len(d) < 256:
                put("sflow", b"\x01" + bytes([len(d)]) + d)
        for i, (sec, frac, frame, wire) in enumerate(recs):
            if lt in LINKTYPES and i % 7 == 0 and i < 28:
                put("decode", bytes([LINKTYPES.index(lt)]) + frame)
            x = l4(lt, frame)
            if not x:
                continue
            proto, sport, dport, payload, seg = x
            if payload:
                (tcp_payloads if proto == 6 else udp_payloads).append(payload[:1500])
                key = (proto, min(sport, dport), max(sport, dport))
                seq = struct.unpack(">I", seg[4:8])[0] if proto == 6 else 0
                flows.setdefault(key, []).append((sport > dport, seq, seg[13] if proto == 6 else 0, payload[:255]))
    # The issue 18 frame.
    put("decode", bytes([1]) + bytes.fromhex(
        "02000000000302000000000286dd6000000000342b4020010db800020000000000000000000220010db80002"
        "000000000000000000033c0202000000000020010db8000200000000000000000003060001"))
    for p in tcp_payloads:
        if p.startswith(b"\x13BitTorrent") or p[:4] in (b"\x00\x00\x00\x01", b"\x00\x00\x00\x05"):
            put("peerwire", p)
        if p.startswith((b"GET ", b"HTTP/", b"POST ")):
            put("http", p)
        put("mse", p)
    for p in udp_payloads:
        if p[:1] == b"d":
            put("krpc", p)
        elif p[:1] in (b"\x01", b"\x11", b"\x21", b"\x31", b"\x41"):
            put("utp", p)
        else:
            put("udp_tracker", p)
    for p in tcp_payloads:
        if p[:2] == b"d8" or b"peers" in p:
            put("krpc", p[p.find(b"d"):] if b"\r\n\r\n" in p else p)
    # Per-flow packet sequences for the probe target: sel byte, then 6-byte headers + len.
    for (proto, a, b), pkts in sorted(flows.items())[:60]:
        sel = (0 if proto == 6 else 1) | (0 << 1)
        out = bytes([sel])
        for d, seq, flags, payload in pkts[:12]:
            out += bytes([int(d), flags]) + struct.pack("<I", seq) + bytes([len(payload)]) + payload
        put("probe", out)
    # Segment sequences for peerwire and mse: (4-byte step, cut) and (dir) headers.
    for (proto, a, b), pkts in sorted(flows.items())[:40]:
        if proto != 6:
            continue
        pw = b"".join(struct.pack("<I", len(p)) + b"\0" + bytes([len(p)]) + p for _, _, _, p in pkts[:8])
        put("peerwire", pw)
        put("mse", b"".join(bytes([int(d), len(p)]) + p for d, _, _, p in pkts[:8]))
    for (proto, a, b), pkts in sorted(flows.items())[:40]:
        if proto != 17:
            continue
        put("utp", b"".join(bytes([int(d), len(p)]) + p for d, _, _, p in pkts[:8]))
        put("udp_tracker", b"".join(bytes([len(p)]) + p for _, _, _, p in pkts[:4]))
    # Rules: the project's own files, and each alone.
    with open(os.path.join(ROOT, "rules", "ports.toml"), "rb") as f:
        ports = f.read()
    with open(os.path.join(ROOT, "rules", "signatures.toml"), "rb") as f:
        sigs = f.read()
    put("rules", ports + b"\0" + sigs, limit=1 << 16)
    put("rules", ports + b"\0", limit=1 << 16)
    put("rules", b"\0" + sigs, limit=1 << 16)
    # Report CSVs: series, port view, hosts (NUL-separated).
    series = (b"time,class,proto,method,direction,packets,bytes\n"
              b"2024-05-31T10:00:00Z,bittorrent,peerwire,signature,unknown,24,2716\n"
              b"2024-05-31T10:00:00Z,other,other,none,unknown,19,4248\n"
              b"2024-05-31T10:01:00Z,bittorrent,dht,signature,up,16,3113\n"
              b"2024-05-31T10:05:00Z,bittorrent,utp,heuristic,down,160,31130\n")
    ports_csv = (b"time,rule,l4,proto,direction,packets,bytes\n"
                 b"2024-05-31T10:00:00Z,bt-6881,tcp,peerwire,unknown,3,198\n")
    hosts = b"time,bittorrent_hosts\n2024-05-31T10:00:00Z,4\n"
    put("report_csv", series)
    put("report_csv", series + b"\0" + ports_csv + b"\0" + hosts)
    put("report_csv", series.replace(b"2024-05-31T10:05:00Z", b"9999-12-31T23:59:00+01:00"))
    # Database replies (InfluxDB 1.x /query JSON).
    put("report_reply", b'{"results":[{"statement_id":0,"series":[{"name":"bittap","tags":'
        b'{"method":"signature","proto":"peerwire"},"columns":["time","packets","bytes"],'
        b'"values":[[1717149600,24,2716],[1717149660,16,3113]]}]}]}')
    put("report_reply", b'{"results":[{"statement_id":0,"series":[{"name":"bittap_port",'
        b'"columns":["time","bytes"],"values":[[1717149600,198],[1717149660,null]]}]}]}')
    put("report_reply", b'{"results":[{"statement_id":0}]}')
    # Spool batches: a name, NUL, the contents.
    put("spool_batch", b"00000000000000000001-1717149600000.lp\0"
        b"bittap,probe=p,class=bittorrent,proto=dht,method=signature,direction=unknown "
        b"packets=1i,bytes=100i 1717149600000000000\n")
    put("spool_batch", b"00000000000000000002-1717149600000.lp.tmp\0half")
    put("spool_batch", b"00000000000000000003-1717149600000.lp\0\xff\xfe not utf-8")
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    n = sum(len(fs) for _, _, fs in os.walk(OUT))
    print(f"fuzz seeds: {n} files, {total} bytes in {OUT}")
    if total > 1 << 20:
        sys.exit("fuzz seeds over 1 MB")


if __name__ == "__main__":
    main()
