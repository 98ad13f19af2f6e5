//! What an existing machine runs, read in one round trip (`infra init --from`):
//! [`SCRIPT`] runs on the host (read-only: no file written, nothing installed,
//! started or stopped), [`parse`] turns its output into a [`Discovered`].
//! Entry point: [`discover`].

use crate::diag::Diag;
use crate::transport::Remote;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The discovery script (POSIX sh, checked by shellcheck in the tests).
pub const SCRIPT: &str = include_str!("discover.sh");

/// An IPv4 address of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub iface: String,
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

/// A PostgreSQL cluster (`pg_lsclusters`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PgCluster {
    pub version: String,
    pub name: String,
    pub port: u16,
    pub online: bool,
    /// (name, size in bytes, owner), templates left out.
    pub databases: Vec<(String, u64, String)>,
    /// Roles that can log in, `postgres` left out.
    pub roles: Vec<String>,
}

/// An enabled systemd timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub unit: String,
    /// Its unit file.
    pub path: String,
    pub calendar: String,
    pub exec: String,
}

/// A listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: String,
    pub port: u16,
    /// The process, as ss names it (`nginx`, `postgres`), or "".
    pub process: String,
}

/// Everything the discovery read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Discovered {
    /// /etc/os-release.
    pub os: BTreeMap<String, String>,
    pub hostname: String,
    pub addrs: Vec<Addr>,
    /// The default route's interface and gateway.
    pub default_dev: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    /// Addresses seen on the network (the ARP table): not free.
    pub neighbors: BTreeSet<Ipv4Addr>,
    /// Installed packages: name → version.
    pub packages: BTreeMap<String, String>,
    /// Enabled services (unit names).
    pub services: Vec<String>,
    pub ports: Vec<Listen>,
    /// (mount point, source, file system type).
    pub mounts: Vec<(String, String, String)>,
    /// Accounts: name → (uid, home).
    pub users: BTreeMap<String, (u32, String)>,
    pub timers: Vec<Timer>,
    /// Configuration files read (crontabs, vhosts, pools): path → text.
    pub files: BTreeMap<String, String>,
    /// Scripts of /etc/cron.{hourly,daily,weekly,monthly}: path → text.
    pub runparts: BTreeMap<String, String>,
    /// Files read only in part (over 256 KiB).
    pub cut: BTreeSet<String>,
    /// Which of the files above a package installed.
    pub owned: BTreeSet<String>,
    /// Symbolic links among the sites: link → target.
    pub links: BTreeMap<String, String>,
    pub pg_clusters: Vec<PgCluster>,
    /// MariaDB's databases (name, bytes), when `mariadb` is installed.
    pub my_databases: Option<Vec<(String, u64)>>,
    pub my_users: Vec<String>,
    /// (web user, directory it owns) under the sites' roots, /srv and /var/www.
    pub writable: Vec<(String, String)>,
    /// The script ran to its end.
    pub complete: bool,
}

impl Discovered {
    /// Debian or Ubuntu (or a derivative saying so in `ID_LIKE`).
    pub fn is_debian(&self) -> bool {
        let like = |v: &str| v.split_whitespace().any(|w| w == "debian" || w == "ubuntu");
        self.os.get("ID").is_some_and(|v| like(v))
            || self.os.get("ID_LIKE").is_some_and(|v| like(v))
    }

    /// "Debian GNU/Linux 12 (bookworm)".
    pub fn os_name(&self) -> String {
        self.os
            .get("PRETTY_NAME")
            .or_else(|| self.os.get("ID"))
            .cloned()
            .unwrap_or_else(|| "an unknown system (no /etc/os-release)".into())
    }

    /// The machine's own address: the one on the default route's interface, else
    /// the first global one.
    pub fn primary(&self) -> Option<&Addr> {
        let on_default = self
            .default_dev
            .as_ref()
            .and_then(|d| self.addrs.iter().find(|a| &a.iface == d));
        on_default.or_else(|| self.addrs.iter().find(|a| !a.addr.is_loopback()))
    }

