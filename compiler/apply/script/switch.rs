//! The switch script: one round trip from "locked" to "switched".

use super::{common, q, timer_unit, SwitchSpec, FN_FILES, FN_RELEASES};
use crate::plan::Action;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Where the switch records its progress, in order (see
/// [`crate::probe::lock::Phase`]): `locked` when the lock is taken, `staged`
/// once the undo script is in place, `switching` (synced) before the first
/// live change, `switched` once the rollback timer is armed.
///
/// Answers: `LOCKED facts64`, `CHANGED detail`, `FAIL status step output64`,
/// `UNDO status output64`, `WARN text64`, `ARMED seconds`, `OK generation`.
pub fn switch_script(sw: &SwitchSpec) -> String {
    let mut s = String::with_capacity(8192 + sw.probe_script.len());
    let _ = writeln!(s, "S={}", q(sw.state_dir));
    s.push_str(&common());
    let _ = writeln!(s, "T={}", sw.target);
    s.push_str(
        r#"out=$(mktemp) || exit 90
t=$(mktemp -d) || exit 90
locked=0; live=0
b64() { base64 -w0; }
finish() {
  if [ "$locked" = 1 ]; then droplock; fi
  rm -rf "$t"
  cat "$out"; rm -f "$out"
  exit "$1"
}
fail() {
  printf 'FAIL\t%s\t%s\t' "$2" "$1" >> "$out"
  tail -c 4000 "$t/o" 2>/dev/null | b64 >> "$out"; printf '\n' >> "$out"
  if [ "$live" = 1 ]; then
    mkdir "$S/lock/resolved" 2>/dev/null
    sh "$S/lock/undo.sh" claimed "the step \"$1\" failed (exit $2)" > "$t/u" 2>&1; u=$?
    printf 'UNDO\t%s\t' "$u" >> "$out"; tail -c 4000 "$t/u" | b64 >> "$out"; printf '\n' >> "$out"
    locked=0
  elif [ -f "$S/lock/undo.sh" ]; then
    sh "$S/lock/undo.sh" cleanup > /dev/null 2>&1
    locked=0
  fi
  finish 1
}
step() {
  n=$1; shift
  ( trap - HUP PIPE; "$@" ) > "$t/o" 2>&1 || fail "$n" "$?"
}
warn() { printf 'WARN\t%s\n' "$(printf '%s' "$1" | b64)" >> "$out"; }
# said WHAT: what the last step printed (a hook's output), for apply's log
said() {
  if [ -s "$t/o" ]; then
    printf 'SAID\t%s\t' "$(printf '%s' "$1" | b64)" >> "$out"; tail -c 2000 "$t/o" | b64 >> "$out"; printf '\n' >> "$out"
  fi
}
"#,
    );
    s.push_str(FN_FILES);
    s.push_str(FN_RELEASES);
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
runtime() {
  r="$S/lock/payload/runtime"
  cmp -s "$r/recover.sh" "$S/recover.sh" || install -m 0700 -T "$r/recover.sh" "$S/recover.sh" || return 1
  if [ -f "$r/infra-recover.service" ]; then
    u=/etc/systemd/system/infra-recover.service
    cmp -s "$r/infra-recover.service" "$u" || install -m 0644 -T "$r/infra-recover.service" "$u" || return 1
    mkdir -p /etc/systemd/system/sysinit.target.wants || return 1
    ln -sfn "$u" /etc/systemd/system/sysinit.target.wants/infra-recover.service
  fi
}
mkdir -p "$G" && chmod 0700 "$S" || { echo "cannot create $S" >&2; exit 94; }
"#,
    );
    // The lock is taken whole: its files are written into a fresh directory
    // that is renamed to `lock` (rename(2) refuses a non-empty target), so
    // nobody ever sees a lock without its holder, owner and phase.
    s.push_str(
        "lt=\"$S/.lock.$$\"\nrm -rf \"$lt\"; mkdir \"$lt\" || exit 94\nconn=$(sshd_of $$ || :)\n",
    );
    let _ = writeln!(
        s,
        "printf 'boot=%s\\nsince=%s\\ntarget=%s\\nprevious=%s\\nconn=%s\\n' \"$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)\" \"$(date +%s)\" \"$T\" {} \"$conn\" > \"$lt/info\"",
        q(&sw.previous.map(|p| p.to_string()).unwrap_or_default())
    );
    let _ = writeln!(s, "printf '%s\\n' {} > \"$lt/holder\"", q(sw.holder));
    let _ = writeln!(s, "printf '%s\\n' {} > \"$lt/token\"", q(sw.token));
    s.push_str(
        r#"printf '%s %s\n' "$$" "$(pstart $$)" > "$lt/owner"
printf 'locked\n' > "$lt/phase"
# a lock that is gone again by the time its facts are read was given back
# while this switch tried (a killed apply's switch ending): try again
n=0
until mv -T "$lt" "$S/lock" 2> "$t/o"; do
  if lf=$(lock_facts); then
    rm -rf "$lt"
    printf 'LOCKED\t' >> "$out"; printf '%s\n' "$lf" | b64 >> "$out"; printf '\n' >> "$out"
    finish 1
  fi
  n=$((n + 1))
  if [ "$n" -ge 30 ]; then rm -rf "$lt"; fail "take the lock $S/lock" 1; fi
  sleep 0.1
done
locked=1
"#,
    );
    // The state the plan was made from must still hold.
    s.push_str("probe_fp() (\n");
    s.push_str(sw.probe_script);
    let _ = writeln!(
        s,
        "\n)\nfp=$(probe_fp 2>/dev/null | {})",
        crate::probe::fingerprint_pipe()
    );
    let _ = writeln!(
        s,
        "if [ \"$fp\" != {} ]; then printf 'CHANGED\\t%s\\n' \"$fp\" >> \"$out\"; finish 1; fi",
        q(sw.fingerprint)
    );
    // The payload: the new generation's directory, the undo script, infra's
    // recovery script and its boot unit.
    s.push_str(
        r#"mkdir "$S/lock/payload" || fail "unpack the payload" 1
step "unpack the payload" tar -x -f - -C "$S/lock/payload"
step "unpack the payload" mv "$S/lock/payload/undo.sh" "$S/lock/undo.sh"
setphase staged
step "install infra's recovery script" runtime
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
        s.push_str("step \"store generation $T\" mv \"$S/lock/payload/gen\" \"$G/$T\"\n");
    } else {
        s.push_str(
            "if [ ! -f \"$G/$T/manifest.json\" ]; then printf 'CHANGED\\tgeneration %s is gone\\n' \"$T\" >> \"$out\"; finish 1; fi\n",
        );
    }
    additive(&mut s, sw);
    live_changes(&mut s, sw);
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
        "printf '%s\\n' {} > \"$S/lock/holder.new\" && mv -f \"$S/lock/holder.new\" \"$S/lock/holder\"",
        q(&format!(
            "{} (switched to generation {}, awaiting confirmation)",
            sw.holder, sw.target
        ))
    );
    s.push_str("setphase switched\nprintf 'OK\\t%s\\n' \"$T\" >> \"$out\"\nlocked=0\nfinish 0\n");
    s
}

