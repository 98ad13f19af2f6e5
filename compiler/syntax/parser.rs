//! Recursive-descent parser over the tokens of [`lexer`](super::lexer) (whose token
//! shapes are nom combinators). Invariants:
//! - never panics, never fails: returns the tree it could build plus every error;
//! - recursion is bounded: blocks, lists, calls and parameter lists nest at most
//!   [`MAX_DEPTH`] levels (deeper input is reported once, `E0009`, and skipped iteratively);
//! - linear time: every token is lexed once, look-ahead is at most 2 tokens, and error
//!   recovery only moves forward.
//!
//! Error recovery: a bad top-level item is skipped up to the next line that starts like an
//! item (`host beta {`, `let`, `import`, `kind`); a bad entry inside a body is skipped up to
//! the next line that starts with a name, or the body's `}`. At most [`MAX_ERRORS`]
//! errors are reported per file.

use super::ast::*;
use super::lexer::{shorten, Lexer, Tok, Token, KEYWORDS};
use crate::diag::{codes, Diag};
use crate::source::{FileId, Span};
use std::collections::VecDeque;

/// Maximum nesting of blocks, lists, calls and parameter lists.
pub const MAX_DEPTH: usize = 64;

/// Syntax errors reported per file; the rest are summed up in one `E0019`.
pub const MAX_ERRORS: usize = 100;

/// The construct could not be parsed; the error is reported and the caller must
/// skip ahead to a recovery point.
struct Fail;

type PResult<T> = Result<T, Fail>;

/// An open delimiter, for "unclosed" diagnostics.
struct Open {
    delim: char,
    span: Span,
    what: String,
    /// Indentation of the line the delimiter is on.
    indent: Option<usize>,
    /// The first line inside that is indented no deeper than the opening line: a
    /// likely place for a missing closing delimiter.
    suspect: Option<Span>,
}

pub fn parse_file(file: FileId, text: &str) -> (File, Vec<Diag>) {
    let mut p = Parser {
        lx: Lexer::new(file, text),
        buf: VecDeque::new(),
        open: Vec::new(),
        eof_reported: false,
        prev_end: 0,
        prev_start: 0,
    };
    let mut items = Vec::new();
    loop {
        let t = p.peek(0);
        match &t.tok {
            Tok::Eof => break,
            Tok::RBrace | Tok::RBracket | Tok::RParen => {
                let t = p.bump();
                p.stray(&t);
            }
            Tok::Ident => match p.item() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => {}
                Err(Fail) => p.recover_top(),
            },
            _ => {
                let t = p.bump();
                let found = p.describe(&t);
                p.err(
                    Diag::error(codes::E0002, format!("expected an item, found {found}"))
                        .at(p.sp(&t), "expected an item")
                        .help(ITEM_HELP),
                );
                p.recover_top();
            }
        }
    }
    let mut diags = p.lx.diags;
    crate::diag::sort(&mut diags);
    if diags.len() > MAX_ERRORS {
        let rest = diags.len() - MAX_ERRORS;
        let at = diags[MAX_ERRORS].primary.as_ref().map(|l| l.span);
        diags.truncate(MAX_ERRORS);
        let mut d = Diag::error(
            codes::E0019,
            format!("too many syntax errors: {rest} more not shown"),
        )
        .help("fix the errors above and check again");
        if let Some(span) = at {
            d = d.at(span, "the next error is here");
        }
        diags.push(d);
    }
    (
        File {
            items,
            comments: p.lx.comments,
            span: Span::new(file, 0, text.len()),
        },
        diags,
    )
}

const ITEM_HELP: &str =
    "a file holds `import \"...\"`, `let name = value`, `kind name(...) { ... }` and blocks like `host name { ... }`";

struct Parser<'a> {
    lx: Lexer<'a>,
    buf: VecDeque<Token>,
    open: Vec<Open>,
    /// One "unclosed" error at end of file is enough.
    eof_reported: bool,
    /// End of the last consumed token.
    prev_end: usize,
    /// Start of the last consumed token.
    prev_start: usize,
}

impl<'a> Parser<'a> {
    // ---- tokens -----------------------------------------------------------

    fn peek(&mut self, n: usize) -> &Token {
        while self.buf.len() <= n {
            let t = self.lx.next_token();
            self.buf.push_back(t);
        }
        &self.buf[n]
    }

    fn bump(&mut self) -> Token {
        self.peek(0);
        match self.buf.pop_front() {
            Some(t) => {
                if t.tok != Tok::Eof {
                    self.prev_end = t.end;
                    self.prev_start = t.start;
                }
                t
            }
            // unreachable: peek(0) filled the buffer
            None => self.lx.next_token(),
        }
    }

    fn at(&mut self, tok: &Tok) -> bool {
        &self.peek(0).tok == tok
    }

