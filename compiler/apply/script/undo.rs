//! The undo script of one switch (stored as `lock/undo.sh` on the host).

use super::{common, q, timer_unit, SwitchSpec, FN_FILES};
use crate::probe::Manifest;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// `phase_words PHASE`: when the switch was interrupted, in words.
const PHASE_WORDS: &str = r#"phase_words() {
  case $1 in
    switching) printf 'during the switch' ;;
    switched) printf 'after the switch, before its confirmation' ;;
    confirming) printf 'during its confirmation' ;;
    undoing) printf 'during a rollback' ;;
    *) printf 'in phase %s' "$1" ;;
  esac
}
"#;

/// The undo script for a switch. `$1` says who runs it:
/// - `claimed`: the switch or confirm script, which claimed the switch already
///   (the client reports what happened);
/// - `timer`: the rollback timer: claims the switch first, does nothing if it
///   was confirmed;
/// - `boot`: infra-recover.service at boot (systemctl jobs are queued, not
///   waited for: the boot transaction is still running);
/// - `reclaim`: a later infra command that found the switch interrupted;
/// - `cleanup`: the switch failed before anything live changed.
///
/// A switch interrupted before its live changes (phase `locked` or `staged`) is
/// only cleaned up: its staged files and generation directory removed.
/// Interrupted cases (timer, boot, reclaim) leave a note in `STATE_DIR/recovered`
/// that the next probe reports.
pub fn undo_script(sw: &SwitchSpec) -> String {
    let mut s = String::with_capacity(4096);
    let _ = writeln!(
        s,
        "#!/bin/sh\n# infra: undo the switch of {} to generation {}",
        sw.host, sw.target
    );
    let _ = writeln!(s, "S={}", q(sw.state_dir));
    s.push_str(&common());
    s.push_str(PHASE_WORDS);
    let _ = writeln!(
        s,
        "[ \"$(cat \"$S/lock/token\" 2>/dev/null)\" = {} ] || exit 0",
        q(sw.token)
    );
    s.push_str(
        r#"mode=${1:-claimed}
case $mode in
  timer) mkdir "$S/lock/resolved" 2>/dev/null || exit 0 ;;
  boot|reclaim) mkdir "$S/lock/resolved" 2>/dev/null ;;
esac
own
phase=$(cat "$S/lock/phase" 2>/dev/null)
nb=; if [ "$mode" = boot ]; then nb=--no-block; fi
err=0
e() { "$@" || { echo "undo: failed: $*" >&2; err=1; }; }
since=$(lockinfo since)
at=; if [ -n "$since" ]; then at=" at $(date -u -d "@$since" +%H:%M:%S 2>/dev/null) UTC"; fi
"#,
    );
    s.push_str(FN_FILES);
    let back = sw
        .previous
        .map(|p| format!("generation {p}"))
        .unwrap_or_else(|| "the state before infra".into());
    let who = format!("{} (switching to generation {}", sw.holder, sw.target);
    // Notes, by who runs the undo.
    let _ = writeln!(
        s,
        r#"why() {{
  case $mode in
    timer) printf '%s' {timer} ;;
    boot) printf '%s' {who}"$at) was interrupted by a reboot $1" ;;
    reclaim) printf '%s' {who}"$at) was interrupted $1" ;;
  esac
}}"#,
        timer = q(&format!(
            "generation {} ({}) was not confirmed within {} s: rolled back to {back}",
            sw.target, sw.holder, sw.deadline
        )),
        who = q(&who),
    );
    // Staged files and the new generation's directory: what a switch leaves
    // before its first live change.
    s.push_str("cleanup() {\n  :\n");
    for path in sw.staged_paths() {
        let _ = writeln!(s, "  unstage {}", q(path));
    }
    if sw.new {
        let _ = writeln!(
            s,
            "  if [ \"$(readlink \"$G/current\" 2>/dev/null)\" != {t} ]; then rm -rf \"${{G:?}}/{t}\"; fi",
            t = sw.target
        );
    }
    s.push_str("}\n");
    let _ = writeln!(
        s,
        r#"case $phase in
  locked|staged)
    cleanup
    case $mode in
      boot|reclaim) note "$(why "before anything live changed"): removed what it had staged; the host stayed on {back}" ;;
    esac
    droplock
    exit 0 ;;
