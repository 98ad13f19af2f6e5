//! Rolling order: which hosts are switched together, and what stops the roll.
//! Pure; the work per host is a closure (the CLI's does SSH, tests' do not).
//!
//! Within a failover group hosts go one at a time: the members that do not hold
//! the virtual IP first (in the graph's host order: standbys before the usual
//! primary), the member holding it last, so the service keeps running on a
//! member that is not being changed. When no member holds the VIP (a first
//! deployment, or keepalived down everywhere) the usual primary goes first: it
//! takes the VIP and seeds the others. A secret that rotates with a step on
//! the VIP holder (a database role's password) reverses that: the holder goes
//! first, so the role has the new password before the others' applications
//! use it. Hosts that share no group are switched in parallel.

use super::Prepared;
use crate::plan::Action;
use crate::resolve::Model;
use std::collections::{BTreeMap, BTreeSet};

/// A failover group as the roll sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOrder {
    pub name: String,
    /// Members in preference order (the first is the usual primary).
    pub members: Vec<String>,
    /// The member holding the VIP now, if any.
    pub vip_holder: Option<String>,
    /// The holder goes first: its plan rotates a secret with a step (the
    /// primary sets a role's new password before the others switch to it).
    pub holder_first: bool,
}

/// True if the plan rotates a secret that one of its steps applies.
fn rotates_with_step(p: &Prepared) -> bool {
    p.plan.rotations.iter().any(|r| !r.steps.is_empty())
}

/// Every failover group of `model` as the roll sees it: its members, and which
/// of them holds the VIP according to the probes (`prepared`, by host).
pub fn group_orders<P: std::borrow::Borrow<Prepared>>(
    model: &Model,
    prepared: &BTreeMap<String, P>,
) -> Vec<GroupOrder> {
    model
        .groups
        .iter()
        .map(|g| {
            let members: Vec<String> = g
                .members
                .iter()
                .map(|m| model.hosts[m.value].name.value.clone())
                .collect();
            let vip = g.vip.value.addr.to_string();
            let vip_holder = members
                .iter()
                .find(|m| prepared.get(*m).is_some_and(|p| p.borrow().holds(&vip)))
                .cloned();
            let holder_first = vip_holder
                .as_ref()
                .and_then(|h| prepared.get(h))
                .is_some_and(|p| rotates_with_step(p.borrow()));
            GroupOrder {
                name: g.name.value.clone(),
                members,
                vip_holder,
                holder_first,
            }
        })
        .collect()
}

/// Where each failover group's VIP is and whether the apply moves it, in the
/// operator's words: one line per group ("failover office: VIP ... stays there").
pub fn vip_story(model: &Model, prepared: &BTreeMap<String, Prepared>) -> Vec<String> {
    let mut out = Vec::new();
    for (g, order) in model.groups.iter().zip(group_orders(model, prepared)) {
        let vip = g.vip.value.addr;
        let others = |h: &str| {
            order
                .members
                .iter()
                .filter(|m| *m != h)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        };
        let line = match &order.vip_holder {
            None => match order.members.first() {
                Some(first) => format!(
                    "no member holds VIP {vip} yet: {first}, the usual primary, is applied first and takes it"
                ),
                None => continue,
            },
            Some(h) => {
                let restarts = prepared.get(h).is_some_and(|p| {
                    p.plan.actions.iter().any(|a| {
                        matches!(a, Action::RestartUnit { unit, .. } | Action::StopUnit { unit }
                            if unit == "keepalived.service")
                    })
                });
                let changes = prepared.get(h).is_some_and(|p| p.plan.has_changes());
                if order.holder_first && order.members.len() > 1 {
                    let mut l = format!(
                        "VIP {vip} is on {h}; a secret rotates there (a step sets its new value), so {h} goes first, then {}",
                        others(h)
                    );
                    let releases = order.members.iter().any(|m| {
                        prepared.get(m).is_some_and(|p| {
                            p.plan
                                .actions
                                .iter()
                                .any(|a| matches!(a, Action::Release { .. }))
                        })
                    });
                    if releases {
                        l.push_str(": the new release is not tried on the others first (apply a rotation on its own to keep that)");
                    }
                    l
                } else if restarts {
                    format!(
                        "VIP {vip} is on {h}; keepalived restarts there, so the VIP moves to {} during the apply (and stays: nopreempt)",
                        others(h)
                    )
                } else if order.members.len() > 1 && changes {
                    format!("VIP {vip} is on {h} and stays there: {} first, {h} last", others(h))
                } else {
                    format!("VIP {vip} is on {h} and stays there")
                }
            }
        };
        out.push(format!("failover {}: {line}", g.name.value));
    }
    out
}

