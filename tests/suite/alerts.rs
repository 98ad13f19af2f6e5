//! `alert`: messages by email (msmtp to a real SMTP server, Debian's
//! python3-aiosmtpd) and webhook (curl to a real HTTP server), both running in the
//! lab's namespace at the lab address. A power cut of the VIP holder gives exactly one
//! takeover message naming both members; a failed job one message with its journal
//! lines, and a second failure within `quiet` none; a message sent while the
//! receivers are down is queued and delivered once they are back; the powered-off
//! member's replication, missing for `replication_alert_after`, is a message from the
//! new primary; the failures held back by `quiet` come as one summary once it is
//! quiet; a watched path that does not exist and a filesystem 90 % full are
//! messages; the VIP holder whose check fails with nobody to take over says it keeps
//! the VIP; an apply whose health check fails is rolled back and says so. Lab only.

use crate::apply_e2e::{lab_enabled, LabConfig};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LAB: &str = "alerts";

fn config() -> String {
    r#"import "std/postgres"

host alpha { address = "192.0.2.11" }
host beta  { address = "192.0.2.12" }

postgres main {
  failover                = office
  replication_password    = secret("pg_repl")
  replication_alert_after = "1min"
}

failover office {
  members = [alpha, beta]
  check   = tcp(22)
  vip     = "192.0.2.10/24"
}

job flaky {
  on    = all
  run   = "echo flaky-marker-$(hostname); exit 3"
  every = "1d"
}
job other {
  on    = all
  run   = "exit 4"
  every = "1d"
}

alert ops {
  on        = all
  email     = ["ops@lab.example"]
  from      = "infra@lab.example"
  smtp      = "192.0.2.254"
  smtp_port = 2525
  smtp_tls  = "off"
  webhook   = ["http://192.0.2.254:8025/hook"]
  quiet     = "1min"
  disk      = ["/", "/srv/small"]
}
"#
    .to_string()
}

/// The SMTP and HTTP receivers, in the lab's namespace; killed on drop.
struct Receivers {
    smtp: Option<Child>,
    http: Option<Child>,
    mail: PathBuf,
    hooks: PathBuf,
}

const HTTP: &str = r#"
import http.server, os, sys, time
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get('Content-Length', 0))
        body = self.rfile.read(n)
        name = os.path.join(out, '%d-%d.json' % (time.time_ns(), os.getpid()))
        with open(name + '.tmp', 'wb') as f:
            f.write(body)
        os.rename(name + '.tmp', name)
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(('192.0.2.254', 8025), H).serve_forever()
"#;

impl Receivers {
    fn start(dir: &Path) -> Receivers {
        let mail = dir.join("mail");
        let hooks = dir.join("hooks");
        std::fs::create_dir_all(&hooks).expect("mkdir hooks");
        let mut r = Receivers {
            smtp: None,
            http: None,
            mail,
            hooks,
        };
        r.up();
        r
    }

