//! The one integration test binary. Each module owns one area; data-driven where
//! possible (tests/ui, golden/). Slow lab tests run only when INFRA_LAB_TESTS=1
//! (CI sets it) and print why when skipped.

// Tests and benchmarks run programs and touch files: IO rules are for the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

mod alerts;
mod apply_e2e;
mod backup;
mod calendar;
mod codes;
mod deadline;
mod demo;
mod drill;
mod fleet;
mod fmt;
mod golden;
mod hostile;
mod init;
mod interrupt;
mod lab;
mod lsp;
mod mariadb_backup;
mod plan;
mod release_git;
mod secrets;
mod snapshots;
mod ssh;
mod status;
mod ui;
mod validators;

/// True when the tests that need root (a real sshd, network namespaces, lab hosts)
/// run: INFRA_LAB_TESTS=1, which CI sets. Otherwise says on stderr which test is
/// skipped and what it needs.
pub(crate) fn lab_tests(test: &str, needs: &str) -> bool {
    if std::env::var("INFRA_LAB_TESTS").as_deref() == Ok("1") {
        deadline::watch(test);
        return true;
    }
    eprintln!("skipping {test}: needs {needs}; set INFRA_LAB_TESTS=1 to run it");
    false
}
