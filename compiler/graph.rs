//! graph stage (see lib.rs).
