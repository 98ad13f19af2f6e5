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

mod files;
mod system;
mod text;
pub use text::human_bytes;
mod units;

use crate::encode::Mode;
use crate::probe::{Manifest, Observed};
use crate::render::HostBuild;
use serde::{Deserialize, Serialize};
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
    /// An existing user lacks supplementary groups the build gives it.
    AddUserGroups {
        name: String,
        groups: Vec<String>,
    },
    CreateDirectory {
        path: String,
        mode: Mode,
        owner: String,
        group: String,
    },
    FixDirectory {
        path: String,
        changes: Vec<String>,
    },
    CreateFile {
        path: String,
        mode: Mode,
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
    /// Switch an application's `current` to the build's release, assembling it
    /// first unless the host has it (from the current release and the files it
    /// lacks: `added` and `changed` travel, the rest is linked).
    Release {
        path: String,
        from: Option<String>,
        to: String,
        /// The host has the build's release already (a rollback, an undo).
        present: bool,
        /// The new release is assembled from the current one (whose file list
        /// the host has): only differences travel, the file list included.
        #[serde(default)]
        incremental: bool,
        /// The release's `migrate` hook runs here, before the switch (set by
        /// apply on the member rolled last).
        #[serde(default)]
        migrate: bool,
        added: Vec<String>,
        changed: Vec<String>,
        removed: Vec<String>,
        /// Bytes of the files that travel.
        bytes: u64,
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
    #[serde(default)]
    pub releases: usize,
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
                Action::CreateUser { .. } | Action::AddUserGroups { .. } => s.users += 1,
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
                Action::Release { .. } => s.releases += 1,
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
        self.releases += o.releases;
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
        push(self.releases, plural(self.releases, "release", "releases"));
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
    /// Secrets whose value changes (the same files, a new value): what they go
    /// into and the steps that apply them. Never a value.
    #[serde(default)]
    pub rotations: Vec<Rotation>,
    pub summary: Summary,
}

/// A secret given a new value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    pub secret: String,
    /// The files written with the new value.
    pub files: Vec<String>,
    /// The steps of the same instances that run (e.g. the one setting a
    /// database role's password).
    pub steps: Vec<String>,
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

/// The plan for one host with [`PlanOptions`]: one section after another, in the order
/// apply runs them (see the module docs).
pub fn plan_with(build: &HostBuild, observed: &Observed, options: &PlanOptions) -> HostPlan {
    let inp = Inputs::new(build, observed, options);
    let mut out = Planned::default();
    if let Some(e) = &observed.manifest_error {
        out.warnings.push(format!(
            "the current generation's manifest cannot be read ({e}): no file will be pruned"
        ));
    }
    system::packages(&inp, &mut out);
    system::users(&inp, &mut out);
    files::directories(&inp, &mut out);
    files::files(&inp, &mut out);
    files::prune(&inp, &mut out);
    files::releases(&inp, &mut out);
    units::daemon_reload(&mut out);
    units::units(&inp, &mut out);
    units::removed_units(&inp, &mut out);
    system::steps(&inp, &mut out);
    let rotations = rotations(&inp, &out.actions);
    let summary = Summary::count(&out.actions, out.drift);
    HostPlan {
        host: build.host.clone(),
        generation: observed.generation,
        actions: out.actions,
        conflicts: out.conflicts,
        warnings: out.warnings,
        rotations,
        summary,
    }
}

/// The secrets whose value changes: every file holding one is rewritten from
/// the same template (so only a value differs), none is left as it was.
fn rotations(inp: &Inputs, actions: &[Action]) -> Vec<Rotation> {
    use crate::placeholder::Placeholder;
    let mut touched: BTreeSet<&str> = BTreeSet::new();
    let mut rotated: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in actions {
        match a {
            Action::CreateFile { path, .. } => {
                touched.insert(path);
            }
            Action::UpdateFile {
                path,
                changes,
                secret: true,
                ..
            } => {
                touched.insert(path);
                let Some(f) = inp.build.files.get(path) else {
                    continue;
                };
                let same_template = inp
                    .manifest
                    .and_then(|m| m.files.get(path))
                    .is_some_and(|m| m.sha256 == f.sha256);
                if same_template && changes.iter().any(|c| c == "content") {
                    for name in Placeholder::names(&f.content) {
                        rotated.entry(name).or_default().push(path.clone());
                    }
                }
            }
            _ => {}
        }
    }
    if rotated.is_empty() {
        return Vec::new();
    }
    // The secrets of the files left as they are: their values did not change.
    let unchanged: BTreeSet<String> = inp
        .build
        .files
        .iter()
        .filter(|(p, _)| !touched.contains(p.as_str()))
        .flat_map(|(_, f)| Placeholder::names(&f.content))
        .collect();
    rotated
        .into_iter()
        .filter(|(name, _)| !unchanged.contains(name))
        .map(|(secret, files)| {
            let origins: BTreeSet<&str> = files
                .iter()
                .filter_map(|p| inp.build.files.get(p).map(|f| f.origin.as_str()))
                .collect();
            let steps = actions
                .iter()
                .filter_map(|a| match a {
                    Action::RunStep { name, origin, .. } if origins.contains(origin.as_str()) => {
                        Some(name.clone())
                    }
                    _ => None,
                })
                .collect();
            Rotation {
                secret,
                files,
                steps,
            }
        })
        .collect()
}

/// What every section of [`plan_with`] reads.
struct Inputs<'a> {
    build: &'a HostBuild,
    observed: &'a Observed,
    options: &'a PlanOptions,
    /// The current generation's manifest, if it could be read.
    manifest: Option<&'a Manifest>,
    /// The current generation's number for messages ("?" when unknown).
    gen_label: String,
}

impl<'a> Inputs<'a> {
    fn new(build: &'a HostBuild, observed: &'a Observed, options: &'a PlanOptions) -> Self {
        let manifest = observed.manifest.as_ref();
        let gen_label = observed
            .generation
            .or(manifest.map(|m| m.generation))
            .map(|g| g.to_string())
            .unwrap_or_else(|| "?".into());
        Inputs {
            build,
            observed,
            options,
            manifest,
            gen_label,
        }
    }
}

/// What the sections of [`plan_with`] add to, in order.
#[derive(Default)]
struct Planned {
    actions: Vec<Action>,
    conflicts: Vec<String>,
    warnings: Vec<String>,
    /// Managed files changed on the host since the current generation.
    drift: usize,
    /// Paths whose content or metadata this plan changes (for restarts and reloads).
    changed: BTreeSet<String>,
}
