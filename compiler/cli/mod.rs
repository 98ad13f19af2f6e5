//! The command-line interface: a thin layer over the library. Parses arguments,
//! reads files, calls one stage entry point after another, prints, returns the exit code.
//! Exit codes: 0 success / no changes, 1 error, 2 plan has changes (`--detailed-exitcode`),
//! 3 a host is locked by another apply or awaits a confirmation.

pub mod backup;
pub mod demo;
pub mod deploy;
pub mod drill;
pub mod init;
pub mod lab;
pub mod progress;
pub mod secrets;
pub mod status;

use crate::diag::{self, Diag};
use crate::source::SourceMap;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "infra", version, about = "Two servers, redundant, boring.", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum MessageFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Svg,
    /// Plain text (`--topology` only).
    Text,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check a configuration: parse, resolve, lint. Exit 1 on any error.
    Check {
        /// A `.infra` file or a directory of them (default: current directory).
        path: Option<PathBuf>,
        /// `json`: one diagnostic per line, for editors.
        #[arg(long, value_enum, default_value = "human")]
        message_format: MessageFormat,
    },
    /// Build the configuration: per host, exactly the files it must have, plus a
    /// manifest (packages, units, steps). Deterministic; secrets only as placeholders.
    Build {
        path: Option<PathBuf>,
        /// Output directory (one sub-directory per host).
        #[arg(long, default_value = "build")]
        out: PathBuf,
    },
    /// The probe script `plan` sends to HOST (for measuring it on the host:
    /// benches/probe-time.sh).
    #[command(hide = true)]
    ProbeScript { host: String, path: Option<PathBuf> },
    /// Draw the dependency graph (instances per host, apply order between hosts),
    /// or with `--topology` the machines: VIPs, replication and share pushes from
    /// the VIP holder, active-only jobs, witness.
    Graph {
        path: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
        /// Write to FILE instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The topology instead of the dependency graph.
        #[arg(long)]
        topology: bool,
        /// With --topology: the VIPs where they are now and failing hosts in red,
        /// from `infra status` (connects to the hosts).
        #[arg(long, requires = "topology")]
        live: bool,
        #[command(flatten)]
        conn: deploy::Connection,
    },
    /// Show what apply would change on every host (connects and probes them).
    Plan(deploy::PlanArgs),
    /// Apply the configuration: a new generation per host, rolled through each
    /// failover group one host at a time, health-checked, confirmed.
    Apply(deploy::ApplyArgs),
    /// Switch a host back to an earlier generation.
    Rollback(deploy::RollbackArgs),
    /// List a host's generations.
    Generations(deploy::HostArgs),
    /// Recover a host lock left by an apply that is gone (a switch not confirmed
    /// is rolled back); refused while an apply runs there.
    Unlock(deploy::HostArgs),
    /// The main job, on an embedded default: boot the accounting example as two local
    /// machines, apply it, show where the VIP and the database primary are, and run a
    /// failover drill. Leaves the lab running (`infra lab down --lab accounting`).
    Demo {
        /// Use this configuration instead of the embedded accounting example.
        path: Option<PathBuf>,
    },
    /// Measure what a failure costs on the lab: a writer through the VIP while a fault
    /// hits the pair; acknowledged writes lost, seconds until writable again, seconds
    /// with two primaries, time to heal. Exit 1 over a `--max-*` budget.
    Drill(drill::DrillArgs),
    /// List every member's backups (`postgres_backup`: kind, time, age, size, the
    /// WAL archived; `mariadb_backup`: the chains, the binary log copied) and share snapshots (`share_snapshots`: time, the room each
    /// added). Exit 1 when a repository or a member cannot be read.
    Backups(backup::BackupsArgs),
    /// Restore a `postgres_backup` or `mariadb_backup` into a scratch instance on
    /// a member that does not hold the VIP (never over the running server) and
    /// count every table's rows.
    Restore(backup::RestoreArgs),
    /// The live truth, read-only: who holds each VIP, which database is primary and
    /// which streams (lag), the last share pushes, active-only jobs, failed units,
    /// generations against the repo, disks. Exit 0 healthy, 1 a host unreachable,
    /// 2 degraded, down or split brain.
    Status(status::StatusArgs),
    /// Run a shell command on the hosts (`--limit`), in parallel: each line of
    /// output prefixed with its host, then a summary. Exit 1 unless it exited 0
    /// on every host.
    Exec(deploy::ExecArgs),
    /// The repository's encrypted secrets (secrets/NAME.age, encrypted to every
    /// `admin`): list, set, rm, rekey. Values are never printed.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Boot the declared hosts locally as systemd machines; failover drills.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Start a configuration: DIR/main.infra for two machines and a virtual IP,
    /// every line explained (and a .gitignore for secrets.env); with --from, read
    /// from the machine that runs the application today (over SSH, read-only):
    /// its database, PHP app, writable directories and cron jobs, with REVIEW.md
    /// for what to confirm and what could not be translated. Refuses a DIR that
    /// is not empty unless --force.
    Init(init::InitArgs),
    /// The language server for editors (stdio): `infra check`'s diagnostics as you
    /// type, hover, go to definition, references, completion, outline, formatting,
    /// rename (docs/editors.md).
    Lsp {
        /// Accepted for editors that pass it; stdio is the only transport.
        #[arg(long)]
        stdio: bool,
    },
    /// Format `.infra` files canonically (comments are kept): a file or a directory's
    /// `*.infra`, and the files of the repo they import.
    Fmt {
        path: Option<PathBuf>,
        /// Do not write; exit 1 if any file is not formatted.
        #[arg(long)]
        check: bool,
    },
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    match cli.command {
        Command::Check {
            path,
            message_format,
        } => check(&path.unwrap_or_else(|| PathBuf::from(".")), message_format),
        Command::Plan(a) => deploy::plan(a),
        Command::Apply(a) => deploy::apply(a),
        Command::Rollback(a) => deploy::rollback(a),
        Command::Generations(a) => deploy::generations(a),
        Command::Unlock(a) => deploy::unlock(a),
        Command::Fmt { path, check } => fmt(&path.unwrap_or_else(|| PathBuf::from(".")), check),
        Command::Lab(c) => lab::run(c, Path::new(".")),
        Command::Lsp { stdio: _ } => lsp(),
        Command::Init(a) => init::run(a),
        Command::Demo { path } => demo::run(path),
        Command::Drill(a) => drill::run(a),
        Command::Backups(a) => backup::list(a),
        Command::Restore(a) => backup::restore(a),
        Command::Status(a) => status::run(a),
        Command::Exec(a) => deploy::exec(a),
        Command::Secrets(c) => secrets::run(c),
        Command::Build { path, out } => build(&path.unwrap_or_else(|| PathBuf::from(".")), &out),
        Command::ProbeScript { host, path } => {
            probe_script(&host, &path.unwrap_or_else(|| PathBuf::from(".")))
        }
        Command::Graph {
            path,
            format,
            out,
            topology,
            live,
            conn,
        } => {
            let path = path.unwrap_or_else(|| PathBuf::from("."));
            if topology {
                topology_graph(&path, format, out, live.then_some(&conn))
            } else {
                graph(&path, format, out)
            }
        }
    }
}

