//! The project's one SVG writer: line charts (the benchmark's scaling curves: x on a log scale,
//! one or more series on a linear y axis) and horizontal bar charts with a stacked share bar
//! (`policy simulate`'s costs and model mix). Plain SVG text, no dependencies, readable on
//! GitHub.

use std::fmt::Write;

/// One curve.
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// One chart: a title, axis labels and its curves.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<Series<'a>>,
}

const W: f64 = 420.0;
const H: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 64.0;

/// Renders charts side by side in one SVG, two per row.
pub fn render(charts: &[Chart<'_>]) -> String {
    let rows = charts.len().div_ceil(2);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        2.0 * W,
        rows as f64 * H
    );
    out.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, chart) in charts.iter().enumerate() {
        let (ox, oy) = ((i % 2) as f64 * W, (i / 2) as f64 * H);
        render_one(&mut out, chart, ox, oy);
    }
    out.push_str("</svg>\n");
    out
}

fn render_one(out: &mut String, chart: &Chart<'_>, ox: f64, oy: f64) {
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let finite = |v: &&(f64, f64)| v.0.is_finite() && v.1.is_finite() && v.0 > 0.0;
    let (xmin, xmax) = points()
        .filter(finite)
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let ymax = points().filter(finite).fold(0.0f64, |m, p| m.max(p.1)) * 1.1;
    if xmin >= xmax || ymax <= 0.0 {
        return;
    }
    let ymax = nice_ceiling(ymax);
    let (lx0, lx1) = (xmin.log10(), xmax.log10());
    let px = |x: f64| ox + LEFT + (x.log10() - lx0) / (lx1 - lx0) * (W - LEFT - RIGHT);
    let py = |y: f64| oy + TOP + (1.0 - y / ymax) * (H - TOP - BOTTOM);
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" font-size="13" font-weight="bold">{}</text>"#,
        ox + LEFT,
        oy + 18.0,
        escape(chart.title)
    );
    // Axes, y grid and labels.
    for k in 0..=4 {
        let y = ymax * k as f64 / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            ox + LEFT,
            py(y),
            ox + W - RIGHT,
            py(y),
            ox + LEFT - 4.0,
            py(y) + 4.0,
            short(y)
        );
    }
    let mut xs: Vec<f64> = points().filter(finite).map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for x in xs {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            px(x),
            oy + H - BOTTOM + 14.0,
            short(x)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" transform="rotate(-90 {:.1} {:.1})" text-anchor="middle">{}</text>"#,
        ox + LEFT + (W - LEFT - RIGHT) / 2.0,
        oy + H - BOTTOM + 30.0,
        escape(chart.x_label),
        ox + 12.0,
        oy + TOP + (H - TOP - BOTTOM) / 2.0,
        ox + 12.0,
        oy + TOP + (H - TOP - BOTTOM) / 2.0,
        escape(chart.y_label)
    );
    for (i, s) in chart.series.iter().enumerate() {
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|p| finite(p))
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            path.join(" "),
            c = s.colour
        );
        for p in &path {
            let (x, y) = p.split_once(',').expect("x,y");
            let _ = write!(
                out,
                r#"<circle cx="{x}" cy="{y}" r="2.5" fill="{}"/>"#,
                s.colour
            );
        }
        let lx = ox + LEFT + 150.0 * i as f64;
        let ly = oy + H - 14.0;
        let _ = write!(
            out,
            r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
            ly - 9.0,
            s.colour,
            lx + 14.0,
            escape(s.name)
        );
    }
}

fn nice_ceiling(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= v {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// One bar of a bar chart.
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// What is printed after the bar.
    pub text: String,
    pub colour: &'static str,
}

/// A bar chart: a title, its bars, and an optional stacked bar of shares (label, share 0-1).
pub struct BarChart {
    pub title: String,
    pub bars: Vec<Bar>,
    pub shares_title: String,
    pub shares: Vec<(String, f64)>,
}

/// Colours for series and shares, in order.
pub const PALETTE: [&str; 5] = ["#2b7a4b", "#c77d1a", "#3b5ba5", "#a33b5b", "#6b4fa5"];

/// Renders a bar chart.
pub fn bars(chart: &BarChart) -> String {
    let max = chart
        .bars
        .iter()
        .map(|b| b.value)
        .fold(0.0, f64::max)
        .max(1e-12);
    let (width, bar_h, gap, left) = (760.0, 26.0, 10.0, 190.0);
    let plot_w = width - left - 120.0;
    let mix_top = 60.0 + chart.bars.len() as f64 * (bar_h + gap) + 40.0;
    let height = if chart.shares.is_empty() {
        mix_top
    } else {
        mix_top + 90.0
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">"#
    );
    s.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="10" y="24" font-size="16" font-weight="bold">{}</text>"#,
        escape(&chart.title)
    );
    for (i, bar) in chart.bars.iter().enumerate() {
        let y = 50.0 + i as f64 * (bar_h + gap);
        let w = (bar.value / max * plot_w).max(1.0);
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + bar_h * 0.7,
            escape(&bar.label)
        );
        let _ = write!(
            s,
            r#"<rect x="{left}" y="{y}" width="{w:.1}" height="{bar_h}" fill="{}"/>"#,
            bar.colour
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}">{}</text>"#,
            left + w + 6.0,
            y + bar_h * 0.7,
            escape(&bar.text)
        );
    }
    if !chart.shares.is_empty() {
        let _ = write!(
            s,
            r#"<text x="10" y="{mix_top}" font-weight="bold">{}</text>"#,
            escape(&chart.shares_title)
        );
        let mut x = 10.0;
        for (i, (label, share)) in chart.shares.iter().enumerate() {
            let w = share * (width - 20.0);
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{}" width="{w:.1}" height="{bar_h}" fill="{}"/>"#,
                mix_top + 12.0,
                PALETTE[i % PALETTE.len()]
            );
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}">{} {:.0}%</text>"#,
                x + 4.0,
                mix_top + 12.0 + bar_h + 18.0,
                escape(label),
                share * 100.0
            );
            x += w;
        }
    }
    s.push_str("</svg>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_point_and_skips_what_cannot_be_drawn() {
        let svg = render(&[Chart {
            title: "t < u",
            x_label: "x",
            y_label: "y",
            series: vec![Series {
                name: "a",
                colour: "#123456",
                points: vec![(1.0, 1.0), (10.0, 2.0), (100.0, f64::NAN), (1000.0, 4.0)],
            }],
        }]);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("t &lt; u"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(nice_ceiling(0.33), 0.5);
        assert_eq!(short(4_194_304.0), "4.19M");
    }
}
