//! Plan, apply, rollback and unlock across the hosts of a configuration: the
//! back end's orchestration. [`Fleet`] is the rendered configuration and how to
//! reach each host (targets, dialer, known_hosts policy); [`HostRun`] is one
//! host's SSH session from probe through lock recovery, plan, switch and
//! confirm. Nothing here prints: progress and the plan go to [`Events`],
//! results come back as values ([`ApplyOutcome`], ...) that the CLI renders.
//!
//! Invariants:
//! - One SSH connection per host for a plan; apply adds one new connection per
//!   switched host to prove SSH still works after the switch.
//! - Nothing is switched anywhere unless every host was probed and its lock
//!   settled (an interrupted apply recovered, or a live one waited for).
//! - No outcome says a host is applied unless its switch was confirmed.

pub mod event;
pub mod host;
pub mod outcome;
pub mod saved;
pub mod select;

pub use event::Event;
pub use host::{Applied, HostRun};
pub use outcome::{ApplyOutcome, Line, PlanRound};
pub use saved::SavedPlan;

use crate::apply::order;
use crate::apply::script::HealthCheck;
use crate::apply::{self, ApplyError, Materialized, Prepared};
use crate::diag::Diag;
use crate::plan::Plan;
use crate::render::Build;
use crate::resolve::Model;
use crate::secrets::{self, Secrets};
use crate::transport::{self, Session, Target};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Hosts connected to, probed or switched at once unless `--parallel` says
/// otherwise: a laptop's SSH client side, not the servers, is the bound.
pub const DEFAULT_PARALLEL: usize = 32;

/// One host's rollback: where it went, or why not.
pub type RollbackOutcome = Result<host::RolledBack, ApplyError>;

/// Opens the TCP connection to a host (plain, or from inside a lab's network).
pub type Dial = dyn Fn(SocketAddr, Duration) -> std::io::Result<TcpStream> + Sync;

/// How to reach the hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The local lab of this name (`--lab`): its network, key and host keys.
    pub lab: Option<String>,
    pub known_hosts: PathBuf,
    /// Key file for every host (the lab's); `None`: each host's `ssh { key }`,
    /// else ssh-agent and the default keys.
    pub key: Option<PathBuf>,
    /// Record unknown host keys instead of refusing them.
    pub accept_new: bool,
    /// The user's home, where `ssh { key = "~/..." }` points.
    pub home: Option<PathBuf>,
}

impl Access {
    /// The local lab `name`: its network, key and pinned host keys.
    pub fn lab(name: &str) -> Access {
        let (key, known_hosts) = crate::lab::ssh_identity(name);
        Access {
            lab: Some(name.to_string()),
            known_hosts,
            key: Some(key),
            accept_new: false,
            home: None,
        }
    }

    /// Plain SSH with the user's known_hosts under `home`.
    pub fn ssh(home: &Path) -> Access {
        Access {
            lab: None,
            known_hosts: home.join(".ssh/known_hosts"),
            key: None,
            accept_new: false,
            home: Some(home.to_path_buf()),
        }
    }
}

/// Where progress goes (a spinner per host on a terminal, lines otherwise).
pub trait Events: Sync {
    fn say(&self, host: &str, msg: &str);
    fn done(&self, host: &str, msg: &str) {
        self.say(host, msg);
    }
    /// The plan is known (after probing and settling locks), before anything is
    /// switched: `story` says where the VIPs are, `notes` what recovering
    /// interrupted applies did, by host.
    fn planned(&self, _plan: &Plan, _story: &[String], _notes: &[(String, String)]) {}
    /// A structured event (`apply --json`); the words of it also come through
    /// [`Events::say`].
    fn event(&self, _event: &Event) {}
}

/// Events nobody listens to.
pub struct Silent;

impl Events for Silent {
    fn say(&self, _host: &str, _msg: &str) {}
}

/// What apply needs besides the configuration.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Seconds a switched host waits for its confirmation before it switches
    /// back by itself.
    pub confirm_timeout: u64,
    /// How long to wait for an apply that is running on a host.
    pub lock_wait: Duration,
    /// Who applies, in words (written into the host lock).
    pub holder: String,
}

impl ApplyOptions {
    /// How long the health checks of a confirmation may take.
    pub fn health_timeout(&self) -> u64 {
        (self.confirm_timeout / 2).max(5)
    }
}

