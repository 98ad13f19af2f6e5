//! Fleets: `--limit HOST|GROUP|@TAG` (the union, in the model's order; a
//! selector that matches nothing is E0750), the failover-group rule (an apply of
//! one member of a pair is refused, E0751, unless `--allow-partial-group`),
//! `--parallel`'s bound, and `infra exec`'s prefixed output and summary. The
//! pool's bound itself is a unit test (compiler/transport/mod.rs). Lab: the
//! accounting pair applied one member at a time, as an office adding its second
//! machine would, `exec` over real SSH, and `apply --json`'s events against
//! docs/apply-events.schema.json; and a lab of 50 small hosts booted, applied,
//! planned (no changes) and taken down (root's inotify limit raised for it).

use crate::apply_e2e::{lab_enabled, LabConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// `infra ARGS` (no lab): (exit code, stdout, stderr with miette's wrapping undone).
fn infra(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_infra"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("HOME", "/nonexistent")
        .output()
        .expect("runs infra");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        crate::secrets::flat(&String::from_utf8_lossy(&out.stderr)),
    )
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/accounting")
        .display()
        .to_string()
}

#[test]
fn a_limit_that_matches_nothing_or_half_a_pair_is_refused_before_connecting() {
    let ex = example();
    // half of the pair: refused before any secret is read or host reached
    // (the example has no secrets.env: without the refusal this would be E0730)
    let (code, _, err) = infra(&["apply", &ex, "--limit", "alpha"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("E0751")
            && err.contains("--limit selects alpha of failover group `office` without beta")
            && err.contains("partial-group` to apply only these members"),
        "{err}"
    );
    // with the flag it goes on, to the next missing thing (the secrets)
    let (code, _, err) = infra(&["apply", &ex, "--limit", "alpha", "--allow-partial-group"]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("E0751") && err.contains("E0730"), "{err}");
    // the whole group is no partial one
    let (_, _, err) = infra(&["apply", &ex, "--limit", "office"]);
    assert!(!err.contains("E0751"), "{err}");
    // unknown selectors name what exists
    for (sel, want) in [
        (
            "gamma",
            "`gamma` is no host, failover group or tag of the configuration",
        ),
        ("@web", "no host has the tag `web`"),
        ("alpha,nope", "`nope` is no host"),
    ] {
        for cmd in ["plan", "apply", "status", "exec"] {
            let mut args = vec![cmd, ex.as_str(), "--limit", sel];
            if cmd == "exec" {
                args.extend(["--", "true"]);
            }
            let (code, _, err) = infra(&args);
            assert_eq!(code, 1, "{cmd} --limit {sel}: {err}");
            assert!(
                err.contains("E0750") && err.contains(want) && err.contains("hosts: alpha, beta"),
                "{cmd} --limit {sel}: {err}"
            );
        }
    }
    let (code, _, err) = infra(&["plan", &ex, "--parallel", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("from 1 to 1024"), "{err}");
}

#[test]
fn lab_one_member_at_a_time_then_exec_on_both() {
    if !lab_enabled("lab_one_member_at_a_time_then_exec_on_both") {
        return;
    }
    let mut c = LabConfig::new("accounting", "fleet");
    let text = c
        .text()
        .replace(
            "host alpha {",
            "host alpha {\n  tags = [\"db\", \"site-a\"]",
        )
        .replace("host beta {", "host beta {\n  tags = [\"site-a\"]");
    assert!(
        text.contains("tags = [\"site-a\"]"),
        "the example's host blocks moved"
    );
    c.write(&text);
    c.up(&[]);

    // the first machine alone (the office before its second one), one host at a time
    let r = c.infra(&["apply", "--limit", "@db"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("E0751"), "{r:?}");
    let r = c.infra(&[
        "apply",
        "--limit",
        "@db",
        "--allow-partial-group",
        "--parallel",
        "1",
    ]);
    assert_eq!(r.code, 0, "apply of alpha alone failed:\n{r:?}");
    let g = c.infra(&["generations", "beta"]);
    assert!(
        g.stdout.contains("beta: no generations"),
        "beta was touched: {g:?}"
    );
    // the plan of the other member is beta's alone
    let p = c.infra(&["plan", "--json", "--limit", "beta"]);
    assert_eq!(p.code, 0, "{p:?}");
    let v: serde_json::Value = serde_json::from_str(&p.stdout).expect("plan --json");
    let planned: Vec<&str> = v["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(|h| h["host"].as_str())
        .collect();
    assert_eq!(planned, ["beta"], "{v:#}");
    // then the pair: beta joins (alpha has nothing left to change)
    let r = c.infra(&["apply", "--limit", "office"]);
    assert_eq!(r.code, 0, "apply of the pair failed:\n{r:?}");
    // beta's guarded bootstrap step is pending until its base backup is done
    let end = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let p = loop {
        let p = c.infra(&["plan", "--detailed-exitcode"]);
        if p.code != 2 || std::time::Instant::now() > end {
            break p;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    assert_eq!(
        p.code, 0,
        "not converged 90 s after the pair's apply:\n{p:?}"
    );

    // exec: every line prefixed with its host, stderr on stderr, a summary
    let r = c.infra_tail(
        &["exec", "--limit", "@site-a"],
        &[],
        &[
            "--",
            "cat /etc/hostname; echo to-stderr >&2; test \"$(cat /etc/hostname)\" = alpha",
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.lines().any(|l| l == "alpha | alpha")
            && r.stdout.lines().any(|l| l == "beta  | beta"),
        "{r:?}"
    );
    assert!(r.stderr.contains("beta  ! to-stderr"), "{r:?}");
    assert!(
        r.stderr
            .contains("exec on 2 hosts: 1 ok, 1 failed (beta: exit 1)"),
        "{r:?}"
    );
    let r = c.infra_tail(
        &["exec", "--limit", "beta"],
        &[],
        &["--", "systemctl", "is-active", "keepalived"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "beta | active\n", "{r:?}");
    assert!(r.stderr.contains("exec on 1 host: 1 ok"), "{r:?}");

    // apply --json: a timer changes on both members
    c.write(&c.text().replace("\"*-*-* 03:00:00\"", "\"*-*-* 03:30:00\""));
    let r = c.infra(&["apply", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let (all, names) = events(&r.stdout);
    let counts: Vec<usize> = [
        "probed",
        "plan",
        "switch",
        "health_gate",
        "confirmed",
        "host",
        "summary",
    ]
    .iter()
    .map(|n| count_of(&names, n))
    .collect();
    assert_eq!(counts, [2, 1, 2, 2, 2, 2, 1], "{names:?}");
    assert_eq!(
        names.last().map(String::as_str),
        Some("summary"),
        "{names:?}"
    );
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap_or(usize::MAX);
    assert!(
        pos("probed") < pos("plan") && pos("plan") < pos("switch"),
        "{names:?}"
    );
    // the roll: beta (not the VIP holder) confirmed before alpha's switch starts
    let at = |e: &str, h: &str| {
        all.iter()
            .position(|v| v["event"] == e && v["host"] == h)
            .unwrap_or_else(|| panic!("no {e} of {h}: {names:?}"))
    };
    assert!(at("confirmed", "beta") < at("switch", "alpha"), "{names:?}");
    let results: BTreeMap<&str, &str> = all
        .iter()
        .filter(|v| v["event"] == "host")
        .map(|v| {
            (
                v["host"].as_str().unwrap_or(""),
                v["result"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        results,
        BTreeMap::from([("alpha", "applied"), ("beta", "applied")])
    );
    let summary = all.last().expect("summary");
    assert_eq!(
        (summary["result"].as_str(), summary["exit_code"].as_i64()),
        (Some("applied"), Some(0)),
        "{summary}"
    );
    // and nothing left: one summary, no changes
    let r = c.infra(&["apply", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let (all, names) = events(&r.stdout);
    assert_eq!(count_of(&names, "switch"), 0, "{names:?}");
    assert_eq!(
        all.last().map(|v| v["result"].clone()),
        Some("no_changes".into()),
        "{names:?}"
    );

    // rollback --limit: half the pair refused; the pair back one step, beta (not
    // holding the VIP) first, alpha (holding it) last
    let r = c.infra(&["rollback", "--limit", "@db"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("E0751"), "{r:?}");
    let before = |h: &str| c.out(h, "systemctl show -P TimersCalendar infra-job-backup.timer");
    assert!(before("beta").contains("03:30:00"), "{}", before("beta"));
    let r = c.infra(&["rollback", "--limit", "office"]);
    assert_eq!(r.code, 0, "{r:?}");
    let beta = r.stdout.find("beta: generation ");
    let alpha = r.stdout.find("alpha: generation ");
    assert!(
        beta.is_some() && alpha.is_some() && beta < alpha,
        "beta, which does not hold the VIP, goes back first: {r:?}"
    );
    assert!(
        r.stdout
            .contains("rolled back: 2 host(s), one at a time (beta, then alpha)"),
        "{r:?}"
    );
    for h in ["alpha", "beta"] {
        let t = before(h);
        assert!(
            t.contains("03:00:00") && !t.contains("03:30:00"),
            "{h}: {t}"
        );
    }
    let p = c.infra(&["plan", "--detailed-exitcode"]);
    assert_eq!(p.code, 2, "the configuration still says 03:30: {p:?}");
}

fn count_of(names: &[String], n: &str) -> usize {
    names.iter().filter(|x| *x == n).count()
}

/// Every line of `apply --json`: valid against docs/apply-events.schema.json;
/// the events' names in order.
fn events(stdout: &str) -> (Vec<serde_json::Value>, Vec<String>) {
    let validator = schema();
    let mut all = Vec::new();
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let bad: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(bad.is_empty(), "{bad:#?}\n{v:#}");
        all.push(v);
    }
    let names = all
        .iter()
        .map(|v| v["event"].as_str().unwrap_or("").to_string())
        .collect();
    (all, names)
}

fn schema() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/apply-events.schema.json"),
        )
        .expect("docs/apply-events.schema.json"),
    )
    .expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

#[test]
fn apply_events_schema_rejects_what_it_should() {
    // the schema is not a blank cheque: an unknown event, a missing field,
    // another version, a failure without its error, a result outside the enum
    let v = schema();
    let ok = serde_json::json!({"schema": 1, "event": "switch", "host": "a", "generation": 2});
    assert!(v.is_valid(&ok));
    for bad in [
        serde_json::json!({"schema": 1, "event": "switched", "host": "a", "generation": 2}),
        serde_json::json!({"schema": 1, "event": "switch", "host": "a"}),
        serde_json::json!({"schema": 2, "event": "switch", "host": "a", "generation": 2}),
        serde_json::json!({"schema": 1, "event": "host", "host": "a", "result": "failed"}),
        serde_json::json!({"schema": 1, "event": "summary", "result": "fine", "applied": 0,
                           "unchanged": 0, "secs": 1.0, "exit_code": 0}),
    ] {
        assert!(!v.is_valid(&bad), "accepted: {bad}");
    }
}

/// root's inotify instances limit raised to at least `want` for the test, and
/// set back when dropped, unless what root uses then (other tests' labs, run
/// in parallel) would not fit under the old limit with room for a lab more:
/// lowering it under their feet would fail their next inotify_init.
struct Inotify {
    old: Option<String>,
}

const INOTIFY: &str = "/proc/sys/fs/inotify/max_user_instances";

impl Inotify {
    fn at_least(want: u64) -> Inotify {
        let old = std::fs::read_to_string(INOTIFY).expect("inotify limit");
        let have: u64 = old.trim().parse().expect("a number");
        if have >= want {
            return Inotify { old: None };
        }
        std::fs::write(INOTIFY, want.to_string()).expect("raise the inotify limit (root)");
        Inotify { old: Some(old) }
    }
}

impl Drop for Inotify {
    fn drop(&mut self) {
        let Some(old) = &self.old else { return };
        let (used, _) = infra::lab::limits::inotify_in_use();
        let room = 4 * infra::lab::limits::INSTANCES_PER_HOST;
        match old.trim().parse::<u64>() {
            Ok(limit) if used + room <= limit => {
                let _ = std::fs::write(INOTIFY, old.trim());
            }
            _ => eprintln!(
                "leaving fs.inotify.max_user_instances raised: {used} in use, it was {}",
                old.trim()
            ),
        }
    }
}

#[test]
fn lab_fifty_small_hosts_boot_apply_plan_and_go_down() {
    if !lab_enabled("lab_fifty_small_hosts_boot_apply_plan_and_go_down") {
        return;
    }
    let n = 50;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("fifty");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let hosts: String = (0..n)
        .map(|i| format!("host s{i:03} {{\n  address = \"10.77.0.{}\"\n}}\n", i + 1))
        .collect();
    std::fs::write(dir.join("hosts.infra"), hosts).expect("hosts");
    let peer = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer/main.infra"),
    )
    .expect("benches/peer");
    let kind = &peer[peer.find("kind peer").expect("the peer kind")..];
    std::fs::write(dir.join("main.infra"), kind).expect("main.infra");
    let _limit = Inotify::at_least(1024);
    let _ = infra::lab::down("fifty");
    let run = |args: &[&str], secs: u64| {
        let t = std::time::Instant::now();
        let out = crate::deadline::output_within(
            Command::new(env!("CARGO_BIN_EXE_infra"))
                .args(args)
                .env("NO_COLOR", "1"),
            secs,
            &format!("infra {}", args.join(" ")),
        );
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "$ infra {} ({secs:.1} s, exit {:?})",
            args.join(" "),
            out.status.code()
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let d = dir.to_str().expect("utf-8 path");
    let (code, out) = run(&["lab", "up", d], 600);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&["apply", "--lab", d], 600);
    let confirmed = out.matches("applied and confirmed").count();
    let (pcode, pout) = run(&["plan", "--lab", d, "--detailed-exitcode"], 300);
    let (dcode, dout) = run(&["lab", "down", "--lab", "fifty"], 300);
    // the lab is gone before anything is judged
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(confirmed, n, "{out}");
    assert_eq!(pcode, Some(0), "not a no-op after the apply: {pout}");
    assert!(
        pout.contains(&format!("total ({n} hosts): no changes")),
        "{pout}"
    );
    assert_eq!(dcode, Some(0), "{dout}");
}
