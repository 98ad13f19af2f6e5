//! An interrupted apply never lies and never locks a host for good. On a lab
//! host with a 200-file configuration:
//! - `lab_interrupted_apply_at_fixed_points`: the client is stopped at each
//!   pause point of a switch (crate `infra::fault`) and killed there, or the host
//!   is powered off there; then the host must be on one complete generation, the
//!   cut client must not have reported success, and the next `infra apply` must
//!   converge by itself, saying what it found.
//! - `lab_fault_injection_random_cuts`: random cuts (client kill, connection
//!   drop from the lab network, host power-off) at random moments of an apply,
//!   `INFRA_FAULT_ROUNDS` of them (6 by default; docs/benchmarks.md has a
//!   100-round run): counts mixed generations, false successes and the time to
//!   convergence.

use crate::apply_e2e::{assert_ok, lab_enabled, LabConfig, Run, EXTRA};
use infra::probe::{LockFacts, Manifest};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOST: &str = "solo";

/// One host, one service, and 200 files whose content carries `version`.
fn config(version: u32) -> String {
    let names: Vec<String> = (0..200).map(|i| format!("\"f{i:03}\"")).collect();
    format!(
        r#"host solo {{
  address = "192.0.2.5"
}}

service hello {{
  on          = solo
  run         = "/usr/bin/python3 -m http.server 8000 --directory /srv/hello"
  user        = "www-data"
  packages    = ["python3"]
  directories = ["/srv/hello"]
}}

kind bulk(on: placement, names: [string], version: string) {{
  file "/etc/infra-bulk/${{names}}.conf" {{
    content = "version ${{version}}\n{pad}\n"
    mode    = "0644"
  }}
}}

bulk data {{
  on      = solo
  names   = [{names}]
  version = "{version}"
}}
"#,
        pad = "x".repeat(200),
        names = names.join(", ")
    )
}

/// `infra apply DIR --lab` in the background, its output in files.
struct Apply {
    child: Child,
    started: Instant,
    err: std::path::PathBuf,
    out: std::path::PathBuf,
}

impl Apply {
    fn spawn(c: &LabConfig, pause_at: Option<&str>) -> Apply {
        let n = std::process::id() ^ (Instant::now().elapsed().subsec_nanos());
        let out = c.dir.with_extension(format!("out{n}"));
        let err = c.dir.with_extension(format!("err{n}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_infra"));
        cmd.arg("apply")
            .arg(&c.dir)
            .arg("--lab")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"));
        if let Some(p) = pause_at {
            cmd.env("INFRA_PAUSE_AT", p);
        }
        Apply {
            child: cmd.spawn().expect("spawn infra apply"),
            started: Instant::now(),
            err,
            out,
        }
    }

