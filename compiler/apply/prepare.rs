//! Preparing a switch: contents with secrets, manifests, the plan a host's switch
//! is made from, the payload.

use super::script::HealthCheck;
use super::{sha256_hex, tar, MANIFEST_FORMAT};
use crate::plan::{self, HostPlan, PlanOptions};
use crate::probe::{Manifest, ManifestFile, ManifestUnit, Observed};
use crate::render::HostBuild;
use crate::secrets::Secrets;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The files of a host build as they will be written: secrets substituted.
pub struct Materialized {
    pub files: BTreeMap<String, Vec<u8>>,
    /// sha256 of the bytes written, by path.
    pub installed: BTreeMap<String, String>,
    /// The files of the host's releases, by sha256 (what a switch may send).
    pub blobs: BTreeMap<String, std::sync::Arc<Vec<u8>>>,
}

/// Why a host's files cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaterializeError {
    /// Secrets without a value.
    Missing(BTreeSet<String>),
    /// Secret `name` cannot be written into `path`.
    Unencodable {
        name: String,
        path: String,
        why: &'static str,
    },
}

/// Substitute secrets into every file of `build`.
pub fn materialize(build: &HostBuild, secrets: &Secrets) -> Result<Materialized, MaterializeError> {
    let mut files = BTreeMap::new();
    let mut installed = BTreeMap::new();
    let mut missing = BTreeSet::new();
    for (path, f) in &build.files {
        let bytes = if f.secret || crate::render::has_secret(&f.content) {
            match secrets.substitute(&f.content) {
                Ok(t) => t.into_bytes(),
                Err(crate::secrets::SubstError::Missing(m)) => {
                    missing.extend(m);
                    continue;
                }
                Err(crate::secrets::SubstError::Unencodable { name, why }) => {
                    return Err(MaterializeError::Unencodable {
                        name,
                        path: path.clone(),
                        why,
                    })
                }
            }
        } else {
            f.content.clone().into_bytes()
        };
        installed.insert(path.clone(), sha256_hex(&bytes));
        files.insert(path.clone(), bytes);
    }
    if missing.is_empty() {
        Ok(Materialized {
            files,
            installed,
            blobs: BTreeMap::new(),
        })
    } else {
        Err(MaterializeError::Missing(missing))
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
                        mode: f.mode,
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
            .map(|s| (s.name.clone(), s.run_sha256()))
            .collect(),
        releases: build
            .releases
            .iter()
            .map(|r| (r.path.clone(), r.hash.clone()))
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
    /// The host lock when probed.
    pub lock: Option<crate::probe::LockFacts>,
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

/// The health checks of a host: one per failover group it is a member of whose
/// check script the generation installs.
pub fn health_checks(groups: &[String], files: &BTreeSet<&str>) -> Vec<HealthCheck> {
    let mut out: Vec<HealthCheck> = groups
        .iter()
        .filter_map(|g| {
            let script = format!("/etc/keepalived/infra-check-{g}.sh");
            files.contains(script.as_str()).then(|| HealthCheck {
                what: format!("failover group {g}"),
                script,
            })
        })
        .collect();
    // An application's own checks, after the group's: /etc/infra/health/KIND.NAME.sh
    for f in files {
        if let Some(what) = f
            .strip_prefix(HEALTH_DIR)
            .and_then(|n| n.strip_suffix(".sh"))
            .filter(|n| !n.is_empty() && !n.contains('/'))
        {
            out.push(HealthCheck {
                what: what.to_string(),
                script: f.to_string(),
            });
        }
    }
    out
}

/// Where a kind puts a check of its own (`KIND.NAME.sh`, executable, exit 0
/// when healthy): run on the host after each switch, like the group's check.
pub const HEALTH_DIR: &str = "/etc/infra/health/";

/// What the payload carries for the release action with this index in the plan.
pub struct ReleasePayload<'a> {
    pub index: usize,
    /// The release's file list (`sha256 mode path` lines), or, assembled from
    /// the current release, only its lines for the files that travel.
    pub list: String,
    /// sha256 of the whole file list (the host checks what it assembled).
    pub list_sha256: String,
    /// Incremental: the paths of the current release's list that go (changed or
    /// removed), a line each; `None`: `list` is the whole list.
    pub drop: Option<String>,
    /// Paths of the base release it does not have, a line each.
    pub remove: String,
    /// The files that travel: relative path, mode, bytes.
    pub files: Vec<(&'a str, crate::encode::Mode, &'a [u8])>,
}

/// The payload parts of every release action of `plan`: the files the host
/// lacks, with their bytes from `m`.
pub fn release_payloads<'a>(
    build: &'a HostBuild,
    plan: &'a HostPlan,
    m: Option<&'a Materialized>,
) -> Vec<ReleasePayload<'a>> {
    let mut out = Vec::new();
    for (index, a) in plan.actions.iter().enumerate() {
        let plan::Action::Release {
            path,
            present,
            added,
            changed,
            removed,
            incremental,
            ..
        } = a
        else {
            continue;
        };
        let Some(r) = build.releases.iter().find(|r| r.path == *path) else {
            continue;
        };
        if *present {
            continue;
        }
        // The files that travel: added, then changed.
        let travel: Vec<(&String, &crate::release::ReleaseFile)> = added
            .iter()
            .chain(changed)
            .filter_map(|p| r.files.get_key_value(p))
            .collect();
        let files = travel
            .iter()
            .map(|(p, f)| {
                let bytes = m
                    .and_then(|m| m.blobs.get(&f.sha256))
                    .map_or(&[][..], |b| b.as_slice());
                (p.as_str(), f.mode, bytes)
            })
            .collect();
        let whole = crate::release::list(&r.files);
        let lines = |paths: &mut dyn Iterator<Item = &String>| -> String {
            paths.map(|p| format!("{p}\n")).collect()
        };
        let (list, drop) = if *incremental {
            (
                crate::release::list(travel),
                Some(lines(&mut changed.iter().chain(removed))),
            )
        } else {
            (whole.clone(), None)
        };
        out.push(ReleasePayload {
            index,
            list,
            list_sha256: sha256_hex(whole.as_bytes()),
            drop,
            remove: lines(&mut removed.iter()),
            files,
        });
    }
    out
}