/// Before the switch: packages, users, directories, backups of files infra takes
/// over, and every new file staged next to its target. Nothing managed changes.
fn additive(s: &mut String, sw: &SwitchSpec) {
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
    for (i, a) in sw.plan.actions.iter().enumerate() {
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
                let u = users.get(name.as_str());
                let home = u.and_then(|u| u.home.clone());
                let shell = u.and_then(|u| u.shell.clone());
                let mut cmd = String::from("useradd");
                if *system {
                    let _ = write!(
                        cmd,
                        " --system --user-group --shell {}",
                        q(shell.as_deref().unwrap_or("/usr/sbin/nologin"))
                    );
                    if let Some(h) = &home {
                        let _ = write!(cmd, " --home-dir {} --no-create-home", q(h));
                    }
                } else {
                    cmd.push_str(" --user-group --create-home");
                    if let Some(sh) = &shell {
                        let _ = write!(cmd, " --shell {}", q(sh));
                    }
                    if let Some(h) = &home {
                        let _ = write!(cmd, " --home-dir {}", q(h));
                    }
                }
                // Its own group is made by --user-group.
                let groups: Vec<&str> = u
                    .map(|u| {
                        u.groups
                            .iter()
                            .map(String::as_str)
                            .filter(|g| g != name)
                            .collect()
                    })
                    .unwrap_or_default();
                if !groups.is_empty() {
                    let _ = write!(cmd, " --groups {}", q(&groups.join(",")));
                }
                let _ = writeln!(
                    s,
                    "step {} {cmd} -- {}",
                    q(&format!("create user {name}")),
                    q(name)
                );
            }
            Action::AddUserGroups { name, groups } => {
                let _ = writeln!(
                    s,
                    "step {} usermod --append --groups {} -- {}",
                    q(&format!("add user {name} to groups {}", groups.join(", "))),
                    q(&groups.join(",")),
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
                    q(&mode.to_string()),
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
                        q(&d.mode.to_string()),
                        q(&d.owner),
                        q(&d.group)
                    );
                }
            }
            Action::Release {
                path,
                from,
                to,
                present,
                migrate,
                ..
            } if !present => {
                let r = sw.build.releases.iter().find(|r| r.path == *path);
                let Some(r) = r.filter(|r| !r.files.is_empty()) else {
                    // A rollback to a release the host no longer keeps.
                    let _ = writeln!(
                        s,
                        "echo {} > \"$t/o\"; fail {} 1",
                        q(&format!("release {to} of {path} is no longer on the host (pruned): apply the configuration of that version instead")),
                        q(&format!("release {path}"))
                    );
                    continue;
                };
                let shared: Vec<String> = r.shared.iter().map(|x| q(x)).collect();
                let short = to.get(..8).unwrap_or(to);
                let _ = writeln!(s, "ahook={}; auser={}", q(&r.before_switch), q(&r.owner));
                let _ = writeln!(
                    s,
                    "step {} assemble \"$S/lock/payload/rel/{i}\" {} {} {} {}\nahook=",
                    q(&format!("assemble release {short} of {path}")),
                    q(path),
                    q(to),
                    q(from.as_deref().unwrap_or("")),
                    shared.join(" ")
                );
                if !r.before_switch.is_empty() {
                    let _ = writeln!(
                        s,
                        "said {}",
                        q(&format!("before_switch of release {short}"))
                    );
                }
                // Before the switch, against the database the running release
                // uses; a first release migrates once the steps have made its
                // database (see live_changes).
                if *migrate && !r.migrate.is_empty() && from.is_some() {
                    migrate_hook(s, path, to, r);
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
    // The files to stage, one line each: mode, owner, group, path (last: it may
    // hold tabs). One step for all of them: no process per file but `install`.
    let staged = sw.staged_paths();
    if !staged.is_empty() {
        s.push_str("cat > \"$S/lock/staged\" <<'INFRA_STAGED_EOF'\n");
        for path in &staged {
            if let Some(f) = sw.target_manifest.files.get(*path) {
                let _ = writeln!(s, "{}\t{}\t{}\t{path}", f.mode, f.owner, f.group);
            }
        }
        s.push_str("INFRA_STAGED_EOF\n");
        s.push_str(
            r#"stage_all() {
  while IFS="$(printf '\t')" read -r m o g p; do
    stage "$G/$T/files$p" "$p" "$m" "$o" "$g" || { echo "cannot stage $p"; return 1; }
  done < "$S/lock/staged"
}
live_all() {
  while IFS="$(printf '\t')" read -r m o g p; do
    live "$p" || { echo "cannot install $p"; return 1; }
  done < "$S/lock/staged"
}
step "stage the new files" stage_all
"#,
        );
    }
    // Everything staged is on disk before the first live change; from here on
    // a reboot undoes the switch (infra-recover.service).
    s.push_str("step \"sync the staged files\" sync\nsetphase switching\nlive=1\nsync\n");
}

