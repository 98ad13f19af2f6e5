//! Stage 7: build + observed state -> ordered actions. Entry point: [`plan`].
//!
//! Pure and deterministic. Order of actions on a host: packages, users,
//! directories, files (create, update, delete), daemon-reload, units (enable,
//! start, restart), units removed from the configuration (stop, disable), steps.
//!
//! Invariants:
//! - Only files the previous generation's manifest lists are ever deleted.
//! - Secret files never show content ("(secret content changed)"); placeholders
//!   are never replaced by values here (plan does not know them).
//! - Drift: a managed file whose hash on the host differs from the hash the
//!   current generation installed ("drift: edited on host since generation N").

mod text;

use crate::probe::{Content, Observed, PathState};
use crate::render::HostBuild;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Extra inputs to [`plan_with`].
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// For secret files: sha256 of the content with secret values substituted, as
    /// apply would write it. Lets the plan see a changed secret value. Without
    /// it, a secret file counts as unchanged when the build's template hash and
    /// the host's hash both match what the current generation installed.
    pub secret_sha256: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    InstallPackages {
        packages: Vec<String>,
    },
    CreateUser {
        name: String,
        system: bool,
    },
    CreateDirectory {
        path: String,
        mode: String,
        owner: String,
        group: String,
    },
    FixDirectory {
        path: String,
        changes: Vec<String>,
    },
    CreateFile {
        path: String,
        mode: String,
        owner: String,
        group: String,
        secret: bool,
        /// Unified diff from nothing; None for secret files.
        diff: Option<String>,
        drift: Option<String>,
    },
    UpdateFile {
        path: String,
        /// "content", "mode 0644 -> 0600", "owner a -> b", "group a -> b".
        changes: Vec<String>,
        secret: bool,
        diff: Option<String>,
        /// Why there is no diff: "(secret content changed)", ...
        note: Option<String>,
        drift: Option<String>,
    },
    DeleteFile {
        path: String,
        drift: Option<String>,
    },
    DaemonReload,
    EnableUnit {
        unit: String,
    },
    StartUnit {
        unit: String,
    },
    RestartUnit {
        unit: String,
        /// The changed files of its `restart_on`.
        because: Vec<String>,
    },
    /// `systemctl reload` (a changed file of its `reload_on`, e.g. keepalived.conf:
    /// a restart would give up the virtual IP).
    ReloadUnit {
        unit: String,
        because: Vec<String>,
    },
    StopUnit {
        unit: String,
    },
    DisableUnit {
        unit: String,
    },
    RunStep {
        name: String,
        /// True when the step's `unless` guard decides on the host at apply time.
        guarded: bool,
        origin: String,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub packages: usize,
    pub users: usize,
    pub directories: usize,
    pub daemon_reload: usize,
    pub enable: usize,
    pub start: usize,
    pub restart: usize,
    #[serde(default)]
    pub reload: usize,
    pub stop: usize,
    pub disable: usize,
    pub steps: usize,
    pub drift: usize,
}

impl Summary {
    fn count(actions: &[Action], drift: usize) -> Summary {
        let mut s = Summary {
            drift,
            ..Summary::default()
        };
        for a in actions {
            match a {
                Action::InstallPackages { packages } => s.packages += packages.len(),
                Action::CreateUser { .. } => s.users += 1,
                Action::CreateDirectory { .. } | Action::FixDirectory { .. } => s.directories += 1,
                Action::CreateFile { .. } => s.create += 1,
                Action::UpdateFile { .. } => s.update += 1,
                Action::DeleteFile { .. } => s.delete += 1,
                Action::DaemonReload => s.daemon_reload += 1,
                Action::EnableUnit { .. } => s.enable += 1,
                Action::StartUnit { .. } => s.start += 1,
                Action::RestartUnit { .. } => s.restart += 1,
                Action::ReloadUnit { .. } => s.reload += 1,
                Action::StopUnit { .. } => s.stop += 1,
                Action::DisableUnit { .. } => s.disable += 1,
                Action::RunStep { .. } => s.steps += 1,
            }
        }
        s
    }

