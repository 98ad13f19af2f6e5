//! `infra lab`: the declared hosts booted locally as real systemd machines.
//!
//! Each host is a `systemd-nspawn` container booting Debian's systemd, on its own overlay
//! over a cached Debian image ([`image`]), in its own network namespace whose interface
//! (named as declared, e.g. `eth0`) carries the declared address. A bridge in a lab
//! namespace (`infra-<lab>`) joins the hosts; the lab namespace also has an address on
//! their subnet, and every client connection of the lab ([`connect`], [`ssh`]) is made
//! from inside it. Nothing is configured in the machine's own network namespace.
//!
//! Invariants:
//! - lab addresses exist only in namespaces the lab created; `down` removes them all;
//! - a host's overlay is mounted only in the private mount namespace of its nspawn
//!   process, so no mount outlives the process;
//! - the image is complete or absent (built aside, renamed), and never written to;
//! - `up` and `down` are idempotent; `down` needs no state (it cleans after a crash).
//!
//! See docs/lab.md.

mod error;
pub mod image;
pub mod limits;
mod machine;
mod net;
pub mod paths;
mod progress;
pub mod spec;
mod sys;

pub use error::LabError;
pub use machine::HostState;
pub use progress::Progress;
pub use spec::{lab_name, LabHost, LabSpec};

use machine::Tools;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a host may take to boot (systemd up and sshd answering).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// A lab as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabStatus {
    pub name: String,
    /// False when the lab is not up (then `hosts` is empty).
    pub up: bool,
    /// The lab network namespace, where the SSH client side lives.
    pub namespace: String,
    /// The lab namespace's own addresses (CIDR), one per subnet.
    pub addresses: Vec<String>,
    pub hosts: Vec<HostStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostStatus {
    pub name: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub interface: String,
    #[serde(flatten)]
    pub state: HostState,
    /// systemd-nspawn's pid when powered on.
    pub pid: Option<u32>,
    /// Boot log (the container's console).
    pub log: PathBuf,
}

impl std::fmt::Display for LabStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.up {
            return writeln!(f, "lab {}: down", self.name);
        }
        writeln!(
            f,
            "lab {}: namespace {}, lab address {}",
            self.name,
            self.namespace,
            self.addresses.join(", ")
        )?;
        let w = self.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
        for h in &self.hosts {
            let addr = format!("{}/{}", h.address, h.prefix);
            writeln!(
                f,
                "  {:w$}  {:18} {:6} {}",
                h.name, addr, h.interface, h.state
            )?;
        }
        Ok(())
    }
}

/// What `up` records for the other commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    version: u32,
    spec: LabSpec,
    /// The image root the hosts' overlays are on (kept while the lab exists).
    image: PathBuf,
    image_hash: String,
    addresses: Vec<(Ipv4Addr, u8)>,
}

const STATE_VERSION: u32 = 1;

