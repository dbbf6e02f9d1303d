#!/usr/bin/python3
"""bittap lab: real BitTorrent clients (and non-BitTorrent services) in private network
namespaces, captured on a bridge with tcpdump. See lab/README.md.

Every scenario builds its own namespaces (one "switch" namespace holding the bridge br0, one
namespace per host, veth pairs between them), with addresses 10.77.0.0/24 and fd00:77::/64 that
exist only there. No namespace has a default route or any link to the root namespace, so no
packet can leave the lab. Processes are started in their own session and stopped by process
(group) id; namespaces are deleted at the end of each scenario and on any error or signal.

Must run as root with Debian's /usr/bin/python3 (python3-libtorrent lives there).
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bencode import make_content, make_torrent, magnet  # noqa: E402

PY = "/usr/bin/python3"
NET4 = "10.77.0."
NET6 = "fd00:77::"
STATE_DIR = "/run/bittap-lab"
LSD4 = "239.192.152.143"
LSD6 = "ff15::efc0:988f"
# ports bittap's port rules (rules/ports.toml) know: BitTorrent clients in the lab listen on them only in
# bt-classic-ports; everywhere else they use Lab.port() (random high ports)
CLASSIC_PORTS = set(range(6881, 6890)) | {6969, 6771, 51413}
TRACKER_HTTP, TRACKER_UDP = 8000, 7000   # the lab tracker's ports outside bt-classic-ports / bt-mixed


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def run(*cmd, check=True, capture=False):
    r = subprocess.run(cmd, check=False, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return r.stdout if capture else r.returncode


def pkg_version(pkg):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                              text=True).stdout.strip() or "not-installed"
    except OSError:
        return "unknown"


class Host:
    def __init__(self, lab, name, idx, role):
        self.lab, self.name, self.idx, self.role = lab, name, idx, role
        self.ns = f"btl{lab.runid}-{name}"
        self.ip4 = f"{NET4}{idx}"
        self.ip6 = f"{NET6}{idx}"
        self.bt_ports = {"tcp": set(), "udp": set()}   # ports a BitTorrent client listens on
        self.services = []                                # (l4, port, kind) non-BitTorrent services
        self.clients = []                                 # descriptions of what runs here
        self.dir = os.path.join(lab.work, name)
        os.makedirs(self.dir, exist_ok=True)

    def a6(self, port):
        return f"[{self.ip6}]:{port}"

    def a4(self, port):
        return f"{self.ip4}:{port}"

    def meta(self):
        return {"name": self.name, "ns": self.ns, "ip4": self.ip4, "ip6": self.ip6, "role": self.role,
                "bt_ports": {k: sorted(v) for k, v in self.bt_ports.items()},
                "services": self.services, "clients": self.clients}


class Lab:
    def __init__(self, runid, work, scenario):
        self.runid = runid
        self.work = work
        self.scenario = scenario
        self.hosts = {}
        self.namespaces = []
        self.procs = []
        self.sw = f"btl{runid}-sw"
        self.capture = None
        self.ss_stop = threading.Event()
        self.ss_thread = None
        os.makedirs(STATE_DIR, exist_ok=True)
        self.state = os.path.join(STATE_DIR, f"{runid}.state")
        os.makedirs(work, exist_ok=True)
        self.rnd = random.Random(f"bittap-lab-ports/{scenario}")
        self.ports = {}
        self.group_kinds = []   # [l4, multicast group, port, kind]: kinds of flows to a group (label.py)

    def port(self, key):
        """A listen port for BitTorrent client `key`: deterministic per scenario (seeded PRNG), drawn
        from 20000-60000, distinct within the scenario, and so that neither it nor port+1 (aria2's DHT
        port) is a port bittap's port rules know (6881-6889, 6969, 6771, 51413) -- all of which lie
        outside the range anyway."""
        if key not in self.ports:
            used = set(self.ports.values()) | {p + 1 for p in self.ports.values()}
            while True:
                p = self.rnd.randint(20000, 59999)
                if not ({p, p + 1, p - 1} & (used | CLASSIC_PORTS)):
                    break
            self.ports[key] = p
        return self.ports[key]

    # --- bookkeeping for the shell trap (lab/run.sh cleans up from this file if we die) ---
    def _state(self, line):
        with open(self.state, "a") as f:
            f.write(line + "\n")

    def _add_ns(self, ns):
        run("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        self._state(f"ns {ns}")

    # --- topology ---
    def setup_switch(self):
        self._add_ns(self.sw)
        ex = ["ip", "netns", "exec", self.sw]
        run(*ex, "ip", "link", "set", "lo", "up")
        run(*ex, "ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0",
            "mcast_snooping", "0")
        run(*ex, "sysctl", "-qw", "net.ipv6.conf.br0.disable_ipv6=1")
        run(*ex, "ip", "link", "set", "br0", "up")

    def host(self, name, idx, role):
        h = Host(self, name, idx, role)
        self._add_ns(h.ns)
        etc = f"/etc/netns/{h.ns}"
        os.makedirs(etc, exist_ok=True)
        self._state(f"etc {etc}")
        with open(f"{etc}/resolv.conf", "w") as f:
            f.write("nameserver 127.0.0.1\n")   # look-ups stay on loopback, never leave the host
        with open(f"{etc}/hosts", "w") as f:
            f.write("127.0.0.1 localhost\n::1 localhost\n")
        peer = f"v{idx}"
        run("ip", "link", "add", "eth0", "netns", h.ns, "type", "veth", "peer", "name", peer,
            "netns", self.sw)
        run("ip", "-n", self.sw, "link", "set", peer, "master", "br0")
        run("ip", "-n", self.sw, "link", "set", peer, "up")
        ex = ["ip", "netns", "exec", h.ns]
        run(*ex, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.eth0.accept_dad=0", "net.ipv6.conf.eth0.router_solicitations=0")
        # no ephemeral (outgoing) port lands on a classic BitTorrent/tracker port by chance (51413 lies in
        # the ephemeral range): only a client configured to listen there uses one (bt-classic-ports, and
        # the services in neg-btports)
        run(*ex, "sysctl", "-qw", "net.ipv4.ip_local_reserved_ports=6771,6881-6889,6969,51413", check=False)
        run("ip", "-n", h.ns, "link", "set", "lo", "up")
        run("ip", "-n", h.ns, "addr", "add", f"{h.ip4}/24", "dev", "eth0")
        run("ip", "-n", h.ns, "-6", "addr", "add", f"{h.ip6}/64", "dev", "eth0", "nodad")
        run("ip", "-n", h.ns, "link", "set", "eth0", "up")
        # multicast (LSD) needs a route; there is deliberately no default route
        run("ip", "-n", h.ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
        self.hosts[name] = h
        return h

    # --- processes ---
    def start(self, host, argv, name, env=None, cwd=None, stdin=None):
        logf = open(os.path.join(self.work, f"{host.name}-{name}.log"), "ab")
        e = dict(os.environ)
        e.update({"HOME": host.dir, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
        if env:
            e.update(env)
        p = subprocess.Popen(["ip", "netns", "exec", host.ns] + list(argv), stdout=logf,
                             stderr=subprocess.STDOUT, stdin=stdin or subprocess.DEVNULL,
                             cwd=cwd or host.dir, env=e, start_new_session=True)
        self.procs.append((name, host, p))
        self._state(f"pid {p.pid}")
        log(f"  [{host.name}] started {name} pid {p.pid}")
        return p

    def exec(self, host, argv, timeout=60, env=None):
        """Run a short command inside a host namespace and wait for it (bounded)."""
        e = dict(os.environ)
        e.update({"HOME": host.dir})
        if env:
            e.update(env)
        p = subprocess.Popen(["ip", "netns", "exec", host.ns] + list(argv), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=e, start_new_session=True)
        self._state(f"pid {p.pid}")
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._killpg(p)
            out = b"(timeout)"
        return p.returncode, out.decode(errors="replace")

    def _killpg(self, p, grace=3.0):
        if p.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                return
            try:
                p.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop_procs(self, name=None):
        # newest first: clients stop (and send their "stopped" announces) before the tracker goes
        for n, h, p in reversed(self.procs):
            if name is None or n == name:
                self._killpg(p)

    # --- capture ---
    def start_capture(self, pcap):
        self.pcap = pcap
        logf = open(pcap + ".tcpdump.log", "wb")
        p = subprocess.Popen(["ip", "netns", "exec", self.sw, "tcpdump", "-i", "br0", "-n", "-U",
                              "-s", "0", "-Z", "root", "-w", pcap], stdout=logf, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self._state(f"pid {p.pid}")
        self.capture = p
        for _ in range(50):
            time.sleep(0.1)
            with open(pcap + ".tcpdump.log", "rb") as f:
                if b"listening on" in f.read():
                    break
        self.ss_thread = threading.Thread(target=self._ss_loop, daemon=True)
        self.ss_thread.start()

    def _ss_loop(self):
        path = os.path.join(self.work, "ss.txt")
        with open(path, "a") as f:
            while not self.ss_stop.is_set():
                for h in list(self.hosts.values()):
                    try:
                        out = subprocess.run(["ip", "netns", "exec", h.ns, "ss", "-tuanpH"],
                                             capture_output=True, text=True, timeout=5).stdout
                    except (subprocess.TimeoutExpired, OSError):
                        continue
                    for line in out.splitlines():
                        f.write(f"{h.name}\t{line}\n")
                f.flush()
                self.ss_stop.wait(1.0)

    def stop_capture(self):
        self.ss_stop.set()
        if self.capture and self.capture.poll() is None:
            time.sleep(0.5)
            os.killpg(self.capture.pid, signal.SIGINT)
            try:
                self.capture.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._killpg(self.capture)
        if self.ss_thread:
            self.ss_thread.join(timeout=10)

    # --- teardown ---
    def cleanup(self):
        self.ss_stop.set()
        for n, h, p in reversed(self.procs):
            self._killpg(p, grace=2.0)
        if self.capture:
            self._killpg(self.capture)
        for ns in reversed(self.namespaces):
            # anything still inside one of our namespaces was started by us
            out = run("ip", "netns", "pids", ns, check=False, capture=True) or ""
            for pid in out.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run("ip", "netns", "del", ns, check=False)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
        self.namespaces = []
        try:
            os.unlink(self.state)
        except FileNotFoundError:
            pass


# ----------------------------------------------------------------------------------------------
# content and clients

class Content:
    def __init__(self, lab, name, size, announce=None, announce_list=None, seed=1, url_list=None):
        self.dir = os.path.join(lab.work, "content")
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.path = os.path.join(self.dir, name)
        make_content(self.path, size, f"{lab.scenario}/{name}/{seed}")
        self.torrent = os.path.join(self.dir, name + ".torrent")
        self.infohash = make_torrent(self.path, self.torrent, announce=announce, announce_list=announce_list,
                                     piece_len=16384, url_list=url_list)
        with open(self.path, "rb") as f:
            self.sha1 = hashlib.sha1(f.read()).hexdigest()
        self.size = size
        self.magnet = magnet(self.infohash, name)
        self.leechers = []  # download dirs to watch

    def seed_dir(self, host, sub):
        d = os.path.join(host.dir, sub)
        os.makedirs(d, exist_ok=True)
        shutil.copy(self.path, d)
        return d

    def leech_dir(self, host, sub):
        d = os.path.join(host.dir, sub)
        os.makedirs(d, exist_ok=True)
        self.leechers.append(os.path.join(d, self.name))
        return d

    def done(self, path):
        try:
            if os.path.getsize(path) != self.size:
                return False
            with open(path, "rb") as f:
                return hashlib.sha1(f.read()).hexdigest() == self.sha1
        except OSError:
            return False


def wait_complete(contents, timeout, extra=()):
    t0 = time.time()
    while time.time() - t0 < timeout:
        pending = [p for c in contents for p in c.leechers if not c.done(p)]
        if not pending and all(x() for x in extra):
            log(f"  all downloads complete after {time.time() - t0:.1f}s")
            return True
        time.sleep(1)
    pending = [p for c in contents for p in c.leechers if not c.done(p)]
    log(f"  timeout after {timeout}s; incomplete: {pending}")
    return False


def c_tracker(lab, host, http=(), udp=(), interval=10, visible=()):
    args = [PY, os.path.join(HERE, "tracker.py"), "--interval", str(interval)]
    for a in http:
        args += ["--http", a]
        host.services.append(["tcp", int(a.rpartition(":")[2]), "tracker-http"])
    for a in udp:
        args += ["--udp", a]
        host.services.append(["udp", int(a.rpartition(":")[2]), "tracker-udp"])
    for v in visible:
        args += ["--visible", v]
    host.clients.append(f"lab tracker.py http={list(http)} udp={list(udp)}"
                        + (f" visible-only={list(visible)}" if visible else ""))
    return lab.start(host, args, "tracker")


def c_lt(lab, host, port, content, sub, seed=False, enc="disabled", rc4=False, utp="off", dht=False,
         dht_nodes=(), lsd=False, pex=True, connect=(), connect_delay=0, use_magnet=False, v4=True, v6=True,
         dl_limit=0, ul_limit=0, name="libtorrent"):
    d = content.seed_dir(host, sub) if seed else content.leech_dir(host, sub)
    listen = []
    if v4:
        listen.append(host.a4(port))
    if v6:
        listen.append(host.a6(port))
    args = [PY, os.path.join(HERE, "lt_client.py"), "--listen", ",".join(listen), "--save", d,
            "--enc", enc, "--utp", utp, "--duration", "600"]
    args += ["--magnet", content.magnet] if use_magnet else ["--torrent", content.torrent]
    if seed:
        args.append("--seed")
    if rc4:
        args.append("--rc4")
    if dht:
        args.append("--dht")
    for n in dht_nodes:
        args += ["--dht-node", n]
    if lsd:
        args.append("--lsd")
    if not pex:
        args.append("--no-pex")
    for c in connect:
        args += ["--connect", c]
    if connect_delay:
        args += ["--connect-delay", str(connect_delay)]
    if dl_limit:
        args += ["--dl-limit", str(dl_limit)]
    if ul_limit:
        args += ["--ul-limit", str(ul_limit)]
    host.bt_ports["tcp"].add(port)
    host.bt_ports["udp"].add(port)
    host.clients.append(f"python3-libtorrent {lab.versions['python3-libtorrent']} port {port} "
                        f"{'seed' if seed else 'leech'} {'magnet' if use_magnet else 'torrent'} enc={enc}"
                        f"{'/rc4-only' if rc4 else ''} utp={utp} dht={dht} lsd={lsd} pex={pex}"
                        + (f" connect={list(connect)}" if connect else ""))
    return lab.start(host, args, name)


def c_transmission_cli(lab, host, port, content, sub, seed=False, enc="tolerated", utp=False, dht=False,
                       lpd=False, pex=True, dht_nodes=(), use_magnet=False, bind4=True, name="transmission-cli"):
    d = content.seed_dir(host, sub) if seed else content.leech_dir(host, sub)
    cfg = os.path.join(host.dir, "tr-" + sub)
    os.makedirs(cfg, exist_ok=True)
    settings = {
        "peer-port": port, "peer-port-random-on-start": False, "port-forwarding-enabled": False,
        "dht-enabled": dht, "lpd-enabled": lpd, "pex-enabled": pex, "utp-enabled": utp,
        "encryption": {"tolerated": 0, "preferred": 1, "required": 2}[enc],
        # transmission binds its HTTP announces (libcurl) to bind-address-ipv4 when that is set, which
        # breaks announcing to an IPv6 tracker: leave it at the default there
        "bind-address-ipv4": host.ip4 if bind4 else "0.0.0.0", "bind-address-ipv6": host.ip6,
        "rpc-enabled": False, "blocklist-enabled": False, "message-level": 2,
        "download-dir": d, "incomplete-dir-enabled": False, "ratio-limit-enabled": False,
        "speed-limit-up-enabled": False, "speed-limit-down-enabled": False,
    }
    with open(os.path.join(cfg, "settings.json"), "w") as f:
        json.dump(settings, f, indent=1)
    if dht_nodes:
        with open(os.path.join(cfg, "dht.bootstrap"), "w") as f:
            for n in dht_nodes:
                h, _, p = n.rpartition(":")
                f.write(f"{h.strip('[]')} {p}\n")
    flag = {"tolerated": "-et", "preferred": "-ep", "required": "-er"}[enc]
    args = ["transmission-cli", "-g", cfg, "-w", d, "-p", str(port), flag, "-M",
            content.magnet if use_magnet else content.torrent]
    host.bt_ports["tcp"].add(port)
    host.bt_ports["udp"].add(port)
    host.clients.append(f"transmission-cli {lab.versions['transmission-cli']} port {port} "
                        f"{'seed' if seed else 'leech'} encryption={enc} utp={utp} dht={dht} lpd={lpd} pex={pex}")
    return lab.start(host, args, name)


def c_transmission_daemon(lab, host, port, content, sub, seed=False, enc="preferred", utp=True, dht=False,
                          lpd=False, pex=True, name="transmission-daemon"):
    d = content.seed_dir(host, sub) if seed else content.leech_dir(host, sub)
    cfg = os.path.join(host.dir, "trd-" + sub)
    watch = os.path.join(cfg, "watch")
    os.makedirs(watch, exist_ok=True)
    settings = {
        "peer-port": port, "peer-port-random-on-start": False, "port-forwarding-enabled": False,
        "dht-enabled": dht, "lpd-enabled": lpd, "pex-enabled": pex, "utp-enabled": utp,
        "encryption": {"tolerated": 0, "preferred": 1, "required": 2}[enc],
        "bind-address-ipv4": host.ip4, "bind-address-ipv6": host.ip6,
        "rpc-enabled": True, "rpc-bind-address": "127.0.0.1", "rpc-port": 9091,
        "rpc-authentication-required": False, "rpc-whitelist-enabled": False,
        "watch-dir-enabled": True, "watch-dir": watch, "blocklist-enabled": False,
        "download-dir": d, "incomplete-dir-enabled": False, "message-level": 2,
        "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False,
    }
    with open(os.path.join(cfg, "settings.json"), "w") as f:
        json.dump(settings, f, indent=1)
    shutil.copy(content.torrent, watch)
    host.bt_ports["tcp"].add(port)
    host.bt_ports["udp"].add(port)
    host.clients.append(f"transmission-daemon {lab.versions['transmission-daemon']} port {port} "
                        f"{'seed' if seed else 'leech'} encryption={enc} utp={utp} dht={dht} lpd={lpd}")
    return lab.start(host, ["transmission-daemon", "-f", "-g", cfg, "-w", d, "-P", str(port),
                            "--log-error"], name)


def c_aria2(lab, host, port, content, sub, seed=False, crypto=False, dht=False, dht_port=None,
            dht_entry=(), lpd=False, pex=True, use_magnet=False, v6=True, name="aria2"):
    d = content.seed_dir(host, sub) if seed else content.leech_dir(host, sub)
    dht_port = dht_port or port + 1
    args = ["aria2c", "--dir", d, "--listen-port", str(port), "--dht-listen-port", str(dht_port),
            f"--enable-dht={str(dht).lower()}", f"--enable-dht6={str(dht and v6).lower()}",
            f"--bt-enable-lpd={str(lpd).lower()}", f"--enable-peer-exchange={str(pex).lower()}",
            "--seed-time=30", "--seed-ratio=0.0", "--file-allocation=none", "--summary-interval=0",
            "--console-log-level=notice", "--check-certificate=false", "--bt-tracker-interval=10",
            "--bt-save-metadata=false", "--auto-save-interval=0",
            f"--disable-ipv6={str(not v6).lower()}"]
    if crypto:
        args += ["--bt-require-crypto=true", "--bt-min-crypto-level=arc4"]
    if seed:
        args += ["--check-integrity=true", "--bt-seed-unverified=true"]
    for e in dht_entry:
        if ":" in e.rpartition(":")[0]:
            args.append(f"--dht-entry-point6={e.replace('[', '').replace(']', '')}")
        else:
            args.append(f"--dht-entry-point={e}")
    args.append(content.magnet if use_magnet else content.torrent)
    host.bt_ports["tcp"].add(port)
    if dht:
        host.bt_ports["udp"].add(dht_port)
    host.clients.append(f"aria2 {lab.versions['aria2']} port {port} dht-port {dht_port if dht else '-'} "
                        f"{'seed' if seed else 'leech'} require-crypto={crypto} dht={dht} lpd={lpd} pex={pex}")
    return lab.start(host, args, name)


def c_qbittorrent(lab, host, port, content, sub, enc=0, name="qbittorrent-nox"):
    d = content.leech_dir(host, sub)
    prof = os.path.join(host.dir, "qbt-" + sub)
    conf = os.path.join(prof, "qBittorrent", "config")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "qBittorrent.conf"), "w") as f:
        f.write(f"""[LegalNotice]
