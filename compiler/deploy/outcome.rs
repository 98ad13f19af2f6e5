//! What a plan or an apply across the fleet came to, as values the CLI prints:
//! [`PlanRound`] (every host probed and planned, or why not) and
//! [`ApplyOutcome`] (how the roll ended), each with its exit code and its text.

use super::host::{Applied, HostRun};
use crate::apply::order::Step;
use crate::apply::ApplyError;
use crate::plan::Plan;

/// How an apply ended.
#[derive(Debug)]
pub enum ApplyOutcome {
    /// A host could not be probed or its lock settled: nothing was applied.
    NotStarted { errors: Vec<ApplyError> },
    /// Refused before anything was switched (conflicts, a lock).
    Refused { errors: Vec<ApplyError> },
    /// Every host is on the generation the configuration builds, confirmed.
    NoChanges,
    /// The roll ran: per host in roll order; `unchanged` hosts needed nothing.
    Rolled {
        results: Vec<(String, Step<Applied, ApplyError>)>,
        unchanged: usize,
    },
}

impl ApplyOutcome {
    /// 0: every host converged and confirmed; 3: a host is locked by another
    /// apply (or an unknown lock); 1: any other failure.
    pub fn exit_code(&self) -> i32 {
        let code = |errors: &mut dyn Iterator<Item = &ApplyError>| {
            let codes: Vec<i32> = errors.map(ApplyError::exit_code).collect();
            if !codes.is_empty() && codes.iter().all(|c| *c == 3) {
                3
            } else {
                1
            }
        };
        match self {
            ApplyOutcome::NoChanges => 0,
            ApplyOutcome::NotStarted { errors } | ApplyOutcome::Refused { errors } => {
                code(&mut errors.iter())
            }
            ApplyOutcome::Rolled { results, .. } => {
                let mut failed = results.iter().filter_map(|(_, s)| match s {
                    Step::Failed(e) => Some(e),
                    _ => None,
                });
                let failed: Vec<&ApplyError> = failed.by_ref().collect();
                if failed.is_empty() {
                    0
                } else {
                    code(&mut failed.into_iter())
                }
            }
        }
    }
}

/// One line of an outcome's report: for standard output, for standard error,
/// or an error (with its diagnostic and the command output it carries).
#[derive(Debug)]
pub enum Line<'a> {
    Out(String),
    Err(String),
    Error(&'a ApplyError),
}

impl ApplyOutcome {
    /// The report, in order; `total_secs`: the apply's wall time.
    pub fn lines(&self, total_secs: f64) -> Vec<Line<'_>> {
        let mut out = Vec::new();
        match self {
            ApplyOutcome::NotStarted { errors } => {
                out.extend(errors.iter().map(Line::Error));
                out.push(Line::Err("nothing was applied: every host must be reachable and settled before any is changed".into()));
            }
            ApplyOutcome::Refused { errors } => {
                out.extend(errors.iter().map(Line::Error));
                out.push(Line::Err("nothing was applied".into()));
            }
            ApplyOutcome::NoChanges => out.push(Line::Out("\nno changes: nothing to apply".into())),
            ApplyOutcome::Rolled { results, unchanged } => {
                out.push(Line::Out(String::new()));
                let (mut applied, mut failed_host) = (0, None);
                for (host, step) in results {
                    match step {
                        Step::Done(a) => {
                            applied += 1;
                            out.push(Line::Out(format!(
                                "{host}: generation {} applied and confirmed in {:.1} s ({}; {} sent)",
                                a.generation,
                                a.secs,
                                a.summary,
                                crate::plan::human_bytes(a.sent as u64)
                            )));
                            for (what, text) in &a.said {
                                out.push(Line::Out(format!("{host}: {what} said:")));
                                out.extend(
                                    text.trim_end()
                                        .lines()
                                        .map(|l| Line::Out(format!("{host}:   | {l}"))),
                                );
                            }
                            out.extend(
                                a.warnings
                                    .iter()
                                    .map(|w| Line::Out(format!("{host}: warning: {w}"))),
                            );
                        }
                        Step::Failed(e) => {
                            failed_host = Some(host.as_str());
                            out.push(Line::Error(e));
                        }
                        Step::NotTouched => out.push(Line::Out(format!(
                            "{host}: not touched (the roll stopped after {} failed)",
                            failed_host.unwrap_or("a host")
                        ))),
                    }
                }
                out.push(Line::Out(if failed_host.is_some() {
                    format!("apply failed: {applied} host(s) applied, the roll stopped ({total_secs:.1} s)")
                } else {
                    format!("applied: {applied} host(s) changed, {unchanged} unchanged ({total_secs:.1} s)")
                }));
            }
        }
        out
    }
}

