//! Progress reporting: a spinner on a terminal, plain lines otherwise, or nothing.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Silent,
    Plain,
    Bar,
}

/// Where `up` reports what it is doing (on stderr).
pub struct Progress {
    mode: Mode,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    bar: Option<ProgressBar>,
    /// Plain mode prints a detail only when its first word changes (one line per phase).
    last_phase: String,
}

impl Progress {
    /// A spinner when stderr is a terminal, plain lines otherwise.
    pub fn auto() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::with(Mode::Bar)
        } else {
            Progress::plain()
        }
    }
    /// One line per step and phase, for logs and CI.
    pub fn plain() -> Progress {
        Progress::with(Mode::Plain)
    }
    /// Nothing at all (library callers, tests).
    pub fn silent() -> Progress {
        Progress::with(Mode::Silent)
    }

    fn with(mode: Mode) -> Progress {
        Progress {
            mode,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new step: `lab: building image`.
    pub fn step(&self, msg: &str) {
        let mut inner = self.lock();
        inner.last_phase.clear();
        match self.mode {
            Mode::Silent => {}
            Mode::Plain => errln!("lab: {msg}"),
            Mode::Bar => {
                if let Some(b) = inner.bar.take() {
                    b.finish_and_clear();
                }
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("{spinner} lab: {prefix} {wide_msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.set_prefix(msg.to_string());
                b.enable_steady_tick(Duration::from_millis(120));
                inner.bar = Some(b);
            }
        }
    }

    /// What the current step is doing right now (`retrieving libc6`).
    pub fn detail(&self, msg: &str) {
        let mut inner = self.lock();
        match self.mode {
            Mode::Silent => {}
            Mode::Plain => {
                let phase = msg.split_whitespace().next().unwrap_or("").to_string();
                if phase != inner.last_phase {
                    errln!("lab:   {msg}");
                    inner.last_phase = phase;
                }
            }
            Mode::Bar => {
                if let Some(b) = &inner.bar {
                    b.set_message(msg.to_string());
                }
            }
        }
    }

    /// A line that stays (a result, a warning).
    pub fn note(&self, msg: &str) {
        let inner = self.lock();
        match self.mode {
            Mode::Silent => {}
            Mode::Plain => errln!("lab: {msg}"),
            Mode::Bar => match &inner.bar {
                Some(b) => b.println(format!("lab: {msg}")),
                None => errln!("lab: {msg}"),
            },
        }
    }

    /// End the current step.
    pub fn finish(&self) {
        let mut inner = self.lock();
        if let Some(b) = inner.bar.take() {
            b.finish_and_clear();
        }
        inner.last_phase.clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
