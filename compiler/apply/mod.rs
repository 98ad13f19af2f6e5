//! Stage 8: apply a plan to hosts. Entry points: [`prepare`] (probe → plan, the
//! state it was made from), [`switch`] (one round trip: a new generation and the
//! switch to it), [`confirm`] (a NEW connection: health, cancel the rollback
//! timer), [`order::roll`] (failover groups one host at a time, health-gated),
//! [`generations`] and [`rollback_build`] for `infra rollback`.
//!
//! State on a host (see docs/plan-apply.md): `/var/lib/infra/generations/N/`
//! holds `manifest.json`, `paths`, `units`, `date`, `previous` and `files/` (the
//! installed bytes, secrets substituted, 0600 root); `current -> N`; `lock/`
//! (mkdir is atomic) with `holder`, `token`, `undo.sh` while a switch is under
//! way or awaiting confirmation; `backup/` keeps the originals of files infra
//! took over, restored when it lets go of them.
//!
//! Invariants:
//! - A switch is refused unless the host still is exactly as probed (fingerprint
//!   recomputed on the host, in the same round trip, after taking the lock).
//! - Nothing live changes before packages, users and directories are in place;
//!   a failure after the first live change runs the undo script (previous
//!   generation's files, backups, units), so the host is always on a complete
//!   generation.
//! - A switch is final only when a new connection confirmed it; otherwise the
//!   rollback timer armed by the switch undoes it.
//! - Secret values exist only in the payload and on the host (0600 files); no
//!   message, plan or manifest holds them.

pub mod order;
pub mod script;
pub mod tar;

use crate::plan::{self, HostPlan, PlanOptions};
use crate::probe::{Manifest, ManifestFile, ManifestUnit, Observed, ProbeError};
use crate::render::{FileOut, HostBuild, UnitOut};
use crate::secrets::Secrets;
use crate::shell::base64_decode;
use crate::transport::{Remote, TransportError};
use script::{HealthCheck, SwitchSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

pub use crate::probe::STATE_DIR;

/// Manifest format written by this version.
pub const MANIFEST_FORMAT: u32 = 1;

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// Everything that can go wrong applying to a host. Every message starts with
/// the host; `help` says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("{host}: another apply holds the host lock ({holder})")]
    Locked { host: String, holder: String },
    #[error("{host} changed since the plan ({detail}): nothing was done")]
    Changed { host: String, detail: String },
    #[error("{host}: the plan has conflicts: {}", conflicts.join("; "))]
    Conflicts {
        host: String,
        conflicts: Vec<String>,
    },
    #[error("{host}: step `{step}` failed (exit status {status}); {}", undo.describe())]
    Step {
        host: String,
        step: String,
        status: i32,
        output: String,
        undo: Box<Undo>,
    },
    #[error("{host}: health check of failover group {group} failed after the switch (exit status {status}); {}", undo.describe())]
    Health {
        host: String,
        group: String,
        status: i32,
        output: String,
        undo: Box<Undo>,
    },
    #[error("{host}: cannot confirm the switch to generation {generation}: {detail}")]
    Unconfirmed {
        host: String,
        generation: u64,
        detail: String,
        deadline: u64,
    },
    #[error("{host}: the switch to generation {generation} was undone before it could be confirmed (the rollback timer fired?); the host is on generation {current}")]
    Undone {
        host: String,
        generation: u64,
        current: String,
    },
    #[error("{host}: cannot read the answer of the {what} script: {detail}")]
    Protocol {
        host: String,
        what: String,
        detail: String,
    },
    #[error("{host}: there is no generation {wanted} (generations: {available})")]
    NoGeneration {
        host: String,
        wanted: String,
        available: String,
    },
}

/// What happened to the switch after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// Failed before anything live changed.
    NothingSwitched { current: Option<u64> },
    /// Undone: back on `to` (None: the state before infra).
    RolledBack { to: Option<u64> },
    /// The undo script reported errors.
    UndoFailed {
        to: Option<u64>,
        status: i32,
        output: String,
    },
}

