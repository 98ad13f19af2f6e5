//! plan stage (see lib.rs).
