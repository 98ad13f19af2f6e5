//! Packages, users and steps: what apply installs, creates or runs besides files and units.

use super::{Action, Inputs, Planned};
use std::collections::BTreeSet;

/// Packages the host does not have, in one action.
pub(super) fn packages(inp: &Inputs, out: &mut Planned) {
    let (build, observed) = (inp.build, inp.observed);
    let actions = &mut out.actions;
    let installed: BTreeSet<&str> = observed.packages.keys().map(String::as_str).collect();
    let missing: Vec<String> = build
        .packages
        .iter()
        .filter(|p| !installed.contains(p.split(':').next().unwrap_or(p)))
        .cloned()
        .collect();
    if !missing.is_empty() {
        actions.push(Action::InstallPackages { packages: missing });
    }
}

/// Users the host does not have.
pub(super) fn users(inp: &Inputs, out: &mut Planned) {
    let (build, observed) = (inp.build, inp.observed);
    let actions = &mut out.actions;
    for u in &build.users {
        if !observed.users.contains(&u.name) {
            actions.push(Action::CreateUser {
                name: u.name.clone(),
                system: u.system,
            });
            continue;
        }
        let has = observed.user_groups.get(&u.name);
        let missing: Vec<String> = u
            .groups
            .iter()
            .filter(|g| !has.is_some_and(|h| h.contains(*g)))
            .cloned()
            .collect();
        if !missing.is_empty() {
            actions.push(Action::AddUserGroups {
                name: u.name.clone(),
                groups: missing,
            });
        }
    }
}

/// Steps: a guarded one runs when its guard says so (or its own files change),
/// an unguarded one when its command differs from the one the current generation ran.
pub(super) fn steps(inp: &Inputs, out: &mut Planned) {
    let (build, observed, manifest) = (inp.build, inp.observed, inp.manifest);
    let actions = &mut out.actions;
    let changed = &out.changed;
    for s in &build.steps {
        if s.unless.is_some() {
            // The probe ran the guard: 0 means nothing to do, unless a file of the
            // same instance changes (the step's script may do more now).
            let own_files_change = changed
                .iter()
                .any(|p| build.files.get(p).is_some_and(|f| f.origin == s.origin));
            if observed.guards.get(&s.name) == Some(&0) && !own_files_change {
                continue;
            }
            actions.push(Action::RunStep {
                name: s.name.clone(),
                guarded: true,
                origin: s.origin.clone(),
            });
            continue;
        }
        let done = manifest
            .and_then(|m| m.steps.get(&s.name))
            .is_some_and(|h| *h == s.run_sha256());
        if !done {
            actions.push(Action::RunStep {
                name: s.name.clone(),
                guarded: false,
                origin: s.origin.clone(),
            });
        }
    }
}
