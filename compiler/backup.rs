//! `infra backups` and `infra restore`: what the `postgres_backup`,
//! `mariadb_backup` and `share_snapshots` instances of a model are, the commands
//! that ask a member what it holds (pgBackRest's `info --output=json`, the
//! mariadb_backup chains of `backup.sh list`, the snapshots' `du`) or restore
//! from it, and their listings. Pure: the CLI runs the commands over SSH.

use crate::resolve::{Model, Placement, Value};
use serde::Serialize;

/// The database a backup copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// `postgres_backup`: pgBackRest repositories.
    Postgres,
    /// `mariadb_backup`: mariadb-backup chains with the binary log.
    Mariadb,
}

impl Engine {
    /// The backup's kind.
    pub fn kind(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres_backup",
            Engine::Mariadb => "mariadb_backup",
        }
    }
    /// The server's kind.
    pub fn server_kind(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mariadb => "mariadb",
        }
    }
}

/// A `postgres_backup` or `mariadb_backup` instance: where its backups are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    pub name: String,
    pub engine: Engine,
    /// The `postgres` or `mariadb` instance it backs up.
    pub cluster: String,
    pub group: String,
    /// The server's first database (`postgres` when a cluster declares none,
    /// empty for a MariaDB server without one).
    pub database: String,
    /// The members, in preference order: each keeps a repository.
    pub members: Vec<String>,
    pub vip: String,
}

/// Every `postgres_backup` and `mariadb_backup` of the model, in declaration order.
pub fn sites(model: &Model) -> Vec<Site> {
    model
        .instances
        .iter()
        .filter_map(|b| {
            let (engine, param) = match b.kind.value.as_str() {
                "postgres_backup" => (Engine::Postgres, "cluster"),
                "mariadb_backup" => (Engine::Mariadb, "server"),
                _ => return None,
            };
            let Some(Value::Instance(c)) = b.param(param).map(|p| &p.value) else {
                return None;
            };
            let cluster = &model.instances[*c];
            let (Placement::Group(g) | Placement::Active(g)) = cluster.placement.value else {
                return None;
            };
            let group = &model.groups[g];
            let first = match cluster.param("databases").map(|p| &p.value) {
                Some(Value::List(v)) => match v.first() {
                    Some(Value::Str(d)) => Some(d.clone()),
                    _ => None,
                },
                _ => None,
            };
            Some(Site {
                name: b.name.value.clone(),
                engine,
                cluster: cluster.name.value.clone(),
                group: group.name.value.clone(),
                database: first.unwrap_or_else(|| match engine {
                    Engine::Postgres => "postgres".into(),
                    Engine::Mariadb => String::new(),
                }),
                members: host_names(model, cluster.placement.value),
                vip: group.vip.value.addr.to_string(),
            })
        })
        .collect()
}

/// The names of the hosts a placement puts resources on, in declaration order.
fn host_names(model: &Model, p: Placement) -> Vec<String> {
    model
        .placement_hosts(p)
        .into_iter()
        .map(|h| model.hosts[h].name.value.clone())
        .collect()
}

fn dir(name: &str) -> String {
    format!("/etc/infra/pgbackrest/{name}")
}

/// pgBackRest's `info` as JSON with the backup's configuration `conf` (run as root).
fn info_with(name: &str, conf: &str) -> String {
    let conf = crate::shell::quote(&format!("{}/{conf}", dir(name)));
    let stanza = crate::shell::quote(name);
    format!("cd / && runuser -u postgres -- pgbackrest --config={conf} --stanza={stanza} --output=json info\n")
}

/// A member's own repository.
pub fn info_script(name: &str) -> String {
    info_with(name, "repo.conf")
}

/// Prints `holder` when this host holds `vip`, `member` otherwise.
pub fn holder_script(vip: &str) -> String {
    format!(
        "if ip -o addr show to {} | grep -q .; then echo holder; else echo member; fi\n",
        crate::shell::quote(vip)
    )
}

/// Every repository the member can reach, as pgBackRest's JSON (the database
/// side's configuration: what a restore there chooses from).
pub fn info_all_script(name: &str) -> String {
    info_with(name, "pg.conf")
}

/// `sql` in `database` as postgres, unaligned, stopping at the first error.
pub fn psql_script(database: &str, sql: &str) -> String {
    format!(
        "cd / && runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -d {} -c {}\n",
        crate::shell::quote(&format!(
            "dbname='{}'",
            database.replace('\\', "\\\\").replace('\'', "\\'")
        )),
        crate::shell::quote(sql)
    )
}

