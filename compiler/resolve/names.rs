//! What the host's tools accept as a resource's label: absolute, normalised paths;
//! systemd unit names; Debian package names; user names; and never a secret. Pure:
//! each check returns the first problem with the byte offset it is at, so the caller
//! can point at the argument that put it there.

/// One problem in a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset in the label where the problem is.
    pub at: usize,
    /// The diagnostic's message after the label's description (`is not absolute`).
    pub what: String,
    /// The primary label's text.
    pub label: String,
    /// How to fix it.
    pub help: String,
}

fn problem(
    at: usize,
    what: impl Into<String>,
    label: &str,
    help: impl Into<String>,
) -> Option<Problem> {
    Some(Problem {
        at,
        what: what.into(),
        label: label.into(),
        help: help.into(),
    })
}

/// Where a secret's placeholder is in `text`, if one was interpolated, and the
/// secret's name.
pub fn secret_at(text: &str) -> Option<(usize, &str)> {
    crate::placeholder::Placeholder::find(text).map(|(at, p)| (at, p.name))
}

/// A path on the host: absolute, without `.`/`..` segments, doubled or trailing `/`,
/// control characters, and not `/` itself.
pub fn path(p: &str) -> Option<Problem> {
    if p.is_empty() {
        return problem(
            0,
            "is empty",
            "empty path",
            "write an absolute path, e.g. `/srv/app`",
        );
    }
    if !p.starts_with('/') {
        return problem(
            0,
            "is not absolute",
            "not absolute",
            format!("paths on the host start with `/`: `/{p}`"),
        );
    }
    if p == "/" {
        return problem(
            0,
            "is `/`",
            "the root directory",
            "give a directory or file below `/`",
        );
    }
    if let Some((i, c)) = p.char_indices().find(|(_, c)| c.is_control()) {
        return problem(
            i,
            format!("contains the control character {c:?}"),
            "a control character",
            "a path is one line of printable characters",
        );
    }
    if let Some(i) = p.find("//") {
        return problem(
            i,
            "has a doubled `/`",
            "doubled `/`",
            "write one `/` between directories",
        );
    }
    let mut start = 1;
    for seg in p[1..].split('/') {
        if seg == "." || seg == ".." {
            return problem(
                start,
                format!("contains `{seg}`"),
                "a relative segment",
                format!("write the path without `{seg}`: the tools on the host would not resolve it the same way"),
            );
        }
        start += seg.len() + 1;
    }
    if p.ends_with('/') {
        return problem(
            p.len() - 1,
            "ends with `/`",
            "trailing `/`",
            "remove the trailing `/`",
        );
    }
    // Linux: NAME_MAX 255 bytes a component, PATH_MAX 4096 with the NUL.
    let mut start = 1;
    for seg in p[1..].split('/') {
        if seg.len() > 255 {
            return problem(
                start,
                "has a name longer than 255 bytes",
                "too long",
                "Linux file names have at most 255 bytes: shorten it",
            );
        }
        start += seg.len() + 1;
    }
    if p.len() > 4095 {
        return problem(
            0,
            "is longer than 4095 bytes",
            "too long",
            "Linux paths have at most 4095 bytes: shorten it",
        );
    }
    None
}

const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "target",
    "timer",
    "path",
    "mount",
    "automount",
    "swap",
    "slice",
    "scope",
    "device",
];

/// A systemd unit name: `NAME.TYPE` or `NAME@INSTANCE.TYPE`, at most 255 characters of
/// `[A-Za-z0-9:_.\-]` (and one `@`). Not a path.
pub fn unit(name: &str) -> Option<Problem> {
    let help = "a unit name is `NAME.TYPE` (e.g. `infra-app.service`, `infra-app.timer`); its file goes to /etc/systemd/system/";
    if let Some(i) = name.find('/') {
        return problem(
            i,
            "is a path, not a unit name",
            "a `/` in a unit name",
            help,
        );
    }
    if let Some((i, c)) = name
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || ":_.-@\\".contains(*c)))
    {
        return problem(
            i,
            format!("contains {c:?}, which systemd does not allow in a unit name"),
            "not allowed in a unit name",
            "unit names use letters, digits and `:_.-@\\` only",
        );
    }
    let Some(dot) = name.rfind('.') else {
        return problem(name.len(), "has no unit type", "no `.TYPE` suffix", help);
    };
    let suffix = &name[dot + 1..];
    if !UNIT_TYPES.contains(&suffix) {
        return problem(
            dot,
            format!("has the unknown unit type `.{suffix}`"),
            "not a unit type",
            format!("unit types are .{}", UNIT_TYPES.join(", .")),
        );
    }
    let prefix = &name[..dot];
    let at = prefix.find('@');
    let base = at.map_or(prefix, |i| &prefix[..i]);
    if base.is_empty() {
        return problem(0, "has an empty name before its type", "no name", help);
    }
    if let Some(i) = at {
        if let Some(j) = prefix[i + 1..].find('@') {
            return problem(
                i + 1 + j,
                "has two `@`",
                "a second `@`",
                "a template instance has one `@`: `NAME@INSTANCE.TYPE`",
            );
        }
    }
    if name.len() > 255 {
        return problem(
            255,
            "is longer than 255 characters",
            "too long",
            "shorten the unit name",
        );
    }
    None
}

