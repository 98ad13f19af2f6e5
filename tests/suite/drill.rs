//! `infra drill` on the accounting example (and on examples/witness): a short round of every fault, with the
//! writer through the VIP and the set checker. The assertions are what the stack
//! guarantees today (and what the drill must be able to see): a power cut fails over
//! within seconds and loses at most a second of writes; a killed database comes back
//! by itself; a hung one fails over (but not while the standby is down); a standby restart
//! costs nothing; load on the primary fails nothing over; a partition or an isolated VIP holder
//! gives two writable primaries, which the drill measures; with a witness
//! (examples/witness) neither does, and nothing acknowledged is lost. Every round must heal by itself, and the drill leaves
//! nothing behind (`infra plan`: no changes). Lab only (INFRA_LAB_TESTS=1).

use crate::apply_e2e::{lab_enabled, LabConfig, Run};
use serde_json::Value;
use std::process::Command;

fn drill(c: &LabConfig, fault: &str, extra: &[&str]) -> (Run, Value) {
    // 100 writes/s: other lab tests run beside this one on two cores
    let mut args = vec!["drill", "--json", "--rate", "100", "--fault", fault];
    args.extend_from_slice(extra);
    let r = c.infra(&args);
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("drill {fault}: not JSON ({e}):\n{r:?}"));
    eprintln!("{fault}: {}", summary(&v));
    (r, v)
}

fn summary(v: &Value) -> String {
    let r = &v["rounds"][0];
    format!(
        "{} → {}, acked {}, lost {}, writable again {} s, two primaries {} s, healed {} s",
        r["primary_before"],
        r["primary_after"],
        r["acknowledged"],
        r["lost"],
        r["writable_again_s"],
        r["dual_primary_s"],
        r["healed_s"]
    )
}

/// A shell test on a member: its PostgreSQL answers `pg_is_in_recovery()` with `tf`
/// (`t`: a standby, `f`: a primary); false when it does not answer.
fn recovery_is(tf: &str) -> String {
    format!("[ \"$(runuser -u postgres -- psql -XtAc 'select pg_is_in_recovery()')\" = {tf} ]")
}

/// A shell test on a member: it is a standby whose WAL receiver streams.
fn streaming_standby() -> String {
    format!(
        "{} && [ \"$(runuser -u postgres -- psql -XtAc 'select status from pg_stat_wal_receiver')\" = streaming ]",
        recovery_is("t")
    )
}

fn f(r: &Value, k: &str) -> f64 {
    r[k].as_f64()
        .unwrap_or_else(|| panic!("`{k}` is not a number in {r}"))
}

/// What keepalived, the failover scripts and PostgreSQL did on every member in
/// the last three minutes: for a failed assertion, so a failure in CI explains itself.
fn failover_journal(c: &LabConfig) -> String {
    let mut s = String::new();
    for h in ["alpha", "beta"] {
        let (_, out) = c.sh(
            h,
            "journalctl -q --no-pager -o short-precise --since -3min -u keepalived \
             -u postgresql@15-main -u 'infra-postgres-*' -t infra-notify \
             -t infra-check-office -t infra-fence-office | tail -n 80",
        );
        s.push_str(&format!("--- {h}\n{out}\n"));
    }
    s
}

/// What holds for every round of every fault.
fn healed_and_counted(c: &LabConfig, fault: &str, run: &Run, v: &Value) -> Value {
    assert_eq!(run.code, 0, "drill {fault} failed:\n{run:?}");
    let r = v["rounds"][0].clone();
    assert!(
        f(&r, "healed_s") <= 60.0,
        "{fault}: the pair took more than 60 s to heal: {r}\n{}",
        failover_journal(c)
    );
    assert_eq!(r["unexpected"], 0, "{fault}: ids nobody wrote: {r}");
    assert!(
        f(&r, "acknowledged") > 100.0,
        "{fault}: the writer hardly wrote: {r}"
    );
    assert!(f(&r, "lost") <= f(&r, "acknowledged"), "{fault}: {r}");
    r
}