/// The order within one group, for the hosts in `changed`.
pub fn group_sequence(
    g: &GroupOrder,
    host_order: &[String],
    changed: &BTreeSet<String>,
) -> Vec<String> {
    let rank = |h: &String| host_order.iter().position(|x| x == h).unwrap_or(usize::MAX);
    let mut members: Vec<String> = g
        .members
        .iter()
        .filter(|m| changed.contains(*m))
        .cloned()
        .collect();
    members.sort_by_key(rank);
    match &g.vip_holder {
        Some(holder) => {
            if let Some(i) = members.iter().position(|m| m == holder) {
                let h = members.remove(i);
                if g.holder_first {
                    members.insert(0, h);
                } else {
                    members.push(h);
                }
            }
        }
        None => {
            if let Some(first) = g.members.first() {
                if let Some(i) = members.iter().position(|m| m == first) {
                    let h = members.remove(i);
                    members.insert(0, h);
                }
            }
        }
    }
    members
}

/// Waves of hosts: every host of a wave is switched in parallel; a wave starts
/// when the previous one is done and healthy. Only hosts in `changed` appear.
pub fn waves(
    host_order: &[String],
    groups: &[GroupOrder],
    changed: &BTreeSet<String>,
) -> Vec<Vec<String>> {
    let hosts: Vec<String> = host_order
        .iter()
        .filter(|h| changed.contains(*h))
        .cloned()
        .collect();
    let mut before: BTreeMap<&str, BTreeSet<String>> = hosts
        .iter()
        .map(|h| (h.as_str(), BTreeSet::new()))
        .collect();
    for g in groups {
        let seq = group_sequence(g, host_order, changed);
        for w in seq.windows(2) {
            if let Some(b) = before.get_mut(w[1].as_str()) {
                b.insert(w[0].clone());
            }
        }
    }
    let mut level: BTreeMap<String, usize> = BTreeMap::new();
    let mut left: Vec<String> = hosts.clone();
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|h| before[h.as_str()].iter().all(|p| level.contains_key(p)))
            .cloned()
            .collect();
        if ready.is_empty() {
            // Groups disagree on the order (a cycle): one host at a time.
            return hosts.into_iter().map(|h| vec![h]).collect();
        }
        for h in &ready {
            let l = before[h.as_str()]
                .iter()
                .map(|p| level[p] + 1)
                .max()
                .unwrap_or(0);
            level.insert(h.clone(), l);
        }
        left.retain(|h| !ready.contains(h));
    }
    let n = level.values().copied().max().map_or(0, |m| m + 1);
    let mut out = vec![Vec::new(); n];
    for h in hosts {
        out[level[&h]].push(h);
    }
    out
}

/// What happened to one host in a roll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<R, E> {
    Done(R),
    Failed(E),
    /// Not touched: an earlier wave failed.
    NotTouched,
}

