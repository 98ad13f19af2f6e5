//! Releases: an application's files from the repository, content-addressed.
//! Entry point: [`load`], run by the compile driver between check and render; it
//! reads the `source` directory of every `release` resource through the
//! [`Loader`] and gives each file its sha256 and each tree its hash (the release
//! id a host keeps as `PATH/releases/HASH/`). Pure given the loader.
//!
//! Invariants:
//! - A tree holds only files below its source, inside the repository: a source
//!   that leaves it (absolute, `..`, a symbolic link pointing out) is E0622.
//! - The release hash is a function of the files' paths, modes and contents only:
//!   the same tree gives the same release on every machine and every run.

use crate::diag::{codes, Diag};
use crate::encode::{sha256_hex, Mode};
use crate::resolve::load::{TreeError, MAX_TREE_DEPTH};
use crate::resolve::{Loader, Model, ResourceKind, Value};
use crate::source::Span;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// One file of a release, as the build records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFile {
    pub sha256: String,
    pub size: u64,
    /// 0644, or 0755 for a file executable in the repository.
    pub mode: Mode,
}

/// The files of one source directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The release id: 16 hex digits of the sha256 over every file's line of
    /// [`list`].
    pub hash: String,
    /// Relative path -> file.
    pub files: BTreeMap<String, ReleaseFile>,
}

/// Every release tree of a configuration and the bytes of its files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trees {
    /// Keyed by [`key`]: the `source` as written (relative to the
    /// repository), with `@REV` when it comes from a git commit.
    pub trees: BTreeMap<String, Tree>,
    /// sha256 -> content.
    pub blobs: BTreeMap<String, Arc<Vec<u8>>>,
}

/// The list a host keeps for a release (`sha256 mode path` a line, in the
/// order given: a release's files are sorted by path): what the next release is
/// assembled against.
pub fn list<'a>(files: impl IntoIterator<Item = (&'a String, &'a ReleaseFile)>) -> String {
    let mut out = String::new();
    for (path, f) in files {
        out.push_str(&format!("{} {} {path}\n", f.sha256, f.mode));
    }
    out
}

/// The key of a release's tree in [`Trees::trees`].
pub fn key(source: &str, git: &str) -> String {
    if git.is_empty() {
        source.to_string()
    } else {
        format!("{source}@{git}")
    }
}

