//! Stage 2: AST → typed [`Model`]. Entry point: [`resolve`].
//!
//! Loads imports through a [`Loader`] (the only IO, behind a trait), resolves names,
//! checks types, applies defaults and expands kinds into primitive resources.
//! Invariant: every error of every file is collected; the Model is returned only
//! when there are none. Nothing downstream sees the AST or an unresolved name.

mod eval;
pub mod load;
pub mod model;

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

    fn block_name<'b>(&mut self, b: &'b ast::Block) -> Option<&'b ast::Ident> {
        match &b.label {
            Some(ast::BlockLabel::Name(i)) => Some(i),
            Some(ast::BlockLabel::Str(s)) => {
                let what = b.keyword.name.as_str();
                self.diags.push(
                    Diag::error("E0109", format!("the name of a `{what}` must be an identifier, not a string"))
                        .at(s.span, "a string here")
                        .help(format!("write `{what} NAME {{ ... }}` without quotes; top-level blocks are named by identifiers")),
                );
                None
            }
            None => {
                let what = b.keyword.name.as_str();
                if BUILTIN_BLOCKS.contains(&what) || self.kinds.contains_key(what) {
                    self.diags.push(
                        Diag::error("E0109", format!("this `{what}` has no name"))
                            .at(b.keyword.span, "expected a name after this")
                            .help(format!("write `{what} NAME {{ ... }}`")),
                    );
                } else {
                    self.unknown_block(&b.keyword, what);
                }
                None
            }
        }
    }

    fn unknown_block(&mut self, kw: &ast::Ident, name: &str) {
        let mut d = Diag::error("E0104", format!("unknown block kind `{name}`"))
            .at(kw.span, "not a built-in block or a known kind");
        if RESOURCE_KINDS.contains(&name) {
            d = d.help(format!(
                "`{name}` is a resource: it is only allowed inside a `kind` body"
            ));
        } else if let Some(module) = std_module_defining(name) {
            d = d.help(format!(
                "`{name}` is defined in `std/{module}`: add `import \"std/{module}\"`"
            ));
        } else {
            let mut candidates: Vec<String> =
                BUILTIN_BLOCKS.iter().map(|s| s.to_string()).collect();
            candidates.extend(self.kinds.keys().cloned());
            candidates.extend(std_kinds().into_iter().map(|(k, _)| k));
            if let Some(s) = diag::suggest(name, candidates.iter().map(String::as_str)) {
                let s = s.to_string();
                d = match std_module_defining(&s) {
                    Some(m) if !self.kinds.contains_key(&s) => d.help(format!(
                        "did you mean `{s}`? (from `std/{m}`: add `import \"std/{m}\"`)"
                    )),
                    _ => d.help(format!("did you mean `{s}`?")),
                };
            } else {
                d = d.help("top-level blocks are `host`, `failover`, and instances of kinds (declare one with `kind NAME(...) { ... }`)");
            }
        }
        self.diags.push(d);
    }

    /// Register a top-level name; false (with a diagnostic) if it is taken.
    fn declare_global(&mut self, name: &ast::Ident, g: Global) -> bool {
        if name.name == "all" {
            self.diags.push(
                Diag::error("E0101", "`all` is a reserved name")
                    .at(name.span, "reserved")
                    .help("`all` means every host (as in `on = all`); choose another name"),
            );
            return false;
        }
        if let Some((prev, prev_span)) = self.globals.get(&name.name) {
            let what = match prev {
                Global::Host(_) => "a host",
                Global::Group(_) => "a failover group",
                Global::Let(_) => "a `let`",
            };
            self.diags.push(
                Diag::error("E0101", format!("the name `{}` is defined more than once", name.name))
                    .at(name.span, "defined again here")
                    .with(*prev_span, format!("first defined here, as {what}"))
                    .help("hosts, failover groups and `let` bindings share one namespace: rename one of them"),
            );
            return false;
        }
        self.globals.insert(name.name.clone(), (g, name.span));
        true
    }

    fn declare_kind(&mut self, k: &'a ast::KindDef) {
        if BUILTIN_BLOCKS.contains(&k.name.name.as_str())
            || RESOURCE_KINDS.contains(&k.name.name.as_str())
        {
            self.diags.push(
                Diag::error(
                    "E0101",
                    format!(
                        "`{}` is a built-in block and cannot be redefined",
                        k.name.name
                    ),
                )
                .at(k.name.span, "built-in name")
                .help("choose another name for the kind"),
            );
            return;
        }
        if let Some(prev) = self.kinds.get(&k.name.name) {
            let prev_file = &self.sources.get(prev.def.name.span.file).name;
            let help = if prev_file.starts_with("std/") {
                format!("`{}` is a kind of the standard library (`{prev_file}`): give yours another name", k.name.name)
            } else {
                "rename one of the kinds".to_string()
            };
            self.diags.push(
                Diag::error(
                    "E0101",
                    format!("the kind `{}` is defined more than once", k.name.name),
                )
                .at(k.name.span, "defined again here")
                .with(prev.def.name.span, "first defined here")
                .help(help),
            );
            return;
        }
        let mut params: Vec<ParamDecl<'a>> = Vec::new();
        for p in &k.params {
            if p.name.name == "name" || p.name.name == "needs" {
                self.diags.push(
                    Diag::error("E0101", format!("`{}` is reserved and cannot be a parameter", p.name.name))
                        .at(p.name.span, "reserved")
                        .help("every instance already has `name` (its label) and `needs`; rename the parameter"),
                );
                continue;
            }
            if let Some(prev) = params.iter().find(|q| q.name == p.name.name) {
                self.diags.push(
                    Diag::error(
                        "E0101",
                        format!("parameter `{}` is declared twice", p.name.name),
                    )
                    .at(p.name.span, "declared again here")
                    .with(prev.span, "first declared here"),
                );
                continue;
            }
            let Some(ty) = self.type_of(&p.ty) else {
                continue;
            };
            params.push(ParamDecl {
                name: p.name.name.clone(),
                ty,
                default: p.default.as_ref(),
                span: p.span,
            });
        }
        let placement = params
            .iter()
            .position(|p| matches!(p.ty, Type::Host | Type::Failover | Type::Placement));
        if placement.is_none() {
            self.diags.push(
                Diag::error("E0110", format!("kind `{}` has no placement parameter", k.name.name))
                    .at(k.name.span, "nothing says where its resources go")
                    .help("add a parameter of type `host`, `failover` or `placement`, e.g. `on: placement`"),
            );
        }
        self.check_kind_body(k);
        self.kinds.insert(
            k.name.name.clone(),
            KindInfo {
                def: k,
                params,
                placement,
            },
        );
    }

    fn type_of(&mut self, t: &ast::TypeExpr) -> Option<Type> {
        match t {
            ast::TypeExpr::List(inner, _) => self.type_of(inner).map(|t| Type::List(Box::new(t))),
            ast::TypeExpr::Named(i) => Some(match i.name.as_str() {
                "string" => Type::String,
                "int" => Type::Int,
                "bool" => Type::Bool,
                "duration" => Type::Duration,
                "ip" => Type::Ip,
                "cidr" => Type::Cidr,
                "host" => Type::Host,
                "failover" => Type::Failover,
                "placement" => Type::Placement,
                "secret" => Type::Secret,
                "check" => Type::Check,
                "ref" => Type::Ref,
                other => {
                    const TYPES: &[&str] = &[
                        "string",
                        "int",
                        "bool",
                        "duration",
                        "ip",
                        "cidr",
                        "host",
                        "failover",
                        "placement",
                        "secret",
                        "check",
                        "ref",
                    ];
                    let help = match diag::suggest(other, TYPES.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("types are {}, and lists `[T]`", TYPES.join(", ")),
                    };
                    self.diags.push(
                        Diag::error("E0205", format!("unknown type `{other}`"))
                            .at(i.span, "not a type")
                            .help(help),
                    );
                    return None;
                }
            }),
        }
    }

    /// Static checks of a kind body: only resource blocks with string labels and
    /// known attributes. Values are checked when an instance is expanded.
    fn check_kind_body(&mut self, k: &ast::KindDef) {
        for e in &k.body.entries {
            match e {
                ast::Entry::Attr(a) => self.diags.push(
                    Diag::error("E0105", format!("unexpected attribute `{}` in a kind body", a.name.name))
                        .at(a.name.span, "attributes belong inside a resource block")
                        .help("a kind body lists resources: `package`, `user`, `directory`, `file`, `unit`, `dropin`, `step`"),
                ),
                ast::Entry::Block(b) => {
                    let kw = b.keyword.name.as_str();
                    let Some(allowed) = resource_attrs(kw) else {
                        let mut d = Diag::error("E0104", format!("unknown resource `{kw}`"))
                            .at(b.keyword.span, "not a resource");
                        d = match diag::suggest(kw, RESOURCE_KINDS.iter().copied()) {
                            Some(s) => d.help(format!("did you mean `{s}`?")),
                            None => d.help(format!("resources are {}", RESOURCE_KINDS.join(", "))),
                        };
                        self.diags.push(d);
                        continue;
                    };
                    if !matches!(b.label, Some(ast::BlockLabel::Str(_))) {
                        let what = if kw == "package" || kw == "user" || kw == "step" { "name" } else if kw == "unit" || kw == "dropin" { "unit name" } else { "path" };
                        self.diags.push(
                            Diag::error("E0109", format!("`{kw}` needs a quoted {what}"))
                                .at(b.keyword.span, format!("expected a string {what} after this"))
                                .help(format!("write `{kw} \"...\" {{ ... }}`")),
                        );
                    }
                    let mut seen: HashMap<&str, Span> = HashMap::new();
                    for e in &b.body.entries {
                        match e {
                            ast::Entry::Block(nb) => self.diags.push(
                                Diag::error("E0105", format!("unexpected block `{}` inside `{kw}`", nb.keyword.name))
                                    .at(nb.keyword.span, "not allowed here")
                                    .help(format!("`{kw}` takes attributes: {}", allowed.join(", "))),
                            ),
                            ast::Entry::Attr(a) => {
                                let n = a.name.name.as_str();
                                if !allowed.contains(&n) {
                                    let mut d = Diag::error("E0105", format!("unknown attribute `{n}` for `{kw}`"))
                                        .at(a.name.span, "unknown attribute");
                                    d = match diag::suggest(n, allowed.iter().copied()) {
                                        Some(s) => d.help(format!("did you mean `{s}`?")),
                                        None => d.help(format!("`{kw}` takes: {}", allowed.join(", "))),
                                    };
                                    self.diags.push(d);
                                } else if let Some(prev) = seen.insert(n, a.name.span) {
                                    self.dup_attr(n, a.name.span, prev);
                                }
                            }
                        }
                    }
                    if kw == "step" && !seen.contains_key("run") {
                        self.diags.push(
                            Diag::error("E0106", "`step` is missing `run`")
                                .at(b.keyword.span, "this step has no command")
                                .help("add `run = \"...\"` (and usually `unless = \"...\"` to guard it)"),
                        );
                    }
                    // A unit without a source is one the system already has.
                    if matches!(kw, "file" | "unit" | "dropin") {
                        match (seen.get("template"), seen.get("content")) {
                            (Some(t), Some(c)) => self.diags.push(
                                Diag::error("E0210", format!("`{kw}` has both `template` and `content`"))
                                    .at(*c, "content given here")
                                    .with(*t, "template given here")
                                    .help("keep one of them"),
                            ),
                            (None, None) if kw == "unit" => {}
                            (None, None) => self.diags.push(
                                Diag::error("E0106", format!("`{kw}` needs `template` or `content`"))
                                    .at(b.keyword.span, "no content")
                                    .help("add `template = \"dir/name.hbs\"` or `content = \"...\"`"),
                            ),
                            _ => {}
                        }
                    }
                }
            }
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

    fn host(&mut self, b: &ast::Block, name: &ast::Ident) -> Host {
        let mut address = None;
        let mut ssh = Ssh::default();
        let env = Env::top();
        let attrs = self.attrs(&b.body, &["address"], &["ssh"], "host");
        for (n, a) in &attrs.attrs {
            if *n == "address" {
                if let Some(Value::Ip(ip)) = self.typed(&a.value, &Type::Ip, &env) {
                    address = Some(Spanned::new(ip, a.value.span()));
                }
            }
        }
        for nb in attrs.blocks {
            let sattrs = self.attrs(&nb.body, &["user", "port", "key"], &[], "ssh");
            for (n, a) in &sattrs.attrs {
                match *n {
                    "user" => {
                        if let Some(Value::Str(s)) = self.typed(&a.value, &Type::String, &env) {
                            if s.is_empty() || s.contains(char::is_whitespace) {
                                self.diags.push(
                                    Diag::error("E0206", format!("invalid SSH user `{s}`"))
                                        .at(a.value.span(), "not a user name")
                                        .help("a user name has no spaces, e.g. `admin`"),
                                );
                            } else {
                                ssh.user = s;
                            }
                        }
                    }
                    "port" => {
                        if let Some(Value::Int(p)) = self.typed(&a.value, &Type::Int, &env) {
                            match u16::try_from(p) {
                                Ok(p) if p > 0 => ssh.port = p,
                                _ => self.diags.push(
                                    Diag::error("E0206", format!("port {p} is out of range"))
                                        .at(a.value.span(), "not a TCP port")
                                        .help("ports are 1 to 65535"),
                                ),
                            }
                        }
                    }
                    _ => {
                        if let Some(Value::Str(s)) = self.typed(&a.value, &Type::String, &env) {
                            ssh.key = Some(s);
                        }
                    }
                }
            }
        }
        if address.is_none() && !attrs.names.contains("address") {
            self.missing(b, name, "address", "host", "\"192.0.2.11\"");
        }
        Host {
            name: Spanned::new(name.name.clone(), name.span),
            span: b.span,
            address: address.unwrap_or(Spanned::new(std::net::Ipv4Addr::UNSPECIFIED, name.span)),
            ssh,
        }
    }

    pub(crate) fn missing(
        &mut self,
        b: &ast::Block,
        name: &ast::Ident,
        attr: &str,
        what: &str,
        example: &str,
    ) {
        self.diags.push(
            Diag::error(
                "E0106",
                format!(
                    "missing required attribute `{attr}` in {what} `{}`",
                    name.name
                ),
            )
            .at(name.span, format!("`{attr}` is required"))
            .help(format!("add `{attr} = {example}` inside the braces"))
            .with(b.body.span, "in this block"),
        );
    }

    fn group(&mut self, b: &ast::Block, name: &ast::Ident) -> (Group, bool) {
        let env = Env::top();
        let attrs = self.attrs(
            &b.body,
            &[
                "members",
                "vip",
                "interface",
                "check",
                "router_id",
                "priorities",
            ],
            &[],
            "failover",
        );
        let mut members: Vec<Spanned<HostId>> = Vec::new();
        let mut vip = None;
        let mut interface = Spanned::new("eth0".to_string(), name.span);
        let mut check = None;
        let mut router_id = None;
        let mut priorities = None;
        let mut priorities_count: Option<(usize, Span)> = None;
        for (n, a) in &attrs.attrs {
            let vspan = a.value.span();
            match *n {
                "members" => {
                    let items: Vec<(Option<Value>, Span)> = match &a.value {
                        ast::Expr::List(items, _) => items
                            .iter()
                            .map(|e| (self.typed(e, &Type::Host, &env), e.span()))
                            .collect(),
                        other => match self.typed(other, &Type::List(Box::new(Type::Host)), &env) {
                            Some(Value::List(vs)) => {
                                vs.into_iter().map(|v| (Some(v), vspan)).collect()
                            }
                            _ => Vec::new(),
                        },
                    };
                    for (v, span) in items {
                        let Some(Value::Host(h)) = v else { continue };
                        if let Some(prev) = members.iter().find(|m| m.value == h) {
                            self.diags.push(
                                Diag::error(
                                    "E0208",
                                    format!(
                                        "host `{}` is listed twice in `members`",
                                        self.hosts[h].name.value
                                    ),
                                )
                                .at(span, "listed again here")
                                .with(prev.span, "first listed here")
                                .help("each host can be a member once; remove the duplicate"),
                            );
                        } else {
                            members.push(Spanned::new(h, span));
                        }
                    }
                    if matches!(&a.value, ast::Expr::List(items, _) if items.is_empty()) {
                        self.diags.push(
                            Diag::error("E0207", format!("failover group `{}` has no members", name.name))
                                .at(vspan, "empty list")
                                .help("list the hosts in preference order, e.g. `members = [alpha, beta]`"),
                        );
                    }
                }
                "vip" => {
                    if let Some(Value::Cidr(c)) = self.typed(&a.value, &Type::Cidr, &env) {
                        vip = Some(Spanned::new(c, vspan));
                    }
                }
                "interface" => {
                    if let Some(Value::Str(s)) = self.typed(&a.value, &Type::String, &env) {
                        if s.is_empty()
                            || s.len() > 15
                            || s.contains(|c: char| c.is_whitespace() || c == '/')
                        {
                            self.diags.push(
                                Diag::error("E0206", format!("invalid interface name `{s}`"))
                                    .at(vspan, "not a Linux interface name")
                                    .help("interface names are 1 to 15 characters without spaces or `/`, e.g. `eth0`"),
                            );
                        } else {
                            interface = Spanned::new(s, vspan);
                        }
                    }
                }
                "check" => {
                    if let Some(Value::Check(c)) = self.typed(&a.value, &Type::Check, &env) {
                        check = Some(Spanned::new(c, vspan));
                    }
                }
                "router_id" => {
                    if let Some(Value::Int(i)) = self.typed(&a.value, &Type::Int, &env) {
                        match u8::try_from(i) {
                            Ok(v) if v >= 1 => router_id = Some(Spanned::new(v, vspan)),
                            _ => self.diags.push(
                                Diag::error(
                                    "E0206",
                                    format!("virtual router id {i} is out of range"),
                                )
                                .at(vspan, "must be 1 to 255")
                                .help("VRRP router ids are 1 to 255, unique per network segment"),
                            ),
                        }
                    }
                }
                _ => {
                    let items: Vec<(Option<Value>, Span)> = match &a.value {
                        ast::Expr::List(items, _) => items
                            .iter()
                            .map(|e| (self.typed(e, &Type::Int, &env), e.span()))
                            .collect(),
                        other => {
                            self.typed(other, &Type::List(Box::new(Type::Int)), &env);
                            Vec::new()
                        }
                    };
                    let mut ps = Vec::new();
                    let written = items.len();
                    for (v, span) in items {
                        if let Some(Value::Int(i)) = v {
                            match u8::try_from(i) {
                                Ok(p) if (1..=254).contains(&p) => ps.push(p),
                                _ => self.diags.push(
                                    Diag::error("E0206", format!("priority {i} is out of range"))
                                        .at(span, "must be 1 to 254")
                                        .help("keepalived priorities are 1 to 254; leave a gap of about 50 between members"),
                                ),
                            }
                        }
                    }
                    if ps.len() == written {
                        priorities = Some(Spanned::new(ps, vspan));
                    } else {
                        priorities_count = Some((written, vspan));
                    }
                }
            }
        }
        if !attrs.names.contains("members") {
            self.missing(b, name, "members", "failover group", "[alpha, beta]");
        }
        if !attrs.names.contains("vip") {
            self.missing(b, name, "vip", "failover group", "\"192.0.2.10/24\"");
        }
        if !attrs.names.contains("check") {
            self.missing(
                b,
                name,
                "check",
                "failover group",
                "http(\"http://127.0.0.1/health\")",
            );
        }
        let n = members.len();
        if let Some((written, span)) = priorities_count {
            if written != n && n > 0 {
                self.diags.push(
                    Diag::error("E0209", format!("{written} priorities for {n} members"))
                        .at(span, "one priority per member, in member order")
                        .help("list exactly one priority for each member, or remove `priorities` to derive them"),
                );
            }
        }
        let priorities = match priorities {
            Some(p) if p.value.len() == n || n == 0 => p,
            Some(p) => {
                self.diags.push(
                    Diag::error("E0209", format!("{} priorities for {n} members", p.value.len()))
                        .at(p.span, "one priority per member, in member order")
                        .help("list exactly one priority for each member, or remove `priorities` to derive them"),
                );
                Spanned::new(default_priorities(n), p.span)
            }
            None => Spanned::new(default_priorities(n), name.span),
        };
        let explicit = router_id.is_some();
        (
            Group {
                name: Spanned::new(name.name.clone(), name.span),
                span: b.span,
                members,
                vip: vip.unwrap_or(Spanned::new(
                    Cidr {
                        addr: std::net::Ipv4Addr::UNSPECIFIED,
                        prefix: 32,
                    },
                    name.span,
                )),
                interface,
                check: check.unwrap_or(Spanned::new(Check::Exec("true".into()), name.span)),
                router_id: router_id.unwrap_or(Spanned::new(0, name.span)),
                priorities,
            },
            explicit,
        )
    }

    /// Derive router ids for groups without one: a stable hash of the name, then the
    /// next free id on the same interface. Explicit ids are kept (duplicates are a lint).
    fn assign_router_ids(&mut self, explicit: &[bool]) {
        let mut used: BTreeMap<String, BTreeSet<u8>> = BTreeMap::new();
        for (g, &e) in self.groups.iter().zip(explicit) {
            if e {
                used.entry(g.interface.value.clone())
                    .or_default()
                    .insert(g.router_id.value);
            }
        }
        let mut order: Vec<usize> = (0..self.groups.len()).filter(|&i| !explicit[i]).collect();
        order.sort_by(|&a, &b| self.groups[a].name.value.cmp(&self.groups[b].name.value));
        for i in order {
            let g = &mut self.groups[i];
            let taken = used.entry(g.interface.value.clone()).or_default();
            let start = (fnv1a(g.name.value.as_bytes()) % 255) as u8;
            let mut id = None;
            for k in 0..255u16 {
                let cand = ((start as u16 + k) % 255 + 1) as u8;
                if !taken.contains(&cand) {
                    id = Some(cand);
                    break;
                }
            }
            let id = id.unwrap_or(1);
            taken.insert(id);
            g.router_id.value = id;
        }
    }

    fn instance(&mut self, id: InstanceId, b: &ast::Block) {
        let kind_name = b.keyword.name.clone();
        let Some(kind) = self.kinds.get(kind_name.as_str()) else {
            return;
        };
        let def = kind.def;
        let placement_idx = kind.placement;
        let decls: Vec<(String, Type, Option<&'a ast::Expr>, Span)> = kind
            .params
            .iter()
            .map(|p| (p.name.clone(), p.ty.clone(), p.default, p.span))
            .collect();
        let mut allowed: Vec<&str> = decls.iter().map(|d| d.0.as_str()).collect();
        allowed.push("needs");
        let what = kind_name.clone();
        let attrs = self.attrs(&b.body, &allowed, &[], &what);
        let env = Env::top();
        let mut params = Vec::new();
        let mut ok = true;
        for (pname, ty, default, pspan) in &decls {
            let given = attrs
                .attrs
                .iter()
                .find(|(n, _)| n == pname)
                .map(|(_, a)| *a);
            let (value, span) = match (given, default) {
                (Some(a), _) => (self.typed(&a.value, ty, &env), a.value.span()),
                (None, Some(d)) => {
                    // Defaults see the instance's `name` and the parameters before them.
                    let inst_name = self.instances[id].name.value.clone();
                    let denv = Env::kind(&inst_name, &params);
                    (self.typed(d, ty, &denv), d.span())
                }
                (None, None) => {
                    if !attrs.names.contains(pname.as_str()) {
                        let inst_name = self.instances[id].name.clone();
                        self.diags.push(
                            Diag::error(
                                "E0106",
                                format!(
                                    "missing required attribute `{pname}` in `{kind_name} {}`",
                                    inst_name.value
                                ),
                            )
                            .at(inst_name.span, format!("`{pname}` is required"))
                            .with(*pspan, format!("`{pname}: {ty}` declared here"))
                            .help(format!("add `{pname} = {}`", example_for(ty))),
                        );
                    }
                    (None, inst_span(b))
                }
            };
            match value {
                Some(v) => params.push(Param {
                    name: pname.clone(),
                    ty: ty.clone(),
                    value: v,
                    span,
                }),
                None => ok = false,
            }
        }
        // needs
        let mut needs = Vec::new();
        if let Some((_, a)) = attrs.attrs.iter().find(|(n, _)| *n == "needs") {
            let elems: Vec<&ast::Expr> = match &a.value {
                ast::Expr::List(items, _) => items.iter().collect(),
                other => vec![other],
            };
            for e in elems {
                if let Some(Value::Instance(t)) = self.typed(e, &Type::Ref, &env) {
                    if t == id {
                        self.diags.push(
                            Diag::error(
                                "E0401",
                                format!("`{}` needs itself", self.instances[id].qualified()),
                            )
                            .at(e.span(), "a dependency on itself")
                            .help("remove it from `needs`"),
                        );
                    } else {
                        needs.push(Spanned::new(t, e.span()));
                    }
                }
            }
        }
        self.instances[id].needs = needs;
        if !ok {
            self.instances[id].params = params;
            return;
        }
        if let Some(pi) = placement_idx {
            let p = &params[pi];
            let placement = match &p.value {
                Value::Host(h) => Placement::Host(*h),
                Value::Group(g) => Placement::Group(*g),
                Value::Placement(pl) => *pl,
                _ => Placement::All,
            };
            self.instances[id].placement = Spanned::new(placement, p.span);
        }
        let name = self.instances[id].name.value.clone();
        let resources = self.expand(def, &name, &params, id);
        self.instances[id].params = params;
        self.instances[id].resources = resources;
    }

    fn expand(
        &mut self,
        def: &ast::KindDef,
        name: &str,
        params: &[Param],
        id: InstanceId,
    ) -> Vec<Resource> {
        let env = Env::kind(name, params);
        let inst_span = self.instances[id].name.span;
        let qualified = self.instances[id].qualified();
        let mut out = Vec::new();
        let before = self.diags.len();
        for e in &def.body.entries {
            let ast::Entry::Block(b) = e else { continue };
            let kw = b.keyword.name.as_str();
            if resource_attrs(kw).is_none() {
                continue;
            }
            let Some(ast::BlockLabel::Str(label)) = &b.label else {
                continue;
            };
            let Some(labels) = self.interpolate_label(label, &env) else {
                continue;
            };
            for label in labels {
                let get = |r: &mut Self, key: &str, ty: &Type| -> Option<(Value, Span)> {
                    let a = b.body.entries.iter().find_map(|e| match e {
                        ast::Entry::Attr(a) if a.name.name == key => Some(a),
                        _ => None,
                    })?;
                    r.typed(&a.value, ty, &env).map(|v| (v, a.value.span()))
                };
                let str_of = |v: Option<(Value, Span)>| match v {
                    Some((Value::Str(s), _)) => Some(s),
                    _ => None,
                };
                let bool_of = |v: Option<(Value, Span)>, d: bool| match v {
                    Some((Value::Bool(x), _)) => x,
                    _ => d,
                };
                let only = match get(self, "only", &Type::String) {
                    None => Role::Any,
                    Some((Value::Str(s), span)) => match s.as_str() {
                        "primary" => Role::Primary,
                        "standby" => Role::Standby,
                        "any" => Role::Any,
                        other => {
                            self.diags.push(
                                Diag::error("E0211", format!("invalid role `{other}`"))
                                    .at(span, "expected \"primary\", \"standby\" or \"any\"")
                                    .help("`only` selects members of the placement group by role"),
                            );
                            Role::Any
                        }
                    },
                    Some(_) => Role::Any,
                };
                let mode = |r: &mut Self, default: u32| -> u32 {
                    match get(r, "mode", &Type::String) {
                        Some((Value::Str(s), span)) => match u32::from_str_radix(&s, 8) {
                            Ok(m) if m <= 0o7777 && !s.is_empty() => m,
                            _ => {
                                r.diags.push(
                                Diag::error("E0212", format!("invalid file mode `{s}`"))
                                    .at(span, "not an octal mode")
                                    .help("write the mode in octal as a string, e.g. \"0644\" or \"0755\""),
                            );
                                default
                            }
                        },
                        _ => default,
                    }
                };
                let source = |r: &mut Self| -> Source {
                    if let Some(t) = str_of(get(r, "template", &Type::String)) {
                        Source::Template(t)
                    } else {
                        Source::Inline(str_of(get(r, "content", &Type::String)).unwrap_or_default())
                    }
                };
                let owner = |r: &mut Self, key: &str| {
                    str_of(get(r, key, &Type::String)).unwrap_or_else(|| "root".into())
                };
                let kind = match kw {
                    "package" => ResourceKind::Package { name: label },
                    "user" => ResourceKind::User {
                        name: label,
                        home: str_of(get(self, "home", &Type::String)),
                        system: bool_of(get(self, "system", &Type::Bool), true),
                    },
                    "directory" => ResourceKind::Directory {
                        path: label,
                        mode: mode(self, 0o755),
                        owner: owner(self, "owner"),
                        group: owner(self, "group"),
                    },
                    "file" => ResourceKind::File {
                        path: label,
                        mode: mode(self, 0o644),
                        owner: owner(self, "owner"),
                        group: owner(self, "group"),
                        source: source(self),
                    },
                    "unit" => ResourceKind::Unit {
                        name: label,
                        source: source(self),
                        enable: bool_of(get(self, "enable", &Type::Bool), false),
                        start: bool_of(get(self, "start", &Type::Bool), false),
                    },
                    "dropin" => ResourceKind::Dropin {
                        unit: label,
                        source: source(self),
                    },
                    _ => ResourceKind::Step {
                        name: label,
                        run: str_of(get(self, "run", &Type::String)).unwrap_or_default(),
                        unless: str_of(get(self, "unless", &Type::String)),
                    },
                };
                out.push(Resource {
                    span: b.span,
                    only,
                    kind,
                });
            }
        }
        // Errors inside a kind body: say which instance was being expanded.
        for d in &mut self.diags[before..] {
            if d.secondary.iter().all(|l| l.span != inst_span) {
                d.secondary.push(crate::diag::Label {
                    span: inst_span,
                    text: format!("while expanding `{qualified}`"),
                });
            }
        }
        out
    }
}

fn inst_span(b: &ast::Block) -> Span {
    b.keyword.span
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

/// Default keepalived priorities in member order: 150, 100, 50, then evenly below.
pub fn default_priorities(n: usize) -> Vec<u8> {
    if n <= 3 {
        (0..n).map(|i| (150 - 50 * i) as u8).collect()
    } else {
        let step = (240 / n).max(1);
        (0..n).map(|i| (250 - step * i).max(1) as u8).collect()
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
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

/// Kinds defined by standard modules: (kind, module).
fn std_kinds() -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for (module, text) in crate::stdlib::modules() {
        for line in text.lines() {
            if let Some(rest) = line.trim_start().strip_prefix("kind ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                    .collect();
                if !name.is_empty() {
                    out.push((name, module));
                }
            }
        }
    }
    out
}

fn std_module_defining(kind: &str) -> Option<&'static str> {
    std_kinds()
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, m)| m)
}
