//! A secret's placeholder: what the model, the build, plans and logs hold where a
//! secret's value goes, `@@INFRA_SECRET(name)@@`. Only `secrets::Secrets::substitute`
//! swaps it for the value, at the last moment, in memory. Its format is written
//! here and nowhere else.

use std::collections::BTreeSet;
use std::fmt;

/// The placeholder of the secret `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placeholder<'a> {
    pub name: &'a str,
}

const OPEN: &str = "@@INFRA_SECRET(";
const CLOSE: &str = ")@@";

impl fmt::Display for Placeholder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{OPEN}{}{CLOSE}", self.name)
    }
}

impl<'a> Placeholder<'a> {
    pub fn new(name: &'a str) -> Self {
        Placeholder { name }
    }

    /// The placeholder as text.
    pub fn text(name: &str) -> String {
        Placeholder::new(name).to_string()
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
        let name = rest.find(CLOSE).map_or(rest, |end| &rest[..end]);
        Some((at, Placeholder { name }))
    }

    /// The names of every (terminated) placeholder in `text`.
    pub fn names(text: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find(OPEN) {
            rest = &rest[i + OPEN.len()..];
            match rest.find(CLOSE) {
                Some(j) => {
                    out.insert(rest[..j].to_string());
                    rest = &rest[j + CLOSE.len()..];
                }
                None => break,
            }
        }
        out
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
}