/// `infra plan`: every host opened (probed, its lock looked at, planned), or the
/// error that kept it from being planned.
pub struct PlanRound {
    pub runs: Vec<HostRun>,
    pub errors: Vec<ApplyError>,
    pub plan: Plan,
    /// Hosts whose lock keeps them from being applied, with the story of it.
    pub locks: Vec<(String, String)>,
    /// What recovering interrupted applies did, by host.
    pub notes: Vec<(String, String)>,
}

impl PlanRound {
    pub fn new(opened: Vec<(String, Result<HostRun, ApplyError>)>) -> PlanRound {
        let (mut runs, mut errors) = (Vec::new(), Vec::new());
        for (_, r) in opened {
            match r {
                Ok(run) => runs.push(run),
                Err(e) => errors.push(e),
            }
        }
        let plan = Plan::new(runs.iter().map(|r| r.prepared.plan.clone()).collect());
        let locks = runs
            .iter()
            .filter_map(|r| r.lock_story().map(|s| (r.host.clone(), s)))
            .collect();
        let notes = runs
            .iter()
            .flat_map(|r| r.notes.iter().map(|n| (r.host.clone(), n.clone())))
            .collect();
        PlanRound {
            runs,
            errors,
            plan,
            locks,
            notes,
        }
    }

    /// Every host planned and free to apply: the plan can be saved.
    pub fn complete(&self) -> bool {
        self.errors.is_empty() && self.locks.is_empty()
    }

    /// 1: a host could not be planned; 3: a host is locked or awaits a
    /// confirmation; else 0, or with `detailed` 2 when something would change.
    pub fn exit_code(&self, detailed: bool) -> i32 {
        if !self.errors.is_empty() {
            1
        } else if !self.locks.is_empty() {
            3
        } else if detailed {
            self.plan.detailed_exit_code()
        } else {
            0
        }
    }

    /// `infra plan --json`.
    pub fn json(&self) -> serde_json::Value {
        plan_json(&self.plan, &self.runs, &self.errors)
    }
}

/// `infra plan --json`: the plan, each locked host's lock, the recovery notes
/// and the hosts that could not be planned.
pub fn plan_json(plan: &Plan, runs: &[HostRun], errors: &[ApplyError]) -> serde_json::Value {
    let mut v = serde_json::to_value(plan).unwrap_or_default();
    if let serde_json::Value::Object(o) = &mut v {
        o.insert(
            "locks".into(),
            runs.iter()
                .filter_map(|r| r.lock_json().map(|l| (r.host.clone(), l)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
        o.insert(
            "notes".into(),
            runs.iter()
                .flat_map(|r| {
                    r.notes
                        .iter()
                        .map(|n| serde_json::json!({"host": r.host, "note": n}))
                })
                .collect(),
        );
        o.insert(
            "errors".into(),
            errors.iter().map(|e| error_json(e, true)).collect(),
        );
    }
    v
}

/// An apply-side error as JSON (`plan --json`'s errors, `apply --json`'s
/// failed hosts): its code, message, help and output, and with `host` its host.
pub(super) fn error_json(e: &ApplyError, host: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "code": e.code(), "message": e.to_string(), "help": e.help(), "output": e.output(),
    });
    if let (true, serde_json::Value::Object(o)) = (host, &mut v) {
        o.insert("host".into(), e.host().into());
    }
    v
}
