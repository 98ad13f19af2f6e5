//! The standard library, embedded in the binary: kinds written in the infra language
//! (`stdlib/*.infra`, imported as `std/NAME`) and their handlebars templates
//! (`stdlib/templates/...`). A user's repo can override any template by putting a
//! file at the same relative path under its own `templates/` directory.
