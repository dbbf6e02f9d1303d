//! Exact per-flow and per-file outcomes over the crafted captures in pcaps/crafted, whose
//! truth tables (FLOWS.tsv, SUMMARY.tsv) the generator derives from what it built.

mod common;

use bittap::capture::ErrorKind;
use bittap::classify::{Class, Method, Proto};
use common::*;

fn num(v: &str) -> u64 {
    v.parse().unwrap_or_else(|_| panic!("not a number: {v}"))
}

#[test]
fn every_crafted_flow_is_found_with_exact_counts_and_verdict() {
    let rows = tsv(&crafted("FLOWS.tsv"));
    assert!(rows.len() >= 40, "FLOWS.tsv has {} rows", rows.len());
    let mut checked_verdicts = 0;
    for row in rows {
        let file = &row["file"];
        if file.starts_with("bad/") {
            continue; // covered by bad_captures below
        }
        let r = run(&[crafted(file)]);
        let (sport, dport) = (num(&row["sport"]) as u16, num(&row["dport"]) as u16);
        let f = r
            .flow(&row["l4"], &row["src"], sport, &row["dst"], dport)
            .unwrap_or_else(|| panic!("{file}: flow {row:?} not found in {:#?}", r.flows));
        assert_eq!(
            (f.packets, f.bytes),
            (num(&row["packets"]), num(&row["wire_bytes"])),
            "{file}: packets and wire bytes of {row:?}"
        );
        match (
            row["expected_class"].as_str(),
            row["expected_proto"].as_str(),
        ) {
            // Includes a SYN-only flow to port 6882: no payload evidence either way, so its
            // port rule decides (method `port`).
            ("bittorrent", proto) => {
                let method = row["expected_method"].as_str();
                assert_eq!(
                    (f.verdict.proto.name(), f.verdict.method.name()),
                    (proto, method),
                    "{file}: {row:?}"
                );
                checked_verdicts += 1;
            }
            _ => {
                assert_eq!(f.verdict.class(), Class::Other, "{file}: {row:?}");
                checked_verdicts += 1;
            }
        }
    }
    assert!(
        checked_verdicts >= 30,
        "only {checked_verdicts} verdicts checked"
    );
}

#[test]
fn series_add_up_to_every_crafted_file() {
    for row in tsv(&crafted("SUMMARY.tsv")) {
        let file = &row["file"];
        if row["problem"] == "error" {
            continue;
        }
        let r = run(&[crafted(file)]);
        let total = r.series_total();
        assert_eq!(total, r.input, "{file}: series must partition the input");
        // A truncated last record whose header is whole counts, with its original length.
        let (packets, bytes) = (num(&row["packets"]), num(&row["wire_bytes"]));
        assert_eq!((total.packets, total.bytes), (packets, bytes), "{file}");
    }
}

#[test]
fn per_minute_totals_of_mixed_minutes() {
    let r = run(&[crafted("mixed_minutes.pcap")]);
    let mut by_minute = std::collections::BTreeMap::<i64, (u64, u64)>::new();
    for s in &r.series {
        let e = by_minute.entry(s.minute).or_default();
        e.0 += s.counts.packets;
        e.1 += s.counts.bytes;
    }
    let mut want = std::collections::BTreeMap::<i64, (u64, u64)>::new();
    for row in tsv(&crafted("MINUTES.tsv"))
        .into_iter()
        .filter(|r| r["file"] == "mixed_minutes.pcap")
    {
        // 2024-05-31T10:0M:00Z
        let m: i64 = row["minute"][15..16].parse().expect("minute digit");
        let e = want.entry(28_619_160 + m).or_default();
        e.0 += num(&row["packets"]);
        e.1 += num(&row["wire_bytes"]);
    }
    assert_eq!(by_minute, want);
    // The flow whose handshake came a minute after its SYN: its minute-0 packets were
    // credited to BitTorrent once the verdict came.
    let bt_minute0: u64 = r
        .series
        .iter()
        .filter(|s| s.minute == 28_619_160 && s.proto.class() == Class::Bittorrent)
        .map(|s| s.counts.packets)
        .sum();
    assert_eq!(bt_minute0, 14);
    let non_ip: u64 = r
        .series
        .iter()
        .filter(|s| s.proto == Proto::NonIp)
        .map(|s| s.counts.packets)
        .sum();
    let undecodable: u64 = r
        .series
        .iter()
        .filter(|s| s.proto == Proto::Undecodable)
        .map(|s| s.counts.packets)
        .sum();
    assert_eq!((non_ip, undecodable), (3, 1));
}

#[test]
fn bad_captures_report_file_and_offset_and_keep_what_was_counted() {
    // A corrupt record length part-way: the three packets before it are counted.
    let r = run(&[crafted("bad/corrupt_record_len.pcap")]);
    assert_eq!(r.input.packets, 3);
    assert_eq!(r.series_total(), r.input);
    let e = &r.problems[0];
    assert!(
        matches!(e.kind, ErrorKind::BadRecordLength(0xFFFF_FF00)),
        "{e}"
    );
    assert_eq!(e.offset, 258);
    assert!(
        e.to_string()
            .contains("corrupt_record_len.pcap: at byte offset 258"),
        "{e}"
    );

    let r = run(&[crafted("bad/corrupt.pcapng")]);
    let e = &r.problems[0];
    assert!(matches!(e.kind, ErrorKind::BadBlockLength(_)), "{e}");
    assert_eq!(e.offset, 48);

    let r = run(&[crafted("bad/truncated_last_record.pcap")]);
    assert!(r.problems[0].is_truncation(), "{}", r.problems[0]);
    assert_eq!(r.problems[0].offset, 2235);

    let r = run(&[crafted("bad/truncated.pcap.gz")]);
    assert!(
        r.problems.iter().all(|p| p.is_truncation()),
        "{:?}",
        r.problems
    );
    assert!(r.input.packets >= 10);

    let r = run(&[crafted("bad/empty.pcap")]);
    assert_eq!((r.input.packets, r.problems.len()), (0, 0));

    // Files that are not captures fail before anything is read.
    let e = bittap::capture::MergedReader::new(&[crafted("bad/truncated_header.pcap")])
        .err()
        .expect("truncated header must fail");
    assert_eq!((e.kind.clone(), e.offset), (ErrorKind::TruncatedHeader, 0));
    let e =
        bittap::capture::expand_inputs(&[crafted("bad/garbage_magic.pcap")]).expect_err("garbage");
    assert!(
        e.to_string().contains("garbage_magic.pcap: not a pcap"),
        "{e}"
    );
}

#[test]
fn unknown_link_type_is_counted_as_undecodable() {
    let r = run(&[crafted("linktypes/unknown_147.pcap")]);
    assert_eq!(r.input.packets, 3);
    assert!(r.series.iter().all(|s| s.proto == Proto::Undecodable));
    assert_eq!(r.series_total(), r.input);
}

#[test]
fn port_rule_gives_way_to_payload_evidence() {
    let r = run(&[crafted("port6881_http.pcap")]);
    let http = r
        .flow("tcp", "10.1.0.8", 52344, "10.1.0.9", 6881)
        .expect("http flow");
    assert_eq!(http.verdict.class(), Class::Other);
    let tls = r
        .flow("tcp", "10.1.0.8", 52400, "10.1.0.13", 51413)
        .expect("tls flow");
    assert_eq!(tls.verdict.class(), Class::Other);
    let bt = r
        .flow("tcp", "10.1.0.10", 50800, "10.1.0.11", 6881)
        .expect("bt flow");
    assert_eq!(bt.verdict.method, Method::Signature);
}
