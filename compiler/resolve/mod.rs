//! Stage 2: AST → typed [`Model`]. Entry point: [`resolve`].
//! Loads imports through a [`Loader`] (the only IO, behind a trait), resolves names,
//! checks types, applies defaults, expands kinds into primitive resources.

pub mod model;

pub use model::*;
