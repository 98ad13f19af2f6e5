//! Stage 5: Model + graph → [`Build`]. Entry point: `render`.

pub mod build;

pub use build::*;