/// The switch itself: units removed, staged files renamed into place, deleted
/// files removed, `current`, then systemd and steps, and the settle check.
fn live_changes(s: &mut String, sw: &SwitchSpec) {
    let acts = &sw.plan.actions;
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
    if !sw.staged_paths().is_empty() {
        s.push_str("step \"install the new files\" live_all\n");
    }
    for a in acts {
        if let Action::Release { path, to, .. } = a {
            let _ = writeln!(
                s,
                "step {} flip {} {}",
                q(&format!(
                    "switch {path}/current to release {}",
                    to.get(..8).unwrap_or(to)
                )),
                q(path),
                q(to)
            );
        }
    }
    for a in acts {
        if let Action::DeleteFile { path, .. } = a {
            let _ = writeln!(
                s,
                "step {} unmanage {}",
                q(&format!("remove {path}")),
                q(path)
            );
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
                    // an undo disables it again unless the previous generation enables it
                    let _ = writeln!(s, "printf '%s\\n' {} >> \"$S/lock/enabled\"", q(unit));
                    let _ = writeln!(
                        s,
                        "step {} systemctl enable --quiet -- {}",
                        q(&format!("enable {unit}")),
                        q(unit)
                    );
                }
                Action::StartUnit { unit } | Action::RestartUnit { unit, .. } => {
                    let restart = matches!(a, Action::RestartUnit { .. });
                    // an undo restarts what the switch restarted, and stops what it
                    // started unless the previous generation runs it
                    let record = if restart { "restarted" } else { "started" };
                    let _ = writeln!(s, "printf '%s\\n' {} >> \"$S/lock/{record}\"", q(unit));
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
                    // an undo runs it again once the old files are back
                    let _ = writeln!(s, "printf '%s\\n' {} >> \"$S/lock/stepped\"", q(name));
                    let _ = writeln!(s, "step {label} guarded {} {}", q(unless), q(&st.run));
                }
                None => {
                    let _ = writeln!(s, "step {label} sh -c {}", q(&st.run));
                }
            }
        }
    }
    // A first release migrates after the steps: its database and role exist
    // now (nothing served the application before).
    for a in acts {
        if let Action::Release {
            path,
            from: None,
            to,
            present: false,
            migrate: true,
            ..
        } = a
        {
            if let Some(r) = sw.build.releases.iter().find(|r| r.path == *path) {
                if !r.migrate.is_empty() {
                    migrate_hook(s, path, to, r);
                }
            }
        }
    }
    // Old releases go once the new one is live (the previous one stays: a
    // kept generation points to it).
    for a in acts {
        if let Action::Release { path, to, .. } = a {
            if let Some(r) = sw.build.releases.iter().find(|r| r.path == *path) {
                let _ = writeln!(s, "prune {} {} {}", q(path), r.keep, q(to));
            }
        }
    }
    settle(s, &persistent, &tasks);
}

