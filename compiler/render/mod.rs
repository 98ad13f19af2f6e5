//! Stage 5: Model + graph order → [`Build`]. Entry point: [`render`].
//!
//! For each host: every instance whose placement includes it (in `order`), every
//! resource whose `only` matches the host's build-time role, files rendered from
//! handlebars templates in strict mode; plus the failover groups themselves
//! (keepalived, notify scripts, `infra-GROUP-active.target`), which are built in.
//!
//! Invariants: pure (no IO except [`write_build`]); the same inputs give a
//! byte-identical Build; secrets appear only as [`crate::placeholder::Placeholder`]s and a file
//! holding one is `secret` with mode 0600; every problem is a [`Diag`] (E06xx)
//! naming the template and pointing at the resource and its instance.

pub mod build;
pub mod context;
mod engine;
mod failover;
mod helpers;
// IO at the edge: the build writer and reader.
#[allow(clippy::disallowed_methods)]
mod output;

pub use build::*;
pub use output::{read_build, write_build};

use crate::diag::{self, codes, Diag};
use crate::encode::{sha256_hex, Mode};
use crate::resolve::model::{HostId, InstanceId, Model, ResourceKind, Role, Source};
use crate::source::Span;
use crate::stdlib::Templates;
use engine::{Engine, Use};
use std::collections::{BTreeMap, BTreeSet};

/// Where drop-ins go: `/etc/systemd/system/UNIT.d/infra.conf`.
pub fn dropin_path(unit: &str) -> String {
    format!("/etc/systemd/system/{unit}.d/infra.conf")
}

/// Where units go: `/etc/systemd/system/NAME`.
pub fn unit_path(unit: &str) -> String {
    format!("/etc/systemd/system/{unit}")
}

/// True if the text holds a secret placeholder.
pub fn has_secret(text: &str) -> bool {
    crate::placeholder::Placeholder::in_text(text)
}

/// Render the build of every host. `order` lists instances in dependency order
/// (from the graph stage); instances missing from it are appended in model order.
pub fn render(
    model: &Model,
    order: &[InstanceId],
    templates: &Templates,
    trees: &crate::release::Trees,
) -> Result<Build, Vec<Diag>> {
    let mut engine = Engine::new(templates);
    engine.all_hosts = context::all_hosts_json(model);
    let mut diags = Vec::new();
    // Per host, its groups and its instances in order: linear in the model's size.
    let groups = failover::groups_by_host(model);
    let mut instances: Vec<Vec<InstanceId>> = vec![Vec::new(); model.hosts.len()];
    for i in full_order(model, order) {
        for h in model.placement_hosts(model.instances[i].placement.value) {
            if let Some(v) = instances.get_mut(h.index()) {
                v.push(i);
            }
        }
    }
    let mut build = Build::default();
    for h in model.host_ids() {
        let mut hb = HostState::new(model, h);
        let gids = &groups[h.index()];
        failover::render_groups(model, h, gids, &mut engine, &mut hb, &mut diags);
        failover::render_witness(model, h, &mut engine, &mut hb, &mut diags);
        for &i in &instances[h.index()] {
            render_instance(model, i, h, &mut engine, &mut hb, trees, &mut diags);
        }
        failover::finish_groups(model, gids, &mut hb);
        let out = hb.finish(model, &mut diags);
        build.hosts.insert(out.host.clone(), out);
    }
    if diag::has_errors(&diags) {
        diag::sort(&mut diags);
        // The same mistake on every member of a group is said once.
        diags.dedup();
        diags.dedup();
        Err(diags)
    } else {
        Ok(build)
    }
}

fn full_order(model: &Model, order: &[InstanceId]) -> Vec<InstanceId> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for i in order.iter().copied().chain(0..model.instances.len()) {
        if i < model.instances.len() && seen.insert(i) {
            out.push(i);
        }
    }
    out
}

