//! Declarations: top-level names (hosts, failover groups and `let`s share one
//! namespace; instances are named per kind), kinds with their parameter types, and
//! the static checks of kind bodies.

use super::model::*;
use super::{
    resource_attrs, Blocks, Global, KindInfo, LetInfo, ParamDecl, Resolver, BUILTIN_BLOCKS,
    RESOURCE_KINDS,
};
use crate::diag::{self, codes, Diag};
use crate::source::{FileId, Span};
use crate::syntax::ast;
use std::collections::HashMap;

impl<'a> Resolver<'a> {
    /// Pass 1: every kind. The standard library's first, so a clash is reported at
    /// the user's definition.
    pub(super) fn declare_kinds(&mut self, files: &'a [(FileId, ast::File)]) {
        let is_std = |fid: &FileId| self.sources.get(*fid).name.starts_with("std/");
        let (std_files, user_files): (Vec<_>, Vec<_>) =
            files.iter().partition(|(fid, _)| is_std(fid));
        for (_, f) in files {
            for item in &f.items {
                if let ast::Item::Kind(k) = item {
                    self.kind_names.insert(k.name.name.clone());
                }
            }
        }
        for (_, f) in std_files.into_iter().chain(user_files) {
            for item in &f.items {
                if let ast::Item::Kind(k) = item {
                    self.declare_kind(k);
                }
            }
        }
    }

