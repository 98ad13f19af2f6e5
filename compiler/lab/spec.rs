//! What a lab is made of (hosts, addresses, interfaces) and every name derived from it:
//! namespaces, veths, machine names. Pure: no IO.

use super::LabError;
use crate::resolve::Model;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

/// One declared host, as the lab boots it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabHost {
    pub name: String,
    pub address: Ipv4Addr,
    /// Prefix length of the host's subnet (the failover group's VIP prefix; default 24).
    pub prefix: u8,
    /// Interface name inside the host (the failover group's interface; default `eth0`).
    pub interface: String,
    /// The declared SSH user (default `root`): created in the host with the lab key and
    /// password-less sudo when it is not root.
    pub ssh_user: String,
    /// The declared SSH port (default 22): sshd listens on 22 and on this port.
    pub ssh_port: u16,
}

impl LabHost {
    /// A host with the defaults: /24 on `eth0`, SSH as root on port 22.
    pub fn new(name: impl Into<String>, address: Ipv4Addr) -> LabHost {
        LabHost {
            name: name.into(),
            address,
            prefix: 24,
            interface: "eth0".into(),
            ssh_user: "root".into(),
            ssh_port: 22,
        }
    }

    pub fn subnet(&self) -> Subnet {
        Subnet::new(self.address, self.prefix)
    }
}

/// A lab: a name (two labs with different names can run side by side) and its hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    pub name: String,
    pub hosts: Vec<LabHost>,
    /// Addresses the lab must not take for itself (the failover groups' VIPs).
    #[serde(default)]
    pub reserved: Vec<Ipv4Addr>,
    /// Debian packages to add to the image beyond [`super::image::DEFAULT_PACKAGES`]
    /// (lab hosts have no internet: whatever `infra apply` installs must be in the image).
    #[serde(default)]
    pub packages: Vec<String>,
}

impl LabSpec {
    pub fn new(name: impl Into<String>, hosts: Vec<LabHost>) -> LabSpec {
        LabSpec {
            name: name.into(),
            hosts,
            reserved: Vec::new(),
            packages: Vec::new(),
        }
    }

    /// Hosts from `model.hosts`; interface and prefix from the first failover group the
    /// host is a member of (else `eth0` and /24); the groups' VIPs are reserved.
    pub fn from_model(name: &str, model: &Model) -> LabSpec {
        let hosts = model
            .hosts
            .iter()
            .zip(model.host_ids())
            .map(|(h, id)| {
                let group = model.groups.iter().find(|g| g.position(id).is_some());
                LabHost {
                    name: h.name.value.clone(),
                    address: h.address.value,
                    prefix: group.map_or(24, |g| g.vip.value.prefix),
                    interface: group.map_or_else(|| "eth0".into(), |g| g.interface.value.clone()),
                    ssh_user: h.ssh.user.clone(),
                    ssh_port: h.ssh.port,
                }
            })
            .collect();
        let mut reserved: Vec<Ipv4Addr> = model.groups.iter().map(|g| g.vip.value.addr).collect();
        reserved.sort();
        reserved.dedup();
        LabSpec {
            name: name.to_string(),
            hosts,
            reserved,
            packages: Vec::new(),
        }
    }

