//! Stage 1: source text → AST. Entry point: [`parse`].
//!
//! Invariant: parsing never fails and never panics. It returns the tree it could
//! build plus every syntax error found (recovering at the next item or entry).

pub mod ast;
mod lexer;
mod parser;

use crate::diag::Diag;
use crate::source::FileId;

/// Parse one file. Always returns a tree (possibly partial) and the syntax errors.
pub fn parse(file: FileId, text: &str) -> (ast::File, Vec<Diag>) {
    parser::parse_file(file, text)
}