/// The build-time role of host `h` for a placement: first member of the group is
/// primary, the others standby; a host or `all` placement counts as primary.
fn role_of(model: &Model, i: InstanceId, h: HostId) -> Role {
    match context::placement_group(model.instances[i].placement.value) {
        Some(g) => match model.groups[g].position(h) {
            Some(0) => Role::Primary,
            Some(_) => Role::Standby,
            None => Role::Any,
        },
        None => Role::Primary,
    }
}

fn matches_role(only: Role, role: Role) -> bool {
    only == Role::Any || only == role
}

/// Who wrote something (for conflicts and origins).
#[derive(Clone)]
struct Writer {
    origin: String,
    /// The resource's declaration (in a kind body: often the stdlib's).
    span: Span,
    /// Where the user declared what made it: the instance's (or group's) name
    /// in the user's file. Conflicts point here first.
    place: Span,
    instance: Option<InstanceId>,
}

/// E0610: a secret that would land in a script (0600 root: the unit's user
/// cannot run it, and the command line shows in process lists) or in a unit
/// (`systemctl show` prints it to every local user). Points at the parameter of
/// the user's instance that carries it.
fn misplaced_secret(inst: &crate::resolve::Instance, content: &str, place: &str) -> Diag {
    let names = crate::secrets::placeholders(content);
    let name = names.iter().next().cloned().unwrap_or_default();
    let marker = crate::placeholder::Placeholder::text(&name);
    use crate::resolve::Value;
    let holds = |v: &Value| -> bool {
        match v {
            Value::Secret(n) => *n == name,
            Value::Str(s) => s.contains(&marker),
            Value::List(items) => items.iter().any(|i| match i {
                Value::Secret(n) => *n == name,
                Value::Str(s) => s.contains(&marker),
                _ => false,
            }),
            _ => false,
        }
    };
    let param = inst.params.iter().find(|p| holds(&p.value));
    let mut d = Diag::error(
        codes::E0610,
        format!(
            "secret `{name}` of {} would be in {place}",
            inst.qualified()
        ),
    );
    d = match param {
        Some(p) => d
            .at(p.span, format!("`{}` carries secret `{name}`", p.name))
            .with(inst.name.span, "in this instance"),
        None => d.at(
            inst.name.span,
            format!("this instance puts secret `{name}` there"),
        ),
    };
    let help = if inst.kind.value == "job" || inst.kind.value == "service" {
        format!(
            "commands and units are visible to every local user: give the secret as a credential, `credentials = [\"{name}\"]`, and let the command read the file \"$CREDENTIALS_DIRECTORY/{name}\""
        )
    } else {
        "commands and units are visible to every local user: write the secret into a file of its own (`content = secret(\"NAME\")`, it becomes 0600) and let the command read it".to_string()
    };
    d.help(help)
}

/// E0605: `first` and `who` declare one thing differently. Labels the user's
/// declarations first (what they can change), then the kinds' resources.
fn conflict_diag(message: String, first: &Writer, who: &Writer, help: String) -> Diag {
    let mut d = Diag::error(codes::E0605, message)
        .at(who.place, format!("{} declares it", who.origin))
        .with(first.place, format!("{} declares it too", first.origin));
    for w in [who, first] {
        if w.span != w.place {
            d = d.with(w.span, format!("the resource of {}", w.origin));
        }
    }
    d.help(help)
}

/// One unit under construction.
struct UnitAcc {
    enable: bool,
    start: bool,
    own: Option<String>,
    dropins: Vec<String>,
    instances: BTreeSet<InstanceId>,
    extra_reload: Vec<String>,
    origin: String,
    span: Span,
    place: Span,
}

struct HostState {
    out: HostBuild,
    file_writers: BTreeMap<String, Writer>,
    /// Files per instance, with "is it a plain config file" (not a unit, drop-in or executable).
    instance_files: BTreeMap<InstanceId, Vec<(String, bool)>>,
    units: Vec<(String, UnitAcc)>,
    users: BTreeMap<String, (UserOut, Writer)>,
    dirs: BTreeMap<String, (DirOut, Writer)>,
    packages: BTreeSet<String>,
}