fn gen_name(g: Option<u64>) -> String {
    g.map(|g| format!("generation {g}"))
        .unwrap_or_else(|| "the state before infra (no generation)".into())
}

impl Undo {
    pub fn describe(&self) -> String {
        match self {
            Undo::NothingSwitched { current } => {
                format!(
                    "nothing was switched: the host stays on {}",
                    gen_name(*current)
                )
            }
            Undo::RolledBack { to } => format!("rolled back to {}", gen_name(*to)),
            Undo::UndoFailed { to, status, .. } => format!(
                "rolling back to {} reported errors (exit status {status}): check the host by hand",
                gen_name(*to)
            ),
        }
    }
}

impl ApplyError {
    pub fn code(&self) -> &'static str {
        match self {
            ApplyError::Transport(e) => e.code(),
            ApplyError::Probe(e) => e.code(),
            ApplyError::Locked { .. } => "E0720",
            ApplyError::Changed { .. } => "E0721",
            ApplyError::Conflicts { .. } => "E0722",
            ApplyError::Step { .. } => "E0723",
            ApplyError::Health { .. } => "E0724",
            ApplyError::Unconfirmed { .. } => "E0725",
            ApplyError::Undone { .. } => "E0726",
            ApplyError::Protocol { .. } => "E0727",
            ApplyError::NoGeneration { .. } => "E0728",
        }
    }

    pub fn host(&self) -> &str {
        match self {
            ApplyError::Transport(e) => e.host(),
            ApplyError::Probe(e) => match e {
                ProbeError::Transport(t) => t.host(),
                ProbeError::BadPath { host, .. }
                | ProbeError::Remote { host, .. }
                | ProbeError::Protocol { host, .. } => host,
            },
            ApplyError::Locked { host, .. }
            | ApplyError::Changed { host, .. }
            | ApplyError::Conflicts { host, .. }
            | ApplyError::Step { host, .. }
            | ApplyError::Health { host, .. }
            | ApplyError::Unconfirmed { host, .. }
            | ApplyError::Undone { host, .. }
            | ApplyError::Protocol { host, .. }
            | ApplyError::NoGeneration { host, .. } => host,
        }
    }

    /// Command output worth showing under the message (a failed step's tail).
    pub fn output(&self) -> Option<&str> {
        match self {
            ApplyError::Step { output, .. } | ApplyError::Health { output, .. } => {
                Some(output.as_str()).filter(|o| !o.trim().is_empty())
            }
            _ => None,
        }
    }

    pub fn help(&self) -> String {
        match self {
            ApplyError::Transport(e) => e.help(),
            ApplyError::Probe(e) => e.help(),
            ApplyError::Locked { host, .. } => format!(
                "wait for the other apply to finish; if it died, check {host} and remove {STATE_DIR}/lock (a switch awaiting confirmation is undone by its rollback timer, which also releases the lock)"
            ),
            ApplyError::Changed { .. } => "run `infra plan` again and review the new plan".into(),
            ApplyError::Conflicts { .. } => {
                "move the paths named above away on the host, then plan again".into()
            }
            ApplyError::Step { host, step, undo, .. } => {
                let mut h = format!("the last lines `{step}` printed on {host} follow; fix the cause (configuration or host) and apply again");
                if let Undo::UndoFailed { output, .. } = undo.as_ref() {
                    h.push_str(&format!("; the rollback said: {}", output.trim()));
                }
                h
            }
            ApplyError::Health { host, group, .. } => format!(
                "the check script of {group} failed on {host} after the switch (its last lines follow); the change was undone and no host after it was touched"
            ),
            ApplyError::Unconfirmed { host, deadline, .. } => format!(
                "if the change cut SSH off, {host} switches back by itself within {deadline} s of the switch; then check the configuration and apply again"
            ),
            ApplyError::Undone { .. } => {
                "the confirmation came too late or the lock was removed: raise --confirm-timeout, check the host, and apply again".into()
            }
            ApplyError::Protocol { host, .. } => format!(
                "something on {host} printed into the script's answer, or the connection broke; run `infra plan` to see the host's state"
            ),
            ApplyError::NoGeneration { host, .. } => {
                format!("`infra generations {host}` lists the generations")
            }
        }
    }

    pub fn to_diag(&self) -> crate::diag::Diag {
        crate::diag::Diag::error(self.code(), self.to_string()).help(self.help())
    }
}

