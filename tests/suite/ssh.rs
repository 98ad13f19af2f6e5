//! SSH transport and probe against a real OpenSSH server on 127.0.0.1 (a child
//! process with its own host key, authorized key and port). Needs root and
//! /usr/sbin/sshd: runs only when INFRA_LAB_TESTS=1. Never writes outside temp
//! dirs except /run/sshd, which sshd itself requires.

use infra::transport::{self, dial_tcp, Session, Target, TransportError};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn enabled(test: &str) -> bool {
    if std::env::var("INFRA_LAB_TESTS").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipping {test}: needs root and a real sshd; set INFRA_LAB_TESTS=1 to run it");
    false
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "infra-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs");
    assert!(st.success(), "ssh-keygen failed for {}", path.display());
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A real sshd on 127.0.0.1; killed on drop.
pub(crate) struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("copy");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        for _attempt in 0..5 {
            let port = free_port();
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile none\nUsePAM no\n\
                 StrictModes no\nAuthorizedKeysFile {ak}\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 LogLevel ERROR\nMaxStartups 100\nMaxSessions 100\n",
                hk = d.join("host_key").display(),
                ak = d.join("authorized_keys").display(),
            );
            std::fs::write(d.join("sshd_config"), config).expect("config");
            let log = std::fs::File::create(d.join("sshd.log")).expect("log");
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("sshd starts");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken meanwhile: try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sshd { dir, port, child };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start");
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The host's public key as a known_hosts line for this port.
    pub fn known_hosts_line(&self) -> String {
        let pubkey = std::fs::read_to_string(self.path("host_key.pub")).expect("pub");
        let mut f = pubkey.split_whitespace();
        let (kind, key) = (f.next().expect("type"), f.next().expect("key"));
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }

    /// A target with the client key and a known_hosts file that pins the host key.
    pub fn target(&self) -> Target {
        let kh = self.path("known_hosts");
        std::fs::write(&kh, self.known_hosts_line()).expect("known_hosts");
        let mut t = Target::new("alpha", "127.0.0.1", kh);
        t.port = self.port;
        t.key = Some(self.path("client_key"));
        t.connect_timeout = Duration::from_secs(5);
        t.command_timeout = Duration::from_secs(30);
        t
    }

    pub fn connect(&self) -> Session {
        match transport::connect(&self.target(), &dial_tcp) {
            Ok(s) => s,
            Err(e) => panic!("connect: {e}\nhelp: {}", e.help()),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn expect_err(r: Result<Session, TransportError>) -> TransportError {
    match r {
        Ok(_) => panic!("connection unexpectedly succeeded"),
        Err(e) => e,
    }
}

#[test]
fn ssh_exec_exit_codes_and_stdin() {
    if !enabled("ssh_exec_exit_codes_and_stdin") {
        return;
    }
    let sshd = Sshd::start();
    let mut s = sshd.connect();
    assert_eq!(s.round_trips(), 0);
    let out = s
        .run("echo hello; echo oops >&2; exit 3", b"")
        .expect("run");
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(out.stderr, b"oops\n");
    assert_eq!(out.status, 3);
    assert!(!out.success());
    let ok = s.run("true", b"").expect("run");
    assert!(ok.success());
    // stdin passthrough, binary and larger than one SSH window
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let out = s.run("sha256sum; wc -c", &data).expect("run");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    use sha2::Digest;
    let want = sha2::Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert!(text.starts_with(&want), "{text}");
    // sha256sum consumed stdin; wc sees nothing
    assert!(text.trim_end().ends_with('0'), "{text}");
    // output larger than the window, on both streams
    let out = s
        .run(
            "head -c 5000000 /dev/zero; head -c 3000000 /dev/zero >&2",
            b"",
        )
        .expect("run");
    assert_eq!(out.stdout.len(), 5_000_000);
    assert_eq!(out.stderr.len(), 3_000_000);
    // the shell is POSIX sh, and quoting survives
    let out = s.run("printf '%s|' \"it's\" 'a  b'", b"x").expect("run");
    assert_eq!(out.stdout, b"it's|a  b|");
    assert_eq!(s.round_trips(), 5);
}

#[test]
fn ssh_unknown_host_key_is_refused_with_the_pin_command() {
    if !enabled("ssh_unknown_host_key_is_refused_with_the_pin_command") {
        return;
    }
    let sshd = Sshd::start();
    let mut t = sshd.target();
    std::fs::write(&t.known_hosts, "").expect("empty known_hosts");
    let e = expect_err(transport::connect(&t, &dial_tcp));
    assert!(matches!(e, TransportError::UnknownHostKey { .. }), "{e}");
    assert_eq!(e.code(), "E0704");
    let help = e.help();
    let cmd = format!(
        "ssh-keyscan -p {} 127.0.0.1 >> {}",
        sshd.port,
        t.known_hosts.display()
    );
    assert!(help.contains(&cmd), "{help}");
    assert!(help.contains("--accept-new-host-keys"), "{help}");
    assert!(e.to_string().starts_with("alpha: "), "{e}");
    // the hint works as printed
    let st = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .stderr(Stdio::null())
        .status()
        .expect("sh");
    assert!(st.success());
    t.accept_new = false;
    let mut s = transport::connect(&t, &dial_tcp).expect("pinned key accepted");
    assert!(s.run("true", b"").expect("run").success());
}

#[test]
fn ssh_changed_host_key_is_refused() {
    if !enabled("ssh_changed_host_key_is_refused") {
        return;
    }
    let sshd = Sshd::start();
    let t = sshd.target();
    keygen(&sshd.path("other_key"));
    let other = std::fs::read_to_string(sshd.path("other_key.pub")).expect("pub");
    let mut f = other.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{} {} {}\n",
        sshd.port,
        f.next().expect("t"),
        f.next().expect("k")
    );
    std::fs::write(&t.known_hosts, &line).expect("write");
    let e = expect_err(transport::connect(&t, &dial_tcp));
    assert!(matches!(e, TransportError::HostKeyChanged { .. }), "{e}");
    assert!(e.to_string().contains("HAS CHANGED"), "{e}");
    // accept_new never overrides a changed key, and leaves the file alone
    let mut t2 = t.clone();
    t2.accept_new = true;
    let e = expect_err(transport::connect(&t2, &dial_tcp));
    assert!(matches!(e, TransportError::HostKeyChanged { .. }), "{e}");
    assert_eq!(std::fs::read_to_string(&t.known_hosts).expect("read"), line);
}

#[test]
fn ssh_accept_new_records_the_key() {
    if !enabled("ssh_accept_new_records_the_key") {
        return;
    }
    let sshd = Sshd::start();
    let mut t = sshd.target();
    let kh = sshd.path("sub/dir/known_hosts");
    t.known_hosts = kh.clone();
    t.accept_new = true;
    let mut s = transport::connect(&t, &dial_tcp).expect("accept new");
    assert!(s.run("true", b"").expect("run").success());
    let text = std::fs::read_to_string(&kh).expect("recorded");
    assert_eq!(text, sshd.known_hosts_line());
    // now pinned: strict mode accepts it, and nothing more is appended
    t.accept_new = false;
    transport::connect(&t, &dial_tcp).expect("pinned");
    t.accept_new = true;
    transport::connect(&t, &dial_tcp).expect("pinned");
    assert_eq!(std::fs::read_to_string(&kh).expect("read"), text);
}

#[test]
fn ssh_wrong_key_is_refused_naming_the_host() {
    if !enabled("ssh_wrong_key_is_refused_naming_the_host") {
        return;
    }
    let sshd = Sshd::start();
    let mut t = sshd.target();
    keygen(&sshd.path("stranger"));
    t.key = Some(sshd.path("stranger"));
    let e = expect_err(transport::connect(&t, &dial_tcp));
    assert!(matches!(e, TransportError::Auth { .. }), "{e}");
    assert_eq!(e.host(), "alpha");
    assert!(e.to_string().contains("alpha"), "{e}");
    assert!(e.to_string().contains("stranger"), "{e}");
    assert!(e.help().contains("authorized_keys"), "{}", e.help());
    t.key = Some(sshd.path("missing_key"));
    let e = expect_err(transport::connect(&t, &dial_tcp));
    assert!(e.to_string().contains("does not exist"), "{e}");
}

#[test]
fn ssh_closed_port_and_silent_port_name_the_host() {
    if !enabled("ssh_closed_port_and_silent_port_name_the_host") {
        return;
    }
    let kh = tempfile::tempdir().expect("tmp");
    let mut t = Target::new("beta", "127.0.0.1", kh.path().join("known_hosts"));
    t.port = free_port(); // nothing listens there now
    t.connect_timeout = Duration::from_millis(500);
    let e = expect_err(transport::connect(&t, &dial_tcp));
    assert!(matches!(e, TransportError::Connect { .. }), "{e}");
    assert!(e.to_string().starts_with("beta: "), "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
    assert!(
        e.help().contains(&format!("port {}", t.port)),
        "{}",
        e.help()
    );

    // A listener that never speaks SSH: the handshake times out.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    t.port = l.local_addr().expect("addr").port();
    let start = Instant::now();
    let e = expect_err(transport::connect(&t, &dial_tcp));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, TransportError::Handshake { .. }), "{e}");
    assert!(e.to_string().starts_with("beta: "), "{e}");
    assert!(e.to_string().contains("within 0.5 s"), "{e}");
    drop(l);
}

