//! A secret's placeholder: what the model, the build, plans and logs hold where a
//! secret's value goes, `@@INFRA_SECRET(name)@@`, or `@@INFRA_SECRET(name|php)@@`
//! for a value written inside a quoted string of some format (see [`Encoding`]).
//! Only `secrets::Secrets::substitute` swaps it for the value, at the last
//! moment, in memory. Its format is written here and nowhere else.

use std::collections::BTreeSet;
use std::fmt;

/// How a value is written where its placeholder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As it is.
    Raw,
    /// Inside a PHP single-quoted string: `\` and `'` escaped.
    Php,
    /// Inside single quotes of an env file (sh, systemd's `EnvironmentFile=`,
    /// dotenv): no escape exists there, so a value holding `'` or a control
    /// character cannot be written.
    Env,
    /// A field of a PostgreSQL password file: `\` and `:` escaped.
    Pgpass,
    /// Inside a JSON string.
    Json,
}

impl Encoding {
    pub fn tag(self) -> Option<&'static str> {
        match self {
            Encoding::Raw => None,
            Encoding::Php => Some("php"),
            Encoding::Env => Some("env"),
            Encoding::Pgpass => Some("pgpass"),
            Encoding::Json => Some("json"),
        }
    }

    pub fn from_tag(tag: &str) -> Option<Encoding> {
        [
            Encoding::Php,
            Encoding::Env,
            Encoding::Pgpass,
            Encoding::Json,
        ]
        .into_iter()
        .find(|e| e.tag() == Some(tag))
    }

    /// `value` written this way; `Err`: why it cannot be.
    pub fn encode(self, value: &str) -> Result<String, &'static str> {
        Ok(match self {
            Encoding::Raw => value.to_string(),
            Encoding::Php => value.replace('\\', "\\\\").replace('\'', "\\'"),
            Encoding::Env => {
                if value.contains('\'') {
                    return Err("it holds a single quote, which an env file cannot quote");
                }
                if value.chars().any(char::is_control) {
                    return Err("it holds a newline or another control character");
                }
                value.to_string()
            }
            Encoding::Pgpass => {
                if value.chars().any(|c| c == '\n' || c == '\r') {
                    return Err("it holds a newline");
                }
                value.replace('\\', "\\\\").replace(':', "\\:")
            }
            Encoding::Json => {
                let q = serde_json::to_string(value).map_err(|_| "it cannot be written as JSON")?;
                q[1..q.len() - 1].to_string()
            }
        })
    }
}

/// The placeholder of the secret `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placeholder<'a> {
    pub name: &'a str,
    pub encoding: Encoding,
}

const OPEN: &str = "@@INFRA_SECRET(";
const CLOSE: &str = ")@@";

impl fmt::Display for Placeholder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.encoding.tag() {
            None => write!(f, "{OPEN}{}{CLOSE}", self.name),
            Some(t) => write!(f, "{OPEN}{}|{t}{CLOSE}", self.name),
        }
    }
}

impl<'a> Placeholder<'a> {
    pub fn new(name: &'a str) -> Self {
        Placeholder {
            name,
            encoding: Encoding::Raw,
        }
    }

    /// The placeholder as text.
    pub fn text(name: &str) -> String {
        Placeholder::new(name).to_string()
    }

    /// The placeholder of `name` written with `encoding`.
    pub fn encoded(name: &str, encoding: Encoding) -> String {
        Placeholder { name, encoding }.to_string()
    }

    /// True if `text` holds a placeholder (even an unterminated one).
    pub fn in_text(text: &str) -> bool {
        text.contains(OPEN)
    }

    /// The first placeholder in `text` and the byte offset it starts at; an
    /// unterminated one names the rest of the text.
    pub fn find(text: &'a str) -> Option<(usize, Placeholder<'a>)> {
        let at = text.find(OPEN)?;
        let rest = &text[at + OPEN.len()..];
        let inner = rest.find(CLOSE).map_or(rest, |end| &rest[..end]);
        Some((at, Placeholder::parse(inner)))
    }

    /// `name` or `name|tag` (an unknown tag stays part of the name, which no
    /// secret has: reported as missing, never written raw).
    fn parse(inner: &'a str) -> Placeholder<'a> {
        if let Some((name, tag)) = inner.rsplit_once('|') {
            if let Some(encoding) = Encoding::from_tag(tag) {
                return Placeholder { name, encoding };
            }
        }
        Placeholder::new(inner)
    }

    /// Every terminated placeholder in `text`: (byte range, placeholder).
    pub fn all(text: &'a str) -> Vec<(std::ops::Range<usize>, Placeholder<'a>)> {
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(i) = text[from..].find(OPEN) {
            let start = from + i;
            let inner_at = start + OPEN.len();
            match text[inner_at..].find(CLOSE) {
                Some(j) => {
                    let end = inner_at + j + CLOSE.len();
                    out.push((
                        start..end,
                        Placeholder::parse(&text[inner_at..inner_at + j]),
                    ));
                    from = end;
                }
                None => break,
            }
        }
        out
    }

    /// The names of every (terminated) placeholder in `text`.
    pub fn names(text: &str) -> BTreeSet<String> {
        Placeholder::all(text)
            .into_iter()
            .map(|(_, p)| p.name.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Placeholder;

    #[test]
    fn round_trip() {
        let t = format!(
            "a {} b {} c",
            Placeholder::new("x"),
            Placeholder::new("y-z")
        );
        assert_eq!(t, "a @@INFRA_SECRET(x)@@ b @@INFRA_SECRET(y-z)@@ c");
        assert!(Placeholder::in_text(&t));
        assert_eq!(Placeholder::find(&t), Some((2, Placeholder::new("x"))));
        assert_eq!(
            Placeholder::names(&t).into_iter().collect::<Vec<_>>(),
            ["x", "y-z"]
        );
        assert_eq!(
            Placeholder::find("/srv/@@INFRA_SECRET(x"),
            Some((5, Placeholder::new("x")))
        );
        assert!(!Placeholder::in_text("INFRA_SECRET_X"));
    }

    #[test]
    fn encodings_round_trip_and_escape() {
        use super::Encoding;
        let t = format!(
            "'{}' {}",
            Placeholder::encoded("pw", Encoding::Php),
            Placeholder::new("k")
        );
        assert_eq!(t, "'@@INFRA_SECRET(pw|php)@@' @@INFRA_SECRET(k)@@");
        let all = Placeholder::all(&t);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].1.name, "pw");
        assert_eq!(all[0].1.encoding, Encoding::Php);
        assert_eq!(&t[all[0].0.clone()], "@@INFRA_SECRET(pw|php)@@");
        assert_eq!(
            Placeholder::names(&t).into_iter().collect::<Vec<_>>(),
            ["k", "pw"]
        );
        assert_eq!(Encoding::Php.encode(r"a'b\c"), Ok(r"a\'b\\c".to_string()));
        assert_eq!(Encoding::Pgpass.encode(r"a:b\"), Ok(r"a\:b\\".to_string()));
        assert_eq!(Encoding::Json.encode("a\"b\n"), Ok("a\\\"b\\n".to_string()));
        assert!(Encoding::Env.encode("it's").is_err());
        assert!(Encoding::Env.encode("a\nb").is_err());
        assert_eq!(Encoding::Env.encode("a$b\"c"), Ok("a$b\"c".to_string()));
        // an unknown tag is part of the name: never written unescaped
        assert_eq!(
            Placeholder::names("@@INFRA_SECRET(pw|xml)@@")
                .into_iter()
                .collect::<Vec<_>>(),
            ["pw|xml"]
        );
    }
}