/// The row count `restore.sh` printed for `table` of `database` (`db\tschema.table\tN`).
pub fn restored_rows(output: &str, database: &str, table: &str) -> Option<u64> {
    output.lines().find_map(|l| {
        let mut f = l.trim_start().split('\t');
        (f.next() == Some(database) && f.next() == Some(table))
            .then(|| f.next()?.trim().parse().ok())?
    })
}

/// On the primary: close the current WAL segment and wait until it is archived.
pub fn archive_now_script(name: &str) -> String {
    format!(
        "{} archive-now\n",
        crate::shell::quote(&format!("{}/backup.sh", dir(name)))
    )
}

/// Restore `target` from repository `repo` into the scratch instance
/// (restore.sh on the member).
pub fn restore_script(name: &str, target: &Target, repo: u64) -> String {
    let arg = match target {
        Target::Latest => "latest".to_string(),
        Target::Time { text, .. } => text.clone(),
    };
    // one stream: pgBackRest's, PostgreSQL's and the script's lines in order
    format!(
        "{} {} --repo={repo} 2>&1\n",
        crate::shell::quote(&format!("{}/restore.sh", dir(name))),
        crate::shell::quote(&arg)
    )
}

/// The repository to restore `target` from: the one holding the newest backup
/// that ended before it (pgBackRest itself takes the first repository in order
/// that has one, however old). `None`: no backup precedes it.
pub fn choose_repo(backups: &[Backup], target: &Target) -> Option<u64> {
    backups
        .iter()
        .filter(|b| match target {
            Target::Latest => true,
            Target::Time { epoch, .. } => b.stop < *epoch,
        })
        .max_by_key(|b| (b.stop, b.repo))
        .map(|b| b.repo)
}

/// Where a restore goes: the end of the archive, or a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Latest,
    /// As pgBackRest and PostgreSQL read `recovery_target_time`, with its zone:
    /// "2026-12-02 10:15:00+00"; `epoch` in Unix seconds.
    Time {
        text: String,
        epoch: i64,
    },
}

