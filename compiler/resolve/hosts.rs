//! Hosts and failover groups: their attributes, default priorities, and derived
//! virtual router ids.

use super::eval::Env;
use super::model::*;
use super::Resolver;
use crate::diag::{codes, Diag};
use crate::source::Span;
use crate::syntax::ast;
use std::collections::{BTreeMap, BTreeSet};

const SSH_ATTRS: &[&str] = &["user", "port", "key"];

impl Resolver<'_> {
    /// Pass 3 for hosts, then failover groups (router ids derived once all are known).
    pub(super) fn resolve_hosts_and_groups(
        &mut self,
        hosts: &[(&ast::Block, &ast::Ident)],
        groups: &[(&ast::Block, &ast::Ident)],
    ) {
        for (b, name) in hosts {
            let h = self.host(b, name);
            self.hosts.push(h);
        }
        let mut explicit_ids = Vec::new();
        for (b, name) in groups {
            let (g, explicit) = self.group(b, name);
            explicit_ids.push(explicit);
            self.groups.push(g);
        }
        self.assign_router_ids(&explicit_ids);
    }

    pub(super) fn host(&mut self, b: &ast::Block, name: &ast::Ident) -> Host {
        let mut address = None;
        let mut ssh = Ssh::default();
        let env = Env::top();
        let mut tags: Vec<Spanned<String>> = Vec::new();
        let attrs = self.attrs(&b.body, &["address", "tags"], &[("ssh", SSH_ATTRS)], "host");
        for (n, a) in &attrs.attrs {
            if *n == "address" {
                if let Some(Value::Ip(ip)) = self.typed(&a.value, &Type::Ip, &env) {
                    address = Some(Spanned::new(ip, a.value.span()));
                }
            } else if *n == "tags" {
                tags = self.tags(&a.value, &env);
            }
        }
        for nb in attrs.blocks {
            let sattrs = self.attrs(&nb.body, SSH_ATTRS, &[], "ssh");
            for (n, a) in &sattrs.attrs {
                match *n {
                    "user" => {
                        if let Some(Value::Str(s)) = self.typed(&a.value, &Type::String, &env) {
                            if s.is_empty() || s.contains(char::is_whitespace) {
                                self.diags.push(
                                    Diag::error(codes::E0206, format!("invalid SSH user `{s}`"))
                                        .at(a.value.span(), "not a user name")
                                        .help("a user name has no spaces, e.g. `admin`"),
                                );
                            } else {
                                ssh.user = s;
                            }
                        }
                    }
                    "port" => {
                        if let Some(Value::Int(p)) = self.typed(&a.value, &Type::Int, &env) {
                            match u16::try_from(p) {
                                Ok(p) if p > 0 => ssh.port = p,
                                _ => self.diags.push(
                                    Diag::error(codes::E0206, format!("port {p} is out of range"))
                                        .at(a.value.span(), "not a TCP port")
                                        .help("ports are 1 to 65535"),
                                ),
                            }
                        }
                    }
                    _ => {
                        if let Some(Value::Str(s)) = self.typed(&a.value, &Type::String, &env) {
                            if s.trim().is_empty() {
                                self.diags.push(
                                    Diag::error(codes::E0206, "empty SSH key path")
                                        .at(a.value.span(), "no file")
                                        .help("give the private key's file, e.g. `key = \"~/.ssh/id_ed25519\"`, or remove `key` to use ssh-agent and the default keys"),
                                );
                            } else if s.starts_with('~') && !(s == "~" || s.starts_with("~/")) {
                                let user = s[1..].split('/').next().unwrap_or("");
                                self.diags.push(
                                    Diag::error(codes::E0206, format!("`~{user}` in an SSH key path is not supported"))
                                        .at(a.value.span(), "another user's home")
                                        .help("write `~/...` (your own home) or the full path, e.g. `/home/USER/.ssh/id_ed25519`"),
                                );
                            } else {
                                ssh.key = Some(s);
                            }
                        }
                    }
                }
            }
        }
        if address.is_none() && !attrs.names.contains("address") {
            self.missing(b, name, "address", "host", "\"192.0.2.11\"");
        }
        Host {
            name: Spanned::new(name.name.clone(), name.span),
            span: b.span,
            address: address.unwrap_or(Spanned::new(std::net::Ipv4Addr::UNSPECIFIED, name.span)),
            ssh,
            tags,
        }
    }

    /// `tags = ["web", "site-a"]`: names `--limit @TAG` selects the host by.
    fn tags(&mut self, value: &ast::Expr, env: &Env) -> Vec<Spanned<String>> {
        let items: Vec<(Option<Value>, Span)> = match value {
            ast::Expr::List(items, _) => items
                .iter()
                .map(|e| (self.typed(e, &Type::String, env), e.span()))
                .collect(),
            other => match self.typed(other, &Type::List(Box::new(Type::String)), env) {
                Some(Value::List(vs)) => vs.into_iter().map(|v| (Some(v), other.span())).collect(),
                _ => Vec::new(),
            },
        };
        let mut tags: Vec<Spanned<String>> = Vec::new();
        for (v, span) in items {
            let Some(Value::Str(t)) = v else { continue };
            let ok = t.len() <= 64
                && t.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && t.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !ok {
                self.diags.push(
                    Diag::error(codes::E0206, format!("invalid tag `{t}`"))
                        .at(span, "not a tag")
                        .help("a tag is lowercase letters, digits, `-` and `_` (not first), e.g. `\"site-a\"`; select its hosts with `--limit @site-a`"),
                );
            } else if let Some(prev) = tags.iter().find(|p| p.value == t) {
                let prev = prev.span;
                self.diags.push(
                    Diag::error(codes::E0206, format!("tag `{t}` is listed twice"))
                        .at(span, "listed again here")
                        .with(prev, "first listed here")
                        .help("remove the duplicate"),
                );
            } else {
                tags.push(Spanned::new(t, span));
            }
        }
        tags
    }

    /// `admin NAME { key = "..." }`: a key `infra secrets` can encrypt to.
    pub(super) fn admin(&mut self, b: &ast::Block, name: &ast::Ident) -> Option<Admin> {
        let env = Env::top();
        let attrs = self.attrs(&b.body, &["key"], &[], "admin");
        let mut key = None;
        for (n, a) in &attrs.attrs {
            if *n != "key" {
                continue;
            }
            if let Some(Value::Str(s)) = self.typed(&a.value, &Type::String, &env) {
                match crate::secrets::store::parse_recipient(&s) {
                    Ok(_) => key = Some(Spanned::new(s.trim().to_string(), a.value.span())),
                    Err(why) => self.diags.push(
                        Diag::error(codes::E0219, format!("the key of admin `{}` is not a public key infra can encrypt to: {why}", name.name))
                            .at(a.value.span(), "not an SSH or age public key")
                            .help("paste a public key: the line of ~/.ssh/id_ed25519.pub (`ssh-ed25519 AAAA... you@laptop`), an `ssh-rsa` key, or an age recipient (`age1...`, from `age-keygen`)"),
                    ),
                }
            }
        }
        if key.is_none() && !attrs.names.contains("key") {
            self.missing(b, name, "key", "admin", "\"ssh-ed25519 AAAA...\"");
        }
        Some(Admin {
            name: Spanned::new(name.name.clone(), name.span),
            key: key?,
        })
    }

    pub(crate) fn missing(
        &mut self,
        b: &ast::Block,
        name: &ast::Ident,
        attr: &str,
        what: &str,
        example: &str,
    ) {
        self.diags.push(
            Diag::error(
                codes::E0106,
                format!(
                    "missing required attribute `{attr}` in {what} `{}`",
                    name.name
                ),
            )
            .at(name.span, format!("`{attr}` is required"))
            .help(format!("add `{attr} = {example}` inside the braces"))
            .with(b.body.span, "in this block"),
        );
    }

    pub(super) fn group(&mut self, b: &ast::Block, name: &ast::Ident) -> (Group, bool) {
        let env = Env::top();
        let attrs = self.attrs(
            &b.body,
            &[
                "members",
                "vip",
                "interface",
                "check",
                "check_packages",
                "router_id",
                "priorities",
                "witness",
            ],
            &[],
            "failover",
        );
        let mut members: Vec<Spanned<HostId>> = Vec::new();
        let mut vip = None;
        let mut interface = Spanned::new("eth0".to_string(), name.span);
        let mut check = None;
        let mut check_packages = Vec::new();
        let mut router_id = None;
        let mut priorities = None;
        let mut priorities_count: Option<(usize, Span)> = None;
        let mut witness: Option<Spanned<HostId>> = None;
        for (n, a) in &attrs.attrs {
            let vspan = a.value.span();
            match *n {
                "members" => {
                    let items: Vec<(Option<Value>, Span)> = match &a.value {
                        ast::Expr::List(items, _) => items
                            .iter()
                            .map(|e| (self.typed(e, &Type::Host, &env), e.span()))
                            .collect(),
                        other => match self.typed(other, &Type::List(Box::new(Type::Host)), &env) {
                            Some(Value::List(vs)) => {
                                vs.into_iter().map(|v| (Some(v), vspan)).collect()
                            }
                            _ => Vec::new(),
                        },
                    };
                    for (v, span) in items {
                        let Some(Value::Host(h)) = v else { continue };
                        if let Some(prev) = members.iter().find(|m| m.value == h) {
                            self.diags.push(
                                Diag::error(
                                    codes::E0208,
                                    format!(
                                        "host `{}` is listed twice in `members`",
                                        self.hosts[h].name.value
                                    ),
                                )
                                .at(span, "listed again here")
                                .with(prev.span, "first listed here")
                                .help("each host can be a member once; remove the duplicate"),
                            );
                        } else {
                            members.push(Spanned::new(h, span));
                        }
                    }
                    if matches!(&a.value, ast::Expr::List(items, _) if items.is_empty()) {
                        self.diags.push(
                            Diag::error(codes::E0207, format!("failover group `{}` has no members", name.name))
                                .at(vspan, "empty list")
                                .help("list the hosts in preference order, e.g. `members = [alpha, beta]`"),
                        );
                    }
                }
                "vip" => {
                    if let Some(Value::Cidr(c)) = self.typed(&a.value, &Type::Cidr, &env) {
                        vip = Some(Spanned::new(c, vspan));
                    }
                }
                "interface" => {
                    if let Some(Value::Str(s)) = self.typed(&a.value, &Type::String, &env) {
                        if s.is_empty()
                            || s.len() > 15
                            || s.contains(|c: char| c.is_whitespace() || c == '/')
                        {
                            self.diags.push(
                                Diag::error(codes::E0206, format!("invalid interface name `{s}`"))
                                    .at(vspan, "not a Linux interface name")
                                    .help("interface names are 1 to 15 characters without spaces or `/`, e.g. `eth0`"),
                            );
                        } else {
                            interface = Spanned::new(s, vspan);
                        }
                    }
                }
                "check" => {
                    if let Some(Value::Check(c)) = self.typed(&a.value, &Type::Check, &env) {
                        check = Some(Spanned::new(c, vspan));
                    }
                }
                "check_packages" => {
                    let items: Vec<(Option<Value>, Span)> = match &a.value {
                        ast::Expr::List(items, _) => items
                            .iter()
                            .map(|e| (self.typed(e, &Type::String, &env), e.span()))
                            .collect(),
                        other => {
                            self.typed(other, &Type::List(Box::new(Type::String)), &env);
                            Vec::new()
                        }
                    };
                    for (v, span) in items {
                        let Some(Value::Str(p)) = v else { continue };
                        match super::names::package(&p) {
                            None => check_packages.push(Spanned::new(p, span)),
                            Some(problem) => self.diags.push(
                                Diag::error(
                                    codes::E0216,
                                    format!("the package `{p}` {}", problem.what),
                                )
                                .at(span, problem.label)
                                .help(problem.help),
                            ),
                        }
                    }
                }
                "witness" => {
                    if let Some(Value::Host(h)) = self.typed(&a.value, &Type::Host, &env) {
                        witness = Some(Spanned::new(h, vspan));
                    }
                }
                "router_id" => {
                    if let Some(Value::Int(i)) = self.typed(&a.value, &Type::Int, &env) {
                        match u8::try_from(i) {
                            Ok(v) if v >= 1 => router_id = Some(Spanned::new(v, vspan)),
                            _ => self.diags.push(
                                Diag::error(
                                    codes::E0206,
                                    format!("virtual router id {i} is out of range"),
                                )
                                .at(vspan, "must be 1 to 255")
                                .help("VRRP router ids are 1 to 255, unique per network segment"),
                            ),
                        }
                    }
                }
                _ => {
                    let items: Vec<(Option<Value>, Span)> = match &a.value {
                        ast::Expr::List(items, _) => items
                            .iter()
                            .map(|e| (self.typed(e, &Type::Int, &env), e.span()))
                            .collect(),
                        other => {
                            self.typed(other, &Type::List(Box::new(Type::Int)), &env);
                            Vec::new()
                        }
                    };
                    let mut ps = Vec::new();
                    let written = items.len();
                    for (v, span) in items {
                        if let Some(Value::Int(i)) = v {
                            match u8::try_from(i) {
                                Ok(p) if (1..=254).contains(&p) => ps.push(p),
                                _ => self.diags.push(
                                    Diag::error(codes::E0206, format!("priority {i} is out of range"))
                                        .at(span, "must be 1 to 254")
                                        .help("keepalived priorities are 1 to 254; leave a gap of about 50 between members"),
                                ),
                            }
                        }
                    }
                    if ps.len() == written {
                        priorities = Some(Spanned::new(ps, vspan));
                    } else {
                        priorities_count = Some((written, vspan));
                    }
                }
            }
        }
        if !attrs.names.contains("members") {
            self.missing(b, name, "members", "failover group", "[alpha, beta]");
        }
        if !attrs.names.contains("vip") {
            self.missing(b, name, "vip", "failover group", "\"192.0.2.10/24\"");
        }
        if !attrs.names.contains("check") {
            self.missing(
                b,
                name,
                "check",
                "failover group",
                "http(\"http://127.0.0.1/health\")",
            );
        }
        let n = members.len();
        if let Some((written, span)) = priorities_count {
            if written != n && n > 0 {
                self.diags.push(
                    Diag::error(codes::E0209, format!("{written} priorities for {n} members"))
                        .at(span, "one priority per member, in member order")
                        .help("list exactly one priority for each member, or remove `priorities` to derive them"),
                );
            }
        }
        let priorities = match priorities {
            Some(p) if p.value.len() == n || n == 0 => p,
            Some(p) => {
                self.diags.push(
                    Diag::error(codes::E0209, format!("{} priorities for {n} members", p.value.len()))
                        .at(p.span, "one priority per member, in member order")
                        .help("list exactly one priority for each member, or remove `priorities` to derive them"),
                );
                Spanned::new(default_priorities(n), p.span)
            }
            None => Spanned::new(default_priorities(n), name.span),
        };
        if let Some(w) = &witness {
            let wname = &self.hosts[w.value].name.value;
            if let Some(m) = members.iter().find(|m| m.value == w.value) {
                self.diags.push(
                    Diag::error(
                        codes::E0218,
                        format!("the witness of `{}` is also one of its members", name.name),
                    )
                    .at(w.span, format!("`{wname}` is the witness"))
                    .with(m.span, "and a member")
                    .help("the witness is a third machine that runs no member of the group: declare another host (an old desktop, a Raspberry Pi, the NAS) and name it here"),
                );
            } else if n != 2 && n > 0 {
                self.diags.push(
                    Diag::error(
                        codes::E0218,
                        format!("failover group `{}` has {n} members and a witness", name.name),
                    )
                    .at(w.span, "a witness completes a majority of three for two members")
                    .help(if n == 1 {
                        "add the second member to `members`, or remove `witness`"
                    } else {
                        "a witness is for groups of exactly two members: remove `witness`, or keep two members"
                    }),
                );
            }
        }
        let explicit = router_id.is_some();
        (
            Group {
                name: Spanned::new(name.name.clone(), name.span),
                span: b.span,
                members,
                vip: vip.unwrap_or(Spanned::new(
                    Cidr {
                        addr: std::net::Ipv4Addr::UNSPECIFIED,
                        prefix: 32,
                    },
                    name.span,
                )),
                interface,
                check_packages,
                check: check.unwrap_or(Spanned::new(Check::Exec("true".into()), name.span)),
                router_id: router_id.unwrap_or(Spanned::new(0, name.span)),
                priorities,
                witness,
            },
            explicit,
        )
    }

    /// Derive router ids for groups without one: a stable hash of the name, then the
    /// next free id on the same interface. Explicit ids are kept (duplicates are a lint).
    pub(super) fn assign_router_ids(&mut self, explicit: &[bool]) {
        let mut used: BTreeMap<String, BTreeSet<u8>> = BTreeMap::new();
        for (g, &e) in self.groups.iter().zip(explicit) {
            if e {
                used.entry(g.interface.value.clone())
                    .or_default()
                    .insert(g.router_id.value);
            }
        }
        let mut order: Vec<usize> = (0..self.groups.len()).filter(|&i| !explicit[i]).collect();
        order.sort_by(|&a, &b| self.groups[a].name.value.cmp(&self.groups[b].name.value));
        for i in order {
            let g = &mut self.groups[i];
            let taken = used.entry(g.interface.value.clone()).or_default();
            let start = (fnv1a(g.name.value.as_bytes()) % 255) as u8;
            let mut id = None;
            for k in 0..255u16 {
                let cand = ((start as u16 + k) % 255 + 1) as u8;
                if !taken.contains(&cand) {
                    id = Some(cand);
                    break;
                }
            }
            let id = id.unwrap_or(1);
            taken.insert(id);
            g.router_id.value = id;
        }
    }
}

/// Default keepalived priorities in member order: 150, 100, 50, then evenly below.
pub fn default_priorities(n: usize) -> Vec<u8> {
    if n <= 3 {
        (0..n).map(|i| (150 - 50 * i) as u8).collect()
    } else {
        let step = (240 / n).max(1);
        (0..n).map(|i| (250 - step * i).max(1) as u8).collect()
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}
