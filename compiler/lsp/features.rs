//! The answers, as plain data over an [`Index`]: hover text, completion items,
//! the outline, rename edits. Positions are byte offsets and spans; the server
//! turns them into the client's line/character.

use super::docs::Docs;
use super::index::{param_text, type_text, DefId, DefKind, Index, What, GROUP_FIELDS, HOST_FIELDS};
use crate::fmt::flat_expr;
use crate::source::{FileId, Span};
use crate::syntax::ast::{self, Entry, Item};

/// Markdown for what is at `offset`, and the span it is about.
pub fn hover(ix: &Index, docs: &Docs, file: FileId, offset: usize) -> Option<(String, Span)> {
    let site = ix.site_at(file, offset)?;
    let text = match &site.what {
        What::Def(d) | What::Ref(d) => def_hover(ix, docs, *d),
        What::BuiltinAttr { block, attr } => builtin_attr(docs, block, attr),
        What::BuiltinBlock(kw) => {
            let about = docs.about(kw).unwrap_or("");
            format!("```infra\n{kw}\n```\n{about}")
        }
        What::Resource(kw) => match docs.resource(kw) {
            Some(r) => format!("```infra\n{kw}\n```\nresource  \n{r}"),
            None => format!(
                "`{kw}`: not a resource ({})",
                resources().collect::<Vec<_>>().join(", ")
            ),
        },
        What::Import(Some(f)) => import_hover(ix, *f, ix.sources.slice(site.span)),
        What::Import(None) => "not loaded: see the diagnostic".to_string(),
    };
    Some((text.trim_end().to_string(), site.span))
}

/// What a kind body accepts (the keywords [`crate::resolve::resource_attrs`]
/// knows): the resolver's resource list and `release`.
fn resources() -> impl Iterator<Item = &'static str> {
    crate::resolve::RESOURCE_KINDS
        .iter()
        .copied()
        .chain(["release"])
}

fn builtin_attr(docs: &Docs, block: &str, attr: &str) -> String {
    if block == "instance" && attr == "needs" {
        return "```infra\nneeds: [ref] = []\n```\nInstances whose resources come first, on every host they share (`needs = [postgres.main]`).".into();
    }
    if let Some(d) = docs.attr(block, attr) {
        return format!("```infra\n{block}.{attr}\n```\n{d}");
    }
    if let Some(attrs) = crate::resolve::resource_attrs(block) {
        if attrs.contains(&attr) {
            let r = docs.resource(block).unwrap_or_default();
            return format!("```infra\n{block} {{ {attr} }}\n```\n{r}");
        }
    }
    format!("`{attr}`: not an attribute of `{block}`")
}

fn attrs_text(b: &ast::Block) -> String {
    let mut out = Vec::new();
    for e in &b.body.entries {
        match e {
            Entry::Attr(a) => out.push(format!("  {} = {}", a.name.name, flat_expr(&a.value))),
            Entry::Block(nb) => out.push(format!("  {} {{ ... }}", nb.keyword.name)),
        }
    }
    out.join("\n")
}

fn def_hover(ix: &Index, docs: &Docs, d: DefId) -> String {
    let def = &ix.defs[d];
    let comment = ix.doc_comment(def.full);
    let mut s = match &def.kind {
        DefKind::Host | DefKind::Group | DefKind::Admin | DefKind::Instance { .. } => {
            let head = format!("{} {}", def.kind.word(), def.name);
            match ix.block(d) {
                Some(b) => format!("```infra\n{head} {{\n{}\n}}\n```", attrs_text(b)),
                None => format!("```infra\n{head}\n```"),
            }
        }
        DefKind::Let => match ix.let_value(d) {
            Some(v) => format!("```infra\nlet {} = {}\n```", def.name, flat_expr(v)),
            None => format!("```infra\nlet {}\n```", def.name),
        },
        DefKind::Kind => kind_signature(ix, &def.name),
        DefKind::Param { kind } => {
            let sig = ix.param_signature(d).unwrap_or_else(|| def.name.clone());
            let mut s = format!("```infra\n{kind}({sig})\n```");
            if let Some(row) = docs.attr(kind, &def.name) {
                s.push('\n');
                s.push_str(&row);
            }
            s
        }
    };
    match &def.kind {
        DefKind::Kind => {
            if let Some(a) = docs.about(&def.name) {
                s.push('\n');
                s.push_str(a);
            }
        }
        DefKind::Instance { kind } => {
            if let Some(a) = docs.about(kind) {
                s.push('\n');
                s.push_str(a);
            }
        }
        _ => {}
    }
    if !comment.is_empty() {
        s.push_str("\n\n");
        s.push_str(&comment);
    }
    let file = &ix.sources.get(def.span.file).name;
    if ix.is_std(def.span.file) {
        s.push_str(&format!("\n\n*{file}*"));
    }
    s
}

