#!/usr/bin/env bash
# Builds the Debian package (cargo deb) and, as root, checks it in a fresh Debian 12 root:
# installs the .deb with apt (which fetches libpcap and libcap2-bin), runs `bittap --version`,
# checks the system user and the file capabilities, runs `systemd-analyze verify` on the
# installed unit (systemd is installed in the root for it), then purges the package and
# checks that nothing of it is left.
#
# The root: a throw-away overlay over the minimal Debian 12 root that
# ../shared/tools/fresh_debian.sh keeps in /var/tmp/fresh-debian/root (run that once to make
# it), inside a private mount namespace, the same way that script runs its commands.
#   scripts/deb-check.sh            build and check
#   scripts/deb-check.sh --build    build only (no root needed)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || { echo "deb-check: cargo install --locked cargo-deb" >&2; exit 2; }

# Man page and completions from the clap definitions of the binary being packaged.
cargo build --release --quiet
mkdir -p target/deb-assets
bin=target/release/bittap
"$bin" manpage | gzip -9n >target/deb-assets/bittap.1.gz
"$bin" completions bash >target/deb-assets/bittap.bash
"$bin" completions zsh >target/deb-assets/_bittap
"$bin" completions fish >target/deb-assets/bittap.fish
# The release profile keeps debug info (for profiling); the package gets a stripped binary and
# its debug symbols go to a separate bittap-dbgsym .ddeb beside it, as Debian does.
deb=$(cargo deb --no-build --quiet --dbgsym 2>/dev/null | tail -n 1)
case "$deb" in *.deb) [ -f "$deb" ] ;; *) false ;; esac || deb=$(ls -t target/debian/bittap_*.deb | head -n 1)
echo "deb-check: built $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb" | awk '{print $6}'
[ "${1:-}" = --build ] && exit 0

[ "$(id -u)" -eq 0 ] || { echo "deb-check: the install check needs root" >&2; exit 2; }
if [ -z "${DEB_CHECK_IN_NS:-}" ]; then
  DEB_CHECK_IN_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
BASE=${NEWCOMER_SCRATCH:-/var/tmp/fresh-debian}/root
[ -f "$BASE/etc/debian_version" ] || {
  echo "deb-check: no fresh Debian 12 root at $BASE: run ../shared/tools/fresh_debian.sh once" >&2
  exit 2
}
RUN=$(mktemp -d /var/tmp/deb-check.XXXXXX)
M=$RUN/merged
cleanup() {
  for mp in dev/pts dev proc sys; do umount "$M/$mp" 2>/dev/null || true; done
  umount "$M" 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT
mkdir -p "$RUN/upper" "$RUN/work" "$M"
mount -t overlay deb-check -o "lowerdir=$BASE,upperdir=$RUN/upper,workdir=$RUN/work" "$M"
mount --bind /proc "$M/proc"
mount --bind /sys "$M/sys"
mount --bind /dev "$M/dev"
mount --bind /dev/pts "$M/dev/pts"
cp /etc/resolv.conf "$M/etc/resolv.conf"
cp "$deb" "$M/root/bittap.deb"
in_root() { chroot "$M" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive bash -euo pipefail -c "$1"; }
step() { echo; echo "deb-check: \$ $1"; in_root "$1"; }
step 'cat /etc/debian_version; dpkg -s systemd >/dev/null 2>&1 && echo systemd present || echo "no systemd in the fresh root"'
step 'apt-get update -qq && apt-get install -y -qq --no-install-recommends /root/bittap.deb >/dev/null && dpkg -s bittap | grep -E "^(Status|Version|Depends)"'
step 'bittap --version'
step 'getent passwd bittap; getcap /usr/bin/bittap'
step 'ls -l /usr/lib/systemd/system/bittap.service /etc/bittap/bittap.toml /usr/share/man/man1/bittap.1.gz; find /usr/share/bittap -type f | sort'
step 'apt-get install -y -qq --no-install-recommends systemd >/dev/null && systemd-analyze --version | head -n 1'
step 'systemd-analyze verify /usr/lib/systemd/system/bittap.service && echo "systemd-analyze verify: no complaints"'
step 'apt-get purge -y -qq bittap >/dev/null && { dpkg -s bittap 2>&1 || true; } | sed -n 1p; for p in /usr/bin/bittap /usr/lib/systemd/system/bittap.service /etc/bittap /usr/share/bittap /usr/share/man/man1/bittap.1.gz; do [ ! -e "$p" ] || { echo "left behind: $p"; exit 1; }; done; echo "purged: no file of the package left"'
echo
echo "deb-check: ok"