// ---------------------------------------------------------------------------
// Preparing: contents with secrets, manifests, the saved plan.

/// The files of a host build as they will be written: secrets substituted.
pub struct Materialized {
    pub files: BTreeMap<String, Vec<u8>>,
    /// sha256 of the bytes written, by path.
    pub installed: BTreeMap<String, String>,
}

/// Substitute secrets into every file of `build`. `Err`: the missing names.
pub fn materialize(build: &HostBuild, secrets: &Secrets) -> Result<Materialized, BTreeSet<String>> {
    let mut files = BTreeMap::new();
    let mut installed = BTreeMap::new();
    let mut missing = BTreeSet::new();
    for (path, f) in &build.files {
        let bytes = if f.secret || crate::render::has_secret(&f.content) {
            match secrets.substitute(&f.content) {
                Ok(t) => t.into_bytes(),
                Err(m) => {
                    missing.extend(m);
                    continue;
                }
            }
        } else {
            f.content.clone().into_bytes()
        };
        installed.insert(path.clone(), sha256_hex(&bytes));
        files.insert(path.clone(), bytes);
    }
    if missing.is_empty() {
        Ok(Materialized { files, installed })
    } else {
        Err(missing)
    }
}

/// Secret names used by a build.
pub fn secret_names(build: &HostBuild) -> BTreeSet<String> {
    build
        .files
        .values()
        .flat_map(|f| crate::secrets::placeholders(&f.content))
        .collect()
}

/// Hashes of secret files as written (for [`plan::plan_with`]).
pub fn secret_sha256(build: &HostBuild, m: &Materialized) -> BTreeMap<String, String> {
    build
        .files
        .iter()
        .filter(|(_, f)| f.secret || crate::render::has_secret(&f.content))
        .filter_map(|(p, _)| m.installed.get(p).map(|h| (p.clone(), h.clone())))
        .collect()
}

/// "644" → "0644".
fn norm_mode(m: &str) -> String {
    match u32::from_str_radix(m.trim(), 8) {
        Ok(v) if v <= 0o7777 => format!("{v:04o}"),
        _ => m.to_string(),
    }
}

/// The manifest of a new generation.
pub fn new_manifest(
    build: &HostBuild,
    generation: u64,
    installed: &BTreeMap<String, String>,
) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        host: build.host.clone(),
        generation,
        files: build
            .files
            .iter()
            .map(|(p, f)| {
                (
                    p.clone(),
                    ManifestFile {
                        mode: norm_mode(&f.mode),
                        owner: f.owner.clone(),
                        group: f.group.clone(),
                        sha256: f.sha256.clone(),
                        installed_sha256: installed
                            .get(p)
                            .cloned()
                            .unwrap_or_else(|| f.sha256.clone()),
                        secret: f.secret || crate::render::has_secret(&f.content),
                        origin: f.origin.clone(),
                    },
                )
            })
            .collect(),
        units: build
            .units
            .iter()
            .map(|u| ManifestUnit {
                name: u.name.clone(),
                enable: u.enable,
                start: u.start,
                restart_on: u.restart_on.clone(),
                reload_on: u.reload_on.clone(),
            })
            .collect(),
        packages: build.packages.clone(),
        steps: build
            .steps
            .iter()
            .map(|s| (s.name.clone(), sha256_hex(s.run.as_bytes())))
            .collect(),
    }
}

