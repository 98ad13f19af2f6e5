//! The lab network: one namespace holding a bridge (and the client side of all lab
//! traffic), one namespace per host joined to the bridge by a veth pair. Nothing is ever
//! created in the machine's own (root) network namespace: veth pairs are created inside
//! the lab namespace with their peer moved straight into the host's namespace.

use super::spec::LabHost;
use super::sys;
use super::LabError;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const NETNS_DIR: &str = "/run/netns";
pub const BRIDGE: &str = "br0";

pub fn netns_path(ns: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(ns)
}

pub fn netns_exists(ns: &str) -> bool {
    netns_path(ns).exists()
}

/// Names in /run/netns.
pub fn list_netns() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub struct Ip {
    ip: PathBuf,
}

impl Ip {
    pub fn new() -> Result<Ip, LabError> {
        Ok(Ip {
            ip: sys::tool("ip", "iproute2")?,
        })
    }

    fn run(&self, what: &str, args: &[&str]) -> Result<(), LabError> {
        sys::run(what, sys::command(&self.ip).args(args)).map(|_| ())
    }

    fn ok(&self, args: &[&str]) -> bool {
        sys::command(&self.ip)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn link_exists(&self, ns: &str, link: &str) -> bool {
        netns_exists(ns) && self.ok(&["-n", ns, "link", "show", "dev", link])
    }

    /// Create a namespace (if missing) with its loopback up.
    pub fn add_netns(&self, ns: &str) -> Result<(), LabError> {
        if !netns_exists(ns) {
            self.run(
                &format!("creating network namespace {ns}"),
                &["netns", "add", ns],
            )?;
        }
        self.run(
            &format!("bringing up lo in {ns}"),
            &["-n", ns, "link", "set", "lo", "up"],
        )
    }

    /// Delete a namespace (if present). Its interfaces go with it once no process is left in it.
    pub fn del_netns(&self, ns: &str) -> Result<(), LabError> {
        let path = netns_path(ns);
        if !path.exists() {
            return Ok(());
        }
        if self.ok(&["netns", "del", ns]) {
            return Ok(());
        }
        // `ip` failed (e.g. a half-created namespace): unmount and remove the file ourselves.
        sys::umount_detach(&path);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LabError::io("remove network namespace", path, e)),
        }
    }

    /// The lab namespace with its bridge and the lab's own addresses (idempotent). The
    /// bridge has a fixed MAC: by default it would take its ports' lowest, and change
    /// when a host is powered off.
    pub fn ensure_lab(
        &self,
        lab_ns: &str,
        bridge_mac: &str,
        addrs: &[(Ipv4Addr, u8)],
    ) -> Result<(), LabError> {
        self.add_netns(lab_ns)?;
        if !self.link_exists(lab_ns, BRIDGE) {
            self.run(
                "creating the lab bridge",
                &[
                    "-n", lab_ns, "link", "add", BRIDGE, "address", bridge_mac, "type", "bridge",
                ],
            )?;
        }
        for (a, p) in addrs {
            let cidr = format!("{a}/{p}");
            self.run(
                "addressing the lab bridge",
                &["-n", lab_ns, "addr", "replace", &cidr, "dev", BRIDGE],
            )?;
        }
        self.run(
            "bringing up the lab bridge",
            &["-n", lab_ns, "link", "set", BRIDGE, "up"],
        )
    }

    /// A fresh namespace and network card for a host: the veth end named after the
    /// declared interface (with the host's address) in the host namespace, the other end
    /// on the lab bridge. Anything left from a previous boot is removed first.
    /// Both ends get stable MAC addresses (`macs`: bridge end, host end).
    pub fn plug(
        &self,
        lab_ns: &str,
        host_ns: &str,
        veth: &str,
        macs: (&str, &str),
        h: &LabHost,
    ) -> Result<(), LabError> {
        self.unplug(lab_ns, host_ns, veth)?;
        self.add_netns(host_ns)?;
        let what = format!("creating the network card of {}", h.name);
        #[rustfmt::skip]
        let add = [
            "-n", lab_ns, "link", "add", veth, "address", macs.0, "type", "veth",
            "peer", "name", &h.interface, "address", macs.1, "netns", host_ns,
        ];
        self.run(&what, &add)?;
        self.run(
            &what,
            &["-n", lab_ns, "link", "set", veth, "master", BRIDGE, "up"],
        )?;
        let cidr = format!("{}/{}", h.address, h.prefix);
        self.run(
            &what,
            &["-n", host_ns, "addr", "add", &cidr, "dev", &h.interface],
        )?;
        self.run(&what, &["-n", host_ns, "link", "set", &h.interface, "up"])
    }

    /// Bridge port isolation on a host's port: isolated ports cannot reach each other,
    /// but still reach the lab namespace (a partition between members that clients see
    /// both sides of). The host keeps its carrier.
    pub fn set_isolated(&self, lab_ns: &str, veth: &str, on: bool) -> Result<(), LabError> {
        let flag = if on { "on" } else { "off" };
        self.run(
            &format!("setting isolation {flag} on {veth}"),
            &[
                "-n",
                lab_ns,
                "link",
                "set",
                "dev",
                veth,
                "type",
                "bridge_slave",
                "isolated",
                flag,
            ],
        )
    }

    /// Take a host's port off the lab bridge (`on`) or put it back: the host keeps its
    /// carrier and its address but reaches nobody (a dead switch port, not a pulled cable).
    pub fn set_detached(&self, lab_ns: &str, veth: &str, on: bool) -> Result<(), LabError> {
        let args: &[&str] = if on {
            &["-n", lab_ns, "link", "set", "dev", veth, "nomaster"]
        } else {
            &["-n", lab_ns, "link", "set", "dev", veth, "master", BRIDGE]
        };
        self.run(&format!("detaching {veth} from the lab bridge"), args)?;
        if !on {
            self.run(
                &format!("bringing {veth} up"),
                &["-n", lab_ns, "link", "set", "dev", veth, "up"],
            )?;
        }
        Ok(())
    }

    /// Pull a host's network cable and remove its namespace (a powered-off machine keeps
    /// no address, not even a VIP keepalived had added).
    pub fn unplug(&self, lab_ns: &str, host_ns: &str, veth: &str) -> Result<(), LabError> {
        if self.link_exists(lab_ns, veth) {
            self.run(
                &format!("removing {veth}"),
                &["-n", lab_ns, "link", "del", veth],
            )?;
        }
        self.del_netns(host_ns)
    }
}

