//! Printing that survives its reader going away. `std::println!` panics when
//! stdout is a closed pipe (`infra plan | head -3`); these macros write the same
//! text and, when the pipe is closed, drop it and remember that it is: a command
//! whose output nobody reads any more still finishes what it does (an apply is
//! not cut short by `| head`) and exits with its real status, and a loop that
//! only prints (`status --watch`) asks [`stdout_closed`] and ends.
//!
//! SIGPIPE keeps Rust's setting (ignored): restoring its default would kill
//! infra when a write to the SSH transport or a child's stdin fails, instead of
//! that failure being an error value.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// True once a write to stdout failed (its reader went away).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

#[doc(hidden)]
pub fn write_stdout(args: std::fmt::Arguments, newline: bool) {
    if stdout_closed() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let r = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")?;
        }
        out.flush()
    });
    if r.is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

#[doc(hidden)]
pub fn write_stderr(args: std::fmt::Arguments, newline: bool) {
    let mut err = std::io::stderr().lock();
    // nowhere left to say it: the exit status still tells
    let _ = err.write_fmt(args).and_then(|()| {
        if newline {
            err.write_all(b"\n")?;
        }
        Ok(())
    });
}

/// `println!` that does not panic on a closed stdout.
#[macro_export]
macro_rules! outln {
    () => { $crate::out::write_stdout(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::out::write_stdout(format_args!($($arg)*), true) };
}

/// `print!` that does not panic on a closed stdout.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::write_stdout(format_args!($($arg)*), false) };
}

/// `eprintln!` that does not panic on a closed stderr.
#[macro_export]
macro_rules! errln {
    () => { $crate::out::write_stderr(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::out::write_stderr(format_args!($($arg)*), true) };
}

/// `eprint!` that does not panic on a closed stderr.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => { $crate::out::write_stderr(format_args!($($arg)*), false) };
}
