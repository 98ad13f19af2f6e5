//! `infra drill`: what a failure costs, measured on the lab. A writer in the lab
//! namespace inserts unique ids through the failover group's VIP while a fault hits
//! the pair (power cut, database killed or paused, keepalived paused, a partition
//! between the members, the VIP holder isolated, the standby restarted); after the
//! heal, once one primary holds the VIP and every other member streams from it, the
//! drill reads the final primary and counts, per round, acknowledged writes lost,
//! unacknowledged writes present, seconds until writes succeed again, seconds with
//! two writable primaries, and how long the pair took to heal by itself.
//!
//! Lab only: faults are made with the lab's own controls (power, bridge ports,
//! signals inside the hosts). For its clients the drill adds, while it runs, one
//! pg_hba line on every member (`trust` for its own role and database from the lab
//! address only) and a role and database `infra_drill` on the primary; it removes
//! them when it ends. See docs/drill.md.

pub mod observe;
pub mod pg;
pub mod report;
pub mod svg;

use crate::lab::{self, LabError, LinkFault};
use observe::{Observer, DATABASE, USER};
pub use report::{Budget, DrillReport, Marks, RoundReport};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// How long the pair may take to be whole again after a heal (or before a round).
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);
/// Writes before the fault and after convergence.
const BEFORE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Cut the VIP holder's power (its processes die, its network card goes); power it
    /// on again after the hold.
    Poweroff,
    /// SIGKILL the database server on the VIP holder.
    KillDb,
    /// SIGSTOP the database server on the VIP holder for the hold, then SIGCONT.
    PauseDb,
    /// SIGSTOP keepalived on the VIP holder for the hold, then SIGCONT.
    PauseKeepalived,
    /// The members cannot reach each other (clients still reach both) for the hold.
    Partition,
    /// The VIP holder reaches nobody for the hold (its link stays up).
    Isolate,
    /// Power-cycle a standby.
    RestartStandby,
    /// Load, not a failure: busy loops on every core and a writer syncing to disk on
    /// the VIP holder for the hold. Nothing may fail over.
    Stress,
    /// A mistake instead of a failure: rows deleted on the primary and brought back
    /// with `infra restore` to the moment before (needs a `postgres_backup` or a
    /// `mariadb_backup`; no
    /// writer, nothing breaks).
    Restore,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Poweroff => "poweroff",
            Fault::KillDb => "kill-db",
            Fault::PauseDb => "pause-db",
            Fault::PauseKeepalived => "pause-keepalived",
            Fault::Partition => "partition",
            Fault::Isolate => "isolate",
            Fault::RestartStandby => "restart-standby",
            Fault::Stress => "stress",
            Fault::Restore => "restore",
        }
    }

    /// How long the fault lasts unless `--hold` says otherwise.
    pub fn default_hold(self) -> Duration {
        match self {
            Fault::Poweroff => Duration::from_secs(10),
            Fault::KillDb | Fault::RestartStandby | Fault::Restore => Duration::ZERO,
            Fault::PauseDb | Fault::PauseKeepalived | Fault::Partition | Fault::Isolate => {
                Duration::from_secs(30)
            }
            Fault::Stress => Duration::from_secs(60),
        }
    }
}

/// What to drill, taken from the configuration by the CLI.
#[derive(Debug, Clone)]
pub struct DrillSpec {
    pub lab: String,
    pub group: String,
    /// In preference order.
    pub members: Vec<Member>,
    pub vip: Ipv4Addr,
    /// The `postgres` instance on the group: its major version and port.
    pub version: i64,
    pub port: u16,
    /// `replication = "sync"`: converged also means every standby is synchronous
    /// (and knows it: its eligibility check lets it take the VIP).
    pub sync: bool,
    /// The cluster's instance name (`postgres.NAME`).
    pub cluster: String,
    pub fault: Fault,
    pub rounds: u32,
    pub hold: Duration,
    /// The writer's ceiling, writes per second.
    pub rate: u32,
    pub budget: Budget,
}

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
}

