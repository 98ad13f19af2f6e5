//! lint stage (see lib.rs).
