//! Loading sources: the root file or directory, then every import, transitively.
//! The filesystem sits behind [`Loader`] so the compiler core does no IO of its own.

use crate::diag::{codes, Diag};
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::{self, ast};
use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Where source files come from.
pub trait Loader {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    fn is_dir(&self, path: &Path) -> bool;
    /// Files directly inside a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Every file below `dir`, at any depth, as (path relative to `dir` with `/`
    /// separators, UTF-8 text), sorted by path; a `dir` that does not exist holds
    /// nothing. For the repo's `templates/` ([`crate::stdlib::load_overrides`]).
    /// An error names the file or directory that could not be read.
    fn read_tree(&self, dir: &Path) -> Result<Vec<(String, String)>, (PathBuf, io::Error)>;
    /// An application's files for a `release`: every file below `dir` (which must
    /// be a directory) with its bytes, sorted by relative path. Symbolic links are
    /// followed when they stay inside `inside` (the repository), refused otherwise.
    fn read_files(&self, dir: &Path, inside: &Path) -> Result<Vec<TreeFile>, TreeError>;
    /// The same from commit `rev` of the git repository holding `root` (the
    /// configuration's directory): `dir` is relative to `root`.
    fn read_git_files(
        &self,
        root: &Path,
        rev: &str,
        dir: &str,
    ) -> Result<Vec<TreeFile>, TreeError> {
        let _ = (root, rev, dir);
        Err(TreeError::Git("this loader has no git repository".into()))
    }
}

/// A file of a release tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Relative to the tree, `/`-separated.
    pub path: String,
    pub bytes: Vec<u8>,
    /// Anyone may execute it on the machine running infra.
    pub executable: bool,
}

/// Why a release tree could not be read.
#[derive(Debug)]
pub enum TreeError {
    NotADirectory,
    Io(PathBuf, io::Error),
    /// A symbolic link at `link` points outside the repository.
    Escapes {
        link: String,
        target: PathBuf,
    },
    /// Directories nested (or linked) deeper than this.
    TooDeep(String),
    /// No commit of that name in the repository (git's words).
    NoCommit(String),
    /// git failed, or the tree holds what a release cannot (a symbolic link,
    /// a submodule).
    Git(String),
}

/// Deepest directory nesting of a release tree (also ends symlink loops).
pub const MAX_TREE_DEPTH: usize = 64;

/// The real filesystem.
pub struct FsLoader;