fn failed(what: impl Into<String>, detail: impl std::fmt::Display) -> DrillError {
    DrillError::Failed {
        what: what.into(),
        detail: detail.to_string(),
    }
}

/// Run the drill: set its clients up, run every round, take its clients away again.
/// `say` gets one line per thing done, for a person watching.
pub fn run(spec: &DrillSpec, say: &dyn Fn(&str)) -> Result<DrillReport, DrillError> {
    if spec.fault == Fault::Restore {
        return Err(failed(
            "--fault restore",
            "is a restore drill, not a failover round (the CLI runs it: `infra drill --fault restore`)",
        ));
    }
    if spec.members.len() < 2 {
        return Err(failed(
            format!("failover group `{}`", spec.group),
            "has one member: there is nothing to fail over to",
        ));
    }
    let client = lab::client_address(&spec.lab, &spec.members[0].name)?;
    undo_leftovers(spec, say)?;
    say(&format!(
        "waiting until the pair is whole (one primary holding the VIP {}, every other member streaming)",
        spec.vip
    ));
    let primary = wait_converged(spec, CONVERGE_TIMEOUT, false)?;
    say(&format!(
        "setting the drill's clients up: role and database {USER} on {primary}, a pg_hba line for {client} on every member"
    ));
    let setup = set_up(spec, &primary, client);
    let result = setup.and_then(|()| rounds(spec, say));
    say("removing the drill's pg_hba line, role and database");
    let cleaned = clean_up(spec);
    let mut report = result?;
    if let Err(e) = cleaned {
        report.left_behind = Some(e.to_string());
    }
    Ok(report)
}

fn rounds(spec: &DrillSpec, say: &dyn Fn(&str)) -> Result<DrillReport, DrillError> {
    let mut report = DrillReport {
        lab: spec.lab.clone(),
        group: spec.group.clone(),
        members: spec.members.iter().map(|m| m.name.clone()).collect(),
        fault: spec.fault.name().into(),
        hold_s: spec.hold.as_secs_f64(),
        rounds: Vec::new(),
        budget: spec.budget.clone(),
        broken: Vec::new(),
        stopped: None,
        left_behind: None,
        timelines: Vec::new(),
    };
    for n in 1..=spec.rounds {
        let (r, timeline) = round(spec, n, say)?;
        report.timelines.push(timeline);
        for line in spec.budget.broken(&r) {
            report.broken.push((n, line));
        }
        let healed = r.healed_s.is_some();
        say(&format!(
            "round {n}: {} acknowledged, {} lost, writable again after {}, {:.1} s with two primaries, {}",
            r.acknowledged,
            r.lost.map(|l| l.to_string()).unwrap_or_else(|| "?".into()),
            r.writable_again_s
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_else(|| "never".into()),
            r.dual_primary_s,
            r.healed_s
                .map(|s| format!("whole again {s:.1} s after the heal"))
                .unwrap_or_else(|| "not whole again".into())
        ));
        report.rounds.push(r);
        if !healed {
            report.stopped = Some(format!(
                "round {n}: the pair was not whole again {} s after the heal: see `infra lab status --lab {}` and the members' journals (`journalctl -u keepalived -u 'infra-postgres-*'`)",
                CONVERGE_TIMEOUT.as_secs(),
                spec.lab
            ));
            break;
        }
    }
    Ok(report)
}