/// [`crate::check`] a configuration on the filesystem, printing its diagnostics.
/// `Err(exit code)` when there is an error.
pub fn load(path: &Path) -> Result<crate::Checked, i32> {
    let c = crate::check(path, &crate::resolve::FsLoader).map_err(|f| report_failure(&f))?;
    report(&c.diags, &c.model.sources, MessageFormat::Human);
    Ok(c)
}

/// [`crate::compile()`] a configuration on the filesystem, printing its diagnostics.
pub fn load_build(path: &Path) -> Result<crate::Compilation, i32> {
    let c = crate::compile(path, &crate::resolve::FsLoader).map_err(|f| report_failure(&f))?;
    report(&c.diags, &c.model.sources, MessageFormat::Human);
    Ok(c)
}

/// Print a failure's diagnostics (the warnings of the stages that passed first);
/// returns the exit code.
fn report_failure(f: &crate::Failure) -> i32 {
    report(&f.warnings, &f.sources, MessageFormat::Human);
    report(&f.diags, &f.sources, MessageFormat::Human);
    1
}

fn probe_script(host: &str, path: &Path) -> i32 {
    let c = match load_build(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match c.build.hosts.get(host) {
        Some(b) => {
            out!("{}", crate::probe::probe_script(b, crate::apply::STATE_DIR));
            0
        }
        None => {
            let known: Vec<&str> = c.build.hosts.keys().map(String::as_str).collect();
            deploy::show(&crate::apply::ApplyError::NoHost {
                host: host.to_string(),
                known: known.join(", "),
            });
            1
        }
    }
}

fn build(path: &Path, out: &Path) -> i32 {
    let b = match load_build(path) {
        Ok(c) => c.build,
        Err(code) => return code,
    };
    if let Err(e) = crate::render::write_build(&b, out) {
        errln!("error: cannot write the build to {}: {e}", out.display());
        return 1;
    }
    for (name, h) in &b.hosts {
        errln!(
            "{name}: {} files, {} units, {} steps, {} packages",
            h.files.len(),
            h.units.len(),
            h.steps.len(),
            h.packages.len()
        );
    }
    errln!("wrote {}", out.display());
    0
}

fn graph(path: &Path, format: GraphFormat, out: Option<PathBuf>) -> i32 {
    let c = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if matches!(format, GraphFormat::Text) {
        errln!("error: `--format text` draws only the topology: add `--topology`, or use `--format dot` or `svg`");
        return 1;
    }
    emit(crate::graph::to_dot(&c.model, &c.graph), format, out)
}

/// `infra graph --topology`: from the model, or `live` from `infra status`.
fn topology_graph(
    path: &Path,
    format: GraphFormat,
    out: Option<PathBuf>,
    live: Option<&deploy::Connection>,
) -> i32 {
    let c = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut t = crate::graph::Topology {
        model: &c.model,
        holders: Default::default(),
        failing: Default::default(),
        leases: Default::default(),
    };
    if let Some(conn) = live {
        let report = match status::live(path, conn) {
            Ok(r) => r,
            Err(code) => return code,
        };
        for g in &report.groups {
            if let Some(h) = &g.holder {
                t.holders.insert(g.name.clone(), h.clone());
            }
            if let Some(l) = g.witness.as_ref().and_then(|w| w.lease_holder.as_ref()) {
                t.leases.insert(g.name.clone(), l.clone());
            }
        }
        for h in &report.hosts {
            let named = |p: &crate::status::Problem| {
                p.text.starts_with(&format!("{} ", h.host))
                    || p.text.starts_with(&format!("{}'s ", h.host))
                    || p.text.starts_with(&format!("{}: ", h.host))
            };
            if h.facts.is_none() || report.problems.iter().any(named) {
                t.failing.insert(h.host.clone());
            }
        }
    }
    match format {
        GraphFormat::Text => emit_bytes(t.text().into_bytes(), out),
        _ => emit(t.dot(), format, out),
    }
}

/// DOT as DOT, or drawn by Graphviz as SVG, to `out` or standard output.
fn emit(dot: String, format: GraphFormat, out: Option<PathBuf>) -> i32 {
    let bytes = match format {
        GraphFormat::Dot | GraphFormat::Text => dot.into_bytes(),
        GraphFormat::Svg => {
            use std::io::Write;
            use std::process::{Command, Stdio};
            let child = Command::new("dot")
                .arg("-Tsvg")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn();
            let mut child = match child {
                Ok(c) => c,
                Err(_) => {
                    errln!("error: `dot` (Graphviz) is not installed: install it with `apt-get install graphviz`, or use `--format dot`");
                    return 1;
                }
            };
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(dot.as_bytes());
            }
            match child.wait_with_output() {
                Ok(o) if o.status.success() => o.stdout,
                Ok(o) => {
                    errln!(
                        "error: dot failed: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    );
                    return 1;
                }
                Err(e) => {
                    errln!("error: dot failed: {e}");
                    return 1;
                }
            }
        }
    };
    emit_bytes(bytes, out)
}

fn emit_bytes(bytes: Vec<u8>, out: Option<PathBuf>) -> i32 {
    match out {
        Some(f) => {
            if let Err(e) = std::fs::write(&f, bytes) {
                errln!("error: cannot write {}: {e}", f.display());
                return 1;
            }
            0
        }
        None => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(&bytes);
            0
        }
    }
}

