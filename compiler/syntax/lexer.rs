//! Tokens. The lexer is pull-based (the parser asks for one token at a time, with a
//! small look-ahead buffer), iterative (no recursion at all) and linear in the input.
//! Token shapes are recognised with nom combinators; errors (unexpected characters,
//! bad escapes, unterminated strings, bad numbers) are reported as [`Diag`]s and the
//! lexer carries on, so every error of a file is found in one pass.
//!
//! Characters that cannot start any token are reported (one diagnostic per run)
//! and skipped: the parser never sees them.

use crate::diag::{codes, Diag};
use crate::source::{FileId, Span};
use crate::syntax::ast::{Comment, Expr, Ident, StrLit, StrPart};
use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_till1, take_while, take_while1};
use nom::character::complete::{char as nchar, digit1, satisfy};
use nom::combinator::{all_consuming, opt, recognize};
use nom::multi::separated_list1;
use nom::sequence::{pair, preceded};
use nom::IResult;

/// Words that cannot be used as names.
pub const KEYWORDS: [&str; 5] = ["import", "let", "kind", "true", "false"];

pub const VALID_ESCAPES: &str = "valid escapes are `\\\"`, `\\\\`, `\\n`, `\\t` and `\\$`";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tok {
    Ident,
    /// `None` when the literal was invalid (already reported).
    Int(Option<i64>),
    /// Index into [`Lexer::take_str`]'s table (keeps tokens `Copy`).
    Str(usize),
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Eq,
    Colon,
    Comma,
    Dot,
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
    /// First token on its line (or of the file).
    pub line_start: bool,
    /// Preceded by whitespace or a comment.
    pub ws_before: bool,
}

pub fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// `[A-Za-z_][A-Za-z0-9_-]*`
pub fn ident(i: &str) -> IResult<&str, &str> {
    recognize(pair(satisfy(is_ident_start), take_while(is_ident_continue)))(i)
}

fn blank(i: &str) -> IResult<&str, &str> {
    take_while1(|c| c == ' ' || c == '\t' || c == '\n' || c == '\r')(i)
}

/// `#` up to (not including) the end of the line.
fn comment(i: &str) -> IResult<&str, &str> {
    recognize(preceded(nchar('#'), take_till(|c| c == '\n')))(i)
}

/// `-?[0-9]+`
fn integer(i: &str) -> IResult<&str, &str> {
    recognize(pair(opt(nchar('-')), digit1))(i)
}

/// The rest of a malformed number such as `2min` or `192.0.2.1`.
fn number_tail(i: &str) -> IResult<&str, &str> {
    take_while(|c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-'))(i)
}

/// `name` or `a.b.c`, for `${...}`.
fn dotted(i: &str) -> IResult<&str, Vec<&str>> {
    separated_list1(nchar('.'), ident)(i)
}

/// Ordinary characters inside a string.
fn str_run(i: &str) -> IResult<&str, &str> {
    take_till1(|c| matches!(c, '"' | '\\' | '$' | '\n' | '\r'))(i)
}

fn line_end(i: &str) -> IResult<&str, &str> {
    alt((tag("\n"), tag("\r\n")))(i)
}

pub struct Lexer<'a> {
    pub src: &'a str,
    pub pos: usize,
    pub file: FileId,
    pub diags: Vec<Diag>,
    pub comments: Vec<Comment>,
    /// String literals lexed so far, taken by the parser as it consumes them.
    strings: Vec<Option<StrLit>>,
}

impl<'a> Lexer<'a> {
    pub fn new(file: FileId, src: &'a str) -> Lexer<'a> {
        // A UTF-8 byte order mark is not part of the text.
        let pos = if src.starts_with('\u{feff}') { 3 } else { 0 };
        Lexer {
            src,
            pos,
            file,
            diags: Vec::new(),
            comments: Vec::new(),
            strings: Vec::new(),
        }
    }

    /// The string literal of a `Tok::Str(i)` token (each is taken once).
    pub fn take_str(&mut self, i: usize) -> StrLit {
        self.strings
            .get_mut(i)
            .and_then(Option::take)
            .unwrap_or_else(|| StrLit {
                parts: Vec::new(),
                span: Span::default(),
            })
    }

    pub fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start, end)
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    /// Offset of a suffix of `src`.
    fn off(&self, rest: &str) -> usize {
        self.src.len() - rest.len()
    }

    /// Skip whitespace and comments; returns (saw a newline, saw anything).
    fn trivia(&mut self) -> (bool, bool) {
        let mut newline = self.pos == 0 || self.pos == 3 && self.src.starts_with('\u{feff}');
        let mut any = false;
        loop {
            let rest = self.rest();
            if let Ok((r, ws)) = blank(rest) {
                newline |= ws.contains('\n');
                any = true;
                self.pos = self.off(r);
            } else if let Ok((r, c)) = comment(rest) {
                let start = self.pos;
                let c = c.strip_suffix('\r').unwrap_or(c);
                self.comments.push(Comment {
                    text: c[1..].to_string(),
                    span: self.span(start, start + c.len()),
                });
                any = true;
                self.pos = self.off(r);
            } else {
                return (newline, any);
            }
        }
    }

