//! One host's run: its SSH session from the probe to the confirmation.

use super::{ms, ApplyOptions, Events, Fleet};
use crate::apply::{self, ApplyError, Materialized, Prepared, RecoverMode, Recovered};
use crate::plan::Plan;
use crate::probe::{self, LockFacts, LockState, Observed};
use crate::transport::Session;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One host: its session (kept for the whole command), what the probe saw, the
/// plan made from it, and what recovering an interrupted apply did.
pub struct HostRun {
    pub host: String,
    session: Session,
    pub observed: Observed,
    pub prepared: Prepared,
    /// Milliseconds: connect (TCP, handshake, host key, auth), probe.
    pub connect_ms: f64,
    pub probe_ms: f64,
    /// What happened to interrupted applies on this host, in words (from the
    /// host's recovery notes, and what this run did about its lock).
    pub notes: Vec<String>,
}

/// A host applied: switched and confirmed.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub generation: u64,
    pub secs: f64,
    pub warnings: Vec<String>,
    /// What changed, in the plan's words ("2 to update, 1 restart").
    pub summary: String,
    /// Bytes the switch sent (script and payload).
    pub sent: usize,
    /// What its hooks printed: (which hook, the tail of its output).
    pub said: Vec<(String, String)>,
    /// Round trips: on the connection that probed and switched, and on the
    /// new one that confirmed (`INFRA_DEBUG_ROUND_TRIPS`).
    pub round_trips: (usize, usize),
}

/// A rollback done and confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    pub from: Option<u64>,
    pub to: u64,
    /// Round trips: listing, probe and switch; the confirmation.
    pub round_trips: (usize, usize),
}

fn secret_hashes(
    build: &crate::render::HostBuild,
    files: &BTreeMap<String, Materialized>,
) -> BTreeMap<String, String> {
    files
        .get(&build.host)
        .map(|m| apply::secret_sha256(build, m))
        .unwrap_or_default()
}

impl HostRun {
    /// Connect and probe (one connection, one round trip).
    pub(super) fn open(
        fleet: &Fleet,
        host: &str,
        files: &BTreeMap<String, Materialized>,
        events: &dyn Events,
    ) -> Result<HostRun, ApplyError> {
        let Some(build) = fleet.build.hosts.get(host) else {
            return Err(ApplyError::Protocol {
                host: host.to_string(),
                what: "render".into(),
                detail: "the host has no build (not in the configuration?)".into(),
            });
        };
        events.say(host, "connecting");
        let t0 = Instant::now();
        let mut session = fleet.connect(host)?;
        let connect_ms = ms(t0);
        events.say(host, "probing");
        let t1 = Instant::now();
        let status = fleet
            .status
            .then(|| crate::status::script(&fleet.model, host));
        let observed = probe::probe_with(&mut session, build, apply::STATE_DIR, status.as_deref())?;
        let probe_ms = ms(t1);
        let prepared = apply::prepare(build, &observed, secret_hashes(build, files));
        events.say(host, &prepared.plan.summary.describe());
        events.event(&super::Event::Probed {
            host,
            current: prepared.previous,
            changes: prepared.plan.summary.describe(),
            changed: prepared.plan.has_changes(),
        });
        let notes = observed.recovered.clone();
        Ok(HostRun {
            host: host.to_string(),
            session,
            observed,
            prepared,
            connect_ms,
            probe_ms,
            notes,
        })
    }

    /// A host of a saved plan: connected, not probed (the switch re-checks the
    /// plan's fingerprint on the host).
    pub(super) fn saved(session: Session, prepared: Prepared) -> HostRun {
        HostRun {
            host: prepared.host.clone(),
            session,
            observed: Observed::default(),
            prepared,
            connect_ms: 0.0,
            probe_ms: 0.0,
            notes: Vec::new(),
        }
    }

    /// What the host lock means for the next apply, in the operator's words
    /// (None: not held).
    pub fn lock_story(&self) -> Option<String> {
        let lock = self.observed.lock.as_ref()?;
        let d = lock.describe();
        let target = lock
            .target
            .map(|t| format!("generation {t}"))
            .unwrap_or_else(|| "a generation".into());
        Some(match lock.state() {
            LockState::Live => {
                format!("an apply is running here ({d}): `infra apply` waits for it to finish")
            }
            LockState::Pending
                if lock.target.is_some()
                    && lock.target == self.observed.generation
                    && !self.prepared.plan.has_changes() =>
            {
                format!("{target} awaits confirmation ({d}): `infra apply` confirms it if its health check passes (it is what the configuration builds)")
            }
            LockState::Pending => format!("{target} awaits confirmation ({d}): `infra apply` rolls it back first (it is not what the configuration builds), then applies"),
            LockState::Stale => format!("an apply was interrupted ({d}): `infra apply` recovers it first (what it had not finished is undone)"),
            LockState::Unknown => format!("the host lock is held ({d}) and records no phase: if no apply runs here, `infra unlock {}` removes it", self.host),
        })
    }