/// What a host's apply was planned from: enough to apply exactly this plan later
/// (`infra plan --out`, `infra apply --plan`). No secret values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prepared {
    pub host: String,
    /// sha256 of the host's build (JSON): the configuration must render the same.
    pub build_sha256: String,
    /// The probed state the plan depends on (see [`Observed::fingerprint`]).
    pub fingerprint: String,
    /// The generation the apply creates.
    pub generation: u64,
    /// The generation current when probed.
    pub previous: Option<u64>,
    pub previous_manifest: Option<Manifest>,
    /// Hashes of secret files as they will be written (a changed secret refuses the plan).
    pub secret_sha256: BTreeMap<String, String>,
    pub systemd: bool,
    /// IPv4 addresses seen on the host (who holds a VIP).
    pub addresses: Vec<String>,
    /// Holder of the host lock when probed.
    pub lock: Option<String>,
    pub plan: HostPlan,
}

pub fn build_sha256(build: &HostBuild) -> String {
    sha256_hex(serde_json::to_string(build).unwrap_or_default().as_bytes())
}

/// Plan one host from its probe.
pub fn prepare(
    build: &HostBuild,
    observed: &Observed,
    secret_sha256: BTreeMap<String, String>,
) -> Prepared {
    let options = PlanOptions {
        secret_sha256: secret_sha256.clone(),
    };
    let plan = plan::plan_with(build, observed, &options);
    let latest = observed
        .latest_generation
        .max(observed.generation)
        .or_else(|| observed.manifest.as_ref().map(|m| m.generation));
    Prepared {
        host: build.host.clone(),
        build_sha256: build_sha256(build),
        fingerprint: observed.fingerprint.clone(),
        generation: latest.map_or(1, |g| g + 1),
        previous: observed.generation,
        previous_manifest: observed.manifest.clone(),
        secret_sha256,
        systemd: observed.systemd,
        addresses: observed.addresses.clone(),
        lock: observed.lock.clone(),
        plan,
    }
}

impl Prepared {
    /// Whether this host holds `vip` ("192.0.2.10/24" or an address).
    pub fn holds(&self, vip: &str) -> bool {
        let want = vip.split('/').next().unwrap_or(vip);
        self.addresses
            .iter()
            .any(|a| a.split('/').next() == Some(want))
    }
}

/// A saved plan (`infra plan --out FILE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: u32,
    pub hosts: Vec<Prepared>,
}

pub const SAVED_PLAN_FORMAT: u32 = 1;

/// The health checks of a host: one per failover group it is a member of whose
/// check script the generation installs.
pub fn health_checks(groups: &[String], files: &BTreeSet<&str>) -> Vec<HealthCheck> {
    groups
        .iter()
        .filter_map(|g| {
            let script = format!("/etc/keepalived/infra-check-{g}.sh");
            files.contains(script.as_str()).then(|| HealthCheck {
                group: g.clone(),
                script,
            })
        })
        .collect()
}

/// The tar payload of a switch: `gen/` (new generations only) and `undo.sh`.
pub fn payload(new: Option<(&Manifest, &Materialized)>, undo: &str) -> Vec<u8> {
    let mut t = tar::Tar::new();
    if let Some((manifest, m)) = new {
        let json = serde_json::to_string_pretty(manifest).unwrap_or_default();
        t.file("gen/manifest.json", 0o600, format!("{json}\n").as_bytes());
        let mut paths = String::new();
        for p in manifest.files.keys() {
            paths.push_str(p);
            paths.push('\n');
        }
        t.file("gen/paths", 0o600, paths.as_bytes());
        let mut units = String::new();
        for u in &manifest.units {
            units.push_str(&u.name);
            units.push('\n');
        }
        t.file("gen/units", 0o600, units.as_bytes());
        for (p, bytes) in &m.files {
            t.file(&format!("gen/files{p}"), 0o600, bytes);
        }
    }
    t.file("undo.sh", 0o700, undo.as_bytes());
    t.finish()
}

// ---------------------------------------------------------------------------
// Answers: lines of tab-separated fields.

