//! Hostile strings in every string parameter of every stdlib kind. For each
//! parameter alone, a value with spaces, quotes, `$(...)`, backticks, `;`, a
//! newline and non-ASCII text must either be refused by the compiler (a
//! diagnostic, as `infra check` prints it) or come out harmless: every script of
//! the build passes `sh -n` and shellcheck, no line of any other file starts
//! with what followed the newline (no injected directive), and every script the
//! value reaches, run by sh in a throwaway copy of this machine's root (an
//! overlay in a private mount namespace, daemons' commands stubbed), runs
//! nothing injected.
//!
//! Not hostile by design: a job's or service's `run` and an exec check's command
//! are shell commands the user writes; they are left out.

use infra::syntax::ast;
use std::collections::BTreeSet;
use std::process::Command;

/// What a hostile value carries after its newline; no line may start with it.
const AFTER_NEWLINE: &str = "ünï touch /tmp/pwned";
const HOSTILE: &str =
    "a b'c\"d$(touch /tmp/pwned)`touch /tmp/pwned`;touch /tmp/pwned\nünï touch /tmp/pwned";
/// The same on one line (a `string` parameter refuses the newline, E0206: this
/// one reaches the files, quoting and formats).
const HOSTILE_LINE: &str =
    "a b'c\"d$(touch /tmp/pwned)`touch /tmp/pwned`;touch /tmp/pwned ünï {x} # touch /tmp/pwned";

/// Parameters whose value is shell code on purpose.
const CODE: &[(&str, &str)] = &[("job", "run"), ("service", "run")];

/// An infra string literal for `s`.
fn lit(s: &str) -> String {
    infra::fmt::quote(s)
}

struct KindParam {
    module: &'static str,
    kind: String,
    /// (name, type as written, has a default)
    params: Vec<(String, String, bool)>,
}

fn type_text(t: &ast::TypeExpr) -> String {
    match t {
        ast::TypeExpr::Named(i) => i.name.clone(),
        ast::TypeExpr::List(inner, _) => format!("[{}]", type_text(inner)),
    }
}

/// Every kind of the standard library with its parameters.
fn stdlib_kinds() -> Vec<KindParam> {
    let mut out = Vec::new();
    for (module, text) in infra::stdlib::modules() {
        let (file, _) = infra::syntax::parse(infra::source::FileId(0), text);
        for item in &file.items {
            if let ast::Item::Kind(k) = item {
                out.push(KindParam {
                    module,
                    kind: k.name.name.clone(),
                    params: k
                        .params
                        .iter()
                        .map(|p| (p.name.name.clone(), type_text(&p.ty), p.default.is_some()))
                        .collect(),
                });
            }
        }
    }
    out
}

const BASE: &str = r#"host alpha {
  address = "192.0.2.11"
}
host beta {
  address = "192.0.2.12"
}
failover office {
  members = [alpha, beta]
  vip     = "192.0.2.10/24"
  check   = http("http://127.0.0.1/health")
}
"#;

/// A sane value for a required parameter of type `ty`.
fn sane(kind: &str, name: &str, ty: &str) -> String {
    match (kind, name, ty) {
        ("share", "from", _) => "office.active".into(),
        (_, _, "placement") | (_, _, "failover") => "office".into(),
        (_, _, "secret") => "secret(\"x\")".into(),
        (_, _, "int") => "1".into(),
        (_, "path", _) => "\"/srv/data\"".into(),
        (_, "root", _) => "\"/srv/app\"".into(),
        (_, "run", _) => "\"/bin/true\"".into(),
        (_, _, "[string]") => "[]".into(),
        _ => "\"x\"".into(),
    }
}

