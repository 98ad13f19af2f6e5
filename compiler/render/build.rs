//! The build: per host, exactly what that host must have. Deterministic (BTreeMap,
//! sorted vectors), serialisable as the JSON manifest written next to the files.

use crate::encode::Mode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Build {
    /// Keyed by host name.
    pub hosts: BTreeMap<String, HostBuild>,
    /// The files of every release, by sha256 (not written with the build: the
    /// repository holds them).
    #[serde(skip)]
    pub blobs: BTreeMap<String, std::sync::Arc<Vec<u8>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostBuild {
    pub host: String,
    pub address: String,
    /// Debian package names, sorted.
    pub packages: Vec<String>,
    pub users: Vec<UserOut>,
    pub directories: Vec<DirOut>,
    /// Keyed by absolute path.
    pub files: BTreeMap<String, FileOut>,
    /// Units in graph order (dependencies first).
    pub units: Vec<UnitOut>,
    /// One-shot steps in graph order.
    pub steps: Vec<StepOut>,
    /// Failover groups this host is a member of, with its role at build time.
    pub roles: Vec<RoleOut>,
    /// Applications installed from the repository, by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<ReleaseOut>,
}

/// `release "/srv/app" { source = "app" ... }` on this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseOut {
    /// The application's directory: `releases/`, `shared/`, `current`.
    pub path: String,
    /// The release id (see [`crate::release::Tree::hash`]).
    pub hash: String,
    /// Where its files come from, relative to the repository.
    pub source: String,
    /// Directories of `PATH/shared/` linked into every release.
    pub shared: Vec<String>,
    /// Releases kept on the host (besides those kept generations use).
    pub keep: u32,
    /// Owner and group of the shared directories (release files are root's).
    pub owner: String,
    pub group: String,
    /// Units reloaded when `current` moves.
    pub reload: Vec<String>,
    /// Run in the new release as `owner` once it is assembled (`""`: none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub before_switch: String,
    /// Run once per release, on the member rolled last, before its switch.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub migrate: String,
    pub files: BTreeMap<String, crate::release::ReleaseFile>,
    pub origin: String,
}

impl ReleaseOut {
    /// What the plan marks changed when `current` moves (units' `reload_on`).
    pub fn current(&self) -> String {
        format!("{}/current", self.path)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserOut {
    pub name: String,
    pub home: Option<String>,
    pub system: bool,
    /// Login shell; None: the default (/usr/sbin/nologin for system users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Supplementary groups, sorted (declarations of one user merge theirs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirOut {
    pub path: String,
    /// Written "0755".
    pub mode: Mode,
    pub owner: String,
    pub group: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileOut {
    /// Written "0644"; "0600" whenever `secret` is true.
    pub mode: Mode,
    pub owner: String,
    pub group: String,
    /// Content with secrets as placeholders (see [`crate::placeholder::Placeholder`]).
    pub content: String,
    /// True if the content holds at least one secret placeholder.
    pub secret: bool,
    /// sha256 of `content` (placeholders, not values), hex.
    pub sha256: String,
    /// `kind.name` of the instance that produced it.
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitOut {
    pub name: String,
    pub enable: bool,
    pub start: bool,
    /// Files whose change requires restarting this unit (its own file, drop-ins,
    /// and files of the same instance).
    pub restart_on: Vec<String>,
    /// Files whose change only needs `systemctl reload` (keepalived.conf: a restart
    /// would give up the virtual IP). Never also in `restart_on`.
    #[serde(default)]
    pub reload_on: Vec<String>,
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOut {
    pub name: String,
    pub run: String,
    pub unless: Option<String>,
    pub origin: String,
}

impl StepOut {
    /// What a generation's manifest records of the step: sha256 of its `run`.
    pub fn run_sha256(&self) -> String {
        crate::encode::sha256_hex(self.run.as_bytes())
    }
}

/// A member's place in its group's preference order, written "primary" (the
/// first member, the usual VIP holder) or "standby".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Primary,
    Standby,
}

impl PartialEq<&str> for MemberRole {
    fn eq(&self, other: &&str) -> bool {
        matches!(
            (self, *other),
            (MemberRole::Primary, "primary") | (MemberRole::Standby, "standby")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleOut {
    pub group: String,
    pub role: MemberRole,
    pub priority: u8,
    pub vip: String,
    pub interface: String,
    /// Order in which hosts of this group are applied (standbys first).
    pub apply_order: Vec<String>,
}
