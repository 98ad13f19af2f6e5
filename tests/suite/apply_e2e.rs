//! Apply end to end. Two halves:
//! - `local_*`: the switch, undo, confirm and generations scripts run by the local
//!   POSIX sh on a host tree under a temp dir (no systemd, no SSH): every file
//!   operation, the lock, the fingerprint check, failures and their undo. Always run.
//! - `lab_*`: `infra` itself against real lab hosts (systemd-nspawn Debian 12,
//!   `infra lab up`), over SSH. Only with INFRA_LAB_TESTS=1.

use infra::apply::{self, script::HealthCheck, ApplyError, Prepared, Remote, Undo};
use infra::plan::Action;
use infra::probe::Manifest;
use infra::render::{DirOut, FileOut, HostBuild, StepOut};
use infra::secrets::Secrets;
use infra::transport::{Output, TransportError};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

// ---------------------------------------------------------------------------
// Local: the scripts under the local sh.

/// Runs scripts with the local sh as the host would (`sh -s` with the script on
/// stdin, or `sh -c SCRIPT` with stdin data). Counts round trips like a Session.
struct LocalSh {
    trips: usize,
}

impl Remote for LocalSh {
    fn host(&self) -> &str {
        "local"
    }
    fn run(&mut self, script: &str, stdin: &[u8]) -> Result<Output, TransportError> {
        self.trips += 1;
        let (args, input): (Vec<&str>, &[u8]) = if stdin.is_empty() {
            (vec!["-s"], script.as_bytes())
        } else {
            (vec!["-c", script], stdin)
        };
        let mut child = Command::new("sh")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TransportError::Channel {
                host: "local".into(),
                detail: e.to_string(),
            })?;
        let mut sin = child.stdin.take();
        let data = input.to_vec();
        let writer = std::thread::spawn(move || {
            if let Some(s) = sin.as_mut() {
                let _ = s.write_all(&data);
            }
        });
        let out = child
            .wait_with_output()
            .map_err(|e| TransportError::Channel {
                host: "local".into(),
                detail: e.to_string(),
            })?;
        let _ = writer.join();
        Ok(Output {
            stdout: out.stdout,
            stderr: out.stderr,
            status: out.status.code().unwrap_or(-1),
            signal: None,
        })
    }
    fn round_trips(&self) -> usize {
        self.trips
    }
}

fn whoami(flag: &str) -> String {
    Command::new("id")
        .arg(flag)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "root".into())
}

fn sha(b: &[u8]) -> String {
    apply::sha256_hex(b)
}

/// A host tree under a temp dir and the builds applied to it.
struct Local {
    dir: tempfile::TempDir,
    sh: LocalSh,
    secrets: Secrets,
    user: String,
    group: String,
}

