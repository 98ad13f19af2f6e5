//! `mariadb_backup` (mariadb-backup) on the lab, with a MariaDB pair: the
//! replica takes a full and an incremental backup (the VIP holder skips its
//! turn); a point-in-time restore into a scratch server brings back rows deleted
//! after that time; after a failover the new primary's own writes are in its
//! chain (`--on` it: the only one with a backup), its watch says no replica
//! reads its binary log, and the returning member, seeded again, backs up;
//! a member seeded again copies the writes only it took into its chain before
//! its binary log is reset, and that chain ends there; `infra drill --fault
//! restore` brings every deleted row back. Lab only.

use crate::apply_e2e::{lab_enabled, LabConfig};

const LAB: &str = "mdb-backup";

const CONFIG: &str = r#"import "std/mariadb"

host alpha { address = "192.0.2.11" }
host beta  { address = "192.0.2.12" }

failover db {
  members = [alpha, beta]
  vip     = "192.0.2.20/24"
  check   = exec("mariadb-admin --protocol=socket ping")
}

mariadb shop {
  failover             = db
  databases            = ["shop"]
  replication_password = secret("mdb_repl")
}

mariadb_backup shop {
  server      = mariadb.shop
  stale_after = "1h"
}
"#;

fn sql(c: &LabConfig, host: &str, q: &str) -> String {
    let (code, out) = c.sh(
        host,
        &format!(
            "mariadb --protocol=socket -N -B -D shop -e {}",
            infra::shell::quote(q)
        ),
    );
    assert_eq!(code, 0, "{host}: {q}: {out}");
    out.trim().to_string()
}

/// `backup.sh full|incr` through its unit on `host`; the unit's journal of this run.
fn backup(c: &LabConfig, host: &str, kind: &str) -> String {
    let unit = format!("infra-mariadb-backup-shop@{kind}.service");
    let since = c.out(host, "date +%s");
    let (code, out) = c.sh(host, &format!("systemctl start {unit}"));
    let journal = c.out(
        host,
        &format!("journalctl -q --no-pager -o cat -u {unit} --since @{since}"),
    );
    assert_eq!(
        code, 0,
        "the {kind} backup on {host} failed: {out}\n{journal}"
    );
    journal
}

