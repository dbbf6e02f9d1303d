#!/usr/bin/env bash
# Reads the crafted captures back with tshark, tcpdump and capinfos and checks them
# against pcaps/crafted/SUMMARY.tsv. Needs: tshark tcpdump capinfos (Debian: tshark, tcpdump).
# Usage: tools/craft/verify.sh [pcaps/crafted]
set -u
dir=${1:-pcaps/crafted}
fail=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
ts() { tshark -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE "$@" 2>/dev/null; }

# Packet counts and checksums of every readable file.
while IFS=$'\t' read -r file format _lt _fb packets _wire _cap _flows _fp _nonip _undec problem _off _detail; do
    [ "$file" = file ] && continue
    f="$dir/$file"
    case "$file" in bad/*) continue ;; esac
    n=$(capinfos -M -c -T -r "$f" 2>/dev/null | awk -F'\t' '{print $2}')
    [ "$n" = "$packets" ] && ok || bad "$file: capinfos counts '$n' packets, SUMMARY.tsv $packets"
    # tcpdump has no gzip support (feed it decompressed), and libpcap refuses pcapng files
    # whose interfaces (in any section) have different link types: two_interfaces.pcapng,
    # gzip/noext, and two_sections.pcapng (it stops at the second section).
    case "$file" in
    two_interfaces.pcapng | gzip/noext | two_sections.pcapng) t=skip ;;
    gzip/*) t=$(gzip -dc "$f" | tcpdump -tt -nr - 2>/dev/null | grep -c '^17171') ;;
    *) t=$(tcpdump -tt -nr "$f" 2>/dev/null | grep -c '^17171') ;;
    esac
    if [ "$t" = skip ]; then :; elif [ "$t" = "$packets" ]; then ok; else bad "$file: tcpdump read $t packets, SUMMARY.tsv $packets"; fi
    # Bad checksums or malformed packets (mixed_minutes has one intended bad IPv4 header).
    expect_bad=0
    [ "$file" = mixed_minutes.pcap ] && expect_bad=1
    b=$(ts -r "$f" -Y 'ip.checksum.status==0 || tcp.checksum.status==0 || udp.checksum.status==0 || _ws.malformed || _ws.expert.severity>=error' | wc -l)
    [ "$b" = "$expect_bad" ] && ok || bad "$file: $b malformed/bad-checksum packets (expected $expect_bad)"
done <"$dir/SUMMARY.tsv"

# Layers dissect as intended.
has() { # file display-filter expected-count
    c=$(ts -r "$dir/$1" -Y "$2" | wc -l)
    [ "$c" = "$3" ] && ok || bad "$1: '$2' matched $c frames, expected $3"
}
has tunnels.pcap 'erspan.version == 1' 10
has tunnels.pcap 'erspan.version == 2' 20
has tunnels.pcap 'erspan.o == 1' 10
has tunnels.pcap 'vxlan.vni == 4242' 10
has tunnels.pcap 'gre.key == 0xbeef' 10
has tunnels.pcap 'gre.proto == 0x6558' 10
has tunnels.pcap 'bittorrent.msg.type == 2 || bittorrent.protocol.name' 21
has vlan_qinq_mpls_pppoe.pcap 'vlan.id == 100 && !ieee8021ad' 10
has vlan_qinq_mpls_pppoe.pcap 'ieee8021ad.id == 200' 10
has vlan_qinq_mpls_pppoe.pcap 'ieee8021ad.id == 300 && vlan.id == 302' 10
has vlan_qinq_mpls_pppoe.pcap 'mpls.bottom == 1 && mpls.label == 2000' 10
has vlan_qinq_mpls_pppoe.pcap 'ppp.protocol == 0x0021' 10
has vlan_qinq_mpls_pppoe.pcap 'ppp.protocol == 0x0057' 10
has ipv6_ext.pcap 'ipv6.hopopts' 10
has ipv6_ext.pcap 'ipv6.routing.type == 2 && ipv6.routing.segleft == 0 && ipv6.dstopts' 10
has ipv6_ext.pcap 'udp && ipv6.dstopts' 2
has fragments.pcap 'ip.flags.mf == 1 || ip.frag_offset > 0' 8
has fragments.pcap 'ipv6.fraghdr' 2
has fragments.pcap 'bt-dht' 4
has snaplen64.pcap 'frame.cap_len > 64' 0
has snaplen64.pcap 'frame.len == 1454' 5
has two_interfaces.pcapng 'frame.interface_id == 1 && bt-dht' 6
has two_interfaces.pcapng 'frame.comment' 1
has two_sections.pcapng 'sll' 13
has linktypes/null_loopback.pcap 'null.family == 30' 1
has linktypes/null_loopback.pcap 'null.family == 24' 1
has linktypes/null_loopback.pcap 'null.family == 28' 1
has port6881_http.pcap 'tls.handshake.type == 1' 1
has mixed_minutes.pcap 'arp || lldp' 3

# pcapng details.
capinfos "$dir/two_interfaces.pcapng" 2>/dev/null | grep -q 'Time resolution = 0x09' && ok || bad "two_interfaces: if_tsresol 9 not seen"
[ "$(ts -r "$dir/two_interfaces.pcapng" -T fields -e frame.time_epoch -Y 'frame.interface_id==1' | head -1)" = 1717149600.016123456 ] && ok || bad "two_interfaces: ns timestamp"
[ "$(ts -r "$dir/linktypes/pcap_be_nsec.pcap" -T fields -e frame.time_epoch | head -1)" = 1717149600.001000123 ] && ok || bad "pcap_be_nsec: ns timestamp"
capinfos "$dir/two_sections.pcapng" 2>/dev/null | grep -q 'Section 1' && ok || bad "two_sections: second section not seen"
cmp -s <(gzip -dc "$dir/gzip/handshake_split_1_67.pcap.gz") "$dir/handshake_split_1_67.pcap" && ok || bad "gzip copy differs"

# bad/: each must fail or warn.
mustfail() { # file
    if tshark -r "$dir/$1" >/dev/null 2>&1; then bad "$1: tshark read it without error"; else ok; fi
}
mustfail bad/truncated_last_record.pcap
mustfail bad/corrupt_record_len.pcap
mustfail bad/garbage_magic.pcap
mustfail bad/truncated_header.pcap
mustfail bad/corrupt.pcapng
mustfail bad/truncated.pcap.gz
[ "$(tshark -r "$dir/bad/truncated_last_record.pcap" 2>/dev/null | wc -l)" = 14 ] && ok || bad "truncated_last_record: expected 14 readable packets"
[ "$(tshark -r "$dir/bad/corrupt_record_len.pcap" 2>/dev/null | wc -l)" = 3 ] && ok || bad "corrupt_record_len: expected 3 readable packets"
if tshark -r "$dir/bad/empty.pcap" >/dev/null 2>&1 && [ "$(tshark -r "$dir/bad/empty.pcap" 2>/dev/null | wc -l)" = 0 ]; then ok; else bad "empty.pcap"; fi

echo "verify: $pass passed, $fail failed"
[ "$fail" = 0 ]