impl Local {
    fn new() -> Local {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("etc")).expect("etc");
        let mut secrets = Secrets::new();
        secrets.insert("db", "hunter2".into());
        Local {
            dir,
            sh: LocalSh { trips: 0 },
            secrets,
            user: whoami("-un"),
            group: whoami("-gn"),
        }
    }
    fn root(&self) -> String {
        self.dir.path().display().to_string()
    }
    fn p(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root())
    }
    fn state(&self) -> String {
        self.p("state")
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.p(rel)).unwrap_or_else(|_| "<absent>".into())
    }
    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.p(rel), text).expect("write");
    }
    fn mode(&self, rel: &str) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(self.p(rel))
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0)
    }
    fn current(&self) -> String {
        std::fs::read_link(self.p("state/generations/current"))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "<none>".into())
    }
    fn locked(&self) -> bool {
        std::path::Path::new(&self.p("state/lock")).exists()
    }

    fn file(&self, content: &str, mode: &str) -> FileOut {
        FileOut {
            mode: mode.into(),
            owner: self.user.clone(),
            group: self.group.clone(),
            content: content.into(),
            secret: infra::render::has_secret(content),
            sha256: sha(content.as_bytes()),
            origin: "service.app".into(),
        }
    }

    /// The build: app.conf (`app`), a secret file, taken.conf (a file that existed
    /// before infra), a directory and a guarded step.
    fn build(&self, app: &str, taken: bool, extra_steps: &[(&str, &str)]) -> HostBuild {
        let mut files = BTreeMap::new();
        files.insert(self.p("etc/app.conf"), self.file(app, "0644"));
        files.insert(
            self.p("etc/db.pass"),
            self.file(
                &format!("{}\n", infra::render::secret_placeholder("db")),
                "0600",
            ),
        );
        if taken {
            files.insert(
                self.p("etc/taken.conf"),
                self.file("taken by infra\n", "0640"),
            );
        }
        let mut steps = vec![StepOut {
            name: "mark".into(),
            run: format!("echo ran >> {}", self.p("steps.log")),
            unless: Some(format!("grep -q ran {}", self.p("steps.log"))),
            origin: "service.app".into(),
        }];
        for (name, run) in extra_steps {
            steps.push(StepOut {
                name: name.to_string(),
                run: run.to_string(),
                unless: None,
                origin: "service.app".into(),
            });
        }
        HostBuild {
            host: "local".into(),
            address: "127.0.0.1".into(),
            directories: vec![DirOut {
                path: self.p("srv/data"),
                mode: "0750".into(),
                owner: self.user.clone(),
                group: self.group.clone(),
            }],
            files,
            steps,
            ..HostBuild::default()
        }
    }

    fn prepare(&mut self, build: &HostBuild) -> (Prepared, apply::Materialized) {
        let m = apply::materialize(build, &self.secrets).expect("secrets");
        let state = self.state();
        let observed = apply::probe(&mut self.sh, build, &state).expect("probe");
        let mut p = apply::prepare(build, &observed, apply::secret_sha256(build, &m));
        assert!(!p.systemd, "the local tests expect no systemd");
        p.systemd = false;
        (p, m)
    }

    fn switch(
        &mut self,
        build: &HostBuild,
        p: &Prepared,
        m: &apply::Materialized,
    ) -> Result<(), ApplyError> {
        let manifest = apply::new_manifest(build, p.generation, &m.installed);
        let state = self.state();
        let job = apply::SwitchJob {
            build,
            prepared: p,
            files: Some(m),
            target_manifest: &manifest,
            target: p.generation,
            state_dir: &state,
            holder: "test",
            token: "tok",
            deadline: 60,
        };
        let before = self.sh.trips;
        let r = apply::switch(&mut self.sh, &job).map(|_| ());
        assert_eq!(self.sh.trips, before + 1, "a switch is one round trip");
        r
    }

    fn confirm(&mut self, p: &Prepared, checks: &[HealthCheck]) -> Result<(), ApplyError> {
        let state = self.state();
        apply::confirm(
            &mut self.sh,
            &state,
            "tok",
            p.generation,
            p.previous,
            checks,
            2,
        )
    }

    /// Probe, plan, switch, confirm.
    fn apply(&mut self, build: &HostBuild) -> Result<Prepared, ApplyError> {
        let (p, m) = self.prepare(build);
        self.switch(build, &p, &m)?;
        self.confirm(&p, &[])?;
        Ok(p)
    }
}

fn kinds(p: &Prepared) -> Vec<String> {
    p.plan
        .actions
        .iter()
        .map(|a| match a {
            Action::CreateFile { path, .. } => format!("create {}", short(path)),
            Action::UpdateFile { path, drift, .. } => {
                format!(
                    "update {}{}",
                    short(path),
                    if drift.is_some() { " (drift)" } else { "" }
                )
            }
            Action::DeleteFile { path, .. } => format!("delete {}", short(path)),
            Action::CreateDirectory { path, .. } => format!("mkdir {}", short(path)),
            Action::RunStep { name, .. } => format!("step {name}"),
            other => format!("{other:?}"),
        })
        .collect()
}

