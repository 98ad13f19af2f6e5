//! Secret values: they come from outside the repo (environment variables
//! `INFRA_SECRET_<NAME>` or a git-ignored `secrets.env`), replace the placeholders of the
//! build only at the last moment before upload, and are never printed.
//!
//! `secrets.env` format: one `name=value` per line, `#` comments, and `name=@path` to
//! read a value (e.g. an SSH private key) from a file, relative to the secrets file.

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
        for (k, v) in &self.values {
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A lab (`--lab`): its state directory's secrets.env; missing values are
    /// generated and kept there.
    Lab {
        name: String,
        state_dir: std::path::PathBuf,
        config_dir: std::path::PathBuf,
    },
    /// The secrets file (given, or secrets.env next to the configuration) and
    /// `INFRA_SECRET_*`: every name must have a value.
    File(std::path::PathBuf),
}

/// The secrets policy of plan and apply: the values of `names` from `source`,
/// or the diagnostics saying what is missing and where to put it.
pub fn gather(
    source: &Source,
    names: &BTreeSet<String>,
) -> Result<Secrets, Vec<crate::diag::Diag>> {
    use crate::diag::Diag;
    let err = |msg: String, help: String| vec![Diag::error("E0730", msg).help(help)];
    match source {
        Source::Lab {
            name,
            state_dir,
            config_dir,
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
            let mut s = Secrets::load(Some(&file), names)
                .map_err(|e| err(e, format!("remove {} to start over", file.display())))?;
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
        Source::File(file) => {
            let s = Secrets::load(Some(file), names)
                .map_err(|e| err(e, "fix the secrets file: one `name=value` per line".into()))?;
            let missing: Vec<Diag> = names
                .iter()
                .filter(|n| s.get(n).is_none())
                .map(|n| {
                    Diag::error("E0730", format!("secret `{n}` has no value")).help(format!(
                        "add `{n}=...` to {} (keep it out of git), or set the environment variable {}",
                        file.display(),
                        env_var(n)
                    ))
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
