//! Every rule in rules/ meets a real packet from pcaps/: each byte signature matches the start
//! of a payload in a real capture and the flow carrying it gets the rule's verdict; each port
//! rule's ports carry real packets.

mod common;

use std::path::PathBuf;

use bittap::capture::MergedReader;
use bittap::classify::rules::Transport;
use bittap::classify::{Class, Rules};
use bittap::decode::{addr_to_ip, decode, Decoded, IPPROTO_TCP, IPPROTO_UDP};

fn captures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![common::repo().join("pcaps")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("read pcaps").flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("bad") {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_rule_meets_a_real_packet() {
    let rules = Rules::builtin().expect("rules");
    let mut sig_seen = vec![None; rules.signatures.len()];
    let mut port_seen = vec![false; rules.ports.len()];
    for path in captures() {
        let Ok(mut reader) = MergedReader::new(std::slice::from_ref(&path)) else {
            continue;
        };
        while reader.advance() {
            let Some(pkt) = reader.packet() else { continue };
            let Decoded::Ip(ip) = decode(pkt.linktype, pkt.data) else {
                continue;
            };
            let transport = match ip.proto {
                IPPROTO_TCP => Transport::Tcp,
                IPPROTO_UDP => Transport::Udp,
                _ => continue,
            };
            for (i, r) in rules.ports.iter().enumerate() {
                if r.transport == transport
                    && r.ranges
                        .iter()
                        .any(|&(a, b)| (a..=b).contains(&ip.sport) || (a..=b).contains(&ip.dport))
                {
                    port_seen[i] = true;
                }
            }
            for (i, sig) in rules.signatures.iter().enumerate() {
                if sig_seen[i].is_none()
                    && sig.transport == transport
                    && ip.payload.get(sig.offset..sig.offset + sig.bytes.len())
                        == Some(&sig.bytes[..])
                {
                    let tuple = (
                        transport,
                        addr_to_ip(ip.src),
                        ip.sport,
                        addr_to_ip(ip.dst),
                        ip.dport,
                    );
                    sig_seen[i] = Some((path.clone(), tuple));
                }
            }
        }
    }
    for (i, sig) in rules.signatures.iter().enumerate() {
        let (path, (t, src, sp, dst, dp)) = sig_seen[i]
            .clone()
            .unwrap_or_else(|| panic!("signature {} matches no packet in pcaps/", sig.id));
        let run = common::run(std::slice::from_ref(&path));
        let l4 = t.name();
        let f = run
            .flow(l4, &src.to_string(), sp, &dst.to_string(), dp)
            .or_else(|| run.flow(l4, &dst.to_string(), dp, &src.to_string(), sp))
            .unwrap_or_else(|| {
                panic!("{}: flow of signature {} not found", path.display(), sig.id)
            });
        match sig.class {
            Class::Bittorrent => assert_eq!(
                f.verdict.proto,
                sig.proto,
                "{} in {}",
                sig.id,
                path.display()
            ),
            Class::Other => assert_eq!(
                f.verdict.class(),
                Class::Other,
                "{} in {}",
                sig.id,
                path.display()
            ),
        }
    }
    for (i, r) in rules.ports.iter().enumerate() {
        assert!(port_seen[i], "port rule {} has no packet in pcaps/", r.id);
    }
}
