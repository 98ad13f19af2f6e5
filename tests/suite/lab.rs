//! `infra lab`: specs and names (always), and real hosts booted with systemd-nspawn
//! (only with INFRA_LAB_TESTS=1, as root: CI sets it).

use infra::lab::{self, HostState, LabError, LabHost, LabSpec, Progress};
use infra::resolve::model::*;
use infra::source::{SourceMap, Span};
use std::collections::BTreeSet;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

fn two_hosts(name: &str) -> LabSpec {
    LabSpec {
        reserved: vec![ip("192.0.2.10")],
        ..LabSpec::new(
            name,
            vec![
                LabHost::new("alpha", ip("192.0.2.11")),
                LabHost::new("beta", ip("192.0.2.12")),
            ],
        )
    }
}

// ---------------------------------------------------------------- always

fn model() -> Model {
    let mut sources = SourceMap::new();
    let f = sources.add("main.infra", "x");
    let sp = Span::new(f, 0, 1);
    let s = |v: &str| Spanned::new(v.to_string(), sp);
    let host = |n: &str, a: &str, ssh: Ssh| Host {
        name: s(n),
        span: sp,
        address: Spanned::new(ip(a), sp),
        ssh,
        tags: Vec::new(),
    };
    Model {
        hosts: vec![
            host("alpha", "10.1.2.11", Ssh::default()),
            host(
                "beta",
                "10.1.2.12",
                Ssh {
                    user: "admin".into(),
                    port: 2222,
                    key: None,
                },
            ),
            host("gamma", "10.9.0.5", Ssh::default()),
        ],
        groups: vec![Group {
            name: s("office"),
            span: sp,
            members: vec![
                Spanned::new(HostId::new(0), sp),
                Spanned::new(HostId::new(1), sp),
            ],
            vip: Spanned::new(
                Cidr {
                    addr: ip("10.1.2.254"),
                    prefix: 23,
                },
                sp,
            ),
            interface: s("ens3"),
            check: Spanned::new(Check::Tcp(22), sp),
            check_packages: vec![],
            router_id: Spanned::new(51, sp),
            priorities: Spanned::new(vec![150, 100], sp),
            witness: None,
        }],
        instances: vec![],
        admins: vec![],
        sources,
    }
}

#[test]
fn spec_from_model_takes_interface_and_prefix_from_the_group() {
    let spec = LabSpec::from_model("office", &model());
    assert_eq!(spec.name, "office");
    let a = spec.host("alpha").expect("alpha");
    assert_eq!(
        (a.address, a.prefix, a.interface.as_str()),
        (ip("10.1.2.11"), 23, "ens3")
    );
    let b = spec.host("beta").expect("beta");
    assert_eq!(
        (b.ssh_user.as_str(), b.ssh_port, b.interface.as_str()),
        ("admin", 2222, "ens3")
    );
    let g = spec.host("gamma").expect("gamma");
    assert_eq!(
        (g.prefix, g.interface.as_str()),
        (24, "eth0"),
        "no group: /24 on eth0"
    );
    assert_eq!(spec.reserved, vec![ip("10.1.2.254")]);
    spec.validate().expect("valid");
    // The lab's own address: the highest free one of each subnet, never the VIP.
    let addrs = spec.lab_addresses().expect("addresses");
    assert_eq!(addrs, vec![(ip("10.1.3.254"), 23), (ip("10.9.0.254"), 24)]);
}

#[test]
fn lab_address_skips_hosts_and_vips() {
    let mut spec = two_hosts("t");
    spec.hosts.push(LabHost::new("gamma", ip("192.0.2.254")));
    spec.reserved.push(ip("192.0.2.253"));
    assert_eq!(
        spec.lab_addresses().expect("addresses"),
        vec![(ip("192.0.2.252"), 24)]
    );
}

