//! `infra plan`, `infra apply`, `infra rollback`, `infra generations`,
//! `infra unlock`: arguments, progress, printing and exit codes over
//! [`crate::deploy`], which does the work.

use super::progress::Progress;
use super::{report, MessageFormat};
use crate::apply::{self, ApplyError, Materialized};
use crate::deploy::{Access, ApplyOptions, Events, Fleet, Line, PlanRound, SavedPlan};
use crate::diag::Diag;
use crate::source::SourceMap;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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

/// Which hosts, and how many at once.
#[derive(Args, Debug, Clone)]
pub struct Selection {
    /// Only these hosts: a host, a failover group (its members and witness) or
    /// `@TAG` (hosts with `tags = ["TAG"]`); comma-separated or repeated, the
    /// union. Default: every host.
    #[arg(long, value_name = "HOSTS")]
    pub limit: Vec<String>,
    /// At most N hosts connected to, probed or switched at once.
    #[arg(long, value_name = "N", default_value_t = crate::deploy::DEFAULT_PARALLEL,
          value_parser = parallel)]
    pub parallel: usize,
}

/// `--parallel N`: 1 to 1024.
fn parallel(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err("give a number of hosts from 1 to 1024".into()),
    }
}

impl Default for Selection {
    fn default() -> Selection {
        Selection {
            limit: Vec::new(),
            parallel: crate::deploy::DEFAULT_PARALLEL,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// A `.infra` file or a directory of them (default: current directory).
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Connection,
    #[command(flatten)]
    pub select: Selection,
    /// The plan as JSON on standard output.
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when nothing would change, 2 when something would, 3 when a host
    /// is locked or awaits a confirmation, 1 on error.
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
    #[command(flatten)]
    pub select: Selection,
    /// Apply the members of a failover group `--limit` selects even when it
    /// leaves other members out (they keep their generation).
    #[arg(long)]
    pub allow_partial_group: bool,
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
    /// Seconds to wait for an apply that is running on a host before giving up
    /// (exit 3).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub lock_wait: u64,
    /// One JSON event per line on standard output instead of the text
    /// (docs/apply-events.schema.json); exit codes as without it.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// A `.infra` file or a directory of them (default: current directory).
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Connection,
    #[command(flatten)]
    pub select: Selection,
    /// The command, after `--`: run by sh as root on each host (sudo for
    /// another `ssh { user }`), standard input empty.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RollbackArgs {
    /// The host to switch back (with --limit: no host; the one argument is the
    /// configuration's directory).
    #[arg(required_unless_present = "limit")]
    pub host: Option<String>,
    /// The generation to switch to (default: the one current before this one).
    #[arg(long, value_name = "N", conflicts_with = "limit")]
    pub to: Option<u64>,
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Connection,
    /// These hosts instead of one (a host, a failover group, `@TAG`; as for
    /// apply): each back to its generation before the current one, one at a
    /// time, the VIP holders last; the first failure stops the rest.
    #[arg(long, value_name = "HOSTS")]
    pub limit: Vec<String>,
    /// With --limit: roll back part of a failover group.
    #[arg(long)]
    pub allow_partial_group: bool,
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub confirm_timeout: u64,
}

#[derive(Args, Debug, Clone)]
pub struct HostArgs {
    pub host: String,
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Connection,
    #[arg(long)]
    pub json: bool,
}

fn error(diag: Diag) {
    report(&[diag], &SourceMap::new(), MessageFormat::Human);
}

/// Show an apply-side error with the command output it carries.
pub(super) fn show(e: &ApplyError) {
    error(e.to_diag());
    if let Some(out) = e.output() {
        errln!("  output on {}:", e.host());
        for line in out.trim_end().lines() {
            errln!("  | {line}");
        }
    }
}

/// The configuration, rendered, and how to reach its hosts.
pub(super) fn fleet(path: &Option<PathBuf>, conn: &Connection) -> Result<Fleet, i32> {
    let path = path.as_deref().unwrap_or(Path::new("."));
    let access = if conn.lab {
        Access::lab(&crate::lab::lab_name(path))
    } else {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Access::ssh(&home.unwrap_or_else(|| PathBuf::from("/root")))
    };
    let access = Access {
        accept_new: conn.accept_new_host_keys,
        ..access
    };
    Ok(Fleet::compiled(super::load_build(path)?, access))
}

/// `fleet` acting on `select`'s hosts, that many at once; Err(1) after saying
/// why a selector matches nothing.
pub(super) fn selected(mut fleet: Fleet, select: &Selection) -> Result<Fleet, i32> {
    fleet.parallel = select.parallel;
    fleet.limit(&select.limit).map_err(|d| {
        error(*d);
        1
    })?;
    Ok(fleet)
}

/// [`prepare`] for a read-only look (`infra status`): when the secrets' values
/// cannot be had (no identity for the store on a monitoring host, say), the hosts
/// are still probed, with stand-in values, and the third value is false: what is
/// pending cannot be counted then.
pub(super) fn prepare_readonly(
    path: &Option<PathBuf>,
    conn: &Connection,
    select: &Selection,
    secrets: Option<&Path>,
) -> Result<(Fleet, BTreeMap<String, Materialized>, bool), i32> {
    let fleet = selected(fleet(path, conn)?, select)?;
    let (values, known) = match secret_values(&fleet, secrets) {
        Ok(v) => (v, true),
        Err(diags) => {
            let why: Vec<&str> = diags.iter().map(|d| d.code).collect();
            errln!(
                "note: the secrets' values cannot be had ({}): pending changes are not counted",
                why.join(", ")
            );
            let mut s = crate::secrets::Secrets::new();
            for n in &fleet.secret_names() {
                s.insert(n, "-".into());
            }
            (s, false)
        }
    };
    let files = materialized(&fleet, &values)?;
    Ok((fleet, files, known))
}

/// The fleet and every host's files with their secret values.
pub(super) fn prepare(
    path: &Option<PathBuf>,
    conn: &Connection,
    select: &Selection,
    secrets: Option<&Path>,
) -> Result<(Fleet, BTreeMap<String, Materialized>), i32> {
    let fleet = selected(fleet(path, conn)?, select)?;
    let files = files(&fleet, secrets)?;
    Ok((fleet, files))
}

/// Every host's files with the secrets' values (docs/secrets.md); Err(exit
/// code) after printing why.
fn files(fleet: &Fleet, secrets: Option<&Path>) -> Result<BTreeMap<String, Materialized>, i32> {
    let values = secret_values(fleet, secrets).map_err(|diags| {
        report(&diags, &SourceMap::new(), MessageFormat::Human);
        1
    })?;
    materialized(fleet, &values)
}

/// The values of every secret `fleet`'s hosts use (docs/secrets.md: the
/// environment, the secrets file, the store).
fn secret_values(
    fleet: &Fleet,
    secrets: Option<&Path>,
) -> Result<crate::secrets::Secrets, Vec<Diag>> {
    let keys = super::secrets::keys(&[]);
    crate::secrets::gather(&fleet.secrets_source(secrets), &fleet.secret_names(), &keys)
}

/// Every host's files with `values` substituted; Err(exit code) after printing why.
fn materialized(
    fleet: &Fleet,
    values: &crate::secrets::Secrets,
) -> Result<BTreeMap<String, Materialized>, i32> {
    fleet.materialize(values).map_err(|d| {
        error(*d);
        1
    })
}

// ---------------------------------------------------------------------------
// infra plan

pub fn plan(args: PlanArgs) -> i32 {
    let started_all = Instant::now();
    let (fleet, files) = match prepare(
        &args.path,
        &args.conn,
        &args.select,
        args.secrets.as_deref(),
    ) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let hosts = fleet.hosts();
    let progress = Progress::new(&hosts);
    let started = Instant::now();
    let round = PlanRound::new(fleet.open(&hosts, &files, &progress));
    progress.clear();
    let front_end = (started - started_all).as_secs_f64() * 1000.0;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&round.json()).unwrap_or_default()
        );
    } else {
        let prepared = round
            .runs
            .iter()
            .map(|r| (r.host.clone(), r.prepared.clone()));
        let story = apply::order::vip_story(&fleet.model, &prepared.collect());
        progress.planned(&round.plan, &story, &round.notes);
        for (host, story) in &round.locks {
            outln!("{host}: ! {story}");
        }
        round.errors.iter().for_each(show);
    }
    if std::env::var_os("INFRA_DEBUG_ROUND_TRIPS").is_some() {
        err!(
            "{}",
            crate::deploy::round_trips(&round.runs, started, front_end)
        );
    }
    let code = round.exit_code(args.detailed_exitcode);
    match &args.out {
        Some(out) if !round.complete() => {
            errln!(
                "not saving the plan to {}: some hosts could not be planned",
                out.display()
            );
            1
        }
        Some(out) => {
            let sp = SavedPlan::new(round.runs.into_iter().map(|r| r.prepared).collect());
            if let Err(e) = std::fs::write(out, sp.to_json()) {
                error(
                    Diag::error("E0732", format!("cannot write {}: {e}", out.display()))
                        .help("check the path"),
                );
                return 1;
            }
            let o = out.display();
            errln!("plan saved to {o}: apply it with `infra apply --plan {o}`");
            code
        }
        None => code,
    }
}

