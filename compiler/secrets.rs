//! Secret values: they come from the repository's encrypted store
//! (`secrets/NAME.age`, [`store`]), a git-ignored `secrets.env` or environment
//! variables `INFRA_SECRET_<NAME>`, replace the placeholders of the build only at the
//! last moment before upload, and are never printed.
//!
//! `secrets.env` format: one `name=value` per line, `#` comments, and `name=@path` to
//! read a value (e.g. an SSH private key) from a file, relative to the secrets file.

pub mod store;

use crate::placeholder::Placeholder;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Why a text's secrets cannot be filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubstError {
    /// These secrets have no value.
    Missing(BTreeSet<String>),
    /// This value cannot be written where its placeholder is (a single quote
    /// in an env file, ...).
    Unencodable { name: String, why: &'static str },
}

#[derive(Default, Clone)]
pub struct Secrets {
    values: BTreeMap<String, String>,
    /// Names whose value came from the encrypted store: never written to a file.
    from_store: BTreeSet<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values.
        f.debug_list().entries(self.values.keys()).finish()
    }
}

/// The environment variable that holds secret `name`.
pub fn env_var(name: &str) -> String {
    format!(
        "INFRA_SECRET_{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

impl Secrets {
    pub fn new() -> Secrets {
        Secrets::default()
    }

    pub fn insert(&mut self, name: &str, value: String) {
        self.values.insert(name.to_string(), value);
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Parse a secrets file. Errors name the line.
    pub fn parse_file(path: &Path) -> Result<Secrets, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut s = Secrets::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!(
                    "{}:{}: expected `name=value`",
                    path.display(),
                    n + 1
                ));
            };
            let k = k.trim();
            let v = if let Some(file) = v.strip_prefix('@') {
                let p = dir.join(file.trim());
                std::fs::read_to_string(&p).map_err(|e| {
                    format!(
                        "{}:{}: cannot read {}: {e}",
                        path.display(),
                        n + 1,
                        p.display()
                    )
                })?
            } else {
                v.to_string()
            };
            s.insert(k, v);
        }
        Ok(s)
    }

    /// Secrets from `file` (if it exists), overridden by the environment, for `names`.
    pub fn load(file: Option<&Path>, names: &BTreeSet<String>) -> Result<Secrets, String> {
        let mut s = match file {
            Some(f) if f.exists() => Secrets::parse_file(f)?,
            _ => Secrets::new(),
        };
        for name in names {
            if let Ok(v) = std::env::var(env_var(name)) {
                s.insert(name, v);
            }
        }
        Ok(s)
    }

    /// Replace every placeholder in `text`, each value written in its
    /// placeholder's encoding.
    pub fn substitute(&self, text: &str) -> Result<String, SubstError> {
        let found = Placeholder::all(text);
        let missing: BTreeSet<String> = found
            .iter()
            .filter(|(_, p)| !self.values.contains_key(p.name))
            .map(|(_, p)| p.name.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(SubstError::Missing(missing));
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (range, p) in found {
            out.push_str(&text[at..range.start]);
            let v =
                p.encoding
                    .encode(&self.values[p.name])
                    .map_err(|why| SubstError::Unencodable {
                        name: p.name.to_string(),
                        why,
                    })?;
            out.push_str(&v);
            at = range.end;
        }
        out.push_str(&text[at..]);
        Ok(out)
    }

    /// Make up values for missing secrets (for the lab only): a random password, or a
    /// fresh ed25519 private key for names ending in `key`.
    pub fn generate_missing(&mut self, names: &BTreeSet<String>) -> Result<(), String> {
        for n in names {
            if self.values.contains_key(n) {
                continue;
            }
            let v = if n.ends_with("key") {
                ed25519_key()?
            } else {
                random_password(24)?
            };
            self.values.insert(n.clone(), v);
        }
        Ok(())
    }

    /// `name=value` lines (keys as `@file` are written inline with a trailing newline kept
    /// by using a file per key under `dir`).
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(path)?;
        for (k, v) in self
            .values
            .iter()
            .filter(|(k, _)| !self.from_store.contains(*k))
        {
            if v.contains('\n') {
                let p = dir.join(format!("{k}.secret"));
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .mode(0o600)
                    .open(&p)?
                    .write_all(v.as_bytes())?;
                writeln!(f, "{k}=@{k}.secret")?;
            } else {
                writeln!(f, "{k}={v}")?;
            }
        }
        Ok(())
    }
}

/// Where a command's secret values come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A lab (`--lab`): the store's values when there is a store, else its state
    /// directory's secrets.env; missing values are generated and kept there (never
    /// in the store, and never a store value).
    Lab {
        name: String,
        state_dir: std::path::PathBuf,
        config_dir: std::path::PathBuf,
        store: Option<store::Store>,
    },
    /// `INFRA_SECRET_*`, the secrets file (given, or secrets.env next to the
    /// configuration), then the store: every name must have a value.
    File {
        file: std::path::PathBuf,
        store: Option<store::Store>,
    },
}