esac
if [ "$mode" = cleanup ]; then cleanup; droplock; exit 0; fi
setphase undoing"#,
        back = back.replace('"', "")
    );
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
                let _ = writeln!(s, "e systemctl $nb stop -- {}", q(&u.name));
            }
            if u.enable {
                let _ = writeln!(s, "e systemctl disable --quiet -- {}", q(&u.name));
            }
        }
        // Units the switch started or enabled that were stopped or disabled
        // before (a distribution's keepalived.service, postgresql@15-main): back
        // to that, unless the previous generation runs or enables them. A first
        // generation undone leaves no VIP and no server behind.
        for (record, verb, keep) in [
            (
                "started",
                "$nb stop",
                prev.units.iter().filter(|u| u.start).collect::<Vec<_>>(),
            ),
            (
                "enabled",
                "disable --quiet",
                prev.units.iter().filter(|u| u.enable).collect(),
            ),
        ] {
            let keep: String = keep.iter().map(|u| format!(" {}", u.name)).collect();
            let _ = writeln!(
                s,
                "if [ -f \"$S/lock/{record}\" ]; then\n  keep={}\n  while IFS= read -r u; do case \"$keep\" in *\" $u \"*) ;; *) e systemctl {verb} -- \"$u\" ;; esac; done < \"$S/lock/{record}\"\nfi",
                q(&format!("{keep} "))
            );
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
                    q(&f.mode.to_string()),
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
    // Releases: `current` back to the previous generation's (before the units
    // it reloaded are reloaded again below).
    for (path, hash) in &target.releases {
        match prev.releases.get(path) {
            Some(h) if h == hash => {}
            Some(h) => {
                let _ = writeln!(s, "e flip {} {}", q(path), q(h));
            }
            None => {
                let _ = writeln!(s, "e rm -f {}", q(&format!("{path}/current")));
            }
        }
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
                let _ = writeln!(s, "e systemctl $nb start -- {}", q(&u.name));
            }
        }
        s.push_str(
            "if [ -f \"$S/lock/restarted\" ]; then\n  while IFS= read -r u; do e systemctl $nb restart -- \"$u\"; done < \"$S/lock/restarted\"\nfi\n",
        );
        s.push_str(
            "if [ -f \"$S/lock/reloaded\" ]; then\n  while IFS= read -r u; do e systemctl $nb reload-or-restart -- \"$u\"; done < \"$S/lock/reloaded\"\nfi\n",
        );
    }
    // Guarded steps the switch ran change what files cannot restore (a
    // database role's password): with the old files back, each one the
    // previous generation has too, with the same command, runs again and puts
    // its state back. Not at boot: the services it talks to are not up; the
    // next plan shows the step.
    let stepped: Vec<&crate::render::StepOut> = sw
        .build
        .steps
        .iter()
        .filter(|st| st.unless.is_some())
        .filter(|st| prev.steps.get(&st.name) == Some(&st.run_sha256()))
        .collect();
    if !stepped.is_empty() {
        s.push_str("if [ \"$mode\" != boot ] && [ -f \"$S/lock/stepped\" ]; then\n");
        for st in stepped {
            let _ = writeln!(
                s,
                "  if grep -qxF {} \"$S/lock/stepped\"; then {{ sh -c {} || sh -c {}; }} >/dev/null 2>&1 || echo {} >&2; fi",
                q(&st.name),
                q(st.unless.as_deref().unwrap_or("false")),
                q(&st.run),
                q(&format!("step {} did not run again: see the next plan", st.name))
            );
        }
        s.push_str("fi\n");
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
    s.push_str("cleanup\n");
    if sw.systemd && sw.deadline > 0 {
        let t = timer_unit(sw.target);
        let _ = writeln!(
            s,
            "if [ \"$mode\" != timer ]; then systemctl stop {t}.timer >/dev/null 2>&1; fi\nsystemctl reset-failed {t}.timer >/dev/null 2>&1"
        );
    }
    let _ = writeln!(
        s,
        r#"case $mode in
  timer) said=$(why); note "$said" ;;
  boot|reclaim) said="$(why "$(phase_words "$phase")"): rolled back to {back}"; note "$said" ;;
  *) said={plain}"${{2:+: $2}}"; logger -t infra "$said" 2>/dev/null ;;
esac
# an `alert` on the host (the one of the generation it is back on) says so
for a in /etc/infra/alert/*/alert.sh; do
  [ -x "$a" ] || continue
  "$a" rolled-back apply {host}": $said" </dev/null >/dev/null 2>&1 || true
done
droplock
sync
exit $err"#,
        back = back.replace('"', ""),
        plain = q(&format!(
            "rolled back from generation {} to {back}",
            sw.target
        )),
        host = q(sw.host),
    );
    s
}