    pub fn host(&self, name: &str) -> Option<&LabHost> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Check everything the lab relies on; the message says what to change.
    pub fn validate(&self) -> Result<(), LabError> {
        let bad = |m: String| Err(LabError::InvalidSpec(m));
        if let Err(m) = check_lab_name(&self.name) {
            return bad(m);
        }
        if self.hosts.is_empty() {
            return bad(
                "no hosts are declared: add a `host NAME { address = \"...\" }` block".into(),
            );
        }
        let mut names = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        let mut machines = BTreeSet::new();
        let mut veths = BTreeSet::new();
        for h in &self.hosts {
            if h.name.is_empty()
                || h.name.len() > 63
                || !h
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return bad(format!(
                    "host name `{}` cannot be a lab machine name: use 1 to 63 letters, digits, `_` or `-`",
                    h.name
                ));
            }
            if !names.insert(h.name.as_str()) {
                return bad(format!("host `{}` is declared twice", h.name));
            }
            if !(8..=30).contains(&h.prefix) {
                return bad(format!(
                    "host `{}`: prefix /{} leaves no room for a lab subnet: use a prefix between /8 and /30",
                    h.name, h.prefix
                ));
            }
            let net = h.subnet();
            let a = h.address;
            if a.is_loopback() || a.is_multicast() || a.is_unspecified() || a.is_broadcast() {
                return bad(format!(
                    "host `{}`: {a} is not a unicast host address",
                    h.name
                ));
            }
            if a == net.network() || a == net.broadcast() {
                return bad(format!(
                    "host `{}`: {a} is the network or broadcast address of {net}: pick a host address",
                    h.name
                ));
            }
            if !addrs.insert(a) {
                return bad(format!(
                    "address {a} is used by two hosts: give each host its own"
                ));
            }
            if let Err(m) = check_ifname(&h.interface) {
                return bad(format!("host `{}`: {m}", h.name));
            }
            if h.ssh_user.is_empty()
                || !h
                    .ssh_user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return bad(format!(
                    "host `{}`: `{}` is not a user name",
                    h.name, h.ssh_user
                ));
            }
            if h.ssh_port == 0 {
                return bad(format!("host `{}`: ssh port 0 is not a port", h.name));
            }
            if !machines.insert(machine_name(&self.name, &h.name)) {
                return bad(format!(
                    "hosts `{}` and another differ only by `_`/`-` or case: rename one",
                    h.name
                ));
            }
            if !veths.insert(veth_name(&h.name)) {
                return bad(format!(
                    "host `{}`: its lab interface name collides with another host's",
                    h.name
                ));
            }
        }
        for p in &self.packages {
            if !is_package_name(p) {
                return bad(format!("`{p}` is not a Debian package name"));
            }
        }
        self.lab_addresses().map(|_| ())
    }

    /// The lab namespace's own address on each subnet the hosts are on: the highest host
    /// address not used by a host or reserved (VIP).
    pub fn lab_addresses(&self) -> Result<Vec<(Ipv4Addr, u8)>, LabError> {
        let used: BTreeSet<Ipv4Addr> = self
            .hosts
            .iter()
            .map(|h| h.address)
            .chain(self.reserved.iter().copied())
            .collect();
        let subnets: BTreeSet<Subnet> = self.hosts.iter().map(|h| h.subnet()).collect();
        let mut out = Vec::new();
        for net in subnets {
            let first = u32::from(net.network()) + 1;
            let last = u32::from(net.broadcast()) - 1;
            let pick = (first..=last)
                .rev()
                .map(Ipv4Addr::from)
                .find(|a| !used.contains(a));
            match pick {
                Some(a) => out.push((a, net.prefix)),
                None => {
                    return Err(LabError::InvalidSpec(format!(
                    "subnet {net} has no free address left for the lab itself: use a larger prefix"
                )))
                }
            }
        }
        Ok(out)
    }
}

/// An IPv4 subnet, normalized to its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subnet {
    addr: u32,
    pub prefix: u8,
}

impl Subnet {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Subnet {
        let p = prefix.min(32);
        Subnet {
            addr: u32::from(addr) & mask(p),
            prefix: p,
        }
    }
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr | !mask(self.prefix))
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

/// The lab name for a configuration directory (or file: its directory): the directory's
/// name, lower-cased, with anything but letters and digits turned into `-`.
pub fn lab_name(config: &Path) -> String {
    let p = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let dir = if p.is_file() {
        p.parent().map(Path::to_path_buf).unwrap_or(p)
    } else {
        p
    };
    let raw = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    sanitize(&raw, 32)
}

/// Lower-case `[a-z0-9-]`, no leading/trailing/double `-`, at most `max` chars; never empty.
pub fn sanitize(raw: &str, max: usize) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "lab".into()
    } else {
        out
    }
}

pub fn check_lab_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 32
        || name.starts_with('-')
        || name.ends_with('-')
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "`{name}` is not a lab name: use 1 to 32 lower-case letters, digits or `-` (e.g. `accounting`)"
        ));
    }
    Ok(())
}

fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 15
        || name == "lo"
        || name == "."
        || name == ".."
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "`{name}` cannot be the lab interface name: use 1 to 15 letters, digits, `-`, `_`, `.` (not `lo`)"
        ));
    }
    Ok(())
}

fn is_package_name(p: &str) -> bool {
    p.len() >= 2
        && p.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
}

/// The namespace holding the lab's bridge and the SSH client side.
pub fn lab_netns(lab: &str) -> String {
    format!("infra-{lab}")
}

/// One host's network namespace. Lab names cannot contain `.`, so this never collides
/// with another lab's namespace.
pub fn host_netns(lab: &str, host: &str) -> String {
    format!("infra-{lab}.{host}")
}

/// systemd-nspawn machine name (unique per lab and host).
pub fn machine_name(lab: &str, host: &str) -> String {
    sanitize(&format!("{lab}-{host}"), 64)
}

/// The hostname the machine boots with.
pub fn hostname(host: &str) -> String {
    host.to_ascii_lowercase().replace('_', "-")
}

/// The bridge-side end of a host's veth, in the lab namespace.
pub fn veth_name(host: &str) -> String {
    let plain = format!("v-{host}");
    if plain.len() <= 15
        && plain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        plain
    } else {
        let h = Sha256::digest(host.as_bytes());
        let hex: String = h.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("v-{hex}")
    }
}

/// A stable, locally administered MAC address for one end (`"host"` or `"bridge"`) of a
/// host's veth: a restarted host keeps its MAC like a real machine, so its neighbours'
/// ARP caches stay right (a new MAC would be unreachable for up to 45 s).
pub fn mac(lab: &str, host: &str, end: &str) -> String {
    let h = Sha256::digest(format!("infra-lab\0{lab}\0{host}\0{end}").as_bytes());
    let first = (h[0] & 0xfc) | 0x02;
    format!(
        "{first:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        h[1], h[2], h[3], h[4], h[5]
    )
}