/// The rendered configuration and how to reach its hosts.
pub struct Fleet {
    pub model: Model,
    /// Host names in the graph's apply order.
    pub host_order: Vec<String>,
    pub build: Build,
    /// The configuration's directory (relative key paths, secrets.env).
    pub dir: PathBuf,
    /// Ask `infra status`'s questions in each host's probe.
    pub status: bool,
    /// At most this many hosts are connected to, probed or switched at once
    /// (`--parallel`).
    pub parallel: usize,
    /// `--limit`: the hosts this command acts on (model order); `None`: all.
    pub selected: Option<Vec<String>>,
    access: Access,
    dial: Box<Dial>,
}

impl Fleet {
    pub fn new(
        model: Model,
        host_order: Vec<String>,
        build: Build,
        dir: PathBuf,
        access: Access,
    ) -> Fleet {
        let dial: Box<Dial> = match &access.lab {
            Some(name) => {
                let name = name.clone();
                Box::new(move |a, t| crate::lab::connect(&name, a, t))
            }
            None => Box::new(transport::dial_tcp),
        };
        Fleet {
            model,
            host_order,
            build,
            dir,
            status: false,
            parallel: DEFAULT_PARALLEL,
            selected: None,
            access,
            dial,
        }
    }

    /// The fleet of a compiled configuration: its hosts in apply order, its
    /// directory (where `ssh { key }` paths are relative to).
    pub fn compiled(c: crate::Compilation, access: Access) -> Fleet {
        let host_order = c
            .graph
            .host_order
            .iter()
            .map(|&h| c.model.hosts[h].name.value.clone())
            .collect();
        Fleet::new(c.model, host_order, c.build, c.root_dir, access)
    }

    /// The hosts this command acts on (every host, or `--limit`'s), in the
    /// model's order.
    pub fn hosts(&self) -> Vec<String> {
        match &self.selected {
            Some(s) => s.clone(),
            None => self.all_hosts(),
        }
    }

    /// Every host of the configuration, in the model's order.
    pub fn all_hosts(&self) -> Vec<String> {
        self.model
            .hosts
            .iter()
            .map(|h| h.name.value.clone())
            .collect()
    }

    /// Act on the hosts `limit` selects ([`select::select`]); empty: all.
    pub fn limit(&mut self, limit: &[String]) -> Result<(), Box<Diag>> {
        self.selected = if limit.is_empty() {
            None
        } else {
            Some(select::select(&self.model, limit)?)
        };
        Ok(())
    }

    /// How to reach `host`.
    pub fn target(&self, host: &str) -> Result<Target, ApplyError> {
        let Some(h) = self.model.hosts.iter().find(|h| h.name.value == host) else {
            return Err(ApplyError::NoHost {
                host: host.to_string(),
                known: self.all_hosts().join(", "),
            });
        };
        let mut t = Target::new(
            host,
            &h.address.value.to_string(),
            self.access.known_hosts.clone(),
        );
        t.port = h.ssh.port;
        t.user = h.ssh.user.clone();
        t.key = self
            .access
            .key
            .clone()
            .or_else(|| h.ssh.key_path(&self.dir, self.access.home.as_deref()));
        t.accept_new = self.access.accept_new;
        t.command_timeout = Duration::from_secs(30 * 60);
        Ok(t)
    }

    /// A new SSH connection to `host`.
    pub fn connect(&self, host: &str) -> Result<Session, ApplyError> {
        let t = self.target(host)?;
        Ok(transport::connect(&t, &*self.dial)?)
    }

    /// The failover groups `host` is a member of.
    pub fn groups_of(&self, host: &str) -> Vec<String> {
        let Some(id) = self.model.host_id(host) else {
            return Vec::new();
        };
        self.model
            .groups
            .iter()
            .filter(|g| g.position(id).is_some())
            .map(|g| g.name.value.clone())
            .collect()
    }