/// A Debian package name: lowercase letters, digits, `+`, `-`, `.`, at least two
/// characters, starting with a letter or digit; optionally `:ARCH`.
pub fn package(name: &str) -> Option<Problem> {
    let (pkg, arch) = match name.split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (name, None),
    };
    let help =
        "Debian package names are lowercase letters, digits, `+`, `-` and `.`, e.g. `php8.2-fpm`";
    if let Some((i, c)) = pkg
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(*c)))
    {
        return problem(
            i,
            format!("contains {c:?}"),
            "not allowed in a package name",
            help,
        );
    }
    if pkg.len() < 2 || !pkg.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return problem(0, "is not a package name", "not a package name", help);
    }
    if let Some(a) = arch {
        if a.is_empty()
            || !a
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return problem(
                pkg.len(),
                "has an invalid architecture",
                "not an architecture",
                "write `NAME:ARCH`, e.g. `libc6:i386`",
            );
        }
    }
    None
}

/// A user name `useradd` accepts: at most 32 characters of `[A-Za-z0-9_.-]` (the
/// first not `-`, `.` or a digit), optionally ending in `$`.
pub fn user(name: &str) -> Option<Problem> {
    let help = "user names are letters, digits, `_`, `-` and `.`, starting with a letter or `_`, e.g. `app`";
    let body = name.strip_suffix('$').unwrap_or(name);
    if body.is_empty() || !body.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return problem(0, "is not a user name", "not a user name", help);
    }
    if let Some((i, c)) = body
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
    {
        return problem(
            i,
            format!("contains {c:?}"),
            "not allowed in a user name",
            help,
        );
    }
    if name.len() > 32 {
        return problem(
            32,
            "is longer than 32 characters",
            "too long",
            "user names have at most 32 characters",
        );
    }
    None
}

/// A step's name: one line of printable characters, not empty.
pub fn step(name: &str) -> Option<Problem> {
    if name.trim().is_empty() {
        return problem(
            0,
            "is empty",
            "no name",
            "name the step, e.g. `app-migrate`",
        );
    }
    if let Some((i, c)) = name.char_indices().find(|(_, c)| c.is_control()) {
        return problem(
            i,
            format!("contains the control character {c:?}"),
            "a control character",
            "a step name is one line of printable characters",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in [
            "/srv",
            "/srv/www/index.html",
            "/etc/infra/job/x",
            "/a.b/..c",
        ] {
            assert_eq!(path(ok), None, "{ok}");
        }
        let at = |p: &str| path(p).map(|x| x.at);
        assert_eq!(at("srv/www"), Some(0));
        assert_eq!(at("/srv//x"), Some(4));
        assert_eq!(at("/srv/x/"), Some(6));
        assert_eq!(at("/srv/../etc"), Some(5));
        assert_eq!(at("/srv/."), Some(5));
        assert_eq!(at("/"), Some(0));
        assert_eq!(at(""), Some(0));
        assert_eq!(at("/a\nb"), Some(2));
        assert_eq!(at(&format!("/srv/{}", "x".repeat(256))), Some(5));
        assert_eq!(path(&format!("/srv/{}", "x".repeat(255))), None);
    }

    #[test]
    fn units_packages_users() {
        for ok in [
            "infra-x.service",
            "postgresql@15-main.service",
            "x@.service",
            "a.timer",
        ] {
            assert_eq!(unit(ok), None, "{ok}");
        }
        for bad in [
            "/etc/x.service",
            "x",
            "x.conf",
            ".service",
            "a b.service",
            "a@b@c.service",
        ] {
            assert!(unit(bad).is_some(), "{bad}");
        }
        for ok in ["nginx", "php8.2-fpm", "libc6:i386", "g++"] {
            assert_eq!(package(ok), None, "{ok}");
        }
        for bad in ["PHP", "a", "-x", "php 8", "x:"] {
            assert!(package(bad).is_some(), "{bad}");
        }
        for ok in ["www-data", "_apt", "app", "x$"] {
            assert_eq!(user(ok), None, "{ok}");
        }
        for bad in ["", "1x", "a b", "-x", &"a".repeat(33)] {
            assert!(user(bad).is_some(), "{bad}");
        }
        assert_eq!(secret_at("/srv/@@INFRA_SECRET(x)@@/a"), Some((5, "x")));
        assert_eq!(secret_at("/srv/x"), None);
    }
}
