//! The encrypted store (`infra secrets`, secrets/NAME.age): two admins' real SSH
//! keys (ssh-keygen) each decrypt and a third cannot; `set` from standard input and
//! `--generate`; `list` never shows a value; `rekey` after removing an admin shuts
//! them out; a corrupt file is a clear error; `infra check` refuses a plaintext
//! secrets.env git would commit or others can read, and warns of an unused
//! secret. Lab: plan and apply take the values from the store, and no output,
//! build file or lab file holds a value.

use crate::apply_e2e::{lab_enabled, LabConfig};
use infra::secrets::store::{Identities, Store};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Admins {
    _dir: tempfile::TempDir,
    keys: PathBuf,
}

impl Admins {
    /// alice, bob and carol, each an ssh-ed25519 key pair without passphrase.
    fn new() -> Admins {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().to_path_buf();
        for who in ["alice", "bob", "carol"] {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", who, "-f"])
                .arg(keys.join(who))
                .status()
                .expect("ssh-keygen (openssh-client)");
            assert!(st.success());
        }
        Admins { _dir: dir, keys }
    }

    fn key(&self, who: &str) -> PathBuf {
        self.keys.join(who)
    }

    fn public(&self, who: &str) -> String {
        std::fs::read_to_string(self.keys.join(format!("{who}.pub")))
            .expect("a .pub")
            .trim()
            .to_string()
    }

    /// `admin` blocks for `who`, written next to the configuration.
    fn declare(&self, dir: &Path, who: &[&str]) {
        let text: String = who
            .iter()
            .map(|w| format!("admin {w} {{ key = \"{}\" }}\n", self.public(w)))
            .collect();
        std::fs::write(dir.join("admins.infra"), text).expect("write admins.infra");
    }

    /// A value of the store, as `who` decrypts it.
    fn value(&self, dir: &Path, name: &str, who: &str) -> String {
        let ids = Identities::load(&[self.key(who)], None).expect("identity");
        Store::of(dir).read(name, &ids).expect("decrypts").value
    }
}

/// `infra ARGS` with `stdin` and INFRA_IDENTITY=`who`'s key: (exit code, stdout, stderr).
fn infra(args: &[&str], stdin: &str, identity: Option<&Path>) -> (i32, String, String) {
    infra_env(args, stdin, identity, &[])
}

/// [`infra`] with more environment variables.
fn infra_env(
    args: &[&str],
    stdin: &str,
    identity: Option<&Path>,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infra"));
    cmd.args(args)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .env_remove("INFRA_IDENTITY")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(k) = identity {
        cmd.env("INFRA_IDENTITY", k);
    }
    let mut child = cmd.spawn().expect("runs infra");
    // infra may refuse before it reads stdin (a bad name): its pipe is then closed
    match child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.expect("write stdin"),
    }
    let out = child.wait_with_output().expect("infra ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        flat(&String::from_utf8_lossy(&out.stderr)),
    )
}

/// A diagnostic as one line: miette's wrapping and its box characters undone.
pub(crate) fn flat(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c == '│')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn accounting() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cfg");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/accounting");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&dir)
        .status()
        .expect("cp");
    assert!(st.success());
    (tmp, dir)
}

/// Every secret of the accounting example into the store: app_pw from standard
/// input, the others generated.
fn fill(dir: &Path, a: &Admins) -> Vec<String> {
    let d = dir.to_str().expect("utf-8 path");
    let (code, out, err) = infra(
        &["secrets", "set", "app_pw", d],
        "correct-horse-battery\n",
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("secret app_pw set") && out.contains("encrypted to alice, bob"),
        "{out}"
    );
    assert!(
        out.contains("1 consumer(s): postgres_user.accounting"),
        "{out}"
    );
    for n in ["pg_repl", "share-uploads-key"] {
        let (code, out, err) = infra(&["secrets", "set", n, d, "--generate"], "", None);
        assert_eq!(code, 0, "{out}{err}");
    }
    ["app_pw", "pg_repl", "share-uploads-key"]
        .iter()
        .map(|n| a.value(dir, n, "alice"))
        .collect()
}

fn assert_no_value(what: &str, text: &str, values: &[String]) {
    for v in values {
        // a key: its body lines, not its armour
        for part in v
            .lines()
            .filter(|l| l.len() >= 12 && !l.starts_with("-----"))
        {
            assert!(!text.contains(part), "{what} shows a secret value:\n{text}");
        }
    }
}

