//! `infra backups` and `infra restore`: over [`crate::backup`], one SSH session
//! per member.

use super::deploy::{fleet, show, Connection};
use crate::backup::{self, Engine, Site, Target};
use crate::deploy::Fleet;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct BackupsArgs {
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Connection,
    /// Every member's repository as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// The `postgres_backup` or `mariadb_backup` to restore from.
    pub name: String,
    pub path: Option<PathBuf>,
    /// `latest` (the end of the archive) or a time, e.g. "2026-12-02 10:15:00+00".
    #[arg(long, value_name = "TIME", default_value = "latest")]
    pub to: String,
    /// The member that runs the scratch instance (default: for PostgreSQL the
    /// first that does not hold the VIP; for MariaDB the one without the VIP
    /// holding the newest backup before TIME).
    #[arg(long, value_name = "HOST")]
    pub on: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

fn run(fleet: &Fleet, host: &str, script: &str) -> Result<crate::transport::Output, i32> {
    let mut s = fleet.connect(host).map_err(|e| {
        show(&e);
        1
    })?;
    s.run(script, &[]).map_err(|e| {
        errln!("error: {host}: {e}");
        1
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn list(args: BackupsArgs) -> i32 {
    let fleet = match fleet(&args.path, &args.conn) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let sites = backup::sites(&fleet.model);
    let sets = backup::snapshot_sets(&fleet.model);
    if sites.is_empty() && sets.is_empty() {
        errln!("no postgres_backup, mariadb_backup or share_snapshots in this configuration (docs/stdlib.md, \"postgres_backup\", \"mariadb_backup\", \"share_snapshots\")");
        return 1;
    }
    let mut failed = false;
    let mut json = Vec::new();
    for site in &sites {
        if !args.json {
            outln!(
                "{} {} ({} {} on {}):",
                site.engine.kind(),
                site.name,
                site.engine.server_kind(),
                site.cluster,
                site.group
            );
        }
        if site.engine == Engine::Mariadb {
            for (host, r) in site.members.iter().zip(chains(&fleet, site, &site.members)) {
                match r {
                    Ok(chains) => {
                        if args.json {
                            json.push(serde_json::json!({"backup": site.name, "host": host, "chains": chains}));
                        } else {
                            out!("{}", backup::describe_chains(host, &chains, now()));
                        }
                    }
                    Err(e) => {
                        failed = true;
                        if args.json {
                            json.push(
                                serde_json::json!({"backup": site.name, "host": host, "error": e}),
                            );
                        } else {
                            outln!("  on {host}: {e}");
                        }
                    }
                }
            }
            continue;
        }
        let results = crate::transport::in_parallel(&site.members, |h| {
            run(&fleet, h, &backup::info_script(&site.name))
        });
        for (host, r) in site.members.iter().zip(results) {
            let repo = match r {
                Ok(out) if out.success() => {
                    backup::parse_info(&String::from_utf8_lossy(&out.stdout))
                }
                Ok(out) => Err(format!(
                    "pgbackrest info failed: {}",
                    out.stderr_text().lines().last().unwrap_or("")
                )),
                Err(_) => Err("cannot be reached".into()),
            };
            match repo {
                Ok(repo) => {
                    failed |= repo.code != 0 && repo.code != 2;
                    if args.json {
                        json.push(serde_json::json!({"backup": site.name, "host": host, "repository": repo}));
                    } else {
                        out!("{}", backup::describe(host, &repo, now()));
                    }
                }
                Err(e) => {
                    failed = true;
                    if args.json {
                        json.push(
                            serde_json::json!({"backup": site.name, "host": host, "error": e}),
                        );
                    } else {
                        outln!("  on {host}: {e}");
                    }
                }
            }
        }
    }
    for set in &sets {
        if !args.json {
            outln!(
                "share_snapshots {} (share {}, {}; keep {}):",
                set.name,
                set.share,
                set.path,
                set.keep
            );
        }
        let results = crate::transport::in_parallel(&set.members, |h| {
            run(&fleet, h, &backup::snapshots_script(&set.share))
        });
        for (host, r) in set.members.iter().zip(results) {
            match r {
                Ok(out) if out.success() => {
                    let snaps = backup::parse_snapshots(&String::from_utf8_lossy(&out.stdout));
                    if args.json {
                        json.push(serde_json::json!({"snapshots": set.name, "share": set.share, "host": host, "taken": snaps}));
                    } else {
                        out!("{}", backup::describe_snapshots(host, &snaps, now()));
                    }
                }
                r => {
                    failed = true;
                    let e = match r {
                        Ok(out) => format!(
                            "listing the snapshots failed: {}",
                            out.stderr_text().lines().last().unwrap_or("")
                        ),
                        Err(_) => "cannot be reached".into(),
                    };
                    if args.json {
                        json.push(serde_json::json!({"snapshots": set.name, "share": set.share, "host": host, "error": e}));
                    } else {
                        outln!("  on {host}: {e}");
                    }
                }
            }
        }
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    }
    i32::from(failed)
}

/// Each of `hosts`' mariadb_backup chains, in order.
fn chains(fleet: &Fleet, site: &Site, hosts: &[String]) -> Vec<Result<Vec<backup::Chain>, String>> {
    crate::transport::in_parallel(hosts, |h| {
        match run(fleet, h, &backup::chains_script(&site.name)) {
            Ok(out) if out.success() => {
                Ok(backup::parse_chains(&String::from_utf8_lossy(&out.stdout)))
            }
            Ok(out) => Err(format!(
                "listing the backups failed: {}",
                out.stderr_text().lines().last().unwrap_or("")
            )),
            Err(_) => Err("cannot be reached".into()),
        }
    })
}

/// The member that runs the scratch instance, and the VIP holder (which archives
/// its current WAL first), by asking each member whether it holds the VIP.
fn members(fleet: &Fleet, site: &Site) -> (Vec<String>, Option<String>) {
    let answers = crate::transport::in_parallel(&site.members, |h| {
        let mut s = fleet.connect(h).ok()?;
        let out = s.run(&backup::holder_script(&site.vip), &[]).ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    let mut others = Vec::new();
    let mut holder = None;
    for (h, a) in site.members.iter().zip(answers) {
        match a.as_deref() {
            Some("holder") => holder = Some(h.clone()),
            Some(_) => others.push(h.clone()),
            None => errln!("warning: {h} cannot be reached"),
        }
    }
    (others, holder)
}

pub fn restore(args: RestoreArgs) -> i32 {
    let target = match Target::parse(&args.to) {
        Ok(t) => t,
        Err(e) => {
            errln!("error: {e}");
            return 1;
        }
    };
    let fleet = match fleet(&args.path, &args.conn) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let sites = backup::sites(&fleet.model);
    let Some(site) = sites.iter().find(|s| s.name == args.name) else {
        let known: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
        errln!(
            "error: no postgres_backup or mariadb_backup `{}` in this configuration (there is: {})",
            args.name,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return 1;
    };
    let restored = match site.engine {
        Engine::Postgres => restore_run(&fleet, site, &target, args.on.as_deref(), &args.to),
        Engine::Mariadb => mariadb_restore_run(&fleet, site, &target, args.on.as_deref(), &args.to),
    };
    match restored {
        Ok(r) => {
            out!("{}", r.output);
            if r.ok {
                0
            } else {
                errln!(
                    "error: the restore of {} on {} failed (above)",
                    site.name,
                    r.host
                );
                1
            }
        }
        Err(code) => code,
    }
}

/// What a restore printed on the member that ran it.
pub struct Restored {
    pub host: String,
    pub output: String,
    pub ok: bool,
}

/// Restore `site` to `target` on `on` (default: the first member without the VIP).
fn restore_run(
    fleet: &Fleet,
    site: &Site,
    target: &Target,
    on: Option<&str>,
    to: &str,
) -> Result<Restored, i32> {
    let (others, holder) = members(fleet, site);
    let on = match on {
        Some(h) if site.members.iter().any(|m| m == h) => h.to_string(),
        Some(h) => {
            errln!(
                "error: {h} is not a member of {} ({})",
                site.group,
                site.members.join(", ")
            );
            return Err(1);
        }
        None => match others.first() {
            Some(h) => h.clone(),
            None => {
                errln!(
                    "error: no member of {} but the VIP holder can be reached; restore there with `--on {}` if it has the disk space for a second copy",
                    site.group,
                    holder.as_deref().unwrap_or("HOST")
                );
                return Err(1);
            }
        },
    };
    // the primary's last commits into the archive first: `latest` and a time of a
    // few seconds ago then include them
    match &holder {
        Some(h) => match run(fleet, h, &backup::archive_now_script(&site.name)) {
            Ok(out) if out.success() => {
                errln!("{h}: the current WAL segment is archived")
            }
            Ok(out) => errln!(
                "warning: {h}: the current WAL segment could not be archived in every repository (the restore may end a little earlier):\n{}",
                out.stderr_text()
            ),
            Err(_) => {}
        },
        None => errln!(
            "warning: no member holds the VIP of {}: the restore ends where the archive does",
            site.group
        ),
    }
    // the repository with the newest backup before the target, as `on` sees them
    let info = match run(fleet, &on, &backup::info_all_script(&site.name)) {
        Ok(out) => backup::parse_info(&String::from_utf8_lossy(&out.stdout)),
        Err(code) => return Err(code),
    };
    let repo = match info.map(|i| backup::choose_repo(&i.backups, target)) {
        Ok(Some(r)) => r,
        Ok(None) => {
            errln!(
                "error: no backup of {} ended before {} in any repository {on} can reach (`infra backups`)",
                site.name, to
            );
            return Err(1);
        }
        Err(e) => {
            errln!("error: {on}: cannot list the repositories: {e}");
            return Err(1);
        }
    };
    let from = (repo as usize)
        .checked_sub(1)
        .and_then(|i| site.members.get(i))
        .map_or(format!("repository {repo}"), |h| {
            format!("{h}'s repository")
        });
    errln!(
        "{on}: restoring {} from {from} into a scratch instance (copying the backup and replaying WAL; this takes a while for a large database)",
        site.name
    );
    let out = run(
        fleet,
        &on,
        &backup::restore_script(&site.name, target, repo),
    )?;
    let err = out.stderr_text();
    if !err.is_empty() {
        errln!("{err}");
    }
    Ok(Restored {
        ok: out.success(),
        output: String::from_utf8_lossy(&out.stdout).into_owned(),
        host: on,
    })
}

/// Restore a `mariadb_backup` to `target` on `on` (default: the member without
/// the VIP holding the newest backup before it: each member has only its own).
fn mariadb_restore_run(
    fleet: &Fleet,
    site: &Site,
    target: &Target,
    on: Option<&str>,
    to: &str,
) -> Result<Restored, i32> {
    let (others, holder) = members(fleet, site);
    let on = match on {
        Some(h) if site.members.iter().any(|m| m == h) => h.to_string(),
        Some(h) => {
            errln!(
                "error: {h} is not a member of {} ({})",
                site.group,
                site.members.join(", ")
            );
            return Err(1);
        }
        None => {
            let newest = others
                .iter()
                .zip(chains(fleet, site, &others))
                .filter_map(|(h, r)| match r {
                    Ok(c) => Some((backup::newest_before(&c, target)?, h)),
                    Err(e) => {
                        errln!("warning: {h}: {e}");
                        None
                    }
                })
                .max();
            match newest {
                Some((_, h)) => h.clone(),
                None => {
                    let on_holder = holder.as_ref().is_some_and(|h| {
                        chains(fleet, site, std::slice::from_ref(h))
                            .pop()
                            .and_then(Result::ok)
                            .is_some_and(|c| backup::newest_before(&c, target).is_some())
                    });
                    match (&holder, on_holder) {
                        (Some(h), true) => errln!(
                            "error: only {h}, the VIP holder of {}, has a backup of {} that ended before {to}: restore there with `--on {h}` if it has the disk space for a second copy",
                            site.group, site.name
                        ),
                        _ => errln!(
                            "error: no member of {} has a backup of {} that ended before {to} (`infra backups`)",
                            site.group, site.name
                        ),
                    }
                    return Err(1);
                }
            }
        }
    };
    // the primary's position now: the member applies it before the restore, so
    // `latest` and a time of a few seconds ago include the last commits
    let gtid = match holder.as_deref() {
        Some(h) if h != on => match run(fleet, h, &backup::gtid_script()) {
            Ok(out) if out.success() => {
                Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
                    .filter(|g| !g.is_empty())
            }
            _ => {
                errln!("warning: {h}: the primary's GTID position could not be read (the restore may end a little earlier)");
                None
            }
        },
        Some(_) => None,
        None => {
            errln!(
                "warning: no member holds the VIP of {}: the restore ends where {on}'s binary log does",
                site.group
            );
            None
        }
    };
    errln!(
        "{on}: restoring {} into a scratch server (copying and preparing the backup, replaying the binary log; this takes a while for a large database)",
        site.name
    );
    let out = run(
        fleet,
        &on,
        &backup::mariadb_restore_script(&site.name, target, gtid.as_deref()),
    )?;
    let err = out.stderr_text();
    if !err.is_empty() {
        errln!("{err}");
    }
    Ok(Restored {
        ok: out.success(),
        output: String::from_utf8_lossy(&out.stdout).into_owned(),
        host: on,
    })
}

/// `infra drill --fault restore`: rows written on the primary, a moment noted, the
/// rows deleted, `infra restore` to that moment; exit 0 only when every row is back.
pub fn drill(dir: &std::path::Path, model: &crate::resolve::Model) -> i32 {
    const ROWS: u64 = 1000;
    const TABLE: &str = "infra_drill_restore";
    let Some(site) = backup::sites(model).into_iter().next() else {
        errln!("error: --fault restore needs a `postgres_backup` or `mariadb_backup` in the configuration (docs/stdlib.md, \"postgres_backup\", \"mariadb_backup\")");
        return 1;
    };
    if site.database.is_empty() {
        errln!(
            "error: --fault restore writes into the first of mariadb `{}`'s `databases`, and it declares none",
            site.cluster
        );
        return 1;
    }
    let conn = Connection {
        lab: true,
        accept_new_host_keys: false,
    };
    let fleet = match fleet(&Some(dir.to_path_buf()), &conn) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let (others, holder) = members(&fleet, &site);
    let Some(primary) = holder else {
        errln!(
            "error: no member of {} holds the VIP: nothing to write to",
            site.group
        );
        return 1;
    };
    let Some(standby) = others.first().cloned() else {
        errln!(
            "error: no other member of {} answers: no repository to back up into",
            site.group
        );
        return 1;
    };
    let db = &site.database;
    let mariadb = site.engine == Engine::Mariadb;
    let sql = |host: &str, q: &str| -> Result<String, i32> {
        let script = if mariadb {
            backup::mariadb_sql_script(db, q)
        } else {
            backup::psql_script(db, q)
        };
        let out = run(&fleet, host, &script)?;
        if out.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            errln!("error: {host}: {}", out.stderr_text());
            Err(1)
        }
    };
    let say = |s: &str| errln!("drill: {s}");
    let steps = || -> Result<i32, i32> {
        sql(
            &primary,
            &if mariadb {
                format!("DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id INT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6)); INSERT INTO {TABLE} (id) SELECT seq FROM seq_1_to_{ROWS}")
            } else {
                format!("DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id int PRIMARY KEY, at timestamptz DEFAULT now()); INSERT INTO {TABLE} (id) SELECT generate_series(1, {ROWS})")
            },
        )?;
        say(&format!(
            "{ROWS} rows written into {db}.{TABLE} on {primary}"
        ));
        // a backup that ends before the moment: the one a restore needs
        let t = std::time::Instant::now();
        let out = run(
            &fleet,
            &standby,
            &format!(
                "systemctl start {}-{}@full.service\n",
                if mariadb {
                    "infra-mariadb-backup"
                } else {
                    "infra-pgbackrest"
                },
                site.name
            ),
        )?;
        if !out.success() {
            errln!(
                "error: the full backup on {standby} failed: {}",
                out.stderr_text()
            );
            return Err(1);
        }
        let backup_s = t.elapsed().as_secs_f64();
        say(&format!(
            "full backup into {standby}'s {} in {backup_s:.1} s",
            if mariadb { "backups" } else { "repository" }
        ));
        std::thread::sleep(std::time::Duration::from_secs(1));
        let moment = sql(
            &primary,
            if mariadb {
                "SELECT CONCAT(DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%d %H:%i:%s.%f'), '+00')"
            } else {
                "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'"
            },
        )?;
        std::thread::sleep(std::time::Duration::from_secs(1));
        sql(&primary, &format!("DELETE FROM {TABLE}"))?;
        say(&format!("moment {moment} noted, then every row deleted"));
        let target = match Target::parse(&moment) {
            Ok(t) => t,
            Err(e) => {
                errln!("error: {e}");
                return Err(1);
            }
        };
        let t = std::time::Instant::now();
        let r = if mariadb {
            mariadb_restore_run(&fleet, &site, &target, None, &moment)?
        } else {
            restore_run(&fleet, &site, &target, None, &moment)?
        };
        let restore_s = t.elapsed().as_secs_f64();
        let table = if mariadb {
            TABLE.to_string()
        } else {
            format!("public.{TABLE}")
        };
        let back = backup::restored_rows(&r.output, db, &table);
        let _ = run(&fleet, &r.host, &backup::stop_restore_script(&site));
        let _ = sql(&primary, &format!("DROP TABLE IF EXISTS {TABLE}"));
        let got = back.unwrap_or(0);
        outln!(
            "restore drill of {} ({db} on {}): {ROWS} rows written on {primary}, deleted; restored to {moment} on {} in {restore_s:.1} s (backup {backup_s:.1} s): {got} of {ROWS} rows back",
            site.name, site.group, r.host
        );
        if !r.ok || got != ROWS {
            if !r.ok {
                out!("{}", r.output);
            }
            outln!("FAILED: the restore did not bring every row back");
            return Ok(1);
        }
        Ok(0)
    };
    steps().unwrap_or_else(|code| code)
}
