//! `share_snapshots`: each member keeps the newest `keep` snapshots of its copy of a
//! share, unchanged files hard-linked to the previous snapshot; a file deleted by
//! mistake is still in the older one; the oldest beyond `keep` goes; `infra backups`
//! lists them per member. Real rsync in real lab hosts. Lab only.

use crate::apply_e2e::{lab_enabled, LabConfig};

const LAB: &str = "snapshots";

const CONFIG: &str = r#"host alpha { address = "192.0.2.11" }
host beta  { address = "192.0.2.12" }

failover office {
  members = [alpha, beta]
  check   = tcp(22)
  vip     = "192.0.2.10/24"
}

share data {
  from  = office.active
  path  = "/srv/data"
  every = "1h"
}

share_snapshots daily {
  share = share.data
  keep  = 2
}
"#;

const DIR: &str = "/var/backups/infra-share/data";

/// The snapshots on `host`, oldest first.
fn snapshots(c: &LabConfig, host: &str) -> Vec<String> {
    let out = c.out(host, &format!("ls -1 {DIR} | sort"));
    out.lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

fn snapshot(c: &LabConfig, host: &str) {
    // names are per second: two snapshots in one second would be one
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, out) = c.sh(host, "systemctl start infra-share-snapshot-daily.service");
    assert_eq!(
        code,
        0,
        "the snapshot on {host} failed: {out}\n{}",
        c.out(
            host,
            "journalctl -q --no-pager -o cat -u infra-share-snapshot-daily.service | tail -20"
        )
    );
}

#[test]
fn lab_share_snapshots_keep_what_was_deleted() {
    if !lab_enabled("lab_share_snapshots_keep_what_was_deleted") {
        return;
    }
    let mut c = LabConfig::from_text(LAB, CONFIG);
    c.up(&[]);
    let r = c.infra(&["apply"]);
    assert_eq!(r.code, 0, "apply failed:\n{r:?}");
    assert!(
        c.wait("alpha", "ip -o addr show to 192.0.2.10 | grep -q .", 30),
        "alpha has not taken the VIP 30 s after the apply"
    );
    let r = c.infra(&["backups"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("on alpha: no snapshot yet"), "{r:?}");

    let (code, out) = c.sh(
        "alpha",
        "head -c 1048576 /dev/urandom > /srv/data/big.bin && echo precious > /srv/data/gone.txt",
    );
    assert_eq!(code, 0, "{out}");
    snapshot(&c, "alpha");
    let first = snapshots(&c, "alpha");
    assert_eq!(first.len(), 1, "{first:?}");
    let s1 = format!("{DIR}/{}", first[0]);
    assert_eq!(c.out("alpha", &format!("cat {s1}/gone.txt")), "precious");
    assert_eq!(
        c.out("alpha", &format!("stat -c %a {DIR}")),
        "700",
        "the snapshots are for root only"
    );

    // deleted by mistake: the next snapshot lacks it, the first still has it; the
    // unchanged file is the same inode in both (a hard link, no second copy)
    let (code, out) = c.sh("alpha", "rm /srv/data/gone.txt");
    assert_eq!(code, 0, "{out}");
    snapshot(&c, "alpha");
    let two = snapshots(&c, "alpha");
    assert_eq!(two.len(), 2, "{two:?}");
    let s2 = format!("{DIR}/{}", two[1]);
    assert_eq!(c.sh("alpha", &format!("test -e {s2}/gone.txt")).0, 1);
    assert_eq!(c.out("alpha", &format!("cat {s1}/gone.txt")), "precious");
    assert_eq!(
        c.out("alpha", &format!("stat -c %i {s1}/big.bin")),
        c.out("alpha", &format!("stat -c %i {s2}/big.bin")),
        "an unchanged file was copied, not hard-linked"
    );
    let (code, out) = c.sh(
        "alpha",
        &format!("cp -a {s1}/gone.txt /srv/data/ && cat /srv/data/gone.txt"),
    );
    assert_eq!((code, out.trim()), (0, "precious"), "restoring with cp -a");

    // keep = 2: a third snapshot removes the oldest
    snapshot(&c, "alpha");
    let three = snapshots(&c, "alpha");
    assert_eq!(three.len(), 2, "{three:?}");
    assert!(!three.contains(&first[0]), "the oldest was kept: {three:?}");

    // beta snapshots its own copy: what alpha pushed
    let (code, out) = c.sh("alpha", "systemctl start infra-share-data.service");
    assert_eq!(code, 0, "the push: {out}");
    snapshot(&c, "beta");
    let b = snapshots(&c, "beta");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(
        c.out("beta", &format!("cat {DIR}/{}/gone.txt", b[0])),
        "precious"
    );

    let r = c.infra(&["backups"]);
    assert_eq!(r.code, 0, "{r:?}");
    for needle in [
        "share_snapshots daily (share data, /srv/data; keep 2):",
        "on alpha: 2 snapshots, newest",
        "on beta: 1 snapshot, newest",
        " new\n",
    ] {
        assert!(r.stdout.contains(needle), "{needle:?} not in: {r:?}");
    }
    let r = c.infra(&["backups", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("backups --json");
    let alpha = v
        .as_array()
        .and_then(|a| a.iter().find(|e| e["host"] == "alpha"))
        .expect("alpha's entry");
    assert_eq!(alpha["taken"].as_array().map(Vec::len), Some(2), "{v}");
    // the first one counts the whole tree (about 1 MiB), the second only what it added
    assert!(alpha["taken"][0]["kib"].as_u64() >= Some(1000), "{v}");
    assert!(alpha["taken"][1]["kib"].as_u64() < Some(100), "{v}");
    eprintln!("{}", c.infra(&["backups"]).stdout);
}
