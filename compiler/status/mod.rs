//! `infra status`: the live truth of a configuration's hosts, read-only. Each
//! host's probe asks the questions of [`script`] in the same round trip (who holds
//! the VIP, the keepalived state, the database roles and their replication, the
//! last share pushes, the active-only jobs, disk use); [`parse`] reads the answer
//! into [`Facts`]; [`assess`] turns every host's facts, or the reason it could not
//! be reached, into a [`Report`] with one summary line a person reads first and an
//! exit code (0 healthy, 1 a host unreachable, 2 degraded, down or split brain).

mod text;

pub use text::render;

use crate::resolve::{GroupId, Model, Placement, Value};
use crate::shell::quote;
use serde::Serialize;
use std::collections::BTreeMap;

/// The active flag keepalived's notify script keeps for a group.
fn flag(group: &str) -> String {
    crate::render::context::active_flag(group)
}

fn str_param(i: &crate::resolve::Instance, name: &str) -> Option<String> {
    match i.param(name).map(|p| &p.value) {
        Some(Value::Str(s)) => Some(s.clone()),
        Some(Value::Int(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn group_of(p: Placement) -> Option<GroupId> {
    match p {
        Placement::Group(g) | Placement::Active(g) => Some(g),
        _ => None,
    }
}

/// A PostgreSQL cluster as status sees it.
#[derive(Debug, Clone)]
struct Cluster {
    /// `postgres` or `mariadb`
    kind: &'static str,
    name: String,
    group: GroupId,
    version: String,
    port: String,
    alert_after: u64,
}

fn clusters(model: &Model) -> Vec<Cluster> {
    model
        .instances
        .iter()
        .filter(|i| i.kind.value == "postgres" || i.kind.value == "mariadb")
        .filter_map(|i| {
            Some(Cluster {
                kind: if i.kind.value == "postgres" {
                    "postgres"
                } else {
                    "mariadb"
                },
                name: i.name.value.clone(),
                group: group_of(i.placement.value)?,
                version: str_param(i, "version").unwrap_or_else(|| "15".into()),
                port: str_param(i, "port").unwrap_or_else(|| "5432".into()),
                alert_after: match i.param("replication_alert_after").map(|p| &p.value) {
                    Some(Value::Duration(s)) => *s,
                    _ => 300,
                },
            })
        })
        .collect()
}

impl Cluster {
    /// `postgres.main`: the key of [`MemberStatus::databases`].
    fn key(&self) -> String {
        format!("{}.{}", self.kind, self.name)
    }
}

/// A member's role in cluster `c`, from its facts (None: unreachable).
fn role_of(c: &Cluster, f: Option<&Facts>) -> String {
    let Some(f) = f else {
        return "unreachable".into();
    };
    if c.kind == "mariadb" {
        return match f.mariadb.get(&c.name) {
            None => "unknown",
            Some(m) if !m.running => "stopped",
            Some(m) => match m.read_only {
                Some(false) => "primary",
                Some(true) if m.io_running == "Yes" && m.sql_running == "Yes" => {
                    "replicating replica"
                }
                Some(true) => "replica (not replicating)",
                None => "unknown",
            },
        }
        .into();
    }
    match f.postgres.get(&c.name) {
        None => "unknown",
        Some(p) if !p.running && p.fenced => "fenced",
        Some(p) if !p.running => "stopped",
        Some(p) => match p.in_recovery {
            Some(false) => "primary",
            Some(true) if p.receiver.as_deref() == Some("streaming") => "streaming standby",
            Some(true) => "standby (not streaming)",
            None => "unknown",
        },
    }
    .into()
}

/// (share name, its path, its group)
fn shares(model: &Model) -> Vec<(String, String, GroupId)> {
    model
        .instances
        .iter()
        .filter(|i| i.kind.value == "share")
        .filter_map(|i| {
            Some((
                i.name.value.clone(),
                str_param(i, "path")?,
                group_of(i.placement.value)?,
            ))
        })
        .collect()
}

/// Jobs that run only on the VIP holder: (name, group).
fn active_jobs(model: &Model) -> Vec<(String, GroupId)> {
    model
        .instances
        .iter()
        .filter(|i| i.kind.value == "job")
        .filter_map(|i| match i.placement.value {
            Placement::Active(g) => Some((i.name.value.clone(), g)),
            _ => None,
        })
        .collect()
}

fn member(model: &Model, g: GroupId, host: &str) -> bool {
    model.groups[g]
        .members
        .iter()
        .any(|m| model.hosts[m.value].name.value == host)
}

/// The sh fragment that answers status's questions on `host` (read-only; every
/// line a tab-separated record, see [`parse`]).
pub fn script(model: &Model, host: &str) -> String {
    let mut s = String::from("now=$(date +%s); printf 'now\\t%s\\n' \"$now\"\n");
    for g in model.group_ids() {
        let group = &model.groups[g];
        if !member(model, g, host) {
            continue;
        }
        let name = &group.name.value;
        let dir = format!("/run/infra/{name}");
        s.push_str(&format!(
            "f=0; [ -e {flag} ] && f=1; st=; [ -r {state} ] && read -r st < {state}\n\
             printf 'group\\t%s\\t%s\\t%s\\n' {n} \"$f\" \"$st\"\n\
             case \"$st\" in fault*) journalctl -q --no-pager -o cat -u keepalived.service -n 200 | grep -iE 'script|track' | grep -v succeeded | tail -n 3 | sed 's/^/fault\\t{name}\\t/' ;; esac\n",
            flag = quote(&flag(name)),
            state = quote(&format!("{dir}/state")),
            n = quote(name),
        ));
        if group.witness.is_some() {
            let key = crate::render::context::witness_key(name);
            // who holds the group's witness lease, as this member's etcd (or any
            // of the cluster's it reaches) says; `?` when no majority answers
            let me = model.host_id(host);
            let endpoints = me
                .map(|h| crate::render::context::etcd_endpoints(model, &group.witness_cluster(), h))
                .unwrap_or_default();
            s.push_str(&format!(
                "if lh=$(ETCDCTL_API=3 timeout 3 etcdctl --endpoints={e} --dial-timeout=1s --command-timeout=1500ms get {k} --print-value-only 2>/dev/null); then printf 'lease\\t%s\\t=%s\\t%s\\n' {n} \"$lh\" \"$(cat {t} 2>/dev/null)\"; else printf 'lease\\t%s\\t?\\t%s\\n' {n} \"$(cat {t} 2>/dev/null)\"; fi\n",
                e = quote(&endpoints),
                k = quote(&key),
                t = quote(&crate::render::context::witness_track(name)),
                n = quote(name),
            ));
        }
    }
    let mut disks = vec!["/".to_string()];
    for c in clusters(model) {
        if !member(model, c.group, host) {
            continue;
        }
        if c.kind == "mariadb" {
            s.push_str(&format!(
                "up=0; ro=-; io=; sq=; beh=; err=\n\
                 if ro=$(mariadb --protocol=socket -N -B -e 'SELECT @@global.read_only'); then up=1\n\
                 ss=$(mariadb --protocol=socket -e 'SHOW SLAVE STATUS\\G')\n\
                 io=$(printf '%s\\n' \"$ss\" | sed -n 's/^ *Slave_IO_Running: *//p')\n\
                 sq=$(printf '%s\\n' \"$ss\" | sed -n 's/^ *Slave_SQL_Running: *//p')\n\
                 beh=$(printf '%s\\n' \"$ss\" | sed -n 's/^ *Seconds_Behind_Master: *//p')\n\
                 err=$(printf '%s\\n' \"$ss\" | sed -n 's/^ *Last_\\(IO\\|SQL\\)_Error: *\\(..*\\)/\\2/p' | head -n 1)\n\
                 else ro=-; fi\n\
                 printf 'my\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' {n} \"$up\" \"$ro\" \"$io\" \"$sq\" \"$beh\" \"$err\"\n",
                n = quote(&c.name),
            ));
            disks.push("/var/lib/mysql".into());
            continue;
        }
        let bin = format!("/usr/lib/postgresql/{}/bin", c.version);
        let data = format!("/var/lib/postgresql/{}/main", c.version);
        let psql = format!(
            "runuser -u postgres -- {bin}/psql -X -At -F '\t' -p {port} -d postgres",
            port = c.port
        );
        s.push_str(&format!(
            "up=0; rec=-; fen=0; [ -e {fenced} ] && fen=1\n\
             if runuser -u postgres -- {bin}/pg_isready -q -p {port}; then up=1; rec=$({psql} -c 'SELECT pg_is_in_recovery()') || rec=-; fi\n\
             printf 'pg\\t%s\\t%s\\t%s\\t%s\\n' {n} \"$up\" \"$rec\" \"$fen\"\n\
             if [ \"$rec\" = f ]; then {psql} -c \"SELECT application_name, state, coalesce(sync_state, ''), coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint::text, ''), coalesce(round(extract(epoch FROM replay_lag)::numeric, 1)::text, '') FROM pg_stat_replication ORDER BY 1\" | sed 's/^/pgrep\\t{name}\\t/'; fi\n\
             if [ \"$rec\" = t ]; then {psql} -c \"SELECT coalesce((SELECT status FROM pg_stat_wal_receiver LIMIT 1), 'none'), CASE WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN '0' ELSE coalesce(round(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::numeric, 1)::text, '') END, coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint::text, '')\" | sed 's/^/pgrecv\\t{name}\\t/'; fi\n\
             for p in {since}/*; do [ -f \"$p\" ] && printf 'pgsince\\t%s\\t%s\\t%s\\n' {n} \"${{p##*/}}\" \"$(cat \"$p\")\"; done\n\
             printf 'pgunit\\t%s\\t%s\\n' {n} \"$(systemctl show --timestamp=unix -p StateChangeTimestamp --value -- {unit})\"\n",
            since = quote(&format!("/run/infra-postgres-{}-watch", c.name)),
            unit = quote(&format!("postgresql@{}-main.service", c.version)),
            fenced = quote(&format!("{data}/infra-fenced")),
            port = c.port,
            n = quote(&c.name),
            name = c.name,
        ));
        disks.push(data);
    }
    let mut units = Vec::new();
    for (name, path, g) in shares(model) {
        if member(model, g, host) {
            units.push(format!("infra-share-{name}.service"));
            units.push(format!("infra-share-{name}.timer"));
            let pushed = format!(
                "/run/infra/{}/share-{name}.pushed",
                model.groups[g].name.value
            );
            s.push_str(&format!(
                "[ -r {p} ] && printf 'pushed\\t%s\\t%s\\n' {n} \"$(cat {p})\"\n",
                p = quote(&pushed),
                n = quote(&name)
            ));
            disks.push(path);
        }
    }
    for (name, g) in active_jobs(model) {
        if member(model, g, host) {
            units.push(format!("infra-job-{name}.service"));
            units.push(format!("infra-job-{name}.timer"));
        }
    }
    if !units.is_empty() {
        let list: Vec<String> = units.iter().map(|u| quote(u)).collect();
        s.push_str(&format!(
            "systemctl show --timestamp=unix --no-pager -p Id,ActiveState,Result,ExecMainStatus,ExecMainExitTimestamp -- {} | sed 's/^/show\\t/'\n",
            list.join(" ")
        ));
        // a timer's next elapse, as list-timers prints it ("Wed 2026-12-02 12:37:24
        // UTC"), read by date(1) in the host's own zone
        let timers: Vec<String> = units
            .iter()
            .filter(|u| u.ends_with(".timer"))
            .map(|u| quote(u))
            .collect();
        if !timers.is_empty() {
            s.push_str(&format!(
                "systemctl list-timers --all --no-legend --no-pager -- {} | while read -r d1 d2 d3 d4 rest; do case \"$d1\" in -|n/a) continue ;; esac; u=$(printf '%s' \"$rest\" | awk '{{print $(NF-1)}}'); printf 'next\\t%s\\t%s\\n' \"$u\" \"$(date -d \"$d1 $d2 $d3 $d4\" +%s)\"; done\n",
                timers.join(" ")
            ));
        }
        for u in units.iter().filter(|u| u.ends_with(".service")) {
            s.push_str(&format!(
                "if [ \"$(systemctl show -p Result --value -- {u})\" != success ]; then journalctl -q --no-pager -o cat -u {u} -n 3 | sed 's/^/log\\t{raw}\\t/'; fi\n",
                u = quote(u),
                raw = u
            ));
        }
    }
    for (kind, dir) in [
        ("postgres_backup", "/var/lib/infra-pgbackrest"),
        ("mariadb_backup", "/var/lib/infra-mariadb-backup"),
    ] {
        if model.instances.iter().any(|i| i.kind.value == kind) {
            disks.push(dir.into());
        }
    }
    disks.dedup();
    let list: Vec<String> = disks.iter().map(|d| quote(d)).collect();
    s.push_str(&format!(
        "for d in {}; do [ -e \"$d\" ] && df -P -k -- \"$d\" | sed -n 2p | while read -r _ size used avail _ mnt; do printf 'disk\\t%s\\t%s\\t%s\\t%s\\t%s\\n' \"$d\" \"$size\" \"$used\" \"$avail\" \"$mnt\"; done; done\n",
        list.join(" ")
    ));
    s
}

/// A member's view of a failover group.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupFacts {
    /// The active flag is there (keepalived made this member MASTER).
    pub active: bool,
    /// keepalived's last transition as notify.sh recorded it: master, backup,
    /// fault or stop, and when (Unix time); empty when none was recorded.
    pub state: String,
    pub since: Option<i64>,
    /// keepalived's last journal lines, when in fault.
    pub fault: Vec<String>,
    /// With a witness: whether this member asked etcd who holds the group's lease,
    /// and the answer (Some(""): nobody; None: no majority answered).
    pub lease_asked: bool,
    pub lease: Option<String>,
    /// The witness loop's verdict for this member (its track file): Some(true)
    /// while it may hold the VIP.
    pub may_hold: Option<bool>,
}

/// One PostgreSQL cluster on one member.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PgFacts {
    pub running: bool,
    /// Some(true): a standby; Some(false): a primary; None: not running or unknown.
    pub in_recovery: Option<bool>,
    pub fenced: bool,
    /// On a primary: who streams from it.
    pub senders: Vec<Sender>,
    /// On a standby: its WAL receiver's status ("streaming", "none", ...), how far
    /// its replay is behind (seconds) and what it received but has not replayed.
    pub receiver: Option<String>,
    pub replay_delay_s: Option<f64>,
    pub replay_behind_bytes: Option<u64>,
    /// On the VIP holder: since when (Unix time) each other member has not
    /// streamed, as the replication watch recorded it (it runs every minute).
    pub not_streaming_since: BTreeMap<String, i64>,
    /// When the server's unit last changed state (started, stopped, failed).
    pub unit_since: Option<i64>,
}

/// One MariaDB server on one member.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MyFacts {
    pub running: bool,
    pub read_only: Option<bool>,
    /// SHOW SLAVE STATUS: Slave_IO_Running and Slave_SQL_Running ("Yes", "No",
    /// "Connecting"; empty when it replicates from nobody), Seconds_Behind_Master,
    /// the last I/O or SQL error.
    pub io_running: String,
    pub sql_running: String,
    pub behind_s: Option<u64>,
    pub last_error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sender {
    pub standby: String,
    pub state: String,
    pub sync_state: String,
    pub lag_bytes: Option<u64>,
    pub replay_lag_s: Option<f64>,
}

/// A unit's last run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UnitRun {
    pub active_state: String,
    pub result: String,
    pub exit_status: Option<i32>,
    pub last_exit: Option<i64>,
    pub next: Option<i64>,
    pub log: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Disk {
    pub path: String,
    pub size_kib: u64,
    pub used_kib: u64,
    pub avail_kib: u64,
    pub mount: String,
}

/// What one host's status section said.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    pub now: i64,
    pub groups: BTreeMap<String, GroupFacts>,
    pub postgres: BTreeMap<String, PgFacts>,
    pub mariadb: BTreeMap<String, MyFacts>,
    pub units: BTreeMap<String, UnitRun>,
    /// Share name -> Unix time of its last successful push from this host.
    pub pushed: BTreeMap<String, i64>,
    pub disks: Vec<Disk>,
}

fn epoch(v: &str) -> Option<i64> {
    v.strip_prefix('@')
        .unwrap_or(v)
        .parse()
        .ok()
        .filter(|&t: &i64| t > 0)
}

/// Read a status section's answer. Lines it does not understand are skipped:
/// a cut or garbled answer gives fewer facts, never a panic.
pub fn parse(text: &str) -> Facts {
    let mut f = Facts::default();
    let mut show: Vec<(String, String)> = Vec::new();
    let flush = |show: &mut Vec<(String, String)>, f: &mut Facts| {
        let get = |k: &str| {
            show.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let id = get("Id").to_string();
        if !id.is_empty() {
            let u = f.units.entry(id).or_default();
            u.active_state = get("ActiveState").into();
            u.result = get("Result").into();
            u.exit_status = get("ExecMainStatus").parse().ok();
            u.last_exit = epoch(get("ExecMainExitTimestamp"));
        }
        show.clear();
    };
    for line in text.lines() {
        let w: Vec<&str> = line.split('\t').collect();
        match w.as_slice() {
            ["now", t] => f.now = t.parse().unwrap_or(0),
            ["group", g, active, state] => {
                let e = f.groups.entry(g.to_string()).or_default();
                e.active = *active == "1";
                let mut st = state.split_whitespace();
                // only notify.sh's words (a garbled file says nothing)
                e.state = match st.next() {
                    Some(w @ ("master" | "backup" | "fault" | "stop")) => w.to_string(),
                    _ => String::new(),
                };
                e.since = st.next().and_then(epoch);
            }
            ["fault", g, rest @ ..] => f
                .groups
                .entry(g.to_string())
                .or_default()
                .fault
                .push(rest.join("\t")),
            ["pg", c, up, rec, fen] => {
                let e = f.postgres.entry(c.to_string()).or_default();
                e.running = *up == "1";
                e.in_recovery = match *rec {
                    "t" => Some(true),
                    "f" => Some(false),
                    _ => None,
                };
                e.fenced = *fen == "1";
            }
            ["my", c, up, ro, io, sql, behind, err] => {
                f.mariadb.insert(
                    c.to_string(),
                    MyFacts {
                        running: *up == "1",
                        read_only: match *ro {
                            "1" => Some(true),
                            "0" => Some(false),
                            _ => None,
                        },
                        io_running: io.to_string(),
                        sql_running: sql.to_string(),
                        behind_s: behind.parse().ok(),
                        last_error: err.to_string(),
                    },
                );
            }
            ["pgrep", c, app, state, sync, lag, replay] => f
                .postgres
                .entry(c.to_string())
                .or_default()
                .senders
                .push(Sender {
                    standby: app.to_string(),
                    state: state.to_string(),
                    sync_state: sync.to_string(),
                    lag_bytes: lag.parse().ok(),
                    replay_lag_s: replay.parse().ok(),
                }),
            ["lease", g, holder, track] => {
                let e = f.groups.entry(g.to_string()).or_default();
                e.lease_asked = true;
                e.lease = holder.strip_prefix('=').map(str::to_string);
                e.may_hold = match *track {
                    "0" => Some(true),
                    "1" => Some(false),
                    _ => None,
                };
            }
            ["pgsince", c, peer, t] => {
                if let Some(t) = epoch(t) {
                    f.postgres
                        .entry(c.to_string())
                        .or_default()
                        .not_streaming_since
                        .insert(peer.to_string(), t);
                }
            }
            ["pgunit", c, t] => f.postgres.entry(c.to_string()).or_default().unit_since = epoch(t),
            ["pgrecv", c, status, delay, behind] => {
                let e = f.postgres.entry(c.to_string()).or_default();
                e.receiver = Some(status.to_string());
                e.replay_delay_s = delay.parse().ok();
                e.replay_behind_bytes = behind.parse().ok();
            }
            ["next", unit, t] => {
                if let Some(t) = epoch(t) {
                    f.units.entry(unit.to_string()).or_default().next = Some(t);
                }
            }
            ["pushed", s, t] => {
                if let Some(t) = epoch(t) {
                    f.pushed.insert(s.to_string(), t);
                }
            }
            ["show", ""] | ["show"] => flush(&mut show, &mut f),
            ["show", kv] => {
                if let Some((k, v)) = kv.split_once('=') {
                    show.push((k.to_string(), v.to_string()));
                }
            }
            ["log", unit, rest @ ..] => f
                .units
                .entry(unit.to_string())
                .or_default()
                .log
                .push(rest.join("\t")),
            ["disk", path, size, used, avail, mount] => {
                if let (Ok(size_kib), Ok(used_kib), Ok(avail_kib)) =
                    (size.parse(), used.parse(), avail.parse())
                {
                    f.disks.push(Disk {
                        path: path.to_string(),
                        size_kib,
                        used_kib,
                        avail_kib,
                        mount: mount.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    flush(&mut show, &mut f);
    f
}

/// How one host answered.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub host: String,
    /// None when it could not be reached or probed; then `error` says why.
    pub facts: Option<Facts>,
    pub error: Option<String>,
    /// IPv4 addresses on its interfaces.
    pub addresses: Vec<String>,
    pub generation: Option<u64>,
    /// What `infra plan` would change there (0: the host is as the repo builds it;
    /// None: not counted, the secrets' values could not be had).
    pub pending: Option<usize>,
    /// Units infra manages that are in the failed state.
    pub failed_units: Vec<String>,
}

/// The verdict, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    Healthy,
    Degraded,
    Down,
    SplitBrain,
}

impl Health {
    pub fn word(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "DEGRADED",
            Health::Down => "DOWN",
            Health::SplitBrain => "SPLIT BRAIN",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub health: Health,
    pub text: String,
    /// Since when (Unix time), where a host recorded it.
    pub since: Option<i64>,
}

/// A failover group's witness as its members see it.
#[derive(Debug, Clone, Serialize)]
pub struct WitnessStatus {
    pub host: String,
    /// Some member's etcd answered who holds the lease.
    pub answered: bool,
    /// The member named by the lease (None: nobody, or no answer).
    pub lease_holder: Option<String>,
}

/// A member's line in its group.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub host: String,
    pub reachable: bool,
    pub holds_vip: bool,
    /// MASTER / BACKUP / FAULT / STOP as keepalived last said, or "unknown".
    pub keepalived: String,
    /// Per database (`postgres.main`, `mariadb.shop`): "primary", "streaming
    /// standby" / "replicating replica", "standby (not streaming)" / "replica (not
    /// replicating)", "stopped", "fenced", "unknown", "unreachable".
    pub databases: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    pub name: String,
    pub vip: String,
    pub holder: Option<String>,
    pub witness: Option<WitnessStatus>,
    pub members: Vec<MemberStatus>,
    /// Human lines: replication per standby, share pushes, jobs.
    pub details: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub health: Health,
    /// The line a person reads first.
    pub summary: String,
    pub problems: Vec<Problem>,
    pub groups: Vec<GroupStatus>,
    pub hosts: Vec<HostStatus>,
}

impl Report {
    /// 0 healthy, 1 a host could not be reached or probed, 2 degraded, down or
    /// split brain.
    pub fn exit_code(&self) -> i32 {
        if self.hosts.iter().any(|h| h.facts.is_none()) {
            1
        } else if self.health == Health::Healthy {
            0
        } else {
            2
        }
    }
}

fn ago(now: i64, t: i64) -> String {
    crate::backup::age((now - t).max(0))
}

fn when(t: i64) -> String {
    crate::backup::utc(t)
}

fn add(problems: &mut Vec<Problem>, health: Health, text: String) {
    add_since(problems, health, text, None)
}

fn add_since(problems: &mut Vec<Problem>, health: Health, text: String, since: Option<i64>) {
    problems.push(Problem {
        health,
        text,
        since,
    })
}

/// Judge the hosts' answers against the model.
pub fn assess(model: &Model, hosts: Vec<HostStatus>) -> Report {
    let by_name: BTreeMap<&str, &HostStatus> = hosts.iter().map(|h| (h.host.as_str(), h)).collect();
    let mut problems: Vec<Problem> = Vec::new();
    for h in &hosts {
        if let Some(e) = &h.error {
            add(
                &mut problems,
                Health::Degraded,
                format!("{} is unreachable: {e}", h.host),
            );
        }
        for u in &h.failed_units {
            add(
                &mut problems,
                Health::Degraded,
                format!("{}: {u} failed", h.host),
            );
        }
    }
    let all_clusters = clusters(model);
    let mut groups = Vec::new();
    for g in model.group_ids() {
        let group = &model.groups[g];
        let name = group.name.value.clone();
        let vip = group.vip.value.addr.to_string();
        let vip_cidr = format!("{}/{}", group.vip.value.addr, group.vip.value.prefix);
        let members: Vec<&str> = group
            .members
            .iter()
            .map(|m| model.hosts[m.value].name.value.as_str())
            .collect();
        let facts = |h: &str| by_name.get(h).and_then(|s| s.facts.as_ref());
        let holders: Vec<&str> = members
            .iter()
            .copied()
            .filter(|h| {
                by_name.get(h).is_some_and(|s| {
                    s.addresses.contains(&vip_cidr)
                        || s.facts
                            .as_ref()
                            .and_then(|f| f.groups.get(&name))
                            .is_some_and(|gf| gf.active)
                })
            })
            .collect();
        match holders.as_slice() {
            [] => add(
                &mut problems,
                Health::Down,
                format!("no member of {name} holds VIP {vip}"),
            ),
            [_] => {}
            many => add(
                &mut problems,
                Health::SplitBrain,
                format!("{} all hold VIP {vip} of {name}", many.join(" and ")),
            ),
        }
        let holder = holders.first().map(|h| h.to_string());
        let witness = group.witness.as_ref().map(|w| {
            let answers: Vec<&GroupFacts> = members
                .iter()
                .filter_map(|&m| facts(m)?.groups.get(&name))
                .filter(|gf| gf.lease_asked)
                .collect();
            let asked = !answers.is_empty();
            let answer = answers.iter().find_map(|gf| gf.lease.as_deref());
            let ws = WitnessStatus {
                host: model.hosts[w.value].name.value.clone(),
                answered: answer.is_some(),
                lease_holder: answer.filter(|l| !l.is_empty()).map(str::to_string),
            };
            match (&ws.lease_holder, holder.as_deref()) {
                _ if !asked => {}
                (None, _) if !ws.answered => add(
                    &mut problems,
                    Health::Degraded,
                    format!(
                        "no majority of the witness cluster of {name} ({}, witness {}) answers its members: the VIP holder fences itself within {} s and no member can take over",
                        members.join(", "),
                        ws.host,
                        crate::render::context::WITNESS_FENCE_AFTER
                    ),
                ),
                (None, Some(h)) => add(
                    &mut problems,
                    Health::Degraded,
                    format!("{h} holds VIP {vip} of {name} but nobody holds its witness lease"),
                ),
                (Some(l), Some(h)) if l != h => add(
                    &mut problems,
                    Health::Degraded,
                    format!(
                        "the witness lease of {name} names {l} but {h} holds VIP {vip} (a failover under way?)"
                    ),
                ),
                _ => {}
            }
            ws
        });
        let mut details = Vec::new();
        let mut member_rows = Vec::new();
        for &m in &members {
            let f = facts(m);
            let gf = f.and_then(|f| f.groups.get(&name));
            let has_vip = by_name
                .get(m)
                .is_some_and(|s| s.addresses.contains(&vip_cidr));
            let active = gf.is_some_and(|g| g.active);
            // the address is the truth: keepalived in FAULT or BACKUP drops it
            let keepalived = match gf.map(|g| g.state.as_str()) {
                _ if has_vip => "MASTER".to_string(),
                Some("") | None if f.is_some() => "unknown".to_string(),
                Some(s) => s.to_uppercase(),
                None => "unreachable".to_string(),
            };
            if has_vip && !active && f.is_some() {
                add(&mut problems,
                    Health::Degraded,
                    format!(
                        "{m} holds VIP {vip} of {name} but not its active flag {} (keepalived's notify did not run, e.g. a keepalived started by hand or by an older infra's rolled-back first apply): what runs only on the VIP holder is stopped there; restart keepalived on {m}",
                        flag(&name)
                    ),
                );
            }
            // with a witness, a member without the lease waits in FAULT by design
            // (keepalived tracks the lease): not a problem while another holds both
            let waits_for_lease = group.witness.is_some()
                && gf.is_some_and(|g| g.may_hold == Some(false))
                && holder.as_deref().is_some_and(|h| h != m);
            match gf.filter(|g| g.state == "fault" && !has_vip) {
                Some(_) if waits_for_lease => details.push(format!(
                    "{m} waits in FAULT without the witness lease (only the lease holder may hold the VIP)"
                )),
                Some(gf) => {
                    let why = gf.fault.last().cloned().unwrap_or_default();
                    add(
                        &mut problems,
                        Health::Degraded,
                        format!("{m} is in FAULT in {name} (its check fails): {why}"),
                    );
                }
                None => {}
            }
            let mut databases = BTreeMap::new();
            for c in all_clusters.iter().filter(|c| c.group == g) {
                databases.insert(c.key(), role_of(c, f));
            }
            member_rows.push(MemberStatus {
                host: m.to_string(),
                reachable: f.is_some(),
                holds_vip: holders.contains(&m),
                keepalived,
                databases,
            });
        }
        // the databases
        for c in all_clusters.iter().filter(|c| c.group == g) {
            let role = |h: &str| {
                member_rows
                    .iter()
                    .find(|r| r.host == h)
                    .and_then(|r| r.databases.get(&c.key()))
                    .cloned()
                    .unwrap_or_default()
            };
            let primaries: Vec<&str> = members
                .iter()
                .copied()
                .filter(|&h| role(h) == "primary")
                .collect();
            if primaries.len() > 1 {
                add(
                    &mut problems,
                    Health::SplitBrain,
                    format!(
                        "two writable primaries of {} {}: {}",
                        c.kind,
                        c.name,
                        primaries.join(" and ")
                    ),
                );
            }
            let Some(h) = holder.as_deref() else { continue };
            if role(h) != "primary" && facts(h).is_some() {
                add(
                    &mut problems,
                    Health::Down,
                    format!(
                        "{h} holds VIP {vip} but its {} {} is {}: the application cannot write",
                        c.kind,
                        c.name,
                        role(h)
                    ),
                );
            }
            let senders: Vec<Sender> = facts(h)
                .and_then(|f| f.postgres.get(&c.name))
                .map(|p| p.senders.clone())
                .unwrap_or_default();
            for &m in members.iter().filter(|&&m| m != h) {
                let Some(mf) = facts(m) else { continue };
                let r = role(m);
                if c.kind == "mariadb" {
                    let my = mf.mariadb.get(&c.name).cloned().unwrap_or_default();
                    match r.as_str() {
                        "replicating replica" => {
                            let behind = my.behind_s.unwrap_or(0);
                            details.push(format!(
                                "mariadb {}: {m} replicates from {h}, {behind} s behind",
                                c.name
                            ));
                            if behind > c.alert_after {
                                add(
                                    &mut problems,
                                    Health::Degraded,
                                    format!("{m}'s mariadb {} is {behind} s behind {h}", c.name),
                                );
                            }
                        }
                        "primary" => {}
                        other => {
                            let why = if my.last_error.is_empty() {
                                String::new()
                            } else {
                                format!(" (last error: {})", my.last_error)
                            };
                            let how = match other {
                                "stopped" => "is not running".to_string(),
                                _ => format!(
                                    "is not replicating (Slave_IO_Running: {}, Slave_SQL_Running: {}){why}",
                                    if my.io_running.is_empty() { "-" } else { &my.io_running },
                                    if my.sql_running.is_empty() { "-" } else { &my.sql_running },
                                ),
                            };
                            add(&mut problems,
                                Health::Degraded,
                                format!(
                                    "{m}'s mariadb {} {how}: {name} has no up-to-date copy of the database",
                                    c.name
                                ),
                            );
                            details.push(format!("mariadb {}: {m} {how}", c.name));
                        }
                    }
                    continue;
                }
                let p = mf.postgres.get(&c.name).cloned().unwrap_or_default();
                let sender = senders.iter().find(|s| s.standby == m);
                match r.as_str() {
                    "streaming standby" => {
                        let delay = p.replay_delay_s.unwrap_or(0.0);
                        let lag = sender.and_then(|s| s.lag_bytes).unwrap_or(0);
                        let sync = sender
                            .map(|s| s.sync_state.as_str())
                            .filter(|s| !s.is_empty())
                            .unwrap_or("async");
                        details.push(format!(
                            "postgres {}: {m} streams from {h} ({sync}), {} behind, replay {delay:.1} s behind",
                            c.name,
                            crate::plan::human_bytes(lag)
                        ));
                        if delay > c.alert_after as f64 {
                            add(&mut problems,
                                Health::Degraded,
                                format!(
                                    "{m}'s postgres {} replays {delay:.0} s behind {h} (replication_alert_after {} s)",
                                    c.name, c.alert_after
                                ),
                            );
                        }
                    }
                    "primary" => {}
                    other => {
                        let how = match other {
                            "stopped" => "is not running".to_string(),
                            "fenced" => "is fenced (stopped after it lost the VIP; see docs/stdlib.md, postgres: rejoin)".to_string(),
                            _ => format!("is a {other}"),
                        };
                        // a server that stopped: when its unit did; else when the
                        // holder's replication watch first saw it not streaming
                        let watched = facts(h)
                            .and_then(|f| f.postgres.get(&c.name))
                            .and_then(|p| p.not_streaming_since.get(m).copied());
                        let since = match other {
                            "stopped" | "fenced" => p.unit_since.or(watched),
                            _ => watched,
                        };
                        let when_text = since
                            .map(|t| format!(" (since {}, {})", when(t), ago(mf.now, t)))
                            .unwrap_or_default();
                        add_since(
                            &mut problems,
                            Health::Degraded,
                            format!(
                                "{m}'s postgres {} {how}{when_text}: {name} has no up-to-date copy of the database",
                                c.name
                            ),
                            since,
                        );
                        details.push(format!("postgres {}: {m} {how}{when_text}", c.name));
                    }
                }
            }
        }
        // the shares, pushed by the holder
        for (s, path, _) in shares(model).into_iter().filter(|x| x.2 == g) {
            let Some(h) = holder.as_deref() else { continue };
            let Some(f) = facts(h) else { continue };
            let unit = format!("infra-share-{s}.service");
            let run = f.units.get(&unit).cloned().unwrap_or_default();
            let next = f
                .units
                .get(&format!("infra-share-{s}.timer"))
                .and_then(|t| t.next)
                .map(|t| {
                    format!(
                        "; next in {}",
                        crate::backup::age((t - f.now).max(0)).trim_end_matches(" ago")
                    )
                })
                .unwrap_or_default();
            let last_ok = match (f.pushed.get(&s), run.last_exit) {
                (Some(t), _) => format!("last success {}{next}", ago(f.now, *t)),
                (None, None) => format!("no push since boot yet{next}"),
                (None, Some(_)) => format!("no successful push since boot{next}"),
            };
            let failed =
                !run.result.is_empty() && run.result != "success" || run.active_state == "failed";
            if failed {
                let why = run.log.last().cloned().unwrap_or_default();
                add(
                    &mut problems,
                    Health::Degraded,
                    format!(
                        "share {s}: the last push of {path} from {h} failed ({}, exit {}): {why}",
                        run.result,
                        run.exit_status.unwrap_or(-1)
                    ),
                );
                details.push(format!("share {s}: last push from {h} FAILED; {last_ok}"));
            } else {
                details.push(format!("share {s}: pushed from {h}; {last_ok}"));
            }
        }
        // the active-only jobs: where they last ran
        for (j, _) in active_jobs(model).into_iter().filter(|x| x.1 == g) {
            let unit = format!("infra-job-{j}.service");
            let timer = format!("infra-job-{j}.timer");
            let last = members
                .iter()
                .filter_map(|&m| {
                    let f = facts(m)?;
                    let u = f.units.get(&unit)?;
                    Some((u.last_exit?, m, u.clone()))
                })
                .max_by_key(|x| x.0);
            let next = holder
                .as_deref()
                .and_then(facts)
                .and_then(|f| f.units.get(&timer))
                .and_then(|t| t.next);
            let next = next
                .map(|t| format!("next {}", when(t)))
                .unwrap_or_else(|| "no next run scheduled".into());
            match last {
                Some((t, m, u)) => {
                    let ok = u.result == "success";
                    details.push(format!(
                        "job {j}: last ran on {m} {} ({}); {next}",
                        when(t),
                        if ok {
                            "ok".to_string()
                        } else {
                            format!("{}, exit {}", u.result, u.exit_status.unwrap_or(-1))
                        }
                    ));
                }
                None => details.push(format!("job {j}: has not run yet; {next}")),
            }
        }
        groups.push(GroupStatus {
            name,
            vip,
            holder,
            witness,
            members: member_rows,
            details,
        });
    }
    for h in &hosts {
        let Some(f) = &h.facts else { continue };
        for d in &f.disks {
            if d.size_kib > 0 && d.used_kib * 100 / d.size_kib >= 90 {
                add(
                    &mut problems,
                    Health::Degraded,
                    format!(
                        "{}: {} ({}) is {}% full",
                        h.host,
                        d.path,
                        d.mount,
                        d.used_kib * 100 / d.size_kib
                    ),
                );
            }
        }
    }
    problems.sort_by_key(|p| std::cmp::Reverse(p.health));
    let health = problems
        .iter()
        .map(|p| p.health)
        .max()
        .unwrap_or(Health::Healthy);
    let summary = match problems.first() {
        None => {
            let redundant = !model.groups.is_empty();
            if redundant {
                "healthy: redundant".to_string()
            } else {
                "healthy".to_string()
            }
        }
        Some(p) if problems.len() == 1 => format!("{}: {}", p.health.word(), p.text),
        Some(p) => format!(
            "{}: {} (and {} more)",
            p.health.word(),
            p.text,
            problems.len() - 1
        ),
    };
    Report {
        health,
        summary,
        problems,
        groups,
        hosts,
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests;
