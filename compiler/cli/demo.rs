//! `infra demo`: the main job on an embedded default. Boots the accounting example as
//! two local machines (`infra lab up`), applies it (`infra apply --lab`), shows where
//! the VIP and the PostgreSQL primary are, then runs a failover drill: alpha is
//! powered off, beta takes the VIP and promotes its database; alpha comes back and
//! stays a backup (nopreempt).

use super::deploy::{self, ApplyArgs, Connection};
use super::lab::{self as lab_cli, LabCommand};
use crate::{drill, lab};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The accounting example, embedded so the demo runs from anywhere.
const ACCOUNTING: &str = include_str!("../../examples/accounting/main.infra");
/// The example's application (its `source = "app"`), written beside it.
const ACCOUNTING_APP: &[(&str, &str)] = &[
    (
        "app/VERSION",
        include_str!("../../examples/accounting/app/VERSION"),
    ),
    (
        "app/public/index.php",
        include_str!("../../examples/accounting/app/public/index.php"),
    ),
    (
        "app/bin/close.php",
        include_str!("../../examples/accounting/app/bin/close.php"),
    ),
    (
        "app/bin/lint.php",
        include_str!("../../examples/accounting/app/bin/lint.php"),
    ),
    (
        "app/bin/migrate.php",
        include_str!("../../examples/accounting/app/bin/migrate.php"),
    ),
    (
        "app/lib/db.php",
        include_str!("../../examples/accounting/app/lib/db.php"),
    ),
];

pub fn run(dir: Option<PathBuf>) -> i32 {
    let dir = match dir {
        Some(d) => d,
        None => match write_embedded() {
            Ok(d) => d,
            Err(e) => {
                errln!("error: cannot write the embedded example: {e}");
                return 1;
            }
        },
    };
    let checked = match super::load(&dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let model = &checked.model;
    let name = lab::lab_name(&dir);
    step(&format!(
        "1/4 booting {} host(s) of {} as local systemd machines",
        model.hosts.len(),
        dir.display()
    ));
    // From scratch every time: a lab left by an earlier drill has a former primary
    // that must be re-seeded before it can rejoin (see docs/stdlib.md).
    if let Err(e) = lab::down(&name) {
        errln!("error: {e}");
        return 1;
    }
    let rc = lab_cli::run(
        LabCommand::Up {
            dir: Some(dir.clone()),
            json: false,
        },
        &dir,
    );
    if rc != 0 {
        return rc;
    }
    step("2/4 infra apply --lab (standbys first, health gate, then the primary)");
    let rc = deploy::apply(ApplyArgs {
        path: Some(dir.clone()),
        conn: Connection {
            lab: true,
            accept_new_host_keys: false,
        },
        select: Default::default(),
        allow_partial_group: false,
        plan: None,
        secrets: None,
        confirm_timeout: 120,
        lock_wait: 60,
        json: false,
    });
    if rc != 0 {
        return rc;
    }
    let Some(group) = model.groups.first() else {
        step("done: no failover group to drill");
        return 0;
    };
    let vip = group.vip.value.addr.to_string();
    let members: Vec<String> = group
        .members
        .iter()
        .map(|m| model.hosts[m.value].name.value.clone())
        .collect();
    step("3/4 where things are");
    let holder = wait_for(Duration::from_secs(30), || {
        vip_holder(&name, &members, &vip)
    });
    let Some(primary) = holder else {
        errln!("error: no member holds the VIP {vip} 30 s after apply: check `infra lab exec {} -- journalctl -u keepalived`", members[0]);
        return 1;
    };
    outln!(
        "  VIP {vip} of failover group `{}` is on {primary}",
        group.name.value
    );
    let has_pg = model.instances.iter().any(|i| i.kind.value == "postgres");
    if has_pg && members.len() > 1 {
        // The standby copies the primary with pg_basebackup, then streams.
        let t = Instant::now();
        let streaming = wait_for(Duration::from_secs(120), || {
            sql(&name, &primary, "select string_agg(client_addr::text, ', ') from pg_stat_replication where state = 'streaming'")
                .filter(|s| !s.is_empty())
        });
        match streaming {
            Some(s) => outln!(
                "  PostgreSQL primary on {primary}; standby {s} streaming (after {:.0} s)",
                t.elapsed().as_secs_f64()
            ),
            None => {
                errln!("error: no standby streams from {primary} after 120 s: check `infra lab exec {} -- journalctl -u infra-postgres-main-bootstrap`", members.iter().find(|m| **m != primary).map(String::as_str).unwrap_or("beta"));
                return 1;
            }
        }
        let wrote = sql_in(&name, &primary, "accounting", "create table if not exists infra_demo(note text); insert into infra_demo values ('written on the primary before the drill'); select count(*) from infra_demo");
        let Some(n) = wrote else {
            errln!("error: cannot write into database `accounting` on {primary}");
            return 1;
        };
        outln!("  wrote a row into `accounting` on {primary} ({n} row(s) in infra_demo)");
        // Replication is asynchronous: a commit returns before the standby has it.
        // Wait until every standby has replayed it, as an operator would before a drill.
        let standbys: Vec<&String> = members.iter().filter(|m| **m != primary).collect();
        let t = Instant::now();
        for s in &standbys {
            let replayed = wait_for(Duration::from_secs(30), || {
                sql_in(&name, s, "accounting", "select count(*) from infra_demo")
                    .filter(|c| *c == n)
            });
            if replayed.is_none() {
                errln!("error: the row did not reach {s} within 30 s: check replication (`infra lab exec {s} -- journalctl -u postgresql@15-main`)");
                return 1;
            }
        }
        outln!(
            "  the row is on the standby too (replayed in {:.1} s)",
            t.elapsed().as_secs_f64()
        );
    }
    if members.len() < 2 {
        step("done: one member, nothing to fail over to");
        return 0;
    }
    step(&format!(
        "4/4 failover drill: a writer inserts rows through the VIP while {primary} loses its power"
    ));
    let spec = match super::drill::spec_for(
        model,
        &name,
        Some(&group.name.value),
        drill::Fault::Poweroff,
        1,
        Duration::from_secs(5),
        drill::Budget::default(),
    ) {
        Ok(s) => s,
        Err(e) => {
            errln!("error: {e}");
            return 1;
        }
    };
    let report = match drill::run(&spec, &|s: &str| outln!("  drill: {s}")) {
        Ok(r) => r,
        Err(e) => {
            errln!("error: {e}");
            return 1;
        }
    };
    let Some(r) = report.rounds.first() else {
        errln!("error: the drill ran no round");
        return 1;
    };
    let next = r.primary_after.clone().unwrap_or_default();
    let secs = |v: Option<f64>| {
        v.map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| "never".into())
    };
    match r.vip_moved_s {
        Some(s) => outln!("  VIP {vip} moved to {next} in {s:.1} s"),
        None => {
            errln!("error: the VIP did not move: check `infra lab exec {next} --lab {name} -- journalctl -u keepalived`");
            return 1;
        }
    }
    if let Some(s) = r.promoted_s {
        outln!("  PostgreSQL on {next} promoted to primary ({s:.1} s after the power-off)");
    }
    outln!(
        "  the writer: {} writes acknowledged through the VIP, {} lost; writes succeeded again {} after the power-off",
        r.acknowledged,
        r.lost.map(|l| l.to_string()).unwrap_or_else(|| "?".into()),
        secs(r.writable_again_s)
    );
    if has_pg {
        match sql_in(
            &name,
            &next,
            "accounting",
            "select count(*) from infra_demo",
        ) {
            Some(n) => outln!(
                "  {next} has the {n} row(s) written on {primary}: nothing replicated was lost"
            ),
            None => {
                errln!("error: cannot read the demo's row on {next} after the promotion");
                return 1;
            }
        }
    }
    match vip_holder(&name, &members, &vip) {
        Some(h) if h == next => {
            outln!("  {primary} is back as a backup: the VIP stays on {next} (nopreempt)")
        }
        Some(h) => outln!("  note: the VIP is now on {h}"),
        None => outln!("  note: no member holds the VIP right now"),
    }
    match (report.stopped.as_deref(), r.healed_s) {
        (None, Some(s)) => outln!(
            "  PostgreSQL on {primary} rejoined as a standby of {next} by itself (streaming, and the VIP answering, {s:.1} s after the power-on)"
        ),
        (stopped, _) => {
            errln!(
                "error: the pair did not heal by itself: {}",
                stopped.unwrap_or("see `infra lab status`")
            );
            return 1;
        }
    }
    outln!();
    out!("{report}");
    step("done");
    outln!("The lab is still running. Look around:");
    outln!("  infra lab status --lab {name}");
    outln!("  infra lab ssh {next} --lab {name}");
    outln!("  infra plan --lab {}", dir.display());
    outln!("and remove it with: infra lab down --lab {name}");
    0
}