/// Print diagnostics to stderr (human) or stdout (json).
pub fn report(diags: &[Diag], sources: &SourceMap, format: MessageFormat) {
    match format {
        MessageFormat::Json => out!("{}", diag::render_json(diags, sources)),
        MessageFormat::Human => {
            let tty = std::io::stderr().is_terminal();
            let color = tty && std::env::var_os("NO_COLOR").is_none();
            err!("{}", diag::render(diags, sources, color, 100));
        }
    }
}

fn check(path: &Path, format: MessageFormat) -> i32 {
    // and the secrets beside it: a plaintext file git would commit, unused ones
    let (sources, diags) =
        crate::check_path_and(path, |c| crate::secrets::audit(&c.root_dir, &c.model));
    report(&diags, &sources, format);
    if diag::has_errors(&diags) {
        1
    } else {
        if format == MessageFormat::Human {
            errln!("ok: {}", path.display());
        }
        0
    }
}

fn lsp() -> i32 {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("infra"));
    let (conn, io) = lsp_server::Connection::stdio();
    let r = crate::lsp::serve(conn, crate::lsp::Options { cache });
    match r {
        Ok(()) => {
            let _ = io.join();
            0
        }
        Err(e) => {
            errln!("infra lsp: {e}");
            1
        }
    }
}

