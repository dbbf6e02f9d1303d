#!/usr/bin/env python3
"""Lab BitTorrent tracker: BEP 3 HTTP announce/scrape (compact peers, peers6) and BEP 15 UDP.

usage: tracker.py --http ADDR:PORT ... --udp ADDR:PORT ... [--interval S] [--log FILE]
ADDR may be an IPv6 literal in brackets. Peers are kept in memory per info-hash; the peer's
address is the source address of its announce (or its `ip=` parameter when given).
Only meant for the bittap lab's private network namespaces.
"""
import argparse
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bencode import bencode  # noqa: E402

LOCK = threading.Lock()
SWARMS = {}  # info_hash -> {(ip, port): (peer_id, left, time)}
INTERVAL = 10
LOG = sys.stderr
VISIBLE = set()  # when set, only these peer addresses are ever handed out (PEX scenario)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=LOG, flush=True)


def split_addr(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def announce(ih, ip, port, peer_id, left, event):
    now = time.time()
    with LOCK:
        sw = SWARMS.setdefault(ih, {})
        for k in [k for k, v in sw.items() if now - v[2] > 3 * INTERVAL + 30]:
            del sw[k]
        if event == "stopped":
            sw.pop((ip, port), None)
        else:
            sw[(ip, port)] = (peer_id, left, now)
        others = [(k, v) for k, v in sw.items() if k != (ip, port) and (not VISIBLE or k[0] in VISIBLE)]
        seeders = sum(1 for _, v in sw.items() if v[1] == 0)
        leechers = len(sw) - seeders
    return others, seeders, leechers


def compact(peers):
    p4, p6 = b"", b""
    for (ip, port), _ in peers:
        try:
            p4 += socket.inet_pton(socket.AF_INET, ip) + struct.pack("!H", port)
        except OSError:
            p6 += socket.inet_pton(socket.AF_INET6, ip) + struct.pack("!H", port)
    return p4, p6


def norm_ip(ip):
    if ip.startswith("::ffff:") and "." in ip:
        return ip[7:]
    return ip


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "bittap-lab-tracker/1"

    def log_message(self, fmt, *args):
        log("http", self.client_address[0], fmt % args)

    def reply(self, obj, code=200):
        body = bencode(obj)
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        params = {}
        for part in query.split("&"):
            if "=" in part:
                k, v = part.split("=", 1)
                params[k] = urllib.parse.unquote_to_bytes(v)
        if path.endswith("/scrape"):
            files = {}
            with LOCK:
                for ih, sw in SWARMS.items():
                    s = sum(1 for v in sw.values() if v[1] == 0)
                    files[ih] = {"complete": s, "incomplete": len(sw) - s, "downloaded": 0}
            return self.reply({"files": files})
        if not path.endswith("/announce") or "info_hash" not in params:
            return self.reply({"failure reason": "bad request"}, 400)
        ih = params["info_hash"]
        ip = norm_ip(self.client_address[0])
        if "ip" in params:
            ip = params["ip"].decode(errors="replace")
        port = int(params.get("port", b"0"))
        left = int(params.get("left", b"1"))
        event = params.get("event", b"").decode(errors="replace")
        others, s, l = announce(ih, ip, port, params.get("peer_id", b""), left, event)
        p4, p6 = compact(others)
        log("announce http", ih.hex(), ip, port, "left", left, event, "->", len(others), "peers")
        self.reply({"interval": INTERVAL, "min interval": 5, "complete": s, "incomplete": l,
                    "peers": p4, "peers6": p6})


class V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def serve_http(addr):
    host, port = split_addr(addr)
    cls = V6Server if ":" in host else ThreadingHTTPServer
    srv = cls((host, port), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    log("http tracker on", addr)


def serve_udp(addr):
    host, port = split_addr(addr)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host, port))
    conns = {}

    def loop():
        while True:
            data, src = s.recvfrom(2048)
            ip = norm_ip(src[0])
            if len(data) < 16:
                continue
            cid, action, tid = struct.unpack("!QII", data[:16])
            if action == 0 and cid == 0x41727101980:
                new = int.from_bytes(os.urandom(8), "big")
                conns[new] = time.time()
                s.sendto(struct.pack("!IIQ", 0, tid, new), src)
                log("udp connect", ip)
            elif action == 1 and len(data) >= 98 and cid in conns:
                ih, pid = data[16:36], data[36:56]
                _down, left, _up, ev, _ipa, _key, _nw, pport = struct.unpack("!QQQIIIiH", data[56:98])
                event = {0: "", 1: "completed", 2: "started", 3: "stopped"}.get(ev, "")
                others, se, le = announce(ih, ip, pport, pid, left, event)
                p4, p6 = compact(others)
                peers = p6 if fam == socket.AF_INET6 and ":" in ip else p4
                s.sendto(struct.pack("!IIIII", 1, tid, INTERVAL, le, se) + peers, src)
                log("announce udp", ih.hex(), ip, pport, "left", left, event, "->", len(others))
            elif action == 2 and cid in conns:
                out = struct.pack("!II", 2, tid)
                for i in range(16, len(data) - 19, 20):
                    with LOCK:
                        sw = SWARMS.get(data[i:i + 20], {})
                        se = sum(1 for v in sw.values() if v[1] == 0)
                        out += struct.pack("!III", se, 0, len(sw) - se)
                s.sendto(out, src)
            else:
                s.sendto(struct.pack("!II", 3, tid) + b"bad request", src)

    threading.Thread(target=loop, daemon=True).start()
    log("udp tracker on", addr)


def main():
    global INTERVAL, LOG, VISIBLE
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", action="append", default=[])
    ap.add_argument("--udp", action="append", default=[])
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--log")
    ap.add_argument("--visible", action="append", default=[], help="only ever hand out these peer IPs")
    a = ap.parse_args()
    INTERVAL = a.interval
    VISIBLE = set(a.visible)
    if a.log:
        LOG = open(a.log, "a")
    for x in a.http:
        serve_http(x)
    for x in a.udp:
        serve_udp(x)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