impl HostState {
    fn new(model: &Model, h: HostId) -> HostState {
        let host = &model.hosts[h];
        HostState {
            out: HostBuild {
                host: host.name.value.clone(),
                address: host.address.value.to_string(),
                ..HostBuild::default()
            },
            file_writers: BTreeMap::new(),
            instance_files: BTreeMap::new(),
            units: Vec::new(),
            users: BTreeMap::new(),
            dirs: BTreeMap::new(),
            packages: BTreeSet::new(),
        }
    }

    fn package(&mut self, name: &str) {
        self.packages.insert(name.to_string());
    }

    /// A directory: several declarations of one path (a share's tree that an
    /// application also writes) merge when they agree on owner and group.
    fn directory(&mut self, d: DirOut, who: Writer, diags: &mut Vec<Diag>) {
        let path = d.path.clone();
        let path = &path;
        // One directory, several declarations (a share's tree that an
        // application also writes): one owner and group, the union of
        // the permission bits they ask for.
        match self.dirs.get_mut(path) {
            Some((prev, first)) if prev.owner != d.owner || prev.group != d.group => {
                // Suggest the owner that is not the default root.
                let (from, to, o, g) = if d.owner == "root" && prev.owner != "root" {
                    (&first.origin, &who.origin, &prev.owner, &prev.group)
                } else {
                    (&who.origin, &first.origin, &d.owner, &d.group)
                };
                diags.push(conflict_diag(
                    format!(
                        "{} and {} declare directory {path} with different owners",
                        first.origin, who.origin
                    ),
                    first,
                    &who,
                    format!(
                        "{} wants it {}:{} {}, {} wants it {}:{} {}: give both the same owner and group (their modes merge), e.g. `owner = \"{o}\"` and `group = \"{g}\"` on `{to}` like {from}",
                        first.origin, prev.owner, prev.group, prev.mode,
                        who.origin, d.owner, d.group, d.mode,
                    ),
                ))
            }
            Some((prev, _)) => {
                prev.mode = prev.mode.union(d.mode);
            }
            None => {
                self.dirs.insert(path.clone(), (d, who));
            }
        }
    }

    /// Add a file; identical duplicates are merged, different ones are E0605.
    #[allow(clippy::too_many_arguments)]
    fn file(
        &mut self,
        path: &str,
        mode: Mode,
        owner: &str,
        group: &str,
        content: String,
        who: Writer,
        plain: bool,
        diags: &mut Vec<Diag>,
    ) {
        let secret = has_secret(&content);
        let mode = if secret { Mode::SECRET } else { mode };
        let sha256 = sha256_hex(content.as_bytes());
        let f = FileOut {
            mode,
            owner: owner.to_string(),
            group: group.to_string(),
            content,
            secret,
            sha256,
            origin: who.origin.clone(),
        };
        if let Some(prev) = self.out.files.get(path) {
            let same = prev.mode == f.mode
                && prev.owner == f.owner
                && prev.group == f.group
                && prev.sha256 == f.sha256;
            if !same {
                let first = &self.file_writers[path];
                let what = if prev.sha256 != f.sha256 {
                    "different content"
                } else {
                    "different mode or owner"
                };
                diags.push(conflict_diag(
                    format!(
                        "{} and {} both write {path} on {} with {what}",
                        first.origin, who.origin, self.out.host
                    ),
                    first,
                    &who,
                    "give the resources different paths (most stdlib paths contain the instance name)"
                        .into(),
                ));
            }
            return;
        }
        if let Some(i) = who.instance {
            self.instance_files
                .entry(i)
                .or_default()
                .push((path.to_string(), plain));
        }
        self.file_writers.insert(path.to_string(), who);
        self.out.files.insert(path.to_string(), f);
    }

