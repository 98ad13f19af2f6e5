//! `infra drill`: a thin layer over [`crate::drill`]: take the failover group and its
//! PostgreSQL cluster from the configuration, run the rounds on the lab, print.

use crate::drill::{self, Budget, DrillSpec, Fault, Member};
use crate::lab;
use crate::resolve::{Model, Value};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct DrillArgs {
    /// Configuration directory (default: the current directory); its lab must be up and
    /// applied (`infra demo`, or `infra lab up` then `infra apply --lab`).
    pub path: Option<PathBuf>,
    /// Consent: the drill breaks machines (power cuts, killed servers, cut links), so
    /// it runs only on the configuration's local lab and says so with `--lab`.
    #[arg(long)]
    pub lab: bool,
    /// What to break.
    #[arg(long, value_enum)]
    pub fault: Fault,
    /// How many times (each round starts from a whole pair).
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Seconds the fault lasts before it is healed (default per fault: poweroff 10,
    /// pauses, partition and isolate 30, stress 60, kill-db and restart-standby 0).
    #[arg(long)]
    pub hold: Option<u64>,
    /// The writer's ceiling, writes per second (each write is a new connection).
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// The failover group to drill (default: the first with a `postgres` cluster).
    #[arg(long)]
    pub group: Option<String>,
    /// Exit 1 when a round loses more acknowledged writes than this.
    #[arg(long)]
    pub max_lost: Option<u64>,
    /// Exit 1 when writes through the VIP take longer than this (seconds) to succeed again.
    #[arg(long)]
    pub max_unwritable: Option<f64>,
    /// Exit 1 when two members accept writes for longer than this (seconds).
    #[arg(long)]
    pub max_dual_primary: Option<f64>,
    /// Exit 1 when the pair takes longer than this (seconds) to be whole again.
    #[arg(long)]
    pub max_heal: Option<f64>,
    /// Draw each round's timeline into FILE (SVG): acknowledged writes per 100 ms, who
    /// holds the VIP, who accepts writes, the fault window, two primaries in red.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Print the report as JSON (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: DrillArgs) -> i32 {
    let dir = a.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let checked = match super::load(&dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !a.lab {
        errln!("error: the drill breaks machines (power cuts, killed databases, cut links): it runs only on the local lab, and only with `--lab` (`infra drill {} --lab --fault {}`)", dir.display(), a.fault.name());
        return 1;
    }
    let name = lab::lab_name(&dir);
    if a.fault == Fault::Restore {
        return super::backup::drill(&dir, &checked.model);
    }
    let budget = Budget {
        max_lost: a.max_lost,
        max_unwritable_s: a.max_unwritable,
        max_dual_primary_s: a.max_dual_primary,
        max_heal_s: a.max_heal,
    };
    let hold = a
        .hold
        .map(Duration::from_secs)
        .unwrap_or_else(|| a.fault.default_hold());
    let spec = match spec_for(
        &checked.model,
        &name,
        a.group.as_deref(),
        a.fault,
        a.rounds,
        hold,
        budget,
    ) {
        Ok(s) => DrillSpec { rate: a.rate, ..s },
        Err(e) => {
            errln!("error: {e}");
            return 1;
        }
    };
    match lab::status(&name) {
        Ok(s) if s.up => {}
        Ok(_) => {
            errln!("error: lab `{name}` is not up: the drill runs on the lab only. Boot and apply it first: `infra lab up {d}` then `infra apply --lab {d}` (or `infra demo`)", d = dir.display());
            return 1;
        }
        Err(e) => {
            errln!("error: {e}");
            return 1;
        }
    }
    let say = |s: &str| errln!("drill: {s}");
    match drill::run(&spec, &say) {
        Ok(report) => {
            if let Some(f) = &a.svg {
                if let Err(e) = std::fs::write(f, drill::svg::render(&report)) {
                    errln!("error: cannot write {}: {e}", f.display());
                    return 1;
                }
            }
            if a.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(j) => outln!("{j}"),
                    Err(e) => {
                        errln!("error: {e}");
                        return 1;
                    }
                }
            } else {
                out!("{report}");
            }
            if report.ok() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            errln!("error: {e}");
            1
        }
    }
}

/// The group and cluster to drill (`group`: by name, else the first failover group
/// with a `postgres` cluster).
pub fn spec_for(
    model: &Model,
    lab: &str,
    group: Option<&str>,
    fault: Fault,
    rounds: u32,
    hold: Duration,
    budget: Budget,
) -> Result<DrillSpec, String> {
    let clusters: Vec<_> = model
        .instances
        .iter()
        .filter(|i| i.kind.value == "postgres")
        .filter_map(|i| match i.param("failover").map(|p| &p.value) {
            Some(Value::Group(g)) => Some((*g, i)),
            _ => None,
        })
        .collect();
    let pick = match group {
        Some(g) => clusters
            .iter()
            .find(|(id, _)| model.groups[*id].name.value == g)
            .ok_or_else(|| format!("failover group `{g}` has no `postgres` cluster to drill"))?,
        None => clusters.first().ok_or_else(|| {
            "no `postgres` cluster on a failover group: the drill writes into PostgreSQL through the VIP (MariaDB is not drilled yet)".to_string()
        })?,
    };
    let (gid, pg) = pick;
    let group = &model.groups[*gid];
    let int = |n: &str, d: i64| match pg.param(n).map(|p| &p.value) {
        Some(Value::Int(v)) => *v,
        _ => d,
    };
    Ok(DrillSpec {
        lab: lab.to_string(),
        group: group.name.value.clone(),
        members: group
            .members
            .iter()
            .map(|m| {
                let h = &model.hosts[m.value];
                Member {
                    name: h.name.value.clone(),
                    address: h.address.value,
                }
            })
            .collect(),
        vip: group.vip.value.addr,
        version: int("version", 15),
        port: u16::try_from(int("port", 5432)).unwrap_or(5432),
        sync: matches!(pg.param("replication").map(|p| &p.value), Some(Value::Str(s)) if s == "sync"),
        cluster: pg.name.value.clone(),
        fault,
        rounds: rounds.max(1),
        hold,
        rate: 200,
        budget,
    })
}
