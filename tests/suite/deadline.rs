//! Every wait in the lab tests ends by a deadline with a message saying what it
//! waited for: a command run with `output_within` is killed (its whole process
//! group) when it overruns and the test fails naming it, with what it printed so
//! far; and a lab test that runs longer than `TEST_LIMIT` in all ends the test run
//! with a message naming it, so CI reports the test instead of timing out silently.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The longest any one lab test may run (the longest takes about 5 minutes on the
/// CI machine).
const TEST_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Run `cmd` (stdin empty, output captured) and return its output; kill it and fail
/// the test if it has not exited within `secs`.
pub(crate) fn output_within(cmd: &mut Command, secs: u64, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        reader(child.stdout.take().expect("piped stdout"), out.clone()),
        reader(child.stderr.take().expect("piped stderr"), err.clone()),
    ];
    let end = Instant::now() + Duration::from_secs(secs);
    let mut nap = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => panic!("waiting for {what}: {e}"),
        }
        if Instant::now() >= end {
            // the whole group: nsenter forks into the host's namespaces
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            let text = |b: &Arc<Mutex<Vec<u8>>>| {
                String::from_utf8_lossy(&b.lock().expect("output buffer")).into_owned()
            };
            panic!(
                "{what} did not finish within {secs} s and was killed\n--- stdout so far\n{}\n--- stderr so far\n{}",
                text(&out),
                text(&err)
            );
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(50));
    };
    // a background process the command left may hold its pipes: what it printed by
    // the deadline is the output
    for r in readers {
        let left = end.saturating_duration_since(Instant::now());
        let _ = r.recv_timeout(left.max(Duration::from_secs(1)));
    }
    let take = |b: Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *b.lock().expect("output buffer"));
    Output {
        status,
        stdout: take(out),
        stderr: take(err),
    }
}

fn reader(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into
                    .lock()
                    .expect("output buffer")
                    .extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(());
    });
    rx
}

/// The lab tests running now and when each began.
fn running() -> &'static Mutex<BTreeMap<String, Instant>> {
    static RUNNING: OnceLock<Mutex<BTreeMap<String, Instant>>> = OnceLock::new();
    RUNNING.get_or_init(|| {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_secs(5));
            let over: Vec<(String, u64)> = running()
                .lock()
                .map(|m| {
                    m.iter()
                        .filter(|(_, t)| t.elapsed() > TEST_LIMIT)
                        .map(|(n, t)| (n.clone(), t.elapsed().as_secs()))
                        .collect()
                })
                .unwrap_or_default();
            if let Some((name, secs)) = over.first() {
                // straight to the file descriptor: the harness captures eprintln!
                let _ = writeln!(
                    std::io::stderr(),
                    "\nerror: the lab test {name} has run for {secs} s (limit {} s): \
                     something in it waits without a deadline; ending the test run",
                    TEST_LIMIT.as_secs()
                );
                std::process::exit(101);
            }
        });
        Mutex::new(BTreeMap::new())
    })
}

struct Running(String);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut m) = running().lock() {
            m.remove(&self.0);
        }
    }
}

thread_local! {
    static WATCHED: std::cell::RefCell<Option<Running>> = const { std::cell::RefCell::new(None) };
}

/// Watch the lab test `name`, running on this thread, until the thread ends (the
/// harness runs each test on a thread of its own).
pub(crate) fn watch(name: &str) {
    running()
        .lock()
        .expect("running tests")
        .insert(name.to_string(), Instant::now());
    WATCHED.with(|w| *w.borrow_mut() = Some(Running(name.to_string())));
}

/// Run `argv` in a lab host (stdin empty) within `secs`, as `infra::lab::exec` does.
pub(crate) fn exec_within(lab: &str, host: &str, argv: &[&str], secs: u64) -> Output {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let mut c =
        infra::lab::command(lab, host, &argv).unwrap_or_else(|e| panic!("exec on {host}: {e}"));
    output_within(&mut c, secs, &format!("`{}` on {host}", argv.join(" ")))
}

#[test]
fn an_overrunning_command_is_killed_and_named() {
    let t = Instant::now();
    let r = std::panic::catch_unwind(|| {
        output_within(
            Command::new("sh").args(["-c", "echo begun; sleep 30"]),
            1,
            "the sleeper",
        )
    });
    let msg = *r
        .expect_err("must fail")
        .downcast::<String>()
        .expect("text");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        msg.contains("the sleeper did not finish within 1 s"),
        "{msg}"
    );
    assert!(msg.contains("begun"), "{msg}");
}

#[test]
fn a_background_process_holding_the_pipes_does_not_hold_the_caller() {
    let t = Instant::now();
    let out = output_within(
        Command::new("sh").args(["-c", "echo done; sleep 4 & exit 3"]),
        2,
        "the forker",
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}
