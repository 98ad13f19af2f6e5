//! Progress of plan and apply on a terminal: a spinner per host (plain lines
//! when stderr is not a terminal), and the plan printed when it is known.

use crate::deploy::Events;
use crate::plan::Plan;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// ANSI colours on stdout?
pub fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Progress {
    pub fn new(hosts: &[String]) -> Progress {
        let multi = std::io::stderr().is_terminal().then(MultiProgress::new);
        let mut bars = BTreeMap::new();
        if let Some(m) = &multi {
            let width = hosts.iter().map(String::len).max().unwrap_or(0);
            let style =
                ProgressStyle::with_template(&format!("{{spinner}} {{prefix:{width}}}  {{msg}}"))
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
            for h in hosts {
                let b = m.add(ProgressBar::new_spinner());
                b.set_style(style.clone());
                b.set_prefix(h.clone());
                b.enable_steady_tick(Duration::from_millis(120));
                bars.insert(h.clone(), b);
            }
        }
        Progress {
            multi,
            bars: Mutex::new(bars),
        }
    }

    fn bar(&self, host: &str) -> Option<ProgressBar> {
        self.bars.lock().ok().and_then(|b| b.get(host).cloned())
    }

    pub fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

impl Events for Progress {
    fn say(&self, host: &str, msg: &str) {
        match (&self.multi, self.bar(host)) {
            (Some(_), Some(b)) => b.set_message(msg.to_string()),
            _ => errln!("{host}: {msg}"),
        }
    }
    fn done(&self, host: &str, msg: &str) {
        match (&self.multi, self.bar(host)) {
            (Some(_), Some(b)) => b.finish_with_message(msg.to_string()),
            _ => errln!("{host}: {msg}"),
        }
    }
    fn planned(&self, plan: &Plan, story: &[String], notes: &[(String, String)]) {
        self.clear();
        print_notes(notes);
        out!("{}", plan.render_text(color()));
        for line in story {
            outln!("{line}");
        }
    }
}

pub fn print_notes(notes: &[(String, String)]) {
    for (host, n) in notes {
        outln!("{host}: note: {n}");
    }
}
