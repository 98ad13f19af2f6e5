//! `infra apply --json`: what happens, as one JSON object per line, for tools
//! that drive infra (a CI job, a dashboard). The live events come through
//! [`super::Events::event`] while the apply runs; the per-host results and the
//! summary from [`ApplyOutcome::events`] when it ends. The schema is
//! docs/apply-events.schema.json (every line validates against it in the lab
//! tests); `schema` in each event is [`SCHEMA`].

use super::outcome::ApplyOutcome;
use crate::apply::order::Step;
use crate::apply::ApplyError;
use serde::Serialize;

/// The version of the event stream's format; a change that is not only an
/// addition gets a new one.
pub const SCHEMA: u32 = 1;

/// An event of the apply as it runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// A host was probed and planned.
    Probed {
        host: &'a str,
        /// The generation current on the host, if any.
        current: Option<u64>,
        /// What its plan changes, in words ("no changes", "3 files, 1 restart").
        changes: String,
        changed: bool,
    },
    /// A host's switch to `generation` starts.
    Switch { host: &'a str, generation: u64 },
    /// The switch is done; its confirmation runs over a new connection with
    /// these health checks (empty: SSH alone).
    HealthGate {
        host: &'a str,
        generation: u64,
        checks: Vec<&'a str>,
    },
    /// The host is on `generation`, confirmed.
    Confirmed {
        host: &'a str,
        generation: u64,
        secs: f64,
    },
}

/// An event's JSON line: `{"schema": 1, "event": ..., ...}`.
pub fn line(v: &impl Serialize) -> String {
    let mut v = serde_json::to_value(v).unwrap_or_default();
    if let serde_json::Value::Object(o) = &mut v {
        o.insert("schema".into(), SCHEMA.into());
    }
    v.to_string()
}

fn error(e: &ApplyError) -> serde_json::Value {
    super::outcome::error_json(e, false)
}

impl ApplyOutcome {
    /// The end of the event stream: a `host` event per host that was rolled or
    /// could not be started (result `applied`, `failed`, `not_touched`), then
    /// one `summary` with the exit code; each printed with [`line`].
    pub fn events(&self, total_secs: f64) -> Vec<serde_json::Value> {
        use serde_json::json;
        let mut out = Vec::new();
        let (result, applied, unchanged) = match self {
            ApplyOutcome::NoChanges => ("no_changes", 0, None),
            ApplyOutcome::NotStarted { errors } | ApplyOutcome::Refused { errors } => {
                for e in errors {
                    out.push(
                        json!({"event": "host", "host": e.host(), "result": "failed",
                                    "error": error(e)}),
                    );
                }
                let r = if matches!(self, ApplyOutcome::Refused { .. }) {
                    "refused"
                } else {
                    "not_started"
                };
                (r, 0, None)
            }
            ApplyOutcome::Rolled { results, unchanged } => {
                let mut applied = 0;
                let mut failed = false;
                for (host, step) in results {
                    out.push(match step {
                        Step::Done(a) => {
                            applied += 1;
                            json!({"event": "host", "host": host, "result": "applied",
                                   "generation": a.generation, "secs": a.secs,
                                   "changes": a.summary, "sent_bytes": a.sent,
                                   "warnings": a.warnings})
                        }
                        Step::Failed(e) => {
                            failed = true;
                            json!({"event": "host", "host": host, "result": "failed",
                                   "error": error(e)})
                        }
                        Step::NotTouched => {
                            json!({"event": "host", "host": host, "result": "not_touched"})
                        }
                    });
                }
                (
                    if failed { "failed" } else { "applied" },
                    applied,
                    Some(*unchanged),
                )
            }
        };
        out.push(json!({
            "event": "summary", "result": result, "applied": applied,
            "unchanged": unchanged, "secs": total_secs, "exit_code": self.exit_code(),
        }));
        out
    }
}
