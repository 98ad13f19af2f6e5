//! What a machine runs ([`Discovered`]) → a starting configuration for it and
//! a second machine ([`Starter`]: `main.infra` and `REVIEW.md`). Entry point:
//! [`starter`]. Pure and deterministic: the same discovery gives the same text.
//!
//! Nothing read is dropped silently: what becomes configuration is said in a
//! comment beside it (the crontab line a job came from, why it runs where it
//! does), and what cannot is listed in REVIEW.md with the reason.

use super::cron::{self, Entry};
use super::discover::{Addr, Discovered};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// The group every translated thing follows.
pub const GROUP: &str = "office";
/// The second machine's name.
pub const STANDBY: &str = "standby";

/// How the configuration is written.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--from` as the user gave it (said in the header).
    pub from: String,
    /// The second machine's address (`--standby`); else a free one is suggested.
    pub standby: Option<Ipv4Addr>,
    /// When the machine was read, in words (REVIEW.md only: main.infra has no date).
    pub when: String,
}

/// The files of the starting configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Starter {
    /// `main.infra` (not yet formatted: [`super::from_host`] formats and checks it).
    pub main: String,
    /// `REVIEW.md`: what to confirm, what was translated and what was not.
    pub review: String,
    /// The cron lines that became jobs: (source, line number, job name, placement).
    pub jobs: Vec<(String, usize, String, String)>,
}

/// What REVIEW.md collects while translating.
#[derive(Default)]
struct Review {
    confirm: Vec<String>,
    translated: Vec<String>,
    untranslated: Vec<String>,
    before: Vec<String>,
    left: Vec<String>,
}

/// Instance and host names handed out so far.
#[derive(Default)]
struct Names(BTreeSet<String>);

impl Names {
    /// `want` as an identifier, not taken yet (`_2`, `_3`... when it is).
    fn take(&mut self, want: &str) -> String {
        let base = ident(want);
        let mut name = base.clone();
        let mut n = 2;
        while self.0.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

/// A name of the language: `[a-z_][a-z0-9_]*`, never a keyword.
fn ident(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let mut out = out.trim_end_matches('_').to_string();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("x{out}");
    }
    if matches!(
        out.as_str(),
        "import" | "let" | "kind" | "true" | "false" | "all" | "host" | "failover" | "admin"
    ) {
        out.push_str("_1");
    }
    out
}

/// A string literal of the language.
fn lit(s: &str) -> String {
    crate::fmt::quote(s)
}

fn list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| lit(s)).collect();
    format!("[{}]", q.join(", "))
}

/// Text as `# ` comment lines (at most ~90 columns).
fn comment(out: &mut String, text: &str) {
    for para in text.lines() {
        let mut line = String::from("#");
        for w in para.split(' ') {
            if line.len() + w.len() + 1 > 88 && line.len() > 1 {
                out.push_str(&line);
                out.push('\n');
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(w);
        }
        out.push_str(&line);
        out.push('\n');
    }
}

/// A line of a file quoted in a comment or in REVIEW.md: one line, no control
/// characters, at most 120 characters.
fn quoted(s: &str) -> String {
    let s: String = s
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(117).collect::<String>())
    } else {
        s
    }
}

fn mb(bytes: u64) -> String {
    if bytes >= 10 << 30 {
        format!("{} GB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{} MB", (bytes + (1 << 19)) >> 20)
    } else {
        format!("{} KB", (bytes + 512) >> 10)
    }
}

/// Free addresses of `a`'s subnet: not `a`, the gateway, a neighbour, another
/// address of the machine, the network or broadcast address; after `a` first.
fn free_addresses(a: &Addr, d: &Discovered) -> Vec<Ipv4Addr> {
    if a.prefix >= 31 || a.prefix < 8 {
        return Vec::new();
    }
    let ip = u32::from(a.addr);
    let mask = u32::MAX << (32 - a.prefix);
    let (net, bcast) = (ip & mask, (ip & mask) | !mask);
    let taken = |x: u32| {
        let x = Ipv4Addr::from(x);
        d.gateway == Some(x) || d.neighbors.contains(&x) || d.addrs.iter().any(|o| o.addr == x)
    };
    let after = (ip.saturating_add(1)..bcast).take(4096);
    let before = (net + 1..ip).take(4096);
    after
        .chain(before)
        .filter(|x| !taken(*x))
        .map(Ipv4Addr::from)
        .take(16)
        .collect()
}

/// A site of nginx or apache that serves an application.
#[derive(Debug, Clone)]
struct Site {
    /// The configuration file.
    file: String,
    server: String,
    names: Vec<String>,
    /// The document root as written.
    doc_root: String,
    listen: u16,
    tls: bool,
    /// The PHP handler (`fastcgi_pass`), or "mod_php" for apache.
    php: Option<String>,
}

/// nginx's `server { }` blocks of one file, crudely: directives at any depth
/// of the block, comments removed.
fn nginx_sites(file: &str, text: &str) -> Vec<Site> {
    let clean: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut sites = Vec::new();
    let mut rest = clean.as_str();
    while let Some(i) = find_word(rest, "server") {
        let after = &rest[i + "server".len()..];
        let Some(open) = after.trim_start().strip_prefix('{') else {
            rest = after;
            continue;
        };
        // the block: up to its matching brace
        let mut depth = 1;
        let mut end = open.len();
        for (j, c) in open.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let body = &open[..end];
        rest = &open[end.min(open.len())..];
        let mut site = Site {
            file: file.to_string(),
            server: "nginx".into(),
            names: Vec::new(),
            doc_root: String::new(),
            listen: 80,
            tls: false,
            php: None,
        };
        for stmt in body.split([';', '{', '}']) {
            let w: Vec<&str> = stmt.split_whitespace().collect();
            match w.first() {
                Some(&"server_name") => site
                    .names
                    .extend(w[1..].iter().filter(|n| **n != "_").map(|n| n.to_string())),
                Some(&"root") if site.doc_root.is_empty() && w.len() > 1 => {
                    site.doc_root = w[1].trim_matches('"').to_string()
                }
                Some(&"listen") if w.len() > 1 => {
                    let port = w[1].rsplit(':').next().unwrap_or("80");
                    if w.contains(&"ssl") {
                        site.tls = true;
                    } else if let Ok(p) = port.parse() {
                        site.listen = p;
                    }
                }
                Some(&"fastcgi_pass") if w.len() > 1 => site.php = Some(w[1].to_string()),
                _ => {}
            }
        }
        sites.push(site);
    }
    sites
}

fn find_word(s: &str, w: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find(w) {
        let at = from + i;
        let before = s[..at].chars().next_back();
        let after = s[at + w.len()..].chars().next();
        let edge = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        if edge(before) && edge(after) {
            return Some(at);
        }
        from = at + w.len();
    }
    None
}

