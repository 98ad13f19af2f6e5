//! A build on disk: `OUT/<host>/<absolute path without the leading />` for every
//! file (content with secret placeholders, mode bits set) and
//! `OUT/<host>/manifest.json` (everything else: packages, users, directories,
//! units, steps, roles, and each file's mode/owner/sha256/origin; pretty, sorted,
//! ends with a newline). The golden files are exactly this.

use super::build::{
    Build, DirOut, FileOut, HostBuild, ReleaseOut, RoleOut, StepOut, UnitOut, UserOut,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";

#[derive(Serialize, Deserialize)]
struct Manifest {
    host: String,
    address: String,
    packages: Vec<String>,
    users: Vec<UserOut>,
    directories: Vec<DirOut>,
    files: BTreeMap<String, ManifestFile>,
    units: Vec<UnitOut>,
    steps: Vec<StepOut>,
    roles: Vec<RoleOut>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    releases: Vec<ReleaseOut>,
}

#[derive(Serialize, Deserialize)]
struct ManifestFile {
    mode: crate::encode::Mode,
    owner: String,
    group: String,
    secret: bool,
    sha256: String,
    origin: String,
}

/// The manifest of one host, as written to `manifest.json`.
pub fn manifest_json(host: &HostBuild) -> String {
    let m = Manifest {
        host: host.host.clone(),
        address: host.address.clone(),
        packages: host.packages.clone(),
        users: host.users.clone(),
        directories: host.directories.clone(),
        files: host
            .files
            .iter()
            .map(|(p, f)| {
                (
                    p.clone(),
                    ManifestFile {
                        mode: f.mode,
                        owner: f.owner.clone(),
                        group: f.group.clone(),
                        secret: f.secret,
                        sha256: f.sha256.clone(),
                        origin: f.origin.clone(),
                    },
                )
            })
            .collect(),
        units: host.units.clone(),
        steps: host.steps.clone(),
        roles: host.roles.clone(),
        releases: host.releases.clone(),
    };
    let mut s = serde_json::to_string_pretty(&m).unwrap_or_default();
    s.push('\n');
    s
}

/// `/etc/x` → `etc/x`; refuses `..` and relative paths so a build never writes
/// outside its directory.
fn relative(path: &str) -> io::Result<PathBuf> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("build path {path} is not absolute"),
        ));
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => out.push(n),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("build path {path} may not contain `.` or `..`"),
                ))
            }
        }
    }
    Ok(out)
}

/// Write the build under `out`. A host directory left by an earlier build (it holds
/// a manifest.json) is replaced; any other non-empty directory in the way is an error.
pub fn write_build(build: &Build, out: &Path) -> io::Result<()> {
    std::fs::create_dir_all(out)?;
    // Check every host directory first, so a refusal leaves nothing half-written.
    for name in build.hosts.keys() {
        let dir = out.join(name);
        if dir.exists()
            && !dir.join(MANIFEST).is_file()
            && std::fs::read_dir(&dir)?.next().is_some()
        {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a build (no {MANIFEST}): refusing to overwrite it",
                    dir.display()
                ),
            ));
        }
    }
    // Hosts are independent trees: write them on every core (the filesystem's
    // create/mkdir calls dominate a large build).
    let hosts: Vec<(&String, &HostBuild)> = build.hosts.iter().collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = hosts.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = hosts
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .try_for_each(|(name, host)| write_host(&out.join(name), host))
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(io::Error::other("a writer thread panicked")))
        })
    })
}

fn write_host(dir: &Path, host: &HostBuild) -> io::Result<()> {
    if dir.join(MANIFEST).is_file() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    // Each directory is created once, and the mode is set on the open file: a few
    // syscalls per file.
    let mut made: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    for (path, f) in &host.files {
        let target = dir.join(relative(path)?);
        if let Some(parent) = target.parent() {
            if !made.contains(parent) {
                std::fs::create_dir_all(parent)?;
                made.insert(parent.to_path_buf());
            }
        }
        let mut file = std::fs::File::create(&target)?;
        std::io::Write::write_all(&mut file, f.content.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(f.mode.bits()))?;
    }
    std::fs::write(dir.join(MANIFEST), manifest_json(host))
}

/// Read a build written by [`write_build`] (every `OUT/<host>/manifest.json` and the
/// files it lists).
pub fn read_build(out: &Path) -> io::Result<Build> {
    let mut build = Build::default();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(MANIFEST).is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let text = std::fs::read_to_string(dir.join(MANIFEST))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", dir.join(MANIFEST).display()),
            )
        })?;
        let mut files = BTreeMap::new();
        for (path, f) in m.files {
            let content = std::fs::read_to_string(dir.join(relative(&path)?))?;
            files.insert(
                path,
                FileOut {
                    mode: f.mode,
                    owner: f.owner,
                    group: f.group,
                    content,
                    secret: f.secret,
                    sha256: f.sha256,
                    origin: f.origin,
                },
            );
        }
        build.hosts.insert(
            m.host.clone(),
            HostBuild {
                host: m.host,
                address: m.address,
                packages: m.packages,
                users: m.users,
                directories: m.directories,
                files,
                units: m.units,
                steps: m.steps,
                roles: m.roles,
                releases: m.releases,
            },
        );
    }
    Ok(build)
}
