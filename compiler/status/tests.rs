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

/// The standby's answer with its server stopped, and `extra` records.
fn stopped_standby(extra: &str) -> String {
    let stopped = STANDBY
        .replace("pg\tmain\t1\tt\t0", "pg\tmain\t0\t-\t0")
        .replace("pgrecv\tmain\tstreaming\t0\t0\n", "");
    format!("{stopped}{extra}")
}

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
        pending: Some(0),
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
    let stopped = stopped_standby("");
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
        pending: Some(0),
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

#[test]
fn a_stopped_or_silent_standby_says_since_when() {
    let m = model();
    // the unit stopped at 940: 60 s before the probe
    let stopped = stopped_standby("pgunit\tmain\t940\n");
    let r = assess(&m, vec![up("alpha", PRIMARY), up("beta", &stopped)]);
    assert!(
        r.summary.starts_with(
            "DEGRADED: beta's postgres main is not running (since 1970-01-01 00:15:40 UTC, 60 s ago)"
        ),
        "{}",
        r.summary
    );
    assert_eq!(r.problems[0].since, Some(940));
    // running but not streaming: since the primary's watch first saw it so
    let silent = STANDBY.replace("pgrecv\tmain\tstreaming\t0\t0", "pgrecv\tmain\tnone\t\t");
    let primary = PRIMARY.replace(
        "pgrep\tmain\tbeta\tstreaming\tasync\t0\t0.0\n",
        "pgsince\tmain\tbeta\t880\n",
    );
    let r = assess(&m, vec![up("alpha", &primary), up("beta", &silent)]);
    assert!(
        r.summary
            .contains("is a standby (not streaming) (since 1970-01-01 00:14:40 UTC, 2 min ago)"),
        "{}",
        r.summary
    );
    assert_eq!(r.problems[0].since, Some(880));
}

#[test]
fn the_witness_lease_is_reported_and_checked_against_the_vip() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/witness");
    let Ok(m) = crate::check(&dir, &crate::resolve::FsLoader).map(|r| r.model) else {
        panic!("examples/witness checks")
    };
    // the fragment asks each member's etcd, never the witness host
    assert!(script(&m, "alpha").contains("/infra/failover/office/leader"));
    assert!(!script(&m, "nas").contains("etcdctl"));
    let with = |text: &str, lease: &str| format!("{text}lease\toffice\t{lease}\t0\n");
    let standby = STANDBY.replace("\t950\t50\t", "\t500\t500\t");
    // alpha (holding the VIP) and beta as they answered
    let pair = |a: &str, b: &str| assess(&m, vec![up("alpha", a), up("beta", b)]);
    let says = |r: &Report, want: &str| {
        assert!(r.summary.contains(want), "no {want:?} in {}", r.summary);
    };
    let r = pair(&with(PRIMARY, "=alpha"), &with(&standby, "=alpha"));
    assert_eq!(r.summary, "healthy: redundant", "{:?}", r.problems);
    let w = r.groups[0].witness.as_ref().expect("a witness");
    assert_eq!(
        (w.host.as_str(), w.lease_holder.as_deref()),
        ("nas", Some("alpha"))
    );
    assert!(render(&r, false).contains("witness nas: lease held by alpha"));
    // the standby waits in FAULT without the lease: by design, healthy
    let waiting = format!(
        "{}lease\toffice\t=alpha\t1\n",
        standby.replace("\t0\tbackup 900", "\t0\tfault 900")
    );
    let r = pair(&with(PRIMARY, "=alpha"), &waiting);
    assert_eq!(r.summary, "healthy: redundant", "{:?}", r.problems);
    assert!(render(&r, false).contains("beta waits in FAULT without the witness lease"));
    // in FAULT although it may hold the VIP: its check fails
    let failing = waiting.replace("=alpha\t1", "=alpha\t0");
    says(
        &pair(&with(PRIMARY, "=alpha"), &failing),
        "beta is in FAULT in office",
    );
    // the lease names the other member
    says(
        &pair(&with(PRIMARY, "=beta"), &with(&standby, "=beta")),
        "the witness lease of office names beta but alpha holds VIP",
    );
    // nobody answers: no failover is possible
    let r = pair(&with(PRIMARY, "?"), &with(&standby, "?"));
    says(&r, "no majority of the witness cluster of office");
    assert!(render(&r, false).contains("witness nas: no majority answers"));
    // parse: a free lease, an unknown track
    let f = parse("lease\toffice\t=\t\n");
    assert_eq!(f.groups["office"].lease.as_deref(), Some(""));
    assert_eq!(f.groups["office"].may_hold, None);
}