fn records(stdout: &[u8]) -> Vec<Vec<String>> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn b64text(s: &str) -> String {
    base64_decode(s.as_bytes())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// What a successful switch reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Switched {
    pub generation: u64,
    /// Seconds the rollback timer waits; None: no timer (no systemd).
    pub armed: Option<u64>,
    pub warnings: Vec<String>,
    /// Round trips on the session used.
    pub round_trips: usize,
}

/// The inputs of one switch besides the session.
pub struct SwitchJob<'a> {
    pub build: &'a HostBuild,
    pub prepared: &'a Prepared,
    /// The new generation's files (None: rollback to an existing generation).
    pub files: Option<&'a Materialized>,
    /// Manifest of the target generation (new or existing).
    pub target_manifest: &'a Manifest,
    pub target: u64,
    pub state_dir: &'a str,
    pub holder: &'a str,
    pub token: &'a str,
    pub deadline: u64,
}

/// A random token (hex).
pub fn token() -> String {
    let mut buf = [0u8; 12];
    use std::io::Read;
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if ok.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        buf[..8].copy_from_slice(&(t as u64 ^ u64::from(std::process::id())).to_le_bytes());
    }
    hex(&buf)
}

/// The switch: exactly one round trip on `session`.
pub fn switch(session: &mut dyn Remote, job: &SwitchJob) -> Result<Switched, ApplyError> {
    let host = job.build.host.clone();
    let p = job.prepared;
    if !p.plan.conflicts.is_empty() {
        return Err(ApplyError::Conflicts {
            host,
            conflicts: p.plan.conflicts.clone(),
        });
    }
    crate::probe::validate(job.build)?;
    let probe_script = crate::probe::probe_script(job.build, job.state_dir);
    let spec = SwitchSpec {
        host: &host,
        state_dir: job.state_dir,
        token: job.token,
        holder: job.holder,
        fingerprint: &p.fingerprint,
        probe_script: &probe_script,
        target: job.target,
        new: job.files.is_some(),
        previous: p.previous,
        previous_manifest: p.previous_manifest.as_ref(),
        target_manifest: job.target_manifest,
        plan: &p.plan,
        build: job.build,
        deadline: job.deadline,
        systemd: p.systemd,
    };
    let undo = script::undo_script(&spec);
    let text = script::switch_script(&spec);
    let body = payload(job.files.map(|m| (job.target_manifest, m)), &undo);
    let out = session.run(script::LOADER, &script::loader_input(&text, &body))?;
    let recs = records(&out.stdout);
    let protocol = |detail: String| ApplyError::Protocol {
        host: host.clone(),
        what: "switch".into(),
        detail,
    };
    let mut sw = Switched {
        round_trips: session.round_trips(),
        ..Switched::default()
    };
    let mut failed: Option<(String, i32, String)> = None;
    let mut undo_rec: Option<(i32, String)> = None;
    let mut ok = false;
    for r in &recs {
        match r.first().map(String::as_str) {
            Some("LOCKED") => {
                return Err(ApplyError::Locked {
                    host,
                    holder: b64text(r.get(1).map_or("", String::as_str))
                        .trim()
                        .to_string(),
                })
            }
            Some("CHANGED") => {
                let d = r.get(1).cloned().unwrap_or_default();
                let detail = if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) {
                    "a managed file, the generation or the lock differs from what was probed".into()
                } else {
                    d
                };
                return Err(ApplyError::Changed { host, detail });
            }
            Some("FAIL") => {
                let status = r.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
                let step = r.get(2).cloned().unwrap_or_default();
                let output = b64text(r.get(3).map_or("", String::as_str));
                failed = Some((step, status, output));
            }
            Some("UNDO") => {
                let status = r.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
                undo_rec = Some((status, b64text(r.get(2).map_or("", String::as_str))));
            }
            Some("WARN") => sw
                .warnings
                .push(b64text(r.get(1).map_or("", String::as_str))),
            Some("ARMED") => sw.armed = r.get(1).and_then(|s| s.parse().ok()),
            Some("OK") => {
                ok = true;
                sw.generation = r.get(1).and_then(|s| s.parse().ok()).unwrap_or(job.target);
            }
            _ => {}
        }
    }
    if let Some((step, status, output)) = failed {
        let undo = match undo_rec {
            None => Undo::NothingSwitched {
                current: p.previous,
            },
            Some((0, _)) => Undo::RolledBack { to: p.previous },
            Some((status, output)) => Undo::UndoFailed {
                to: p.previous,
                status,
                output,
            },
        };
        return Err(ApplyError::Step {
            host,
            step,
            status,
            output,
            undo: Box::new(undo),
        });
    }
    if !ok {
        let mut detail = format!("no result (exit status {})", out.status);
        let err = out.stderr_text();
        if !err.is_empty() {
            detail.push_str(&format!(": {}", tail(&err, 600)));
        }
        return Err(protocol(detail));
    }
    Ok(sw)
}