Accepted=true

[BitTorrent]
Session\\Port={port}
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=true
Session\\Encryption={enc}
Session\\DefaultSavePath={d}
Session\\AnonymousModeEnabled=false
Session\\AddTorrentPaused=false
Session\\GlobalMaxRatio=-1

[Preferences]
Connection\\UPnP=false
Connection\\ResolvePeerCountries=false
General\\Locale=en
WebUI\\Address=127.0.0.1
WebUI\\Port=18080
WebUI\\LocalHostAuth=false
""")
    host.bt_ports["tcp"].add(port)
    host.bt_ports["udp"].add(port)
    host.clients.append(f"qbittorrent-nox {lab.versions['qbittorrent-nox']} port {port} leech encryption={enc}")
    return lab.start(host, ["qbittorrent-nox", f"--profile={prof}", f"--save-path={d}", "--webui-port=18080",
                            content.torrent], name, env={"QT_QPA_PLATFORM": "offscreen"})


def c_rtorrent(lab, host, port, content, sub, seed=False, name="rtorrent"):
    d = content.seed_dir(host, sub) if seed else content.leech_dir(host, sub)
    sess = os.path.join(host.dir, "rt-session-" + sub)
    os.makedirs(sess, exist_ok=True)
    rc = os.path.join(host.dir, "rtorrent-" + sub + ".rc")
    with open(rc, "w") as f:
        f.write(f"""directory.default.set = {d}