    fn up(&mut self) {
        let ns = infra::lab::spec::lab_netns(LAB);
        let spawn = |args: &[&str]| {
            Command::new("ip")
                .args(["netns", "exec", &ns])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawns a receiver in the lab namespace")
        };
        let mail = self.mail.to_string_lossy().into_owned();
        let hooks = self.hooks.to_string_lossy().into_owned();
        // Debian's python3 (the one with python3-aiosmtpd), not one a PATH may prefer
        self.smtp = Some(spawn(&[
            "/usr/bin/python3",
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            "192.0.2.254:2525",
            "-c",
            "aiosmtpd.handlers.Mailbox",
            &mail,
        ]));
        self.http = Some(spawn(&["/usr/bin/python3", "-c", HTTP, &hooks]));
        // both listen before anything is sent (a deadline, and what was waited for)
        let end = Instant::now() + Duration::from_secs(20);
        for port in [2525, 8025] {
            let addr = std::net::SocketAddr::from(([192, 0, 2, 254], port));
            while infra::lab::connect(LAB, addr, Duration::from_millis(500)).is_err() {
                assert!(
                    Instant::now() < end,
                    "the receiver on 192.0.2.254:{port} did not listen within 20 s"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    fn down(&mut self) {
        for c in [self.smtp.take(), self.http.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every message received so far: (mail bodies, webhook bodies).
    fn received(&self) -> (Vec<String>, Vec<String>) {
        let read_dir = |d: &Path| -> Vec<String> {
            let mut names: Vec<PathBuf> = std::fs::read_dir(d)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            names.retain(|p| p.is_file() && !p.to_string_lossy().ends_with(".tmp"));
            names.sort();
            names
                .iter()
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .collect()
        };
        (read_dir(&self.mail.join("new")), read_dir(&self.hooks))
    }

    /// Waits until `pred` holds for both receivers' messages; false at the deadline.
    fn wait(&self, secs: u64, pred: impl Fn(&[String]) -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let (mail, hooks) = self.received();
            if pred(&mail) && pred(&hooks) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        self.down();
    }
}

fn count(msgs: &[String], needle: &str) -> usize {
    msgs.iter().filter(|m| m.contains(needle)).count()
}

#[test]
fn lab_alerts_by_email_and_webhook() {
    if !lab_enabled("lab_alerts_by_email_and_webhook") {
        return;
    }
    let mut c = LabConfig::from_text(LAB, &config());
    c.up(&[]);
    let spool = tempfile::tempdir().expect("tempdir");
    let mut rx = Receivers::start(spool.path());
    // beta's watched /srv/small is a small filesystem; alpha has no such path
    let (code, out) = c.sh(
        "beta",
        "mkdir -p /srv/small && mount -t tmpfs -o size=4m tmpfs /srv/small",
    );
    assert_eq!(code, 0, "mounting a tmpfs in beta: {out}");
    let r = c.infra(&["apply"]);
    assert_eq!(r.code, 0, "apply failed:\n{r:?}");
    assert!(
        rx.wait(90, |m| count(m, "alpha: /srv/small does not exist") >= 1),
        "no message about alpha's missing /srv/small within 90 s of the apply: {:?}",
        rx.received()
    );

    // the first holder says it took the VIP (nobody had it)
    let took = |who: &'static str| {
        move |m: &[String]| count(m, &format!("{who} took over the VIP of office")) >= 1
    };
    assert!(
        rx.wait(30, took("alpha")),
        "no takeover message from alpha 30 s after the apply: {:?}",
        rx.received()
    );

    // An apply whose health check fails after the switch: beta (the standby, first)
    // is rolled back, and says so; alpha is not touched
    let good = c.text();
    c.write(&good.replace("check   = tcp(22)", "check   = tcp(2222)"));
    let r = c.infra(&["apply", "--confirm-timeout", "20"]);
    crate::apply_e2e::assert_fails_with(&r, 1, &["E0724", "beta", "alpha: not touched"]);
    c.write(&good);
    assert!(
        rx.wait(30, |m| count(
            m,
            "beta: rolled back from generation 1 to the state before infra"
        ) + count(
            m,
            "beta: rolled back from generation 2 to generation 1"
        ) >= 1),
        "no message about beta's rollback within 30 s: {:?}",
        rx.received()
    );
    let m = rx
        .received()
        .0
        .into_iter()
        .find(|m| m.contains("beta: rolled back"))
        .expect("the rollback mail");
    assert!(
        m.contains("the health check of failover group office failed after the switch"),
        "the rollback message does not say why: {m}"
    );
    // beta is a streaming standby again before alpha goes
    assert!(
        c.wait(
            "beta",
            "[ \"$(runuser -u postgres -- psql -XAtc 'SELECT status FROM pg_stat_wal_receiver')\" = streaming ]",
            60
        ),
        "beta does not stream 60 s after its rollback"
    );

    // A power cut of the VIP holder: exactly one message, from beta, naming alpha
    let t = Instant::now();
    infra::lab::kill(LAB, "alpha").expect("lab kill alpha");
    assert!(
        rx.wait(10, took("beta")),
        "no takeover message from beta 10 s after alpha's power cut: {:?}",
        rx.received()
    );
    eprintln!(
        "takeover message {:.1} s after the power cut",
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(3));
    let (mail, hooks) = rx.received();
    for msgs in [&mail, &hooks] {
        assert_eq!(
            count(msgs, "beta took over the VIP of office"),
            1,
            "not exactly one takeover message: {msgs:?}"
        );
        let m = msgs
            .iter()
            .find(|m| m.contains("beta took over"))
            .expect("the takeover message");
        assert!(
            m.contains("alpha (192.0.2.11) does not answer ping"),
            "the takeover message does not say what happened to alpha: {m}"
        );
    }
    let hook: serde_json::Value = serde_json::from_str(
        hooks
            .iter()
            .find(|m| m.contains("beta took over"))
            .expect("the takeover webhook"),
    )
    .expect("the webhook body is JSON");
    assert_eq!(hook["host"], "beta", "{hook}");
    assert_eq!(hook["group"], "office", "{hook}");
    assert_eq!(hook["event"], "takeover", "{hook}");

    // A failed job: one message with its journal lines; again within `quiet`: none
    let (code, out) = c.sh("beta", "systemctl start infra-job-flaky.service");
    assert_ne!(code, 0, "the job must fail: {out}");
    let failed = |m: &[String]| count(m, "infra-job-flaky.service failed") >= 1;
    assert!(
        rx.wait(20, failed),
        "no message about the failed job within 20 s: {:?}",
        rx.received()
    );
    let (mail, _) = rx.received();
    let m = mail
        .iter()
        .find(|m| m.contains("infra-job-flaky.service failed"))
        .expect("the mail");
    assert!(
        m.contains("flaky-marker-beta"),
        "the message lacks the job's journal lines: {m}"
    );
    let _ = c.sh("beta", "systemctl start infra-job-flaky.service");
    std::thread::sleep(Duration::from_secs(5));
    let (mail, hooks) = rx.received();
    assert_eq!(
        count(&mail, "infra-job-flaky.service failed"),
        1,
        "a second failure within `quiet` sent another mail: {mail:?}"
    );
    assert_eq!(count(&hooks, "infra-job-flaky.service failed"), 1);
    let journal = c.out(
        "beta",
        "journalctl -q --no-pager -o cat -u 'infra-alert-ops-failed@*' -n 20",
    );
    assert!(journal.contains("held back"), "{journal}");

    // Receivers down: the message is queued, and delivered when they are back
    rx.down();
    let (code, _) = c.sh("beta", "systemctl start infra-job-other.service");
    assert_ne!(code, 0);
    let queued = c.wait("beta", "ls /var/spool/infra-alert-ops/*.msg", 20);
    assert!(queued, "nothing queued while the receivers were down");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        count(&rx.received().0, "infra-job-other.service failed"),
        0,
        "delivered while the receiver was down?"
    );
    rx.up();
    // the retry timer runs every minute
    assert!(
        rx.wait(90, |m| count(m, "infra-job-other.service failed") == 1),
        "the queued message was not delivered within 90 s of the receivers' return: {:?}",
        rx.received()
    );
    assert!(c.wait("beta", "! ls /var/spool/infra-alert-ops/*.msg", 10));
    // the sender failed while the receivers were down: retried, not a message about
    // itself (it has the OnFailure= of every service; the handler ignores it)
    let (mail, _) = rx.received();
    assert_eq!(
        count(&mail, "infra-alert-ops-"),
        0,
        "a message about the alert's own units: {mail:?}"
    );
    let handled = c.out(
        "beta",
        "journalctl -q --no-pager -o cat -u 'infra-alert-ops-failed@*' | grep -c 'infra-alert-ops-send.service failed: not a message' || true",
    );
    assert_ne!(
        handled, "0",
        "the sender's failure never reached the handler"
    );

    // alpha is still off: beta, the primary now, says its copy is gone
    let left = Duration::from_secs(150)
        .saturating_sub(t.elapsed())
        .as_secs();
    assert!(
        rx.wait(left.max(10), |m| count(
            m,
            "alpha has not streamed from beta"
        ) >= 1),
        "no message about the missing replication 150 s after alpha's power cut: {:?}",
        rx.received()
    );
    eprintln!(
        "replication message {:.1} s after the power cut",
        t.elapsed().as_secs_f64()
    );

    // The second flaky failure was held back: once `quiet` passed without another,
    // one summary of it
    assert!(
        rx.wait(120, |m| count(
            m,
            "1 held back: beta: infra-job-flaky.service failed"
        ) == 1),
        "no summary of the held-back failure: {:?}",
        rx.received()
    );

    // beta's /srv/small 94 % full: a message saying so (the watch runs every minute)
    let (code, out) = c.sh(
        "beta",
        "dd if=/dev/zero of=/srv/small/fill bs=64k count=60 status=none && systemctl start infra-alert-ops-watch.service",
    );
    assert_eq!(code, 0, "filling /srv/small: {out}");
    assert!(
        rx.wait(20, |m| count(m, "beta: /srv/small is 9") >= 1),
        "no message about beta's full /srv/small: {:?}",
        rx.received()
    );
    assert_eq!(
        count(&rx.received().0, "beta: / is"),
        0,
        "the root filesystem is not full here"
    );

    // beta holds the VIP and its database hangs, with alpha still off: nobody could
    // take over, so beta keeps the VIP, and says so once
    let (code, out) = c.sh(
        "beta",
        "pid=$(head -1 /var/lib/postgresql/15/main/postmaster.pid) && kill -STOP $pid && sleep 10 && kill -CONT $pid",
    );
    assert_eq!(code, 0, "pausing beta's PostgreSQL: {out}");
    assert!(
        rx.wait(20, |m| count(
            m,
            "beta keeps the VIP of office with a failing check: no other member could take over"
        ) == 1),
        "no message that beta keeps the VIP: {:?}",
        rx.received()
    );
    let vip = c.out("beta", "ip -o addr show to 192.0.2.10 | wc -l");
    assert_eq!(vip.trim(), "1", "beta gave the VIP up to nobody");
    for m in rx.received().0 {
        if let Some(subject) = m.lines().find(|l| l.starts_with("Subject: ")) {
            eprintln!("{subject}");
        }
    }
}