    /// Pass 2: the names of lets, hosts, groups and instances; the blocks to resolve.
    pub(super) fn declare_names(&mut self, files: &'a [(FileId, ast::File)]) -> Blocks<'a> {
        let mut blocks = Blocks::default();
        for (_, f) in files {
            for item in &f.items {
                match item {
                    ast::Item::Let(l) => self.declare_let(l),
                    ast::Item::Block(b) => self.declare_block(b, &mut blocks),
                    ast::Item::Import(_) | ast::Item::Kind(_) => {}
                }
            }
        }
        blocks
    }

    fn declare_let(&mut self, l: &'a ast::Let) {
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

    fn declare_block(&mut self, b: &'a ast::Block, blocks: &mut Blocks<'a>) {
        let kw = b.keyword.name.as_str();
        if !BUILTIN_BLOCKS.contains(&kw) && !self.kinds.contains_key(kw) {
            self.unknown_block(&b.keyword, kw);
            return;
        }
        let Some(name) = self.block_name(b) else {
            return;
        };
        match kw {
            "host" => {
                if self.declare_global(name, Global::Host(HostId::new(blocks.hosts.len()))) {
                    blocks.hosts.push((b, name));
                }
            }
            "failover" => {
                if self.declare_global(name, Global::Group(GroupId::new(blocks.groups.len()))) {
                    blocks.groups.push((b, name));
                }
            }
            // not a global: nothing refers to an admin; the names are unique among admins
            "admin" => match blocks.admins.iter().find(|(_, n)| n.name == name.name) {
                Some((_, prev)) => self.diags.push(
                    Diag::error(
                        codes::E0101,
                        format!("`admin {}` is defined more than once", name.name),
                    )
                    .at(name.span, "defined again here")
                    .with(prev.span, "first defined here")
                    .help("give each admin one block, with one key"),
                ),
                None => blocks.admins.push((b, name)),
            },
            kw if self.kinds.contains_key(kw) => self.declare_instance(b, name, blocks),
            kw => self.unknown_block(&b.keyword, kw),
        }
    }

    /// An instance is named per kind: `KIND.NAME` must be unique.
    fn declare_instance(
        &mut self,
        b: &'a ast::Block,
        name: &'a ast::Ident,
        blocks: &mut Blocks<'a>,
    ) {
        let kw = b.keyword.name.as_str();
        let key = (kw.to_string(), name.name.clone());
        if let Some(&prev) = self.instance_index.get(&key) {
            let (pb, _) = blocks.instances[prev];
            let prev_span = self.block_name(pb).map(|i| i.span).unwrap_or(pb.span);
            self.diags.push(
                Diag::error(
                    codes::E0101,
                    format!("`{kw}.{}` is defined more than once", name.name),
                )
                .at(name.span, "defined again here")
                .with(prev_span, "first defined here")
                .help("give each instance of a kind its own name"),
            );
        } else {
            self.instance_index.insert(key, blocks.instances.len());
            blocks.instances.push((b, name));
        }
    }

    pub(super) fn block_name<'b>(&mut self, b: &'b ast::Block) -> Option<&'b ast::Ident> {
        match &b.label {
            Some(ast::BlockLabel::Name(i)) => Some(i),
            Some(ast::BlockLabel::Str(s)) => {
                let what = b.keyword.name.as_str();
                self.diags.push(
                    Diag::error(codes::E0109, format!("the name of a `{what}` must be an identifier, not a string"))
                        .at(s.span, "a string here")
                        .help(format!("write `{what} NAME {{ ... }}` without quotes; top-level blocks are named by identifiers")),
                );
                None
            }
            None => {
                let what = b.keyword.name.as_str();
                if BUILTIN_BLOCKS.contains(&what) || self.kinds.contains_key(what) {
                    self.diags.push(
                        Diag::error(codes::E0109, format!("this `{what}` has no name"))
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

    pub(super) fn unknown_block(&mut self, kw: &ast::Ident, name: &str) {
        let mut d = Diag::error(codes::E0104, format!("unknown block kind `{name}`"))
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
    pub(super) fn declare_global(&mut self, name: &ast::Ident, g: Global) -> bool {
        if name.name == "all" {
            self.diags.push(
                Diag::error(codes::E0101, "`all` is a reserved name")
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
                Diag::error(codes::E0101, format!("the name `{}` is defined more than once", name.name))
                    .at(name.span, "defined again here")
                    .with(*prev_span, format!("first defined here, as {what}"))
                    .help("hosts, failover groups and `let` bindings share one namespace: rename one of them"),
            );
            return false;
        }
        self.globals.insert(name.name.clone(), (g, name.span));
        true
    }

    pub(super) fn declare_kind(&mut self, k: &'a ast::KindDef) {
        if BUILTIN_BLOCKS.contains(&k.name.name.as_str())
            || RESOURCE_KINDS.contains(&k.name.name.as_str())
        {
            self.diags.push(
                Diag::error(
                    codes::E0101,
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
                    codes::E0101,
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
                    Diag::error(codes::E0101, format!("`{}` is reserved and cannot be a parameter", p.name.name))
                        .at(p.name.span, "reserved")
                        .help("every instance already has `name` (its label) and `needs`; rename the parameter"),
                );
                continue;
            }
            if let Some(prev) = params.iter().find(|q| q.name == p.name.name) {
                self.diags.push(
                    Diag::error(
                        codes::E0101,
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
        // A host, group or placement; failing that, an instance of a kind: placed
        // where that instance is.
        let placement = params
            .iter()
            .position(|p| matches!(p.ty, Type::Host | Type::Failover | Type::Placement))
            .or_else(|| params.iter().position(|p| matches!(p.ty, Type::Kind(_))));
        if placement.is_none() {
            self.diags.push(
                Diag::error(codes::E0110, format!("kind `{}` has no placement parameter", k.name.name))
                    .at(k.name.span, "nothing says where its resources go")
                    .help("add a parameter of type `host`, `failover` or `placement`, e.g. `on: placement` (or one whose type is a kind: placed where that instance is)"),
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
                "text" => Type::Text,
                "user" => Type::User,
                "int" => Type::Int,
                "uint" => Type::Uint,
                "port" => Type::Port,
                "bool" => Type::Bool,
                "duration" => Type::Duration,
                "calendar" => Type::Calendar,
                "ip" => Type::Ip,
                "cidr" => Type::Cidr,
                "host" => Type::Host,
                "failover" => Type::Failover,
                "placement" => Type::Placement,
                "secret" => Type::Secret,
                "check" => Type::Check,
                "ref" => Type::Ref,
                k if self.kind_names.contains(k) => Type::Kind(k.to_string()),
                other => {
                    const TYPES: &[&str] = &[
                        "string",
                        "int",
                        "uint",
                        "port",
                        "bool",
                        "duration",
                        "calendar",
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
                        None => format!(
                            "types are {}, a kind's name (an instance of it), and lists `[T]`",
                            TYPES.join(", ")
                        ),
                    };
                    self.diags.push(
                        Diag::error(codes::E0205, format!("unknown type `{other}`"))
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
                    Diag::error(codes::E0105, format!("unexpected attribute `{}` in a kind body", a.name.name))
                        .at(a.name.span, "attributes belong inside a resource block")
                        .help("a kind body lists resources: `package`, `user`, `directory`, `file`, `unit`, `dropin`, `step`"),
                ),
                ast::Entry::Block(b) => {
                    let kw = b.keyword.name.as_str();
                    let Some(allowed) = resource_attrs(kw) else {
                        let mut d = Diag::error(codes::E0104, format!("unknown resource `{kw}`"))
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
                            Diag::error(codes::E0109, format!("`{kw}` needs a quoted {what}"))
                                .at(b.keyword.span, format!("expected a string {what} after this"))
                                .help(format!("write `{kw} \"...\" {{ ... }}`")),
                        );
                    }
                    let mut seen: HashMap<&str, Span> = HashMap::new();
                    for e in &b.body.entries {
                        match e {
                            ast::Entry::Block(nb) => self.diags.push(
                                Diag::error(codes::E0105, format!("unexpected block `{}` inside `{kw}`", nb.keyword.name))
                                    .at(nb.keyword.span, "not allowed here")
                                    .help(format!("`{kw}` takes attributes: {}", allowed.join(", "))),
                            ),
                            ast::Entry::Attr(a) => {
                                let n = a.name.name.as_str();
                                if !allowed.contains(&n) {
                                    let mut d = Diag::error(codes::E0105, format!("unknown attribute `{n}` for `{kw}`"))
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
                            Diag::error(codes::E0106, "`step` is missing `run`")
                                .at(b.keyword.span, "this step has no command")
                                .help("add `run = \"...\"` (and usually `unless = \"...\"` to guard it)"),
                        );
                    }
                    // A unit without a source is one the system already has.
                    if matches!(kw, "file" | "unit" | "dropin") {
                        match (seen.get("template"), seen.get("content")) {
                            (Some(t), Some(c)) => self.diags.push(
                                Diag::error(codes::E0210, format!("`{kw}` has both `template` and `content`"))
                                    .at(*c, "content given here")
                                    .with(*t, "template given here")
                                    .help("keep one of them"),
                            ),
                            (None, None) if kw == "unit" => {}
                            (None, None) => self.diags.push(
                                Diag::error(codes::E0106, format!("`{kw}` needs `template` or `content`"))
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