    /// The health checks of `host` for a generation managing `files`.
    pub fn health_checks<'a>(
        &self,
        host: &str,
        files: impl IntoIterator<Item = &'a String>,
    ) -> Vec<HealthCheck> {
        let files: BTreeSet<&str> = files.into_iter().map(String::as_str).collect();
        apply::health_checks(&self.groups_of(host), &files)
    }

    /// Where this command's secret values come from.
    pub fn secrets_source(&self, file: Option<&Path>) -> secrets::Source {
        let st = secrets::store::Store::of(&self.dir);
        let store = st.exists().then_some(st);
        match &self.access.lab {
            Some(name) => secrets::Source::Lab {
                name: name.clone(),
                state_dir: crate::lab::paths::state_dir(name),
                config_dir: self.dir.clone(),
                store,
            },
            None => secrets::Source::File {
                file: file
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| self.dir.join("secrets.env")),
                store,
            },
        }
    }

    /// Every secret name the build uses.
    pub fn secret_names(&self) -> BTreeSet<String> {
        self.build
            .hosts
            .values()
            .flat_map(apply::secret_names)
            .collect()
    }

    /// Every host's files as they will be written (secrets substituted).
    pub fn materialize(
        &self,
        secrets: &Secrets,
    ) -> Result<BTreeMap<String, Materialized>, Box<Diag>> {
        let mut out = BTreeMap::new();
        for (name, hb) in &self.build.hosts {
            match apply::materialize(hb, secrets) {
                Ok(mut m) => {
                    for f in hb.releases.iter().flat_map(|r| r.files.values()) {
                        if let Some(b) = self.build.blobs.get(&f.sha256) {
                            m.blobs.insert(f.sha256.clone(), b.clone());
                        }
                    }
                    out.insert(name.clone(), m);
                }
                Err(apply::MaterializeError::Unencodable {
                    name: secret,
                    path,
                    why,
                }) => {
                    return Err(Box::new(
                        Diag::error(
                            "E0736",
                            format!("{name}: secret `{secret}` cannot be written into {path}: {why}"),
                        )
                        .help(format!("give `{secret}` another value (the file's format cannot hold this one)")),
                    ));
                }
                Err(apply::MaterializeError::Missing(missing)) => {
                    let list: Vec<String> = missing.into_iter().collect();
                    return Err(Box::new(
                        Diag::error(
                            "E0730",
                            format!("{name}: secrets without a value: {}", list.join(", ")),
                        )
                        .help("give them in the secrets file or INFRA_SECRET_* variables"),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Connect to every host of `hosts` (in parallel) and probe it: one
    /// connection, one round trip each. Results in the order of `hosts`.
    pub fn open(
        &self,
        hosts: &[String],
        files: &BTreeMap<String, Materialized>,
        events: &dyn Events,
    ) -> Vec<(String, Result<HostRun, ApplyError>)> {
        let results = transport::in_pool(hosts, self.parallel, |h| {
            HostRun::open(self, h, files, events)
        });
        hosts.iter().cloned().zip(results).collect()
    }

    /// Connect to the hosts of a saved plan (no probe: the plan's state is
    /// re-checked by the switch itself).
    pub fn open_saved(&self, saved: SavedPlan) -> Vec<(String, Result<HostRun, ApplyError>)> {
        let hosts: Vec<String> = saved.hosts.iter().map(|p| p.host.clone()).collect();
        let sessions = transport::in_pool(&hosts, self.parallel, |h| self.connect(h));
        saved
            .hosts
            .into_iter()
            .zip(sessions)
            .map(|(p, s)| (p.host.clone(), s.map(|s| HostRun::saved(s, p))))
            .collect()
    }

    /// A release's `migrate` hook runs once per release, before the switch, on
    /// the member whose database takes writes: the VIP holder of the host's
    /// failover group, or its usual primary while nobody holds the VIP (a
    /// first deploy); on the host itself outside a group. Marked in that
    /// member's plan.
    fn mark_migrations(&self, runs: &mut BTreeMap<String, HostRun>) {
        let probed: BTreeMap<String, &Prepared> =
            runs.iter().map(|(h, r)| (h.clone(), &r.prepared)).collect();
        let groups = order::group_orders(&self.model, &probed);
        for (host, r) in runs.iter_mut() {
            let Some(hb) = self.build.hosts.get(host) else {
                continue;
            };
            let writer = groups
                .iter()
                .find(|g| g.members.contains(host))
                .map(|g| g.vip_holder.clone().or_else(|| g.members.first().cloned()));
            if writer.is_some_and(|w| w.as_deref() != Some(host.as_str())) {
                continue;
            }
            for a in &mut r.prepared.plan.actions {
                if let crate::plan::Action::Release {
                    path,
                    present: false,
                    migrate,
                    ..
                } = a
                {
                    *migrate = hb
                        .releases
                        .iter()
                        .any(|x| x.path == *path && !x.migrate.is_empty());
                }
            }
        }
    }

    /// `infra apply`: probe every host, settle every lock, then roll the changed
    /// hosts through their failover groups (non-holders of the VIP first),
    /// health-gated and confirmed. With `saved`, apply exactly that plan.
    pub fn apply(
        &self,
        files: &BTreeMap<String, Materialized>,
        saved: Option<SavedPlan>,
        opts: &ApplyOptions,
        events: &dyn Events,
    ) -> ApplyOutcome {
        let from_saved = saved.is_some();
        let opened = match saved {
            Some(s) => self.open_saved(s),
            None => self.open(&self.hosts(), files, events),
        };
        let mut runs: BTreeMap<String, HostRun> = BTreeMap::new();
        let mut errors = Vec::new();
        let mut order = Vec::new();
        for (h, r) in opened {
            order.push(h.clone());
            match r {
                Ok(run) => {
                    runs.insert(h, run);
                }
                Err(e) => errors.push(e),
            }
        }
        // Interrupted applies are recovered and live ones waited for, before
        // anything is planned for good.
        if !from_saved {
            let mut list: Vec<HostRun> = runs.into_values().collect();
            let settled = transport::in_pool_mut(&mut list, self.parallel, |run| {
                run.settle(self, files, opts, events)
            });
            for r in settled {
                if let Err(e) = r {
                    errors.push(e);
                }
            }
            runs = list.into_iter().map(|r| (r.host.clone(), r)).collect();
        }
        self.mark_migrations(&mut runs);
        let prepared: BTreeMap<String, Prepared> = runs
            .iter()
            .map(|(h, r)| (h.clone(), r.prepared.clone()))
            .collect();
        let plan = Plan::new(
            order
                .iter()
                .filter_map(|h| prepared.get(h))
                .map(|p| p.plan.clone())
                .collect(),
        );
        let notes: Vec<(String, String)> = order
            .iter()
            .filter_map(|h| runs.get(h))
            .flat_map(|r| r.notes.iter().map(|n| (r.host.clone(), n.clone())))
            .collect();
        events.planned(&plan, &order::vip_story(&self.model, &prepared), &notes);
        if !errors.is_empty() {
            return ApplyOutcome::NotStarted { errors };
        }
        // Refuse before touching anything.
        let mut refused = Vec::new();
        for h in &order {
            let Some(r) = runs.get(h) else { continue };
            let p = &r.prepared;
            if !p.plan.conflicts.is_empty() {
                refused.push(ApplyError::Conflicts {
                    host: h.clone(),
                    conflicts: p.plan.conflicts.clone(),
                });
            }
            if let Some(l) = &p.lock {
                refused.push(ApplyError::Locked {
                    host: h.clone(),
                    holder: l.describe(),
                    state: l.state(),
                    waited: 0,
                });
            }
        }
        if !refused.is_empty() {
            return ApplyOutcome::Refused { errors: refused };
        }
        let changed: BTreeSet<String> = runs
            .values()
            .filter(|r| r.prepared.plan.has_changes())
            .map(|r| r.host.clone())
            .collect();
        for r in runs.values_mut() {
            if !changed.contains(&r.host) {
                r.acknowledge_notes();
            }
        }
        if changed.is_empty() {
            return ApplyOutcome::NoChanges;
        }
        let waves = order::waves(
            &self.host_order,
            &order::group_orders(&self.model, &prepared),
            &changed,
        );
        let unchanged = runs.len() - changed.len();
        let slots: BTreeMap<String, std::sync::Mutex<HostRun>> = runs
            .into_iter()
            .map(|(h, r)| (h, std::sync::Mutex::new(r)))
            .collect();
        let results = order::roll(&waves, self.parallel, |host: &str| {
            let Some(slot) = slots.get(host) else {
                return Err(ApplyError::Protocol {
                    host: host.to_string(),
                    what: "apply".into(),
                    detail: "host missing from the plan".into(),
                });
            };
            let mut run = slot.lock().unwrap_or_else(|e| e.into_inner());
            run.apply(self, files.get(host), opts, events)
        });
        ApplyOutcome::Rolled { results, unchanged }
    }

    /// `infra exec -- CMD`: run `command` (a sh command line, as root, stdin
    /// empty) on each of this command's hosts, at most `parallel` at once: one
    /// connection and one round trip each. Results in the order of the hosts.
    pub fn exec(
        &self,
        command: &str,
        events: &dyn Events,
    ) -> Vec<(String, Result<transport::Output, ApplyError>)> {
        let hosts = self.hosts();
        let script = format!("exec </dev/null\n{command}\n");
        let results = transport::in_pool(&hosts, self.parallel, |h| {
            events.say(h, "connecting");
            let mut s = self.connect(h)?;
            events.say(h, "running");
            let out = s.run(&script, &[])?;
            let how = match &out.signal {
                Some(sig) => format!("killed by {sig}"),
                None => format!("exit {}", out.status),
            };
            events.done(h, &how);
            Ok(out)
        });
        hosts.into_iter().zip(results).collect()
    }

    /// The generations of `host` (one connection, one round trip).
    pub fn generations(&self, host: &str) -> Result<apply::Generations, ApplyError> {
        let mut s = self.connect(host)?;
        apply::generations(&mut s, apply::STATE_DIR, false)
    }

    /// `infra unlock HOST`: recover the lock of an apply that is gone (a
    /// switch not confirmed is rolled back, a confirmed one finished, a lock
    /// without a recorded phase removed); refused while an apply runs there.
    pub fn unlock(&self, host: &str) -> Result<apply::Recovered, ApplyError> {
        let mut s = self.connect(host)?;
        let first = apply::recover(&mut s, apply::STATE_DIR, apply::RecoverMode::Undo)?;
        match first {
            apply::Recovered::Unknown => {
                apply::recover(&mut s, apply::STATE_DIR, apply::RecoverMode::Force)
            }
            apply::Recovered::Live => {
                let g = apply::generations(&mut s, apply::STATE_DIR, false)?;
                let (holder, state) = g
                    .lock
                    .map(|l| (l.describe(), l.state()))
                    .unwrap_or_else(|| ("an apply".into(), crate::probe::LockState::Live));
                Err(ApplyError::Locked {
                    host: host.to_string(),
                    holder,
                    state,
                    waited: 0,
                })
            }
            other => Ok(other),
        }
    }

    /// `infra rollback HOST [--to N]`: switch `host` to an earlier generation,
    /// confirmed over a new connection like an apply.
    pub fn rollback(
        &self,
        host: &str,
        to: Option<u64>,
        opts: &ApplyOptions,
        events: &dyn Events,
    ) -> Result<host::RolledBack, ApplyError> {
        HostRun::rollback(self, host, to, opts, events)
    }

    /// Whether `host` holds the VIP of one of its failover groups now (one
    /// connection, one round trip).
    pub fn holds_a_vip(&self, host: &str) -> Result<bool, ApplyError> {
        let Some(id) = self.model.host_id(host) else {
            return Ok(false);
        };
        let vips: Vec<String> = self
            .model
            .groups
            .iter()
            .filter(|g| g.position(id).is_some())
            .map(|g| format!("inet {}/", g.vip.value.addr))
            .collect();
        if vips.is_empty() {
            return Ok(false);
        }
        let mut session = self.connect(host)?;
        let out = transport::Remote::run(&mut session, "ip -4 -o addr show", b"")?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(vips.iter().any(|v| text.contains(v.as_str())))
    }

    /// `infra rollback --limit`: every selected host back to the generation
    /// before its current one, one host at a time, the hosts that hold a VIP
    /// last (as apply rolls: the service stays on a member not being changed);
    /// stops at the first failure. The hosts attempted, in order, with their
    /// outcome; the rest were not touched.
    pub fn rollback_selected(
        &self,
        opts: &ApplyOptions,
        events: &dyn Events,
    ) -> Result<Vec<(String, RollbackOutcome)>, ApplyError> {
        let selected = self.hosts();
        let hosts: Vec<String> = self
            .host_order
            .iter()
            .filter(|h| selected.contains(h))
            .cloned()
            .collect();
        let holding = transport::in_pool(&hosts, self.parallel, |h| self.holds_a_vip(h));
        let mut order: Vec<(bool, String)> = Vec::new();
        for (h, r) in hosts.iter().zip(holding) {
            order.push((r?, h.clone()));
        }
        // stable: the graph's order within the non-holders and within the holders
        order.sort_by_key(|(holds, _)| *holds);
        let mut done = Vec::new();
        for (_, h) in order {
            let r = HostRun::rollback(self, &h, None, opts, events);
            let failed = r.is_err();
            done.push((h, r));
            if failed {
                break;
            }
        }
        Ok(done)
    }
}

/// `INFRA_DEBUG_ROUND_TRIPS`: round trips and timings per host of a plan that
/// started probing at `started` after `front_end_ms` of compiling.
pub fn round_trips(runs: &[HostRun], started: Instant, front_end_ms: f64) -> String {
    let trips: Vec<String> = runs
        .iter()
        .map(|r| format!("{} {}", r.host, r.round_trips()))
        .collect();
    let timings: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{} connect {:.0} ms, probe {:.0} ms",
                r.host, r.connect_ms, r.probe_ms
            )
        })
        .collect();
    format!(
        "round trips: {} ({:.0} ms)\ntiming: front end and render {front_end_ms:.0} ms; {}\n",
        trips.join(", "),
        ms(started),
        timings.join("; ")
    )
}

/// Milliseconds since `t`.
fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}