/// apache's `<VirtualHost>`s of one file.
fn apache_sites(file: &str, text: &str) -> Vec<Site> {
    let mut sites = Vec::new();
    let mut cur: Option<Site> = None;
    for l in text.lines() {
        let l = l.trim();
        let w: Vec<&str> = l.split_whitespace().collect();
        let key = w
            .first()
            .map(|k| k.to_ascii_lowercase())
            .unwrap_or_default();
        if key.starts_with("<virtualhost") {
            let port = l
                .rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('>').parse().ok())
                .unwrap_or(80);
            cur = Some(Site {
                file: file.to_string(),
                server: "apache2".into(),
                names: Vec::new(),
                doc_root: String::new(),
                listen: port,
                tls: port == 443,
                php: Some("mod_php".into()),
            });
        } else if key == "</virtualhost>" {
            sites.extend(cur.take());
        } else if let Some(s) = cur.as_mut() {
            match key.as_str() {
                "servername" | "serveralias" => {
                    s.names.extend(w[1..].iter().map(|n| n.to_string()))
                }
                "documentroot" if w.len() > 1 => s.doc_root = w[1].trim_matches('"').to_string(),
                "sslengine" => s.tls = true,
                _ => {}
            }
        }
    }
    sites
}

/// The application's directory for a document root: the parent of `public`,
/// `web`, `htdocs`, `html`, `www` (so its `var/` and `uploads/` are in it).
fn app_dir(doc_root: &str) -> String {
    let r = doc_root.trim_end_matches('/');
    match r.rsplit_once('/') {
        Some((parent, last))
            if matches!(last, "public" | "web" | "htdocs" | "html" | "www" | "pub")
                && parent.matches('/').count() >= 2 =>
        {
            parent.to_string()
        }
        _ => r.to_string(),
    }
}

/// A line of Debian's own /etc/crontab or /etc/anacrontab: run-parts of
/// /etc/cron.{hourly,daily,weekly,monthly} (anacron's test included).
fn debian_default(line: &str) -> bool {
    ["hourly", "daily", "weekly", "monthly"].iter().any(|p| {
        let dir = format!("/etc/cron.{p}");
        line.split(|c: char| c.is_whitespace() || c == ';' || c == '}')
            .any(|w| w == dir)
            && line.contains("run-parts")
    })
}

/// The databases whose names `databases` can hold (letters, digits, `_`); the
/// others are said in REVIEW.md.
fn plain_databases<'a>(
    names: impl Iterator<Item = &'a str>,
    what: &str,
    r: &mut Review,
) -> Vec<String> {
    let mut out = Vec::new();
    for n in names {
        let plain = !n.is_empty()
            && n.len() <= 63
            && n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if plain {
            out.push(n.to_string());
        } else {
            r.untranslated.push(format!(
                "the {what} database `{}`: a name `databases` cannot hold (letters, digits and `_` only); replication copies it all the same, but infra does not create it on a new pair",
                quoted(n)
            ));
        }
    }
    out
}

/// A normalised absolute path the language accepts as a directory.
fn clean_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() > 1
        && !p.ends_with('/')
        && !p.contains("//")
        && p.split('/').skip(1).all(|s| s != "." && s != "..")
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
}

/// An application found: what the `php_app` is made of.
struct App {
    name: String,
    site: Site,
    root: String,
    php: String,
    user: String,
    extensions: Vec<String>,
}

/// The translation of one job line.
struct JobOut {
    name: String,
    source: String,
    number: usize,
    /// `office.active` or `all`.
    on: String,
}

/// File systems of another machine.
const NETWORK_FS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "fuse.sshfs",
    "glusterfs",
    "ceph",
];

/// The directories of a systemd service's `PATH`.
const SYSTEMD_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The base system's and infra's own services: never listed as left out.
const BASE_SERVICES: &[&str] = &[
    "apparmor",
    "apt-daily",
    "console-setup",
    "cron",
    "dbus",
    "e2scrub_reap",
    "getty@",
    "keyboard-setup",
    "networking",
    "rsyslog",
    "ssh",
    "sshd",
    "systemd-",
    "remote-fs",
    "ifupdown",
    "nginx",
    "apache2",
    "php",
    "postgresql",
    "mariadb",
    "mysql",
    "keepalived",
    "etcd",
    "rsync",
    "anacron",
    "serial-getty@",
    "unattended-upgrades",
    "cloud-",
    "open-vm",
    "qemu-guest",
    "chrony",
    "ntp",
    "lvm2",
    "blk-availability",
    "dm-event",
    "smartmontools",
    "wpa_supplicant",
    "ModemManager",
    "NetworkManager",
    "avahi",
    "atd",
    "lm-sensors",
    "machines",
    "nftables",
    "ufw",
    "grub-",
    "dpkg-db-backup",
    "fstrim",
    "man-db",
    "logrotate",
    "e2scrub",
];

/// Where a job goes, and why, in words.
fn placement(
    command: &str,
    user: &str,
    apps: &[App],
    dbs: &[String],
) -> (bool, String, Vec<String>) {
    let c = command.to_ascii_lowercase();
    let mut needs = Vec::new();
    let mut why = None;
    for a in apps {
        if c.contains(&a.root.to_ascii_lowercase())
            || c.contains(&a.site.doc_root.to_ascii_lowercase())
        {
            why.get_or_insert(format!("it uses the application ({})", a.root));
            needs.push(format!("php_app.{}", a.name));
        }
    }
    const DB_TOOLS: &[&str] = &[
        "psql",
        "pg_dump",
        "pg_dumpall",
        "vacuumdb",
        "reindexdb",
        "mysql",
        "mysqldump",
        "mariadb",
        "mariadb-dump",
        "mysqlcheck",
    ];
    let words: Vec<&str> = c
        .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    if let Some(t) = DB_TOOLS.iter().find(|t| words.contains(t)) {
        why.get_or_insert(format!("it uses the database (`{t}`)"));
        needs.extend(dbs.iter().cloned());
    } else if let Some(db) = dbs.iter().find(|_| user == "postgres" || user == "mysql") {
        why.get_or_insert(format!("it runs as the database's user `{user}`"));
        needs.push(db.clone());
    }
    if why.is_none() && (words.contains(&"php") || words.contains(&"artisan")) {
        why = Some("it runs PHP (most likely the application's code)".into());
        needs.extend(apps.iter().map(|a| format!("php_app.{}", a.name)));
    }
    if why.is_none() && apps.iter().any(|a| a.user == user) && user != "root" {
        why = Some(format!("it runs as the application's user `{user}`"));
    }
    needs.sort();
    needs.dedup();
    match why {
        Some(w) => (true, format!("on {GROUP}.active: {w}: exactly one machine runs it, the one holding the VIP"), needs),
        None => (
            false,
            "on all: it touches neither the application nor the database (local housekeeping): every machine runs its own".into(),
            needs,
        ),
    }
}

