#!/usr/bin/env bash
# Installs the Debian 12 packages bittap's build, tests and scripts need, as root or through
# sudo. Installs nothing that is already there.
#   gcc, libc6-dev, make      the C toolchain every Rust build on Linux links with (rustup
#   g++                        libfuzzer-sys builds libFuzzer (C++) for the fuzz step
#                              brings no linker; build scripts, ring and libpcap need cc)
#   pkg-config, libpcap-dev   live capture (libpcap)
#   tshark (capinfos), tcpdump  conservation check and the tcpdump bench comparison
#   tcpreplay                  tests/live.rs and scripts/bench-live.sh replay captures onto a veth pair
#   influxdb, victoria-metrics  real databases for tests/influx.rs, tests/victoria.rs, tests/spool.rs
#   openssl                    a throw-away CA and server certificate for the https tests
#   pmacct                     pmacctd's sfprobe plugin: a real sFlow agent for tests/sflow.rs
#   prometheus (promtool)      tests/live.rs checks the /metrics scrape with `promtool check metrics`
#   the lab's packages         real BitTorrent clients for lab/ci-smoke.sh (lab/deps.sh --minimal)
#   cargo-fuzz                 (cargo install) the fuzz step of scripts/test.sh, fuzz/README.md
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(ca-certificates gcc g++ libc6-dev make pkg-config libpcap-dev tcpdump tcpreplay tshark iproute2 python3 influxdb victoria-metrics openssl pmacct prometheus)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  [ ${#missing[@]} -eq 0 ] || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=()
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "wireshark-common wireshark-common/install-setuid boolean false" | "${SUDO[@]}" debconf-set-selections || true
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "${1:-}" != "--no-lab" ] && [ -x lab/deps.sh ]; then
  lab/deps.sh --minimal >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "deps: cargo not found: install Rust (rustup) first" >&2; exit 1; }
# cargo-fuzz for the fuzz step of scripts/test.sh (fuzz/README.md); a few minutes to build once,
# so not for `--no-lab` (the quick start only builds and runs bittap).
if [ "${1:-}" != "--no-lab" ] && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "deps: installing cargo-fuzz (cargo install --locked)" >&2
  cargo install --locked --quiet cargo-fuzz
fi
