//! A crontab schedule → systemd `OnCalendar=` expressions (for `job`'s
//! `calendar`), or why it cannot be one. Pure; every expression returned passes
//! [`crate::resolve::calendar::check`] (systemd 252's grammar).
//!
//! - fields `minute hour day-of-month month day-of-week`, each `*`, `N`, `N-M`,
//!   `*/S`, `N-M/S`, `N/S` and `,` lists of them; month names `jan`..`dec`, weekday
//!   names `sun`..`sat` (any case); weekday `0` and `7` are Sunday;
//! - `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`;
//! - cron runs a job when the day of month *or* the weekday matches if both are
//!   restricted (neither field starts with `*`); one `OnCalendar=` needs both, so
//!   that case gives two expressions (a job each, the weekday one on the days the
//!   first does not name, so no day runs twice);
//! - `@reboot` is not a schedule: refused with what to do instead.

/// The expressions (one, or two for cron's day-of-month-or-weekday rule), or why
/// the schedule cannot be a calendar.
pub fn to_calendar(schedule: &str) -> Result<Vec<String>, String> {
    let s = schedule.trim();
    if let Some(m) = s.strip_prefix('@') {
        let e = match m.to_ascii_lowercase().as_str() {
            "yearly" | "annually" => "*-01-01 00:00:00",
            "monthly" => "*-*-01 00:00:00",
            "weekly" => "Sun *-*-* 00:00:00",
            "daily" | "midnight" => "*-*-* 00:00:00",
            "hourly" => "*-*-* *:00:00",
            "reboot" => {
                return Err("`@reboot` runs once at boot, not on a schedule: a `service` (or a oneshot unit) started at boot does that".into())
            }
            other => return Err(format!("`@{other}` is not a cron shorthand")),
        };
        return Ok(vec![e.to_string()]);
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "a schedule has five fields (minute hour day month weekday), this one {}",
            fields.len()
        ));
    }
    let minute = field(fields[0], 0, 59, Unit::Number, "minute")?;
    let hour = field(fields[1], 0, 23, Unit::Number, "hour")?;
    let dom = field(fields[2], 1, 31, Unit::Number, "day of month")?;
    let month = field(fields[3], 1, 12, Unit::Month, "month")?;
    let dow = field(fields[4], 0, 7, Unit::Weekday, "weekday")?;
    let time = format!("{hour}:{minute}:00");
    let date = |d: &str| format!("*-{month}-{d}");
    // cron (Vixie, Debian's): a day field starting with `*` does not count as
    // restricted; when both are restricted, either may match
    let out = if fields[2].starts_with('*') || fields[4].starts_with('*') {
        let days = if dow == "*" {
            String::new()
        } else {
            format!("{dow} ")
        };
        vec![format!("{days}{} {time}", date(&dom))]
    } else {
        // the weekday half on the other days only: on a day both match, cron
        // runs the line once, and so must the two timers
        let others = other_days(fields[2])?;
        let mut v = vec![format!("{} {time}", date(&dom))];
        if !others.is_empty() {
            v.push(format!("{dow} {} {time}", date(&others)));
        }
        v
    };
    for e in &out {
        crate::resolve::calendar::check(e)
            .map_err(|why| format!("`{schedule}` gives `{e}`, which systemd refuses: {why}"))?;
    }
    Ok(out)
}

