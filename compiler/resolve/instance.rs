//! Instances of kinds: parameters checked against the kind's declaration (defaults
//! applied), `needs`, placement, and the expansion of the kind body into resources.

use super::eval::{Env, Traced};
use super::model::*;
use super::names;
use super::{example_for, resource_attrs, InstanceState, Resolver};
use crate::diag::{codes, Diag};
use crate::source::Span;
use crate::syntax::ast;

impl<'a> Resolver<'a> {
    /// Pass 3 for instances: first a shell each, so `needs` and refs can point
    /// anywhere, then each resolved and expanded.
    pub(super) fn resolve_instances(&mut self, blocks: &[(&'a ast::Block, &'a ast::Ident)]) {
        for (b, name) in blocks {
            let kind = &self.kinds[b.keyword.name.as_str()];
            let _ = kind;
            self.instances.push(Instance {
                kind: Spanned::new(b.keyword.name.clone(), b.keyword.span),
                name: Spanned::new(name.name.clone(), name.span),
                span: b.span,
                placement: Spanned::new(Placement::All, name.span),
                params: Vec::new(),
                resources: Vec::new(),
                needs: Vec::new(),
            });
        }
        self.instance_blocks = blocks.iter().map(|(b, _)| *b).collect();
        self.instance_state = vec![InstanceState::Pending; blocks.len()];
        for id in 0..blocks.len() {
            self.ensure_instance(id, None);
        }
    }

    /// Resolve instance `id` now if it was not yet (its parameters are another
    /// instance's fields). False, with E0114, when it is being resolved: the
    /// parameters of two instances refer to each other. `at`: the reference.
    pub(super) fn ensure_instance(&mut self, id: InstanceId, at: Option<Span>) -> bool {
        match self.instance_state.get(id).copied() {
            Some(InstanceState::Pending) => {
                let b = self.instance_blocks[id];
                self.instance(id, b);
                true
            }
            Some(InstanceState::Params) => {
                let q = self.instances[id].qualified();
                let mut d = Diag::error(
                    codes::E0114,
                    format!("the parameters of `{q}` refer back to `{q}`"),
                );
                if let Some(at) = at {
                    d = d.at(at, "needs the parameters being evaluated");
                }
                self.diags.push(
                    d.with(self.instances[id].name.span, "this instance")
                        .help("an instance's parameters may use another's, but not in a circle"),
                );
                false
            }
            _ => true,
        }
    }

    fn instance(&mut self, id: InstanceId, b: &ast::Block) {
        self.instance_state[id] = InstanceState::Params;
        self.resolve_instance(id, b);
        self.instance_state[id] = InstanceState::Known;
    }