// ---------------------------------------------------------------------------
// infra apply

/// Err(1) after E0751 when `hosts` holds part of a failover group, unless
/// `allow` (`--allow-partial-group`).
fn whole_groups(fleet: &Fleet, hosts: &[String], allow: bool) -> Result<(), i32> {
    let partial = crate::deploy::select::partial_groups(&fleet.model, hosts);
    if partial.is_empty() || allow {
        return Ok(());
    }
    error(crate::deploy::select::partial_group_error(&partial));
    Err(1)
}

/// Who applies, in words: written into the host lock.
fn holder(verb: &str) -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    format!("infra {verb} by {user}@{host} (pid {})", std::process::id())
}

fn options(confirm_timeout: u64, lock_wait: u64, verb: &str) -> Result<ApplyOptions, i32> {
    if confirm_timeout < 10 {
        error(
            Diag::error(
                "E0733",
                format!("--confirm-timeout {confirm_timeout} is too short"),
            )
            .help("give at least 10 seconds"),
        );
        return Err(1);
    }
    Ok(ApplyOptions {
        confirm_timeout,
        lock_wait: Duration::from_secs(lock_wait),
        holder: holder(verb),
    })
}

pub fn apply(args: ApplyArgs) -> i32 {
    let fleet = match fleet(&args.path, &args.conn).and_then(|f| selected(f, &args.select)) {
        Ok(f) => f,
        Err(code) => return code,
    };
    // a part of a pair is refused before anything is read or connected to
    if let Err(code) = whole_groups(&fleet, &fleet.hosts(), args.allow_partial_group) {
        return code;
    }
    let files = match files(&fleet, args.secrets.as_deref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let opts = match options(args.confirm_timeout, args.lock_wait, "apply") {
        Ok(o) => o,
        Err(code) => return code,
    };
    let saved = match &args.plan {
        None => None,
        Some(f) => {
            let name = f.display().to_string();
            let parsed = std::fs::read_to_string(f)
                .map_err(|e| {
                    Box::new(
                        Diag::error("E0734", format!("cannot read {name}: {e}"))
                            .help(format!("make a new plan with `infra plan --out {name}`")),
                    )
                })
                .and_then(|text| SavedPlan::parse_and_check(&name, &text, &fleet.build, &files));
            match parsed {
                Ok(s) => Some(s),
                Err(d) => {
                    error(*d);
                    return 1;
                }
            }
        }
    };
    let hosts: Vec<String> = match &saved {
        Some(_) if !args.select.limit.is_empty() => {
            error(
                Diag::error(
                    "E0750",
                    "--limit with --plan: a saved plan applies the hosts it was made for",
                )
                .help("give --limit to `infra plan --out FILE` instead"),
            );
            return 1;
        }
        Some(s) => {
            let hosts: Vec<String> = s.hosts.iter().map(|p| p.host.clone()).collect();
            // the hosts the saved plan was made for (its own --limit)
            if let Err(code) = whole_groups(&fleet, &hosts, args.allow_partial_group) {
                return code;
            }
            hosts
        }
        None => fleet.hosts(),
    };
    let started = Instant::now();
    if args.json {
        let outcome = fleet.apply(&files, saved, &opts, &JsonEvents);
        for v in outcome.events(started.elapsed().as_secs_f64()) {
            outln!("{}", crate::deploy::event::line(&v));
        }
        return outcome.exit_code();
    }
    let progress = Progress::new(&hosts);
    let outcome = fleet.apply(&files, saved, &opts, &progress);
    progress.clear();
    for line in outcome.lines(started.elapsed().as_secs_f64()) {
        match line {
            Line::Out(l) => outln!("{l}"),
            Line::Err(l) => errln!("{l}"),
            Line::Error(e) => show(e),
        }
    }
    if std::env::var_os("INFRA_DEBUG_ROUND_TRIPS").is_some() {
        if let crate::deploy::ApplyOutcome::Rolled { results, .. } = &outcome {
            let trips: Vec<String> = results
                .iter()
                .filter_map(|(h, step)| match step {
                    crate::apply::order::Step::Done(a) => Some(format!(
                        "{h} {} + {} (confirmation)",
                        a.round_trips.0, a.round_trips.1
                    )),
                    _ => None,
                })
                .collect();
            errln!("round trips: {}", trips.join(", "));
        }
    }
    outcome.exit_code()
}

/// `apply --json`'s live events, a line each on stdout (deploy/event.rs).
struct JsonEvents;

impl Events for JsonEvents {
    fn say(&self, host: &str, msg: &str) {
        let v = serde_json::json!({"event": "progress", "host": host, "message": msg});
        outln!("{}", crate::deploy::event::line(&v));
    }
    fn done(&self, host: &str, msg: &str) {
        let v =
            serde_json::json!({"event": "progress", "host": host, "message": msg, "done": true});
        outln!("{}", crate::deploy::event::line(&v));
    }
    fn planned(&self, plan: &crate::plan::Plan, story: &[String], notes: &[(String, String)]) {
        let notes: Vec<_> = notes
            .iter()
            .map(|(h, n)| serde_json::json!({"host": h, "note": n}))
            .collect();
        let v = serde_json::json!({"event": "plan", "plan": plan, "story": story, "notes": notes});
        outln!("{}", crate::deploy::event::line(&v));
    }
    fn event(&self, e: &crate::deploy::Event) {
        outln!("{}", crate::deploy::event::line(e));
    }
}

// ---------------------------------------------------------------------------
// infra exec

/// `infra exec [--limit ...] -- CMD`: each host's output, every line prefixed
/// with the host (its stderr on stderr), then a summary; exit 0 when the
/// command exited 0 everywhere, else 1.
pub fn exec(args: ExecArgs) -> i32 {
    let fleet = match fleet(&args.path, &args.conn).and_then(|f| selected(f, &args.select)) {
        Ok(f) => f,
        Err(code) => return code,
    };
    // as ssh does: the words joined by spaces, for the remote shell to read
    let command = args.command.join(" ");
    let hosts = fleet.hosts();
    let width = hosts.iter().map(String::len).max().unwrap_or(0);
    let progress = Progress::new(&hosts);
    let results = fleet.exec(&command, &progress);
    progress.clear();
    let (mut ok, mut failed, mut unreachable) = (Vec::new(), Vec::new(), Vec::new());
    for (host, r) in &results {
        match r {
            Ok(out) => {
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    outln!("{host:<width$} | {line}");
                }
                for line in String::from_utf8_lossy(&out.stderr).lines() {
                    errln!("{host:<width$} ! {line}");
                }
                match (&out.signal, out.status) {
                    (None, 0) => ok.push(host.clone()),
                    (Some(sig), _) => failed.push(format!("{host}: killed by {sig}")),
                    (None, n) => failed.push(format!("{host}: exit {n}")),
                }
            }
            Err(e) => {
                show(e);
                unreachable.push(host.clone());
            }
        }
    }
    let mut summary = format!(
        "exec on {} host{}: {} ok",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        ok.len()
    );
    if !failed.is_empty() {
        summary += &format!(", {} failed ({})", failed.len(), failed.join(", "));
    }
    if !unreachable.is_empty() {
        summary += &format!(
            ", {} not reached ({})",
            unreachable.len(),
            unreachable.join(", ")
        );
    }
    errln!("{summary}");
    i32::from(ok.len() != results.len())
}