/// A job's name from its command: the script or program it runs (after an
/// interpreter, its script; after a framework's console, its command too).
fn job_name(command: &str) -> String {
    let words: Vec<&str> = command
        .split_whitespace()
        .filter(|w| !w.contains('=') && !w.starts_with('-'))
        .take_while(|w| !matches!(*w, ">" | ">>" | "|" | "&&" | "||" | ";" | "2>&1"))
        .collect();
    let base = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
    const WRAPPERS: &[&str] = &[
        "nice", "ionice", "nohup", "timeout", "flock", "sudo", "env", "exec", "cd", "test", "[",
        "runuser", "su", "chronic", "cronic",
    ];
    const INTERPRETERS: &[&str] = &[
        "php", "sh", "bash", "python", "python3", "perl", "node", "ruby",
    ];
    const CONSOLES: &[&str] = &["artisan", "console", "manage.py", "occ", "drush", "wp"];
    let mut it = words
        .iter()
        .map(|w| base(w))
        .filter(|b| !WRAPPERS.contains(&b.as_str()) && !b.chars().all(|c| c.is_ascii_digit()));
    let Some(mut prog) = it.next() else {
        return "job".into();
    };
    if INTERPRETERS.contains(&prog.as_str()) {
        match it.next() {
            Some(script) => prog = script,
            None => return "job".into(),
        }
    }
    let stem = prog.split('.').next().unwrap_or(&prog).to_string();
    if CONSOLES.contains(&prog.as_str()) {
        if let Some(cmd) = it.next() {
            return format!("{stem}_{cmd}");
        }
    }
    stem
}

/// The jobs being written.
struct Jobs<'a> {
    body: String,
    out: Vec<JobOut>,
    /// Users (uid 1000 and up) the jobs run as: name → home.
    accounts: BTreeMap<String, (String, String)>,
    apps: &'a [App],
    dbs: &'a [String],
    d: &'a Discovered,
    old: &'a str,
}

impl Jobs<'_> {
    /// A line kept as a comment and listed in REVIEW.md.
    fn refuse(&mut self, r: &mut Review, source: &str, number: usize, text: &str, why: &str) {
        r.untranslated.push(format!(
            "`{source}` line {number}: `{}`: {why}",
            quoted(text)
        ));
        comment(
            &mut self.body,
            &format!(
                "NOT TRANSLATED: `{source}` line {number}: `{}`: {why} (REVIEW.md)",
                quoted(text)
            ),
        );
        self.body.push('\n');
    }

    /// A `job` (two for cron's day-of-month-or-weekday rule) for a line of
    /// `source` (line 0: the whole file, a run-parts script).
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        (source, line_no, text): (&str, usize, &str),
        calendars: Vec<String>,
        user: &str,
        (command, shell): (&str, Option<&str>),
        env: &[(String, String)],
        names: &mut Names,
        r: &mut Review,
    ) {
        let old = self.old;
        let at = if line_no == 0 {
            format!("`{source}`")
        } else {
            format!("`{source}` line {line_no}")
        };
        let (active, why, mut needs) = placement(command, user, self.apps, self.dbs);
        // a user the new machine may not have
        if !matches!(user, "root" | "www-data" | "postgres" | "mysql" | "nobody") {
            match self.d.users.get(user) {
                Some((uid, home)) if *uid >= 1000 => {
                    let n = match self.accounts.get(user) {
                        Some((_, n)) => n.clone(),
                        None => {
                            let n = names.take(user);
                            self.accounts.insert(user.to_string(), (home.clone(), n.clone()));
                            n
                        }
                    };
                    needs.push(format!("account.{n}"));
                }
                Some(_) => r.confirm.push(format!(
                    "{at} runs as the system user `{user}`: a package made it on {old}; the new machine needs that package too"
                )),
                None => r.confirm.push(format!(
                    "{at} runs as `{user}`, whom {old} does not know (getent): check the user"
                )),
            }
        }
        let mut run = String::new();
        for (k, v) in env {
            let _ = write!(run, "{k}={}; export {k}; ", crate::shell::quote(v));
        }
        match shell {
            // as cron does: `$SHELL -c COMMAND`
            Some(sh) => {
                let _ = write!(
                    run,
                    "exec {} -c {}",
                    crate::shell::quote(sh),
                    crate::shell::quote(command)
                );
            }
            None => run.push_str(command),
        }
        let base = names.take(&job_name(command));
        let two = calendars.len() > 1;
        let on = if active {
            format!("{GROUP}.active")
        } else {
            "all".to_string()
        };
        for (i, cal) in calendars.iter().enumerate() {
            let name = if i == 0 {
                base.clone()
            } else {
                names.take(&format!("{base}_weekday"))
            };
            comment(&mut self.body, &format!("From {at}: `{}`", quoted(text)));
            if two {
                comment(
                    &mut self.body,
                    if i == 0 {
                        "cron runs it on those days of the month *or* those weekdays: one timer for each"
                    } else {
                        "(the weekday half of the line above)"
                    },
                );
            }
            comment(&mut self.body, &why);
            let b = &mut self.body;
            let _ = writeln!(b, "job {name} {{");
            let _ = writeln!(b, "  on = {on}");
            let _ = writeln!(b, "  run = {}", lit(&run));
            let _ = writeln!(b, "  calendar = {}", lit(cal));
            if user != "root" {
                let _ = writeln!(b, "  user = {}", lit(user));
            }
            if !needs.is_empty() {
                let _ = writeln!(b, "  needs = [{}]", needs.join(", "));
            }
            b.push_str("}\n\n");
            self.out.push(JobOut {
                name: name.clone(),
                source: source.to_string(),
                number: line_no,
                on: on.clone(),
            });
            r.translated.push(format!(
                "{at} `{}` → `job {name}` (`{cal}`), on {on}",
                quoted(text)
            ));
            if !active {
                r.confirm.push(format!(
                    "`job {name}` (from {at}) runs on both machines (`on = all`: nothing in it named the application or a database): right for local housekeeping; if it mails, reports, backs up to a shared place or talks to another system, make it `on = {GROUP}.active`"
                ));
            }
        }
    }
}