/// Run `f` on every host, wave after wave (hosts of a wave in parallel, at most
/// `parallel` at once); after a wave with a failure, the hosts of later waves
/// are not touched. Results in wave order.
pub fn roll<R: Send, E: Send>(
    waves: &[Vec<String>],
    parallel: usize,
    f: impl Fn(&str) -> Result<R, E> + Sync,
) -> Vec<(String, Step<R, E>)> {
    let mut out = Vec::new();
    let mut stopped = false;
    for wave in waves {
        if stopped {
            out.extend(wave.iter().map(|h| (h.clone(), Step::NotTouched)));
            continue;
        }
        let results = crate::transport::in_pool(wave, parallel, |h| f(h));
        for (h, r) in wave.iter().zip(results) {
            match r {
                Ok(v) => out.push((h.clone(), Step::Done(v))),
                Err(e) => {
                    stopped = true;
                    out.push((h.clone(), Step::Failed(e)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }
    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|x| x.to_string()).collect()
    }
    fn group(members: &[&str], holder: Option<&str>) -> GroupOrder {
        GroupOrder {
            name: "office".into(),
            members: s(members),
            vip_holder: holder.map(str::to_string),
            holder_first: false,
        }
    }

    #[test]
    fn holder_goes_last_and_first_deploy_starts_with_the_primary() {
        let order = s(&["beta", "alpha"]); // graph: standby first
        let all = set(&["alpha", "beta"]);
        let g = group(&["alpha", "beta"], Some("alpha"));
        assert_eq!(waves(&order, &[g], &all), vec![s(&["beta"]), s(&["alpha"])]);
        let g = group(&["alpha", "beta"], Some("beta"));
        assert_eq!(waves(&order, &[g], &all), vec![s(&["alpha"]), s(&["beta"])]);
        let g = group(&["alpha", "beta"], None);
        assert_eq!(waves(&order, &[g], &all), vec![s(&["alpha"]), s(&["beta"])]);
    }

    #[test]
    fn a_rotation_on_the_holder_sends_it_first() {
        let all = set(&["alpha", "beta"]);
        let order = s(&["alpha", "beta"]);
        let mut g = group(&["alpha", "beta"], Some("alpha"));
        assert_eq!(group_sequence(&g, &order, &all), s(&["beta", "alpha"]));
        g.holder_first = true;
        assert_eq!(group_sequence(&g, &order, &all), s(&["alpha", "beta"]));
    }

    #[test]
    fn unchanged_hosts_are_left_out_and_ungrouped_hosts_run_together() {
        let order = s(&["beta", "alpha", "solo", "gamma"]);
        let g = group(&["alpha", "beta"], Some("alpha"));
        let w = waves(
            &order,
            std::slice::from_ref(&g),
            &set(&["alpha", "beta", "solo", "gamma"]),
        );
        assert_eq!(w, vec![s(&["beta", "solo", "gamma"]), s(&["alpha"])]);
        let w = waves(&order, &[g], &set(&["alpha"]));
        assert_eq!(w, vec![s(&["alpha"])]);
    }

    #[test]
    fn conflicting_groups_fall_back_to_one_at_a_time() {
        let order = s(&["a", "b"]);
        let g1 = group(&["a", "b"], Some("b"));
        let g2 = group(&["b", "a"], Some("a"));
        assert_eq!(
            waves(&order, &[g1, g2], &set(&["a", "b"])),
            vec![s(&["a"]), s(&["b"])]
        );
    }

    #[test]
    fn a_failure_stops_the_roll_after_its_wave() {
        let w = vec![s(&["b", "c"]), s(&["a"])];
        let touched = Mutex::new(Vec::new());
        let out = roll(&w, 8, |h| {
            touched.lock().map(|mut t| t.push(h.to_string())).ok();
            if h == "b" {
                Err("boom")
            } else {
                Ok(h.len())
            }
        });
        assert_eq!(
            out,
            vec![
                ("b".to_string(), Step::Failed("boom")),
                ("c".to_string(), Step::Done(1)),
                ("a".to_string(), Step::NotTouched),
            ]
        );
        let mut t = touched.into_inner().unwrap_or_default();
        t.sort();
        assert_eq!(t, s(&["b", "c"]));
    }
}