    /// The lock for `infra plan --json`.
    pub fn lock_json(&self) -> Option<serde_json::Value> {
        let lock = self.observed.lock.as_ref()?;
        Some(serde_json::json!({
            "state": lock.state(),
            "phase": lock.phase,
            "holder": lock.holder,
            "generation": lock.target,
            "previous": lock.previous,
            "since": lock.since,
            "same_boot": lock.same_boot,
            "story": self.lock_story(),
        }))
    }

    /// Round trips on this run's session so far.
    pub fn round_trips(&self) -> usize {
        self.session.round_trips()
    }

    fn reprobe(
        &mut self,
        fleet: &Fleet,
        files: &BTreeMap<String, Materialized>,
    ) -> Result<(), ApplyError> {
        let Some(build) = fleet.build.hosts.get(&self.host) else {
            return Ok(());
        };
        self.observed = probe::probe(&mut self.session, build, apply::STATE_DIR)?;
        self.prepared = apply::prepare(build, &self.observed, secret_hashes(build, files));
        for n in &self.observed.recovered {
            if !self.notes.contains(n) {
                self.notes.push(n.clone());
            }
        }
        Ok(())
    }

    /// Settle the host lock before planning for good: wait for an apply that
    /// runs (up to `lock_wait`), recover one that was interrupted, and resolve a
    /// switch left awaiting confirmation: confirmed when the host is on the
    /// generation the configuration builds and its health check passes,
    /// otherwise rolled back. Afterwards the host holds no lock, or this
    /// returns why (E0720 for a live or unknown lock).
    pub(super) fn settle(
        &mut self,
        fleet: &Fleet,
        files: &BTreeMap<String, Materialized>,
        opts: &ApplyOptions,
        events: &dyn Events,
    ) -> Result<(), ApplyError> {
        let started = Instant::now();
        let mut recoveries = 0;
        while let Some(lock) = self.observed.lock.clone() {
            match lock.state() {
                LockState::Live => {
                    let waited = started.elapsed();
                    if waited >= opts.lock_wait {
                        return Err(ApplyError::Locked {
                            host: self.host.clone(),
                            holder: lock.describe(),
                            state: LockState::Live,
                            waited: waited.as_secs(),
                        });
                    }
                    events.say(
                        &self.host,
                        &format!("waiting for the apply running here ({})", lock.describe()),
                    );
                    std::thread::sleep(Duration::from_millis(500));
                    self.reprobe(fleet, files)?;
                }
                LockState::Unknown => {
                    return Err(ApplyError::Locked {
                        host: self.host.clone(),
                        holder: lock.describe(),
                        state: LockState::Unknown,
                        waited: 0,
                    });
                }
                LockState::Stale | LockState::Pending => {
                    recoveries += 1;
                    if recoveries > 3 {
                        return Err(ApplyError::Protocol {
                            host: self.host.clone(),
                            what: "recovery".into(),
                            detail: format!(
                                "the lock is still there after {} recoveries ({})",
                                recoveries - 1,
                                lock.describe()
                            ),
                        });
                    }
                    self.recover(fleet, &lock, opts, events)?;
                    self.reprobe(fleet, files)?;
                }
            }
        }
        Ok(())
    }

