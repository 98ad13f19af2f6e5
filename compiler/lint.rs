//! Stage 3: distributed-systems lints over the Model. Entry point: [`lint`].
//! Pure: Model in, diagnostics (warnings and errors, with spans) out.

use crate::diag::Diag;
use crate::resolve::Model;

pub fn lint(model: &Model) -> Vec<Diag> {
    let _ = model;
    Vec::new()
}