    fn stderr(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.err) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Wait until the client says it paused at `point` (panics after 90 s, with
    /// what it printed).
    fn wait_paused(&mut self, point: &str) {
        let end = Instant::now() + Duration::from_secs(90);
        let marker = format!("infra: paused at {point}");
        loop {
            if self.stderr().contains(&marker) {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "infra apply ended ({st}) before pausing at {point}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < end,
                "infra apply did not pause at {point} within 90 s:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, and the run as it ended.
    fn kill(mut self) -> Run {
        let _ = self.child.kill();
        self.finish()
    }

    fn finish(mut self) -> Run {
        let status = self.child.wait().expect("wait for infra apply");
        let mut stdout = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.out) {
            let _ = f.read_to_string(&mut stdout);
        }
        let r = Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: self.stderr(),
            secs: self.started.elapsed().as_secs_f64(),
        };
        let _ = std::fs::remove_file(&self.out);
        let _ = std::fs::remove_file(&self.err);
        r
    }
}

/// The host lock's facts, read with the same sh functions as the probe.
fn lock(c: &LabConfig) -> Option<LockFacts> {
    let script = format!(
        "S=/var/lib/infra\n{}\nlock_facts",
        infra::probe::lock::LOCK_FACTS
    );
    let (code, out) = c.sh(HOST, &script);
    (code == 0).then(|| LockFacts::parse(&out))
}

/// Whether a script sent by an apply still runs on the host: its loader lives
/// until it ends (the bracket keeps pgrep from finding the shell that asks).
fn script_running(c: &LabConfig) -> bool {
    c.sh(HOST, "pgrep -f 'IFS= rea[d] -r n' >/dev/null").0 == 0
}

/// Wait (up to 60 s) until no live apply holds the host lock and no script of
/// a killed client still runs there (a switch cut before it took the lock
/// takes it, and gives it back, after the client is gone).
fn settled(c: &LabConfig) {
    let end = Instant::now() + Duration::from_secs(60);
    while lock(c).is_some_and(|l| l.live()) || script_running(c) {
        assert!(
            Instant::now() < end,
            "an apply still holds the lock of {HOST} after 60 s: {:?}",
            lock(c)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The host is on exactly one complete generation: every file of the current
/// generation's manifest has the bytes it installed, no staged file is left.
/// Err says what is mixed.
fn complete(c: &LabConfig) -> Result<u64, String> {
    let cur = c.current(HOST);
    let gen: u64 = cur
        .parse()
        .map_err(|_| format!("generations/current is {cur:?}"))?;
    let text = c.out(
        HOST,
        &format!("cat /var/lib/infra/generations/{gen}/manifest.json"),
    );
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| format!("manifest of {gen}: {e}: {text}"))?;
    let sums = c.out(
        HOST,
        &format!("cd / && xargs -d '\\n' sha256sum -- < /var/lib/infra/generations/{gen}/paths 2>&1; true"),
    );
    let mut bad = Vec::new();
    for (path, f) in &m.files {
        let line = sums.lines().find(|l| l.ends_with(&format!("  {path}")));
        match line.and_then(|l| l.split_whitespace().next()) {
            Some(h) if h == f.installed_sha256 => {}
            other => bad.push(format!("{path}: {other:?}")),
        }
    }
    let staged = c.out(
        HOST,
        "find /etc /srv /var/lib/infra -name '.infra-new.*' 2>/dev/null | head",
    );
    if !staged.is_empty() {
        bad.push(format!("staged files left: {staged}"));
    }
    if bad.is_empty() {
        Ok(gen)
    } else {
        Err(format!(
            "generation {gen} is not complete on {HOST}: {} of {} files differ: {}",
            bad.len(),
            m.files.len(),
            bad.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        ))
    }
}

/// Apply until the host converged (at most 3 tries): (the first run, seconds).
fn converge(c: &LabConfig) -> (Run, f64) {
    let t = Instant::now();
    let first = c.infra(&["apply"]);
    let mut last = first.code;
    for _ in 0..2 {
        if last == 0 {
            break;
        }
        last = c.infra(&["apply"]).code;
    }
    assert_eq!(last, 0, "the host does not converge: {first:?}");
    let plan = c.infra(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "converged: nothing left to change: {plan:?}");
    assert!(lock(c).is_none(), "no lock left after convergence");
    (first, t.elapsed().as_secs_f64())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cut {
    Kill,
    Drop,
    PowerOff,
}

/// Cut the running apply `a` the way `cut` says; power the host on again.
fn cut(c: &LabConfig, a: Apply, how: Cut) -> Run {
    match how {
        Cut::Kill => a.kill(),
        Cut::Drop => {
            // Abort the client's TCP connections to the host, from the lab's
            // network namespace (the host's sshd gets a reset).
            let ns = infra::lab::spec::lab_netns(&c.name);
            let _ = Command::new("ip")
                .args(["netns", "exec", &ns, "ss", "-K", "dst", "192.0.2.5"])
                .output();
            a.finish()
        }
        Cut::PowerOff => {
            infra::lab::kill(&c.name, HOST).expect("power off");
            let r = a.kill();
            let t = Instant::now();
            infra::lab::start(&c.name, HOST).expect("power on");
            eprintln!("{HOST} booted in {:.1} s", t.elapsed().as_secs_f64());
            r
        }
    }
}

/// What a cut client may have said: never success for a host that is not on
/// the generation it reported, confirmed.
fn no_false_success(c: &LabConfig, r: &Run) -> Result<(), String> {
    if r.code != 0 {
        return Ok(());
    }
    let claimed = r
        .stdout
        .split("solo: generation ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<u64>().ok());
    settled(c);
    let now = complete(c)?;
    match (claimed, lock(c)) {
        (_, Some(l)) => Err(format!(
            "the client exited 0 but the host is locked: {}",
            l.describe()
        )),
        (Some(g), None) if g != now => Err(format!(
            "the client said generation {g} was applied and confirmed; the host is on {now}"
        )),
        _ => Ok(()),
    }
}

#[test]
fn lab_interrupted_apply_at_fixed_points() {
    if !lab_enabled("lab_interrupted_apply_at_fixed_points") {
        return;
    }
    let mut c = LabConfig::from_text("infra-cut", &config(1));
    c.up(EXTRA);
    assert_ok(&c.infra(&["apply"]));
    assert_eq!(complete(&c), Ok(1));
    let cases: &[(&str, Cut)] = &[
        ("switch", Cut::Kill),
        ("payload", Cut::Kill),
        ("switched", Cut::Kill),
        ("confirm", Cut::Kill),
        ("payload", Cut::PowerOff),
        ("switched", Cut::PowerOff),
    ];
    for (version, (point, how)) in (2..).zip(cases) {
        eprintln!("--- cut at {point}: {how:?}");
        let before = complete(&c).expect("complete before the cut");
        c.write(&config(version));
        let mut a = Apply::spawn(&c, Some(point));
        a.wait_paused(point);
        if *point == "payload" && matches!(how, Cut::PowerOff) {
            // "While unpacking": the client has sent half the payload; the
            // host's switch may not have taken the lock yet (a cold machine is
            // slow to start it). It will, and then waits for the rest.
            let end = Instant::now() + Duration::from_secs(30);
            while lock(&c).is_none() {
                assert!(
                    Instant::now() < end,
                    "the switch did not take the lock of {HOST} within 30 s"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let r = cut(&c, a, *how);
        assert_ne!(r.code, 0, "a cut client never reports success: {r:?}");
        settled(&c);
        let on = complete(&c).unwrap_or_else(|e| panic!("after the cut at {point}: {e}"));
        let (next, secs) = converge(&c);
        eprintln!("converged {secs:.1} s after the cut at {point} ({how:?})");
        assert_eq!(next.code, 0, "the next apply converges at once: {next:?}");
        let all = next.all();
        let expect: &[&str] = match (point, how) {
            // Nothing had changed on the host: an ordinary apply.
            (&"switch", _) | (&"payload", Cut::Kill) => {
                assert_eq!(on, before, "nothing switched");
                &["applied and confirmed"]
            }
            // The switch was done and is what the configuration builds: the
            // next apply confirms it (health checked) and has nothing to do.
            (&"switched", Cut::Kill) => {
                assert_eq!(on, before + 1, "switched, awaiting confirmation");
                &[
                    "was left awaiting confirmation",
                    "confirmed",
                    "no changes: nothing to apply",
                ]
            }
            // The confirmation had been sent: the host finished it by itself.
            (&"confirm", _) => {
                assert_eq!(on, before + 1);
                &["no changes: nothing to apply"]
            }
            // Powered off while unpacking: nothing had changed.
            (&"payload", Cut::PowerOff) => {
                assert_eq!(on, before, "the boot left the host on its generation");
                &["was interrupted", "applied and confirmed"]
            }
            // Powered off awaiting confirmation: undone at boot, applied again.
            (&"switched", Cut::PowerOff) => {
                assert_eq!(on, before, "the boot rolled the switch back");
                &[
                    "interrupted by a reboot",
                    "rolled back",
                    "applied and confirmed",
                ]
            }
            _ => &[],
        };
        for e in expect {
            assert!(
                all.contains(e),
                "{e:?} not in the next apply's output: {next:?}"
            );
        }
        // The timer of a confirmed switch never fires later.
        let g = complete(&c).expect("complete after convergence");
        assert_ne!(
            c.out(
                HOST,
                &format!("systemctl is-active infra-rollback-{g}.timer")
            ),
            "active"
        );
    }
}

/// One round's result.
struct Round {
    how: Cut,
    delay: f64,
    mixed: Option<String>,
    false_success: Option<String>,
    converge_secs: f64,
}

#[test]
fn lab_fault_injection_random_cuts() {
    if !lab_enabled("lab_fault_injection_random_cuts") {
        return;
    }
    let rounds: usize = std::env::var("INFRA_FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let mut c = LabConfig::from_text("infra-faults", &config(1));
    c.up(EXTRA);
    let t = Instant::now();
    assert_ok(&c.infra(&["apply"]));
    // The window the cuts fall into: a whole apply of 200 changed files.
    c.write(&config(2));
    let t2 = Instant::now();
    assert_ok(&c.infra(&["apply"]));
    let window = t2.elapsed().as_secs_f64();
    eprintln!(
        "first apply {:.1} s, 200-file apply {window:.1} s",
        (t2 - t).as_secs_f64()
    );
    // A small deterministic generator (xorshift), seeded for reproducibility.
    let mut seed: u64 = std::env::var("INFRA_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_ef01);
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let kinds = [Cut::Kill, Cut::Drop, Cut::PowerOff];
    let mut results = Vec::new();
    for i in 0..rounds {
        let how = kinds[i % kinds.len()];
        let delay = rnd() * window * 1.1;
        c.write(&config(3 + i as u32));
        let a = Apply::spawn(&c, None);
        std::thread::sleep(Duration::from_secs_f64(delay));
        let r = cut(&c, a, how);
        let cut_at = Instant::now();
        let false_success = no_false_success(&c, &r).err();
        settled(&c);
        let mixed = complete(&c).err();
        let (_, secs) = converge(&c);
        let converge_secs = cut_at.elapsed().as_secs_f64().max(secs);
        eprintln!(
            "round {i}: {how:?} after {delay:.2} s: client exit {}, mixed {:?}, false success {:?}, converged in {converge_secs:.1} s",
            r.code, mixed, false_success
        );
        results.push(Round {
            how,
            delay,
            mixed,
            false_success,
            converge_secs,
        });
    }
    let mut report =
        format!("fault injection: {rounds} cuts over a {window:.1} s apply of 200 files\n");
    for k in kinds {
        let of: Vec<&Round> = results.iter().filter(|r| r.how == k).collect();
        if of.is_empty() {
            continue;
        }
        let max = of.iter().map(|r| r.converge_secs).fold(0.0, f64::max);
        report.push_str(&format!(
            "  {k:?}: {} cuts, {} mixed generations, {} false successes, convergence at most {max:.1} s\n",
            of.len(),
            of.iter().filter(|r| r.mixed.is_some()).count(),
            of.iter().filter(|r| r.false_success.is_some()).count(),
        ));
    }
    eprintln!("{report}");
    for r in &results {
        assert!(
            r.mixed.is_none(),
            "{:?} at {:.2} s: {:?}",
            r.how,
            r.delay,
            r.mixed
        );
        assert!(
            r.false_success.is_none(),
            "{:?} at {:.2} s: {:?}",
            r.how,
            r.delay,
            r.false_success
        );
    }
}
