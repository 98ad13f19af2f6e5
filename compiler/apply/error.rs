//! Everything that can go wrong applying to a host, and what happened to the switch.

use super::STATE_DIR;
use crate::probe::{LockState, ProbeError};
use crate::transport::TransportError;

/// Everything that can go wrong applying to a host. Every message starts with
/// the host; `help` says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("{host}: the host lock is held: {holder}")]
    Locked {
        host: String,
        holder: String,
        /// Live: an apply runs (waited `waited` seconds); Unknown: no phase recorded.
        state: LockState,
        waited: u64,
    },
    #[error("{host}: the connection broke during the switch to generation {generation} ({detail}); the host finishes or undoes the switch by itself")]
    Interrupted {
        host: String,
        generation: u64,
        detail: String,
    },
    #[error("there is no host `{host}` in the configuration")]
    NoHost { host: String, known: String },
    #[error("{host} changed since the plan ({detail}): nothing was done")]
    Changed { host: String, detail: String },
    #[error("{host}: the plan has conflicts: {}", conflicts.join("; "))]
    Conflicts {
        host: String,
        conflicts: Vec<String>,
    },
    #[error("{host}: step `{step}` failed (exit status {status}); {}", undo.describe())]
    Step {
        host: String,
        step: String,
        status: i32,
        output: String,
        undo: Box<Undo>,
    },
    #[error("{host}: health check of {check} failed after the switch (exit status {status}); {}", undo.describe())]
    Health {
        host: String,
        /// What was checked: "failover group office", "php_app.accounting".
        check: String,
        status: i32,
        output: String,
        undo: Box<Undo>,
    },
    #[error("{host}: cannot confirm the switch to generation {generation}: {detail}")]
    Unconfirmed {
        host: String,
        generation: u64,
        detail: String,
        deadline: u64,
    },
    #[error("{host}: the switch to generation {generation} was undone before it could be confirmed (the rollback timer fired?); the host is on generation {current}")]
    Undone {
        host: String,
        generation: u64,
        current: String,
    },
    #[error("{host}: cannot read the answer of the {what} script: {detail}")]
    Protocol {
        host: String,
        what: String,
        detail: String,
    },
    #[error("{host}: there is no generation {wanted} (generations: {available})")]
    NoGeneration {
        host: String,
        wanted: String,
        available: String,
    },
}

/// What happened to the switch after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// Failed before anything live changed.
    NothingSwitched { current: Option<u64> },
    /// Undone: back on `to` (None: the state before infra).
    RolledBack { to: Option<u64> },
    /// The undo script reported errors.
    UndoFailed {
        to: Option<u64>,
        status: i32,
        output: String,
    },
}

fn gen_name(g: Option<u64>) -> String {
    g.map(|g| format!("generation {g}"))
        .unwrap_or_else(|| "the state before infra (no generation)".into())
}

impl Undo {
    pub fn describe(&self) -> String {
        match self {
            Undo::NothingSwitched { current } => {
                format!(
                    "nothing was switched: the host stays on {}",
                    gen_name(*current)
                )
            }
            Undo::RolledBack { to } => format!("rolled back to {}", gen_name(*to)),
            Undo::UndoFailed { to, status, .. } => format!(
                "rolling back to {} reported errors (exit status {status}): check the host by hand",
                gen_name(*to)
            ),
        }
    }
}

