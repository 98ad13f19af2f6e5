//! Handlebars, configured for infra: strict (a missing variable is an error, also
//! inside `if`/`unless`), no HTML escaping, templates registered on first use from
//! [`Templates`]. Errors come back as [`Diag`]s naming the template, the instance
//! and pointing at the resource that uses the template.

use crate::diag::{codes, suggest, Diag};
use crate::render::helpers::{self, FAIL_PREFIX};
use crate::source::Span;
use crate::stdlib::{TemplateOrigin, Templates};
use handlebars::{Context, Handlebars, RenderErrorReason};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

/// Who asked for a template: for diagnostics.
pub struct Use<'a> {
    /// The resource (or group) whose template this is.
    pub span: Span,
    /// `kind.name` of the instance, or `failover.NAME`.
    pub origin: &'a str,
    /// The instance (or group) block, as secondary label.
    pub instance_span: Span,
}

pub struct Engine<'t> {
    hb: Handlebars<'static>,
    /// Values a shell template interpolated without quoting that are not plain
    /// words (see [`shell_escape`]), collected while one template renders.
    unquoted: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    templates: &'t Templates,
    /// Path → whether it registered (false: it failed to parse and was reported).
    loaded: BTreeMap<String, Result<TemplateOrigin, String>>,
    /// `all_hosts`, computed once per render and given only to templates that use
    /// it (copying it into every context would make a build quadratic in hosts).
    pub all_hosts: Json,
}

impl<'t> Engine<'t> {
    pub fn new(templates: &'t Templates) -> Engine<'t> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        helpers::register(&mut hb);
        Engine {
            hb,
            unquoted: Default::default(),
            templates,
            loaded: BTreeMap::new(),
            all_hosts: Json::Array(Vec::new()),
        }
    }

    /// Load (once) and return the origin of a template, or the diagnostic.
    #[allow(clippy::result_large_err)]
    fn load(&mut self, path: &str, at: &Use<'_>) -> Result<TemplateOrigin, Diag> {
        if !self.loaded.contains_key(path) {
            let result = match self.templates.get(path) {
                None => Err(String::new()),
                Some((text, origin)) => match self.hb.register_template_string(path, text) {
                    Ok(()) => Ok(origin),
                    Err(e) => {
                        let pos = e
                            .pos()
                            .map(|(l, c)| format!(" at line {l}, column {c}"))
                            .unwrap_or_default();
                        Err(format!(
                            "{}{pos}: {}",
                            where_label(origin, path),
                            e.reason()
                        ))
                    }
                },
            };
            self.loaded.insert(path.to_string(), result);
        }
        match self.loaded.get(path) {
            Some(Ok(origin)) => Ok(*origin),
            Some(Err(msg)) if msg.is_empty() => {
                let mut d = Diag::error(codes::E0601, format!("template `{path}` not found"))
                    .at(at.span, "this template does not exist")
                    .with(at.instance_span, format!("needed by {}", at.origin));
                let paths = self.templates.paths();
                d = match suggest(path, paths.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(
                        "templates are looked up in the repository's templates/ directory, then in the standard library (docs/stdlib.md lists them)",
                    ),
                };
                Err(d)
            }
            Some(Err(msg)) => Err(Diag::error(
                codes::E0602,
                format!("template `{path}` does not parse"),
            )
            .at(at.span, msg.clone())
            .with(at.instance_span, format!("needed by {}", at.origin))
            .help("fix the handlebars syntax (unclosed `{{#if}}`, a stray `}}`, ...)")),
            None => Err(
                Diag::error(codes::E0601, format!("template `{path}` not found"))
                    .at(at.span, "this template does not exist"),
            ),
        }
    }

    /// Whether template `path` names `hosts` (a placement's host list) other
    /// than in `all_hosts`; true for one not found (its error comes from render).
    pub fn uses_hosts(&self, path: &str) -> bool {
        self.templates.get(path).is_none_or(|(text, _)| {
            text.match_indices("hosts")
                .any(|(i, _)| !text[..i].ends_with("all_"))
        })
    }

