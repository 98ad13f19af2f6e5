//! Stage 3: distributed-systems lints over the Model. Entry point: [`lint`].
//! Pure: Model in, diagnostics with spans out. Errors are configurations that
//! cannot work (two groups fighting over one router id); warnings are ones that
//! work but will surprise (a job that runs on both machines).

use crate::diag::{codes, Diag};
use crate::resolve::{HostId, Instance, Model, Placement, ResourceKind, Role, Value};
use crate::source::Span;
use std::collections::{BTreeMap, BTreeSet};

const DATABASES: &[&str] = &["postgres", "mariadb"];

pub fn lint(model: &Model) -> Vec<Diag> {
    let mut d = Vec::new();
    hosts(model, &mut d);
    groups(model, &mut d);
    witnesses(model, &mut d);
    alerts(model, &mut d);
    backups(model, &mut d);
    share_snapshots(model, &mut d);
    shares(model, &mut d);
    jobs(model, &mut d);
    databases(model, &mut d);
    host_paths(model, &mut d);
    formats(model, &mut d);
    crate::diag::sort(&mut d);
    d
}

fn hosts(model: &Model, out: &mut Vec<Diag>) {
    let mut seen: BTreeMap<std::net::Ipv4Addr, usize> = BTreeMap::new();
    for (i, h) in model.hosts.iter().enumerate() {
        if let Some(&j) = seen.get(&h.address.value) {
            let p = &model.hosts[j];
            out.push(
                Diag::error(
                    codes::E0510,
                    format!(
                        "hosts `{}` and `{}` have the same address",
                        p.name.value, h.name.value
                    ),
                )
                .at(h.address.span, format!("{} again", h.address.value))
                .with(p.address.span, "first used here")
                .help("every host needs its own address"),
            );
        } else {
            seen.insert(h.address.value, i);
        }
    }
}

fn groups(model: &Model, out: &mut Vec<Diag>) {
    // One virtual_router_id per interface: VRRP adverts of two groups with one id
    // on one segment are taken as the same router.
    let mut ids: BTreeMap<(&str, u8), usize> = BTreeMap::new();
    for (gi, g) in model.groups.iter().enumerate() {
        let key = (g.interface.value.as_str(), g.router_id.value);
        if let Some(&prev) = ids.get(&key) {
            let p = &model.groups[prev];
            out.push(
                Diag::error(
                    codes::E0501,
                    format!(
                        "failover groups `{}` and `{}` share virtual_router_id {} on `{}`",
                        p.name.value, g.name.value, g.router_id.value, g.interface.value
                    ),
                )
                .at(g.router_id.span, format!("router id {} again", g.router_id.value))
                .with(p.router_id.span, "already used here")
                .help("give each group on one network its own `router_id` (1-255), or remove `router_id` to derive unique ones"),
            );
        } else {
            ids.insert(key, gi);
        }
        // Equal priorities: the election falls back to comparing addresses.
        let ps = &g.priorities.value;
        for i in 0..ps.len() {
            for j in 0..i {
                if ps[i] == ps[j] {
                    out.push(
                        Diag::error(codes::E0502, format!("members of `{}` have equal priorities ({})", g.name.value, ps[i]))
                            .at(g.priorities.span, "two equal priorities")
                            .help("give every member a distinct priority, highest first, with a gap of about 50 (e.g. [150, 100])"),
                    );
                }
            }
        }
        // Descending order is what member order promises.
        if ps.windows(2).any(|w| w[0] < w[1]) {
            out.push(
                Diag::warning(codes::W0511, format!("priorities of `{}` do not follow member order", g.name.value))
                    .at(g.priorities.span, "not descending")
                    .help("member order is preference order: list the priorities highest first, or reorder `members`"),
            );
        }
        // The VIP must be on the members' subnet, and not be one of their addresses.
        let vip = g.vip.value;
        for m in &g.members {
            let h = &model.hosts[m.value];
            if h.address.value == vip.addr {
                out.push(
                    Diag::error(
                        codes::E0504,
                        format!(
                            "the VIP of `{}` is the address of member `{}`",
                            g.name.value, h.name.value
                        ),
                    )
                    .at(g.vip.span, "this address is taken")
                    .with(h.address.span, "the host's own address")
                    .help("the virtual IP must be a free address that moves between members"),
                );
            } else if !vip.contains(h.address.value) {
                out.push(
                    Diag::error(
                        codes::E0503,
                        format!("the VIP {} is outside the subnet of member `{}` ({})", vip, h.name.value, h.address.value),
                    )
                    .at(g.vip.span, format!("{}/{} does not contain {}", vip.addr, vip.prefix, h.address.value))
                    .with(h.address.span, "member address")
                    .help("VRRP moves the address on one L2 segment: use a free address of the members' subnet, with its prefix length"),
                );
            }
        }
    }
}