#[test]
fn invalid_specs_say_what_to_change() {
    let cases: Vec<(LabSpec, &str)> = vec![
        (LabSpec::new("t", vec![]), "no hosts"),
        (
            LabSpec::new(
                "t",
                vec![
                    LabHost::new("a", ip("192.0.2.11")),
                    LabHost::new("b", ip("192.0.2.11")),
                ],
            ),
            "used by two hosts",
        ),
        (
            LabSpec::new("t", vec![LabHost::new("a", ip("192.0.2.0"))]),
            "network or broadcast",
        ),
        (
            LabSpec::new(
                "t",
                vec![LabHost {
                    prefix: 31,
                    ..LabHost::new("a", ip("192.0.2.11"))
                }],
            ),
            "prefix",
        ),
        (
            LabSpec::new(
                "t",
                vec![LabHost {
                    interface: "a-very-long-interface".into(),
                    ..LabHost::new("a", ip("192.0.2.11"))
                }],
            ),
            "interface",
        ),
        (
            LabSpec::new("Bad Name", vec![LabHost::new("a", ip("192.0.2.11"))]),
            "lab name",
        ),
        (
            LabSpec::new(
                "t",
                vec![
                    LabHost::new("a", ip("192.0.2.11")),
                    LabHost::new("a", ip("192.0.2.12")),
                ],
            ),
            "declared twice",
        ),
        (
            LabSpec {
                packages: vec!["bad name".into()],
                ..LabSpec::new("t", vec![LabHost::new("a", ip("192.0.2.11"))])
            },
            "package",
        ),
        (
            LabSpec {
                reserved: vec![ip("192.0.2.2")],
                ..LabSpec::new(
                    "t",
                    vec![LabHost {
                        prefix: 30,
                        ..LabHost::new("a", ip("192.0.2.1"))
                    }],
                )
            },
            "no free address",
        ),
    ];
    for (spec, want) in cases {
        match spec.validate() {
            Err(e @ LabError::InvalidSpec(_)) => {
                let msg = e.to_string();
                assert!(msg.contains(want), "{msg:?} should mention {want:?}");
                assert_eq!(e.code(), "E0783");
            }
            other => panic!("{spec:?}: expected InvalidSpec mentioning {want:?}, got {other:?}"),
        }
    }
}

#[test]
fn lab_names_come_from_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("Accounting Office");
    std::fs::create_dir(&cfg).expect("mkdir");
    let file = cfg.join("main.infra");
    std::fs::write(&file, "").expect("write");
    assert_eq!(lab::lab_name(&cfg), "accounting-office");
    assert_eq!(lab::lab_name(&file), "accounting-office");
    assert_eq!(lab::spec::sanitize("__", 32), "lab");
    assert_eq!(lab::spec::sanitize(&"x".repeat(50), 32).len(), 32);
    assert_eq!(lab::spec::veth_name("alpha"), "v-alpha");
    assert_eq!(lab::spec::veth_name("a-rather-long-host-name").len(), 10);
}