#[test]
fn two_admins_decrypt_a_third_cannot_and_rekey_shuts_one_out() {
    let a = Admins::new();
    let (_tmp, dir) = accounting();
    let d = dir.to_str().expect("utf-8 path");
    // nobody to encrypt to yet
    let (code, _, err) = infra(&["secrets", "set", "app_pw", d], "x\n", None);
    assert_eq!(code, 1);
    assert!(
        err.contains("E0747") && err.contains("admin alice"),
        "{err}"
    );

    a.declare(&dir, &["alice", "bob"]);
    let values = fill(&dir, &a);
    assert_eq!(
        values[0], "correct-horse-battery",
        "the trailing newline is not part of it"
    );
    assert!(values[1].len() >= 24);
    assert!(values[2].starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert_eq!(a.value(&dir, "app_pw", "bob"), "correct-horse-battery");

    // list: names, consumers, dates; never a value
    let bob = a.key("bob");
    let (code, out, err) = infra(&["secrets", "list", d], "", Some(&bob));
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "app_pw",
        "postgres_user.accounting",
        "share-uploads-key",
        "share.uploads",
        "encrypted to: alice, bob",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    assert!(out.contains(" UTC by "), "{out}");
    assert_no_value("secrets list", &format!("{out}{err}"), &values);

    // without a key: the file's time, then its last commit once committed
    let (code, out, err) = infra(&["secrets", "list", d], "", None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("app_pw ") && l.ends_with(" UTC (file, not committed)")),
        "{out}"
    );
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args([
                "-c",
                "user.name=Alice Admin",
                "-c",
                "user.email=a@example.org",
            ])
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("git");
        assert!(st.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "secrets"]);
    let (code, out, err) = infra(&["secrets", "list", d], "", None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("app_pw ") && l.ends_with(" UTC by Alice Admin (commit)")),
        "{out}"
    );
    assert_no_value("secrets list", &format!("{out}{err}"), &values);

    // a reader that went away (`infra secrets list | head -1`) is no panic:
    // the output is dropped, the status stays the command's own
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let gone = Command::new(env!("CARGO_BIN_EXE_infra"))
        .args(["secrets", "list", d])
        .env("NO_COLOR", "1")
        .env("INFRA_IDENTITY", &bob)
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("runs infra");
    let err = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(gone.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // carol cannot decrypt, and is told who can
    let carol = a.key("carol");
    let (code, out, err) = infra(&["secrets", "rekey", d], "", Some(&carol));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("E0741") && err.contains("it is encrypted to: alice, bob"),
        "{err}"
    );

    // bob leaves: alice rekeys; bob's key no longer opens anything
    a.declare(&dir, &["alice"]);
    let alice = a.key("alice");
    let (code, out, err) = infra(&["secrets", "rekey", d], "", Some(&alice));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 secret(s) re-encrypted to alice"), "{out}");
    assert!(
        out.contains("no longer recipients: bob")
            && out.contains("infra secrets set app_pw --generate"),
        "{out}"
    );
    let ids = Identities::load(std::slice::from_ref(&bob), None).expect("bob's key");
    let e = Store::of(&dir)
        .read("app_pw", &ids)
        .expect_err("bob is out");
    assert_eq!(e.code, "E0741");
    assert_eq!(a.value(&dir, "app_pw", "alice"), "correct-horse-battery");

    // a corrupt file: named, with the fix, exit 1
    let f = dir.join("secrets/pg_repl.age");
    let text = std::fs::read_to_string(&f).expect("read");
    std::fs::write(&f, &text[..text.len() / 3]).expect("cut");
    let (code, _, err) = infra(&["secrets", "rekey", d], "", Some(&alice));
    assert_eq!(code, 1);
    assert!(
        err.contains("E0740") && err.contains("pg_repl.age"),
        "{err}"
    );

    // names, identities
    let (code, _, err) = infra(&["secrets", "set", "App-PW", d], "x\n", None);
    assert_eq!(code, 1);
    assert!(err.contains("E0743"), "{err}");
    let (code, _, err) = infra(
        &["secrets", "rekey", d, "--identity", "/nonexistent/key"],
        "",
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("E0742"), "{err}");
}

