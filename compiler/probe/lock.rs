//! The host lock as the probe sees it.
//!
//! `STATE_DIR/lock/` exists while a switch is under way or awaits confirmation
//! (mkdir is the atomic take). apply's scripts keep in it:
//! - `holder`: who, in words ("infra apply by ops@laptop (pid 4242)");
//! - `info`: `key=value` lines written when the lock is taken: `boot` (the host's
//!   boot id), `since` (epoch seconds), `target`, `previous` (generations) and
//!   `conn` (pid and start time of the sshd process serving the switch: the
//!   client's connection is alive while it lives);
//! - `owner`: pid and start time of the script acting on the lock now (the
//!   switch, the confirm, or an undo);
//! - `phase`: one of [`Phase`], replaced atomically (write, rename) and synced;
//! - `token`, `undo.sh`, `resolved/` (the claim of whoever finishes the switch:
//!   confirm, undo or the rollback timer; mkdir is atomic).
//!
//! [`LOCK_FACTS`] is the sh function that reports those facts (and whether the
//! lock's processes are alive); [`LockFacts::parse`] reads its output and
//! [`LockFacts::state`] says what the next apply must do about it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a switch was when the lock was last written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Taken; the fingerprint is checked and the payload unpacked. Nothing live changed.
    Locked,
    /// The new generation is stored and its files staged (written, synced) next
    /// to their targets; packages, users and directories are in place. Nothing
    /// managed changed yet: undoing only removes what was staged.
    Staged,
    /// Live changes in progress (renames, `current`, units, steps).
    Switching,
    /// Switched; the rollback timer is armed; awaiting confirmation.
    Switched,
    /// A confirm runs the health checks.
    Confirming,
    /// Confirmed; only the cleanup (timer, pruning, lock) is left.
    Confirmed,
    /// Being rolled back to the previous generation.
    Undoing,
}

impl Phase {
    pub const ALL: &'static [Phase] = &[
        Phase::Locked,
        Phase::Staged,
        Phase::Switching,
        Phase::Switched,
        Phase::Confirming,
        Phase::Confirmed,
        Phase::Undoing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Locked => "locked",
            Phase::Staged => "staged",
            Phase::Switching => "switching",
            Phase::Switched => "switched",
            Phase::Confirming => "confirming",
            Phase::Confirmed => "confirmed",
            Phase::Undoing => "undoing",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.iter().copied().find(|p| p.as_str() == s.trim())
    }

    /// In the operator's words.
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Locked => "before anything was changed",
            Phase::Staged => "after the new files were staged, before any became live",
            Phase::Switching => "during the switch",
            Phase::Switched => "after the switch, awaiting confirmation",
            Phase::Confirming => "during the confirmation",
            Phase::Confirmed => "after the confirmation",
            Phase::Undoing => "during a rollback",
        }
    }
}

/// What the probe read of a held lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFacts {
    pub holder: String,
    /// None: no phase was recorded (a lock made by hand, or by an older infra).
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing)]
    pub token: String,
    pub target: Option<u64>,
    pub previous: Option<u64>,
    /// Epoch seconds (host clock) when the lock was taken.
    pub since: Option<u64>,
    /// The lock was taken in the host's current boot.
    pub same_boot: bool,
    /// The script acting on the lock (switch, confirm, undo) is running.
    pub owner_alive: bool,
    /// The sshd process of the switch's connection is running (the client is
    /// connected).
    pub conn_alive: bool,
    /// Someone claimed the switch (confirm, undo or timer).
    pub claimed: bool,
}

/// What the next apply must do about a held lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    /// An apply is running (its script on the host, or its client connected):
    /// wait for it, or give up and say so.
    Live,
    /// A switch awaits confirmation and nobody is left to give it: confirm it
    /// when the host is on the generation the configuration builds and its
    /// health check passes, otherwise roll it back.
    Pending,
    /// An apply was interrupted (client gone, or the host rebooted) in a phase
    /// that needs no decision: clean up before the switch, undo during it,
    /// finish after the confirmation.
    Stale,
    /// No phase recorded: nobody can tell what happened (`infra unlock`).
    Unknown,
}

impl LockFacts {
    /// Parse the output of [`LOCK_FACTS`] (`key=value` lines).
    pub fn parse(text: &str) -> LockFacts {
        let kv: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let num = |k: &str| kv.get(k).and_then(|v| v.trim().parse::<u64>().ok());
        let boot = kv.get("boot").map(|s| s.trim()).unwrap_or("");
        let now = kv.get("boot_now").map(|s| s.trim()).unwrap_or("");
        LockFacts {
            holder: kv
                .get("holder")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            phase: kv.get("phase").and_then(|p| Phase::parse(p)),
            token: kv
                .get("token")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            target: num("target"),
            previous: num("previous"),
            since: num("since"),
            same_boot: !boot.is_empty() && boot == now,
            owner_alive: kv.get("owner_alive") == Some(&"1"),
            conn_alive: kv.get("conn_alive") == Some(&"1"),
            claimed: kv.get("claimed") == Some(&"1"),
        }
    }

