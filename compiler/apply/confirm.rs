//! Confirming a switch on a new connection.

use super::script::{self, HealthCheck};
use super::{b64text, records, tail, ApplyError, Undo};
use crate::transport::Remote;

/// Confirm a switch on a NEW session: health checks, cancel the timer.
pub fn confirm(
    session: &mut dyn Remote,
    state_dir: &str,
    token: &str,
    generation: u64,
    previous: Option<u64>,
    checks: &[HealthCheck],
    health_timeout: u64,
) -> Result<(), ApplyError> {
    let host = session.host().to_string();
    let text = script::confirm_script(state_dir, token, generation, checks, health_timeout);
    let out = session.run(&text, b"")?;
    let recs = records(&out.stdout);
    let mut health: Option<(String, i32, String)> = None;
    for r in &recs {
        match r.first().map(String::as_str) {
            Some("CONFIRMED") => return Ok(()),
            Some("GONE") => {
                return Err(ApplyError::Undone {
                    host,
                    generation,
                    current: r
                        .get(1)
                        .filter(|s| !s.is_empty())
                        .cloned()
                        .unwrap_or_else(|| "none".into()),
                })
            }
            Some("HEALTH") => {
                health = Some((
                    r.get(1).cloned().unwrap_or_default(),
                    r.get(2).and_then(|s| s.parse().ok()).unwrap_or(1),
                    b64text(r.get(3).map_or("", String::as_str)),
                ))
            }
            Some("UNDO") => {
                let (check, status, output) = health.take().unwrap_or_default();
                let ustatus: i32 = r.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
                let undo = if ustatus == 0 {
                    Undo::RolledBack { to: previous }
                } else {
                    Undo::UndoFailed {
                        to: previous,
                        status: ustatus,
                        output: b64text(r.get(2).map_or("", String::as_str)),
                    }
                };
                return Err(ApplyError::Health {
                    host,
                    check,
                    status,
                    output,
                    undo: Box::new(undo),
                });
            }
            _ => {}
        }
    }
    Err(ApplyError::Protocol {
        host,
        what: "confirm".into(),
        detail: format!(
            "no result (exit status {}): {}",
            out.status,
            tail(&out.stderr_text(), 600)
        ),
    })
}
