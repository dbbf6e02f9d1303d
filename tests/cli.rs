//! The command line: exit statuses, error messages naming file and offset, byte-identical
//! outputs, and several files merged in time order whatever order they are given in.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bittap::capture::MergedReader;

fn bittap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bittap"))
        .args(args)
        .output()
        .expect("run bittap")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn exit_statuses_and_messages() {
    let ok = bittap(&[
        "analyze",
        "-q",
        s(&common::crafted("handshake_split_1_67.pcap")),
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));

    let missing = bittap(&["analyze", "/nonexistent/x.pcap"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("/nonexistent/x.pcap: cannot read"),
        "{}",
        stderr(&missing)
    );

    let garbage = bittap(&["analyze", s(&common::crafted("bad/garbage_magic.pcap"))]);
    assert_eq!(garbage.status.code(), Some(2));
    assert!(
        stderr(&garbage).contains("garbage_magic.pcap: not a pcap"),
        "{}",
        stderr(&garbage)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), "hello").expect("write");
    let empty_dir = bittap(&["analyze", s(dir.path())]);
    assert_eq!(empty_dir.status.code(), Some(2));
    assert!(
        stderr(&empty_dir).contains("directory holds no pcap"),
        "{}",
        stderr(&empty_dir)
    );

    // Corrupt part-way: the series is still written, the status says it is incomplete.
    let series = dir.path().join("s.csv");
    let corrupt = bittap(&[
        "analyze",
        "-q",
        s(&common::crafted("bad/corrupt_record_len.pcap")),
        "--series",
        s(&series),
    ]);
    assert_eq!(corrupt.status.code(), Some(3));
    let err = stderr(&corrupt);
    assert!(
        err.contains("corrupt_record_len.pcap: at byte offset 258"),
        "{err}"
    );
    assert!(err.contains("INCOMPLETE"), "{err}");
    let text = std::fs::read_to_string(&series).expect("series written");
    let packets: u64 = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .nth(5)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(packets, 3);

    // A truncated last record is a warning only.
    let trunc = bittap(&[
        "analyze",
        "-q",
        s(&common::crafted("bad/truncated_last_record.pcap")),
    ]);
    assert_eq!(trunc.status.code(), Some(0));
    assert!(
        stderr(&trunc).contains("warning") && stderr(&trunc).contains("offset 2235"),
        "{}",
        stderr(&trunc)
    );

    // Bad rules name file, line and field.
    std::fs::write(dir.path().join("ports.toml"), "[[port]]\nid = \"x\"\ntransport = \"tcp\"\nports = [0]\nproto = \"peerwire\"\nreference = \"r\"\n").expect("write");
    std::fs::write(dir.path().join("signatures.toml"), "").expect("write");
    let rules = bittap(&["rules", "check", s(dir.path())]);
    assert_eq!(rules.status.code(), Some(2));
    assert!(
        stderr(&rules).contains("ports.toml:4: field `ports`"),
        "{}",
        stderr(&rules)
    );
    let builtin = bittap(&["rules", "check"]);
    assert_eq!(builtin.status.code(), Some(0));
}