    /// Whether a package was installed by a package (or is a link to one that was).
    pub fn package_owned(&self, path: &str) -> bool {
        self.owned.contains(path) || self.links.get(path).is_some_and(|t| self.owned.contains(t))
    }

    /// Files read whose path starts with `prefix`, in path order.
    pub fn files_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.files
            .iter()
            .filter(move |(p, _)| p.starts_with(prefix))
            .map(|(p, t)| (p.as_str(), t.as_str()))
    }
}

/// Run [`SCRIPT`] on `remote` (one round trip) and read what it printed.
pub fn discover(remote: &mut dyn Remote) -> Result<Discovered, Box<Diag>> {
    let host = remote.host().to_string();
    let nonce = crate::secrets::token();
    let nonce: String = nonce
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(24)
        .collect();
    let script = format!("NONCE={nonce}\n{SCRIPT}");
    let out = remote
        .run(&script, b"")
        .map_err(|e| Box::new(e.to_diag()))?;
    let d = parse_with(&String::from_utf8_lossy(&out.stdout), &nonce);
    if !d.complete {
        return Err(Box::new(
            Diag::error(
                crate::diag::codes::E0761,
                format!(
                    "the discovery on {host} stopped before its end (exit {}): nothing written",
                    out.status
                ),
            )
            .help(format!(
                "what it said: {}; it needs a POSIX sh with coreutils, ip and dpkg-query",
                tail(&out.stderr_text())
            )),
        ));
    }
    if !d.is_debian() {
        return Err(Box::new(
            Diag::error(
                crate::diag::codes::E0760,
                format!("{host} runs {}, not Debian or Ubuntu: nothing written", d.os_name()),
            )
            .help("infra's standard library installs Debian packages and uses Debian's layout (/etc/php, pg_lsclusters, /etc/cron.d); start from `infra init DIR` without --from and describe the machine by hand"),
        ));
    }
    Ok(d)
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().rev().take(3).collect();
    if lines.is_empty() {
        return "nothing".into();
    }
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

/// The sections of the script's output: (name, argument, text). A header is
/// `<RS>NONCE infra-init NAME ARG`; a section seen twice keeps its first text.
fn sections<'a>(out: &'a str, nonce: &str) -> Vec<(&'a str, &'a str, String)> {
    let mut all: Vec<(&str, &str, String)> = Vec::new();
    let head = format!("\u{1e}{nonce} infra-init ");
    let mut seen = BTreeSet::new();
    for line in out.split_inclusive('\n') {
        if let Some(h) = line.strip_prefix(head.as_str()) {
            let h = h.trim_end_matches(['\n', '\r']);
            let (name, arg) = h.split_once(' ').unwrap_or((h, ""));
            let arg = arg.trim();
            // a repeated header starts a section nobody reads
            let fresh = seen.insert((name, arg));
            all.push((if fresh { name } else { "" }, arg, String::new()));
        } else if let Some(last) = all.last_mut() {
            last.2.push_str(line);
        }
    }
    for s in &mut all {
        // `show` ends a file with one newline of its own
        if s.0 == "file" || s.0 == "runparts" {
            if let Some(t) = s.2.strip_suffix('\n') {
                s.2 = t.to_string();
            }
        }
    }
    all
}

/// Read the output of the script run without a nonce (tests/init/cases).
pub fn parse(out: &str) -> Discovered {
    parse_with(out, "")
}