    pub fn next_token(&mut self) -> Token {
        let mut line_start = false;
        let mut ws_before = false;
        loop {
            let (nl, ws) = self.trivia();
            line_start |= nl;
            ws_before |= ws;
            let start = self.pos;
            let rest = self.rest();
            let Some(c) = rest.chars().next() else {
                return Token {
                    tok: Tok::Eof,
                    start,
                    end: start,
                    line_start: true,
                    ws_before,
                };
            };
            let punct = match c {
                '{' => Some(Tok::LBrace),
                '}' => Some(Tok::RBrace),
                '[' => Some(Tok::LBracket),
                ']' => Some(Tok::RBracket),
                '(' => Some(Tok::LParen),
                ')' => Some(Tok::RParen),
                '=' => Some(Tok::Eq),
                ':' => Some(Tok::Colon),
                ',' => Some(Tok::Comma),
                '.' => Some(Tok::Dot),
                _ => None,
            };
            let tok = if let Some(t) = punct {
                self.pos += 1;
                t
            } else if let Ok((r, _)) = ident(rest) {
                self.pos = self.off(r);
                Tok::Ident
            } else if let Ok((r, digits)) = integer(rest) {
                self.pos = self.off(r);
                Tok::Int(self.number(start, digits, r))
            } else if c == '"' {
                let s = self.string();
                self.strings.push(Some(s));
                Tok::Str(self.strings.len() - 1)
            } else {
                self.unexpected_chars();
                ws_before = true;
                continue;
            };
            return Token {
                tok,
                start,
                end: self.pos,
                line_start,
                ws_before,
            };
        }
    }