fn short(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

#[test]
fn local_apply_generations_drift_prune_and_failures() {
    let mut l = Local::new();
    l.write("etc/taken.conf", "original\n");
    let b1 = l.build("v1\n", true, &[]);

    // First apply: generation 1, the original of taken.conf kept.
    let p = l.apply(&b1).expect("first apply");
    assert_eq!(p.generation, 1);
    assert_eq!(
        kinds(&p),
        [
            "mkdir data",
            "create app.conf",
            "create db.pass",
            "update taken.conf",
            "step mark"
        ]
    );
    assert_eq!(l.read("etc/app.conf"), "v1\n");
    assert_eq!(l.read("etc/db.pass"), "hunter2\n");
    assert_eq!(l.mode("etc/db.pass"), 0o600);
    assert_eq!(l.mode("etc/taken.conf"), 0o640);
    assert_eq!(l.mode("srv/data"), 0o750);
    assert_eq!(l.read("state/backup"), "<absent>"); // a directory
    assert_eq!(
        l.read(&format!("state/backup{}", l.p("etc/taken.conf"))),
        "original\n"
    );
    assert_eq!(l.read("steps.log"), "ran\n");
    assert_eq!(l.current(), "1");
    assert!(!l.locked(), "the confirmation releases the lock");
    assert_eq!(l.mode("state"), 0o700);
    assert_eq!(
        l.mode(&format!("state/generations/1/files{}", l.p("etc/db.pass"))),
        0o600
    );
    assert_eq!(
        l.read(&format!("state/generations/1/files{}", l.p("etc/db.pass"))),
        "hunter2\n"
    );
    let man: Manifest =
        serde_json::from_str(&l.read("state/generations/1/manifest.json")).expect("manifest");
    assert!(!serde_json::to_string(&man)
        .unwrap_or_default()
        .contains("hunter2"));
    assert_eq!(
        man.files[&l.p("etc/db.pass")].installed_sha256,
        sha(b"hunter2\n")
    );

    // Nothing to do the second time.
    let (p, _) = l.prepare(&b1);
    assert!(!p.plan.has_changes(), "{:?}", p.plan.actions);

    // A hand edit is drift, reverted by the next generation.
    l.write("etc/app.conf", "edited\n");
    let p = l.apply(&b1).expect("revert drift");
    // (the guarded step comes along: a file of its instance changed)
    assert_eq!(kinds(&p), ["update app.conf (drift)", "step mark"]);
    assert_eq!(l.read("etc/app.conf"), "v1\n");
    assert_eq!(l.current(), "2");

    // A changed secret value is a change (without ever showing it).
    l.secrets.insert("db", "hunter3".into());
    let p = l.apply(&b1).expect("secret change");
    assert_eq!(kinds(&p), ["update db.pass", "step mark"]);
    assert_eq!(l.read("etc/db.pass"), "hunter3\n");
    assert_eq!(l.current(), "3");

    // Letting go of taken.conf gives the original back.
    let b2 = l.build("v2\n", false, &[]);
    let p = l.apply(&b2).expect("prune");
    assert_eq!(
        kinds(&p),
        ["update app.conf", "delete taken.conf", "step mark"]
    );
    assert_eq!(l.read("etc/taken.conf"), "original\n");
    assert_eq!(l.read("etc/app.conf"), "v2\n");
    assert_eq!(l.current(), "4");

    // A failing step after the switch: undone, the host stays on generation 4.
    let b3 = l.build("v3\n", true, &[("boom", "echo it broke >&2; exit 3")]);
    let (p, m) = l.prepare(&b3);
    match l.switch(&b3, &p, &m) {
        Err(ApplyError::Step {
            step,
            status,
            output,
            undo,
            ..
        }) => {
            assert_eq!(step, "run step boom");
            assert_eq!(status, 3);
            assert!(output.contains("it broke"), "{output}");
            assert_eq!(undo, Undo::RolledBack { to: Some(4) });
        }
        other => panic!("expected a failed step, got {other:?}"),
    }
    assert_eq!(l.read("etc/app.conf"), "v2\n");
    assert_eq!(l.read("etc/taken.conf"), "original\n");
    assert_eq!(l.current(), "4");
    assert!(!std::path::Path::new(&l.p("state/generations/5")).exists());
    assert!(!l.locked());

    // A held lock refuses, naming the holder; nothing changes.
    std::fs::create_dir(l.p("state/lock")).expect("lock");
    l.write("state/lock/holder", "ops@laptop pid 42\n");
    let b4 = l.build("v4\n", false, &[]);
    let (p, m) = l.prepare(&b4);
    assert_eq!(p.lock.as_deref(), Some("ops@laptop pid 42"));
    match l.switch(&b4, &p, &m) {
        Err(e @ ApplyError::Locked { .. }) => {
            assert!(e.to_string().contains("ops@laptop pid 42"), "{e}");
            assert_eq!(e.code(), "E0720");
        }
        other => panic!("expected the lock to refuse, got {other:?}"),
    }
    assert_eq!(l.read("etc/app.conf"), "v2\n");
    std::fs::remove_dir_all(l.p("state/lock")).expect("unlock");

    // The host changed between plan and switch: refused.
    let (p, m) = l.prepare(&b4);
    l.write("etc/app.conf", "someone else\n");
    match l.switch(&b4, &p, &m) {
        Err(e @ ApplyError::Changed { .. }) => {
            assert!(
                e.to_string().starts_with("local changed since the plan"),
                "{e}"
            )
        }
        other => panic!("expected a changed host to refuse, got {other:?}"),
    }
    assert_eq!(l.read("etc/app.conf"), "someone else\n");
    assert!(!l.locked());
    assert_eq!(l.current(), "4");
}

#[test]
fn local_rollback_and_failed_health_check() {
    let mut l = Local::new();
    l.write("etc/taken.conf", "original\n");
    l.apply(&l.build("v1\n", true, &[])).expect("gen 1");
    l.apply(&l.build("v2\n", false, &[])).expect("gen 2");
    assert_eq!(l.read("etc/taken.conf"), "original\n");

    // Generations.
    let state = l.state();
    let g = apply::generations(&mut l.sh, &state, true).expect("generations");
    assert_eq!(g.current, Some(2));
    assert_eq!(
        g.list
            .iter()
            .map(|x| (x.number, x.files, x.current))
            .collect::<Vec<_>>(),
        [(1, 3, false), (2, 2, true)]
    );
    assert_eq!(g.list[1].previous, Some(1));
    assert_eq!(g.default_target(), Some(1));

    // Roll back to 1: its files, the taken-over file included.
    let m1 = g.list[0].manifest.clone().expect("manifest 1");
    let (rb, hashes) = apply::rollback_build("local", "127.0.0.1", &m1);
    let observed = apply::probe(&mut l.sh, &rb, &state).expect("probe");
    let mut p = apply::prepare(&rb, &observed, hashes);
    p.systemd = false;
    p.generation = 1;
    apply::relabel_rollback_plan(&mut p.plan, &m1, 1);
    assert_eq!(kinds(&p), ["update app.conf", "update taken.conf"]);
    let job = apply::SwitchJob {
        build: &rb,
        prepared: &p,
        files: None,
        target_manifest: &m1,
        target: 1,
        state_dir: &state,
        holder: "test rollback",
        token: "tok",
        deadline: 60,
    };
    apply::switch(&mut l.sh, &job).expect("rollback switch");
    l.confirm(&p, &[]).expect("confirm");
    assert_eq!(l.read("etc/app.conf"), "v1\n");
    assert_eq!(l.read("etc/taken.conf"), "taken by infra\n");
    assert_eq!(l.current(), "1");
    assert!(
        std::path::Path::new(&l.p("state/generations/2")).exists(),
        "generation 2 is kept"
    );

    // A new generation whose health check fails is undone by the confirmation.
    let check = l.p("check.sh");
    l.write("check.sh", "#!/bin/sh\necho unhealthy\nexit 7\n");
    Command::new("chmod")
        .args(["0755", &check])
        .status()
        .expect("chmod");
    let b = l.build("v3\n", false, &[]);
    let (p, m) = l.prepare(&b);
    assert_eq!(p.generation, 3);
    l.switch(&b, &p, &m).expect("switch");
    assert_eq!(l.read("etc/app.conf"), "v3\n");
    assert!(l.locked(), "held until confirmed");
    let checks = [HealthCheck {
        group: "office".into(),
        script: check,
    }];
    match l.confirm(&p, &checks) {
        Err(e @ ApplyError::Health { .. }) => {
            if let ApplyError::Health {
                group,
                status,
                output,
                undo,
                ..
            } = &e
            {
                assert_eq!(group, "office");
                assert_eq!(*status, 7);
                assert!(output.contains("unhealthy"));
                assert_eq!(*undo, Undo::RolledBack { to: Some(1) });
            }
            assert_eq!(e.code(), "E0724");
        }
        other => panic!("expected a failed health check, got {other:?}"),
    }
    assert_eq!(l.read("etc/app.conf"), "v1\n");
    assert_eq!(l.read("etc/taken.conf"), "taken by infra\n");
    assert_eq!(l.current(), "1");
    assert!(!std::path::Path::new(&l.p("state/generations/3")).exists());
    assert!(!l.locked());

    // A second confirmation of an undone switch says so.
    match l.confirm(&p, &[]) {
        Err(ApplyError::Undone { current, .. }) => assert_eq!(current, "1"),
        other => panic!("expected Undone, got {other:?}"),
    }
}

#[test]
fn local_keeps_five_generations() {
    let mut l = Local::new();
    for i in 1..=8 {
        l.apply(&l.build(&format!("v{i}\n"), false, &[]))
            .expect("apply");
    }
    let state = l.state();
    let g = apply::generations(&mut l.sh, &state, false).expect("generations");
    assert_eq!(
        g.list.iter().map(|x| x.number).collect::<Vec<_>>(),
        [4, 5, 6, 7, 8]
    );
    assert_eq!(g.current, Some(8));
}

#[test]
fn local_scripts_pass_shellcheck() {
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var("CI").is_ok() {
            panic!("shellcheck is not installed (apt-get install shellcheck)");
        }
        eprintln!("skipping local_scripts_pass_shellcheck: shellcheck not installed");
        return;
    }
    let mut l = Local::new();
    let b = l.build("v1\n", true, &[("once", "true")]);
    let (p, m) = l.prepare(&b);
    let manifest = apply::new_manifest(&b, p.generation, &m.installed);
    let state = l.state();
    let probe = infra::probe::probe_script(&b, &state);
    let mut p2 = p.clone();
    p2.systemd = true;
    let spec = apply::script::SwitchSpec {
        host: "local",
        state_dir: &state,
        token: "tok",
        holder: "test",
        fingerprint: &p.fingerprint,
        probe_script: &probe,
        target: p.generation,
        new: true,
        previous: Some(1),
        previous_manifest: Some(&manifest),
        target_manifest: &manifest,
        plan: &p2.plan,
        build: &b,
        deadline: 60,
        systemd: true,
    };
    let scripts = [
        ("switch", apply::script::switch_script(&spec)),
        ("undo", apply::script::undo_script(&spec)),
        (
            "confirm",
            apply::script::confirm_script(
                &state,
                "tok",
                2,
                &[HealthCheck {
                    group: "office".into(),
                    script: "/etc/keepalived/infra-check-office.sh".into(),
                }],
                30,
            ),
        ),
        (
            "generations",
            apply::script::generations_script(&state, true),
        ),
        ("loader", apply::script::LOADER.to_string()),
    ];
    for (name, text) in scripts {
        let path = l.dir.path().join(format!("{name}.sh"));
        let body = text.strip_prefix("#!/bin/sh\n").unwrap_or(&text);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write");
        let out = Command::new("shellcheck")
            .args(["-s", "sh", "-S", "warning"])
            .arg(&path)
            .output()
            .expect("shellcheck");
        assert!(
            out.status.success(),
            "{name} script: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
