#!/usr/bin/env python3
"""Non-BitTorrent traffic for the bittap lab's negative scenarios (runs inside lab namespaces).

  netgen.py tcp-sink  ADDR:PORT                       accept, read everything, close
  netgen.py tcp-send  ADDR:PORT BYTES [--bind ADDR:PORT]   send random bytes
  netgen.py udp-sink  ADDR:PORT [--echo]              receive datagrams (optionally echo them)
  netgen.py udp-send  ADDR:PORT BYTES [--size N] [--bind ADDR:PORT] [--rate PPS]
  netgen.py tls-server ADDR:PORT CERT KEY BYTES       TLS server that sends BYTES random bytes
  netgen.py tls-client ADDR:PORT [--count N]          TLS client reading until close
  netgen.py rr-server ADDR:PORT [--init N]            random request/response server (see below)
  netgen.py rr-client ADDR:PORT --count N --turns A-B [--init N] [--pause S] [--seed S]
                                                      N connections of A..B request/response turns
  netgen.py socks-get SOCKS_ADDR:PORT TARGET_IP:PORT PATH [--user U --pass P]
                                                      HTTP/1.0 GET through a SOCKS5 proxy, prints bytes
  netgen.py dns-dropfirst ADDR:PORT UPSTREAM:PORT     UDP DNS relay that drops the first copy of each
                                                      query, so the client's retry is what gets answered
  netgen.py mdns-query IFACE_ADDR NAME... [--repeat N] [--legacy]
                                                      mDNS queries with an EDNS OPT record to 224.0.0.251
ADDR may be an IPv6 literal in brackets.

Random request/response protocol (rr-*): every byte on the wire is os.urandom output. The first 8 bytes
of a connection's first request seed a PRNG on both ends that draws every later message length (requests
and replies 50..700 bytes), so each side reads exactly one message per turn without any visible framing.
With --init N the client's first write is N random bytes plus its first message in ONE send() (like an
obfuscated messenger transport that opens with a 64-byte random init).
"""
import os
import random
import socket
import struct
import ssl
import sys
import threading
import time


def addr(s):
    host, _, port = s.rpartition(":")
    host = host.strip("[]")
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, int(port))


def opt(name, default=None):
    if name in sys.argv:
        i = sys.argv.index(name)
        v = sys.argv[i + 1]
        del sys.argv[i:i + 2]
        return v
    return default


def flag(name):
    if name in sys.argv:
        sys.argv.remove(name)
        return True
    return False


def listen_tcp(a):
    fam, sa = addr(a)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(sa)
    s.listen(16)
    return s


def drain(c):
    with c:
        while c.recv(65536):
            pass


def recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        d = c.recv(n - len(buf))
        if not d:
            raise EOFError
        buf += d
    return buf


def rr_lengths(seed):
    r = random.Random(seed)
    while True:
        yield r.randint(50, 700), r.randint(50, 700)


def rr_serve(c, init):
    with c:
        try:
            head = recv_exact(c, init + 8)
            lens = rr_lengths(head[-8:])
            req, resp = next(lens)
            recv_exact(c, req - 8)
            while True:
                c.sendall(os.urandom(resp))
                req, resp = next(lens)
                recv_exact(c, req)
        except (EOFError, OSError):
            pass


def rr_client(target, count, turns, init, pause, seed):
    fam, sa = addr(target)
    rnd = random.Random(seed)
    a, _, b = turns.partition("-")
    total = 0
    for _ in range(count):
        with socket.socket(fam, socket.SOCK_STREAM) as c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.connect(sa)
            first = os.urandom(8)
            lens = rr_lengths(first)
            n = rnd.randint(int(a), int(b or a))
            for t in range(n):
                req, resp = next(lens)
                msg = (os.urandom(init) + first + os.urandom(req - 8)) if t == 0 else os.urandom(req)
                c.sendall(msg)
                recv_exact(c, resp)
                total += len(msg) + resp
                if pause:
                    time.sleep(pause * rnd.random())
        time.sleep(0.02)
    print("rr-client bytes", total)


def socks_get(proxy, target, path, user, password):
    fam, sa = addr(proxy)
    tfam, (thost, tport) = addr(target)
    with socket.socket(fam, socket.SOCK_STREAM) as c:
        c.settimeout(20)
        c.connect(sa)
        c.sendall(b"\x05\x01\x02" if user is not None else b"\x05\x01\x00")
        ver, method = recv_exact(c, 2)
        if method == 2:
            u, p = user.encode(), (password or "").encode().replace(b"\\0", b"\0")
            c.sendall(bytes([1, len(u)]) + u + bytes([len(p)]) + p)
            if recv_exact(c, 2)[1] != 0:
                raise SystemExit("socks auth refused")
        elif method != 0:
            raise SystemExit(f"socks method {method}")
        if tfam == socket.AF_INET6:
            dst = b"\x04" + socket.inet_pton(socket.AF_INET6, thost)
        else:
            dst = b"\x01" + socket.inet_aton(thost)
        c.sendall(b"\x05\x01\x00" + dst + struct.pack("!H", tport))
        rep = recv_exact(c, 4)
        if rep[1] != 0:
            raise SystemExit(f"socks connect failed: {rep[1]}")
        recv_exact(c, {1: 6, 4: 18}.get(rep[3], 6))
        c.sendall(f"GET {path} HTTP/1.0\r\nHost: {thost}\r\n\r\n".encode())
        got = 0
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += len(d)
        print("socks-get got", got)


