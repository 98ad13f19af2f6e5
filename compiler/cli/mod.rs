//! The command-line interface: a thin layer over the library. Parses arguments,
//! reads files, calls one stage entry point after another, prints, returns the exit code.
//! Exit codes: 0 success / no changes, 1 error, 2 plan has changes (`--detailed-exitcode`).

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
    /// Format `.infra` files canonically (comments are kept).
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
        Command::Fmt { path, check } => fmt(&path.unwrap_or_else(|| PathBuf::from(".")), check),
    }
}

/// Print diagnostics to stderr (human) or stdout (json).
pub fn report(diags: &[Diag], sources: &SourceMap, format: MessageFormat) {
    match format {
        MessageFormat::Json => print!("{}", diag::render_json(diags, sources)),
        MessageFormat::Human => {
            let tty = std::io::stderr().is_terminal();
            let color = tty && std::env::var_os("NO_COLOR").is_none();
            eprint!("{}", diag::render(diags, sources, color, 100));
        }
    }
}

fn check(path: &Path, format: MessageFormat) -> i32 {
    let (sources, diags) = crate::check_path(path);
    report(&diags, &sources, format);
    if diag::has_errors(&diags) {
        1
    } else {
        if format == MessageFormat::Human {
            eprintln!("ok: {}", path.display());
        }
        0
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

fn fmt(path: &Path, check: bool) -> i32 {
    let files = match infra_files(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let mut status = 0;
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", f.display());
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
                    eprintln!(
                        "{} is not formatted (run `infra fmt {}`)",
                        f.display(),
                        f.display()
                    );
                    status = 1;
                } else if let Err(e) = std::fs::write(&f, out) {
                    eprintln!("error: cannot write {}: {e}", f.display());
                    status = 1;
                } else {
                    eprintln!("formatted {}", f.display());
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
