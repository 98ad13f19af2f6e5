//! infra: a small declarative language for two or three redundant servers,
//! compiled to keepalived, systemd, rsync and database replication, applied over SSH.
//!
//! Pipeline (one module per stage, each with one entry function):
//! `syntax::parse` → `resolve::resolve` → `lint::lint` → `graph::graph` →
//! `render::render` → `probe::probe` → `plan::plan` → `apply::apply`.
//! See docs/ARCHITECTURE.md.

pub mod apply;
pub mod cli;
pub mod deploy;
pub mod diag;
pub mod fault;
pub mod fmt;
pub mod graph;
pub mod lab;
pub mod lint;
pub mod plan;
pub mod probe;
pub mod render;
pub mod resolve;
pub mod secrets;
pub mod shell;
pub mod source;
pub mod stdlib;
pub mod syntax;
pub mod transport;

use diag::Diag;
use source::SourceMap;
use std::path::Path;

/// The front end on one in-memory file (no imports of user files): load, parse,
/// resolve, lint. Pure; used by the fuzz target and benchmarks.
pub fn check_str(name: &str, text: &str) -> (SourceMap, Vec<Diag>) {
    let mut loader = resolve::MemLoader::default();
    loader.files.insert(
        resolve::load::normalize(Path::new(name)),
        text.as_bytes().to_vec(),
    );
    front_end(Path::new(name), &loader)
}

/// The front end on a file or directory of the user's repo (reads the filesystem).
/// Returns the loaded sources (for rendering diagnostics) and every diagnostic.
pub fn check_path(path: &Path) -> (SourceMap, Vec<Diag>) {
    front_end(path, &resolve::FsLoader)
}

fn front_end(path: &Path, loader: &dyn resolve::Loader) -> (SourceMap, Vec<Diag>) {
    match resolve::resolve(path, loader) {
        Ok(r) => {
            let mut diags = lint::lint(&r.model);
            if let Err(g) = graph::graph(&r.model) {
                diags.extend(g);
            }
            diag::sort(&mut diags);
            (r.model.sources, diags)
        }
        Err(f) => (f.sources, f.diags),
    }
}
