#!/usr/bin/env python3
"""A flood of distinct 5-tuples for the scale benchmarks (issue 17), written outside the repo.

    scripts/gen-flood.py OUT.pcap [--flows N] [--packets K] [--udp-share F]

N flows (2,000,000 by default) from distinct (address, port) pairs, K packets each (2 by
default: one each way), all open at once: the first packet of every flow comes before the
second of any, 1 microsecond apart, so every flow is concurrent when the table is at its
largest. TCP flows open with a SYN and carry no payload; UDP flows carry 32 bytes. Ethernet,
IPv4, 4 million packets take about 330 MB. The addresses are documentation and private
ranges; no payload looks like BitTorrent, so every flow is `other` after probing except the
few whose client port falls on a classic BitTorrent port (port verdicts).
"""
import argparse
import struct
import sys


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(src, dst, sport, dport, udp, syn_ack):
    if udp:
        l4 = struct.pack("!HHHH", sport, dport, 8 + 32, 0) + bytes(range(32))
        proto = 17
    else:
        flags = 0x12 if syn_ack else 0x02
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0 if not syn_ack else 1001, 5 << 4, flags, 65535, 0, 0)
        proto = 6
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + l4


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--flows", type=int, default=2_000_000)
    ap.add_argument("--packets", type=int, default=2)
    ap.add_argument("--udp-share", type=float, default=0.5)
    a = ap.parse_args()
    t = 1_767_225_600 * 1_000_000  # 2026-01-01, microseconds
    udp_every = int(1 / a.udp_share) if a.udp_share > 0 else 0
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for k in range(a.packets):
            out = []
            for i in range(a.flows):
                # 10.0.0.0/8 clients with 60,000 ports each, one server per 65,536 flows
                c = 1 + i // 60000
                cport = 1024 + i % 60000
                client = struct.pack("!I", (10 << 24) | c)
                server = struct.pack("!I", (192 << 24) | (168 << 16) | (i % 65536))
                udp = udp_every > 0 and i % udp_every == 0
                back = k % 2 == 1
                fr = frame(server, client, 443, cport, udp, True) if back else frame(client, server, cport, 443, udp, False)
                out.append(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(fr), len(fr)) + fr)
                t += 1
                if len(out) == 65536:
                    f.write(b"".join(out))
                    out = []
            f.write(b"".join(out))
    print(f"gen-flood: {a.flows} flows x {a.packets} packets -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