fn round(
    spec: &DrillSpec,
    n: u32,
    say: &dyn Fn(&str),
) -> Result<(RoundReport, observe::Timeline), DrillError> {
    let primary = wait_converged(spec, CONVERGE_TIMEOUT, true)?;
    fresh_table(spec, &primary)?;
    let standby = spec
        .members
        .iter()
        .find(|m| m.name != primary)
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let target = match spec.fault {
        Fault::Partition => None,
        Fault::RestartStandby => Some(standby),
        _ => Some(primary.clone()),
    };
    let t0 = Instant::now();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let obs = Observer::start(
        &spec.lab,
        spec.vip,
        spec.port,
        &spec.members,
        t0,
        u64::from(n) * 1_000_000_000,
        spec.rate,
    );
    std::thread::sleep(BEFORE);
    let what = match &target {
        Some(t) => format!("{} on {t}", spec.fault.name()),
        None => format!("{} between {}", spec.fault.name(), names(spec)),
    };
    say(&format!("round {n}/{}: {what}", spec.rounds));
    let fault_at = observe::secs(Instant::now(), t0);
    let injected = set_fault(spec, target.as_deref(), true);
    let heal_at = match injected {
        Ok(()) => {
            std::thread::sleep(spec.hold);
            let at = observe::secs(Instant::now(), t0);
            if !spec.hold.is_zero() || spec.fault == Fault::RestartStandby {
                say(&format!("round {n}: healing ({})", heal_words(spec.fault)));
            }
            set_fault(spec, target.as_deref(), false).map(|()| at)
        }
        Err(e) => Err(e),
    };
    let heal_at = match heal_at {
        Ok(at) => at,
        Err(e) => {
            let _ = obs.finish();
            // leave nothing half-done: every member's port back, every process resumed
            let _ = set_fault(spec, target.as_deref(), false);
            return Err(e);
        }
    };
    let converged = wait_converged(spec, CONVERGE_TIMEOUT, true);
    if let Err(e) = &converged {
        say(&format!("round {n}: {e}"));
    }
    let converged_at = converged
        .as_ref()
        .ok()
        .map(|_| observe::secs(Instant::now(), t0));
    if converged.is_ok() {
        std::thread::sleep(AFTER);
    }
    let end = observe::secs(Instant::now(), t0);
    let tl = obs.finish().map_err(|e| failed("the drill's clients", e))?;
    let (after, present) = match &converged {
        Ok(p) => (Some(p.clone()), Some(read_ids(spec, p)?)),
        Err(_) => (None, None),
    };
    let before = spec
        .members
        .iter()
        .position(|m| m.name == primary)
        .unwrap_or(0);
    let kept = match &after {
        Some(p) => kept_copies(spec, p, started),
        None => Vec::new(),
    };
    let mut r = report::measure(
        n,
        spec.fault.name(),
        target,
        before,
        primary,
        after,
        Marks {
            fault_at,
            heal_at,
            converged_at,
            end,
        },
        &tl,
        present.as_ref(),
    );
    r.kept = kept;
    Ok((r, tl))
}

fn names(spec: &DrillSpec) -> String {
    spec.members
        .iter()
        .map(|m| m.name.as_str())
        .collect::<Vec<_>>()
        .join(" and ")
}

fn heal_words(f: Fault) -> &'static str {
    match f {
        Fault::Poweroff | Fault::RestartStandby => "power on",
        Fault::PauseDb | Fault::PauseKeepalived => "SIGCONT",
        Fault::Partition | Fault::Isolate => "link back",
        Fault::Stress => "load stopped",
        Fault::KillDb | Fault::Restore => "nothing to undo",
    }
}

/// Put the fault in place (`on`) or take it away (the heal).
fn set_fault(spec: &DrillSpec, target: Option<&str>, on: bool) -> Result<(), DrillError> {
    let lab = spec.lab.as_str();
    let t = target.unwrap_or("");
    let pause = if on { "STOP" } else { "CONT" };
    match spec.fault {
        Fault::Poweroff | Fault::RestartStandby if on => lab::kill(lab, t)?,
        Fault::Poweroff | Fault::RestartStandby => {
            lab::start(lab, t)?;
        }
        Fault::KillDb if on => signal(lab, t, "KILL", "postgres")?,
        Fault::KillDb => {}
        Fault::PauseDb => signal(lab, t, pause, "postgres")?,
        Fault::PauseKeepalived => signal(lab, t, pause, "keepalived")?,
        Fault::Partition => {
            for m in &spec.members {
                lab::link_fault(lab, &m.name, LinkFault::Partitioned, on)?;
            }
        }
        Fault::Isolate => lab::link_fault(lab, t, LinkFault::Detached, on)?,
        Fault::Stress if on => stress(lab, t)?,
        Fault::Stress => unstress(lab, t)?,
        Fault::Restore => {}
    }
    Ok(())
}

