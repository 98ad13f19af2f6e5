//! Stage 2: AST → typed [`Model`]. Entry point: [`resolve`].
//!
//! Loads imports through a [`Loader`] (the only IO, behind a trait), resolves names,
//! checks types, applies defaults and expands kinds into primitive resources.
//! Invariant: every error of every file is collected; the Model is returned only
//! when there are none. Nothing downstream sees the AST or an unresolved name.

mod decl;
mod eval;
mod hosts;
mod instance;
pub mod load;
pub mod model;

pub use hosts::default_priorities;
pub use load::{FsLoader, Loader, MemLoader};
pub use model::*;

use crate::diag::{self, Diag};
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::ast;
use eval::Env;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Resolution failed: the sources (to render diagnostics) and every error.
#[derive(Debug)]
pub struct Failed {
    pub sources: SourceMap,
    pub diags: Vec<Diag>,
}

/// A successful resolution also reports where the configuration lives.
#[derive(Debug)]
pub struct Resolved {
    pub model: Model,
    /// Directory of the configuration (its `templates/` overrides the stdlib's).
    pub root_dir: PathBuf,
}

/// Load `root` (a file or a directory of `.infra` files) and resolve it.
pub fn resolve(root: &Path, loader: &dyn Loader) -> Result<Resolved, Failed> {
    let loaded = load::load(root, loader);
    // Like rustc: a file that does not parse (or an import that cannot be read) stops
    // here, so every error shown is a real one, not a consequence of the first.
    if diag::has_errors(&loaded.diags) {
        let mut diags = loaded.diags;
        diag::sort(&mut diags);
        return Err(Failed {
            sources: loaded.sources,
            diags,
        });
    }
    let mut r = Resolver::new(loaded.sources, loaded.diags);
    r.run(&loaded.files);
    let mut diags = r.diags;
    dedup(&mut diags);
    if diag::has_errors(&diags) {
        diag::sort(&mut diags);
        return Err(Failed {
            sources: r.sources,
            diags,
        });
    }
    Ok(Resolved {
        model: Model {
            hosts: r.hosts,
            groups: r.groups,
            instances: r.instances,
            sources: r.sources,
        },
        root_dir: loaded.root_dir,
    })
}

fn dedup(diags: &mut Vec<Diag>) {
    let mut seen = BTreeSet::new();
    diags.retain(|d| {
        let key = (
            d.code,
            d.message.clone(),
            d.primary.as_ref().map(|l| (l.span, l.text.clone())),
        );
        seen.insert(key)
    });
}

/// What a bare name refers to at the top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Global {
    Host(HostId),
    Group(GroupId),
    Let(usize),
}

pub(crate) struct KindInfo<'a> {
    pub def: &'a ast::KindDef,
    pub params: Vec<ParamDecl<'a>>,
    /// Index into `params` of the placement parameter.
    pub placement: Option<usize>,
}

pub(crate) struct ParamDecl<'a> {
    pub name: String,
    pub ty: Type,
    pub default: Option<&'a ast::Expr>,
    pub span: Span,
}

pub(crate) struct LetInfo<'a> {
    pub name: String,
    pub expr: &'a ast::Expr,
    pub span: Span,
    pub value: Option<Value>,
    pub evaluating: bool,
}

pub(crate) struct Resolver<'a> {
    pub sources: SourceMap,
    pub diags: Vec<Diag>,
    pub globals: HashMap<String, (Global, Span)>,
    pub lets: Vec<LetInfo<'a>>,
    pub hosts: Vec<Host>,
    pub groups: Vec<Group>,
    pub kinds: BTreeMap<String, KindInfo<'a>>,
    /// `kind.name` -> instance id (ids index `instance_blocks` and `instances`).
    pub instance_index: HashMap<(String, String), InstanceId>,
    pub instances: Vec<Instance>,
}

const RESOURCE_KINDS: &[&str] = &[
    "package",
    "user",
    "directory",
    "file",
    "unit",
    "dropin",
    "step",
];
const BUILTIN_BLOCKS: &[&str] = &["host", "failover"];

impl<'a> Resolver<'a> {
    fn new(sources: SourceMap, diags: Vec<Diag>) -> Self {
        Resolver {
            sources,
            diags,
            globals: HashMap::new(),
            lets: Vec::new(),
            hosts: Vec::new(),
            groups: Vec::new(),
            kinds: BTreeMap::new(),
            instance_index: HashMap::new(),
            instances: Vec::new(),
        }
    }

