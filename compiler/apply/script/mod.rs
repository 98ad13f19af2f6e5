//! The POSIX sh scripts apply runs on a host. Pure: values in, text out.
//!
//! - [`LOADER`]: the `sh -c` command of every apply-side round trip. It reads a
//!   length line and that many bytes of script from stdin, then runs the script
//!   with the rest of stdin (the tar payload) still unread.
//! - [`switch_script`]: lock, fingerprint check, unpack, packages, users,
//!   directories, files staged (written and synced next to their targets),
//!   then the switch (units removed, staged files renamed into place,
//!   `current`, daemon-reload, units, steps, settle), then the rollback timer.
//! - [`undo_script`]: restores the generation that was current before (files from
//!   its directory, backups of files infra took over, units), points `current`
//!   back, releases the lock. Run by the switch script on failure, by the confirm
//!   script when the health check fails, by the rollback timer, and by
//!   [`recover_script`] for an interrupted switch.
//! - [`confirm_script`]: health checks, then cancels the timer and releases the lock.
//! - [`recover_script`]: what to do about a lock nobody is left to release: at
//!   boot (`infra-recover.service`, [`recover_unit`]), and for `infra apply` and
//!   `infra unlock`.
//! - [`generations_script`]: lists generations (and their manifests).
//!
//! The lock and its phases are described in [`crate::probe::lock`]: every phase
//! change is a write and a rename, and the two that decide what a reboot does
//! (`staged` → `switching`, and the release after `confirmed`) are synced.
//!
//! Answers are lines `TAG<TAB>fields`, free text base64. Every script writes its
//! answer to a file and prints it at the end, ignoring SIGHUP and SIGPIPE (the
//! commands it runs get the default dispositions back): a connection that
//! breaks mid-way never stops a switch half-done (it finishes, or undoes itself).

mod confirm;
mod generations;
mod recover;
mod switch;
mod undo;

pub use confirm::confirm_script;
pub use generations::generations_script;
pub use recover::{recover_script, recover_unit, RecoverMode, RECOVER_UNIT};
pub use switch::switch_script;
pub use undo::undo_script;

use crate::plan::HostPlan;
use crate::probe::Manifest;
use crate::render::HostBuild;
use crate::shell::quote;

/// Generations kept on a host (besides the current one).
pub const KEEP_GENERATIONS: usize = 5;

/// The loader: exec'ed as `sh -c LOADER`; stdin is `LEN\n` + script + payload.
/// It ignores SIGHUP (sshd's, when the client goes away) as the scripts do: it
/// lives until its script ends and then removes it.
pub const LOADER: &str = r#"trap '' HUP PIPE
IFS= read -r n || exit 91
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

/// The start of every host script (after `S=STATE_DIR`): environment, signals,
/// and the lock helpers.
fn common() -> String {
    let mut s = String::from(
        r#"set -u
umask 022
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
trap '' HUP PIPE
G="$S/generations"
"#,
    );
    s.push_str(crate::probe::lock::LOCK_FACTS);
    s.push_str(
        r#"setphase() {
  printf '%s\n' "$1" > "$S/lock/phase.new" && mv -f "$S/lock/phase.new" "$S/lock/phase"
}
own() {
  printf '%s %s\n' "$$" "$(pstart $$)" > "$S/lock/owner.new" && mv -f "$S/lock/owner.new" "$S/lock/owner"
}
note() {
  printf '%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" >> "$S/recovered"
  logger -t infra "$1" 2>/dev/null
  return 0
}
lockinfo() { sed -n "s/^$1=//p" "$S/lock/info" 2>/dev/null; }
droplock() {
  # renamed away first: nobody sees a lock half removed (no phase, no owner)
  mv -T "$S/lock" "$S/.lock-gone.$$" 2>/dev/null && rm -rf "$S/.lock-gone.$$"
}
"#,
    );
    s
}