/// `git -C root ARGS`: its standard output, or what it said.
fn git(root: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, TreeError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TreeError::Git(format!("cannot run git (install git): {e}")))?;
    if let (Some(input), Some(mut w)) = (stdin, child.stdin.take()) {
        // a writer thread: git answers while it reads (no pipe deadlock)
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    let out = child
        .wait_with_output()
        .map_err(|e| TreeError::Git(format!("git: {e}")))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(TreeError::Git(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// The files below `dir` in commit `rev` of the repository holding `root`.
fn git_files(root: &Path, rev: &str, dir: &str) -> Result<Vec<TreeFile>, TreeError> {
    if rev.is_empty()
        || rev.starts_with('-')
        || rev.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(TreeError::NoCommit(format!(
            "`{rev}` is not a name git accepts for a commit"
        )));
    }
    let commit = match git(
        root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ],
        None,
    ) {
        Ok(out) => String::from_utf8_lossy(&out).trim().to_string(),
        Err(TreeError::Git(said)) if said.contains("not a git repository") => {
            return Err(TreeError::Git(format!(
                "{} is not in a git repository",
                root.display()
            )))
        }
        Err(TreeError::Git(_)) => {
            return Err(TreeError::NoCommit(format!(
                "no commit `{rev}` in the repository"
            )))
        }
        Err(e) => return Err(e),
    };
    let listing = git(
        root,
        &["ls-tree", "-r", "-z", &commit, "--", &format!("{dir}/")],
        None,
    )?;
    let prefix = format!("{dir}/");
    let mut entries = Vec::new();
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, path)) = entry.split_once('\t') else {
            continue;
        };
        let mut meta = meta.split(' ');
        let (mode, kind, sha) = (
            meta.next().unwrap_or(""),
            meta.next().unwrap_or(""),
            meta.next().unwrap_or(""),
        );
        let rel = path.strip_prefix(&prefix).unwrap_or(path).to_string();
        match (mode, kind) {
            ("100644", "blob") | ("100755", "blob") => entries.push((rel, sha.to_string(), mode == "100755")),
            ("120000", _) => {
                return Err(TreeError::Git(format!(
                    "`{rev}` holds `{rel}`, a symbolic link: a release from git takes files only"
                )))
            }
            _ => {
                return Err(TreeError::Git(format!(
                    "`{rev}` holds `{rel}`, a {kind} (a submodule?): a release from git takes files only"
                )))
            }
        }
    }
    if entries.is_empty() {
        return Err(TreeError::NotADirectory);
    }
    // Every blob in one `git cat-file --batch`: "SHA blob SIZE\nBYTES\n" each.
    let mut ask = String::new();
    for (_, sha, _) in &entries {
        ask.push_str(sha);
        ask.push('\n');
    }
    let batch = git(root, &["cat-file", "--batch"], Some(ask.as_bytes()))?;
    let mut out = Vec::with_capacity(entries.len());
    let mut at = 0;
    for (path, sha, executable) in entries {
        let header_end = batch[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|i| at + i)
            .ok_or_else(|| TreeError::Git("git cat-file: short answer".into()))?;
        let header = String::from_utf8_lossy(&batch[at..header_end]).to_string();
        let size: usize = header
            .strip_prefix(&format!("{sha} blob "))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| TreeError::Git(format!("git cat-file: unexpected {header:?}")))?;
        let start = header_end + 1;
        let end = start + size;
        if end > batch.len() {
            return Err(TreeError::Git("git cat-file: short answer".into()));
        }
        out.push(TreeFile {
            path,
            bytes: batch[start..end].to_vec(),
            executable,
        });
        at = end + 1;
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

impl Loader for FsLoader {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            out.push(e?.path());
        }
        Ok(out)
    }
    fn read_tree(&self, dir: &Path) -> Result<Vec<(String, String)>, (PathBuf, io::Error)> {
        fn walk(
            root: &Path,
            dir: &Path,
            out: &mut Vec<(String, String)>,
        ) -> Result<(), (PathBuf, io::Error)> {
            let entries = std::fs::read_dir(dir).map_err(|e| (dir.to_path_buf(), e))?;
            let mut paths = Vec::new();
            for entry in entries {
                paths.push(entry.map_err(|e| (dir.to_path_buf(), e))?.path());
            }
            paths.sort();
            for path in paths {
                if path.is_dir() {
                    walk(root, &path, out)?;
                } else {
                    let text = std::fs::read_to_string(&path).map_err(|e| (path.clone(), e))?;
                    out.push((relative(root, &path), text));
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        if dir.exists() {
            walk(dir, dir, &mut out)?;
        }
        Ok(out)
    }
    fn read_git_files(
        &self,
        root: &Path,
        rev: &str,
        dir: &str,
    ) -> Result<Vec<TreeFile>, TreeError> {
        git_files(root, rev, dir)
    }
    fn read_files(&self, dir: &Path, inside: &Path) -> Result<Vec<TreeFile>, TreeError> {
        let inside = std::fs::canonicalize(inside).map_err(|e| TreeError::Io(inside.into(), e))?;
        let real = match std::fs::canonicalize(dir) {
            Ok(r) if r.is_dir() => r,
            Ok(_) => return Err(TreeError::NotADirectory),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(TreeError::NotADirectory),
            Err(e) => return Err(TreeError::Io(dir.into(), e)),
        };
        if !real.starts_with(&inside) {
            return Err(TreeError::Escapes {
                link: String::new(),
                target: real,
            });
        }
        let mut out = Vec::new();
        FsLoader::walk_files(&real, "", &inside, 0, &mut out)?;
        Ok(out)
    }
}

impl FsLoader {
    fn walk_files(
        dir: &Path,
        rel: &str,
        inside: &Path,
        depth: usize,
        out: &mut Vec<TreeFile>,
    ) -> Result<(), TreeError> {
        if depth > MAX_TREE_DEPTH {
            return Err(TreeError::TooDeep(rel.to_string()));
        }
        let io = |p: &Path, e| TreeError::Io(p.to_path_buf(), e);
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            names.push(e.map_err(|e| io(dir, e))?.file_name());
        }
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let r = match rel {
                "" => name.to_string_lossy().into_owned(),
                _ => format!("{rel}/{}", name.to_string_lossy()),
            };
            let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
            let real = if meta.file_type().is_symlink() {
                let target = std::fs::canonicalize(&path).map_err(|e| io(&path, e))?;
                if !target.starts_with(inside) {
                    // What the link says, not where it lands (same on every machine).
                    let target = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
                    return Err(TreeError::Escapes { link: r, target });
                }
                target
            } else {
                path.clone()
            };
            let meta = std::fs::metadata(&real).map_err(|e| io(&path, e))?;
            if meta.is_dir() {
                FsLoader::walk_files(&real, &r, inside, depth + 1, out)?;
            } else if meta.is_file() {
                use std::os::unix::fs::PermissionsExt;
                let bytes = std::fs::read(&real).map_err(|e| io(&path, e))?;
                out.push(TreeFile {
                    path: r,
                    bytes,
                    executable: meta.permissions().mode() & 0o111 != 0,
                });
            }
        }
        Ok(())
    }
}