#[test]
fn edit_changes_a_value_in_a_private_file_in_memory() {
    let a = Admins::new();
    let (_tmp, dir) = accounting();
    let d = dir.to_str().expect("utf-8 path");
    a.declare(&dir, &["alice", "bob"]);
    let values = fill(&dir, &a);
    let alice = a.key("alice");
    // the editor: logs the file it was given and its mode, then edits it as
    // EDIT_TO says (a sed, nothing, or a new content)
    let ed = a.keys.join("editor");
    let log = a.keys.join("editor.log");
    std::fs::write(
        &ed,
        "#!/bin/sh\nprintf '%s %s %s\\n' \"$1\" \"$(stat -c %a \"$1\")\" \"$(stat -f -c %T \"$1\")\" >> \"$EDLOG\"\ncase \"$EDIT_TO\" in\n  sed) sed -i s/correct/stapled/ \"$1\" ;;\n  keep) ;;\n  *) printf '%s\\n' \"$EDIT_TO\" > \"$1\" ;;\nesac\n",
    )
    .expect("write the editor");
    let st = Command::new("chmod")
        .arg("755")
        .arg(&ed)
        .status()
        .expect("chmod");
    assert!(st.success());
    let (edp, logp) = (ed.to_str().expect("path"), log.to_str().expect("path"));
    // XDG_RUNTIME_DIR on a disk is passed over for /dev/shm
    let disk = a.keys.to_str().expect("path");
    let run = |name: &str, to: &str| {
        infra_env(
            &["secrets", "edit", name, d],
            "",
            Some(&alice),
            &[
                ("EDITOR", edp),
                ("VISUAL", ""),
                ("EDLOG", logp),
                ("EDIT_TO", to),
                ("XDG_RUNTIME_DIR", disk),
            ],
        )
    };

    let (code, out, err) = run("app_pw", "sed");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("secret app_pw changed") && out.contains(", edited"),
        "{out}"
    );
    assert_eq!(a.value(&dir, "app_pw", "bob"), "stapled-horse-battery");
    assert_no_value("secrets edit", &format!("{out}{err}"), &values);
    let logged = std::fs::read_to_string(&log).expect("the editor ran");
    let mut f = logged.split_whitespace();
    let (file, mode, fs) = (f.next().unwrap_or(""), f.next(), f.next());
    assert!(file.starts_with("/dev/shm/infra-secret-"), "{logged}");
    assert_eq!((mode, fs), (Some("600"), Some("tmpfs")), "{logged}");
    assert!(
        !Path::new(file).exists() && !Path::new(file).parent().is_some_and(Path::exists),
        "{file} is removed with its directory"
    );

    // saved unchanged: nothing written
    let before = std::fs::read(dir.join("secrets/app_pw.age")).expect("read");
    let (code, out, err) = run("app_pw", "keep");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("secret app_pw unchanged: nothing written"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(dir.join("secrets/app_pw.age")).expect("read"),
        before
    );

    // an empty value is refused; a new name starts from an empty file
    let (code, _, err) = run("app_pw", "");
    assert_eq!(code, 1);
    assert!(
        err.contains("E0747") && err.contains("infra secrets rm app_pw"),
        "{err}"
    );
    assert_eq!(a.value(&dir, "app_pw", "alice"), "stapled-horse-battery");
    let (code, out, err) = run("smtp_pw", "hunter22");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("secret smtp_pw set"), "{out}");
    assert_eq!(a.value(&dir, "smtp_pw", "bob"), "hunter22");

    // an editor that fails changes nothing
    let (code, _, err) = infra_env(
        &["secrets", "edit", "app_pw", d],
        "",
        Some(&alice),
        &[("EDITOR", "false"), ("VISUAL", "")],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("E0747") && err.contains("app_pw not changed"),
        "{err}"
    );
    assert_eq!(a.value(&dir, "app_pw", "alice"), "stapled-horse-battery");
}

