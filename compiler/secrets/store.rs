//! The repository's encrypted secrets: `secrets/NAME.age` next to the
//! configuration, one ASCII-armoured age file per secret, each encrypted to every
//! `admin` of the configuration, and `secrets/recipients` (plain text: who the
//! files are encrypted to, so that a failure can name them and `rekey` can say who
//! lost access). One file per secret rather than one file for all: a pull request
//! shows which secret changed, two admins changing different secrets do not
//! conflict, and a plan decrypts only the secrets its hosts use.
//!
//! A file decrypts to `infra-secret 1`, `changed EPOCH`, `by WHO`, an empty line,
//! then the value's bytes. Values are decrypted in memory; nothing here writes a
//! value in plain text.

use crate::diag::Diag;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The store's directory, relative to the configuration.
pub const DIR: &str = "secrets";
const RECIPIENTS: &str = "recipients";
const MAGIC: &str = "infra-secret 1";
/// The largest secret file read (a value is a password or a key, not a disk image).
const MAX_FILE: u64 = 1 << 20;

/// A public key infra can encrypt to.
pub fn parse_recipient(key: &str) -> Result<Box<dyn age::Recipient + Send>, String> {
    let key = key.trim();
    if key.starts_with("age1") {
        key.parse::<age::x25519::Recipient>()
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
            .map_err(|e| format!("not an age recipient ({e})"))
    } else if key.starts_with("ssh-") {
        key.parse::<age::ssh::Recipient>()
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
            .map_err(|e| match e {
                age::ssh::ParseRecipientKeyError::Unsupported(t) => {
                    format!("SSH keys of type {t} are not supported (use ssh-ed25519 or ssh-rsa)")
                }
                age::ssh::ParseRecipientKeyError::RsaModulusTooSmall => {
                    "an RSA key below 2048 bits".to_string()
                }
                _ => "not a valid SSH public key".to_string(),
            })
    } else {
        Err("it starts with neither `ssh-` nor `age1`".to_string())
    }
}

/// A secret's name: lowercase letters, digits, `_` and (not first) `-` (the
/// standard library names keys `share-NAME-key`), 1 to 64 characters: a file
/// name, an environment variable and a word in every message.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0] != b'-'
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

pub fn name_error(name: &str) -> Diag {
    Diag::error(
        "E0743",
        format!("`{name}` is not a secret name: use lowercase letters, digits, `_` and `-`"),
    )
    .help("e.g. `app_pw`, `share-uploads-key`; at most 64 characters, not starting with `-`")
}

/// One decrypted secret.
pub struct Entry {
    pub value: String,
    /// Unix time of the last `infra secrets set` (kept by rekey).
    pub changed: i64,
    pub by: String,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the value
        write!(
            f,
            "Entry {{ changed: {}, by: {:?} }}",
            self.changed, self.by
        )
    }
}

/// The identities of the person running infra: age identity files and
/// unencrypted or passphrase-protected SSH private keys.
pub struct Identities {
    ids: Vec<Box<dyn age::Identity>>,
    /// The files they came from, for messages.
    pub files: Vec<PathBuf>,
}

/// Asks for an SSH key's passphrase: `INFRA_IDENTITY_PASSPHRASE` (passed in by the
/// CLI), else the terminal without echo.
#[derive(Clone)]
struct Passphrase(Option<String>);

impl age::Callbacks for Passphrase {
    fn display_message(&self, _message: &str) {}
    fn confirm(&self, _m: &str, _y: &str, _n: Option<&str>) -> Option<bool> {
        None
    }
    fn request_public_string(&self, _d: &str) -> Option<String> {
        None
    }
    fn request_passphrase(&self, description: &str) -> Option<age::secrecy::SecretString> {
        if let Some(p) = &self.0 {
            return Some(p.clone().into());
        }
        rpassword::prompt_password(format!("{description}: "))
            .ok()
            .map(Into::into)
    }
}

