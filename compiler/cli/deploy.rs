//! `infra plan`, `infra apply`, `infra rollback`, `infra generations`: the
//! configuration (load, render) on one side, the hosts (connect, probe, plan,
//! switch, confirm) on the other. One SSH connection per host for the whole
//! command, hosts in parallel; apply adds one new connection per host to prove
//! SSH still works after the switch (see crate::apply).

use super::{report, MessageFormat};
use crate::apply::order::{self, GroupOrder, Step};
use crate::apply::{self, ApplyError, Materialized, Prepared, SavedPlan};
use crate::diag::Diag;
use crate::plan::{Action, Plan};
use crate::probe::{Observed, ProbeError};
use crate::render::Build;
use crate::resolve::Model;
use crate::secrets::Secrets;
use crate::source::SourceMap;
use crate::transport::{self, Session, Target};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Use the local lab named after the configuration directory (`infra lab up`):
    /// its network, key and host keys; missing secrets are generated into it.
    #[arg(long)]
    pub lab: bool,
    /// Record unknown host keys in known_hosts instead of refusing them.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// A `.infra` file or a directory of them (default: current directory).
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Connection,
    /// The plan as JSON on standard output.
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when nothing would change, 2 when something would, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan (with the probed state it depends on) for `infra apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Secret values, `name=value` per line (default: secrets.env next to the configuration).
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ApplyArgs {
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Connection,
    /// Apply exactly this saved plan (`infra plan --out FILE`); refused if a host
    /// or the configuration changed since.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    /// Seconds a switched host waits for confirmation over a new SSH connection
    /// before it switches back by itself.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub confirm_timeout: u64,
}

#[derive(Args, Debug, Clone)]
pub struct RollbackArgs {
    /// The host to switch back.
    pub host: String,
    /// The generation to switch to (default: the one current before this one).
    #[arg(long, value_name = "N")]
    pub to: Option<u64>,
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Connection,
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub confirm_timeout: u64,
}

#[derive(Args, Debug, Clone)]
pub struct GenerationsArgs {
    pub host: String,
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Connection,
    #[arg(long)]
    pub json: bool,
}

// ---------------------------------------------------------------------------
// Shared setup

type Dial = dyn Fn(SocketAddr, Duration) -> std::io::Result<TcpStream> + Sync;

/// The configuration, rendered, and how to reach its hosts.
struct Ctx {
    dir: PathBuf,
    model: Model,
    host_order: Vec<String>,
    build: Build,
    lab: Option<String>,
    known_hosts: PathBuf,
    key: Option<PathBuf>,
    accept_new: bool,
}

fn error(diag: Diag) {
    report(&[diag], &SourceMap::new(), MessageFormat::Human);
}

fn plain_error(code: &'static str, msg: String, help: String) {
    error(Diag::error(code, msg).help(help));
}

/// Show an apply-side error with the command output it carries.
fn show(e: &ApplyError) {
    error(e.to_diag());
    if let Some(out) = e.output() {
        eprintln!("  output on {}:", e.host());
        for line in out.trim_end().lines() {
            eprintln!("  | {line}");
        }
    }
}

fn config_dir(path: &Path) -> PathBuf {
    if path.is_file() {
        path.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    } else {
        path.to_path_buf()
    }
}

fn context(path: &Path, conn: &Connection) -> Result<Ctx, i32> {
    let (resolved, graph, build) = super::load_build(path)?;
    let dir = config_dir(path);
    let model = resolved.model;
    let host_order = graph
        .host_order
        .iter()
        .map(|&h| model.hosts[h].name.value.clone())
        .collect();
    let (lab, known_hosts, key) = if conn.lab {
        let name = lab_api::name(path);
        let (key, known) = lab_api::identity(&name);
        (Some(name), known, Some(key))
    } else {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        (None, home.join(".ssh/known_hosts"), None)
    };
    Ok(Ctx {
        dir,
        model,
        host_order,
        build,
        lab,
        known_hosts,
        key,
        accept_new: conn.accept_new_host_keys,
    })
}

impl Ctx {
    fn target(&self, host: &str) -> Option<Target> {
        let h = self.model.hosts.iter().find(|h| h.name.value == host)?;
        let mut t = Target::new(host, &h.address.value.to_string(), self.known_hosts.clone());
        t.port = h.ssh.port;
        t.user = h.ssh.user.clone();
        t.key = self.key.clone().or_else(|| {
            h.ssh.key.as_ref().map(|k| {
                let p = PathBuf::from(k);
                if p.is_relative() {
                    self.dir.join(p)
                } else {
                    p
                }
            })
        });
        t.accept_new = self.accept_new;
        t.command_timeout = Duration::from_secs(30 * 60);
        Some(t)
    }

    /// Hosts in the model's order.
    fn hosts(&self) -> Vec<String> {
        self.model
            .hosts
            .iter()
            .map(|h| h.name.value.clone())
            .collect()
    }

    fn dialer(&self) -> Box<Dial> {
        match &self.lab {
            Some(name) => {
                let name = name.clone();
                Box::new(move |a, t| lab_api::connect(&name, a, t))
            }
            None => Box::new(transport::dial_tcp),
        }
    }

    /// The failover groups a host is a member of.
    fn groups_of(&self, host: &str) -> Vec<String> {
        let Some(id) = self.model.hosts.iter().position(|h| h.name.value == host) else {
            return Vec::new();
        };
        self.model
            .groups
            .iter()
            .filter(|g| g.position(id).is_some())
            .map(|g| g.name.value.clone())
            .collect()
    }

    fn group_orders(&self, prepared: &BTreeMap<String, Prepared>) -> Vec<GroupOrder> {
        self.model
            .groups
            .iter()
            .map(|g| {
                let members: Vec<String> = g
                    .members
                    .iter()
                    .map(|m| self.model.hosts[m.value].name.value.clone())
                    .collect();
                let vip = g.vip.value.addr.to_string();
                let vip_holder = members
                    .iter()
                    .find(|m| prepared.get(*m).is_some_and(|p| p.holds(&vip)))
                    .cloned();
                GroupOrder {
                    name: g.name.value.clone(),
                    members,
                    vip_holder,
                }
            })
            .collect()
    }

    /// Where each failover group's VIP is and whether the apply moves it, in the
    /// operator's words (printed after the plan).
    fn vip_story(&self, prepared: &BTreeMap<String, Prepared>) -> String {
        let mut out = String::new();
        for (g, order) in self.model.groups.iter().zip(self.group_orders(prepared)) {
            let vip = g.vip.value.addr;
            let others = |h: &str| {
                order
                    .members
                    .iter()
                    .filter(|m| *m != h)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let line = match &order.vip_holder {
                None => match order.members.first() {
                    Some(first) => format!(
                        "no member holds VIP {vip} yet: {first}, the usual primary, is applied first and takes it"
                    ),
                    None => continue,
                },
                Some(h) => {
                    let restarts = prepared.get(h).is_some_and(|p| {
                        p.plan.actions.iter().any(|a| {
                            matches!(a, Action::RestartUnit { unit, .. } | Action::StopUnit { unit }
                                if unit == "keepalived.service")
                        })
                    });
                    let changes = prepared.get(h).is_some_and(|p| p.plan.has_changes());
                    if restarts {
                        format!(
                            "VIP {vip} is on {h}; keepalived restarts there, so the VIP moves to {} during the apply (and stays: nopreempt)",
                            others(h)
                        )
                    } else if order.members.len() > 1 && changes {
                        format!("VIP {vip} is on {h} and stays there: {} first, {h} last", others(h))
                    } else {
                        format!("VIP {vip} is on {h} and stays there")
                    }
                }
            };
            out.push_str(&format!("failover {}: {line}\n", g.name.value));
        }
        out
    }

    /// Secret values: from the lab (generated when missing), or from the secrets
    /// file and INFRA_SECRET_* (missing ones are an error).
    fn secrets(&self, file: Option<&Path>) -> Result<Secrets, i32> {
        let names: BTreeSet<String> = self
            .build
            .hosts
            .values()
            .flat_map(apply::secret_names)
            .collect();
        if let Some(lab) = &self.lab {
            let dir = lab_api::state_dir(lab);
            if !dir.is_dir() {
                plain_error(
                    "E0731",
                    format!("lab {lab} is not up ({} does not exist)", dir.display()),
                    format!("run `infra lab up {}` first", self.dir.display()),
                );
                return Err(1);
            }
            let file = dir.join("secrets.env");
            let mut s = match Secrets::load(Some(&file), &names) {
                Ok(s) => s,
                Err(e) => {
                    plain_error(
                        "E0730",
                        e,
                        format!("remove {} to start over", file.display()),
                    );
                    return Err(1);
                }
            };
            let before: BTreeSet<String> = s.names().map(str::to_string).collect();
            if let Err(e) = s.generate_missing(&names) {
                plain_error(
                    "E0730",
                    format!("cannot generate lab secrets: {e}"),
                    "install openssh-client (ssh-keygen)".into(),
                );
                return Err(1);
            }
            if names.iter().any(|n| !before.contains(n)) {
                if let Err(e) = s.write_file(&file) {
                    plain_error(
                        "E0730",
                        format!("cannot write {}: {e}", file.display()),
                        "check the lab's state directory".into(),
                    );
                    return Err(1);
                }
            }
            return Ok(s);
        }
        let file = file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.dir.join("secrets.env"));
        let s = match Secrets::load(Some(&file), &names) {
            Ok(s) => s,
            Err(e) => {
                plain_error(
                    "E0730",
                    e,
                    "fix the secrets file: one `name=value` per line".into(),
                );
                return Err(1);
            }
        };
        let missing: Vec<&String> = names.iter().filter(|n| s.get(n).is_none()).collect();
        if !missing.is_empty() {
            for n in &missing {
                plain_error(
                    "E0730",
                    format!("secret `{n}` has no value"),
                    format!(
                        "add `{n}=...` to {} (keep it out of git), or set the environment variable {}",
                        file.display(),
                        crate::secrets::env_var(n)
                    ),
                );
            }
            return Err(1);
        }
        Ok(s)
    }
}

/// `--lab` support: the lab's name, network, key, known hosts and state directory.
mod lab_api {
    use std::net::{SocketAddr, TcpStream};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    pub fn name(config: &Path) -> String {
        crate::lab::lab_name(config)
    }
    pub fn identity(name: &str) -> (PathBuf, PathBuf) {
        crate::lab::ssh_identity(name)
    }
    pub fn state_dir(name: &str) -> PathBuf {
        crate::lab::paths::state_dir(name)
    }
    pub fn connect(name: &str, addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
        crate::lab::connect(name, addr, timeout)
    }
}

// ---------------------------------------------------------------------------
// Progress: a spinner per host on a terminal, plain lines otherwise.

struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Progress {
    fn new(hosts: &[String]) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let multi = tty.then(MultiProgress::new);
        let mut bars = BTreeMap::new();
        if let Some(m) = &multi {
            let width = hosts.iter().map(String::len).max().unwrap_or(0);
            let style =
                ProgressStyle::with_template(&format!("{{spinner}} {{prefix:{width}}}  {{msg}}"))
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
            for h in hosts {
                let b = m.add(ProgressBar::new_spinner());
                b.set_style(style.clone());
                b.set_prefix(h.clone());
                b.enable_steady_tick(Duration::from_millis(120));
                bars.insert(h.clone(), b);
            }
        }
        Progress {
            multi,
            bars: Mutex::new(bars),
        }
    }

    fn say(&self, host: &str, msg: &str) {
        if self.multi.is_some() {
            if let Some(b) = self.bars.lock().ok().and_then(|b| b.get(host).cloned()) {
                b.set_message(msg.to_string());
            }
        } else {
            eprintln!("{host}: {msg}");
        }
    }

    fn done(&self, host: &str, msg: &str) {
        if self.multi.is_some() {
            if let Some(b) = self.bars.lock().ok().and_then(|b| b.get(host).cloned()) {
                b.finish_with_message(msg.to_string());
            }
        } else {
            eprintln!("{host}: {msg}");
        }
    }

    fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

// ---------------------------------------------------------------------------
// Connect + probe + plan

/// One host after connect, probe and plan.
struct Probed {
    session: Session,
    observed: Observed,
    prepared: Prepared,
    /// Milliseconds: connect (TCP, handshake, host key, auth), probe.
    timing: (f64, f64),
}

fn probe_error(e: ProbeError) -> ApplyError {
    ApplyError::Probe(e)
}

/// Materialize every host's files with `secrets`.
/// What plan and apply both start from: the resolved and rendered configuration,
/// and every host's files with the secret values filled in.
fn prepare(
    path: &Path,
    conn: &Connection,
    secrets_file: Option<&Path>,
) -> Result<(Ctx, BTreeMap<String, Materialized>), i32> {
    let ctx = context(path, conn)?;
    let secrets = ctx.secrets(secrets_file)?;
    let files = materialize_all(&ctx, &secrets)?;
    Ok((ctx, files))
}

fn materialize_all(ctx: &Ctx, secrets: &Secrets) -> Result<BTreeMap<String, Materialized>, i32> {
    let mut out = BTreeMap::new();
    for (name, hb) in &ctx.build.hosts {
        match apply::materialize(hb, secrets) {
            Ok(m) => {
                out.insert(name.clone(), m);
            }
            Err(missing) => {
                let list: Vec<String> = missing.into_iter().collect();
                plain_error(
                    "E0730",
                    format!("{name}: secrets without a value: {}", list.join(", ")),
                    "give them in the secrets file or INFRA_SECRET_* variables".into(),
                );
                return Err(1);
            }
        }
    }
    Ok(out)
}

/// Connect to every host (in parallel) and probe it: one connection, one round
/// trip each. Results in model host order.
fn probe_all(
    ctx: &Ctx,
    hosts: &[String],
    files: &BTreeMap<String, Materialized>,
    progress: &Progress,
) -> Vec<(String, Result<Probed, ApplyError>)> {
    let dial = ctx.dialer();
    let results = transport::in_parallel(hosts, |host| {
        let (Some(target), Some(build)) = (ctx.target(host), ctx.build.hosts.get(host)) else {
            return Err(ApplyError::Protocol {
                host: host.clone(),
                what: "render".into(),
                detail: "the host has no build (not in the configuration?)".into(),
            });
        };
        progress.say(host, "connecting");
        let t0 = Instant::now();
        let mut session = transport::connect(&target, &*dial)?;
        let t1 = Instant::now();
        progress.say(host, "probing");
        let observed =
            crate::probe::probe(&mut session, build, apply::STATE_DIR).map_err(probe_error)?;
        let timing = (
            (t1 - t0).as_secs_f64() * 1000.0,
            t1.elapsed().as_secs_f64() * 1000.0,
        );
        let hashes = files
            .get(host)
            .map(|m| apply::secret_sha256(build, m))
            .unwrap_or_default();
        let prepared = apply::prepare(build, &observed, hashes);
        progress.say(host, &prepared.plan.summary.describe());
        Ok(Probed {
            session,
            observed,
            prepared,
            timing,
        })
    });
    hosts.iter().cloned().zip(results).collect()
}

fn error_json(e: &ApplyError) -> serde_json::Value {
    serde_json::json!({
        "host": e.host(),
        "code": e.code(),
        "message": e.to_string(),
        "help": e.help(),
        "output": e.output(),
    })
}

// ---------------------------------------------------------------------------
// infra plan

pub fn plan(args: PlanArgs) -> i32 {
    let started_all = Instant::now();
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let (ctx, files) = match prepare(&path, &args.conn, args.secrets.as_deref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let hosts = ctx.hosts();
    let progress = Progress::new(&hosts);
    let started = Instant::now();
    let probed = probe_all(&ctx, &hosts, &files, &progress);
    progress.clear();
    let mut plans = Vec::new();
    let mut saved = Vec::new();
    let mut errors = Vec::new();
    let mut trips = Vec::new();
    let mut timings = Vec::new();
    let front_end =
        started_all.elapsed().as_secs_f64() * 1000.0 - started.elapsed().as_secs_f64() * 1000.0;
    for (host, r) in probed {
        match r {
            Ok(p) => {
                trips.push(format!("{host} {}", p.session.round_trips()));
                timings.push(format!(
                    "{host} connect {:.0} ms, probe {:.0} ms",
                    p.timing.0, p.timing.1
                ));
                plans.push(p.prepared.plan.clone());
                saved.push(p.prepared);
                let _ = p.observed;
            }
            Err(e) => errors.push(e),
        }
    }
    let plan = Plan::new(plans);
    if args.json {
        let mut v = serde_json::to_value(&plan).unwrap_or_default();
        if let serde_json::Value::Object(o) = &mut v {
            o.insert("errors".into(), errors.iter().map(error_json).collect());
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", plan.render_text(color()));
        let by_host: BTreeMap<String, Prepared> =
            saved.iter().map(|p| (p.host.clone(), p.clone())).collect();
        print!("{}", ctx.vip_story(&by_host));
        for e in &errors {
            show(e);
        }
    }
    if std::env::var_os("INFRA_DEBUG_ROUND_TRIPS").is_some() {
        eprintln!(
            "round trips: {} ({:.0} ms)",
            trips.join(", "),
            started.elapsed().as_secs_f64() * 1000.0
        );
        eprintln!(
            "timing: front end and render {front_end:.0} ms; {}",
            timings.join("; ")
        );
    }
    if let Some(out) = &args.out {
        if !errors.is_empty() {
            eprintln!(
                "not saving the plan to {}: some hosts could not be planned",
                out.display()
            );
            return 1;
        }
        let sp = SavedPlan {
            format: apply::SAVED_PLAN_FORMAT,
            hosts: saved,
        };
        let text = serde_json::to_string_pretty(&sp).unwrap_or_default();
        if let Err(e) = std::fs::write(out, format!("{text}\n")) {
            plain_error(
                "E0732",
                format!("cannot write {}: {e}", out.display()),
                "check the path".into(),
            );
            return 1;
        }
        eprintln!(
            "plan saved to {}: apply it with `infra apply --plan {}`",
            out.display(),
            out.display()
        );
    }
    if !errors.is_empty() {
        1
    } else if args.detailed_exitcode {
        plan.detailed_exit_code()
    } else {
        0
    }
}

// ---------------------------------------------------------------------------
// infra apply

fn holder() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    format!("infra apply by {user}@{host} (pid {})", std::process::id())
}

/// Timeouts of a switch: the timer's deadline and how long the health checks may take.
fn health_timeout(confirm_timeout: u64) -> u64 {
    (confirm_timeout / 2).max(5)
}

pub fn apply(args: ApplyArgs) -> i32 {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let (ctx, files) = match prepare(&path, &args.conn, args.secrets.as_deref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if args.confirm_timeout < 10 {
        plain_error(
            "E0733",
            format!("--confirm-timeout {} is too short", args.confirm_timeout),
            "give at least 10 seconds".into(),
        );
        return 1;
    }
    let saved = match &args.plan {
        None => None,
        Some(f) => match load_saved(f, &ctx, &files) {
            Ok(s) => Some(s),
            Err(code) => return code,
        },
    };
    let hosts: Vec<String> = match &saved {
        Some(s) => s.hosts.iter().map(|p| p.host.clone()).collect(),
        None => ctx.hosts(),
    };
    let progress = Progress::new(&hosts);
    let started = Instant::now();

    // 1. Connect (and probe, unless the plan was saved).
    let mut sessions: BTreeMap<String, Mutex<Option<Session>>> = BTreeMap::new();
    let mut prepared: BTreeMap<String, Prepared> = BTreeMap::new();
    let mut errors: Vec<ApplyError> = Vec::new();
    match saved {
        None => {
            for (host, r) in probe_all(&ctx, &hosts, &files, &progress) {
                match r {
                    Ok(p) => {
                        sessions.insert(host.clone(), Mutex::new(Some(p.session)));
                        prepared.insert(host, p.prepared);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        Some(s) => {
            let dial = ctx.dialer();
            let targets: Vec<Target> = s.hosts.iter().filter_map(|p| ctx.target(&p.host)).collect();
            for (t, r) in targets.iter().zip(transport::connect_all(&targets, &*dial)) {
                match r {
                    Ok(sess) => {
                        sessions.insert(t.host.clone(), Mutex::new(Some(sess)));
                    }
                    Err(e) => errors.push(e.into()),
                }
            }
            for p in s.hosts {
                prepared.insert(p.host.clone(), p);
            }
        }
    }
    progress.clear();
    let plan = Plan::new(
        hosts
            .iter()
            .filter_map(|h| prepared.get(h))
            .map(|p| p.plan.clone())
            .collect(),
    );
    print!("{}", plan.render_text(color()));
    print!("{}", ctx.vip_story(&prepared));
    if !errors.is_empty() {
        for e in &errors {
            show(e);
        }
        eprintln!("nothing was applied: every host must be reachable before any is changed");
        return 1;
    }
    // 2. Refuse before touching anything.
    let mut refused = false;
    for h in &hosts {
        let Some(p) = prepared.get(h) else { continue };
        if !p.plan.conflicts.is_empty() {
            show(&ApplyError::Conflicts {
                host: h.clone(),
                conflicts: p.plan.conflicts.clone(),
            });
            refused = true;
        }
        if let Some(holder) = &p.lock {
            if p.plan.has_changes() {
                show(&ApplyError::Locked {
                    host: h.clone(),
                    holder: holder.describe(),
                });
                refused = true;
            }
        }
    }
    if refused {
        eprintln!("nothing was applied");
        return 1;
    }
    let changed: BTreeSet<String> = prepared
        .values()
        .filter(|p| p.plan.has_changes())
        .map(|p| p.host.clone())
        .collect();
    if changed.is_empty() {
        println!("\nno changes: nothing to apply");
        return 0;
    }

    // 3. Roll.
    let waves = order::waves(&ctx.host_order, &ctx.group_orders(&prepared), &changed);
    let progress = Progress::new(&changed.iter().cloned().collect::<Vec<_>>());
    let holder = holder();
    let dial = ctx.dialer();
    let results = order::roll(&waves, |host| {
        let t0 = Instant::now();
        let (Some(p), Some(build), Some(m), Some(slot)) = (
            prepared.get(host),
            ctx.build.hosts.get(host),
            files.get(host),
            sessions.get(host),
        ) else {
            return Err(ApplyError::Protocol {
                host: host.to_string(),
                what: "apply".into(),
                detail: "host missing from the plan".into(),
            });
        };
        let manifest = apply::new_manifest(build, p.generation, &m.installed);
        let token = apply::token();
        progress.say(host, &format!("switching to generation {}", p.generation));
        let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
        let Some(session) = guard.as_mut() else {
            return Err(ApplyError::Protocol {
                host: host.to_string(),
                what: "apply".into(),
                detail: "no session".into(),
            });
        };
        let job = apply::SwitchJob {
            build,
            prepared: p,
            files: Some(m),
            target_manifest: &manifest,
            target: p.generation,
            state_dir: apply::STATE_DIR,
            holder: &holder,
            token: &token,
            deadline: args.confirm_timeout,
        };
        let r = apply::switch(session, &job);
        drop(guard);
        let switched = match r {
            Ok(s) => s,
            Err(e) => {
                progress.done(host, "failed");
                return Err(e);
            }
        };
        let checks = apply::health_checks(
            &ctx.groups_of(host),
            &manifest.files.keys().map(String::as_str).collect(),
        );
        progress.say(
            host,
            &if checks.is_empty() {
                "confirming over a new connection".to_string()
            } else {
                format!(
                    "confirming over a new connection, health check of {}",
                    names(&checks)
                )
            },
        );
        confirm_new(
            &ctx,
            &*dial,
            host,
            &token,
            p.generation,
            p.previous,
            &checks,
            args.confirm_timeout,
        )?;
        let secs = t0.elapsed().as_secs_f64();
        progress.done(
            host,
            &format!("generation {} confirmed ({secs:.1} s)", p.generation),
        );
        Ok((switched, secs))
    });
    progress.clear();

    // 4. Report.
    println!();
    let mut failed = false;
    let mut applied = 0;
    let mut failed_host = String::new();
    for (host, step) in &results {
        match step {
            Step::Done((sw, secs)) => {
                applied += 1;
                let summary = prepared
                    .get(host)
                    .map(|p| p.plan.summary.describe())
                    .unwrap_or_default();
                println!(
                    "{host}: generation {} applied and confirmed in {secs:.1} s ({summary})",
                    sw.generation
                );
                for w in &sw.warnings {
                    println!("{host}: warning: {w}");
                }
            }
            Step::Failed(e) => {
                failed = true;
                failed_host = host.clone();
                show(e);
            }
            Step::NotTouched => {
                println!("{host}: not touched (the roll stopped after {failed_host} failed)");
            }
        }
    }
    let unchanged = hosts.len() - changed.len();
    let total = started.elapsed().as_secs_f64();
    if failed {
        println!("apply failed: {applied} host(s) applied, the roll stopped ({total:.1} s)");
        1
    } else {
        println!("applied: {applied} host(s) changed, {unchanged} unchanged ({total:.1} s)");
        0
    }
}

fn names(checks: &[apply::script::HealthCheck]) -> String {
    checks
        .iter()
        .map(|c| c.group.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Open a NEW connection and confirm the switch on it.
#[allow(clippy::too_many_arguments)]
fn confirm_new(
    ctx: &Ctx,
    dial: &Dial,
    host: &str,
    token: &str,
    generation: u64,
    previous: Option<u64>,
    checks: &[apply::script::HealthCheck],
    confirm_timeout: u64,
) -> Result<(), ApplyError> {
    let unconfirmed = |detail: String| ApplyError::Unconfirmed {
        host: host.to_string(),
        generation,
        detail,
        deadline: confirm_timeout,
    };
    let Some(target) = ctx.target(host) else {
        return Err(unconfirmed("the host is not in the configuration".into()));
    };
    let mut second = transport::connect(&target, dial).map_err(|e| unconfirmed(e.to_string()))?;
    apply::confirm(
        &mut second,
        apply::STATE_DIR,
        token,
        generation,
        previous,
        checks,
        health_timeout(confirm_timeout),
    )
    .map_err(|e| match e {
        ApplyError::Transport(t) => unconfirmed(t.to_string()),
        other => other,
    })
}

/// Read a saved plan and check it still matches the configuration and secrets.
fn load_saved(
    file: &Path,
    ctx: &Ctx,
    files: &BTreeMap<String, Materialized>,
) -> Result<SavedPlan, i32> {
    let bad = |msg: String| {
        plain_error(
            "E0734",
            msg,
            format!("make a new plan with `infra plan --out {}`", file.display()),
        );
        1
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| bad(format!("cannot read {}: {e}", file.display())))?;
    let sp: SavedPlan = serde_json::from_str(&text)
        .map_err(|e| bad(format!("{} is not a saved plan: {e}", file.display())))?;
    if sp.format != apply::SAVED_PLAN_FORMAT {
        return Err(bad(format!(
            "{} is a plan of format {}, this infra reads {}",
            file.display(),
            sp.format,
            apply::SAVED_PLAN_FORMAT
        )));
    }
    for p in &sp.hosts {
        let Some(build) = ctx.build.hosts.get(&p.host) else {
            return Err(bad(format!(
                "the plan is for host {}, which the configuration no longer has",
                p.host
            )));
        };
        if apply::build_sha256(build) != p.build_sha256 {
            return Err(bad(format!(
                "the configuration changed since the plan was made (host {})",
                p.host
            )));
        }
        let now = files
            .get(&p.host)
            .map(|m| apply::secret_sha256(build, m))
            .unwrap_or_default();
        if now != p.secret_sha256 {
            return Err(bad(format!(
                "secret values changed since the plan was made (host {})",
                p.host
            )));
        }
    }
    Ok(sp)
}

// ---------------------------------------------------------------------------
// infra rollback / infra generations

fn connect_one(ctx: &Ctx, host: &str) -> Result<Session, i32> {
    let Some(target) = ctx.target(host) else {
        let known = ctx.hosts().join(", ");
        plain_error(
            "E0735",
            format!("there is no host `{host}` in the configuration"),
            format!("hosts: {known}"),
        );
        return Err(1);
    };
    let dial = ctx.dialer();
    transport::connect(&target, &*dial).map_err(|e| {
        error(e.to_diag());
        1
    })
}

pub fn generations(args: GenerationsArgs) -> i32 {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let ctx = match context(&path, &args.conn) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut session = match connect_one(&ctx, &args.host) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let g = match apply::generations(&mut session, apply::STATE_DIR, false) {
        Ok(g) => g,
        Err(e) => {
            show(&e);
            return 1;
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&g).unwrap_or_default());
        return 0;
    }
    print!("{}", render_generations(&args.host, &g));
    0
}

pub fn render_generations(host: &str, g: &apply::Generations) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if g.list.is_empty() {
        let _ = writeln!(s, "{host}: no generations (infra never applied here)");
        return s;
    }
    let _ = writeln!(
        s,
        "{host}: {} generation{}",
        g.list.len(),
        if g.list.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(s, "     GEN  DATE (UTC)            FILES");
    for x in &g.list {
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
    if let Some(l) = &g.lock {
        let _ = writeln!(s, "  lock held: {l}");
    }
    s
}

pub fn rollback(args: RollbackArgs) -> i32 {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let ctx = match context(&path, &args.conn) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let host = args.host.as_str();
    let mut session = match connect_one(&ctx, host) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let fail = |e: ApplyError| {
        show(&e);
        1
    };
    let g = match apply::generations(&mut session, apply::STATE_DIR, true) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let available = || {
        let v: Vec<String> = g.list.iter().map(|x| x.number.to_string()).collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let wanted = match args.to.or_else(|| g.default_target()) {
        Some(n) => n,
        None => {
            return fail(ApplyError::NoGeneration {
                host: host.into(),
                wanted: "before the current one".into(),
                available: available(),
            })
        }
    };
    let Some(target_manifest) = g
        .list
        .iter()
        .find(|x| x.number == wanted)
        .and_then(|x| x.manifest.clone())
    else {
        return fail(ApplyError::NoGeneration {
            host: host.into(),
            wanted: wanted.to_string(),
            available: available(),
        });
    };
    let address = ctx
        .build
        .hosts
        .get(host)
        .map(|b| b.address.clone())
        .unwrap_or_default();
    let (build, hashes) = apply::rollback_build(host, &address, &target_manifest);
    let observed = match crate::probe::probe(&mut session, &build, apply::STATE_DIR) {
        Ok(o) => o,
        Err(e) => return fail(e.into()),
    };
    let mut prepared = apply::prepare(&build, &observed, hashes);
    apply::relabel_rollback_plan(&mut prepared.plan, &target_manifest, wanted);
    prepared.generation = wanted;
    println!(
        "{host}: rolling back from {} to generation {wanted}",
        match g.current {
            Some(c) => format!("generation {c}"),
            None => "no generation".into(),
        }
    );
    print!(
        "{}",
        Plan::new(vec![prepared.plan.clone()]).render_text(color())
    );
    if let Some(holder) = &prepared.lock {
        return fail(ApplyError::Locked {
            host: host.into(),
            holder: holder.describe(),
        });
    }
    let token = apply::token();
    let holder = holder().replace("infra apply", "infra rollback");
    let job = apply::SwitchJob {
        build: &build,
        prepared: &prepared,
        files: None,
        target_manifest: &target_manifest,
        target: wanted,
        state_dir: apply::STATE_DIR,
        holder: &holder,
        token: &token,
        deadline: args.confirm_timeout,
    };
    if let Err(e) = apply::switch(&mut session, &job) {
        return fail(e);
    }
    let checks = apply::health_checks(
        &ctx.groups_of(host),
        &target_manifest.files.keys().map(String::as_str).collect(),
    );
    let dial = ctx.dialer();
    if let Err(e) = confirm_new(
        &ctx,
        &*dial,
        host,
        &token,
        wanted,
        prepared.previous,
        &checks,
        args.confirm_timeout,
    ) {
        return fail(e);
    }
    println!("\n{host}: generation {wanted} is current (confirmed)");
    0
}