/// How to decrypt the store: identity files (given, `INFRA_IDENTITY`, or the
/// defaults) and an SSH key's passphrase (`INFRA_IDENTITY_PASSPHRASE`), read by
/// the CLI and passed in.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub files: Vec<std::path::PathBuf>,
    pub passphrase: Option<String>,
}

/// Fill `s` with the store's values of `names` it does not have yet (decrypting
/// only those), marked as the store's.
fn from_store(
    s: &mut Secrets,
    st: &store::Store,
    names: &BTreeSet<String>,
    keys: &Keys,
) -> Result<(), Vec<crate::diag::Diag>> {
    let stored: BTreeSet<String> = st.names().map_err(|d| vec![*d])?.into_iter().collect();
    let wanted: Vec<&String> = names
        .iter()
        .filter(|n| s.get(n).is_none() && stored.contains(*n))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let ids =
        store::Identities::load(&keys.files, keys.passphrase.clone()).map_err(|d| vec![*d])?;
    for n in wanted {
        let e = st.read(n, &ids).map_err(|d| vec![*d])?;
        s.insert(n, e.value);
        s.from_store.insert(n.clone());
    }
    Ok(())
}

/// A plaintext secrets file that git would commit (inside a work tree, not
/// ignored): E0744; one readable by group or others: E0745.
pub fn check_plaintext(file: &Path) -> Vec<crate::diag::Diag> {
    use crate::diag::Diag;
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let Ok(meta) = std::fs::metadata(file) else {
        return out;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        out.push(
            Diag::error(
                "E0745",
                format!(
                    "{} holds secret values and is readable by others (mode {mode:04o})",
                    file.display()
                ),
            )
            .help(format!("chmod 600 {}", file.display())),
        );
    }
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // exit 0: ignored; 1: in a work tree and not ignored; 128: not a repository
    let ignored = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["check-ignore", "-q", "--no-index", "--"])
        .arg(&name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if matches!(ignored.map(|s| s.code()), Ok(Some(1))) {
        out.push(
            Diag::error(
                "E0744",
                format!(
                    "{} holds secret values in plain text inside a git work tree, and git does not ignore it: a commit would publish them",
                    file.display()
                ),
            )
            .help(format!(
                "move the values into the encrypted store (`infra secrets set NAME`, docs/secrets.md) and delete the file, or add `{name}` to .gitignore (if it was ever committed, rotate the values)"
            )),
        );
    }
    out
}

/// The secrets policy of plan and apply: the values of `names` from `source`,
/// or the diagnostics saying what is missing and where to put it.
pub fn gather(
    source: &Source,
    names: &BTreeSet<String>,
    keys: &Keys,
) -> Result<Secrets, Vec<crate::diag::Diag>> {
    use crate::diag::Diag;
    let err = |msg: String, help: String| vec![Diag::error("E0730", msg).help(help)];
    match source {
        Source::Lab {
            name,
            state_dir,
            config_dir,
            store,
        } => {
            if !state_dir.is_dir() {
                return Err(vec![Diag::error(
                    "E0731",
                    format!(
                        "lab {name} is not up ({} does not exist)",
                        state_dir.display()
                    ),
                )
                .help(format!("run `infra lab up {}` first", config_dir.display()))]);
            }
            let file = state_dir.join("secrets.env");
            // the store's values first: they win over the lab's throwaway ones
            let mut s = Secrets::new();
            if let Some(st) = store {
                from_store(&mut s, st, names, keys)?;
            }
            let lab = Secrets::load(Some(&file), names)
                .map_err(|e| err(e, format!("remove {} to start over", file.display())))?;
            for (k, v) in lab.values {
                s.values.entry(k).or_insert(v);
            }
            let before: BTreeSet<String> = s.names().map(str::to_string).collect();
            s.generate_missing(names).map_err(|e| {
                err(
                    format!("cannot generate lab secrets: {e}"),
                    "install openssh-client (ssh-keygen)".into(),
                )
            })?;
            if names.iter().any(|n| !before.contains(n)) {
                s.write_file(&file).map_err(|e| {
                    err(
                        format!("cannot write {}: {e}", file.display()),
                        "check the lab's state directory".into(),
                    )
                })?;
            }
            Ok(s)
        }
        Source::File { file, store } => {
            let plain = check_plaintext(file);
            if !plain.is_empty() {
                return Err(plain);
            }
            let mut s = Secrets::load(Some(file), names)
                .map_err(|e| err(e, "fix the secrets file: one `name=value` per line".into()))?;
            if let Some(st) = store {
                from_store(&mut s, st, names, keys)?;
            }
            let missing: Vec<Diag> = names
                .iter()
                .filter(|n| s.get(n).is_none())
                .map(|n| {
                    let help = if store.is_some() {
                        format!(
                            "add it to the encrypted store: infra secrets set {n} (or set the environment variable {})",
                            env_var(n)
                        )
                    } else {
                        format!(
                            "add it to the encrypted store (infra secrets set {n}, docs/secrets.md), or `{n}=...` to {} (keep it out of git), or set the environment variable {}",
                            file.display(),
                            env_var(n)
                        )
                    };
                    Diag::error("E0730", format!("secret `{n}` has no value")).help(help)
                })
                .collect();
            if missing.is_empty() {
                Ok(s)
            } else {
                Err(missing)
            }
        }
    }
}