impl Identities {
    /// The identities in `files` (each an age identity file or an SSH private key).
    /// A file readable by group or others, unreadable or holding no key is an error:
    /// a key anyone on the machine can read is not a key.
    pub fn load(files: &[PathBuf], passphrase: Option<String>) -> Result<Identities, Box<Diag>> {
        use std::os::unix::fs::PermissionsExt;
        let mut ids: Vec<Box<dyn age::Identity>> = Vec::new();
        for f in files {
            let bad =
                |why: String| Diag::error("E0742", format!("identity {}: {why}", f.display()));
            let meta = std::fs::metadata(f).map_err(|e| bad(format!("cannot read it: {e}")))?;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(Box::new(
                    bad(format!(
                        "readable by others (mode {:04o})",
                        meta.permissions().mode() & 0o7777
                    ))
                    .help(format!("chmod 600 {}", f.display())),
                ));
            }
            let text =
                std::fs::read_to_string(f).map_err(|e| bad(format!("cannot read it: {e}")))?;
            if text.contains("AGE-SECRET-KEY-") {
                let file = age::IdentityFile::from_buffer(text.as_bytes())
                    .map_err(|e| bad(format!("not an age identity file: {e}")))?;
                let found = file
                    .into_identities()
                    .map_err(|e| bad(format!("not an age identity file: {e}")))?;
                if found.is_empty() {
                    return Err(Box::new(bad("holds no age identity".into())));
                }
                ids.extend(found.into_iter().map(|i| i as Box<dyn age::Identity>));
                continue;
            }
            let key = age::ssh::Identity::from_buffer(text.as_bytes(), Some(f.display().to_string()))
                .map_err(|_| {
                    bad("neither an age identity file nor an SSH private key".into()).help(
                        "give a private key (~/.ssh/id_ed25519, not the .pub) or an age identity (AGE-SECRET-KEY-...)",
                    )
                })?;
            if let age::ssh::Identity::Unsupported(_) = &key {
                return Err(Box::new(
                    bad("an SSH key type infra cannot decrypt with".into())
                        .help("use an ssh-ed25519 or ssh-rsa key, or an age identity"),
                ));
            }
            ids.push(Box::new(key.with_callbacks(Passphrase(passphrase.clone()))));
        }
        Ok(Identities {
            ids,
            files: files.to_vec(),
        })
    }

    /// The identities of one age X25519 key (tests, `infra secrets` itself).
    pub fn from_age(key: age::x25519::Identity) -> Identities {
        Identities {
            ids: vec![Box::new(key)],
            files: Vec::new(),
        }
    }

    fn describe(&self) -> String {
        if self.files.is_empty() {
            "none".into()
        } else {
            self.files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// The identity files to try when none is given: `~/.config/infra/identity.txt`
/// (age), `~/.ssh/id_ed25519`, `~/.ssh/id_rsa`, those that exist.
pub fn default_identity_files(home: &Path) -> Vec<PathBuf> {
    [
        ".config/infra/identity.txt",
        ".ssh/id_ed25519",
        ".ssh/id_rsa",
    ]
    .iter()
    .map(|p| home.join(p))
    .filter(|p| p.is_file())
    .collect()
}

/// When a secret's file changed, as [`Store::history`] knows without a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub unix: i64,
    /// The commit's author; `None`: the file's time (not committed as it is).
    pub by: Option<String>,
}

/// The store of the configuration in `config_dir`.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

impl Store {
    pub fn of(config_dir: &Path) -> Store {
        Store {
            dir: config_dir.join(DIR),
        }
    }

    /// There is a store: the directory with a secret or a recipients file in it.
    pub fn exists(&self) -> bool {
        self.dir.join(RECIPIENTS).is_file() || self.names().is_ok_and(|n| !n.is_empty())
    }

    /// Where secret `name` is kept.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.age"))
    }

    /// The secrets in the store, sorted (no decryption).
    pub fn names(&self) -> Result<Vec<String>, Box<Diag>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Box::new(Diag::error(
                    "E0740",
                    format!("cannot read {}: {e}", self.dir.display()),
                )))
            }
        };
        let mut names = Vec::new();
        for e in rd.flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = f.strip_suffix(".age") {
                if !valid_name(n) {
                    return Err(Box::new(Diag::error(
                        "E0740",
                        format!("{}: `{n}` is not a secret name", self.file(n).display()),
                    )
                    .help("secret files are named NAME.age with NAME of lowercase letters, digits and `_`: rename or remove it")));
                }
                names.push(n.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// When secret `name`'s file last changed, without decrypting it: its last
    /// commit (unix time, author) when git has it as committed, else the file's
    /// modification time with no author (not in git, or changed since).
    pub fn history(&self, name: &str) -> Option<Changed> {
        let file = self.file(name);
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(&self.dir)
                .args(args)
                .arg(format!("{name}.age"))
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        // clean and tracked: `status` prints nothing for it, `log` a commit
        if git(&["status", "--porcelain", "--"]).is_some_and(|s| s.is_empty()) {
            if let Some(line) = git(&["log", "-1", "--format=%ct%x09%an", "--"]) {
                if let Some((t, who)) = line.split_once('\t') {
                    if let Ok(t) = t.parse() {
                        return Some(Changed {
                            unix: t,
                            by: Some(who.to_string()),
                        });
                    }
                }
            }
        }
        let t = std::fs::metadata(&file).ok()?.modified().ok()?;
        let unix = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
        Some(Changed { unix, by: None })
    }

    /// Who the files were last encrypted to: admin name -> key.
    pub fn recipients(&self) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.dir.join(RECIPIENTS))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (n, k) = l.split_once(' ')?;
                Some((n.to_string(), k.trim().to_string()))
            })
            .collect()
    }

    /// Decrypt secret `name`.
    pub fn read(&self, name: &str, ids: &Identities) -> Result<Entry, Box<Diag>> {
        if !valid_name(name) {
            return Err(Box::new(name_error(name)));
        }
        let path = self.file(name);
        let corrupt = |why: String| {
            Diag::error("E0740", format!("{}: {why}", path.display())).help(format!(
                "restore it from git (`git checkout -- {}`), or set the secret again: infra secrets set {name}",
                path.display()
            ))
        };
        let f = std::fs::File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Diag::error(
                    "E0730",
                    format!(
                        "secret `{name}` is not in the store ({})",
                        self.dir.display()
                    ),
                )
                .help(format!("infra secrets set {name}"))
            } else {
                corrupt(format!("cannot read it: {e}"))
            }
        })?;
        let mut bytes = Vec::new();
        f.take(MAX_FILE)
            .read_to_end(&mut bytes)
            .map_err(|e| corrupt(format!("cannot read it: {e}")))?;
        let reader = age::armor::ArmoredReader::new(bytes.as_slice());
        let dec = age::Decryptor::new(reader)
            .map_err(|e| corrupt(format!("not an age file, or truncated ({e})")))?;
        let mut plain = Vec::new();
        match dec.decrypt(ids.ids.iter().map(|i| i.as_ref())) {
            Ok(mut r) => r
                .read_to_end(&mut plain)
                .map_err(|e| corrupt(format!("truncated or altered ({e})")))?,
            Err(age::DecryptError::NoMatchingKeys) => {
                let who: Vec<String> = self.recipients().into_keys().collect();
                return Err(Box::new(Diag::error(
                    "E0741",
                    format!(
                        "none of your identities can decrypt {}; it is encrypted to: {}",
                        path.display(),
                        if who.is_empty() { "(no recipients file)".into() } else { who.join(", ") }
                    ),
                )
                .help(format!(
                    "your identities: {} — give yours with --identity FILE (or INFRA_IDENTITY; a passphrase-protected key needs its passphrase: a terminal or INFRA_IDENTITY_PASSPHRASE), or ask an admin who can decrypt to add your key (`admin NAME {{ key = \"...\" }}`) and run `infra secrets rekey`",
                    ids.describe()
                ))));
            }
            Err(age::DecryptError::KeyDecryptionFailed) => {
                return Err(Box::new(
                    Diag::error(
                        "E0742",
                        format!(
                            "cannot unlock your SSH key to decrypt {}: wrong passphrase?",
                            path.display()
                        ),
                    )
                    .help(
                        "give the key's passphrase (INFRA_IDENTITY_PASSPHRASE, or at the prompt)",
                    ),
                ))
            }
            Err(e) => return Err(Box::new(corrupt(format!("cannot be decrypted ({e})")))),
        };
        let text = String::from_utf8(plain).map_err(|_| corrupt("not UTF-8 inside".into()))?;
        let (head, value) = text
            .split_once("\n\n")
            .ok_or_else(|| corrupt("not an infra secret inside".into()))?;
        let mut lines = head.lines();
        if lines.next() != Some(MAGIC) {
            return Err(Box::new(corrupt("not an infra secret inside".into())));
        }
        let mut entry = Entry {
            value: value.to_string(),
            changed: 0,
            by: String::new(),
        };
        for l in lines {
            if let Some(t) = l.strip_prefix("changed ") {
                entry.changed = t.parse().unwrap_or(0);
            } else if let Some(b) = l.strip_prefix("by ") {
                entry.by = b.to_string();
            }
        }
        Ok(entry)
    }

    /// Encrypt `entry` to every admin and write it as secret `name`, then the
    /// recipients file.
    pub fn write(
        &self,
        name: &str,
        entry: &Entry,
        admins: &[crate::resolve::Admin],
    ) -> Result<(), Box<Diag>> {
        self.encrypt(name, entry, admins)?;
        self.write_recipients(admins)
    }

    /// Encrypt `entry` to every admin into `NAME.age` (a temporary file renamed
    /// over the old one: never half a file).
    fn encrypt(
        &self,
        name: &str,
        entry: &Entry,
        admins: &[crate::resolve::Admin],
    ) -> Result<(), Box<Diag>> {
        if !valid_name(name) {
            return Err(Box::new(name_error(name)));
        }
        if admins.is_empty() {
            return Err(Box::new(no_admins()));
        }
        let fail = |why: String| Diag::error("E0747", why);
        let keys: Vec<Box<dyn age::Recipient + Send>> = admins
            .iter()
            .map(|a| parse_recipient(&a.key.value))
            .collect::<Result<_, _>>()
            .map_err(|e| fail(format!("an admin key cannot be used: {e}")))?;
        let plain = format!(
            "{MAGIC}\nchanged {}\nby {}\n\n{}",
            entry.changed, entry.by, entry.value
        );
        let enc =
            age::Encryptor::with_recipients(keys.iter().map(|k| k.as_ref() as &dyn age::Recipient))
                .map_err(|e| fail(format!("cannot encrypt to the admins' keys: {e}")))?;
        let mut out = Vec::new();
        let armored =
            age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                .map_err(|e| fail(e.to_string()))?;
        let mut w = enc.wrap_output(armored).map_err(|e| fail(e.to_string()))?;
        w.write_all(plain.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        w.finish()
            .and_then(|a| a.finish())
            .map_err(|e| fail(e.to_string()))?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", self.dir.display())))?;
        let path = self.file(name);
        let tmp = self.dir.join(format!(".{name}.age.tmp"));
        std::fs::write(&tmp, &out)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                fail(format!("cannot write {}: {e}", path.display()))
            })?;
        Ok(())
    }

    fn write_recipients(&self, admins: &[crate::resolve::Admin]) -> Result<(), Box<Diag>> {
        let mut text = String::from(
            "# who secrets/*.age are encrypted to (written by infra secrets; not secret)\n",
        );
        for a in admins {
            text.push_str(&format!("{} {}\n", a.name.value, a.key.value));
        }
        let path = self.dir.join(RECIPIENTS);
        std::fs::write(&path, text).map_err(|e| {
            Box::new(Diag::error(
                "E0747",
                format!("cannot write {}: {e}", path.display()),
            ))
        })
    }

    /// Remove secret `name`; false when it was not there.
    pub fn remove(&self, name: &str) -> Result<bool, Box<Diag>> {
        if !valid_name(name) {
            return Err(Box::new(name_error(name)));
        }
        match std::fs::remove_file(self.file(name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Box::new(Diag::error(
                "E0747",
                format!("cannot remove {}: {e}", self.file(name).display()),
            ))),
        }
    }

    /// Re-encrypt every secret to `admins` (decrypting each with `ids` first: all or
    /// nothing is rewritten). Returns the names of the recipients removed.
    pub fn rekey(
        &self,
        ids: &Identities,
        admins: &[crate::resolve::Admin],
    ) -> Result<Vec<String>, Box<Diag>> {
        if admins.is_empty() {
            return Err(Box::new(no_admins()));
        }
        let names = self.names()?;
        let mut entries = Vec::new();
        for n in &names {
            entries.push((n, self.read(n, ids)?));
        }
        let before = self.recipients();
        for (n, e) in &entries {
            self.encrypt(n, e, admins)?;
        }
        self.write_recipients(admins)?;
        Ok(before
            .into_iter()
            .filter(|(name, key)| {
                !admins
                    .iter()
                    .any(|a| &a.name.value == name && &a.key.value == key)
            })
            .map(|(name, _)| name)
            .collect())
    }
}

fn no_admins() -> Diag {
    Diag::error("E0747", "no `admin` in the configuration: nobody to encrypt the secrets to").help(
        "add one block per person allowed to apply, e.g. `admin alice { key = \"ssh-ed25519 AAAA... alice@laptop\" }` (the line of ~/.ssh/id_ed25519.pub)",
    )
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests;
