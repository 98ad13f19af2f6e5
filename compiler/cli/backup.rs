//! `infra backups` and `infra restore`: over [`crate::backup`], one SSH session
//! per member.

use super::deploy::{fleet, show, Connection};
use crate::backup::{self, Site, Target};
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
    /// The `postgres_backup` to restore from.
    pub name: String,
    pub path: Option<PathBuf>,
    /// `latest` (the end of the archive) or a time, e.g. "2026-12-02 10:15:00+00".
    #[arg(long, value_name = "TIME", default_value = "latest")]
    pub to: String,
    /// The member that runs the scratch instance (default: the first that does
    /// not hold the VIP).
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
        eprintln!("error: {host}: {e}");
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
    if sites.is_empty() {
        eprintln!("no postgres_backup in this configuration (docs/stdlib.md, \"postgres_backup\")");
        return 1;
    }
    let mut failed = false;
    let mut json = Vec::new();
    for site in &sites {
        if !args.json {
            println!(
                "postgres_backup {} (postgres {} on {}):",
                site.name, site.cluster, site.group
            );
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
                        print!("{}", backup::describe(host, &repo, now()));
                    }
                }
                Err(e) => {
                    failed = true;
                    if args.json {
                        json.push(
                            serde_json::json!({"backup": site.name, "host": host, "error": e}),
                        );
                    } else {
                        println!("  on {host}: {e}");
                    }
                }
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    }
    i32::from(failed)
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
            None => eprintln!("warning: {h} cannot be reached"),
        }
    }
    (others, holder)
}

pub fn restore(args: RestoreArgs) -> i32 {
    let target = match Target::parse(&args.to) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
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
        eprintln!(
            "error: no postgres_backup `{}` in this configuration (there is: {})",
            args.name,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return 1;
    };
    let (others, holder) = members(&fleet, site);
    let on = match &args.on {
        Some(h) if site.members.contains(h) => h.clone(),
        Some(h) => {
            eprintln!(
                "error: {h} is not a member of {} ({})",
                site.group,
                site.members.join(", ")
            );
            return 1;
        }
        None => match others.first() {
            Some(h) => h.clone(),
            None => {
                eprintln!(
                    "error: no member of {} but the VIP holder can be reached; restore there with `--on {}` if it has the disk space for a second copy",
                    site.group,
                    holder.as_deref().unwrap_or("HOST")
                );
                return 1;
            }
        },
    };
    // the primary's last commits into the archive first: `latest` and a time of a
    // few seconds ago then include them
    match &holder {
        Some(h) => match run(&fleet, h, &backup::archive_now_script(&site.name)) {
            Ok(out) if out.success() => {
                eprintln!("{h}: the current WAL segment is archived")
            }
            Ok(out) => eprintln!(
                "warning: {h}: the current WAL segment could not be archived in every repository (the restore may end a little earlier):\n{}",
                out.stderr_text()
            ),
            Err(_) => {}
        },
        None => eprintln!(
            "warning: no member holds the VIP of {}: the restore ends where the archive does",
            site.group
        ),
    }
    // the repository with the newest backup before the target, as `on` sees them
    let info = match run(&fleet, &on, &backup::info_all_script(&site.name)) {
        Ok(out) => backup::parse_info(&String::from_utf8_lossy(&out.stdout)),
        Err(code) => return code,
    };
    let repo = match info.map(|i| backup::choose_repo(&i.backups, &target)) {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!(
                "error: no backup of {} ended before {} in any repository {on} can reach (`infra backups`)",
                site.name, args.to
            );
            return 1;
        }
        Err(e) => {
            eprintln!("error: {on}: cannot list the repositories: {e}");
            return 1;
        }
    };
    let from = (repo as usize)
        .checked_sub(1)
        .and_then(|i| site.members.get(i))
        .map_or(format!("repository {repo}"), |h| {
            format!("{h}'s repository")
        });
    eprintln!(
        "{on}: restoring {} from {from} into a scratch instance (copying the backup and replaying WAL; this takes a while for a large database)",
        site.name
    );
    match run(
        &fleet,
        &on,
        &backup::restore_script(&site.name, &target, repo),
    ) {
        Ok(out) => {
            print!("{}", String::from_utf8_lossy(&out.stdout));
            let err = out.stderr_text();
            if !err.is_empty() {
                eprintln!("{err}");
            }
            if out.success() {
                0
            } else {
                eprintln!("error: the restore of {} on {on} failed (above)", site.name);
                1
            }
        }
        Err(code) => code,
    }
}