fn tail(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    format!("...{}", &s[i..])
}

/// Confirm a switch on a NEW session: health checks, cancel the timer.
pub fn confirm(
    session: &mut dyn Remote,
    state_dir: &str,
    token: &str,
    generation: u64,
    previous: Option<u64>,
    checks: &[HealthCheck],
    health_timeout: u64,
) -> Result<(), ApplyError> {
    let host = session.host().to_string();
    let text = script::confirm_script(state_dir, token, generation, checks, health_timeout);
    let out = session.run(&text, b"")?;
    let recs = records(&out.stdout);
    let mut health: Option<(String, i32, String)> = None;
    for r in &recs {
        match r.first().map(String::as_str) {
            Some("CONFIRMED") => return Ok(()),
            Some("GONE") => {
                return Err(ApplyError::Undone {
                    host,
                    generation,
                    current: r
                        .get(1)
                        .filter(|s| !s.is_empty())
                        .cloned()
                        .unwrap_or_else(|| "none".into()),
                })
            }
            Some("HEALTH") => {
                health = Some((
                    r.get(1).cloned().unwrap_or_default(),
                    r.get(2).and_then(|s| s.parse().ok()).unwrap_or(1),
                    b64text(r.get(3).map_or("", String::as_str)),
                ))
            }
            Some("UNDO") => {
                let (group, status, output) = health.take().unwrap_or_default();
                let ustatus: i32 = r.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
                let undo = if ustatus == 0 {
                    Undo::RolledBack { to: previous }
                } else {
                    Undo::UndoFailed {
                        to: previous,
                        status: ustatus,
                        output: b64text(r.get(2).map_or("", String::as_str)),
                    }
                };
                return Err(ApplyError::Health {
                    host,
                    group,
                    status,
                    output,
                    undo: Box::new(undo),
                });
            }
            _ => {}
        }
    }
    Err(ApplyError::Protocol {
        host,
        what: "confirm".into(),
        detail: format!(
            "no result (exit status {}): {}",
            out.status,
            tail(&out.stderr_text(), 600)
        ),
    })
}

// ---------------------------------------------------------------------------
// Generations and rollback.

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    pub number: u64,
    /// UTC, as the host's clock said when it was made.
    pub date: String,
    pub files: usize,
    pub previous: Option<u64>,
    pub current: bool,
    #[serde(skip)]
    pub manifest: Option<Manifest>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Generations {
    pub current: Option<u64>,
    pub lock: Option<String>,
    pub list: Vec<Generation>,
}

/// List a host's generations (one round trip); with `manifests`, their manifests.
pub fn generations(
    session: &mut dyn Remote,
    state_dir: &str,
    manifests: bool,
) -> Result<Generations, ApplyError> {
    let host = session.host().to_string();
    let out = session.run(&script::generations_script(state_dir, manifests), b"")?;
    if !out.success() {
        return Err(ApplyError::Protocol {
            host,
            what: "generations".into(),
            detail: format!(
                "exit status {}: {}",
                out.status,
                tail(&out.stderr_text(), 600)
            ),
        });
    }
    Ok(parse_generations(&out.stdout))
}