#[test]
fn drill_measures_every_fault() {
    if !lab_enabled("drill_measures_every_fault") {
        return;
    }
    let mut c = LabConfig::new("accounting", "infra-drill-acc");
    c.up(&[]);
    let r = c.infra(&["apply"]);
    assert_eq!(r.code, 0, "apply failed:\n{r:?}");

    // Consent: without --lab the drill refuses, and says how.
    let out = crate::deadline::output_within(
        Command::new(env!("CARGO_BIN_EXE_infra"))
            .args(["drill", "--fault", "poweroff"])
            .arg(&c.dir),
        60,
        "infra drill without --lab",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only with `--lab`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A power cut of the primary: the other member serves within seconds, at most
    // about a second of acknowledged writes is lost (asynchronous replication), and
    // the old primary streams again by itself.
    let svg = c.dir.join("poweroff.svg");
    let svg_arg = svg.to_string_lossy().into_owned();
    let (run, v) = drill(&c, "poweroff", &["--hold", "3", "--svg", &svg_arg]);
    let r = healed_and_counted(&c, "poweroff", &run, &v);
    assert_ne!(r["primary_after"], r["primary_before"], "no failover: {r}");
    assert!(f(&r, "writable_again_s") < 10.0, "{r}");
    assert!(
        f(&r, "lost") <= f(&r, "rate").max(1.0),
        "more than 1 s of writes lost: {r}"
    );
    let picture = std::fs::read_to_string(&svg).expect("the SVG is written");
    assert!(
        picture.starts_with("<svg") && picture.contains("round 1:"),
        "{picture}"
    );

    // A killed database server comes back by itself (Restart=on-failure), no
    // failover, nothing lost; and a budget it breaks makes the drill exit 1.
    let (run, v) = drill(&c, "kill-db", &["--max-unwritable", "0.1"]);
    assert_eq!(run.code, 1, "over budget must exit 1:\n{run:?}");
    let r = &v["rounds"][0];
    assert!(
        v["broken"].as_array().is_some_and(|b| !b.is_empty()),
        "no budget line: {v}"
    );
    assert_eq!(r["primary_after"], r["primary_before"], "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert!(f(r, "writable_again_s") < 15.0, "{r}");
    assert!(f(r, "healed_s") <= 60.0, "{r}");

    // A hung database on the VIP holder (SIGSTOP) fails over: the postgres kind's
    // part of the group's check gives up the VIP when a running primary answers
    // nothing within 1 s; at most about a second of writes is lost (asynchronous).
    let (run, v) = drill(&c, "pause-db", &["--hold", "12"]);
    let r = healed_and_counted(&c, "pause-db", &run, &v);
    assert_ne!(
        r["primary_after"], r["primary_before"],
        "a hung primary kept the VIP: {r}"
    );
    assert!(f(&r, "writable_again_s") < 12.0, "{r}");
    assert!(f(&r, "lost") <= f(&r, "rate").max(1.0), "{r}");
    assert_eq!(
        f(&r, "dual_primary_s"),
        0.0,
        "the resumed primary was not fenced: {r}"
    );

    // Restarting the standby costs the writer nothing: no failover, no write
    // refused. (A write may time out while the standby's boot takes both cores
    // from the primary, as here when other labs run beside this one: a 1.6 s gap
    // with one timeout was seen; a server that went down shows as refused
    // connections or "shutting down", and a failover as 3 s or more.)
    let (run, v) = drill(&c, "restart-standby", &[]);
    let r = healed_and_counted(&c, "restart-standby", &run, &v);
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["primary_after"], r["primary_before"], "{r}");
    let refused: Vec<&Value> = r["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| !e[0].as_str().is_some_and(|m| m.contains("timed out")))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        refused.is_empty() && f(&r, "longest_gap_s") < 2.5,
        "writes stalled: {r}\n{}",
        failover_journal(&c)
    );
    let primary = r["primary_after"].as_str().expect("a primary").to_string();
    let standby = if primary == "alpha" { "beta" } else { "alpha" };
    primary_hangs_while_the_standby_is_down(&c, &primary, standby);

    // The VIP comes and goes on the standby within a moment (a VRRP flap): its
    // promotion is stopped before it finishes. The fencing must still run (it did
    // not while it was promote.service's ExecStop: two primaries until a human
    // looked), so the pair ends with one primary and the standby streaming again.
    let notify = "/etc/keepalived/infra-notify.sh office";
    let (code, out) = c.sh(
        standby,
        &format!("{notify} master; sleep 0.05; {notify} backup"),
    );
    assert_eq!(code, 0, "{out}");
    let settled = c.wait(standby, &streaming_standby(), 60);
    let journal = c.out(
        standby,
        "journalctl -q --no-pager -o cat -u infra-postgres-main-promote.service -n 20",
    );
    eprintln!("flap on {standby}:\n{journal}");
    assert!(
        settled,
        "{standby} is not a streaming standby 60 s after a VIP flap (two primaries?):\n{journal}"
    );
    assert_eq!(
        c.sh(&primary, &recovery_is("f")).0,
        0,
        "{primary} is no longer the primary after a flap on {standby}"
    );

    // Load on the VIP holder (busy loops on every core, a disk writer syncing) is
    // not a failure: nothing fails over and nothing is lost.
    let (run, v) = drill(&c, "stress", &["--hold", "20"]);
    let r = healed_and_counted(&c, "stress", &run, &v);
    assert_eq!(
        r["primary_after"],
        r["primary_before"],
        "a false failover under load: {r}\n{}",
        failover_journal(&c)
    );
    assert!(r["vip_moved_s"].is_null(), "the VIP moved under load: {r}");
    assert_eq!(r["lost"], 0, "{r}");

    // Without a witness a partition gives two writable primaries: the drill must see
    // them (and count what the loser's side took).
    let (run, v) = drill(&c, "partition", &["--hold", "8"]);
    let r = healed_and_counted(&c, "partition", &run, &v);
    assert!(f(&r, "dual_primary_s") > 0.0, "two primaries not seen: {r}");
    // What the loser took is not gone: its data directory is kept aside.
    if f(&r, "lost") > 0.0 {
        assert!(
            r["kept"].as_array().is_some_and(|k| !k.is_empty()),
            "writes lost and no copy kept: {r}"
        );
    }

    // The VIP holder isolated: the other member takes over for the clients.
    let (run, v) = drill(&c, "isolate", &["--hold", "8"]);
    let r = healed_and_counted(&c, "isolate", &run, &v);
    assert!(f(&r, "writable_again_s") < 10.0, "{r}");

    // keepalived paused on the VIP holder: the other member takes the VIP too.
    let (run, v) = drill(&c, "pause-keepalived", &["--hold", "6"]);
    let r = healed_and_counted(&c, "pause-keepalived", &run, &v);
    assert!(f(&r, "dual_vip_s") > 0.0, "{r}");

    // A drill killed while its partition is in place leaves it so; the next drill
    // undoes it first (and then runs as usual).
    let mut child = Command::new(env!("CARGO_BIN_EXE_infra"))
        .args(["drill", "--lab", "--fault", "partition", "--hold", "120"])
        .arg(&c.dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs infra drill");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !seen.contains("round 1/1: partition") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap_or(0);
        assert!(
            n > 0 && std::time::Instant::now() < deadline,
            "the drill did not reach its partition within 120 s:\n{seen}"
        );
        seen.push_str(&line);
    }
    // the line comes just before the fault: wait until the members are cut off
    let (alpha, beta) = ("alpha", "192.0.2.12");
    let cut = c.wait(alpha, &format!("! ping -c 1 -W 1 {beta}"), 20);
    // and until the other side has promoted itself: killed in the middle of that
    // promotion, a heal can leave two primaries (promote.service's ExecStop, the
    // fencing, does not run for a start that never finished: see the issue note)
    let promoted = c.wait("beta", &recovery_is("f"), 30);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        cut,
        "the partition was not in place 20 s after the drill announced it"
    );
    assert!(
        promoted,
        "beta did not promote itself 30 s into the partition"
    );
    assert_ne!(
        c.sh(alpha, &format!("ping -c 1 -W 1 {beta}")).0,
        0,
        "killing the drill healed the partition"
    );
    let (run, v) = drill(&c, "restart-standby", &[]);
    healed_and_counted(&c, "restart-standby after an interrupted drill", &run, &v);
    assert_eq!(
        c.sh(alpha, &format!("ping -c 1 -W 1 {beta}")).0,
        0,
        "still partitioned"
    );

    // The drill took its pg_hba line, role and database away again.
    let r = c.infra(&["plan"]);
    assert!(
        r.code == 0 && r.stdout.contains("total (2 hosts): no changes"),
        "the drill left something behind:\n{r:?}"
    );
    drop(c);
    with_a_witness();
}

