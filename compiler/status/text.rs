//! The screen `infra status` prints: the summary first, then each failover group
//! with its members, then each host (generation, pending changes, disks).

use super::{Health, Report};
use std::fmt::Write;

fn paint(s: &str, health: Health, colour: bool) -> String {
    if !colour {
        return s.to_string();
    }
    let code = match health {
        Health::Healthy => "32",
        Health::Degraded => "33",
        Health::Down | Health::SplitBrain => "1;31",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

fn kib(n: u64) -> String {
    crate::plan::human_bytes(n.saturating_mul(1024))
}

/// The report as text (`colour`: ANSI colours for a terminal).
pub fn render(r: &Report, colour: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", paint(&r.summary, r.health, colour));
    for p in r.problems.iter().skip(1) {
        let _ = writeln!(
            s,
            "  {} {}",
            paint(p.health.word(), p.health, colour),
            p.text
        );
    }
    let width = r.hosts.iter().map(|h| h.host.len()).max().unwrap_or(4);
    for g in &r.groups {
        let _ = writeln!(s, "\nfailover {} (VIP {})", g.name, g.vip);
        for m in &g.members {
            let dbs: Vec<String> = m
                .databases
                .iter()
                .map(|(c, role)| format!("{}: {role}", c.replacen('.', " ", 1)))
                .collect();
            let _ = writeln!(
                s,
                "  {:<width$}  {:<11}  {:<13}  {}",
                m.host,
                m.keepalived,
                if m.holds_vip { "holds the VIP" } else { "" },
                dbs.join(", ")
            );
        }
        if let Some(w) = &g.witness {
            let lease = match (&w.lease_holder, w.answered) {
                (Some(h), _) => format!("lease held by {h}"),
                (None, true) => "lease free".to_string(),
                (None, false) => "no majority answers".to_string(),
            };
            let _ = writeln!(s, "  witness {}: {lease}", w.host);
        }
        for d in &g.details {
            let _ = writeln!(s, "  {d}");
        }
    }
    let _ = writeln!(s, "\nhosts");
    for h in &r.hosts {
        let Some(f) = &h.facts else {
            let _ = writeln!(
                s,
                "  {:<width$}  unreachable: {}",
                h.host,
                h.error.as_deref().unwrap_or("no answer")
            );
            continue;
        };
        let gen = match h.generation {
            Some(n) => format!("generation {n}"),
            None => "no generation".to_string(),
        };
        let pending = match h.pending {
            Some(0) => "as the repo builds it".to_string(),
            Some(1) => "1 change pending (infra plan)".to_string(),
            Some(n) => format!("{n} changes pending (infra plan)"),
            None => "pending changes not counted (no secrets' values to compare)".to_string(),
        };
        // one entry per file system, with the paths on it
        let mut mounts: Vec<(&super::Disk, Vec<&str>)> = Vec::new();
        for d in &f.disks {
            match mounts.iter_mut().find(|(m, _)| m.mount == d.mount) {
                Some((_, paths)) => paths.push(&d.path),
                None => mounts.push((d, vec![&d.path])),
            }
        }
        let disks: Vec<String> = mounts
            .iter()
            .map(|(d, paths)| {
                let pct = (d.used_kib * 100).checked_div(d.size_kib).unwrap_or(0);
                format!(
                    "{} {pct}% used, {} free ({})",
                    d.mount,
                    kib(d.avail_kib),
                    paths.join(", ")
                )
            })
            .collect();
        let _ = writeln!(s, "  {:<width$}  {gen}, {pending}", h.host);
        if !h.failed_units.is_empty() {
            let _ = writeln!(s, "  {:<width$}  failed: {}", "", h.failed_units.join(", "));
        }
        if !disks.is_empty() {
            let _ = writeln!(s, "  {:<width$}  disk: {}", "", disks.join(", "));
        }
    }
    s
}
