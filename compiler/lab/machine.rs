//! One lab host: its disk (an overlay on the image), its systemd-nspawn process, its
//! readiness.
//!
//! Each host boots in a private mount namespace that holds its overlay mount: when the
//! nspawn process dies, the mount goes with it, so a crash can never leave a mount behind
//! in the machine's own mount namespace.

use super::net;
use super::paths;
use super::spec::{self, LabHost};
use super::sys;
use super::LabError;
use serde::Serialize;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a host is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum HostState {
    /// `systemctl is-system-running` said `running`.
    Running,
    /// Booted, but these units failed.
    Degraded { failed: Vec<String> },
    /// Powered on, not finished booting (`starting`, `stopping`, ...).
    Booting { detail: String },
    /// Powered off.
    Stopped,
}

impl std::fmt::Display for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostState::Running => write!(f, "running"),
            HostState::Degraded { failed } => write!(f, "degraded (failed: {})", failed.join(", ")),
            HostState::Booting { detail } => write!(f, "booting ({detail})"),
            HostState::Stopped => write!(f, "powered off"),
        }
    }
}

/// The tools every host operation needs, found once.
pub struct Tools {
    pub nspawn: PathBuf,
    pub nsenter: PathBuf,
    pub unshare: PathBuf,
    pub setsid: PathBuf,
    pub ssh_keygen: PathBuf,
    pub ssh: PathBuf,
    pub ip: net::Ip,
}

impl Tools {
    pub fn find() -> Result<Tools, LabError> {
        Ok(Tools {
            nspawn: sys::tool("systemd-nspawn", "systemd-container")?,
            nsenter: sys::tool("nsenter", "util-linux")?,
            unshare: sys::tool("unshare", "util-linux")?,
            setsid: sys::tool("setsid", "util-linux")?,
            ssh_keygen: sys::tool("ssh-keygen", "openssh-client")?,
            ssh: sys::tool("ssh", "openssh-client")?,
            ip: net::Ip::new()?,
        })
    }
}

