//! The POSIX sh scripts apply runs on a host. Pure: values in, text out.
//!
//! - [`loader`]: the `sh -c` command of every apply-side round trip. It reads a
//!   length line and that many bytes of script from stdin, then runs the script
//!   with the rest of stdin (the tar payload) still unread.
//! - [`switch_script`]: lock, fingerprint check, unpack, packages, users,
//!   directories, then the switch (backups, units removed, files, `current`,
//!   daemon-reload, units, steps, settle), then the rollback timer. Any failure
//!   after the first change undoes it with the undo script.
//! - [`undo_script`]: restores the generation that was current before (files from
//!   its directory, backups of files infra took over, units), points `current`
//!   back, releases the lock. Run by the switch script on failure, by the confirm
//!   script when the health check fails, or by the rollback timer.
//! - [`confirm_script`]: health checks, then cancels the timer and releases the lock.
//! - [`generations_script`]: lists generations (and their manifests).
//!
//! Answers are lines `TAG<TAB>fields`, free text base64 (see [`super::parse_records`]).
//! Every script writes its answer to a file and prints it at the end, ignoring
//! SIGHUP and SIGPIPE (the commands it runs get the default dispositions back): a
//! connection that breaks mid-way never stops a switch half-done (it finishes,
//! or undoes itself).

use crate::plan::{Action, HostPlan};
use crate::probe::{fingerprint_pipe, Manifest};
use crate::render::HostBuild;
use crate::shell::quote;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Generations kept on a host (besides the current one).
pub const KEEP_GENERATIONS: usize = 5;

/// The loader: exec'ed as `sh -c LOADER`; stdin is `LEN\n` + script + payload.
pub const LOADER: &str = r#"IFS= read -r n || exit 91
f=$(mktemp) || exit 92
dd bs="$n" count=1 iflag=fullblock of="$f" 2>/dev/null || { rm -f "$f"; exit 93; }
sh "$f"; r=$?
rm -f "$f"
exit $r"#;

/// stdin for [`LOADER`]: the script then the payload.
pub fn loader_input(script: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(script.len() + payload.len() + 16);
    v.extend_from_slice(format!("{}\n", script.len()).as_bytes());
    v.extend_from_slice(script.as_bytes());
    v.extend_from_slice(payload);
    v
}

const COMMON: &str = r#"set -u
umask 022
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
trap '' HUP PIPE
G="$S/generations"
"#;

/// Install a file atomically: copy to a temp file in the target's directory
/// with mode and owner set, then rename over the target.
const FN_INST: &str = r#"inst() {
  d=${2%/*}; d=${d:-/}
  if [ ! -d "$d" ]; then mkdir -p "$d" || return 1; fi
  tmp="$d/.infra-new.${2##*/}"
  install -m "$3" -o "$4" -g "$5" -T "$1" "$tmp" || { rm -f "$tmp"; return 1; }
  mv -f "$tmp" "$2"
}
unmanage() {
  if [ -f "$S/backup$1" ] || [ -L "$S/backup$1" ]; then
    d=${1%/*}; d=${d:-/}
    tmp="$d/.infra-new.${1##*/}"
    rm -f "$tmp"
    cp -P -p "$S/backup$1" "$tmp" && mv -f "$tmp" "$1"
  else
    rm -f "$1"
  fi
}
"#;

/// What to switch and how.
pub struct SwitchSpec<'a> {
    pub host: &'a str,
    pub state_dir: &'a str,
    /// Unique per switch: the undo script and the timer act only while the lock
    /// holds this token.
    pub token: &'a str,
    /// Written to `lock/holder`.
    pub holder: &'a str,
    /// Expected fingerprint (from the probe the plan was made from).
    pub fingerprint: &'a str,
    /// The probe script the fingerprint came from (rerun on the host).
    pub probe_script: &'a str,
    /// The generation switched to.
    pub target: u64,
    /// True: `target` is a new generation whose directory is in the payload.
    /// False: it exists on the host (rollback).
    pub new: bool,
    /// The generation current when the plan was made.
    pub previous: Option<u64>,
    pub previous_manifest: Option<&'a Manifest>,
    pub target_manifest: &'a Manifest,
    pub plan: &'a HostPlan,
    /// Users, step commands and unit flags.
    pub build: &'a HostBuild,
    /// Seconds the rollback timer waits for a confirmation; 0: no timer.
    pub deadline: u64,
    /// Whether systemd runs on the host (no timer, no unit checks otherwise).
    pub systemd: bool,
}