fn kind_signature(ix: &Index, name: &str) -> String {
    let Some(k) = ix.kind(name) else {
        return format!("```infra\nkind {name}\n```");
    };
    let params: Vec<String> = k
        .params
        .iter()
        .map(|p| format!("  {},", param_text(p)))
        .collect();
    format!("```infra\nkind {name}(\n{}\n)\n```", params.join("\n"))
}

fn import_hover(ix: &Index, f: FileId, written: &str) -> String {
    let kinds: Vec<String> = ix
        .defs
        .iter()
        .filter(|d| d.kind == DefKind::Kind && d.span.file == f)
        .map(|d| format!("`{}`", d.name))
        .collect();
    let mut s = format!("```infra\nimport {written}\n```");
    if !kinds.is_empty() {
        s.push_str(&format!("\nkinds: {}", kinds.join(", ")));
    }
    // the file's opening comment
    if let Some((_, file)) = ix.files.iter().find(|(id, _)| *id == f) {
        let head: Vec<&str> = file
            .comments
            .iter()
            .take_while(|c| {
                let t = &ix.sources.get(f).text;
                let before = &t[..c.span.start as usize];
                before.lines().all(|l| l.trim_start().starts_with('#'))
            })
            .map(|c| c.text.strip_prefix(' ').unwrap_or(&c.text))
            .take_while(|l| !l.is_empty())
            .collect();
        if !head.is_empty() {
            s.push_str("\n\n");
            s.push_str(&head.join("\n"));
        }
    }
    s
}

// ---------------------------------------------------------------------------
// Completion

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Keyword,
    Kind,
    Attribute,
    Host,
    Group,
    Instance,
    Field,
    Module,
    Value,
    Resource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub label: String,
    pub kind: ItemKind,
    pub detail: String,
    /// Text to insert when it differs from the label.
    pub insert: Option<String>,
}

fn item(label: impl Into<String>, kind: ItemKind, detail: impl Into<String>) -> Completion {
    Completion {
        label: label.into(),
        kind,
        detail: detail.into(),
        insert: None,
    }
}

/// What encloses an offset.
enum Ctx<'a> {
    Top,
    /// Inside the braces of a top-level block; and of a nested block in it.
    Block(&'a ast::Block, Option<&'a ast::Block>),
    /// Inside a kind's body; and of a resource in it.
    KindBody(&'a ast::KindDef, Option<&'a ast::Block>),
    /// Between a kind's parentheses.
    KindParams(&'a ast::KindDef),
}

fn inside(body: &ast::Body, o: u32) -> bool {
    body.span.start < o && (o < body.span.end || body.span.end == body.span.start)
}

