//! Handlebars helpers available to every template (documented in docs/stdlib.md).
//!
//! `if` and `unless` are replaced by strict versions: testing a variable that does
//! not exist is an error, like printing it (handlebars' own strict mode lets
//! `{{#if typo}}` pass silently as false).

use crate::placeholder::{Encoding, Placeholder};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonRender, JsonTruthy, Output,
    RenderContext, RenderError, RenderErrorReason, Renderable, ScopedJson,
};
use serde_json::Value as Json;

pub(crate) fn register(hb: &mut Handlebars<'static>) {
    hb.register_helper("if", Box::new(StrictIf { positive: true }));
    hb.register_helper("unless", Box::new(StrictIf { positive: false }));
    hb.register_helper("shq", Box::new(Plain::Text(shq)));
    hb.register_helper("sql_str", Box::new(Plain::Text(sql_str)));
    hb.register_helper("mysql_str", Box::new(Plain::Text(mysql_str)));
    hb.register_helper("mysql_ident", Box::new(Plain::Text(mysql_ident)));
    hb.register_helper("systemd_quote", Box::new(Plain::Text(systemd_quote)));
    hb.register_helper("slot", Box::new(Plain::Text(slot)));
    hb.register_helper("php_str", Box::new(Plain::Text(php_str)));
    hb.register_helper("env_str", Box::new(Plain::Text(env_str)));
    hb.register_helper("json_str", Box::new(Plain::Text(json_str)));
    hb.register_helper("pgpass_field", Box::new(Plain::Text(pgpass_field)));
    hb.register_helper("concat", Box::new(Plain::Value(concat)));
    hb.register_helper("rpad", Box::new(Plain::Value(rpad)));
    hb.register_helper("add", Box::new(Plain::Value(add)));
    hb.register_helper("fail", Box::new(Plain::Value(fail)));
}

fn other(msg: impl Into<String>) -> RenderError {
    RenderErrorReason::Other(msg.into()).into()
}

/// The rendered text of parameter `idx` of helper `name`; missing or object values are errors.
fn text_param(h: &Helper<'_>, name: &str, idx: usize) -> Result<String, RenderError> {
    let p = present_param(h, name, idx)?;
    match p.value() {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        v => Err(other(format!(
            "`{name}` expects a string or a number, got {}",
            match v {
                Json::Null => "null",
                Json::Array(_) => "a list",
                _ => "an object",
            }
        ))),
    }
}

/// Parameter `idx` of helper `name`: an error if it is not given, or names a variable
/// the context does not have (strict mode, as for `{{var}}`).
fn present_param<'h, 'rc>(
    h: &'h Helper<'rc>,
    name: &str,
    idx: usize,
) -> Result<&'h handlebars::PathAndJson<'rc>, RenderError> {
    let p = h.param(idx).ok_or_else(|| {
        other(format!(
            "`{name}` needs a parameter at position {}",
            idx + 1
        ))
    })?;
    if p.is_value_missing() {
        return Err(RenderErrorReason::MissingVariable(Some(
            p.relative_path().cloned().unwrap_or_default(),
        ))
        .into());
    }
    Ok(p)
}

fn int_param(h: &Helper<'_>, name: &str, idx: usize) -> Result<i64, RenderError> {
    let p = present_param(h, name, idx)?;
    p.value().as_i64().ok_or_else(|| {
        other(format!(
            "`{name}` expects an integer, got {}",
            p.value().render()
        ))
    })
}

struct StrictIf {
    positive: bool,
}

impl HelperDef for StrictIf {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let name = if self.positive { "if" } else { "unless" };
        let param = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex(name, 0))?;
        if param.is_value_missing() {
            return Err(RenderErrorReason::MissingVariable(Some(
                param.relative_path().cloned().unwrap_or_default(),
            ))
            .into());
        }
        let include_zero = h
            .hash_get("includeZero")
            .and_then(|v| v.value().as_bool())
            .unwrap_or(false);
        let truthy = param.value().is_truthy(include_zero) == self.positive;
        match if truthy { h.template() } else { h.inverse() } {
            Some(t) => t.render(r, ctx, rc, out),
            None => Ok(()),
        }
    }
}

/// A helper that is a plain function, usable as `{{f x}}` and as `(f x)`.
enum Plain {
    /// One parameter, as text, to text.
    Text(fn(&str) -> Result<String, String>),
    /// Any parameters to a value.
    Value(fn(&Helper<'_>) -> Result<Json, RenderError>),
}

impl HelperDef for Plain {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let v = match self {
            Plain::Text(f) => {
                let s = text_param(h, h.name(), 0)?;
                Json::String(f(&s).map_err(|e| other(format!("`{}`: {e}", h.name())))?)
            }
            Plain::Value(f) => f(h)?,
        };
        Ok(ScopedJson::Derived(v))
    }

    /// `{{f x}}`: a quoting helper's output is written as it is (it is quoted
    /// for its target language already); a value helper's goes through the
    /// template's escaping like any value.
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let v = self.call_inner(h, r, ctx, rc)?;
        let text = match v.as_json() {
            Json::String(s) => s.clone(),
            Json::Null => String::new(),
            other => other.to_string(),
        };
        match self {
            Plain::Text(_) => out.write(&text)?,
            Plain::Value(_) => out.write(&r.get_escape_fn()(&text))?,
        }
        Ok(())
    }
}

fn no_control(s: &str) -> Result<(), String> {
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!("{s:?} contains the control character {c:?}")),
        None => Ok(()),
    }
}

