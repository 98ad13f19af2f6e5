//! Saved plans (`infra plan --out FILE`, `infra apply --plan FILE`): the plan of
//! every host with the probed state it was made from, and the check that it
//! still applies.

use crate::apply::{self, Materialized, Prepared};
use crate::diag::Diag;
use crate::render::Build;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Format written by this version.
pub const FORMAT: u32 = 1;

/// A saved plan. No secret values: secret files are represented by hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: u32,
    pub hosts: Vec<Prepared>,
}

impl SavedPlan {
    pub fn new(hosts: Vec<Prepared>) -> SavedPlan {
        SavedPlan {
            format: FORMAT,
            hosts,
        }
    }

    pub fn to_json(&self) -> String {
        format!(
            "{}\n",
            serde_json::to_string_pretty(self).unwrap_or_default()
        )
    }

    /// Parse a saved plan read from `name`, then check it still matches the
    /// configuration (`build`) and the secret values (`files`): the plan is
    /// applied exactly, or refused (E0734) with the reason.
    pub fn parse_and_check(
        name: &str,
        text: &str,
        build: &Build,
        files: &BTreeMap<String, Materialized>,
    ) -> Result<SavedPlan, Box<Diag>> {
        let bad = |msg: String| {
            Box::new(
                Diag::error("E0734", msg)
                    .help(format!("make a new plan with `infra plan --out {name}`")),
            )
        };
        let sp: SavedPlan = serde_json::from_str(text)
            .map_err(|e| bad(format!("{name} is not a saved plan: {e}")))?;
        if sp.format != FORMAT {
            return Err(bad(format!(
                "{name} is a plan of format {}, this infra reads {FORMAT}",
                sp.format
            )));
        }
        for p in &sp.hosts {
            let Some(hb) = build.hosts.get(&p.host) else {
                return Err(bad(format!(
                    "the plan is for host {}, which the configuration no longer has",
                    p.host
                )));
            };
            if apply::build_sha256(hb) != p.build_sha256 {
                return Err(bad(format!(
                    "the configuration changed since the plan was made (host {})",
                    p.host
                )));
            }
            let now = files
                .get(&p.host)
                .map(|m| apply::secret_sha256(hb, m))
                .unwrap_or_default();
            if now != p.secret_sha256 {
                return Err(bad(format!(
                    "secret values changed since the plan was made (host {})",
                    p.host
                )));
            }
            if let Some(l) = &p.lock {
                return Err(bad(format!(
                    "{} was locked when the plan was made ({}): nothing about it was final",
                    p.host,
                    l.describe()
                )));
            }
        }
        Ok(sp)
    }
}
