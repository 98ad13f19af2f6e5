//! fmt stage (see lib.rs).
