//! Expressions: evaluation to values, type checking against declared types,
//! string interpolation. Errors are pushed as diagnostics; `None` means "already reported".

use super::model::*;
use super::{Global, Resolver};
use crate::diag::{self, codes, Diag};
use crate::source::Span;
use crate::syntax::ast;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// Names visible while evaluating: kind parameters (inside a kind body) over globals.
pub(crate) struct Env<'p> {
    /// Instance name and its parameters, when expanding a kind body.
    kind: Option<(&'p str, &'p [Param])>,
    /// When expanding an instance: the span of its name, and per parameter (in the
    /// order of `kind`'s) the spans of the elements of a list written literally, so a
    /// problem in a resource label can be blamed on the argument that caused it.
    trace: Option<(Span, &'p [Vec<Span>])>,
}

/// One element of the list a resource label expands: the kind parameter's name
/// and the element's value.
pub(crate) type Element = (String, Value);

impl<'p> Env<'p> {
    pub fn top() -> Env<'static> {
        Env {
            kind: None,
            trace: None,
        }
    }
    pub fn kind(name: &'p str, params: &'p [Param]) -> Env<'p> {
        Env {
            kind: Some((name, params)),
            trace: None,
        }
    }
    /// [`Env::kind`] that knows where the instance's arguments were written.
    pub fn expanding(
        name: &'p str,
        name_span: Span,
        params: &'p [Param],
        elems: &'p [Vec<Span>],
    ) -> Env<'p> {
        Env {
            kind: Some((name, params)),
            trace: Some((name_span, elems)),
        }
    }
}

/// An interpolated string with, for each piece of it, where that piece came from.
#[derive(Debug, Clone)]
pub(crate) struct Traced {
    pub text: String,
    /// `(end, origin)` of consecutive pieces of `text`: `None` is literal text of the
    /// string itself, `Some(span)` the argument (or expression) an interpolation took
    /// its value from.
    pub pieces: Vec<(usize, Option<Span>)>,
}

impl Traced {
    /// Where the byte at `at` came from (the end of the text counts as its last piece),
    /// and that piece's text.
    pub fn origin(&self, at: usize) -> (Option<Span>, &str) {
        let mut start = 0;
        for (end, origin) in &self.pieces {
            if at < *end || *end == self.text.len() {
                return (*origin, &self.text[start..*end]);
            }
            start = *end;
        }
        (None, &self.text)
    }
}

/// Attributes of one block, checked against what the block allows.
pub(crate) struct Attrs<'b> {
    pub attrs: Vec<(&'b str, &'b ast::Attr)>,
    pub blocks: Vec<&'b ast::Block>,
    /// Every attribute name written (even ones whose value failed to check).
    pub names: BTreeSet<String>,
}

const FUNCTIONS: &[&str] = &["secret", "http", "tcp", "exec"];

