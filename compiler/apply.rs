//! apply stage (see lib.rs).
