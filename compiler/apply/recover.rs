//! Recovering a lock nobody is left to release (an interrupted apply), from the
//! client: `infra apply` before it plans, `infra unlock`.

use super::script::{self, RecoverMode};
use super::{tail, ApplyError};
use crate::transport::Remote;

/// What the recovery script did (see [`script::recover_script`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// There was no lock.
    Nothing,
    /// Its apply still runs: left alone.
    Live,
    /// A switch awaits confirmation: the caller decides (confirm or undo).
    Pending,
    /// No phase recorded: left alone (`infra unlock` removes it).
    Unknown,
    /// A lock without a phase removed (`infra unlock`).
    Removed,
    /// A confirmed switch's cleanup completed.
    Finished,
    /// The undo script ran: the switch rolled back (or cleaned up before any live
    /// change). `status` is its exit status (0: without errors).
    Undone { status: i32 },
    /// Interrupted before its undo script was in place: the lock was removed.
    Cleaned,
}

impl Recovered {
    /// What `infra unlock` did, in words.
    pub fn describe(&self, host: &str) -> String {
        match self {
            Recovered::Nothing => "the host lock was not held: nothing to do".into(),
            Recovered::Removed => "removed the lock (it recorded no phase); `infra plan` shows what the host is on".into(),
            Recovered::Finished => "the switch had been confirmed: finished its cleanup and released the lock".into(),
            Recovered::Undone { status: 0 } | Recovered::Cleaned => {
                "rolled back the interrupted switch and released the lock".into()
            }
            Recovered::Undone { status } => format!("rolled back the interrupted switch with errors (exit status {status}): see `journalctl -t infra` on {host}"),
            Recovered::Live | Recovered::Pending | Recovered::Unknown => "the lock is still held".into(),
        }
    }

    /// Whether the lock is gone and the host on one complete generation.
    pub fn released(&self) -> bool {
        matches!(
            self,
            Recovered::Nothing
                | Recovered::Removed
                | Recovered::Finished
                | Recovered::Cleaned
                | Recovered::Undone { status: 0 }
        )
    }
}

/// Run the recovery script on `remote` (one round trip).
pub fn recover(
    remote: &mut dyn Remote,
    state_dir: &str,
    mode: RecoverMode,
) -> Result<Recovered, ApplyError> {
    let host = remote.host().to_string();
    let text = format!(
        "set -- {}\n{}",
        mode.arg(),
        script::recover_script(state_dir)
    );
    let out = remote.run(&text, b"")?;
    let answer = String::from_utf8_lossy(&out.stdout);
    let last = answer
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let mut words = last.split_whitespace();
    let r = match words.next() {
        Some("NONE") => Recovered::Nothing,
        Some("LIVE") => Recovered::Live,
        Some("PENDING") => Recovered::Pending,
        Some("UNKNOWN") => Recovered::Unknown,
        Some("REMOVED") => Recovered::Removed,
        Some("FINISHED") => Recovered::Finished,
        Some("CLEANED") => Recovered::Cleaned,
        Some("UNDONE") => Recovered::Undone {
            status: words.next().and_then(|s| s.parse().ok()).unwrap_or(1),
        },
        _ => {
            return Err(ApplyError::Protocol {
                host,
                what: "recovery".into(),
                detail: format!(
                    "no result (exit status {}): {}",
                    out.status,
                    tail(&out.stderr_text(), 600)
                ),
            })
        }
    };
    Ok(r)
}
