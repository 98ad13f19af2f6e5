//! `infra fmt`: canonical formatting that keeps every comment.
//!
//! Layout: two-space indent; one attribute or block per line; `name = value`; a
//! non-empty body always spans several lines, an empty one is `{}`; lists, calls and
//! kind parameter lists stay on one line when they fit in [`WIDTH`] columns and hold
//! no comment, otherwise one element per line with a trailing comma; blank lines
//! between items and entries are kept, at most one; strings are re-escaped canonically.
//!
//! Comments: an own-line comment stays on its own line before the thing that follows
//! it; a trailing comment stays at the end of its line. A comment in a place that has
//! no line of its own after formatting (between `name` and `=`, say) moves to its own
//! line just before that construct. Comments are emitted strictly in source order, so
//! none is lost or duplicated, and `format(format(x)) == format(x)`.

use crate::diag::Diag;
use crate::source::FileId;
use crate::syntax::ast::*;

/// Maximum line width for one-line lists, calls and parameter lists.
pub const WIDTH: usize = 80;

/// Format a file that parsed without errors. `text` is the source it was parsed from
/// (for comments and blank lines).
pub fn format(file: &File, text: &str) -> String {
    let mut f = Fmt {
        text,
        comments: &file.comments,
        next: 0,
        out: String::new(),
        indent: 0,
        last_end: None,
    };
    for item in &file.items {
        f.item(item);
    }
    f.flush_before(usize::MAX);
    if !f.out.is_empty() && !f.out.ends_with('\n') {
        f.out.push('\n');
    }
    f.out
}

/// Parse and format; refuses (returns the diagnostics) if the file has syntax errors.
pub fn format_source(id: FileId, text: &str) -> Result<String, Vec<Diag>> {
    let (file, diags) = crate::syntax::parse(id, text);
    if diags.is_empty() {
        Ok(format(&file, text))
    } else {
        Err(diags)
    }
}

/// Attributes whose one-line value is longer than this are not aligned (they would
/// push the line past the width).
const ALIGN_VALUE_MAX: usize = 40;

struct Fmt<'a> {
    text: &'a str,
    comments: &'a [Comment],
    /// Index of the first comment not yet emitted.
    next: usize,
    out: String,
    indent: usize,
    /// Source end of the last thing emitted; `None` right after an opening delimiter
    /// (no blank line there) and at the start of the file.
    last_end: Option<usize>,
}

fn pos(s: u32) -> usize {
    s as usize
}

impl<'a> Fmt<'a> {
    // ---- lines and comments ---------------------------------------------------

    /// Width of the current line so far, in characters.
    fn col(&self) -> usize {
        let line = self.out.rsplit('\n').next().unwrap_or("");
        line.chars().count()
    }