/// In-memory files (tests, fuzzing, benchmarks).
#[derive(Default)]
pub struct MemLoader {
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Loader for MemLoader {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .get(&normalize(path))
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
    fn is_dir(&self, path: &Path) -> bool {
        let p = normalize(path);
        !self.files.contains_key(&p) && self.files.keys().any(|k| k.starts_with(&p))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let d = normalize(dir);
        Ok(self
            .files
            .keys()
            .filter(|k| k.parent() == Some(d.as_path()))
            .cloned()
            .collect())
    }
    fn read_tree(&self, dir: &Path) -> Result<Vec<(String, String)>, (PathBuf, io::Error)> {
        let d = normalize(dir);
        let mut out = Vec::new();
        // Sorted by path (components), as a sorted directory walk finds them.
        for (path, bytes) in &self.files {
            if *path == d || !path.starts_with(&d) {
                continue;
            }
            let text = String::from_utf8(bytes.clone()).map_err(|_| {
                let e = io::Error::new(
                    io::ErrorKind::InvalidData,
                    "stream did not contain valid UTF-8",
                );
                (path.clone(), e)
            })?;
            out.push((relative(&d, path), text));
        }
        Ok(out)
    }
    fn read_files(&self, dir: &Path, _inside: &Path) -> Result<Vec<TreeFile>, TreeError> {
        if !self.is_dir(dir) {
            return Err(TreeError::NotADirectory);
        }
        let d = normalize(dir);
        Ok(self
            .files
            .iter()
            .filter(|(p, _)| p.starts_with(&d) && **p != d)
            .map(|(p, b)| TreeFile {
                path: relative(&d, p),
                bytes: b.clone(),
                executable: false,
            })
            .collect())
    }
}

/// `path` relative to `root`, with `/` separators.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Lexically normalise `a/./b/../c` to `a/c` (no filesystem access).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

/// Largest source file accepted (bytes).
pub const MAX_FILE: usize = 64 * 1024 * 1024;

/// Everything loaded: sources and parsed files, user files first (in load order).
pub struct Loaded {
    pub sources: SourceMap,
    pub files: Vec<(FileId, ast::File)>,
    pub diags: Vec<Diag>,
    /// The directory of the root (for templates/ overrides).
    pub root_dir: PathBuf,
    /// Every file of the user's that exists (the root's and those imported, not
    /// `std/`), normalised, in the order they were reached: what `infra fmt` formats.
    pub user_files: Vec<PathBuf>,
}

enum Origin {
    User(PathBuf),
    Std(String),
}

struct State<'a> {
    loader: &'a dyn Loader,
    sources: SourceMap,
    files: Vec<(FileId, ast::File)>,
    diags: Vec<Diag>,
    /// Loaded file keys (normalised path or `std/NAME`) -> file id.
    loaded: BTreeMap<String, FileId>,
    /// Import stack for cycle detection: (key, span of the import that led here).
    stack: Vec<(String, Option<Span>)>,
    user_files: Vec<PathBuf>,
}