fn q(s: &str) -> String {
    quote(s)
}

fn timer_unit(target: u64) -> String {
    format!("infra-rollback-{target}")
}

/// The undo script for a switch (stored as `lock/undo.sh` on the host).
/// `$1`: `timer` (claims the switch first; does nothing if it was confirmed) or
/// `claimed` (the caller claimed it).
pub fn undo_script(sw: &SwitchSpec) -> String {
    let mut s = String::with_capacity(4096);
    let _ = writeln!(
        s,
        "#!/bin/sh\n# infra: undo the switch of {} to generation {}",
        sw.host, sw.target
    );
    let _ = writeln!(s, "S={}", q(sw.state_dir));
    s.push_str(COMMON);
    let _ = writeln!(
        s,
        "[ \"$(cat \"$S/lock/token\" 2>/dev/null)\" = {} ] || exit 0",
        q(sw.token)
    );
    s.push_str(
        "if [ \"${1:-}\" = timer ]; then mkdir \"$S/lock/resolved\" 2>/dev/null || exit 0; fi\n",
    );
    s.push_str("err=0\ne() { \"$@\" || { echo \"undo: failed: $*\" >&2; err=1; }; }\n");
    s.push_str(FN_INST);
    let empty = Manifest::default();
    let prev = sw.previous_manifest.unwrap_or(&empty);
    let target = sw.target_manifest;
    let prev_units: BTreeSet<&str> = prev.units.iter().map(|u| u.name.as_str()).collect();
    let target_units: BTreeSet<&str> = target.units.iter().map(|u| u.name.as_str()).collect();
    if sw.systemd {
        // Units only the target has and whose unit file it installed: stop and
        // disable while their files exist. (A distribution's unit it only
        // configured is restarted below if the switch restarted it.)
        for u in target.units.iter().filter(|u| {
            !prev_units.contains(u.name.as_str())
                && target
                    .files
                    .contains_key(&format!("/etc/systemd/system/{}", u.name))
        }) {
            if u.start {
                let _ = writeln!(s, "e systemctl stop -- {}", q(&u.name));
            }
            if u.enable {
                let _ = writeln!(s, "e systemctl disable --quiet -- {}", q(&u.name));
            }
        }
    }
    // Files of the previous generation, from its directory.
    if let Some(p) = sw.previous {
        for (path, f) in &prev.files {
            let same = target.files.get(path).is_some_and(|t| {
                t.installed_sha256 == f.installed_sha256
                    && t.mode == f.mode
                    && t.owner == f.owner
                    && t.group == f.group
            });
            if !same {
                let _ = writeln!(
                    s,
                    "e inst \"$G/{p}/files\"{} {} {} {} {}",
                    q(path),
                    q(path),
                    q(&f.mode),
                    q(&f.owner),
                    q(&f.group)
                );
            }
        }
    }
    // Files only the target has: back to what was there before infra.
    for path in target.files.keys().filter(|p| !prev.files.contains_key(*p)) {
        let _ = writeln!(s, "e unmanage {}", q(path));
    }
    if sw.systemd {
        s.push_str("e systemctl daemon-reload\n");
        for u in prev
            .units
            .iter()
            .filter(|u| !target_units.contains(u.name.as_str()))
        {
            if u.enable {
                let _ = writeln!(s, "e systemctl enable --quiet -- {}", q(&u.name));
            }
            if u.start {
                let _ = writeln!(s, "e systemctl start -- {}", q(&u.name));
            }
        }
        s.push_str(
            "if [ -f \"$S/lock/restarted\" ]; then\n  while IFS= read -r u; do e systemctl restart -- \"$u\"; done < \"$S/lock/restarted\"\nfi\n",
        );
        s.push_str(
            "if [ -f \"$S/lock/reloaded\" ]; then\n  while IFS= read -r u; do e systemctl reload-or-restart -- \"$u\"; done < \"$S/lock/reloaded\"\nfi\n",
        );
    }
    match sw.previous {
        Some(p) => {
            let _ = writeln!(
                s,
                "e ln -sfn {p} \"$G/.current-new\"\ne mv -T \"$G/.current-new\" \"$G/current\""
            );
        }
        None => s.push_str("e rm -f \"$G/current\"\n"),
    }
    if sw.new {
        let _ = writeln!(s, "rm -rf \"$G/{}\"", sw.target);
    }
    if sw.systemd && sw.deadline > 0 {
        let t = timer_unit(sw.target);
        let _ = writeln!(
            s,
            "if [ \"${{1:-}}\" != timer ]; then systemctl stop {t}.timer >/dev/null 2>&1; fi\nsystemctl reset-failed {t}.timer >/dev/null 2>&1"
        );
    }
    let back = sw
        .previous
        .map(|p| format!("generation {p}"))
        .unwrap_or_else(|| "the state before infra".into());
    let _ = writeln!(
        s,
        "logger -t infra {} 2>/dev/null",
        q(&format!(
            "rolled back from generation {} to {back}",
            sw.target
        ))
    );
    s.push_str("rm -rf \"$S/lock\"\nexit $err\n");
    s
}