impl State {
    fn host(&self, host: &str) -> Result<&LabHost, LabError> {
        self.spec.host(host).ok_or_else(|| LabError::UnknownHost {
            lab: self.spec.name.clone(),
            host: host.to_string(),
            known: self
                .spec
                .hosts
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

fn load_state(name: &str) -> Result<Option<State>, LabError> {
    let path = paths::state_file(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LabError::io("read", path, e)),
    };
    match serde_json::from_str::<State>(&text) {
        Ok(s) if s.version == STATE_VERSION => Ok(Some(s)),
        _ => Err(LabError::Changed {
            lab: name.to_string(),
            detail: format!(
                "{} is from another version of infra or damaged",
                path.display()
            ),
        }),
    }
}

fn require_state(name: &str) -> Result<State, LabError> {
    load_state(name)?.ok_or_else(|| LabError::NotUp {
        name: name.to_string(),
    })
}

fn save_state(st: &State) -> Result<(), LabError> {
    let text = serde_json::to_string_pretty(st).map_err(|e| LabError::Command {
        what: "writing the lab state".into(),
        detail: e.to_string(),
    })?;
    sys::write_file(
        &paths::state_file(&st.spec.name),
        format!("{text}\n").as_bytes(),
        0o600,
    )
}

/// Linux, root. Everything else is checked where it is needed.
fn preflight() -> Result<(), LabError> {
    if !cfg!(target_os = "linux") {
        return Err(LabError::NotLinux {
            os: std::env::consts::OS,
        });
    }
    if !sys::is_root() {
        return Err(LabError::NotRoot);
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), LabError> {
    spec::check_lab_name(name).map_err(LabError::InvalidSpec)
}

/// Boot every host of `spec` that is not running (building the image first if it is
/// not cached), wait until each is ready, return the lab's status. Running hosts are
/// left alone, so `up` twice is harmless.
pub fn up(spec: &LabSpec, progress: &Progress) -> Result<LabStatus, LabError> {
    preflight()?;
    spec.validate()?;
    // before anything is made: enough inotify for the hosts to boot
    let booting = spec
        .hosts
        .iter()
        .filter(|h| machine::running_pid(&spec.name, &h.name).is_none())
        .count();
    limits::check(booting)?;
    let tools = Tools::find()?;
    let name = spec.name.as_str();
    let image_spec = image::ImageSpec::with_extra(&spec.packages);
    let old = load_state(name)?;
    let state = match old {
        Some(old) => {
            check_same(&old, spec, &image_spec)?;
            if !old.image.is_dir() {
                return Err(LabError::Changed {
                    lab: name.to_string(),
                    detail: format!("its image {} was removed", old.image.display()),
                });
            }
            State {
                spec: merged(&old.spec, spec),
                ..old
            }
        }
        None => {
            // No state: anything there is a leftover (a crash, a reboot). Start clean.
            cleanup(name, &tools.ip)?;
            let image = image::ensure(&image_spec, progress)?;
            State {
                version: STATE_VERSION,
                spec: spec.clone(),
                image,
                image_hash: image_spec.hash(),
                addresses: spec.lab_addresses()?,
            }
        }
    };
    sys::mkdir(&paths::state_dir(name), 0o700)?;
    sys::mkdir(&paths::disk_dir(name), 0o700)?;
    save_state(&state)?;
    let pubkey = ensure_key(&tools, name)?;
    let lab_ns = spec::lab_netns(name);
    tools
        .ip
        .ensure_lab(&lab_ns, &spec::mac(name, "", "lab"), &state.addresses)?;

    // Hosts already running (e.g. from an `up` that was interrupted) are only waited for.
    let running: Vec<Option<u32>> = state
        .spec
        .hosts
        .iter()
        .map(|h| machine::running_pid(name, &h.name))
        .collect();
    let to_boot: Vec<&LabHost> = state
        .spec
        .hosts
        .iter()
        .zip(&running)
        .filter(|(_, pid)| pid.is_none())
        .map(|(h, _)| h)
        .collect();
    if !to_boot.is_empty() {
        let names: Vec<&str> = to_boot.iter().map(|h| h.name.as_str()).collect();
        progress.step(&format!("booting {}", names.join(", ")));
    }
    let started = Instant::now();
    let results: Vec<(String, Result<HostState, LabError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = state
            .spec
            .hosts
            .iter()
            .zip(&running)
            .map(|(h, pid)| {
                let (tools, state, pubkey) = (&tools, &state, &pubkey);
                (
                    h.name.clone(),
                    s.spawn(move || match pid {
                        Some(pid) => machine::wait_ready(tools, name, h, *pid, BOOT_TIMEOUT),
                        None => {
                            let r = power_on(tools, state, h, pubkey);
                            if r.is_ok() {
                                progress.detail(&format!("{} ready", h.name));
                            }
                            r
                        }
                    }),
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|(n, j)| {
                let r = j.join().unwrap_or_else(|_| {
                    Err(LabError::Command {
                        what: format!("booting {n}"),
                        detail: "the boot thread panicked".into(),
                    })
                });
                (n, r)
            })
            .collect()
    });
    progress.finish();
    write_known_hosts(&state)?;
    for (_, r) in results {
        r?;
    }
    if !to_boot.is_empty() {
        progress.note(&format!(
            "{} host(s) booted in {:.1} s",
            to_boot.len(),
            started.elapsed().as_secs_f64()
        ));
    }
    status(name)
}

/// A running lab accepts the same hosts again (and new ones), nothing else.
fn check_same(old: &State, spec: &LabSpec, image_spec: &image::ImageSpec) -> Result<(), LabError> {
    let changed = |detail: String| {
        Err(LabError::Changed {
            lab: spec.name.clone(),
            detail,
        })
    };
    for h in &old.spec.hosts {
        match spec.host(&h.name) {
            None => {
                return changed(format!(
                    "host `{}` is in the lab but not in the configuration",
                    h.name
                ))
            }
            Some(n) if n != h => return changed(format!("host `{}` changed", h.name)),
            Some(_) => {}
        }
    }
    let used: BTreeSet<Ipv4Addr> = spec
        .hosts
        .iter()
        .map(|h| h.address)
        .chain(spec.reserved.iter().copied())
        .collect();
    for (a, _) in &old.addresses {
        if used.contains(a) {
            return changed(format!("{a}, the lab's own address, is now declared"));
        }
    }
    let subnets: BTreeSet<spec::Subnet> = old
        .addresses
        .iter()
        .map(|(a, p)| spec::Subnet::new(*a, *p))
        .collect();
    for h in &spec.hosts {
        if !subnets.contains(&h.subnet()) {
            return changed(format!(
                "host `{}` is on a new subnet {}",
                h.name,
                h.subnet()
            ));
        }
    }
    if image_spec.hash() != old.image_hash {
        return changed("the image package list changed".into());
    }
    Ok(())
}

/// The running lab's hosts, plus new ones from `spec`.
fn merged(old: &LabSpec, spec: &LabSpec) -> LabSpec {
    let mut out = old.clone();
    for h in &spec.hosts {
        if out.host(&h.name).is_none() {
            out.hosts.push(h.clone());
        }
    }
    out.reserved = spec.reserved.clone();
    out
}

fn power_on(
    tools: &Tools,
    state: &State,
    h: &LabHost,
    pubkey: &str,
) -> Result<HostState, LabError> {
    let name = state.spec.name.as_str();
    machine::prepare_disk(tools, name, h, &state.spec.hosts, pubkey)?;
    tools.ip.plug(
        &spec::lab_netns(name),
        &spec::host_netns(name, &h.name),
        &spec::veth_name(&h.name),
        (
            &spec::mac(name, &h.name, "bridge"),
            &spec::mac(name, &h.name, "host"),
        ),
        h,
    )?;
    let pid = machine::boot(tools, name, h, &state.image)?;
    machine::wait_ready(tools, name, h, pid, BOOT_TIMEOUT)
}

/// The lab's throwaway key pair (made once per lab); returns the public key.
fn ensure_key(tools: &Tools, name: &str) -> Result<String, LabError> {
    let key = paths::key(name);
    let pubkey = key.with_extension("pub");
    if !key.exists() || !pubkey.exists() {
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(&pubkey);
        let mut c = sys::command(&tools.ssh_keygen);
        c.args(["-q", "-t", "ed25519", "-N", "", "-C"])
            .arg(format!("infra-lab-{name}"))
            .arg("-f")
            .arg(&key);
        sys::run("generating the lab SSH key", &mut c)?;
    }
    std::fs::read_to_string(&pubkey).map_err(|e| LabError::io("read", pubkey, e))
}

/// Pin every host's SSH host keys (from its disk) for its address (and `[addr]:port`).
fn write_known_hosts(state: &State) -> Result<(), LabError> {
    let name = state.spec.name.as_str();
    let mut out = String::new();
    for h in &state.spec.hosts {
        let ssh = paths::host_disk(name, &h.name).join("upper/etc/ssh");
        let mut pubs: Vec<PathBuf> = std::fs::read_dir(&ssh)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        let f = p
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        f.starts_with("ssh_host_") && f.ends_with(".pub")
                    })
                    .collect()
            })
            .unwrap_or_default();
        pubs.sort();
        let mut names = vec![h.address.to_string()];
        if h.ssh_port != 22 {
            names.push(format!("[{}]:{}", h.address, h.ssh_port));
        }
        for p in pubs {
            let text = std::fs::read_to_string(&p).map_err(|e| LabError::io("read", &p, e))?;
            let mut w = text.split_whitespace();
            if let (Some(kind), Some(key)) = (w.next(), w.next()) {
                out.push_str(&format!("{} {kind} {key}\n", names.join(",")));
            }
        }
    }
    sys::write_file(&paths::known_hosts(name), out.as_bytes(), 0o644)
}

/// The lab's status; `up: false` (and no hosts) when it is not up.
pub fn status(name: &str) -> Result<LabStatus, LabError> {
    preflight()?;
    check_name(name)?;
    let lab_ns = spec::lab_netns(name);
    let Some(state) = load_state(name)? else {
        return Ok(LabStatus {
            name: name.to_string(),
            up: false,
            namespace: lab_ns,
            addresses: Vec::new(),
            hosts: Vec::new(),
        });
    };
    let tools = Tools::find()?;
    let hosts = std::thread::scope(|s| {
        let handles: Vec<_> = state
            .spec
            .hosts
            .iter()
            .map(|h| {
                let tools = &tools;
                s.spawn(move || {
                    let pid = machine::running_pid(name, &h.name);
                    let st = match pid {
                        Some(p) => machine::query(tools, p),
                        None => HostState::Stopped,
                    };
                    HostStatus {
                        name: h.name.clone(),
                        address: h.address,
                        prefix: h.prefix,
                        interface: h.interface.clone(),
                        state: st,
                        pid,
                        log: paths::logfile(name, &h.name),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(&state.spec.hosts)
            .map(|(j, h)| {
                j.join().unwrap_or_else(|_| HostStatus {
                    name: h.name.clone(),
                    address: h.address,
                    prefix: h.prefix,
                    interface: h.interface.clone(),
                    state: HostState::Booting {
                        detail: "status thread panicked".into(),
                    },
                    pid: None,
                    log: paths::logfile(name, &h.name),
                })
            })
            .collect()
    });
    Ok(LabStatus {
        name: name.to_string(),
        up: true,
        namespace: lab_ns,
        addresses: state
            .addresses
            .iter()
            .map(|(a, p)| format!("{a}/{p}"))
            .collect(),
        hosts,
    })
}

/// Power every host off and remove everything the lab made: processes, namespaces (and
/// their veths), mounts, disks, state. Works without state (after a crash) and when
/// nothing is left (idempotent).
pub fn down(name: &str) -> Result<(), LabError> {
    preflight()?;
    check_name(name)?;
    let ip = net::Ip::new()?;
    cleanup(name, &ip)
}

fn cleanup(name: &str, ip: &net::Ip) -> Result<(), LabError> {
    let lab_ns = spec::lab_netns(name);
    let host_prefix = format!("{lab_ns}.");
    let namespaces: Vec<String> = net::list_netns()
        .into_iter()
        .filter(|n| *n == lab_ns || n.starts_with(&host_prefix))
        .collect();
    let machines: Vec<String> = load_state(name)
        .ok()
        .flatten()
        .map(|s| {
            s.spec
                .hosts
                .iter()
                .map(|h| spec::machine_name(name, &h.name))
                .collect()
        })
        .unwrap_or_default();

    // 1. A clean poweroff first (SIGTERM to nspawn), a short grace, then SIGKILL.
    let nspawns = machine::lab_nspawns(name);
    for &p in &nspawns {
        sys::signal(p, libc::SIGTERM);
    }
    if !sys::wait_dead(&nspawns, Duration::from_secs(3)) {
        for &p in &nspawns {
            if sys::pid_alive(p) {
                machine::power_cut(p);
            }
        }
    }
    // 2. Anything else still inside the lab's namespaces (ssh clients, shells).
    let inodes: BTreeSet<u64> = namespaces
        .iter()
        .filter_map(|n| sys::inode(&net::netns_path(n)))
        .collect();
    let me = std::process::id();
    let stray: Vec<u32> = sys::all_pids()
        .into_iter()
        .filter(|&p| p != me && sys::pid_alive(p))
        .filter(|&p| sys::netns_inode_of_pid(p).is_some_and(|i| inodes.contains(&i)))
        .collect();
    for &p in &stray {
        sys::signal(p, libc::SIGKILL);
    }
    sys::wait_dead(&stray, Duration::from_secs(3));
    let left: Vec<u32> = machine::lab_nspawns(name);
    if !left.is_empty() {
        return Err(LabError::Command {
            what: format!("stopping lab {name}"),
            detail: format!(
                "processes {left:?} would not die: kill them and run `infra lab down` again"
            ),
        });
    }
    // 3. Namespaces (their veths go with them).
    for n in namespaces.iter().rev() {
        ip.del_netns(n)?;
    }
    // 4. nspawn's leftovers after a SIGKILL, disks, state.
    for m in machines {
        let d = Path::new("/run/systemd/nspawn/propagate").join(m);
        if d.is_dir() {
            sys::remove_tree(&d)?;
        }
    }
    sys::remove_tree(&paths::disk_dir(name))?;
    sys::remove_tree(&paths::state_dir(name))?;
    Ok(())
}

/// Power one host off abruptly, like pulling its plug: its processes die at once and its
/// network card disappears (with any VIP it held).
pub fn kill(name: &str, host: &str) -> Result<(), LabError> {
    preflight()?;
    check_name(name)?;
    let state = require_state(name)?;
    let h = state.host(host)?;
    let ip = net::Ip::new()?;
    if let Some(pid) = machine::running_pid(name, &h.name) {
        machine::power_cut(pid);
    }
    let _ = std::fs::remove_file(paths::pidfile(name, &h.name));
    ip.unplug(
        &spec::lab_netns(name),
        &spec::host_netns(name, &h.name),
        &spec::veth_name(&h.name),
    )
}

/// Power a host on again (its disk is kept) and wait until it is ready. A running host
/// is left alone.
pub fn start(name: &str, host: &str) -> Result<HostState, LabError> {
    preflight()?;
    check_name(name)?;
    let state = require_state(name)?;
    let h = state.host(host)?.clone();
    let tools = Tools::find()?;
    if let Some(pid) = machine::running_pid(name, &h.name) {
        return Ok(machine::query(&tools, pid));
    }
    if !state.image.is_dir() {
        return Err(LabError::Changed {
            lab: name.to_string(),
            detail: format!("its image {} was removed", state.image.display()),
        });
    }
    let pubkey = ensure_key(&tools, name)?;
    let lab_mac = spec::mac(name, "", "lab");
    tools
        .ip
        .ensure_lab(&spec::lab_netns(name), &lab_mac, &state.addresses)?;
    let r = power_on(&tools, &state, &h, &pubkey);
    write_known_hosts(&state)?;
    r
}

/// A command that runs `argv` inside a powered-on host (as root, in all its namespaces),
/// ready for the caller to choose stdin/stdout and run.
pub fn command(name: &str, host: &str, argv: &[String]) -> Result<Command, LabError> {
    preflight()?;
    check_name(name)?;
    if argv.is_empty() {
        return Err(LabError::InvalidSpec(
            "no command given to run in the host".into(),
        ));
    }
    let state = require_state(name)?;
    let h = state.host(host)?;
    let down = || LabError::HostDown {
        lab: name.to_string(),
        host: h.name.clone(),
    };
    let pid = machine::running_pid(name, &h.name).ok_or_else(down)?;
    let init = machine::init_pid(pid).ok_or_else(down)?;
    Ok(machine::nsenter(&Tools::find()?, init, argv))
}

/// Run a command in a host and collect its output (stdin is empty).
pub fn exec<S: AsRef<str>>(name: &str, host: &str, argv: &[S]) -> Result<Output, LabError> {
    let argv: Vec<String> = argv.iter().map(|s| s.as_ref().to_string()).collect();
    let mut c = command(name, host, &argv)?;
    c.stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Command {
            what: format!("running {:?} on {host}", argv.join(" ")),
            detail: e.to_string(),
        })
}

/// The `ssh` command line that reaches a host from inside the lab namespace with the lab
/// key and pinned host keys, as the declared user on the declared port.
pub fn ssh_command(name: &str, host: &str, argv: &[String]) -> Result<Command, LabError> {
    preflight()?;
    check_name(name)?;
    let state = require_state(name)?;
    let h = state.host(host)?;
    let tools = Tools::find()?;
    let (key, known) = ssh_identity(name);
    let mut c = sys::command(&tools.nsenter);
    c.arg(format!(
        "--net={}",
        net::netns_path(&spec::lab_netns(name)).display()
    ))
    .arg("--")
    .arg(&tools.ssh)
    .arg("-i")
    .arg(&key)
    .arg("-o")
    .arg(format!("UserKnownHostsFile={}", known.display()))
    .args([
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=5",
        "-p",
    ])
    .arg(h.ssh_port.to_string())
    .arg(format!("{}@{}", h.ssh_user, h.address));
    if !argv.is_empty() {
        c.arg("--").args(argv);
    }
    for v in ["HOME", "TERM", "USER", "LOGNAME"] {
        if let Some(x) = std::env::var_os(v) {
            c.env(v, x);
        }
    }
    Ok(c)
}

/// Interactive ssh to a host (stdin/stdout/stderr inherited); `argv` empty for a shell.
pub fn ssh(name: &str, host: &str, argv: &[String]) -> Result<ExitStatus, LabError> {
    let mut c = ssh_command(name, host, argv)?;
    c.status().map_err(|e| LabError::Command {
        what: format!("ssh to {host}"),
        detail: e.to_string(),
    })
}

/// Open a TCP connection from inside the lab namespace (the socket stays there), with
/// TCP_NODELAY set. The SSH transport uses this for `--lab`.
pub fn connect(name: &str, addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    if spec::check_lab_name(name).is_err() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{name}` is not a lab name"),
        ));
    }
    let ns = net::netns_path(&spec::lab_netns(name));
    if !ns.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "lab `{name}` is not up (no {}): run `infra lab up`",
                ns.display()
            ),
        ));
    }
    net::connect_in(&ns, addr, timeout)
}

/// Move the calling thread into the lab namespace: every socket it opens from now on
/// is a lab client (the drill's writer and readers). Call it only on a thread made for
/// it: the thread never comes back to the machine's own namespace.
pub fn enter(name: &str) -> std::io::Result<()> {
    let ns = net::netns_path(&spec::lab_netns(name));
    let file = std::fs::File::open(&ns).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "lab `{name}` is not up (no {}): run `infra lab up`",
                ns.display()
            ),
        )
    })?;
    net::enter(&file)
}

/// The lab namespace's own address on `host`'s subnet: where lab clients connect from.
pub fn client_address(name: &str, host: &str) -> Result<Ipv4Addr, LabError> {
    let state = require_state(name)?;
    let h = state.host(host)?;
    state
        .addresses
        .iter()
        .find(|(a, p)| spec::Subnet::new(*a, *p) == h.subnet())
        .map(|(a, _)| *a)
        .ok_or_else(|| LabError::Changed {
            lab: name.to_string(),
            detail: format!("the lab has no address on {}'s subnet", h.name),
        })
}

/// A network fault on the lab bridge, for the drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// The host's port cannot reach other `Partitioned` ports; the lab namespace
    /// (clients) still reaches it.
    Partitioned,
    /// The host's port is off the bridge: it reaches nobody, nobody reaches it; its link
    /// stays up.
    Detached,
}

/// Set (`on`) or clear a link fault on a powered-on host's bridge port.
pub fn link_fault(name: &str, host: &str, fault: LinkFault, on: bool) -> Result<(), LabError> {
    preflight()?;
    check_name(name)?;
    let state = require_state(name)?;
    let h = state.host(host)?;
    let ip = net::Ip::new()?;
    let lab_ns = spec::lab_netns(name);
    let veth = spec::veth_name(&h.name);
    if !ip.link_exists(&lab_ns, &veth) {
        return Err(LabError::HostDown {
            lab: name.to_string(),
            host: h.name.clone(),
        });
    }
    match fault {
        LinkFault::Partitioned => ip.set_isolated(&lab_ns, &veth, on),
        LinkFault::Detached => ip.set_detached(&lab_ns, &veth, on),
    }
}

/// The lab's private key and known_hosts file (every host's keys pinned by address).
pub fn ssh_identity(name: &str) -> (PathBuf, PathBuf) {
    (paths::key(name), paths::known_hosts(name))
}