/// Data directories a rejoining member kept aside during this round
/// (`keep_diverged_days`): where the lost writes can still be read. `HOST:PATH`.
fn kept_copies(spec: &DrillSpec, primary: &str, since_epoch: u64) -> Vec<String> {
    let mut out = Vec::new();
    for m in spec.members.iter().filter(|m| m.name != primary) {
        let dir = format!("/var/lib/postgresql/{}", spec.version);
        let Ok(o) = lab::exec(
            &spec.lab,
            &m.name,
            &[
                "find",
                &dir,
                "-maxdepth",
                "1",
                "-name",
                "main.infra-diverged-*",
                "-newermt",
                &format!("@{since_epoch}"),
            ],
        ) else {
            continue;
        };
        let text = String::from_utf8_lossy(&o.stdout);
        let mut paths: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        paths.sort();
        out.extend(paths.into_iter().map(|p| format!("{}:{p}", m.name)));
    }
    out
}

/// A drill that was interrupted (Ctrl-C) leaves its fault in place: a member powered
/// off, a port isolated or off the bridge, a process stopped. Undo all of that first
/// (each step is harmless when there is nothing to undo).
fn undo_leftovers(spec: &DrillSpec, say: &dyn Fn(&str)) -> Result<(), DrillError> {
    let status = lab::status(&spec.lab)?;
    for m in &spec.members {
        let off = status
            .hosts
            .iter()
            .any(|h| h.name == m.name && h.state == lab::HostState::Stopped);
        if off {
            say(&format!(
                "{} is powered off (an interrupted drill?): powering it on",
                m.name
            ));
            lab::start(&spec.lab, &m.name)?;
        }
        lab::link_fault(&spec.lab, &m.name, LinkFault::Partitioned, false)?;
        lab::link_fault(&spec.lab, &m.name, LinkFault::Detached, false)?;
        let _ = lab::exec(
            &spec.lab,
            &m.name,
            &[
                "sh",
                "-c",
                "pkill -CONT -x postgres; pkill -CONT -x keepalived; true",
            ],
        )?;
        unstress(&spec.lab, &m.name)?;
    }
    Ok(())
}

/// The unit the `stress` fault runs on the VIP holder, and its scratch file.
const STRESS_UNIT: &str = "infra-drill-stress.service";
const STRESS_FILE: &str = "/var/tmp/infra-drill-stress";