/// Read the script's output, its headers marked by `nonce`. Never fails: what
/// cannot be read is left out, and `complete` says whether the script reached
/// its end.
pub fn parse_with(out: &str, nonce: &str) -> Discovered {
    let mut d = Discovered::default();
    for (name, arg, text) in sections(out, nonce) {
        let lines = || text.lines().map(str::trim_end).filter(|l| !l.is_empty());
        match name {
            "os" => {
                for l in lines() {
                    if let Some((k, v)) = l.split_once('=') {
                        d.os.insert(k.to_string(), v.trim_matches(['"', '\'']).to_string());
                    }
                }
            }
            "hostname" => d.hostname = lines().next().unwrap_or("").trim().to_string(),
            "addr" => d.addrs = lines().filter_map(addr_line).collect(),
            "route" => {
                if let Some(l) = lines().next() {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    let after = |k: &str| w.iter().position(|x| *x == k).and_then(|i| w.get(i + 1));
                    d.default_dev = after("dev").map(|s| s.to_string());
                    d.gateway = after("via").and_then(|s| s.parse().ok());
                }
            }
            "neigh" => {
                d.neighbors = lines()
                    .filter(|l| !l.contains("FAILED") && !l.contains("INCOMPLETE"))
                    .filter_map(|l| l.split_whitespace().next()?.parse().ok())
                    .collect()
            }
            "packages" => {
                for l in lines() {
                    let f: Vec<&str> = l.split('\t').collect();
                    if f.len() >= 3 && f[2].starts_with("ii") {
                        d.packages.insert(f[0].to_string(), f[1].to_string());
                    }
                }
            }
            "services" => {
                d.services = lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .map(str::to_string)
                    .collect()
            }
            "ports" => d.ports = lines().filter_map(listen_line).collect(),
            "mounts" => {
                d.mounts = lines()
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        (f.len() >= 3).then(|| (unescape(f[0]), unescape(f[1]), f[2].to_string()))
                    })
                    .collect()
            }
            "passwd" => {
                for l in lines() {
                    let f: Vec<&str> = l.split(':').collect();
                    if f.len() >= 6 {
                        if let Ok(uid) = f[2].parse() {
                            d.users.insert(f[0].to_string(), (uid, f[5].to_string()));
                        }
                    }
                }
            }
            "timers" => {
                d.timers = lines()
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split('\t').collect();
                        (f.len() >= 4).then(|| Timer {
                            unit: f[0].to_string(),
                            path: f[1].to_string(),
                            calendar: f[2].trim().to_string(),
                            exec: f[3].trim().to_string(),
                        })
                    })
                    .collect()
            }
            "file" if !arg.is_empty() => {
                d.files.insert(arg.to_string(), text);
            }
            "runparts" if !arg.is_empty() => {
                d.runparts.insert(arg.to_string(), text);
            }
            "cut" if !arg.is_empty() => {
                d.cut.insert(arg.to_string());
            }
            "owned" => d.owned = lines().map(str::to_string).collect(),
            "links" => {
                for l in lines() {
                    if let Some((a, b)) = l.split_once('\t') {
                        d.links.insert(a.to_string(), b.to_string());
                    }
                }
            }
            "pg_clusters" => {
                d.pg_clusters = lines()
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        (f.len() >= 4).then(|| PgCluster {
                            version: f[0].to_string(),
                            name: f[1].to_string(),
                            port: f[2].parse().unwrap_or(5432),
                            online: f[3].starts_with("online"),
                            ..PgCluster::default()
                        })
                    })
                    .collect()
            }
            "pg_databases" | "pg_roles" => {
                let a: Vec<&str> = arg.split_whitespace().collect();
                let Some(c) = d
                    .pg_clusters
                    .iter_mut()
                    .find(|c| a.len() >= 2 && c.version == a[0] && c.name == a[1])
                else {
                    continue;
                };
                if name == "pg_roles" {
                    c.roles = lines().map(|l| l.trim().to_string()).collect();
                } else {
                    c.databases = lines()
                        .filter_map(|l| {
                            let f: Vec<&str> = l.split('\t').collect();
                            (f.len() >= 3).then(|| {
                                (
                                    f[0].to_string(),
                                    f[1].parse().unwrap_or(0),
                                    f[2].to_string(),
                                )
                            })
                        })
                        .collect();
                }
            }
            "my_databases" => {
                d.my_databases = Some(
                    lines()
                        .filter_map(|l| {
                            let (n, s) = l.split_once('\t')?;
                            Some((n.to_string(), s.trim().parse().unwrap_or(0)))
                        })
                        .collect(),
                )
            }
            "my_users" => d.my_users = lines().map(|l| l.trim().to_string()).collect(),
            "writable" => {
                let mut seen = BTreeSet::new();
                for l in lines() {
                    if let Some((u, p)) = l.split_once('\t') {
                        if seen.insert((u.to_string(), p.to_string())) {
                            d.writable.push((u.to_string(), p.to_string()));
                        }
                    }
                }
                d.writable.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
            }
            "end" => d.complete = true,
            _ => {}
        }
    }
    d
}

