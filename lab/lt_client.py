#!/usr/bin/python3
"""A python3-libtorrent client for the bittap lab. Runs until killed or --duration elapses.

usage: lt_client.py --listen ADDR:PORT[,ADDR:PORT] --save DIR (--torrent F | --magnet URI)
                    [--seed] [--enc disabled|enabled|forced] [--rc4] [--utp both|only|off]
                    [--dht] [--dht-node ADDR:PORT ...] [--lsd] [--no-pex] [--connect ADDR:PORT ...]
                    [--connect-delay S] [--duration S]
"""
import argparse
import time

import libtorrent as lt


def split_addr(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--save", required=True)
    ap.add_argument("--torrent")
    ap.add_argument("--magnet")
    ap.add_argument("--seed", action="store_true")
    ap.add_argument("--enc", default="disabled", choices=["disabled", "enabled", "forced"])
    ap.add_argument("--rc4", action="store_true", help="allow only RC4 (full stream encryption)")
    ap.add_argument("--utp", default="off", choices=["both", "only", "off"])
    ap.add_argument("--dht", action="store_true")
    ap.add_argument("--dht-node", action="append", default=[])
    ap.add_argument("--lsd", action="store_true")
    ap.add_argument("--no-pex", action="store_true")
    ap.add_argument("--connect", action="append", default=[])
    ap.add_argument("--connect-delay", type=float, default=0)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--dl-limit", type=int, default=0, help="bytes/s")
    ap.add_argument("--ul-limit", type=int, default=0, help="bytes/s")
    a = ap.parse_args()

    pol = {"disabled": lt.enc_policy.disabled, "enabled": lt.enc_policy.enabled,
           "forced": lt.enc_policy.forced}[a.enc]
    settings = {
        "listen_interfaces": a.listen,
        "outgoing_interfaces": "",
        "enable_upnp": False, "enable_natpmp": False,
        "enable_lsd": a.lsd,
        "enable_dht": a.dht,
        "dht_bootstrap_nodes": ",".join(a.dht_node),
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False, "dht_prefer_verified_node_ids": False,
        "dht_announce_interval": 10,
        "local_service_announce_interval": 5,
        "in_enc_policy": pol, "out_enc_policy": pol,
        "allowed_enc_level": lt.enc_level.rc4 if a.rc4 else lt.enc_level.both,
        "prefer_rc4": a.rc4,
        "enable_outgoing_utp": a.utp in ("both", "only"),
        "enable_incoming_utp": a.utp in ("both", "only"),
        "enable_outgoing_tcp": a.utp != "only",
        "enable_incoming_tcp": a.utp != "only",
        "allow_multiple_connections_per_ip": True,
        "download_rate_limit": a.dl_limit, "upload_rate_limit": a.ul_limit,
        "ignore_limits_on_local_network": not (a.dl_limit or a.ul_limit),  # the lab is all "local"
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification
        | lt.alert.category_t.peer_notification | lt.alert.category_t.dht_notification,
    }
    ses = lt.session(settings)
    if a.torrent:
        p = lt.add_torrent_params()
        p.ti = lt.torrent_info(a.torrent)
    else:
        p = lt.parse_magnet_uri(a.magnet)
    p.save_path = a.save
    if a.seed:
        p.flags |= lt.torrent_flags.seed_mode
    if a.no_pex:
        p.flags |= lt.torrent_flags.disable_pex
    if not a.dht:
        p.flags |= lt.torrent_flags.disable_dht
    if not a.lsd:
        p.flags |= lt.torrent_flags.disable_lsd
    h = ses.add_torrent(p)
    start = time.time()
    connected = not a.connect
    done_logged = False
    last = 0
    while time.time() - start < a.duration:
        if not connected and time.time() - start >= a.connect_delay:
            for c in a.connect:
                h.connect_peer(split_addr(c))
            connected = True
        for al in ses.pop_alerts():
            print(f"{time.time() - start:7.2f} {al.what()}: {al.message()}", flush=True)
        st = h.status()
        if st.is_seeding and not done_logged:
            print(f"{time.time() - start:7.2f} COMPLETE", flush=True)
            done_logged = True
        if time.time() - last > 2:
            last = time.time()
            print(f"{time.time() - start:7.2f} state={st.state} progress={st.progress:.3f} "
                  f"peers={st.num_peers} dl={st.total_payload_download} ul={st.total_payload_upload}",
                  flush=True)
        time.sleep(0.2)


if __name__ == "__main__":
    main()
