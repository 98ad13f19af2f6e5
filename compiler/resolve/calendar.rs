//! systemd calendar expressions (`OnCalendar=`), accepted exactly when systemd 252
//! (Debian 12) accepts them: the grammar of systemd.time(7), "Calendar Events".
//!
//! ```text
//! [WEEKDAYS] [[YEAR-]MONTH{-|~}DAY] [HOUR:MINUTE[:SECOND]] [TIMEZONE]
//! ```
//!
//! - weekdays: `Mon`..`Sun` or `Monday`..`Sunday` (any case), lists `Mon,Wed`,
//!   ranges `Mon..Fri` (or `Mon-Fri`);
//! - every other field: `*`, a number, a list `1,15`, a range `1..5`, a repetition
//!   `0/15` or `1..20/5`; `~` before the day counts days from the end of the month;
//!   seconds may have up to six decimals (`00:00:30.5`); two-digit years are 19xx/20xx;
//! - a date without a time means 00:00:00, a time without seconds `:00`;
//! - shorthands `minutely`, `hourly`, `daily`, `weekly`, `monthly`, `quarterly`,
//!   `semiannually`, `yearly` (and their synonyms), `@UNIX-SECONDS`;
//! - an optional last word ` UTC` or an IANA time zone (`Europe/Berlin`, see zones.txt).
//!
//! Ranges are those of systemd: years 1970–2199, months 1–12, days 1–31 (1–28 from the
//! end of the month), hours 0–23, minutes 0–59, seconds below 60; a repetition must fit
//! at least once. Local time zone abbreviations (`CEST`) depend on the target's
//! configured zone and are not accepted. tests/suite/calendar.rs compares this with
//! `systemd-analyze calendar`. Pure.

const USEC_PER_SEC: i64 = 1_000_000;
const INT_MAX: u64 = i32::MAX as u64;
/// systemd stops a `,` list after this many elements (CALENDARSPEC_COMPONENTS_MAX).
const MAX_COMPONENTS: usize = 240;
/// 2199-12-31 23:59:59 UTC, the last second systemd schedules.
const LAST_TIMESTAMP: i64 = 7_258_118_399;
const ZONES: &str = include_str!("zones.txt");

const SHORTHANDS: &[&str] = &[
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "semiannually",
    "semi-annually",
    "biannually",
    "bi-annually",
    "annually",
    "anually",
    "yearly",
];

const WEEKDAYS: &[(&str, usize)] = &[
    ("Monday", 0),
    ("Mon", 0),
    ("Tuesday", 1),
    ("Tue", 1),
    ("Wednesday", 2),
    ("Wed", 2),
    ("Thursday", 3),
    ("Thu", 3),
    ("Friday", 4),
    ("Fri", 4),
    ("Saturday", 5),
    ("Sat", 5),
    ("Sunday", 6),
    ("Sun", 6),
];

/// `Ok` if systemd accepts `expr` as `OnCalendar=`; else why not, in a few words.
pub fn check(expr: &str) -> Result<(), String> {
    let body = strip_timezone(expr);
    if body.is_empty() {
        return Err("the expression is empty".into());
    }
    if SHORTHANDS.iter().any(|s| body.eq_ignore_ascii_case(s)) {
        return Ok(());
    }
    let mut p = Parser {
        s: body.as_bytes(),
        pos: 0,
    };
    let mut spec = Spec::default();
    p.weekdays()?;
    if !p.date(&mut spec)? {
        p.time(&mut spec)?;
    }
    if p.pos < p.s.len() {
        return Err(p.unexpected());
    }
    spec.validate()
}

/// True if `name` is a time zone systemd accepts (a TZif file of tzdata).
pub fn is_timezone(name: &str) -> bool {
    let base = name
        .strip_prefix("posix/")
        .or_else(|| name.strip_prefix("right/"))
        .unwrap_or(name);
    name == "UTC"
        || ZONES
            .lines()
            .filter(|l| !l.starts_with('#'))
            .any(|z| z == base)
}

/// The expression without its time zone: a last word ` UTC` (any case), or a last
/// word that names a time zone.
fn strip_timezone(expr: &str) -> &str {
    let n = expr.len();
    if n >= 4 && expr.is_char_boundary(n - 4) && expr[n - 4..].eq_ignore_ascii_case(" UTC") {
        return &expr[..n - 4];
    }
    match expr.rfind(' ') {
        Some(i) if is_timezone(&expr[i + 1..]) => &expr[..i],
        _ => expr,
    }
}

/// One element of a field: `start`, `start..stop`, `start/repeat`, `start..stop/repeat`.
#[derive(Debug, Clone, Copy)]
struct Component {
    start: i64,
    /// -1: no range.
    stop: i64,
    repeat: i64,
}

