//! Stage 6: read a host's observed state over SSH in ONE remote command.
//! Entry point: [`probe`].
//!
//! The remote side is a POSIX sh script (no other interpreter) built by
//! [`probe_script`]; it answers with NUL-terminated, tab-separated tagged records
//! (one definition: [`protocol::Tag`]; listed in docs/plan-apply.md) that
//! [`parse_probe_output`] turns into an [`Observed`] value. The lock's facts are
//! read by [`lock::LOCK_FACTS`] and classified by [`LockFacts::state`].
//!
//! Paths are the last field, so they may hold tabs and spaces; managed paths must
//! be absolute and hold no newline or NUL (checked before anything is sent).

pub mod lock;
mod parse;
pub mod protocol;
mod script;

pub use lock::{LockFacts, LockState, Phase};
pub use parse::parse_probe_output;
pub use protocol::fingerprint_pipe;
pub use script::{probe_script, probe_script_with};

use crate::render::HostBuild;
use crate::transport::{Remote, TransportError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Where infra keeps its state on a host.
pub const STATE_DIR: &str = "/var/lib/infra";

/// Largest file content the probe brings back for a diff (bytes).
pub const CONTENT_LIMIT: u64 = 1024 * 1024;

/// The manifest of one generation, written by apply as
/// `STATE_DIR/generations/N/manifest.json`, next to `paths` (managed file paths,
/// one per line) and `units` (managed unit names, one per line) that the probe
/// script reads without a JSON parser.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub host: String,
    pub generation: u64,
    /// Keyed by absolute path.
    pub files: BTreeMap<String, ManifestFile>,
    pub units: Vec<ManifestUnit>,
    pub packages: Vec<String>,
    /// Steps that have run: name -> sha256 of their `run` text.
    #[serde(default)]
    pub steps: BTreeMap<String, String>,
    /// Releases `current` points to: application path -> release hash.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub releases: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub mode: crate::encode::Mode,
    pub owner: String,
    pub group: String,
    /// sha256 of the build content (secrets as placeholders).
    pub sha256: String,
    /// sha256 of the bytes written on the host (secrets substituted).
    pub installed_sha256: String,
    pub secret: bool,
    pub origin: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestUnit {
    pub name: String,
    pub enable: bool,
    pub start: bool,
    /// Files whose change restarts the unit (for rollback between generations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_on: Vec<String>,
    /// Files whose change reloads the unit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reload_on: Vec<String>,
}

/// An application's releases on a host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedRelease {
    /// The build's release is there (`releases/HASH/`).
    pub present: bool,
    /// The release `current` points to.
    pub current: Option<String>,
    /// The current release's files (relative path -> sha256, mode), when the
    /// build's release is not there; `None` when unknown.
    pub current_files: Option<BTreeMap<String, (String, crate::encode::Mode)>>,
}

/// Everything the probe saw on one host. Plain data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub host: String,
    pub hostname: String,
    pub machine_id: String,
    /// Every path asked about: the build's files and directories, and the files
    /// of the current generation's manifest.
    pub paths: BTreeMap<String, PathState>,
    /// False when systemd is not running there; `units` is then empty.
    pub systemd: bool,
    pub units: BTreeMap<String, UnitState>,
    /// Installed packages among those asked about: name -> version.
    pub packages: BTreeMap<String, String>,
    /// Users (among those the build declares) that exist.
    pub users: BTreeSet<String>,
    /// Their groups (primary and supplementary).
    #[serde(default)]
    pub user_groups: BTreeMap<String, BTreeSet<String>>,
    /// Current generation number, if any.
    pub generation: Option<u64>,
    pub manifest: Option<Manifest>,
    /// Set when a manifest exists but cannot be read.
    pub manifest_error: Option<String>,
    /// The host lock (`STATE_DIR/lock/`), if it is held.
    pub lock: Option<LockFacts>,
    /// The kernel's boot id.
    #[serde(default)]
    pub boot_id: String,
    /// What recoveries of interrupted switches did since the last confirmed one,
    /// oldest first ("the switch to generation 7 ... was undone at boot").
    #[serde(default)]
    pub recovered: Vec<String>,
    /// Highest generation number present under `generations/` (apply makes the next).
    #[serde(default)]
    pub latest_generation: Option<u64>,
    /// IPv4 addresses on the host's interfaces, `addr/prefix` (who holds a VIP).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Exit status of each guarded step's `unless` command (0: nothing to do).
    #[serde(default)]
    pub guards: BTreeMap<String, i32>,
    /// The build's releases as the host has them, by application path.
    #[serde(default)]
    pub releases: BTreeMap<String, ObservedRelease>,
    /// sha256 of the records the plan's file actions depend on (G, N, A, S, H, in
    /// order); apply recomputes it on the host and refuses when it differs.
    #[serde(default)]
    pub fingerprint: String,
    /// The answer to `infra status`'s questions, when the probe asked them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PathState {
    Absent,
    File {
        mode: String,
        owner: String,
        group: String,
        size: u64,
        /// None if the file could not be read.
        sha256: Option<String>,
        /// Brought back only for non-secret build files that differ.
        content: Option<Content>,
    },
    Directory {
        mode: String,
        owner: String,
        group: String,
    },
    Symlink {
        owner: String,
        group: String,
    },
    Other {
        mode: String,
        owner: String,
        group: String,
    },
}

