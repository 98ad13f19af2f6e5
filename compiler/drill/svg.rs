//! `infra drill --svg FILE`: one timeline per round, because a failover is read from a
//! picture faster than from a log. Per round: acknowledged writes per 100 ms (bars),
//! then one lane per member showing when it carried the VIP and when it accepted
//! writes; the fault window is shaded, spans with two writable primaries are red.
//! Pure: the drill's report in, SVG text out.

use super::observe::{Seen, Timeline};
use super::report::{dual_spans, DrillReport, RoundReport};
use std::fmt::Write;

const W: f64 = 900.0;
const LEFT: f64 = 90.0;
const BARS_H: f64 = 60.0;
const LANE_H: f64 = 14.0;
const ROUND_GAP: f64 = 40.0;
const BUCKET: f64 = 0.1;

/// The whole picture; `members` in the group's order.
pub fn render(report: &DrillReport) -> String {
    let (timelines, members) = (&report.timelines, &report.members);
    let lanes = members.len() as f64 * 2.0;
    let round_h = 20.0 + BARS_H + 6.0 + lanes * (LANE_H + 2.0) + 18.0;
    let height = 30.0 + timelines.len() as f64 * (round_h + ROUND_GAP);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<text x="4" y="16" font-size="13">infra drill: {} on failover group {} (lab {})</text>"#,
        esc(&report.fault),
        esc(&report.group),
        esc(&report.lab)
    );
    for (i, (r, tl)) in report.rounds.iter().zip(timelines).enumerate() {
        let y0 = 30.0 + i as f64 * (round_h + ROUND_GAP);
        round(&mut s, r, tl, members, y0);
    }
    s.push_str("</svg>\n");
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn round(s: &mut String, r: &RoundReport, tl: &Timeline, members: &[String], y0: f64) {
    let end = r.marks.end.max(0.1);
    let x = |t: f64| LEFT + (t / end).clamp(0.0, 1.0) * (W - LEFT - 10.0);
    let lost = r.lost.map(|l| l.to_string()).unwrap_or_else(|| "?".into());
    let _ = writeln!(
        s,
        r#"<text x="4" y="{:.1}">round {}: {} acknowledged, {lost} lost, writable again after {}, {:.1} s with two primaries</text>"#,
        y0 + 12.0,
        r.round,
        r.acknowledged,
        r.writable_again_s
            .map(|v| format!("{v:.1} s"))
            .unwrap_or_else(|| "never".into()),
        r.dual_primary_s
    );
    let top = y0 + 20.0;
    let bottom = top + BARS_H + 6.0 + members.len() as f64 * 2.0 * (LANE_H + 2.0);
    // fault window
    let (fa, ha) = (
        x(r.marks.fault_at),
        x(r.marks.heal_at.max(r.marks.fault_at)),
    );
    let _ = writeln!(
        s,
        r##"<rect x="{fa:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="#f3e3b0"/>"##,
        (ha - fa).max(1.5),
        bottom - top
    );
    // acknowledged writes per 100 ms
    let n = (end / BUCKET).ceil() as usize + 1;
    let mut buckets = vec![0u32; n];
    for a in tl.attempts.iter().filter(|a| a.ok) {
        let b = ((a.end / BUCKET) as usize).min(n - 1);
        buckets[b] += 1;
    }
    let max = buckets.iter().copied().max().unwrap_or(1).max(1) as f64;
    let bw = (x(BUCKET) - x(0.0)).max(0.5);
    for (i, c) in buckets.iter().enumerate().filter(|(_, c)| **c > 0) {
        let h = *c as f64 / max * BARS_H;
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{bw:.2}" height="{h:.1}" fill="#4a7ab8"/>"##,
            x(i as f64 * BUCKET),
            top + BARS_H - h
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="4" y="{:.1}">acks/100 ms</text><text x="4" y="{:.1}" fill="#666">max {max:.0}</text>"##,
        top + BARS_H / 2.0,
        top + BARS_H / 2.0 + 12.0
    );
    // lanes: consecutive samples in the same state are one span
    let mut y = top + BARS_H + 6.0;
    for (m, name) in members.iter().enumerate() {
        lane_label(s, y, &format!("{name} VIP"));
        let held: Vec<(f64, Option<&str>)> = tl
            .holders
            .iter()
            .map(|h| (h.t, h.holders.contains(&m).then_some("#2e8b57")))
            .collect();
        spans(s, &held, end, y, &x);
        y += LANE_H + 2.0;
        lane_label(s, y, &format!("{name} writable"));
        let seen: Vec<(f64, Option<&str>)> = tl
            .samples
            .iter()
            .filter(|p| p.member == m)
            .map(|p| {
                let color = match p.seen {
                    Seen::Writable => Some("#2e8b57"),
                    Seen::Standby => Some("#b8c8d8"),
                    Seen::Down => None,
                };
                (p.t, color)
            })
            .collect();
        spans(s, &seen, end, y, &x);
        y += LANE_H + 2.0;
    }
    // two writable primaries, in red across the lanes
    for (a, b) in dual_spans(tl, end) {
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#d0302f" fill-opacity="0.35"/>"##,
            x(a),
            top + BARS_H + 6.0,
            (x(b) - x(a)).max(1.0),
            bottom - top - BARS_H - 6.0
        );
    }
    // time axis
    let step = if end > 60.0 { 10.0 } else { 5.0 };
    let mut t = 0.0;
    while t <= end {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#666" text-anchor="middle">{t:.0} s</text>"##,
            x(t),
            bottom + 12.0
        );
        t += step;
    }
}

fn lane_label(s: &mut String, y: f64, text: &str) {
    let _ = writeln!(
        s,
        r#"<text x="4" y="{:.1}">{}</text>"#,
        y + LANE_H - 3.0,
        esc(text)
    );
}

/// One rectangle per run of equal colours (`None`: nothing drawn) in `points`.
fn spans(s: &mut String, points: &[(f64, Option<&str>)], end: f64, y: f64, x: &dyn Fn(f64) -> f64) {
    let mut i = 0;
    while i < points.len() {
        let (start, color) = points[i];
        let mut j = i + 1;
        while j < points.len() && points[j].1 == color {
            j += 1;
        }
        let stop = points.get(j).map(|p| p.0).unwrap_or(end);
        if let Some(c) = color {
            span(s, x(start), x(stop), y, c);
        }
        i = j;
    }
}

fn span(s: &mut String, a: f64, b: f64, y: f64, color: &str) {
    let _ = writeln!(
        s,
        r#"<rect x="{a:.1}" y="{y:.1}" width="{:.1}" height="{LANE_H}" fill="{color}"/>"#,
        (b - a).max(0.5)
    );
}
