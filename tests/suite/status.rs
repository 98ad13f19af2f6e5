//! `infra status` on the accounting pair, against real hosts: healthy and
//! redundant (exit 0, JSON valid against docs/status.schema.json); the standby's
//! PostgreSQL stopped (exit 2, named, since when); a share push failing (exit 2,
//! with rsync's error); the VIP holder powered off (exit 1: it is unreachable, the
//! other member holds the VIP and its database is primary; `infra graph --topology
//! --live` draws it so). Lab only.

use crate::apply_e2e::{lab_enabled, LabConfig};

/// `infra status --json`'s answer, checked against the documented schema.
fn valid_json(c: &LabConfig) -> (i32, serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status.schema.json"),
        )
        .expect("docs/status.schema.json"),
    )
    .expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let j = c.infra(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).expect("status --json is JSON");
    let bad: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(
        bad.is_empty(),
        "status --json does not match docs/status.schema.json: {bad:#?}\n{v:#}"
    );
    (j.code, v)
}

#[test]
fn lab_status_of_the_accounting_pair() {
    if !lab_enabled("lab_status_of_the_accounting_pair") {
        return;
    }
    let mut c = LabConfig::new("accounting", "status");
    c.up(&[]);
    let r = c.infra(&["apply"]);
    assert_eq!(r.code, 0, "apply failed:\n{r:?}");

    // the first push, so that every part has something to say
    let (code, out) = c.sh("alpha", "systemctl start infra-share-uploads.service");
    assert_eq!(code, 0, "the share push failed: {out}");
    // beta streams once its bootstrap is done
    let healthy = |c: &LabConfig| {
        let r = c.infra(&["status"]);
        (r.code == 0, r)
    };
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let r = loop {
        let (ok, r) = healthy(&c);
        if ok || std::time::Instant::now() > end {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    assert_eq!(r.code, 0, "not healthy 60 s after the apply:\n{r:?}");
    let first = r.stdout.lines().next().unwrap_or("");
    assert_eq!(first, "healthy: redundant", "{r:?}");
    for want in [
        "alpha  MASTER       holds the VIP  postgres main: primary",
        "beta   BACKUP                      postgres main: streaming standby",
        "postgres main: beta streams from alpha (async)",
        "share uploads: pushed from alpha; last success",
        "job close_month: has not run yet; next 20",
        "alpha  generation 1, as the repo builds it",
    ] {
        assert!(r.stdout.contains(want), "no {want:?} in:\n{}", r.stdout);
    }

    // `infra lab status DIR`: the lab's hosts, then the same report
    let out = crate::deadline::output_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_infra"))
            .args(["lab", "status"])
            .arg(&c.dir)
            .env("NO_COLOR", "1"),
        60,
        "infra lab status DIR",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("running") && text.contains("\nhealthy: redundant\n"),
        "{text}"
    );

    // --json: the documented schema, and what it says
    let (code, v) = valid_json(&c);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["health"], "healthy", "{v}");
    assert_eq!(v["groups"][0]["holder"], "alpha", "{v}");
    assert_eq!(
        v["groups"][0]["members"][1]["databases"]["postgres.main"],
        "streaming standby"
    );
    assert_eq!(
        v["hosts"][1]["facts"]["postgres"]["main"]["in_recovery"],
        true
    );
    assert_eq!(v["hosts"][0]["pending"], 0);

    // the standby's PostgreSQL stopped: degraded, named
    let (code, out) = c.sh("beta", "systemctl stop postgresql@15-main.service");
    assert_eq!(code, 0, "{out}");
    let r = c.infra(&["status"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout
            .starts_with("DEGRADED: beta's postgres main is not running (since 20")
            && r.stdout
                .lines()
                .next()
                .unwrap_or("")
                .contains(" s ago): office has no up-to-date copy of the database"),
        "{r:?}"
    );
    let (code, out) = c.sh("beta", "systemctl start postgresql@15-main.service");
    assert_eq!(code, 0, "{out}");

    // a share push that fails: beta no longer lets alpha's key in
    let (code, out) = c.sh(
        "beta",
        "sed -i '/infra-share-uploads$/d' /var/lib/infra-share/.ssh/authorized_keys",
    );
    assert_eq!(code, 0, "{out}");
    let (code, _) = c.sh("alpha", "systemctl start infra-share-uploads.service");
    assert_ne!(code, 0, "the push should fail without its key");
    let r = c.infra(&["status"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout.contains(
            "share uploads: the last push of /srv/accounting/shared/uploads from alpha failed (exit-code, exit 12)"
        ) || r
            .stdout
            .contains("share uploads: the last push of /srv/accounting/shared/uploads from alpha failed (exit-code, exit 255)"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("share uploads: last push from alpha FAILED"),
        "{r:?}"
    );

    // the VIP holder loses power: it is unreachable, beta holds the VIP and is primary
    infra::lab::kill("status", "alpha").expect("lab kill alpha");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let r = loop {
        let r = c.infra(&["status"]);
        if r.stdout
            .contains("beta   MASTER       holds the VIP  postgres main: primary")
            || std::time::Instant::now() > end
        {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("beta   MASTER       holds the VIP  postgres main: primary"),
        "beta did not take over within 60 s:\n{r:?}"
    );
    assert!(r.stdout.contains("alpha is unreachable"), "{r:?}");
    assert!(r.stdout.contains("alpha  unreachable: "), "{r:?}");
    let (code, v) = valid_json(&c);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["groups"][0]["holder"], "beta", "{v}");
    assert!(v["hosts"][0]["facts"].is_null(), "{v}");

    // the picture of it: the VIP on beta, alpha failing, replication from beta
    let t = c.infra(&["graph", "--topology", "--live", "--format", "text"]);
    assert_eq!(t.code, 0, "{t:?}");
    for want in [
        "failover office: VIP 192.0.2.10 held by beta",
        "  alpha        192.0.2.11       FAILING",
        "  beta         192.0.2.12       (VIP)",
        "  beta --postgres.main (replication)--> alpha",
        "  jobs on beta (the VIP holder): close_month",
    ] {
        assert!(t.stdout.contains(want), "no {want:?} in:\n{}", t.stdout);
    }
}