impl PathState {
    pub fn kind(&self) -> &'static str {
        match self {
            PathState::Absent => "absent",
            PathState::File { .. } => "file",
            PathState::Directory { .. } => "directory",
            PathState::Symlink { .. } => "symlink",
            PathState::Other { .. } => "special file",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    Text { text: String },
    Binary,
    TooLarge,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitState {
    pub id: String,
    /// loaded, not-found, masked, ...
    pub load_state: String,
    /// active, inactive, failed, activating, ...
    pub active_state: String,
    pub sub_state: String,
    /// enabled, disabled, static, masked, ... (empty when not found)
    pub unit_file_state: String,
    /// "yes"/"no": whether the unit's conditions held at its last start.
    #[serde(default)]
    pub condition_result: String,
    /// When they were last checked (monotonic µs; "0" or empty: never).
    #[serde(default)]
    pub condition_timestamp: String,
}

impl UnitState {
    pub fn exists(&self) -> bool {
        self.load_state != "not-found" && !self.load_state.is_empty()
    }
    pub fn is_enabled(&self) -> bool {
        matches!(
            self.unit_file_state.as_str(),
            "enabled" | "enabled-runtime" | "alias" | "static" | "indirect" | "generated"
        )
    }
    pub fn is_active(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "reloading"
        )
    }
    /// Inactive because a `Condition...=` did not hold at its last start (e.g. an
    /// active-only unit on a standby): starting it again would change nothing.
    pub fn skipped_by_condition(&self) -> bool {
        !self.is_active()
            && self.active_state != "failed"
            && self.condition_result == "no"
            && !matches!(self.condition_timestamp.as_str(), "" | "0")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{host}: cannot manage path {path:?}: {why}")]
    BadPath {
        host: String,
        path: String,
        why: String,
    },
    #[error("{host}: the probe failed on the host (exit status {status}): {stderr}")]
    Remote {
        host: String,
        status: i32,
        stderr: String,
    },
    #[error("{host}: cannot read the probe's answer: {detail}")]
    Protocol { host: String, detail: String },
}

impl ProbeError {
    pub fn code(&self) -> &'static str {
        match self {
            ProbeError::Transport(e) => e.code(),
            ProbeError::BadPath { .. } => "E0711",
            ProbeError::Remote { .. } => "E0712",
            ProbeError::Protocol { .. } => "E0713",
        }
    }
    pub fn help(&self) -> String {
        match self {
            ProbeError::Transport(e) => e.help(),
            ProbeError::BadPath { .. } => {
                "managed paths must be absolute and hold no newline or NUL byte".into()
            }
            ProbeError::Remote { host, .. } => format!(
                "the probe needs a POSIX sh, GNU coreutils and findutils (stat, sha256sum, base64, xargs, find) on {host}; the stderr above says which command failed"
            ),
            ProbeError::Protocol { host, .. } => format!(
                "something on {host} printed into the probe's output (a login banner on stdout?) or the files changed while it ran: run it again"
            ),
        }
    }
    pub fn to_diag(&self) -> crate::diag::Diag {
        crate::diag::Diag::error(self.code(), self.to_string()).help(self.help())
    }
}

/// Every path the build manages (files and directories), in build order.
pub(crate) fn build_paths(build: &HostBuild) -> Vec<&str> {
    let mut out: Vec<&str> = build.files.keys().map(String::as_str).collect();
    out.extend(build.directories.iter().map(|d| d.path.as_str()));
    out
}

fn check_path(host: &str, path: &str) -> Result<(), ProbeError> {
    let why = if !path.starts_with('/') {
        "it is not absolute"
    } else if path.contains('\n') || path.contains('\0') {
        "it holds a newline or NUL byte"
    } else {
        return Ok(());
    };
    Err(ProbeError::BadPath {
        host: host.to_string(),
        path: path.to_string(),
        why: why.to_string(),
    })
}

fn check_word(host: &str, kind: &str, name: &str) -> Result<(), ProbeError> {
    if name.is_empty() || name.contains(['\n', '\0']) {
        return Err(ProbeError::BadPath {
            host: host.to_string(),
            path: name.to_string(),
            why: format!("a {kind} name must be non-empty and hold no newline or NUL byte"),
        });
    }
    Ok(())
}

/// Check what the probe will send. Public so apply can reuse it.
pub fn validate(build: &HostBuild) -> Result<(), ProbeError> {
    for p in build_paths(build) {
        check_path(&build.host, p)?;
    }
    for u in &build.units {
        check_word(&build.host, "unit", &u.name)?;
    }
    for p in &build.packages {
        check_word(&build.host, "package", p)?;
    }
    for u in &build.users {
        check_word(&build.host, "user", &u.name)?;
    }
    Ok(())
}

/// Probe a host: exactly one round trip on `remote`, infra's state under
/// `state_dir` ([`STATE_DIR`] on real hosts; tests use a temp dir). The only
/// probe entry point.
pub fn probe(
    remote: &mut dyn Remote,
    build: &HostBuild,
    state_dir: &str,
) -> Result<Observed, ProbeError> {
    probe_with(remote, build, state_dir, None)
}

/// [`probe`], asking `status` (a sh fragment) in the same round trip.
pub fn probe_with(
    remote: &mut dyn Remote,
    build: &HostBuild,
    state_dir: &str,
    status: Option<&str>,
) -> Result<Observed, ProbeError> {
    validate(build)?;
    check_path(&build.host, state_dir)?;
    let out = remote.run(&probe_script_with(build, state_dir, status), b"")?;
    if !out.success() {
        return Err(ProbeError::Remote {
            host: build.host.clone(),
            status: out.status,
            stderr: out.stderr_text(),
        });
    }
    parse_probe_output(build, &out.stdout)
}
