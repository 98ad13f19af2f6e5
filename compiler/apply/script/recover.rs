//! Recovery of a lock nobody is left to release: the script (installed as
//! `STATE_DIR/recover.sh`, and sent by `infra apply` / `infra unlock`) and the
//! boot unit that runs it.

use super::{common, q};
use std::fmt::Write as _;

/// How [`recover_script`] is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoverMode {
    /// At boot (infra-recover.service): nothing of the last boot is alive; a
    /// switch not confirmed is undone, a confirmed one finished.
    Boot,
    /// By `infra apply`: a live holder is left alone (`LIVE`), a switch awaiting
    /// confirmation is left to the client (`PENDING`), anything else recovered.
    Reclaim,
    /// By `infra apply` after it decided to roll back a pending switch, and by
    /// `infra unlock`: like `Reclaim`, but a pending switch is undone too.
    Undo,
    /// `infra unlock` on a lock without a recorded phase: removed.
    Force,
}

impl RecoverMode {
    pub fn arg(self) -> &'static str {
        match self {
            RecoverMode::Boot => "boot",
            RecoverMode::Reclaim => "reclaim",
            RecoverMode::Undo => "undo",
            RecoverMode::Force => "force",
        }
    }
}

/// Name of the boot unit.
pub const RECOVER_UNIT: &str = "infra-recover.service";

/// The recovery script. `$1`: a [`RecoverMode::arg`]. Answers one line:
/// `NONE` (no lock), `LIVE` (its apply still runs: left alone), `PENDING`
/// (awaiting confirmation: the caller decides), `UNKNOWN` (no phase recorded:
/// left alone), `REMOVED` (force), `FINISHED` (a confirmed switch's cleanup
/// completed), `UNDONE status` (the undo script ran: rolled back, or cleaned
/// up before anything live changed), `CLEANED` (interrupted before its undo
/// script was in place).
pub fn recover_script(state_dir: &str) -> String {
    let mut s = String::with_capacity(4096);
    s.push_str("#!/bin/sh\n# infra: finish or undo a switch that was interrupted (a reboot, a lost client).\n# Run at boot by infra-recover.service, and by `infra apply` and `infra unlock`.\n");
    let _ = writeln!(s, "S={}", q(state_dir));
    s.push_str(&common());
    s.push_str(
        r#"mode=${1:-boot}
if [ ! -d "$S/lock" ]; then echo NONE; exit 0; fi
phase=$(cat "$S/lock/phase" 2>/dev/null)
holder=$(head -n 1 "$S/lock/holder" 2>/dev/null)
if [ "$mode" != boot ] && [ "$(lockinfo boot)" = "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)" ]; then
  if alive "$(cat "$S/lock/owner" 2>/dev/null)" || alive "$(lockinfo conn)"; then echo LIVE; exit 0; fi
fi
undo() {
  um=reclaim; if [ "$mode" = boot ]; then um=boot; fi
  if [ -f "$S/lock/undo.sh" ]; then
    sh "$S/lock/undo.sh" "$um"; r=$?
    echo "UNDONE $r"
  else
    droplock
    note "${holder:-an apply} was interrupted before anything was changed: its lock was removed"
    echo CLEANED
  fi
  exit 0
}
case $phase in
  '')
    if [ "$mode" = force ]; then
      droplock
      note "the lock of ${holder:-an unknown holder} (no phase recorded) was removed by infra unlock"
      echo REMOVED
    else
      echo UNKNOWN
    fi ;;
  confirmed)
    target=$(lockinfo target)
    systemctl stop "infra-rollback-$target.timer" >/dev/null 2>&1
    droplock
    sync
    echo FINISHED ;;
  switched|confirming)
    if [ "$mode" = reclaim ] && [ ! -d "$S/lock/resolved" ]; then echo PENDING; exit 0; fi
    undo ;;
  *) undo ;;
esac
"#,
    );
    s
}

/// The unit that runs the recovery at boot, before any ordinary service starts
/// (they would read a configuration half switched), so a host that lost power
/// mid-switch boots into one complete generation.
pub fn recover_unit(state_dir: &str) -> String {
    format!(
        r#"# infra: finish or undo a switch interrupted by a reboot (see {state_dir}/recover.sh).
# Installed by infra apply; not part of any generation.
[Unit]
Description=infra: recover a switch interrupted by a reboot
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target shutdown.target
Conflicts=shutdown.target
ConditionPathIsDirectory={state_dir}/lock

[Service]
Type=oneshot
ExecStart=/bin/sh {state_dir}/recover.sh boot
TimeoutStartSec=10min

[Install]
WantedBy=sysinit.target
"#
    )
}