/// The days of the month a day-of-month field does not name, as a systemd list
/// (`02..14,16..31`), empty when it names them all.
fn other_days(f: &str) -> Result<String, String> {
    let mut named = [false; 32];
    for e in elements(f, 1, 31, Unit::Number, "day of month")? {
        for d in (e.first..=e.last).step_by(e.step.unwrap_or(1) as usize) {
            named[d as usize] = true;
        }
    }
    let mut parts = Vec::new();
    let mut d = 1;
    while d <= 31 {
        if named[d] {
            d += 1;
            continue;
        }
        let start = d;
        while d < 31 && !named[d + 1] {
            d += 1;
        }
        parts.push(if start == d {
            format!("{start:02}")
        } else {
            format!("{start:02}..{d:02}")
        });
        d += 1;
    }
    Ok(parts.join(","))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Number,
    Month,
    Weekday,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const SYSTEMD_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

fn value(v: &str, lo: u32, hi: u32, unit: Unit, what: &str) -> Result<u32, String> {
    let lower = v.to_ascii_lowercase();
    let named = match unit {
        Unit::Month => MONTHS
            .iter()
            .position(|m| *m == lower)
            .map(|i| i as u32 + 1),
        Unit::Weekday => DAYS.iter().position(|d| *d == lower).map(|i| i as u32),
        Unit::Number => None,
    };
    let n = match named {
        Some(n) => n,
        None => v
            .parse::<u32>()
            .map_err(|_| format!("`{v}` is not a {what}"))?,
    };
    if n < lo || n > hi {
        return Err(format!("{what} `{v}` is out of range ({lo}-{hi})"));
    }
    Ok(n)
}

/// One element of a cron field (`*`, `N`, `N-M`, `N/S`, `N-M/S`, `*/S`): its
/// first and last value, its step, and whether it was `*`.
struct Element {
    first: u32,
    last: u32,
    step: Option<u32>,
    full: bool,
}

/// The elements of cron field `f`, each checked (values in `lo..=hi`, names
/// for `unit`, ranges forwards, steps of 1 or more).
fn elements(f: &str, lo: u32, hi: u32, unit: Unit, what: &str) -> Result<Vec<Element>, String> {
    let mut out = Vec::new();
    for item in f.split(',') {
        if item.is_empty() {
            return Err(format!("an empty element in the {what} field `{f}`"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let s: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("`{s}` is not a step (1 or more) in `{f}`"))?;
                (r, Some(s))
            }
            None => (item, None),
        };
        // the values of the element (weekdays are listed, systemd has no weekday steps)
        let (first, last) = if range == "*" {
            (
                if unit == Unit::Weekday { 0 } else { lo },
                if unit == Unit::Weekday { 6 } else { hi },
            )
        } else if let Some((x, y)) = range.split_once('-') {
            let (x, y) = (value(x, lo, hi, unit, what)?, value(y, lo, hi, unit, what)?);
            if x > y {
                return Err(format!(
                    "the range `{range}` of the {what} field runs backwards"
                ));
            }
            (x, y)
        } else {
            let x = value(range, lo, hi, unit, what)?;
            // `N/S`: from N to the end, every S
            (x, if step.is_some() { hi } else { x })
        };
        out.push(Element {
            first,
            last,
            step,
            full: range == "*",
        });
    }
    Ok(out)
}

/// One cron field in systemd's notation (`*`, `5`, `1..5`, `0/15`, `1..20/5`,
/// lists; weekdays as names).
fn field(f: &str, lo: u32, hi: u32, unit: Unit, what: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for Element {
        first: a,
        last: b,
        step,
        full,
    } in elements(f, lo, hi, unit, what)?
    {
        if unit == Unit::Weekday {
            let step = step.unwrap_or(1);
            let mut days: Vec<u32> = (a..=b).step_by(step as usize).map(|d| d % 7).collect();
            days.sort_unstable();
            days.dedup();
            parts.extend(days.into_iter().map(|d| d.to_string()));
            continue;
        }
        parts.push(match step {
            None if full => "*".to_string(),
            None if a == b => format!("{a:02}"),
            None => format!("{a:02}..{b:02}"),
            Some(s) if full => format!("{a:02}/{s}"),
            Some(s) => format!("{a:02}..{b:02}/{s}"),
        });
    }
    if unit == Unit::Weekday {
        let mut days: Vec<u32> = parts.iter().filter_map(|p| p.parse().ok()).collect();
        days.sort_unstable();
        days.dedup();
        if days.len() == 7 {
            return Ok("*".into());
        }
        return Ok(weekdays(&days));
    }
    if parts.iter().any(|p| p == "*") {
        return Ok("*".into());
    }
    Ok(parts.join(","))
}

/// Sorted weekday numbers (0 = Sunday) as systemd names, Monday first, with
/// runs of three or more as ranges: `Mon..Fri`, `Sat,Sun`.
fn weekdays(days: &[u32]) -> String {
    // systemd's week runs Mon..Sun: Sunday sorts last
    let mut w: Vec<u32> = days.iter().map(|d| if *d == 0 { 7 } else { *d }).collect();
    w.sort_unstable();
    let name = |d: u32| SYSTEMD_DAYS[(d % 7) as usize];
    let mut out = Vec::new();
    let mut i = 0;
    while i < w.len() {
        let mut j = i;
        while j + 1 < w.len() && w[j + 1] == w[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            out.push(format!("{}..{}", name(w[i]), name(w[j])));
        } else {
            out.extend(w[i..=j].iter().map(|d| name(*d).to_string()));
        }
        i = j + 1;
    }
    out.join(",")
}

/// What one line of a crontab says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `NAME=VALUE` (cron's environment for the lines after it).
    Env { name: String, value: String },
    /// A job: its schedule (`*/5 * * * *`, `@daily`), user (system crontabs
    /// name one on the line; a user's crontab is its owner's) and command, with
    /// cron's `\%` already turned into `%`.
    Job {
        schedule: String,
        user: Option<String>,
        command: String,
    },
    /// A line cron would run but that cannot become a `job` as it is, and why.
    Untranslatable { why: String },
}

