#!/usr/bin/env python3
"""Non-BitTorrent traffic for the bittap lab's negative scenarios (runs inside lab namespaces).

  netgen.py tcp-sink  ADDR:PORT                       accept, read everything, close
  netgen.py tcp-send  ADDR:PORT BYTES [--bind ADDR:PORT]   send random bytes
  netgen.py udp-sink  ADDR:PORT [--echo]              receive datagrams (optionally echo them)
  netgen.py udp-send  ADDR:PORT BYTES [--size N] [--bind ADDR:PORT] [--rate PPS]
  netgen.py tls-server ADDR:PORT CERT KEY BYTES       TLS server that sends BYTES random bytes
  netgen.py tls-client ADDR:PORT [--count N]          TLS client reading until close
ADDR may be an IPv6 literal in brackets.
"""
import os
import socket
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


def main():
    bind = opt("--bind")
    size = int(opt("--size", "1200"))
    rate = float(opt("--rate", "400"))
    count = int(opt("--count", "1"))
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
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
