//! What a round cost, computed from what the clients saw (pure: no IO), in the manner
//! of Jepsen's set checker: every id the writer tried is acknowledged or not, and the
//! final primary has it or not.

use super::observe::{Seen, Timeline};
use serde::Serialize;
use std::collections::BTreeSet;

/// The moments of a round, in seconds since its start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Marks {
    pub fault_at: f64,
    pub heal_at: f64,
    /// When the pair was whole again (one primary holding the VIP, every other member
    /// streaming from it); `None` when it was not by the deadline.
    pub converged_at: Option<f64>,
    pub end: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundReport {
    pub round: u32,
    pub fault: String,
    /// The member the fault hit (none for a partition between all members).
    pub target: Option<String>,
    pub primary_before: String,
    /// `None` when the pair did not converge to one primary.
    pub primary_after: Option<String>,
    pub marks: Marks,
    pub attempted: u64,
    pub acknowledged: u64,
    /// Acknowledged and absent on the final primary (`None`: no final primary to read).
    pub lost: Option<u64>,
    /// Up to 20 of the lost ids.
    pub lost_ids: Vec<u64>,
    /// Not acknowledged (the client gave up or the server failed) but present.
    pub unacknowledged_present: Option<u64>,
    /// Present but never attempted: must be 0 (a checker bug otherwise).
    pub unexpected: Option<u64>,
    /// Seconds from the fault until a write through the VIP succeeded again, after the
    /// first one that failed; 0 when none failed; `None` when none succeeded again.
    pub writable_again_s: Option<f64>,
    /// Seconds from the fault until another member than the old primary carried the
    /// VIP (`None`: it never moved).
    pub vip_moved_s: Option<f64>,
    /// Seconds from the fault until another member than the old primary accepted
    /// writes (`None`: none did).
    pub promoted_s: Option<f64>,
    /// The longest time without an acknowledged write, from the fault to the end.
    pub longest_gap_s: f64,
    /// Seconds during which two or more members accepted writes.
    pub dual_primary_s: f64,
    /// Seconds during which two or more members carried the VIP.
    pub dual_vip_s: f64,
    /// Seconds from the heal (power back, link back, process resumed) until the pair
    /// was whole again, with no command typed.
    pub healed_s: Option<f64>,
    /// Acknowledged writes per second before the fault.
    pub rate: f64,
    /// Why writes failed: (reason, count).
    pub errors: Vec<(String, u64)>,
    /// Data directories kept aside by a rejoining member this round (`HOST:PATH`): the
    /// lost writes can be read there.
    pub kept: Vec<String>,
}

