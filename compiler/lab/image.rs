//! The lab image: a Debian root built with debootstrap, with the packages the stdlib kinds
//! need, cached under the user's cache directory and keyed by a hash of its package list.
//!
//! Invariants: an image directory `images/<hash>/` exists only once complete (it is built
//! in `images/.tmp-<hash>-<pid>/` and renamed); an image is never written after that
//! (hosts boot on an overlay whose lower layer is the image).

use super::progress::Progress;
use super::sys;
use super::LabError;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The Debian release of the image.
pub const SUITE: &str = "bookworm";

/// Installed by debootstrap: what makes the root bootable and reachable.
pub const BASE_PACKAGES: &[&str] = &[
    "dbus",
    "iproute2",
    "openssh-server",
    "systemd",
    "systemd-sysv",
];

/// Installed with apt-get afterwards: what the stdlib kinds render (concrete names, as
/// in a build's package list, so that a configuration using them needs no other image),
/// plus a few tools for looking around (`ps`, `ping`). infra itself needs no interpreter
/// on a host; python3 is here because the `share` kind installs it (Debian's rrsync, the
/// receiving side, is a python3 script), so every lab uses one image. Lab hosts have no
/// internet: a package missing here cannot be installed by `infra apply` in the lab.
pub const DEFAULT_PACKAGES: &[&str] = &[
    "ca-certificates",
    "curl",
    "etcd-client",
    "etcd-server",
    "iputils-ping",
    "keepalived",
    "mariadb-backup",
    "mariadb-client",
    "mariadb-server",
    "msmtp",
    "nginx",
    "openssh-client",
    "pgbackrest",
    "php8.2-fpm",
    "php8.2-mysql",
    "php8.2-pgsql",
    "postgresql-15",
    "postgresql-client-15",
    "procps",
    "python3",
    "rsync",
    "sudo",
];

/// Units the packages enable that would start on boot; `infra apply` enables what the
/// configuration declares. Globs are matched against unit file names.
const DISABLE: &[&str] = &[
    "etcd.service",
    "keepalived.service",
    "postgresql.service",
    "mariadb.service",
    "mariadb.socket",
    "nginx.service",
    "php*-fpm.service",
    "rsync.service",
    "e2scrub_reap.service",
    "systemd-pstore.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "phpsessionclean.timer",
];

/// Bump when the build procedure changes in a way that changes the image.
const RECIPE: &str = "infra-lab-image/1";

/// The package list an image is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub suite: String,
    pub base: Vec<String>,
    pub packages: Vec<String>,
}

impl ImageSpec {
    /// The default packages plus `extra`, sorted and deduplicated.
    pub fn with_extra(extra: &[String]) -> ImageSpec {
        let base: BTreeSet<String> = BASE_PACKAGES.iter().map(|s| s.to_string()).collect();
        let packages: BTreeSet<String> = DEFAULT_PACKAGES
            .iter()
            .map(|s| s.to_string())
            .chain(extra.iter().cloned())
            .filter(|p| !base.contains(p))
            .collect();
        ImageSpec {
            suite: SUITE.into(),
            base: base.into_iter().collect(),
            packages: packages.into_iter().collect(),
        }
    }