fn context(file: &ast::File, o: u32) -> Ctx<'_> {
    for item in &file.items {
        match item {
            Item::Block(b) if inside(&b.body, o) => {
                let nested = b.body.entries.iter().find_map(|e| match e {
                    Entry::Block(nb) if inside(&nb.body, o) => Some(nb),
                    _ => None,
                });
                return Ctx::Block(b, nested);
            }
            Item::Kind(k) if inside(&k.body, o) => {
                let res = k.body.entries.iter().find_map(|e| match e {
                    Entry::Block(nb) if inside(&nb.body, o) => Some(nb),
                    _ => None,
                });
                return Ctx::KindBody(k, res);
            }
            Item::Kind(k) if k.name.span.end < o && o <= k.body.span.start => {
                return Ctx::KindParams(k)
            }
            _ => {}
        }
    }
    Ctx::Top
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Completion items at `offset` of `file` (whose current text is `text`).
pub fn complete(
    ix: &Index,
    docs: &Docs,
    file: FileId,
    text: &str,
    offset: usize,
) -> Vec<Completion> {
    let mut offset = offset.min(text.len());
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let prefix = &text[line_start..offset];
    let trimmed = prefix.trim_start();
    let Some((_, ast)) = ix.files.iter().find(|(id, _)| *id == file) else {
        return Vec::new();
    };
    let ctx = context(ast, offset as u32);
    // import "std/…
    if let Some(rest) = trimmed.strip_prefix("import") {
        let rest = rest.trim_start();
        if rest.starts_with('"') && !rest[1..].contains('"') {
            return crate::stdlib::modules()
                .filter(|(n, _)| *n != crate::stdlib::PRELUDE)
                .map(|(n, _)| item(format!("std/{n}"), ItemKind::Module, "standard library"))
                .collect();
        }
        return Vec::new();
    }
    let kind_scope = match &ctx {
        Ctx::KindBody(k, _) | Ctx::KindParams(k) => Some(*k),
        _ => None,
    };
    // ${… inside a string
    if let Some(i) = prefix.rfind("${") {
        if !prefix[i..].contains('}') {
            return names_in(ix, kind_scope, &prefix[i + 2..], None);
        }
    }
    // an open string: nothing to complete
    if prefix.matches('"').count() % 2 == 1 {
        return Vec::new();
    }
    if let Some(eq) = prefix.find('=') {
        let attr = prefix[..eq].trim();
        if is_ident(attr) {
            let expected = expected_type(ix, &ctx, attr);
            return names_in(ix, kind_scope, &prefix[eq + 1..], expected.as_deref());
        }
    }
    if !(trimmed.is_empty() || is_ident(trimmed)) {
        return Vec::new();
    }
    match ctx {
        Ctx::Top => {
            let mut v = vec![
                item("host", ItemKind::Keyword, "a machine"),
                item(
                    "failover",
                    ItemKind::Keyword,
                    "a virtual IP and the role it carries",
                ),
                item("admin", ItemKind::Keyword, "who may decrypt the secrets"),
                item("import", ItemKind::Keyword, "a std module or a file"),
                item("let", ItemKind::Keyword, "a named value"),
                item("kind", ItemKind::Keyword, "a kind of your own"),
            ];
            for k in ix.kind_names() {
                let about = docs.about(k).unwrap_or("");
                v.push(item(k, ItemKind::Kind, first_sentence(about)));
            }
            v
        }
        Ctx::Block(b, nested) => {
            let kw = b.keyword.name.as_str();
            let (block, present): (String, &ast::Body) = match nested {
                Some(nb) => (nb.keyword.name.clone(), &nb.body),
                None => (kw.to_string(), &b.body),
            };
            let have: Vec<&str> = present
                .entries
                .iter()
                .map(|e| match e {
                    Entry::Attr(a) => a.name.name.as_str(),
                    Entry::Block(nb) => nb.keyword.name.as_str(),
                })
                .collect();
            let mut v = Vec::new();
            if let Some(s) = docs
                .blocks
                .get(&block)
                .filter(|_| matches!(block.as_str(), "host" | "failover" | "admin" | "ssh"))
            {
                for (name, row) in &s.rows {
                    if have.contains(&name.as_str()) {
                        continue;
                    }
                    let ty = row.cells.first().cloned().unwrap_or_default();
                    v.push(attr_item(name, &ty, name == "ssh"));
                }
            } else if let Some(k) = ix.kind(kw) {
                for p in &k.params {
                    if !have.contains(&p.name.name.as_str()) {
                        v.push(attr_item(&p.name.name, &type_text(&p.ty), false));
                    }
                }
                if !have.contains(&"needs") {
                    v.push(attr_item("needs", "[ref]", false));
                }
            }
            v
        }
        Ctx::KindBody(_, Some(res)) => {
            let kw = res.keyword.name.as_str();
            crate::resolve::resource_attrs(kw)
                .unwrap_or(&[])
                .iter()
                .map(|a| attr_item(a, "", false))
                .collect()
        }
        Ctx::KindBody(_, None) => resources()
            .map(|r| item(r, ItemKind::Resource, "resource"))
            .collect(),
        Ctx::KindParams(_) => Vec::new(),
    }
}