/// Load the root (a `.infra` file, or a directory of them) and every import.
pub fn load(root: &Path, loader: &dyn Loader) -> Loaded {
    let mut st = State {
        loader,
        sources: SourceMap::new(),
        files: Vec::new(),
        diags: Vec::new(),
        loaded: BTreeMap::new(),
        stack: Vec::new(),
        user_files: Vec::new(),
    };
    let root = normalize(root);
    let root_dir;
    if loader.is_dir(&root) {
        root_dir = root.clone();
        match loader.list(&root) {
            Ok(mut entries) => {
                entries.retain(|p| p.extension().is_some_and(|e| e == "infra"));
                entries.sort();
                if entries.is_empty() {
                    st.diags.push(
                        Diag::error(
                            codes::E0305,
                            format!("no `.infra` files in `{}`", root.display()),
                        )
                        .help("point `infra` at a directory containing your configuration, e.g. `examples/accounting`"),
                    );
                }
                for p in entries {
                    st.load_file(Origin::User(normalize(&p)), None);
                }
            }
            Err(e) => st.diags.push(
                Diag::error(
                    codes::E0301,
                    format!("cannot read directory `{}`: {e}", root.display()),
                )
                .help("check the path and its permissions"),
            ),
        }
    } else {
        root_dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
        st.load_file(Origin::User(root), None);
    }
    // The prelude is implicitly imported by everyone.
    st.load_file(Origin::Std(crate::stdlib::PRELUDE.to_string()), None);
    Loaded {
        sources: st.sources,
        files: st.files,
        diags: st.diags,
        root_dir,
        user_files: st.user_files,
    }
}