/// The switch script (see the module docs). Answers: `LOCKED holder64`,
/// `CHANGED detail`, `FAIL status step output64`, `UNDO status output64`,
/// `WARN text64`, `ARMED seconds`, `OK generation`.
pub fn switch_script(sw: &SwitchSpec) -> String {
    let mut s = String::with_capacity(8192 + sw.probe_script.len());
    let _ = writeln!(s, "S={}", q(sw.state_dir));
    s.push_str(COMMON);
    let _ = writeln!(s, "T={}", sw.target);
    s.push_str(
        r#"out=$(mktemp) || exit 90
t=$(mktemp -d) || exit 90
locked=0; switched=0; made=0
b64() { base64 -w0; }
finish() {
  if [ "$locked" = 1 ]; then rm -rf "$S/lock"; fi
  rm -rf "$t"
  cat "$out"; rm -f "$out"
  exit "$1"
}
fail() {
  printf 'FAIL\t%s\t%s\t' "$2" "$1" >> "$out"
  tail -c 4000 "$t/o" 2>/dev/null | b64 >> "$out"; printf '\n' >> "$out"
  if [ "$switched" = 1 ]; then
    mkdir "$S/lock/resolved" 2>/dev/null
    sh "$S/lock/undo.sh" claimed > "$t/u" 2>&1; u=$?
    printf 'UNDO\t%s\t' "$u" >> "$out"; tail -c 4000 "$t/u" | b64 >> "$out"; printf '\n' >> "$out"
    locked=0
  elif [ "$made" = 1 ]; then
    rm -rf "${G:?}/${T:?}"
  fi
  finish 1
}
step() {
  n=$1; shift
  ( trap - HUP PIPE; "$@" ) > "$t/o" 2>&1 || fail "$n" "$?"
}
warn() { printf 'WARN\t%s\n' "$(printf '%s' "$1" | b64)" >> "$out"; }
"#,
    );
    s.push_str(FN_INST);
    s.push_str(
        r#"bk() {
  if [ -f "$1" ] || [ -L "$1" ]; then
    mkdir -p "$S/backup${1%/*}" && cp -P -p "$1" "$S/backup$1"
  else
    rm -f "$S/backup$1"
  fi
}
mkd() { mkdir -p "$1" && chown "$3:$4" "$1" && chmod "$2" "$1"; }
pkgs() {
  DEBIAN_FRONTEND=noninteractive; export DEBIAN_FRONTEND
  o='-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold'
  # shellcheck disable=SC2086
  apt-get -q -y $o install "$@" && return 0
  echo "infra: apt-get install failed; updating the package lists and trying again"
  apt-get -q update
  # shellcheck disable=SC2086
  apt-get -q -y $o install "$@"
}
guarded() {
  if sh -c "$1" > "$t/o" 2>&1; then return 0; fi
  sh -c "$2"
}
ustate() { systemctl show -p ActiveState -p SubState -- "$1" 2>/dev/null | tr '\n' ' '; }
unitfail() {
  { echo "$1 did not start: $(ustate "$1")"; systemctl status --no-pager -n 15 -- "$1" 2>&1; } > "$t/o"
  fail "start $1" 1
}
mkdir -p "$G" && chmod 0700 "$S" || { echo "cannot create $S" >&2; exit 94; }
if ! mkdir "$S/lock" 2>/dev/null; then
  printf 'LOCKED\t' >> "$out"; { cat "$S/lock/holder" 2>/dev/null || :; } | b64 >> "$out"; printf '\n' >> "$out"
  finish 1
fi
locked=1
"#,
    );
    let _ = writeln!(s, "printf '%s\\n' {} > \"$S/lock/holder\"", q(sw.holder));
    let _ = writeln!(s, "printf '%s\\n' {} > \"$S/lock/token\"", q(sw.token));
    // The state the plan was made from must still hold.
    s.push_str("probe_fp() (\n");
    s.push_str(sw.probe_script);
    let _ = writeln!(
        s,
        "\n)\nfp=$(probe_fp 2>/dev/null | {})",
        fingerprint_pipe()
    );
    let _ = writeln!(
        s,
        "if [ \"$fp\" != {} ]; then printf 'CHANGED\\t%s\\n' \"$fp\" >> \"$out\"; finish 1; fi",
        q(sw.fingerprint)
    );
    // The payload: the new generation's directory and the undo script.
    s.push_str(
        r#"mkdir "$S/lock/payload" || fail "unpack the payload" 1
step "unpack the payload" tar -x -f - -C "$S/lock/payload"
step "unpack the payload" mv "$S/lock/payload/undo.sh" "$S/lock/undo.sh"
"#,
    );
    if sw.new {
        s.push_str(
            r#"if [ -e "$G/$T" ]; then printf 'CHANGED\tgeneration %s exists\n' "$T" >> "$out"; finish 1; fi
date -u +%Y-%m-%dT%H:%M:%SZ > "$S/lock/payload/gen/date"
"#,
        );
        let _ = writeln!(
            s,
            "printf '%s\\n' {} > \"$S/lock/payload/gen/previous\"",
            q(&sw.previous.map(|p| p.to_string()).unwrap_or_default())
        );
        s.push_str("step \"store generation $T\" mv \"$S/lock/payload/gen\" \"$G/$T\"\nmade=1\n");
    } else {
        s.push_str(
            "if [ ! -f \"$G/$T/manifest.json\" ]; then printf 'CHANGED\\tgeneration %s is gone\\n' \"$T\" >> \"$out\"; finish 1; fi\n",
        );
    }

    let users: BTreeMap<&str, _> = sw
        .build
        .users
        .iter()
        .map(|u| (u.name.as_str(), u))
        .collect();
    let dirs: BTreeMap<&str, _> = sw
        .build
        .directories
        .iter()
        .map(|d| (d.path.as_str(), d))
        .collect();
    let steps: BTreeMap<&str, _> = sw
        .build
        .steps
        .iter()
        .map(|st| (st.name.as_str(), st))
        .collect();
    let units: BTreeMap<&str, _> = sw
        .build
        .units
        .iter()
        .map(|u| (u.name.as_str(), u))
        .collect();
    let acts = &sw.plan.actions;

    // Before the switch: additive changes only.
    for a in acts {
        match a {
            Action::InstallPackages { packages } => {
                let list: Vec<String> = packages.iter().map(|p| q(p)).collect();
                let _ = writeln!(
                    s,
                    "step {} pkgs {}",
                    q(&format!("install packages: {}", packages.join(", "))),
                    list.join(" ")
                );
            }
            Action::CreateUser { name, system } => {
                let home = users.get(name.as_str()).and_then(|u| u.home.clone());
                let mut cmd = String::from("useradd");
                if *system {
                    cmd.push_str(" --system --user-group --shell /usr/sbin/nologin");
                    if let Some(h) = &home {
                        let _ = write!(cmd, " --home-dir {} --no-create-home", q(h));
                    }
                } else {
                    cmd.push_str(" --user-group --create-home");
                    if let Some(h) = &home {
                        let _ = write!(cmd, " --home-dir {}", q(h));
                    }
                }
                let _ = writeln!(
                    s,
                    "step {} {cmd} -- {}",
                    q(&format!("create user {name}")),
                    q(name)
                );
            }
            Action::CreateDirectory {
                path,
                mode,
                owner,
                group,
            } => {
                let _ = writeln!(
                    s,
                    "step {} mkd {} {} {} {}",
                    q(&format!("create directory {path}")),
                    q(path),
                    q(mode),
                    q(owner),
                    q(group)
                );
            }
            Action::FixDirectory { path, .. } => {
                if let Some(d) = dirs.get(path.as_str()) {
                    let _ = writeln!(
                        s,
                        "step {} mkd {} {} {} {}",
                        q(&format!("fix directory {path}")),
                        q(path),
                        q(&d.mode),
                        q(&d.owner),
                        q(&d.group)
                    );
                }
            }
            _ => {}
        }
    }
    // Originals of files infra takes over, kept to restore them later.
    let prev_files: BTreeSet<&str> = sw
        .previous_manifest
        .map(|m| m.files.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for path in sw.target_manifest.files.keys() {
        if !prev_files.contains(path.as_str()) {
            let _ = writeln!(s, "step {} bk {}", q(&format!("back up {path}")), q(path));
        }
    }

    // The switch.
    s.push_str("switched=1\n");
    if sw.systemd {
        for a in acts {
            match a {
                Action::StopUnit { unit } => {
                    let _ = writeln!(
                        s,
                        "step {} systemctl stop -- {}",
                        q(&format!("stop {unit}")),
                        q(unit)
                    );
                }
                Action::DisableUnit { unit } => {
                    let _ = writeln!(
                        s,
                        "step {} systemctl disable --quiet -- {}",
                        q(&format!("disable {unit}")),
                        q(unit)
                    );
                }
                _ => {}
            }
        }
    }
    for a in acts {
        match a {
            Action::CreateFile { path, .. } | Action::UpdateFile { path, .. } => {
                if let Some(f) = sw.target_manifest.files.get(path) {
                    let _ = writeln!(
                        s,
                        "step {} inst \"$G/$T/files\"{} {} {} {} {}",
                        q(&format!("install {path}")),
                        q(path),
                        q(path),
                        q(&f.mode),
                        q(&f.owner),
                        q(&f.group)
                    );
                }
            }
            Action::DeleteFile { path, .. } => {
                let _ = writeln!(
                    s,
                    "step {} unmanage {}",
                    q(&format!("remove {path}")),
                    q(path)
                );
            }
            _ => {}
        }
    }
    s.push_str(
        "step \"switch generations/current\" ln -sfn \"$T\" \"$G/.current-new\"\nstep \"switch generations/current\" mv -T \"$G/.current-new\" \"$G/current\"\n",
    );
    let mut persistent: Vec<&str> = Vec::new();
    let mut tasks: Vec<&str> = Vec::new();
    if sw.systemd {
        for a in acts {
            match a {
                Action::DaemonReload => {
                    s.push_str("step \"systemctl daemon-reload\" systemctl daemon-reload\n")
                }
                Action::EnableUnit { unit } => {
                    let _ = writeln!(
                        s,
                        "step {} systemctl enable --quiet -- {}",
                        q(&format!("enable {unit}")),
                        q(unit)
                    );
                }
                Action::StartUnit { unit } | Action::RestartUnit { unit, .. } => {
                    let restart = matches!(a, Action::RestartUnit { .. });
                    if restart {
                        let _ = writeln!(s, "printf '%s\\n' {} >> \"$S/lock/restarted\"", q(unit));
                    }
                    let verb = if restart { "restart" } else { "start" };
                    let _ = writeln!(
                        s,
                        "step {} systemctl {verb} -- {}",
                        q(&format!("{verb} {unit}")),
                        q(unit)
                    );
                    let keep_running = units
                        .get(unit.as_str())
                        .is_some_and(|u| u.enable && u.start);
                    // Only services run code that can die right after starting.
                    if unit.ends_with(".service") {
                        if keep_running {
                            persistent.push(unit);
                        } else {
                            tasks.push(unit);
                        }
                    }
                }
                Action::ReloadUnit { unit, .. } => {
                    let _ = writeln!(s, "printf '%s\\n' {} >> \"$S/lock/reloaded\"", q(unit));
                    let _ = writeln!(
                        s,
                        "step {} systemctl reload-or-restart -- {}",
                        q(&format!("reload {unit}")),
                        q(unit)
                    );
                }
                _ => {}
            }
        }
    }
    for a in acts {
        if let Action::RunStep { name, .. } = a {
            let Some(st) = steps.get(name.as_str()) else {
                continue;
            };
            let label = q(&format!("run step {name}"));
            match &st.unless {
                Some(unless) => {
                    let _ = writeln!(s, "step {label} guarded {} {}", q(unless), q(&st.run));
                }
                None => {
                    let _ = writeln!(s, "step {label} sh -c {}", q(&st.run));
                }
            }
        }
    }
    // Units just started must stay up: a service that exits at once is caught
    // here, before the switch is declared done.
    if !persistent.is_empty() || !tasks.is_empty() {
        s.push_str("sleep 1\ni=0\nwhile :; do\n  pending=\n");
        for u in &persistent {
            let _ = writeln!(
                s,
                "  case $(ustate {u}) in *ActiveState=failed*|*SubState=auto-restart*) unitfail {u} ;; *ActiveState=activating*|*ActiveState=reloading*) pending=1 ;; esac",
                u = q(u)
            );
        }
        for u in &tasks {
            let _ = writeln!(
                s,
                "  case $(ustate {u}) in *ActiveState=failed*) unitfail {u} ;; esac",
                u = q(u)
            );
        }
        s.push_str("  if [ -z \"$pending\" ]; then break; fi\n  i=$((i+1))\n  if [ \"$i\" -ge 40 ]; then warn \"some units are still starting after 20 s\"; break; fi\n  sleep 0.5\ndone\n");
        for u in &tasks {
            let _ = writeln!(
                s,
                "case $(ustate {u}) in *SubState=auto-restart*) warn {} ;; esac",
                q(&format!(
                    "{u} failed and will be retried by systemd (see journalctl -u {u})"
                )),
                u = q(u)
            );
        }
    }
    // Armed last: if the client cannot confirm (SSH cut off, health failing, the
    // client died), the host switches back by itself.
    if sw.systemd && sw.deadline > 0 {
        let t = timer_unit(sw.target);
        let _ = writeln!(
            s,
            "systemctl stop {t}.timer >/dev/null 2>&1; systemctl reset-failed {t}.timer {t}.service >/dev/null 2>&1"
        );
        let _ = writeln!(
            s,
            "step \"arm the rollback timer\" systemd-run --quiet --unit={t} --on-active={} --timer-property=AccuracySec=1s /bin/sh \"$S/lock/undo.sh\" timer",
            sw.deadline
        );
        let _ = writeln!(s, "printf 'ARMED\\t%s\\n' {} >> \"$out\"", sw.deadline);
    }
    let _ = writeln!(
        s,
        "printf '%s\\n' {} > \"$S/lock/holder\"",
        q(&format!(
            "{} (switched to generation {}, awaiting confirmation)",
            sw.holder, sw.target
        ))
    );
    s.push_str("printf 'OK\\t%s\\n' \"$T\" >> \"$out\"\nlocked=0\nfinish 0\n");
    s
}