pub fn parse_generations(stdout: &[u8]) -> Generations {
    let mut g = Generations::default();
    let mut mans: BTreeMap<u64, Manifest> = BTreeMap::new();
    for r in records(stdout) {
        match r.first().map(String::as_str) {
            Some("CUR") => g.current = r.get(1).and_then(|s| s.parse().ok()),
            Some("LOCK") => {
                g.lock = Some(
                    b64text(r.get(1).map_or("", String::as_str))
                        .trim()
                        .to_string(),
                )
            }
            Some("GEN") => {
                if let Some(n) = r.get(1).and_then(|s| s.parse().ok()) {
                    g.list.push(Generation {
                        number: n,
                        date: r.get(2).cloned().unwrap_or_default(),
                        files: r.get(3).and_then(|s| s.trim().parse().ok()).unwrap_or(0),
                        previous: r.get(4).and_then(|s| s.parse().ok()),
                        current: false,
                        manifest: None,
                    });
                }
            }
            Some("MAN") => {
                let n = r.get(1).and_then(|s| s.parse().ok());
                let m = r
                    .get(2)
                    .and_then(|b| base64_decode(b.as_bytes()))
                    .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok());
                if let (Some(n), Some(m)) = (n, m) {
                    mans.insert(n, m);
                }
            }
            _ => {}
        }
    }
    g.list.sort_by_key(|x| x.number);
    for x in &mut g.list {
        x.current = Some(x.number) == g.current;
        x.manifest = mans.remove(&x.number);
    }
    g
}

impl Generations {
    /// The generation `infra rollback` goes to by default: the one that was
    /// current before the current one, else the highest below it.
    pub fn default_target(&self) -> Option<u64> {
        let cur = self.current?;
        let numbers: BTreeSet<u64> = self.list.iter().map(|g| g.number).collect();
        let recorded = self
            .list
            .iter()
            .find(|g| g.number == cur)
            .and_then(|g| g.previous)
            .filter(|p| numbers.contains(p));
        recorded.or_else(|| numbers.range(..cur).next_back().copied())
    }
}

/// A build that describes an existing generation (for planning a rollback to
/// it): its files (compared by the hash they were installed with, never
/// diffed), its units; no packages, users, directories or steps.
pub fn rollback_build(
    host: &str,
    address: &str,
    m: &Manifest,
) -> (HostBuild, BTreeMap<String, String>) {
    let files: BTreeMap<String, FileOut> = m
        .files
        .iter()
        .map(|(p, f)| {
            (
                p.clone(),
                FileOut {
                    mode: f.mode.clone(),
                    owner: f.owner.clone(),
                    group: f.group.clone(),
                    content: String::new(),
                    secret: true,
                    sha256: f.sha256.clone(),
                    origin: f.origin.clone(),
                },
            )
        })
        .collect();
    let hashes = m
        .files
        .iter()
        .map(|(p, f)| (p.clone(), f.installed_sha256.clone()))
        .collect();
    let build = HostBuild {
        host: host.to_string(),
        address: address.to_string(),
        files,
        units: m
            .units
            .iter()
            .map(|u| UnitOut {
                name: u.name.clone(),
                enable: u.enable,
                start: u.start,
                restart_on: u.restart_on.clone(),
                reload_on: u.reload_on.clone(),
                origin: String::new(),
            })
            .collect(),
        ..HostBuild::default()
    };
    (build, hashes)
}

/// Secret notes of a rollback plan say what they mean there.
pub fn relabel_rollback_plan(plan: &mut HostPlan, m: &Manifest, target: u64) {
    for a in &mut plan.actions {
        match a {
            plan::Action::UpdateFile {
                path, note, secret, ..
            } => {
                let really = m.files.get(path.as_str()).is_some_and(|f| f.secret);
                *secret = really;
                if !really && note.is_some() {
                    *note = Some(format!("(content of generation {target})"));
                }
            }
            plan::Action::CreateFile { path, secret, .. } => {
                *secret = m.files.get(path.as_str()).is_some_and(|f| f.secret);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