/// One etcd cluster per host: the groups with a witness that a host takes part
/// in (as a member or as the witness) must all have the same three hosts.
fn witnesses(model: &Model, out: &mut Vec<Diag>) {
    let clusters: Vec<BTreeSet<HostId>> = model
        .groups
        .iter()
        .map(|g| g.witness_cluster().into_iter().collect())
        .collect();
    let mut cluster_of: BTreeMap<HostId, usize> = BTreeMap::new();
    for (gi, g) in model.groups.iter().enumerate() {
        let Some(w) = &g.witness else { continue };
        let mine = &clusters[gi];
        let clash = mine.iter().find_map(|h| {
            cluster_of
                .get(h)
                .filter(|&&other| clusters[other] != *mine)
                .map(|&other| (other, *h))
        });
        if let Some((other, h)) = clash {
            let o = &model.groups[other];
            out.push(
                Diag::error(
                    codes::E0519,
                    format!(
                        "host `{}` would be in two witness clusters: `{}` and `{}` have different hosts",
                        model.hosts[h].name.value, o.name.value, g.name.value
                    ),
                )
                .at(w.span, "this group's three hosts")
                .with(o.witness.as_ref().map_or(o.name.span, |w| w.span), "differ from this group's")
                .help("a host runs one etcd member: groups with a witness that share a host must have the same two members and the same witness"),
            );
            continue;
        }
        for &h in mine {
            cluster_of.insert(h, gi);
        }
    }
}

fn str_param<'a>(i: &'a Instance, name: &str) -> Option<&'a str> {
    match i.param(name).map(|p| &p.value) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn group_of(p: Placement) -> Option<crate::resolve::GroupId> {
    match p {
        Placement::Group(g) | Placement::Active(g) => Some(g),
        _ => None,
    }
}

fn shares(model: &Model, out: &mut Vec<Diag>) {
    let shares: Vec<&Instance> = model
        .instances
        .iter()
        .filter(|i| i.kind.value == "share")
        .collect();
    for (k, s) in shares.iter().enumerate() {
        let place = s.placement.value;
        if let Placement::Group(g) = place {
            out.push(
                Diag::error(
                    codes::E0505,
                    format!("share `{}` is pushed in both directions", s.name.value),
                )
                .at(
                    s.placement.span,
                    format!(
                        "every member of `{}` would push to the others",
                        model.groups[g].name.value
                    ),
                )
                .help(format!(
                    "push only from the member holding the VIP: `from = {}.active`",
                    model.groups[g].name.value
                )),
            );
        }
        if let Placement::All = place {
            out.push(
                Diag::error(
                    codes::E0505,
                    format!("share `{}` is pushed in both directions", s.name.value),
                )
                .at(s.placement.span, "every host would push to the others")
                .help("push from the active member of a failover group: `from = GROUP.active`"),
            );
        }
        if let Placement::Host(h) = place {
            let host = &model.hosts[h].name.value;
            let groups: Vec<&str> = model
                .groups
                .iter()
                .filter(|g| g.position(h).is_some())
                .map(|g| g.name.value.as_str())
                .collect();
            let help = match groups.as_slice() {
                [] => format!("a share pushes from the member of a failover group that holds the VIP to the other members: declare `failover GROUP {{ members = [{host}, ...] ... }}` and write `from = GROUP.active`"),
                [g, ..] => format!("a share pushes from the member of a failover group that holds the VIP to the other members: write `from = {g}.active`"),
            };
            out.push(
                Diag::error(
                    codes::E0513,
                    format!(
                        "share `{}` pushes from host `{host}`, not from a failover group's active member",
                        s.name.value
                    ),
                )
                .at(s.placement.span, "a host, not `GROUP.active`")
                .help(help),
            );
        }
        share_path(s, out);
        share_group(s, out);
        if let Some(g) = group_of(place) {
            if model.groups[g].members.len() < 2 {
                out.push(
                    Diag::warning(
                        codes::W0506,
                        format!("share `{}` has nowhere to go", s.name.value),
                    )
                    .at(
                        s.placement.span,
                        format!("`{}` has one member", model.groups[g].name.value),
                    )
                    .help("add a second member to the failover group, or remove the share"),
                );
            }
        }
        // Two shares of overlapping paths on one host push against each other (and
        // the outer one's --delete removes what the inner one pushed).
        let Some((path, path_span)) = str_param_at(s, "path") else {
            continue;
        };
        let hosts = model.placement_hosts(place);
        for t in &shares[..k] {
            let Some((tp, tp_span)) = str_param_at(t, "path") else {
                continue;
            };
            let shared = model
                .placement_hosts(t.placement.value)
                .into_iter()
                .find(|h| hosts.contains(h));
            if let (true, Some(h)) = (paths_overlap(path, tp), shared) {
                let how = if path == tp {
                    "the same directory".to_string()
                } else if path.starts_with(tp) {
                    format!("inside `{tp}`")
                } else {
                    format!("contains `{tp}`")
                };
                out.push(
                    Diag::error(
                        codes::E0505,
                        format!(
                            "shares `{}` and `{}` replicate overlapping paths on `{}`",
                            t.name.value, s.name.value, model.hosts[h].name.value
                        ),
                    )
                    .at(path_span, how)
                    .with(tp_span, format!("share `{}` replicates this", t.name.value))
                    .help("one directory tree must be replicated by one share, in one direction: merge the shares, or give them separate directories"),
                );
            }
        }
    }
}