    /// 16 hex digits of SHA-256 over the recipe, suite and package lists.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(RECIPE.as_bytes());
        h.update(b"\nsuite ");
        h.update(self.suite.as_bytes());
        h.update(b"\nbase");
        for p in &self.base {
            h.update(b" ");
            h.update(p.as_bytes());
        }
        h.update(b"\npackages");
        for p in &self.packages {
            h.update(b" ");
            h.update(p.as_bytes());
        }
        h.finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// `$XDG_CACHE_HOME/infra`, else `~/.cache/infra` (`/root/.cache/infra` for root),
/// else `/var/cache/infra`.
pub fn cache_dir() -> PathBuf {
    let abs = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(x) = abs(std::env::var_os("XDG_CACHE_HOME")) {
        return x.join("infra");
    }
    if let Some(h) = abs(std::env::var_os("HOME")) {
        return h.join(".cache").join("infra");
    }
    PathBuf::from("/var/cache/infra")
}

pub fn images_dir() -> PathBuf {
    cache_dir().join("images")
}

/// Where the image for `spec` lives once built: `images/<hash>/root`.
pub fn image_root(spec: &ImageSpec) -> PathBuf {
    images_dir().join(spec.hash()).join("root")
}

/// The built image root for `spec`, building it first when it is not cached.
pub fn ensure(spec: &ImageSpec, progress: &Progress) -> Result<PathBuf, LabError> {
    let hash = spec.hash();
    let dir = images_dir();
    let done = dir.join(&hash);
    if done.join("root").is_dir() {
        return Ok(done.join("root"));
    }
    sys::mkdir(&dir, 0o755)?;
    // One builder per image: a second `up` waits here, then finds the image built.
    let lock_path = dir.join(format!("{hash}.lock"));
    let _lock = Lock::exclusive(&lock_path)?;
    if done.join("root").is_dir() {
        return Ok(done.join("root"));
    }
    if overlay_unsafe(&done) {
        return Err(LabError::InvalidSpec(format!(
            "the image cache path {} contains `,`, `:` or whitespace, which overlayfs cannot take: \
             set XDG_CACHE_HOME to a plain path",
            done.display()
        )));
    }
    // Leftovers of builds that crashed: we hold the lock, nobody else is building this hash.
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!(".tmp-{hash}-"))
            {
                sys::remove_tree(&e.path())?;
            }
        }
    }
    let tmp = dir.join(format!(".tmp-{hash}-{}", std::process::id()));
    let log = dir.join(format!("{hash}.build.log"));
    let started = Instant::now();
    let result = build(spec, &tmp, &log, progress);
    match result {
        Ok(()) => {
            if let Err(e) = std::fs::rename(&tmp, &done) {
                let _ = sys::remove_tree(&tmp);
                if !done.join("root").is_dir() {
                    return Err(LabError::io("move the built image to", &done, e));
                }
            }
            progress.finish();
            progress.note(&format!(
                "image {hash} built in {:.0} s ({})",
                started.elapsed().as_secs_f64(),
                done.display()
            ));
            Ok(done.join("root"))
        }
        Err(e) => {
            progress.finish();
            let _ = sys::remove_tree(&tmp);
            Err(e)
        }
    }
}

fn overlay_unsafe(p: &Path) -> bool {
    p.to_string_lossy()
        .chars()
        .any(|c| c == ',' || c == ':' || c.is_whitespace())
}

