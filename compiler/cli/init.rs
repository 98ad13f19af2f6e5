//! `infra init [DIR] [--from [USER@]HOST[:PORT]]`: a starting configuration,
//! annotated (no `--from`) or read from the machine the office already has
//! ([`crate::init`]: one SSH round trip, read-only, then main.infra and
//! REVIEW.md, formatted and checked, written only when all of it worked).

use super::{report, MessageFormat};
use crate::diag::{codes, Diag};
use crate::source::SourceMap;
use crate::transport::{self, Target};
use clap::Args;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    /// Where (default: the current directory).
    pub dir: Option<PathBuf>,
    /// Write into a directory that is not empty (main.infra, and REVIEW.md with
    /// --from, are overwritten; nothing else is touched).
    #[arg(long)]
    pub force: bool,
    /// Read the machine that runs the application today, over SSH as root (or a
    /// user with passwordless sudo): `root@oldbox`, `admin@192.0.2.21:2222`.
    /// Nothing is changed on it.
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    pub from: Option<String>,
    /// With --from: the second machine's address (default: a free address of
    /// the first one's subnet, marked CONFIRM).
    #[arg(long, value_name = "ADDRESS", requires = "from")]
    pub standby: Option<Ipv4Addr>,
    /// With --from: the private key to log in with (default: ssh-agent,
    /// ~/.ssh/id_ed25519, ~/.ssh/id_rsa).
    #[arg(long, value_name = "FILE", requires = "from")]
    pub key: Option<PathBuf>,
    /// With --from: reach the machine inside the local lab NAME (`infra lab up`),
    /// with its key and pinned host keys.
    #[arg(long, value_name = "NAME", requires = "from")]
    pub lab: Option<String>,
    /// With --from: record an unknown host key in ~/.ssh/known_hosts instead of
    /// refusing it.
    #[arg(long, requires = "from")]
    pub accept_new_host_keys: bool,
}

fn error(d: Diag) -> i32 {
    report(&[d], &SourceMap::new(), MessageFormat::Human);
    1
}

/// `[USER@]HOST[:PORT]` → (user, host, port).
fn parse_from(s: &str) -> Result<(String, String, u16), String> {
    let (user, rest) = match s.rsplit_once('@') {
        Some((u, r)) => (u.to_string(), r),
        None => ("root".to_string(), s),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{p}` is not a port"))?,
        ),
        None => (rest, 22),
    };
    if host.is_empty() || user.is_empty() || host.contains(['/', ' ']) || user.contains([' ', ':'])
    {
        return Err(format!("`{s}` is not [USER@]HOST[:PORT]"));
    }
    Ok((user, host.to_string(), port))
}

pub fn run(a: InitArgs) -> i32 {
    let dir = a.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let busy = match std::fs::read_dir(&dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return error(Diag::error(
                codes::E0763,
                format!("cannot read {}: {e}", dir.display()),
            ))
        }
    };
    if busy && !a.force {
        return error(
            Diag::error(codes::E0763, format!("{} is not empty: nothing written", dir.display())).help(format!(
                "`infra init` starts a new configuration in an empty directory; `infra init {} --force` writes main.infra{} there anyway (over what exists)",
                dir.display(),
                if a.from.is_some() { " and REVIEW.md" } else { "" }
            )),
        );
    }
    let Some(from) = &a.from else {
        return write(&dir, &[("main.infra", crate::init::skeleton())], || {
            errln!(
                "wrote {}: two hosts, a failover group and a job; edit the addresses, then `infra check {}` and `infra lab up {}`",
                dir.join("main.infra").display(),
                dir.display(),
                dir.display()
            )
        });
    };
    let (user, host, port) = match parse_from(from) {
        Ok(x) => x,
        Err(why) => {
            return error(
                Diag::error(codes::E0763, format!("--from {why}"))
                    .help("give the machine as SSH does: `root@oldbox`, `admin@192.0.2.21:2222`"),
            )
        }
    };
    let (key, known_hosts, dial): (Option<PathBuf>, PathBuf, Box<crate::deploy::Dial>) =
        match &a.lab {
            Some(name) => {
                let (key, known) = crate::lab::ssh_identity(name);
                let name = name.clone();
                (
                    Some(key),
                    known,
                    Box::new(move |addr, t| crate::lab::connect(&name, addr, t)),
                )
            }
            None => {
                let home = std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| "/root".into());
                (
                    None,
                    home.join(".ssh/known_hosts"),
                    Box::new(transport::dial_tcp),
                )
            }
        };
    let mut t = Target::new(&host, &host, known_hosts);
    t.user = user;
    t.port = port;
    t.key = a.key.clone().or(key);
    t.accept_new = a.accept_new_host_keys;
    t.command_timeout = std::time::Duration::from_secs(120);
    errln!("init: reading {host} (one SSH session, nothing is changed there)");
    let mut session = match transport::connect(&t, &*dial) {
        Ok(s) => s,
        Err(e) => return error(e.to_diag()),
    };
    let opts = crate::init::Options {
        from: from.clone(),
        standby: a.standby,
        when: now(),
    };
    let started = std::time::Instant::now();
    let s = match crate::init::from_host(&mut session, &opts) {
        Ok(s) => s,
        Err(diags) => {
            report(&diags, &SourceMap::new(), MessageFormat::Human);
            return 1;
        }
    };
    let took = started.elapsed().as_secs_f64();
    let files = [
        ("main.infra", s.main.as_str()),
        ("REVIEW.md", s.review.as_str()),
    ];
    write(&dir, &files, || {
        errln!("init: read {host} in {took:.1} s");
        for (source, line, name, on) in &s.jobs {
            let at = if *line == 0 {
                source.clone()
            } else {
                format!("{source}:{line}")
            };
            errln!("  job {name:<16} on {on:<14} from {at}");
        }
        errln!(
            "wrote {} and {}: read REVIEW.md first (what to confirm, what was not translated), then `infra check {}` and `infra lab up {}`",
            dir.join("main.infra").display(),
            dir.join("REVIEW.md").display(),
            dir.display(),
            dir.display()
        );
    })
}

/// Write `files` (and a .gitignore unless there is one) into `dir`, then `said`.
fn write(dir: &Path, files: &[(&str, &str)], said: impl FnOnce()) -> i32 {
    let go = || -> Result<(), (PathBuf, std::io::Error)> {
        std::fs::create_dir_all(dir).map_err(|e| (dir.to_path_buf(), e))?;
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| (p, e))?;
        }
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(&ignore, crate::init::GITIGNORE).map_err(|e| (ignore, e))?;
        }
        Ok(())
    };
    match go() {
        Ok(()) => {
            said();
            0
        }
        Err((p, e)) => {
            errln!("error: cannot write {}: {e}", p.display());
            1
        }
    }
}

/// The time now, in words ("on 2026-12-03 15:04:05 UTC").
fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format!("on {}", crate::backup::utc(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_from;

    #[test]
    fn from_is_user_host_port() {
        assert_eq!(
            parse_from("oldbox").unwrap(),
            ("root".into(), "oldbox".into(), 22)
        );
        assert_eq!(
            parse_from("admin@192.0.2.21:2222").unwrap(),
            ("admin".into(), "192.0.2.21".into(), 2222)
        );
        assert!(parse_from("root@").is_err());
        assert!(parse_from("@x").is_err());
        assert!(parse_from("x:0").is_err());
        assert!(parse_from("x:ssh").is_err());
        assert!(parse_from("a b").is_err());
    }
}