    fn unit_entry(&mut self, name: &str, who: &Writer) -> &mut UnitAcc {
        let idx = match self.units.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.units.push((
                    name.to_string(),
                    UnitAcc {
                        enable: false,
                        start: false,
                        own: None,
                        dropins: Vec::new(),
                        instances: BTreeSet::new(),
                        extra_reload: Vec::new(),
                        origin: who.origin.clone(),
                        span: who.span,
                        place: who.place,
                    },
                ));
                self.units.len() - 1
            }
        };
        let acc = &mut self.units[idx].1;
        if let Some(i) = who.instance {
            acc.instances.insert(i);
        }
        acc
    }

    /// A unit whose file we write.
    #[allow(clippy::too_many_arguments)]
    fn unit(
        &mut self,
        name: &str,
        content: String,
        enable: bool,
        start: bool,
        who: Writer,
        diags: &mut Vec<Diag>,
    ) {
        let path = unit_path(name);
        if let Some((_, acc)) = self.units.iter().find(|(n, _)| n == name) {
            if acc.own.is_some() && (acc.enable != enable || acc.start != start) {
                let first = Writer {
                    origin: acc.origin.clone(),
                    span: acc.span,
                    place: acc.place,
                    instance: None,
                };
                diags.push(conflict_diag(
                    format!(
                        "{} and {} both declare unit {name} on {}",
                        acc.origin, who.origin, self.out.host
                    ),
                    &first,
                    &who,
                    "unit names must be unique per host".into(),
                ));
                return;
            }
        }
        self.file(
            &path,
            Mode::FILE,
            "root",
            "root",
            content,
            who.clone(),
            false,
            diags,
        );
        let acc = self.unit_entry(name, &who);
        acc.own = Some(path);
        acc.enable |= enable;
        acc.start |= start;
    }

    /// A drop-in for a unit (ours or the distribution's).
    fn dropin(&mut self, unit: &str, content: String, who: Writer, diags: &mut Vec<Diag>) {
        let path = dropin_path(unit);
        self.file(
            &path,
            Mode::FILE,
            "root",
            "root",
            content,
            who.clone(),
            false,
            diags,
        );
        let acc = self.unit_entry(unit, &who);
        if !acc.dropins.contains(&path) {
            acc.dropins.push(path);
        }
    }

    /// A unit the system already has, declared by a kind to enable and/or start it.
    fn existing_unit(&mut self, name: &str, enable: bool, start: bool, who: Writer) {
        let acc = self.unit_entry(name, &who);
        acc.enable |= enable;
        acc.start |= start;
    }

    /// A distribution unit infra enables and starts without writing its file
    /// (keepalived.service); `reload_on` files make apply reload it instead of restarting.
    fn distro_unit(&mut self, name: &str, reload_on: Vec<String>, who: Writer) {
        let acc = self.unit_entry(name, &who);
        acc.enable = true;
        acc.start = true;
        acc.extra_reload.extend(reload_on);
    }

    fn finish(mut self, model: &Model, diags: &mut Vec<Diag>) -> HostBuild {
        let _ = (model, diags);
        self.out.packages = self.packages.into_iter().collect();
        self.out.users = self.users.into_values().map(|(u, _)| u).collect();
        self.out.directories = self.dirs.into_values().map(|(d, _)| d).collect();
        let instance_files = &self.instance_files;
        let files = &self.out.files;
        let units: Vec<UnitOut> = self
            .units
            .into_iter()
            .map(|(name, acc)| {
                let mut restart_on: Vec<String> = Vec::new();
                if acc.own.is_none() || acc.start {
                    restart_on.extend(acc.own.iter().cloned());
                    restart_on.extend(acc.dropins.iter().cloned());
                    // files the unit or its drop-ins name (ExecStart=, ...)
                    let texts: Vec<&str> = restart_on
                        .iter()
                        .filter_map(|p| files.get(p).map(|f| f.content.as_str()))
                        .collect();
                    for path in files.keys() {
                        if texts.iter().any(|t| mentions(t, path)) {
                            restart_on.push(path.clone());
                        }
                    }
                    if acc.own.is_none() {
                        restart_on.extend(daemon_config(
                            &name,
                            &acc.instances,
                            instance_files,
                            files,
                        ));
                    }
                }
                let mut reload_on = acc.extra_reload;
                restart_on.retain(|p| !reload_on.contains(p));
                restart_on.sort();
                restart_on.dedup();
                reload_on.sort();
                reload_on.dedup();
                UnitOut {
                    name,
                    enable: acc.enable,
                    start: acc.start,
                    restart_on,
                    reload_on,
                    origin: acc.origin,
                }
            })
            .collect();
        self.out.units = units;
        self.out.roles.sort_by(|a, b| a.group.cmp(&b.group));
        self.out
    }
}