session.path.set = {sess}
network.port_range.set = {port}-{port}
network.port_random.set = no
network.bind_address.set = {host.ip4}
dht.mode.set = disable
protocol.pex.set = yes
trackers.use_udp.set = yes
protocol.encryption.set = allow_incoming,try_outgoing,enable_retry
system.daemon.set = true
pieces.hash.on_completion.set = no
""")
    host.bt_ports["tcp"].add(port)
    host.clients.append(f"rtorrent {lab.versions['rtorrent']} port {port} {'seed' if seed else 'leech'} "
                        f"encryption=allow_incoming,try_outgoing dht=off")
    return lab.start(host, ["rtorrent", "-n", "-o", f"import={rc}", "-o", f"load.start={content.torrent}"],
                     name)


# ----------------------------------------------------------------------------------------------
# scenarios: each builds hosts, starts services and clients, waits (bounded), and returns.
# Host roles: "bt" (runs only BitTorrent clients), "tracker" (runs only the lab tracker),
# "service"/"client" (runs only non-BitTorrent software).

SCENARIOS = {}
HIDDEN = {"ci-smoke"}  # not part of the default set


def scenario(name, desc, kinds):
    def deco(fn):
        SCENARIOS[name] = (fn, desc, kinds)
        return fn
    return deco


@scenario("ci-smoke", "CI smoke test: transmission-cli leecher and libtorrent seed via the lab HTTP tracker, "
          "plain TCP peer wire", ["peerwire", "tracker-http"])
def sc_ci_smoke(lab, a):
    t = trackers(lab)
    c = Content(lab, "smoke.bin", a.size, announce=f"http://{t.a4(t.hport)}/announce")
    s = lab.host("seed-lt", 11, "bt")
    l1 = lab.host("leech-tr", 12, "bt")
    c_lt(lab, s, lab.port("seed"), c, "s", seed=True, enc="disabled", v6=False)
    time.sleep(1.0)
    c_transmission_cli(lab, l1, lab.port("leech-tr"), c, "d", enc="tolerated")
    wait_complete([c], a.duration)


def trackers(lab, http=True, udp=False, v6=False, hport=TRACKER_HTTP, uport=TRACKER_UDP):
    t = lab.host("tracker", 10, "tracker")
    t.hport, t.uport = hport, uport
    c_tracker(lab, t, http=[t.a4(hport)] + ([t.a6(hport)] if v6 else []) if http else [],
              udp=[t.a4(uport)] + ([t.a6(uport)] if v6 else []) if udp else [])
    return t


@scenario("bt-plain-http", "plain peer wire between libtorrent, transmission-cli and aria2 via the lab HTTP "
          "tracker; encryption off/tolerated, TCP only, no DHT/LSD", ["peerwire", "tracker-http"])
def sc_plain(lab, a):
    t = trackers(lab)
    c = Content(lab, "plain.bin", a.size, announce=f"http://{t.a4(t.hport)}/announce")
    s = lab.host("seed-lt", 11, "bt")
    l1 = lab.host("leech-tr", 12, "bt")
    l2 = lab.host("leech-aria2", 13, "bt")
    time.sleep(0.5)
    c_lt(lab, s, lab.port("seed"), c, "s", seed=True, enc="disabled", v6=False)
    time.sleep(1.5)
    c_transmission_cli(lab, l1, lab.port("leech-tr"), c, "d", enc="tolerated")
    c_aria2(lab, l2, lab.port("leech-aria2"), c, "d", v6=False)
    wait_complete([c], a.duration)


@scenario("bt-udp-tracker", "BEP 15 UDP tracker; libtorrent seed, transmission-cli and libtorrent leechers, "
          "TCP peer wire", ["peerwire", "tracker-udp"])
def sc_udp_tracker(lab, a):
    t = trackers(lab, http=False, udp=True)
    c = Content(lab, "udptracker.bin", a.size, announce=f"udp://{t.a4(t.uport)}/announce")
    s = lab.host("seed-lt", 11, "bt")
    l1 = lab.host("leech-tr", 12, "bt")
    l2 = lab.host("leech-lt", 13, "bt")
    c_lt(lab, s, lab.port("seed"), c, "s", seed=True, v6=False)
    time.sleep(1.5)
    c_transmission_cli(lab, l1, lab.port("leech-tr"), c, "d")
    c_lt(lab, l2, lab.port("leech-lt"), c, "d", v6=False)
    wait_complete([c], a.duration)


@scenario("bt-mse-required", "MSE/PE encryption required with RC4: libtorrent (forced, rc4 only), "
          "transmission-cli -er, aria2 --bt-require-crypto; TCP only", ["peerwire-mse", "tracker-http"])
def sc_mse_required(lab, a):
    t = trackers(lab)
    c = Content(lab, "mse.bin", a.size, announce=f"http://{t.a4(t.hport)}/announce")
    s = lab.host("seed-lt", 11, "bt")
    l1 = lab.host("leech-tr", 12, "bt")
    l2 = lab.host("leech-aria2", 13, "bt")
    c_lt(lab, s, lab.port("seed"), c, "s", seed=True, enc="forced", rc4=True, v6=False)
    time.sleep(1.5)
    c_transmission_cli(lab, l1, lab.port("leech-tr"), c, "d", enc="required")
    c_aria2(lab, l2, lab.port("leech-aria2"), c, "d", crypto=True, v6=False)
    wait_complete([c], a.duration)


@scenario("bt-mse-preferred", "MSE/PE encryption preferred: libtorrent (enabled, prefer rc4), "
          "transmission-cli -ep, libtorrent leecher (enabled); TCP only", ["peerwire-mse", "peerwire", "tracker-http"])
def sc_mse_preferred(lab, a):
    t = trackers(lab)
    c = Content(lab, "msepref.bin", a.size, announce=f"http://{t.a4(t.hport)}/announce")
    s = lab.host("seed-lt", 11, "bt")
    l1 = lab.host("leech-tr", 12, "bt")
    l2 = lab.host("leech-lt", 13, "bt")
    c_lt(lab, s, lab.port("seed"), c, "s", seed=True, enc="enabled", rc4=False, v6=False)
    time.sleep(1.5)
    c_transmission_cli(lab, l1, lab.port("leech-tr"), c, "d", enc="preferred")
    c_lt(lab, l2, lab.port("leech-lt"), c, "d", enc="enabled", v6=False)
    wait_complete([c], a.duration)


@scenario("bt-utp", "uTP only: libtorrent seed and leecher with TCP disabled, transmission-cli with uTP "
          "enabled; HTTP tracker", ["utp", "tracker-http"])
def sc_utp(lab, a):
    t = trackers(lab)
    c = Content(lab, "utp.bin", a.size, announce=f"http://{t.a4(t.hport)}/announce")
    s = lab.host("seed-lt", 11, "bt")
    l1 = lab.host("leech-lt", 12, "bt")
    l2 = lab.host("leech-tr", 13, "bt")
    c_lt(lab, s, lab.port("seed"), c, "s", seed=True, utp="only", v6=False)
    time.sleep(1.5)
    c_lt(lab, l1, lab.port("leech-lt"), c, "d", utp="only", v6=False)
    c_transmission_cli(lab, l2, lab.port("leech-tr"), c, "d", utp=True)
    wait_complete([c], a.duration)


@scenario("bt-utp-mse", "MSE/PE over uTP: libtorrent seed and leecher with TCP disabled and encryption forced "
          "(RC4), transmission-cli -er with uTP; uTP headers stay clear, the payload is encrypted",
          ["utp", "tracker-http"])
def sc_utp_mse(lab, a):
    t = trackers(lab)
    c = Content(lab, "utpmse.bin", a.size, announce=f"http://{t.a4(t.hport)}/announce")
    s = lab.host("seed-lt", 11, "bt")
    l1 = lab.host("leech-lt", 12, "bt")
    l2 = lab.host("leech-tr", 13, "bt")
    c_lt(lab, s, lab.port("seed"), c, "s", seed=True, utp="only", enc="forced", rc4=True, v6=False)
    time.sleep(1.5)
    c_lt(lab, l1, lab.port("leech-lt"), c, "d", utp="only", enc="forced", rc4=True, v6=False)
    c_transmission_cli(lab, l2, lab.port("leech-tr"), c, "d", utp=True, enc="required")
    wait_complete([c], a.duration)


@scenario("bt-dht-magnet", "trackerless magnet link over DHT: libtorrent seed (torrent, DHT) and a plain DHT "
          "node; libtorrent and aria2 fetch the magnet; DHT bootstraps only from lab nodes",
          ["dht", "peerwire"])
def sc_dht(lab, a):
    c = Content(lab, "dht.bin", a.size)
    s = lab.host("seed-lt", 11, "bt")
    n = lab.host("node-lt", 12, "bt")
    l1 = lab.host("leech-lt", 13, "bt")
    l2 = lab.host("leech-aria2", 14, "bt")
    ps, pn = lab.port("seed"), lab.port("dht-node")
    nodes = [s.a4(ps), n.a4(pn)]
    c_lt(lab, n, pn, Content(lab, "other.bin", 16384, seed=2), "x", seed=True, dht=True,
         dht_nodes=[s.a4(ps)], v6=False, name="dht-node")
    c_lt(lab, s, lab.port("seed"), c, "s", seed=True, dht=True, dht_nodes=[n.a4(pn)], v6=False)
    time.sleep(4)
    c_lt(lab, l1, lab.port("leech-lt"), c, "d", use_magnet=True, dht=True, dht_nodes=nodes, v6=False)
    c_aria2(lab, l2, lab.port("leech-aria2"), c, "d", use_magnet=True, dht=True, dht_entry=[n.a4(pn)], v6=False)
    wait_complete([c], a.duration)


@scenario("bt-lsd", "local peer discovery (BEP 14) only: no tracker, no DHT; libtorrent seed, libtorrent "
          "and transmission-cli leechers find each other by multicast", ["lsd", "peerwire"])
def sc_lsd(lab, a):
    c = Content(lab, "lsd.bin", a.size)
    s = lab.host("seed-lt", 11, "bt")
    l1 = lab.host("leech-lt", 12, "bt")
    l2 = lab.host("leech-tr", 13, "bt")
    c_lt(lab, s, lab.port("seed"), c, "s", seed=True, lsd=True, v6=False)
    time.sleep(1)
    c_lt(lab, l1, lab.port("leech-lt"), c, "d", lsd=True, v6=False)
    c_transmission_cli(lab, l2, lab.port("leech-tr"), c, "d", lpd=True)
    wait_complete([c], a.duration)


@scenario("bt-pex", "peer exchange (ut_pex): the tracker only ever hands out the libtorrent leecher A; "
          "the seed and the other leechers (transmission-cli, aria2) learn each other from A's PEX messages",
          ["peerwire", "tracker-http"])
def sc_pex(lab, a):
    t = lab.host("tracker", 10, "tracker")
    s = lab.host("seed-lt", 11, "bt")
    pa = lab.host("hub-lt", 12, "bt")
    l1 = lab.host("leech-tr", 13, "bt")
    l2 = lab.host("leech-aria2", 14, "bt")
    c_tracker(lab, t, http=[t.a4(TRACKER_HTTP)], visible=[pa.ip4])
    c = Content(lab, "pex.bin", a.size, announce=f"http://{t.a4(TRACKER_HTTP)}/announce")
    # A downloads slowly so it stays a leecher connected to the seed, and uploads slowly so the others
    # want the peers A tells them about
    c_lt(lab, pa, lab.port("hub-lt"), c, "d", v6=False, dl_limit=8000, ul_limit=4000)
    time.sleep(1)
    c_lt(lab, s, lab.port("seed"), c, "s", seed=True, v6=False)
    time.sleep(3)
    c_transmission_cli(lab, l1, lab.port("leech-tr"), c, "d")
    c_aria2(lab, l2, lab.port("leech-aria2"), c, "d", v6=False)
    wait_complete([c], a.duration)


@scenario("bt-ipv6", "IPv6 only swarm: HTTP tracker on [fd00:77::10], libtorrent seed on IPv6 only, "
          "transmission-cli and aria2 leechers; peers6 compact replies", ["peerwire", "tracker-http"])
def sc_ipv6(lab, a):
    t = lab.host("tracker", 10, "tracker")
    c_tracker(lab, t, http=[t.a6(TRACKER_HTTP)])
    c = Content(lab, "ipv6.bin", a.size, announce=f"http://{t.a6(TRACKER_HTTP)}/announce")
    s = lab.host("seed-lt", 11, "bt")
    l1 = lab.host("leech-tr", 12, "bt")
    l2 = lab.host("leech-aria2", 13, "bt")
    c_lt(lab, s, lab.port("seed"), c, "s", seed=True, v4=False)
    time.sleep(1.5)
    c_transmission_cli(lab, l1, lab.port("leech-tr"), c, "d", bind4=False)
    c_aria2(lab, l2, lab.port("leech-aria2"), c, "d")
    wait_complete([c], a.duration)


@scenario("bt-mixed", "several swarms at once: swarm A (HTTP tracker) transmission-daemon seed, "
          "qbittorrent-nox and rtorrent leechers; swarm B (UDP tracker) libtorrent seed with uTP, aria2 and "
          "transmission-cli leechers; plus an HTTP download and DNS look-ups between other hosts",
          ["peerwire", "peerwire-mse", "utp", "tracker-http", "tracker-udp", "other"])
def sc_mixed(lab, a):
    t = trackers(lab, http=True, udp=True, hport=6969, uport=6969)
    ca = Content(lab, "swarmA.bin", a.size, announce=f"http://{t.a4(t.hport)}/announce")
    cb = Content(lab, "swarmB.bin", a.size, announce=f"udp://{t.a4(t.uport)}/announce")
    sa = lab.host("seed-trd", 11, "bt")
    qa = lab.host("leech-qbt", 12, "bt")
    ra = lab.host("leech-rt", 13, "bt")
    sb = lab.host("seed-lt", 14, "bt")
    ab = lab.host("leech-aria2", 15, "bt")
    tb = lab.host("leech-tr", 16, "bt")
    web = lab.host("web", 20, "service")
    cl = lab.host("client", 21, "client")
    http_dir = os.path.join(web.dir, "www")
    os.makedirs(http_dir, exist_ok=True)
    make_content(os.path.join(http_dir, "file.bin"), a.size // 2, "mixed-web")
    lab.start(web, [PY, "-m", "http.server", "--bind", web.ip4, "80", "-d", http_dir], "http.server")
    lab.start(web, ["dnsmasq", "-k", "-C", "/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
                    f"--listen-address={web.ip4}", "--user=root", "--pid-file=" + os.path.join(web.dir, "dnsmasq.pid"),
                    "--address=/lab.test/10.77.0.20"], "dnsmasq")
    web.services += [["tcp", 80, "other"], ["udp", 53, "other"]]
    web.clients += ["python3 http.server on port 80", f"dnsmasq {lab.versions['dnsmasq']} on port 53"]
    c_transmission_daemon(lab, sa, lab.port("seed-trd"), ca, "s", seed=True, enc="preferred", utp=True)
    c_lt(lab, sb, lab.port("seed-lt"), cb, "s", seed=True, utp="both", enc="enabled", v6=False)
    time.sleep(2)
    c_qbittorrent(lab, qa, lab.port("leech-qbt"), ca, "d")
    c_rtorrent(lab, ra, lab.port("leech-rt"), ca, "d")
    # aria2 speaks BEP 15 only through its DHT socket, so DHT is on (with no nodes to talk to)
    c_aria2(lab, ab, lab.port("leech-aria2"), cb, "d", v6=False, dht=True)
    c_transmission_cli(lab, tb, lab.port("leech-tr"), cb, "d", utp=True, enc="preferred")
    time.sleep(1)
    cl.clients.append("curl, dig")
    for n in ("www.lab.test", "tracker.lab.test", "router.bittorrent.com"):
        lab.exec(cl, ["dig", "+tries=1", "+time=1", f"@{web.ip4}", n, "A"], timeout=5)
    lab.exec(cl, ["curl", "-s", "-o", "/dev/null", f"http://{web.ip4}/file.bin"], timeout=20)
    wait_complete([ca, cb], a.duration)


@scenario("bt-classic-ports", "the one scenario on the classic ports: lab HTTP and UDP tracker on 6969; "
          "swarm A (HTTP tracker) libtorrent seed on 6881 (TCP+uTP), transmission-cli on 51413 (uTP on), aria2 "
          "on 6881; swarm B (UDP tracker) libtorrent seed and leecher on 6881 (TCP+uTP, DHT between them), "
          "aria2 on 6881 with DHT on UDP 6881", ["peerwire", "peerwire-mse", "utp", "dht", "tracker-http",
                                                 "tracker-udp"])
def sc_classic_ports(lab, a):
    t = trackers(lab, http=True, udp=True, hport=6969, uport=6969)
    ca = Content(lab, "classicA.bin", a.size // 2, announce=f"http://{t.a4(t.hport)}/announce")
    cb = Content(lab, "classicB.bin", a.size // 2, announce=f"udp://{t.a4(t.uport)}/announce")
    sa = lab.host("seed-lt", 11, "bt")
    ta = lab.host("leech-tr", 12, "bt")
    aa = lab.host("leech-aria2", 13, "bt")
    sb = lab.host("seed-lt-b", 14, "bt")
    lb = lab.host("leech-lt-b", 15, "bt")
    ab = lab.host("leech-aria2-b", 16, "bt")
    c_lt(lab, sa, 6881, ca, "s", seed=True, utp="both", v6=False)
    c_lt(lab, sb, 6881, cb, "s", seed=True, utp="both", dht=True, dht_nodes=[lb.a4(6881)], v6=False)
    time.sleep(1.5)
    c_transmission_cli(lab, ta, 51413, ca, "d", utp=True)
    c_aria2(lab, aa, 6881, ca, "d", v6=False)
    c_lt(lab, lb, 6881, cb, "d", utp="both", dht=True, dht_nodes=[sb.a4(6881)], v6=False)
    # aria2 speaks BEP 15 only through its DHT socket: DHT on, on aria2's default port 6881
    c_aria2(lab, ab, 6881, cb, "d", v6=False, dht=True, dht_port=6881, dht_entry=[sb.a4(6881)])
    wait_complete([ca, cb], a.duration)


@scenario("bt-webseed", "web seed (BEP 19 url-list) only: no tracker, no peers; libtorrent and aria2 fetch "
          "the torrent's content from a python http.server; a plain curl download of the same file from "
          "the same server by a non-BitTorrent host is the negative", ["webseed", "other"])
def sc_webseed(lab, a):
    web = lab.host("webseed", 20, "webseed")
    www = os.path.join(web.dir, "www")
    os.makedirs(www, exist_ok=True)
    c = Content(lab, "webseed.bin", a.size, url_list=[f"http://{web.ip4}/webseed.bin"])
    shutil.copy(c.path, www)
    lab.start(web, [PY, "-m", "http.server", "--bind", web.ip4, "80", "-d", www], "http.server")
    web.services.append(["tcp", 80, "webseed"])
    web.clients.append("python3 -m http.server :80 serving the torrent's file (web seed)")
    l1 = lab.host("leech-lt", 12, "bt")
    l2 = lab.host("leech-aria2", 13, "bt")
    cl = lab.host("client", 21, "client")
    time.sleep(1)
    c_lt(lab, l1, lab.port("leech-lt"), c, "d", v6=False)
    c_aria2(lab, l2, lab.port("leech-aria2"), c, "d", v6=False)
    cl.clients.append("curl")
    lab.exec(cl, ["curl", "-s", "-o", "/dev/null", f"http://{web.ip4}/webseed.bin"], timeout=20)
    wait_complete([c], a.duration)


# --- negatives ---

def tls_cert(lab, host):
    cert, key = os.path.join(host.dir, "cert.pem"), os.path.join(host.dir, "key.pem")
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lab.test",
        "-keyout", key, "-out", cert)
    return cert, key


@scenario("neg-http-tls", "negatives: HTTP bulk download (python http.server, curl) and TLS bulk transfers "
          "(python ssl server, openssl s_client and python client), IPv4 and IPv6", ["other"])
def sc_neg_http_tls(lab, a):
    srv = lab.host("web", 20, "service")
    cl = lab.host("client", 21, "client")
    www = os.path.join(srv.dir, "www")
    os.makedirs(www, exist_ok=True)
    make_content(os.path.join(www, "file.bin"), a.size // 2, "neg-http")
    cert, key = tls_cert(lab, srv)
    lab.start(srv, [PY, "-m", "http.server", "--bind", "::", "80", "-d", www], "http.server")
    lab.start(srv, [PY, os.path.join(HERE, "netgen.py"), "tls-server", "[::]:443", cert, key, str(a.size // 3)],
              "tls-server")
    srv.services += [["tcp", 80, "other"], ["tcp", 443, "other"]]
    srv.clients += ["python3 -m http.server :80", "netgen.py tls-server :443 (python ssl)"]
    cl.clients += ["curl", "netgen.py tls-client", "openssl s_client"]
    time.sleep(1)
    for url in (f"http://{srv.ip4}/file.bin", f"http://[{srv.ip6}]/file.bin"):
        lab.exec(cl, ["curl", "-s", "-o", "/dev/null", url], timeout=20)
    lab.exec(cl, [PY, os.path.join(HERE, "netgen.py"), "tls-client", f"{srv.ip4}:443"], timeout=20)
    lab.exec(cl, [PY, os.path.join(HERE, "netgen.py"), "tls-client", f"[{srv.ip6}]:443"], timeout=20)
    lab.exec(cl, ["sh", "-c", f"echo Q | timeout 10 openssl s_client -connect {srv.ip4}:443 -quiet"], timeout=15)


@scenario("neg-ssh", "negatives: OpenSSH server and client: an interactive-style command and an scp "
          "upload/download", ["other"])
def sc_neg_ssh(lab, a):
    srv = lab.host("sshd", 20, "service")
    cl = lab.host("client", 21, "client")
    hk = os.path.join(srv.dir, "hostkey")
    ck = os.path.join(cl.dir, "id_ed25519")
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hk)
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ck)
    shutil.copy(ck + ".pub", os.path.join(srv.dir, "authorized_keys"))
    cfg = os.path.join(srv.dir, "sshd_config")
    with open(cfg, "w") as f:
        f.write(f"""Port 22