/// The migration of release `to` of `path`, run in it as its owner; what it
/// printed goes to apply's log.
fn migrate_hook(s: &mut String, path: &str, to: &str, r: &crate::render::ReleaseOut) {
    let short = to.get(..8).unwrap_or(to);
    let _ = writeln!(
        s,
        "step {} hook {} {} {}",
        q(&format!("migrate (release {short} of {path})")),
        q(&format!("{path}/releases/{to}")),
        q(&r.owner),
        q(&r.migrate)
    );
    let _ = writeln!(s, "said {}", q(&format!("migrate of release {short}")));
}

/// Units just started must stay up: a service that exits at once is caught
/// here, before the switch is declared done.
fn settle(s: &mut String, persistent: &[&str], tasks: &[&str]) {
    if persistent.is_empty() && tasks.is_empty() {
        return;
    }
    s.push_str("sleep 1\ni=0\nwhile :; do\n  pending=\n");
    for u in persistent {
        let _ = writeln!(
            s,
            "  case $(ustate {u}) in *ActiveState=failed*|*SubState=auto-restart*) unitfail {u} ;; *ActiveState=activating*|*ActiveState=reloading*) pending=1 ;; esac",
            u = q(u)
        );
    }
    for u in tasks {
        let _ = writeln!(
            s,
            "  case $(ustate {u}) in *ActiveState=failed*) unitfail {u} ;; esac",
            u = q(u)
        );
    }
    s.push_str("  if [ -z \"$pending\" ]; then break; fi\n  i=$((i+1))\n  if [ \"$i\" -ge 40 ]; then warn \"some units are still starting after 20 s\"; break; fi\n  sleep 0.5\ndone\n");
    for u in tasks {
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