    /// Whether a process of the apply holding the lock still runs.
    pub fn live(&self) -> bool {
        self.same_boot && (self.owner_alive || self.conn_alive)
    }

    pub fn state(&self) -> LockState {
        match self.phase {
            None => LockState::Unknown,
            Some(_) if self.live() => LockState::Live,
            Some(Phase::Switched | Phase::Confirming) if !self.claimed => LockState::Pending,
            Some(_) => LockState::Stale,
        }
    }

    /// "infra apply by ops@laptop (pid 42), interrupted during the switch to generation 7"
    pub fn describe(&self) -> String {
        let mut s = if self.holder.is_empty() {
            "an unknown holder".to_string()
        } else {
            self.holder.clone()
        };
        if let Some(p) = self.phase {
            s.push_str(&format!(", {}", p.describe()));
        }
        if let Some(t) = self.target {
            s.push_str(&format!(" (generation {t})"));
        }
        if self.phase.is_some() && !self.same_boot {
            s.push_str("; the host rebooted since");
        }
        s
    }
}

/// sh functions: `alive "PID START"` (is that process still the one running?),
/// `pstart PID` (its start time), `sshd_of PID` (pid and start time of the sshd
/// process above PID) and `lock_facts` (prints the facts [`LockFacts::parse`]
/// reads; needs `$S`).
pub const LOCK_FACTS: &str = r#"pstart() {
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  # shellcheck disable=SC2086
  set -- ${st##*) }
  printf '%s\n' "${20:-}"
}
alive() {
  # shellcheck disable=SC2086
  set -- $1
  [ $# -eq 2 ] || return 1
  [ "$(pstart "$1")" = "$2" ]
}
sshd_of() {
  p=$1
  while [ "$p" -gt 1 ] 2>/dev/null; do
    st=$(cat "/proc/$p/stat" 2>/dev/null) || return 1
    c=${st#*(}; c=${c%%)*}
    # shellcheck disable=SC2086
    set -- ${st##*) }
    case $c in sshd*) printf '%s %s\n' "$p" "${20:-}"; return 0 ;; esac
    p=$2
  done
  return 1
}
lock_facts() {
  [ -d "$S/lock" ] || return 1
  # a lock is made whole, its phase in it: one without is being removed right now
  # (rm -rf) or was made by hand; look again for up to 1 s
  n=0
  while [ ! -f "$S/lock/phase" ] && [ -d "$S/lock" ] && [ "$n" -lt 10 ]; do sleep 0.1; n=$((n + 1)); done
  lf=$(
    cat "$S/lock/info" 2>/dev/null
    printf 'holder=%s\n' "$(head -n 1 "$S/lock/holder" 2>/dev/null)"
    printf 'phase=%s\n' "$(cat "$S/lock/phase" 2>/dev/null)"
    printf 'token=%s\n' "$(cat "$S/lock/token" 2>/dev/null)"
    printf 'boot_now=%s\n' "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
    if [ -d "$S/lock/resolved" ]; then echo claimed=1; fi
    if alive "$(cat "$S/lock/owner" 2>/dev/null)"; then echo owner_alive=1; fi
    if alive "$(sed -n 's/^conn=//p' "$S/lock/info" 2>/dev/null)"; then echo conn_alive=1; fi
  )
  # removed while it was read: there is no lock (what was read is not one)
  [ -d "$S/lock" ] || return 1
  printf '%s\n' "$lf"
  return 0
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        let base = "holder=infra apply by ops@laptop (pid 1)\nboot=b1\nboot_now=b1\nsince=100\ntarget=7\nprevious=6\ntoken=abc\n";
        let f = LockFacts::parse(&format!("{base}phase=switching\nowner_alive=1\n"));
        assert_eq!(f.state(), LockState::Live);
        assert_eq!(
            (f.target, f.previous, f.since),
            (Some(7), Some(6), Some(100))
        );
        assert_eq!(f.token, "abc");
        let f = LockFacts::parse(&format!("{base}phase=switched\n"));
        assert_eq!(f.state(), LockState::Pending);
        let f = LockFacts::parse(&format!("{base}phase=switched\nclaimed=1\n"));
        assert_eq!(f.state(), LockState::Stale);
        let f = LockFacts::parse(&format!("{base}phase=switching\n"));
        assert_eq!(f.state(), LockState::Stale);
        // Another boot: processes with those pids are not the lock's.
        let f = LockFacts::parse(&format!(
            "{}phase=switching\nowner_alive=1\n",
            base.replace("boot_now=b1", "boot_now=b2")
        ));
        assert_eq!(f.state(), LockState::Stale);
        assert!(f.describe().contains("rebooted"));
        let f = LockFacts::parse("holder=ops@laptop pid 42\nphase=\n");
        assert_eq!(f.state(), LockState::Unknown);
    }
}