// ---------------------------------------------------------------------------
// infra rollback / generations / unlock

pub fn rollback(mut args: RollbackArgs) -> i32 {
    if !args.limit.is_empty() {
        // `infra rollback --limit office DIR`: the one positional is the directory
        if args.path.is_some() && args.host.is_some() {
            errln!("error: give either a HOST or --limit, not both\n  help: `infra rollback HOST [DIR]` or `infra rollback --limit HOSTS [DIR]`");
            return 1;
        }
        if args.path.is_none() {
            args.path = args.host.take().map(PathBuf::from);
        }
        return rollback_selected(args);
    }
    let Some(host) = args.host.clone() else {
        return 1; // clap requires HOST without --limit
    };
    let fleet = match fleet(&args.path, &args.conn) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let opts = match options(args.confirm_timeout, 0, "rollback") {
        Ok(o) => o,
        Err(code) => return code,
    };
    let progress = Progress::new(&[]);
    match fleet.rollback(&host, args.to, &opts, &progress) {
        Ok(r) => {
            outln!("\n{host}: generation {} is current (confirmed)", r.to);
            if std::env::var_os("INFRA_DEBUG_ROUND_TRIPS").is_some() {
                errln!(
                    "round trips: {} {} + {} (confirmation)",
                    host,
                    r.round_trips.0,
                    r.round_trips.1
                );
            }
            0
        }
        Err(e) => {
            show(&e);
            e.exit_code()
        }
    }
}