/// docs/status.schema.json, compiled.
fn schema() -> jsonschema::Validator {
    let text = include_str!("../../docs/status.schema.json");
    let schema: serde_json::Value = serde_json::from_str(text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

fn violations(v: &jsonschema::Validator, j: &serde_json::Value) -> Vec<String> {
    v.iter_errors(j).map(|e| e.to_string()).collect()
}

#[test]
fn every_report_matches_the_documented_schema() {
    let v = schema();
    let m = model();
    let standby = STANDBY.replace("\t950\t50\t", "\t500\t500\t");
    let stopped = stopped_standby("pgunit\tmain\t940\n");
    let gone = HostStatus {
        host: "beta".into(),
        facts: None,
        error: Some("connection refused".into()),
        addresses: vec![],
        generation: None,
        pending: Some(0),
        failed_units: vec!["x.service".into()],
    };
    let witness = {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/witness");
        crate::check(&dir, &crate::resolve::FsLoader)
            .map(|r| r.model)
            .unwrap_or_else(|_| panic!("examples/witness checks"))
    };
    let reports = [
        assess(&m, vec![up("alpha", PRIMARY), up("beta", &standby)]),
        assess(&m, vec![up("alpha", PRIMARY), up("beta", &stopped)]),
        assess(&m, vec![up("alpha", PRIMARY), gone]),
        assess(
            &m,
            vec![
                up("alpha", &format!("{PRIMARY}group\toffice\t1\tgarbage 9\n")),
                up("beta", "my\tshop\t1\t1\tNo\tYes\t\terr\n"),
            ],
        ),
        assess(
            &witness,
            vec![
                up("alpha", &format!("{PRIMARY}lease\toffice\t=alpha\t0\n")),
                up("beta", &format!("{standby}lease\toffice\t?\t\n")),
            ],
        ),
    ];
    for r in &reports {
        let j = serde_json::to_value(r).expect("a report serialises");
        let bad = violations(&v, &j);
        assert!(bad.is_empty(), "{bad:#?}\nin {j:#}");
    }
    // pending not counted (no secrets): null, and said so
    let mut r = reports[0].clone();
    r.hosts[0].pending = None;
    let j = serde_json::to_value(&r).expect("serialises");
    assert!(violations(&v, &j).is_empty());
    assert!(render(&r, false).contains("alpha  generation 1, pending changes not counted"));
    // and the schema says no to what the report never is
    let mut j = serde_json::to_value(&reports[0]).expect("serialises");
    j["groups"][0]["members"][0]["keepalived"] = "PRIMARY".into();
    assert!(!violations(&v, &j).is_empty());
    let mut j = serde_json::to_value(&reports[0]).expect("serialises");
    j["hosts"][0]["facts"]["surprise"] = 1.into();
    assert!(!violations(&v, &j).is_empty());
    let mut j = serde_json::to_value(&reports[0]).expect("serialises");
    if let Some(o) = j["problems"].as_array_mut() {
        o.push(serde_json::json!({ "health": "degraded", "text": "x" }));
    }
    assert!(
        !violations(&v, &j).is_empty(),
        "a problem without since passes"
    );
}