/// `None` is `*` (any value).
type Chain = Option<Vec<Component>>;

#[derive(Debug, Default)]
struct Spec {
    year: Chain,
    month: Chain,
    day: Chain,
    hour: Chain,
    minute: Chain,
    second: Chain,
    end_of_month: bool,
}

impl Spec {
    fn validate(mut self) -> Result<(), String> {
        if self.day.is_none() {
            self.end_of_month = false;
        }
        // Two-digit years: 12 → 2012, 89 → 1989.
        for c in self.year.iter_mut().flatten() {
            for v in [&mut c.start, &mut c.stop] {
                if (0..70).contains(v) {
                    *v += 2000;
                } else if (70..100).contains(v) {
                    *v += 1900;
                }
            }
        }
        let eom = self.end_of_month;
        let fields: [(&str, &mut Chain, i64, i64, bool); 6] = [
            ("year", &mut self.year, 1970, 2199, false),
            ("month", &mut self.month, 1, 12, false),
            ("day", &mut self.day, 1, 31, eom),
            ("hour", &mut self.hour, 0, 23, false),
            ("minute", &mut self.minute, 0, 59, false),
            ("second", &mut self.second, 0, 60 * USEC_PER_SEC - 1, false),
        ];
        for (what, chain, from, to, eom) in fields {
            let usec = what == "second";
            let Some(chain) = chain else { continue };
            chain.iter_mut().for_each(normalize);
            chain.sort_by_key(|c| (c.start, c.stop, c.repeat));
            chain.dedup_by_key(|c| (c.start, c.stop, c.repeat));
            // systemd checks the elements in order and, for days counted from the end
            // of the month, takes 3 more days off the allowed range for each one
            // (`*-*~1,28` is refused where `*-*~28` is not): reproduced, not fixed.
            let mut to = to;
            for c in chain.iter() {
                if eom {
                    to -= 3;
                }
                valid(c, what, from, to, eom, usec)?;
            }
        }
        Ok(())
    }
}

/// As systemd normalizes before validating: a range shortened to a multiple of its
/// repetition; a repetition that cannot fire twice, or a range of one value, dropped.
fn normalize(c: &mut Component) {
    if c.stop > c.start && c.repeat > 0 {
        c.stop -= (c.stop - c.start) % c.repeat;
    }
    if (c.stop > c.start && c.start + c.repeat > c.stop) || c.start == c.stop {
        c.repeat = 0;
        c.stop = -1;
    }
}

fn valid(
    c: &Component,
    what: &str,
    from: i64,
    to: i64,
    eom: bool,
    usec: bool,
) -> Result<(), String> {
    let show = |v: i64| {
        if usec {
            let (s, f) = (v / USEC_PER_SEC, v % USEC_PER_SEC);
            if f == 0 {
                s.to_string()
            } else {
                format!("{s}.{f:06}").trim_end_matches('0').to_string()
            }
        } else {
            v.to_string()
        }
    };
    let range = || {
        if usec {
            "0 to 59.999999".to_string()
        } else if eom {
            format!("{from} to {to} from the end of the month")
        } else {
            format!("{from} to {to}")
        }
    };
    if c.start < from || c.start > to {
        return Err(format!(
            "{what} {} is out of range ({})",
            show(c.start),
            range()
        ));
    }
    if c.stop >= 0 && (c.stop < from || c.stop > to) {
        return Err(format!(
            "{what} {} is out of range ({})",
            show(c.stop),
            range()
        ));
    }
    let too_long = || {
        format!(
            "the repetition /{} of the {what} never fires twice",
            show(c.repeat)
        )
    };
    if c.repeat > to - from {
        return Err(too_long());
    }
    if c.stop >= 0 {
        if c.start + c.repeat > c.stop {
            return Err(format!(
                "the {what} range {}..{} goes backwards",
                show(c.start),
                show(c.stop)
            ));
        }
    } else if (eom && c.start - c.repeat < from) || (!eom && c.start + c.repeat > to) {
        return Err(too_long());
    }
    Ok(())
}

