//! The SVG chart: BitTorrent bit/s stacked by proto, total load and the port view as lines,
//! time in UTC. plotters' SVG backend writes text as `<text>` elements, so no font library
//! is needed.

use std::path::Path;

use plotters::prelude::*;

use super::{bits_per_s, minute_label, si_rate, Series, BT_PROTOS};
use crate::classify::Proto;

/// Fill colours of the protos, in `BT_PROTOS` order (colour-blind-safe palette).
const COLOURS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(86, 180, 233),
    RGBColor(0, 158, 115),
    RGBColor(230, 159, 0),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
    RGBColor(240, 228, 66),
    RGBColor(120, 94, 240),
];

/// Legend names of the series drawn.
pub fn proto_label(p: Proto) -> String {
    format!("BitTorrent {}", p.name())
}
pub const TOTAL_LABEL: &str = "total load";
pub const PORT_LABEL: &str = "port view (classic BitTorrent ports)";

/// Renders the chart of a series as an SVG document.
pub fn render(s: &Series) -> Result<String, String> {
    let mut out = String::new();
    draw(s, &mut out).map_err(|e| format!("drawing the chart: {e}"))?;
    Ok(out)
}

/// Writes the chart to a file.
pub fn write(path: &Path, s: &Series) -> std::io::Result<()> {
    let svg = render(s).map_err(std::io::Error::other)?;
    std::fs::write(path, svg)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn draw(s: &Series, out: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let n = s.len().max(1);
    let multi_day = n > 1440;
    let root = SVGBackend::with_string(out, (1000, 520)).into_drawing_area();
    root.fill(&WHITE)?;

    // Stacked BitTorrent: cumulative bit/s by proto, in stacking order.
    let present: Vec<Proto> = BT_PROTOS
        .into_iter()
        .filter(|&p| s.minutes.iter().any(|m| m.bt_proto[p as usize] > 0))
        .collect();
    let mut stack: Vec<Vec<f64>> = Vec::with_capacity(present.len());
    for (i, &p) in present.iter().enumerate() {
        let layer: Vec<f64> = s
            .minutes
            .iter()
            .enumerate()
            .map(|(t, m)| {
                let below = if i == 0 { 0.0 } else { stack[i - 1][t] };
                below + bits_per_s(m.bt_proto[p as usize] as f64)
            })
            .collect();
        stack.push(layer);
    }
    let total: Vec<f64> = s
        .minutes
        .iter()
        .map(|m| bits_per_s(m.bytes as f64))
        .collect();
    let port: Vec<f64> = s
        .minutes
        .iter()
        .map(|m| bits_per_s(m.port_bytes as f64))
        .collect();
    let ymax = total
        .iter()
        .chain(port.iter())
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1.0)
        * 1.15;

    let start = s.start;
    let title = if s.is_empty() {
        "bittap: no packets".to_string()
    } else {
        format!(
            "bittap: BitTorrent and total load, {} to {} UTC",
            minute_label(start),
            minute_label(start + n as i64)
        )
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(44)
        .y_label_area_size(86)
        .build_cartesian_2d(0f64..n as f64, 0f64..ymax)?;
    let xfmt = move |x: &f64| {
        let l = minute_label(start + x.round() as i64);
        if multi_day {
            l[5..].to_string()
        } else {
            l[11..].to_string()
        }
    };
    let yfmt = |y: &f64| si_rate(*y);
    chart
        .configure_mesh()
        .x_labels(10)
        .y_labels(8)
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .x_desc(if multi_day {
            "time (UTC, month-day hour:minute)"
        } else {
            "time (UTC)"
        })
        .y_desc("bit/s (per-minute mean)")
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;

    // A minute's value holds for the whole minute: draw steps when there are few minutes.
    let steps = n <= 1440;
    let points = move |v: &[f64]| -> Vec<(f64, f64)> {
        let mut p = Vec::with_capacity(v.len() * 2);
        for (t, &y) in v.iter().enumerate() {
            p.push((t as f64, y));
            if steps {
                p.push((t as f64 + 1.0, y));
            }
        }
        p
    };
    // Top layer first, so lower layers are painted over it.
    for (i, &p) in present.iter().enumerate().rev() {
        let c = COLOURS[BT_PROTOS.iter().position(|&q| q == p).unwrap_or(0)];
        chart
            .draw_series(AreaSeries::new(points(&stack[i]), 0.0, c.mix(0.85)).border_style(c))?
            .label(proto_label(p))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
    }
    chart
        .draw_series(LineSeries::new(points(&total), BLACK.stroke_width(2)))?
        .label(TOTAL_LABEL)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK.stroke_width(2)));
    if s.has_ports {
        let red = RGBColor(200, 0, 0);
        chart
            .draw_series(LineSeries::new(points(&port), red.stroke_width(2)))?
            .label(PORT_LABEL)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], red.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}
