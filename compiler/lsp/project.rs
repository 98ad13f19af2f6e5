//! Where a document's configuration is: the editor's unsaved texts over the
//! filesystem ([`Overlay`]), the directory checked for a file ([`root_of`]), and
//! the standard library as read-only files an editor can open ([`StdFiles`]).

use crate::resolve::load::{self, TreeError, TreeFile};
use crate::resolve::{FsLoader, Loader};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// The open documents' texts in front of the filesystem: what the compiler reads
/// is what the editor shows, saved or not.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub open: BTreeMap<PathBuf, String>,
}

impl Loader for Overlay {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.open.get(path) {
            Some(t) => Ok(t.clone().into_bytes()),
            None => FsLoader.read(path),
        }
    }
    fn is_dir(&self, path: &Path) -> bool {
        FsLoader.is_dir(path) || self.open.keys().any(|p| p.parent() == Some(path))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = match FsLoader.list(dir) {
            Ok(v) => v,
            Err(e) if !self.open.keys().any(|p| p.parent() == Some(dir)) => return Err(e),
            Err(_) => Vec::new(),
        };
        for p in self.open.keys() {
            if p.parent() == Some(dir) && !out.contains(p) {
                out.push(p.clone());
            }
        }
        Ok(out)
    }
    fn read_tree(&self, dir: &Path) -> Result<Vec<(String, String)>, (PathBuf, io::Error)> {
        FsLoader.read_tree(dir)
    }
    fn read_files(&self, dir: &Path, inside: &Path) -> Result<Vec<TreeFile>, TreeError> {
        FsLoader.read_files(dir, inside)
    }
    fn read_git_files(
        &self,
        root: &Path,
        rev: &str,
        dir: &str,
    ) -> Result<Vec<TreeFile>, TreeError> {
        FsLoader.read_git_files(root, rev, dir)
    }
}

/// How far up [`root_of`] looks for a directory whose files import `file`.
const UP: usize = 4;

/// The directory `infra check` would be given for `file`: the highest of its
/// directory and the parents above it (each holding `.infra` files, below a git
/// repository's top) whose configuration loads `file` (a file under `lib/`
/// imported by `../main.infra` is checked with `main.infra`); else its own
/// directory.
pub fn root_of(file: &Path, loader: &dyn Loader) -> PathBuf {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut best = dir.clone();
    let mut cur = dir.clone();
    for _ in 0..UP {
        if cur.join(".git").exists() {
            break;
        }
        let Some(up) = cur.parent().map(Path::to_path_buf) else {
            break;
        };
        let has_infra = loader.list(&up).is_ok_and(|v| {
            v.iter()
                .any(|p| p.extension().is_some_and(|e| e == "infra"))
        });
        if !has_infra {
            break;
        }
        if load::load(&up, loader).user_files.iter().any(|f| f == file) {
            best = up.clone();
        }
        cur = up;
    }
    best
}

/// The standard library's modules written once as read-only files (0444) in a
/// directory named after their content, so "go to definition" opens them in any
/// editor; a path there is read back as `std/NAME`.
#[derive(Debug, Clone)]
pub struct StdFiles {
    pub dir: Option<PathBuf>,
}

impl StdFiles {
    /// Under `cache` (`$XDG_CACHE_HOME/infra` or `~/.cache/infra`); `None`: nowhere
    /// to write them (definitions into the stdlib are then not offered).
    pub fn new(cache: Option<PathBuf>) -> StdFiles {
        use sha2::{Digest, Sha256};
        let Some(cache) = cache else {
            return StdFiles { dir: None };
        };
        let mut h = Sha256::new();
        for (name, text) in crate::stdlib::modules() {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(text.as_bytes());
            h.update([0]);
        }
        let hash: String = h
            .finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        let dir = cache.join(format!("stdlib-{hash}"));
        let ok = dir.join(".complete").exists() || write_all(&dir).is_ok();
        StdFiles {
            dir: ok.then_some(dir),
        }
    }

    /// The file showing `std/NAME`.
    pub fn path(&self, std_name: &str) -> Option<PathBuf> {
        let name = std_name.strip_prefix("std/")?;
        Some(self.dir.as_ref()?.join(format!("{name}.infra")))
    }

    /// `std/NAME` for a path of [`StdFiles::path`].
    pub fn name(&self, path: &Path) -> Option<String> {
        let dir = self.dir.as_ref()?;
        if path.parent()? != dir {
            return None;
        }
        let stem = path.file_stem()?.to_str()?;
        crate::stdlib::module(stem).map(|_| format!("std/{stem}"))
    }
}

fn write_all(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    for (name, text) in crate::stdlib::modules() {
        let p = tmp.join(format!("{name}.infra"));
        std::fs::write(&p, text)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444))?;
    }
    std::fs::write(tmp.join(".complete"), "")?;
    match std::fs::rename(&tmp, dir) {
        Ok(()) => Ok(()),
        // another server wrote it first
        Err(_) if dir.join(".complete").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_document_is_read_before_the_disk_and_listed_in_its_directory() {
        let mut o = Overlay::default();
        let p = PathBuf::from("/nonexistent-infra-lsp/cfg/main.infra");
        o.open
            .insert(p.clone(), "host a { address = \"192.0.2.1\" }".into());
        assert!(o.is_dir(Path::new("/nonexistent-infra-lsp/cfg")));
        assert_eq!(
            o.list(Path::new("/nonexistent-infra-lsp/cfg")).unwrap(),
            vec![p.clone()]
        );
        assert_eq!(o.read(&p).unwrap(), b"host a { address = \"192.0.2.1\" }");
        assert!(o.list(Path::new("/nonexistent-infra-lsp")).is_err());
    }

    #[test]
    fn the_stdlib_is_written_read_only_and_read_back_by_name() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let s = StdFiles::new(Some(d.path().to_path_buf()));
        let p = s.path("std/postgres").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            crate::stdlib::module("postgres").unwrap()
        );
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444);
        assert_eq!(s.name(&p).as_deref(), Some("std/postgres"));
        assert_eq!(s.name(Path::new("/etc/postgres.infra")), None);
        // a second server finds it written
        assert_eq!(StdFiles::new(Some(d.path().to_path_buf())).dir, s.dir);
    }
}