    fn run(&mut self, files: &'a [(FileId, ast::File)]) {
        // Pass 1: kinds (any file may use a kind from any loaded file). The standard
        // library's first, so a clash is reported at the user's definition.
        let is_std = |fid: &FileId| self.sources.get(*fid).name.starts_with("std/");
        let (std_files, user_files): (Vec<_>, Vec<_>) =
            files.iter().partition(|(fid, _)| is_std(fid));
        for (_, f) in std_files.into_iter().chain(user_files) {
            for item in &f.items {
                if let ast::Item::Kind(k) = item {
                    self.declare_kind(k);
                }
            }
        }
        // Pass 2: names of hosts, groups, lets, instances.
        let mut host_blocks = Vec::new();
        let mut group_blocks = Vec::new();
        let mut instance_blocks = Vec::new();
        for (_, f) in files {
            for item in &f.items {
                match item {
                    ast::Item::Let(l) => {
                        if self.declare_global(&l.name, Global::Let(self.lets.len())) {
                            self.lets.push(LetInfo {
                                name: l.name.name.clone(),
                                expr: &l.value,
                                span: l.span,
                                value: None,
                                evaluating: false,
                            });
                        }
                    }
                    ast::Item::Block(b) => {
                        let kw = b.keyword.name.as_str();
                        if !BUILTIN_BLOCKS.contains(&kw) && !self.kinds.contains_key(kw) {
                            self.unknown_block(&b.keyword, kw);
                            continue;
                        }
                        let Some(name) = self.block_name(b) else {
                            continue;
                        };
                        match b.keyword.name.as_str() {
                            "host" => {
                                if self.declare_global(name, Global::Host(host_blocks.len())) {
                                    host_blocks.push((b, name));
                                }
                            }
                            "failover" => {
                                if self.declare_global(name, Global::Group(group_blocks.len())) {
                                    group_blocks.push((b, name));
                                }
                            }
                            kw if self.kinds.contains_key(kw) => {
                                let key = (kw.to_string(), name.name.clone());
                                if let Some(&prev) = self.instance_index.get(&key) {
                                    let (pb, _): &(&ast::Block, &ast::Ident) =
                                        &instance_blocks[prev];
                                    let prev_span =
                                        self.block_name(pb).map(|i| i.span).unwrap_or(pb.span);
                                    self.diags.push(
                                        Diag::error(
                                            "E0101",
                                            format!(
                                                "`{kw}.{}` is defined more than once",
                                                name.name
                                            ),
                                        )
                                        .at(name.span, "defined again here")
                                        .with(prev_span, "first defined here")
                                        .help("give each instance of a kind its own name"),
                                    );
                                } else {
                                    self.instance_index.insert(key, instance_blocks.len());
                                    instance_blocks.push((b, name));
                                }
                            }
                            kw => self.unknown_block(&b.keyword, kw),
                        }
                    }
                    ast::Item::Import(_) | ast::Item::Kind(_) => {}
                }
            }
        }
        // Pass 3: hosts, groups (evaluating the lets they use on demand), the other
        // lets, instances.
        for (b, name) in &host_blocks {
            let h = self.host(b, name);
            self.hosts.push(h);
        }
        let mut explicit_ids = Vec::new();
        for (b, name) in &group_blocks {
            let (g, explicit) = self.group(b, name);
            explicit_ids.push(explicit);
            self.groups.push(g);
        }
        self.assign_router_ids(&explicit_ids);
        for i in 0..self.lets.len() {
            self.eval_let(i);
        }
        // Instances: first create shells so `needs` and refs can point anywhere.
        for (b, name) in &instance_blocks {
            let kind = &self.kinds[b.keyword.name.as_str()];
            let _ = kind;
            self.instances.push(Instance {
                kind: Spanned::new(b.keyword.name.clone(), b.keyword.span),
                name: Spanned::new(name.name.clone(), name.span),
                span: b.span,
                placement: Spanned::new(Placement::All, name.span),
                params: Vec::new(),
                resources: Vec::new(),
                needs: Vec::new(),
            });
        }
        for (id, (b, _)) in instance_blocks.iter().enumerate() {
            self.instance(id, b);
        }
    }

    pub(crate) fn dup_attr(&mut self, name: &str, span: Span, prev: Span) {
        self.diags.push(
            Diag::error("E0107", format!("attribute `{name}` is set more than once"))
                .at(span, "set again here")
                .with(prev, "first set here")
                .help("remove one of them"),
        );
    }

    fn eval_let(&mut self, i: usize) -> Option<Value> {
        self.eval_let_inner(i)
    }

    pub(crate) fn eval_let_inner(&mut self, i: usize) -> Option<Value> {
        if let Some(v) = &self.lets[i].value {
            return Some(v.clone());
        }
        if self.lets[i].evaluating {
            let span = self.lets[i].span;
            self.diags.push(
                Diag::error(
                    "E0111",
                    format!("`let {}` refers to itself", self.lets[i].name),
                )
                .at(span, "defined in terms of itself")
                .help("a `let` must not depend on itself, directly or through other `let`s"),
            );
            return None;
        }
        self.lets[i].evaluating = true;
        let expr = self.lets[i].expr;
        let v = self.eval(expr, &Env::top());
        self.lets[i].evaluating = false;
        self.lets[i].value = v.clone();
        v
    }
}

pub(crate) fn resource_attrs(kw: &str) -> Option<&'static [&'static str]> {
    Some(match kw {
        "package" => &["only"],
        "user" => &["home", "system", "only"],
        "directory" => &["mode", "owner", "group", "only"],
        "file" => &["template", "content", "mode", "owner", "group", "only"],
        "unit" => &["template", "content", "enable", "start", "only"],
        "dropin" => &["template", "content", "only"],
        "step" => &["run", "unless", "only"],
        _ => return None,
    })
}

fn example_for(ty: &Type) -> String {
    match ty {
        Type::String => "\"...\"".into(),
        Type::Int => "1".into(),
        Type::Bool => "true".into(),
        Type::Duration => "\"5min\"".into(),
        Type::Ip => "\"192.0.2.11\"".into(),
        Type::Cidr => "\"192.0.2.10/24\"".into(),
        Type::Host => "alpha".into(),
        Type::Failover => "office".into(),
        Type::Placement => "office.active".into(),
        Type::Secret => "secret(\"name\")".into(),
        Type::Check => "http(\"http://127.0.0.1/health\")".into(),
        Type::Ref => "kind.name".into(),
        Type::List(t) => format!("[{}]", example_for(t)),
    }
}