    /// Start a new line for something found at source offset `src`; keeps one blank
    /// line if the source had at least one before it.
    fn start_line(&mut self, src: usize) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        if let Some(le) = self.last_end {
            if le <= src {
                let gap = self.text.get(le..src).unwrap_or("");
                if gap.matches('\n').count() >= 2 && !self.out.is_empty() {
                    self.out.push('\n');
                }
            }
        }
        self.push_indent();
    }

    /// Start a new line without a blank line (for closing delimiters).
    fn close_line(&mut self) {
        if !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        self.push_indent();
    }

    fn push_indent(&mut self) {
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
    }

    fn comment_text(c: &Comment) -> String {
        format!("#{}", c.text.trim_end())
    }

    /// Emit, each on its own line, every pending comment that starts before `src`.
    fn flush_before(&mut self, src: usize) {
        while let Some(c) = self.comments.get(self.next) {
            if pos(c.span.start) >= src {
                break;
            }
            self.start_line(pos(c.span.start));
            self.out.push_str(&Self::comment_text(c));
            self.last_end = Some(pos(c.span.end));
            self.next += 1;
        }
    }

    /// Emit the next comment at the end of the current line if, in the source, it
    /// follows `after` on the same line with only blanks and commas in between.
    fn trailing(&mut self, after: usize) {
        let Some(c) = self.comments.get(self.next) else {
            return;
        };
        let start = pos(c.span.start);
        if start < after {
            return;
        }
        let gap = self.text.get(after..start).unwrap_or("x");
        if gap.chars().all(|ch| matches!(ch, ' ' | '\t' | ',')) {
            self.out.push(' ');
            self.out.push_str(&Self::comment_text(c));
            self.last_end = Some(pos(c.span.end));
            self.next += 1;
        }
    }

    /// True if a comment starts strictly inside `start..end`.
    fn has_comments(&self, start: usize, end: usize) -> bool {
        let i = self
            .comments
            .partition_point(|c| pos(c.span.start) <= start);
        self.comments
            .get(i)
            .is_some_and(|c| pos(c.span.start) < end)
    }

    /// Offset of the next significant character at or after `at` (skips blanks and comments).
    fn skip_trivia(&self, mut at: usize) -> usize {
        let b = self.text.as_bytes();
        while at < b.len() {
            match b[at] {
                b' ' | b'\t' | b'\n' | b'\r' => at += 1,
                b'#' => {
                    while at < b.len() && b[at] != b'\n' {
                        at += 1;
                    }
                }
                _ => break,
            }
        }
        at
    }

    // ---- items ------------------------------------------------------------------

    fn item(&mut self, item: &Item) {
        match item {
            Item::Import(i) => {
                self.flush_before(pos(i.span.start));
                self.start_line(pos(i.span.start));
                self.out.push_str("import ");
                self.out.push_str(&string(&i.path));
                self.end_unit(pos(i.span.end));
            }
            Item::Let(l) => {
                self.flush_before(pos(l.value.span().start));
                self.start_line(pos(l.span.start));
                self.out.push_str("let ");
                self.out.push_str(&l.name.name);
                self.out.push_str(" = ");
                self.expr(&l.value, 0);
                self.end_unit(pos(l.span.end));
            }
            Item::Kind(k) => self.kind(k),
            Item::Block(b) => self.block(b),
        }
    }

    /// After a construct ending at source offset `end`: its trailing comment.
    fn end_unit(&mut self, end: usize) {
        self.last_end = Some(end);
        self.trailing(end);
    }

    fn kind(&mut self, k: &KindDef) {
        let open = self.skip_trivia(pos(k.name.span.end));
        let mut close = match k.params.last() {
            Some(p) => self.skip_trivia(pos(p.span.end)),
            None => self.skip_trivia(open + 1),
        };
        if self.text.as_bytes().get(close) == Some(&b',') {
            close = self.skip_trivia(close + 1);
        }
        let params: Vec<String> = k.params.iter().map(flat_param).collect();
        let header = format!("kind {}({}) {{", k.name.name, params.join(", "));
        let flat =
            !self.has_comments(open, close) && self.indent * 2 + header.chars().count() <= WIDTH;
        if flat {
            self.flush_before(pos(k.body.span.start));
            self.start_line(pos(k.span.start));
            self.out
                .push_str(&format!("kind {}({})", k.name.name, params.join(", ")));
        } else {
            self.flush_before(open);
            self.start_line(pos(k.span.start));
            self.out.push_str(&format!("kind {}(", k.name.name));
            self.indent += 1;
            self.last_end = None;
            self.trailing(open + 1);
            for p in &k.params {
                self.flush_before(pos(p.span.start));
                self.start_line(pos(p.span.start));
                self.out.push_str(&p.name.name);
                self.out.push_str(": ");
                self.out.push_str(&flat_type(&p.ty));
                if let Some(d) = &p.default {
                    self.out.push_str(" = ");
                    self.expr(d, 1);
                }
                self.out.push(',');
                self.end_unit(pos(p.span.end));
            }
            self.flush_before(pos(k.body.span.start));
            self.indent -= 1;
            self.close_line();
            self.out.push(')');
        }
        self.body(&k.body);
    }

    fn block(&mut self, b: &Block) {
        self.flush_before(pos(b.body.span.start));
        self.start_line(pos(b.span.start));
        self.out.push_str(&b.keyword.name);
        match &b.label {
            Some(BlockLabel::Name(n)) => {
                self.out.push(' ');
                self.out.push_str(&n.name);
            }
            Some(BlockLabel::Str(s)) => {
                self.out.push(' ');
                self.out.push_str(&string(s));
            }
            None => {}
        }
        self.body(&b.body);
    }

    /// ` { ... }` after a block header.
    fn body(&mut self, body: &Body) {
        let (start, end) = (pos(body.span.start), pos(body.span.end));
        if body.entries.is_empty() && !self.has_comments(start, end) {
            self.out.push_str(" {}");
            self.end_unit(end);
            return;
        }
        self.out.push_str(" {");
        self.indent += 1;
        self.last_end = None;
        self.trailing(start + 1);
        let pads = self.alignment(&body.entries);
        for (e, pad) in body.entries.iter().zip(pads) {
            match e {
                Entry::Attr(a) => self.attr(a, pad),
                Entry::Block(b) => self.block(b),
            }
        }
        self.flush_before(end);
        self.indent -= 1;
        self.close_line();
        self.out.push('}');
        self.end_unit(end);
    }

    /// Name widths for aligning `=`: consecutive attributes with short one-line values
    /// and no blank line or own-line comment between them form a run; each is padded to
    /// the run's longest name. Decided from the tree and source positions only, so
    /// formatting again gives the same runs (idempotent).
    fn alignment(&self, entries: &[Entry]) -> Vec<usize> {
        let mut pads = vec![0; entries.len()];
        let mut run: Vec<usize> = Vec::new();
        let name_len = |i: usize| match &entries[i] {
            Entry::Attr(a) => a.name.name.chars().count(),
            Entry::Block(_) => 0,
        };
        let flush = |run: &mut Vec<usize>, pads: &mut Vec<usize>| {
            let w = run.iter().map(|&i| name_len(i)).max().unwrap_or(0);
            for &i in run.iter() {
                pads[i] = w;
            }
            run.clear();
        };
        for (i, e) in entries.iter().enumerate() {
            let Entry::Attr(a) = e else {
                flush(&mut run, &mut pads);
                continue;
            };
            let (vs, ve) = (pos(a.value.span().start), pos(a.value.span().end));
            let simple = !self.has_comments(vs, ve)
                && flat_expr(&a.value).chars().count() <= ALIGN_VALUE_MAX;
            if !simple {
                flush(&mut run, &mut pads);
                continue;
            }
            if let Some(&prev) = run.last() {
                let prev_end = match &entries[prev] {
                    Entry::Attr(p) => pos(p.span.end),
                    Entry::Block(b) => pos(b.span.end),
                };
                let gap = self.text.get(prev_end..pos(a.span.start)).unwrap_or("\n\n");
                if gap.matches('\n').count() >= 2 || !self.only_trailing_comment(prev_end, vs) {
                    flush(&mut run, &mut pads);
                }
            }
            run.push(i);
        }
        flush(&mut run, &mut pads);
        pads
    }

    /// True if every comment starting in `from..to` is the one trailing comment on the
    /// line that ends at `from` (any other comment gets a line of its own when
    /// formatted, which would split an alignment run on the next pass).
    fn only_trailing_comment(&self, from: usize, to: usize) -> bool {
        let first = self.comments.partition_point(|c| pos(c.span.start) < from);
        let inside: Vec<&Comment> = self.comments[first..]
            .iter()
            .take_while(|c| pos(c.span.start) < to)
            .collect();
        match inside.as_slice() {
            [] => true,
            [c] => self
                .text
                .get(from..pos(c.span.start))
                .is_some_and(|g| g.chars().all(|ch| matches!(ch, ' ' | '\t' | ','))),
            _ => false,
        }
    }

    fn attr(&mut self, a: &Attr, pad: usize) {
        self.flush_before(pos(a.value.span().start));
        self.start_line(pos(a.span.start));
        self.out.push_str(&a.name.name);
        for _ in a.name.name.chars().count()..pad {
            self.out.push(' ');
        }
        self.out.push_str(" = ");
        self.expr(&a.value, 0);
        self.end_unit(pos(a.span.end));
    }

    // ---- expressions --------------------------------------------------------------

    /// Write `e` at the current position; `suffix` is the width of what follows it on
    /// the line (a `,`), for the fit check.
    fn expr(&mut self, e: &Expr, suffix: usize) {
        let flat = flat_expr(e);
        let span = e.span();
        let (start, end) = (pos(span.start), pos(span.end));
        let (open, elems) = match e {
            Expr::List(elems, _) => ("[".to_string(), elems),
            Expr::Call(name, args, _) => (format!("{}(", name.name), args),
            _ => {
                self.out.push_str(&flat);
                return;
            }
        };
        if !self.has_comments(start, end) && self.col() + flat.chars().count() + suffix <= WIDTH {
            self.out.push_str(&flat);
            return;
        }
        let close = if matches!(e, Expr::List(..)) {
            ']'
        } else {
            ')'
        };
        let open_end = match e {
            Expr::Call(name, ..) => self.skip_trivia(pos(name.span.end)) + 1,
            _ => start + 1,
        };
        self.out.push_str(&open);
        self.indent += 1;
        self.last_end = None;
        self.trailing(open_end);
        for el in elems {
            let s = el.span();
            self.flush_before(pos(s.start));
            self.start_line(pos(s.start));
            self.expr(el, 1);
            self.out.push(',');
            self.end_unit(pos(s.end));
        }
        self.flush_before(end);
        self.indent -= 1;
        self.close_line();
        self.out.push(close);
        self.last_end = Some(end);
    }
}