/// Read every release's source (E0621-E0623 with the span of the user's
/// argument that named it).
pub fn load(model: &Model, loader: &dyn Loader, root_dir: &Path) -> Result<Trees, Vec<Diag>> {
    let mut out = Trees::default();
    let mut diags = Vec::new();
    for inst in &model.instances {
        for r in &inst.resources {
            let ResourceKind::Release {
                source,
                source_span,
                git,
                git_span,
                shared,
                shared_span,
                ..
            } = &r.kind
            else {
                continue;
            };
            if source.is_empty() {
                continue;
            }
            // Point at the user's argument that carries the value, not at the
            // kind body that passed it on.
            let span_of = |value: &str, fallback: Span| -> Span {
                inst.params
                    .iter()
                    .find(|p| match &p.value {
                        Value::Str(s) => s == value,
                        Value::List(items) => items
                            .iter()
                            .any(|i| matches!(i, Value::Str(s) if s == value)),
                        _ => false,
                    })
                    .map_or(fallback, |p| p.span)
            };
            let at = span_of(source, *source_span);
            let git_at = span_of(git, *git_span);
            let k = key(source, git);
            if !out.trees.contains_key(&k) {
                match read(loader, root_dir, source, (git, git_at), at, &mut out.blobs) {
                    Ok(t) => {
                        out.trees.insert(k.clone(), t);
                    }
                    Err(d) => {
                        diags.push(*d);
                        continue;
                    }
                }
            }
            let tree = &out.trees[&k];
            for s in shared {
                let at = span_of(s, *shared_span);
                if let Some(problem) = relative_problem(s) {
                    diags.push(
                        Diag::error(codes::E0623, format!("the shared directory `{s}` {problem}"))
                            .at(at, "not a directory inside the release")
                            .help("name a directory relative to the release, e.g. \"uploads\" or \"storage/cache\""),
                    );
                    continue;
                }
                let prefix = format!("{s}/");
                if let Some(p) = tree
                    .files
                    .keys()
                    .find(|p| *p == s || p.starts_with(&prefix))
                {
                    diags.push(
                        Diag::error(
                            codes::E0623,
                            format!("the shared directory `{s}` is also in the release (`{source}/{p}`)"),
                        )
                        .at(at, "shared between releases")
                        .help(format!("a shared directory is linked into every release and keeps its contents across them: remove `{source}/{s}` from the repository (or ignore it in git), or do not share it")),
                    );
                }
            }
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// Why `p` is not a plain relative path inside a directory, if it is not.
fn relative_problem(p: &str) -> Option<&'static str> {
    if p.is_empty() {
        Some("is empty")
    } else if p.starts_with('/') {
        Some("is absolute")
    } else if p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        Some("has an empty, `.` or `..` segment")
    } else if p.chars().any(|c| c.is_control()) {
        Some("holds a control character")
    } else {
        None
    }
}

fn read(
    loader: &dyn Loader,
    root_dir: &Path,
    source: &str,
    (git, git_at): (&str, Span),
    at: Span,
    blobs: &mut BTreeMap<String, Arc<Vec<u8>>>,
) -> Result<Tree, Box<Diag>> {
    let outside = |what: String| {
        Box::new(
            Diag::error(codes::E0622, format!("the release source `{source}` {what}"))
                .at(at, "outside the repository")
                .help("a release comes from a directory of the repository, relative to the configuration, e.g. \"app\""),
        )
    };
    let unreadable = |what: String, help: &str| {
        Box::new(
            Diag::error(
                codes::E0621,
                format!("the release source `{source}` {what}"),
            )
            .at(at, "cannot be read")
            .help(help.to_string()),
        )
    };
    if let Some(problem) = relative_problem(source.trim_end_matches('/')) {
        return Err(outside(problem.to_string()));
    }
    let dir = root_dir.join(source.trim_end_matches('/'));
    let got = if git.is_empty() {
        loader.read_files(&dir, root_dir)
    } else {
        loader.read_git_files(root_dir, git, source.trim_end_matches('/'))
    };
    let files = match got {
        Ok(f) => f,
        Err(TreeError::NoCommit(why)) => {
            return Err(Box::new(
                Diag::error(codes::E0624, format!("the release source `{source}` at `{git}`: {why}"))
                    .at(git_at, "no such commit")
                    .help("name a tag, branch or commit of this repository (`git tag` lists the tags), or remove `git` to deploy the working tree"),
            ))
        }
        Err(TreeError::Git(why)) => {
            return Err(unreadable(
                format!("cannot be read from git at `{git}`: {why}"),
                "check `git` and the repository (the configuration must be inside it)",
            ))
        }
        Err(TreeError::NotADirectory) if !git.is_empty() => {
            return Err(unreadable(
                format!("is not a directory of commit `{git}`"),
                "the directory must be committed at that commit (`git ls-tree REV -- DIR/`)",
            ))
        }
        Err(TreeError::NotADirectory) => {
            return Err(unreadable(
                format!("is not a directory (looked for {})", dir.display()),
                "create the directory, or fix `source` (it is relative to the configuration's directory)",
            ))
        }
        Err(TreeError::Io(p, e)) => {
            return Err(unreadable(
                format!("cannot be read: {}: {e}", p.display()),
                "check the files' permissions",
            ))
        }
        Err(TreeError::Escapes { link, target }) => {
            return Err(outside(if link.is_empty() {
                format!("is {} on disk", target.display())
            } else {
                format!("holds `{link}`, a symbolic link to {}", target.display())
            }))
        }
        Err(TreeError::TooDeep(p)) => {
            return Err(unreadable(
                format!("nests directories more than {MAX_TREE_DEPTH} deep at `{p}`"),
                "a symbolic link loop? flatten the tree",
            ))
        }
    };
    if let Some(f) = files.iter().find(|f| relative_problem(&f.path).is_some()) {
        return Err(unreadable(
            format!("holds a file whose name infra cannot install: {:?}", f.path),
            "rename it: file names of a release are one line",
        ));
    }
    if files.is_empty() {
        return Err(unreadable(
            "holds no files".into(),
            "put the application's files there",
        ));
    }
    let mut tree = BTreeMap::new();
    for f in files {
        let sha256 = sha256_hex(&f.bytes);
        let mode = if f.executable {
            Mode::EXECUTABLE
        } else {
            Mode::FILE
        };
        tree.insert(
            f.path,
            ReleaseFile {
                sha256: sha256.clone(),
                size: f.bytes.len() as u64,
                mode,
            },
        );
        blobs.entry(sha256).or_insert_with(|| Arc::new(f.bytes));
    }
    let hash = sha256_hex(list(&tree).as_bytes())[..16].to_string();
    Ok(Tree { hash, files: tree })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::MemLoader;
    use std::path::PathBuf;

    fn loader(files: &[(&str, &str)]) -> MemLoader {
        let mut l = MemLoader::default();
        for (p, c) in files {
            l.files.insert(PathBuf::from(p), c.as_bytes().to_vec());
        }
        l
    }

    #[test]
    fn the_hash_is_the_tree() {
        let mut blobs = BTreeMap::new();
        let a = loader(&[("repo/app/index.php", "v1"), ("repo/app/lib/x.php", "x")]);
        let t1 = read(
            &a,
            Path::new("repo"),
            "app",
            ("", Span::default()),
            Span::default(),
            &mut blobs,
        )
        .expect("reads");
        assert_eq!(t1.files.len(), 2);
        assert_eq!(t1.hash.len(), 16);
        let again = read(
            &a,
            Path::new("repo"),
            "app/",
            ("", Span::default()),
            Span::default(),
            &mut blobs,
        )
        .expect("reads");
        assert_eq!(t1, again, "same files, same release");
        let b = loader(&[("repo/app/index.php", "v2"), ("repo/app/lib/x.php", "x")]);
        let t2 = read(
            &b,
            Path::new("repo"),
            "app",
            ("", Span::default()),
            Span::default(),
            &mut blobs,
        )
        .expect("reads");
        assert_ne!(t1.hash, t2.hash);
        assert_eq!(t1.files["lib/x.php"], t2.files["lib/x.php"]);
        assert_eq!(blobs.len(), 3, "x.php once, index.php twice");
    }

    #[test]
    fn sources_stay_in_the_repository() {
        let mut blobs = BTreeMap::new();
        let l = loader(&[("repo/app/index.php", "v1")]);
        for bad in ["/srv/app", "../app", "app/../../etc", ""] {
            let e = read(
                &l,
                Path::new("repo"),
                bad,
                ("", Span::default()),
                Span::default(),
                &mut blobs,
            )
            .expect_err(bad);
            assert_eq!(e.code, codes::E0622, "{bad}: {}", e.message);
        }
        let e = read(
            &l,
            Path::new("repo"),
            "missing",
            ("", Span::default()),
            Span::default(),
            &mut blobs,
        )
        .expect_err("missing");
        assert_eq!(e.code, codes::E0621);
    }
}