impl State<'_> {
    fn load_file(&mut self, origin: Origin, via: Option<Span>) {
        let key = match &origin {
            Origin::User(p) => p.display().to_string(),
            Origin::Std(n) => format!("std/{n}"),
        };
        if let Some(pos) = self.stack.iter().position(|(k, _)| *k == key) {
            // An import cycle: report it at the import that closes the cycle.
            let mut chain: Vec<String> = self.stack[pos..].iter().map(|(k, _)| k.clone()).collect();
            chain.push(key.clone());
            let mut d = Diag::error(codes::E0302, format!("import cycle: {}", chain.join(" → ")))
                .help("imports must not form a cycle; move the shared declarations into a third file that both import");
            if let Some(span) = via {
                d = d.at(span, "this import closes the cycle");
            }
            for (_, s) in self.stack[pos + 1..].iter() {
                if let Some(s) = s {
                    d = d.with(*s, "imported here");
                }
            }
            self.diags.push(d);
            return;
        }
        if self.loaded.contains_key(&key) {
            return;
        }
        let text = match &origin {
            Origin::Std(name) => match crate::stdlib::module(name) {
                Some(t) => t.to_string(),
                None => {
                    let mut d = Diag::error(
                        codes::E0301,
                        format!("no standard library module `std/{name}`"),
                    );
                    if let Some(s) = via {
                        d = d.at(s, "imported here");
                    }
                    let names: Vec<&str> = crate::stdlib::modules().map(|(n, _)| n).collect();
                    d = match crate::diag::suggest(name, names.iter().copied()) {
                        Some(s) => d.help(format!("did you mean `std/{s}`?")),
                        None => d.help(format!(
                            "available modules: {}",
                            names
                                .iter()
                                .map(|n| format!("std/{n}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    };
                    self.diags.push(d);
                    return;
                }
            },
            Origin::User(path) => match self.loader.read(path) {
                Ok(bytes) if bytes.len() > MAX_FILE => {
                    self.user_files.push(path.clone());
                    let mut d = Diag::error(
                        codes::E0304,
                        format!(
                            "`{}` is too large ({} bytes, at most {MAX_FILE})",
                            path.display(),
                            bytes.len()
                        ),
                    )
                    .help("split the configuration into several files");
                    if let Some(s) = via {
                        d = d.at(s, "imported here");
                    }
                    self.diags.push(d);
                    return;
                }
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(t) => {
                        self.user_files.push(path.clone());
                        t
                    }
                    Err(e) => {
                        self.user_files.push(path.clone());
                        let valid = e.utf8_error().valid_up_to();
                        let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                        // Point at the first bad byte (it became U+FFFD, 3 bytes, in the lossy text).
                        let start = valid;
                        let id = self.sources.add(key.clone(), lossy);
                        self.loaded.insert(key, id);
                        self.diags.push(
                            Diag::error(codes::E0303, format!("`{}` is not valid UTF-8", path.display()))
                                .at(Span::new(id, start, start + 3), "invalid byte here")
                                .help("infra files must be UTF-8: re-encode it, e.g. `iconv -f LATIN1 -t UTF-8`"),
                        );
                        return;
                    }
                },
                Err(e) => {
                    let mut d = Diag::error(
                        codes::E0301,
                        format!("cannot read `{}`: {}", path.display(), io_reason(&e)),
                    );
                    if let Some(s) = via {
                        d = d.at(s, "imported here").help(
                            "import paths are relative to the importing file; standard modules start with `std/`",
                        );
                    } else {
                        d = d.help("check the path you gave to infra");
                    }
                    self.diags.push(d);
                    return;
                }
            },
        };
        let id = self.sources.add(key.clone(), text);
        self.loaded.insert(key.clone(), id);
        let (file, diags) = match &origin {
            Origin::Std(_) => parse_std(&key, id, &self.sources.get(id).text),
            Origin::User(_) => syntax::parse(id, &self.sources.get(id).text),
        };
        self.diags.extend(diags);
        self.stack.push((key, via));
        let dir = match &origin {
            Origin::User(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            Origin::Std(_) => PathBuf::new(),
        };
        let is_std = matches!(origin, Origin::Std(_));
        for item in &file.items {
            if let ast::Item::Import(imp) = item {
                let Some(target) = imp.path.as_plain() else {
                    self.diags.push(
                        Diag::error(codes::E0306, "import paths cannot use interpolation")
                            .at(imp.path.span, "interpolated import path")
                            .help("write the path literally, e.g. `import \"std/postgres\"`"),
                    );
                    continue;
                };
                if let Some(name) = target.strip_prefix("std/") {
                    self.load_file(Origin::Std(name.to_string()), Some(imp.path.span));
                } else if is_std {
                    self.diags.push(
                        Diag::error(
                            codes::E0306,
                            "standard library modules can only import `std/...`",
                        )
                        .at(imp.path.span, "not a standard module"),
                    );
                } else {
                    let p = normalize(&dir.join(target));
                    self.load_file(Origin::User(p), Some(imp.path.span));
                }
            }
        }
        self.stack.pop();
        self.files.push((id, file));
    }
}

/// A standard library module's tree: parsed once per (module, file id) in this
/// process, then copied (an editor's server loads the same modules on every
/// keystroke; parsing is pure, so the copy is the tree a parse would give).
fn parse_std(key: &str, id: FileId, text: &str) -> (ast::File, Vec<Diag>) {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Cache = Mutex<HashMap<(String, FileId), ast::File>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let k = (key.to_string(), id);
    if let Some(f) = cache.lock().ok().and_then(|c| c.get(&k).cloned()) {
        return (f, Vec::new());
    }
    let (file, diags) = syntax::parse(id, text);
    if diags.is_empty() {
        if let Ok(mut c) = cache.lock() {
            c.insert(k, file.clone());
        }
    }
    (file, diags)
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "file not found".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