/// Shell word: unchanged when it only holds safe characters, else single-quoted.
pub fn shq(s: &str) -> Result<String, String> {
    Ok(crate::shell::quote_word(s))
}

/// PostgreSQL string literal (standard_conforming_strings).
pub fn sql_str(s: &str) -> Result<String, String> {
    no_control(s)?;
    Ok(format!("'{}'", s.replace('\'', "''")))
}

/// MariaDB string literal.
pub fn mysql_str(s: &str) -> Result<String, String> {
    no_control(s)?;
    Ok(format!("'{}'", s.replace('\\', r"\\").replace('\'', r"\'")))
}

/// MariaDB identifier.
pub fn mysql_ident(s: &str) -> Result<String, String> {
    no_control(s)?;
    if s.is_empty() {
        return Err("an identifier cannot be empty".into());
    }
    Ok(format!("`{}`", s.replace('`', "``")))
}

/// A double-quoted systemd value (`Environment="A=b c"`): `\`, `"` escaped, `%` doubled.
pub fn systemd_quote(s: &str) -> Result<String, String> {
    no_control(s)?;
    Ok(format!(
        "\"{}\"",
        s.replace('\\', r"\\")
            .replace('"', "\\\"")
            .replace('%', "%%")
    ))
}

/// `s` written with `enc`: its text escaped, and each secret's placeholder
/// marked so that its value is escaped the same way when it is filled in.
fn encoded(s: &str, enc: Encoding) -> Result<String, String> {
    let mut out = String::new();
    let mut at = 0;
    for (range, p) in Placeholder::all(s) {
        out.push_str(
            &enc.encode(&s[at..range.start])
                .map_err(|why| format!("{s:?}: {why}"))?,
        );
        if p.encoding != Encoding::Raw {
            return Err(format!(
                "secret `{}` is already escaped for another format",
                p.name
            ));
        }
        out.push_str(&Placeholder::encoded(p.name, enc));
        at = range.end;
    }
    out.push_str(
        &enc.encode(&s[at..])
            .map_err(|why| format!("{s:?}: {why}"))?,
    );
    Ok(out)
}

/// A PHP single-quoted string literal.
pub fn php_str(s: &str) -> Result<String, String> {
    Ok(format!("'{}'", encoded(s, Encoding::Php)?))
}

/// A single-quoted env file value (sh, systemd, dotenv).
pub fn env_str(s: &str) -> Result<String, String> {
    Ok(format!("'{}'", encoded(s, Encoding::Env)?))
}

/// A JSON string.
pub fn json_str(s: &str) -> Result<String, String> {
    Ok(format!("\"{}\"", encoded(s, Encoding::Json)?))
}

/// A field of a PostgreSQL password file (`host:port:db:user:password`).
pub fn pgpass_field(s: &str) -> Result<String, String> {
    encoded(s, Encoding::Pgpass)
}

/// Replication slot name for a host: `infra_` + the name, lowercased, with every
/// character outside `[a-z0-9_]` replaced by `_`.
pub fn slot(s: &str) -> Result<String, String> {
    let body: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(format!("infra_{body}"))
}

/// `(concat a b ...)`: the parameters' text, joined.
fn concat(h: &Helper<'_>) -> Result<Json, RenderError> {
    let mut s = String::new();
    for i in 0..h.params().len() {
        s.push_str(&text_param(h, "concat", i)?);
    }
    Ok(Json::String(s))
}

/// `{{rpad text width}}`: text followed by spaces up to `width` (at least one).
fn rpad(h: &Helper<'_>) -> Result<Json, RenderError> {
    let s = text_param(h, "rpad", 0)?;
    let width = int_param(h, "rpad", 1)?.max(0) as usize;
    let n = s.chars().count();
    let pad = if n < width { width - n } else { 1 };
    Ok(Json::String(format!("{s}{}", " ".repeat(pad))))
}

/// `{{add a b}}`: integer sum.
fn add(h: &Helper<'_>) -> Result<Json, RenderError> {
    let mut sum: i64 = 0;
    for i in 0..h.params().len() {
        sum = sum
            .checked_add(int_param(h, "add", i)?)
            .ok_or_else(|| other("`add` overflows"))?;
    }
    Ok(Json::from(sum))
}

/// Marker prefix so the renderer can tell a `fail` from other errors.
pub(crate) const FAIL_PREFIX: &str = "infra-fail: ";

/// `{{fail "message"}}`: stop rendering with this message (E0604).
fn fail(h: &Helper<'_>) -> Result<Json, RenderError> {
    let msg = text_param(h, "fail", 0)?;
    Err(other(format!("{FAIL_PREFIX}{msg}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            shq("/run/infra/office/active").as_deref(),
            Ok("/run/infra/office/active")
        );
        assert_eq!(shq("a b").as_deref(), Ok("'a b'"));
        assert_eq!(shq("it's").as_deref(), Ok(r"'it'\''s'"));
        assert_eq!(shq("").as_deref(), Ok("''"));
        assert_eq!(sql_str("o'k").as_deref(), Ok("'o''k'"));
        assert!(sql_str("a\nb").is_err());
        assert_eq!(mysql_str(r"a'\").as_deref(), Ok(r"'a\'\\'"));
        assert_eq!(mysql_ident("a`b").as_deref(), Ok("`a``b`"));
        assert_eq!(
            systemd_quote("A=5% \"x\"").as_deref(),
            Ok(r#""A=5%% \"x\"""#)
        );
        assert_eq!(slot("Web-1").as_deref(), Ok("infra_web_1"));
    }
}