/// A configuration instantiating `k` with `hostile` as the value of `param`.
fn config(k: &KindParam, param: &str, hostile: &str) -> String {
    let mut text = String::from(BASE);
    if k.module != infra::stdlib::PRELUDE {
        text = format!("import \"std/{}\"\n{text}", k.module);
    }
    text.push_str(&format!("{} h {{\n", k.kind));
    for (name, ty, has_default) in &k.params {
        let v = if name == param {
            let value = if ["path", "root", "web_root"].contains(&name.as_str())
                || ty == "[string]" && ["writable", "directories"].contains(&name.as_str())
            {
                format!("/srv/{hostile}")
            } else {
                hostile.to_string()
            };
            if ty.starts_with('[') {
                format!("[{}]", lit(&value))
            } else {
                lit(&value)
            }
        } else if *has_default {
            continue;
        } else {
            sane(&k.kind, name, ty)
        };
        text.push_str(&format!("  {name} = {v}\n"));
    }
    // a job needs a schedule
    if k.kind == "job" && param != "calendar" {
        text.push_str("  every = \"1h\"\n");
    }
    text.push_str("}\n");
    text
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Run `script` (with `args`) by sh in a throwaway copy of the root: an overlay
/// of `/` on a tmpfs in a private mount namespace, /run and /tmp empty, the
/// commands that talk to daemons or the network stubbed. Returns (whether
/// /tmp/pwned appeared, what it printed).
fn sandboxed(script: &str, args: &str) -> (bool, String) {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::write(t.path().join("script.sh"), script).expect("write script");
    let stubs = "systemctl systemd-run logger runuser psql pg_isready pg_basebackup pg_ctlcluster \
                 mariadb mariadb-admin mariadb-dump mysql rsync ssh ssh-keygen curl ip keepalived \
                 nginx sudo su apt-get dpkg useradd usermod";
    let abs =
        "/usr/bin/rrsync /usr/lib/postgresql/15/bin/psql /usr/lib/postgresql/15/bin/pg_isready \
               /usr/lib/postgresql/15/bin/pg_basebackup /usr/lib/postgresql/15/bin/pg_ctl";
    let sandbox = format!(
        r#"set -eu
mount --make-rprivate /
mkdir -p "$T/ovl" "$T/root"
mount -t tmpfs tmpfs "$T/ovl"
mkdir "$T/ovl/upper" "$T/ovl/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/ovl/upper,workdir=$T/ovl/work" "$T/root"
mount --rbind /dev "$T/root/dev"
mount -t proc proc "$T/root/proc"
mount -t tmpfs tmpfs "$T/root/run"
mount -t tmpfs tmpfs "$T/root/tmp"
mkdir -p "$T/root/usr/local/bin"
for c in {stubs}; do printf '#!/bin/sh\nexit 1\n' > "$T/root/usr/local/bin/$c"; chmod 755 "$T/root/usr/local/bin/$c"; done
for c in {abs}; do mkdir -p "$T/root${{c%/*}}"; printf '#!/bin/sh\nexit 1\n' > "$T/root$c"; chmod 755 "$T/root$c"; done
cp "$T/script.sh" "$T/root/script.sh"
set +e
chroot "$T/root" /usr/bin/env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin timeout 5 /bin/sh /script.sh {args} 2>&1
if [ -e "$T/root/tmp/pwned" ]; then echo INFRA_PWNED; fi
exit 0
"#
    );
    let out = Command::new("unshare")
        .args(["--mount", "--fork", "sh", "-c", &sandbox])
        .env("T", t.path())
        .output()
        .expect("unshare");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the sandbox did not run (exit {:?}): {text}",
        out.status.code()
    );
    (text.contains("INFRA_PWNED"), text)
}

fn shellcheck(script: &str) -> Result<(), String> {
    let mut c = Command::new("shellcheck")
        .args(["-s", "sh", "-S", "warning", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    use std::io::Write;
    if let Some(mut i) = c.stdin.take() {
        let _ = i.write_all(script.as_bytes());
    }
    let out = c.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn sh_n(script: &str) -> Result<(), String> {
    let out = Command::new("sh")
        .args(["-n", "-c", script])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn hostile_strings_in_every_string_parameter() {
    let have_shellcheck = tool("shellcheck");
    let can_run = is_root() && tool("unshare");
    if !have_shellcheck {
        eprintln!(
            "hostile strings: shellcheck missing, scripts only get sh -n (install shellcheck)"
        );
    }
    if !can_run {
        eprintln!("hostile strings: not root (or no unshare): scripts are not run in a sandbox");
    }
    let mut problems = Vec::new();
    let mut report = Vec::new();
    let mut ran: BTreeSet<String> = BTreeSet::new();
    for k in stdlib_kinds() {
        for (name, ty, _) in &k.params {
            if !(ty == "string" || ty == "[string]" || ty == "user")
                || CODE.contains(&(k.kind.as_str(), name))
            {
                continue;
            }
            for (variant, hostile) in [("multi-line", HOSTILE), ("one line", HOSTILE_LINE)] {
                let text = config(&k, name, hostile);
                let build = match crate::golden::compile_files(&[("t.infra", &text)]) {
                    Err(f) => {
                        let codes: BTreeSet<&str> = f.diags.iter().map(|d| d.code).collect();
                        report.push(format!(
                            "{}.{name} ({variant}): refused ({codes:?})",
                            k.kind
                        ));
                        continue;
                    }
                    Ok(c) => c.build,
                };
                let mut reached = 0;
                for (host, hb) in &build.hosts {
                    for (path, f) in &hb.files {
                        let script = path.ends_with(".sh") || f.mode.executable();
                        let at = format!("{}.{name} = hostile ({variant}): {host}:{path}", k.kind);
                        if !script {
                            if f.content
                                .lines()
                                .any(|l| l.trim_start().starts_with(AFTER_NEWLINE))
                            {
                                problems
                                    .push(format!("{at}: the newline started a line of its own"));
                            }
                            // Both quote characters: any quoting the file's syntax
                            // has changes the value, so the value as given is unquoted.
                            if f.content.contains(hostile) {
                                problems.push(format!(
                                    "{at}: the value is in the file as given, unquoted:\n{}",
                                    f.content
                                ));
                            }
                            continue;
                        }
                        if let Err(e) = sh_n(&f.content) {
                            problems.push(format!("{at}: sh -n: {e}"));
                        }
                        if have_shellcheck {
                            if let Err(e) = shellcheck(&f.content) {
                                problems.push(format!("{at}: shellcheck: {e}"));
                            }
                        }
                        if !f.content.contains("pwned") {
                            continue;
                        }
                        reached += 1;
                        if can_run && ran.insert(f.content.clone()) {
                            for args in ["", "--check"] {
                                let (pwned, out) = sandboxed(&f.content, args);
                                if pwned {
                                    problems.push(format!(
                                    "{at}: running it ({args}) ran the injected command:\n{out}"
                                ));
                                }
                            }
                        }
                    }
                }
                report.push(format!(
                    "{}.{name} ({variant}): built; in {reached} script(s), every one harmless",
                    k.kind
                ));
            }
        }
    }
    eprintln!("hostile strings:\n  {}", report.join("\n  "));
    assert!(
        report.len() > 40,
        "too few parameters tried: {}",
        report.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
