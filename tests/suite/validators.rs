//! Every generated artifact is checked by the real tool:
//! - shell scripts: `sh -n` (`bash -n` for bash scripts) and `shellcheck`;
//! - systemd units and drop-ins: `systemd-analyze verify --man=no
//!   --recursive-errors=yes --root=DIR` with the host's build written into DIR,
//!   the system's units copied in, stub units for distribution units the machine
//!   does not have and stub executables for binaries outside the build;
//! - keepalived.conf: `keepalived -t -f` in a fresh network namespace holding the
//!   declared interfaces (needs root: only with INFRA_LAB_TESTS=1).
//!
//! Each validator also gets a deliberately broken artifact (through a template
//! override, the way a user would break it) and must reject it.
//!
//! Tools that are missing make a test fail when CI=true and skip it (one line on
//! stderr) otherwise.

use crate::golden::{build_example_with, example_builds};
use infra::render::{Build, HostBuild};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

fn builds() -> Vec<(String, Build)> {
    example_builds()
}

/// An example built with one stdlib template edited (it must change).
fn broken(example: &str, path: &str, edit: impl Fn(&str) -> String) -> Build {
    let original = infra::stdlib::template(path).unwrap_or_else(|| panic!("no template {path}"));
    let changed = edit(original);
    assert_ne!(changed, original, "the edit of {path} must change it");
    let mut o = BTreeMap::new();
    o.insert(path.to_string(), changed);
    build_example_with(example, o)
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// True if every tool is installed. Otherwise: panic in CI, skip with one line elsewhere.
fn have(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{test}: {} not installed (CI must install it)",
            missing.join(", ")
        );
    }
    eprintln!("skipping {test}: {} not installed", missing.join(", "));
    false
}

fn lab(test: &str) -> bool {
    crate::lab_tests(test, "root and network namespaces")
}

fn run(cmd: &mut Command) -> (bool, String) {
    match cmd.output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("cannot run {cmd:?}: {e}")),
    }
}

fn write_tree(dir: &Path, host: &HostBuild) {
    for (path, f) in &host.files {
        let target = dir.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&target, &f.content).expect("write");
        let mode = f.mode.bits();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

// ---------------------------------------------------------------------------
// shell scripts

fn scripts(host: &HostBuild) -> Vec<(&str, &str)> {
    host.files
        .iter()
        .filter(|(_, f)| f.content.starts_with("#!"))
        .map(|(p, f)| (p.as_str(), f.content.as_str()))
        .collect()
}

/// Problems found by `sh -n`/`bash -n` and shellcheck in one host's scripts.
fn check_scripts(host: &HostBuild) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut problems = Vec::new();
    for (path, content) in scripts(host) {
        let file = dir
            .path()
            .join(path.trim_start_matches('/').replace('/', "__"));
        std::fs::write(&file, content).expect("write");
        let shell = if content.starts_with("#!/bin/bash") {
            "bash"
        } else {
            "sh"
        };
        let (ok, out) = run(Command::new(shell).arg("-n").arg(&file));
        if !ok {
            problems.push(format!("{}: {path}: `{shell} -n` fails:\n{out}", host.host));
        }
        let (ok, out) = run(Command::new("shellcheck")
            .args(["--norc", "--severity=style", "--format=gcc"])
            .arg(&file));
        if !ok {
            problems.push(format!("{}: {path}: shellcheck:\n{out}", host.host));
        }
    }
    problems
}

#[test]
fn every_generated_script_passes_sh_n_and_shellcheck() {
    if !have("scripts", &["sh", "bash", "shellcheck"]) {
        return;
    }
    let mut problems = Vec::new();
    let mut count = 0;
    for (name, build) in builds() {
        for host in build.hosts.values() {
            count += scripts(host).len();
            problems.extend(
                check_scripts(host)
                    .into_iter()
                    .map(|p| format!("{name}/{p}")),
            );
        }
    }
    assert!(
        count >= 20,
        "expected the examples to generate scripts, found {count}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_broken_script_fails_sh_n_and_shellcheck() {
    if !have("scripts", &["sh", "shellcheck"]) {
        return;
    }
    let build = broken("accounting", "share/push.sh.hbs", |t| {
        t.replace("exit \"$status\"", "if then fi\nexit \"$status\"")
    });
    let problems = check_scripts(&build.hosts["alpha"]);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("push.sh") && p.contains("sh -n")),
        "sh -n must reject the broken push.sh: {problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("push.sh") && p.contains("shellcheck")),
        "shellcheck must reject the broken push.sh: {problems:?}"
    );
    // and a script that parses but is wrong: shellcheck alone catches it
    let build = broken("accounting", "share/push.sh.hbs", |t| {
        t.replace("rsync -rlptH", "rsync $extra -rlptH")
    });
    let problems = check_scripts(&build.hosts["alpha"]);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("push.sh") && p.contains("shellcheck") && p.contains("SC2154")),
        "shellcheck must flag the unassigned variable: {problems:?}"
    );
}

