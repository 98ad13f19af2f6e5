//! The plan as text for people: one block per host, a line per action, diffs, colours.

use super::{Action, HostPlan, Plan};
use std::fmt::Write as _;

impl Plan {
    /// Human text; ANSI colours when `color`.
    pub fn render_text(&self, color: bool) -> String {
        let mut out = String::new();
        for h in &self.hosts {
            render_host(&mut out, h, color);
            out.push('\n');
        }
        let n = self.hosts.len();
        let _ = writeln!(
            out,
            "total ({n} host{}): {}",
            if n == 1 { "" } else { "s" },
            self.summary.describe()
        );
        out
    }
}

struct Paint(bool);

impl Paint {
    fn c(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn add(&self, s: &str) -> String {
        self.c("32", s)
    }
    fn change(&self, s: &str) -> String {
        self.c("33", s)
    }
    fn remove(&self, s: &str) -> String {
        self.c("31", s)
    }
    fn other(&self, s: &str) -> String {
        self.c("36", s)
    }
    fn bold(&self, s: &str) -> String {
        self.c("1", s)
    }
}

fn render_diff(out: &mut String, diff: &str, p: &Paint) {
    for line in diff.lines() {
        let painted = if line.starts_with("+++") || line.starts_with("---") {
            p.bold(line)
        } else if line.starts_with('+') {
            p.add(line)
        } else if line.starts_with('-') {
            p.remove(line)
        } else if line.starts_with("@@") {
            p.other(line)
        } else {
            line.to_string()
        };
        let _ = writeln!(out, "      {painted}");
    }
}

fn render_host(out: &mut String, h: &HostPlan, color: bool) {
    let p = Paint(color);
    let gen = match h.generation {
        Some(g) => format!("generation {g}"),
        None => "no generation yet".to_string(),
    };
    let _ = writeln!(out, "{} ({gen})", p.bold(&h.host));
    for c in &h.conflicts {
        let _ = writeln!(out, "  {} {c}", p.remove("! conflict:"));
    }
    for w in &h.warnings {
        let _ = writeln!(out, "  {} {w}", p.change("! warning:"));
    }
    for r in &h.rotations {
        let n = r.files.len();
        let by = if r.steps.is_empty() {
            String::new()
        } else {
            format!("; then step {} applies it", r.steps.join(", "))
        };
        let _ = writeln!(
            out,
            "  {} rotate secret {}: {n} file{} with the new value{by}",
            p.change("~"),
            r.secret,
            if n == 1 { "" } else { "s" }
        );
    }
    let drift = |d: &Option<String>| d.as_ref().map(|d| format!("  [{d}]")).unwrap_or_default();
    for a in &h.actions {
        match a {
            Action::InstallPackages { packages } => {
                let _ = writeln!(
                    out,
                    "  {} install packages: {}",
                    p.add("+"),
                    packages.join(", ")
                );
            }
            Action::CreateUser { name, system } => {
                let kind = if *system { "system user" } else { "user" };
                let _ = writeln!(out, "  {} create {kind} {name}", p.add("+"));
            }
            Action::AddUserGroups { name, groups } => {
                let _ = writeln!(
                    out,
                    "  {} add user {name} to groups {}",
                    p.change("~"),
                    groups.join(", ")
                );
            }
            Action::CreateDirectory {
                path,
                mode,
                owner,
                group,
            } => {
                let _ = writeln!(
                    out,
                    "  {} create directory {path} ({mode} {owner}:{group})",
                    p.add("+")
                );
            }
            Action::FixDirectory { path, changes } => {
                let _ = writeln!(
                    out,
                    "  {} fix directory {path}: {}",
                    p.change("~"),
                    changes.join(", ")
                );
            }
            Action::CreateFile {
                path,
                mode,
                owner,
                group,
                secret,
                diff,
                drift: d,
            } => {
                let s = if *secret { ", secret" } else { "" };
                let _ = writeln!(
                    out,
                    "  {} create file {path} ({mode} {owner}:{group}{s}){}",
                    p.add("+"),
                    drift(d)
                );
                if let Some(diff) = diff {
                    render_diff(out, diff, &p);
                }
            }
            Action::UpdateFile {
                path,
                changes,
                diff,
                note,
                drift: d,
                ..
            } => {
                let _ = writeln!(
                    out,
                    "  {} update file {path}: {}{}",
                    p.change("~"),
                    changes.join(", "),
                    drift(d)
                );
                if let Some(note) = note {
                    let _ = writeln!(out, "      {note}");
                }
                if let Some(diff) = diff {
                    render_diff(out, diff, &p);
                }
            }
            Action::DeleteFile { path, drift: d } => {
                let _ = writeln!(out, "  {} delete file {path}{}", p.remove("-"), drift(d));
            }
            Action::Release {
                path,
                from,
                to,
                present,
                added,
                changed,
                removed,
                bytes,
                migrate,
                ..
            } => {
                let first = from.is_none();
                let from = from.as_deref().map(short).unwrap_or("none");
                let what = if *present {
                    "already on the host".to_string()
                } else {
                    let n = added.len() + changed.len() + removed.len();
                    format!(
                        "{n} file{} changed ({} added, {} changed, {} removed), {} to send",
                        if n == 1 { "" } else { "s" },
                        added.len(),
                        changed.len(),
                        removed.len(),
                        human_bytes(*bytes)
                    )
                };
                let m = match (*migrate, first) {
                    (true, false) => " (its migration runs here, before the switch)",
                    // nothing served it before: once the steps made its database
                    (true, true) => " (its migration runs here, after the steps: a first release)",
                    (false, _) => "",
                };
                let _ = writeln!(
                    out,
                    "  {} release {path} {from} -> {}: {what}{m}",
                    p.change("~"),
                    short(to)
                );
                const SHOWN: usize = 20;
                let lines = added
                    .iter()
                    .map(|f| p.add(&format!("      + {f}")))
                    .chain(changed.iter().map(|f| p.change(&format!("      ~ {f}"))))
                    .chain(removed.iter().map(|f| p.remove(&format!("      - {f}"))));
                let total = added.len() + changed.len() + removed.len();
                for l in lines.take(SHOWN) {
                    let _ = writeln!(out, "{l}");
                }
                if total > SHOWN {
                    let _ = writeln!(out, "      ... and {} more", total - SHOWN);
                }
            }
            Action::DaemonReload => {
                let _ = writeln!(out, "  {} systemctl daemon-reload", p.other("*"));
            }
            Action::EnableUnit { unit } => {
                let _ = writeln!(out, "  {} enable {unit}", p.add("+"));
            }
            Action::StartUnit { unit } => {
                let _ = writeln!(out, "  {} start {unit}", p.add("+"));
            }
            Action::RestartUnit { unit, because } => {
                let _ = writeln!(
                    out,
                    "  {} restart {unit} (changed: {})",
                    p.change("~"),
                    because.join(", ")
                );
            }
            Action::ReloadUnit { unit, because } => {
                let _ = writeln!(
                    out,
                    "  {} reload {unit} (changed: {})",
                    p.change("~"),
                    because.join(", ")
                );
            }
            Action::StopUnit { unit } => {
                let _ = writeln!(out, "  {} stop {unit}", p.remove("-"));
            }
            Action::DisableUnit { unit } => {
                let _ = writeln!(out, "  {} disable {unit}", p.remove("-"));
            }
            Action::RunStep { name, guarded, .. } => {
                let g = if *guarded { " (guarded)" } else { "" };
                let _ = writeln!(out, "  {} run step {name}{g}", p.other(">"));
            }
        }
    }
    let _ = writeln!(out, "{}", h.summary_line());
}

/// A release id as people read it: its first 8 hex digits.
fn short(hash: &str) -> &str {
    // (a hash read back from a host's manifest may be anything: never split a char)
    hash.get(..8).unwrap_or(hash)
}

/// "512 B", "3.4 KiB", "12.0 MiB", "2.5 GiB", "1.2 TiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_counts_for_people() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(3_500), "3.4 KiB");
        assert_eq!(super::human_bytes(12 * 1024 * 1024), "12.0 MiB");
        assert_eq!(super::human_bytes(5 * 1024 * 1024 * 1024 / 2), "2.5 GiB");
        assert_eq!(super::human_bytes(3 << 40), "3.0 TiB");
    }
}