/// Which instances use which secret (`secret("NAME")` in a parameter): name ->
/// `kind.instance`s, sorted.
pub fn consumers(model: &crate::resolve::Model) -> BTreeMap<String, Vec<String>> {
    fn walk(v: &crate::resolve::Value, out: &mut Vec<String>) {
        match v {
            crate::resolve::Value::Secret(n) => out.push(n.clone()),
            crate::resolve::Value::List(l) => l.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in &model.instances {
        let mut names = Vec::new();
        for p in &i.params {
            walk(&p.value, &mut names);
        }
        for n in names {
            let e = by.entry(n).or_default();
            if !e.contains(&i.qualified()) {
                e.push(i.qualified());
            }
        }
    }
    by
}

/// `infra check`'s look at the secrets next to a configuration: a plaintext
/// secrets.env git would commit or others can read (errors), a store that cannot
/// be listed (error), a stored secret nothing uses (warning).
pub fn audit(config_dir: &Path, model: &crate::resolve::Model) -> Vec<crate::diag::Diag> {
    use crate::diag::Diag;
    let mut out = check_plaintext(&config_dir.join("secrets.env"));
    let used = consumers(model);
    match store::Store::of(config_dir).names() {
        Err(d) => out.push(*d),
        Ok(names) => {
            for n in names.iter().filter(|n| !used.contains_key(*n)) {
                out.push(
                    Diag::warning(
                        "W0746",
                        format!("secret `{n}` is in the store but nothing uses it"),
                    )
                    .help(format!(
                        "remove it (infra secrets rm {n}) or use it: secret(\"{n}\")"
                    )),
                );
            }
        }
    }
    out
}

/// A strong value for secret `name`: an ed25519 private key (OpenSSH format) for a
/// name ending in `key`, else `len` random letters and digits.
pub fn generate(name: &str, len: usize) -> Result<String, String> {
    if name.ends_with("key") {
        ed25519_key()
    } else {
        random_password(len.clamp(12, 256))
    }
}

/// Secret names used in a text (by their placeholders), sorted.
pub fn placeholders(text: &str) -> BTreeSet<String> {
    Placeholder::names(text)
}

/// A random token (hex): names a switch's rollback unit and its confirmation.
pub fn token() -> String {
    let buf = random_bytes(12).unwrap_or_else(|_| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        (t as u64 ^ u64::from(std::process::id()))
            .to_le_bytes()
            .into_iter()
            .chain([0; 4])
            .collect()
    });
    crate::encode::hex(&buf)
}

fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(buf)
}

fn random_password(len: usize) -> Result<String, String> {
    const ALPHA: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    Ok(random_bytes(len)?
        .iter()
        .map(|b| ALPHA[*b as usize % ALPHA.len()] as char)
        .collect())
}

fn ed25519_key() -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!(
        "infra-key-{}-{}",
        std::process::id(),
        random_password(8)?
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let key = dir.join("id");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "infra", "-f"])
        .arg(&key)
        .status()
        .map_err(|e| format!("cannot run ssh-keygen (install openssh-client): {e}"))?;
    let out = if status.success() {
        std::fs::read_to_string(&key).map_err(|e| e.to_string())
    } else {
        Err("ssh-keygen failed".into())
    };
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_and_reports_missing() {
        let mut s = Secrets::new();
        s.insert("a", "x1".into());
        let t = format!("p={} q={}", Placeholder::new("a"), Placeholder::new("b"));
        assert_eq!(
            s.substitute(&t),
            Err(SubstError::Missing(BTreeSet::from(["b".to_string()])))
        );
        s.insert("b", "y".into());
        assert_eq!(s.substitute(&t).as_deref(), Ok("p=x1 q=y"));
        assert_eq!(format!("{s:?}"), "[\"a\", \"b\"]");
        use crate::placeholder::Encoding;
        s.insert("q", "it's".into());
        let php = format!("'{}'", Placeholder::encoded("q", Encoding::Php));
        assert_eq!(s.substitute(&php).as_deref(), Ok("'it\\'s'"));
        let env = format!("P='{}'", Placeholder::encoded("q", Encoding::Env));
        assert!(
            matches!(s.substitute(&env), Err(SubstError::Unencodable { name, .. }) if name == "q")
        );
    }
}
