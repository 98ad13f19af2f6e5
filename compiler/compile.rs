//! The compile driver: the one place the front-end stages run in sequence.
//!
//! [`check`]: resolve → lint → graph (for `infra check`, `infra graph`, editors).
//! [`compile`]: the same, then the templates (the repo's `templates/` through the
//! [`Loader`]) and render → a [`Compilation`] holding everything a subcommand needs.
//!
//! Invariant: a [`Checked`] or [`Compilation`] exists only when no stage reported an
//! error; what it carries in `diags` are warnings. Otherwise a [`Failure`] carries
//! every diagnostic and the sources to render them with. Nothing here prints.

use crate::diag::{self, Diag};
use crate::graph::{self, Graph};
use crate::render::{self, Build};
use crate::resolve::{self, Loader, Model};
use crate::source::SourceMap;
use crate::stdlib::{self, Templates};
use std::path::{Path, PathBuf};

/// A configuration that resolved, linted clean of errors and has a dependency order.
#[derive(Debug)]
pub struct Checked {
    /// The resolved configuration; `model.sources` holds every loaded file.
    pub model: Model,
    /// Directory of the configuration (its `templates/` overrides the stdlib's).
    pub root_dir: PathBuf,
    /// Instance order and host apply order.
    pub graph: Graph,
    /// Warnings of the lint and graph stages, sorted.
    pub diags: Vec<Diag>,
}

/// A configuration compiled to its build.
#[derive(Debug)]
pub struct Compilation {
    /// The resolved configuration; `model.sources` holds every loaded file.
    pub model: Model,
    /// Directory of the configuration.
    pub root_dir: PathBuf,
    /// Instance order and host apply order.
    pub graph: Graph,
    /// Per host: files, units, steps, packages.
    pub build: Build,
    /// Warnings that did not stop the compilation, sorted.
    pub diags: Vec<Diag>,
}

/// A stage reported an error.
#[derive(Debug)]
pub struct Failure {
    /// Every loaded file, to render the diagnostics with.
    pub sources: SourceMap,
    /// Warnings of the stages that passed before the one that stopped (empty when
    /// the check stopped); shown before `diags`.
    pub warnings: Vec<Diag>,
    /// The diagnostics of the stage that stopped, at least one an error.
    pub diags: Vec<Diag>,
}

/// Resolve, lint and order the configuration at `path` (a `.infra` file or a
/// directory of them), reading files through `loader`.
pub fn check(path: &Path, loader: &dyn Loader) -> Result<Checked, Failure> {
    let resolved = resolve::resolve(path, loader).map_err(|f| Failure {
        sources: f.sources,
        warnings: Vec::new(),
        diags: f.diags,
    })?;
    let model = resolved.model;
    let mut diags = crate::lint::lint(&model);
    let graph = match graph::graph(&model) {
        Ok(g) => Some(g),
        Err(d) => {
            diags.extend(d);
            None
        }
    };
    diag::sort(&mut diags);
    match graph {
        Some(graph) if !diag::has_errors(&diags) => Ok(Checked {
            model,
            root_dir: resolved.root_dir,
            graph,
            diags,
        }),
        _ => Err(Failure {
            sources: model.sources,
            warnings: Vec::new(),
            diags,
        }),
    }
}

impl Checked {
    /// Render the build: the stdlib's templates under the repo's `templates/`
    /// (read through `loader`, E0608 when a file cannot be read) and the
    /// releases' files from the repository (E0621-E0623).
    pub fn render(&self, loader: &dyn Loader) -> Result<Build, Vec<Diag>> {
        let overrides = stdlib::load_overrides(loader, &self.root_dir.join("templates"))?;
        let templates = Templates::with_overrides(overrides);
        let trees = crate::release::load(&self.model, loader, &self.root_dir)?;
        let mut build = render::render(&self.model, &self.graph.order, &templates, &trees)?;
        build.blobs = trees.blobs;
        Ok(build)
    }
}

/// [`check`], then [`Checked::render`]: the whole front end.
pub fn compile(path: &Path, loader: &dyn Loader) -> Result<Compilation, Failure> {
    let checked = check(path, loader)?;
    match checked.render(loader) {
        Ok(build) => Ok(Compilation {
            model: checked.model,
            root_dir: checked.root_dir,
            graph: checked.graph,
            build,
            diags: checked.diags,
        }),
        Err(diags) => Err(Failure {
            sources: checked.model.sources,
            warnings: checked.diags,
            diags,
        }),
    }
}

/// `infra check` on one in-memory file (imports of user files find nothing): the
/// whole front end, render included, without writing anything: the loaded sources
/// and every diagnostic. Pure; used by the fuzz target and tests.
pub fn check_str(name: &str, text: &str) -> (SourceMap, Vec<Diag>) {
    let mut loader = resolve::MemLoader::default();
    loader.files.insert(
        resolve::load::normalize(Path::new(name)),
        text.as_bytes().to_vec(),
    );
    check_all(Path::new(name), &loader, |_| Vec::new())
}

/// `infra check` on a file or directory of the user's repo (reads the
/// filesystem): [`compile`] without writing anything, so everything that would
/// make `infra build` fail fails here. Returns the loaded sources (for rendering
/// diagnostics) and every diagnostic.
pub fn check_path(path: &Path) -> (SourceMap, Vec<Diag>) {
    check_all(path, &resolve::FsLoader, |_| Vec::new())
}

/// [`check_path`], and `more`'s diagnostics of the configuration when it compiled
/// (the CLI's look at the files beside it: its secrets).
pub fn check_path_and(
    path: &Path,
    more: impl FnOnce(&Compilation) -> Vec<Diag>,
) -> (SourceMap, Vec<Diag>) {
    check_all(path, &resolve::FsLoader, more)
}

fn check_all(
    path: &Path,
    loader: &dyn Loader,
    more: impl FnOnce(&Compilation) -> Vec<Diag>,
) -> (SourceMap, Vec<Diag>) {
    match compile(path, loader) {
        Ok(c) => {
            let extra = more(&c);
            let mut diags = c.diags;
            diags.extend(extra);
            (c.model.sources, diags)
        }
        Err(f) => {
            let mut diags = f.warnings;
            diags.extend(f.diags);
            diag::sort(&mut diags);
            (f.sources, diags)
        }
    }
}