    fn add(&mut self, o: &Summary) {
        self.create += o.create;
        self.update += o.update;
        self.delete += o.delete;
        self.packages += o.packages;
        self.users += o.users;
        self.directories += o.directories;
        self.daemon_reload += o.daemon_reload;
        self.enable += o.enable;
        self.start += o.start;
        self.restart += o.restart;
        self.reload += o.reload;
        self.stop += o.stop;
        self.disable += o.disable;
        self.steps += o.steps;
        self.drift += o.drift;
    }

    /// "3 to create, 1 to update, 1 restart", or "no changes".
    pub fn describe(&self) -> String {
        fn plural(n: usize, one: &str, many: &str) -> String {
            format!("{n} {}", if n == 1 { one } else { many })
        }
        let mut parts = Vec::new();
        let mut push = |n: usize, s: String| {
            if n > 0 {
                parts.push(s)
            }
        };
        push(self.create, format!("{} to create", self.create));
        push(self.update, format!("{} to update", self.update));
        push(self.delete, format!("{} to delete", self.delete));
        push(self.packages, plural(self.packages, "package", "packages"));
        push(self.users, plural(self.users, "user", "users"));
        push(
            self.directories,
            plural(self.directories, "directory", "directories"),
        );
        push(self.enable, format!("{} to enable", self.enable));
        push(self.start, format!("{} to start", self.start));
        push(self.restart, plural(self.restart, "restart", "restarts"));
        push(self.reload, plural(self.reload, "reload", "reloads"));
        push(self.stop, format!("{} to stop", self.stop));
        push(self.disable, format!("{} to disable", self.disable));
        push(self.steps, plural(self.steps, "step", "steps"));
        let mut out = if parts.is_empty() {
            "no changes".to_string()
        } else {
            parts.join(", ")
        };
        if self.drift > 0 {
            let _ = write!(out, " ({} drifted)", self.drift);
        }
        out
    }

