#!/usr/bin/env bash
# Install the Debian packages the bittap lab needs (noninteractive).
# usage: lab/deps.sh [--minimal]     (--minimal: only what lab/ci-smoke.sh needs)
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi
MIN=(iproute2 tcpdump tshark transmission-cli python3 python3-libtorrent procps psmisc util-linux)
ALL=("${MIN[@]}" transmission-daemon aria2 qbittorrent-nox rtorrent socat openssl
     openssh-server openssh-client dnsmasq dnsutils curl
     # look-alike negatives (neg-lookalike, neg-tunnels, neg-dns-edns, neg-iperf3)
     shadowsocks-libev v2ray obfs4proxy tor openvpn stunnel4 wireguard-go wireguard-tools iperf3 avahi-daemon)
if [ "${1:-}" = "--minimal" ]; then PKGS=("${MIN[@]}"); else PKGS=("${ALL[@]}"); fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer "no" without a prompt
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections || true
if ! $SUDO apt-get install -y --no-install-recommends "${PKGS[@]}"; then
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${PKGS[@]}"
fi
# the daemons must not keep running outside the lab
for s in transmission-daemon ssh dnsmasq shadowsocks-libev v2ray tor openvpn stunnel4 iperf3 avahi-daemon.socket avahi-daemon; do
  $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true
  $SUDO service "$s" stop >/dev/null 2>&1 || true
done
echo "lab deps installed: ${PKGS[*]}"
