//! `infra secrets`: the repository's encrypted secrets (`secrets/NAME.age`,
//! docs/secrets.md). Values are read from a prompt without echo, standard input or
//! a file, or generated; they are never printed.

use super::{report, MessageFormat};
use crate::diag::Diag;
use crate::secrets::store::{self, Changed, Entry, Identities, Store};
use crate::secrets::Keys;
use crate::source::SourceMap;
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Every secret of the store and of the configuration: which instances use it,
    /// when it was last changed and by whom. Never a value.
    List(Common),
    /// Set a secret, encrypted to every `admin`: the value from standard input (a
    /// prompt without echo on a terminal), `--from-file`, or `--generate`.
    Set {
        /// The secret's name (`[a-z0-9_]`), as in `secret("NAME")`.
        name: String,
        #[command(flatten)]
        common: Common,
        /// Read the value from this file (one trailing newline of a one-line value dropped).
        #[arg(long, value_name = "FILE", conflicts_with = "generate")]
        from_file: Option<PathBuf>,
        /// A strong random value (an ed25519 private key for a name ending in `key`).
        #[arg(long)]
        generate: bool,
        /// With --generate: the password's length.
        #[arg(long, default_value_t = 24, requires = "generate")]
        length: usize,
    },
    /// Edit a secret in $VISUAL / $EDITOR (else vi): the value is written to a
    /// private file in memory (tmpfs: $XDG_RUNTIME_DIR or /dev/shm, never a
    /// disk), encrypted again when the editor exits, and the file removed.
    Edit {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a secret from the store.
    Rm {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Re-encrypt every secret to the configuration's admins (after adding or
    /// removing one); names the secrets a removed admin could read.
    Rekey(Common),
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// The configuration: a directory of `.infra` files (default: current directory).
    pub path: Option<PathBuf>,
    /// Your identity: an SSH private key or an age identity file (repeatable;
    /// default: INFRA_IDENTITY, else ~/.config/infra/identity.txt, ~/.ssh/id_ed25519,
    /// ~/.ssh/id_rsa).
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
}

/// Where the identities come from: `explicit`, else `INFRA_IDENTITY` (colon
/// separated), else the defaults under $HOME; the passphrase from
/// `INFRA_IDENTITY_PASSPHRASE` (else a prompt when one is needed).
pub fn keys(explicit: &[PathBuf]) -> Keys {
    let files = if !explicit.is_empty() {
        explicit.to_vec()
    } else if let Some(v) = std::env::var_os("INFRA_IDENTITY").filter(|v| !v.is_empty()) {
        std::env::split_paths(&v).collect()
    } else {
        std::env::var_os("HOME")
            .map(|h| store::default_identity_files(Path::new(&h)))
            .unwrap_or_default()
    };
    Keys {
        files,
        passphrase: std::env::var("INFRA_IDENTITY_PASSPHRASE").ok(),
    }
}

fn fail(d: impl Into<Box<Diag>>) -> i32 {
    report(&[*d.into()], &SourceMap::new(), MessageFormat::Human);
    1
}

/// The configuration's model and its store (beside the configuration, where plan
/// and apply look); only errors are printed (its warnings are `infra check`'s
/// business).
fn load(c: &Common) -> Result<(crate::resolve::Model, Store), i32> {
    let path = c.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let checked = crate::check(&path, &crate::resolve::FsLoader).map_err(|f| {
        report(&f.diags, &f.sources, MessageFormat::Human);
        1
    })?;
    let st = Store::of(&checked.root_dir);
    Ok((checked.model, st))
}

fn identities(common: &Common) -> Result<Identities, i32> {
    let k = keys(&common.identity);
    if k.files.is_empty() {
        return Err(fail(Diag::error("E0742", "no identity to decrypt the secrets with").help(
            "give your SSH private key or age identity: --identity FILE (or INFRA_IDENTITY); looked for ~/.config/infra/identity.txt, ~/.ssh/id_ed25519, ~/.ssh/id_rsa",
        )));
    }
    Identities::load(&k.files, k.passphrase).map_err(fail)
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "(none)".into()
    } else {
        list.join(", ")
    }
}