/// Directories a share must not replicate: the system's own, and trees that belong to
/// the packages, the kernel or a database (nothing inside them either).
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/local",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/lib/mysql",
    "/var/lib/postgresql",
    "/var/log",
    "/var/tmp",
];
const SYSTEM_TREES: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/var/lib/mysql",
    "/var/lib/postgresql",
];
/// Characters rsync, rrsync (the authorized_keys command) or a shell would split or
/// interpret.
const SHARE_PATH_SPECIALS: &str = "'\"$`\\*?[]{};&|<>()#!";

/// A share's `path`: absolute and normalised are resolve's (E0215); here, not a
/// system directory and nothing the receiving side's shell or rsync would interpret.
/// Groups whose members can read or change the system (Debian's privileged
/// groups): the account that receives a share's pushes joins the share's group.
const PRIVILEGED_GROUPS: &[&str] = &[
    "root",
    "sudo",
    "adm",
    "shadow",
    "disk",
    "staff",
    "wheel",
    "systemd-journal",
    "docker",
    "lxd",
    "kvm",
    "libvirt",
];

fn share_group(s: &Instance, out: &mut Vec<Diag>) {
    let Some((group, span)) = str_param_at(s, "group") else {
        return;
    };
    if PRIVILEGED_GROUPS.contains(&group) {
        out.push(
            Diag::error(
                codes::E0517,
                format!("share `{}`: the group `{group}` is a privileged group", s.name.value),
            )
            .at(span, "the receiving account would join it")
            .help("the account that receives the pushes (`infra-share`) joins the share's group: leave `group` out (`infra-share`), or name the application's group, e.g. \"www-data\""),
        );
    }
}

fn share_path(s: &Instance, out: &mut Vec<Diag>) {
    let Some((path, span)) = str_param_at(s, "path") else {
        return;
    };
    let top = path.split('/').nth(1).unwrap_or("");
    let lib = matches!(top, "lib" | "lib32" | "lib64" | "libx32");
    let in_tree = SYSTEM_TREES
        .iter()
        .copied()
        .find(|t| path.starts_with(&format!("{t}/")))
        .or_else(|| (lib && path.len() > top.len() + 1).then_some("/lib"))
        .or_else(|| {
            (path.starts_with("/usr/") && !path.starts_with("/usr/local/")).then_some("/usr")
        });
    let problem = if SYSTEM_DIRS.contains(&path) || (lib && path.len() == top.len() + 1) {
        Some((
            format!("`{path}` is a system directory"),
            "a system directory".to_string(),
            "a share replicates its directory with `rsync --delete`: give it a directory of its own, e.g. `/srv/APP/uploads`".to_string(),
        ))
    } else if let Some(tree) = in_tree {
        Some((
            format!("`{path}` is inside `{tree}`"),
            format!("inside `{tree}`"),
            format!("`{tree}` belongs to the system (its packages, the kernel or a database): replicate a directory of your own, e.g. under `/srv`"),
        ))
    } else if path.split('/').any(|seg| seg == ".ssh") {
        Some((
            format!("`{path}` is an SSH directory"),
            "`.ssh`".to_string(),
            "a share's pushes would replace authorized_keys and keys: replicate application data only".to_string(),
        ))
    } else if let Some(c) = path
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || SHARE_PATH_SPECIALS.contains(*c))
    {
        Some((
            format!("the share path `{}` contains {c:?}", path.escape_debug()),
            format!("{c:?} here"),
            "rsync, the receiver's restricted command (rrsync) and the shell would split or interpret it: use letters, digits, `.`, `_`, `-` and `/`".to_string(),
        ))
    } else if path.split('/').any(|seg| seg.starts_with('-')) {
        Some((
            format!("a directory in the share path `{path}` starts with `-`"),
            "starts with `-`".to_string(),
            "rsync and rrsync would take it for an option: rename the directory".to_string(),
        ))
    } else {
        None
    };
    if let Some((message, label, help)) = problem {
        out.push(
            Diag::error(codes::E0515, format!("share `{}`: {message}", s.name.value))
                .at(span, label)
                .help(help),
        );
    }
}

/// A parameter's value in the configuration file it lands in: what the file's
/// syntax (nginx, postgresql.conf, my.cnf, ssh options) accepts for it.
struct Format {
    kind: &'static str,
    param: &'static str,
    /// `None`: well formed; `Some(label, help)`: not.
    check: fn(&str) -> Option<(&'static str, &'static str)>,
}