/// The starting configuration for the machine `d` describes and a second one.
pub fn starter(d: &Discovered, opts: &Options) -> Starter {
    let mut r = Review::default();
    let mut names = Names::default();
    let mut imports = BTreeSet::new();

    // ---- hosts and the group
    names.take(GROUP);
    let old = names.take(if d.hostname.is_empty() {
        "old"
    } else {
        d.hostname.split('.').next().unwrap_or("old")
    });
    let new = names.take(STANDBY);
    let fallback = Addr {
        iface: "eth0".into(),
        addr: Ipv4Addr::new(192, 0, 2, 11),
        prefix: 24,
    };
    let primary = d.primary().cloned();
    if primary.is_none() {
        r.confirm.push(format!(
            "`{old}`'s address: the machine showed no IPv4 address of its own, so the configuration says {} (a documentation address): write the one you reach it at",
            fallback.addr
        ));
    }
    let mut p = primary.clone().unwrap_or(fallback);
    if p.prefix >= 31 || p.prefix < 8 {
        r.confirm.push(format!(
            "{old}'s address {}/{} is a single address (a rented server?): a VIP needs both machines on one network where an address can move between them. The configuration assumes a /24 around it: ask the provider for a shared (\"failover\", \"floating\") address and write it as `vip`",
            p.addr, p.prefix
        ));
        p.prefix = 24;
    }
    let free = free_addresses(&p, d);
    let standby = opts
        .standby
        .or_else(|| free.first().copied())
        .unwrap_or(Ipv4Addr::new(192, 0, 2, 12));
    let vip = free
        .iter()
        .copied()
        .find(|a| *a != standby)
        .unwrap_or(Ipv4Addr::new(192, 0, 2, 10));
    if opts.standby.is_none() {
        r.confirm.push(format!(
            "`{new}` (the second machine) at {standby}: a guess, an address of {old}'s subnet nobody answered for in its ARP table when it was read; write the new machine's real address (or `--standby ADDRESS` next time)"
        ));
    }
    r.confirm.push(format!(
        "the virtual IP {vip}/{}: nobody answered for it in {old}'s ARP table, but a machine that was off or quiet would not show there: make sure nothing else uses it (your DHCP range, a printer). Then point the clients (DNS name, bookmarks, the app's users) at {vip} instead of {}",
        p.prefix, p.addr
    ));
    r.confirm.push(format!(
        "the interface `{}` holds the VIP on both machines: the new one must have the same name (`ip -br link`)",
        p.iface
    ));

    // ---- what serves the application
    let version = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.');
    let php_version = d
        .packages
        .keys()
        .filter_map(|p| p.strip_prefix("php").and_then(|v| v.strip_suffix("-fpm")))
        .find(|v| version(v))
        .or_else(|| {
            d.packages
                .keys()
                .filter_map(|p| p.strip_prefix("libapache2-mod-php"))
                .find(|v| version(v))
        })
        .map(str::to_string);
    let mod_php = d
        .packages
        .keys()
        .any(|p| p.starts_with("libapache2-mod-php"));
    let mut sites = Vec::new();
    for (file, text) in d.files_under("/etc/nginx/") {
        if d.package_owned(file)
            && !text
                .lines()
                .any(|l| l.trim_start().starts_with("fastcgi_pass"))
        {
            r.left.push(format!("`{file}`: nginx's own default site"));
            continue;
        }
        sites.extend(nginx_sites(file, text));
    }
    for (file, text) in d.files_under("/etc/apache2/") {
        if d.package_owned(file) {
            r.left.push(format!("`{file}`: apache's own default site"));
            continue;
        }
        sites.extend(apache_sites(file, text).into_iter().map(|mut s| {
            if !mod_php {
                s.php = None;
            }
            s
        }));
    }
    let mut apps: Vec<App> = Vec::new();
    for s in sites {
        let label = format!("{} site `{}`", s.server, s.file);
        if s.tls {
            r.untranslated.push(format!(
                "{label}: a TLS server ({}): certificates and the `listen 443 ssl` server are not translated; `php_app` serves plain HTTP on `listen`: put the certificate on both machines (a `file` in a kind of your own) or a TLS proxy in front",
                s.names.join(" ")
            ));
            continue;
        }
        if s.doc_root.is_empty() || !clean_path(&s.doc_root) {
            r.untranslated.push(format!(
                "{label}: no document root infra can use (`{}`)",
                quoted(&s.doc_root)
            ));
            continue;
        }
        let Some(handler) = s.php.clone() else {
            r.untranslated.push(format!(
                "{label} serves {} without PHP: a static site; infra's standard library has no kind for it (docs/language.md shows a `static_site` kind of your own)",
                s.doc_root
            ));
            continue;
        };
        if apps.iter().any(|a| a.site.doc_root == s.doc_root) {
            r.untranslated.push(format!(
                "{label}: another server for {} ({}), folded into the same `php_app`: check its rules",
                s.doc_root,
                s.names.join(" ")
            ));
            continue;
        }
        let mut s = s;
        let (plain, odd): (Vec<String>, Vec<String>) = s.names.iter().cloned().partition(|n| {
            !n.starts_with('-')
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_*".contains(c))
        });
        if !odd.is_empty() {
            r.untranslated.push(format!(
                "{label}: server names {} (a regular expression or a variable) are not in `server_name`: add them to infra's vhost by hand (a template of your own)",
                odd.iter().map(|n| format!("`{}`", quoted(n))).collect::<Vec<_>>().join(", ")
            ));
        }
        s.names = plain;
        let root = app_dir(&s.doc_root);
        let php = php_version.clone().unwrap_or_else(|| "8.2".into());
        // the pool that listens where the site passes PHP to
        let sock = handler.trim_start_matches("unix:");
        let mut user = "www-data".to_string();
        for (f, t) in d.files_under("/etc/php/") {
            if !f.contains("/fpm/pool.d/") {
                continue;
            }
            let get = |k: &str| {
                t.lines().find_map(|l| {
                    let (a, b) = l.split_once('=')?;
                    (a.trim() == k).then(|| b.trim().to_string())
                })
            };
            if get("listen").is_some_and(|l| l == sock) {
                if let Some(u) = get("user") {
                    let plain = u.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && u.len() <= 32
                        && u.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
                    if plain {
                        user = u;
                    } else {
                        r.confirm.push(format!(
                            "the php-fpm pool `{f}` runs as `{}`, which is not a plain user name: the configuration says www-data",
                            quoted(&u)
                        ));
                    }
                }
            }
        }
        let mut extensions: Vec<String> = d
            .packages
            .keys()
            .filter_map(|p| p.strip_prefix(&format!("php{php}-")))
            .filter(|e| {
                !matches!(
                    *e,
                    "fpm" | "cli" | "common" | "opcache" | "readline" | "json" | "cgi" | "phpdbg"
                )
            })
            .map(str::to_string)
            .collect();
        extensions.sort();
        let stem = s
            .names
            .first()
            .map(|n| n.split('.').next().unwrap_or(n).to_string())
            .filter(|n| !n.is_empty() && *n != "www" && *n != "localhost")
            .unwrap_or_else(|| root.rsplit('/').next().unwrap_or("app").to_string());
        let name = names.take(&stem);
        if s.server == "apache2" {
            r.untranslated.push(format!(
                "{label}: served by apache with mod_php on {old}; `php_app {name}` serves it with nginx and php-fpm: `.htaccess` rewrite rules do not apply under nginx, carry them over by hand"
            ));
        }
        if user != "www-data" {
            r.confirm.push(format!(
                "`php_app {name}` runs as `{user}` (its php-fpm pool's user): the new machine needs that user, with the same uid if files move between them"
            ));
        }
        apps.push(App {
            name,
            site: s,
            root,
            php,
            user,
            extensions,
        });
    }
    if let Some(v) = &php_version {
        if v != "8.2" {
            r.before.push(format!(
                "{old} runs PHP {v}; Debian 12 has 8.2 (`php = \"8.2\"`): the configuration says what {old} has, which a Debian 12 standby cannot install. Test the application with 8.2, then set `php = \"8.2\"`"
            ));
        }
    }

    // ---- databases
    let mut dbs = Vec::new();
    let mut db_body = String::new();
    let cluster = d
        .pg_clusters
        .iter()
        .find(|c| c.name == "main" && c.online)
        .or_else(|| d.pg_clusters.iter().find(|c| c.online))
        .or_else(|| d.pg_clusters.first());
    for c in &d.pg_clusters {
        if Some(c) != cluster {
            r.untranslated.push(format!(
                "PostgreSQL cluster {}/{} (port {}): one cluster per `postgres` here, and the configuration has {}/{}; add another `postgres` block for it if it matters",
                c.version,
                c.name,
                c.port,
                cluster.map(|x| x.version.as_str()).unwrap_or(""),
                cluster.map(|x| x.name.as_str()).unwrap_or("")
            ));
        }
    }
    if let Some(c) = cluster {
        imports.insert("std/postgres");
        let name = names.take(&c.name);
        dbs.push(format!("postgres.{name}"));
        let databases = plain_databases(
            c.databases
                .iter()
                .map(|(n, _, _)| n.as_str())
                .filter(|n| *n != "postgres"),
            "PostgreSQL",
            &mut r,
        );
        let mut said = format!(
            "PostgreSQL {} (cluster {}, port {}) with the data: {}. It stays the primary on {old}; {new} streams a copy of it and takes over with the VIP.",
            c.version,
            c.name,
            c.port,
            if c.databases.is_empty() {
                "no databases read (the cluster was not running)".to_string()
            } else {
                c.databases
                    .iter()
                    .filter(|(n, _, _)| n != "postgres")
                    .map(|(n, s, o)| format!("{n} ({}, owner {o})", mb(*s)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        if !c.online {
            said.push_str(" It was not running when this was read.");
            r.confirm.push(format!(
                "PostgreSQL {}/{} was not running on {old}: its databases could not be listed; fill in `databases`",
                c.version, c.name
            ));
        }
        comment(&mut db_body, &said);
        let _ = writeln!(db_body, "postgres {name} {{");
        let _ = writeln!(db_body, "  failover = {GROUP}");
        if c.version.parse::<u32>().is_err() {
            r.before.push(format!(
                "{old} runs PostgreSQL {}; Debian 12 has 15, and a standby streams only from the same major version: upgrade {old} first (pg_upgradecluster), then set `version`",
                c.version
            ));
        }
        if let Ok(v) = c.version.parse::<u32>() {
            let _ = writeln!(db_body, "  version = {v}");
            if v != 15 {
                r.before.push(format!(
                    "{old} runs PostgreSQL {v}; Debian 12 has 15: a standby streams only from the same major version. Upgrade {old} first (pg_upgradecluster) or install {v} from apt.postgresql.org on the new machine"
                ));
            }
        }
        if c.port != 5432 {
            let _ = writeln!(db_body, "  port = {}", c.port);
        }
        let _ = writeln!(db_body, "  databases = {}", list(&databases));
        let _ = writeln!(
            db_body,
            "  replication_password = secret(\"pg_repl\") # infra secrets set pg_repl --generate"
        );
        db_body.push_str("}\n\n");
        for role in &c.roles {
            let owned: Vec<String> = c
                .databases
                .iter()
                .filter(|(_, _, o)| o == role)
                .map(|(n, _, _)| n.clone())
                .collect();
            let rn = ident(role);
            comment(
                &mut db_body,
                &format!(
                    "The role `{role}` logs in (the application's?). infra can own it and write the app a connection file, but applying a `postgres_user` sets the role's password from its secret: set the secret to the password the app uses today first (`infra secrets set {rn}_pw`), then uncomment (docs/stdlib.md, postgres_user)."
                ),
            );
            let _ = writeln!(db_body, "# postgres_user {rn} {{");
            let _ = writeln!(db_body, "#   cluster   = postgres.{name}");
            let _ = writeln!(db_body, "#   password  = secret(\"{rn}_pw\")");
            let _ = writeln!(db_body, "#   databases = {}", list(&owned));
            let _ = writeln!(db_body, "# }}");
            db_body.push('\n');
            r.confirm.push(format!(
                "the PostgreSQL role `{role}`: left as it is (a commented `postgres_user {rn}` says how infra can own it)"
            ));
        }
    } else if d.packages.contains_key("postgresql")
        || d.packages.keys().any(|p| p.starts_with("postgresql-1"))
    {
        r.untranslated
            .push("PostgreSQL is installed but has no cluster: nothing to replicate".into());
    }
    if d.my_databases.is_none() && d.packages.contains_key("mariadb-server") {
        r.left.push(
            "MariaDB: installed, but it did not answer (not running?): nothing of it translated"
                .into(),
        );
    }
    if let Some(my) = &d.my_databases {
        imports.insert("std/mariadb");
        let name = names.take("db");
        dbs.push(format!("mariadb.{name}"));
        let databases = plain_databases(my.iter().map(|(n, _)| n.as_str()), "MariaDB", &mut r);
        comment(
            &mut db_body,
            &format!(
                "MariaDB with the data: {}. It stays the primary on {old}; {new} replicates it and takes over with the VIP.",
                if my.is_empty() {
                    "no databases of its own".to_string()
                } else {
                    my.iter()
                        .map(|(n, s)| format!("{n} ({})", mb(*s)))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        );
        let _ = writeln!(db_body, "mariadb {name} {{");
        let _ = writeln!(db_body, "  failover = {GROUP}");
        let _ = writeln!(db_body, "  databases = {}", list(&databases));
        let _ = writeln!(
            db_body,
            "  replication_password = secret(\"my_repl\") # infra secrets set my_repl --generate"
        );
        db_body.push_str("}\n\n");
        for u in &d.my_users {
            r.confirm.push(format!(
                "the MariaDB user `{u}`: left as it is (a `mariadb_user` can own it once its secret holds the password the app uses: docs/stdlib.md)"
            ));
        }
    }

    if !dbs.is_empty() {
        r.confirm.push(format!(
            "`infra check` warns (W0518) that two members without a witness can both become primary when the link between them fails while clients reach both: a third small machine (a NAS, a Raspberry Pi) as `witness` in `failover {GROUP}` prevents it (docs/stdlib.md, \"A witness\"); `infra drill --fault partition` on the lab measures what it costs without"
        ));
    }

    // ---- the group's check
    let check = if let Some(a) = apps.first() {
        let port = if a.site.listen == 80 {
            String::new()
        } else {
            format!(":{}", a.site.listen)
        };
        (
            format!("http(\"http://127.0.0.1{port}/health\")"),
            "php-fpm answers through nginx".to_string(),
        )
    } else if let Some(c) = cluster {
        (
            format!("tcp({})", c.port),
            "PostgreSQL accepts connections".to_string(),
        )
    } else if d.my_databases.is_some() {
        (
            "tcp(3306)".to_string(),
            "MariaDB accepts connections".to_string(),
        )
    } else {
        (
            "tcp(22)".to_string(),
            "CONFIRM: only that sshd answers; use your service's check".to_string(),
        )
    };

    // ---- the application
    let mut app_body = String::new();
    let mut share_body = String::new();
    let mut writable: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut shared: Vec<(String, String)> = Vec::new();
    for (user, dir) in &d.writable {
        let Some(app) = apps
            .iter()
            .find(|a| dir == &a.root || dir.starts_with(&format!("{}/", a.root)))
        else {
            if !clean_path(dir) {
                continue;
            }
            r.confirm.push(format!(
                "`{dir}` is written by `{user}` but belongs to no site: a `share` if both machines need its files"
            ));
            continue;
        };
        if dir == &app.root || dir == &app.site.doc_root {
            r.untranslated.push(format!(
                "`{dir}`: the whole application directory is writable by `{user}`; not a share (that would replicate the code, and a PHP app should not be able to rewrite itself): find the directories it really writes and make those shares"
            ));
            continue;
        }
        if !clean_path(dir) {
            r.untranslated.push(format!(
                "`{}` is written by `{user}`, but its name has characters a share path refuses: rename it or replicate it by hand",
                quoted(dir)
            ));
            continue;
        }
        // on a network file system both machines see it already: not a share
        let network = d.mounts.iter().find(|(target, _, fs)| {
            NETWORK_FS.contains(&fs.as_str())
                && (dir == target || dir.starts_with(&format!("{}/", target.trim_end_matches('/'))))
        });
        if let Some((target, source, fs)) = network {
            r.confirm.push(format!(
                "`{dir}` is written by `{user}` and lives on the network mount `{target}` ({source}, {fs}): not a share; the new machine needs the same mount"
            ));
            continue;
        }
        let base = dir.rsplit('/').next().unwrap_or("");
        let local = matches!(
            base,
            "cache"
                | "tmp"
                | "temp"
                | "sessions"
                | "session"
                | "log"
                | "logs"
                | "run"
                | "locks"
                | "var"
        ) || dir.contains("/cache/");
        if local {
            writable
                .entry(app.name.clone())
                .or_default()
                .push(dir.clone());
        } else {
            shared.push((user.clone(), dir.clone()));
        }
    }
    for a in &apps {
        imports.insert("std/php");
        let s = &a.site;
        let mut said = format!(
            "The application: {} site `{}` ({}), root {}, PHP {} through {}.",
            s.server,
            s.file,
            if s.names.is_empty() {
                "any name".to_string()
            } else {
                s.names.join(" ")
            },
            s.doc_root,
            a.php,
            s.php.as_deref().unwrap_or("php-fpm")
        );
        said.push_str(&format!(
            " Its files are not managed yet: copy {} into this repository as app/ and set `source = \"app\"` (docs/deploy.md), or copy it to {new} yourself (REVIEW.md).",
            a.root
        ));
        comment(&mut app_body, &said);
        let _ = writeln!(app_body, "php_app {} {{", a.name);
        let _ = writeln!(app_body, "  on = {GROUP}");
        let _ = writeln!(app_body, "  root = {}", lit(&a.root));
        if a.root != s.doc_root {
            let _ = writeln!(app_body, "  web_root = {}", lit(&s.doc_root));
        }
        if !s.names.is_empty() {
            let _ = writeln!(app_body, "  server_name = {}", lit(&s.names.join(" ")));
        }
        if s.listen != 80 {
            let _ = writeln!(app_body, "  listen = {}", s.listen);
        }
        let _ = writeln!(app_body, "  php = {}", lit(&a.php));
        let _ = writeln!(app_body, "  extensions = {}", list(&a.extensions));
        if a.user != "www-data" {
            let _ = writeln!(app_body, "  user = {}", lit(&a.user));
        }
        if let Some(w) = writable.get(&a.name) {
            let _ = writeln!(
                app_body,
                "  writable = {} # written by {}, kept apart on each machine (cache, sessions)",
                list(w),
                a.user
            );
        }
        if !dbs.is_empty() {
            let _ = writeln!(app_body, "  needs = [{}]", dbs.join(", "));
        }
        app_body.push_str("}\n\n");
        r.before.push(format!(
            "the application's files: `php_app {}` serves {} but does not bring the code. Either copy it into this repository (`rsync -a{} root@{}:{}/ app/`, then `source = \"app\"` and `web_root = \"{}\"`: releases, rollback, docs/deploy.md) or copy it to {new} by hand before it can take over",
            a.name,
            s.doc_root,
            shared
                .iter()
                .filter(|(_, p)| p.starts_with(&format!("{}/", a.root)))
                .map(|(_, p)| format!(" --exclude /{}", &p[a.root.len() + 1..]))
                .collect::<String>(),
            p.addr,
            a.root,
            s.doc_root.strip_prefix(&format!("{}/", a.root)).unwrap_or("")
        ));
        r.before.push(if s.server == "apache2" {
            format!(
                "apache2 serves `{}` on {old} on the port nginx will listen on: stop and disable it there (`systemctl disable --now apache2`) just before the first apply",
                s.file
            )
        } else {
            format!(
                "{old}'s own site `{}` serves the same names as infra's `/etc/nginx/sites-enabled/infra-{}.conf` will: remove it on {old} after the first apply (nginx warns of a conflicting server_name and answers with the first)",
                s.file, a.name
            )
        });
        r.translated.push(format!(
            "{} site `{}` → `php_app {}` on every member (the VIP decides which one gets the traffic)",
            s.server, s.file, a.name
        ));
    }
    let mut share_names = Vec::new();
    for (user, dir) in &shared {
        let base = dir.rsplit('/').next().unwrap_or("files");
        let name = names.take(base);
        share_names.push(name.clone());
        comment(
            &mut share_body,
            &format!(
                "`{dir}` is written by {user} (uploads, documents): pushed from the machine holding the VIP to the other, so a failover finds the files. CONFIRM it holds data, not a cache."
            ),
        );
        let _ = writeln!(share_body, "share {name} {{");
        let _ = writeln!(share_body, "  from = {GROUP}.active");
        let _ = writeln!(share_body, "  path = {}", lit(dir));
        let _ = writeln!(share_body, "  owner = {}", lit(user));
        let _ = writeln!(share_body, "  group = {}", lit(user));
        share_body.push_str("}\n\n");
        r.translated.push(format!("`{dir}` (written by {user}) → `share {name}`, pushed from the VIP holder every 5 minutes"));
    }

    // ---- cron, anacron, run-parts, timers
    let mut mailto: BTreeSet<String> = BTreeSet::new();
    let mut crontabs: Vec<(String, bool, &str)> = Vec::new();
    if let Some(t) = d.files.get("/etc/crontab") {
        crontabs.push(("/etc/crontab".into(), true, t.as_str()));
    }
    for (f, t) in d.files_under("/etc/cron.d/") {
        let base = f.rsplit('/').next().unwrap_or("");
        if d.package_owned(f) {
            r.left.push(format!(
                "`{f}`: installed by a package, which does the same on the new machine"
            ));
            continue;
        }
        if base.contains('.') || base.ends_with('~') || base.starts_with('.') {
            r.left.push(format!(
                "`{f}`: cron ignores a file whose name has a dot or ends in `~` (it does not run)"
            ));
            continue;
        }
        crontabs.push((f.to_string(), true, t));
    }
    for (f, t) in d.files_under("/var/spool/cron/crontabs/") {
        crontabs.push((f.to_string(), false, t));
    }
    let mut jobs = Jobs {
        body: String::new(),
        out: Vec::new(),
        accounts: BTreeMap::new(),
        apps: &apps,
        dbs: &dbs,
        d,
        old: &old,
    };
    for (source, system, text) in &crontabs {
        if d.cut.contains(source) {
            r.untranslated.push(format!(
                "`{source}`: over 256 KiB, read only in part: translate it by hand"
            ));
            continue;
        }
        let owner = if *system {
            None
        } else {
            source.rsplit('/').next().map(str::to_string)
        };
        let mut env: Vec<(String, String)> = Vec::new();
        let mut shell: Option<String> = None;
        for l in cron::crontab(text, *system) {
            // the Debian /etc/crontab's own run-parts and anacron lines
            if source == "/etc/crontab" && debian_default(&l.text) {
                continue;
            }
            match l.entry {
                Entry::Env { name, value } => match name.as_str() {
                    "MAILTO" => {
                        if !value.is_empty() {
                            mailto.insert(value.clone());
                        }
                    }
                    "SHELL" if value == "/bin/sh" || value == "/usr/bin/sh" => shell = None,
                    // as cron does: `$SHELL -c COMMAND`
                    "SHELL" => shell = Some(value),
                    "CRON_TZ" | "TZ" => {
                        r.untranslated.push(format!(
                            "`{source}` line {}: `{name}={value}`: the jobs after it are translated with their times as written, but a job's calendar is in the machine's time zone: convert them (or write `calendar = \"... {value}\"`)",
                            l.number
                        ));
                        if name == "TZ" {
                            // the command's own environment, as under cron
                            env.retain(|(k, _)| k != "TZ");
                            env.push((name, value));
                        }
                    }
                    "MAILFROM" => {}
                    // what a systemd service has anyway
                    "PATH" if value.split(':').all(|d| SYSTEMD_PATH.contains(&d)) => {
                        env.retain(|(k, _)| k != "PATH")
                    }
                    _ => {
                        env.retain(|(k, _)| *k != name);
                        env.push((name, value));
                    }
                },
                Entry::Untranslatable { why } => {
                    jobs.refuse(&mut r, source, l.number, &l.text, &why)
                }
                Entry::Job {
                    schedule,
                    user,
                    command,
                } => {
                    let user = user
                        .or_else(|| owner.clone())
                        .unwrap_or_else(|| "root".into());
                    if !user
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                        || !user.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        || user.len() > 32
                    {
                        let why = format!(
                            "the user `{}` is not a user name infra accepts",
                            quoted(&user)
                        );
                        jobs.refuse(&mut r, source, l.number, &l.text, &why);
                        continue;
                    }
                    if command.contains('\u{fffd}') {
                        jobs.refuse(
                            &mut r,
                            source,
                            l.number,
                            &l.text,
                            "the command is not UTF-8 text (a byte the translation would change)",
                        );
                        continue;
                    }
                    if command.chars().any(|c| c.is_control() && c != '\t') {
                        jobs.refuse(
                            &mut r,
                            source,
                            l.number,
                            &l.text,
                            "the command holds a control character",
                        );
                        continue;
                    }
                    match cron::to_calendar(&schedule) {
                        Ok(cals) => jobs.emit(
                            (source, l.number, &l.text),
                            cals,
                            &user,
                            (&command, shell.as_deref()),
                            &env,
                            &mut names,
                            &mut r,
                        ),
                        Err(why) => jobs.refuse(&mut r, source, l.number, &l.text, &why),
                    }
                }
            }
        }
    }
    if let Some(t) = d.files.get("/etc/anacrontab") {
        let mut env = Vec::new();
        for (i, raw) in t.lines().enumerate() {
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') || debian_default(l) {
                continue;
            }
            if let Some(Entry::Env { name, value }) = cron::crontab(l, false).pop().map(|x| x.entry)
            {
                if !matches!(
                    name.as_str(),
                    "MAILTO"
                        | "SHELL"
                        | "PATH"
                        | "HOME"
                        | "LOGNAME"
                        | "START_HOURS_RANGE"
                        | "RANDOM_DELAY"
                ) {
                    env.push((name, value));
                } else if name == "MAILTO" {
                    mailto.insert(value);
                }
                continue;
            }
            match cron::anacron(l) {
                Ok((cal, _id, command)) => jobs.emit(
                    ("/etc/anacrontab", i + 1, raw),
                    vec![cal],
                    "root",
                    (&command, None),
                    &env,
                    &mut names,
                    &mut r,
                ),
                Err(why) => jobs.refuse(&mut r, "/etc/anacrontab", i + 1, raw, &why),
            }
        }
    }
    for f in d.runparts.keys() {
        if d.package_owned(f) {
            r.left.push(format!(
                "`{f}`: installed by a package, which does the same on the new machine"
            ));
            continue;
        }
        let period = f
            .split('/')
            .nth(2)
            .and_then(|c| c.strip_prefix("cron."))
            .unwrap_or("daily");
        let base = f.rsplit('/').next().unwrap_or("");
        if base.contains('.') {
            r.left.push(format!(
                "`{f}`: run-parts skips a name with a dot (it does not run)"
            ));
            continue;
        }
        // not a job: the script is a file of this machine only, and a copy at the
        // same path on the other would run there too, by run-parts
        r.untranslated.push(format!(
            "`{f}`: a script of {old}'s own that run-parts runs {period}. Decide where it belongs: on both machines, copy it to the same path on the new one; on the VIP holder only, move it into the repository and make it a `job` (`on = {GROUP}.active`, `calendar = \"{period}\"`) and delete it from {old}'s /etc/cron.{period}"
        ));
    }
    let mut moved: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for j in &jobs.out {
        moved.entry(j.source.as_str()).or_default().push(j.number);
    }
    for (source, lines) in &moved {
        let mut lines = lines.clone();
        lines.dedup();
        let what = if lines == [0] {
            format!("delete `{source}` on {old} once the pair is applied: it is a job now, and left behind it runs a second time")
        } else {
            let l: Vec<String> = lines.iter().map(|n| n.to_string()).collect();
            let how = match source.strip_prefix("/var/spool/cron/crontabs/") {
                Some(u) => format!("`crontab -u {u} -e`"),
                None => format!("edit `{source}`"),
            };
            format!(
                "remove line{} {} of `{source}` on {old} ({how}) once the pair is applied: {} now, and left behind {} a second time (and cron mails about it)",
                if l.len() > 1 { "s" } else { "" },
                l.join(", "),
                if l.len() > 1 { "they are jobs" } else { "it is a job" },
                if l.len() > 1 { "they run" } else { "it runs" }
            )
        };
        r.before.push(what);
    }
    if !mailto.is_empty() {
        let to: Vec<String> = mailto.iter().cloned().collect();
        let mut a = String::new();
        comment(
            &mut a,
            &format!(
                "cron mailed what the jobs printed to {} (MAILTO). A timer's output goes to the journal (`journalctl -u infra-job-NAME`); for mail when a job (or anything infra runs) fails, uncomment this with your mail server (docs/stdlib.md, alert):",
                to.join(", ")
            ),
        );
        let _ = writeln!(a, "# alert mail {{");
        let _ = writeln!(a, "#   on    = all");
        let _ = writeln!(a, "#   email = {}", list(&to));
        let _ = writeln!(a, "#   smtp  = \"mail.example.com\" # CONFIRM");
        let _ = writeln!(a, "# }}");
        a.push('\n');
        jobs.body.push_str(&a);
        r.before.push(format!(
            "cron mailed job output to {}: with infra nothing is mailed until the commented `alert mail` block is filled in",
            to.join(", ")
        ));
    }
    for t in &d.timers {
        if t.path.is_empty()
            || d.package_owned(&t.path)
            || t.path.starts_with("/lib/")
            || t.path.starts_with("/usr/")
        {
            continue;
        }
        // systemctl show's `{ OnCalendar=X ; next_elapse=... }`, `{ path=... ; argv[]=CMD ; ... }`
        let field = |text: &str, key: &str| {
            text.split(" ; ")
                .find_map(|f| f.trim_start_matches("{ ").strip_prefix(key))
                .map(|v| v.trim_end_matches(" }").trim().to_string())
                .unwrap_or_else(|| text.to_string())
        };
        r.untranslated.push(format!(
            "the timer `{}` ({}) runs `{}` on `{}`: made by hand on {old}; write it as a `job` (`calendar = \"{}\"`) and disable it there",
            t.unit,
            t.path,
            quoted(&field(&t.exec, "argv[]=")),
            quoted(&field(&t.calendar, "OnCalendar=")),
            quoted(&field(&t.calendar, "OnCalendar="))
        ));
    }

    // ---- the secrets it needs
    let mut secrets: Vec<String> = Vec::new();
    if cluster.is_some() {
        secrets.push("pg_repl".into());
    }
    if d.my_databases.is_some() {
        secrets.push("my_repl".into());
    }
    secrets.extend(share_names.iter().map(|n| format!("share-{n}-key")));
    if !secrets.is_empty() {
        r.before.push(format!(
            "the secrets it uses: {}. Declare yourself as an `admin` (your SSH public key) and run `infra secrets set NAME --generate` for each (docs/secrets.md); `infra lab up` and `--lab` make up their own",
            secrets.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        ));
    }

    // ---- what else runs
    let managed = |s: &str| BASE_SERVICES.iter().any(|b| s.starts_with(b));
    let other: Vec<&String> = d.services.iter().filter(|s| !managed(s)).collect();
    if !other.is_empty() {
        r.confirm.push(format!(
            "enabled services infra does not manage: {}; the new machine needs those the application uses (a `service`, or a package in a kind of your own)",
            other.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut ports: Vec<String> = d
        .ports
        .iter()
        .filter(|l| !l.addr.starts_with("127.") && l.addr != "[::1]")
        .filter(|l| !matches!(l.port, 22 | 80 | 5432 | 3306))
        .filter(|l| !(l.port == 443 && apps.is_empty()))
        .map(|l| {
            format!(
                "{} ({})",
                l.port,
                if l.process.is_empty() {
                    "?"
                } else {
                    &l.process
                }
            )
        })
        .collect();
    ports.sort();
    ports.dedup();
    if !ports.is_empty() {
        r.confirm.push(format!(
            "other ports open to the network: {}: the clients may need them on the new machine too",
            ports.join(", ")
        ));
    }
    let mut seen = BTreeSet::new();
    for (target, source, fs) in &d.mounts {
        let system = ["/run", "/proc", "/sys", "/dev", "/tmp"]
            .iter()
            .any(|t| target == t || target.starts_with(&format!("{t}/")));
        if system || !seen.insert(target) {
            continue;
        }
        let remote = NETWORK_FS.contains(&fs.as_str());
        let disk = source.starts_with("/dev/")
            && !matches!(target.as_str(), "/" | "/boot" | "/boot/efi")
            && !target.starts_with("/snap")
            && !matches!(fs.as_str(), "swap" | "squashfs" | "iso9660");
        if remote || disk {
            r.confirm.push(format!(
                "`{target}` is a {} mount ({source}, {fs}): the new machine needs the same",
                if remote { "network" } else { "separate disk" }
            ));
        }
    }

    // ---- accounts the jobs run as
    let mut acct_body = String::new();
    if !jobs.accounts.is_empty() {
        comment(
            &mut acct_body,
            "The users the jobs run as, made on both machines (a kind of this configuration: docs/language.md, Kinds).",
        );
        acct_body.push_str("kind account(on: placement, login: user, home: string) {\n  user \"${login}\" {\n    system = false\n    home   = \"${home}\"\n  }\n}\n\n");
        for (u, (home, name)) in &jobs.accounts {
            let home = if clean_path(home) {
                home.clone()
            } else {
                format!("/home/{u}")
            };
            let _ = writeln!(acct_body, "account {name} {{");
            let _ = writeln!(acct_body, "  on = all");
            let _ = writeln!(acct_body, "  login = {}", lit(u));
            let _ = writeln!(acct_body, "  home = {}", lit(&home));
            acct_body.push_str("}\n\n");
        }
    }

    // ---- main.infra
    let mut m = String::new();
    comment(
        &mut m,
        &format!(
            "Written by `infra init --from {}` from {old} ({}): a starting point to review, not a finished configuration. What CONFIRM marks is a guess; REVIEW.md lists what to confirm and what could not be translated. Then: `infra check`, `infra lab up` and `infra plan --lab` to try it on two local machines, `infra plan` for the real ones.",
            opts.from,
            d.os_name()
        ),
    );
    m.push('\n');
    for i in &imports {
        let _ = writeln!(m, "import \"{i}\"");
    }
    if !imports.is_empty() {
        m.push('\n');
    }
    comment(
        &mut m,
        "The machine you have: it keeps its address and its data, and is the usual primary.",
    );
    let _ = writeln!(m, "host {old} {{\n  address = \"{}\"\n}}\n", p.addr);
    comment(
        &mut m,
        "The second machine, a standby that takes over when the first fails.",
    );
    let _ = writeln!(
        m,
        "host {new} {{\n  address = \"{standby}\" # CONFIRM: the new machine's address\n}}\n"
    );
    comment(
        &mut m,
        "A virtual IP that keepalived keeps on the healthy member: the database promotes there, the shares push from there and `on = office.active` jobs run only there. Clients use this address.",
    );
    let _ = writeln!(m, "failover {GROUP} {{");
    let _ = writeln!(
        m,
        "  members = [{old}, {new}] # preference order: {old} has the data"
    );
    let _ = writeln!(
        m,
        "  vip = \"{vip}/{}\" # CONFIRM: a free address of the subnet",
        p.prefix
    );
    let _ = writeln!(m, "  interface = {}", lit(&p.iface));
    let _ = writeln!(m, "  check = {} # {}", check.0, check.1);
    m.push_str("}\n\n");
    m.push_str(&db_body);
    m.push_str(&app_body);
    m.push_str(&share_body);
    m.push_str(&acct_body);
    m.push_str(&jobs.body);
    let main = m.trim_end().to_string() + "\n";

    // ---- REVIEW.md
    let mut v = String::new();
    let _ = writeln!(
        v,
        "# Review: what `infra init --from {}` read on {old}\n",
        opts.from
    );
    let _ = writeln!(
        v,
        "Read {} from {old} ({}, {}/{} on {}). Nothing was changed there. `main.infra` is a starting point: go through this list, then `infra check`, `infra lab up` and `infra plan --lab`.\n",
        opts.when,
        d.os_name(),
        p.addr,
        p.prefix,
        p.iface
    );
    let section = |v: &mut String, title: &str, items: &[String], box_: bool| {
        if items.is_empty() {
            return;
        }
        let _ = writeln!(v, "## {title}\n");
        for i in items {
            let _ = writeln!(v, "- {}{i}", if box_ { "[ ] " } else { "" });
        }
        v.push('\n');
    };
    section(&mut v, "Confirm", &r.confirm, true);
    section(&mut v, "Before the first apply", &r.before, true);
    section(&mut v, "Not translated", &r.untranslated, false);
    section(&mut v, "Translated", &r.translated, false);
    section(&mut v, "Left alone", &r.left, false);
    Starter {
        main,
        review: v.trim_end().to_string() + "\n",
        jobs: jobs
            .out
            .into_iter()
            .map(|j| (j.source, j.number, j.name, j.on))
            .collect(),
    }
}
