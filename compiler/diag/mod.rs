//! Diagnostics as values. Every stage returns `Vec<Diag>` (or `Result<T, Vec<Diag>>`);
//! nothing prints. The CLI renders them with miette (graphical) or as JSON.
//!
//! Codes are stable; every one is listed in [`codes`] with a one-line summary and
//! documented in docs/language.md ("Diagnostics"), docs/stdlib.md, docs/plan-apply.md
//! or docs/lab.md:
//! - E00xx syntax, E01xx names and references, E02xx types and values,
//!   E03xx imports and files, E04xx graph, E05xx/W05xx distributed-systems lints,
//!   E06xx rendering and templates, E07xx transport/plan/apply/lab.

pub mod codes;

use crate::source::{SourceMap, Span};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A labelled span: the primary label says what is wrong here, secondary labels
/// give context ("first defined here").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub severity: Severity,
    /// Stable code without the `infra::` prefix, e.g. `E0102`.
    pub code: &'static str,
    pub message: String,
    /// Where the problem is. `None` only for problems without a source location
    /// (for example a missing input directory).
    pub primary: Option<Label>,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
}

impl Diag {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diag {
        Diag {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: None,
            secondary: Vec::new(),
            help: None,
        }
    }
    pub fn warning(code: &'static str, message: impl Into<String>) -> Diag {
        Diag {
            severity: Severity::Warning,
            ..Diag::error(code, message)
        }
    }
    /// Set the primary label.
    pub fn at(mut self, span: Span, text: impl Into<String>) -> Diag {
        self.primary = Some(Label {
            span,
            text: text.into(),
        });
        self
    }
    /// Add a secondary label.
    pub fn with(mut self, span: Span, text: impl Into<String>) -> Diag {
        self.secondary.push(Label {
            span,
            text: text.into(),
        });
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// True if any diagnostic is an error.
pub fn has_errors(diags: &[Diag]) -> bool {
    diags.iter().any(Diag::is_error)
}

/// Sort diagnostics by file, position, then code, so output is deterministic.
pub fn sort(diags: &mut [Diag]) {
    diags.sort_by_key(|d| {
        let p = d.primary.as_ref().map(|l| l.span).unwrap_or_default();
        (p.file, p.start, p.end, d.code, d.message.clone())
    });
}

/// "did you mean" helper: the closest candidate by edit distance, if close enough.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    if len < 3 {
        return None;
    }
    let limit = (len / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------
// Rendering

/// A diagnostic bound to its source text, implementing `miette::Diagnostic`.
/// Labels in other files than the primary one become `related` diagnostics.
struct Bound {
    /// A related note (a label in another file): rendered as advice.
    note: bool,
    code: String,
    message: String,
    severity: Severity,
    help: Option<String>,
    src: miette::NamedSource<Arc<String>>,
    labels: Vec<miette::LabeledSpan>,
    related: Vec<Bound>,
}

impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}
impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}
impl std::error::Error for Bound {}
impl miette::Diagnostic for Bound {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        if self.code.is_empty() {
            None
        } else {
            Some(Box::new(&self.code))
        }
    }
    fn severity(&self) -> Option<miette::Severity> {
        if self.note {
            return Some(miette::Severity::Advice);
        }
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        if self.labels.is_empty() {
            None
        } else {
            Some(&self.src)
        }
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }
}

fn clamp(sources: &SourceMap, span: Span) -> (usize, usize) {
    let len = sources.get(span.file).text.len();
    let start = (span.start as usize).min(len);
    let end = (span.end as usize).min(len).max(start);
    (start, end - start)
}

/// Each file's text once, shared by every diagnostic that points into it.
struct Texts(Vec<Arc<String>>);

impl Texts {
    fn new(sources: &SourceMap) -> Texts {
        Texts(
            sources
                .files()
                .map(|(_, f)| Arc::new(f.text.clone()))
                .collect(),
        )
    }
    fn get(&self, id: crate::source::FileId) -> Arc<String> {
        self.0.get(id.0 as usize).cloned().unwrap_or_default()
    }
}