impl Resolver<'_> {
    /// Split a body into known attributes and nested blocks (each given with the
    /// attributes it takes, for the help), reporting unknown and duplicate ones.
    pub(crate) fn attrs<'b>(
        &mut self,
        body: &'b ast::Body,
        allowed: &[&str],
        nested: &[(&str, &[&str])],
        what: &str,
    ) -> Attrs<'b> {
        let blocks: Vec<&str> = nested.iter().map(|(n, _)| *n).collect();
        let blocks = blocks.as_slice();
        // `host` takes: address, ssh { user port key }
        let takes: Vec<String> = allowed
            .iter()
            .map(|a| a.to_string())
            .chain(
                nested
                    .iter()
                    .map(|(b, inner)| format!("{b} {{ {} }}", inner.join(" "))),
            )
            .collect();
        let takes = takes.join(", ");
        let mut out = Attrs {
            attrs: Vec::new(),
            blocks: Vec::new(),
            names: BTreeSet::new(),
        };
        let mut seen: HashMap<String, Span> = HashMap::new();
        for e in &body.entries {
            match e {
                ast::Entry::Attr(a) => {
                    let n = a.name.name.as_str();
                    if allowed.contains(&n) {
                        if let Some(prev) = seen.insert(n.to_string(), a.name.span) {
                            self.dup_attr(n, a.name.span, prev);
                            continue;
                        }
                        out.names.insert(n.to_string());
                        out.attrs.push((a.name.name.as_str(), a));
                    } else {
                        let mut d = Diag::error(
                            codes::E0105,
                            format!("unknown attribute `{n}` for `{what}`"),
                        )
                        .at(a.name.span, "unknown attribute");
                        d = match diag::suggest(n, allowed.iter().copied()) {
                            Some(s) => {
                                // Treat it as the attribute it almost is: no second
                                // "missing required attribute" error for the same typo.
                                out.names.insert(s.to_string());
                                d.help(format!("did you mean `{s}`?"))
                            }
                            None if blocks.contains(&n) => {
                                d.help(format!("`{n}` is a block: write `{n} {{ ... }}`"))
                            }
                            None => match nested.iter().find(|(_, inner)| inner.contains(&n)) {
                                Some((b, _)) => d.help(format!(
                                    "`{n}` belongs in the `{b}` block: `{b} {{ {n} = ... }}`"
                                )),
                                None if takes.is_empty() => {
                                    d.help(format!("`{what}` takes no attributes"))
                                }
                                None => d.help(format!("`{what}` takes: {takes}")),
                            },
                        };
                        self.diags.push(d);
                        out.names.insert(n.to_string());
                    }
                }
                ast::Entry::Block(b) => {
                    let n = b.keyword.name.as_str();
                    if blocks.contains(&n) && b.label.is_none() {
                        if let Some(prev) = seen.insert(n.to_string(), b.keyword.span) {
                            self.dup_attr(n, b.keyword.span, prev);
                            continue;
                        }
                        out.blocks.push(b);
                    } else {
                        let mut d = Diag::error(
                            codes::E0105,
                            format!("unexpected block `{n}` in `{what}`"),
                        )
                        .at(b.keyword.span, "not allowed here");
                        d = if allowed.contains(&n) {
                            d.help(format!("`{n}` is an attribute: write `{n} = ...`"))
                        } else if blocks.is_empty() {
                            d.help(format!("`{what}` takes attributes only: {takes}"))
                        } else {
                            d.help(format!("blocks allowed here: {}", blocks.join(", ")))
                        };
                        self.diags.push(d);
                    }
                }
            }
        }
        out
    }

    /// Evaluate `expr` and check it against `ty`, converting strings to durations,
    /// addresses and CIDRs. List elements are checked one by one, with their own spans.
    pub(crate) fn typed(&mut self, expr: &ast::Expr, ty: &Type, env: &Env) -> Option<Value> {
        if let (Type::List(inner), ast::Expr::List(items, _)) = (ty, expr) {
            let mut out = Vec::new();
            let mut ok = true;
            for e in items {
                match self.typed(e, inner, env) {
                    Some(v) => out.push(v),
                    None => ok = false,
                }
            }
            return ok.then_some(Value::List(out));
        }
        let v = self.eval(expr, env)?;
        self.coerce(v, ty, expr.span())
    }

    fn coerce(&mut self, v: Value, ty: &Type, span: Span) -> Option<Value> {
        let mismatch = |r: &mut Self, v: &Value| {
            let found = r.describe(v);
            r.diags.push(
                Diag::error(
                    codes::E0201,
                    format!("expected {}, found {found}", expected(ty)),
                )
                .at(span, format!("this is {found}"))
                .help(format!("write `{}`", super::example_for(ty))),
            );
            None
        };
        match (ty, v) {
            (Type::String, Value::Str(s)) => Some(Value::Str(s)),
            (Type::Text, Value::Str(s)) => Some(Value::Str(s)),
            (Type::User, Value::Str(s)) => match super::names::user(&s) {
                None => Some(Value::Str(s)),
                Some(p) => {
                    self.diags.push(
                        Diag::error(
                            codes::E0206,
                            format!("invalid user or group name {s:?}: {}", p.what),
                        )
                        .at(span, p.label)
                        .help(p.help),
                    );
                    None
                }
            },
            (Type::Int, Value::Int(i)) => Some(Value::Int(i)),
            (Type::Uint, Value::Int(i)) => {
                if i >= 0 {
                    return Some(Value::Int(i));
                }
                self.diags.push(
                    Diag::error(codes::E0206, format!("{i} is negative"))
                        .at(span, "must be 0 or more")
                        .help("this is a count or an id: write a whole number 0 or above"),
                );
                None
            }
            (Type::Port, Value::Int(i)) => {
                if (1..=65535).contains(&i) {
                    return Some(Value::Int(i));
                }
                self.diags.push(
                    Diag::error(codes::E0206, format!("port {i} is out of range"))
                        .at(span, "not a TCP port")
                        .help("ports are 1 to 65535"),
                );
                None
            }
            (Type::Calendar, Value::Str(s)) => {
                if s.is_empty() {
                    return Some(Value::Str(s));
                }
                match super::calendar::check(&s) {
                    Ok(()) => Some(Value::Str(s)),
                    Err(why) => {
                        self.diags.push(
                            Diag::error(codes::E0214, format!("invalid calendar expression `{s}`: {why}"))
                                .at(span, "systemd would refuse this OnCalendar=")
                                .help("write [WEEKDAY] YEAR-MONTH-DAY HOUR:MINUTE[:SECOND] with `*` for any: \"*-*-* 03:00\" is every day at 3:00, \"Mon..Fri 09:00\" weekdays at 9:00, \"*-*-01 02:00\" monthly; or \"daily\", \"weekly\" (see `man systemd.time`)"),
                        );
                        None
                    }
                }
            }
            (Type::Bool, Value::Bool(b)) => Some(Value::Bool(b)),
            (Type::Duration, Value::Str(s)) => match parse_duration(&s) {
                Some(d) => Some(Value::Duration(d)),
                None => {
                    self.diags.push(
                        Diag::error(codes::E0202, format!("invalid duration `{s}`"))
                            .at(span, "not a duration")
                            .help("write a number and a unit, e.g. \"30s\", \"2min\", \"1h\", \"1d\" or \"1h30min\""),
                    );
                    None
                }
            },
            (Type::Duration, Value::Duration(d)) => Some(Value::Duration(d)),
            (Type::Ip, Value::Str(s)) => match s.parse::<Ipv4Addr>() {
                Ok(ip) => Some(Value::Ip(ip)),
                Err(_) => {
                    let help = if s.contains('/') {
                        "an address has no prefix length here: drop the `/N`".to_string()
                    } else {
                        "write four numbers 0-255 separated by dots, e.g. \"192.0.2.11\""
                            .to_string()
                    };
                    self.diags.push(
                        Diag::error(codes::E0203, format!("invalid IPv4 address `{s}`"))
                            .at(span, "not an IPv4 address")
                            .help(help),
                    );
                    None
                }
            },
            (Type::Ip, Value::Ip(ip)) => Some(Value::Ip(ip)),
            (Type::Cidr, Value::Str(s)) => match parse_cidr(&s) {
                Ok(c) => Some(Value::Cidr(c)),
                Err(why) => {
                    self.diags.push(
                        Diag::error(codes::E0204, format!("invalid CIDR `{s}`: {why}"))
                            .at(span, "not ADDRESS/PREFIX")
                            .help("write an IPv4 address and a prefix length 0-32, e.g. \"192.0.2.10/24\""),
                    );
                    None
                }
            },
            (Type::Cidr, Value::Cidr(c)) => Some(Value::Cidr(c)),
            (Type::Host, Value::Host(h)) => Some(Value::Host(h)),
            (Type::Failover, Value::Group(g)) => Some(Value::Group(g)),
            (Type::Placement, Value::Host(h)) => Some(Value::Placement(Placement::Host(h))),
            (Type::Placement, Value::Group(g)) => Some(Value::Placement(Placement::Group(g))),
            (Type::Placement, Value::Placement(p)) => Some(Value::Placement(p)),
            (Type::Secret, Value::Secret(s)) => Some(Value::Secret(s)),
            (Type::Check, Value::Check(c)) => Some(Value::Check(c)),
            (Type::Ref, Value::Instance(i)) => Some(Value::Instance(i)),
            (Type::Kind(k), Value::Instance(i)) => {
                let inst = &self.instances[i];
                if inst.kind.value == *k {
                    Some(Value::Instance(i))
                } else {
                    let q = inst.qualified();
                    self.diags.push(
                        Diag::error(
                            codes::E0201,
                            format!("expected an instance of `{k}`, found `{q}`"),
                        )
                        .at(span, format!("a `{}`, not a `{k}`", inst.kind.value))
                        .help(format!("refer to a `{k}` instance: `{k}.NAME`")),
                    );
                    None
                }
            }
            (Type::List(inner), Value::List(vs)) => {
                let mut out = Vec::new();
                for v in vs {
                    out.push(self.coerce(v, inner, span)?);
                }
                Some(Value::List(out))
            }
            (_, v) => {
                if let (Type::Secret, Value::Str(_)) = (ty, &v) {
                    self.diags.push(
                        Diag::error(codes::E0201, "expected a secret, found a string")
                            .at(span, "a plain string here would end up in the repository")
                            .help("write `secret(\"name\")`; the value comes from the environment or the secrets file"),
                    );
                    return None;
                }
                // A reference of the wrong kind: point at its definition too.
                let def = match &v {
                    Value::Host(h) => self.hosts.get(h.index()).map(|x| x.name.span),
                    Value::Group(g) => self.groups.get(g.index()).map(|x| x.name.span),
                    Value::Instance(i) => self.instances.get(*i).map(|x| x.name.span),
                    _ => None,
                };
                match def {
                    Some(def_span) => {
                        let found = self.describe(&v);
                        self.diags.push(
                            Diag::error(
                                codes::E0103,
                                format!("expected {}, found {found}", expected(ty)),
                            )
                            .at(span, format!("this is {found}"))
                            .with(def_span, "defined here")
                            .help(format!("write `{}`", super::example_for(ty))),
                        );
                        None
                    }
                    None => mismatch(self, &v),
                }
            }
        }
    }

    pub(crate) fn describe(&self, v: &Value) -> String {
        match v {
            Value::Str(_) => "a string".into(),
            Value::Int(_) => "an integer".into(),
            Value::Bool(_) => "a boolean".into(),
            Value::Duration(_) => "a duration".into(),
            Value::Ip(_) => "an IP address".into(),
            Value::Cidr(_) => "a CIDR".into(),
            Value::Host(h) => format!(
                "host `{}`",
                self.hosts
                    .get(h.index())
                    .map(|x| x.name.value.as_str())
                    .unwrap_or("?")
            ),
            Value::Group(g) => format!(
                "failover group `{}`",
                self.groups
                    .get(g.index())
                    .map(|x| x.name.value.as_str())
                    .unwrap_or("?")
            ),
            Value::Placement(Placement::All) => "`all`".into(),
            Value::Placement(Placement::Active(g)) => format!(
                "`{}.active`",
                self.groups
                    .get(g.index())
                    .map(|x| x.name.value.as_str())
                    .unwrap_or("?")
            ),
            Value::Placement(_) => "a placement".into(),
            Value::Secret(_) => "a secret".into(),
            Value::Check(_) => "a health check".into(),
            Value::Instance(i) => format!(
                "`{}`",
                self.instances
                    .get(*i)
                    .map(|x| x.qualified())
                    .unwrap_or_default()
            ),
            Value::List(_) => "a list".into(),
        }
    }

    /// Evaluate without an expected type.
    pub(crate) fn eval(&mut self, expr: &ast::Expr, env: &Env) -> Option<Value> {
        match expr {
            ast::Expr::Str(s) => self.interpolate(s, env).map(Value::Str),
            ast::Expr::Int(i, _) => Some(Value::Int(*i)),
            ast::Expr::Bool(b, _) => Some(Value::Bool(*b)),
            ast::Expr::List(items, _) => {
                let mut out = Vec::new();
                let mut ok = true;
                for e in items {
                    match self.eval(e, env) {
                        Some(v) => out.push(v),
                        None => ok = false,
                    }
                }
                ok.then_some(Value::List(out))
            }
            ast::Expr::Path(parts) => self.lookup(parts, env),
            ast::Expr::Call(f, args, span) => self.call(f, args, *span, env),
        }
    }

    fn call(&mut self, f: &ast::Ident, args: &[ast::Expr], span: Span, env: &Env) -> Option<Value> {
        let want = match f.name.as_str() {
            "secret" | "http" | "exec" => Type::String,
            "tcp" => Type::Int,
            other => {
                let mut d = Diag::error(codes::E0112, format!("unknown function `{other}`"))
                    .at(f.span, "not a function");
                d = match diag::suggest(other, FUNCTIONS.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help("functions are secret(\"name\"), http(\"url\"), tcp(port), exec(\"command\")"),
                };
                self.diags.push(d);
                return None;
            }
        };
        if args.len() != 1 {
            self.diags.push(
                Diag::error(
                    codes::E0208,
                    format!(
                        "`{}` takes exactly one argument, got {}",
                        f.name,
                        args.len()
                    ),
                )
                .at(span, "wrong number of arguments")
                .help(format!("write `{}({})`", f.name, super::example_for(&want))),
            );
            return None;
        }
        let arg_span = args[0].span();
        let v = self.typed(&args[0], &want, env)?;
        match (f.name.as_str(), v) {
            ("secret", Value::Str(s)) => {
                if s.is_empty()
                    || !s
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    self.diags.push(
                        Diag::error(codes::E0206, format!("invalid secret name `{s}`"))
                            .at(arg_span, "letters, digits, `_` and `-` only")
                            .help("secret names become environment variables (INFRA_SECRET_NAME): e.g. `pg_repl`"),
                    );
                    return None;
                }
                Some(Value::Secret(s))
            }
            ("http", Value::Str(s)) => {
                if !(s.starts_with("http://") || s.starts_with("https://"))
                    || s.contains(char::is_whitespace)
                {
                    self.diags.push(
                        Diag::error(codes::E0206, format!("invalid health check URL `{s}`"))
                            .at(arg_span, "not an http(s) URL")
                            .help("write a URL such as \"http://127.0.0.1/health\""),
                    );
                    return None;
                }
                Some(Value::Check(Check::Http(s)))
            }
            ("exec", Value::Str(s)) => {
                if s.trim().is_empty() {
                    self.diags.push(
                        Diag::error(codes::E0206, "empty health check command")
                            .at(arg_span, "nothing to run")
                            .help("give a command that exits 0 when the service is healthy"),
                    );
                    return None;
                }
                Some(Value::Check(Check::Exec(s)))
            }
            (_, Value::Int(p)) => match u16::try_from(p) {
                Ok(p) if p > 0 => Some(Value::Check(Check::Tcp(p))),
                _ => {
                    self.diags.push(
                        Diag::error(codes::E0206, format!("port {p} is out of range"))
                            .at(arg_span, "not a TCP port")
                            .help("ports are 1 to 65535"),
                    );
                    None
                }
            },
            _ => None,
        }
    }

    fn lookup(&mut self, parts: &[ast::Ident], env: &Env) -> Option<Value> {
        let first = parts.first()?;
        let head = first.name.as_str();
        // Kind parameters shadow globals.
        let mut base: Option<Value> = None;
        if let Some((name, params)) = env.kind {
            if head == "name" {
                base = Some(Value::Str(name.to_string()));
            } else if let Some(p) = params.iter().find(|p| p.name == head) {
                base = Some(p.value.clone());
            }
        }
        if base.is_none() {
            if head == "all" && parts.len() == 1 {
                return Some(Value::Placement(Placement::All));
            }
            match self.globals.get(head).copied() {
                Some((Global::Host(h), _)) => base = Some(Value::Host(h)),
                Some((Global::Group(g), _)) => base = Some(Value::Group(g)),
                Some((Global::Let(i), _)) => base = Some(self.eval_let_value(i)?),
                None => {
                    if self.kinds.contains_key(head) && parts.len() >= 2 {
                        let key = (head.to_string(), parts[1].name.clone());
                        if let Some(&id) = self.instance_index.get(&key) {
                            // `kind.name`, then its fields
                            let mut v = Value::Instance(id);
                            for field in &parts[2..] {
                                v = self.field(v, field)?;
                            }
                            return Some(v);
                        }
                        let candidates: Vec<String> = self
                            .instance_index
                            .keys()
                            .filter(|(k, _)| k == head)
                            .map(|(_, n)| n.clone())
                            .collect();
                        let mut d = Diag::error(
                            codes::E0102,
                            format!("no `{head}` named `{}`", parts[1].name),
                        )
                        .at(parts[1].span, format!("no such `{head}`"));
                        d = match diag::suggest(
                            &parts[1].name,
                            candidates.iter().map(String::as_str),
                        ) {
                            Some(s) => d.help(format!("did you mean `{head}.{s}`?")),
                            None if candidates.is_empty() => d.help(format!(
                                "declare it with `{head} {} {{ ... }}`",
                                parts[1].name
                            )),
                            None => d.help(format!(
                                "known: {}",
                                candidates
                                    .iter()
                                    .map(|c| format!("{head}.{c}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                        };
                        self.diags.push(d);
                        return None;
                    }
                    let mut names: Vec<String> = self.globals.keys().cloned().collect();
                    if let Some((_, params)) = env.kind {
                        names.extend(params.iter().map(|p| p.name.clone()));
                        names.push("name".into());
                    }
                    names.sort();
                    let mut d = Diag::error(codes::E0102, format!("unknown reference `{head}`"))
                        .at(first.span, "not defined");
                    d = match diag::suggest(head, names.iter().map(String::as_str)) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None if self.kinds.contains_key(head) => d.help(format!(
                            "`{head}` is a kind: refer to an instance as `{head}.NAME`"
                        )),
                        None => d.help(
                            "declare it first (`host`, `failover` or `let`), or check the spelling",
                        ),
                    };
                    self.diags.push(d);
                    return None;
                }
            }
        }
        let mut v = base?;
        for field in &parts[1..] {
            v = self.field(v, field)?;
        }
        Some(v)
    }

    fn eval_let_value(&mut self, i: usize) -> Option<Value> {
        // Lets are evaluated in order; a reference to a later one evaluates it now.
        let idx = i;
        self.eval_let_pub(idx)
    }

    fn field(&mut self, v: Value, field: &ast::Ident) -> Option<Value> {
        let f = field.name.as_str();
        let (allowed, out): (&[&str], Option<Value>) = match &v {
            Value::Host(h) => {
                let host = self.hosts.get(h.index());
                (
                    &["name", "address"],
                    match f {
                        "name" => host.map(|x| Value::Str(x.name.value.clone())),
                        "address" => host.map(|x| Value::Ip(x.address.value)),
                        _ => None,
                    },
                )
            }
            Value::Group(g) => {
                let grp = self.groups.get(g.index());
                (
                    &["active", "name", "vip", "vip_address", "interface"],
                    match f {
                        "active" => Some(Value::Placement(Placement::Active(*g))),
                        "name" => grp.map(|x| Value::Str(x.name.value.clone())),
                        "vip" => grp.map(|x| Value::Cidr(x.vip.value)),
                        "vip_address" => grp.map(|x| Value::Ip(x.vip.value.addr)),
                        "interface" => grp.map(|x| Value::Str(x.interface.value.clone())),
                        _ => None,
                    },
                )
            }
            Value::Instance(i) => {
                // `name`, and every parameter of the instance (resolved now if
                // it was not yet)
                let i = *i;
                if f == "name" {
                    return self
                        .instances
                        .get(i)
                        .map(|x| Value::Str(x.name.value.clone()));
                }
                if !self.ensure_instance(i, Some(field.span)) {
                    return None;
                }
                let inst = &self.instances[i];
                if let Some(p) = inst.params.iter().find(|p| p.name == f) {
                    return Some(p.value.clone());
                }
                let names: Vec<String> = std::iter::once("name".to_string())
                    .chain(
                        self.kinds
                            .get(inst.kind.value.as_str())
                            .into_iter()
                            .flat_map(|k| k.params.iter().map(|p| p.name.clone())),
                    )
                    .collect();
                let known = names.iter().any(|n| n == f);
                if known {
                    // a parameter that failed to evaluate: reported there
                    return None;
                }
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                self.unknown_field(&v, field, &names);
                return None;
            }
            _ => (&[], None),
        };
        if let Some(o) = out {
            return Some(o);
        }
        self.unknown_field(&v, field, allowed);
        None
    }

    /// E0113: `v` has no field `field`; `allowed` are the fields it has.
    fn unknown_field(&mut self, v: &Value, field: &ast::Ident, allowed: &[&str]) {
        let f = field.name.as_str();
        let what = self.describe(v);
        let mut d = Diag::error(codes::E0113, format!("{what} has no field `{f}`"))
            .at(field.span, "unknown field");
        d = if allowed.is_empty() {
            d.help("only hosts, failover groups and instances have fields")
        } else if let Some(s) = diag::suggest(f, allowed.iter().copied()) {
            d.help(format!("did you mean `{s}`?"))
        } else {
            d.help(format!("fields: {}", allowed.join(", ")))
        };
        self.diags.push(d);
    }

    /// Interpolate a string literal: every `${...}` becomes text.
    pub(crate) fn interpolate(&mut self, s: &ast::StrLit, env: &Env) -> Option<String> {
        let mut out = String::new();
        let mut ok = true;
        for part in &s.parts {
            match part {
                ast::StrPart::Lit(t) => out.push_str(t),
                ast::StrPart::Interp(e) => match self.eval(e, env) {
                    Some(v) => match self.to_text(&v) {
                        Some(t) => out.push_str(&t),
                        None => {
                            let what = self.describe(&v);
                            self.diags.push(
                                Diag::error(codes::E0213, format!("cannot interpolate {what} into a string"))
                                    .at(e.span(), "not text")
                                    .help("interpolate single values: strings, numbers, hosts, groups, secrets"),
                            );
                            ok = false;
                        }
                    },
                    None => ok = false,
                },
            }
        }
        ok.then_some(out)
    }

    /// Interpolate a resource label. A label that interpolates one list gives one
    /// label per element (`package "php8.2-${extensions}" {}`); an empty list, none.
    /// The labels a resource label gives: one, or one per element of the one
    /// list it interpolates, each with that element and the name of the kind
    /// parameter the list came from (`"${writable}"`), so the resource's body can
    /// see the element under that name. Each label is [`Traced`]: where each piece of
    /// it came from.
    pub(crate) fn interpolate_label(
        &mut self,
        s: &ast::StrLit,
        env: &Env,
    ) -> Option<Vec<(Traced, Option<Element>)>> {
        let mut list: Option<(usize, Vec<Value>)> = None;
        let mut list_param: Option<String> = None;
        let mut values = Vec::new();
        for (k, part) in s.parts.iter().enumerate() {
            if let ast::StrPart::Interp(e) = part {
                match self.eval(e, env)? {
                    Value::List(items) => {
                        if list.is_some() {
                            self.diags.push(
                                Diag::error(
                                    codes::E0213,
                                    "a resource label can expand one list, not two",
                                )
                                .at(e.span(), "a second list")
                                .help("one label gives one resource per element of a single list"),
                            );
                            return None;
                        }
                        list = Some((k, items));
                        if let ast::Expr::Path(parts) = e {
                            if parts.len() == 1 {
                                list_param = Some(parts[0].name.clone());
                            }
                        }
                        values.push(None);
                    }
                    v => values.push(Some(v)),
                }
            }
        }
        let texts = |this: &mut Self, element: Option<(usize, &Value)>| -> Option<Traced> {
            let mut out = Traced {
                text: String::new(),
                pieces: Vec::new(),
            };
            let mut vi = 0;
            for part in &s.parts {
                match part {
                    ast::StrPart::Lit(t) => {
                        out.text.push_str(t);
                        out.pieces.push((out.text.len(), None));
                    }
                    ast::StrPart::Interp(e) => {
                        let (v, elem) = match &values[vi] {
                            Some(v) => (v, None),
                            None => {
                                let (k, v) = element?;
                                (v, Some(k))
                            }
                        };
                        vi += 1;
                        match this.to_text(v) {
                            Some(t) => {
                                out.text.push_str(&t);
                                out.pieces.push((out.text.len(), Some(blame(e, env, elem))));
                            }
                            None => {
                                let what = this.describe(v);
                                this.diags.push(
                                    Diag::error(codes::E0213, format!("cannot interpolate {what} into a string"))
                                        .at(e.span(), "not text")
                                        .help("interpolate single values: strings, numbers, hosts, groups, secrets"),
                                );
                                return None;
                            }
                        }
                    }
                }
            }
            Some(out)
        };
        match list {
            None => texts(self, None).map(|t| vec![(t, None)]),
            Some((_, items)) => items
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    texts(self, Some((k, v)))
                        .map(|t| (t, list_param.clone().map(|p| (p, v.clone()))))
                })
                .collect(),
        }
    }

    fn to_text(&self, v: &Value) -> Option<String> {
        Some(match v {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Duration(d) => d.to_string(),
            Value::Ip(ip) => ip.to_string(),
            Value::Cidr(c) => c.to_string(),
            Value::Host(h) => self.hosts.get(h.index())?.name.value.clone(),
            Value::Group(g) => self.groups.get(g.index())?.name.value.clone(),
            Value::Secret(n) => crate::placeholder::Placeholder::text(n),
            Value::Instance(i) => self.instances.get(*i)?.name.value.clone(),
            Value::Placement(Placement::Host(h)) => self.hosts.get(h.index())?.name.value.clone(),
            Value::Placement(Placement::Group(g)) | Value::Placement(Placement::Active(g)) => {
                self.groups.get(g.index())?.name.value.clone()
            }
            Value::Placement(Placement::All) => "all".into(),
            Value::Check(_) | Value::List(_) => return None,
        })
    }
}

impl Resolver<'_> {
    pub(crate) fn eval_let_pub(&mut self, i: usize) -> Option<Value> {
        self.eval_let_inner(i)
    }
}