impl Target {
    /// `latest`, or `YYYY-MM-DD HH:MM:SS[.fraction]` with a zone offset (`+00`,
    /// `+01:00`, `-0500`): the form pgBackRest reads to choose the backup
    /// (without it, pgBackRest and PostgreSQL could read the time in different
    /// zones).
    pub fn parse(s: &str) -> Result<Target, String> {
        let s = s.trim();
        if s == "latest" {
            return Ok(Target::Latest);
        }
        let bad = || {
            format!(
                "`{s}` is not a time: give `latest` or \"YYYY-MM-DD HH:MM:SS+ZZ\" with the zone's offset, e.g. \"2026-12-02 10:15:00+00\" (UTC) or \"2026-12-02 11:15:00+01\""
            )
        };
        let num = |t: &str| -> Option<i64> {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
        };
        let (date, rest) = s.split_once(' ').ok_or_else(bad)?;
        let d: Vec<&str> = date.split('-').collect();
        let (y, mo, da) = match d.as_slice() {
            [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => (
                num(y).ok_or_else(bad)?,
                num(m).ok_or_else(bad)?,
                num(d).ok_or_else(bad)?,
            ),
            _ => return Err(bad()),
        };
        let zone_at = rest.rfind(['+', '-']).ok_or_else(bad)?;
        let (time, zone) = rest.split_at(zone_at);
        let time = time
            .split_once('.')
            .map_or(time, |(t, frac)| if num(frac).is_some() { t } else { "" });
        let t: Vec<&str> = time.split(':').collect();
        let (h, mi, se) = match t.as_slice() {
            [h, m, s] if h.len() == 2 && m.len() == 2 && s.len() == 2 => (
                num(h).ok_or_else(bad)?,
                num(m).ok_or_else(bad)?,
                num(s).ok_or_else(bad)?,
            ),
            _ => return Err(bad()),
        };
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let z = zone[1..].replace(':', "");
        let (zh, zm) = match z.len() {
            2 => (num(&z).ok_or_else(bad)?, 0),
            4 => (num(&z[..2]).ok_or_else(bad)?, num(&z[2..]).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        if !(1..=12).contains(&mo)
            || !(1..=31).contains(&da)
            || h > 23
            || mi > 59
            || se > 60
            || zh > 14
            || zm > 59
        {
            return Err(bad());
        }
        let epoch = days_from_civil(y, mo, da) * 86_400 + h * 3_600 + mi * 60 + se
            - sign * (zh * 3_600 + zm * 60);
        Ok(Target::Time {
            text: s.to_string(),
            epoch,
        })
    }
}

/// A `share_snapshots` instance: the share it copies and the members keeping them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotSet {
    pub name: String,
    pub share: String,
    pub path: String,
    pub keep: i64,
    pub members: Vec<String>,
}

/// Every `share_snapshots` of the model, in declaration order.
pub fn snapshot_sets(model: &Model) -> Vec<SnapshotSet> {
    model
        .instances
        .iter()
        .filter(|i| i.kind.value == "share_snapshots")
        .filter_map(|s| {
            let Some(Value::Instance(sh)) = s.param("share").map(|p| &p.value) else {
                return None;
            };
            let share = &model.instances[*sh];
            let members = host_names(model, share.placement.value);
            Some(SnapshotSet {
                name: s.name.value.clone(),
                share: share.name.value.clone(),
                path: match share.param("path").map(|p| &p.value) {
                    Some(Value::Str(p)) => p.clone(),
                    _ => String::new(),
                },
                keep: match s.param("keep").map(|p| &p.value) {
                    Some(Value::Int(k)) => *k,
                    _ => 0,
                },
                members,
            })
        })
        .collect()
}

/// What a member holds of a share's snapshots: `du -sk` of each, oldest first
/// (du counts a file hard-linked into several once, in the first: so each line
/// after the first is the room that snapshot added), or `NONE`.
pub fn snapshots_script(share: &str) -> String {
    format!(
        "cd {} 2>/dev/null || {{ echo NONE; exit 0; }}\n\
         set -- $(find . -mindepth 1 -maxdepth 1 -type d -name '[0-9]*Z' | sort)\n\
         if [ $# -eq 0 ]; then echo NONE; exit 0; fi\n\
         du -sk \"$@\"\n",
        crate::shell::quote(&format!("/var/backups/infra-share/{share}"))
    )
}

/// One snapshot on a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub name: String,
    /// When it was taken (from its name, `20261204T033012Z`), Unix seconds.
    pub time: i64,
    /// KiB: the first one's whole size, each later one's what it added.
    pub kib: u64,
}

/// `du -sk` lines of [`snapshots_script`] (`NONE`: no snapshot yet).
pub fn parse_snapshots(out: &str) -> Vec<Snapshot> {
    out.lines()
        .filter_map(|l| {
            let (kib, name) = l.split_once('\t')?;
            let name = name.trim_start_matches("./").to_string();
            let time = snapshot_time(&name)?;
            Some(Snapshot {
                kib: kib.trim().parse().ok()?,
                name,
                time,
            })
        })
        .collect()
}

/// `20261204T033012Z` as Unix seconds.
fn snapshot_time(name: &str) -> Option<i64> {
    let b = name.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| name.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3_600 + mi * 60 + s)
}

/// One member's snapshots, for people: a header line and one line per snapshot.
pub fn describe_snapshots(host: &str, snaps: &[Snapshot], now: i64) -> String {
    let Some(newest) = snaps.last() else {
        return format!("  on {host}: no snapshot yet\n");
    };
    let total: u64 = snaps.iter().map(|s| s.kib).sum();
    let mut out = format!(
        "  on {host}: {} snapshot{}, newest {}, {} in all\n",
        snaps.len(),
        if snaps.len() == 1 { "" } else { "s" },
        age(now - newest.time),
        crate::plan::human_bytes(total * 1024)
    );
    for (k, s) in snaps.iter().enumerate() {
        out.push_str(&format!(
            "    {}  {}  {}{}\n",
            s.name,
            utc(s.time),
            crate::plan::human_bytes(s.kib * 1024),
            if k == 0 { "" } else { " new" }
        ));
    }
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One backup in a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backup {
    pub label: String,
    /// The repository it is in (pgBackRest's repo key: the member's index).
    pub repo: u64,
    /// full, incr or diff.
    pub kind: String,
    /// Unix seconds.
    pub start: i64,
    pub stop: i64,
    /// The database's size, and what the backup takes in the repository.
    pub size: u64,
    pub repo_size: u64,
}

/// What one member's repository holds for a stanza.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repo {
    /// pgBackRest's status: 0 ok, 2 no backup yet, others an error.
    pub code: i64,
    pub message: String,
    pub backups: Vec<Backup>,
    /// The oldest and newest WAL segment archived.
    pub wal: Option<(String, String)>,
}