#[test]
fn connect_to_a_lab_that_is_not_up_says_so() {
    let addr: SocketAddr = "192.0.2.11:22".parse().expect("addr");
    let e = lab::connect("no-such-lab-here", addr, Duration::from_millis(100)).expect_err("not up");
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(e.to_string().contains("infra lab up"), "{e}");
    let e = lab::connect("../etc", addr, Duration::from_millis(100)).expect_err("bad name");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[derive(clap::Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    lab: infra::cli::lab::LabCommand,
}

#[test]
fn cli_parses_commands_after_the_double_dash() {
    use clap::Parser;
    use infra::cli::lab::LabCommand;
    let parse = |args: &[&str]| {
        Cli::try_parse_from(std::iter::once("lab").chain(args.iter().copied())).map(|c| c.lab)
    };
    assert_eq!(
        parse(&["exec", "alpha", "--", "ls", "-l", "/"]).expect("exec"),
        LabCommand::Exec {
            host: "alpha".into(),
            lab: None,
            command: vec!["ls".into(), "-l".into(), "/".into()],
        }
    );
    assert!(parse(&["exec", "alpha"]).is_err(), "exec needs a command");
    assert_eq!(
        parse(&["ssh", "--lab", "office", "beta"]).expect("ssh"),
        LabCommand::Ssh {
            host: "beta".into(),
            lab: Some("office".into()),
            command: vec![],
        }
    );
    assert_eq!(
        parse(&["up", "examples/accounting", "--json"]).expect("up"),
        LabCommand::Up {
            dir: Some("examples/accounting".into()),
            json: true,
        }
    );
}

#[test]
fn cli_status_of_a_lab_that_is_not_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cmd = infra::cli::lab::LabCommand::Status {
        dir: None,
        lab: Some("no-such-lab-here".into()),
        json: false,
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let code = infra::cli::lab::run(cmd, dir.path());
    assert_eq!(
        code,
        if root { 0 } else { 1 },
        "root: status of a down lab is not an error; else E0781"
    );
    if root {
        let st = lab::status("no-such-lab-here").expect("status");
        assert!(!st.up && st.hosts.is_empty());
        assert!(matches!(
            lab::kill("no-such-lab-here", "alpha"),
            Err(LabError::NotUp { .. })
        ));
        lab::down("no-such-lab-here").expect("down of nothing is fine");
    } else {
        assert!(matches!(
            lab::status("no-such-lab-here"),
            Err(LabError::NotRoot)
        ));
    }
}

// ---------------------------------------------------------------- real hosts

fn enabled() -> bool {
    crate::lab_tests("lab_end_to_end", "root to boot containers")
}

/// Powers the lab down even when an assertion fails half-way.
struct Guard(&'static str);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = lab::down(self.0);
    }
}

fn run(host: &str, name: &str, argv: &[&str]) -> String {
    let out = crate::deadline::exec_within(name, host, argv, crate::apply_e2e::SH_LIMIT);
    assert!(
        out.status.success(),
        "{argv:?} on {host}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has_vip(lab_name: &str, host: &str) -> bool {
    lab::exec(
        lab_name,
        host,
        &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
    )
    .map(|o| String::from_utf8_lossy(&o.stdout).contains("192.0.2.10/24"))
    .unwrap_or(false)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.elapsed()
}

fn banner(lab_name: &str, addr: &str) -> String {
    let addr: SocketAddr = addr.parse().expect("addr");
    let mut s = lab::connect(lab_name, addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect to {addr} from lab {lab_name}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("banner");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The machine's own network: links, addresses, routes of the root namespace.
fn root_network() -> Vec<String> {
    let mut v = Vec::new();
    for args in [
        &["-o", "link"][..],
        &["-o", "addr"],
        &["route"],
        &["-6", "route"],
    ] {
        let out = Command::new("ip").args(args).output().expect("ip");
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            // Address lifetimes count down: not configuration.
            let mut words = Vec::new();
            let mut skip = false;
            for w in l.split_whitespace() {
                if skip {
                    skip = false;
                } else if w == "valid_lft" || w == "preferred_lft" {
                    skip = true;
                } else {
                    words.push(w);
                }
            }
            v.push(words.join(" "));
        }
    }
    v.sort();
    v
}

fn netns_inode(ns: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(Path::new("/run/netns").join(ns))
        .unwrap_or_else(|e| panic!("netns {ns}: {e}"))
        .ino()
}

/// Everything on the machine that still refers to the lab: processes (by command line or
/// network namespace), mounts (in any mount namespace), namespace files, directories.
fn leftovers(name: &str, inodes: &BTreeSet<u64>) -> Vec<String> {
    let disk = format!("/var/lib/infra/lab/{name}/");
    let ns_refs: Vec<String> = inodes.iter().map(|i| format!("net:[{i}]")).collect();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        if zombie || pid == std::process::id() {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&disk) {
            found.push(format!("process {pid}: {cmd}"));
        }
        if let Ok(l) = std::fs::read_link(format!("/proc/{pid}/ns/net")) {
            let l = l.to_string_lossy().into_owned();
            if ns_refs.contains(&l) {
                found.push(format!("process {pid} in lab namespace {l}: {cmd}"));
            }
        }
        let mi = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        for line in mi.lines() {
            if line.contains(disk.trim_end_matches('/'))
                || ns_refs.iter().any(|r| line.contains(r.as_str()))
            {
                found.push(format!("mount seen by {pid}: {line}"));
            }
        }
    }
    for ns in std::fs::read_dir("/run/netns")
        .map(|d| d.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let n = ns.file_name().to_string_lossy().into_owned();
        if n == format!("infra-{name}") || n.starts_with(&format!("infra-{name}.")) {
            found.push(format!("namespace /run/netns/{n}"));
        }
    }
    for d in [
        format!("/run/infra/lab/{name}"),
        format!("/var/lib/infra/lab/{name}"),
    ] {
        if Path::new(&d).exists() {
            found.push(format!("directory {d}"));
        }
    }
    found
}

fn keepalived_conf(me: &str, ip_me: &str, peer: &str, priority: u8) -> String {
    format!(
        "global_defs {{\n  router_id {me}\n}}\n\
         vrrp_instance office {{\n  state BACKUP\n  nopreempt\n  interface eth0\n  virtual_router_id 51\n  \
         priority {priority}\n  advert_int 1\n  unicast_src_ip {ip_me}\n  unicast_peer {{\n    {peer}\n  }}\n  \
         virtual_ipaddress {{\n    192.0.2.10/24 dev eth0\n  }}\n}}\n"
    )
}

#[test]
fn lab_end_to_end() {
    if !enabled() {
        return;
    }
    const NAME: &str = "suitelab";
    const OTHER: &str = "suitelab2";
    let _ = lab::down(NAME);
    let _ = lab::down(OTHER);
    let _guard = (Guard(NAME), Guard(OTHER));
    let network_before = root_network();

    // Boot (the image build, when it is not cached, is part of this).
    let t = Instant::now();
    let status =
        lab::up(&two_hosts(NAME), &Progress::plain()).unwrap_or_else(|e| panic!("up: {e}"));
    eprintln!(
        "lab: up of 2 hosts (with image build if cold): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(status.up);
    assert_eq!(status.addresses, vec!["192.0.2.254/24".to_string()]);
    assert_eq!(status.hosts.len(), 2);
    for h in &status.hosts {
        match &h.state {
            HostState::Running => {}
            HostState::Degraded { failed } => {
                assert!(
                    !failed.is_empty(),
                    "{}: degraded must name its failed units",
                    h.name
                );
                eprintln!("lab: {} is degraded; failed units: {failed:?}", h.name);
            }
            other => panic!("{} is {other} after up", h.name),
        }
        // exits 1 for "degraded", which this test accepts: read its answer only
        let out = lab::exec(NAME, &h.name, &["systemctl", "is-system-running"])
            .unwrap_or_else(|e| panic!("exec on {}: {e}", h.name));
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            matches!(s.trim(), "running" | "degraded"),
            "{}: {s}",
            h.name
        );
        if s.trim() == "degraded" {
            let failed = run(
                &h.name,
                NAME,
                &["systemctl", "--failed", "--no-legend", "--plain"],
            );
            assert!(!failed.trim().is_empty(), "degraded without a failed unit");
            eprintln!("lab: {} degraded: {failed}", h.name);
        }
        assert_eq!(run(&h.name, NAME, &["hostname"]).trim(), h.name);
    }
    let pids: Vec<Option<u32>> = status.hosts.iter().map(|h| h.pid).collect();
    assert!(pids.iter().all(Option::is_some));
    let inodes: BTreeSet<u64> = [
        "infra-suitelab",
        "infra-suitelab.alpha",
        "infra-suitelab.beta",
    ]
    .iter()
    .map(|n| netns_inode(n))
    .collect();

    // The machine's own network is untouched; the hosts carry their addresses on eth0.
    assert_eq!(
        root_network(),
        network_before,
        "the root network namespace changed"
    );
    let a = run(
        "alpha",
        NAME,
        &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
    );
    assert!(a.contains("inet 192.0.2.11/24"), "{a}");
    let b = run(
        "beta",
        NAME,
        &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
    );
    assert!(b.contains("inet 192.0.2.12/24"), "{b}");

    // From the lab namespace: TCP (the transport's path) and the ssh command with the
    // lab key and pinned host keys (StrictHostKeyChecking=yes).
    assert!(banner(NAME, "192.0.2.11:22").starts_with("SSH-2.0-"));
    assert!(banner(NAME, "192.0.2.12:22").starts_with("SSH-2.0-"));
    let (key, known) = lab::ssh_identity(NAME);
    assert!(key.exists() && known.exists());
    let out = lab::ssh_command(NAME, "beta", &["hostname".to_string()])
        .expect("ssh command")
        .output()
        .expect("ssh");
    assert!(
        out.status.success(),
        "ssh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "beta");

    // Host to host: each host gets its own key, authorized on the other; ssh both ways.
    for (from, to, to_ip) in [
        ("alpha", "beta", "192.0.2.12"),
        ("beta", "alpha", "192.0.2.11"),
    ] {
        run(from, NAME, &["sh", "-c", "test -f /root/.ssh/id_ed25519 || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519"]);
        let key = run(from, NAME, &["cat", "/root/.ssh/id_ed25519.pub"]);
        run(
            to,
            NAME,
            &[
                "sh",
                "-c",
                "echo \"$1\" >> /root/.ssh/authorized_keys",
                "sh",
                key.trim(),
            ],
        );
        let dest = format!("root@{to_ip}");
        let got = run(
            from,
            NAME,
            &[
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
                &dest,
                "hostname",
            ],
        );
        assert_eq!(got.trim(), to, "ssh {from} -> {to}");
    }
    // By name too (/etc/hosts lists the lab hosts).
    assert_eq!(
        run(
            "alpha",
            NAME,
            &[
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "beta",
                "hostname"
            ]
        )
        .trim(),
        "beta"
    );

    // A second lab with the same addresses coexists, isolated.
    let other = LabSpec::new(OTHER, vec![LabHost::new("alpha", ip("192.0.2.11"))]);
    lab::up(&other, &Progress::silent()).unwrap_or_else(|e| panic!("up {OTHER}: {e}"));
    assert_eq!(run("alpha", OTHER, &["hostname"]).trim(), "alpha");
    assert!(banner(OTHER, "192.0.2.11:22").starts_with("SSH-"));
    let k1 = std::fs::read_to_string(lab::ssh_identity(NAME).1).expect("known_hosts");
    let k2 = std::fs::read_to_string(lab::ssh_identity(OTHER).1).expect("known_hosts");
    assert_ne!(k1, k2, "each host has its own host keys");
    // infra crashed and its state is lost (or /run was cleared): down still finds and
    // removes everything, and leaves the other lab alone.
    let other_inodes: BTreeSet<u64> = ["infra-suitelab2", "infra-suitelab2.alpha"]
        .iter()
        .map(|n| netns_inode(n))
        .collect();
    std::fs::remove_dir_all(format!("/run/infra/lab/{OTHER}")).expect("drop the state");
    lab::down(OTHER).expect("down other");
    let left = leftovers(OTHER, &other_inodes);
    assert!(
        left.is_empty(),
        "left after down without state:\n{}",
        left.join("\n")
    );
    assert_eq!(
        run("alpha", NAME, &["hostname"]).trim(),
        "alpha",
        "the first lab survives"
    );

    // keepalived: unicast VRRP, nopreempt, both BACKUP. alpha starts first and takes the VIP.
    for (h, me, peer, prio) in [
        ("alpha", "192.0.2.11", "192.0.2.12", 150),
        ("beta", "192.0.2.12", "192.0.2.11", 100),
    ] {
        let conf = keepalived_conf(h, me, peer, prio);
        run(
            h,
            NAME,
            &[
                "sh",
                "-c",
                "printf '%s' \"$1\" > /etc/keepalived/keepalived.conf",
                "sh",
                &conf,
            ],
        );
        run(
            h,
            NAME,
            &["keepalived", "-t", "-f", "/etc/keepalived/keepalived.conf"],
        );
    }
    run("alpha", NAME, &["systemctl", "start", "keepalived"]);
    wait_for("the VIP on alpha", Duration::from_secs(15), || {
        has_vip(NAME, "alpha")
    });
    run("beta", NAME, &["systemctl", "start", "keepalived"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        has_vip(NAME, "alpha") && !has_vip(NAME, "beta"),
        "beta must stay backup"
    );

    // Pull alpha's plug: the VIP moves to beta (keepalived could add it: CAP_NET_ADMIN).
    let alpha_mac = run("alpha", NAME, &["cat", "/sys/class/net/eth0/address"]);
    let bridge_mac = lab_link_mac(NAME, "br0");
    let t = Instant::now();
    lab::kill(NAME, "alpha").expect("kill alpha");
    let killed_in = t.elapsed();
    let moved = wait_for("the VIP on beta", Duration::from_secs(20), || {
        has_vip(NAME, "beta")
    });
    eprintln!(
        "lab: kill took {:.2} s, VIP on beta {:.1} s later",
        killed_in.as_secs_f64(),
        moved.as_secs_f64()
    );
    assert!(matches!(
        lab::exec(NAME, "alpha", &["true"]),
        Err(LabError::HostDown { .. })
    ));
    assert!(
        banner(NAME, "192.0.2.10:22").starts_with("SSH-"),
        "the VIP answers from beta"
    );
    let st = lab::status(NAME).expect("status");
    let state = |n: &str| {
        st.hosts
            .iter()
            .find(|h| h.name == n)
            .map(|h| h.state.clone())
    };
    assert_eq!(state("alpha"), Some(HostState::Stopped));
    assert!(matches!(
        state("beta"),
        Some(HostState::Running | HostState::Degraded { .. })
    ));
    // alpha's namespace is really gone (no process or mount holds it): its VIP went with it.
    let alpha_ns = netns_inode_gone(&inodes, NAME);
    assert!(alpha_ns, "alpha's network namespace outlived the power cut");

    // Power alpha on again: same disk (its key is still there), VIP stays on beta.
    let t = Instant::now();
    let s = lab::start(NAME, "alpha").expect("start alpha");
    eprintln!(
        "lab: start of alpha {:.1} s ({s})",
        t.elapsed().as_secs_f64()
    );
    assert!(matches!(s, HostState::Running | HostState::Degraded { .. }));
    run("alpha", NAME, &["test", "-f", "/root/.ssh/id_ed25519"]);
    assert!(!has_vip(NAME, "alpha") && has_vip(NAME, "beta"));
    // Same MACs as before (a new one would leave the neighbours' ARP caches wrong for up
    // to 45 s): alpha's keepalived hears beta's adverts at once and stays backup.
    assert_eq!(
        run("alpha", NAME, &["cat", "/sys/class/net/eth0/address"]),
        alpha_mac
    );
    assert_eq!(lab_link_mac(NAME, "br0"), bridge_mac);
    run("alpha", NAME, &["systemctl", "start", "keepalived"]);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !has_vip(NAME, "alpha") && has_vip(NAME, "beta"),
        "alpha must rejoin as backup"
    );

    // `up` again is harmless: the running hosts are left alone.
    let t = Instant::now();
    let again = lab::up(&two_hosts(NAME), &Progress::silent()).expect("up again");
    eprintln!("lab: up again {:.2} s", t.elapsed().as_secs_f64());
    let beta_pid = again
        .hosts
        .iter()
        .find(|h| h.name == "beta")
        .and_then(|h| h.pid);
    assert_eq!(beta_pid, pids[1], "beta was not restarted");
    assert!(has_vip(NAME, "beta"));
    // A changed configuration is refused while the lab runs.
    let mut changed = two_hosts(NAME);
    changed.hosts[1].address = ip("192.0.2.13");
    assert!(matches!(
        lab::up(&changed, &Progress::silent()),
        Err(LabError::Changed { .. })
    ));

    // Down: nothing left anywhere; and down again is fine.
    let mut inodes_now = inodes.clone();
    inodes_now.insert(netns_inode("infra-suitelab.alpha"));
    // alpha's first namespace was freed at its restart: its number may be another
    // lab's namespace by now (seen in a full run: the witness drill's beta), and
    // that lab's mounts are not this one's leftovers
    for (ino, n) in other_labs_namespaces(NAME) {
        if inodes_now.remove(&ino) {
            eprintln!("a freed namespace number of this lab is now {n}'s");
        }
    }
    let t = Instant::now();
    lab::down(NAME).expect("down");
    eprintln!("lab: down {:.2} s", t.elapsed().as_secs_f64());
    let left = leftovers(NAME, &inodes_now);
    assert!(left.is_empty(), "left after down:\n{}", left.join("\n"));
    assert_eq!(
        root_network(),
        network_before,
        "the root network namespace changed"
    );
    lab::down(NAME).expect("down twice");
    assert!(!lab::status(NAME).expect("status").up);
}

fn lab_link_mac(name: &str, link: &str) -> String {
    let out = Command::new("ip")
        .args([
            "-n",
            &format!("infra-{name}"),
            "-br",
            "link",
            "show",
            "dev",
            link,
        ])
        .output()
        .expect("ip");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

/// The namespaces in /run/netns that are not lab `name`'s (other labs running beside
/// this test): inode number and name.
fn other_labs_namespaces(name: &str) -> Vec<(u64, String)> {
    use std::os::unix::fs::MetadataExt;
    let own = format!("infra-{name}");
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let ino = std::fs::metadata(e.path()).ok()?.ino();
            (n != own && !n.starts_with(&format!("{own}."))).then_some((ino, n))
        })
        .collect()
}

/// True when no process or mount anywhere still refers to alpha's old namespace.
fn netns_inode_gone(inodes: &BTreeSet<u64>, name: &str) -> bool {
    // Only alpha's namespace is gone; the lab and beta namespaces still exist.
    let live: BTreeSet<u64> = [format!("infra-{name}"), format!("infra-{name}.beta")]
        .iter()
        .map(|n| netns_inode(n))
        .collect();
    let gone: BTreeSet<u64> = inodes.difference(&live).copied().collect();
    assert_eq!(gone.len(), 1);
    // Namespace inode numbers are recycled: another lab running beside this test
    // may have been given alpha's freed number, which proves it was freed.
    if let Some(n) = other_labs_namespaces(name)
        .iter()
        .find(|(ino, _)| gone.contains(ino))
        .map(|(_, n)| n)
    {
        eprintln!("alpha's freed namespace number was reused by {n}");
        return true;
    }
    let found = leftovers("no-such-lab-name", &gone);
    if !found.is_empty() {
        eprintln!(
            "still referring to alpha's namespace:\n{}",
            found.join("\n")
        );
    }
    found.is_empty()
}