const FORMATS: &[Format] = &[
    Format {
        kind: "php_app",
        param: "server_name",
        check: server_names,
    },
    Format {
        kind: "php_app",
        param: "health",
        check: url_path,
    },
    Format {
        kind: "php_app",
        param: "php",
        check: version,
    },
    Format {
        kind: "postgres",
        param: "listen",
        check: listen_addresses,
    },
    Format {
        kind: "postgres",
        param: "max_slot_wal_keep_size",
        check: wal_size,
    },
    Format {
        kind: "postgres",
        param: "wal_keep_size",
        check: wal_keep_size,
    },
    Format {
        kind: "postgres",
        param: "replication",
        check: replication_mode,
    },
    Format {
        kind: "mariadb",
        param: "bind",
        check: bind_address,
    },
    Format {
        kind: "share",
        param: "host_key_checking",
        check: host_key_checking,
    },
    Format {
        kind: "postgres_backup",
        param: "host_key_checking",
        check: host_key_checking,
    },
    Format {
        kind: "postgres_backup",
        param: "archive_queue_max",
        check: pgbackrest_size,
    },
    Format {
        kind: "php_app",
        param: "root",
        check: plain_path,
    },
    Format {
        kind: "php_app",
        param: "writable",
        check: plain_path,
    },
    Format {
        kind: "service",
        param: "writable",
        check: plain_path,
    },
    Format {
        kind: "service",
        param: "root",
        check: plain_path,
    },
    Format {
        kind: "postgres",
        param: "databases",
        check: database,
    },
    Format {
        kind: "mariadb",
        param: "databases",
        check: database,
    },
    Format {
        kind: "alert",
        param: "format",
        check: alert_format,
    },
    Format {
        kind: "alert",
        param: "smtp_tls",
        check: smtp_tls,
    },
    Format {
        kind: "alert",
        param: "email",
        check: email_address,
    },
    Format {
        kind: "alert",
        param: "from",
        check: email_address,
    },
    Format {
        kind: "alert",
        param: "webhook",
        check: webhook_url,
    },
    Format {
        kind: "alert",
        param: "disk",
        check: disk_path,
    },
];

fn alert_format(v: &str) -> Option<(&'static str, &'static str)> {
    (!["json", "ntfy", "slack"].contains(&v)).then_some((
        "not a webhook format",
        "one of \"json\" (the default: host, group, event, time, summary, details), \"ntfy\" (text with a Title header) or \"slack\" ({\"text\"})",
    ))
}

fn smtp_tls(v: &str) -> Option<(&'static str, &'static str)> {
    (!["starttls", "tls", "off"].contains(&v)).then_some((
        "not a TLS mode",
        "one of \"starttls\" (the default, port 587), \"tls\" (port 465) or \"off\" (a relay on the local network only)",
    ))
}

fn email_address(v: &str) -> Option<(&'static str, &'static str)> {
    let ok = v.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !v
        .contains(|c: char| c.is_whitespace() || c.is_control() || "<>,;\"'\\".contains(c));
    (!ok).then_some((
        "not an email address",
        "a plain address such as \"it@office.example\" (no name, no brackets, one per list item)",
    ))
}

fn webhook_url(v: &str) -> Option<(&'static str, &'static str)> {
    let ok = (v.starts_with("https://") || v.starts_with("http://"))
        && v.len() > 8
        && !v.contains(|c: char| c.is_whitespace() || c.is_control() || "'\"\\".contains(c));
    (!ok).then_some((
        "not an http(s) URL",
        "a URL such as \"https://ntfy.sh/office-alerts\" (no spaces or quotes)",
    ))
}

/// A size as pgBackRest reads it: bytes, or a number with KB, MB, GB, TB (or KiB...).
fn pgbackrest_size(v: &str) -> Option<(&'static str, &'static str)> {
    let digits = v.chars().take_while(char::is_ascii_digit).count();
    let unit = v[digits..].to_ascii_lowercase();
    let ok = digits > 0
        && ["", "b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib"].contains(&unit.as_str());
    (!ok).then_some((
        "not a size pgBackRest reads",
        "a number with a unit, e.g. \"4GiB\" or \"512MiB\"",
    ))
}

/// A backup with nowhere safe to go (one member: the backups would be the
/// primary's own disk), a retention of nothing, no schedule, or two backups of
/// one server (two archive_commands, two chains fighting over one binary log).
fn backups(model: &Model, out: &mut Vec<Diag>) {
    // the kind, the parameter naming its server (also what the server is
    // called), the server's kind, and what one backup of it keeps
    const KINDS: [(&str, &str, &str, &str); 2] = [
        (
            "postgres_backup",
            "cluster",
            "postgres",
            "it keeps full and incremental backups and the WAL",
        ),
        (
            "mariadb_backup",
            "server",
            "mariadb",
            "it keeps full and incremental backups and the binary log",
        ),
    ];
    let mut of_server: BTreeMap<crate::resolve::InstanceId, &Instance> = BTreeMap::new();
    for b in model.instances.iter() {
        let Some(&(kind, param, server_kind, keeps)) = KINDS.iter().find(|k| k.0 == b.kind.value)
        else {
            continue;
        };
        let name = &b.name.value;
        if let Some(Value::Instance(c)) = b.param(param).map(|p| &p.value) {
            let server = &model.instances[*c];
            if let Some(first) = of_server.get(c) {
                let span = b.param(param).map_or(b.name.span, |p| p.span);
                out.push(
                    Diag::error(
                        codes::E0521,
                        format!(
                            "{server_kind} `{}` has two backups, `{}` and `{name}`",
                            server.name.value, first.name.value
                        ),
                    )
                    .at(span, "a second backup of the same server")
                    .with(first.name.span, "the first")
                    .help(format!("one {kind} per {param}: {keeps}")),
                );
            } else {
                of_server.insert(*c, b);
            }
            let members =
                group_of(server.placement.value).map_or(1, |g| model.groups[g].members.len());
            if members < 2 {
                out.push(
                    Diag::error(
                        codes::E0521,
                        format!("{kind} `{name}` would keep its backups on the primary's own disk"),
                    )
                    .at(b.name.span, format!("its {param}'s group has one member"))
                    .help("the backups are kept on the members that are not the primary: give the failover group a second member"),
                );
            }
        }
        if let Some(p) = b.param("keep_full") {
            if p.value == Value::Int(0) {
                out.push(
                    Diag::error(codes::E0521, format!("{kind} `{name}` keeps no backup"))
                        .at(p.span, "keep_full = 0")
                        .help(format!("keep at least one full backup (2: the last one and the one before, with the {} between)", if kind == "postgres_backup" { "WAL" } else { "binary log" })),
                );
            }
        }
        for when in ["full", "incremental"] {
            if let Some((v, span)) = str_param_at(b, when) {
                if v.trim().is_empty() {
                    out.push(
                        Diag::error(
                            codes::E0521,
                            format!("{kind} `{name}` has no `{when}` schedule"),
                        )
                        .at(span, "empty")
                        .help(format!(
                            "a systemd calendar such as {:?}",
                            if when == "full" {
                                "Sun *-*-* 01:00:00"
                            } else {
                                "Mon..Sat *-*-* 01:00:00"
                            }
                        )),
                    );
                }
            }
        }
    }
}