/// A TCP connection opened from inside a namespace: a thread enters it (setns affects only
/// the calling thread), connects and returns the socket, which stays in that namespace.
pub fn connect_in(
    ns_path: &Path,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let file = std::fs::File::open(ns_path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot open network namespace {}: {e}", ns_path.display()),
        )
    })?;
    let handle = std::thread::spawn(move || -> std::io::Result<TcpStream> {
        enter(&file)?;
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_nodelay(true)?;
        Ok(s)
    });
    handle
        .join()
        .map_err(|_| std::io::Error::other("the lab connect thread panicked"))?
}

#[cfg(target_os = "linux")]
pub fn enter(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a namespace file descriptor we own; it only changes the calling
    // thread's network namespace, and this thread ends right after connecting.
    let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn enter(_file: &std::fs::File) -> std::io::Result<()> {
    Err(std::io::Error::other("network namespaces need Linux"))
}

/// Log in on `addr` as `user` with the lab key and run `true`: what the first
/// `infra apply` does, proven before the lab says the host is up (a banner alone is
/// not: a host whose sshd or user was not ready yet failed an apply's first login).
/// The host key is not checked: nothing is sent that a wrong host could use.
pub fn ssh_login(ns_path: &Path, addr: SocketAddr, user: &str, key: &Path) -> Result<(), String> {
    let tcp = connect_in(ns_path, addr, Duration::from_millis(500)).map_err(|e| e.to_string())?;
    let mut session = ssh2::Session::new().map_err(|e| e.to_string())?;
    session.set_timeout(5_000);
    session.set_tcp_stream(tcp);
    session.handshake().map_err(|e| format!("handshake: {e}"))?;
    session
        .userauth_pubkey_file(user, None, key, None)
        .map_err(|e| format!("authentication as `{user}`: {e}"))?;
    let mut channel = session.channel_session().map_err(|e| e.to_string())?;
    channel
        .exec("true")
        .map_err(|e| format!("running `true`: {e}"))?;
    let mut sink = String::new();
    let _ = channel.read_to_string(&mut sink);
    channel.wait_close().map_err(|e| e.to_string())?;
    match channel.exit_status().map_err(|e| e.to_string())? {
        0 => Ok(()),
        n => Err(format!("`true` exited {n}")),
    }
}

/// True when an SSH server answers on `addr` (its banner starts with `SSH-`).
pub fn ssh_answers(ns_path: &Path, addr: SocketAddr) -> bool {
    let Ok(mut s) = connect_in(ns_path, addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).is_ok() && &buf == b"SSH-"
}