/// Parse `pgbackrest info --output=json` for one stanza.
pub fn parse_info(json: &str) -> Result<Repo, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("pgbackrest info is not JSON: {e}"))?;
    let stanza = v
        .as_array()
        .and_then(|a| a.first())
        .ok_or("pgbackrest info lists no stanza")?;
    let status = &stanza["status"];
    let backups = stanza["backup"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| Backup {
                    label: b["label"].as_str().unwrap_or("").to_string(),
                    repo: b["database"]["repo-key"].as_u64().unwrap_or(1),
                    kind: b["type"].as_str().unwrap_or("").to_string(),
                    start: b["timestamp"]["start"].as_i64().unwrap_or(0),
                    stop: b["timestamp"]["stop"].as_i64().unwrap_or(0),
                    size: b["info"]["size"].as_u64().unwrap_or(0),
                    repo_size: b["info"]["repository"]["delta"].as_u64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    let wal = stanza["archive"].as_array().and_then(|a| {
        let min = a.iter().filter_map(|x| x["min"].as_str()).min()?;
        let max = a.iter().filter_map(|x| x["max"].as_str()).max()?;
        Some((min.to_string(), max.to_string()))
    });
    Ok(Repo {
        code: status["code"].as_i64().unwrap_or(-1),
        message: status["message"].as_str().unwrap_or("").to_string(),
        backups,
        wal,
    })
}

/// `3 min ago`, `2 h ago`, `4 d ago`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7_199 => format!("{} min ago", s / 60),
        7_200..=172_799 => format!("{} h ago", s / 3_600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// Unix seconds as `2026-12-02 10:15:00 UTC`.
pub fn utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let rest = t.rem_euclid(86_400);
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// One member's repository, for people: a header line and one line per backup.
pub fn describe(host: &str, repo: &Repo, now: i64) -> String {
    let mut out = String::new();
    let wal = repo
        .wal
        .as_ref()
        .map(|(a, b)| format!("; WAL {a} … {b}"))
        .unwrap_or_default();
    match repo.code {
        0 => out.push_str(&format!(
            "  on {host}: {} backup{}{wal}\n",
            repo.backups.len(),
            if repo.backups.len() == 1 { "" } else { "s" }
        )),
        2 => out.push_str(&format!(
            "  on {host}: no backup yet (the repository is ready){wal}\n"
        )),
        _ => out.push_str(&format!(
            "  on {host}: {} (pgBackRest status {}){wal}\n",
            repo.message, repo.code
        )),
    }
    for b in &repo.backups {
        out.push_str(&format!(
            "    {:<26} {:<5} {}  {:>10}  {:>9} (in the repository {})\n",
            b.label,
            b.kind,
            utc(b.stop),
            age(now - b.stop),
            crate::plan::human_bytes(b.size),
            crate::plan::human_bytes(b.repo_size)
        ));
    }
    out
}

/// A `mariadb_backup`'s script on a member.
fn mariadb_script(name: &str, script: &str) -> String {
    crate::shell::quote(&format!("/etc/infra/mariadb-backup/{name}/{script}"))
}

/// A member's chains (`backup.sh list`).
pub fn chains_script(name: &str) -> String {
    format!(
        "{} list
",
        mariadb_script(name, "backup.sh")
    )
}

/// One backup of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBackup {
    /// Its place in the chain: 0 the full backup, then the incrementals.
    pub seq: u32,
    /// full or incr.
    pub kind: String,
    /// Unix seconds.
    pub start: i64,
    pub stop: i64,
    pub kib: u64,
}

/// A full backup with the incrementals built on it and the binary log from it on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    /// The full backup's start, `20261204T010000Z`.
    pub name: String,
    /// The binary log under it was reset (the member seeded again): a restore
    /// from it ends there.
    pub closed: bool,
    /// When the binary log was last copied into it (Unix seconds, 0: never).
    pub archived: i64,
    pub binlog_kib: u64,
    pub backups: Vec<ChainBackup>,
}

