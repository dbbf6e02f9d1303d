//! The Markdown summary of a report: totals, shares by proto and method, the port view
//! against the payload-based view, busiest minutes, distinct hosts and level shifts.

use std::fmt::Write as _;

use super::shift::{pct_change, Kind, Shift};
use super::{bits_per_s, minute_label, si_rate, Series, BT_PROTOS};
use crate::classify::Method;

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn bytes(b: u64) -> String {
    format!("{}B", super::si(b as f64))
}

fn change(before: f64, after: f64) -> String {
    let c = pct_change(before, after);
    if c.is_finite() {
        format!("{c:+.0} %")
    } else {
        "new".into()
    }
}

/// Renders the summary of a series and its shifts.
pub fn render(s: &Series, shifts: &[Shift]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# bittap report\n");
    if s.is_empty() {
        let _ = writeln!(o, "No packets in the series.");
        return o;
    }
    let n = s.len() as i64;
    let (mut pk, mut by, mut bt_pk, mut port) = (0u64, 0u64, 0u64, 0u64);
    let mut proto = [0u64; super::N_PROTO];
    let mut method = [0u64; super::N_METHOD];
    // Saturating: the counts come from files and database replies.
    for m in &s.minutes {
        pk = pk.saturating_add(m.packets);
        by = by.saturating_add(m.bytes);
        bt_pk = bt_pk.saturating_add(m.bt_packets);
        port = port.saturating_add(m.port_bytes);
        for (a, b) in proto.iter_mut().zip(m.bt_proto) {
            *a = a.saturating_add(b);
        }
        for (a, b) in method.iter_mut().zip(m.bt_method) {
            *a = a.saturating_add(b);
        }
    }
    let bt: u64 = proto.iter().fold(0, |a, &b| a.saturating_add(b));
    let secs = (n * 60) as f64;
    let _ = writeln!(
        o,
        "Period: {} to {} UTC ({n} minutes).\n",
        minute_label(s.start),
        minute_label(s.start + n)
    );
    let _ = writeln!(o, "| | packets | bytes | mean rate | share of bytes |");
    let _ = writeln!(o, "|---|---:|---:|---:|---:|");
    let _ = writeln!(
        o,
        "| total load | {pk} | {} | {} | 100.00 % |",
        bytes(by),
        si_rate(by as f64 * 8.0 / secs)
    );
    let _ = writeln!(
        o,
        "| BitTorrent | {bt_pk} | {} | {} | {:.2} % |",
        bytes(bt),
        si_rate(bt as f64 * 8.0 / secs),
        pct(bt, by)
    );
    if s.has_ports {
        let _ = writeln!(
            o,
            "| port view (classic BitTorrent ports) | | {} | {} | {:.2} % |",
            bytes(port),
            si_rate(port as f64 * 8.0 / secs),
            pct(port, by)
        );
    }

    let _ = writeln!(o, "\nBitTorrent by proto:\n");
    let _ = writeln!(o, "| proto | bytes | of BitTorrent | of total load |");
    let _ = writeln!(o, "|---|---:|---:|---:|");
    for p in BT_PROTOS {
        let b = proto[p as usize];
        if b > 0 {
            let _ = writeln!(
                o,
                "| {} | {} | {:.2} % | {:.2} % |",
                p.name(),
                bytes(b),
                pct(b, bt),
                pct(b, by)
            );
        }
    }
    let _ = writeln!(o, "\nBitTorrent by method (how it was found):\n");
    let _ = writeln!(o, "| method | bytes | of BitTorrent |");
    let _ = writeln!(o, "|---|---:|---:|");
    for m in Method::ALL {
        let b = method[m as usize];
        if b > 0 {
            let _ = writeln!(o, "| {} | {} | {:.2} % |", m.name(), bytes(b), pct(b, bt));
        }
    }
    let dpi = bt - method[Method::Port as usize];
    let _ = writeln!(
        o,
        "\nFound from payload (signature, correlation, heuristic): {} = {:.2} % of BitTorrent.",
        bytes(dpi),
        pct(dpi, bt)
    );
    if s.has_ports {
        // The series do not say which payload-found bytes were on classic ports, so this is
        // a lower bound.
        let _ = writeln!(
            o,
            "The port view holds {} ({:.2} % of the payload-based figure); at least {} = {:.2} % of BitTorrent is found only by payload inspection (payload-based minus port view).",
            bytes(port),
            pct(port, dpi),
            bytes(dpi.saturating_sub(port)),
            pct(dpi.saturating_sub(port), bt)
        );
    }

    let mut busiest: Vec<usize> = (0..s.len())
        .filter(|&i| s.minutes[i].bt_bytes() > 0)
        .collect();
    busiest.sort_by(|&a, &b| {
        s.minutes[b]
            .bt_bytes()
            .cmp(&s.minutes[a].bt_bytes())
            .then(a.cmp(&b))
    });
    if !busiest.is_empty() {
        let _ = writeln!(o, "\nBusiest BitTorrent minutes:\n");
        let _ = writeln!(o, "| minute (UTC) | BitTorrent | total load | share |");
        let _ = writeln!(o, "|---|---:|---:|---:|");
        for &i in busiest.iter().take(5) {
            let m = &s.minutes[i];
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.2} % |",
                minute_label(s.start + i as i64),
                si_rate(bits_per_s(m.bt_bytes() as f64)),
                si_rate(bits_per_s(m.bytes as f64)),
                pct(m.bt_bytes(), m.bytes)
            );
        }
    }

    if s.has_hosts {
        let mut h: Vec<u64> = s.minutes.iter().filter_map(|m| m.hosts).collect();
        h.sort_unstable();
        let (max_i, max) = s
            .minutes
            .iter()
            .enumerate()
            .map(|(i, m)| (i, m.hosts.unwrap_or(0)))
            .fold((0, 0), |a, b| if b.1 > a.1 { b } else { a });
        let _ = writeln!(
            o,
            "\nDistinct BitTorrent hosts per minute (HyperLogLog estimate, ±{:.1} %): median {}, most {} at {}.",
            100.0 * crate::aggregate::hll::standard_error(),
            h.get(h.len() / 2).copied().unwrap_or(0),
            max,
            minute_label(s.start + max_i as i64)
        );
    }

    let _ = writeln!(o, "\n## Level shifts\n");
    let bt_events = shifts.iter().filter(|x| x.kind == Kind::Bittorrent).count();
    let _ = writeln!(
        o,
        "{bt_events} BitTorrent shift(s); {} link event(s); {} explained by the daily rhythm (Pettitt test, p < 0.001 per segment, changes of 20 % or more).\n",
        shifts.iter().filter(|x| x.kind == Kind::Link).count(),
        shifts.iter().filter(|x| x.kind == Kind::Rhythm).count()
    );
    if !shifts.is_empty() {
        let _ = writeln!(
            o,
            "| minute (UTC) | kind | BitTorrent before → after | change | share before → after | total load before → after | protos that moved |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---|");
        for x in shifts {
            let share = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1} %"));
            let moved: Vec<String> = x
                .protos
                .iter()
                .map(|m| {
                    format!(
                        "{} {} → {}",
                        m.proto.name(),
                        si_rate(m.before_bps),
                        si_rate(m.after_bps)
                    )
                })
                .collect();
            let usual = match x.usual_change_pct {
                Some(u) if x.kind == Kind::Rhythm => format!(" (usual: {u:+.0} %)"),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "| {} | {}{usual} | {} → {} | {} | {} → {} | {} → {} | {} |",
                minute_label(x.minute),
                x.kind.name(),
                si_rate(x.before_bps),
                si_rate(x.after_bps),
                change(x.before_bps, x.after_bps),
                share(x.share_before),
                share(x.share_after),
                si_rate(x.total_before_bps),
                si_rate(x.total_after_bps),
                moved.join(", ")
            );
        }
    }
    o
}