fn attr_item(name: &str, ty: &str, block: bool) -> Completion {
    Completion {
        label: name.to_string(),
        kind: ItemKind::Attribute,
        detail: ty.to_string(),
        insert: Some(if block {
            format!("{name} {{}}")
        } else {
            format!("{name} = ")
        }),
    }
}

fn first_sentence(s: &str) -> String {
    match s.find(". ") {
        Some(i) => s[..=i].to_string(),
        None => s.to_string(),
    }
}

/// The type the attribute `attr` of the enclosing block wants.
fn expected_type(ix: &Index, ctx: &Ctx, attr: &str) -> Option<String> {
    match ctx {
        Ctx::Block(b, None) => match (b.keyword.name.as_str(), attr) {
            ("failover", "members") => Some("[host]".into()),
            ("failover", "witness") => Some("host".into()),
            ("failover", "check") => Some("check".into()),
            (_, "needs") => Some("[ref]".into()),
            (kw, _) => {
                let k = ix.kind(kw)?;
                let p = k.params.iter().find(|p| p.name.name == attr)?;
                Some(type_text(&p.ty))
            }
        },
        _ => None,
    }
}

/// Names for the last (dotted) word of `value`, of type `expected` when known.
fn names_in(
    ix: &Index,
    kind: Option<&ast::KindDef>,
    value: &str,
    expected: Option<&str>,
) -> Vec<Completion> {
    let word: String = {
        let rev: String = value
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .collect();
        rev.chars().rev().collect()
    };
    let parts: Vec<&str> = word.split('.').collect();
    if parts.len() >= 2 {
        let base = &parts[..parts.len() - 1];
        return fields(ix, kind, base);
    }
    let hosts = || ix.defs_of(|k| *k == DefKind::Host);
    let groups = || ix.defs_of(|k| *k == DefKind::Group);
    let mut v = Vec::new();
    let ty = expected.map(|t| t.trim_start_matches('[').trim_end_matches(']'));
    let host_items = |v: &mut Vec<Completion>| {
        for h in hosts() {
            v.push(item(&h.name, ItemKind::Host, "host"));
        }
    };
    let group_items = |v: &mut Vec<Completion>| {
        for g in groups() {
            v.push(item(&g.name, ItemKind::Group, "failover"));
        }
    };
    let instances = |v: &mut Vec<Completion>, of: Option<&str>| {
        for d in ix.defs.iter() {
            if let DefKind::Instance { kind } = &d.kind {
                if of.is_none_or(|o| o == kind) {
                    v.push(item(
                        format!("{kind}.{}", d.name),
                        ItemKind::Instance,
                        kind.clone(),
                    ));
                }
            }
        }
    };
    match ty {
        Some("host") => host_items(&mut v),
        Some("failover") => group_items(&mut v),
        Some("placement") => {
            for g in groups() {
                v.push(item(
                    format!("{}.active", g.name),
                    ItemKind::Group,
                    "placement: where the VIP is",
                ));
            }
            group_items(&mut v);
            host_items(&mut v);
            v.push(item("all", ItemKind::Keyword, "placement: every host"));
        }
        Some("ref") => instances(&mut v, None),
        Some("secret") => v.push(Completion {
            insert: Some("secret(\"\")".into()),
            ..item("secret(\"NAME\")", ItemKind::Value, "a secret")
        }),
        Some("check") => {
            for (l, ins) in [
                ("http(\"URL\")", "http(\"http://127.0.0.1/\")"),
                ("tcp(PORT)", "tcp()"),
                ("exec(\"CMD\")", "exec(\"\")"),
            ] {
                v.push(Completion {
                    insert: Some(ins.into()),
                    ..item(l, ItemKind::Value, "check")
                });
            }
        }
        Some("bool") => {
            v.push(item("true", ItemKind::Value, "bool"));
            v.push(item("false", ItemKind::Value, "bool"));
        }
        Some(t) if ix.kind(t).is_some() => instances(&mut v, Some(t)),
        Some(_) => {}
        None => {
            if let Some(k) = kind {
                for p in &k.params {
                    v.push(item(&p.name.name, ItemKind::Field, type_text(&p.ty)));
                }
                v.push(item("name", ItemKind::Field, "string: the instance's name"));
            }
            host_items(&mut v);
            group_items(&mut v);
            for l in ix.defs_of(|k| *k == DefKind::Let) {
                v.push(item(&l.name, ItemKind::Value, "let"));
            }
            for k in ix.kind_names() {
                v.push(item(k, ItemKind::Kind, "kind: KIND.NAME"));
            }
        }
    }
    v
}