#[test]
fn ssh_command_timeout() {
    if !enabled("ssh_command_timeout") {
        return;
    }
    let sshd = Sshd::start();
    let mut t = sshd.target();
    t.command_timeout = Duration::from_millis(700);
    let mut s = transport::connect(&t, &dial_tcp).expect("connect");
    let start = Instant::now();
    let e = s.run("sleep 5", b"").expect_err("times out");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, TransportError::CommandTimeout { .. }), "{e}");
    assert_eq!(e.code(), "E0709");
    assert!(e.to_string().starts_with("alpha: "), "{e}");
}

#[test]
fn ssh_hosts_in_parallel_keep_their_order() {
    if !enabled("ssh_hosts_in_parallel_keep_their_order") {
        return;
    }
    let a = Sshd::start();
    let b = Sshd::start();
    let mut ta = a.target();
    ta.host = "alpha".into();
    let mut tb = b.target();
    tb.host = "beta".into();
    let mut bad = tb.clone();
    bad.host = "gamma".into();
    bad.port = free_port();
    let results = transport::connect_all(&[ta, bad, tb], &dial_tcp);
    assert_eq!(results.len(), 3);
    let mut ok: Vec<Session> = Vec::new();
    for r in results {
        match r {
            Ok(s) => ok.push(s),
            Err(e) => assert_eq!(e.host(), "gamma"),
        }
    }
    let hosts: Vec<&str> = ok.iter().map(|s| s.host()).collect();
    assert_eq!(hosts, ["alpha", "beta"]);
    let outs = transport::in_parallel(&[1u64, 2, 3], |n| n * 10);
    assert_eq!(outs, [10, 20, 30]);
}
