//! The switch: one round trip that stores a new generation (or picks an existing
//! one) and switches the host to it.

use super::script::{self, SwitchSpec};
use super::{b64text, payload, records, tail, ApplyError, Materialized, Prepared, Undo};
use crate::probe::{LockFacts, Manifest};
use crate::render::HostBuild;
use crate::transport::Remote;

/// What a successful switch reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Switched {
    pub generation: u64,
    /// Seconds the rollback timer waits; None: no timer (no systemd).
    pub armed: Option<u64>,
    pub warnings: Vec<String>,
    /// Round trips on the session used.
    pub round_trips: usize,
    /// Bytes the switch sent (its script and payload).
    pub sent: usize,
    /// What hooks printed: (which hook, the tail of its output).
    pub said: Vec<(String, String)>,
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
    let releases = super::prepare::release_payloads(job.build, &p.plan, job.files);
    let body = payload(
        job.files.map(|m| (job.target_manifest, m)),
        &releases,
        &undo,
        job.state_dir,
        p.systemd,
    );
    let input = script::loader_input(&text, &body);
    let mid = input.len() - body.len() / 2;
    let out = crate::fault::sending("switch", mid, || session.run(script::LOADER, &input))?;
    let recs = records(&out.stdout);
    let protocol = |detail: String| ApplyError::Protocol {
        host: host.clone(),
        what: "switch".into(),
        detail,
    };
    let mut sw = Switched {
        round_trips: session.round_trips(),
        sent: input.len(),
        ..Switched::default()
    };
    let mut failed: Option<(String, i32, String)> = None;
    let mut undo_rec: Option<(i32, String)> = None;
    let mut ok = false;
    for r in &recs {
        match r.first().map(String::as_str) {
            Some("LOCKED") => {
                let facts = LockFacts::parse(&b64text(r.get(1).map_or("", String::as_str)));
                return Err(ApplyError::Locked {
                    host,
                    holder: facts.describe(),
                    state: facts.state(),
                    waited: 0,
                });
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
            Some("SAID") => sw.said.push((
                b64text(r.get(1).map_or("", String::as_str)),
                b64text(r.get(2).map_or("", String::as_str)),
            )),
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