ListenAddress {srv.ip4}
ListenAddress {srv.ip6}
HostKey {hk}
PidFile {srv.dir}/sshd.pid
PermitRootLogin prohibit-password
AuthorizedKeysFile {srv.dir}/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
Subsystem sftp internal-sftp
""")
    os.makedirs("/run/sshd", exist_ok=True)
    lab.start(srv, ["/usr/sbin/sshd", "-D", "-e", "-f", cfg], "sshd")
    srv.services.append(["tcp", 22, "other"])
    srv.clients.append(f"openssh-server {lab.versions['openssh-server']} port 22")
    cl.clients.append(f"openssh-client {lab.versions['openssh-client']} ssh + scp")
    time.sleep(1)
    payload = os.path.join(cl.dir, "upload.bin")
    make_content(payload, a.size // 2, "neg-ssh")
    opts = ["-i", ck, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"]
    log("  ssh/scp exit", lab.exec(cl, ["ssh"] + opts + [f"root@{srv.ip4}", "uname -a; head -c 20000 /dev/urandom | base64 | wc -c"],
                   timeout=20)[0])
    log("  ssh/scp exit", lab.exec(cl, ["scp"] + opts + [payload, f"root@{srv.ip4}:{srv.dir}/up.bin"], timeout=30)[0])
    log("  ssh/scp exit", lab.exec(cl, ["scp"] + opts + [f"root@[{srv.ip6}]:{srv.dir}/up.bin", os.path.join(cl.dir, "down.bin")],
                   timeout=30)[0])


@scenario("neg-dns", "negatives: dnsmasq authoritative for a lab zone; dig queries over UDP and TCP, "
          "IPv4 and IPv6, A/AAAA/TXT/MX/NXDOMAIN", ["other"])
def sc_neg_dns(lab, a):
    srv = lab.host("dns", 53, "service")
    cl = lab.host("client", 21, "client")
    lab.start(srv, ["dnsmasq", "-k", "-C", "/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
                    "--bind-interfaces", f"--listen-address={srv.ip4}", f"--listen-address={srv.ip6}",
                    "--user=root", "--pid-file=" + os.path.join(srv.dir, "dnsmasq.pid"),
                    "--address=/lab.test/10.77.0.99", "--address=/lab.test/fd00:77::99",
                    "--txt-record=t.lab.test,hello bittorrent lab", "--mx-host=lab.test,mail.lab.test,10",
                    "--host-record=tracker.lab.test,10.77.0.10,fd00:77::10", "--log-queries"], "dnsmasq")
    srv.services += [["udp", 53, "other"], ["tcp", 53, "other"]]
    srv.clients.append(f"dnsmasq {lab.versions['dnsmasq']} port 53")
    cl.clients.append(f"dig (bind9-dnsutils {lab.versions['bind9-dnsutils']})")
    time.sleep(1)
    names = ["tracker.lab.test", "www.lab.test", "t.lab.test", "lab.test", "nx.example.invalid",
             "router.bittorrent.com", "dht.transmissionbt.com"]
    for i, n in enumerate(names):
        for qt in ("A", "AAAA", "TXT", "MX"):
            server = srv.ip4 if i % 2 == 0 else srv.ip6
            lab.exec(cl, ["dig", "+tries=1", "+time=1", f"@{server}", n, qt], timeout=5)
    lab.exec(cl, ["dig", "+tcp", "+tries=1", "+time=2", f"@{srv.ip4}", "tracker.lab.test", "A"], timeout=5)
    lab.exec(cl, ["dig", "+tcp", "+tries=1", "+time=2", f"@{srv.ip6}", "t.lab.test", "TXT"], timeout=5)


@scenario("neg-random", "negatives: random bytes over TCP and UDP between random high ports (python), "
          "both directions, IPv4 and IPv6", ["other"])
def sc_neg_random(lab, a):
    import random
    rnd = random.Random("neg-random")
    srv = lab.host("sink", 20, "service")
    cl = lab.host("client", 21, "client")
    g = os.path.join(HERE, "netgen.py")
    cl.clients.append("netgen.py tcp-send/udp-send (os.urandom payloads)")
    jobs = []
    for i in range(3):
        tp, up = rnd.randint(20000, 60000), rnd.randint(20000, 60000)
        fam_srv = srv.a6 if i == 2 else srv.a4
        fam_cl = cl.a6 if i == 2 else cl.a4
        lab.start(srv, [PY, g, "tcp-sink", fam_srv(tp)], f"tcp-sink{i}")
        lab.start(srv, [PY, g, "udp-sink", fam_srv(up)] + (["--echo"] if i == 1 else []), f"udp-sink{i}")
        srv.services += [["tcp", tp, "other"], ["udp", up, "other"]]
        srv.clients.append(f"netgen.py tcp-sink :{tp}, udp-sink :{up}{' (echo)' if i == 1 else ''}")
        jobs.append((fam_srv(tp), fam_srv(up), fam_cl(rnd.randint(20000, 60000))))
    time.sleep(1)
    for tcp_to, udp_to, udp_from in jobs:
        lab.exec(cl, [PY, g, "tcp-send", tcp_to, str(a.size // 4)], timeout=20)
        lab.exec(cl, [PY, g, "udp-send", udp_to, str(a.size // 6), "--bind", udp_from, "--size",
                      str(rnd.choice([200, 512, 1200])), "--rate", "500"], timeout=30)


@scenario("neg-btports", "negatives on BitTorrent's ports: HTTP server on TCP 6881, TLS on TCP 51413, "
          "random-bytes UDP to port 6881 and from port 51413", ["other"])
def sc_neg_btports(lab, a):
    srv = lab.host("web", 20, "service")
    cl = lab.host("client", 21, "client")
    www = os.path.join(srv.dir, "www")
    os.makedirs(www, exist_ok=True)
    make_content(os.path.join(www, "file.bin"), a.size // 4, "neg-ports")
    cert, key = tls_cert(lab, srv)
    g = os.path.join(HERE, "netgen.py")
    lab.start(srv, [PY, "-m", "http.server", "--bind", "::", "6881", "-d", www], "http.server")
    lab.start(srv, [PY, g, "tls-server", "[::]:51413", cert, key, str(a.size // 3)], "tls-server")
    lab.start(srv, [PY, g, "udp-sink", f"{srv.ip4}:6881", "--echo"], "udp-sink")
    srv.services += [["tcp", 6881, "other"], ["tcp", 51413, "other"], ["udp", 6881, "other"]]
    srv.clients += ["python3 -m http.server :6881", "netgen.py tls-server :51413", "netgen.py udp-sink :6881 echo"]
    cl.clients += ["curl", "netgen.py tls-client", "netgen.py udp-send from :51413"]
    time.sleep(1)
    lab.exec(cl, ["curl", "-s", "-o", "/dev/null", f"http://{srv.ip4}:6881/file.bin"], timeout=20)
    lab.exec(cl, ["curl", "-s", "-o", "/dev/null", f"http://[{srv.ip6}]:6881/file.bin"], timeout=20)
    lab.exec(cl, [PY, g, "tls-client", f"{srv.ip4}:51413"], timeout=20)
    lab.exec(cl, [PY, g, "udp-send", f"{srv.ip4}:6881", str(a.size // 8), "--bind", f"{cl.ip4}:51413",
                  "--size", "300", "--rate", "300"], timeout=30)


# --- look-alike negatives (issue 14 item 6): software whose traffic looks like BitTorrent to a weak test ---
# Every flow is `other` by construction; its `kind` names the software (the service's [l4, port, kind] on the
# host, see label.py). ONE_DIR scenarios also get derived captures <scenario>-1dir.pcap holding only the
# packets sent by the client host (tcpdump -r ... 'src host ...') and, for most, <scenario>-1dir-server.pcap
# with only the packets the service hosts sent; labelled the same.

ONE_DIR = {}   # scenario -> {suffix: host names whose packets that derived capture keeps}


def wait_for(pred, timeout=10.0, step=0.1):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        time.sleep(step)
    return False


def log_has(lab, host, name, text):
    try:
        with open(os.path.join(lab.work, f"{host.name}-{name}.log"), "rb") as f:
            return text.encode() in f.read()
    except OSError:
        return False


def listening(lab, host, l4, port):
    out = run("ip", "netns", "exec", host.ns, "ss", "-Hlnu" if l4 == "udp" else "-Hlnt", check=False,
              capture=True) or ""
    return any(line.split()[3].endswith(f":{port}") for line in out.splitlines() if len(line.split()) > 3)


@scenario("neg-lookalike", "look-alike negatives: a random-bytes request/response protocol (turns of 50-700 "
          "random bytes, many short connections and a few long ones) to a random high port and to 443, and a "
          "messenger-like client that opens with 64 random bytes and its first message in one write, then random "
          "request/responses, to 443, 80 and 5222 (python, lab/netgen.py rr-*)", ["other"])
def sc_neg_lookalike(lab, a):
    rr = lab.host("rr", 20, "service")
    ms = lab.host("msgsrv", 22, "service")
    cl = lab.host("client", 21, "client")
    g = os.path.join(HERE, "netgen.py")
    rnd = random.Random("neg-lookalike")
    p = rnd.randint(20000, 59999)
    lab.start(rr, [PY, g, "rr-server", f"[::]:{p}"], "rr-server-high")
    lab.start(rr, [PY, g, "rr-server", "[::]:443"], "rr-server-443")
    rr.services += [["tcp", p, "random-reqresp"], ["tcp", 443, "random-reqresp"]]
    rr.clients.append(f"netgen.py rr-server :{p} and :443 (random request/response, turns 50-700 bytes)")
    for port in (443, 80, 5222):
        lab.start(ms, [PY, g, "rr-server", f"[::]:{port}", "--init", "64"], f"msg-server-{port}")
        ms.services.append(["tcp", port, "messenger-like"])
    ms.clients.append("netgen.py rr-server --init 64 :443, :80, :5222 (messenger-like)")
    cl.clients.append("netgen.py rr-client (random request/response; --init 64 for messenger-like)")
    wait_for(lambda: listening(lab, rr, "tcp", p) and listening(lab, ms, "tcp", 5222))
    jobs = [  # (target, connections, turns, init, pause)
        (rr.a4(p), 24, "1-3", 0, 0), (rr.a6(p), 6, "1-3", 0, 0), (rr.a4(443), 12, "1-3", 0, 0),
        (rr.a4(p), 2, "15-25", 0, 0.15), (rr.a6(443), 1, "15-25", 0, 0.15),
        (ms.a4(443), 4, "2-6", 64, 0.1), (ms.a6(443), 1, "2-6", 64, 0.1), (ms.a4(80), 3, "2-6", 64, 0.1),
        (ms.a4(5222), 2, "2-6", 64, 0.1), (ms.a4(443), 1, "15-20", 64, 0.2),
    ]
    for i, (t, n, turns, init, pause) in enumerate(jobs):
        args = [PY, g, "rr-client", t, "--count", str(n), "--turns", turns, "--seed", f"neg-lookalike/{i}"]
        if init:
            args += ["--init", str(init)]
        if pause:
            args += ["--pause", str(pause)]
        rc, out = lab.exec(cl, args, timeout=40)
        log(f"  rr-client {t} x{n}: rc={rc} {out.strip()[-60:]}")


ONE_DIR["neg-lookalike"] = {"-1dir": ["client"], "-1dir-server": ["rr", "msgsrv"]}


def pki(lab, d):
    """A throw-away CA with one server and one client certificate (EC P-256), for openvpn."""
    os.makedirs(d, exist_ok=True)
    j = lambda n: os.path.join(d, n)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=bittap-lab-ca", "-keyout", j("ca.key"),
        "-out", j("ca.crt"))
    for who, eku in (("server", "serverAuth"), ("client", "clientAuth")):
        with open(j(who + ".ext"), "w") as f:
            f.write(f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage={eku}\n")
        run("openssl", "req", *ec, "-subj", f"/CN={who}", "-keyout", j(who + ".key"), "-out", j(who + ".csr"))
        run("openssl", "x509", "-req", "-in", j(who + ".csr"), "-CA", j("ca.crt"), "-CAkey", j("ca.key"),
            "-CAcreateserial", "-days", "2", "-extfile", j(who + ".ext"), "-out", j(who + ".crt"))
    return j


@scenario("neg-tunnels", "look-alike negatives: proxies and VPNs fetching HTTP through their tunnels: shadowsocks-libev "
          "(AEAD chacha20-ietf-poly1305 and aes-256-gcm), v2ray VMess (AEAD, alterId 0), obfs4proxy (standalone "
          "pluggable-transport harness), tor (a private bridge, no directory, no network) plain and over obfs4, "
          "stunnel4 (TLS on 443), OpenVPN over TCP with tls-crypt (throw-away PKI), wireguard-go (UDP)", ["other"])
def sc_neg_tunnels(lab, a):
    srv = lab.host("tunsrv", 20, "service")
    cl = lab.host("client", 21, "client")
    g = os.path.join(HERE, "netgen.py")
    rnd = random.Random("neg-tunnels")
    ports = set()

    def hp():
        while True:
            x = rnd.randint(20000, 59999)
            if x not in ports:
                ports.add(x)
                return x
    www = os.path.join(srv.dir, "www")
    os.makedirs(www, exist_ok=True)
    make_content(os.path.join(www, "file.bin"), a.size // 7, "neg-tunnels")
    make_content(os.path.join(www, "small.bin"), 1500, "neg-tunnels/small")
    # the HTTP origin behind every tunnel; reached over loopback or a tunnel interface, never over eth0
    lab.start(srv, [PY, "-m", "http.server", "--bind", "0.0.0.0", "8080", "-d", www], "http.server")
    srv.clients.append("python3 -m http.server :8080 (origin behind the tunnels; reached through them only)")
    v = lab.versions
    results = {}

    paths = ["/", "/small.bin", "/file.bin"]   # three connections per proxy: a directory listing, 1.5 KB, 8 KB

    def socks(kind, sock, target, user=None, password=None):
        for path in paths:
            args = [PY, g, "socks-get", sock, target, path]
            if user is not None:
                args += ["--user", user, "--pass", password or ""]
            rc, out = lab.exec(cl, args, timeout=30)
            results[kind] = out.strip()[-80:]
            log(f"  {kind} {path}: rc={rc} {results[kind]}")

    # shadowsocks-libev: ss-server on the server, ss-local (SOCKS5) on the client
    for i, m in enumerate(("chacha20-ietf-poly1305", "aes-256-gcm")):
        sp = hp()
        lab.start(srv, ["ss-server", "-s", srv.ip4, "-s", srv.ip6, "-p", str(sp), "-k", "bittap-lab-pass",
                        "-m", m, "-t", "30"], f"ss-server{i}")
        lab.start(cl, ["ss-local", "-s", srv.ip4 if i == 0 else srv.ip6, "-p", str(sp), "-b", "127.0.0.1",
                       "-l", str(1080 + i), "-k", "bittap-lab-pass", "-m", m, "-t", "30"], f"ss-local{i}")
        srv.services.append(["tcp", sp, "shadowsocks"])
        srv.clients.append(f"shadowsocks-libev {v['shadowsocks-libev']} ss-server :{sp} {m}")
        cl.clients.append(f"ss-local {m} -> :{sp}")
    # v2ray VMess: server inbound vmess, client inbound socks -> outbound vmess
    vp = hp()
    uid = "5f0c3b4e-2a49-4b8e-9c6d-4e6b3a0d1c2f"
    with open(os.path.join(srv.dir, "v2ray.json"), "w") as f:
        json.dump({"log": {"loglevel": "warning"},
                   "inbounds": [{"listen": "0.0.0.0", "port": vp, "protocol": "vmess",
                                 "settings": {"clients": [{"id": uid, "alterId": 0}]}}],
                   "outbounds": [{"protocol": "freedom"}]}, f)
    with open(os.path.join(cl.dir, "v2ray.json"), "w") as f:
        json.dump({"log": {"loglevel": "warning"},
                   "inbounds": [{"listen": "127.0.0.1", "port": 1082, "protocol": "socks",
                                 "settings": {"auth": "noauth"}}],
                   "outbounds": [{"protocol": "vmess", "settings": {"vnext": [
                       {"address": srv.ip4, "port": vp,
                        "users": [{"id": uid, "alterId": 0, "security": "aes-128-gcm"}]}]}}]}, f)
    lab.start(srv, ["v2ray", "-config", os.path.join(srv.dir, "v2ray.json")], "v2ray-server")
    lab.start(cl, ["v2ray", "-config", os.path.join(cl.dir, "v2ray.json")], "v2ray-client")
    srv.services.append(["tcp", vp, "vmess"])
    srv.clients.append(f"v2ray {v['v2ray']} inbound vmess :{vp} (AEAD, alterId 0)")
    cl.clients.append("v2ray socks :1082 -> vmess aes-128-gcm")
    # obfs4proxy standalone: managed pluggable-transport server in front of the origin, client SOCKS5
    op = hp()
    ostate = os.path.join(srv.dir, "obfs4-state")
    os.makedirs(ostate, exist_ok=True)
    lab.start(srv, ["obfs4proxy", "-enableLogging", "-logLevel", "INFO"], "obfs4-server",
              env={"TOR_PT_MANAGED_TRANSPORT_VER": "1", "TOR_PT_STATE_LOCATION": ostate,
                   "TOR_PT_SERVER_TRANSPORTS": "obfs4", "TOR_PT_SERVER_BINDADDR": f"obfs4-{srv.ip4}:{op}",
                   "TOR_PT_ORPORT": "127.0.0.1:8080"})
    cstate = os.path.join(cl.dir, "obfs4-state")
    os.makedirs(cstate, exist_ok=True)
    lab.start(cl, ["obfs4proxy"], "obfs4-client",
              env={"TOR_PT_MANAGED_TRANSPORT_VER": "1", "TOR_PT_STATE_LOCATION": cstate,
                   "TOR_PT_CLIENT_TRANSPORTS": "obfs4"})
    srv.services.append(["tcp", op, "obfs4"])
    srv.clients.append(f"obfs4proxy {v['obfs4proxy']} server :{op} (managed PT, ORPort = the origin), iat-mode=0")
    cl.clients.append("obfs4proxy client (SOCKS5, args cert=...;iat-mode=0)")
    # stunnel4: TLS on 443 in front of the origin; client-side stunnel on loopback
    with open(os.path.join(srv.dir, "stunnel.conf"), "w") as f:
        cert, key = tls_cert(lab, srv)
        f.write(f"foreground = yes\npid =\n[https]\naccept = {srv.ip4}:443\nconnect = 127.0.0.1:8080\n"
                f"cert = {cert}\nkey = {key}\n")
    with open(os.path.join(cl.dir, "stunnel.conf"), "w") as f:
        f.write(f"foreground = yes\npid =\n[c]\nclient = yes\naccept = 127.0.0.1:8443\nconnect = {srv.ip4}:443\n")
    lab.start(srv, ["stunnel4", os.path.join(srv.dir, "stunnel.conf")], "stunnel-server")
    lab.start(cl, ["stunnel4", os.path.join(cl.dir, "stunnel.conf")], "stunnel-client")
    srv.services.append(["tcp", 443, "stunnel"])
    srv.clients.append(f"stunnel4 {v['stunnel4']} :443 -> origin")
    cl.clients.append("stunnel4 client 127.0.0.1:8443 -> :443")
    # OpenVPN over TCP, TLS mode with tls-crypt, point-to-point tun
    j = pki(lab, os.path.join(srv.dir, "pki"))
    run("openvpn", "--genkey", "tls-crypt", j("tc.key"))
    common = ["--dev", "tun", "--dev-type", "tun", "--ca", j("ca.crt"), "--tls-crypt", j("tc.key"),
              "--data-ciphers", "AES-256-GCM", "--verb", "3", "--ping", "5", "--persist-tun"]
    lab.start(srv, ["openvpn", "--proto", "tcp-server", "--local", srv.ip4, "--lport", "1194", "--tls-server",
                    "--dh", "none", "--cert", j("server.crt"), "--key", j("server.key"),
                    "--ifconfig", "10.8.0.1", "10.8.0.2"] + common, "openvpn-server")
    srv.services.append(["tcp", 1194, "openvpn-tcp"])
    srv.clients.append(f"openvpn {v['openvpn']} tcp-server :1194 tls-crypt, AES-256-GCM, p2p 10.8.0.1")
    # wireguard-go on both hosts (userspace; interfaces named per host: the UAPI socket path is global)
    wp = hp()
    keys = {}
    for h in (srv, cl):
        k = run("wg", "genkey", capture=True).strip()
        pub = subprocess.run(["wg", "pubkey"], input=k, capture_output=True, text=True).stdout.strip()
        kf = os.path.join(h.dir, "wg.key")
        with open(kf, "w") as f:
            f.write(k + "\n")
        keys[h.name] = (kf, pub)
    wenv = {"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}
    for h, peer, me, other, lp in ((srv, cl, "10.9.0.1", "10.9.0.2", wp), (cl, srv, "10.9.0.2", "10.9.0.1", wp + 1)):
        ifn = f"wg{h.idx}"
        lab.start(h, ["wireguard-go", "-f", ifn], "wireguard-go", env=wenv)
    srv.services.append(["udp", wp, "wireguard"])
    cl.services.append(["udp", wp + 1, "wireguard"])
    srv.clients.append(f"wireguard-go {v['wireguard-go']} wg20 udp :{wp} 10.9.0.1")
    cl.clients.append(f"wireguard-go wg21 udp :{wp + 1} 10.9.0.2")
    # tor: a private bridge (no directory authorities reachable, nothing published); the client uses it plain
    # and over obfs4 (tor's own ClientTransportPlugin/ServerTransportPlugin)
    tp, top = hp(), hp()
    tdir = os.path.join(srv.dir, "tor")
    os.makedirs(tdir, mode=0o700, exist_ok=True)
    with open(os.path.join(srv.dir, "torrc"), "w") as f:
        f.write(f"DataDirectory {tdir}\nSocksPort 0\nORPort {srv.ip4}:{tp}\nAddress {srv.ip4}\nBridgeRelay 1\n"
                f"PublishServerDescriptor 0\nAssumeReachable 1\nExitRelay 0\nExitPolicy reject *:*\n"
                f"ServerTransportPlugin obfs4 exec /usr/bin/obfs4proxy\nServerTransportListenAddr obfs4 {srv.ip4}:{top}\n"
                f"ExtORPort auto\nNickname bittaplab\nContactInfo none\nLog notice stdout\n")
    lab.start(srv, ["tor", "-f", os.path.join(srv.dir, "torrc")], "tor-bridge")
    srv.services += [["tcp", tp, "tor"], ["tcp", top, "tor-obfs4"]]
    srv.clients.append(f"tor {v['tor']} private bridge ORPort :{tp}, obfs4 :{top} (PublishServerDescriptor 0)")
    time.sleep(2)
    # start the client side of openvpn and wireguard once their servers are up
    wait_for(lambda: listening(lab, srv, "tcp", 1194), timeout=10)
    lab.start(cl, ["openvpn", "--proto", "tcp-client", "--remote", srv.ip4, "1194", "--tls-client",
                   "--remote-cert-tls", "server", "--cert", j("client.crt"), "--key", j("client.key"),
                   "--ifconfig", "10.8.0.2", "10.8.0.1"] + common, "openvpn-client")
    cl.clients.append("openvpn tcp-client -> :1194, p2p 10.8.0.2")
    for h, peer, me, other, lp in ((srv, cl, "10.9.0.1", "10.9.0.2", wp), (cl, srv, "10.9.0.2", "10.9.0.1", wp + 1)):
        ifn = f"wg{h.idx}"
        wait_for(lambda: os.path.exists(f"/var/run/wireguard/{ifn}.sock"), timeout=5)
        peer_lp = wp + 1 if h is srv else wp
        ex = ["ip", "netns", "exec", h.ns]
        run(*ex, "wg", "set", ifn, "listen-port", str(lp), "private-key", keys[h.name][0], "peer", keys[peer.name][1],
            "allowed-ips", f"{other}/32", "endpoint", f"{peer.ip4}:{peer_lp}")
        run(*ex, "ip", "addr", "add", f"{me}/24", "dev", ifn)
        run(*ex, "ip", "link", "set", ifn, "up")
    # the obfs4 client prints its SOCKS port; the server its bridge line (cert)
    wait_for(lambda: log_has(lab, cl, "obfs4-client", "CMETHODS DONE"), timeout=10)
    wait_for(lambda: os.path.exists(os.path.join(ostate, "obfs4_bridgeline.txt")), timeout=10)
    cport = None
    for line in open(os.path.join(lab.work, "client-obfs4-client.log"), errors="replace"):
        if line.startswith("CMETHOD obfs4 socks5 "):
            cport = line.split()[3]
    bl = open(os.path.join(ostate, "obfs4_bridgeline.txt")).read()
    cert = bl.split("cert=")[1].split()[0]
    # fetches through each tunnel
    socks("shadowsocks chacha20", "127.0.0.1:1080", "127.0.0.1:8080")
    socks("shadowsocks aes-256-gcm", "127.0.0.1:1081", "127.0.0.1:8080")
    wait_for(lambda: listening(lab, cl, "tcp", 1082), timeout=5)
    socks("vmess", "127.0.0.1:1082", "127.0.0.1:8080")
    if cport:
        socks("obfs4", cport, f"{srv.ip4}:{op}", user=f"cert={cert};iat-mode=0", password="\\0")
    for path in paths:
        rc, out = lab.exec(cl, ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", f"http://127.0.0.1:8443{path}"],
                           timeout=20)
        log(f"  stunnel {path}: rc={rc} {out.strip()}")
    ok = wait_for(lambda: log_has(lab, cl, "openvpn-client", "Initialization Sequence Completed"), timeout=15)
    rc, out = lab.exec(cl, ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", "http://10.8.0.1:8080/file.bin"],
                       timeout=20)
    log(f"  openvpn: up={ok} rc={rc} {out.strip()}")
    rc, out = lab.exec(cl, ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", "http://10.9.0.1:8080/file.bin"],
                       timeout=20)
    log(f"  wireguard: rc={rc} {out.strip()}")
    # tor client: one instance with the plain bridge, one over obfs4; they cannot build circuits (no consensus)
    # but speak tor's link protocol with the bridge (TLS, cells) for a few seconds
    obl = os.path.join(tdir, "pt_state", "obfs4_bridgeline.txt")
    wait_for(lambda: os.path.exists(obl), timeout=10)
    tcert = open(obl).read().split("cert=")[1].split()[0] if os.path.exists(obl) else None
    for i, bridge in enumerate([f"{srv.ip4}:{tp}"] + ([f"obfs4 {srv.ip4}:{top} cert={tcert} iat-mode=0"] if tcert else [])):
        cdir = os.path.join(cl.dir, f"tor{i}")
        os.makedirs(cdir, mode=0o700, exist_ok=True)
        rc = os.path.join(cl.dir, f"torrc{i}")
        with open(rc, "w") as f:
            f.write(f"DataDirectory {cdir}\nSocksPort 127.0.0.1:{9050 + i}\nUseBridges 1\nBridge {bridge}\n"
                    "ClientTransportPlugin obfs4 exec /usr/bin/obfs4proxy\nLog notice stdout\n")
        lab.start(cl, ["tor", "-f", rc], f"tor-client{i}")
        cl.clients.append(f"tor client, Bridge {bridge.split(' cert=')[0]}")
    time.sleep(12)
    log(f"  tor bridge log has 'Bootstrapped': {log_has(lab, cl, 'tor-client0', 'Bootstrapped')}")
    time.sleep(1)


ONE_DIR["neg-tunnels"] = {"-1dir": ["client"], "-1dir-server": ["tunsrv"]}


@scenario("neg-dns-edns", "look-alike negatives of the UDP tracker: DNS with EDNS (dig +bufsize/+dnssec/+padding, "
          "replies of 100+ bytes) from dnsmasq, a relay that drops the first copy of every query so dig retries "
          "the identical datagram, DNS over TCP; mDNS from avahi-daemon (two hosts, a published service) and a "
          "python querier with an EDNS OPT record repeating identical queries, multicast and legacy unicast",
          ["other"])
def sc_neg_dns_edns(lab, a):
    srv = lab.host("dns", 53, "service")
    rel = lab.host("relay", 54, "service")
    m1 = lab.host("mdns-a", 30, "service")
    m2 = lab.host("mdns-b", 31, "service")
    cl = lab.host("client", 21, "client")
    g = os.path.join(HERE, "netgen.py")
    long_txt = "v=lab1 " + "k" * 40 + " bittorrent lab edns text record " + "x" * 60
    lab.start(srv, ["dnsmasq", "-k", "-C", "/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
                    "--bind-interfaces", f"--listen-address={srv.ip4}", f"--listen-address={srv.ip6}",
                    "--user=root", "--pid-file=" + os.path.join(srv.dir, "dnsmasq.pid"), "--edns-packet-max=4096",
                    "--address=/lab.test/10.77.0.99", "--address=/lab.test/fd00:77::99",
                    f"--txt-record=t.lab.test,{long_txt}", f"--txt-record=big.lab.test,{long_txt},{long_txt}",
                    "--mx-host=lab.test,mail.lab.test,10", "--mx-host=lab.test,mx2.lab.test,20",
                    "--host-record=many.lab.test,10.77.0.101", "--host-record=many.lab.test,10.77.0.102",
                    "--host-record=many.lab.test,10.77.0.103", "--host-record=many.lab.test,10.77.0.104",
                    "--srv-host=_bittorrent-tracker._tcp.lab.test,tracker.lab.test,6969,0,10",
                    "--log-queries"], "dnsmasq")
    srv.services += [["udp", 53, "dns-edns"], ["tcp", 53, "dns-edns"]]
    srv.clients.append(f"dnsmasq {lab.versions['dnsmasq']} port 53, EDNS 4096, long TXT/MX/SRV/A sets")
    lab.start(rel, [PY, g, "dns-dropfirst", f"{rel.ip4}:53", f"{srv.ip4}:53"], "dns-dropfirst")
    rel.services.append(["udp", 53, "dns-edns"])
    rel.clients.append("netgen.py dns-dropfirst :53 -> dnsmasq (drops the first copy of each query)")
    # avahi-daemon: its config and service files come from /etc/netns/<ns>/avahi (ip netns exec bind-mounts
    # them over /etc/avahi); its pid/socket directory is a tmpfs in the mount namespace of that one process
    os.makedirs("/run/avahi-daemon", exist_ok=True)
    for h in (m1, m2):
        ad = f"/etc/netns/{h.ns}/avahi"
        os.makedirs(os.path.join(ad, "services"), exist_ok=True)
        with open(os.path.join(ad, "avahi-daemon.conf"), "w") as f:
            f.write(f"[server]\nhost-name=bittap-lab-{h.name}\ndomain-name=local\nuse-ipv4=yes\nuse-ipv6=no\n"
                    "allow-interfaces=eth0\nenable-dbus=no\nratelimit-interval-usec=1000000\nratelimit-burst=1000\n"
                    "[wide-area]\nenable-wide-area=no\n[publish]\npublish-hinfo=yes\npublish-workstation=yes\n"
                    "[reflector]\n[rlimits]\n")
        with open(os.path.join(ad, "services", "lab.service"), "w") as f:
            f.write(f"""<?xml version="1.0" standalone='no'?>