/// `2: eth0    inet 192.0.2.11/24 brd ... scope global eth0 ...`
fn addr_line(l: &str) -> Option<Addr> {
    let w: Vec<&str> = l.split_whitespace().collect();
    let i = w.iter().position(|x| *x == "inet")?;
    let (a, p) = w.get(i + 1)?.split_once('/')?;
    let addr: Ipv4Addr = a.parse().ok()?;
    if addr.is_loopback() {
        return None;
    }
    Some(Addr {
        iface: w
            .get(1)?
            .trim_end_matches(':')
            .split('@')
            .next()?
            .to_string(),
        addr,
        prefix: p.parse().ok().filter(|p| *p <= 32)?,
    })
}

/// `LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=1,fd=6),...)`
fn listen_line(l: &str) -> Option<Listen> {
    let w: Vec<&str> = l.split_whitespace().collect();
    let local = w.get(3)?;
    let (addr, port) = local.rsplit_once(':')?;
    let process = l
        .split_once("((\"")
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    Some(Listen {
        addr: addr.to_string(),
        port: port.parse().ok()?,
        process,
    })
}

/// findmnt's `\x20` escapes.
fn unescape(s: &str) -> String {
    s.replace("\\x20", " ").replace("\\x09", "\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "\u{1e} infra-init os \nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n\
\u{1e} infra-init hostname \noldbox\n\
\u{1e} infra-init addr \n1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0@if5    inet 192.0.2.21/24 brd 192.0.2.255 scope global eth0\n\
\u{1e} infra-init route \ndefault via 192.0.2.1 dev eth0 onlink\n\
\u{1e} infra-init neigh \n192.0.2.1 dev eth0 lladdr 00:11:22:33:44:55 REACHABLE\n192.0.2.9 dev eth0 FAILED\n\
\u{1e} infra-init packages \nnginx\t1.22.1-9\tii \nphp8.2-fpm\t8.2.7\tii \nold\t1\trc \n\
\u{1e} infra-init ports \nLISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:((\"nginx\",pid=10,fd=6))\nLISTEN 0 128 [::]:22 [::]:*\n\
\u{1e} infra-init file /etc/cron.d/shop\nMAILTO=ops@example.com\n*/5 * * * * www-data php /x\n\n\
\u{1e} infra-init owned \n/etc/cron.d/e2scrub_all\n/etc/nginx/sites-available/default\n\
\u{1e} infra-init links \n/etc/nginx/sites-enabled/default\t/etc/nginx/sites-available/default\n\
\u{1e} infra-init pg_clusters \n15  main    5432 online postgres /var/lib/postgresql/15/main /var/log/x.log\n\
\u{1e} infra-init pg_databases 15 main 5432\nshop\t7500000\tshop\nreports\t7400000\tpostgres\n\
\u{1e} infra-init pg_roles 15 main 5432\nshop\n\
\u{1e} infra-init writable www-data\nwww-data\t/var/www/shop/var\nwww-data\t/var/www/shop/public/uploads\n\
\u{1e} infra-init end \n";

    #[test]
    fn the_scripts_output_reads_back() {
        let d = parse(OUT);
        assert!(d.complete && d.is_debian());
        assert_eq!(d.hostname, "oldbox");
        let p = d.primary().unwrap();
        assert_eq!(
            (p.iface.as_str(), p.addr.to_string(), p.prefix),
            ("eth0", "192.0.2.21".into(), 24)
        );
        assert_eq!(d.gateway, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(d.neighbors.len(), 1, "a FAILED neighbour is not there");
        assert_eq!(d.packages.len(), 2, "removed packages (rc) left out");
        assert_eq!(d.ports[0].process, "nginx");
        assert_eq!(d.ports[1].port, 22);
        assert_eq!(
            d.files["/etc/cron.d/shop"],
            "MAILTO=ops@example.com\n*/5 * * * * www-data php /x\n"
        );
        assert!(d.package_owned("/etc/nginx/sites-enabled/default"));
        assert!(!d.package_owned("/etc/cron.d/shop"));
        let c = &d.pg_clusters[0];
        assert!(c.online && c.port == 5432 && c.databases.len() == 2 && c.roles == ["shop"]);
        assert_eq!(
            d.writable[0].1, "/var/www/shop/public/uploads",
            "sorted by path"
        );
    }

    #[test]
    fn cut_or_foreign_output_is_never_a_panic() {
        let d = parse(&OUT[..OUT.len() / 2]);
        assert!(!d.complete);
        for n in 0..OUT.len() {
            if OUT.is_char_boundary(n) {
                parse(&OUT[..n]);
            }
        }
        let d = parse("\u{1e} infra-init os \nID=alpine\n\u{1e} infra-init end \n");
        assert!(d.complete && !d.is_debian());
        assert_eq!(d.os_name(), "alpine");
        let d = parse("\u{1e} infra-init os \nID=linuxmint\nID_LIKE=\"ubuntu debian\"\n");
        assert!(d.is_debian());
    }

    /// A machine that answers `out` to any script.
    struct Canned(&'static str);

    impl Remote for Canned {
        fn host(&self) -> &str {
            "oldbox"
        }
        fn run(
            &mut self,
            script: &str,
            _: &[u8],
        ) -> Result<crate::transport::Output, crate::transport::TransportError> {
            // answers as the script does: its headers carry the nonce infra set
            let nonce = script
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("NONCE="))
                .unwrap_or("");
            let out = self
                .0
                .replace("\u{1e} infra-init", &format!("\u{1e}{nonce} infra-init"));
            Ok(crate::transport::Output {
                stdout: out.into_bytes(),
                stderr: b"sh: 1: ip: not found".to_vec(),
                status: 127,
                signal: None,
            })
        }
        fn round_trips(&self) -> usize {
            1
        }
    }

    #[test]
    fn a_cut_discovery_and_a_foreign_system_are_refused() {
        let e = discover(&mut Canned(&OUT[..200])).unwrap_err();
        assert_eq!(e.code, "E0761");
        assert!(
            e.message.contains("oldbox") && format!("{:?}", e.help).contains("ip: not found"),
            "{e:?}"
        );
        let e = discover(&mut Canned("\u{1e} infra-init os \nPRETTY_NAME=\"Alpine Linux v3.20\"\nID=alpine\n\u{1e} infra-init end \n")).unwrap_err();
        assert_eq!(e.code, "E0760");
        assert!(
            e.message.contains("Alpine Linux v3.20") && e.message.contains("nothing written"),
            "{e:?}"
        );
        assert!(discover(&mut Canned(OUT)).is_ok());
    }

    #[test]
    fn text_read_from_the_machine_cannot_forge_a_section() {
        // a database named with a newline and a header of its own, then a repeat
        let forged = "\u{1e}N infra-init pg_clusters \n15 main 5432 online\n\
\u{1e}N infra-init pg_databases 15 main 5432\nshop\t1\tshop\nx\n\u{1e} infra-init file /etc/crontab\n* * * * * root evil\n\
\u{1e}N infra-init file /etc/crontab\n0 1 * * * root true\n\
\u{1e}N infra-init file /etc/crontab\n* * * * * root evil again\n\
\u{1e}N infra-init end \n";
        let d = parse_with(forged, "N");
        assert!(d.complete);
        assert_eq!(
            d.files["/etc/crontab"], "0 1 * * * root true",
            "the first, real one"
        );
        assert_eq!(d.pg_clusters[0].databases.len(), 1);
    }
}
