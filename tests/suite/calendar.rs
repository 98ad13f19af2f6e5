//! The `calendar` type's checker against the real thing: every expression below is
//! given to `systemd-analyze calendar`, and infra must accept exactly the ones systemd
//! accepts. The expected verdict is written down too, so a change of systemd is
//! noticed (and the list still tests the checker where systemd-analyze is missing).

use infra::resolve::calendar::check;
use std::process::Command;

/// (expression, systemd 252 accepts it)
const CASES: &[(&str, bool)] = &[
    // shorthands, any case
    ("minutely", true),
    ("hourly", true),
    ("daily", true),
    ("weekly", true),
    ("monthly", true),
    ("quarterly", true),
    ("semiannually", true),
    ("yearly", true),
    ("DAILY", true),
    ("daily UTC", true),
    ("every day at 3am", false),
    ("daily ", false),
    (" daily", false),
    ("now", false),
    ("", false),
    // full and partial forms
    ("*-*-01 02:00:00", true),
    ("*-*-* 03:00", true),
    ("2024-02-29 12:00:00", true),
    ("2024-02-30", true),
    ("23-1-1", true),
    ("1969-01-01", false),
    ("2200-01-01", false),
    ("*-*", true),
    ("12:00", true),
    ("12", false),
    ("12:", false),
    ("*-*-* 24:00", false),
    ("*:*:60", false),
    ("*-13-01", false),
    ("*-*-32", false),
    // weekdays
    ("Mon..Fri 09:00", true),
    ("Mon-Fri", true),
    ("Sat,Sun *-*-* 10:00 UTC", true),
    ("monday", true),
    ("Fri..Mon", false),
    ("Monx", false),
    ("Mon..", false),
    // lists, ranges, repetitions
    ("*:0/15", true),
    ("*:50/9", true),
    ("*:50/10", false),
    ("*:*/15", false),
    ("*:0/0", false),
    ("*-*-1..3/4", true),
    ("*-*-5..5", true),
    ("*-*-5..3", false),
    ("8..18/2:00", true),
    // seconds with decimals
    ("00:00:30.5", true),
    ("00:00:59.9999994", true),
    ("00:00:59.9999995", false),
    ("00:00:00.", false),
    // days from the end of the month
    ("*-02~03", true),
    ("*-*~28", true),
    ("*-*~29", false),
    ("*-*~1,28", false),
    ("*-*~1/2", false),
    ("2023~01-01", false),
    // timestamps
    ("@1700000000", true),
    ("@7258118400", false),
    ("@", false),
    // time zones
    ("12:00 Europe/Berlin", true),
    ("Mon *-*-* 00:00:00 America/New_York", true),
    ("12:00 Foo/Bar", false),
    ("12:00 europe/berlin", false),
    ("Europe/Berlin", false),
];

#[test]
fn calendar_matches_the_written_verdicts() {
    let wrong: Vec<String> = CASES
        .iter()
        .filter(|(e, ok)| check(e).is_ok() != *ok)
        .map(|(e, ok)| format!("{e:?}: expected {}, got {:?}", verdict(*ok), check(e)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn calendar_matches_systemd_analyze() {
    let probe = Command::new("systemd-analyze")
        .args(["calendar", "daily"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "skipping calendar_matches_systemd_analyze: `systemd-analyze calendar daily` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipping calendar_matches_systemd_analyze: systemd-analyze cannot run ({e}); it comes with the `systemd` package");
            return;
        }
    }
    let mut wrong = Vec::new();
    for (expr, _) in CASES {
        let out = Command::new("systemd-analyze")
            .env("TZ", "UTC")
            .args(["calendar", "--", expr])
            .output()
            .expect("systemd-analyze ran a moment ago");
        let systemd = out.status.success();
        let ours = check(expr);
        if systemd != ours.is_ok() {
            wrong.push(format!(
                "{expr:?}: systemd-analyze says {}, infra says {ours:?}",
                verdict(systemd)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "valid"
    } else {
        "invalid"
    }
}
