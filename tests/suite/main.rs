//! The one integration test binary. Each module owns one area; data-driven where
//! possible (tests/ui, golden/). Slow lab tests run only when INFRA_LAB_TESTS=1
//! (CI sets it) and print why when skipped.

mod apply_e2e;
mod codes;
mod demo;
mod fmt;
mod golden;
mod interrupt;
mod lab;
mod plan;
mod ssh;
mod ui;
mod validators;