    fn resolve_instance(&mut self, id: InstanceId, b: &ast::Block) {
        let kind_name = b.keyword.name.clone();
        let Some(kind) = self.kinds.get(kind_name.as_str()) else {
            return;
        };
        let def = kind.def;
        let placement_idx = kind.placement;
        let decls: Vec<(String, Type, Option<&'a ast::Expr>, Span)> = kind
            .params
            .iter()
            .map(|p| (p.name.clone(), p.ty.clone(), p.default, p.span))
            .collect();
        let mut allowed: Vec<&str> = decls.iter().map(|d| d.0.as_str()).collect();
        allowed.push("needs");
        let what = kind_name.clone();
        let attrs = self.attrs(&b.body, &allowed, &[], &what);
        let env = Env::top();
        let mut params = Vec::new();
        // Per parameter, the spans of a list's elements (when written as a list).
        let mut elems: Vec<Vec<Span>> = Vec::new();
        let mut ok = true;
        for (pname, ty, default, pspan) in &decls {
            let given = attrs
                .attrs
                .iter()
                .find(|(n, _)| n == pname)
                .map(|(_, a)| *a);
            let written = given.map(|a| &a.value).or(*default);
            let elem_spans = match written {
                Some(ast::Expr::List(items, _)) => items.iter().map(ast::Expr::span).collect(),
                _ => Vec::new(),
            };
            let (value, span) = match (given, default) {
                (Some(a), _) => {
                    let v = self.typed(&a.value, ty, &env);
                    let v = v.filter(|v| self.one_line(pname, v, ty, a.value.span()));
                    (v, a.value.span())
                }
                // A default may use a parameter before it that failed:
                // reported there, not again here.
                (None, Some(_)) if !ok => (None, inst_span(b)),
                (None, Some(d)) => {
                    // Defaults see the instance's `name` and the parameters before them.
                    let inst_name = self.instances[id].name.value.clone();
                    let denv = Env::kind(&inst_name, &params);
                    (self.typed(d, ty, &denv), d.span())
                }
                (None, None) => {
                    if !attrs.names.contains(pname.as_str()) {
                        let inst_name = self.instances[id].name.clone();
                        self.diags.push(
                            Diag::error(
                                codes::E0106,
                                format!(
                                    "missing required attribute `{pname}` in `{kind_name} {}`",
                                    inst_name.value
                                ),
                            )
                            .at(inst_name.span, format!("`{pname}` is required"))
                            .with(*pspan, format!("`{pname}: {ty}` declared here"))
                            .help(format!("add `{pname} = {}`", example_for(ty))),
                        );
                    }
                    (None, inst_span(b))
                }
            };
            match value {
                Some(v) => {
                    params.push(Param {
                        name: pname.clone(),
                        ty: ty.clone(),
                        value: v,
                        span,
                    });
                    elems.push(elem_spans);
                }
                None => ok = false,
            }
        }
        // needs
        let mut needs = Vec::new();
        if let Some((_, a)) = attrs.attrs.iter().find(|(n, _)| *n == "needs") {
            let elems: Vec<&ast::Expr> = match &a.value {
                ast::Expr::List(items, _) => items.iter().collect(),
                other => vec![other],
            };
            for e in elems {
                if let Some(Value::Instance(t)) = self.typed(e, &Type::Ref, &env) {
                    if t == id {
                        self.diags.push(
                            Diag::error(
                                codes::E0401,
                                format!("`{}` needs itself", self.instances[id].qualified()),
                            )
                            .at(e.span(), "a dependency on itself")
                            .help("remove it from `needs`"),
                        );
                    } else {
                        needs.push(Spanned::new(t, e.span()));
                    }
                }
            }
        }
        // An instance a parameter refers to comes first, like one in `needs`.
        for p in &params {
            let refs: Vec<InstanceId> = match &p.value {
                Value::Instance(t) => vec![*t],
                Value::List(items) => items
                    .iter()
                    .filter_map(|v| match v {
                        Value::Instance(t) => Some(*t),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for t in refs {
                if t != id && !needs.iter().any(|n: &Spanned<InstanceId>| n.value == t) {
                    needs.push(Spanned::new(t, p.span));
                }
            }
        }
        self.instances[id].needs = needs;
        if !ok {
            self.instances[id].params = params;
            return;
        }
        if let Some(pi) = placement_idx {
            let p = &params[pi];
            let placement = match &p.value {
                Value::Host(h) => Placement::Host(*h),
                Value::Group(g) => Placement::Group(*g),
                Value::Placement(pl) => *pl,
                // placed where the instance it refers to is
                Value::Instance(t) => {
                    let (t, span) = (*t, p.span);
                    if !self.ensure_instance(t, Some(span)) {
                        self.instances[id].params = params;
                        return;
                    }
                    self.instances[t].placement.value
                }
                _ => Placement::All,
            };
            self.instances[id].placement = Spanned::new(placement, p.span);
        }
        // Known from here: the body may refer to this instance's fields.
        self.instances[id].params = params.clone();
        self.instance_state[id] = InstanceState::Known;
        let name = self.instances[id].name.value.clone();
        let resources = self.expand(def, &name, &params, &elems, id);
        self.instances[id].params = params;
        self.instances[id].resources = resources;
    }

    /// A `string` (or `[string]`) parameter is one line: a newline or another
    /// control character would start a directive of its own in whatever
    /// configuration file the value lands in. Multi-line values are `text`.
    fn one_line(&mut self, pname: &str, v: &Value, ty: &Type, span: Span) -> bool {
        let strings: Vec<&String> = match (ty, v) {
            (Type::String, Value::Str(s)) => vec![s],
            (Type::List(t), Value::List(items)) if **t == Type::String => items
                .iter()
                .filter_map(|i| match i {
                    Value::Str(s) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => return true,
        };
        let Some(c) = strings
            .iter()
            .find_map(|s| s.chars().find(|c| c.is_control()))
        else {
            return true;
        };
        self.diags.push(
            Diag::error(
                codes::E0206,
                format!("`{pname}` holds the control character {c:?}"),
            )
            .at(span, "a string parameter is one line")
            .help("remove the newline (or tab, or other control character); only `text` parameters, such as a job's `run`, take several lines"),
        );
        false
    }

    fn expand(
        &mut self,
        def: &ast::KindDef,
        name: &str,
        params: &[Param],
        elems: &[Vec<Span>],
        id: InstanceId,
    ) -> Vec<Resource> {
        let inst_span = self.instances[id].name.span;
        let env = Env::expanding(name, inst_span, params, elems);
        let qualified = self.instances[id].qualified();
        let mut out = Vec::new();
        let before = self.diags.len();
        for e in &def.body.entries {
            let ast::Entry::Block(b) = e else { continue };
            let kw = b.keyword.name.as_str();
            if resource_attrs(kw).is_none() {
                continue;
            }
            let Some(ast::BlockLabel::Str(label)) = &b.label else {
                continue;
            };
            let Some(labels) = self.interpolate_label(label, &env) else {
                continue;
            };
            for (traced, element) in labels {
                self.check_label(kw, label, &traced);
                let label = traced.text;
                // One resource per element of a list parameter: in its body the
                // parameter names that element.
                let bound: Vec<Param>;
                let benv = match &element {
                    Some((pname, v)) => {
                        bound = params
                            .iter()
                            .map(|p| {
                                let mut p = p.clone();
                                if p.name == *pname {
                                    p.value = v.clone();
                                }
                                p
                            })
                            .collect();
                        Env::kind(name, &bound)
                    }
                    None => Env::kind(name, params),
                };
                let get = |r: &mut Self, key: &str, ty: &Type| -> Option<(Value, Span)> {
                    let a = b.body.entries.iter().find_map(|e| match e {
                        ast::Entry::Attr(a) if a.name.name == key => Some(a),
                        _ => None,
                    })?;
                    r.typed(&a.value, ty, &benv).map(|v| (v, a.value.span()))
                };
                let str_of = |v: Option<(Value, Span)>| match v {
                    Some((Value::Str(s), _)) => Some(s),
                    _ => None,
                };
                let bool_of = |v: Option<(Value, Span)>, d: bool| match v {
                    Some((Value::Bool(x), _)) => x,
                    _ => d,
                };
                let only = match get(self, "only", &Type::String) {
                    None => Role::Any,
                    Some((Value::Str(s), span)) => match s.as_str() {
                        "primary" => Role::Primary,
                        "standby" => Role::Standby,
                        "any" => Role::Any,
                        other => {
                            self.diags.push(
                                Diag::error(codes::E0211, format!("invalid role `{other}`"))
                                    .at(span, "expected \"primary\", \"standby\" or \"any\"")
                                    .help("`only` selects members of the placement group by role"),
                            );
                            Role::Any
                        }
                    },
                    Some(_) => Role::Any,
                };
                let mode = |r: &mut Self, default: u32| -> Mode {
                    let default = Mode::new(default).unwrap_or(Mode::FILE);
                    match get(r, "mode", &Type::String) {
                        Some((Value::Str(s), span)) => match Mode::parse(&s) {
                            Some(m) => m,
                            None => {
                                r.diags.push(
                                Diag::error(codes::E0212, format!("invalid file mode `{s}`"))
                                    .at(span, "not an octal mode")
                                    .help("write the mode in octal as a string, e.g. \"0644\" or \"0755\""),
                            );
                                default
                            }
                        },
                        _ => default,
                    }
                };
                let source = |r: &mut Self| -> Source {
                    if let Some(t) = str_of(get(r, "template", &Type::String)) {
                        return Source::Template(t);
                    }
                    // `content = secret("x")`: the whole file is the secret.
                    let is_secret = b.body.entries.iter().any(|e| {
                        matches!(e, ast::Entry::Attr(a) if a.name.name == "content"
                            && matches!(&a.value, ast::Expr::Call(f, _, _) if f.name == "secret"))
                    });
                    if is_secret {
                        return match get(r, "content", &Type::Secret) {
                            Some((Value::Secret(n), _)) => {
                                Source::Inline(crate::placeholder::Placeholder::text(&n))
                            }
                            _ => Source::Inline(String::new()),
                        };
                    }
                    Source::Inline(str_of(get(r, "content", &Type::String)).unwrap_or_default())
                };
                let owner = |r: &mut Self, key: &str| {
                    str_of(get(r, key, &Type::String)).unwrap_or_else(|| "root".into())
                };
                let kind = match kw {
                    "package" => ResourceKind::Package { name: label },
                    "user" => ResourceKind::User {
                        name: label,
                        home: str_of(get(self, "home", &Type::String)),
                        system: bool_of(get(self, "system", &Type::Bool), true),
                        shell: str_of(get(self, "shell", &Type::String)),
                        groups: match get(self, "groups", &Type::List(Box::new(Type::String))) {
                            Some((Value::List(items), _)) => items
                                .into_iter()
                                .filter_map(|v| match v {
                                    Value::Str(s) => Some(s),
                                    _ => None,
                                })
                                .collect(),
                            _ => Vec::new(),
                        },
                    },
                    "directory" => ResourceKind::Directory {
                        path: label,
                        mode: mode(self, 0o755),
                        owner: owner(self, "owner"),
                        group: owner(self, "group"),
                    },
                    "file" => ResourceKind::File {
                        path: label,
                        mode: mode(self, 0o644),
                        owner: owner(self, "owner"),
                        group: owner(self, "group"),
                        source: source(self),
                    },
                    "unit" => ResourceKind::Unit {
                        name: label,
                        source: source(self),
                        enable: bool_of(get(self, "enable", &Type::Bool), false),
                        start: bool_of(get(self, "start", &Type::Bool), false),
                    },
                    "dropin" => ResourceKind::Dropin {
                        unit: label,
                        source: source(self),
                    },
                    "release" => {
                        let list = |r: &mut Self, key: &str| match get(
                            r,
                            key,
                            &Type::List(Box::new(Type::String)),
                        ) {
                            Some((Value::List(items), span)) => (
                                items
                                    .into_iter()
                                    .filter_map(|v| match v {
                                        Value::Str(s) => Some(s),
                                        _ => None,
                                    })
                                    .collect(),
                                span,
                            ),
                            _ => (Vec::new(), b.span),
                        };
                        let (source, source_span) = match get(self, "source", &Type::String) {
                            Some((Value::Str(s), span)) => (s, span),
                            _ => (String::new(), b.span),
                        };
                        let (git, git_span) = match get(self, "git", &Type::String) {
                            Some((Value::Str(s), span)) => (s, span),
                            _ => (String::new(), b.span),
                        };
                        let (shared, shared_span) = list(self, "shared");
                        let (reload, _) = list(self, "reload");
                        let keep = match get(self, "keep", &Type::Uint) {
                            Some((Value::Int(k), _)) => u32::try_from(k).unwrap_or(u32::MAX).max(1),
                            _ => 5,
                        };
                        ResourceKind::Release {
                            path: label,
                            source,
                            source_span,
                            git,
                            git_span,
                            shared,
                            shared_span,
                            keep,
                            owner: owner(self, "owner"),
                            group: owner(self, "group"),
                            reload,
                            before_switch: str_of(get(self, "before_switch", &Type::Text))
                                .unwrap_or_default(),
                            migrate: str_of(get(self, "migrate", &Type::Text)).unwrap_or_default(),
                        }
                    }
                    _ => ResourceKind::Step {
                        name: label,
                        run: str_of(get(self, "run", &Type::String)).unwrap_or_default(),
                        unless: str_of(get(self, "unless", &Type::String)),
                    },
                };
                out.push(Resource {
                    span: b.span,
                    only,
                    kind,
                    element: element.clone(),
                });
            }
        }
        // Errors inside a kind body: say which instance was being expanded.
        for d in &mut self.diags[before..] {
            if d.secondary.iter().all(|l| l.span != inst_span) {
                d.secondary.push(crate::diag::Label {
                    span: inst_span,
                    text: format!("while expanding `{qualified}`"),
                });
            }
        }
        out
    }
}

impl Resolver<'_> {
    /// A resource's label as the host's tools need it (no secret in any; an absolute,
    /// normalised path; a unit, package or user name), reported at the argument that
    /// put the problem there when the label interpolates one.
    fn check_label(&mut self, kw: &str, lit: &ast::StrLit, label: &Traced) {
        let text = label.text.as_str();
        let what = match kw {
            "package" => "package name",
            "user" => "user name",
            "directory" => "directory path",
            "file" => "file path",
            "release" => "release path",
            "unit" => "unit name",
            "dropin" => "drop-in's unit name",
            _ => "step name",
        };
        if let Some((at, secret)) = names::secret_at(text) {
            let mut d = Diag::error(
                codes::E0217,
                format!("the secret `{secret}` would be part of a {what}"),
            );
            d = match label.origin(at).0 {
                Some(span) => d
                    .at(span, format!("the secret `{secret}` comes from here"))
                    .with(lit.span, format!("the {what} is built here")),
                None => d.at(
                    lit.span,
                    format!("the secret `{secret}` is interpolated here"),
                ),
            };
            self.diags.push(d.help(format!(
                "{what}s show up in plans, logs and the build: keep a secret in a file's content (a template) and pass that file's path instead"
            )));
            return;
        }
        let (code, problem) = {
            let p = match kw {
                "directory" | "file" | "release" => names::path(text),
                "unit" => names::unit(text),
                "dropin" => names::unit(text).map(|p| names::Problem {
                    help: "a drop-in names the unit it changes (e.g. `nginx.service`); infra writes /etc/systemd/system/UNIT.d/infra.conf".into(),
                    ..p
                }),
                "package" => names::package(text),
                "user" => names::user(text),
                _ => names::step(text),
            };
            let Some(p) = p else { return };
            let code = if matches!(kw, "directory" | "file" | "release") {
                codes::E0215
            } else {
                codes::E0216
            };
            (code, p)
        };
        let (origin, piece) = label.origin(problem.at);
        let mut d = Diag::error(code, format!("the {what} `{text}` {}", problem.what));
        d = match origin {
            Some(span) => d
                .at(span, format!("{}: from `{piece}`", problem.label))
                .with(lit.span, format!("the {what} is built here")),
            None => d.at(lit.span, problem.label),
        };
        self.diags.push(d.help(problem.help));
    }
}

fn inst_span(b: &ast::Block) -> Span {
    b.keyword.span
}