/// The tar payload of a switch: `gen/` (new generations only), `rel/N/`
/// (release N of the plan: its file list and the files it lacks, under
/// `tree/`), `undo.sh`, and `runtime/` (infra's recovery script, and its boot
/// unit where systemd runs).
pub fn payload(
    new: Option<(&Manifest, &Materialized)>,
    releases: &[ReleasePayload],
    undo: &str,
    state_dir: &str,
    systemd: bool,
) -> Vec<u8> {
    let mut t = tar::Tar::new();
    for r in releases {
        let n = r.index;
        match &r.drop {
            None => t.file(&format!("rel/{n}/list"), 0o644, r.list.as_bytes()),
            Some(drop) => {
                t.file(&format!("rel/{n}/add"), 0o644, r.list.as_bytes());
                t.file(&format!("rel/{n}/drop"), 0o644, drop.as_bytes());
            }
        }
        t.file(
            &format!("rel/{n}/list.sha256"),
            0o644,
            format!("{}\n", r.list_sha256).as_bytes(),
        );
        if !r.remove.is_empty() {
            t.file(&format!("rel/{n}/remove"), 0o644, r.remove.as_bytes());
        }
        for (p, mode, bytes) in &r.files {
            t.file(&format!("rel/{n}/tree/{p}"), mode.bits(), bytes);
        }
    }
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
    t.file(
        "runtime/recover.sh",
        0o700,
        super::script::recover_script(state_dir).as_bytes(),
    );
    if systemd {
        t.file(
            "runtime/infra-recover.service",
            0o644,
            super::script::recover_unit(state_dir).as_bytes(),
        );
    }
    t.finish()
}
