//! `infra status`: one read-only probe per host (the plan's, with status's
//! questions in the same round trip), judged by [`crate::status::assess`].

use super::deploy::{prepare_readonly, Connection, Selection};
use super::progress::{color, Progress};
use crate::apply::Materialized;
use crate::deploy::Fleet;
use crate::status::{self, HostStatus, Report};
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// A `.infra` file or a directory of them (default: current directory).
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Connection,
    #[command(flatten)]
    pub select: Selection,
    /// The report as JSON (docs/status.md has its schema).
    #[arg(long)]
    pub json: bool,
    /// Probe again every SECONDS and redraw (until interrupted).
    #[arg(long, value_name = "SECONDS")]
    pub watch: Option<u64>,
    /// Secret values, `name=value` per line (default: secrets.env next to the
    /// configuration): status compares each host with what the repo builds.
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
}

pub fn run(args: StatusArgs) -> i32 {
    let (mut fleet, files, known) = match prepare_readonly(
        &args.path,
        &args.conn,
        &args.select,
        args.secrets.as_deref(),
    ) {
        Ok(x) => x,
        Err(code) => return code,
    };
    fleet.status = true;
    loop {
        let report = report(&fleet, &files, known);
        if args.json {
            outln!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
        } else {
            if args.watch.is_some() && color() {
                // redraw in place: home, clear the screen
                out!("\x1b[H\x1b[2J");
            }
            out!("{}", status::render(&report, color()));
        }
        if crate::out::stdout_closed() {
            // nobody reads the watch any more (`status --watch | head`)
            return report.exit_code();
        }
        match args.watch {
            Some(secs) => std::thread::sleep(Duration::from_secs(secs.max(1))),
            None => return report.exit_code(),
        }
    }
}

/// Probe every host of `fleet` (its `status` set) and judge the answers
/// (`known`: the files hold the real secret values, so what is pending counts).
pub fn report(fleet: &Fleet, files: &BTreeMap<String, Materialized>, known: bool) -> Report {
    let hosts = fleet.hosts();
    let progress = Progress::new(&hosts);
    let opened = fleet.open(&hosts, files, &progress);
    progress.clear();
    let answers = opened
        .into_iter()
        .map(|(host, r)| match r {
            Ok(run) => HostStatus {
                host,
                facts: Some(status::parse(run.observed.status.as_deref().unwrap_or(""))),
                error: None,
                addresses: run.observed.addresses.clone(),
                generation: run.observed.generation,
                pending: known.then_some(run.prepared.plan.actions.len()),
                failed_units: run
                    .observed
                    .units
                    .values()
                    .filter(|u| u.active_state == "failed")
                    .map(|u| u.id.clone())
                    .collect(),
            },
            Err(e) => HostStatus {
                host,
                facts: None,
                error: Some(e.to_string()),
                addresses: Vec::new(),
                generation: None,
                pending: None,
                failed_units: Vec::new(),
            },
        })
        .collect();
    status::assess(&fleet.model, answers)
}

/// `infra lab status DIR`: the configuration's status over the lab, after the
/// lab's own host states; Err(exit code) when DIR does not compile (its errors
/// printed).
pub fn of_lab(dir: &std::path::Path) -> Result<Report, i32> {
    let conn = Connection {
        lab: true,
        accept_new_host_keys: false,
    };
    live(dir, &conn)
}

/// The status report of the configuration at `dir` over `conn`.
pub fn live(dir: &std::path::Path, conn: &Connection) -> Result<Report, i32> {
    let (mut fleet, files, known) =
        prepare_readonly(&Some(dir.to_path_buf()), conn, &Default::default(), None)?;
    fleet.status = true;
    Ok(report(&fleet, &files, known))
}