#[test]
fn check_refuses_a_plaintext_secrets_file_git_would_commit() {
    let (_tmp, dir) = accounting();
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("git (CI installs it)");
        assert!(st.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    let env = dir.join("secrets.env");
    std::fs::write(&env, "app_pw=hunter2\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let d = dir.to_str().expect("utf-8 path");
    let (code, _, err) = infra(&["check", d], "", None);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("E0744") && err.contains("infra secrets set"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    // ignored: fine
    std::fs::write(dir.join(".gitignore"), "secrets.env\n").expect("write");
    let (code, _, err) = infra(&["check", d], "", None);
    assert_eq!(code, 0, "{err}");
    // readable by others: refused (check and plan alike)
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, _, err) = infra(&["check", d], "", None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0745") && err.contains("chmod 600"), "{err}");
    std::fs::remove_file(&env).expect("rm");

    // a stored secret nothing uses: a warning
    let a = Admins::new();
    a.declare(&dir, &["alice"]);
    let (code, _, err) = infra(&["secrets", "set", "old_pw", d], "x1234567\n", None);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = infra(&["check", d], "", None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("W0746") && err.contains("old_pw"), "{err}");
    // an admin key that is not one
    std::fs::write(
        dir.join("admins.infra"),
        "admin dave { key = \"ssh-ed25519 nope\" }\n",
    )
    .expect("write");
    let (code, _, err) = infra(&["check", d], "", None);
    assert_eq!(code, 1);
    assert!(err.contains("E0219"), "{err}");
}

#[test]
fn lab_apply_takes_the_values_from_the_store_and_shows_none() {
    if !lab_enabled("lab_apply_takes_the_values_from_the_store_and_shows_none") {
        return;
    }
    let a = Admins::new();
    let mut c = LabConfig::new("accounting", "secrets");
    a.declare(&c.dir, &["alice", "bob"]);
    let values = fill(&c.dir, &a);
    c.up(&[]);
    let alice = a.key("alice");
    let id = alice.to_str().expect("utf-8 path");
    let env = [("INFRA_IDENTITY", id)];
    let plan = c.infra_env(&["plan"], &env);
    assert_eq!(plan.code, 0, "{plan:?}");
    let r = c.infra_env(&["apply"], &env);
    assert_eq!(r.code, 0, "apply failed:\n{r:?}");
    // the application's connection file holds the store's password, not a lab one
    let (code, out) = c.sh("alpha", "cat /etc/accounting/database.json");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("correct-horse-battery"), "{out}");
    // without an identity that can decrypt: refused, nothing applied
    let carol = a.key("carol");
    let r2 = c.infra_env(
        &["plan"],
        &[("INFRA_IDENTITY", carol.to_str().expect("path"))],
    );
    assert_eq!(r2.code, 1, "{r2:?}");
    assert!(flat(&r2.stderr).contains("E0741"), "{r2:?}");
    // status still looks (read-only), and says it could not compare
    let st = c.infra_env(
        &["status"],
        &[("INFRA_IDENTITY", carol.to_str().expect("path"))],
    );
    assert_ne!(st.code, 1, "{st:?}");
    assert!(
        st.stdout.contains("pending changes not counted") && st.stderr.contains("E0741"),
        "{st:?}"
    );

    // no value anywhere: outputs, JSON, build files, the lab's own secrets file
    let status = c.infra_env(&["status", "--json"], &env);
    let build = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_infra"))
        .arg("build")
        .arg(&c.dir)
        .arg("--out")
        .arg(build.path())
        .output()
        .expect("infra build");
    assert!(out.status.success());
    let mut seen = format!(
        "{}{}{}{}{}{}{}{}",
        plan.stdout,
        plan.stderr,
        r.stdout,
        r.stderr,
        r2.stdout,
        r2.stderr,
        status.stdout,
        status.stderr
    );
    let files = Command::new("grep")
        .args(["-r", "-h", "-I", "."])
        .arg(build.path())
        .output()
        .expect("grep");
    seen.push_str(&String::from_utf8_lossy(&files.stdout));
    // the hosts' logs: the journal and PostgreSQL's own log (a password set by
    // ALTER ROLE must not be logged)
    for h in ["alpha", "beta"] {
        let (_, logs) = c.sh(
            h,
            "journalctl --no-pager -o cat; cat /var/log/postgresql/*.log 2>/dev/null",
        );
        assert!(logs.len() > 1000, "no logs on {h}?");
        seen.push_str(&logs);
    }
    let lab_file = infra::lab::paths::state_dir("secrets").join("secrets.env");
    seen.push_str(&std::fs::read_to_string(&lab_file).unwrap_or_default());
    assert_no_value(
        "plan, apply, status --json, the build or the lab's secrets.env",
        &seen,
        &values,
    );

    // rotation: a new generated value, the plan names it (not the value), the
    // apply puts it in the role and its files
    let d = c.dir.to_str().expect("utf-8 path");
    let (code, out, err) = infra(&["secrets", "set", "app_pw", d, "--generate"], "", None);
    assert_eq!(code, 0, "{out}{err}");
    let new = a.value(&c.dir, "app_pw", "alice");
    assert_ne!(new, values[0]);
    let plan = c.infra_env(&["plan"], &env);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout.contains("rotate secret app_pw: ")
            && plan
                .stdout
                .contains("then step postgres_user-accounting applies it"),
        "{plan:?}"
    );
    let r = c.infra_env(&["apply"], &env);
    assert_eq!(r.code, 0, "apply failed:\n{r:?}");
    for h in ["alpha", "beta"] {
        let (code, out) = c.sh(h, "cat /etc/accounting/database.json");
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains(&new) && !out.contains(&values[0]),
            "{h}: {out}"
        );
    }
    assert_no_value(
        "the rotation's plan and apply",
        &format!("{}{}{}{}", plan.stdout, plan.stderr, r.stdout, r.stderr),
        &[new],
    );
}