/// Create the host's disk on first use: overlay directories, hostname, machine-id,
/// /etc/hosts, its own SSH host keys and the lab key as root's authorized key.
/// Later boots reuse the disk as it was left (like a real machine).
pub fn prepare_disk(
    tools: &Tools,
    lab: &str,
    host: &LabHost,
    all: &[LabHost],
    lab_pubkey: &str,
) -> Result<(), LabError> {
    let d = paths::host_disk(lab, &host.name);
    if d.join(".prepared").exists() {
        return Ok(());
    }
    sys::remove_tree(&d)?;
    let upper = d.join("upper");
    for (p, mode) in [
        (d.clone(), 0o700),
        (upper.clone(), 0o755),
        (d.join("work"), 0o700),
        (d.join("root"), 0o755),
        (upper.join("etc"), 0o755),
        (upper.join("etc/ssh"), 0o755),
        (upper.join("root"), 0o700),
        (upper.join("root/.ssh"), 0o700),
    ] {
        sys::mkdir(&p, mode)?;
    }
    sys::write_file(&d.join("netns"), b"", 0o600)?;
    let etc = upper.join("etc");
    let name = spec::hostname(&host.name);
    sys::write_file(&etc.join("hostname"), format!("{name}\n").as_bytes(), 0o644)?;
    let id = sys::random_hex16()?;
    sys::write_file(&etc.join("machine-id"), format!("{id}\n").as_bytes(), 0o444)?;
    let mut hosts = String::from("# infra lab: every lab host by name\n127.0.0.1\tlocalhost\n");
    for h in all {
        hosts.push_str(&format!("{}\t{}\n", h.address, spec::hostname(&h.name)));
    }
    hosts.push_str("::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
    sys::write_file(&etc.join("hosts"), hosts.as_bytes(), 0o644)?;
    sys::write_file(
        &upper.join("root/.ssh/authorized_keys"),
        format!("{}\n", lab_pubkey.trim()).as_bytes(),
        0o600,
    )?;
    if host.ssh_port != 22 {
        sys::mkdir(&etc.join("ssh/sshd_config.d"), 0o755)?;
        sys::write_file(
            &etc.join("ssh/sshd_config.d/infra-lab.conf"),
            format!(
                "# infra lab: the declared port, and 22\nPort 22\nPort {}\n",
                host.ssh_port
            )
            .as_bytes(),
            0o644,
        )?;
    }
    let mut c = sys::command(&tools.ssh_keygen);
    c.arg("-A").arg("-f").arg(&upper);
    sys::run(
        &format!("generating the SSH host keys of {}", host.name),
        &mut c,
    )?;
    sys::write_file(&d.join(".prepared"), b"", 0o600)
}

/// Started with `sh -c OUTER infra-lab-boot PIDFILE UNSHARE NSPAWN LOWER DIR NETNS MACHINE
/// HOSTNAME`: records its pid (which stays the pid of systemd-nspawn through the execs)
/// and enters a private mount namespace.
const OUTER: &str = r#"echo $$ > "$1.tmp" && mv "$1.tmp" "$1" || exit 1
unshare=$2
shift 2
exec "$unshare" --mount --propagation private -- sh -c "$INFRA_LAB_BOOT" infra-lab-boot "$@"
"#;

/// In the private mount namespace: mount the overlay, keep our own network namespace
/// under a private name, drop the copies of every /run/netns mount (so that deleting
/// another host's namespace really frees it), boot.
const INNER: &str = r#"set -e
nspawn=$1; lower=$2; dir=$3; netns=$4; machine=$5; hostname=$6
unset INFRA_LAB_BOOT
mount -t overlay infra-lab -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
mount --bind "/run/netns/$netns" "$dir/netns"
for m in $(cut -d' ' -f5 /proc/self/mountinfo | grep '^/run/netns/.' || true); do umount -l "$m" || true; done
echo "infra lab: booting $hostname"
exec "$nspawn" --quiet --directory="$dir/root" --boot --machine="$machine" --hostname="$hostname" \
  --register=no --keep-unit --console=read-only --link-journal=no --resolv-conf=off --timezone=off \
  --capability=CAP_NET_ADMIN,CAP_NET_RAW --network-namespace-path="$dir/netns"
"#;

/// Power a host on (its network must be plugged). Returns the systemd-nspawn pid.
pub fn boot(tools: &Tools, lab: &str, host: &LabHost, image: &Path) -> Result<u32, LabError> {
    let pidfile = paths::pidfile(lab, &host.name);
    let _ = std::fs::remove_file(&pidfile);
    let log_path = paths::logfile(lab, &host.name);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| LabError::io("open", &log_path, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| LabError::io("open", &log_path, e))?;
    let dir = paths::host_disk(lab, &host.name);
    let mut c = sys::command(&tools.setsid);
    c.arg("-f")
        .args(["sh", "-c", OUTER, "infra-lab-boot"])
        .arg(&pidfile)
        .arg(&tools.unshare)
        .arg(&tools.nspawn)
        .arg(image)
        .arg(&dir)
        .arg(spec::host_netns(lab, &host.name))
        .arg(spec::machine_name(lab, &host.name))
        .arg(spec::hostname(&host.name))
        .env("INFRA_LAB_BOOT", INNER)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let what = format!("starting {}", host.name);
    let status = c.status().map_err(|e| LabError::Command {
        what: what.clone(),
        detail: e.to_string(),
    })?;
    if !status.success() {
        return Err(LabError::Command {
            what,
            detail: format!("setsid exited with {status}"),
        });
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = read_pid(&pidfile) {
            return Ok(pid);
        }
        if Instant::now() >= deadline {
            return Err(LabError::Command {
                what,
                detail: format!(
                    "no pid was recorded in {}; see {}",
                    pidfile.display(),
                    log_path.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_pid(p: &Path) -> Option<u32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The live systemd-nspawn process of a host, if it is powered on. The pid is checked
/// against the process's command line (pids are reused).
pub fn running_pid(lab: &str, host: &str) -> Option<u32> {
    let pid = read_pid(&paths::pidfile(lab, host))?;
    let dir = paths::host_disk(lab, host).join("root");
    (sys::pid_alive(pid) && is_nspawn_of(pid, &dir)).then_some(pid)
}

/// A systemd-nspawn (or the shell about to become one) booting `root`.
fn is_nspawn_of(pid: u32, root: &Path) -> bool {
    let args = sys::cmdline(pid);
    let root = root.to_string_lossy();
    let dir = root.trim_end_matches("/root");
    args.iter()
        .any(|a| a == &format!("--directory={root}") || a == dir)
}

/// Every systemd-nspawn (or its boot shell) of a lab, found by command line: works
/// without any state file, after a crash.
pub fn lab_nspawns(lab: &str) -> Vec<u32> {
    let prefix = format!("{}/", paths::disk_dir(lab).display());
    let me = std::process::id();
    sys::all_pids()
        .into_iter()
        .filter(|&p| p != me && sys::pid_alive(p))
        .filter(|&p| {
            let args = sys::cmdline(p);
            let first = args.first().map(String::as_str).unwrap_or("");
            let ours = args.iter().any(|a| {
                a.strip_prefix("--directory=")
                    .unwrap_or(a)
                    .starts_with(&prefix)
            });
            ours && (first.ends_with("systemd-nspawn")
                || args.iter().any(|a| a == "infra-lab-boot"))
        })
        .collect()
}

/// The container's init (systemd, PID 1 inside), once nspawn has started it.
pub fn init_pid(nspawn: u32) -> Option<u32> {
    sys::children(nspawn)
        .into_iter()
        .find(|&c| sys::comm(c).as_deref() == Some("systemd") && sys::pid_alive(c))
}

/// A command run inside a host: `nsenter` into every namespace of its init, with a
/// clean environment.
pub fn nsenter(tools: &Tools, init: u32, argv: &[String]) -> Command {
    let mut c = sys::command(&tools.nsenter);
    c.args([
        "-t",
        &init.to_string(),
        "-m",
        "-u",
        "-i",
        "-n",
        "-p",
        "-C",
        "-r",
        "-w",
        "--",
    ])
    .args(argv)
    .env("HOME", "/root")
    .env("USER", "root")
    .env("LOGNAME", "root");
    if let Some(t) = std::env::var_os("TERM") {
        c.env("TERM", t);
    }
    c
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Wait until the host has booted (`systemctl is-system-running --wait` says running or
/// degraded) and its sshd answers from the lab namespace.
pub fn wait_ready(
    tools: &Tools,
    lab: &str,
    host: &LabHost,
    nspawn: u32,
    limit: Duration,
) -> Result<HostState, LabError> {
    let started = Instant::now();
    let deadline = started + limit;
    let log = paths::logfile(lab, &host.name);
    let not_ready = |detail: String| LabError::NotReady {
        host: host.name.clone(),
        secs: limit.as_secs(),
        detail,
        log: log.clone(),
    };
    let exited = || {
        let text = std::fs::read(&log).unwrap_or_default();
        format!("systemd-nspawn exited: {}", sys::tail(&text, 4))
    };
    let init = loop {
        if !sys::pid_alive(nspawn) {
            return Err(not_ready(exited()));
        }
        if let Some(i) = init_pid(nspawn) {
            break i;
        }
        if Instant::now() >= deadline {
            return Err(not_ready("systemd did not start in the container".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let state = loop {
        if !sys::pid_alive(nspawn) {
            return Err(not_ready(exited()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(not_ready(
                "systemctl is-system-running --wait did not finish".into(),
            ));
        }
        let out = sys::run_timeout(
            &mut nsenter(
                tools,
                init,
                &strings(&["systemctl", "is-system-running", "--wait"]),
            ),
            left,
        )
        .map_err(|e| not_ready(format!("cannot run nsenter: {e}")))?;
        let Some(out) = out else {
            return Err(not_ready(
                "systemctl is-system-running --wait did not finish".into(),
            ));
        };
        match String::from_utf8_lossy(&out.stdout).trim() {
            "running" => break HostState::Running,
            "degraded" => {
                break HostState::Degraded {
                    failed: failed_units(tools, init),
                }
            }
            s @ ("maintenance" | "stopping") => {
                return Err(not_ready(format!("systemd is in state `{s}`")));
            }
            // The manager is not listening yet: try again.
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let ns = net::netns_path(&spec::lab_netns(lab));
    let addr = SocketAddr::V4(SocketAddrV4::new(host.address, 22));
    loop {
        if net::ssh_answers(&ns, addr) {
            break;
        }
        if Instant::now() >= deadline {
            return Err(not_ready(format!(
                "sshd does not answer on {addr} (systemd is up)"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if host.ssh_user != "root" {
        add_user(tools, init, host)?;
    }
    let key = paths::key(lab);
    loop {
        match net::ssh_login(&ns, addr, &host.ssh_user, &key) {
            Ok(()) => break,
            Err(e) if Instant::now() >= deadline => {
                return Err(not_ready(format!(
                    "sshd answers on {addr} but a login as `{}` with the lab key fails: {e}",
                    host.ssh_user
                )));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    Ok(state)
}

/// The declared SSH user, with the lab key and password-less sudo (idempotent).
fn add_user(tools: &Tools, init: u32, host: &LabHost) -> Result<(), LabError> {
    const SCRIPT: &str = r#"set -e
u=$1
id -u "$u" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$u"
home=$(getent passwd "$u" | cut -d: -f6)
install -d -m 700 -o "$u" -g "$u" "$home/.ssh"
install -m 600 -o "$u" -g "$u" /root/.ssh/authorized_keys "$home/.ssh/authorized_keys"
echo "$u ALL=(ALL) NOPASSWD:ALL" > "/etc/sudoers.d/infra-lab-$u"
chmod 440 "/etc/sudoers.d/infra-lab-$u"
"#;
    let argv = strings(&["sh", "-c", SCRIPT, "sh", &host.ssh_user]);
    sys::run(
        &format!("creating user {} on {}", host.ssh_user, host.name),
        &mut nsenter(tools, init, &argv),
    )
    .map(|_| ())
}

fn failed_units(tools: &Tools, init: u32) -> Vec<String> {
    let argv = strings(&[
        "systemctl",
        "list-units",
        "--state=failed",
        "--plain",
        "--no-legend",
        "--no-pager",
    ]);
    match sys::run_timeout(&mut nsenter(tools, init, &argv), Duration::from_secs(10)) {
        Ok(Some(out)) => {
            let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string)
                .collect();
            v.sort();
            v
        }
        _ => vec!["(could not list failed units)".into()],
    }
}

/// A quick look at a powered-on host (no waiting).
pub fn query(tools: &Tools, nspawn: u32) -> HostState {
    let Some(init) = init_pid(nspawn) else {
        return HostState::Booting {
            detail: "init not started".into(),
        };
    };
    let argv = strings(&["systemctl", "is-system-running"]);
    let out = sys::run_timeout(&mut nsenter(tools, init, &argv), Duration::from_secs(5));
    let s = match out {
        Ok(Some(o)) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => String::new(),
    };
    match s.as_str() {
        "running" => HostState::Running,
        "degraded" => HostState::Degraded {
            failed: failed_units(tools, init),
        },
        "" => HostState::Booting {
            detail: "systemd not answering".into(),
        },
        other => HostState::Booting {
            detail: other.to_string(),
        },
    }
}

/// Abrupt power-off: SIGKILL the container's init (the kernel kills everything in its
/// pid namespace; nspawn then exits), SIGKILL nspawn too if it lingers.
pub fn power_cut(nspawn: u32) {
    match init_pid(nspawn) {
        Some(init) => sys::signal(init, libc::SIGKILL),
        None => sys::signal(nspawn, libc::SIGKILL),
    }
    if !sys::wait_dead(&[nspawn], Duration::from_secs(3)) {
        for c in sys::children(nspawn) {
            sys::signal(c, libc::SIGKILL);
        }
        sys::signal(nspawn, libc::SIGKILL);
        sys::wait_dead(&[nspawn], Duration::from_secs(3));
    }
}