/// Two busy loops per core and a writer of 256 MiB at a time, each synced to the
/// disk, as a transient unit (nice 0, beside the host's services): a batch job
/// gone wild, a backup, a full disk cache.
fn stress(lab: &str, host: &str) -> Result<(), DrillError> {
    let script = format!(
        "n=$(( $(nproc) * 2 )); while [ \"$n\" -gt 0 ]; do (while :; do :; done) & n=$((n - 1)); done; \
         while :; do dd if=/dev/zero of={STRESS_FILE} bs=1M count=256 conv=fsync status=none; done"
    );
    let out = lab::exec(
        lab,
        host,
        &[
            "systemd-run",
            "--quiet",
            "--collect",
            "--unit",
            STRESS_UNIT,
            "sh",
            "-c",
            &script,
        ],
    )?;
    if !out.status.success() {
        return Err(failed(
            format!("the load on {host}"),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Stop the load (harmless when none runs).
fn unstress(lab: &str, host: &str) -> Result<(), DrillError> {
    lab::exec(
        lab,
        host,
        &[
            "sh",
            "-c",
            &format!("systemctl stop {STRESS_UNIT} 2>/dev/null; rm -f {STRESS_FILE}; true"),
        ],
    )?;
    Ok(())
}

/// Send SIG`sig` to every process named `comm` on `host`; at least one must exist.
fn signal(lab: &str, host: &str, sig: &str, comm: &str) -> Result<(), DrillError> {
    let out = lab::exec(lab, host, &["pkill", &format!("-{sig}"), "-x", comm])?;
    if !out.status.success() {
        return Err(failed(
            format!("SIG{sig} to {comm} on {host}"),
            format!("no process `{comm}` runs there"),
        ));
    }
    Ok(())
}

/// What `psql` printed (unaligned, tuples only) as the postgres user on a member,
/// or its error.
fn psql_out(spec: &DrillSpec, host: &str, db: &str, sql: &str) -> Result<String, String> {
    let out = lab::exec(
        &spec.lab,
        host,
        &[
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-XtAqd",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
    )
    .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// One value (the last line) of `psql` as the postgres user on a member.
fn psql(spec: &DrillSpec, host: &str, db: &str, sql: &str) -> Result<String, String> {
    psql_out(spec, host, db, sql).map(|text| text.lines().last().unwrap_or("").trim().to_string())
}

/// One primary, holding the VIP, every other member streaming from it: its name, or
/// why not.
/// With `through_vip`, a client in the lab namespace must also reach the primary
/// through the VIP (needs the drill's pg_hba line).
fn converged(spec: &DrillSpec, through_vip: bool) -> Result<String, String> {
    let states: Vec<(String, Option<bool>)> = spec
        .members
        .iter()
        .map(|m| {
            let r = psql(spec, &m.name, "postgres", "select pg_is_in_recovery()").ok();
            (m.name.clone(), r.map(|v| v == "t"))
        })
        .collect();
    let primaries: Vec<&str> = states
        .iter()
        .filter(|(_, r)| *r == Some(false))
        .map(|(n, _)| n.as_str())
        .collect();
    let describe = || {
        states
            .iter()
            .map(|(n, r)| {
                let s = match r {
                    Some(false) => "primary",
                    Some(true) => "standby",
                    None => "not answering",
                };
                format!("{n} {s}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let [primary] = primaries[..] else {
        return Err(format!("PostgreSQL: {}", describe()));
    };
    let names: Vec<String> = spec.members.iter().map(|m| m.name.clone()).collect();
    let holders = observe::vip_holders(&spec.lab, &names, spec.vip);
    let holders: Vec<&str> = holders.iter().map(|&i| names[i].as_str()).collect();
    if holders != [primary] {
        return Err(format!(
            "the VIP {} is on [{}], the primary is {primary}",
            spec.vip,
            holders.join(", ")
        ));
    }
    // Both sides of each stream: the standby's receiver says streaming, and the
    // primary has a streaming walsender for the standby's address. (The primary alone
    // is not enough: a walsender to a standby that vanished stays "streaming" until
    // wal_sender_timeout.)
    let senders = psql(
        spec,
        primary,
        "postgres",
        "select coalesce(string_agg(host(client_addr) || '=' || sync_state, ' '), '') from pg_stat_replication where state = 'streaming'",
    )?;
    let senders: Vec<(&str, &str)> = senders
        .split_whitespace()
        .filter_map(|s| s.split_once('='))
        .collect();
    for m in spec.members.iter().filter(|m| m.name != primary) {
        let receiver = psql(
            spec,
            &m.name,
            "postgres",
            "select coalesce((select status from pg_stat_wal_receiver), 'none')",
        )
        .unwrap_or_else(|_| "not answering".into());
        let address = m.address.to_string();
        let sender = senders.iter().find(|(a, _)| *a == address);
        if receiver != "streaming" || sender.is_none() {
            return Err(format!(
                "{} does not stream from {primary} yet (its receiver: {receiver}; {primary} streams to [{}])",
                m.name,
                senders.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(", ")
            ));
        }
        // `FIRST 1` (sync.sh): the standby that confirms every commit is `sync`
        if spec.sync {
            let state = sender.map(|(_, s)| *s).unwrap_or("");
            if state != "sync" {
                return Err(format!(
                    "{} streams from {primary} but is not synchronous yet ({state})",
                    m.name
                ));
            }
            // and its eligibility check has seen it (else keepalived keeps it in FAULT)
            let seen = format!("/run/infra/{}/postgres-{}-sync", spec.group, spec.cluster);
            let out = lab::exec(&spec.lab, &m.name, &["cat", &seen]).map_err(|e| e.to_string())?;
            let seen = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if seen != "sync" {
                return Err(format!(
                    "{} is synchronous but its eligibility check has not seen it yet ({})",
                    m.name,
                    if seen.is_empty() { "nothing" } else { &seen }
                ));
            }
        }
    }
    if through_vip {
        // and a client reaches it through the VIP (a stale ARP entry black-holes it)
        let t = observe::target(spec.vip, spec.port, 500, 1000);
        let seen = observe::in_lab(&spec.lab, move || {
            pg::query(&t, "select pg_is_in_recovery()")
        })
        .map_err(|e| e.to_string())?;
        match seen {
            Ok(rows)
                if rows
                    .first()
                    .and_then(|r| r.first())
                    .cloned()
                    .flatten()
                    .as_deref()
                    == Some("f") => {}
            Ok(_) => return Err(format!("the VIP {} leads clients to a standby", spec.vip)),
            Err(e) => {
                return Err(format!(
                    "clients do not reach {primary} through the VIP {} ({e})",
                    spec.vip
                ))
            }
        }
    }
    Ok(primary.to_string())
}

fn wait_converged(
    spec: &DrillSpec,
    limit: Duration,
    through_vip: bool,
) -> Result<String, DrillError> {
    let t = Instant::now();
    loop {
        match converged(spec, through_vip) {
            Ok(p) => return Ok(p),
            Err(why) if t.elapsed() > limit => {
                return Err(failed(
                    format!(
                        "the pair was not whole {} s after waiting began",
                        limit.as_secs()
                    ),
                    why,
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

fn hba(spec: &DrillSpec) -> String {
    format!("/etc/postgresql/{}/main/pg_hba.conf", spec.version)
}

const HBA_MARK: &str = "# infra drill: removed when the drill ends";

fn set_up(spec: &DrillSpec, primary: &str, client: Ipv4Addr) -> Result<(), DrillError> {
    let line = format!("host    {DATABASE}     {USER}     {client}/32          trust {HBA_MARK}");
    let file = hba(spec);
    for m in &spec.members {
        let script = format!(
            "grep -qF '{HBA_MARK}' {file} || sed -i '1i {line}' {file}; systemctl reload postgresql@{v}-main.service 2>/dev/null || true",
            v = spec.version
        );
        let out = lab::exec(&spec.lab, &m.name, &["sh", "-c", &script])?;
        if !out.status.success() {
            return Err(failed(
                format!("adding the drill's pg_hba line on {}", m.name),
                String::from_utf8_lossy(&out.stderr).trim(),
            ));
        }
    }
    let role = format!(
        "do $$ begin if not exists (select from pg_roles where rolname = '{USER}') then create role {USER} login; end if; end $$"
    );
    psql(spec, primary, "postgres", &role).map_err(|e| failed("creating the drill's role", e))?;
    let exists = psql(
        spec,
        primary,
        "postgres",
        &format!("select count(*) from pg_database where datname = '{DATABASE}'"),
    )
    .map_err(|e| failed("looking for the drill's database", e))?;
    if exists != "1" {
        psql(
            spec,
            primary,
            "postgres",
            &format!("create database {DATABASE} owner {USER}"),
        )
        .map_err(|e| failed("creating the drill's database", e))?;
    }
    // Every member must let the drill's client in before a round starts: a reload
    // sent while a server was still starting is lost, so ask again until it answers.
    let t = Instant::now();
    for m in &spec.members {
        loop {
            let target = observe::target(m.address, spec.port, 500, 2000);
            let r = observe::in_lab(&spec.lab, move || pg::query(&target, "select 1"))
                .map_err(|e| failed("the drill's client", e))?;
            match r {
                Ok(_) => break,
                Err(e) if t.elapsed() > Duration::from_secs(30) => {
                    return Err(failed(
                        format!("the drill's client on {} ({})", m.name, m.address),
                        format!("refused 30 s after its pg_hba line was added: {e}"),
                    ))
                }
                Err(_) => {
                    let reload = format!(
                        "runuser -u postgres -- psql -XtAqc 'select pg_reload_conf()' >/dev/null 2>&1 || systemctl reload postgresql@{}-main.service >/dev/null 2>&1 || true",
                        spec.version
                    );
                    lab::exec(&spec.lab, &m.name, &["sh", "-c", &reload])?;
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }
    Ok(())
}

/// An empty table `w` on the primary, replayed on every standby before the round.
fn fresh_table(spec: &DrillSpec, primary: &str) -> Result<(), DrillError> {
    let addr = spec
        .members
        .iter()
        .find(|m| m.name == primary)
        .map(|m| m.address)
        .unwrap_or(spec.vip);
    let t = observe::target(addr, spec.port, 2000, 5000);
    let r = observe::in_lab(&spec.lab, move || {
        pg::query(
            &t,
            "drop table if exists w; create table w (id bigint primary key)",
        )
    })
    .map_err(|e| failed("the drill's client", e))?;
    r.map_err(|e| failed(format!("creating the drill's table on {primary}"), e))?;
    let t = Instant::now();
    for m in spec.members.iter().filter(|m| m.name != primary) {
        loop {
            let ok = psql(
                spec,
                &m.name,
                DATABASE,
                "select to_regclass('public.w') is not null",
            )
            .is_ok_and(|v| v == "t");
            if ok {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err(failed(
                    format!("waiting for the drill's table on {}", m.name),
                    "not replayed 30 s after it was created on the primary: is it streaming?",
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

fn read_ids(spec: &DrillSpec, primary: &str) -> Result<BTreeSet<u64>, DrillError> {
    let text = psql_out(spec, primary, DATABASE, "select id from w")
        .map_err(|e| failed(format!("reading the drill's table on {primary}"), e))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Take the drill's line out of every member's pg_hba (a powered-off member gets it
/// back out on the next drill), its database and role off the primary.
fn clean_up(spec: &DrillSpec) -> Result<(), DrillError> {
    let file = hba(spec);
    let mut errors = Vec::new();
    for m in &spec.members {
        let script = format!(
            "sed -i '/{}$/d' {file}; systemctl reload postgresql@{}-main.service 2>/dev/null || true",
            HBA_MARK, spec.version
        );
        match lab::exec(&spec.lab, &m.name, &["sh", "-c", &script]) {
            Ok(o) if o.status.success() => {}
            Ok(o) => errors.push(format!(
                "{}: {}",
                m.name,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => errors.push(format!("{}: {e}", m.name)),
        }
    }
    if let Ok(primary) = wait_converged(spec, Duration::from_secs(30), false) {
        let drop = format!("drop database if exists {DATABASE} with (force)");
        if let Err(e) = psql(spec, &primary, "postgres", &drop).and_then(|_| {
            psql(
                spec,
                &primary,
                "postgres",
                &format!("drop role if exists {USER}"),
            )
        }) {
            errors.push(format!("{primary}: {e}"));
        }
    } else {
        errors.push(format!(
            "role and database {USER} left on the primary (the pair is not whole): drop them by hand"
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(failed("removing the drill's clients", errors.join("; ")))
    }
}
