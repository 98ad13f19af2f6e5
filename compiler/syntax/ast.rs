//! The abstract syntax tree. Produced by [`crate::syntax::parse`], consumed only by
//! `resolve` and `fmt`. Every node carries the byte span of the text it came from.

use crate::source::Span;

/// A parsed file: its items in order, and every comment (for `infra fmt`).
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
    pub comments: Vec<Comment>,
    pub span: Span,
}

/// `# text` up to the end of the line. `text` excludes the `#` and the newline.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `import "std/postgres"` or `import "./common.infra"`
    Import(Import),
    /// `let name = expr`
    Let(Let),
    /// `kind NAME(PARAMS) { BODY }`: a user-defined kind.
    Kind(KindDef),
    /// `KEYWORD NAME { ... }`: `host`, `failover`, or an instance of a kind.
    Block(Block),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Import(i) => i.span,
            Item::Let(l) => l.span,
            Item::Kind(k) => k.span,
            Item::Block(b) => b.span,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub path: StrLit,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Let {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KindDef {
    pub name: Ident,
    pub params: Vec<Param>,
    pub body: Body,
    pub span: Span,
}

/// `name: type` or `name: type = default`
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TypeExpr {
    /// `string`, `int`, `bool`, `duration`, `ip`, `cidr`, `host`, `failover`,
    /// `placement`, `secret`, `check`, `ref`
    Named(Ident),
    /// `[T]`
    List(Box<TypeExpr>, Span),
}

impl TypeExpr {
    pub fn span(&self) -> Span {
        match self {
            TypeExpr::Named(i) => i.span,
            TypeExpr::List(_, s) => *s,
        }
    }
}

/// `keyword label? { body }`.
/// Top level: `host alpha { ... }`, `postgres main { ... }`.
/// Nested: `ssh { ... }` (no label), `file "/etc/motd" { ... }` (string label).
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub keyword: Ident,
    pub label: Option<BlockLabel>,
    pub body: Body,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BlockLabel {
    Name(Ident),
    Str(StrLit),
}

impl BlockLabel {
    pub fn span(&self) -> Span {
        match self {
            BlockLabel::Name(i) => i.span,
            BlockLabel::Str(s) => s.span,
        }
    }
}

/// `{ entries }`; `span` covers the braces.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub entries: Vec<Entry>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Attr(Attr),
    Block(Block),
}

impl Entry {
    pub fn span(&self) -> Span {
        match self {
            Entry::Attr(a) => a.span,
            Entry::Block(b) => b.span,
        }
    }
}

/// `name = value`
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Str(StrLit),
    Int(i64, Span),
    Bool(bool, Span),
    /// `[a, b, c]` (commas optional between elements on separate lines)
    List(Vec<Expr>, Span),
    /// `office`, `postgres.main`, `office.active`: one or more dotted names.
    Path(Vec<Ident>),
    /// `secret("pg_repl")`, `http("http://127.0.0.1/health")`, `tcp(5432)`
    Call(Ident, Vec<Expr>, Span),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Str(s) => s.span,
            Expr::Int(_, s) | Expr::Bool(_, s) | Expr::List(_, s) | Expr::Call(_, _, s) => *s,
            Expr::Path(p) => p
                .first()
                .map(|f| f.span.to(p.last().map(|l| l.span).unwrap_or(f.span)))
                .unwrap_or_default(),
        }
    }
}

/// A string literal `"..."`, split into literal text (escapes already decoded)
/// and `${expr}` interpolations. `span` includes the quotes.
#[derive(Debug, Clone, PartialEq)]
pub struct StrLit {
    pub parts: Vec<StrPart>,
    pub span: Span,
}

impl StrLit {
    /// The literal value if the string has no interpolation.
    pub fn as_plain(&self) -> Option<String> {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                StrPart::Lit(t) => s.push_str(t),
                StrPart::Interp(_) => return None,
            }
        }
        Some(s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StrPart {
    Lit(String),
    Interp(Expr),
}
