//! A small SVG bar chart of a simulation: the policy's cost next to each single-model strategy,
//! and the policy's model mix.

use std::fmt::Write;

use super::simulate::Report;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart as an SVG document.
pub fn chart(r: &Report) -> String {
    let mut bars: Vec<(String, f64, &str)> =
        vec![("this policy".into(), r.policy_cost_usd, "#2b7a4b")];
    for b in &r.baselines {
        bars.push((format!("all {}", b.model), b.cost_usd, "#8a8f98"));
    }
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-12);
    let (width, bar_h, gap, left) = (760.0, 26.0, 10.0, 190.0);
    let plot_w = width - left - 120.0;
    let mix_top = 60.0 + bars.len() as f64 * (bar_h + gap) + 40.0;
    let height = mix_top + 90.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = write!(
        s,
        r#"<text x="10" y="24" font-size="16" font-weight="bold">Projected cost of {} requests (cache-hit share {:.0}%)</text>"#,
        r.requests,
        r.cache_hit_share * 100.0
    );
    for (i, (label, cost, color)) in bars.iter().enumerate() {
        let y = 50.0 + i as f64 * (bar_h + gap);
        let w = (cost / max * plot_w).max(1.0);
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + bar_h * 0.7,
            escape(label)
        );
        let _ = write!(
            s,
            r#"<rect x="{left}" y="{y}" width="{w:.1}" height="{bar_h}" fill="{color}"/>"#
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}">${cost:.4}</text>"#,
            left + w + 6.0,
            y + bar_h * 0.7
        );
    }
    let _ = write!(
        s,
        r#"<text x="10" y="{mix_top}" font-weight="bold">Model mix of this policy</text>"#
    );
    let total: u64 = r.mix.values().map(|m| m.requests).sum::<u64>().max(1);
    let palette = ["#2b7a4b", "#c77d1a", "#3b5ba5", "#a33b5b", "#6b4fa5"];
    let mut x = 10.0;
    for (i, (model, share)) in r.mix.iter().enumerate() {
        let w = share.requests as f64 / total as f64 * (width - 20.0);
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{}" width="{w:.1}" height="{bar_h}" fill="{}"/>"#,
            mix_top + 12.0,
            palette[i % palette.len()]
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}">{} {:.0}%</text>"#,
            x + 4.0,
            mix_top + 12.0 + bar_h + 18.0,
            escape(model),
            share.requests as f64 * 100.0 / total as f64
        );
        x += w;
    }
    s.push_str("</svg>\n");
    s
}