pub fn run(cmd: SecretsCommand) -> i32 {
    match cmd {
        SecretsCommand::List(c) => list(&c),
        SecretsCommand::Set {
            name,
            common,
            from_file,
            generate,
            length,
        } => set(&name, &common, from_file.as_deref(), generate, length),
        SecretsCommand::Edit { name, common } => edit(&name, &common),
        SecretsCommand::Rm { name, common } => rm(&name, &common),
        SecretsCommand::Rekey(c) => rekey(&c),
    }
}

fn list(c: &Common) -> i32 {
    let (model, st) = match load(c) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let stored = match st.names() {
        Ok(n) => n,
        Err(d) => return fail(d),
    };
    let used = crate::secrets::consumers(&model);
    // the date inside the encrypted file (set or edit wrote it) when a key opens
    // it; else the file's last commit, or its time when not committed as it is
    let ids = if stored.is_empty() {
        None
    } else {
        let k = keys(&c.identity);
        (!k.files.is_empty())
            .then(|| Identities::load(&k.files, k.passphrase))
            .and_then(Result::ok)
    };
    let mut all: Vec<&String> = stored.iter().chain(used.keys()).collect();
    all.sort();
    all.dedup();
    let width = all.iter().map(|n| n.len()).max().unwrap_or(4).max(4);
    outln!("{:<width$}  {:<34}  CHANGED", "NAME", "USED BY");
    let mut unreadable = 0;
    for n in &all {
        let by = used
            .get(*n)
            .map(|v| v.join(", "))
            .unwrap_or_else(|| "(unused)".into());
        let changed = if !stored.contains(n) {
            "NOT IN THE STORE: infra secrets set ".to_string() + n
        } else {
            match ids.as_ref().map(|ids| st.read(n, ids)) {
                Some(Ok(e)) => format!(
                    "{} by {}",
                    crate::backup::utc(e.changed),
                    if e.by.is_empty() { "?" } else { &e.by }
                ),
                // without a key: what git (or the file) says
                r => {
                    if matches!(r, Some(Err(_))) {
                        unreadable += 1;
                    }
                    match st.history(n) {
                        Some(Changed {
                            unix,
                            by: Some(who),
                        }) => {
                            format!("{} by {who} (commit)", crate::backup::utc(unix))
                        }
                        Some(Changed { unix, by: None }) => {
                            format!("{} (file, not committed)", crate::backup::utc(unix))
                        }
                        None => "?".into(),
                    }
                }
            }
        };
        outln!("{n:<width$}  {by:<34}  {changed}");
    }
    let admins: Vec<String> = model.admins.iter().map(|a| a.name.value.clone()).collect();
    let recipients: Vec<String> = st.recipients().into_keys().collect();
    outln!("\nadmins: {}", names(&admins));
    if !stored.is_empty() {
        outln!("encrypted to: {}", names(&recipients));
        if differs(&model, &st) {
            outln!("the store is not encrypted to exactly the configuration's admins: run `infra secrets rekey`");
        }
    }
    if unreadable > 0 {
        errln!(
            "note: {unreadable} secret(s) could not be decrypted with your identities (--identity FILE)"
        );
    }
    0
}

/// The store's recipients are not the configuration's admins (names and keys).
fn differs(model: &crate::resolve::Model, st: &Store) -> bool {
    let want: std::collections::BTreeMap<String, String> = model
        .admins
        .iter()
        .map(|a| (a.name.value.clone(), a.key.value.clone()))
        .collect();
    want != st.recipients()
}

/// A value read from a file or standard input: one trailing newline of a one-line
/// value is not part of it.
fn trimmed(mut v: String) -> String {
    if v.ends_with('\n') && v.matches('\n').count() == 1 {
        v.pop();
        if v.ends_with('\r') {
            v.pop();
        }
    }
    v
}

