//! `infra init DIR`: the skeleton checks clean and is formatted as written; a
//! directory that is not empty is refused (nothing written) unless --force.
//!
//! `infra init --from HOST`: tests/init/cases/NAME/discovered.txt (what the
//! discovery script printed on a machine) → main.infra and REVIEW.md beside it
//! (`INFRA_BLESS=1 cargo test --test suite init` rewrites them: review the
//! diff); the lab test prepares an "old server" (tests/init/oldbox.sh), reads it
//! with `infra init --from`, and applies what it wrote to a fresh pair.

use std::fs;
use std::process::Command;

fn init(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_infra"))
        .arg("init")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn init_writes_a_configuration_that_checks_and_is_formatted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("office");
    let out = init(&[dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let main = dir.join("main.infra");
    let text = fs::read_to_string(&main).unwrap();
    let (sources, diags) = infra::check_path(&dir);
    assert!(
        !infra::diag::has_errors(&diags),
        "{}",
        infra::diag::render(&diags, &sources, false, 100)
    );
    let formatted = infra::fmt::format_source(infra::source::FileId(0), &text).unwrap();
    assert_eq!(formatted, text, "the skeleton is written formatted");
    assert_eq!(
        fs::read_to_string(dir.join(".gitignore")).unwrap(),
        "secrets.env\n/build/\n"
    );
    // again: refused, nothing changed
    fs::write(&main, "# mine\n").unwrap();
    let out = init(&[dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&main).unwrap(), "# mine\n");
    // --force writes main.infra, keeps the .gitignore one has
    fs::write(dir.join(".gitignore"), "mine\n").unwrap();
    let out = init(&[dir.to_str().unwrap(), "--force"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(fs::read_to_string(&main).unwrap(), text);
    assert_eq!(
        fs::read_to_string(dir.join(".gitignore")).unwrap(),
        "mine\n"
    );
}

/// The cases of tests/init/cases/, sorted.
fn cases() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/init/cases");
    let mut v: Vec<_> = fs::read_dir(&root)
        .expect("tests/init/cases")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn options() -> infra::init::Options {
    infra::init::Options {
        from: "root@192.0.2.21".into(),
        standby: None,
        when: "at a fixed time (a test)".into(),
    }
}

/// `want` against `got`, as a unified diff (empty when equal).
fn diff(label: &str, want: &str, got: &str) -> String {
    if want == got {
        return String::new();
    }
    similar::TextDiff::from_lines(want, got)
        .unified_diff()
        .context_radius(3)
        .header(&format!("expected {label}"), &format!("written {label}"))
        .to_string()
}

#[test]
fn init_from_translates_each_discovered_machine_as_expected() {
    let bless = std::env::var("INFRA_BLESS").as_deref() == Ok("1");
    let mut report = String::new();
    let cases = cases();
    assert!(
        cases.len() >= 2,
        "tests/init/cases has the lab's old server and the kitchen sink"
    );
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(case.join("discovered.txt")).expect("discovered.txt");
        let found = infra::init::discover::parse(&text);
        assert!(found.complete, "{name}: discovered.txt has no end section");
        let s = match infra::init::starter_checked(&found, &options()) {
            Ok(s) => s,
            Err(d) => panic!(
                "{name}: {}",
                infra::diag::render(&d, &infra::source::SourceMap::new(), false, 100)
            ),
        };
        // formatted as written, and every job came from a line the comment quotes
        let f = infra::fmt::format_source(infra::source::FileId(0), &s.main).unwrap();
        assert_eq!(f, s.main, "{name}: main.infra is written formatted");
        for (source, line, job, _) in &s.jobs {
            let from = if *line == 0 {
                format!("From `{source}`")
            } else {
                format!("From `{source}` line {line}")
            };
            assert!(
                s.main.contains(&from) && s.main.contains(&format!("job {job} {{")),
                "{name}: {job}"
            );
        }
        for (file, got) in [("main.infra", &s.main), ("REVIEW.md", &s.review)] {
            let path = case.join(file);
            if bless {
                fs::write(&path, got).unwrap();
                continue;
            }
            let want = fs::read_to_string(&path).unwrap_or_default();
            report.push_str(&diff(&format!("{name}/{file}"), &want, got));
        }
    }
    // the lab's translation is also an example (built into golden/, validated)
    let lab = fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/init/cases/lab/main.infra"),
    )
    .unwrap();
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/migrated/main.infra");
    if bless {
        fs::create_dir_all(example.parent().unwrap()).unwrap();
        fs::write(&example, &lab).unwrap();
    } else {
        report.push_str(&diff(
            "examples/migrated/main.infra",
            &fs::read_to_string(&example).unwrap_or_default(),
            &lab,
        ));
    }
    assert!(
        report.is_empty(),
        "init --from wrote something else (review, then `INFRA_BLESS=1 cargo test --test suite init`):\n{report}"
    );
}

#[test]
fn the_discovery_script_passes_shellcheck_and_changes_nothing_here() {
    let out = Command::new("shellcheck")
        .args(["-s", "sh", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(infra::init::discover::SCRIPT.as_bytes())?;
            c.wait_with_output()
        })
        .expect("shellcheck runs (apt-get install shellcheck)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // on this machine, as it is: a complete answer, the OS read
    let out = Command::new("sh")
        .arg("-c")
        .arg(infra::init::discover::SCRIPT)
        .output()
        .unwrap();
    let d = infra::init::discover::parse(&String::from_utf8_lossy(&out.stdout));
    assert!(d.complete, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!d.os.is_empty() && !d.packages.is_empty());
}

#[test]
fn init_from_refuses_a_busy_directory_and_a_bad_from_before_connecting() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    let d = dir.to_str().unwrap();
    // nothing listens on 192.0.2.1 from here either: the busy directory is said first
    let out = init(&[d, "--from", "root@192.0.2.1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("E0763") && err.contains("not empty") && !err.contains("reading"),
        "{err}"
    );
    let empty = tmp.path().join("y");
    let out = init(&[empty.to_str().unwrap(), "--from", "root@oldbox:ssh"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("E0763") && err.contains("not a port"), "{err}");
    assert!(!empty.exists(), "nothing written");
    // an unreachable host: the transport's error, naming it; nothing written
    let out = init(&[empty.to_str().unwrap(), "--from", "root@127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("127.0.0.1") && err.contains("refused"),
        "{err}"
    );
    assert!(!empty.exists(), "nothing written");
}

/// Nothing on the old server changed but its journal and login records.
const CHANGED_SINCE_MARK: &str = "find / -xdev -newer /run/init-mark \\( -type f -o -type d \\) \
    ! -path /run ! -path '/var/log/journal/*' ! -path /var/log/journal ! -name wtmp ! -name btmp ! -name lastlog 2>/dev/null";

#[test]
fn lab_init_from_an_old_server_gives_a_pair_running_its_cron_jobs_where_they_belong() {
    use crate::apply_e2e::{lab_enabled, LabConfig};
    if !lab_enabled(
        "lab_init_from_an_old_server_gives_a_pair_running_its_cron_jobs_where_they_belong",
    ) {
        return;
    }
    // the old server: one machine as the office has it
    let mut old = LabConfig::from_text("oldbox", "host oldbox {\n  address = \"192.0.2.21\"\n}\n");
    old.up(&[]);
    let (code, out) = old.sh("oldbox", include_str!("../init/oldbox.sh"));
    assert_eq!(code, 0, "preparing the old server: {out}");
    let (code, out) = old.sh("oldbox", "touch /run/init-mark && sleep 1.1");
    assert_eq!(code, 0, "{out}");

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrated");
    let out = init(&[
        dir.to_str().unwrap(),
        "--from",
        "root@192.0.2.21",
        "--lab",
        "oldbox",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("job queue") && err.contains("REVIEW.md"),
        "{err}"
    );
    // read-only: nothing on the old server changed
    let changed = old.out("oldbox", CHANGED_SINCE_MARK);
    assert_eq!(changed, "", "init --from changed files on the old server");

    // what it wrote: the blessed translation (tests/init/cases/lab, examples/migrated)
    let main = fs::read_to_string(dir.join("main.infra")).unwrap();
    let want = fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/migrated/main.infra"),
    )
    .unwrap();
    assert!(
        main == want,
        "init --from on the lab's old server wrote something else than examples/migrated/main.infra \
         (if the old server or the translation changed on purpose: capture tests/init/cases/lab/discovered.txt \
         again and bless):\n{}",
        diff("examples/migrated/main.infra", &want, &main)
    );
    let review = fs::read_to_string(dir.join("REVIEW.md")).unwrap();
    for said in [
        "@reboot /usr/local/bin/warm-cache",
        "## Not translated",
        "192.0.2.22: a guess",
        "remove lines 3, 4 of `/var/spool/cron/crontabs/www-data`",
        "office@shop.example.com",
    ] {
        assert!(
            review.contains(said),
            "REVIEW.md does not say {said:?}:\n{review}"
        );
    }
    let (sources, diags) = infra::check_path(&dir);
    assert!(
        !infra::diag::has_errors(&diags),
        "{}",
        infra::diag::render(&diags, &sources, false, 100)
    );
    drop(old);

    // applied to a fresh pair: the jobs are timers on exactly the intended hosts
    let mut pair = LabConfig::new("migrated", "migrated");
    pair.up(&[]);
    let r = pair.infra(&["apply"]);
    assert_eq!(r.code, 0, "apply of what init --from wrote:\n{r:?}");
    let timers = |host: &str| {
        pair.out(
            host,
            "for t in pg_dump find queue report; do printf '%s=%s ' $t $(systemctl is-active infra-job-$t.timer); done",
        )
    };
    assert_eq!(
        timers("oldbox"),
        "pg_dump=active find=active queue=active report=active"
    );
    assert_eq!(
        timers("standby"),
        "pg_dump=inactive find=active queue=inactive report=inactive"
    );
    let (code, out) = pair.sh(
        "oldbox",
        "systemctl show -P TimersCalendar infra-job-queue.timer",
    );
    assert!(code == 0 && out.contains("*-*-* *:00/5:00"), "{out}");
    // the housekeeping job runs where it is, as it did under cron
    let (code, out) = pair.sh(
        "standby",
        "touch -d '10 days ago' /tmp/sess_old && systemctl start infra-job-find.service && test ! -e /tmp/sess_old",
    );
    assert_eq!(code, 0, "the find job on standby: {out}");
    // the active-only jobs follow the VIP
    infra::lab::kill("migrated", "oldbox").expect("lab kill oldbox");
    assert!(
        pair.wait(
            "standby",
            "systemctl is-active --quiet infra-job-queue.timer",
            30
        ),
        "30 s after oldbox died, standby's queue timer is not active: {}",
        timers("standby")
    );
    assert_eq!(
        timers("standby"),
        "pg_dump=active find=active queue=active report=active"
    );
}

#[test]
fn init_from_over_real_ssh_pins_host_keys_like_plan_and_reads_this_machine() {
    if !crate::ssh::enabled(
        "init_from_over_real_ssh_pins_host_keys_like_plan_and_reads_this_machine",
    ) {
        return;
    }
    let sshd = crate::ssh::Sshd::start();
    let home = tempfile::tempdir().unwrap();
    fs::create_dir_all(home.path().join(".ssh")).unwrap();
    let dir = home.path().join("here");
    let from = format!("root@127.0.0.1:{}", sshd.port);
    let key = sshd.path("client_key");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_infra"))
            .args([
                "init",
                dir.to_str().unwrap(),
                "--from",
                &from,
                "--key",
                key.to_str().unwrap(),
            ])
            .args(extra)
            .env("HOME", home.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    // an unknown host key: refused with the command that pins it, nothing written
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("E0704") && err.contains("ssh-keyscan"),
        "{err}"
    );
    assert!(!dir.exists(), "nothing written");
    // recorded on request, then this machine (Debian 12, whatever it runs) is read
    let out = run(&["--accept-new-host-keys"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let kh = fs::read_to_string(home.path().join(".ssh/known_hosts")).unwrap();
    assert!(kh.contains(&format!("[127.0.0.1]:{}", sshd.port)), "{kh}");
    let (sources, diags) = infra::check_path(&dir);
    assert!(
        !infra::diag::has_errors(&diags),
        "{}",
        infra::diag::render(&diags, &sources, false, 100)
    );
    let review = fs::read_to_string(dir.join("REVIEW.md")).unwrap();
    assert!(review.contains("Nothing was changed there"), "{review}");
}