/// The numbers of one round. `present` is every id on the final primary (`None` when
/// there was no single primary to read); `old` is the old primary's member index.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    round: u32,
    fault: &str,
    target: Option<String>,
    old: usize,
    primary_before: String,
    primary_after: Option<String>,
    marks: Marks,
    tl: &Timeline,
    present: Option<&BTreeSet<u64>>,
) -> RoundReport {
    let acked: BTreeSet<u64> = tl.attempts.iter().filter(|a| a.ok).map(|a| a.id).collect();
    let tried: BTreeSet<u64> = tl.attempts.iter().map(|a| a.id).collect();
    let (lost, lost_ids, unack, unexpected) = match present {
        Some(p) => {
            let lost: Vec<u64> = acked.difference(p).copied().collect();
            let unack = p
                .iter()
                .filter(|i| tried.contains(i) && !acked.contains(i))
                .count();
            let unexpected = p.iter().filter(|i| !tried.contains(i)).count();
            (
                Some(lost.len() as u64),
                lost.iter().take(20).copied().collect(),
                Some(unack as u64),
                Some(unexpected as u64),
            )
        }
        None => (None, Vec::new(), None, None),
    };
    let before: Vec<_> = tl
        .attempts
        .iter()
        .filter(|a| a.ok && a.end < marks.fault_at)
        .collect();
    let rate = match (before.first(), before.last()) {
        (Some(a), Some(b)) if b.end > a.start => before.len() as f64 / (b.end - a.start),
        _ => 0.0,
    };
    RoundReport {
        round,
        fault: fault.to_string(),
        target,
        primary_before,
        primary_after,
        marks,
        attempted: tried.len() as u64,
        acknowledged: acked.len() as u64,
        lost,
        lost_ids,
        unacknowledged_present: unack,
        unexpected,
        writable_again_s: writable_again(tl, marks.fault_at),
        vip_moved_s: tl
            .holders
            .iter()
            .find(|h| h.t >= marks.fault_at && h.holders.iter().any(|&m| m != old))
            .map(|h| round2(h.t - marks.fault_at)),
        promoted_s: tl
            .samples
            .iter()
            .find(|p| p.t >= marks.fault_at && p.member != old && p.seen == Seen::Writable)
            .map(|p| round2(p.t - marks.fault_at)),
        longest_gap_s: longest_gap(tl, marks.fault_at, marks.end),
        dual_primary_s: dual_primary(tl, marks.end),
        dual_vip_s: dual_vip(tl, marks.end),
        healed_s: marks.converged_at.map(|c| round2(c - marks.heal_at)),
        rate: round2(rate),
        errors: tl.errors.clone(),
        kept: Vec::new(),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn writable_again(tl: &Timeline, fault_at: f64) -> Option<f64> {
    let Some(first_fail) = tl.attempts.iter().find(|a| !a.ok && a.end >= fault_at) else {
        return Some(0.0);
    };
    tl.attempts
        .iter()
        .find(|a| a.ok && a.start >= first_fail.start)
        .map(|a| round2((a.end - fault_at).max(0.0)))
}

fn longest_gap(tl: &Timeline, from: f64, to: f64) -> f64 {
    let mut last = from;
    let mut gap: f64 = 0.0;
    for a in tl.attempts.iter().filter(|a| a.ok && a.end >= from) {
        gap = gap.max(a.end - last);
        last = a.end;
    }
    round2(gap.max(to - last))
}

/// Total time during which at least two members' latest answers said "writable".
fn dual_primary(tl: &Timeline, end: f64) -> f64 {
    // a fold from +0.0: `sum()` of nothing is -0.0, printed "-0.0 s"
    let total = dual_spans(tl, end)
        .iter()
        .fold(0.0, |t, (a, b)| t + (b - a).max(0.0));
    round2(total)
}

/// The intervals during which two or more members' latest answers said "writable"
/// (also drawn by `--svg`).
pub fn dual_spans(tl: &Timeline, end: f64) -> Vec<(f64, f64)> {
    let n = tl.samples.iter().map(|s| s.member + 1).max().unwrap_or(0);
    let mut latest = vec![Seen::Down; n];
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut open: Option<f64> = None;
    for p in &tl.samples {
        latest[p.member] = p.seen;
        let dual = latest.iter().filter(|x| **x == Seen::Writable).count() >= 2;
        match (dual, open) {
            (true, None) => open = Some(p.t),
            (false, Some(a)) => {
                out.push((a, p.t));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(a) = open {
        out.push((a, end));
    }
    out
}

fn dual_vip(tl: &Timeline, end: f64) -> f64 {
    let mut total = 0.0;
    for (i, h) in tl.holders.iter().enumerate() {
        if h.holders.len() >= 2 {
            let next = tl.holders.get(i + 1).map(|n| n.t).unwrap_or(end);
            total += (next - h.t).max(0.0);
        }
    }
    round2(total)
}

/// Limits the user declared (`--max-*`); a round over one makes the drill exit 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Budget {
    pub max_lost: Option<u64>,
    pub max_unwritable_s: Option<f64>,
    pub max_dual_primary_s: Option<f64>,
    pub max_heal_s: Option<f64>,
}

impl Budget {
    /// Every way `r` breaks this budget, in words; a round that did not heal or has no
    /// final primary to count breaks any budget on those numbers.
    pub fn broken(&self, r: &RoundReport) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(max) = self.max_lost {
            match r.lost {
                Some(l) if l <= max => {}
                Some(l) => out.push(format!("{l} acknowledged write(s) lost (budget {max})")),
                None => out.push("lost writes could not be counted (no single primary)".into()),
            }
        }
        if let Some(max) = self.max_unwritable_s {
            match r.writable_again_s {
                Some(s) if s <= max => {}
                Some(s) => out.push(format!("writable again after {s:.1} s (budget {max} s)")),
                None => out.push("writes never succeeded again".into()),
            }
        }
        if let Some(max) = self.max_dual_primary_s {
            if r.dual_primary_s > max {
                out.push(format!(
                    "{:.1} s with two writable primaries (budget {max} s)",
                    r.dual_primary_s
                ));
            }
        }
        if let Some(max) = self.max_heal_s {
            match r.healed_s {
                Some(s) if s <= max => {}
                Some(s) => out.push(format!("whole again after {s:.1} s (budget {max} s)")),
                None => out.push("the pair did not heal by the deadline".into()),
            }
        }
        out
    }
}

/// The drill's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillReport {
    pub lab: String,
    pub group: String,
    /// The group's members, in preference order.
    pub members: Vec<String>,
    pub fault: String,
    pub hold_s: f64,
    pub rounds: Vec<RoundReport>,
    pub budget: Budget,
    /// Per round, the budget lines it broke (empty: within budget).
    pub broken: Vec<(u32, String)>,
    /// Set when the drill stopped early (the pair did not heal).
    pub stopped: Option<String>,
    /// What the drill could not take away again (its pg_hba line, role, database).
    pub left_behind: Option<String>,
    /// What the clients saw, per round (for `--svg`; not in the JSON).
    #[serde(skip)]
    pub timelines: Vec<Timeline>,
}

impl DrillReport {
    /// Exit 1 when a round broke the budget or the drill could not finish.
    pub fn ok(&self) -> bool {
        self.broken.is_empty() && self.stopped.is_none()
    }
}

fn opt_s(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.1} s"))
        .unwrap_or_else(|| "never".into())
}

fn opt_n(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "?".into())
}