    fn text(&self, t: &Token) -> &'a str {
        &self.lx.src[t.start..t.end]
    }

    fn sp(&self, t: &Token) -> Span {
        self.lx.span(t.start, t.end)
    }

    fn is_kw(&self, t: &Token, kw: &[&str]) -> bool {
        t.tok == Tok::Ident && kw.contains(&self.text(t))
    }

    fn ident(&self, t: &Token) -> Ident {
        Ident {
            name: self.text(t).to_string(),
            span: self.sp(t),
        }
    }

    fn describe(&self, t: &Token) -> String {
        match &t.tok {
            Tok::Eof => "end of file".to_string(),
            Tok::Str(_) => "a string".to_string(),
            Tok::Ident if KEYWORDS.contains(&self.text(t)) => {
                format!("keyword `{}`", self.text(t))
            }
            _ => format!("`{}`", shorten(self.text(t), 30)),
        }
    }

    /// Where to point for "expected X, found `found`": at `found`, or, when it is on a
    /// later line (or the end of file), at the token the missing X should follow.
    fn found_span(&self, found: &Token) -> Span {
        if found.line_start || found.tok == Tok::Eof {
            self.lx.span(self.prev_start, self.prev_end)
        } else {
            self.sp(found)
        }
    }

    fn found_label(&self, found: &Token, label: &str) -> String {
        if found.line_start || found.tok == Tok::Eof {
            format!("{label} after this")
        } else {
            label.to_string()
        }
    }

    fn err(&mut self, d: Diag) {
        self.lx.diags.push(d);
    }

    fn stray(&mut self, t: &Token) {
        let c = self.text(t).to_string();
        let d = Diag::error(codes::E0016, format!("unexpected closing `{c}`"))
            .at(self.sp(t), "no matching opening delimiter")
            .help(format!(
                "remove this `{c}`, or add the opening delimiter it closes"
            ));
        self.err(d);
    }

    /// A name that must not be a keyword (reports, but keeps the name).
    fn name(&mut self, t: &Token, what: &str) -> Ident {
        if KEYWORDS.contains(&self.text(t)) {
            let d = Diag::error(
                codes::E0018,
                format!("keyword `{}` cannot be used as {what}", self.text(t)),
            )
            .at(self.sp(t), "reserved keyword")
            .help("`import`, `let`, `kind`, `true` and `false` are reserved: choose another name");
            self.err(d);
        }
        self.ident(t)
    }

    // ---- nesting ----------------------------------------------------------

    /// Enter a delimited construct whose opening token is the current token.
    /// Returns false (after reporting and skipping the whole construct) when too deep.
    fn enter(&mut self, delim: char, what: String) -> bool {
        let t = self.bump();
        if self.open.len() >= MAX_DEPTH {
            let d = Diag::error(codes::E0009, "nesting too deep")
                .at(self.sp(&t), format!("more than {MAX_DEPTH} levels deep"))
                .help(format!(
                    "blocks, lists and calls nest at most {MAX_DEPTH} levels; flatten this with `let`"
                ));
            self.err(d);
            self.skip_balanced();
            return false;
        }
        let indent = self.indent_of(t.start);
        self.open.push(Open {
            delim,
            span: self.sp(&t),
            what,
            indent,
            suspect: None,
        });
        true
    }

    /// Indentation (in bytes of blanks) of the line holding byte `at`; `None` if the
    /// line is too long to look back over (keeps parsing linear).
    fn indent_of(&self, at: usize) -> Option<usize> {
        let bytes = self.lx.src.as_bytes();
        let lo = at.saturating_sub(1024);
        let line_start = match bytes[lo..at].iter().rposition(|b| *b == b'\n') {
            Some(i) => lo + i + 1,
            None if lo == 0 => 0,
            None => return None,
        };
        Some(
            bytes[line_start..at]
                .iter()
                .take_while(|b| **b == b' ' || **b == b'\t')
                .count(),
        )
    }

    /// Note an entry of the innermost body that starts a line no deeper than the body's
    /// opening line (for "unclosed" diagnostics).
    fn note_indent(&mut self, t: &Token) {
        if !t.line_start {
            return;
        }
        let col = self.indent_of(t.start);
        let span = self.sp(t);
        if let (Some(o), Some(col)) = (self.open.last_mut(), col) {
            if o.suspect.is_none() && o.indent.is_some_and(|i| col <= i) {
                o.suspect = Some(span);
            }
        }
    }

    fn leave(&mut self) {
        self.open.pop();
    }

    /// After an opening delimiter was consumed: skip to its matching closer (any kind), iteratively.
    fn skip_balanced(&mut self) {
        let mut depth = 1usize;
        loop {
            let t = self.bump();
            match t.tok {
                Tok::Eof => return,
                Tok::LBrace | Tok::LBracket | Tok::LParen => depth += 1,
                Tok::RBrace | Tok::RBracket | Tok::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    /// Report the innermost open delimiter as unclosed because `found` cannot continue it.
    /// At end of file this is reported once for all open delimiters.
    fn unclosed(&mut self, found: &Token) {
        let eof = found.tok == Tok::Eof;
        if eof && self.eof_reported {
            return;
        }
        let Some(inner) = self.open.last() else {
            return;
        };
        let (code, close) = match inner.delim {
            '{' => (codes::E0003, '}'),
            '[' => (codes::E0004, ']'),
            _ => (codes::E0005, ')'),
        };
        let mut d = Diag::error(code, format!("unclosed {}", inner.what))
            .at(
                inner.span,
                format!("this `{}` is never closed", inner.delim),
            )
            .help(format!("add `{close}` to close it"));
        if eof {
            self.eof_reported = true;
            let n = self.open.len();
            for o in self.open[..n - 1].iter().rev().take(3) {
                d = d.with(o.span, format!("this `{}` is not closed either", o.delim));
            }
            if let Some(s) = inner.suspect {
                d = d.with(s, "this line is not indented: is a `}` missing before it?");
            }
        } else {
            d = d.with(self.sp(found), format!("expected `{close}` before this"));
        }
        self.err(d);
    }

    /// True if an enclosing construct opened with `delim`.
    fn is_open(&self, delim: char) -> bool {
        self.open.iter().any(|o| o.delim == delim)
    }

    // ---- recovery ---------------------------------------------------------

    /// Skip to the next line that starts like an item, at the current nesting level.
    fn recover_top(&mut self) {
        let mut depth = 0usize;
        loop {
            let t = *self.peek(0);
            match t.tok {
                Tok::Eof => return,
                Tok::Ident
                    if depth == 0
                        && t.line_start
                        && (self.is_kw(&t, &["import", "let", "kind"])
                            || matches!(
                                self.peek(1).tok,
                                Tok::Ident | Tok::Str(_) | Tok::LBrace
                            )) =>
                {
                    return
                }
                Tok::LBrace | Tok::LBracket | Tok::LParen => depth += 1,
                Tok::RBrace | Tok::RBracket | Tok::RParen => depth = depth.saturating_sub(1),
                _ => {}
            }
            self.bump();
        }
    }

    /// Skip to the next line that starts with a name, or the closing `}` of the body.
    fn recover_body(&mut self) {
        let mut depth = 0usize;
        loop {
            let t = self.peek(0);
            match t.tok {
                Tok::Eof => return,
                Tok::RBrace if depth == 0 => return,
                Tok::Ident if depth == 0 && t.line_start => return,
                Tok::LBrace | Tok::LBracket | Tok::LParen => depth += 1,
                Tok::RBrace | Tok::RBracket | Tok::RParen => depth = depth.saturating_sub(1),
                _ => {}
            }
            self.bump();
        }
    }

    // ---- items ------------------------------------------------------------

    /// The current token is an identifier.
    fn item(&mut self) -> PResult<Option<Item>> {
        let kw = self.bump();
        match self.text(&kw) {
            "import" => self.import(kw).map(|i| Some(Item::Import(i))),
            "let" => self.let_(kw).map(|l| l.map(Item::Let)),
            "kind" => self.kind(kw).map(|k| Some(Item::Kind(k))),
            "true" | "false" => {
                let found = self.describe(&kw);
                self.err(
                    Diag::error(codes::E0002, format!("expected an item, found {found}"))
                        .at(self.sp(&kw), "expected an item")
                        .help(ITEM_HELP),
                );
                Err(Fail)
            }
            _ => self.top_block(kw),
        }
    }

    fn import(&mut self, kw: Token) -> PResult<Import> {
        let t = *self.peek(0);
        if let Tok::Str(s) = t.tok {
            self.bump();
            return Ok(Import {
                path: self.lx.take_str(s),
                span: self.lx.span(kw.start, t.end),
            });
        }
        let found = self.describe(&t);
        self.err(
            Diag::error(
                codes::E0002,
                format!("expected a string after `import`, found {found}"),
            )
            .at(
                self.found_span(&t),
                self.found_label(&t, "expected a string"),
            )
            .help("write `import \"std/postgres\"` or `import \"./common.infra\"`"),
        );
        Err(Fail)
    }

    /// The name after keyword `kw` (`let`, `kind`): consumed, or E0002 with `help`.
    fn name_after(&mut self, kw: &str, help: &str) -> PResult<Token> {
        let t = *self.peek(0);
        if t.tok != Tok::Ident {
            let found = self.describe(&t);
            self.err(
                Diag::error(
                    codes::E0002,
                    format!("expected a name after `{kw}`, found {found}"),
                )
                .at(self.found_span(&t), self.found_label(&t, "expected a name"))
                .help(help),
            );
            return Err(Fail);
        }
        self.bump();
        Ok(t)
    }

    fn let_(&mut self, kw: Token) -> PResult<Option<Let>> {
        let t = self.name_after("let", "write `let name = value`")?;
        let name = self.name(&t, "a variable name");
        let what = format!("`let {}`", name.name);
        let eq = self.expect_eq(&name, &what)?;
        // `None`: an invalid value, already reported and consumed.
        let Some(value) = self.value(eq.as_ref())? else {
            return Ok(None);
        };
        Ok(Some(Let {
            span: self.lx.span(kw.start, value.span().end as usize),
            name,
            value,
        }))
    }

    /// Expect `=` after a name. If it is missing but a value follows on the same line,
    /// report and carry on (returns `None` for the `=` token).
    fn expect_eq(&mut self, name: &Ident, what: &str) -> PResult<Option<Token>> {
        let t = *self.peek(0);
        if t.tok == Tok::Eq {
            return Ok(Some(self.bump()));
        }
        let value_follows = !t.line_start
            && matches!(
                t.tok,
                Tok::Str(_) | Tok::Int(_) | Tok::LBracket | Tok::Ident
            );
        let found = self.describe(&t);
        self.err(
            Diag::error(
                codes::E0006,
                format!("expected `=` after {what}, found {found}"),
            )
            .at(self.sp(&t), "expected `=` before this")
            .help(format!("write `{} = value`", name.name)),
        );
        if value_follows {
            Ok(None)
        } else {
            Err(Fail)
        }
    }

    /// `kind NAME(PARAMS) { BODY }`
    fn kind(&mut self, kw: Token) -> PResult<KindDef> {
        let t = self.name_after("kind", "write `kind name(param: type, ...) { ... }`")?;
        let name = self.name(&t, "a kind name");
        let t = *self.peek(0);
        let mut params = Vec::new();
        if t.tok == Tok::LParen {
            if !self.enter('(', format!("parameter list of `{}`", name.name)) {
                return Err(Fail);
            }
            let r = self.params(&mut params);
            self.leave();
            r?;
        } else {
            let found = self.describe(&t);
            self.err(
                Diag::error(
                    codes::E0002,
                    format!("expected `(` after `kind {}`, found {found}", name.name),
                )
                .at(self.found_span(&t), self.found_label(&t, "expected `(`"))
                .help(format!(
                    "write `kind {}(param: type, ...) {{ ... }}`, or `()` for no parameters",
                    name.name
                )),
            );
            if t.tok != Tok::LBrace {
                return Err(Fail);
            }
        }
        let body = self.body_required(
            &format!("`kind {}`", name.name),
            format!("kind `{}`", name.name),
        )?;
        Ok(KindDef {
            span: self.lx.span(kw.start, body.span.end as usize),
            name,
            params,
            body,
        })
    }

    /// Parameters after `(` up to and including `)`.
    fn params(&mut self, params: &mut Vec<Param>) -> PResult<()> {
        loop {
            let t = *self.peek(0);
            match t.tok {
                Tok::RParen => {
                    self.bump();
                    return Ok(());
                }
                Tok::Eof => {
                    self.unclosed(&t);
                    return Err(Fail);
                }
                Tok::LBrace | Tok::RBrace => {
                    self.unclosed(&t);
                    return Ok(());
                }
                Tok::Ident => {
                    self.bump();
                    match self.param(t) {
                        Ok(Some(p)) => params.push(p),
                        Ok(None) => {}
                        Err(Fail) => {
                            self.recover_param();
                            continue;
                        }
                    }
                    let n = *self.peek(0);
                    match n.tok {
                        Tok::Comma => {
                            self.bump();
                        }
                        Tok::RParen | Tok::Eof | Tok::LBrace | Tok::RBrace => {}
                        _ => {
                            let found = self.describe(&n);
                            self.err(
                                Diag::error(
                                    codes::E0002,
                                    format!("expected `,` or `)` after a parameter, found {found}"),
                                )
                                .at(self.sp(&n), "expected `,` or `)`")
                                .help("separate parameters with `,`"),
                            );
                            if n.tok != Tok::Ident {
                                self.recover_param();
                            }
                        }
                    }
                }
                _ => {
                    self.bump();
                    let found = self.describe(&t);
                    self.err(
                        Diag::error(
                            codes::E0002,
                            format!("expected a parameter name, found {found}"),
                        )
                        .at(self.sp(&t), "expected a parameter")
                        .help("write `name: type` or `name: type = default`"),
                    );
                    self.recover_param();
                }
            }
        }
    }

    /// Skip to the next `,` (consumed), `)`, `{` or `}` of the parameter list.
    fn recover_param(&mut self) {
        let mut depth = 0usize;
        loop {
            let t = self.peek(0);
            match t.tok {
                Tok::Eof => return,
                Tok::RParen | Tok::LBrace | Tok::RBrace if depth == 0 => return,
                Tok::Comma if depth == 0 => {
                    self.bump();
                    return;
                }
                Tok::LBracket | Tok::LParen => depth += 1,
                Tok::RBracket | Tok::RParen => depth = depth.saturating_sub(1),
                _ => {}
            }
            self.bump();
        }
    }

    /// `name: type [= default]`, the name already consumed.
    fn param(&mut self, nt: Token) -> PResult<Option<Param>> {
        let name = self.name(&nt, "a parameter name");
        let t = *self.peek(0);
        if t.tok != Tok::Colon {
            let found = self.describe(&t);
            self.err(
                Diag::error(
                    codes::E0002,
                    format!(
                        "expected `:` after parameter `{}`, found {found}",
                        name.name
                    ),
                )
                .at(
                    self.found_span(&t),
                    self.found_label(&t, "expected `:` and a type"),
                )
                .help(format!("write `{}: string` (or another type)", name.name)),
            );
            return Err(Fail);
        }
        self.bump();
        let ty = self.ty()?;
        let Some(ty) = ty else { return Ok(None) };
        let mut end = ty.span().end as usize;
        let mut default = None;
        if self.at(&Tok::Eq) {
            let eq = self.bump();
            match self.value(Some(&eq))? {
                Some(v) => {
                    end = v.span().end as usize;
                    default = Some(v);
                }
                None => return Ok(None),
            }
        }
        Ok(Some(Param {
            span: self.lx.span(nt.start, end),
            name,
            ty,
            default,
        }))
    }

    /// `ident` or `[type]`. `Ok(None)`: reported, consumed.
    fn ty(&mut self) -> PResult<Option<TypeExpr>> {
        let t = *self.peek(0);
        match t.tok {
            Tok::Ident => {
                self.bump();
                Ok(Some(TypeExpr::Named(self.name(&t, "a type"))))
            }
            Tok::LBracket => {
                if !self.enter('[', "list type".to_string()) {
                    return Ok(None);
                }
                let inner = self.ty();
                let r = match inner {
                    Ok(inner) => {
                        let c = *self.peek(0);
                        if c.tok == Tok::RBracket {
                            self.bump();
                            Ok(inner
                                .map(|i| TypeExpr::List(Box::new(i), self.lx.span(t.start, c.end))))
                        } else {
                            self.unclosed(&c);
                            Err(Fail)
                        }
                    }
                    Err(f) => Err(f),
                };
                self.leave();
                r
            }
            _ => {
                let found = self.describe(&t);
                self.err(
                    Diag::error(codes::E0002, format!("expected a type, found {found}"))
                        .at(self.found_span(&t), self.found_label(&t, "expected a type"))
                        .help("types are names like `string`, `int`, `host`, or lists like `[string]`"),
                );
                Err(Fail)
            }
        }
    }

    /// A top-level item starting with a name: a block, or a misplaced attribute.
    fn top_block(&mut self, kw: Token) -> PResult<Option<Item>> {
        let keyword = self.ident(&kw);
        let t = *self.peek(0);
        match t.tok {
            Tok::Eq => {
                let eq = self.bump();
                self.err(
                    Diag::error(codes::E0015, format!("attribute `{}` outside a block", keyword.name))
                        .at(keyword.span.to(self.sp(&eq)), "attributes belong inside a block")
                        .help(format!(
                            "to define a value, write `let {} = ...`; otherwise move it into a block like `host name {{ ... }}`",
                            keyword.name
                        )),
                );
                self.value(Some(&eq))?;
                Ok(None)
            }
            Tok::LBrace | Tok::Ident | Tok::Str(_) => {
                let block = self.block_after_keyword(keyword)?;
                Ok(block.map(Item::Block))
            }
            _ => {
                let found = self.describe(&t);
                self.err(
                    Diag::error(
                        codes::E0002,
                        format!(
                            "expected a name or `{{` after `{}`, found {found}",
                            keyword.name
                        ),
                    )
                    .at(
                        self.found_span(&t),
                        self.found_label(&t, "expected a block"),
                    )
                    .help(format!(
                        "a block looks like `{} name {{ ... }}`",
                        keyword.name
                    )),
                );
                Err(Fail)
            }
        }
    }

    /// `keyword [label] { body }` with the keyword consumed and the next token a
    /// label or `{`. `Ok(None)`: skipped (too deep).
    fn block_after_keyword(&mut self, keyword: Ident) -> PResult<Option<Block>> {
        let t = *self.peek(0);
        let label = match t.tok {
            Tok::Ident => {
                self.bump();
                Some(BlockLabel::Name(self.name(&t, "a block name")))
            }
            Tok::Str(s) => {
                self.bump();
                Some(BlockLabel::Str(self.lx.take_str(s)))
            }
            _ => None,
        };
        let header = match &label {
            None => format!("`{}`", keyword.name),
            Some(l) => format!(
                "`{} {}`",
                keyword.name,
                shorten(
                    self.lx
                        .src
                        .get(l.span().start as usize..l.span().end as usize)
                        .unwrap_or(""),
                    30
                )
            ),
        };
        let what = format!("block {header}");
        let Some(body) = self.body(&header, what)? else {
            return Ok(None);
        };
        Ok(Some(Block {
            span: keyword.span.to(body.span),
            keyword,
            label,
            body,
        }))
    }

    /// A body where one is required; `header` names the construct for messages.
    fn body_required(&mut self, header: &str, what: String) -> PResult<Body> {
        match self.body(header, what)? {
            Some(b) => Ok(b),
            None => Err(Fail),
        }
    }

    /// `{ entries }`. `Ok(None)` when too deep (reported, skipped).
    fn body(&mut self, header: &str, what: String) -> PResult<Option<Body>> {
        let t = *self.peek(0);
        if t.tok != Tok::LBrace {
            let found = self.describe(&t);
            self.err(
                Diag::error(
                    codes::E0002,
                    format!("expected `{{` after {header}, found {found}"),
                )
                .at(self.found_span(&t), self.found_label(&t, "expected `{`"))
                .help(format!("write `{} {{ ... }}`", header.trim_matches('`'))),
            );
            return Err(Fail);
        }
        if !self.enter('{', what) {
            return Ok(None);
        }
        let mut entries = Vec::new();
        let end = loop {
            let t = *self.peek(0);
            match t.tok {
                Tok::RBrace => {
                    self.bump();
                    break t.end;
                }
                Tok::Eof => {
                    self.unclosed(&t);
                    break self.prev_end;
                }
                Tok::RBracket | Tok::RParen => {
                    self.bump();
                    self.stray(&t);
                }
                Tok::Ident => {
                    self.note_indent(&t);
                    match self.entry() {
                        Ok(Some(e)) => entries.push(e),
                        Ok(None) => {}
                        Err(Fail) => self.recover_body(),
                    }
                }
                _ => {
                    self.bump();
                    let found = self.describe(&t);
                    self.err(
                        Diag::error(codes::E0002, format!("expected an attribute or a block, found {found}"))
                            .at(self.sp(&t), "expected `name = value` or `name { ... }`")
                            .help("a body holds attributes like `port = 22` and blocks like `ssh { ... }`"),
                    );
                    self.recover_body();
                }
            }
        };
        self.leave();
        Ok(Some(Body {
            entries,
            span: self.lx.span(t.start, end),
        }))
    }

    /// An attribute or a nested block; the current token is an identifier.
    fn entry(&mut self) -> PResult<Option<Entry>> {
        let nt = self.bump();
        let n1 = *self.peek(0);
        if self.is_kw(&nt, &["import", "let", "kind"]) && n1.tok != Tok::Eq {
            let kw = self.text(&nt);
            self.err(
                Diag::error(
                    codes::E0002,
                    format!("`{kw}` is only allowed at the top level"),
                )
                .at(self.sp(&nt), "not allowed inside a block")
                .help(format!("move the `{kw}` out of the block")),
            );
            return Err(Fail);
        }
        if self.is_kw(&nt, &["true", "false"]) {
            let found = self.describe(&nt);
            self.err(
                Diag::error(
                    codes::E0002,
                    format!("expected an attribute or a block, found {found}"),
                )
                .at(self.sp(&nt), "expected `name = value` or `name { ... }`")
                .help("a body holds attributes like `port = 22` and blocks like `ssh { ... }`"),
            );
            return Err(Fail);
        }
        let block = match n1.tok {
            Tok::LBrace => true,
            Tok::Ident | Tok::Str(_) => self.peek(1).tok == Tok::LBrace,
            _ => false,
        };
        if block {
            let keyword = self.name(&nt, "a block keyword");
            return Ok(self.block_after_keyword(keyword)?.map(Entry::Block));
        }
        let name = self.name(&nt, "an attribute name");
        let eq = if n1.tok == Tok::Eq {
            Some(self.bump())
        } else {
            let missing_eq = !n1.line_start
                && matches!(
                    n1.tok,
                    Tok::Str(_) | Tok::Int(_) | Tok::LBracket | Tok::Ident
                );
            if !missing_eq {
                let found = self.describe(&n1);
                self.err(
                    Diag::error(
                        codes::E0002,
                        format!("expected `=` or `{{` after `{}`, found {found}", name.name),
                    )
                    .at(
                        self.found_span(&n1),
                        self.found_label(&n1, "expected `=` or `{`"),
                    )
                    .help(format!(
                        "write `{0} = value` for an attribute, or `{0} {{ ... }}` for a block",
                        name.name
                    )),
                );
                return Err(Fail);
            }
            self.err(
                Diag::error(
                    codes::E0006,
                    format!("expected `=` after attribute name `{}`", name.name),
                )
                .at(self.sp(&n1), "expected `=` before this")
                .help(format!("write `{} = value`", name.name)),
            );
            None
        };
        let Some(value) = self.value(eq.as_ref())? else {
            return Ok(None);
        };
        Ok(Some(Entry::Attr(Attr {
            span: name.span.to(value.span()),
            name,
            value,
        })))
    }

    // ---- expressions --------------------------------------------------------

    /// The value after `=` (or where `=` was missing).
    fn value(&mut self, eq: Option<&Token>) -> PResult<Option<Expr>> {
        let t = *self.peek(0);
        let missing = match t.tok {
            Tok::RBrace | Tok::Eof => true,
            Tok::Ident => t.line_start && matches!(self.peek(1).tok, Tok::Eq | Tok::LBrace),
            _ => false,
        };
        if missing {
            let found = self.describe(&t);
            let mut d = Diag::error(codes::E0014, format!("expected an expression, found {found}"))
                .help("a value is a string, an integer, `true`/`false`, a list `[...]`, a call `f(...)` or a name");
            match eq {
                Some(eq) if t.line_start || t.tok == Tok::Eof => {
                    d = d.at(self.sp(eq), "expected a value after this `=`");
                }
                _ => d = d.at(self.sp(&t), "expected an expression"),
            }
            self.err(d);
            return Err(Fail);
        }
        self.expr()
    }

    /// `Err`: the current token cannot start an expression (reported, not consumed).
    /// `Ok(None)`: an invalid expression was reported and consumed.
    fn expr(&mut self) -> PResult<Option<Expr>> {
        let t = *self.peek(0);
        match t.tok {
            Tok::Str(s) => {
                self.bump();
                Ok(Some(Expr::Str(self.lx.take_str(s))))
            }
            Tok::Int(v) => {
                self.bump();
                Ok(v.map(|v| Expr::Int(v, self.sp(&t))))
            }
            Tok::LBracket => self.list(),
            Tok::Ident => match self.text(&t) {
                "true" | "false" => {
                    self.bump();
                    Ok(Some(Expr::Bool(self.text(&t) == "true", self.sp(&t))))
                }
                "import" | "let" | "kind" => {
                    let found = self.describe(&t);
                    self.err(
                        Diag::error(
                            codes::E0014,
                            format!("expected an expression, found {found}"),
                        )
                        .at(self.sp(&t), "expected an expression")
                        .help("keywords cannot be used as values"),
                    );
                    Err(Fail)
                }
                _ => {
                    let n = *self.peek(1);
                    if n.tok == Tok::LParen && !n.ws_before {
                        self.bump();
                        self.call(t)
                    } else {
                        self.path()
                    }
                }
            },
            _ => {
                let found = self.describe(&t);
                self.err(
                    Diag::error(codes::E0014, format!("expected an expression, found {found}"))
                        .at(self.sp(&t), "expected an expression")
                        .help("a value is a string, an integer, `true`/`false`, a list `[...]`, a call `f(...)` or a name"),
                );
                Err(Fail)
            }
        }
    }

    /// `a.b.c`, the current token an identifier.
    fn path(&mut self) -> PResult<Option<Expr>> {
        let t = self.bump();
        let mut segs = vec![self.ident(&t)];
        loop {
            let dot = *self.peek(0);
            if dot.tok != Tok::Dot || dot.ws_before {
                break;
            }
            self.bump();
            let n = *self.peek(0);
            if n.tok == Tok::Ident && !n.ws_before {
                self.bump();
                segs.push(self.ident(&n));
            } else {
                let found = self.describe(&n);
                self.err(
                    Diag::error(
                        codes::E0002,
                        format!("expected a name after `.`, found {found}"),
                    )
                    .at(self.sp(&dot), "expected a name after this `.`")
                    .help("a path looks like `office.active` (no spaces around `.`)"),
                );
                return Ok(None);
            }
        }
        Ok(Some(Expr::Path(segs)))
    }

    /// True if the current token plainly starts a new entry or item, so an open list or
    /// call must have been left unclosed.
    fn starts_entry(&mut self) -> bool {
        let t = *self.peek(0);
        if t.tok != Tok::Ident {
            return false;
        }
        if self.is_kw(&t, &["import", "let", "kind"]) {
            return true;
        }
        matches!(self.peek(1).tok, Tok::Eq | Tok::LBrace)
    }

    /// `[ e, e e, ]` with the current token `[`.
    fn list(&mut self) -> PResult<Option<Expr>> {
        let open = *self.peek(0);
        if !self.enter('[', "list".to_string()) {
            return Ok(None);
        }
        let (elems, end) = self.sequence(Tok::RBracket, false);
        self.leave();
        Ok(Some(Expr::List(elems, self.lx.span(open.start, end))))
    }

    /// `name(args)` with the name consumed and the current token `(`.
    fn call(&mut self, name_tok: Token) -> PResult<Option<Expr>> {
        let name = self.name(&name_tok, "a function name");
        if !self.enter('(', format!("call `{}(`", name.name)) {
            return Ok(None);
        }
        let (args, end) = self.sequence(Tok::RParen, true);
        self.leave();
        Ok(Some(Expr::Call(
            name,
            args,
            self.lx.span(name_tok.start, end),
        )))
    }

    /// The elements of a list (`close` = `]`, commas optional) or the arguments of a
    /// call (`close` = `)`, commas required), after the opening delimiter, through the
    /// closing one. Returns the expressions and the end offset. An enclosing delimiter
    /// or the start of the next entry ends the sequence as unclosed (reported once).
    fn sequence(&mut self, close: Tok, commas: bool) -> (Vec<Expr>, usize) {
        let mut items = Vec::new();
        let mut need_item = true;
        let end = loop {
            let t = *self.peek(0);
            match t.tok {
                tok if tok == close => {
                    self.bump();
                    break t.end;
                }
                Tok::Eof => {
                    self.unclosed(&t);
                    break self.prev_end;
                }
                Tok::RBrace | Tok::RParen | Tok::RBracket => {
                    let d = match t.tok {
                        Tok::RBrace => '{',
                        Tok::RParen => '(',
                        _ => '[',
                    };
                    if self.is_open(d) {
                        self.unclosed(&t);
                        break self.prev_end;
                    }
                    self.bump();
                    self.stray(&t);
                }
                Tok::Comma => {
                    self.bump();
                    if need_item {
                        self.err(
                            Diag::error(codes::E0014, "expected an expression, found `,`")
                                .at(self.sp(&t), "expected an expression")
                                .help("remove the extra `,`"),
                        );
                    }
                    need_item = true;
                }
                _ if self.starts_entry() => {
                    self.unclosed(&t);
                    break self.prev_end;
                }
                _ => {
                    if commas && !need_item {
                        let found = self.describe(&t);
                        self.err(
                            Diag::error(
                                codes::E0002,
                                format!("expected `,` or `)`, found {found}"),
                            )
                            .at(self.sp(&t), "expected `,` or `)`")
                            .help("separate arguments with `,`"),
                        );
                    }
                    match self.expr() {
                        Ok(Some(e)) => items.push(e),
                        Ok(None) => {}
                        Err(Fail) => {
                            self.bump();
                        }
                    }
                    need_item = false;
                }
            }
        };
        (items, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"import "std/postgres"
let base = "/srv/accounting"   # trailing comment

host alpha { address = "192.0.2.11" }
host beta  { address = "192.0.2.12"  ssh { user = "admin" port = 2222 } }

failover office {
  members   = [alpha, beta]
  vip       = "192.0.2.10/24"
  interface = "eth0"
  check     = http("http://127.0.0.1/health")
}

kind service(on: placement, exec: string, user: string = "root", after: [string] = [],) {
  unit "${name}.service" { template = "service/unit.hbs" enable = true start = true }
  step "mkdir-${name}" { run = "mkdir -p \"${base}/x\"" unless = "test -d /x" only = "primary" }
  package "rsync" {}
}

postgres main {
  version = 15
  failover = office
  databases = ["accounting"]
  replication_password = secret("pg_repl")
  needs = [php_app.accounting, service.x]
}

job close_month { run = "php ${base}/bin/close.php" calendar = "*-*-01 02:00:00" on = office.active }
"#;

    /// Every span of the tree covers exactly the text of its node.
    fn check_spans(text: &str, f: &File) {
        let sl = |s: Span| &text[s.start as usize..s.end as usize];
        fn walk_expr(text: &str, e: &Expr, out: &mut Vec<(Span, String)>) {
            match e {
                Expr::Str(s) => walk_str(text, s, out),
                Expr::Int(v, s) => out.push((*s, v.to_string())),
                Expr::Bool(b, s) => out.push((*s, b.to_string())),
                Expr::List(es, s) => {
                    out.push((*s, "[".into()));
                    es.iter().for_each(|e| walk_expr(text, e, out));
                }
                Expr::Path(p) => p.iter().for_each(|i| out.push((i.span, i.name.clone()))),
                Expr::Call(n, args, s) => {
                    out.push((n.span, n.name.clone()));
                    out.push((*s, format!("{}(", n.name)));
                    args.iter().for_each(|e| walk_expr(text, e, out));
                }
            }
        }
        fn walk_str(text: &str, s: &StrLit, out: &mut Vec<(Span, String)>) {
            out.push((s.span, "\"".into()));
            for p in &s.parts {
                if let StrPart::Interp(e) = p {
                    walk_expr(text, e, out);
                }
            }
        }
        fn walk_body(text: &str, b: &Body, out: &mut Vec<(Span, String)>) {
            out.push((b.span, "{".into()));
            for e in &b.entries {
                match e {
                    Entry::Attr(a) => {
                        out.push((a.span, a.name.name.clone()));
                        out.push((a.name.span, a.name.name.clone()));
                        walk_expr(text, &a.value, out);
                    }
                    Entry::Block(b) => walk_block(text, b, out),
                }
            }
        }
        fn walk_block(text: &str, b: &Block, out: &mut Vec<(Span, String)>) {
            out.push((b.span, b.keyword.name.clone()));
            out.push((b.keyword.span, b.keyword.name.clone()));
            match &b.label {
                Some(BlockLabel::Name(n)) => out.push((n.span, n.name.clone())),
                Some(BlockLabel::Str(s)) => walk_str(text, s, out),
                None => {}
            }
            walk_body(text, &b.body, out);
        }
        let mut out = Vec::new();
        for item in &f.items {
            match item {
                Item::Import(i) => {
                    out.push((i.span, "import".into()));
                    walk_str(text, &i.path, &mut out);
                }
                Item::Let(l) => {
                    out.push((l.span, "let".into()));
                    out.push((l.name.span, l.name.name.clone()));
                    walk_expr(text, &l.value, &mut out);
                }
                Item::Kind(k) => {
                    out.push((k.span, "kind".into()));
                    out.push((k.name.span, k.name.name.clone()));
                    for p in &k.params {
                        out.push((p.span, p.name.name.clone()));
                        out.push((p.name.span, p.name.name.clone()));
                        if let Some(d) = &p.default {
                            walk_expr(text, d, &mut out);
                        }
                    }
                    walk_body(text, &k.body, &mut out);
                }
                Item::Block(b) => walk_block(text, b, &mut out),
            }
        }
        for (span, start) in out {
            let t = sl(span);
            assert!(
                t.starts_with(&start),
                "{span:?} = {t:?}, expected {start:?}…"
            );
            if start == "{" {
                assert!(t.ends_with('}'), "{t:?}");
            } else if start == "[" {
                assert!(t.ends_with(']'), "{t:?}");
            } else if start.ends_with('(') {
                assert!(t.ends_with(')'), "{t:?}");
            } else if start == "\"" {
                assert!(t.len() >= 2 && t.ends_with('"'), "{t:?}");
            }
        }
        for c in &f.comments {
            assert_eq!(sl(c.span), format!("#{}", c.text));
        }
    }

    #[test]
    fn spans_cover_their_text() {
        let (f, d) = parse_file(FileId(0), SAMPLE);
        assert!(d.is_empty());
        assert!(f.comments.len() == 1 && f.items.len() == 8);
        check_spans(SAMPLE, &f);
        let crlf = SAMPLE.replace('\n', "\r\n");
        let (f, d) = parse_file(FileId(0), &crlf);
        assert!(d.is_empty(), "{d:?}");
        check_spans(&crlf, &f);
        let text = "let s = \"x${ a.b }y\"";
        let (f, d) = parse_file(FileId(0), text);
        assert!(d.is_empty());
        check_spans(text, &f);
        let Item::Let(l) = &f.items[0] else { panic!() };
        let Expr::Str(s) = &l.value else { panic!() };
        let StrPart::Interp(Expr::Path(p)) = &s.parts[1] else {
            panic!()
        };
        let names: Vec<&str> = p
            .iter()
            .map(|i| &text[i.span.start as usize..i.span.end as usize])
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn recovery_keeps_the_other_items() {
        let text =
            "host a { address \"x\" }\nhost b {\n  port = 1;\n}\n}\nlet c = \"\\q\"\nhost d {}\n";
        let (f, d) = parse_file(FileId(0), text);
        let codes: Vec<&str> = d.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["E0006", "E0001", "E0016", "E0007"]);
        assert_eq!(f.items.len(), 4);
        let Item::Block(a) = &f.items[0] else {
            panic!()
        };
        assert_eq!(a.body.entries.len(), 1, "the attribute without `=` is kept");
    }

    #[test]
    fn sample_parses() {
        let (f, d) = parse_file(FileId(0), SAMPLE);
        assert!(d.is_empty(), "{d:#?}");
        assert_eq!(f.items.len(), 8);
        assert_eq!(f.comments.len(), 1);
        assert_eq!(f.comments[0].text, " trailing comment");
        let Item::Kind(k) = &f.items[5] else { panic!() };
        assert_eq!(k.params.len(), 4);
        assert_eq!(k.body.entries.len(), 3);
        let Item::Block(b) = &f.items[6] else {
            panic!()
        };
        assert_eq!(
            &SAMPLE[b.span.start as usize..b.span.end as usize][..13],
            "postgres main"
        );
        assert!(SAMPLE[b.span.start as usize..b.span.end as usize].ends_with('}'));
    }
}
