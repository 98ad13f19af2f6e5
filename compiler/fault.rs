//! Pause points for fault-injection tests (tests/suite/interrupt.rs). With
//! `INFRA_PAUSE_AT=POINT` the client stops at POINT, prints `infra: paused at
//! POINT` on stderr and sleeps until it is killed, so a test can cut it (or the
//! host's power) at an exact moment of a switch. Inert otherwise.
//!
//! Points, in the order an apply reaches them: `switch` (probed and planned, the
//! switch not sent), `payload` (half of the switch's payload sent: the host is
//! unpacking it, under the lock), `switched` (the host switched and armed its
//! rollback timer; the confirmation not started), `confirm` (the confirm script
//! sent to the host, its answer not read).

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Duration;

fn wanted() -> Option<&'static str> {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    AT.get_or_init(|| std::env::var("INFRA_PAUSE_AT").ok())
        .as_deref()
}

/// Stop here if the test asked for `point`.
pub fn pause(point: &str) {
    if wanted() == Some(point) {
        errln!("infra: paused at {point}");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

thread_local! {
    /// The remote command this thread is sending: (name, byte offset of the
    /// `payload` point).
    static SENDING: Cell<(&'static str, usize)> = const { Cell::new(("", 0)) };
}

/// Run `f` (one remote command) as `name`; `mid` is where in its stdin the
/// `payload` point is.
pub fn sending<R>(name: &'static str, mid: usize, f: impl FnOnce() -> R) -> R {
    if wanted().is_none() {
        return f();
    }
    SENDING.with(|s| s.set((name, mid)));
    let r = f();
    SENDING.with(|s| s.set(("", 0)));
    r
}

/// Called by the transport as stdin goes out: `written` of `total` bytes.
pub fn progress(written: usize, total: usize) {
    if wanted().is_none() {
        return;
    }
    let (name, mid) = SENDING.with(Cell::get);
    if name == "switch" && written >= mid && written < total {
        pause("payload");
    }
    if name == "confirm" && written == total {
        pause("confirm");
    }
}