    /// Render template `path` with `ctx` (to which `template` and `generated` are added).
    #[allow(clippy::result_large_err)]
    pub fn render(
        &mut self,
        path: &str,
        mut ctx: Map<String, Json>,
        at: &Use<'_>,
    ) -> Result<String, Diag> {
        let origin = self.load(path, at)?;
        let label = where_label(origin, path);
        if self
            .templates
            .get(path)
            .is_some_and(|(text, _)| text.contains("all_hosts"))
        {
            ctx.insert("all_hosts".into(), self.all_hosts.clone());
        }
        ctx.insert("template".into(), Json::String(path.to_string()));
        let generated = format!(
            "generated by infra from {} ({label}): do not edit",
            at.origin
        );
        ctx.insert("generated".into(), Json::String(generated.clone()));
        // A Context from the JSON value directly: no second serialisation per template.
        let data = Context::from(Json::Object(ctx));
        // Shell scripts: `{{x}}` must be a plain word; anything else goes through
        // `{{shq x}}` (crate::shell, the one quoting of the project), or is code
        // on purpose and says so with `{{{x}}}` (a job's `run`, an exec check).
        let shell = path.ends_with(".sh.hbs");
        if shell {
            if let Ok(mut u) = self.unquoted.lock() {
                u.clear();
            }
            let seen = self.unquoted.clone();
            // (the `generated` line is infra's own words, for a comment)
            let generated = generated.replace('\n', " ");
            self.hb.register_escape_fn(move |v: &str| {
                if !v.is_empty() && v != generated && !crate::shell::is_plain_word(v) {
                    if let Ok(mut u) = seen.lock() {
                        u.push(v.to_string());
                    }
                }
                v.to_string()
            });
        }
        let rendered = self.hb.render_with_context(path, &data);
        if shell {
            self.hb.register_escape_fn(handlebars::no_escape);
            let unquoted = self.unquoted.lock().map(|u| u.clone()).unwrap_or_default();
            if let (Ok(_), Some(v)) = (&rendered, unquoted.first()) {
                return Err(Diag::error(
                    codes::E0611,
                    format!(
                        "{label} puts {v:?} into a shell script without quoting it, for {}",
                        at.origin
                    ),
                )
                .at(at.span, "rendered from this template")
                .with(at.instance_span, "for this instance")
                .help("quote values in shell templates with `{{shq value}}` (or give a plain value: letters, digits, `/._-:@%+=,`)"));
            }
        }
        match rendered {
            Ok(out) => {
                if out.contains("[object]") {
                    return Err(Diag::error(
                        codes::E0607,
                        format!("{label} printed a whole object for {}", at.origin),
                    )
                    .at(at.span, "rendered from this template")
                    .with(at.instance_span, "for this instance")
                    .help("print one of its fields instead (`{{every.span}}`, `{{host.address}}`, `{{vip.cidr}}`); docs/stdlib.md lists them"));
                }
                Ok(out)
            }
            Err(e) => {
                let pos = match (e.line_no, e.column_no) {
                    (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
                    _ => String::new(),
                };
                let d = match e.reason() {
                    RenderErrorReason::MissingVariable(var) => {
                        let var = var.clone().unwrap_or_default();
                        let var_text = if var.is_empty() {
                            "a variable".to_string()
                        } else {
                            format!("`{var}`")
                        };
                        Diag::error(
                            codes::E0603,
                            format!(
                                "{label}{pos} uses {var_text}, which {} does not have",
                                at.origin
                            ),
                        )
                        .at(at.span, "rendered from this template")
                        .with(at.instance_span, "for this instance")
                        .help(missing_help(&var, data.data()))
                    }
                    RenderErrorReason::Other(msg) if msg.starts_with(FAIL_PREFIX) => Diag::error(
                        codes::E0604,
                        format!("{}: {}", at.origin, &msg[FAIL_PREFIX.len()..]),
                    )
                    .at(at.instance_span, msg[FAIL_PREFIX.len()..].to_string())
                    .with(at.span, format!("checked by {label}")),
                    other => Diag::error(
                        codes::E0604,
                        format!("{label}{pos} failed for {}: {other}", at.origin),
                    )
                    .at(at.span, "rendered from this template")
                    .with(at.instance_span, "for this instance"),
                };
                Err(d)
            }
        }
    }
}

fn where_label(origin: TemplateOrigin, path: &str) -> String {
    match origin {
        TemplateOrigin::User => format!("template templates/{path}"),
        TemplateOrigin::Stdlib => format!("std template {path}"),
    }
}

fn missing_help(var: &str, data: &Json) -> String {
    let last = var.rsplit('.').next().unwrap_or(var);
    let mut keys: Vec<&str> = Vec::new();
    if let Json::Object(o) = data {
        keys.extend(o.keys().map(String::as_str));
    }
    match suggest(last, keys.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? (a template may only use what docs/stdlib.md lists under \"Template context\")"),
        None => format!(
            "the context has: {} (see docs/stdlib.md, \"Template context\")",
            keys.join(", ")
        ),
    }
}
