//! Stage 2: AST → typed [`Model`]. Entry point: [`resolve`].
//!
//! Loads imports through a [`Loader`] (the only IO, behind a trait), resolves names,
//! checks types, applies defaults and expands kinds into primitive resources.
//! Invariant: every error of every file is collected; the Model is returned only
//! when there are none. Nothing downstream sees the AST or an unresolved name.

pub mod calendar;
mod decl;
mod eval;
mod hosts;
mod instance;
// IO at the edge: the filesystem Loader.
#[allow(clippy::disallowed_methods)]
pub mod load;
pub mod model;
pub mod names;

pub use hosts::default_priorities;
pub use load::{FsLoader, Loader, MemLoader};
pub use model::*;

use crate::diag::{self, codes, Diag};
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
            admins: r.admins,
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

/// How far an instance's resolution got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InstanceState {
    Pending,
    /// Its parameters are being evaluated (a reference back to it is a cycle).
    Params,
    /// Parameters and placement known (its body may still be expanding).
    Known,
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
    pub admins: Vec<Admin>,
    pub kinds: BTreeMap<String, KindInfo<'a>>,
    /// Every kind's name, known before any is declared (a parameter's type may
    /// name a kind declared later).
    pub kind_names: BTreeSet<String>,
    /// The block of each instance, and how far its resolution got (its
    /// parameters are another instance's fields, resolved on demand).
    pub instance_blocks: Vec<&'a ast::Block>,
    pub instance_state: Vec<InstanceState>,
    /// `kind.name` -> instance id (ids index `instance_blocks` and `instances`).
    pub instance_index: HashMap<(String, String), InstanceId>,
    pub instances: Vec<Instance>,
}

/// The named top-level blocks of pass 2, each with its name, in declaration order
/// (indices are `HostId`, `GroupId`, `InstanceId`).
#[derive(Default)]
pub(crate) struct Blocks<'a> {
    pub hosts: Vec<(&'a ast::Block, &'a ast::Ident)>,
    pub groups: Vec<(&'a ast::Block, &'a ast::Ident)>,
    pub instances: Vec<(&'a ast::Block, &'a ast::Ident)>,
    pub admins: Vec<(&'a ast::Block, &'a ast::Ident)>,
}

pub(crate) const RESOURCE_KINDS: &[&str] = &[
    "package",
    "user",
    "directory",
    "file",
    "unit",
    "dropin",
    "step",
];
const BUILTIN_BLOCKS: &[&str] = &["host", "failover", "admin"];

impl<'a> Resolver<'a> {
    fn new(sources: SourceMap, diags: Vec<Diag>) -> Self {
        Resolver {
            sources,
            diags,
            globals: HashMap::new(),
            lets: Vec::new(),
            hosts: Vec::new(),
            groups: Vec::new(),
            admins: Vec::new(),
            kinds: BTreeMap::new(),
            kind_names: BTreeSet::new(),
            instance_blocks: Vec::new(),
            instance_state: Vec::new(),
            instance_index: HashMap::new(),
            instances: Vec::new(),
        }
    }

    fn run(&mut self, files: &'a [(FileId, ast::File)]) {
        // Pass 1: kinds (any file may use a kind from any loaded file).
        self.declare_kinds(files);
        // Pass 2: names of hosts, groups, lets, instances.
        let blocks = self.declare_names(files);
        // Pass 3: hosts, groups (evaluating the lets they use on demand), the other
        // lets, instances.
        self.resolve_hosts_and_groups(&blocks.hosts, &blocks.groups);
        for (b, name) in &blocks.admins {
            if let Some(a) = self.admin(b, name) {
                self.admins.push(a);
            }
        }
        for i in 0..self.lets.len() {
            self.eval_let(i);
        }
        self.resolve_instances(&blocks.instances);
    }

    pub(crate) fn dup_attr(&mut self, name: &str, span: Span, prev: Span) {
        self.diags.push(
            Diag::error(
                codes::E0107,
                format!("attribute `{name}` is set more than once"),
            )
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
                    codes::E0111,
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
        "user" => &["home", "system", "shell", "groups", "only"],
        "directory" => &["mode", "owner", "group", "only"],
        "file" => &["template", "content", "mode", "owner", "group", "only"],
        "unit" => &["template", "content", "enable", "start", "only"],
        "dropin" => &["template", "content", "only"],
        "step" => &["run", "unless", "only"],
        "release" => &[
            "source",
            "git",
            "shared",
            "keep",
            "owner",
            "group",
            "reload",
            "before_switch",
            "migrate",
            "only",
        ],
        _ => return None,
    })
}

fn example_for(ty: &Type) -> String {
    match ty {
        Type::String | Type::Text => "\"...\"".into(),
        Type::User => "\"www-data\"".into(),
        Type::Int | Type::Uint => "1".into(),
        Type::Port => "8080".into(),
        Type::Bool => "true".into(),
        Type::Duration => "\"5min\"".into(),
        Type::Calendar => "\"*-*-* 03:00:00\"".into(),
        Type::Ip => "\"192.0.2.11\"".into(),
        Type::Cidr => "\"192.0.2.10/24\"".into(),
        Type::Host => "alpha".into(),
        Type::Failover => "office".into(),
        Type::Placement => "office.active".into(),
        Type::Secret => "secret(\"name\")".into(),
        Type::Check => "http(\"http://127.0.0.1/health\")".into(),
        Type::Ref => "kind.name".into(),
        Type::Kind(k) => format!("{k}.NAME"),
        Type::List(t) => format!("[{}]", example_for(t)),
    }
}