/// The primary hangs (a loaded machine: its check times out three times running)
/// while the standby is down or still booting. Giving the VIP up then helps nobody:
/// nothing could take it, and the primary would fence itself (its PostgreSQL
/// stopped) until keepalived gave the VIP back: 27 s without writes in a CI run of
/// `restart-standby`. The check keeps the VIP, says so once, and the server was
/// never stopped.
fn primary_hangs_while_the_standby_is_down(c: &LabConfig, primary: &str, standby: &str) {
    let pid = "systemctl show -p MainPID --value postgresql@15-main.service";
    let before = c.out(primary, pid);
    let since = c.out(primary, "date +%s");
    infra::lab::kill(&c.name, standby).expect("lab kill of the standby");
    let (code, out) = c.sh(primary, "pkill -STOP -x postgres");
    assert_eq!(code, 0, "{out}");
    // keepalived's check fails after 3 checks 2 s apart: well past that
    std::thread::sleep(std::time::Duration::from_secs(12));
    let (code, out) = c.sh(primary, "pkill -CONT -x postgres");
    assert_eq!(code, 0, "{out}");
    let said = c.out(
        primary,
        &format!("journalctl -q --no-pager -o cat --since @{since} -t infra-check-office -t infra-notify"),
    );
    let holds = c
        .sh(primary, "ip -o addr show dev eth0 | grep -q ' 192.0.2.10/'")
        .0
        == 0;
    let after = c.out(primary, pid);
    infra::lab::start(&c.name, standby).expect("lab start of the standby");
    let journal = failover_journal(c);
    assert!(
        said.contains("no other member could take it over") && said.contains("keeping the VIP"),
        "the hung primary's check did not say it keeps the VIP:\n{said}\n{journal}"
    );
    assert!(
        holds && !said.contains("fault") && !said.contains("backup"),
        "{primary} gave the VIP up with nobody to take it:\n{said}\n{journal}"
    );
    assert_eq!(
        before, after,
        "{primary}'s PostgreSQL was restarted:\n{journal}"
    );
    assert!(
        c.wait(standby, &streaming_standby(), 90),
        "{standby} is not a streaming standby 90 s after it was powered on again:\n{}",
        failover_journal(c)
    );
}