/// After `base.`: a group's or host's fields, a kind's instances, an instance's
/// parameters.
fn fields(ix: &Index, kind: Option<&ast::KindDef>, base: &[&str]) -> Vec<Completion> {
    let field_items = |names: &[&str], detail: &str| {
        names
            .iter()
            .map(|n| item(*n, ItemKind::Field, detail))
            .collect::<Vec<_>>()
    };
    let global = |n: &str| {
        ix.defs
            .iter()
            .find(|d| d.name == n && matches!(d.kind, DefKind::Host | DefKind::Group))
    };
    match base {
        [one] => {
            if let Some(k) = kind {
                if let Some(p) = k.params.iter().find(|p| p.name.name == *one) {
                    // a parameter of a kind's type: its instance's parameters
                    let t = type_text(&p.ty);
                    return match t.as_str() {
                        "failover" => field_items(GROUP_FIELDS, "failover"),
                        "host" => field_items(HOST_FIELDS, "host"),
                        _ => params_of(ix, &t),
                    };
                }
            }
            match global(one).map(|d| &d.kind) {
                Some(DefKind::Host) => field_items(HOST_FIELDS, "host"),
                Some(DefKind::Group) => field_items(GROUP_FIELDS, "failover"),
                _ => ix
                    .defs
                    .iter()
                    .filter(|d| {
                        d.kind
                            == DefKind::Instance {
                                kind: one.to_string(),
                            }
                    })
                    .map(|d| item(&d.name, ItemKind::Instance, *one))
                    .collect(),
            }
        }
        [k, _] => {
            let mut v = params_of(ix, k);
            v.push(item("name", ItemKind::Field, "string"));
            v
        }
        _ => Vec::new(),
    }
}