fn read_value(
    name: &str,
    from_file: Option<&Path>,
    generate: bool,
    length: usize,
) -> Result<String, Box<Diag>> {
    let bad = |why: String| Diag::error("E0747", why);
    let v = if generate {
        crate::secrets::generate(name, length).map_err(bad)?
    } else if let Some(f) = from_file {
        trimmed(
            std::fs::read_to_string(f)
                .map_err(|e| bad(format!("cannot read {}: {e}", f.display())))?,
        )
    } else if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password(format!("value of {name}: "))
            .map_err(|e| bad(format!("cannot read the value: {e}")))?;
        let b = rpassword::prompt_password(format!("value of {name} again: "))
            .map_err(|e| bad(format!("cannot read the value: {e}")))?;
        if a != b {
            return Err(bad("the two values differ: nothing set".into()).into());
        }
        a
    } else {
        let mut s = String::new();
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut s)
            .map_err(|e| bad(format!("cannot read the value from standard input: {e}")))?;
        trimmed(s)
    };
    if v.is_empty() {
        return Err(bad(format!("empty value for {name}: nothing set"))
            .help("give a value, or --generate one")
            .into());
    }
    Ok(v)
}

fn set(name: &str, c: &Common, from_file: Option<&Path>, generate: bool, length: usize) -> i32 {
    if !store::valid_name(name) {
        return fail(store::name_error(name));
    }
    let (model, st) = match load(c) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match read_value(name, from_file, generate, length) {
        Ok(v) => commit(
            name,
            v,
            &model,
            &st,
            if generate { ", generated" } else { "" },
        ),
        Err(d) => fail(d),
    }
}

/// Encrypt `value` as secret `name` to the configuration's admins and say what
/// uses it.
fn commit(name: &str, value: String, model: &crate::resolve::Model, st: &Store, how: &str) -> i32 {
    let entry = Entry {
        value,
        changed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
        by: std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into()),
    };
    let before = st.names().unwrap_or_default();
    let was = before.iter().any(|x| x == name);
    let stale = !before.is_empty() && differs(model, st);
    if let Err(d) = st.write(name, &entry, &model.admins) {
        return fail(d);
    }
    let admins: Vec<String> = model.admins.iter().map(|a| a.name.value.clone()).collect();
    let users = crate::secrets::consumers(model)
        .remove(name)
        .unwrap_or_default();
    outln!(
        "secret {name} {} in {} (encrypted to {}){how}",
        if was { "changed" } else { "set" },
        st.file(name).display(),
        admins.join(", "),
    );
    match users.len() {
        0 => outln!("nothing uses it yet: secret(\"{name}\") in a parameter"),
        n => outln!(
            "{n} consumer(s): {}; `infra plan` shows what changes on the hosts",
            users.join(", ")
        ),
    }
    if stale {
        errln!("warning: the other secrets are not encrypted to exactly these admins: run `infra secrets rekey`");
    }
    0
}

/// tmpfs's magic number (statfs(2)).
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// A directory in memory to edit a value in: $XDG_RUNTIME_DIR, else /dev/shm,
/// whichever is a tmpfs.
fn memory_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(PathBuf::from("/dev/shm"));
    candidates.into_iter().find(|d| {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c) = std::ffi::CString::new(d.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: statfs writes into the zeroed struct it is given; c is a valid C string.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == TMPFS_MAGIC }
    })
}

/// The file's bytes overwritten, then removed (best effort: tmpfs frees the pages).
fn shred(f: &Path) {
    if let Ok(m) = std::fs::metadata(f) {
        let _ = std::fs::write(f, vec![0u8; m.len() as usize]);
    }
    let _ = std::fs::remove_file(f);
}

