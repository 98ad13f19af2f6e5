//! infra: a small declarative language for two or three redundant servers,
//! compiled to keepalived, systemd, rsync and database replication, applied over SSH.
//!
//! Pipeline (one module per stage, each with one entry function):
//! `syntax::parse` → `resolve::resolve` → `lint::lint` → `graph::graph` →
//! `render::render` → `probe::probe` → `plan::plan` → `apply::apply`.
//! See docs/ARCHITECTURE.md.

pub mod apply;
pub mod cli;
pub mod diag;
pub mod fmt;
pub mod graph;
pub mod lab;
pub mod lint;
pub mod plan;
pub mod probe;
pub mod render;
pub mod resolve;
pub mod source;
pub mod stdlib;
pub mod syntax;
pub mod transport;

use diag::Diag;
use source::SourceMap;

/// The front end on one in-memory file (no imports of user files): parse, resolve,
/// lint. Pure; used by the fuzz target and benchmarks.
pub fn check_str(name: &str, text: &str) -> (SourceMap, Vec<Diag>) {
    let mut sources = SourceMap::new();
    let id = sources.add(name, text);
    let (_file, diags) = syntax::parse(id, text);
    (sources, diags)
}

/// The front end on a file or directory of the user's repo (reads the filesystem).
/// Returns the loaded sources (for rendering diagnostics) and every diagnostic.
pub fn check_path(path: &std::path::Path) -> (SourceMap, Vec<Diag>) {
    match std::fs::read_to_string(path) {
        Ok(text) => check_str(&path.display().to_string(), &text),
        Err(e) => (
            SourceMap::new(),
            vec![Diag::error(
                "E0301",
                format!("cannot read {}: {e}", path.display()),
            )],
        ),
    }
}