/// A failover group's health check on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub group: String,
    /// The check script installed on the host.
    pub script: String,
}

/// The confirm script: health checks (retried for `health_timeout` seconds),
/// then claim the switch, cancel the timer, prune old generations, release the
/// lock. Answers: `CONFIRMED generation`, `GONE current` (the switch was undone
/// already: the timer fired, or someone removed the lock), `HEALTH group status
/// output64` then `UNDO status output64`.
pub fn confirm_script(
    state_dir: &str,
    token: &str,
    target: u64,
    checks: &[HealthCheck],
    health_timeout: u64,
) -> String {
    let mut s = String::with_capacity(2048);
    let _ = writeln!(s, "S={}", q(state_dir));
    s.push_str(COMMON);
    let t = timer_unit(target);
    let _ = writeln!(
        s,
        r#"t=$(mktemp -d) || exit 90
trap 'rm -rf "$t"' EXIT
gone() {{ printf 'GONE\t%s\n' "$(readlink "$G/current" 2>/dev/null)"; exit 0; }}
[ "$(cat "$S/lock/token" 2>/dev/null)" = {token} ] || gone
end=$(( $(date +%s) + {health_timeout} ))
check() {{
  while :; do
    "$2" > "$t/o" 2>&1; r=$?
    if [ "$r" = 0 ]; then return 0; fi
    if [ "$(date +%s)" -ge "$end" ]; then
      mkdir "$S/lock/resolved" 2>/dev/null || gone
      printf 'HEALTH\t%s\t%s\t' "$1" "$r"; tail -c 2000 "$t/o" | base64 -w0; printf '\n'
      sh "$S/lock/undo.sh" claimed > "$t/u" 2>&1; u=$?
      printf 'UNDO\t%s\t' "$u"; tail -c 4000 "$t/u" | base64 -w0; printf '\n'
      exit 0
    fi
    sleep 1
  done
}}"#,
        token = q(token),
    );
    for c in checks {
        let _ = writeln!(s, "check {} {}", q(&c.group), q(&c.script));
    }
    let _ = writeln!(
        s,
        r#"mkdir "$S/lock/resolved" 2>/dev/null || gone
systemctl stop {t}.timer >/dev/null 2>&1; systemctl reset-failed {t}.timer {t}.service >/dev/null 2>&1
cur=$(readlink "$G/current" 2>/dev/null)
for d in "$G"/[0-9]*; do
  n=${{d##*/}}
  case $n in *[!0-9]*) ;; *) printf '%s\n' "$n" ;; esac
done | sort -n | head -n -{KEEP_GENERATIONS} | while IFS= read -r g; do
  if [ "$g" != "$cur" ]; then rm -rf "${{G:?}}/$g"; fi
done
rm -rf "$S/lock"
printf 'CONFIRMED\t%s\n' {target}"#
    );
    s
}

