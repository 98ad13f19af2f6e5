//! What the editor asks about, from the parsed files alone: every definition
//! (hosts, groups, admins, `let`s, kinds and their parameters, instances), every
//! place that names one, and the other places hover can explain (a built-in
//! attribute, a resource, an import). Built from [`crate::resolve::load::load`]'s
//! trees, so it works on a file with errors (the parser recovers) and answers
//! while the full check runs elsewhere.

use crate::fmt::flat_expr;
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::ast::{self, Entry, Expr, Item, StrPart};
use std::collections::HashMap;

pub type DefId = usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefKind {
    Host,
    Group,
    Admin,
    Let,
    Kind,
    /// A parameter of kind `kind`.
    Param {
        kind: String,
    },
    /// `KIND NAME { ... }`.
    Instance {
        kind: String,
    },
}

impl DefKind {
    pub fn word(&self) -> &str {
        match self {
            DefKind::Host => "host",
            DefKind::Group => "failover",
            DefKind::Admin => "admin",
            DefKind::Let => "let",
            DefKind::Kind => "kind",
            DefKind::Param { .. } => "parameter",
            DefKind::Instance { kind } => kind,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Def {
    pub kind: DefKind,
    /// The name as written (`main` for `postgres main`).
    pub name: String,
    /// The name's span.
    pub span: Span,
    /// The whole item (block, let, kind, parameter).
    pub full: Span,
}

/// What a place in the text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A definition's name.
    Def(DefId),
    /// A name that refers to a definition.
    Ref(DefId),
    /// An attribute of a built-in block (`host`, `failover`, `admin`, `ssh`), a
    /// resource or `needs`.
    BuiltinAttr { block: String, attr: String },
    /// The keyword of a built-in block (`host`, `failover`, `admin`, `ssh`).
    BuiltinBlock(String),
    /// The keyword of a resource in a kind body (`package`, `file`, ...).
    Resource(String),
    /// The path of an import, and the file it loaded.
    Import(Option<FileId>),
}

#[derive(Debug, Clone)]
pub struct Site {
    pub span: Span,
    pub what: What,
}

/// One indexed project: every loaded file's tree, definitions and sites.
pub struct Index {
    pub sources: SourceMap,
    pub files: Vec<(FileId, ast::File)>,
    pub defs: Vec<Def>,
    /// Sorted by (file, start).
    pub sites: Vec<Site>,
    globals: HashMap<String, DefId>,
    kinds: HashMap<String, DefId>,
    instances: HashMap<(String, String), DefId>,
    params: HashMap<(String, String), DefId>,
}

/// The fields of a host, a group and any instance, for `x.` completion and hover.
pub const HOST_FIELDS: &[&str] = &["address", "name"];
pub const GROUP_FIELDS: &[&str] = &["active", "vip", "vip_address", "interface", "name"];

impl Index {
    /// Index the loaded files (user files and `std/...`).
    pub fn build(sources: SourceMap, files: Vec<(FileId, ast::File)>) -> Index {
        let mut ix = Index {
            sources,
            files: Vec::new(),
            defs: Vec::new(),
            sites: Vec::new(),
            globals: HashMap::new(),
            kinds: HashMap::new(),
            instances: HashMap::new(),
            params: HashMap::new(),
        };
        // pass 1: definitions (first one wins, as the resolver reports the others)
        for (_, f) in &files {
            for item in &f.items {
                ix.declare(item);
            }
        }
        // pass 2: every place that names one
        for (fid, f) in &files {
            for item in &f.items {
                ix.visit_item(*fid, item);
            }
        }
        ix.sites
            .sort_by_key(|s| (s.span.file, s.span.start, s.span.end));
        ix.files = files;
        ix
    }

    fn add_def(&mut self, kind: DefKind, name: &ast::Ident, full: Span) -> DefId {
        self.defs.push(Def {
            kind,
            name: name.name.clone(),
            span: name.span,
            full,
        });
        self.defs.len() - 1
    }

    fn declare(&mut self, item: &Item) {
        match item {
            Item::Let(l) => {
                if !self.globals.contains_key(&l.name.name) {
                    let id = self.add_def(DefKind::Let, &l.name, l.span);
                    self.globals.insert(l.name.name.clone(), id);
                }
            }
            Item::Kind(k) => {
                if self.kinds.contains_key(&k.name.name) {
                    return;
                }
                let id = self.add_def(DefKind::Kind, &k.name, k.span);
                self.kinds.insert(k.name.name.clone(), id);
                for p in &k.params {
                    let key = (k.name.name.clone(), p.name.name.clone());
                    if !self.params.contains_key(&key) {
                        let pid = self.add_def(
                            DefKind::Param {
                                kind: k.name.name.clone(),
                            },
                            &p.name,
                            p.span,
                        );
                        self.params.insert(key, pid);
                    }
                }
            }
            Item::Block(b) => {
                let Some(ast::BlockLabel::Name(name)) = &b.label else {
                    return;
                };
                let kw = b.keyword.name.as_str();
                match kw {
                    "host" | "failover" => {
                        if !self.globals.contains_key(&name.name) {
                            let k = if kw == "host" {
                                DefKind::Host
                            } else {
                                DefKind::Group
                            };
                            let id = self.add_def(k, name, b.span);
                            self.globals.insert(name.name.clone(), id);
                        }
                    }
                    "admin" => {
                        self.add_def(DefKind::Admin, name, b.span);
                    }
                    _ => {
                        let key = (kw.to_string(), name.name.clone());
                        if !self.instances.contains_key(&key) {
                            let id = self.add_def(
                                DefKind::Instance {
                                    kind: kw.to_string(),
                                },
                                name,
                                b.span,
                            );
                            self.instances.insert(key, id);
                        }
                    }
                }
            }
            Item::Import(_) => {}
        }
    }

    fn site(&mut self, span: Span, what: What) {
        self.sites.push(Site { span, what });
    }

    fn visit_item(&mut self, fid: FileId, item: &Item) {
        match item {
            Item::Import(i) => {
                let target = self.import_target(fid, &i.path);
                self.site(i.path.span, What::Import(target));
            }
            Item::Let(l) => {
                if let Some(&id) = self.globals.get(&l.name.name) {
                    if self.defs[id].span == l.name.span {
                        self.site(l.name.span, What::Def(id));
                    }
                }
                self.visit_expr(&l.value, None);
            }
            Item::Kind(k) => {
                if let Some(&id) = self.kinds.get(&k.name.name) {
                    if self.defs[id].span == k.name.span {
                        self.site(k.name.span, What::Def(id));
                    }
                }
                let kind = k.name.name.clone();
                for p in &k.params {
                    if let Some(&pid) = self.params.get(&(kind.clone(), p.name.name.clone())) {
                        if self.defs[pid].span == p.name.span {
                            self.site(p.name.span, What::Def(pid));
                        }
                    }
                    if let ast::TypeExpr::Named(t) = innermost(&p.ty) {
                        if let Some(&kid) = self.kinds.get(&t.name) {
                            self.site(t.span, What::Ref(kid));
                        }
                    }
                    if let Some(d) = &p.default {
                        self.visit_expr(d, Some(&kind));
                    }
                }
                for e in &k.body.entries {
                    self.visit_kind_entry(e, &kind);
                }
            }
            Item::Block(b) => self.visit_block(b),
        }
    }

    /// A top-level block: host, failover, admin or an instance.
    fn visit_block(&mut self, b: &ast::Block) {
        let kw = b.keyword.name.clone();
        let builtin = matches!(kw.as_str(), "host" | "failover" | "admin");
        if builtin {
            self.site(b.keyword.span, What::BuiltinBlock(kw.clone()));
        } else if let Some(&kid) = self.kinds.get(&kw) {
            self.site(b.keyword.span, What::Ref(kid));
        }
        if let Some(ast::BlockLabel::Name(name)) = &b.label {
            let id = match kw.as_str() {
                "host" | "failover" => self.globals.get(&name.name).copied(),
                "admin" => self.defs.iter().position(|d| d.span == name.span),
                _ => self
                    .instances
                    .get(&(kw.clone(), name.name.clone()))
                    .copied(),
            };
            if let Some(id) = id.filter(|&id| self.defs[id].span == name.span) {
                self.site(name.span, What::Def(id));
            }
        }
        for e in &b.body.entries {
            match e {
                Entry::Attr(a) => {
                    let what = if builtin || a.name.name == "needs" {
                        Some(What::BuiltinAttr {
                            block: if builtin {
                                kw.clone()
                            } else {
                                "instance".into()
                            },
                            attr: a.name.name.clone(),
                        })
                    } else {
                        self.params
                            .get(&(kw.clone(), a.name.name.clone()))
                            .map(|&p| What::Ref(p))
                    };
                    if let Some(w) = what {
                        self.site(a.name.span, w);
                    }
                    self.visit_expr(&a.value, None);
                }
                Entry::Block(nb) => {
                    // `ssh { ... }` in a host
                    let nkw = nb.keyword.name.clone();
                    self.site(nb.keyword.span, What::BuiltinBlock(nkw.clone()));
                    for ne in &nb.body.entries {
                        if let Entry::Attr(a) = ne {
                            self.site(
                                a.name.span,
                                What::BuiltinAttr {
                                    block: nkw.clone(),
                                    attr: a.name.name.clone(),
                                },
                            );
                            self.visit_expr(&a.value, None);
                        }
                    }
                }
            }
        }
    }

    /// An entry of a kind body: a resource (or an attribute, which the resolver
    /// refuses there).
    fn visit_kind_entry(&mut self, e: &Entry, kind: &str) {
        match e {
            Entry::Attr(a) => self.visit_expr(&a.value, Some(kind)),
            Entry::Block(b) => {
                let kw = b.keyword.name.clone();
                if let Some(&kid) = self.kinds.get(&kw) {
                    self.site(b.keyword.span, What::Ref(kid));
                } else {
                    self.site(b.keyword.span, What::Resource(kw.clone()));
                }
                if let Some(ast::BlockLabel::Str(s)) = &b.label {
                    self.visit_str(s, Some(kind));
                }
                for ne in &b.body.entries {
                    match ne {
                        Entry::Attr(a) => {
                            self.site(
                                a.name.span,
                                What::BuiltinAttr {
                                    block: kw.clone(),
                                    attr: a.name.name.clone(),
                                },
                            );
                            self.visit_expr(&a.value, Some(kind));
                        }
                        Entry::Block(_) => self.visit_kind_entry(ne, kind),
                    }
                }
            }
        }
    }

    fn visit_str(&mut self, s: &ast::StrLit, kind: Option<&str>) {
        for p in &s.parts {
            if let StrPart::Interp(e) = p {
                self.visit_expr(e, kind);
            }
        }
    }

    /// An expression; `kind` is the kind whose body or parameter list it is in.
    fn visit_expr(&mut self, e: &Expr, kind: Option<&str>) {
        match e {
            Expr::Str(s) => self.visit_str(s, kind),
            Expr::Int(..) | Expr::Bool(..) => {}
            Expr::List(items, _) => {
                for i in items {
                    self.visit_expr(i, kind);
                }
            }
            Expr::Call(_, args, _) => {
                for a in args {
                    self.visit_expr(a, kind);
                }
            }
            Expr::Path(p) => self.visit_path(p, kind),
        }
    }

    fn visit_path(&mut self, p: &[ast::Ident], kind: Option<&str>) {
        let Some(first) = p.first() else {
            return;
        };
        if let Some(k) = kind {
            if let Some(&pid) = self.params.get(&(k.to_string(), first.name.clone())) {
                self.site(first.span, What::Ref(pid));
                return;
            }
        }
        if let Some(&id) = self.globals.get(&first.name) {
            self.site(first.span, What::Ref(id));
            return;
        }
        if let Some(&kid) = self.kinds.get(&first.name) {
            self.site(first.span, What::Ref(kid));
            if let Some(second) = p.get(1) {
                let key = (first.name.clone(), second.name.clone());
                if let Some(&iid) = self.instances.get(&key) {
                    self.site(second.span, What::Ref(iid));
                    if let Some(third) = p.get(2) {
                        let key = (first.name.clone(), third.name.clone());
                        if let Some(&pid) = self.params.get(&key) {
                            self.site(third.span, What::Ref(pid));
                        }
                    }
                }
            }
        }
    }

    /// The file an import loaded: `std/NAME`, or a path relative to the importing
    /// file (as [`crate::resolve::load`] names it).
    fn import_target(&self, from: FileId, path: &ast::StrLit) -> Option<FileId> {
        let p = path.as_plain()?;
        if p.starts_with("std/") {
            return self.sources.find(&p);
        }
        let here = std::path::Path::new(&self.sources.get(from).name);
        let dir = here.parent().unwrap_or(std::path::Path::new(""));
        let full = crate::resolve::load::normalize(&dir.join(&p));
        self.sources.find(&full.display().to_string())
    }

    /// The innermost site at `offset` of `file` (an offset just after a name counts:
    /// the cursor sits there while typing).
    pub fn site_at(&self, file: FileId, offset: usize) -> Option<&Site> {
        let o = offset as u32;
        self.sites
            .iter()
            .filter(|s| s.span.file == file && s.span.start <= o && o <= s.span.end)
            .min_by_key(|s| (s.span.len(), std::cmp::Reverse(s.span.start)))
    }

    /// The definition a site is or names.
    pub fn def_of(&self, what: &What) -> Option<DefId> {
        match what {
            What::Def(d) | What::Ref(d) => Some(*d),
            _ => None,
        }
    }

    /// Every site that names `def` (its definition first, then in file order).
    pub fn references(&self, def: DefId) -> Vec<Span> {
        let mut out = vec![self.defs[def].span];
        out.extend(
            self.sites
                .iter()
                .filter(|s| s.what == What::Ref(def))
                .map(|s| s.span),
        );
        out
    }

    /// The import paths that load `file`, in file order.
    pub fn importers(&self, file: FileId) -> Vec<Span> {
        self.sites
            .iter()
            .filter(|s| s.what == What::Import(Some(file)))
            .map(|s| s.span)
            .collect()
    }

    pub fn is_std(&self, file: FileId) -> bool {
        self.sources.get(file).name.starts_with("std/")
    }

    pub fn kind(&self, name: &str) -> Option<&ast::KindDef> {
        let d = &self.defs[*self.kinds.get(name)?];
        self.kind_at(d.full)
    }

    fn kind_at(&self, span: Span) -> Option<&ast::KindDef> {
        let (_, f) = self.files.iter().find(|(id, _)| *id == span.file)?;
        f.items.iter().find_map(|i| match i {
            Item::Kind(k) if k.span == span => Some(k),
            _ => None,
        })
    }

    /// The top-level block of a definition (host, group, admin, instance).
    pub fn block(&self, def: DefId) -> Option<&ast::Block> {
        let span = self.defs[def].full;
        let (_, f) = self.files.iter().find(|(id, _)| *id == span.file)?;
        f.items.iter().find_map(|i| match i {
            Item::Block(b) if b.span == span => Some(b),
            _ => None,
        })
    }

    pub fn let_value(&self, def: DefId) -> Option<&Expr> {
        let span = self.defs[def].full;
        let (_, f) = self.files.iter().find(|(id, _)| *id == span.file)?;
        f.items.iter().find_map(|i| match i {
            Item::Let(l) if l.span == span => Some(&l.value),
            _ => None,
        })
    }

    /// Names of every kind, sorted.
    pub fn kind_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.kinds.keys().map(String::as_str).collect();
        v.sort();
        v
    }

    /// Definitions of one sort (hosts, groups, lets), in declaration order.
    pub fn defs_of(&self, pred: impl Fn(&DefKind) -> bool) -> Vec<&Def> {
        self.defs.iter().filter(|d| pred(&d.kind)).collect()
    }

    /// The comment lines right above an item (no blank line between), joined.
    pub fn doc_comment(&self, full: Span) -> String {
        let Some((_, f)) = self.files.iter().find(|(id, _)| *id == full.file) else {
            return String::new();
        };
        let text = &self.sources.get(full.file).text;
        let mut lines = Vec::new();
        let mut next = full.start as usize;
        for c in f.comments.iter().rev() {
            let end = c.span.end as usize;
            if end > next {
                continue;
            }
            let between = text.get(end..next).unwrap_or("x");
            if !between.chars().all(char::is_whitespace) || between.matches('\n').count() > 1 {
                break;
            }
            // a trailing comment of the line above is not this item's
            let line_start = text[..c.span.start as usize]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            if !text[line_start..c.span.start as usize].trim().is_empty() {
                break;
            }
            lines.push(c.text.strip_prefix(' ').unwrap_or(&c.text).to_string());
            next = c.span.start as usize;
        }
        lines.reverse();
        lines.join("\n")
    }

    /// `name: type = default` of a parameter.
    pub fn param_signature(&self, def: DefId) -> Option<String> {
        let d = &self.defs[def];
        let DefKind::Param { kind } = &d.kind else {
            return None;
        };
        let k = self.kind(kind)?;
        let p = k.params.iter().find(|p| p.name.span == d.span)?;
        Some(param_text(p))
    }
}

pub fn type_text(t: &ast::TypeExpr) -> String {
    match t {
        ast::TypeExpr::Named(i) => i.name.clone(),
        ast::TypeExpr::List(inner, _) => format!("[{}]", type_text(inner)),
    }
}

pub fn param_text(p: &ast::Param) -> String {
    match &p.default {
        Some(d) => format!("{}: {} = {}", p.name.name, type_text(&p.ty), flat_expr(d)),
        None => format!("{}: {}", p.name.name, type_text(&p.ty)),
    }
}

fn innermost(t: &ast::TypeExpr) -> &ast::TypeExpr {
    match t {
        ast::TypeExpr::List(inner, _) => innermost(inner),
        named => named,
    }
}
