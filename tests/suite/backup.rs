//! `postgres_backup` (pgBackRest) on the lab, with examples/sync-pair: the
//! members' repositories are set up by the first apply (WAL reaches both); a full
//! backup is pulled from the primary into the other member's repository; a
//! point-in-time restore into a scratch instance brings back rows deleted after
//! that time, and the scratch instance archives nothing; after a failover the
//! next backup lands in the former primary's repository, and `latest` restores
//! what the new primary has. Lab only.

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
    c.up(&[]);
    let r = c.infra(&["apply"]);
    assert_eq!(r.code, 0, "apply failed:\n{r:?}");
    let r = c.infra(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "a second plan has changes:\n{r:?}");

    // both repositories ready; the primary's WAL reaches both
    let ready = "[ \"$(runuser -u postgres -- pgbackrest --config=/etc/infra/pgbackrest/main/repo.conf --stanza=main --output=json info | grep -o '\"max\":\"[0-9A-F]*\"' | head -n 1)\" != '' ]";
    for h in ["left", "right"] {
        assert!(
            c.wait(h, &format!("cd / && {ready}"), 120),
            "no WAL in {h}'s repository 120 s after the apply: {}",
            c.out(h, "tail -n 20 /var/log/pgbackrest/*.log")
        );
    }
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
    assert_eq!(c.out("left", "ip -o addr show to 192.0.2.20 | wc -l"), "1");
    psql(
        &c,
        "left",
        "CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1000) g",
    );
    let (code, out) = c.sh(
        "right",
        "systemctl start infra-pgbackrest-main@full.service",
    );
    assert_eq!(
        code,
        0,
        "the full backup on right failed: {out}\n{}",
        c.out(
            "right",
            "journalctl -u infra-pgbackrest-main@full.service -n 30 --no-pager -o cat"
        )
    );
    let (code, _) = c.sh("left", "systemctl start infra-pgbackrest-main@full.service");
    assert_eq!(code, 0);
    assert!(
        c.out(
            "left",
            "journalctl -u infra-pgbackrest-main@full.service -n 20 --no-pager -o cat"
        )
        .contains("its database is the primary"),
        "the VIP holder did not skip its turn"
    );
    let r = c.infra(&["backups"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("on right: 1 backup"), "{}", r.stdout);
    assert!(r.stdout.contains("on left: no backup yet"), "{}", r.stdout);

    // a moment, then a mistake: most rows deleted
    std::thread::sleep(std::time::Duration::from_secs(1));
    let moment = psql(&c, "left", "SELECT now()");
    std::thread::sleep(std::time::Duration::from_secs(1));
    psql(&c, "left", "DELETE FROM items WHERE id > 10");
    assert_eq!(psql(&c, "left", "SELECT count(*) FROM items"), "10");

    let r = c.infra(&["restore", "main", "--to", &moment]);
    assert_eq!(r.code, 0, "restore failed:\n{r:?}");
    assert!(
        r.stdout.contains("ledger\tpublic.items\t1000"),
        "the restore to {moment} does not have the 1000 rows:\n{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("on right"),
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
            "right",
            "cd / && runuser -u postgres -- psql -X -At -h /run/infra-pgbackrest-main-restore -p 5499 -d ledger -c 'SELECT count(*) FROM items'"
        ),
        "1000"
    );
    for h in ["left", "right"] {
        let history = c.out(
            h,
            "ls /var/lib/infra-pgbackrest/main/repo-*/archive/main/*/ | grep -c history || true",
        );
        assert_eq!(
            history, "0",
            "a timeline history in {h}'s repository: the scratch instance archived"
        );
    }
    let (code, out) = c.sh("right", "/etc/infra/pgbackrest/main/restore.sh stop");
    assert_eq!(code, 0, "{out}");
    let r = c.infra(&["restore", "main", "--to", "yesterday"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("is not a time"), "{}", r.stderr);

    // a failover: right is the primary, left rejoins; the next backup is left's
    infra::lab::kill(LAB, "left").expect("lab kill left");
    assert!(
        c.wait(
            "right",
            "cd / && [ \"$(runuser -u postgres -- psql -X -At -c 'SELECT pg_is_in_recovery()')\" = f ]",
            60
        ),
        "right was not promoted within 60 s of left's power cut"
    );
    psql(
        &c,
        "right",
        "INSERT INTO items SELECT g, 'after' FROM generate_series(2001, 2005) g",
    );
    infra::lab::start(LAB, "left").expect("lab start left");
    assert!(
        c.wait(
            "left",
            "cd / && [ \"$(runuser -u postgres -- psql -X -At -c 'SELECT pg_is_in_recovery()')\" = t ]",
            180
        ),
        "left did not rejoin as a standby within 180 s"
    );
    let (code, out) = c.sh("left", "systemctl start infra-pgbackrest-main@incr.service");
    assert_eq!(
        code,
        0,
        "the backup on left after the failover failed: {out}\n{}",
        c.out(
            "left",
            "journalctl -u infra-pgbackrest-main@incr.service -n 30 --no-pager -o cat"
        )
    );
    let r = c.infra(&["backups"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("on left: 1 backup"), "{}", r.stdout);
    assert!(r.stdout.contains("on right: 1 backup"), "{}", r.stdout);

    // `latest`: everything the new primary committed, restored on left
    let r = c.infra(&["restore", "main"]);
    assert_eq!(r.code, 0, "restore latest failed:\n{r:?}");
    assert!(r.stdout.contains("on left"), "{}", r.stdout);
    assert!(
        r.stdout.contains("ledger\tpublic.items\t15"),
        "latest does not hold the 10 rows left and the 5 written after the failover:\n{}",
        r.stdout
    );
    let _ = c.sh("left", "/etc/infra/pgbackrest/main/restore.sh stop");
}