/// Snapshots that keep nothing, or two sets fighting over one share's directory.
fn share_snapshots(model: &Model, out: &mut Vec<Diag>) {
    let mut of_share: BTreeMap<crate::resolve::InstanceId, &Instance> = BTreeMap::new();
    for s in model
        .instances
        .iter()
        .filter(|i| i.kind.value == "share_snapshots")
    {
        let name = &s.name.value;
        if let Some(p) = s.param("share") {
            if let Value::Instance(sh) = &p.value {
                if let Some(first) = of_share.get(sh) {
                    out.push(
                        Diag::error(
                            codes::E0522,
                            format!(
                                "share `{}` has two sets of snapshots, `{}` and `{name}`",
                                model.instances[*sh].name.value, first.name.value
                            ),
                        )
                        .at(p.span, "a second set in the same directory")
                        .with(first.name.span, "the first")
                        .help("one share_snapshots per share: `keep` says how many it keeps, `at` when it takes them"),
                    );
                } else {
                    of_share.insert(*sh, s);
                }
            }
        }
        if let Some(p) = s.param("keep") {
            if p.value == Value::Int(0) {
                out.push(
                    Diag::error(codes::E0522, format!("share_snapshots `{name}` keeps no snapshot"))
                        .at(p.span, "keep = 0")
                        .help("keep at least one (14: two weeks of daily snapshots); to take none, remove the block"),
                );
            }
        }
    }
}

/// An alert that can reach nobody, or email without a smarthost.
fn alerts(model: &Model, out: &mut Vec<Diag>) {
    for a in model.instances.iter().filter(|i| i.kind.value == "alert") {
        let list_len = |name: &str| match a.param(name).map(|p| &p.value) {
            Some(Value::List(v)) => v.len(),
            _ => 0,
        };
        let (email, webhook) = (list_len("email"), list_len("webhook"));
        if email == 0 && webhook == 0 {
            out.push(
                Diag::error(codes::E0520, format!("alert `{}` has no recipient", a.name.value))
                    .at(a.name.span, "nobody would hear of anything")
                    .help("add `email = [\"it@office.example\"]` (with `smtp = \"HOST\"`) and/or `webhook = [\"https://...\"]`"),
            );
        }
        if let Some(p) = a.param("disk_full_at") {
            if let Value::Int(v) = p.value {
                if !(1..=99).contains(&v) {
                    out.push(
                        Diag::error(
                            codes::E0520,
                            format!("alert `{}` would never or always say a disk is full", a.name.value),
                        )
                        .at(p.span, format!("{v} %"))
                        .help("a percentage from 1 to 99 (90: a message when a watched filesystem's blocks or inodes are 90 % used); `disk = []` watches none"),
                    );
                }
            }
        }
        if email > 0 && str_param(a, "smtp").is_none_or(str::is_empty) {
            let span = a.param("email").map_or(a.name.span, |p| p.span);
            out.push(
                Diag::error(codes::E0520, format!("alert `{}` sends email but names no smarthost", a.name.value))
                    .at(span, "no `smtp` to send it through")
                    .help("add `smtp = \"mail.office.example\"` (your provider's or the office's mail server; `smtp_user`/`smtp_password` when it wants a login)"),
            );
        }
    }
}

