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
                "made_with": f"lab/run.sh {name} --size {a.size} (lab.py, Debian 12); capture: tcpdump "
                             f"{versions['tcpdump']} -i br0 -s 0 -U in the switch namespace (pcap, Ethernet)"}
        lab.cleanup()
        with open(os.path.join(a.out, name + ".meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
    log(f"scenario {name} done in {time.time() - t0:.1f}s -> {pcap}")
    return meta


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
                                            "openssl"]}

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
