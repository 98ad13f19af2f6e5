//! `postgres_backup` (pgBackRest) on the lab, with examples/sync-pair: the
//! members' repositories are set up by the first apply; a full
//! backup is pulled from the primary into the other member's repository, where
//! its WAL goes too (not into its own, which would only grow); a
//! point-in-time restore into a scratch instance brings back rows deleted after
//! that time, and the scratch instance archives nothing; after a failover the
//! next backup lands in the former primary's repository, and `latest` restores
//! what the new primary has; `infra drill --fault restore` brings every deleted
//! row back. Lab only.

use crate::apply_e2e::{lab_enabled, LabConfig};

const LAB: &str = "backups";

fn psql(c: &LabConfig, host: &str, sql: &str) -> String {
    c.out(
        host,
        &format!(
            "cd / && runuser -u postgres -- psql -X -q -At -d ledger -c {}",
            infra::shell::quote(sql)
        ),
    )
}

#[test]
fn lab_backup_restore_and_failover() {
    if !lab_enabled("lab_backup_restore_and_failover") {
        return;
    }
    let mut c = LabConfig::new("sync-pair", LAB);
    // the watch's threshold short enough to see it fail here
    let text = c.text();
    assert!(text.contains("keep_full   = 2\n"), "{text}");
    c.write(&text.replace(
        "keep_full   = 2\n",
        "keep_full   = 2\n  stale_after = \"1min\"\n",
    ));
    c.up(&[]);
    let r = c.infra(&["apply"]);
    assert_eq!(r.code, 0, "apply failed:\n{r:?}");
    let r = c.infra(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "a second plan has changes:\n{r:?}");
    // whichever member took the VIP first is the primary here
    let holds = |h: &str| c.out(h, "ip -o addr show to 192.0.2.20 | wc -l") == "1";
    let (p, s) = if holds("left") {
        ("left", "right")
    } else {
        ("right", "left")
    };
    assert!(holds(p), "no member holds the VIP after the apply");

    // both repositories ready; the primary's (left's) WAL reaches the other's only
    // pgBackRest's info of a member's own repository lists a WAL range
    let wal = "cd / && runuser -u postgres -- pgbackrest --config=/etc/infra/pgbackrest/main/repo.conf --stanza=main --output=json info | grep -q '\"max\":\"0000'";
    assert!(
        c.wait(s, wal, 120),
        "no WAL in {s}'s repository 120 s after the apply: {}",
        c.out(p, "tail -n 20 /var/log/pgbackrest/*.log")
    );
    let (code, _) = c.sh(p, wal);
    assert_ne!(code, 0, "the primary archived into its own repository");
    // no backup yet, but not for stale_after yet either: the watch passes. Its
    // hourly timer may have run already (a test crossing the hour: CI failed so,
    // the watch rightly saying "no backup for 1 min"): the clock starts here
    let watch = "systemctl start infra-pgbackrest-main-watch.service || { journalctl -q --no-pager -o cat -u infra-pgbackrest-main-watch.service -n 10; exit 1; }";
    let (code, out) = c.sh(
        p,
        &format!("rm -f /var/lib/infra-pgbackrest/main/no-backup-since; {watch}"),
    );
    assert_eq!(code, 0, "the watch failed before any backup was due: {out}");
    let r = c.infra(&["backups"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout
            .matches("no backup yet (the repository is ready)")
            .count(),
        2,
        "{}",
        r.stdout
    );

    // rows, a full backup into right's repository (left is the primary)
    psql(
        &c,
        p,
        "CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1000) g",
    );
    let (code, out) = c.sh(s, "systemctl start infra-pgbackrest-main@full.service");
    assert_eq!(
        code,
        0,
        "the full backup on {s} failed: {out}\n{}",
        c.out(
            s,
            "journalctl -u infra-pgbackrest-main@full.service -n 30 --no-pager -o cat"
        )
    );
    let (code, _) = c.sh(p, "systemctl start infra-pgbackrest-main@full.service");
    assert_eq!(code, 0);
    assert!(
        c.out(
            p,
            "journalctl -u infra-pgbackrest-main@full.service -n 20 --no-pager -o cat"
        )
        .contains("its database is the primary"),
        "the VIP holder did not skip its turn"
    );
    let r = c.infra(&["backups"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!("on {s}: 1 backup")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("on {p}: no backup yet")),
        "{}",
        r.stdout
    );
    let backed_up = std::time::Instant::now();
    let (code, out) = c.sh(p, watch);
    assert_eq!(code, 0, "the watch failed right after a backup: {out}");

    // a moment, then a mistake: most rows deleted
    std::thread::sleep(std::time::Duration::from_secs(1));
    let moment = psql(&c, p, "SELECT now()");
    std::thread::sleep(std::time::Duration::from_secs(1));
    psql(&c, p, "DELETE FROM items WHERE id > 10");
    assert_eq!(psql(&c, p, "SELECT count(*) FROM items"), "10");

    let r = c.infra(&["restore", "main", "--to", &moment]);
    assert_eq!(r.code, 0, "restore failed:\n{r:?}");
    assert!(
        r.stdout.contains("ledger\tpublic.items\t1000"),
        "the restore to {moment} does not have the 1000 rows:\n{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("on {s}")),
        "not restored on the standby: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains("recovery stopping before"),
        "{}",
        r.stdout
    );
    // the scratch instance is running, and archived nothing (its own timeline 2
    // would otherwise be in the repositories before any failover)
    assert_eq!(
        c.out(
            s,
            "cd / && runuser -u postgres -- psql -X -At -h /run/infra-pgbackrest-main-restore -p 5499 -d ledger -c 'SELECT count(*) FROM items'"
        ),
        "1000"
    );
    for h in ["left", "right"] {
        let history = c.out(
            h,
            "ls /var/lib/infra-pgbackrest/main/repo-*/archive/main/*/ 2>/dev/null | grep -c history || true",
        );
        assert_eq!(
            history, "0",
            "a timeline history in {h}'s repository: the scratch instance archived"
        );
    }
    let (code, out) = c.sh(s, "/etc/infra/pgbackrest/main/restore.sh stop");
    assert_eq!(code, 0, "{out}");
    // more than stale_after (1 min) since the only backup: the watch on the VIP
    // holder fails (an `alert` would send this)
    std::thread::sleep(std::time::Duration::from_secs(65).saturating_sub(backed_up.elapsed()));
    let (code, _) = c.sh(p, watch);
    assert_ne!(
        code, 0,
        "the watch passed with a backup older than stale_after"
    );
    let journal = c.out(
        p,
        "journalctl -u infra-pgbackrest-main-watch.service -n 5 --no-pager -o cat",
    );
    assert!(
        journal.contains("the newest backup of main is 1 min old (more than 1min)"),
        "{journal}"
    );
    let r = c.infra(&["restore", "main", "--to", "yesterday"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("is not a time"), "{}", r.stderr);

    // a failover: right is the primary, left rejoins; the next backup is left's
    infra::lab::kill(LAB, p).expect("lab kill");
    assert!(
        c.wait(
            s,
            "cd / && [ \"$(runuser -u postgres -- psql -X -At -c 'SELECT pg_is_in_recovery()')\" = f ]",
            60
        ),
        "{s} was not promoted within 60 s of {p}'s power cut"
    );
    psql(
        &c,
        s,
        "INSERT INTO items SELECT g, 'after' FROM generate_series(2001, 2005) g",
    );
    infra::lab::start(LAB, p).expect("lab start");
    assert!(
        c.wait(
            p,
            "cd / && [ \"$(runuser -u postgres -- psql -X -At -c 'SELECT pg_is_in_recovery()')\" = t ]",
            180
        ),
        "{p} did not rejoin as a standby within 180 s"
    );
    let (code, out) = c.sh(p, "systemctl start infra-pgbackrest-main@incr.service");
    assert_eq!(
        code,
        0,
        "the backup on {p} after the failover failed: {out}\n{}",
        c.out(
            p,
            "journalctl -u infra-pgbackrest-main@incr.service -n 30 --no-pager -o cat"
        )
    );
    let r = c.infra(&["backups"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!("on {p}: 1 backup")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("on {s}: 1 backup")),
        "{}",
        r.stdout
    );

    // `latest`: everything the new primary committed, restored on left
    let r = c.infra(&["restore", "main"]);
    assert_eq!(r.code, 0, "restore latest failed:\n{r:?}");
    assert!(r.stdout.contains(&format!("on {p}")), "{}", r.stdout);
    assert!(
        r.stdout.contains("ledger\tpublic.items\t15"),
        "latest does not hold the 10 rows left and the 5 written after the failover:\n{}",
        r.stdout
    );
    let _ = c.sh(p, "/etc/infra/pgbackrest/main/restore.sh stop");

    // the same as a drill: rows written, a moment, the rows deleted, restored
    let r = c.infra(&["drill", "--fault", "restore"]);
    assert_eq!(r.code, 0, "the restore drill failed:\n{r:?}");
    assert!(r.stdout.contains("1000 of 1000 rows back"), "{}", r.stdout);
    assert_eq!(
        c.out(s, "cd / && runuser -u postgres -- psql -X -At -d ledger -c \"SELECT count(*) FROM pg_tables WHERE tablename = 'infra_drill_restore'\""),
        "0",
        "the drill left its table behind"
    );
}