    pub fn has_changes(&self) -> bool {
        let mut s = *self;
        s.drift = 0;
        s != Summary::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostPlan {
    pub host: String,
    /// The generation now current on the host, if any.
    pub generation: Option<u64>,
    pub actions: Vec<Action>,
    /// Problems apply refuses to resolve by itself (a directory where a file
    /// should be, ...). Non-empty: apply stops for this host.
    pub conflicts: Vec<String>,
    pub warnings: Vec<String>,
    pub summary: Summary,
}

impl HostPlan {
    pub fn has_changes(&self) -> bool {
        !self.actions.is_empty()
    }
    /// "alpha: 3 to create, 1 to update, 1 restart".
    pub fn summary_line(&self) -> String {
        format!("{}: {}", self.host, self.summary.describe())
    }
}

/// The plan for every host, in host order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub hosts: Vec<HostPlan>,
    pub summary: Summary,
}

impl Plan {
    pub fn new(hosts: Vec<HostPlan>) -> Plan {
        let mut summary = Summary::default();
        for h in &hosts {
            summary.add(&h.summary);
        }
        Plan { hosts, summary }
    }
    pub fn has_changes(&self) -> bool {
        self.hosts.iter().any(HostPlan::has_changes)
    }
    /// Exit code for `--detailed-exitcode`: 0 no changes, 2 changes.
    pub fn detailed_exit_code(&self) -> i32 {
        if self.has_changes() {
            2
        } else {
            0
        }
    }
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// "644", "0644", "00644" -> "0644"; anything else unchanged.
fn norm_mode(m: &str) -> String {
    match u32::from_str_radix(m.trim(), 8) {
        Ok(v) if v <= 0o7777 => format!("{v:04o}"),
        _ => m.to_string(),
    }
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const PLACEHOLDER: &str = "@@INFRA_SECRET(";

fn unified(path: &str, old: &str, new: &str, old_label: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} ({old_label})"), &format!("{path} (new)"))
        .to_string()
}

/// True for paths whose change needs `systemctl daemon-reload`.
pub fn is_unit_file(path: &str) -> bool {
    const DIRS: [&str; 4] = [
        "/etc/systemd/system/",
        "/run/systemd/system/",
        "/lib/systemd/system/",
        "/usr/lib/systemd/system/",
    ];
    DIRS.iter().any(|d| path.starts_with(d))
}

/// The plan for one host.
pub fn plan(build: &HostBuild, observed: &Observed) -> HostPlan {
    plan_with(build, observed, &PlanOptions::default())
}

pub fn plan_with(build: &HostBuild, observed: &Observed, options: &PlanOptions) -> HostPlan {
    let mut actions = Vec::new();
    let mut conflicts = Vec::new();
    let mut warnings = Vec::new();
    let mut drift = 0;
    let generation = observed.generation;
    let manifest = observed.manifest.as_ref();
    let gen_label = generation
        .or(manifest.map(|m| m.generation))
        .map(|g| g.to_string())
        .unwrap_or_else(|| "?".into());

    if let Some(e) = &observed.manifest_error {
        warnings.push(format!(
            "the current generation's manifest cannot be read ({e}): no file will be pruned"
        ));
    }

    // Packages.
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

    // Users.
    for u in &build.users {
        if !observed.users.contains(&u.name) {
            actions.push(Action::CreateUser {
                name: u.name.clone(),
                system: u.system,
            });
        }
    }

    // Directories.
    for d in &build.directories {
        match observed.paths.get(&d.path) {
            None | Some(PathState::Absent) => actions.push(Action::CreateDirectory {
                path: d.path.clone(),
                mode: norm_mode(&d.mode),
                owner: d.owner.clone(),
                group: d.group.clone(),
            }),
            Some(PathState::Directory { mode, owner, group }) => {
                let changes = meta_changes(&d.mode, &d.owner, &d.group, mode, owner, group);
                if !changes.is_empty() {
                    actions.push(Action::FixDirectory {
                        path: d.path.clone(),
                        changes,
                    });
                }
            }
            Some(other) => conflicts.push(format!(
                "{} is a {} on the host where the configuration wants a directory: move it away by hand",
                d.path,
                other.kind()
            )),
        }
    }

    // Files.
    let mut changed: BTreeSet<String> = BTreeSet::new();
    for (path, f) in &build.files {
        let secret = f.secret || f.content.contains(PLACEHOLDER);
        let recorded = manifest.and_then(|m| m.files.get(path));
        match observed.paths.get(path).unwrap_or(&PathState::Absent) {
            PathState::Absent => {
                let drift_note = recorded.map(|_| {
                    drift += 1;
                    format!("drift: deleted on host since generation {gen_label}")
                });
                actions.push(Action::CreateFile {
                    path: path.clone(),
                    mode: norm_mode(&f.mode),
                    owner: f.owner.clone(),
                    group: f.group.clone(),
                    secret,
                    diff: (!secret).then(|| unified(path, "", &f.content, "absent")),
                    drift: drift_note,
                });
                changed.insert(path.clone());
            }
            PathState::File {
                mode,
                owner,
                group,
                sha256,
                content,
                ..
            } => {
                let drift_note = match recorded {
                    Some(m) if sha256.as_deref() != Some(m.installed_sha256.as_str()) => {
                        drift += 1;
                        Some(format!(
                            "drift: edited on host since generation {gen_label}"
                        ))
                    }
                    _ => None,
                };
                let content_changed = if !secret {
                    sha256.as_deref() != Some(f.sha256.as_str())
                } else if let Some(want) = options.secret_sha256.get(path) {
                    sha256.as_deref() != Some(want.as_str())
                } else {
                    match recorded {
                        Some(m) => {
                            !(m.sha256 == f.sha256
                                && sha256.as_deref() == Some(m.installed_sha256.as_str()))
                        }
                        None => true,
                    }
                };
                let mut changes = Vec::new();
                if content_changed {
                    changes.push("content".to_string());
                }
                changes.extend(meta_changes(&f.mode, &f.owner, &f.group, mode, owner, group));
                if changes.is_empty() {
                    if let Some(d) = drift_note {
                        warnings.push(format!(
                            "{path}: {d}, but it already matches the configuration"
                        ));
                    }
                    continue;
                }
                let (diff, note) = if !content_changed {
                    (None, None)
                } else if secret {
                    (None, Some("(secret content changed)".to_string()))
                } else {
                    match content {
                        Some(Content::Text { text }) => {
                            (Some(unified(path, text, &f.content, "on host")), None)
                        }
                        Some(Content::Binary) => (
                            None,
                            Some("(the file on the host is binary; content replaced)".into()),
                        ),
                        Some(Content::TooLarge) => (
                            None,
                            Some("(the file on the host is too large to show; content replaced)".into()),
                        ),
                        None => (None, Some("(content changed)".into())),
                    }
                };
                actions.push(Action::UpdateFile {
                    path: path.clone(),
                    changes,
                    secret,
                    diff,
                    note,
                    drift: drift_note,
                });
                changed.insert(path.clone());
            }
            // A symlink (Debian's /etc/nginx/sites-enabled/default, ...) is replaced
            // by the file, atomically; apply keeps the link to restore it later.
            PathState::Symlink { .. } => {
                let drift_note = recorded.map(|_| {
                    drift += 1;
                    format!("drift: replaced by a symlink on host since generation {gen_label}")
                });
                actions.push(Action::UpdateFile {
                    path: path.clone(),
                    changes: vec!["symlink -> file".to_string()],
                    secret,
                    diff: (!secret).then(|| unified(path, "", &f.content, "symlink")),
                    note: None,
                    drift: drift_note,
                });
                changed.insert(path.clone());
            }
            other => conflicts.push(format!(
                "{path} is a {} on the host where the configuration wants a file: move it away by hand",
                other.kind()
            )),
        }
    }

    // Prune what the current generation installed and this build no longer has.
    if let Some(m) = manifest {
        let dirs: BTreeSet<&str> = build.directories.iter().map(|d| d.path.as_str()).collect();
        for (path, mf) in &m.files {
            if build.files.contains_key(path) || dirs.contains(path.as_str()) {
                continue;
            }
            match observed.paths.get(path).unwrap_or(&PathState::Absent) {
                PathState::Absent => {}
                PathState::File { sha256, .. } => {
                    let drift_note = (sha256.as_deref() != Some(mf.installed_sha256.as_str()))
                        .then(|| {
                            drift += 1;
                            format!("drift: edited on host since generation {gen_label}")
                        });
                    actions.push(Action::DeleteFile {
                        path: path.clone(),
                        drift: drift_note,
                    });
                    changed.insert(path.clone());
                }
                other => warnings.push(format!(
                    "{path} was installed by generation {gen_label} but is now a {}: left alone",
                    other.kind()
                )),
            }
        }
    }

    if changed.iter().any(|p| is_unit_file(p)) {
        actions.push(Action::DaemonReload);
    }

    // Units.
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
        } else if u.start && st.is_active() {
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

    // Steps.
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
            .is_some_and(|h| *h == sha256_hex(&s.run));
        if !done {
            actions.push(Action::RunStep {
                name: s.name.clone(),
                guarded: false,
                origin: s.origin.clone(),
            });
        }
    }

    let summary = Summary::count(&actions, drift);
    HostPlan {
        host: build.host.clone(),
        generation,
        actions,
        conflicts,
        warnings,
        summary,
    }
}

fn meta_changes(
    want_mode: &str,
    want_owner: &str,
    want_group: &str,
    mode: &str,
    owner: &str,
    group: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let (want_mode, mode) = (norm_mode(want_mode), norm_mode(mode));
    if want_mode != mode {
        out.push(format!("mode {mode} -> {want_mode}"));
    }
    if want_owner != owner {
        out.push(format!("owner {owner} -> {want_owner}"));
    }
    if want_group != group {
        out.push(format!("group {group} -> {want_group}"));
    }
    out
}