    /// Recover a lock whose apply is gone (see [`HostRun::settle`]).
    fn recover(
        &mut self,
        fleet: &Fleet,
        lock: &LockFacts,
        opts: &ApplyOptions,
        events: &dyn Events,
    ) -> Result<(), ApplyError> {
        let host = self.host.clone();
        let pending = lock.state() == LockState::Pending;
        let on_target = lock.target.is_some() && lock.target == self.observed.generation;
        if pending && on_target && !self.prepared.plan.has_changes() {
            let target = lock.target.unwrap_or_default();
            let files = self
                .observed
                .manifest
                .as_ref()
                .map(|m| m.files.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default();
            let checks = fleet.health_checks(&host, files.iter());
            events.say(
                &host,
                &format!("confirming generation {target}, left awaiting confirmation"),
            );
            apply::confirm(
                &mut self.session,
                apply::STATE_DIR,
                &lock.token,
                target,
                lock.previous,
                &checks,
                opts.health_timeout(),
            )?;
            self.notes.push(format!(
                "generation {target} was left awaiting confirmation ({}); it is what the configuration builds{}: confirmed",
                lock.describe(),
                if checks.is_empty() { "" } else { " and its health check passed" }
            ));
            return Ok(());
        }
        let mode = if pending {
            events.say(
                &host,
                "rolling back a switch left awaiting confirmation (it is not what the configuration builds)",
            );
            RecoverMode::Undo
        } else {
            events.say(&host, "recovering an interrupted apply");
            RecoverMode::Reclaim
        };
        match apply::recover(&mut self.session, apply::STATE_DIR, mode)? {
            Recovered::Undone { status } if status != 0 => Err(ApplyError::Protocol {
                host,
                what: "recovery".into(),
                detail: format!(
                    "rolling back the interrupted switch ({}) reported errors (exit status {status}): check the host's journal (`journalctl -t infra`)",
                    lock.describe()
                ),
            }),
            Recovered::Finished => {
                self.notes.push(format!(
                    "the apply that left the lock ({}) had confirmed its switch: finished its cleanup",
                    lock.describe()
                ));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Forget the host's recovery notes once an apply reported them and left the
    /// host as it is (a confirmed switch forgets them by itself).
    pub(super) fn acknowledge_notes(&mut self) {
        if !self.observed.recovered.is_empty() {
            let _ = self.session.run(
                &format!("rm -f {}/recovered", crate::shell::quote(apply::STATE_DIR)),
                b"",
            );
        }
    }

    /// Switch to the new generation (one round trip on this session), then
    /// confirm it over a new connection.
    pub(super) fn apply(
        &mut self,
        fleet: &Fleet,
        files: Option<&Materialized>,
        opts: &ApplyOptions,
        events: &dyn Events,
    ) -> Result<Applied, ApplyError> {
        let t0 = Instant::now();
        let host = self.host.clone();
        let p = self.prepared.clone();
        let (Some(build), Some(m)) = (fleet.build.hosts.get(&host), files) else {
            return Err(ApplyError::Protocol {
                host,
                what: "apply".into(),
                detail: "host missing from the build".into(),
            });
        };
        let manifest = apply::new_manifest(build, p.generation, &m.installed);
        let token = crate::secrets::token();
        events.say(&host, &format!("switching to generation {}", p.generation));
        events.event(&super::Event::Switch {
            host: &host,
            generation: p.generation,
        });
        let job = apply::SwitchJob {
            build,
            prepared: &p,
            files: Some(m),
            target_manifest: &manifest,
            target: p.generation,
            state_dir: apply::STATE_DIR,
            holder: &opts.holder,
            token: &token,
            deadline: opts.confirm_timeout,
        };
        crate::fault::pause("switch");
        let switched = match apply::switch(&mut self.session, &job) {
            Ok(s) => s,
            Err(e) => {
                events.done(&host, "failed");
                return Err(interrupted(e, p.generation));
            }
        };
        crate::fault::pause("switched");
        let checks = fleet.health_checks(&host, manifest.files.keys());
        events.say(
            &host,
            &if checks.is_empty() {
                "confirming over a new connection".to_string()
            } else {
                format!(
                    "confirming over a new connection, health check of {}",
                    checks
                        .iter()
                        .map(|c| c.what.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        );
        events.event(&super::Event::HealthGate {
            host: &host,
            generation: p.generation,
            checks: checks.iter().map(|c| c.what.as_str()).collect(),
        });
        let confirm_trips = confirm_new(
            fleet,
            &host,
            &token,
            p.generation,
            p.previous,
            &checks,
            opts,
        )?;
        let secs = t0.elapsed().as_secs_f64();
        events.done(
            &host,
            &format!("generation {} confirmed ({secs:.1} s)", p.generation),
        );
        events.event(&super::Event::Confirmed {
            host: &host,
            generation: p.generation,
            secs,
        });
        Ok(Applied {
            generation: switched.generation,
            secs,
            warnings: switched.warnings,
            summary: p.plan.summary.describe(),
            sent: switched.sent,
            said: switched.said,
            round_trips: (self.session.round_trips(), confirm_trips),
        })
    }

    /// `infra rollback` on one host (see [`Fleet::rollback`]).
    pub(super) fn rollback(
        fleet: &Fleet,
        host: &str,
        to: Option<u64>,
        opts: &ApplyOptions,
        events: &dyn Events,
    ) -> Result<RolledBack, ApplyError> {
        let mut session = fleet.connect(host)?;
        let mut g = apply::generations(&mut session, apply::STATE_DIR, true)?;
        if let Some(lock) = &g.lock {
            match lock.state() {
                LockState::Live | LockState::Unknown => {
                    return Err(ApplyError::Locked {
                        host: host.to_string(),
                        holder: lock.describe(),
                        state: lock.state(),
                        waited: 0,
                    })
                }
                // Going back anyway: an interrupted switch is undone first.
                LockState::Stale | LockState::Pending => {
                    apply::recover(&mut session, apply::STATE_DIR, RecoverMode::Undo)?;
                    g = apply::generations(&mut session, apply::STATE_DIR, true)?;
                }
            }
        }
        let available = || {
            let v: Vec<String> = g.list.iter().map(|x| x.number.to_string()).collect();
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let Some(wanted) = to.or_else(|| g.default_target()) else {
            return Err(ApplyError::NoGeneration {
                host: host.into(),
                wanted: "before the current one".into(),
                available: available(),
            });
        };
        let Some(target_manifest) = g
            .list
            .iter()
            .find(|x| x.number == wanted)
            .and_then(|x| x.manifest.clone())
        else {
            return Err(ApplyError::NoGeneration {
                host: host.into(),
                wanted: wanted.to_string(),
                available: available(),
            });
        };
        let address = fleet
            .build
            .hosts
            .get(host)
            .map(|b| b.address.clone())
            .unwrap_or_default();
        let (build, hashes) = apply::rollback_build(host, &address, &target_manifest);
        let observed = probe::probe(&mut session, &build, apply::STATE_DIR)?;
        let mut prepared = apply::prepare(&build, &observed, hashes);
        apply::relabel_rollback_plan(&mut prepared.plan, &target_manifest, wanted);
        prepared.generation = wanted;
        let from = match g.current {
            Some(c) => format!("generation {c}"),
            None => "no generation".into(),
        };
        events.planned(
            &Plan::new(vec![prepared.plan.clone()]),
            &[],
            &[(
                host.to_string(),
                format!("rolling back from {from} to generation {wanted}"),
            )],
        );
        if let Some(lock) = &prepared.lock {
            return Err(ApplyError::Locked {
                host: host.into(),
                holder: lock.describe(),
                state: lock.state(),
                waited: 0,
            });
        }
        let token = crate::secrets::token();
        let holder = format!("{} (rollback)", opts.holder);
        let job = apply::SwitchJob {
            build: &build,
            prepared: &prepared,
            files: None,
            target_manifest: &target_manifest,
            target: wanted,
            state_dir: apply::STATE_DIR,
            holder: &holder,
            token: &token,
            deadline: opts.confirm_timeout,
        };
        apply::switch(&mut session, &job).map_err(|e| interrupted(e, wanted))?;
        let checks = fleet.health_checks(host, target_manifest.files.keys());
        let confirm_trips = confirm_new(
            fleet,
            host,
            &token,
            wanted,
            prepared.previous,
            &checks,
            opts,
        )?;
        Ok(RolledBack {
            from: g.current,
            to: wanted,
            round_trips: (session.round_trips(), confirm_trips),
        })
    }
}

/// A transport error during the switch: the client cannot know how it ended
/// (the host finishes or undoes it by itself).
fn interrupted(e: ApplyError, generation: u64) -> ApplyError {
    match e {
        ApplyError::Transport(t) => ApplyError::Interrupted {
            host: t.host().to_string(),
            generation,
            detail: t.to_string(),
        },
        other => other,
    }
}

/// Open a NEW connection and confirm the switch on it; the round trips it took.
fn confirm_new(
    fleet: &Fleet,
    host: &str,
    token: &str,
    generation: u64,
    previous: Option<u64>,
    checks: &[apply::script::HealthCheck],
    opts: &ApplyOptions,
) -> Result<usize, ApplyError> {
    let unconfirmed = |detail: String| ApplyError::Unconfirmed {
        host: host.to_string(),
        generation,
        detail,
        deadline: opts.confirm_timeout,
    };
    let mut second = fleet
        .connect(host)
        .map_err(|e| unconfirmed(e.to_string()))?;
    crate::fault::sending("confirm", 0, || {
        apply::confirm(
            &mut second,
            apply::STATE_DIR,
            token,
            generation,
            previous,
            checks,
            opts.health_timeout(),
        )
    })
    .map_err(|e| match e {
        ApplyError::Transport(t) => unconfirmed(t.to_string()),
        other => other,
    })?;
    Ok(second.round_trips())
}