/// The span to blame for the value of an interpolation: the argument of the kind
/// parameter it names (the element, for one element of a list written literally), the
/// instance's name for `${name}`, else the expression itself.
fn blame(e: &ast::Expr, env: &Env, elem: Option<usize>) -> Span {
    let (ast::Expr::Path(parts), Some((_, params))) = (e, env.kind) else {
        return e.span();
    };
    let [head] = parts.as_slice() else {
        return e.span();
    };
    if head.name == "name" {
        return env.trace.map_or(e.span(), |(name_span, _)| name_span);
    }
    let Some(i) = params.iter().position(|p| p.name == head.name) else {
        return e.span();
    };
    let element = elem
        .zip(env.trace)
        .and_then(|(k, (_, elems))| elems.get(i)?.get(k).copied());
    element.unwrap_or(params[i].span)
}

fn expected(ty: &Type) -> String {
    match ty {
        Type::String => "a string".into(),
        Type::Text => "a text".into(),
        Type::User => "a user or group name".into(),
        Type::Int => "an integer".into(),
        Type::Uint => "an integer 0 or above".into(),
        Type::Port => "a port".into(),
        Type::Bool => "a boolean".into(),
        Type::Duration => "a duration".into(),
        Type::Calendar => "a calendar expression".into(),
        Type::Ip => "an IPv4 address".into(),
        Type::Cidr => "an address with prefix (CIDR)".into(),
        Type::Host => "a host".into(),
        Type::Failover => "a failover group".into(),
        Type::Placement => "a placement (a host, a failover group, `GROUP.active` or `all`)".into(),
        Type::Secret => "a secret".into(),
        Type::Check => "a health check".into(),
        Type::Ref => "a reference to an instance (`kind.name`)".into(),
        Type::Kind(k) => format!("an instance of `{k}` (`{k}.NAME`)"),
        Type::List(t) => format!("a list of {}", plural(t)),
    }
}

fn plural(ty: &Type) -> String {
    match ty {
        Type::Host => "hosts".into(),
        Type::String => "strings".into(),
        Type::Int => "integers".into(),
        Type::Ref => "references".into(),
        other => format!("`{other}` values"),
    }
}

/// `"90"`, `"30s"`, `"2min"`, `"1h30min"`, `"1d"`, `"2w"` → seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult = match unit {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    Some(total)
}

pub fn parse_cidr(s: &str) -> Result<Cidr, &'static str> {
    let Some((a, p)) = s.split_once('/') else {
        return Err("missing `/PREFIX`");
    };
    let addr: Ipv4Addr = a.parse().map_err(|_| "bad address")?;
    let prefix: u8 = p.parse().map_err(|_| "bad prefix length")?;
    if prefix > 32 {
        return Err("prefix length above 32");
    }
    Ok(Cidr { addr, prefix })
}