fn formats(model: &Model, out: &mut Vec<Diag>) {
    // `web_root`: absolute, or inside the release when the app has a `source`.
    for i in model.instances.iter().filter(|i| i.kind.value == "php_app") {
        let released = str_param(i, "source").is_some_and(|s| !s.is_empty());
        let Some((v, span)) = str_param_at(i, "web_root") else {
            continue;
        };
        let problem = match (released, v.starts_with('/')) {
            (_, _) if v.is_empty() => None,
            (false, _) => plain_path(v),
            (true, true) => Some((
                "absolute, but the application is a release",
                "with `source`, `web_root` is a directory inside the release, e.g. \"public\" (nginx serves ROOT/current/public)",
            )),
            (true, false) => plain_path(&format!("/{v}")),
        };
        if let Some((label, help)) = problem {
            out.push(
                Diag::error(
                    codes::E0206,
                    format!(
                        "php_app `{}`: `web_root` = {v:?} is malformed",
                        i.name.value
                    ),
                )
                .at(span, label)
                .help(help),
            );
        }
    }
    for i in &model.instances {
        for f in FORMATS.iter().filter(|f| f.kind == i.kind.value) {
            let Some(p) = i.param(f.param) else {
                continue;
            };
            let values: Vec<&str> = match &p.value {
                Value::Str(s) => vec![s],
                Value::List(items) => items
                    .iter()
                    .filter_map(|v| match v {
                        Value::Str(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let span = p.span;
            for v in values {
                let Some((label, help)) = (f.check)(v) else {
                    continue;
                };
                out.push(
                    Diag::error(
                        codes::E0206,
                        format!(
                            "{} `{}`: `{}` = {:?} is malformed",
                            f.kind, i.name.value, f.param, v
                        ),
                    )
                    .at(span, label)
                    .help(help),
                );
            }
        }
    }
}

fn database(v: &str) -> Option<(&'static str, &'static str)> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && only(v, "_");
    (!ok).then_some((
        "not a plain database name",
        "a database name of letters, digits and `_`, starting with a letter or `_`, at most 63 characters, e.g. \"accounting\" (no quoting is needed in SQL, psql or mariadb for it)",
    ))
}

fn only(v: &str, extra: &str) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

fn server_names(v: &str) -> Option<(&'static str, &'static str)> {
    let ok = !v.trim().is_empty()
        && v.split(' ')
            .all(|n| !n.is_empty() && only(n, ".-_*") && !n.starts_with('-'));
    (!ok).then_some((
        "not a list of host names",
        "nginx's server_name: host names separated by one space, e.g. \"accounting.example.org www.example.org\" (`*.example.org` for a wildcard, \"_\" for any)",
    ))
}

fn url_path(v: &str) -> Option<(&'static str, &'static str)> {
    let ok = v.starts_with('/') && v.len() > 1 && only(v, "/._-~");
    (!ok).then_some((
        "not a URL path",
        "an absolute URL path of letters, digits, `/`, `.`, `_`, `-` and `~`, e.g. \"/health\"",
    ))
}

/// A path that lands in nginx, php-fpm or a unit file unquoted: absolute and
/// normalised (E0215's rule) and of characters none of them splits or expands.
fn plain_path(v: &str) -> Option<(&'static str, &'static str)> {
    let ok = crate::resolve::names::path(v).is_none() && only(v, "/._-+@");
    (!ok).then_some((
        "not a plain absolute path",
        "nginx, php-fpm and systemd take this path as it is: an absolute path of letters, digits, `/`, `.`, `_`, `-`, `+` and `@`, e.g. \"/srv/accounting/public\"",
    ))
}

/// A path whose filesystem `df` reads: `/`, or a plain absolute path.
fn disk_path(v: &str) -> Option<(&'static str, &'static str)> {
    (v != "/" && plain_path(v).is_some()).then_some((
        "not a plain absolute path",
        "a path on the filesystem to watch, e.g. \"/\" or \"/var/lib/postgresql\" (no spaces or quotes)",
    ))
}

fn version(v: &str) -> Option<(&'static str, &'static str)> {
    let ok = !v.is_empty() && only(v, ".") && !v.starts_with('.') && !v.ends_with('.');
    (!ok).then_some((
        "not a version",
        "a PHP version as Debian names its packages, e.g. \"8.2\"",
    ))
}

fn listen_addresses(v: &str) -> Option<(&'static str, &'static str)> {
    let ok = v == "*"
        || v.split(',')
            .all(|a| !a.trim().is_empty() && only(a.trim(), ".:-_"));
    (!ok).then_some((
        "not a list of addresses",
        "PostgreSQL's listen_addresses: \"*\" for every address, or addresses and host names separated by commas, e.g. \"127.0.0.1,10.0.0.1\"",
    ))
}

fn wal_size(v: &str) -> Option<(&'static str, &'static str)> {
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &v[digits.len()..];
    let ok = v == "-1"
        || (!digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit())
            && ["", "kB", "MB", "GB", "TB"].contains(&unit));
    (!ok).then_some((
        "not a size",
        "a size in kB, MB, GB or TB, e.g. \"4GB\", or \"-1\" for no limit",
    ))
}

fn wal_keep_size(v: &str) -> Option<(&'static str, &'static str)> {
    match wal_size(v) {
        None if v != "-1" => None,
        _ => Some((
            "not a size",
            "a size in kB, MB, GB or TB, e.g. \"512MB\" (\"0\": none)",
        )),
    }
}

fn replication_mode(v: &str) -> Option<(&'static str, &'static str)> {
    (!["async", "sync"].contains(&v)).then_some((
        "not a replication mode",
        "\"async\" (a commit returns before a standby has it) or \"sync\" (once another member has it; docs/stdlib.md)",
    ))
}

fn bind_address(v: &str) -> Option<(&'static str, &'static str)> {
    let ok = !v.is_empty() && only(v, ".:-_") && !v.starts_with('-');
    (!ok).then_some((
        "not an address",
        "MariaDB's bind-address: one address or host name, e.g. \"0.0.0.0\" for every address or \"127.0.0.1\"",
    ))
}

fn host_key_checking(v: &str) -> Option<(&'static str, &'static str)> {
    (!["accept-new", "yes", "no"].contains(&v)).then_some((
        "not an ssh StrictHostKeyChecking value",
        "one of \"accept-new\" (the default: trust a peer's key the first time), \"yes\" or \"no\"",
    ))
}

fn str_param_at<'a>(i: &'a Instance, name: &str) -> Option<(&'a str, crate::source::Span)> {
    match i.param(name) {
        Some(p) => match &p.value {
            Value::Str(s) => Some((s, p.span)),
            _ => None,
        },
        None => None,
    }
}

fn paths_overlap(a: &str, b: &str) -> bool {
    let a = a.trim_end_matches('/');
    let b = b.trim_end_matches('/');
    a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
}

fn jobs(model: &Model, out: &mut Vec<Diag>) {
    let share_paths: Vec<(&Instance, &str)> = model
        .instances
        .iter()
        .filter(|i| i.kind.value == "share")
        .filter_map(|i| str_param(i, "path").map(|p| (i, p)))
        .collect();
    for j in model.instances.iter().filter(|i| i.kind.value == "job") {
        schedule(j, out);
        let run = str_param(j, "run").unwrap_or("");
        match j.placement.value {
            Placement::Group(g) => out.push(
                Diag::warning(codes::W0509, format!("job `{}` runs on every member of `{}`", j.name.value, model.groups[g].name.value))
                    .at(j.placement.span, "each member runs it")
                    .help(format!(
                        "to run it exactly once, on the machine holding the VIP, write `on = {}.active`",
                        model.groups[g].name.value
                    )),
            ),
            Placement::All => {
                for (s, p) in &share_paths {
                    if run.contains(p.trim_end_matches('/')) {
                        out.push(
                            Diag::warning(codes::W0507, format!("job `{}` runs on every host and writes into share `{}`", j.name.value, s.name.value))
                                .at(j.placement.span, "runs on all hosts")
                                .with(s.span, format!("`{p}` is replicated from the active member"))
                                .help("on a standby its writes are overwritten by the next push: use `on = GROUP.active`"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

/// A job runs on `calendar` or on `every`: exactly one.
fn schedule(j: &Instance, out: &mut Vec<Diag>) {
    let calendar = j
        .param("calendar")
        .filter(|p| matches!(&p.value, Value::Str(s) if !s.is_empty()));
    let every = j
        .param("every")
        .filter(|p| matches!(p.value, Value::Duration(d) if d > 0));
    match (calendar, every) {
        (None, None) => out.push(
            Diag::error(codes::E0512, format!("job `{}` has no schedule", j.name.value))
                .at(j.name.span, "neither `calendar` nor `every` is set")
                .help("add `calendar = \"*-*-* 03:00\"` (at times of the clock) or `every = \"1h\"` (a period)"),
        ),
        (Some(c), Some(e)) => out.push(
            Diag::error(codes::E0512, format!("job `{}` has two schedules", j.name.value))
                .at(e.span, "`every` given")
                .with(c.span, "and `calendar` too")
                .help("keep one: `calendar` runs at times of the clock, `every` after a period"),
        ),
        _ => {}
    }
}

/// PostgreSQL major versions the target distribution (Debian 12) packages.
const POSTGRES_VERSIONS: &[i64] = &[15];

fn databases(model: &Model, out: &mut Vec<Diag>) {
    for db in model
        .instances
        .iter()
        .filter(|i| i.kind.value == "postgres")
    {
        let Some(p) = db.param("version") else {
            continue;
        };
        if let Value::Int(v) = p.value {
            if !POSTGRES_VERSIONS.contains(&v) {
                out.push(
                    Diag::error(
                        codes::E0514,
                        format!("PostgreSQL {v} is not packaged for the target distribution"),
                    )
                    .at(p.span, format!("Debian 12 has no postgresql-{v}"))
                    .help("Debian 12 ships PostgreSQL 15: write `version = 15`, or leave `version` out"),
                );
            }
        }
    }
    for db in model
        .instances
        .iter()
        .filter(|i| DATABASES.contains(&i.kind.value.as_str()))
    {
        let Some(g) = group_of(db.placement.value) else {
            continue;
        };
        let group = &model.groups[g];
        if group.members.len() == 2 && group.witness.is_none() {
            out.push(
                Diag::warning(
                    codes::W0518,
                    format!(
                        "database `{}` is on `{}`, two members without a witness: they can both be primary",
                        db.qualified(),
                        group.name.value
                    ),
                )
                .at(
                    db.placement.span,
                    format!("`{}` has no majority when its members lose each other", group.name.value),
                )
                .with(group.name.span, "two members, no `witness`")
                .help(format!(
                    "when the link between the members fails and clients still reach both, each takes the VIP and accepts writes, and the loser's are lost on healing (`infra drill --fault partition` counts them); declare a third small host and add `witness = HOST` to `failover {}`",
                    group.name.value
                )),
            );
        }
        if group.members.len() < 2 {
            out.push(
                Diag::warning(
                    codes::W0506,
                    format!(
                        "database `{}` is on a failover group with one member",
                        db.qualified()
                    ),
                )
                .at(
                    db.placement.span,
                    format!("`{}` has a single member", model.groups[g].name.value),
                )
                .help("replication needs a second member: add one to the group's `members`"),
            );
        }
    }
    // An app and the database it needs should follow the same VIP.
    for app in &model.instances {
        let Some(ag) = group_of(app.placement.value) else {
            continue;
        };
        for need in &app.needs {
            let db = &model.instances[need.value];
            if !DATABASES.contains(&db.kind.value.as_str()) {
                continue;
            }
            if let Some(dg) = group_of(db.placement.value) {
                if dg != ag {
                    out.push(
                        Diag::warning(
                            codes::W0508,
                            format!(
                                "`{}` follows `{}` but its database `{}` follows `{}`",
                                app.qualified(),
                                model.groups[ag].name.value,
                                db.qualified(),
                                model.groups[dg].name.value
                            ),
                        )
                        .at(need.span, "needs a database on another failover group")
                        .with(db.placement.span, "the database's group")
                        .help("after a failover the app and its primary database may sit on different machines: put both on one group"),
                    );
                }
            }
        }
    }
}

/// What a host gets at one path: a file or a directory, and who declared it.
struct PathUse<'m> {
    dir: bool,
    inst: &'m Instance,
    /// The resource block.
    span: Span,
}

/// On each host, a file where another resource needs a directory: a path below a
/// file, or a file and a directory at one path (the build could not be written, nor
/// the host's tree made). Units and drop-ins count as the files they become. Each
/// clash is reported once, for the first host it is on.
fn host_paths(model: &Model, out: &mut Vec<Diag>) {
    let mut seen: BTreeSet<(Span, Span)> = BTreeSet::new();
    for h in model.host_ids() {
        let mut uses: BTreeMap<&str, Vec<PathUse>> = BTreeMap::new();
        let mut generated: Vec<(String, bool, &Instance, Span)> = Vec::new();
        for inst in &model.instances {
            if !model.placement_hosts(inst.placement.value).contains(&h) {
                continue;
            }
            let role = match group_of(inst.placement.value) {
                Some(g) => match model.groups[g].position(h) {
                    Some(0) => Role::Primary,
                    Some(_) => Role::Standby,
                    None => Role::Any,
                },
                None => Role::Primary,
            };
            for r in &inst.resources {
                if r.only != Role::Any && r.only != role {
                    continue;
                }
                let u = |dir| PathUse {
                    dir,
                    inst,
                    span: r.span,
                };
                match &r.kind {
                    ResourceKind::File { path, .. } => uses.entry(path).or_default().push(u(false)),
                    ResourceKind::Directory { path, .. } => {
                        uses.entry(path).or_default().push(u(true))
                    }
                    ResourceKind::Unit { name, .. } => {
                        generated.push((format!("/etc/systemd/system/{name}"), false, inst, r.span))
                    }
                    ResourceKind::Dropin { unit, .. } => {
                        generated.push((
                            format!("/etc/systemd/system/{unit}.d"),
                            true,
                            inst,
                            r.span,
                        ));
                        generated.push((
                            format!("/etc/systemd/system/{unit}.d/infra.conf"),
                            false,
                            inst,
                            r.span,
                        ));
                    }
                    _ => {}
                }
            }
        }
        for (path, dir, inst, span) in &generated {
            uses.entry(path.as_str()).or_default().push(PathUse {
                dir: *dir,
                inst,
                span: *span,
            });
        }
        let host = &model.hosts[h].name.value;
        let mut push = |d: Diag, a: Span, b: Span| {
            if seen.insert((a, b)) {
                out.push(d);
            }
        };
        for (path, us) in &uses {
            // A file and a directory at one path.
            if let (Some(f), Some(d)) = (us.iter().find(|u| !u.dir), us.iter().find(|u| u.dir)) {
                let (fs, ds) = (user_span(model, f), user_span(model, d));
                push(
                    Diag::error(
                        codes::E0516,
                        format!(
                            "on `{host}`, `{path}` is declared both as a file and as a directory"
                        ),
                    )
                    .at(fs, format!("a file (`{}`)", f.inst.qualified()))
                    .with(ds, format!("a directory (`{}`)", d.inst.qualified()))
                    .help(
                        "a path is a file or a directory on a host, not both: rename one of them",
                    ),
                    fs,
                    ds,
                );
            }
            // A path inside a file.
            let mut parent = *path;
            while let Some(i) = parent.rfind('/') {
                parent = &path[..i];
                let Some(f) = uses.get(parent).and_then(|p| p.iter().find(|u| !u.dir)) else {
                    continue;
                };
                let inner = &us[0];
                let (is, fs) = (user_span(model, inner), user_span(model, f));
                push(
                    Diag::error(codes::E0516, format!("on `{host}`, `{path}` would be inside the file `{parent}`"))
                        .at(is, format!("inside a file (`{}`)", inner.inst.qualified()))
                        .with(fs, format!("`{parent}` is a file (`{}`)", f.inst.qualified()))
                        .help(format!("files go inside directories: make `{parent}` a directory, or move `{path}` elsewhere")),
                    is,
                    fs,
                );
                break;
            }
        }
    }
}

/// Where to point for a resource: into the user's own file, the resource if its kind
/// is the user's, else the instance's name.
fn user_span(model: &Model, u: &PathUse) -> Span {
    if model.sources.get(u.span.file).name.starts_with("std/") {
        u.inst.name.span
    } else {
        u.span
    }
}
