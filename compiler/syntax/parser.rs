use super::ast;
use crate::diag::Diag;
use crate::source::{FileId, Span};

pub fn parse_file(file: FileId, text: &str) -> (ast::File, Vec<Diag>) {
    let _ = text;
    (
        ast::File {
            items: vec![],
            comments: vec![],
            span: Span::new(file, 0, 0),
        },
        vec![],
    )
}
