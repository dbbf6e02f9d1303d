#!/usr/bin/env python3
"""A capture spanning a long stretch of packet time with little traffic (issue 17: memory
must depend on traffic, not on the span of the input), written outside the repo.

    scripts/gen-span.py OUT.pcap [--days D] [--every S]

Every S seconds (10 by default) for D days (30 by default) a short exchange: a DNS-sized UDP
query and reply on one of a few long-lived flows, and every hour a short TCP connection
(SYN, SYN-ACK, a request, FIN). Ethernet, IPv4; 30 days at 10 s are about 530,000 packets,
45 MB, and 43,200 minutes with traffic.
"""
import argparse
import struct
import sys

ETH = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def frame(src, dst, proto, l4):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, ip4(src), ip4(dst))
    return ETH + ip + l4


def udp(src, dst, sport, dport, payload):
    return frame(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b""):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    return frame(src, dst, 6, hdr + payload)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--every", type=float, default=10)
    a = ap.parse_args()
    start = 1_767_225_600  # 2026-01-01T00:00:00Z
    end = start + int(a.days * 86400)
    step = int(a.every * 1_000_000)
    n = 0
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

        def put(t_us, fr):
            nonlocal n
            f.write(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(fr), len(fr)) + fr)
            n += 1

        t = start * 1_000_000
        i = 0
        while t < end * 1_000_000:
            c = "10.0.0.%d" % (1 + i % 4)
            put(t, udp(c, "192.0.2.53", 40000 + i % 4, 53, b"\x12\x34\x01\x00" + bytes(28)))
            put(t + 2000, udp("192.0.2.53", c, 53, 40000 + i % 4, b"\x12\x34\x81\x80" + bytes(60)))
            if i % max(1, int(3600 / a.every)) == 0:
                p = 30000 + (i // 360) % 30000
                s = "198.51.100.%d" % (1 + i % 200)
                put(t + 5000, tcp(c, s, p, 443, 1, 0, 0x02))
                put(t + 6000, tcp(s, c, 443, p, 9, 2, 0x12))
                put(t + 7000, tcp(c, s, p, 443, 2, 10, 0x18, bytes(200)))
                put(t + 8000, tcp(c, s, p, 443, 202, 10, 0x11))
                put(t + 9000, tcp(s, c, 443, p, 10, 203, 0x11))
            t += step
            i += 1
    print(f"gen-span: {n} packets over {a.days} days -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