fn step(s: &str) {
    outln!("\n==> {s}");
}

fn write_embedded() -> std::io::Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    let dir = base.join("infra/demo/accounting");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("main.infra");
    if std::fs::read_to_string(&file).ok().as_deref() != Some(ACCOUNTING) {
        std::fs::write(&file, ACCOUNTING)?;
    }
    for (rel, text) in ACCOUNTING_APP {
        let p = dir.join(rel);
        if std::fs::read_to_string(&p).ok().as_deref() != Some(*text) {
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)?;
            }
            std::fs::write(&p, text)?;
        }
    }
    Ok(dir)
}

fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if t.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The member whose interfaces carry `vip`.
fn vip_holder(lab: &str, members: &[String], vip: &str) -> Option<String> {
    members.iter().find_map(|m| {
        let out = lab::exec(lab, m, &["ip", "-o", "addr", "show", "to", vip]).ok()?;
        (out.status.success() && !out.stdout.is_empty()).then(|| m.clone())
    })
}

/// One value from psql as the postgres user on a lab host.
fn sql(lab: &str, host: &str, query: &str) -> Option<String> {
    sql_in(lab, host, "postgres", query)
}

fn sql_in(lab: &str, host: &str, db: &str, query: &str) -> Option<String> {
    let out = lab::exec(
        lab,
        host,
        &[
            "runuser", "-u", "postgres", "--", "psql", "-XtAd", db, "-c", query,
        ],
    )
    .ok()?;
    out.status.success().then(|| {
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().last().unwrap_or("").trim().to_string()
    })
}

#[cfg(test)]
mod tests {
    /// The demo writes the whole application of examples/accounting.
    #[test]
    fn embeds_every_file_of_the_app() {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).expect("readable").flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), root, out);
                } else {
                    let rel = e.path().strip_prefix(root).expect("below").to_path_buf();
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/accounting");
        let mut on_disk = Vec::new();
        walk(&root.join("app"), &root, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = super::ACCOUNTING_APP
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }
}