fn bind(d: &Diag, sources: &SourceMap, texts: &Texts) -> Bound {
    let primary_file = d.primary.as_ref().map(|l| l.span.file);
    let (name, text) = match primary_file {
        Some(f) => (sources.get(f).name.clone(), texts.get(f)),
        None => (String::new(), Arc::new(String::new())),
    };
    let mut labels = Vec::new();
    let mut related = Vec::new();
    if let Some(p) = &d.primary {
        let (s, l) = clamp(sources, p.span);
        labels.push(miette::LabeledSpan::new_primary_with_span(
            Some(p.text.clone()),
            (s, l),
        ));
    }
    for sec in &d.secondary {
        if Some(sec.span.file) == primary_file {
            let (s, l) = clamp(sources, sec.span);
            labels.push(miette::LabeledSpan::new_with_span(
                Some(sec.text.clone()),
                (s, l),
            ));
        } else {
            let sf = sources.get(sec.span.file);
            let (s, l) = clamp(sources, sec.span);
            related.push(Bound {
                note: true,
                code: String::new(),
                message: sec.text.clone(),
                severity: Severity::Warning,
                help: None,
                src: miette::NamedSource::new(sf.name.clone(), texts.get(sec.span.file)),
                labels: vec![miette::LabeledSpan::new_with_span(
                    Some(sec.text.clone()),
                    (s, l),
                )],
                related: Vec::new(),
            });
        }
    }
    Bound {
        note: false,
        code: format!("infra::{}", d.code),
        message: d.message.clone(),
        severity: d.severity,
        help: d.help.clone(),
        src: miette::NamedSource::new(name, text),
        labels,
        related,
    }
}

/// Render diagnostics as rustc-like text. `color` selects ANSI colours;
/// tests use `false` and a fixed width so output is byte-stable.
pub fn render(diags: &[Diag], sources: &SourceMap, color: bool, width: usize) -> String {
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(width)
        .with_links(false)
        .with_context_lines(1);
    let mut out = String::new();
    let texts = Texts::new(sources);
    for d in diags {
        let b = bind(d, sources, &texts);
        let _ = handler.render_report(&mut out, &b);
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    if errors + warnings > 0 {
        out.push_str(&summary(errors, warnings));
        out.push('\n');
    }
    out
}

fn summary(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, w) => format!("{} emitted", plural(w, "warning")),
        (e, 0) => format!("{} emitted", plural(e, "error")),
        (e, w) => format!(
            "{} and {} emitted",
            plural(e, "error"),
            plural(w, "warning")
        ),
    }
}

#[derive(Serialize)]
struct JsonDiag<'a> {
    severity: Severity,
    code: String,
    message: &'a str,
    file: Option<&'a str>,
    line: Option<usize>,
    column: Option<usize>,
    end_line: Option<usize>,
    end_column: Option<usize>,
    label: Option<&'a str>,
    help: Option<&'a str>,
    related: Vec<JsonRelated<'a>>,
}

#[derive(Serialize)]
struct JsonRelated<'a> {
    file: &'a str,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    message: &'a str,
}

/// One JSON object per line (like `cargo --message-format json`).
pub fn render_json(diags: &[Diag], sources: &SourceMap) -> String {
    let mut out = String::new();
    for d in diags {
        let pos = d.primary.as_ref().map(|l| {
            let (line, column) = sources.line_col(l.span.file, l.span.start);
            let (end_line, end_column) = sources.line_col(l.span.file, l.span.end);
            (
                sources.get(l.span.file).name.as_str(),
                line,
                column,
                end_line,
                end_column,
                l.text.as_str(),
            )
        });
        let related = d
            .secondary
            .iter()
            .map(|l| {
                let (line, column) = sources.line_col(l.span.file, l.span.start);
                let (end_line, end_column) = sources.line_col(l.span.file, l.span.end);
                JsonRelated {
                    file: sources.get(l.span.file).name.as_str(),
                    line,
                    column,
                    end_line,
                    end_column,
                    message: &l.text,
                }
            })
            .collect();
        let j = JsonDiag {
            severity: d.severity,
            code: format!("infra::{}", d.code),
            message: &d.message,
            file: pos.map(|p| p.0),
            line: pos.map(|p| p.1),
            column: pos.map(|p| p.2),
            end_line: pos.map(|p| p.3),
            end_column: pos.map(|p| p.4),
            label: pos.map(|p| p.5),
            help: d.help.as_deref(),
            related,
        };
        out.push_str(&serde_json::to_string(&j).unwrap_or_default());
        out.push('\n');
    }
    out
}