def dns_name(n):
    return b"".join(bytes([len(x)]) + x.encode() for x in n.strip(".").split(".")) + b"\0"


def mdns_query(iface, names, repeat, legacy):
    # one query, several questions (PTR for service names, ANY otherwise), QU bit clear, then an EDNS OPT
    # record (RFC 6891: name 0, type 41, UDP size 1440, no options): ARCOUNT = 1
    qs = b"".join(dns_name(n) + struct.pack("!HH", 12 if n.startswith("_") else 255, 1) for n in names)
    msg = struct.pack("!HHHHHH", 0, 0, len(names), 0, 0, 1) + qs + b"\0" + struct.pack("!HHIH", 41, 1440, 0, 0)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    s.bind((iface if legacy else "0.0.0.0", 0 if legacy else 5353))
    s.settimeout(0.2)
    got = 0
    delay = 1.0
    for i in range(repeat):
        s.sendto(msg, ("224.0.0.251", 5353))   # identical bytes every time, as a querier repeating
        t0 = time.time()
        while time.time() - t0 < delay:
            try:
                s.recvfrom(9000)
                got += 1
            except socket.timeout:
                pass
        delay *= 2
    print(f"mdns-query: {len(msg)}-byte query sent {repeat}x, {got} datagrams received")


def dns_dropfirst(listen, upstream):
    fam, sa = addr(listen)
    ufam, ua = addr(upstream)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind(sa)
    seen = set()
    while True:
        q, src = s.recvfrom(65536)
        if q not in seen:
            seen.add(q)
            continue   # dropped: the client times out and sends the identical query again
        u = socket.socket(ufam, socket.SOCK_DGRAM)
        u.settimeout(2)
        try:
            u.sendto(q, ua)
            s.sendto(u.recv(65536), src)
        except OSError:
            pass
        finally:
            u.close()


def main():
    bind = opt("--bind")
    size = int(opt("--size", "1200"))
    rate = float(opt("--rate", "400"))
    count = int(opt("--count", "1"))
    init = int(opt("--init", "0"))
    turns = opt("--turns", "1-3")
    pause = float(opt("--pause", "0"))
    seed = opt("--seed", "rr")
    user = opt("--user")
    password = opt("--pass")
    repeat = int(opt("--repeat", "3"))
    legacy = flag("--legacy")
    echo = flag("--echo")
    mode, target = sys.argv[1], sys.argv[2]
    if mode == "tcp-sink":
        s = listen_tcp(target)
        while True:
            c, _ = s.accept()
            threading.Thread(target=drain, args=(c,), daemon=True).start()
    elif mode == "tcp-send":
        fam, sa = addr(target)
        s = socket.socket(fam, socket.SOCK_STREAM)
        if bind:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(addr(bind)[1])
        s.connect(sa)
        left = int(sys.argv[3])
        while left > 0:
            n = min(left, 16384)
            s.sendall(os.urandom(n))
            left -= n
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        s.close()
    elif mode == "udp-sink":
        fam, sa = addr(target)
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind(sa)
        while True:
            d, src = s.recvfrom(65536)
            if echo:
                s.sendto(d, src)
    elif mode == "udp-send":
        fam, sa = addr(target)
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if bind:
            s.bind(addr(bind)[1])
        left = int(sys.argv[3])
        while left > 0:
            n = min(left, size)
            s.sendto(os.urandom(n), sa)
            left -= n
            time.sleep(1.0 / rate)
    elif mode == "tls-server":
        cert, key, nbytes = sys.argv[3], sys.argv[4], int(sys.argv[5])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        s = listen_tcp(target)

        def serve(c):
            try:
                with ctx.wrap_socket(c, server_side=True) as t:
                    t.recv(1024)
                    left = nbytes
                    while left > 0:
                        n = min(left, 16384)
                        t.sendall(os.urandom(n))
                        left -= n
            except (OSError, ssl.SSLError) as e:
                print("tls-server:", e, file=sys.stderr)
        while True:
            c, _ = s.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    elif mode == "tls-client":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        fam, sa = addr(target)
        for _ in range(count):
            with socket.create_connection(sa) as c, ctx.wrap_socket(c, server_hostname="lab.test") as t:
                t.sendall(b"GET /data HTTP/1.0\r\nHost: lab.test\r\n\r\n")
                got = 0
                while True:
                    d = t.recv(65536)
                    if not d:
                        break
                    got += len(d)
                print("tls-client got", got)
    elif mode == "rr-server":
        s = listen_tcp(target)
        while True:
            c, _ = s.accept()
            threading.Thread(target=rr_serve, args=(c, init), daemon=True).start()
    elif mode == "rr-client":
        rr_client(target, count, turns, init, pause, seed)
    elif mode == "socks-get":
        socks_get(target, sys.argv[3], sys.argv[4], user, password)
    elif mode == "dns-dropfirst":
        dns_dropfirst(target, sys.argv[3])
    elif mode == "mdns-query":
        mdns_query(target, sys.argv[3:], repeat, legacy)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