fn edit(name: &str, c: &Common) -> i32 {
    if !store::valid_name(name) {
        return fail(store::name_error(name));
    }
    let (model, st) = match load(c) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let bad = |why: String| Diag::error("E0747", why);
    let exists = st.names().unwrap_or_default().iter().any(|n| n == name);
    let old = if exists {
        let ids = match identities(c) {
            Ok(i) => i,
            Err(code) => return code,
        };
        match st.read(name, &ids) {
            Ok(e) => e.value,
            Err(d) => return fail(d),
        }
    } else {
        String::new()
    };
    let Some(mem) = memory_dir() else {
        return fail(
            bad("no directory in memory to edit the value in: neither $XDG_RUNTIME_DIR nor /dev/shm is a tmpfs".into())
                .help(format!("the value would be written to a disk; set it instead: infra secrets set {name} (from a prompt, --from-file or --generate)")),
        );
    };
    let dir = mem.join(format!("infra-secret-{}", crate::secrets::token()));
    let made = {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).create(&dir)
    };
    if let Err(e) = made {
        return fail(bad(format!(
            "cannot make a private directory in {}: {e}",
            mem.display()
        )));
    }
    let file = dir.join(name);
    // one-line values get the newline an editor adds; `trimmed` takes it off again
    let shown = if !old.is_empty() && !old.contains('\n') {
        format!("{old}\n")
    } else {
        old.clone()
    };
    let written = {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .and_then(|mut f| f.write_all(shown.as_bytes()))
    };
    if let Err(e) = written {
        shred(&file);
        let _ = std::fs::remove_dir_all(&dir);
        return fail(bad(format!("cannot write {}: {e}", file.display())));
    }
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "vi".into());
    // through sh, as git runs it: EDITOR may carry arguments ("code --wait")
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("infra-secrets-edit")
        .arg(&file)
        .status();
    let after = std::fs::read_to_string(&file);
    shred(&file);
    // an editor's backup or swap file goes with it
    let _ = std::fs::remove_dir_all(&dir);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            return fail(bad(format!(
                "the editor ({editor}) exited with {s}: {name} not changed"
            )))
        }
        Err(e) => {
            return fail(
                bad(format!(
                    "cannot run the editor ({editor}): {e}: {name} not changed"
                ))
                .help("set VISUAL or EDITOR"),
            )
        }
    }
    let value = match after {
        Ok(v) => trimmed(v),
        Err(e) => {
            return fail(bad(format!(
                "cannot read the edited value back: {e}: {name} not changed"
            )))
        }
    };
    if value.is_empty() {
        return fail(
            bad(format!(
                "empty value for {name}: nothing {}",
                if exists { "changed" } else { "set" }
            ))
            .help(format!("to remove it: infra secrets rm {name}")),
        );
    }
    if exists && value == old {
        outln!("secret {name} unchanged: nothing written");
        return 0;
    }
    commit(name, value, &model, &st, ", edited")
}

fn rm(name: &str, c: &Common) -> i32 {
    let (_, st) = match load(c) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match st.remove(name) {
        Ok(true) => {
            outln!("secret {name} removed from {}", st.dir.display());
            0
        }
        Ok(false) => fail(Diag::error(
            "E0730",
            format!("secret `{name}` is not in the store ({})", st.dir.display()),
        )),
        Err(d) => fail(d),
    }
}

fn rekey(c: &Common) -> i32 {
    let (model, st) = match load(c) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let ids = match identities(c) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let stored = match st.names() {
        Ok(n) => n,
        Err(d) => return fail(d),
    };
    let removed = match st.rekey(&ids, &model.admins) {
        Ok(r) => r,
        Err(d) => return fail(d),
    };
    let admins: Vec<String> = model.admins.iter().map(|a| a.name.value.clone()).collect();
    outln!(
        "{} secret(s) re-encrypted to {}",
        stored.len(),
        admins.join(", ")
    );
    if !removed.is_empty() {
        outln!(
            "no longer recipients: {} — they could read every secret until now; rotate them: {}",
            removed.join(", "),
            stored
                .iter()
                .map(|n| format!("infra secrets set {n} --generate"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        outln!("(then `infra apply`; the old values stay readable to them in git history)");
    }
    0
}