fn build(
    spec: &ImageSpec,
    tmp: &Path,
    log_path: &Path,
    progress: &Progress,
) -> Result<(), LabError> {
    use std::io::Write;
    let debootstrap = sys::tool("debootstrap", "debootstrap")?;
    let unshare = sys::tool("unshare", "util-linux")?;
    let systemctl = sys::tool("systemctl", "systemd")?;
    let root = tmp.join("root");
    sys::mkdir(&root, 0o755)?;
    let mut log =
        std::fs::File::create(log_path).map_err(|e| LabError::io("create", log_path, e))?;
    let mirrors = Mirrors::from_host();
    let _ = writeln!(log, "# infra lab image {} ({})", spec.hash(), RECIPE);
    let _ = writeln!(log, "# mirror {}", mirrors.main);
    let fail = |step: &str, detail: String| LabError::Image {
        step: step.into(),
        detail,
        log: log_path.to_path_buf(),
    };

    // 1. debootstrap, in a private mount namespace so that its /proc and /sys mounts
    //    die with it even if it is killed.
    progress.step(&format!(
        "building image: debootstrap {} (about a minute)",
        spec.suite
    ));
    let phase = Instant::now();
    let mut recent: Vec<String> = Vec::new();
    let mut cmd = sys::command(&unshare);
    cmd.args(["--mount", "--propagation", "private", "--"])
        .arg(&debootstrap)
        .arg("--variant=minbase")
        .arg(format!("--include={}", spec.base.join(",")))
        .arg("--components=main")
        .arg(&spec.suite)
        .arg(&root)
        .arg(&mirrors.main);
    let status = sys::run_streaming(&mut cmd, |line| {
        let _ = writeln!(log, "{line}");
        remember(&mut recent, line);
        if let Some(d) = debootstrap_detail(line) {
            progress.detail(&d);
        }
    })
    .map_err(|e| fail("running debootstrap", e.to_string()))?;
    if !status.success() {
        return Err(fail("running debootstrap", recent.join(" / ")));
    }

    let took = |p: Instant| format!("{:.0} s", p.elapsed().as_secs_f64());
    progress.note(&format!("debootstrap done in {}", took(phase)));
    let _ = writeln!(log, "# debootstrap done in {}", took(phase));

    // 2. The other packages with apt-get in a chroot (same mirror as the host uses).
    let phase = Instant::now();
    progress.step(&format!(
        "building image: installing {} packages",
        spec.packages.len()
    ));
    let etc = root.join("etc");
    sys::write_file(
        &etc.join("apt/sources.list"),
        mirrors.sources_list(&spec.suite).as_bytes(),
        0o644,
    )?;
    let resolv = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    let _ = std::fs::remove_file(etc.join("resolv.conf"));
    sys::write_file(&etc.join("resolv.conf"), &resolv, 0o644)?;
    let policy = root.join("usr/sbin/policy-rc.d");
    sys::write_file(
        &policy,
        b"#!/bin/sh\n# infra lab image build: start no service\nexit 101\n",
        0o755,
    )?;
    let mut cmd = sys::command(&unshare);
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--fork",
        "--",
        "sh",
        "-c",
        APT_SCRIPT,
        "apt",
    ])
    .arg(&root)
    .args(&spec.packages)
    .env("DEBIAN_FRONTEND", "noninteractive");
    recent.clear();
    let status = sys::run_streaming(&mut cmd, |line| {
        let _ = writeln!(log, "{line}");
        remember(&mut recent, line);
        if let Some(d) = apt_detail(line) {
            progress.detail(&d);
        }
    })
    .map_err(|e| fail("installing packages", e.to_string()))?;
    if !status.success() {
        return Err(fail("installing packages with apt-get", recent.join(" / ")));
    }

    progress.note(&format!("packages installed in {}", took(phase)));
    let _ = writeln!(log, "# packages installed in {}", took(phase));

    // 3. Make it a lab image.
    progress.step("building image: configuring");
    let _ = std::fs::remove_file(&policy);
    let _ = std::fs::remove_file(etc.join("resolv.conf"));
    sys::write_file(&etc.join("resolv.conf"), b"", 0o644)?;
    // Every host gets its own host keys and machine-id before its first boot.
    if let Ok(rd) = std::fs::read_dir(etc.join("ssh")) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("ssh_host_") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    sys::write_file(&etc.join("machine-id"), b"", 0o444)?;
    sys::write_file(&etc.join("hostname"), b"localhost\n", 0o644)?;
    sys::mkdir(&etc.join("systemd/journald.conf.d"), 0o755)?;
    sys::write_file(
        &etc.join("systemd/journald.conf.d/infra-lab.conf"),
        b"# infra lab: keep the journal of a lab host small\n[Journal]\nSystemMaxUse=64M\n",
        0o644,
    )?;
    let units = units_to_disable(&root);
    let _ = writeln!(log, "# disabling {}", units.join(" "));
    if !units.is_empty() {
        let mut cmd = sys::command(&systemctl);
        cmd.arg(format!("--root={}", root.display()))
            .arg("disable")
            .args(&units);
        sys::run("disabling services in the image", &mut cmd)
            .map_err(|e| fail("disabling services", e.to_string()))?;
    }
    let mut cmd = sys::command(&systemctl);
    cmd.arg(format!("--root={}", root.display()))
        .args(["set-default", "multi-user.target"]);
    sys::run("setting the default target", &mut cmd)
        .map_err(|e| fail("setting the default target", e.to_string()))?;
    let manifest = format!(
        "{RECIPE}\nhash {}\nsuite {}\nbase {}\npackages {}\n",
        spec.hash(),
        spec.suite,
        spec.base.join(" "),
        spec.packages.join(" ")
    );
    sys::write_file(&etc.join("infra-lab-image"), manifest.as_bytes(), 0o644)?;
    sys::write_file(&tmp.join("image.txt"), manifest.as_bytes(), 0o644)?;
    let _ = writeln!(log, "# done");
    Ok(())
}

/// Runs in a fresh mount namespace: `$1` is the root, the rest are packages.
const APT_SCRIPT: &str = r#"set -e
root=$1; shift
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
chroot "$root" apt-get -q -o Acquire::Retries=3 update
chroot "$root" apt-get -q -y -o Acquire::Retries=3 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-unsafe-io --no-install-recommends install "$@"
chroot "$root" apt-get clean
"#;