/// A line of a crontab that is not blank or a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based.
    pub number: usize,
    /// As written.
    pub text: String,
    pub entry: Entry,
}

/// The lines of a crontab: `system` for /etc/crontab and /etc/cron.d (a user
/// field after the schedule), else a user's crontab. Blank lines and comments
/// are left out; everything else is an [`Entry`], never dropped.
pub fn crontab(text: &str, system: bool) -> Vec<Line> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        out.push(Line {
            number: i + 1,
            text: raw.to_string(),
            entry: entry(l, system),
        });
    }
    out
}

fn entry(l: &str, system: bool) -> Entry {
    if let Some(e) = env(l) {
        return e;
    }
    let bad = |why: String| Entry::Untranslatable { why };
    // the schedule: `@word` or five fields
    let (schedule, rest) = if l.starts_with('@') {
        match l.split_once(char::is_whitespace) {
            Some((s, r)) => (s.to_string(), r.trim_start()),
            None => return bad("a schedule without a command".into()),
        }
    } else {
        let mut rest = l;
        let mut fields = Vec::new();
        for _ in 0..5 {
            let Some((f, r)) = rest.split_once(char::is_whitespace) else {
                return bad("fewer than five schedule fields and a command".into());
            };
            fields.push(f);
            rest = r.trim_start();
        }
        (fields.join(" "), rest)
    };
    let (user, command) = if system {
        match rest.split_once(char::is_whitespace) {
            Some((u, c)) => (Some(u.to_string()), c.trim_start()),
            None => {
                return bad(
                    "a system crontab line needs a user and a command after the schedule".into(),
                )
            }
        }
    } else {
        (None, rest)
    };
    if command.is_empty() {
        return bad("no command".into());
    }
    // cron: an unescaped `%` ends the command, the rest is its standard input
    let mut cmd = String::new();
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'%') => {
                cmd.push('%');
                chars.next();
            }
            '%' => {
                return bad("an unescaped `%`: cron turns it into a newline and feeds what follows to the command's standard input, which a `job` does not do; write the input into the command (e.g. a here-document in a script) or escape it as `\\%` if it was meant literally (`date +\\%F`)".into())
            }
            c => cmd.push(c),
        }
    }
    Entry::Job {
        schedule,
        user,
        command: cmd,
    }
}

