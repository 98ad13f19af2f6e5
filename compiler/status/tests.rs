use super::*;

fn model() -> Model {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/accounting");
    match crate::check(&dir, &crate::resolve::FsLoader) {
        Ok(r) => r.model,
        Err(_) => panic!("examples/accounting checks"),
    }
}

const PRIMARY: &str = "now\t1000\n\
group\toffice\t1\tmaster 900\n\
pg\tmain\t1\tf\t0\n\
pgrep\tmain\tbeta\tstreaming\tasync\t0\t0.0\n\
pushed\tuploads\t990\n\
show\tId=infra-share-uploads.service\n\
show\tActiveState=inactive\n\
show\tResult=success\n\
show\tExecMainStatus=0\n\
show\tExecMainExitTimestamp=@990\n\
show\t\n\
next\tinfra-share-uploads.timer\t1100\n\
disk\t/\t1000\t500\t500\t/\n";

const STANDBY: &str = "now\t1000\n\
group\toffice\t0\tbackup 900\n\
pg\tmain\t1\tt\t0\n\
pgrecv\tmain\tstreaming\t0\t0\n\
disk\t/\t1000\t950\t50\t/\n";

fn up(host: &str, text: &str) -> HostStatus {
    HostStatus {
        host: host.into(),
        facts: Some(parse(text)),
        error: None,
        addresses: if text.contains("\t1\tmaster") {
            vec!["192.0.2.10/24".into()]
        } else {
            vec![]
        },
        generation: Some(1),
        pending: 0,
        failed_units: vec![],
    }
}

#[test]
fn parse_reads_every_record_and_skips_garbage() {
    let f = parse(PRIMARY);
    assert_eq!(f.now, 1000);
    assert!(f.groups["office"].active);
    assert_eq!(f.groups["office"].state, "master");
    assert_eq!(f.groups["office"].since, Some(900));
    assert_eq!(f.postgres["main"].in_recovery, Some(false));
    assert_eq!(f.postgres["main"].senders[0].standby, "beta");
    assert_eq!(f.units["infra-share-uploads.service"].last_exit, Some(990));
    assert_eq!(f.units["infra-share-uploads.timer"].next, Some(1100));
    assert_eq!(f.pushed["uploads"], 990);
    // cut in the middle of a record, binary junk, unknown records: fewer facts
    let cut = &PRIMARY[..PRIMARY.find("pgrep").unwrap_or(0) + 9];
    assert!(parse(cut).postgres["main"].senders.is_empty());
    let junk = parse("\u{0}\u{1}\tpg\n\t\t\t\npg\tmain\tx\ny\tz\ndisk\t/\tbig\t1\t1\t/\n");
    assert!(junk.disks.is_empty());
}

#[test]
fn a_redundant_pair_is_healthy() {
    let m = model();
    let standby = STANDBY.replace("\t950\t50\t", "\t500\t500\t");
    let r = assess(&m, vec![up("alpha", PRIMARY), up("beta", &standby)]);
    assert_eq!(r.summary, "healthy: redundant", "{:?}", r.problems);
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.groups[0].holder.as_deref(), Some("alpha"));
    let text = render(&r, false);
    assert!(
        text.contains("share uploads: pushed from alpha; last success 10 s ago; next in 100 s"),
        "{text}"
    );
}

#[test]
fn each_failure_is_named_and_the_worst_comes_first() {
    let m = model();
    // a full disk, a stopped standby
    let stopped = STANDBY
        .replace("pg\tmain\t1\tt\t0", "pg\tmain\t0\t-\t0")
        .replace("pgrecv\tmain\tstreaming\t0\t0\n", "");
    let r = assess(&m, vec![up("alpha", PRIMARY), up("beta", &stopped)]);
    assert_eq!(r.exit_code(), 2);
    assert_eq!(r.health, Health::Degraded);
    assert!(
        r.summary
            .starts_with("DEGRADED: beta's postgres main is not running"),
        "{}",
        r.summary
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.text == "beta: / (/) is 95% full"),
        "{:?}",
        r.problems
    );

    // both members with the VIP and writable: split brain, whatever else
    let second = PRIMARY.replace("pgrep\tmain\tbeta", "pgrep\tmain\talpha");
    let r = assess(&m, vec![up("alpha", PRIMARY), up("beta", &second)]);
    assert_eq!(r.health, Health::SplitBrain);
    assert!(r.summary.starts_with("SPLIT BRAIN: "), "{}", r.summary);
    assert!(r
        .problems
        .iter()
        .any(|p| p.text == "two writable primaries of postgres main: alpha and beta"));

    // nobody holds the VIP
    let backup = PRIMARY.replace("\t1\tmaster 900", "\t0\tbackup 900");
    let mut a = up("alpha", &backup);
    a.addresses.clear();
    let r = assess(&m, vec![a, up("beta", STANDBY)]);
    assert!(
        r.summary
            .starts_with("DOWN: no member of office holds VIP 192.0.2.10"),
        "{}",
        r.summary
    );

    // an unreachable member: exit 1, the rest still reported
    let gone = HostStatus {
        host: "beta".into(),
        facts: None,
        error: Some("connection refused".into()),
        addresses: vec![],
        generation: None,
        pending: 0,
        failed_units: vec![],
    };
    let r = assess(&m, vec![up("alpha", PRIMARY), gone]);
    assert_eq!(r.exit_code(), 1);
    assert!(r
        .problems
        .iter()
        .any(|p| p.text == "beta is unreachable: connection refused"));
    assert_eq!(r.groups[0].members[0].databases["postgres.main"], "primary");
}

#[test]
fn the_status_fragment_passes_shellcheck() {
    let m = model();
    let text = format!("#!/bin/sh\n{}", script(&m, "alpha"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("status.sh");
    std::fs::write(&path, text).expect("write");
    let out = std::process::Command::new("shellcheck")
        .args(["-s", "sh", "-S", "warning"])
        .arg(&path)
        .output();
    match out {
        Ok(o) => assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout)),
        Err(_) if std::env::var_os("CI").is_none() => {}
        Err(e) => panic!("shellcheck: {e}"),
    }
}

#[test]
fn mariadb_replicas_are_judged_by_their_slave_threads() {
    let f = parse(
        "my\tshop\t1\t1\tConnecting\tYes\t\terror connecting to master 'repl@192.0.2.21:3306'\n",
    );
    let m = &f.mariadb["shop"];
    assert!(m.running);
    assert_eq!(m.read_only, Some(true));
    assert_eq!(m.io_running, "Connecting");
    assert_eq!(m.behind_s, None);
    let c = Cluster {
        kind: "mariadb",
        name: "shop".into(),
        group: crate::resolve::GroupId::new(0),
        version: String::new(),
        port: String::new(),
        alert_after: 300,
    };
    assert_eq!(role_of(&c, Some(&f)), "replica (not replicating)");
    let ok = parse("my\tshop\t1\t1\tYes\tYes\t0\t\n");
    assert_eq!(role_of(&c, Some(&ok)), "replicating replica");
    let primary = parse("my\tshop\t1\t0\t\t\t\t\n");
    assert_eq!(role_of(&c, Some(&primary)), "primary");
    assert_eq!(role_of(&c, None), "unreachable");
}