    /// Report a run of characters that start no token, and skip it.
    fn unexpected_chars(&mut self) {
        let start = self.pos;
        let rest = self.rest();
        let stop = |c: char| {
            c.is_ascii_whitespace()
                || c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '{' | '}'
                        | '['
                        | ']'
                        | '('
                        | ')'
                        | '='
                        | ':'
                        | ','
                        | '.'
                        | '"'
                        | '#'
                        | '_'
                        | '-'
                )
        };
        // Always skip at least one character.
        let first = rest.chars().next().map(char::len_utf8).unwrap_or(0);
        let more = rest[first..].find(stop).unwrap_or(rest.len() - first);
        let end = start + first + more;
        self.pos = end;
        let text = &self.src[start..end];
        let n = text.chars().count();
        let shown: String = text.chars().take(20).collect();
        let msg = if n == 1 {
            format!("unexpected character `{}`", shown.escape_debug())
        } else {
            format!(
                "unexpected characters `{}{}`",
                shown.escape_debug(),
                if n > 20 { "…" } else { "" }
            )
        };
        let mut d = Diag::error(codes::E0001, msg).at(self.span(start, end), "not valid here");
        if !text.is_ascii() && text.chars().any(|c| c.is_alphabetic()) {
            d = d.help("names may contain only ASCII letters, digits, `_` and `-`; other text goes in a string: \"...\"");
        } else if text.chars().any(|c| c.is_whitespace()) {
            d = d.help("only spaces, tabs and newlines separate tokens");
        } else if text.starts_with('-') || text == ";" {
            d = d.help("no separator is needed between attributes");
        }
        self.diags.push(d);
    }

    /// Integer value of `digits` (already consumed), or report why it is not one.
    fn number(&mut self, start: usize, digits: &str, rest: &str) -> Option<i64> {
        let next = rest.chars().next();
        let after = rest.chars().nth(1);
        let bad_tail = match next {
            Some(c) if is_ident_start(c) || c.is_ascii_digit() => true,
            Some('.' | ':' | '/' | '-') => after.is_some_and(|a| a.is_ascii_alphanumeric()),
            _ => false,
        };
        if bad_tail {
            let tail = number_tail(rest).map(|(_, t)| t).unwrap_or("");
            let end = self.pos + tail.len();
            self.pos = end;
            let text = &self.src[start..end];
            self.diags.push(
                Diag::error(codes::E0017, format!("invalid number `{text}`"))
                    .at(self.span(start, end), "not an integer")
                    .help(format!(
                        "durations, sizes and addresses are strings: write \"{text}\""
                    )),
            );
            return None;
        }
        match digits.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.diags.push(
                    Diag::error(codes::E0013, "integer out of range")
                        .at(self.span(start, self.pos), "does not fit in 64 bits")
                        .help(format!(
                            "integers must be between {} and {}",
                            i64::MIN,
                            i64::MAX
                        )),
                );
                None
            }
        }
    }

    /// A string literal starting at the current `"`.
    fn string(&mut self) -> StrLit {
        let start = self.pos;
        self.pos += 1;
        let mut parts = Vec::new();
        let mut lit = String::new();
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else {
                self.unterminated(start);
                break;
            };
            if line_end(rest).is_ok() {
                self.unterminated(start);
                break;
            }
            match c {
                '"' => {
                    self.pos += 1;
                    break;
                }
                '\\' => {
                    let esc = rest[1..].chars().next();
                    let decoded = match esc {
                        Some('"') => Some('"'),
                        Some('\\') => Some('\\'),
                        Some('n') => Some('\n'),
                        Some('t') => Some('\t'),
                        Some('$') => Some('$'),
                        _ => None,
                    };
                    match (decoded, esc) {
                        (Some(d), _) => {
                            lit.push(d);
                            self.pos += 2;
                        }
                        (None, Some(e)) if e != '\n' && e != '\r' => {
                            let end = self.pos + 1 + e.len_utf8();
                            self.diags.push(
                                Diag::error(
                                    codes::E0007,
                                    format!("unknown escape `\\{}`", e.escape_debug()),
                                )
                                .at(self.span(self.pos, end), "unknown escape")
                                .help(VALID_ESCAPES),
                            );
                            lit.push(e);
                            self.pos = end;
                        }
                        // A backslash at the end of the line: the string is unterminated.
                        _ => {
                            self.pos += 1;
                        }
                    }
                }
                '$' if rest[1..].starts_with('{') => {
                    if !self.interpolation(start, &mut parts, &mut lit) {
                        break;
                    }
                }
                '\r' => {
                    // A lone carriage return (not a line end) is kept as is.
                    lit.push('\r');
                    self.pos += 1;
                }
                '$' => {
                    lit.push('$');
                    self.pos += 1;
                }
                _ => match str_run(rest) {
                    Ok((r, run)) => {
                        lit.push_str(run);
                        self.pos = self.off(r);
                    }
                    Err(_) => {
                        lit.push(c);
                        self.pos += c.len_utf8();
                    }
                },
            }
        }
        if !lit.is_empty() {
            parts.push(StrPart::Lit(lit));
        }
        StrLit {
            parts,
            span: self.span(start, self.pos),
        }
    }

    fn unterminated(&mut self, start: usize) {
        self.diags.push(
            Diag::error(codes::E0008, "unterminated string")
                .at(self.span(start, self.pos), "this string is never closed")
                .help("strings end on the line they start on: add a closing `\"`"),
        );
    }

    /// `${...}` at the current position. Returns false if the string ended inside it.
    fn interpolation(
        &mut self,
        str_start: usize,
        parts: &mut Vec<StrPart>,
        lit: &mut String,
    ) -> bool {
        let open = self.pos;
        let inner_start = open + 2;
        let after = &self.src[inner_start..];
        let close = after.find(['}', '"', '\n']);
        match close.map(|i| (i, after.as_bytes()[i])) {
            Some((i, b'}')) => {
                let inner = &after[..i];
                let end = inner_start + i + 1;
                self.pos = end;
                let trimmed = inner.trim_matches([' ', '\t']);
                let lead = inner.len() - inner.trim_start_matches([' ', '\t']).len();
                if trimmed.is_empty() {
                    self.diags.push(
                        Diag::error(codes::E0011, "empty interpolation")
                            .at(self.span(open, end), "nothing to interpolate")
                            .help("put a name inside, like `${name}`, or write `\\${` for a literal `${`"),
                    );
                    return true;
                }
                match all_consuming(dotted)(trimmed) {
                    Ok((_, names)) if !KEYWORDS.contains(&names[0]) => {
                        let mut at = inner_start + lead;
                        let path = names
                            .iter()
                            .map(|n| {
                                let id = Ident {
                                    name: n.to_string(),
                                    span: self.span(at, at + n.len()),
                                };
                                at += n.len() + 1;
                                id
                            })
                            .collect();
                        if !lit.is_empty() {
                            parts.push(StrPart::Lit(std::mem::take(lit)));
                        }
                        parts.push(StrPart::Interp(Expr::Path(path)));
                    }
                    _ => {
                        self.diags.push(
                            Diag::error(
                                codes::E0012,
                                format!("invalid interpolation `${{{}}}`", shorten(inner, 30)),
                            )
                            .at(self.span(open, end), "expected a name")
                            .help("only a name or a dotted path can be interpolated, like `${name}` or `${office.vip}`; write `\\${` for a literal `${`"),
                        );
                    }
                }
                true
            }
            other => {
                // Stop at the closing quote (it still closes the string) or the end of line.
                let stop = other
                    .map(|(i, _)| inner_start + i)
                    .unwrap_or(self.src.len());
                let stop = if self.src[..stop].ends_with('\r') {
                    stop - 1
                } else {
                    stop
                };
                self.pos = stop;
                self.diags.push(
                    Diag::error(codes::E0010, "unterminated interpolation")
                        .at(self.span(open, open + 2), "this `${` is never closed")
                        .help("close it with `}`, or write `\\${` for a literal `${`"),
                );
                if matches!(other, Some((_, b'"'))) {
                    true
                } else {
                    // The string itself is cut off by the end of line: one error is enough.
                    let _ = str_start;
                    false
                }
            }
        }
    }
}

/// At most `n` characters of `s`, with `…` when cut.
pub fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}