/// True if `text` names `path` as a whole path (not as a prefix of a longer one).
fn mentions(text: &str, path: &str) -> bool {
    text.match_indices(path).any(|(i, _)| {
        let after = text[i + path.len()..].chars().next();
        !matches!(after, Some(c) if c.is_ascii_alphanumeric() || "_-./@".contains(c))
    })
}

/// The configuration files a distribution daemon reads, among the files of the
/// instances that add a drop-in to it: non-secret, non-executable, outside
/// /etc/infra/, preferably under /etc/DIR/ where DIR and the unit name start
/// alike (`nginx.service` ↔ /etc/nginx/, `php8.2-fpm.service` ↔ /etc/php/,
/// `postgresql@15-main.service` ↔ /etc/postgresql/); all of them if none does.
fn daemon_config(
    unit: &str,
    instances: &BTreeSet<InstanceId>,
    instance_files: &BTreeMap<InstanceId, Vec<(String, bool)>>,
    files: &BTreeMap<String, FileOut>,
) -> Vec<String> {
    fn stem(s: &str) -> String {
        s.chars().take_while(|c| c.is_ascii_alphabetic()).collect()
    }
    let unit_stem = stem(unit);
    let candidates: Vec<&String> = instances
        .iter()
        .flat_map(|i| instance_files.get(i).into_iter().flatten())
        .filter(|(p, plain)| {
            *plain && !p.starts_with("/etc/infra/") && files.get(p).is_some_and(|f| !f.secret)
        })
        .map(|(p, _)| p)
        .collect();
    let related: Vec<String> = candidates
        .iter()
        .filter(|p| {
            let dir = stem(p.strip_prefix("/etc/").unwrap_or(""));
            !dir.is_empty()
                && !unit_stem.is_empty()
                && (dir.starts_with(&unit_stem) || unit_stem.starts_with(&dir))
        })
        .map(|p| p.to_string())
        .collect();
    if related.is_empty() {
        candidates.into_iter().cloned().collect()
    } else {
        related
    }
}

