//! probe stage (see lib.rs).