/// `infra rollback --limit SEL`: the selected hosts one at a time.
fn rollback_selected(args: RollbackArgs) -> i32 {
    let select = Selection {
        limit: args.limit.clone(),
        ..Selection::default()
    };
    let fleet = match fleet(&args.path, &args.conn).and_then(|f| selected(f, &select)) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let partial = crate::deploy::select::partial_groups(&fleet.model, &fleet.hosts());
    if !partial.is_empty() && !args.allow_partial_group {
        error(crate::deploy::select::partial_group_error(&partial));
        return 1;
    }
    let opts = match options(args.confirm_timeout, 0, "rollback") {
        Ok(o) => o,
        Err(code) => return code,
    };
    let progress = Progress::new(&[]);
    let done = match fleet.rollback_selected(&opts, &progress) {
        Ok(d) => d,
        Err(e) => {
            show(&e);
            return e.exit_code();
        }
    };
    let mut code = 0;
    let mut back = Vec::new();
    for (host, r) in &done {
        match r {
            Ok(r) => {
                outln!("{host}: generation {} is current (confirmed)", r.to);
                back.push(host.clone());
            }
            Err(e) => {
                show(e);
                code = e.exit_code();
            }
        }
    }
    let untouched: Vec<String> = fleet
        .hosts()
        .into_iter()
        .filter(|h| !done.iter().any(|(d, _)| d == h))
        .collect();
    if code == 0 {
        outln!(
            "rolled back: {} host(s), one at a time ({})",
            back.len(),
            back.join(", then ")
        );
    } else {
        outln!(
            "rollback stopped: {} rolled back ({}); not touched: {}",
            back.len(),
            if back.is_empty() {
                "none".to_string()
            } else {
                back.join(", ")
            },
            if untouched.is_empty() {
                "none".to_string()
            } else {
                untouched.join(", ")
            }
        );
    }
    code
}

pub fn generations(args: HostArgs) -> i32 {
    let fleet = match fleet(&args.path, &args.conn) {
        Ok(f) => f,
        Err(code) => return code,
    };
    match fleet.generations(&args.host) {
        Ok(g) if args.json => {
            outln!("{}", serde_json::to_string_pretty(&g).unwrap_or_default());
            0
        }
        Ok(g) => {
            out!("{}", g.render(&args.host));
            0
        }
        Err(e) => {
            show(&e);
            e.exit_code()
        }
    }
}

pub fn unlock(args: HostArgs) -> i32 {
    let fleet = match fleet(&args.path, &args.conn) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let host = &args.host;
    match fleet.unlock(host) {
        Ok(r) => {
            outln!("{host}: {}", r.describe(host));
            i32::from(!r.released())
        }
        Err(e) => {
            show(&e);
            e.exit_code()
        }
    }
}