impl std::fmt::Display for DrillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "drill `{}` on failover group `{}` (lab {}), fault held {:.0} s",
            self.fault, self.group, self.lab, self.hold_s
        )?;
        writeln!(
            f,
            "{:>5}  {:14} {:>6} {:>5} {:>9} {:>14} {:>12} {:>13} {:>8}",
            "round",
            "primary",
            "acked",
            "lost",
            "unacked+",
            "writable again",
            "longest gap",
            "two primaries",
            "healed"
        )?;
        for r in &self.rounds {
            let primary = match &r.primary_after {
                Some(p) if *p == r.primary_before => p.clone(),
                Some(p) => format!("{} → {p}", r.primary_before),
                None => format!("{} → ?", r.primary_before),
            };
            writeln!(
                f,
                "{:>5}  {:14} {:>6} {:>5} {:>9} {:>14} {:>12} {:>13} {:>8}",
                r.round,
                primary,
                r.acknowledged,
                opt_n(r.lost),
                opt_n(r.unacknowledged_present),
                opt_s(r.writable_again_s),
                format!("{:.1} s", r.longest_gap_s),
                format!("{:.1} s", r.dual_primary_s),
                opt_s(r.healed_s),
            )?;
        }
        writeln!(f, "  acked: writes the database acknowledged through the VIP; lost: acknowledged but absent on the final primary;")?;
        writeln!(f, "  unacked+: not acknowledged, yet present; healed: from the heal until one primary holds the VIP and every other member streams from it")?;
        for r in &self.rounds {
            if let Some(u) = r.unexpected.filter(|u| *u > 0) {
                writeln!(f, "  round {}: {u} id(s) present that were never written (a drill bug: please report)", r.round)?;
            }
            if !r.lost_ids.is_empty() {
                let ids: Vec<String> = r.lost_ids.iter().map(u64::to_string).collect();
                writeln!(
                    f,
                    "  round {}: lost ids {}{}",
                    r.round,
                    ids.join(", "),
                    if r.lost.unwrap_or(0) > 20 {
                        ", …"
                    } else {
                        ""
                    }
                )?;
            }
        }
        for (round, line) in &self.broken {
            writeln!(f, "  over budget in round {round}: {line}")?;
        }
        if let Some(s) = &self.stopped {
            writeln!(f, "  stopped: {s}")?;
        }
        if let Some(s) = &self.left_behind {
            writeln!(f, "  left behind: {s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::observe::{Attempt, HolderSample, Sample};
    use super::*;

    fn a(id: u64, start: f64, ok: bool) -> Attempt {
        Attempt {
            id,
            start,
            end: start + 0.01,
            ok,
        }
    }

    fn marks() -> Marks {
        Marks {
            fault_at: 1.0,
            heal_at: 2.0,
            converged_at: Some(5.0),
            end: 6.0,
        }
    }

    #[test]
    fn counts_lost_unacknowledged_and_recovery() {
        let tl = Timeline {
            attempts: vec![
                a(1, 0.0, true),
                a(2, 0.5, true),
                a(3, 0.9, true), // acknowledged, then lost with the old primary
                a(4, 1.1, false),
                a(5, 1.5, false), // not acknowledged, but committed
                a(6, 3.0, true),
            ],
            samples: vec![
                Sample {
                    t: 0.0,
                    member: 0,
                    seen: Seen::Writable,
                },
                Sample {
                    t: 0.0,
                    member: 1,
                    seen: Seen::Standby,
                },
                Sample {
                    t: 2.0,
                    member: 1,
                    seen: Seen::Writable,
                },
                Sample {
                    t: 2.5,
                    member: 0,
                    seen: Seen::Down,
                },
            ],
            holders: vec![
                HolderSample {
                    t: 0.0,
                    holders: vec![0],
                },
                HolderSample {
                    t: 2.0,
                    holders: vec![0, 1],
                },
                HolderSample {
                    t: 2.2,
                    holders: vec![1],
                },
            ],
            errors: vec![],
        };
        let present: BTreeSet<u64> = [1, 2, 5, 6].into_iter().collect();
        let r = measure(
            1,
            "poweroff",
            None,
            0,
            "alpha".into(),
            Some("beta".into()),
            marks(),
            &tl,
            Some(&present),
        );
        assert_eq!(r.attempted, 6);
        assert_eq!(r.acknowledged, 4);
        assert_eq!(r.lost, Some(1));
        assert_eq!(r.lost_ids, vec![3]);
        assert_eq!(r.unacknowledged_present, Some(1));
        assert_eq!(r.unexpected, Some(0));
        assert_eq!(r.writable_again_s, Some(2.01));
        assert_eq!(r.dual_primary_s, 0.5);
        assert_eq!(r.dual_vip_s, 0.2);
        assert_eq!(r.vip_moved_s, Some(1.0));
        assert_eq!(r.promoted_s, Some(1.0));
        assert_eq!(r.healed_s, Some(3.0));
        let b = Budget {
            max_lost: Some(0),
            max_unwritable_s: Some(3.0),
            ..Budget::default()
        };
        assert_eq!(
            b.broken(&r),
            vec!["1 acknowledged write(s) lost (budget 0)".to_string()]
        );
    }

    #[test]
    fn no_failure_means_no_outage_and_missing_primary_breaks_budgets() {
        let tl = Timeline {
            attempts: vec![a(1, 0.0, true), a(2, 1.5, true)],
            ..Timeline::default()
        };
        let r = measure(
            1,
            "restart-standby",
            None,
            0,
            "alpha".into(),
            None,
            Marks {
                converged_at: None,
                ..marks()
            },
            &tl,
            None,
        );
        assert_eq!(r.writable_again_s, Some(0.0));
        assert!(r.dual_primary_s.is_sign_positive(), "{}", r.dual_primary_s);
        assert_eq!(r.lost, None);
        let b = Budget {
            max_lost: Some(0),
            max_heal_s: Some(60.0),
            ..Budget::default()
        };
        assert_eq!(b.broken(&r).len(), 2);
    }
}