/// `NAME=VALUE`, `NAME = "VALUE"`: an environment line (cron's rule: a name,
/// optional blanks, `=`).
fn env(l: &str) -> Option<Entry> {
    let (name, value) = l.split_once('=')?;
    let name = name.trim_end();
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return None;
    }
    let v = value.trim();
    let v = if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        &v[1..v.len() - 1]
    } else {
        v
    };
    Some(Entry::Env {
        name: name.to_string(),
        value: v.to_string(),
    })
}

/// An anacrontab line `PERIOD DELAY JOB-ID COMMAND` as (calendar, job id,
/// command), or why not (env lines are [`crontab`]'s `Entry::Env`).
pub fn anacron(l: &str) -> Result<(String, String, String), String> {
    let mut parts = l.split_whitespace();
    let (Some(period), Some(_delay), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "`{}` is not `period delay job-id command`",
            l.trim()
        ));
    };
    // the command: the line after the third field, blanks kept
    let mut rest = l.trim_start();
    for _ in 0..3 {
        rest = rest
            .split_once(char::is_whitespace)
            .map(|(_, r)| r.trim_start())
            .unwrap_or("");
    }
    if rest.is_empty() {
        return Err("no command".into());
    }
    let calendar = match period {
        "1" | "@daily" => "daily",
        "7" | "@weekly" => "weekly",
        "@monthly" | "30" | "31" => "monthly",
        "@yearly" | "@annually" | "365" => "yearly",
        p => {
            return Err(format!(
                "a period of `{p}` days: systemd calendars have no \"every N days since the last run\"; pick a calendar (e.g. `Mon *-*-* 03:00`) or an `every`"
            ))
        }
    };
    Ok((calendar.to_string(), id.to_string(), rest.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{anacron, crontab, to_calendar, Entry};

    #[test]
    fn cron_schedules_become_systemd_calendars() {
        let table: &[(&str, &[&str])] = &[
            ("0 3 * * *", &["*-*-* 03:00:00"]),
            ("*/5 * * * *", &["*-*-* *:00/5:00"]),
            ("30 2 1 * *", &["*-*-01 02:30:00"]),
            ("15 9-17 * * 1-5", &["Mon..Fri *-*-* 09..17:15:00"]),
            ("0 0 * * 0", &["Sun *-*-* 00:00:00"]),
            ("0 0 * * 7", &["Sun *-*-* 00:00:00"]),
            ("0 0 * * sat,sun", &["Sat,Sun *-*-* 00:00:00"]),
            ("0 0 * * 5-7", &["Fri..Sun *-*-* 00:00:00"]),
            ("0 0 * * 0-2", &["Mon,Tue,Sun *-*-* 00:00:00"]),
            ("0 0 * * */2", &["Tue,Thu,Sat,Sun *-*-* 00:00:00"]),
            ("0,30 8 * jan-mar *", &["*-01..03-* 08:00,30:00"]),
            ("0 12 1-20/5 * *", &["*-*-01..20/5 12:00:00"]),
            ("5/10 * * * *", &["*-*-* *:05..59/10:00"]),
            ("0 4 * DEC MON", &["Mon *-12-* 04:00:00"]),
            // cron: the 1st or any Friday; systemd: one expression each
            (
                "0 6 1 * fri",
                &["*-*-01 06:00:00", "Fri *-*-02..31 06:00:00"],
            ),
            // the weekday half never on a day the first half already runs
            (
                "0 6 1,15 * 1-5",
                &["*-*-01,15 06:00:00", "Mon..Fri *-*-02..14,16..31 06:00:00"],
            ),
            ("0 6 1-31 * mon", &["*-*-01..31 06:00:00"]),
            // a day field starting with `*` is not "restricted": both must match
            ("0 6 */2 * mon", &["Mon *-*-01/2 06:00:00"]),
            ("@daily", &["*-*-* 00:00:00"]),
            ("@midnight", &["*-*-* 00:00:00"]),
            ("@hourly", &["*-*-* *:00:00"]),
            ("@weekly", &["Sun *-*-* 00:00:00"]),
            ("@monthly", &["*-*-01 00:00:00"]),
            ("@yearly", &["*-01-01 00:00:00"]),
            ("@annually", &["*-01-01 00:00:00"]),
            ("* * * * *", &["*-*-* *:*:00"]),
        ];
        for (cron, want) in table {
            let got = to_calendar(cron).unwrap_or_else(|e| panic!("{cron}: {e}"));
            assert_eq!(got, *want, "{cron}");
            for e in &got {
                crate::resolve::calendar::check(e).unwrap();
            }
        }
    }

    #[test]
    fn what_is_not_a_schedule_says_why() {
        for (cron, why) in [
            ("@reboot", "at boot"),
            ("@often", "not a cron shorthand"),
            ("0 3 * *", "five fields"),
            ("60 * * * *", "out of range"),
            ("0 24 * * *", "out of range"),
            ("0 0 0 * *", "out of range"),
            ("0 0 * 13 *", "out of range"),
            ("0 0 * * 8", "out of range"),
            ("0 0 * foo *", "not a month"),
            ("*/0 * * * *", "not a step"),
            ("5-1 * * * *", "backwards"),
            ("1,,2 * * * *", "empty element"),
        ] {
            let e = to_calendar(cron).expect_err(cron);
            assert!(e.contains(why), "{cron}: {e}");
        }
    }

    #[test]
    fn crontab_lines_are_environment_jobs_or_said_why_not() {
        let text = "# comment\nMAILTO=ops@example.com\nPATH = \"/usr/local/bin:/usr/bin\"\n\n\
*/5 * * * * www-data php /srv/app/bin/queue.php  --quiet\n\
@reboot root /usr/local/bin/warm\n\
0 1 * * * root date +\\%F > /tmp/d\n\
0 2 * * * root mail -s hi ops%body\n\
1 2 3\n";
        let lines = crontab(text, true);
        let e: Vec<&Entry> = lines.iter().map(|l| &l.entry).collect();
        assert_eq!(
            e[0],
            &Entry::Env {
                name: "MAILTO".into(),
                value: "ops@example.com".into()
            }
        );
        assert_eq!(
            e[1],
            &Entry::Env {
                name: "PATH".into(),
                value: "/usr/local/bin:/usr/bin".into()
            }
        );
        assert_eq!(
            e[2],
            &Entry::Job {
                schedule: "*/5 * * * *".into(),
                user: Some("www-data".into()),
                command: "php /srv/app/bin/queue.php  --quiet".into()
            }
        );
        assert!(matches!(e[3], Entry::Job { schedule, .. } if schedule == "@reboot"));
        assert!(matches!(e[4], Entry::Job { command, .. } if command == "date +%F > /tmp/d"));
        assert!(matches!(e[5], Entry::Untranslatable { why } if why.contains("`%`")));
        assert!(matches!(e[6], Entry::Untranslatable { why } if why.contains("five")));
        assert_eq!(lines[2].number, 5);
        // a user's crontab has no user field
        let l = crontab("0 3 * * 1-5 /usr/bin/report weekly\n", false);
        assert!(
            matches!(&l[0].entry, Entry::Job { user: None, command, .. } if command == "/usr/bin/report weekly")
        );
        // anacron
        assert_eq!(
            anacron("7 10 backup.weekly nice /usr/local/bin/backup  --all").unwrap(),
            (
                "weekly".into(),
                "backup.weekly".into(),
                "nice /usr/local/bin/backup  --all".into()
            )
        );
        assert!(anacron("3 5 odd /bin/true").unwrap_err().contains("3"));
        assert!(anacron("1 5").is_err());
    }
}