// ---------------------------------------------------------------------------
// systemd units

/// The unit names to verify on one host: every unit of the build.
fn unit_names(host: &HostBuild) -> Vec<String> {
    host.units.iter().map(|u| u.name.clone()).collect()
}

/// `name@instance.service` → `name@.service`.
fn template_of(unit: &str) -> String {
    match (unit.find('@'), unit.rfind('.')) {
        (Some(at), Some(dot)) if at < dot => format!("{}{}", &unit[..=at], &unit[dot..]),
        _ => unit.to_string(),
    }
}

/// The executables named by Exec*= lines.
fn exec_paths(unit_text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in unit_text.lines() {
        let line = line.trim();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !key.trim().starts_with("Exec") {
            continue;
        }
        let cmd = value.trim().trim_start_matches(['-', '@', ':', '+', '!']);
        if let Some(word) = cmd.split_whitespace().next() {
            if word.starts_with('/') {
                out.push(word.to_string());
            }
        }
    }
    out
}

/// Write one host's build into a root systemd-analyze can verify against; return
/// the root and the units to verify.
fn verify_root(host: &HostBuild) -> (tempfile::TempDir, Vec<String>) {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let sys_units = r.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&sys_units).expect("mkdir");
    let (ok, out) = run(Command::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system/.")
        .arg(&sys_units));
    assert!(ok, "copying the system's units failed: {out}");
    write_tree(r, host);
    let names = unit_names(host);
    // distribution units the machine does not have (postgresql@, php-fpm, nginx, mariadb)
    for name in &names {
        let ours = r.join("etc/systemd/system").join(name).exists();
        let template = template_of(name);
        let installed = sys_units.join(name).exists() || sys_units.join(&template).exists();
        if !ours && !installed {
            std::fs::write(
                sys_units.join(&template),
                "# stub of a distribution unit, written by the validators\n[Unit]\nDescription=stub %n\n\n[Service]\nExecStart=/usr/sbin/infra-validator-stub-daemon\n",
            )
            .expect("write stub unit");
        }
    }
    // executables: the build's own must already be there; others get a stub
    let mut texts = Vec::new();
    for dir in [r.join("etc/systemd/system"), sys_units.clone()] {
        collect_files(&dir, &mut texts);
    }
    let mut execs = BTreeSet::new();
    for t in &texts {
        execs.extend(exec_paths(t));
    }
    for exe in execs {
        let target = r.join(exe.trim_start_matches('/'));
        if exe.starts_with("/etc/") || target.exists() {
            continue;
        }
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::write(&target, "#!/bin/sh\nexit 0\n").expect("stub");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    (root, names)
}

fn collect_files(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else if let Ok(t) = std::fs::read_to_string(&p) {
            out.push(t);
        }
    }
}

/// Problems systemd-analyze finds in one host's units.
fn check_units(host: &HostBuild) -> Vec<String> {
    let (root, names) = verify_root(host);
    if names.is_empty() {
        return Vec::new();
    }
    let (ok, out) = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--recursive-errors=yes"])
        .arg(format!("--root={}", root.path().display()))
        .args(&names));
    // systemd-analyze exits 0 on some warnings: treat any line about our files as a problem
    let ours: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    if ok && ours.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "{}: systemd-analyze verify {}:\n{}",
            host.host,
            names.join(" "),
            out
        )]
    }
}