fn flat_param(p: &Param) -> String {
    let mut s = format!("{}: {}", p.name.name, flat_type(&p.ty));
    if let Some(d) = &p.default {
        s.push_str(" = ");
        s.push_str(&flat_expr(d));
    }
    s
}

fn flat_type(t: &TypeExpr) -> String {
    match t {
        TypeExpr::Named(n) => n.name.clone(),
        TypeExpr::List(inner, _) => format!("[{}]", flat_type(inner)),
    }
}

/// The one-line form of an expression.
pub fn flat_expr(e: &Expr) -> String {
    match e {
        Expr::Str(s) => string(s),
        Expr::Int(v, _) => v.to_string(),
        Expr::Bool(b, _) => b.to_string(),
        Expr::List(elems, _) => {
            let parts: Vec<String> = elems.iter().map(flat_expr).collect();
            format!("[{}]", parts.join(", "))
        }
        Expr::Path(segs) => path(segs),
        Expr::Call(name, args, _) => {
            let parts: Vec<String> = args.iter().map(flat_expr).collect();
            format!("{}({})", name.name, parts.join(", "))
        }
    }
}

fn path(segs: &[Ident]) -> String {
    let names: Vec<&str> = segs.iter().map(|s| s.name.as_str()).collect();
    names.join(".")
}

/// A string literal, canonically escaped: `\"`, `\\`, `\n`, `\t`, and `\$` only where
/// a literal `$` is followed by `{`.
pub fn string(s: &StrLit) -> String {
    let mut out = String::from("\"");
    let mut lit = String::new();
    for part in &s.parts {
        match part {
            StrPart::Lit(t) => lit.push_str(t),
            StrPart::Interp(e) => {
                escape_into(&mut out, &lit);
                lit.clear();
                out.push_str("${");
                match e {
                    Expr::Path(segs) => out.push_str(&path(segs)),
                    other => out.push_str(&flat_expr(other)),
                }
                out.push('}');
            }
        }
    }
    escape_into(&mut out, &lit);
    out.push('"');
    out
}

/// `text` as a string literal of the language, canonically escaped (what
/// [`string`] writes for a literal without interpolation).
pub fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    escape_into(&mut out, text);
    out.push('"');
    out
}

fn escape_into(out: &mut String, lit: &str) {
    let mut chars = lit.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
}
