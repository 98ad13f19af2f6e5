//! Units: daemon-reload after unit files change, enable/start/restart/reload what
//! the build wants, stop/disable what the current generation had and the build dropped.

use super::{is_unit_file, Action, Inputs, Planned};
use std::collections::BTreeSet;

/// `systemctl daemon-reload` when a unit file changes.
pub(super) fn daemon_reload(out: &mut Planned) {
    if out.changed.iter().any(|p| is_unit_file(p)) {
        out.actions.push(Action::DaemonReload);
    }
}

/// The units of the build: enable, start, restart or reload.
pub(super) fn units(inp: &Inputs, out: &mut Planned) {
    let (build, observed, manifest) = (inp.build, inp.observed, inp.manifest);
    let actions = &mut out.actions;
    let warnings = &mut out.warnings;
    let changed = &out.changed;
    if !observed.systemd
        && (!build.units.is_empty() || manifest.is_some_and(|m| !m.units.is_empty()))
    {
        warnings.push(
            "systemd is not running on the host: unit states are unknown, every unit is planned as stopped"
                .into(),
        );
    }
    let unknown = crate::probe::UnitState::default();
    for u in &build.units {
        let st = observed.units.get(&u.name).unwrap_or(&unknown);
        if u.enable && !st.is_enabled() {
            actions.push(Action::EnableUnit {
                unit: u.name.clone(),
            });
        }
        let changed_of = |list: &[String]| -> Vec<String> {
            list.iter()
                .filter(|p| changed.contains(*p))
                .cloned()
                .collect()
        };
        // A unit the current generation already started that is now inactive
        // without having failed got there by systemd's rules (a `Condition...=`
        // that does not hold, e.g. an active-only unit on a standby; its
        // `PartOf=` target stopped; a one-shot that finished): left as it is,
        // unless its own files change.
        let started_before =
            manifest.is_some_and(|m| m.units.iter().any(|mu| mu.name == u.name && mu.start));
        let settled = st.skipped_by_condition()
            || (started_before && st.exists() && st.active_state == "inactive");
        let skipped = settled && changed_of(&u.restart_on).is_empty();
        if u.start && !st.is_active() && !skipped {
            actions.push(Action::StartUnit {
                unit: u.name.clone(),
            });
        } else if st.is_active() {
            // Running, whoever started it (a distribution's service that was up
            // before infra managed its configuration, or one a step starts):
            // what changed under it takes effect now.
            let because = changed_of(&u.restart_on);
            let reload = changed_of(&u.reload_on);
            if !because.is_empty() {
                actions.push(Action::RestartUnit {
                    unit: u.name.clone(),
                    because,
                });
            } else if !reload.is_empty() {
                actions.push(Action::ReloadUnit {
                    unit: u.name.clone(),
                    because: reload,
                });
            }
        }
    }
}

/// Units the current generation had and this build does not: stop and disable
/// (or restart, for a unit infra did not install).
pub(super) fn removed_units(inp: &Inputs, out: &mut Planned) {
    let (build, observed, manifest) = (inp.build, inp.observed, inp.manifest);
    let actions = &mut out.actions;
    let changed = &out.changed;
    if let Some(m) = manifest {
        let wanted: BTreeSet<&str> = build.units.iter().map(|u| u.name.as_str()).collect();
        for mu in &m.units {
            if wanted.contains(mu.name.as_str()) {
                continue;
            }
            let st = observed.units.get(&mu.name);
            let known = observed.systemd && st.is_some();
            // A unit infra did not install (a distribution's nginx.service it only
            // had drop-ins or files for) is not stopped: it is restarted if it runs
            // and its files changed, so that it drops infra's configuration.
            let owned = m
                .files
                .contains_key(&format!("/etc/systemd/system/{}", mu.name));
            if !owned {
                let because: Vec<String> = mu
                    .restart_on
                    .iter()
                    .filter(|p| changed.contains(*p))
                    .cloned()
                    .collect();
                if !because.is_empty() && st.is_some_and(|s| s.is_active()) {
                    actions.push(Action::RestartUnit {
                        unit: mu.name.clone(),
                        because,
                    });
                }
                continue;
            }
            if !known || st.is_some_and(|s| s.is_active()) {
                actions.push(Action::StopUnit {
                    unit: mu.name.clone(),
                });
            }
            if !known || st.is_some_and(|s| s.is_enabled() && s.unit_file_state != "static") {
                actions.push(Action::DisableUnit {
                    unit: mu.name.clone(),
                });
            }
        }
    }
}