fn analyze_to(dir: &Path, tag: &str, inputs: &[PathBuf]) -> (String, String) {
    let series = dir.join(format!("{tag}-series.csv"));
    let flows = dir.join(format!("{tag}-flows.json"));
    let mut args = vec![
        "analyze",
        "-q",
        "--series",
        s(&series),
        "--flows",
        s(&flows),
        "--home-net",
        "10.1.0.0/24",
    ];
    args.extend(inputs.iter().map(|p| s(p)));
    let out = bittap(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (
        std::fs::read_to_string(series).expect("series"),
        std::fs::read_to_string(flows).expect("flows"),
    )
}

/// Writes packets as a little-endian microsecond pcap.
fn write_pcap(path: &Path, packets: &[(i64, u32, Vec<u8>)]) {
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    v.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&262144u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    for (ts, wire, data) in packets {
        v.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        v.extend_from_slice(&((ts % 1_000_000_000 / 1000) as u32).to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(&wire.to_le_bytes());
        v.extend_from_slice(data);
    }
    std::fs::write(path, v).expect("write pcap");
}

#[test]
fn outputs_are_byte_identical_and_independent_of_file_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sources = [
        common::crafted("handshake_split_1_67.pcap"),
        common::crafted("port6881_http.pcap"),
        common::crafted("one_direction.pcap"),
    ];
    // One Ethernet stream of the three captures, in time order.
    let mut reader = MergedReader::new(&sources).expect("open");
    let mut all = Vec::new();
    while reader.advance() {
        if let Some(p) = reader.packet() {
            all.push((p.ts_ns, p.wire_len, p.data.to_vec()));
        }
    }
    let whole = dir.path().join("whole.pcap");
    write_pcap(&whole, &all);
    // Rotated pieces (as tcpdump -C would leave them) and two overlapping ones.
    let n = all.len();
    let pieces = [&all[..n / 3], &all[n / 3..2 * n / 3], &all[2 * n / 3..]];
    let mut rotated = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let p = dir.path().join(format!("rot{i}.pcap"));
        write_pcap(&p, piece);
        rotated.push(p);
    }
    let (odd, even): (Vec<_>, Vec<_>) = all
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 2 == 1);
    let overlap = [dir.path().join("odd.pcap"), dir.path().join("even.pcap")];
    write_pcap(
        &overlap[0],
        &odd.into_iter().map(|(_, p)| p).collect::<Vec<_>>(),
    );
    write_pcap(
        &overlap[1],
        &even.into_iter().map(|(_, p)| p).collect::<Vec<_>>(),
    );

    let reference = analyze_to(dir.path(), "whole", std::slice::from_ref(&whole));
    assert!(reference.0.lines().count() > 2 && reference.1.lines().count() >= 6);
    assert_eq!(
        analyze_to(dir.path(), "again", &[whole]),
        reference,
        "a second run differs"
    );
    let reversed: Vec<_> = rotated.iter().rev().cloned().collect();
    assert_eq!(
        analyze_to(dir.path(), "rotated", &reversed),
        reference,
        "rotated files in reverse order"
    );
    assert_eq!(
        analyze_to(dir.path(), "overlap", &overlap),
        reference,
        "interleaved files"
    );
    // A directory argument means the captures in it.
    let sub = dir.path().join("rot");
    std::fs::create_dir(&sub).expect("mkdir");
    for p in &rotated {
        std::fs::copy(p, sub.join(p.file_name().expect("name"))).expect("copy");
    }
    assert_eq!(
        analyze_to(dir.path(), "dir", &[sub]),
        reference,
        "directory input"
    );
}

#[test]
fn line_protocol_equals_the_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (series, lp) = (dir.path().join("s.csv"), dir.path().join("lp.txt"));
    let input = common::repo().join("pcaps/lab/bt-mixed.pcap");
    let out = bittap(&[
        "analyze",
        "-q",
        s(&input),
        "--series",
        s(&series),
        "--line-protocol",
        s(&lp),
        "--probe",
        "ix-1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Each series row is one `bittap` line with the same tags and counts.
    let csv = std::fs::read_to_string(series).expect("series");
    let text = std::fs::read_to_string(lp).expect("line protocol");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("bittap,")).collect();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(lines.len(), rows.len());
    for (row, line) in rows.iter().zip(&lines) {
        let c: Vec<&str> = row.split(',').collect();
        let want = format!(
            "bittap,probe=ix-1,class={},proto={},method={},direction={} packets={}i,bytes={}i ",
            c[1], c[2], c[3], c[4], c[5], c[6]
        );
        assert!(line.starts_with(&want), "{line} vs {want}");
    }
    assert!(text
        .lines()
        .any(|l| l.starts_with("bittap_health,probe=ix-1 packets=")));
}

/// `--version` names the commit; the man page has a section for every visible subcommand and
/// every `live` flag; completions know the subcommands.
#[test]
fn version_man_page_and_completions() {
    let v = bittap(&["--version"]);
    assert!(v.status.success());
    let v = String::from_utf8_lossy(&v.stdout).into_owned();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        v.trim(),
        format!("bittap {} ({commit})", env!("CARGO_PKG_VERSION"))
    );

    let help = bittap(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    // The subcommands as --help lists them (hidden ones are not listed).
    let subs: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(subs.len() >= 5, "{subs:?}");
    let man = bittap(&["manpage"]);
    assert!(man.status.success());
    let man = String::from_utf8_lossy(&man.stdout).into_owned();
    assert!(
        man.starts_with(".ie") && man.contains(".TH bittap 1"),
        "{man}"
    );
    for sub in &subs {
        assert!(
            man.contains(&format!(".SH \"BITTAP {}\"", sub.to_uppercase())),
            "man page lacks {sub}"
        );
    }
    let live_help = bittap(&["live", "--help"]);
    for flag in String::from_utf8_lossy(&live_help.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
    {
        let flag = flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        assert!(
            man.contains(&flag.replace('-', "\\-")),
            "man page lacks {flag}"
        );
    }
    for shell in ["bash", "zsh", "fish"] {
        let c = bittap(&["completions", shell]);
        assert!(c.status.success(), "{shell}");
        let c = String::from_utf8_lossy(&c.stdout).into_owned();
        for sub in &subs {
            assert!(c.contains(sub.as_str()), "{shell} completion lacks {sub}");
        }
    }
}