/// Lists generations: `CUR n` (if any), then per generation `GEN n date files
/// previous` and, with `manifests`, `MAN n base64`.
pub fn generations_script(state_dir: &str, manifests: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "S={}", q(state_dir));
    s.push_str(COMMON);
    s.push_str(
        r#"if [ -L "$G/current" ]; then printf 'CUR\t%s\n' "$(readlink "$G/current")"; fi
if [ -d "$S/lock" ]; then printf 'LOCK\t%s\n' "$(base64 -w0 < "$S/lock/holder" 2>/dev/null)"; fi
for d in "$G"/[0-9]*; do
  n=${d##*/}
  case $n in *[!0-9]*) continue ;; esac
  [ -f "$d/manifest.json" ] || continue
  date=$(cat "$d/date" 2>/dev/null)
  files=$(wc -l < "$d/paths" 2>/dev/null)
  prev=$(cat "$d/previous" 2>/dev/null)
  printf 'GEN\t%s\t%s\t%s\t%s\n' "$n" "$date" "${files:-0}" "$prev"
"#,
    );
    if manifests {
        s.push_str("  printf 'MAN\\t%s\\t%s\\n' \"$n\" \"$(base64 -w0 < \"$d/manifest.json\")\"\n");
    }
    s.push_str("done\n");
    s
}