/// The moment now on `host`'s clock, as `infra restore --to` reads it, between
/// two pauses (the binary log's times are whole seconds).
fn moment(c: &LabConfig, host: &str) -> String {
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let t = sql(
        c,
        host,
        "SELECT CONCAT(DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%d %H:%i:%s.%f'), '+00')",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    t
}

fn holds_vip(c: &LabConfig, host: &str) -> bool {
    c.out(host, "ip -o addr show to 192.0.2.20 | wc -l") == "1"
}

/// Exit 0 on the member that holds the VIP and takes writes.
const WRITABLE: &str = "[ \"$(mariadb --protocol=socket -N -B -e 'SELECT @@read_only')\" = 0 ] && ip -o addr show to 192.0.2.20 | grep -q .";

#[test]
fn lab_mariadb_backup_point_in_time_and_failover() {
    if !lab_enabled("lab_mariadb_backup_point_in_time_and_failover") {
        return;
    }
    let mut c = LabConfig::from_text(LAB, CONFIG);
    c.up(&[]);
    let r = c.infra(&["apply"]);
    assert_eq!(r.code, 0, "apply failed:\n{r:?}");
    let r = c.infra(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "a second plan has changes:\n{r:?}");
    let (p, s) = if holds_vip(&c, "alpha") {
        ("alpha", "beta")
    } else {
        ("beta", "alpha")
    };
    assert!(holds_vip(&c, p), "no member holds the VIP after the apply");
    sql(
        &c,
        p,
        "CREATE TABLE items (id INT PRIMARY KEY); INSERT INTO items SELECT seq FROM seq_1_to_10",
    );

    // the replica backs up; the primary skips its turn
    let j = backup(&c, s, "full");
    assert!(j.contains("000-full of"), "{j}");
    let j = backup(&c, p, "full");
    assert!(j.contains("its database is the primary"), "{j}");
    sql(&c, p, "INSERT INTO items SELECT seq FROM seq_11_to_20");
    let j = backup(&c, s, "incr");
    assert!(j.contains("001-incr of"), "{j}");
    sql(&c, p, "INSERT INTO items SELECT seq FROM seq_21_to_30");
    let t = moment(&c, p);
    sql(&c, p, "DELETE FROM items WHERE id > 5");

    let r = c.infra(&["restore", "shop", "--to", &t]);
    assert_eq!(r.code, 0, "restore to {t} failed:\n{r:?}");
    assert!(r.stdout.contains(&format!("on {s}")), "{}", r.stdout);
    assert!(
        r.stdout.contains("applied the incremental backup 001-incr"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("shop\titems\t30"),
        "the restore to {t} does not hold the 30 rows written before it:\n{}",
        r.stdout
    );
    let (code, out) = c.sh(s, "/etc/infra/mariadb-backup/shop/restore.sh stop");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        c.out(s, "systemctl is-active infra-mariadb-backup-shop-restore.service; test -e /var/lib/infra-mariadb-restore/shop && echo left"),
        "inactive",
        "the scratch server is still there"
    );
    let r = c.infra(&["backups", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("backups --json");
    let of = |h: &str| {
        v.as_array()
            .and_then(|a| a.iter().find(|e| e["host"] == h))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(of(p)["chains"].as_array().map(Vec::len), Some(0), "{v}");
    let chains = of(s)["chains"].clone();
    assert_eq!(chains.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(
        chains[0]["backups"].as_array().map(Vec::len),
        Some(2),
        "{v}"
    );
    let r = c.infra(&["backups"]);
    assert!(
        r.stdout.contains(&format!("on {s}: 2 backups in 1 chain")),
        "{}",
        r.stdout
    );
    let r = c.infra(&["restore", "shop", "--to", "2026-12-04 10:00"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("is not a time"), "{}", r.stderr);

    // a failover: the replica is the primary; its own writes go into its chain
    infra::lab::kill(LAB, p).expect("lab kill");
    assert!(
        c.wait(s, WRITABLE, 60),
        "{s} was not made the writable primary within 60 s of {p}'s power cut"
    );
    sql(&c, s, "INSERT INTO items SELECT seq FROM seq_1001_to_1077");
    let t2 = moment(&c, s);
    sql(&c, s, "DELETE FROM items WHERE id > 1000");
    // no replica reads its binary log (the check asks twice, a minute apart)
    let (code, out) = c.sh(
        s,
        "systemctl start --no-block infra-mariadb-backup-shop-watch.service",
    );
    assert_eq!(code, 0, "{out}");
    let r = c.infra(&["restore", "shop", "--to", &t2]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("only {s}, the VIP holder of db")),
        "{}",
        r.stderr
    );
    let r = c.infra(&["restore", "shop", "--to", &t2, "--on", s]);
    assert_eq!(r.code, 0, "restore to {t2} on {s} failed:\n{r:?}");
    assert!(
        r.stdout.contains("shop\titems\t82"),
        "the restore to {t2} does not hold the 5 rows left and the 77 written after the failover:\n{}",
        r.stdout
    );
    c.sh(s, "/etc/infra/mariadb-backup/shop/restore.sh stop");
    assert!(
        c.wait(
            s,
            "[ \"$(systemctl show -p ActiveState --value infra-mariadb-backup-shop-watch.service)\" = failed ]",
            120
        ),
        "the watch on {s} did not fail within 120 s with no replica: {}",
        c.out(s, "journalctl -q --no-pager -o cat -u infra-mariadb-backup-shop-watch.service | tail -5")
    );
    let journal = c.out(
        s,
        "journalctl -q --no-pager -o cat -u infra-mariadb-backup-shop-watch.service",
    );
    assert!(
        journal.contains("no replica reads the binary log of MariaDB shop"),
        "{journal}"
    );

    // the old primary comes back, is seeded again (it served as primary: by
    // hand), and backs up now
    infra::lab::start(LAB, p).expect("lab start");
    assert!(
        c.wait(p, "mariadb-admin --protocol=socket ping", 120),
        "MariaDB on {p} did not start within 120 s"
    );
    let (code, out) = c.sh(p, "/etc/infra/mariadb/shop/replica.sh --force");
    assert_eq!(code, 0, "{out}");
    let r = c.infra(&["apply"]);
    assert_eq!(r.code, 0, "apply after the rejoin failed:\n{r:?}");
    let j = backup(&c, p, "incr");
    assert!(
        j.contains("no full backup to build on: taking a full one") && j.contains("000-full of"),
        "{j}"
    );
    let (code, out) = c.sh(s, "systemctl start infra-mariadb-backup-shop-watch.service");
    assert_eq!(
        code, 0,
        "the watch on {s} fails with {p} replicating: {out}"
    );

    // the other way round: what only the primary took before its power cut goes
    // into its chain when it is seeded again, and that chain ends there
    c.sh(s, "systemctl stop infra-mariadb-backup-shop-archive.timer");
    sql(
        &c,
        s,
        "CREATE TABLE late (id INT PRIMARY KEY); INSERT INTO late SELECT seq FROM seq_1_to_7",
    );
    infra::lab::kill(LAB, s).expect("lab kill");
    assert!(
        c.wait(p, WRITABLE, 60),
        "{p} was not made the writable primary within 60 s of {s}'s power cut"
    );
    infra::lab::start(LAB, s).expect("lab start");
    assert!(
        c.wait(s, "mariadb-admin --protocol=socket ping", 120),
        "MariaDB on {s} did not start within 120 s"
    );
    let (code, out) = c.sh(s, "/etc/infra/mariadb/shop/replica.sh --force");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("copied into the chain"), "{out}");
    let (code, out) = c.sh(s, "/etc/infra/mariadb-backup/shop/backup.sh archive");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("was reset since the chain"), "{out}");
    let r = c.infra(&["backups"]);
    assert!(
        r.stdout.contains("ended: the member was seeded again"),
        "{}",
        r.stdout
    );
    let r = c.infra(&["restore", "shop", "--on", s]);
    assert_eq!(r.code, 0, "restore latest on {s} failed:\n{r:?}");
    assert!(
        r.stdout.contains("shop\tlate\t7"),
        "the writes only {s} took are not in its chain:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("ends where"), "{}", r.stdout);
    c.sh(s, "/etc/infra/mariadb-backup/shop/restore.sh stop");
    let r = c.infra(&["apply"]);
    assert_eq!(r.code, 0, "apply after the second rejoin failed:\n{r:?}");
    let j = backup(&c, s, "incr");
    assert!(j.contains("taking a full one"), "{j}");

    // the same as a drill: rows written, a moment, the rows deleted, restored
    let r = c.infra(&["drill", "--fault", "restore"]);
    assert_eq!(r.code, 0, "the restore drill failed:\n{r:?}");
    assert!(r.stdout.contains("1000 of 1000 rows back"), "{}", r.stdout);
    assert_eq!(
        sql(&c, p, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'infra_drill_restore'"),
        "0",
        "the drill left its table behind"
    );
}
