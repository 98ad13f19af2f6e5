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
    crate::lab_tests(test, "root and a real sshd")
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

// ---------------------------------------------------------------------------
// Probe

use infra::probe::{self, Content, Manifest, ManifestFile, ManifestUnit, Observed, PathState};
use infra::render::{DirOut, FileOut, HostBuild, StepOut, UnitOut, UserOut};
use std::collections::BTreeMap;

pub(crate) fn sha(s: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn file(content: &str, mode: &str, secret: bool) -> FileOut {
    FileOut {
        mode: infra::encode::Mode::parse(mode).expect("a mode"),
        owner: "root".into(),
        group: "root".into(),
        content: content.into(),
        secret,
        sha256: sha(content.as_bytes()),
        origin: "test.t".into(),
    }
}

/// A host state under a temp dir: managed files, a generation 3 with its
/// manifest, and the build that is planned against it.
pub(crate) struct Scenario {
    pub dir: tempfile::TempDir,
    pub build: HostBuild,
}

impl Scenario {
    pub fn root(&self) -> String {
        self.dir.path().display().to_string()
    }
    pub fn state(&self) -> String {
        format!("{}/state", self.root())
    }
    pub fn p(&self, name: &str) -> String {
        format!("{}/etc/{name}", self.root())
    }

    pub fn new() -> Scenario {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display().to_string();
        let p = |n: &str| format!("{root}/etc/{n}");
        std::fs::create_dir_all(p("")).expect("etc");
        let write = |n: &str, c: &str, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(p(n), c).expect("write");
            std::fs::set_permissions(p(n), std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        // On the host now.
        write("same.conf", "same\n", 0o644);
        write("changed.conf", "a\nb\nc\n", 0o644);
        write("drifted.conf", "hand edit\n", 0o644);
        write("mode.conf", "mode\n", 0o644);
        write("secret.conf", "password=hunter2\n", 0o600);
        write("secret2.conf", "token=abc\n", 0o600);
        write("old.conf", "old\n", 0o644);
        write("foreign.conf", "not ours\n", 0o644);
        write("it's a\ttab.conf", "odd name\n", 0o644);
        std::fs::create_dir_all(p("adir.conf")).expect("dir");
        std::fs::write(p("binary.bin"), [0u8, 159, 146, 150]).expect("bin");
        std::fs::write(p("big.log"), vec![b'x'; 1024 * 1024 + 1]).expect("big");
        std::fs::write(p("limit.log"), vec![b'y'; 1024 * 1024]).expect("limit");

        let mut files = BTreeMap::new();
        files.insert(p("same.conf"), file("same\n", "0644", false));
        files.insert(p("changed.conf"), file("a\nB\nc\n", "0644", false));
        files.insert(p("drifted.conf"), file("installed\n", "0644", false));
        files.insert(p("mode.conf"), file("mode\n", "0600", false));
        files.insert(
            p("secret.conf"),
            file("password=@@INFRA_SECRET(db)@@\n", "0600", true),
        );
        files.insert(
            p("secret2.conf"),
            file("token=@@INFRA_SECRET(tok)@@ v2\n", "0600", true),
        );
        files.insert(p("new.conf"), file("new\n", "0644", false));
        files.insert(p("it's a\ttab.conf"), file("odd name\n", "0644", false));
        files.insert(p("adir.conf"), file("x\n", "0644", false));
        files.insert(p("binary.bin"), file("text now\n", "0644", false));
        files.insert(p("big.log"), file("small\n", "0644", false));
        files.insert(p("limit.log"), file("small\n", "0644", false));
        let build = HostBuild {
            releases: Default::default(),
            host: "alpha".into(),
            address: "127.0.0.1".into(),
            packages: vec!["coreutils".into(), "no-such-package-infra".into()],
            users: vec![
                UserOut {
                    name: "root".into(),
                    home: None,
                    system: true,
                    ..UserOut::default()
                },
                UserOut {
                    name: "no-such-user-infra".into(),
                    home: None,
                    system: true,
                    ..UserOut::default()
                },
            ],
            directories: vec![DirOut {
                path: p("newdir"),
                mode: infra::encode::Mode::parse("0750").expect("a mode"),
                owner: "root".into(),
                group: "root".into(),
            }],
            files,
            units: vec![UnitOut {
                name: "app.service".into(),
                enable: true,
                start: true,
                restart_on: vec![p("changed.conf")],
                reload_on: vec![],
                origin: "test.t".into(),
            }],
            steps: vec![
                StepOut {
                    name: "init".into(),
                    run: "true".into(),
                    unless: Some("test -e /x".into()),
                    origin: "test.t".into(),
                },
                StepOut {
                    name: "once".into(),
                    run: "echo once".into(),
                    unless: None,
                    origin: "test.t".into(),
                },
            ],
            roles: vec![],
        };

        // Generation 3, as apply would have left it.
        let mf = |installed: &[u8], template: &str, secret: bool| ManifestFile {
            mode: infra::encode::Mode::parse("0644").expect("a mode"),
            owner: "root".into(),
            group: "root".into(),
            sha256: sha(template.as_bytes()),
            installed_sha256: sha(installed),
            secret,
            origin: "test.t".into(),
        };
        let mut mfiles = BTreeMap::new();
        mfiles.insert(p("same.conf"), mf(b"same\n", "same\n", false));
        mfiles.insert(p("changed.conf"), mf(b"a\nb\nc\n", "a\nb\nc\n", false));
        mfiles.insert(p("drifted.conf"), mf(b"installed\n", "installed\n", false));
        mfiles.insert(
            p("secret.conf"),
            mf(
                b"password=hunter2\n",
                "password=@@INFRA_SECRET(db)@@\n",
                true,
            ),
        );
        mfiles.insert(
            p("secret2.conf"),
            mf(b"token=abc\n", "token=@@INFRA_SECRET(tok)@@\n", true),
        );
        mfiles.insert(p("old.conf"), mf(b"old\n", "old\n", false));
        mfiles.insert(p("gone.conf"), mf(b"gone\n", "gone\n", false));
        // old.service is infra's own unit: the generation installed its file
        // (absent now; plan never deletes what is already gone)
        mfiles.insert(
            "/etc/systemd/system/old.service".into(),
            mf(b"[Unit]\n", "[Unit]\n", false),
        );
        let manifest = Manifest {
            releases: Default::default(),
            format: 1,
            host: "alpha".into(),
            generation: 3,
            files: mfiles,
            units: vec![
                ManifestUnit {
                    name: "app.service".into(),
                    enable: true,
                    start: true,
                    ..ManifestUnit::default()
                },
                ManifestUnit {
                    name: "old.service".into(),
                    enable: true,
                    start: true,
                    ..ManifestUnit::default()
                },
            ],
            packages: vec![],
            steps: [("once".to_string(), sha(b"echo once"))]
                .into_iter()
                .collect(),
        };
        let gen = format!("{root}/state/generations/3");
        std::fs::create_dir_all(&gen).expect("gen");
        std::fs::write(
            format!("{gen}/manifest.json"),
            serde_json::to_string_pretty(&manifest).expect("json"),
        )
        .expect("manifest");
        let paths: String = manifest.files.keys().map(|k| format!("{k}\n")).collect();
        std::fs::write(format!("{gen}/paths"), paths).expect("paths");
        std::fs::write(format!("{gen}/units"), "app.service\nold.service\n").expect("units");
        std::os::unix::fs::symlink("3", format!("{root}/state/generations/current"))
            .expect("symlink");
        std::fs::create_dir_all(format!("{root}/state/lock")).expect("lock");
        std::fs::write(format!("{root}/state/lock/holder"), "ops@laptop pid 42\n").expect("holder");
        Scenario { dir, build }
    }

    /// Run the probe script with the local sh (what the host does), parse it.
    pub fn probe_locally(&self) -> Observed {
        let script = probe::probe_script(&self.build, &self.state());
        let out = sh_local(&script);
        probe::parse_probe_output(&self.build, &out).expect("parses")
    }
}

pub(crate) fn sh_local(script: &str) -> Vec<u8> {
    use infra::transport::Remote;
    let out = infra::transport::LocalSh::new("local")
        .run(script, b"")
        .expect("sh");
    assert!(out.success(), "probe script failed: {}", out.stderr_text());
    out.stdout
}

/// What the scenario's probe must see (whether run locally or over SSH).
pub(crate) fn check_scenario_observed(sc: &Scenario, o: &Observed) {
    assert_eq!(o.host, "alpha");
    assert_eq!(o.generation, Some(3));
    assert_eq!(
        o.lock.as_ref().map(|l| l.holder.as_str()),
        Some("ops@laptop pid 42")
    );
    let m = o.manifest.as_ref().expect("manifest read");
    assert_eq!(m.generation, 3);
    assert!(o.manifest_error.is_none());
    let file = |n: &str| match o.paths.get(&sc.p(n)) {
        Some(PathState::File {
            mode,
            sha256,
            content,
            ..
        }) => (mode.clone(), sha256.clone(), content.clone()),
        other => panic!("{n}: {other:?}"),
    };
    let (mode, hash, content) = file("same.conf");
    assert_eq!((mode.as_str(), hash), ("0644", Some(sha(b"same\n"))));
    assert_eq!(content, None, "unchanged files are not brought back");
    let (_, _, content) = file("changed.conf");
    assert_eq!(
        content,
        Some(Content::Text {
            text: "a\nb\nc\n".into()
        })
    );
    let (mode, _, content) = file("secret.conf");
    assert_eq!(mode, "0600");
    assert_eq!(content, None, "secret content never leaves the host");
    assert_eq!(
        file("secret2.conf").2,
        None,
        "secret content never leaves the host"
    );
    assert_eq!(file("binary.bin").2, Some(Content::Binary));
    assert_eq!(file("big.log").2, Some(Content::TooLarge));
    assert!(
        matches!(file("limit.log").2, Some(Content::Text { text }) if text.len() == 1024 * 1024)
    );
    assert_eq!(file("it's a\ttab.conf").1, Some(sha(b"odd name\n")));
    assert_eq!(file("old.conf").1, Some(sha(b"old\n")));
    assert_eq!(o.paths.get(&sc.p("new.conf")), Some(&PathState::Absent));
    assert_eq!(o.paths.get(&sc.p("gone.conf")), Some(&PathState::Absent));
    assert_eq!(o.paths.get(&sc.p("newdir")), Some(&PathState::Absent));
    assert!(matches!(
        o.paths.get(&sc.p("adir.conf")),
        Some(PathState::Directory { .. })
    ));
    assert!(!o.paths.contains_key(&sc.p("foreign.conf")), "never probed");
    assert!(o.packages.contains_key("coreutils"), "{:?}", o.packages);
    assert!(!o.packages.contains_key("no-such-package-infra"));
    assert!(o.users.contains("root"));
    assert!(!o.users.contains("no-such-user-infra"));
}

#[test]
fn probe_script_runs_under_local_sh() {
    let sc = Scenario::new();
    let o = sc.probe_locally();
    check_scenario_observed(&sc, &o);
    // Deterministic: same state, same answer.
    assert_eq!(o, sc.probe_locally());
}

#[test]
fn probe_script_passes_shellcheck() {
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var("CI").is_ok() {
            panic!("shellcheck is not installed (apt-get install shellcheck)");
        }
        eprintln!("skipping probe_script_passes_shellcheck: shellcheck not installed");
        return;
    }
    let sc = Scenario::new();
    let script = probe::probe_script(&sc.build, &sc.state());
    let path = sc.dir.path().join("probe.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{script}")).expect("write");
    let out = Command::new("shellcheck")
        .args(["-s", "sh", "-S", "warning"])
        .arg(&path)
        .output()
        .expect("shellcheck");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn ssh_probe_is_one_round_trip_and_sees_what_local_sh_sees() {
    if !enabled("ssh_probe_is_one_round_trip_and_sees_what_local_sh_sees") {
        return;
    }
    let sshd = Sshd::start();
    let mut s = sshd.connect();
    let sc = Scenario::new();
    let o = probe::probe(&mut s, &sc.build, &sc.state()).expect("probe");
    assert_eq!(s.round_trips(), 1);
    check_scenario_observed(&sc, &o);
    assert_eq!(o, sc.probe_locally());
}

fn many_files(dir: &Path, n: usize) -> HostBuild {
    let mut files = BTreeMap::new();
    for i in 0..n {
        let path = format!("{}/f {i:04}'s.conf", dir.display());
        let content = format!("line {i}\n");
        if i % 3 != 0 {
            // two thirds exist, half of those with other content
            let on_host = if i % 2 == 0 {
                content.clone()
            } else {
                "old\n".into()
            };
            std::fs::write(&path, on_host).expect("write");
        }
        files.insert(path, file(&content, "0644", i % 7 == 0));
    }
    HostBuild {
        host: "alpha".into(),
        files,
        ..HostBuild::default()
    }
}

#[test]
fn ssh_probe_round_trips_do_not_grow_with_files() {
    if !enabled("ssh_probe_round_trips_do_not_grow_with_files") {
        return;
    }
    let sshd = Sshd::start();
    let mut s = sshd.connect();
    for n in [1usize, 500] {
        let dir = tempfile::tempdir().expect("tmp");
        let build = many_files(dir.path(), n);
        let before = s.round_trips();
        let state = dir.path().join("state").display().to_string();
        let o = probe::probe(&mut s, &build, &state).expect("probe");
        assert_eq!(s.round_trips() - before, 1, "probe of {n} files");
        assert_eq!(o.paths.len(), n);
        for (i, (path, f)) in build.files.iter().enumerate() {
            match (i % 3, o.paths.get(path)) {
                (0, Some(PathState::Absent)) => {}
                (
                    _,
                    Some(PathState::File {
                        sha256, content, ..
                    }),
                ) => {
                    let same = i % 2 == 0;
                    assert_eq!(sha256.as_deref() == Some(f.sha256.as_str()), same, "{path}");
                    let fetched = !same && !f.secret;
                    let want = fetched.then(|| Content::Text {
                        text: "old\n".into(),
                    });
                    assert_eq!(content, &want, "{path}");
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }
}

/// Loopback timings, printed (run with --nocapture): connect (TCP + handshake +
/// host key + auth), an empty command, and probes of 200 and 500 files; and the
/// probe script alone under the local sh, to separate sshd's per-command cost
/// (the login shell and its rc files) from the probe's own work.
#[test]
fn ssh_measure_connect_and_probe() {
    if !enabled("ssh_measure_connect_and_probe") {
        return;
    }
    let sshd = Sshd::start();
    let t = sshd.target();
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("a")).expect("a");
    std::fs::create_dir_all(dir.path().join("b")).expect("b");
    let b200 = many_files(&dir.path().join("a"), 200);
    let b500 = many_files(&dir.path().join("b"), 500);
    let state = dir.path().join("state").display().to_string();
    let (mut connects, mut empty, mut p200, mut p500, mut local) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..5 {
        let t0 = Instant::now();
        let mut s = transport::connect(&t, &dial_tcp).expect("connect");
        connects.push(t0.elapsed());
        assert!(
            s.tcp_nodelay().expect("getsockopt"),
            "TCP_NODELAY must be set"
        );
        let t1 = Instant::now();
        s.run("true", b"").expect("run");
        empty.push(t1.elapsed());
        let t2 = Instant::now();
        probe::probe(&mut s, &b200, &state).expect("probe");
        p200.push(t2.elapsed());
        let t3 = Instant::now();
        probe::probe(&mut s, &b500, &state).expect("probe");
        p500.push(t3.elapsed());
        let t4 = Instant::now();
        sh_local(&probe::probe_script(&b500, &state));
        local.push(t4.elapsed());
    }
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    };
    eprintln!(
        "loopback medians of 5: connect {:.1} ms; empty command {:.1} ms; probe 200 files {:.1} ms; \
         probe 500 files {:.1} ms; the 500-file probe script under local sh {:.1} ms",
        med(&mut connects),
        med(&mut empty),
        med(&mut p200),
        med(&mut p500),
        med(&mut local),
    );
}

/// The reader never panics: every prefix of a real answer, and bytes flipped in
/// it, give an Observed or an error.
#[test]
fn probe_reader_survives_cut_and_corrupt_answers() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut build = many_files(dir.path(), 12);
    build.host = "alpha".into();
    let state = dir.path().join("state").display().to_string();
    let out = sh_local(&probe::probe_script(&build, &state));
    assert!(probe::parse_probe_output(&build, &out).is_ok());
    let mut errors = 0;
    for cut in 0..out.len() {
        if probe::parse_probe_output(&build, &out[..cut]).is_err() {
            errors += 1;
        }
    }
    // Only a cut right after the end record's NUL is still a whole answer.
    assert_eq!(errors, out.len());
    for i in (0..out.len()).step_by(7) {
        let mut bad = out.clone();
        bad[i] ^= 0x55;
        let _ = probe::parse_probe_output(&build, &bad);
    }
}
