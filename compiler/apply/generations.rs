//! A host's generations, and what `infra rollback` switches to.

use super::{b64text, records, script, tail, ApplyError};
use crate::plan::{self, HostPlan};
use crate::probe::{LockFacts, Manifest};
use crate::render::{FileOut, HostBuild, UnitOut};
use crate::shell::base64_decode;
use crate::transport::Remote;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

// Generations and rollback.

/// One generation on a host.
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

/// A host's generations, and its lock.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Generations {
    pub current: Option<u64>,
    pub lock: Option<LockFacts>,
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
                g.lock = Some(LockFacts::parse(&b64text(
                    r.get(1).map_or("", String::as_str),
                )))
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
    /// The list as `infra generations` prints it.
    pub fn render(&self, host: &str) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        if self.list.is_empty() {
            let _ = writeln!(s, "{host}: no generations (infra never applied here)");
            return s;
        }
        let _ = writeln!(
            s,
            "{host}: {} generation{}",
            self.list.len(),
            if self.list.len() == 1 { "" } else { "s" }
        );
        let _ = writeln!(s, "     GEN  DATE (UTC)            FILES");
        for x in &self.list {
            let mark = if x.current { "*" } else { " " };
            let _ = writeln!(
                s,
                "  {mark} {:>4}  {:20}  {:>5}{}",
                x.number,
                x.date,
                x.files,
                if x.current { "  (current)" } else { "" }
            );
        }
        if let Some(l) = &self.lock {
            let _ = writeln!(s, "  lock held: {}", l.describe());
        }
        s
    }

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
                    mode: f.mode,
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
        // Its releases by id only: a rollback switches `current` back to one
        // the host keeps (it has no files to assemble a pruned one).
        releases: m
            .releases
            .iter()
            .map(|(path, hash)| crate::render::ReleaseOut {
                path: path.clone(),
                hash: hash.clone(),
                source: String::new(),
                shared: Vec::new(),
                keep: u32::MAX,
                owner: "root".into(),
                group: "root".into(),
                reload: Vec::new(),
                before_switch: String::new(),
                migrate: String::new(),
                files: Default::default(),
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
