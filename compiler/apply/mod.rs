//! Stage 8: apply a plan to hosts. Entry points: [`prepare`] (probe → plan, the
//! state it was made from), [`switch`] (one round trip: a new generation and the
//! switch to it), [`confirm`] (a NEW connection: health, cancel the rollback
//! timer), [`order::roll`] (failover groups one host at a time, health-gated),
//! [`generations`] and [`rollback_build`] for `infra rollback`.
//!
//! State on a host (see docs/plan-apply.md): `/var/lib/infra/generations/N/`
//! holds `manifest.json`, `paths`, `units`, `date`, `previous` and `files/` (the
//! installed bytes, secrets substituted, 0600 root); `current -> N`; `lock/`
//! (mkdir is atomic) with `holder`, `token`, `undo.sh` while a switch is under
//! way or awaiting confirmation; `backup/` keeps the originals of files infra
//! took over, restored when it lets go of them.
//!
//! Invariants:
//! - A switch is refused unless the host still is exactly as probed (fingerprint
//!   recomputed on the host, in the same round trip, after taking the lock).
//! - Nothing live changes before packages, users and directories are in place;
//!   a failure after the first live change runs the undo script (previous
//!   generation's files, backups, units), so the host is always on a complete
//!   generation.
//! - A switch is final only when a new connection confirmed it; otherwise the
//!   rollback timer armed by the switch undoes it.
//! - Secret values exist only in the payload and on the host (0600 files); no
//!   message, plan or manifest holds them.

mod confirm;
mod error;
mod generations;
pub mod order;
mod prepare;
mod recover;
pub mod script;
mod switch;
pub mod tar;

pub use confirm::confirm;
pub use error::{ApplyError, Undo};
pub use generations::{
    generations, parse_generations, relabel_rollback_plan, rollback_build, Generation, Generations,
};
pub use prepare::{
    build_sha256, health_checks, materialize, new_manifest, payload, prepare, secret_names,
    secret_sha256, MaterializeError, Materialized, Prepared,
};
pub use recover::{recover, Recovered};
pub use script::RecoverMode;
pub use switch::{switch, SwitchJob, Switched};

use crate::shell::base64_decode;

pub use crate::probe::STATE_DIR;

/// Manifest format written by this version.
pub const MANIFEST_FORMAT: u32 = 1;

pub fn sha256_hex(b: &[u8]) -> String {
    crate::encode::sha256_hex(b)
}

// Answers: lines of tab-separated fields.

fn records(stdout: &[u8]) -> Vec<Vec<String>> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn b64text(s: &str) -> String {
    base64_decode(s.as_bytes())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn tail(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    format!("...{}", &s[i..])
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::disallowed_macros)]
// tests write temp dirs, say what they skip
mod tests;