struct Parser<'s> {
    s: &'s [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn peek_at(&self, k: usize) -> Option<u8> {
        self.s.get(self.pos + k).copied()
    }
    fn at_end_or(&self, set: &[u8]) -> bool {
        match self.peek() {
            None => true,
            Some(c) => set.contains(&c),
        }
    }
    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }
    fn unexpected(&self) -> String {
        let rest = String::from_utf8_lossy(&self.s[self.pos.min(self.s.len())..]);
        match rest.chars().next() {
            None => "the expression ends too early".into(),
            Some(c) if self.pos == 0 && c.is_ascii_alphabetic() => {
                let word: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                format!("`{word}` is not a weekday, a date or a time")
            }
            Some(c) if self.pos == 0 => format!("`{c}` cannot start an expression"),
            Some(_) => format!("`{rest}` is not understood here"),
        }
    }

    /// `Mon`, `Mon,Wed`, `Mon..Fri`, `Mon-Fri`, followed by spaces or the end.
    fn weekdays(&mut self) -> Result<(), String> {
        let mut range_from: Option<usize> = None;
        let mut first = true;
        loop {
            let rest = &self.s[self.pos..];
            let found = WEEKDAYS.iter().find(|(name, _)| {
                rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            });
            let Some(&(name, nr)) = found else {
                return if first {
                    Ok(())
                } else {
                    Err(self.unexpected())
                };
            };
            if !matches!(rest.get(name.len()), None | Some(b'-' | b'.' | b',' | b' ')) {
                return Err(format!(
                    "`{}` is not a weekday",
                    String::from_utf8_lossy(rest.split(|b| *b == b' ').next().unwrap_or(rest))
                ));
            }
            if let Some(l) = range_from {
                if l > nr {
                    return Err(format!(
                        "the weekday range ends at {name}, before it starts"
                    ));
                }
            }
            self.pos += name.len();
            match self.peek() {
                None => return Ok(()),
                Some(b' ') => {
                    self.skip_spaces();
                    return Ok(());
                }
                Some(b'.') => {
                    if range_from.is_some() || self.peek_at(1) != Some(b'.') {
                        return Err(self.unexpected());
                    }
                    range_from = Some(nr);
                    self.pos += 2;
                }
                Some(b'-') => {
                    if range_from.is_some() {
                        return Err(self.unexpected());
                    }
                    range_from = Some(nr);
                    self.pos += 1;
                }
                _ => {
                    range_from = None;
                    self.pos += 1;
                }
            }
            if self.at_end_or(b" ") {
                self.skip_spaces();
                return if range_from.is_none() {
                    Ok(())
                } else {
                    Err("a weekday range without its end".into())
                };
            }
            first = false;
        }
    }

    /// `[YEAR-]MONTH-DAY` (or `~DAY`) or `@SECONDS`. True when nothing may follow
    /// (a timestamp); nothing is consumed when what follows is a time.
    fn date(&mut self, spec: &mut Spec) -> Result<bool, String> {
        if self.peek().is_none() {
            return Ok(false);
        }
        if self.peek() == Some(b'@') {
            self.pos += 1;
            return self.timestamp().map(|()| true);
        }
        let start = self.pos;
        let first = self.chain(false)?;
        if self.at_end_or(b":") {
            self.pos = start;
            return Ok(false);
        }
        match self.peek() {
            Some(b'~') => spec.end_of_month = true,
            Some(b'-') => {}
            _ => return Err(self.unexpected()),
        }
        self.pos += 1;
        let second = self.chain(false)?;
        if self.at_end_or(b" ") {
            self.skip_spaces();
            spec.month = first;
            spec.day = second;
            return Ok(false);
        }
        if spec.end_of_month {
            return Err("`~` (days from the end of the month) must come before the day".into());
        }
        match self.peek() {
            Some(b'~') => spec.end_of_month = true,
            Some(b'-') => {}
            _ => return Err(self.unexpected()),
        }
        self.pos += 1;
        let third = self.chain(false)?;
        if !self.at_end_or(b" ") {
            return Err(self.unexpected());
        }
        self.skip_spaces();
        spec.year = first;
        spec.month = second;
        spec.day = third;
        Ok(false)
    }

    /// `@SECONDS` after the `@`, read like strtoul (blanks and a sign first).
    fn timestamp(&mut self) -> Result<(), String> {
        while matches!(
            self.peek(),
            Some(b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
        ) {
            self.pos += 1;
        }
        let negative = match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                true
            }
            Some(b'+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let digits = self
            .digits()
            .ok_or("`@` must be followed by seconds since 1970")?;
        let secs = digits.map_err(|()| "the timestamp is too large".to_string())?;
        let value = if negative {
            0u64.wrapping_sub(secs)
        } else {
            secs
        } as i64;
        if !(0..=LAST_TIMESTAMP).contains(&value) {
            return Err("the timestamp is outside 1970 to 2199".into());
        }
        Ok(())
    }

    /// Decimal digits at the cursor: `None` if there are none, `Some(Err)` on overflow.
    fn digits(&mut self) -> Option<Result<u64, ()>> {
        let start = self.pos;
        let mut v: Option<u64> = Some(0);
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v
                .and_then(|v| v.checked_mul(10))
                .and_then(|v| v.checked_add(u64::from(c - b'0')));
            self.pos += 1;
        }
        (self.pos > start).then(|| v.ok_or(()))
    }

    /// `HOUR:MINUTE[:SECOND]`, or nothing (00:00:00).
    fn time(&mut self, spec: &mut Spec) -> Result<(), String> {
        let zero = || {
            Some(vec![Component {
                start: 0,
                stop: -1,
                repeat: 0,
            }])
        };
        if self.peek().is_none() {
            spec.hour = zero();
            spec.minute = zero();
            spec.second = zero();
            return Ok(());
        }
        spec.hour = self.chain(false)?;
        if self.peek() != Some(b':') {
            return Err(match self.peek() {
                None => "a time needs minutes (`HOUR:MINUTE`)".into(),
                Some(_) => self.unexpected(),
            });
        }
        self.pos += 1;
        spec.minute = self.chain(false)?;
        if self.peek().is_none() {
            spec.second = zero();
            return Ok(());
        }
        if self.peek() != Some(b':') {
            return Err(self.unexpected());
        }
        self.pos += 1;
        spec.second = self.chain(true)?;
        if self.peek().is_some() {
            return Err(self.unexpected());
        }
        Ok(())
    }

    /// `*` or a `,` list of components.
    fn chain(&mut self, usec: bool) -> Result<Chain, String> {
        if self.peek() == Some(b'*') {
            self.pos += 1;
            return Ok(usec.then(|| {
                vec![Component {
                    start: 0,
                    stop: -1,
                    repeat: USEC_PER_SEC,
                }]
            }));
        }
        let mut out = Vec::new();
        loop {
            if out.len() > MAX_COMPONENTS {
                return Err(format!(
                    "more than {} values in one list",
                    MAX_COMPONENTS + 1
                ));
            }
            let start = self.decimal(usec)?;
            let mut stop = -1;
            let mut repeat = 0;
            if self.peek() == Some(b'.') && self.peek_at(1) == Some(b'.') {
                self.pos += 2;
                stop = self.decimal(usec)?;
                repeat = if usec { USEC_PER_SEC } else { 1 };
            }
            if self.peek() == Some(b'/') {
                self.pos += 1;
                repeat = self.decimal(usec)?;
                if repeat == 0 {
                    return Err("a repetition of /0 never advances".into());
                }
            }
            if !self.at_end_or(b" ,-~:") {
                return Err(self.unexpected());
            }
            out.push(Component {
                start,
                stop,
                repeat,
            });
            if self.peek() != Some(b',') {
                return Ok(Some(out));
            }
            self.pos += 1;
        }
    }

    /// A number; for seconds (`usec`) in microseconds, with up to six decimals (a
    /// seventh rounds).
    fn decimal(&mut self, usec: bool) -> Result<i64, String> {
        let whole = match self.digits() {
            None => return Err(self.unexpected()),
            Some(Err(())) => return Err("a number is too large".into()),
            Some(Ok(v)) => v,
        };
        let mut value = whole;
        if usec {
            value = value
                .checked_mul(USEC_PER_SEC as u64)
                .ok_or("a number is too large")?;
            if self.peek() == Some(b'.') && self.peek_at(1) != Some(b'.') {
                self.pos += 1;
                let mut frac: u64 = 0;
                let mut n = 0;
                while n < 6 {
                    match self.peek() {
                        Some(c @ b'0'..=b'9') => {
                            frac = frac * 10 + u64::from(c - b'0');
                            self.pos += 1;
                        }
                        _ if n == 0 => {
                            return Err("a `.` in the seconds needs digits after it".into())
                        }
                        _ => {
                            for _ in n..6 {
                                frac *= 10;
                            }
                            break;
                        }
                    }
                    n += 1;
                }
                if matches!(self.peek(), Some(b'5'..=b'9')) {
                    frac += 1;
                }
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
                value += frac;
            }
        }
        if value > INT_MAX {
            return Err("a number is too large".into());
        }
        Ok(value as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_and_rejects() {
        for ok in [
            "daily",
            "*-*-01 02:00:00",
            "Mon..Fri 09:00",
            "Sat,Sun *-*-* 10:00 UTC",
            "*-02~03",
            "12:00 Europe/Berlin",
            "*:0/15",
            "@1700000000",
            "00:00:59.9999994",
            "*-*-1..3/4",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "every day at 3am",
            "*-*-* 24:00",
            "*:*:60",
            "Fri..Mon",
            "Europe/Berlin",
            "daily ",
            "00:00:00.",
            "@7258118400",
            "*-02~29",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_input_panics() {
        for s in [
            "@",
            "@-",
            "~",
            "..",
            "*-",
            "1..",
            "1/",
            "Mon.",
            "Mon..",
            "é",
            "1:é",
            "9".repeat(40).as_str(),
        ] {
            let _ = check(s);
        }
    }
}