fn remember(recent: &mut Vec<String>, line: &str) {
    if line.trim().is_empty() {
        return;
    }
    recent.push(line.trim().to_string());
    if recent.len() > 8 {
        recent.remove(0);
    }
}

/// `I: Retrieving libc6 2.36-9` → `retrieving libc6`; `I: Configuring the base system...`
/// → `configuring the base system`; validation lines are dropped (they alternate with
/// retrieval, one per package).
fn debootstrap_detail(line: &str) -> Option<String> {
    let rest = line.strip_prefix("I: ")?.trim_end_matches("...").trim();
    let (verb, what) = rest.split_once(' ').unwrap_or((rest, ""));
    let verb = verb.to_ascii_lowercase();
    match verb.as_str() {
        "validating" | "checking" | "chosen" | "found" => None,
        "retrieving" | "extracting" => Some(format!(
            "{verb} {}",
            what.split_whitespace().next().unwrap_or("")
        )),
        _ => Some(format!("{verb} {what}").trim().to_string()),
    }
}

/// `Get:3 http://... bookworm/main amd64 nginx amd64 1.22 [1 kB]` → `downloading nginx`.
fn apt_detail(line: &str) -> Option<String> {
    let w: Vec<&str> = line.split_whitespace().collect();
    if w.first()?.starts_with("Get:") {
        let pkg = if w.get(2).is_some_and(|s| s.contains('/')) {
            w.get(4)?
        } else {
            w.get(3)?
        };
        return Some(format!("downloading {pkg}"));
    }
    match (w.first()?, w.get(1)) {
        (&"Unpacking", Some(p)) => Some(format!("unpacking {p}")),
        (&"Setting", Some(&"up")) => Some(format!("configuring {}", w.get(2)?)),
        (&"Processing", Some(&"triggers")) => Some("processing triggers".into()),
        _ => None,
    }
}

fn units_to_disable(root: &Path) -> Vec<String> {
    let dirs = [
        root.join("usr/lib/systemd/system"),
        root.join("lib/systemd/system"),
    ];
    let mut present = BTreeSet::new();
    for d in &dirs {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                present.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    present
        .into_iter()
        .filter(|u| DISABLE.iter().any(|pat| glob(pat, u)))
        .collect()
}

/// `*` only.
fn glob(pat: &str, s: &str) -> bool {
    match pat.split_once('*') {
        None => pat == s,
        Some((a, b)) => s.len() >= a.len() + b.len() && s.starts_with(a) && s.ends_with(b),
    }
}

/// The Debian mirrors the host's apt uses (so the lab needs no other network access).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirrors {
    pub main: String,
    pub updates: bool,
    pub security: Option<String>,
}

impl Mirrors {
    /// From `INFRA_LAB_MIRROR`, else /etc/apt/sources.list(.d), else deb.debian.org.
    pub fn from_host() -> Mirrors {
        let mut texts = Vec::new();
        if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
            texts.push((false, t));
        }
        if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
            let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                let deb822 = f.extension().is_some_and(|e| e == "sources");
                let list = f.extension().is_some_and(|e| e == "list");
                if deb822 || list {
                    if let Ok(t) = std::fs::read_to_string(&f) {
                        texts.push((deb822, t));
                    }
                }
            }
        }
        let mut m = Mirrors::parse(SUITE, &texts);
        if let Ok(env) = std::env::var("INFRA_LAB_MIRROR") {
            if !env.trim().is_empty() {
                m.main = env.trim().to_string();
            }
        }
        m
    }

    /// `texts`: (is deb822, content) of each sources file.
    pub fn parse(suite: &str, texts: &[(bool, String)]) -> Mirrors {
        let mut entries: Vec<(String, String)> = Vec::new(); // (uri, suite)
        for (deb822, text) in texts {
            if *deb822 {
                entries.extend(parse_deb822(text));
            } else {
                entries.extend(parse_one_line(text));
            }
        }
        let usable = |u: &str| {
            u.starts_with("http://") || u.starts_with("https://") || u.starts_with("file:/")
        };
        let main = entries
            .iter()
            .find(|(u, s)| s == suite && usable(u))
            .map(|(u, _)| u.clone())
            .unwrap_or_else(|| "http://deb.debian.org/debian".to_string());
        let updates = entries
            .iter()
            .any(|(u, s)| *s == format!("{suite}-updates") && *u == main);
        let security = entries
            .iter()
            .find(|(u, s)| *s == format!("{suite}-security") && usable(u))
            .map(|(u, _)| u.clone());
        Mirrors {
            main,
            updates,
            security,
        }
    }

    pub fn sources_list(&self, suite: &str) -> String {
        let mut s = format!("deb {} {suite} main\n", self.main);
        if self.updates {
            s.push_str(&format!("deb {} {suite}-updates main\n", self.main));
        }
        if let Some(sec) = &self.security {
            s.push_str(&format!("deb {sec} {suite}-security main\n"));
        }
        s
    }
}