#[test]
fn every_generated_unit_passes_systemd_analyze_verify() {
    if !have("units", &["systemd-analyze"]) {
        return;
    }
    let mut problems = Vec::new();
    let mut count = 0;
    for (name, build) in builds() {
        for host in build.hosts.values() {
            count += host.units.len();
            problems.extend(check_units(host).into_iter().map(|p| format!("{name}/{p}")));
        }
    }
    assert!(
        count >= 20,
        "expected the examples to generate units, found {count}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_broken_unit_fails_systemd_analyze_verify() {
    if !have("units", &["systemd-analyze"]) {
        return;
    }
    // an unknown section
    let build = broken("accounting", "job/job.service.hbs", |t| {
        format!("{t}\n[Bogus]\nKey=1\n")
    });
    let problems = check_units(&build.hosts["alpha"]);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Unknown section 'Bogus'")),
        "systemd-analyze must reject the bogus section: {problems:?}"
    );
    // an ExecStart= that does not exist in the build
    let build = broken("minimal", "service/service.service.hbs", |t| {
        t.replace(
            "ExecStart=/etc/infra/service/{{name}}/run.sh",
            "ExecStart=/etc/infra/service/{{name}}/missing.sh",
        )
    });
    let problems = check_units(&build.hosts["solo"]);
    assert!(
        problems.iter().any(|p| p.contains("missing.sh")),
        "systemd-analyze must reject a missing ExecStart binary: {problems:?}"
    );
    // a broken drop-in on a distribution unit
    let build = broken("accounting", "postgres/dropin.conf.hbs", |t| {
        t.replace("ExecStartPre=", "ExecStartPreX=")
    });
    let problems = check_units(&build.hosts["beta"]);
    assert!(
        problems.iter().any(|p| p.contains("ExecStartPreX")),
        "systemd-analyze must reject the drop-in's unknown key: {problems:?}"
    );
}

// ---------------------------------------------------------------------------
// keepalived

static NETNS: AtomicUsize = AtomicUsize::new(0);

/// A network namespace deleted on drop.
struct Netns(String);