/// examples/witness: two members, the witness `nas` (etcd), synchronous
/// replication. What the pair could not do alone: no fault gives two primaries,
/// and none loses an acknowledged write.
fn with_a_witness() {
    let mut c = LabConfig::new("witness", "infra-drill-wit");
    c.up(&[]);
    let out = Command::new(env!("CARGO_BIN_EXE_infra"))
        .arg("check")
        .arg(&c.dir)
        .output()
        .expect("runs infra check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("W0518"),
        "the witness example still warns of split brain:\n{err}"
    );
    let r = c.infra(&["apply"]);
    assert_eq!(r.code, 0, "apply failed:\n{r:?}");
    lease_on_the_vip_holder(&c, "after the apply");

    // The members lose each other, both still reach the witness: the holder keeps
    // its lease and stays the only primary (commits wait for the standby meanwhile).
    let (run, v) = drill(&c, "partition", &["--hold", "8"]);
    let r = healed_and_counted(&c, "witness partition", &run, &v);
    assert_eq!(f(&r, "dual_primary_s"), 0.0, "two primaries: {r}");
    assert_eq!(f(&r, "lost"), 0.0, "{r}");
    assert_eq!(r["primary_after"], r["primary_before"], "{r}");

    // The VIP holder reaches nobody: it fences itself before its lease can run out,
    // and only then may the other member take the key and promote.
    let (run, v) = drill(&c, "isolate", &["--hold", "12"]);
    let r = healed_and_counted(&c, "witness isolate", &run, &v);
    assert_eq!(f(&r, "dual_primary_s"), 0.0, "two primaries: {r}");
    assert_eq!(f(&r, "lost"), 0.0, "{r}");
    assert_ne!(r["primary_after"], r["primary_before"], "no failover: {r}");

    // A power cut: the lease runs out (8 s), then the other member is promoted.
    let (run, v) = drill(&c, "poweroff", &["--hold", "3"]);
    let r = healed_and_counted(&c, "witness poweroff", &run, &v);
    assert_ne!(r["primary_after"], r["primary_before"], "no failover: {r}");
    assert_eq!(f(&r, "lost"), 0.0, "{r}");
    assert!(f(&r, "writable_again_s") < 20.0, "{r}");
    lease_on_the_vip_holder(&c, "after the drill");

    let r = c.infra(&["plan"]);
    assert!(
        r.code == 0 && r.stdout.contains("total (3 hosts): no changes"),
        "the drill left something behind:\n{r:?}"
    );
}

/// `infra status` of the witness pair turns healthy within 60 s, naming the VIP
/// holder as the holder of the witness lease.
fn lease_on_the_vip_holder(c: &LabConfig, when: &str) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let r = loop {
        let r = c.infra(&["status"]);
        if r.code == 0 || std::time::Instant::now() > end {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    assert_eq!(
        r.code, 0,
        "the witness pair is not healthy 60 s {when}:\n{r:?}"
    );
    let holder = r
        .stdout
        .lines()
        .find(|l| l.contains("holds the VIP"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no VIP holder in the status {when}:\n{}", r.stdout));
    assert!(
        r.stdout
            .contains(&format!("witness nas: lease held by {holder}")),
        "the lease is not on the VIP holder {holder} {when}:\n{}",
        r.stdout
    );
}