fn params_of(ix: &Index, kind: &str) -> Vec<Completion> {
    ix.kind(kind)
        .map(|k| {
            k.params
                .iter()
                .map(|p| item(&p.name.name, ItemKind::Field, type_text(&p.ty)))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Outline and rename

#[derive(Debug, Clone)]
pub struct Symbol {
    pub name: String,
    pub detail: String,
    pub kind: SymbolKind,
    pub full: Span,
    pub name_span: Span,
    pub children: Vec<Symbol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolKind {
    Host,
    Group,
    Admin,
    Instance,
    Kind,
    Param,
    Let,
    Import,
    Attr,
    Block,
}

/// The outline of one file.
pub fn symbols(file: &ast::File) -> Vec<Symbol> {
    let mut v: Vec<Symbol> = file.items.iter().map(item_symbol).collect();
    for s in &mut v {
        prune(s, OUTLINE_DEPTH);
    }
    v
}

/// Levels of the outline: a body nested deeper is not shown (a client's JSON
/// reader has a nesting limit; serde_json's is 128).
const OUTLINE_DEPTH: usize = 8;

fn prune(s: &mut Symbol, depth: usize) {
    if depth <= 1 {
        s.children.clear();
    }
    for c in &mut s.children {
        prune(c, depth - 1);
    }
}

fn item_symbol(item: &Item) -> Symbol {
    match item {
        Item::Import(i) => Symbol {
            name: i.path.as_plain().unwrap_or_default(),
            detail: "import".into(),
            kind: SymbolKind::Import,
            full: i.span,
            name_span: i.path.span,
            children: Vec::new(),
        },
        Item::Let(l) => Symbol {
            name: l.name.name.clone(),
            detail: flat_expr(&l.value),
            kind: SymbolKind::Let,
            full: l.span,
            name_span: l.name.span,
            children: Vec::new(),
        },
        Item::Kind(k) => Symbol {
            name: k.name.name.clone(),
            detail: "kind".into(),
            kind: SymbolKind::Kind,
            full: k.span,
            name_span: k.name.span,
            children: k
                .params
                .iter()
                .map(|p| Symbol {
                    name: p.name.name.clone(),
                    detail: type_text(&p.ty),
                    kind: SymbolKind::Param,
                    full: p.span,
                    name_span: p.name.span,
                    children: Vec::new(),
                })
                .chain(k.body.entries.iter().map(entry_symbol))
                .collect(),
        },
        Item::Block(b) => {
            let mut s = block_symbol(b);
            s.kind = match b.keyword.name.as_str() {
                "host" => SymbolKind::Host,
                "failover" => SymbolKind::Group,
                "admin" => SymbolKind::Admin,
                _ => SymbolKind::Instance,
            };
            s
        }
    }
}

fn block_symbol(b: &ast::Block) -> Symbol {
    let (name, name_span) = match &b.label {
        Some(ast::BlockLabel::Name(n)) => (n.name.clone(), n.span),
        Some(ast::BlockLabel::Str(s)) => (
            s.as_plain()
                .unwrap_or_else(|| flat_expr(&ast::Expr::Str(s.clone()))),
            s.span,
        ),
        None => (b.keyword.name.clone(), b.keyword.span),
    };
    Symbol {
        name,
        detail: b.keyword.name.clone(),
        kind: SymbolKind::Block,
        full: b.span,
        name_span,
        // nested blocks (a host's `ssh`, a kind's resources), not every attribute:
        // an outline of 1,000 hosts stays an outline
        children: b
            .body
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Block(nb) => Some(block_symbol(nb)),
                Entry::Attr(_) => None,
            })
            .collect(),
    }
}

fn entry_symbol(e: &Entry) -> Symbol {
    match e {
        Entry::Attr(a) => Symbol {
            name: a.name.name.clone(),
            detail: flat_expr(&a.value),
            kind: SymbolKind::Attr,
            full: a.span,
            name_span: a.name.span,
            children: Vec::new(),
        },
        Entry::Block(b) => block_symbol(b),
    }
}

/// Why a rename is refused.
pub fn rename(ix: &Index, file: FileId, offset: usize, new: &str) -> Result<Vec<Span>, String> {
    let d = renamable(ix, file, offset)?;
    let def = &ix.defs[d];
    if !is_ident(new) {
        return Err(format!(
            "`{new}` is not a name: letters, digits, `_` and `-`, starting with a letter or `_`"
        ));
    }
    if new == "all" {
        return Err("`all` is reserved (every host)".into());
    }
    let clash = ix.defs.iter().find(|o| {
        o.name == new
            && match (&def.kind, &o.kind) {
                (DefKind::Instance { kind: a }, DefKind::Instance { kind: b }) => a == b,
                (
                    DefKind::Host | DefKind::Group | DefKind::Let,
                    DefKind::Host | DefKind::Group | DefKind::Let,
                ) => true,
                _ => false,
            }
    });
    if let Some(c) = clash {
        return Err(format!(
            "`{new}` is already the name of {} {}",
            c.kind.word(),
            c.name
        ));
    }
    Ok(ix
        .references(d)
        .into_iter()
        .filter(|s| !ix.is_std(s.file))
        .collect())
}

/// The definition at `offset` if it may be renamed (a host, group, instance or
/// `let` of the user's files), and its name's span at the cursor.
pub fn renamable(ix: &Index, file: FileId, offset: usize) -> Result<DefId, String> {
    let site = ix.site_at(file, offset).ok_or("nothing to rename here")?;
    let d = ix
        .def_of(&site.what)
        .ok_or("only hosts, failover groups, instances and lets can be renamed")?;
    let def = &ix.defs[d];
    if ix.is_std(def.span.file) {
        return Err(format!("`{}` is defined in the standard library", def.name));
    }
    match def.kind {
        DefKind::Host | DefKind::Group | DefKind::Let | DefKind::Instance { .. } => Ok(d),
        _ => Err(format!("a {} cannot be renamed here", def.kind.word())),
    }
}