<!DOCTYPE service-group SYSTEM "avahi-service.dtd">
<service-group>
  <name>bittap lab web {h.name}</name>
  <service><type>_http._tcp</type><port>80</port><txt-record>path=/index.html</txt-record>
    <txt-record>note=lab service published by avahi-daemon for the bittap look-alike negatives</txt-record></service>
  <service><type>_ipp._tcp</type><port>631</port><txt-record>ty=bittap lab printer</txt-record>
    <txt-record>rp=printers/lab</txt-record><txt-record>pdl=application/pdf,image/urf</txt-record></service>
</service-group>
""")
        lab.start(h, ["sh", "-c", "mount -t tmpfs tmpfs /run/avahi-daemon && exec avahi-daemon --no-drop-root "
                      "--no-chroot --no-proc-title"], "avahi-daemon")
        h.services.append(["udp", 5353, "mdns"])
        h.clients.append(f"avahi-daemon {lab.versions['avahi-daemon']} (IPv4, no D-Bus) publishing _http._tcp, _ipp._tcp")
    cl.services.append(["udp", 5353, "mdns"])
    lab.group_kinds = [["udp", "224.0.0.251", 5353, "mdns"], ["udp", "ff02::fb", 5353, "mdns"]]
    cl.clients += [f"dig (bind9-dnsutils {lab.versions['bind9-dnsutils']}) with EDNS options",
                   "glibc stub resolver (getent ahosts, resolv.conf options edns0 timeout:1 attempts:3) via the relay",
                   "netgen.py mdns-query (EDNS OPT, identical repeats, from 5353 and legacy unicast)"]
    time.sleep(2)
    dig = ["dig", "+tries=1", "+time=1"]
    for i, (n, qt) in enumerate([("t.lab.test", "TXT"), ("big.lab.test", "TXT"), ("lab.test", "MX"),
                                 ("many.lab.test", "A"), ("_bittorrent-tracker._tcp.lab.test", "SRV"),
                                 ("www.lab.test", "AAAA"), ("nx.example.invalid", "A")]):
        server = srv.ip4 if i % 2 == 0 else srv.ip6
        for opts in (["+bufsize=4096"], ["+dnssec", "+bufsize=1232"], ["+padding=128", "+cookie"],
                     ["+nsid", "+bufsize=512"]):
            lab.exec(cl, dig + opts + [f"@{server}", n, qt], timeout=5)
    for n, qt in (("t.lab.test", "TXT"), ("many.lab.test", "A"), ("lab.test", "MX")):
        # first copy dropped by the relay: dig retries the identical query after 1 s
        lab.exec(cl, ["dig", "+tries=3", "+time=1", "+bufsize=1232", "+padding=128", f"@{rel.ip4}", n, qt], timeout=8)
    # glibc's stub resolver (getent ahosts) retries on the SAME socket: the identical EDNS query twice in one
    # 5-tuple. Names long enough that the query itself is 98+ bytes.
    with open(f"/etc/netns/{cl.ns}/resolv.conf", "w") as f:
        f.write(f"nameserver {rel.ip4}\noptions edns0 timeout:1 attempts:3\n")
    for n in ("a-rather-long-host-name-for-the-bittap-lab-look-alike-test.mirrors.lab.test",
              "another-long-name-used-to-make-edns-queries-announce-sized.cdn.lab.test"):
        rc, out = lab.exec(cl, ["getent", "ahosts", n], timeout=10)
        log(f"  getent ahosts via relay: rc={rc} {out.strip()[:60]}")
    for q in ([f"@{srv.ip4}", "big.lab.test", "TXT"], [f"@{srv.ip6}", "many.lab.test", "A"]):
        lab.exec(cl, ["dig", "+tcp", "+tries=1", "+time=2", "+bufsize=4096", "+dnssec"] + q, timeout=5)
    names = ["_http._tcp.local", "_ipp._tcp.local", "_services._dns-sd._udp.local", "bittap-lab-mdns-a.local",
             "bittap-lab-mdns-b.local"]
    lab.exec(cl, [PY, g, "mdns-query", cl.ip4] + names + ["--repeat", "3"], timeout=15)
    lab.exec(cl, [PY, g, "mdns-query", cl.ip4] + names[:3] + ["--repeat", "2", "--legacy"], timeout=10)


ONE_DIR["neg-dns-edns"] = {"-1dir": ["client"], "-1dir-server": ["dns", "relay", "mdns-a", "mdns-b"]}


@scenario("neg-iperf3", "look-alike negatives on BitTorrent's ports: iperf3 servers on TCP 6881 and 51413 (control and "
          "data connections on the same port), TCP upload, reverse download, and a UDP test to 6881", ["other"])
def sc_neg_iperf3(lab, a):
    srv = lab.host("iperf", 20, "service")
    cl = lab.host("client", 21, "client")
    for port in (6881, 51413):
        lab.start(srv, ["iperf3", "-s", "-p", str(port)], f"iperf3-{port}")
        srv.services += [["tcp", port, "iperf3"], ["udp", port, "iperf3"]]
    srv.clients.append(f"iperf3 {lab.versions['iperf3']} -s -p 6881, -s -p 51413")
    cl.clients.append("iperf3 -c: -n (TCP), -R (reverse), -u (UDP) tests")
    wait_for(lambda: listening(lab, srv, "tcp", 51413))
    n = max(a.size // 2, 16384)   # 28 KiB at the default --size; TCP writes of 16 KiB (iperf3's default is 128 KiB)
    for args in (["-p", "6881", "-l", "16K", "-n", str(n * 2)], ["-p", "51413", "-l", "16K", "-n", str(n), "-R"],
                 ["-p", "6881", "-6", "-l", "16K", "-n", str(n)],
                 ["-p", "51413", "-u", "-b", "2M", "-l", "1200", "-n", str(n)]):
        target = srv.ip6 if "-6" in args else srv.ip4
        rc, out = lab.exec(cl, ["iperf3", "-c", target] + args, timeout=20)
        log(f"  iperf3 {' '.join(args)}: rc={rc}")


ONE_DIR["neg-iperf3"] = {"-1dir": ["client"], "-1dir-server": ["iperf"]}


# ----------------------------------------------------------------------------------------------

def run_scenario(name, a, versions):
    fn, desc, kinds = SCENARIOS[name]
    runid = a.runid
    work = os.path.join(a.out, "work", name)
    shutil.rmtree(work, ignore_errors=True)
    lab = Lab(runid, work, name)
    lab.versions = versions
    pcap = os.path.join(a.out, name + ".pcap")
    t0 = time.time()
    log(f"scenario {name}: {desc}")
    ok = False
    try:
        lab.setup_switch()
        # capture starts before any client so that handshakes are seen
        lab.start_capture(pcap)
        fn(lab, a)
        time.sleep(a.linger)
        lab.stop_procs()
        time.sleep(0.5)
        lab.stop_capture()
        ok = True
    finally:
        meta = {"scenario": name, "description": desc, "kinds": kinds, "pcap": os.path.basename(pcap),
                "size": a.size, "elapsed_s": round(time.time() - t0, 1), "completed_run": ok,
                "hosts": [h.meta() for h in lab.hosts.values()],
                "lsd_groups": [[LSD4, 6771], [LSD6, 6771]],
                "group_kinds": lab.group_kinds,
                "made_with": f"lab/run.sh {name} --size {a.size} (lab.py, Debian 12); capture: tcpdump "
                             f"{versions['tcpdump']} -i br0 -s 0 -U in the switch namespace (pcap, Ethernet)"}
        lab.cleanup()
        with open(os.path.join(a.out, name + ".meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
        for suffix, senders in ONE_DIR.get(name, {}).items() if ok else ():
            one_direction(a, meta, suffix, senders, versions)
    log(f"scenario {name} done in {time.time() - t0:.1f}s -> {pcap}")
    return meta


def one_direction(a, meta, suffix, senders, versions):
    """<scenario><suffix>.pcap: the packets sent by `senders` (host names) only, filtered from the capture
    with tcpdump -r; the same flows seen from one side, as behind asymmetric routing. Its meta names the
    original, so label.py labels it with the same hosts and services."""
    hosts = [h for h in meta["hosts"] if h["name"] in senders]
    filt = " or ".join(f"src host {h[k]}" for h in hosts for k in ("ip4", "ip6"))
    src = os.path.join(a.out, meta["pcap"])
    name = meta["scenario"] + suffix
    dst = os.path.join(a.out, name + ".pcap")
    run("tcpdump", "-r", src, "-w", dst, filt)
    m = dict(meta)
    m.update({"scenario": name, "pcap": os.path.basename(dst), "derived_from": meta["scenario"],
              "one_dir_senders": senders,
              "description": meta["description"] + f"; ONE DIRECTION ONLY: the packets sent by {', '.join(senders)}",
              "made_with": f"tcpdump {versions['tcpdump']} -r {meta['pcap']} -w {os.path.basename(dst)} '{filt}' "
                           f"(from: {meta['made_with']})"})
    with open(os.path.join(a.out, name + ".meta.json"), "w") as f:
        json.dump(m, f, indent=1)
    log(f"  one-direction variant -> {dst}")


def cleanup_state(runid=None):
    """Remove what an interrupted run left behind (called from lab/run.sh's trap)."""
    if not os.path.isdir(STATE_DIR):
        return
    for fn in os.listdir(STATE_DIR):
        if runid and fn != f"{runid}.state":
            continue
        path = os.path.join(STATE_DIR, fn)
        lines = open(path).read().split("\n")
        for l in lines:
            if l.startswith("pid "):
                try:
                    os.killpg(int(l[4:]), signal.SIGKILL)
                except (ProcessLookupError, PermissionError, ValueError):
                    pass
        for l in reversed(lines):
            if l.startswith("ns "):
                ns = l[3:]
                out = run("ip", "netns", "pids", ns, check=False, capture=True) or ""
                for pid in out.split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
                run("ip", "netns", "del", ns, check=False)
            elif l.startswith("etc "):
                shutil.rmtree(l[4:], ignore_errors=True)
        os.unlink(path)


def parse_size(s):
    s = s.strip().upper()
    mult = {"K": 1024, "M": 1 << 20, "G": 1 << 30}.get(s[-1:], 1)
    return int(float(s.rstrip("KMG")) * mult)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", help="scenario names (default: all); 'list' to list them")
    ap.add_argument("--out", default="/tmp/bittap-lab")
    ap.add_argument("--size", default="56K", type=parse_size,
                    help="torrent payload per swarm; negatives scale with it (default 56K)")
    ap.add_argument("--duration", type=float, default=40, help="max seconds to wait for downloads")
    ap.add_argument("--linger", type=float, default=2, help="seconds to keep running after completion")
    ap.add_argument("--cleanup", action="store_true",
                    help="only clean up what an interrupted run (--runid, default: every run) left behind")
    ap.add_argument("--runid", default=None,
                    help="short id used in namespace names and the state file (default: from the pid)")
    a = ap.parse_args()
    if a.cleanup:
        cleanup_state(a.runid)
        return
    if a.runid is None:
        a.runid = f"{os.getpid() % 100000:05d}"
    if not a.runid.isalnum() or len(a.runid) > 8:
        sys.exit("--runid: at most 8 letters or digits")
    if a.scenarios == ["list"]:
        for n, (_, d, k) in SCENARIOS.items():
            print(f"{n:18} {d}{' (not in the default set)' if n in HIDDEN else ''}")
        return
    if os.geteuid() != 0:
        sys.exit("lab.py must run as root (network namespaces, tcpdump)")
    names = a.scenarios or [n for n in SCENARIOS if n not in HIDDEN]
    bad = [n for n in names if n not in SCENARIOS]
    if bad:
        sys.exit(f"unknown scenario(s): {bad}; known: {list(SCENARIOS)}")
    os.makedirs(a.out, exist_ok=True)
    versions = {p: pkg_version(p) for p in ["python3-libtorrent", "transmission-cli", "transmission-daemon",
                                            "aria2", "qbittorrent-nox", "rtorrent", "openssh-server",
                                            "openssh-client", "dnsmasq", "bind9-dnsutils", "tcpdump", "curl",
                                            "openssl", "shadowsocks-libev", "v2ray", "obfs4proxy", "tor", "openvpn",
                                            "stunnel4", "wireguard-go", "iperf3", "avahi-daemon"]}

    def on_signal(sig, frame):
        # first signal: unwind into the cleanup code; later ones must not interrupt the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for n in names:
            run_scenario(n, a, versions)
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); namespaces and processes removed")
        sys.exit(130)


if __name__ == "__main__":
    main()