impl ApplyError {
    pub fn code(&self) -> &'static str {
        match self {
            ApplyError::Transport(e) => e.code(),
            ApplyError::Probe(e) => e.code(),
            ApplyError::Locked { .. } => "E0720",
            ApplyError::Changed { .. } => "E0721",
            ApplyError::Conflicts { .. } => "E0722",
            ApplyError::Step { .. } => "E0723",
            ApplyError::Health { .. } => "E0724",
            ApplyError::Unconfirmed { .. } => "E0725",
            ApplyError::Undone { .. } => "E0726",
            ApplyError::Protocol { .. } => "E0727",
            ApplyError::NoGeneration { .. } => "E0728",
            ApplyError::Interrupted { .. } => "E0729",
            ApplyError::NoHost { .. } => "E0735",
        }
    }

    pub fn host(&self) -> &str {
        match self {
            ApplyError::Transport(e) => e.host(),
            ApplyError::Probe(e) => match e {
                ProbeError::Transport(t) => t.host(),
                ProbeError::BadPath { host, .. }
                | ProbeError::Remote { host, .. }
                | ProbeError::Protocol { host, .. } => host,
            },
            ApplyError::Locked { host, .. }
            | ApplyError::Changed { host, .. }
            | ApplyError::Conflicts { host, .. }
            | ApplyError::Step { host, .. }
            | ApplyError::Health { host, .. }
            | ApplyError::Unconfirmed { host, .. }
            | ApplyError::Undone { host, .. }
            | ApplyError::Protocol { host, .. }
            | ApplyError::NoGeneration { host, .. }
            | ApplyError::Interrupted { host, .. }
            | ApplyError::NoHost { host, .. } => host,
        }
    }

    /// Command output worth showing under the message (a failed step's tail).
    pub fn output(&self) -> Option<&str> {
        match self {
            ApplyError::Step { output, .. } | ApplyError::Health { output, .. } => {
                Some(output.as_str()).filter(|o| !o.trim().is_empty())
            }
            _ => None,
        }
    }

    pub fn help(&self) -> String {
        match self {
            ApplyError::Transport(e) => e.help(),
            ApplyError::Probe(e) => e.help(),
            ApplyError::Locked {
                host,
                state: LockState::Unknown,
                ..
            } => format!(
                "no phase is recorded in {STATE_DIR}/lock on {host} (made by hand, or by an older infra): if no apply runs there, `infra unlock {host}` removes it"
            ),
            ApplyError::Locked { host, waited, .. } => format!(
                "an apply is running on {host} (still after {waited} s): let it finish, then run the command again; an apply whose client is gone is recognised and recovered by the next one"
            ),
            ApplyError::Interrupted { .. } => {
                "run `infra apply` again: it confirms the switch if the host ended on what the configuration builds and its health check passes, or rolls it back first".into()
            }
            ApplyError::NoHost { known, .. } => format!("hosts: {known}"),
            ApplyError::Changed { .. } => "run `infra plan` again and review the new plan".into(),
            ApplyError::Conflicts { .. } => {
                "move the paths named above away on the host, then plan again".into()
            }
            ApplyError::Step { host, step, undo, .. } => {
                let mut h = format!("the last lines `{step}` printed on {host} follow; fix the cause (configuration or host) and apply again");
                if let Undo::UndoFailed { output, .. } = undo.as_ref() {
                    h.push_str(&format!("; the rollback said: {}", output.trim()));
                }
                h
            }
            ApplyError::Health { host, check, .. } => format!(
                "the check script of {check} failed on {host} after the switch (its last lines follow); the change was undone and no host after it was touched"
            ),
            ApplyError::Unconfirmed { host, deadline, .. } => format!(
                "if the change cut SSH off, {host} switches back by itself within {deadline} s of the switch (or at its next boot); otherwise the next `infra apply` confirms or rolls it back"
            ),
            ApplyError::Undone { .. } => {
                "the confirmation came too late or the lock was removed: raise --confirm-timeout, check the host, and apply again".into()
            }
            ApplyError::Protocol { host, .. } => format!(
                "something on {host} printed into the script's answer, or the connection broke; run `infra plan` to see the host's state"
            ),
            ApplyError::NoGeneration { host, .. } => {
                format!("`infra generations {host}` lists the generations")
            }
        }
    }

    /// The exit code of a command that ends with this error: 3 when the host is
    /// locked (an apply runs there, or an unknown lock), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if matches!(self, ApplyError::Locked { .. }) {
            3
        } else {
            1
        }
    }

    pub fn to_diag(&self) -> crate::diag::Diag {
        crate::diag::Diag::error(self.code(), self.to_string()).help(self.help())
    }
}