fn infra_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "infra"))
            .collect();
        v.sort();
        Ok(v)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

/// The files `infra fmt PATH` formats: PATH's own (`*.infra` of a directory, or the
/// file), then every file of the repo they import, recursively (the files `infra
/// check PATH` reads, without `std/`).
fn fmt_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = infra_files(path)?
        .iter()
        .map(|p| crate::resolve::load::normalize(p))
        .collect();
    let loaded = crate::resolve::load::load(path, &crate::resolve::FsLoader);
    for f in loaded.user_files {
        if !files.contains(&f) {
            files.push(f);
        }
    }
    Ok(files)
}

fn fmt(path: &Path, check: bool) -> i32 {
    let files = match fmt_files(path) {
        Ok(f) => f,
        Err(e) => {
            errln!("error: {e}");
            return 1;
        }
    };
    let mut status = 0;
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                errln!("error: cannot read {}: {e}", f.display());
                status = 1;
                continue;
            }
        };
        let mut sources = SourceMap::new();
        let id = sources.add(f.display().to_string(), text.clone());
        match crate::fmt::format_source(id, &text) {
            Ok(out) if out == text => {}
            Ok(out) => {
                if check {
                    errln!(
                        "{} is not formatted (run `infra fmt {}`)",
                        f.display(),
                        f.display()
                    );
                    status = 1;
                } else if let Err(e) = std::fs::write(&f, out) {
                    errln!("error: cannot write {}: {e}", f.display());
                    status = 1;
                } else {
                    errln!("formatted {}", f.display());
                }
            }
            Err(diags) => {
                report(&diags, &sources, MessageFormat::Human);
                status = 1;
            }
        }
    }
    status
}
