//! infra: a small declarative language for two or three redundant servers,
//! compiled to keepalived, systemd, rsync and database replication, applied over SSH.
//!
//! Pipeline (one module per stage, each with one entry function):
//! `syntax::parse` → `resolve::resolve` → `lint::lint` → `graph::graph` →
//! `render::render` → `probe::probe` → `plan::plan` → `apply::apply`.
//!
//! The front end runs in one place, the driver in [`mod@compile`]: [`check`] (resolve,
//! lint, graph; `infra check`, editors) and [`compile()`] (then the templates and
//! render) return a [`Checked`] / [`Compilation`] or a [`Failure`]; every subcommand,
//! test and benchmark starts from one of them. Files come through a
//! [`resolve::Loader`] (the filesystem, or memory in tests and the fuzzer).
//! See docs/ARCHITECTURE.md.

// Printing that survives a closed pipe (`infra plan | head`): outln!, errln!.
#[macro_use]
pub mod out;
pub mod apply;
pub mod backup;
// IO at the edge: the command line: arguments, files, the environment, exit codes.
#[allow(clippy::disallowed_methods)]
pub mod cli;
pub mod compile;
pub mod deploy;
pub mod diag;
// IO at the edge: breaks the lab and talks PostgreSQL to it from the lab namespace.
#[allow(clippy::disallowed_methods)]
pub mod drill;
pub mod encode;
// IO at the edge: fault injection reads INFRA_PAUSE_AT.
#[allow(clippy::disallowed_methods)]
pub mod fault;
pub mod fmt;
pub mod graph;
pub mod init;
// IO at the edge: boots machines: processes, namespaces, files.
#[allow(clippy::disallowed_methods)]
pub mod lab;
pub mod lint;
// IO at the edge: an editor's stdio, the stdlib's files written for it, a check thread.
#[allow(clippy::disallowed_methods)]
pub mod lsp;
pub mod placeholder;
pub mod plan;
pub mod probe;
pub mod release;
pub mod render;
pub mod resolve;
// IO at the edge: reads secrets files and /dev/urandom.
#[allow(clippy::disallowed_methods)]
pub mod secrets;
pub mod shell;
pub mod source;
pub mod status;
pub mod stdlib;
pub mod syntax;
// IO at the edge: the network (SSH) and the local test double.
#[allow(clippy::disallowed_methods)]
pub mod transport;

pub use compile::{
    check, check_path, check_path_and, check_str, compile, Checked, Compilation, Failure,
};