/// Files: `stage SRC DST MODE OWNER GROUP` writes the new content next to DST
/// (`.infra-new.NAME`, not live); `live DST` renames it over DST (atomic);
/// `inst` does both; `unstage DST` removes a staged file; `unmanage DST` puts
/// back the original infra took over (or removes DST).
pub(crate) const FN_FILES: &str = r#"staged() { d=${1%/*}; d=${d:-/}; printf '%s/.infra-new.%s\n' "$d" "${1##*/}"; }
stage() {
  d=${2%/*}; d=${d:-/}
  if [ ! -d "$d" ]; then mkdir -p "$d" || return 1; fi
  tmp=$(staged "$2")
  install -m "$3" -o "$4" -g "$5" -T "$1" "$tmp" || { rm -f "$tmp"; return 1; }
}
live() { mv -f "$(staged "$1")" "$1"; }
inst() { stage "$@" && live "$2"; }
unstage() { rm -f "$(staged "$1")"; }
flip() { ln -sfn "releases/$2" "$1/.current-new" && mv -T "$1/.current-new" "$1/current"; }
unmanage() {
  if [ -f "$S/backup$1" ] || [ -L "$S/backup$1" ]; then
    tmp=$(staged "$1")
    rm -f "$tmp"
    cp -P -p "$S/backup$1" "$tmp" && mv -f "$tmp" "$1"
  else
    rm -f "$1"
  fi
}
"#;

/// Releases: `assemble` and `prune` (switch script; `$G` the generations).
pub(crate) const FN_RELEASES: &str = r#"# assemble PAYLOAD APP HASH BASE SHARED...: releases/HASH from the base release
# (hard links: release files are root's and never written in place) and the
# files that travelled; the shared directories linked in. With $ahook set,
# that before_switch hook runs in it as $auser before it is final.
ahook=; auser=
assemble() {
  if assemble_in "$@"; then return 0; fi
  rm -rf "$2/releases/.new-$3" "$2/releases/.new-$3.list"
  return 1
}
assemble_in() {
  p=$1; r=$2; h=$3; b=$4; shift 4
  n="$r/releases/.new-$h"
  rm -rf "$n" || return 1
  if [ -n "$b" ] && [ -d "$r/releases/$b" ]; then
    # a before_switch hook writes in the release: copies, not links
    if [ -n "$ahook" ]; then l=; else l=-l; fi
    cp -a $l "$r/releases/$b" "$n" || return 1
    for x in "$@"; do rm -rf "${n:?}/$x"; done
    if [ -f "$p/remove" ]; then
      while IFS= read -r f; do rm -f -- "$n/$f" || return 1; done < "$p/remove"
    fi
    find "$n" -mindepth 1 -type d -empty -delete
  else
    mkdir -p "$n" || return 1
  fi
  if [ -d "$p/tree" ]; then cp -a --remove-destination "$p/tree/." "$n/" || return 1; fi
  for x in "$@"; do
    mkdir -p "$(dirname -- "$n/$x")" && rm -rf -- "${n:?}/$x" && ln -s "$r/shared/$x" "$n/$x" || return 1
  done
  chown -R -h root:root "$n" && find "$n" -type d -exec chmod 0755 {} + || return 1
  # its file list: sent whole, or the current one's without what went, plus
  # what came (sorted by path, bytewise), checked against the build's
  if [ -f "$p/list" ]; then
    cp "$p/list" "$n.list" || return 1
  else
    if [ ! -d "$r/releases/$b" ] || [ ! -f "$r/releases/$b.list" ]; then
      echo "release $b, which release $h is made from, is gone from $r/releases: run infra apply again"
      return 1
    fi
    awk 'NR == FNR { drop[$0] = 1; next } { f = $0; sub(/^[^ ]* [^ ]* /, "", f); if (!(f in drop)) print }' \
      "$p/drop" "$r/releases/$b.list" > "$n.list" && cat "$p/add" >> "$n.list" &&
      LC_ALL=C sort -t ' ' -k 3 -o "$n.list" "$n.list" || return 1
  fi
  if [ "$(sha256sum < "$n.list" | cut -d ' ' -f 1)" != "$(cat "$p/list.sha256")" ]; then
    echo "the assembled file list of release $h differs from the build's"
    return 1
  fi
  # every file of the list is there (a release edited by hand is not a base)
  if [ "$(find "$n" -type f | wc -l)" != "$(wc -l < "$n.list")" ]; then
    echo "release $h has $(find "$n" -type f | wc -l) files, its list $(wc -l < "$n.list"): was release $b changed by hand?"
    return 1
  fi
  if [ -n "$ahook" ]; then
    chown -R -h "$auser:" "$n" || return 1
    hook "$n" "$auser" "$ahook" || { echo "before_switch failed (exit $?)"; return 1; }
    chown -R -h root:root "$n" && find "$n" -type d -exec chmod 0755 {} + || return 1
  fi
  mv -f "$n.list" "$r/releases/$h.list" && mv -T "$n" "$r/releases/$h"
}
# hook DIR USER COMMAND: a release's hook, in its directory, as its user
hook() { ( cd "$1" && runuser -u "$2" -- sh -c "$3" ); }
# prune APP KEEP CURRENT: releases beyond the newest KEEP that no kept
# generation points to.
prune() {
  pi=0
  ls -1t "$1/releases" | while IFS= read -r d; do
    case $d in *.list|.new-*) continue ;; esac
    pi=$((pi + 1))
    if [ "$d" = "$3" ] || [ "$pi" -le "$2" ]; then continue; fi
    if grep -qs "\"$d\"" "$G"/*/manifest.json; then continue; fi
    rm -rf -- "${1:?}/releases/$d" "$1/releases/$d.list"
  done
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

impl SwitchSpec<'_> {
    /// Paths whose new content the switch stages: created or updated files.
    fn staged_paths(&self) -> Vec<&str> {
        self.plan
            .actions
            .iter()
            .filter_map(|a| match a {
                crate::plan::Action::CreateFile { path, .. }
                | crate::plan::Action::UpdateFile { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .filter(|p| self.target_manifest.files.contains_key(*p))
            .collect()
    }
}

/// A health check on this host: a failover group's, or an application's own
/// (its check on this host's address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// What it checks, for messages: "failover group office",
    /// "php_app.accounting".
    pub what: String,
    /// The check script installed on the host.
    pub script: String,
}

fn q(s: &str) -> String {
    quote(s)
}

fn timer_unit(target: u64) -> String {
    format!("infra-rollback-{target}")
}