fn render_instance(
    model: &Model,
    i: InstanceId,
    h: HostId,
    engine: &mut Engine<'_>,
    hb: &mut HostState,
    trees: &crate::release::Trees,
    diags: &mut Vec<Diag>,
) {
    let inst = &model.instances[i];
    let role = role_of(model, i, h);
    let origin = inst.qualified();
    // made for the first template only: an instance of inline files needs
    // none, and on `all` it holds every host (a fleet's size, for every host)
    // and only a template that names `hosts` gets the placements' host lists
    // (on `all`, every host for every host: quadratic in a fleet's size)
    let full = std::cell::OnceCell::new();
    let light = std::cell::OnceCell::new();
    let ctx = |hosts: bool| {
        if hosts {
            full.get_or_init(|| context::instance_context_at(model, inst, h, true))
        } else {
            light.get_or_init(|| context::instance_context_at(model, inst, h, false))
        }
    };
    for r in &inst.resources {
        if !matches_role(r.only, role) {
            continue;
        }
        let who = Writer {
            origin: origin.clone(),
            span: r.span,
            place: inst.name.span,
            instance: Some(i),
        };
        let at = Use {
            span: r.span,
            origin: &origin,
            instance_span: inst.span,
        };
        // A resource made for one element of a list parameter: its template
        // sees the parameter as that element. Made only for a template (the
        // context holds the placement's hosts: copying it for every element of
        // every host's inline files was cubic in a fleet's size).
        let rctx = |hosts: bool| {
            let mut c = ctx(hosts).clone();
            if let Some((p, v)) = &r.element {
                let j = context::value_json(model, v, h);
                // as instance_context places parameters: by name unless reserved
                if !context::RESERVED.contains(&p.as_str()) {
                    c.insert(p.clone(), j.clone());
                }
                if let Some(serde_json::Value::Object(params)) = c.get_mut("params") {
                    params.insert(p.clone(), j);
                }
            }
            c
        };
        let mut text = |source: &Source| -> Option<String> {
            match source {
                Source::Inline(s) => Some(s.clone()),
                Source::Template(path) => {
                    match engine.render(path, rctx(engine.uses_hosts(path)), &at) {
                        Ok(s) => Some(s),
                        Err(d) => {
                            diags.push(d);
                            None
                        }
                    }
                }
            }
        };
        match &r.kind {
            ResourceKind::Package { name } => hb.package(name),
            ResourceKind::Release {
                path,
                source,
                git,
                shared,
                keep,
                owner,
                group,
                reload,
                before_switch,
                migrate,
                ..
            } => {
                // An empty source manages nothing; a missing tree was reported
                // by `release::load`.
                let Some(tree) = trees.trees.get(&crate::release::key(source, git)) else {
                    continue;
                };
                let root_dir = |p: String| DirOut {
                    path: p,
                    mode: Mode::EXECUTABLE,
                    owner: "root".into(),
                    group: "root".into(),
                };
                for d in [
                    path.clone(),
                    format!("{path}/releases"),
                    format!("{path}/shared"),
                ] {
                    hb.directory(root_dir(d), who.clone(), diags);
                }
                for s in shared {
                    let d = DirOut {
                        owner: owner.clone(),
                        group: group.clone(),
                        ..root_dir(format!("{path}/shared/{s}"))
                    };
                    hb.directory(d, who.clone(), diags);
                }
                let out = ReleaseOut {
                    path: path.clone(),
                    hash: tree.hash.clone(),
                    source: source.clone(),
                    shared: shared.clone(),
                    keep: *keep,
                    owner: owner.clone(),
                    group: group.clone(),
                    reload: reload.clone(),
                    before_switch: before_switch.clone(),
                    migrate: migrate.clone(),
                    files: tree.files.clone(),
                    origin: who.origin.clone(),
                };
                for u in reload {
                    hb.unit_entry(u, &who).extra_reload.push(out.current());
                }
                match hb.out.releases.iter().find(|r| r.path == *path) {
                    Some(prev) if *prev != out => diags.push(
                        Diag::error(
                            codes::E0605,
                            format!("{} and {} declare release {path} differently", prev.origin, who.origin),
                        )
                        .at(who.place, format!("{} declares it", who.origin))
                        .help("one application directory, one release: give each application its own path"),
                    ),
                    Some(_) => {}
                    None => hb.out.releases.push(out),
                }
            }
            ResourceKind::User {
                name,
                home,
                system,
                shell,
                groups,
            } => {
                let mut u = UserOut {
                    name: name.clone(),
                    home: home.clone(),
                    system: *system,
                    shell: shell.clone(),
                    groups: groups.clone(),
                };
                u.groups.sort();
                u.groups.dedup();
                // One user declared by several resources: the same account, the
                // union of the supplementary groups they need.
                let same = |a: &UserOut, b: &UserOut| {
                    a.home == b.home && a.system == b.system && a.shell == b.shell
                };
                match hb.users.get_mut(name) {
                    Some((prev, first)) if !same(prev, &u) => {
                        let first = first.clone();
                        diags.push(conflict(
                            &format!("user {name}"),
                            &hb.out.host,
                            &first,
                            &who,
                        ))
                    }
                    Some((prev, _)) => {
                        prev.groups.extend(u.groups);
                        prev.groups.sort();
                        prev.groups.dedup();
                    }
                    None => {
                        hb.users.insert(name.clone(), (u, who));
                    }
                }
            }
            ResourceKind::Directory {
                path,
                mode,
                owner,
                group,
            } => {
                let d = DirOut {
                    path: path.clone(),
                    mode: *mode,
                    owner: owner.clone(),
                    group: group.clone(),
                };
                hb.directory(d, who, diags);
            }
            ResourceKind::File {
                path,
                mode,
                owner,
                group,
                source,
            } => {
                if let Some(content) = text(source) {
                    if mode.executable() && has_secret(&content) {
                        diags.push(misplaced_secret(
                            inst,
                            &content,
                            &format!("the script {path}"),
                        ));
                        continue;
                    }
                    let plain = !mode.executable();
                    hb.file(path, *mode, owner, group, content, who, plain, diags);
                }
            }
            // `unit "NAME" { enable = true start = true }` without template or content:
            // a unit the system already has (postgresql@15-main.service); manage its
            // state, never write its file.
            ResourceKind::Unit {
                name,
                source: Source::Inline(content),
                enable,
                start,
            } if content.is_empty() => hb.existing_unit(name, *enable, *start, who),
            ResourceKind::Unit {
                name,
                source,
                enable,
                start,
            } => {
                if let Some(content) = text(source) {
                    if has_secret(&content) {
                        diags.push(misplaced_secret(inst, &content, &format!("unit {name}")));
                        continue;
                    }
                    hb.unit(name, content, *enable, *start, who, diags);
                }
            }
            ResourceKind::Dropin { unit, source } => {
                if let Some(content) = text(source) {
                    if has_secret(&content) {
                        diags.push(misplaced_secret(
                            inst,
                            &content,
                            &format!("a drop-in of {unit}"),
                        ));
                        continue;
                    }
                    hb.dropin(unit, content, who, diags);
                }
            }
            ResourceKind::Step { name, run, unless } => {
                if has_secret(run) || unless.as_deref().is_some_and(has_secret) {
                    diags.push(
                        Diag::error(codes::E0609, format!("step `{name}` of {origin} contains a secret"))
                            .at(r.span, "a secret is interpolated into this command")
                            .with(inst.span, "in this instance")
                            .help("commands show up in process lists, plans and logs: write the secret into a file (it becomes 0600) and let the command read it"),
                    );
                    continue;
                }
                if let Some(prev) = hb.out.steps.iter().find(|s| s.name == *name) {
                    if prev.run != *run || prev.unless != *unless {
                        diags.push(
                            Diag::error(
                                codes::E0605,
                                format!(
                                    "{} and {origin} both declare step `{name}` on {}",
                                    prev.origin, hb.out.host
                                ),
                            )
                            .at(r.span, "declared again here")
                            .with(inst.span, "in this instance")
                            .help("step names must be unique per host"),
                        );
                    }
                    continue;
                }
                hb.out.steps.push(StepOut {
                    name: name.clone(),
                    run: run.clone(),
                    unless: unless.clone(),
                    origin: origin.clone(),
                });
            }
        }
    }
}

fn conflict(what: &str, host: &str, first: &Writer, who: &Writer) -> Diag {
    conflict_diag(
        format!(
            "{} and {} declare {what} on {host} differently",
            first.origin, who.origin
        ),
        first,
        who,
        "declare it once, or make both declarations identical".into(),
    )
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::disallowed_macros)]
// tests write temp dirs, say what they skip
mod tests;
