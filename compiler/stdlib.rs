//! The standard library, embedded in the binary: kinds written in the infra language
//! (`stdlib/*.infra`, imported as `std/NAME`) and their handlebars templates
//! (`stdlib/templates/...`). A user's repo can override any template by putting a
//! file at the same relative path under its own `templates/` directory.

// Temporary until the stdlib lands.
pub const PRELUDE: &str = "prelude";
pub fn module(name: &str) -> Option<&'static str> {
    match name {
        "prelude" => Some(""),
        _ => None,
    }
}
pub fn modules() -> impl Iterator<Item = (&'static str, &'static str)> {
    [("prelude", "")].into_iter()
}