fn parse_one_line(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut w = line.split_whitespace().peekable();
        if w.next() != Some("deb") {
            continue;
        }
        if w.peek().is_some_and(|t| t.starts_with('[')) {
            for t in w.by_ref() {
                if t.ends_with(']') {
                    break;
                }
            }
        }
        if let (Some(uri), Some(suite)) = (w.next(), w.next()) {
            out.push((uri.trim_end_matches('/').to_string(), suite.to_string()));
        }
    }
    out
}

fn parse_deb822(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(last) = fields.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        if get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        if !get("types")
            .unwrap_or("")
            .split_whitespace()
            .any(|t| t == "deb")
        {
            continue;
        }
        for uri in get("uris").unwrap_or("").split_whitespace() {
            for suite in get("suites").unwrap_or("").split_whitespace() {
                out.push((uri.trim_end_matches('/').to_string(), suite.to_string()));
            }
        }
    }
    out
}

/// An exclusive `flock` held until dropped.
pub(crate) struct Lock {
    _file: std::fs::File,
}

impl Lock {
    pub(crate) fn exclusive(path: &Path) -> Result<Lock, LabError> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| LabError::io("open", path, e))?;
        // SAFETY: flock on a file descriptor we own; blocks until the lock is ours.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if r != 0 {
            return Err(LabError::io("lock", path, std::io::Error::last_os_error()));
        }
        Ok(Lock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_from_deb822_and_lists() {
        let deb822 = "Types: deb\n# c\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n\
                      Suites: bookworm-security\nComponents: main\n";
        let m = Mirrors::parse("bookworm", &[(true, deb822.into())]);
        assert_eq!(m.main, "http://deb.debian.org/debian");
        assert!(m.updates);
        assert_eq!(
            m.security.as_deref(),
            Some("http://deb.debian.org/debian-security")
        );
        let list = "# x\ndeb [arch=amd64 signed-by=/k.gpg] http://ftp.fr.debian.org/debian/ bookworm main\n";
        let m = Mirrors::parse("bookworm", &[(false, list.into())]);
        assert_eq!(m.main, "http://ftp.fr.debian.org/debian");
        assert!(!m.updates);
        assert_eq!(m.security, None);
        let m = Mirrors::parse("bookworm", &[]);
        assert_eq!(m.main, "http://deb.debian.org/debian");
        let disabled = "Types: deb\nURIs: http://a.example/debian\nSuites: bookworm\nEnabled: no\n";
        assert_eq!(
            Mirrors::parse("bookworm", &[(true, disabled.into())]).main,
            "http://deb.debian.org/debian"
        );
    }

    #[test]
    fn hash_follows_package_list() {
        let a = ImageSpec::with_extra(&[]);
        let b = ImageSpec::with_extra(&[
            "nginx".into(),
            "php8.2-pgsql".into(),
            "openssh-server".into(),
        ]);
        let c = ImageSpec::with_extra(&["redis-server".into()]);
        assert_eq!(
            a.hash(),
            b.hash(),
            "a default package listed again changes nothing"
        );
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.hash().len(), 16);
    }

    #[test]
    fn progress_details() {
        assert_eq!(
            debootstrap_detail("I: Retrieving libc6 2.36-9").as_deref(),
            Some("retrieving libc6")
        );
        assert_eq!(
            apt_detail(
                "Get:3 http://deb.debian.org/debian bookworm/main amd64 nginx amd64 1.22.1 [1 kB]"
            )
            .as_deref(),
            Some("downloading nginx")
        );
        assert_eq!(
            apt_detail("Setting up nginx (1.22.1-9) ...").as_deref(),
            Some("configuring nginx")
        );
        assert!(glob("php*-fpm.service", "php8.2-fpm.service"));
        assert!(!glob("php*-fpm.service", "php8.2-fpm.socket"));
    }
}