/// The lines of [`chains_script`]: `chain NAME open|closed ARCHIVED KIB` and
/// `backup CHAIN SEQ KIND START STOP KIB`, tab-separated.
pub fn parse_chains(out: &str) -> Vec<Chain> {
    let mut chains: Vec<Chain> = Vec::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        match f.as_slice() {
            ["chain", name, state, archived, kib] => chains.push(Chain {
                name: name.to_string(),
                closed: *state == "closed",
                archived: archived.parse().unwrap_or(0),
                binlog_kib: kib.parse().unwrap_or(0),
                backups: Vec::new(),
            }),
            ["backup", chain, seq, kind, start, stop, kib] => {
                let (Some(c), Ok(seq), Ok(start), Ok(stop)) = (
                    chains.last_mut().filter(|c| c.name == *chain),
                    seq.parse(),
                    start.parse(),
                    stop.parse(),
                ) else {
                    continue;
                };
                c.backups.push(ChainBackup {
                    seq,
                    kind: kind.to_string(),
                    start,
                    stop,
                    kib: kib.parse().unwrap_or(0),
                });
            }
            _ => {}
        }
    }
    chains
}

/// The end of the newest backup among `chains` that ended before `target`.
pub fn newest_before(chains: &[Chain], target: &Target) -> Option<i64> {
    chains
        .iter()
        .flat_map(|c| &c.backups)
        .map(|b| b.stop)
        .filter(|stop| match target {
            Target::Latest => true,
            Target::Time { epoch, .. } => *stop < *epoch,
        })
        .max()
}

/// One member's chains, for people: a header line, a line per backup and one
/// for the chain's binary log.
pub fn describe_chains(host: &str, chains: &[Chain], now: i64) -> String {
    let n: usize = chains.iter().map(|c| c.backups.len()).sum();
    if n == 0 {
        return format!("  on {host}: no backup yet\n");
    }
    let mut out = format!(
        "  on {host}: {n} backup{} in {} chain{}\n",
        if n == 1 { "" } else { "s" },
        chains.len(),
        if chains.len() == 1 { "" } else { "s" }
    );
    for c in chains {
        for b in &c.backups {
            out.push_str(&format!(
                "    {}/{:03}  {:<4}  {}  {:>10}  {:>9}\n",
                c.name,
                b.seq,
                b.kind,
                utc(b.stop),
                age(now - b.stop),
                crate::plan::human_bytes(b.kib * 1024)
            ));
        }
        let log = if c.archived == 0 {
            "not copied yet".to_string()
        } else {
            format!(
                "copied until {} ({})",
                utc(c.archived),
                age(now - c.archived)
            )
        };
        out.push_str(&format!(
            "    {}      binary log {log}, {}{}\n",
            c.name,
            crate::plan::human_bytes(c.binlog_kib * 1024),
            if c.closed {
                "; ended: the member was seeded again"
            } else {
                ""
            }
        ));
    }
    out
}

/// The primary's GTID position (on the VIP holder).
pub fn gtid_script() -> String {
    "mariadb --protocol=socket -N -B -e 'SELECT @@gtid_binlog_pos'\n".to_string()
}

/// The first second whose events a MariaDB restore to `target` leaves out: the
/// binary log's times are whole seconds, so a time with a fraction includes the
/// events of its second.
pub fn binlog_stop(target: &Target) -> Option<i64> {
    match target {
        Target::Latest => None,
        Target::Time { text, epoch } => {
            let fraction = text
                .split_once(' ')
                .is_some_and(|(_, time)| time.contains('.'));
            Some(epoch + i64::from(fraction))
        }
    }
}

/// Restore `target` into the scratch server (restore.sh on the member), after
/// the member applied the primary's `gtid`.
pub fn mariadb_restore_script(name: &str, target: &Target, gtid: Option<&str>) -> String {
    let arg = binlog_stop(target).map_or("latest".to_string(), |s| format!("@{s}"));
    format!(
        "{} {}{} 2>&1\n",
        mariadb_script(name, "restore.sh"),
        crate::shell::quote(&arg),
        gtid.map(|g| format!(" {}", crate::shell::quote(g)))
            .unwrap_or_default()
    )
}

/// Stop and delete the scratch instance of a backup.
pub fn stop_restore_script(site: &Site) -> String {
    match site.engine {
        Engine::Postgres => format!("{}/restore.sh stop\n", dir(&site.name)),
        Engine::Mariadb => format!("{} stop\n", mariadb_script(&site.name, "restore.sh")),
    }
}