impl Netns {
    fn new(interfaces: &BTreeSet<String>) -> Netns {
        let name = format!(
            "infra-val-{}-{}",
            std::process::id(),
            NETNS.fetch_add(1, Ordering::SeqCst)
        );
        let (ok, out) = run(Command::new("ip").args(["netns", "add", &name]));
        assert!(ok, "ip netns add {name}: {out}");
        let ns = Netns(name);
        for (i, ifname) in interfaces.iter().enumerate() {
            // the dummy driver is not always available: a veth pair works everywhere
            let peer = format!("infraval{i}");
            let (ok, out) = run(Command::new("ip").args([
                "-n", &ns.0, "link", "add", ifname, "type", "veth", "peer", "name", &peer,
            ]));
            assert!(ok, "creating {ifname} in {}: {out}", ns.0);
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// `keepalived -t` on one host's keepalived.conf, with its scripts in place
/// (keepalived checks them), inside a fresh namespace. None when the host has no
/// keepalived.conf.
fn check_keepalived(host: &HostBuild) -> Option<(bool, String)> {
    host.files.get("/etc/keepalived/keepalived.conf")?;
    let dir = tempfile::tempdir().expect("tempdir");
    write_tree(dir.path(), host);
    let interfaces: BTreeSet<String> = host.roles.iter().map(|r| r.interface.clone()).collect();
    let ns = Netns::new(&interfaces);
    let etc = dir.path().join("etc/keepalived");
    let script = format!(
        "mount --bind {} /etc/keepalived && exec keepalived -t -f /etc/keepalived/keepalived.conf",
        etc.display()
    );
    let result = run(
        Command::new("ip").args(["netns", "exec", &ns.0, "unshare", "-m", "sh", "-c", &script])
    );
    drop(ns);
    Some(result)
}

#[test]
fn every_keepalived_conf_passes_keepalived_t() {
    if !lab("keepalived -t") || !have("keepalived -t", &["keepalived", "ip", "unshare"]) {
        return;
    }
    let mut checked = 0;
    let mut problems = Vec::new();
    for (name, build) in builds() {
        for host in build.hosts.values() {
            if let Some((ok, out)) = check_keepalived(host) {
                checked += 1;
                if !ok {
                    problems.push(format!("{name}/{}: keepalived -t fails:\n{out}", host.host));
                }
            }
        }
    }
    assert!(
        checked >= 5,
        "expected keepalived.conf on the group members, checked {checked}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_broken_keepalived_conf_fails_keepalived_t() {
    if !lab("keepalived -t") || !have("keepalived -t", &["keepalived", "ip", "unshare"]) {
        return;
    }
    // `state MASTER` with `nopreempt` is rejected by keepalived 2.2.7
    let build = broken("accounting", "keepalived/keepalived.conf.hbs", |t| {
        t.replace("state BACKUP", "state MASTER")
    });
    let (ok, out) = check_keepalived(&build.hosts["alpha"]).expect("alpha has keepalived.conf");
    assert!(
        !ok,
        "keepalived -t must reject state MASTER + nopreempt:\n{out}"
    );
    assert!(
        out.contains("nopreempt"),
        "the rejection should be about nopreempt:\n{out}"
    );
    // an interface that does not exist on the host
    let build = broken("accounting", "keepalived/keepalived.conf.hbs", |t| {
        t.replace("interface {{interface}}", "interface nosuch0")
    });
    let (ok, out) = check_keepalived(&build.hosts["alpha"]).expect("alpha has keepalived.conf");
    assert!(!ok, "keepalived -t must reject a missing interface:\n{out}");
    // a health-check script that is not there
    let mut build = crate::golden::build_example("accounting");
    let alpha = build.hosts.get_mut("alpha").expect("alpha");
    alpha.files.remove("/etc/keepalived/infra-check-office.sh");
    let (ok, out) = check_keepalived(alpha).expect("alpha has keepalived.conf");
    assert!(
        !ok,
        "keepalived -t must reject a missing track script:\n{out}"
    );
}

// ---------------------------------------------------------------------------
// keepalived failover drill: the generated keepalived.conf, check and notify
// scripts running for real in two network namespaces joined by a veth pair.

/// A process killed (SIGTERM, then SIGKILL) on drop.
struct Proc(std::process::Child);

impl Proc {
    fn spawn(cmd: &mut Command, log: &Path) -> Proc {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        Proc(
            cmd.stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}")),
        )
    }

    fn terminate(&mut self) {
        let pid = self.0.id() as libc::pid_t;
        // SAFETY: sending a signal to a child we spawned and have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        for _ in 0..50 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.terminate();
        }
    }
}

/// Two namespaces joined by a veth pair named `eth0` on both sides.
struct Pair(Netns, Netns);

impl Pair {
    fn new(a_addr: &str, b_addr: &str) -> Pair {
        let a = Netns::new(&BTreeSet::new());
        let b = Netns::new(&BTreeSet::new());
        let ip = |args: &[&str]| {
            let (ok, out) = run(Command::new("ip").args(args));
            assert!(ok, "ip {}: {out}", args.join(" "));
        };
        ip(&[
            "-n", &a.0, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            &b.0,
        ]);
        for (ns, addr) in [(&a.0, a_addr), (&b.0, b_addr)] {
            ip(&["-n", ns, "addr", "add", addr, "dev", "eth0"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        Pair(a, b)
    }
}

fn has_vip(ns: &str, vip: &str) -> bool {
    run(Command::new("ip").args(["-n", ns, "-o", "addr", "show", "to", vip]))
        .1
        .contains(vip)
}

fn wait_for(what: &str, secs: u64, logs: &[&Path], cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let logs: Vec<String> = logs
        .iter()
        .map(|l| {
            format!(
                "== {}\n{}",
                l.display(),
                std::fs::read_to_string(l).unwrap_or_default()
            )
        })
        .collect();
    panic!(
        "timed out after {secs} s waiting for: {what}\n{}",
        logs.join("\n")
    );
}

#[test]
fn keepalived_failover_drill_in_namespaces() {
    if !lab("keepalived failover drill")
        || !have(
            "keepalived failover drill",
            &["keepalived", "ip", "unshare", "curl", "python3"],
        )
    {
        return;
    }
    let build = crate::golden::build_example("accounting");
    let (alpha, beta) = (&build.hosts["alpha"], &build.hosts["beta"]);
    let role = &alpha.roles[0];
    let vip = role.vip.split('/').next().expect("vip address").to_string();
    let prefix = role.vip.split('/').nth(1).expect("prefix");
    let tmp = tempfile::tempdir().expect("tempdir");
    let pair = Pair::new(
        &format!("{}/{prefix}", alpha.address),
        &format!("{}/{prefix}", beta.address),
    );
    let nodes = [(alpha, &pair.0 .0), (beta, &pair.1 .0)];
    for (host, _) in nodes {
        let d = tmp.path().join(&host.host);
        write_tree(&d, host);
        std::fs::create_dir_all(d.join("run")).expect("mkdir");
        std::fs::create_dir_all(d.join("www")).expect("mkdir");
        std::fs::write(d.join("www/health"), "ok\n").expect("write");
        // no database here: the postgres kind's takeover test (pg_isready on the
        // other member) would always say no; the group's own (the other member's
        // health URL) stays
        let takeover = d.join("etc/keepalived/infra-takeover-office.d");
        assert!(takeover.is_dir(), "{} is built", takeover.display());
        std::fs::remove_dir_all(&takeover).expect("rm takeover.d");
    }
    let dir = |h: &HostBuild| tmp.path().join(&h.host);
    let flag = |h: &HostBuild| dir(h).join("run/infra/office/active");
    let http = |h: &HostBuild, ns: &str| {
        Proc::spawn(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ns,
                    "python3",
                    "-m",
                    "http.server",
                    "80",
                    "--bind",
                    "0.0.0.0",
                    "--directory",
                ])
                .arg(dir(h).join("www")),
            &dir(h).join("http.log"),
        )
    };
    let keepalived = |h: &HostBuild, ns: &str| {
        let script = format!(
            "mount --bind {}/etc/keepalived /etc/keepalived && mount --bind {}/run /run && exec keepalived -n -l -D -f /etc/keepalived/keepalived.conf",
            dir(h).display(),
            dir(h).display()
        );
        Proc::spawn(
            Command::new("ip").args(["netns", "exec", ns, "unshare", "-m", "sh", "-c", &script]),
            &dir(h).join("keepalived.log"),
        )
    };
    let (na, nb) = (&pair.0 .0, &pair.1 .0);
    let logs_buf = [
        dir(alpha).join("keepalived.log"),
        dir(beta).join("keepalived.log"),
    ];
    let logs: Vec<&Path> = logs_buf.iter().map(PathBuf::as_path).collect();
    let mut http_a = http(alpha, na);
    let mut http_b = http(beta, nb);
    let _ka = keepalived(alpha, na);
    let mut kb = keepalived(beta, nb);

    // 1. both start as BACKUP; alpha (priority 150) takes the VIP and its notify writes the flag
    wait_for("alpha holds the VIP and its active flag", 30, &logs, || {
        has_vip(na, &vip) && flag(alpha).exists()
    });
    assert!(
        !has_vip(nb, &vip) && !flag(beta).exists(),
        "only one member may be active"
    );

    // 2. alpha's health check fails while beta hangs (its port takes connections
    // and answers nothing): nobody could take the VIP over (alpha's takeover test
    // asks beta's health URL, 1 s), so alpha keeps it well past 3 failed checks 2 s
    // apart
    http_b.terminate();
    let hung = "import socket, time\n\
                s = socket.socket()\n\
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                s.bind(('0.0.0.0', 80))\n\
                s.listen(64)\n\
                time.sleep(600)\n";
    let mut hung_b = Proc::spawn(
        Command::new("ip").args(["netns", "exec", nb, "python3", "-c", hung]),
        &dir(beta).join("hung.log"),
    );
    http_a.terminate();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(12);
    while std::time::Instant::now() < end {
        assert!(
            has_vip(na, &vip) && flag(alpha).exists() && !has_vip(nb, &vip),
            "alpha gave the VIP up with nobody to take it:\n{}",
            std::fs::read_to_string(&logs_buf[0]).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }

    // then beta is healthy again: alpha's failing check gives the VIP up (FAULT),
    // beta takes over, flags follow
    hung_b.terminate();
    let _http_b2 = http(beta, nb);
    wait_for(
        "beta takes the VIP after alpha's check fails",
        40,
        &logs,
        || has_vip(nb, &vip) && flag(beta).exists() && !has_vip(na, &vip) && !flag(alpha).exists(),
    );

    // 3. alpha recovers: nopreempt keeps the VIP on beta although alpha's priority is higher
    let _http_a2 = http(alpha, na);
    wait_for("alpha back to BACKUP", 30, &logs, || {
        std::fs::read_to_string(&logs_buf[0])
            .unwrap_or_default()
            .matches("Entering BACKUP STATE")
            .count()
            >= 2
    });
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(
        has_vip(nb, &vip) && flag(beta).exists(),
        "nopreempt: beta must keep the VIP"
    );
    assert!(
        !has_vip(na, &vip) && !flag(alpha).exists(),
        "nopreempt: alpha must not take the VIP back"
    );

    // 4. keepalived stops on beta: notify_stop removes its flag, alpha takes over
    kb.terminate();
    wait_for(
        "alpha takes over when keepalived stops on beta",
        30,
        &logs,
        || !flag(beta).exists() && has_vip(na, &vip) && flag(alpha).exists(),
    );
}