/// `sql` in `database` as root over the socket, tab-separated, no headers.
pub fn mariadb_sql_script(database: &str, sql: &str) -> String {
    format!(
        "mariadb --protocol=socket -N -B -D {} -e {}\n",
        crate::shell::quote(database),
        crate::shell::quote(sql)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_snapshots_are_listed_from_du() {
        let out = "3120\t./20261203T033001Z\n48\t./20261204T033012Z\n";
        let snaps = parse_snapshots(out);
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[0].kib, 3120);
        assert_eq!(snaps[1].name, "20261204T033012Z");
        assert_eq!(utc(snaps[1].time), "2026-12-04 03:30:12 UTC");
        assert!(parse_snapshots("NONE\n").is_empty());
        assert!(parse_snapshots("12\t./.new\n7\t./2026120T0330Z\n").is_empty());
        let text = describe_snapshots("alpha", &snaps, snaps[1].time + 7_200);
        assert!(
            text.starts_with("  on alpha: 2 snapshots, newest 2 h ago, 3.1 MiB in all\n"),
            "{text}"
        );
        assert!(
            text.contains("20261204T033012Z  2026-12-04 03:30:12 UTC  48.0 KiB new"),
            "{text}"
        );
        assert_eq!(
            describe_snapshots("beta", &[], 0),
            "  on beta: no snapshot yet\n"
        );
    }

    const INFO: &str = r#"[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000006","min":"000000010000000000000001"}],"backup":[{"archive":{"start":"000000010000000000000004","stop":"000000010000000000000004"},"info":{"delta":23456789,"repository":{"delta":3123456,"size":3123456},"size":23456789},"label":"20261202-101500F","type":"full","timestamp":{"start":1764670500,"stop":1764670510}}],"cipher":"none","db":[{"id":1,"repo-key":1,"system-id":7,"version":"15"}],"name":"main","repo":[{"cipher":"none","key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]"#;

    #[test]
    fn info_is_parsed_and_described() {
        let r = parse_info(INFO).unwrap();
        assert_eq!(r.code, 0);
        assert_eq!(r.backups.len(), 1);
        assert_eq!(r.backups[0].kind, "full");
        assert_eq!(r.backups[0].repo_size, 3_123_456);
        assert_eq!(
            r.wal,
            Some((
                "000000010000000000000001".into(),
                "000000010000000000000006".into()
            ))
        );
        let text = describe("beta", &r, 1_764_670_510 + 600);
        assert!(
            text.contains(
                "on beta: 1 backup; WAL 000000010000000000000001 … 000000010000000000000006"
            ),
            "{text}"
        );
        assert!(text.contains("20261202-101500F"), "{text}");
        assert!(text.contains("10 min ago"), "{text}");
        assert!(text.contains("22.4 MiB"), "{text}");
        assert!(text.contains("(in the repository 3.0 MiB)"), "{text}");
    }

    #[test]
    fn the_repository_with_the_newest_backup_before_the_target() {
        let b = |repo, stop| Backup {
            label: String::new(),
            repo,
            kind: "full".into(),
            start: stop - 10,
            stop,
            size: 0,
            repo_size: 0,
        };
        let all = [b(1, 100), b(2, 500), b(1, 900)];
        assert_eq!(choose_repo(&all, &Target::Latest), Some(1));
        let at = |epoch| Target::Time {
            text: String::new(),
            epoch,
        };
        assert_eq!(choose_repo(&all, &at(600)), Some(2));
        assert_eq!(choose_repo(&all, &at(300)), Some(1));
        assert_eq!(choose_repo(&all, &at(100)), None);
    }

    #[test]
    fn an_empty_stanza_and_garbage() {
        let r = parse_info(r#"[{"archive":[],"backup":[],"name":"main","status":{"code":2,"message":"no valid backups"}}]"#).unwrap();
        assert_eq!(r.code, 2);
        assert!(describe("alpha", &r, 0).contains("no backup yet"));
        assert!(parse_info("ERROR: [055]").is_err());
        assert!(parse_info("[]").is_err());
    }

    #[test]
    fn restored_rows_are_read_from_the_listing() {
        let out = "restored; rows per table:\n  ledger\tpublic.items\t1000\n  ledger\tpublic.infra_drill_restore\t42\n";
        assert_eq!(
            restored_rows(out, "ledger", "public.infra_drill_restore"),
            Some(42)
        );
        assert_eq!(restored_rows(out, "other", "public.items"), None);
    }

    #[test]
    fn times_and_targets() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_764_670_500), "2025-12-02 10:15:00 UTC");
        assert_eq!(Target::parse("latest"), Ok(Target::Latest));
        assert_eq!(
            Target::parse("2025-12-02 10:15:00+00"),
            Ok(Target::Time {
                text: "2025-12-02 10:15:00+00".into(),
                epoch: 1_764_670_500
            })
        );
        let epoch = |t: &str| match Target::parse(t) {
            Ok(Target::Time { epoch, .. }) => epoch,
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(epoch("2025-12-02 11:15:00+01"), 1_764_670_500);
        assert_eq!(epoch("2025-12-02 05:45:00-04:30"), 1_764_670_500);
        assert_eq!(epoch("2025-12-02 10:15:00.257639+00"), 1_764_670_500);
        for bad in [
            "yesterday",
            "2026-12-02",
            "2026-12-02 10:15:00",
            "2026-12-02T10:15:00+00",
            "2026-12-02 10:15+00",
            "2026-12-02 10:15:00 Europe/Paris",
            "2026-13-02 10:15:00+00",
            "2026-12-02'; rm -rf /",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(age(30), "30 s ago");
        assert_eq!(age(3 * 86_400), "3 d ago");
    }

    #[test]
    fn mariadb_chains_are_parsed_and_described() {
        let out = "chain\t20261204T043053Z\tclosed\t1796358664\t20\n\
                   backup\t20261204T043053Z\t000\tfull\t1796358653\t1796358653\t17596\n\
                   backup\t20261204T043053Z\t001\tincr\t1796358658\t1796358660\t5156\n\
                   backup\tother\t002\tincr\t1\t2\t3\n\
                   garbage\n\
                   chain\t20261204T043305Z\topen\t0\t8\n";
        let chains = parse_chains(out);
        assert_eq!(chains.len(), 2);
        assert!(chains[0].closed && !chains[1].closed);
        assert_eq!(
            chains[0].backups.len(),
            2,
            "a backup line of another chain is not this one's"
        );
        assert_eq!(chains[0].backups[1].seq, 1);
        assert_eq!(chains[0].backups[1].kind, "incr");
        let text = describe_chains("web2", &chains, 1796358720);
        assert!(
            text.starts_with("  on web2: 2 backups in 2 chains\n"),
            "{text}"
        );
        assert!(
            text.contains("20261204T043053Z/001  incr  2026-12-04 04:31:00 UTC    60 s ago"),
            "{text}"
        );
        assert!(text.contains("binary log copied until 2026-12-04 04:31:04 UTC (56 s ago), 20.0 KiB; ended: the member was seeded again"), "{text}");
        assert!(text.contains("binary log not copied yet"), "{text}");
        assert_eq!(describe_chains("db1", &[], 0), "  on db1: no backup yet\n");
        let at = |t: &str| Target::parse(t).unwrap();
        assert_eq!(newest_before(&chains, &Target::Latest), Some(1796358660));
        assert_eq!(
            newest_before(&chains, &at("2026-12-04 04:30:59+00")),
            Some(1796358653)
        );
        assert_eq!(newest_before(&chains, &at("2026-12-04 04:30:53+00")), None);
    }

    #[test]
    fn the_binary_log_stops_at_whole_seconds() {
        let at = |t: &str| Target::parse(t).unwrap();
        let whole = at("2026-12-04 04:31:01+00");
        let Target::Time { epoch, .. } = whole else {
            panic!()
        };
        // 04:31:01 exactly: the events of that second are after it
        assert_eq!(binlog_stop(&whole), Some(epoch));
        // 04:31:01.4: the events of 04:31:01 are taken, they may be before it
        assert_eq!(
            binlog_stop(&at("2026-12-04 04:31:01.407+00")),
            Some(epoch + 1)
        );
        assert_eq!(binlog_stop(&Target::Latest), None);
        assert_eq!(
            mariadb_restore_script("shop", &whole, Some("0-1-30")),
            format!("'/etc/infra/mariadb-backup/shop/restore.sh' '@{epoch}' '0-1-30' 2>&1\n")
        );
    }
}
