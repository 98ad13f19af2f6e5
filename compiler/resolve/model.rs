//! The typed model: what `resolve` produces and every later stage consumes.
//! Names are resolved to indices, types are checked, defaults applied, kinds expanded
//! into primitive resources. No AST, no unresolved strings. Every value keeps the
//! span it came from so lints and graph errors can point into the source.

pub use crate::encode::Mode;
use crate::source::{SourceMap, Span};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Typed indices into the model's tables: a host's id cannot index the groups.
/// `model.hosts[id]` works with the matching id only; `.index()` gives the
/// position (for per-host tables), `Id::new(i)` makes one from a position.
macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(usize);

        impl $name {
            pub const fn new(index: usize) -> Self {
                $name(index)
            }
            pub const fn index(self) -> usize {
                self.0
            }
        }

        impl std::ops::Index<$name> for Vec<$item> {
            type Output = $item;
            fn index(&self, id: $name) -> &$item {
                &self[id.0]
            }
        }

        impl std::ops::IndexMut<$name> for Vec<$item> {
            fn index_mut(&mut self, id: $name) -> &mut $item {
                &mut self[id.0]
            }
        }

        impl std::ops::Index<$name> for [$item] {
            type Output = $item;
            fn index(&self, id: $name) -> &$item {
                &self[id.0]
            }
        }
    };
}

id!(
    /// A host: `model.hosts[id]`.
    HostId,
    Host
);
id!(
    /// A failover group: `model.groups[id]`.
    GroupId,
    Group
);
pub type InstanceId = usize;

#[derive(Debug, Clone)]
pub struct Model {
    pub hosts: Vec<Host>,
    pub groups: Vec<Group>,
    pub instances: Vec<Instance>,
    /// Who may decrypt the repository's secrets (`admin NAME { key = "..." }`):
    /// `infra secrets` encrypts every secret to each of them.
    pub admins: Vec<Admin>,
    /// Every file loaded (the user's, imported ones and `std/...`).
    pub sources: SourceMap,
}

impl Model {
    /// The hosts a placement puts resources on, in declaration order.
    pub fn placement_hosts(&self, p: Placement) -> Vec<HostId> {
        match p {
            Placement::Host(h) => vec![h],
            Placement::Group(g) | Placement::Active(g) => {
                self.groups[g].members.iter().map(|m| m.value).collect()
            }
            Placement::All => self.host_ids().collect(),
        }
    }
}

/// An administrator: a name and a public key (an SSH ed25519 or RSA key, or an age
/// X25519 recipient `age1...`), checked when the configuration is resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    pub name: Spanned<String>,
    pub key: Spanned<String>,
}

/// A value with the span it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: Spanned<String>,
    /// The whole `host NAME { ... }` block.
    pub span: Span,
    pub address: Spanned<Ipv4Addr>,
    pub ssh: Ssh,
    /// `tags = [...]`: what `--limit @TAG` selects it by.
    pub tags: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ssh {
    /// Default `root`.
    pub user: String,
    /// Default 22.
    pub port: u16,
    /// Private key file as written (`~/` is the user's home, a relative path is under
    /// the configuration's directory: [`Ssh::key_path`]); default: ssh-agent, then
    /// ~/.ssh/id_ed25519, ~/.ssh/id_rsa.
    pub key: Option<String>,
}

impl Ssh {
    /// The key file to use: `~` or `~/...` under `home` (the user's $HOME), a relative
    /// path under `dir` (the configuration's directory), an absolute one as is.
    /// Without `home`, `~/...` stays as written (the file is then not found, and the
    /// error names it).
    pub fn key_path(&self, dir: &Path, home: Option<&Path>) -> Option<PathBuf> {
        let k = self.key.as_deref()?;
        let under_home = match k.strip_prefix('~') {
            Some("") => Some(""),
            Some(rest) => rest.strip_prefix('/'),
            None => None,
        };
        Some(match (under_home, home) {
            (Some(rest), Some(home)) => home.join(rest),
            (Some(_), None) => PathBuf::from(k),
            (None, _) if Path::new(k).is_relative() => dir.join(k),
            (None, _) => PathBuf::from(k),
        })
    }
}

impl Default for Ssh {
    fn default() -> Self {
        Ssh {
            user: "root".into(),
            port: 22,
            key: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: Spanned<String>,
    pub span: Span,
    /// In preference order: the first is the usual primary. Never empty.
    pub members: Vec<Spanned<HostId>>,
    pub vip: Spanned<Cidr>,
    pub interface: Spanned<String>,
    pub check: Spanned<Check>,
    /// Debian packages the check's command needs (`check_packages`), installed on
    /// every member before keepalived runs the check.
    pub check_packages: Vec<Spanned<String>>,
    /// `virtual_router_id`: explicit, or derived deterministically (unique per interface).
    pub router_id: Spanned<u8>,
    /// One priority per member, same order (explicit `priorities = [...]` or 150, 100, 50, ...).
    pub priorities: Spanned<Vec<u8>>,
    /// `witness = HOST`: a third host whose vote (etcd) makes a majority of
    /// three; only on a group of two members, never one of them.
    pub witness: Option<Spanned<HostId>>,
}

impl Model {
    /// Every host's id, in declaration order.
    pub fn host_ids(&self) -> impl Iterator<Item = HostId> {
        (0..self.hosts.len()).map(HostId::new)
    }
    /// The host called `name`.
    pub fn host_id(&self, name: &str) -> Option<HostId> {
        self.hosts
            .iter()
            .position(|h| h.name.value == name)
            .map(HostId::new)
    }
    /// Every failover group's id, in declaration order.
    pub fn group_ids(&self) -> impl Iterator<Item = GroupId> {
        (0..self.groups.len()).map(GroupId::new)
    }
}

impl Group {
    /// Index into `members` of a host, if it is a member.
    pub fn position(&self, host: HostId) -> Option<usize> {
        self.members.iter().position(|m| m.value == host)
    }

    /// The hosts of the etcd cluster of a group with a witness: its members in
    /// order, then the witness (empty without a witness).
    pub fn witness_cluster(&self) -> Vec<HostId> {
        let Some(w) = &self.witness else {
            return Vec::new();
        };
        self.members
            .iter()
            .map(|m| m.value)
            .chain(std::iter::once(w.value))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix as u32)
        };
        (u32::from(self.addr) & mask) == (u32::from(ip) & mask)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A health check, from `http("...")`, `tcp(PORT)` or `exec("...")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Http(String),
    Tcp(u16),
    Exec(String),
}

/// Where an instance's resources go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placement {
    /// One host.
    Host(HostId),
    /// Every member of a group (`on = office`).
    Group(GroupId),
    /// Every member of a group, effective only on the member holding the VIP
    /// (`on = office.active`).
    Active(GroupId),
    /// Every declared host (`on = all`).
    All,
}

/// One instance of a kind (`postgres main { ... }`, `share uploads { ... }`), with
/// its parameters type-checked and its body expanded into primitive resources.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Kind name, e.g. `postgres`.
    pub kind: Spanned<String>,
    pub name: Spanned<String>,
    pub span: Span,
    pub placement: Spanned<Placement>,
    /// Declared parameters in declaration order, each with its final value.
    pub params: Vec<Param>,
    pub resources: Vec<Resource>,
    /// `needs = [postgres.main]`
    pub needs: Vec<Spanned<InstanceId>>,
}

impl Instance {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
    /// `kind.name`, how users refer to it.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.kind.value, self.name.value)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub ty: Type,
    pub value: Value,
    /// Where the value was written (the attribute in the instance, or the default in the kind).
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// One line: no newline or other control character (kind parameters).
    String,
    /// Any text, several lines included (a command, a script).
    Text,
    /// A user or group name (`www-data`): lower-case letters, digits, `_`, `-`.
    User,
    Int,
    /// An integer 0 or above (counts, ids, offsets).
    Uint,
    /// A TCP/UDP port, 1 to 65535.
    Port,
    Bool,
    Duration,
    /// A systemd calendar expression (`OnCalendar=`); `""` means none.
    Calendar,
    Ip,
    Cidr,
    Host,
    Failover,
    Placement,
    Secret,
    Check,
    /// A reference to an instance (`postgres.main`).
    Ref,
    /// A reference to an instance of the named kind (`cluster: postgres`).
    Kind(String),
    List(Box<Type>),
}

impl std::fmt::Display for Type {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Type::String => write!(f, "string"),
            Type::Text => write!(f, "text"),
            Type::User => write!(f, "user"),
            Type::Int => write!(f, "int"),
            Type::Uint => write!(f, "uint"),
            Type::Port => write!(f, "port"),
            Type::Bool => write!(f, "bool"),
            Type::Duration => write!(f, "duration"),
            Type::Calendar => write!(f, "calendar"),
            Type::Ip => write!(f, "ip"),
            Type::Cidr => write!(f, "cidr"),
            Type::Host => write!(f, "host"),
            Type::Failover => write!(f, "failover"),
            Type::Placement => write!(f, "placement"),
            Type::Secret => write!(f, "secret"),
            Type::Check => write!(f, "check"),
            Type::Ref => write!(f, "ref"),
            Type::Kind(k) => write!(f, "{k}"),
            Type::List(t) => write!(f, "[{t}]"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    /// Seconds.
    Duration(u64),
    Ip(Ipv4Addr),
    Cidr(Cidr),
    Host(HostId),
    Group(GroupId),
    Placement(Placement),
    /// The secret's name; its value is never in the model.
    Secret(String),
    Check(Check),
    Instance(InstanceId),
    List(Vec<Value>),
}

/// Which members of a placement group a resource applies to, by preference role
/// at build time (the first member is `primary`). Runtime changes of the active
/// member are handled by the generated scripts, not by the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    Any,
    Primary,
    Standby,
}

/// A primitive resource from a kind body. Strings are fully interpolated.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub span: Span,
    pub only: Role,
    pub kind: ResourceKind,
    /// Made for one element of a list parameter (its label interpolates the
    /// list): the parameter and that element. Its template sees the parameter
    /// as the element, like its attributes do.
    pub element: Option<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `template = "postgres/infra.conf.hbs"`: a handlebars template, looked up in the
    /// user's `templates/` then in the embedded stdlib.
    Template(String),
    /// `content = "..."`
    Inline(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResourceKind {
    /// `package "postgresql-15" {}`
    Package { name: String },
    /// `user "app" { home = "/srv/app" system = true shell = "/bin/sh" groups = ["www-data"] }`
    User {
        name: String,
        home: Option<String>,
        system: bool,
        /// Login shell (default: /usr/sbin/nologin for system users).
        shell: Option<String>,
        /// Supplementary groups (they must exist).
        groups: Vec<String>,
    },
    /// `directory "/srv/app" { mode = "0755" owner = "app" group = "app" }`
    Directory {
        path: String,
        mode: Mode,
        owner: String,
        group: String,
    },
    /// `file "/etc/x" { template = "x.hbs" mode = "0644" }`
    File {
        path: String,
        mode: Mode,
        owner: String,
        group: String,
        source: Source,
    },
    /// `unit "infra-x.service" { template = "..." enable = true start = true }`:
    /// written to /etc/systemd/system/NAME.
    Unit {
        name: String,
        source: Source,
        enable: bool,
        start: bool,
    },
    /// `dropin "postgresql@15-main.service" { template = "..." }`:
    /// written to /etc/systemd/system/UNIT.d/infra.conf.
    Dropin { unit: String, source: Source },
    /// `release "/srv/app" { source = "app" shared = ["uploads"] keep = 5 }`: the
    /// application's files from the repo's `source` directory, installed as
    /// `PATH/releases/HASH/` with `PATH/current` switched to it; `shared`
    /// directories live in `PATH/shared/` (owned by `owner`/`group`) and are linked
    /// into every release; `reload` units are reloaded when `current` moves. An
    /// empty `source` manages nothing (kinds have no conditionals).
    Release {
        path: String,
        source: String,
        source_span: Span,
        /// A commit of the repository (`"v1.4"`, a tag, branch or hash) to take
        /// `source` from instead of the working tree; `""`: the working tree.
        git: String,
        git_span: Span,
        shared: Vec<String>,
        shared_span: Span,
        keep: u32,
        owner: String,
        group: String,
        reload: Vec<String>,
        /// Hooks, run in the new release as `owner`: `before_switch` on every
        /// member once it is assembled, `migrate` once per release on the member
        /// rolled last (the VIP holder), before its switch.
        before_switch: String,
        migrate: String,
    },
    /// `step "create-role" { run = "..." unless = "..." }`: a guarded one-shot
    /// command; skipped when `unless` exits 0.
    Step {
        name: String,
        run: String,
        unless: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::Ssh;
    use std::path::{Path, PathBuf};

    #[test]
    fn key_paths() {
        let key = |k: &str| Ssh {
            key: Some(k.into()),
            ..Ssh::default()
        };
        let (dir, home) = (Path::new("/repo"), Some(Path::new("/home/me")));
        let at = |k: &str, home| key(k).key_path(dir, home);
        assert_eq!(
            at("~/.ssh/id", home),
            Some(PathBuf::from("/home/me/.ssh/id"))
        );
        assert_eq!(at("~", home), Some(PathBuf::from("/home/me")));
        assert_eq!(at("keys/id", home), Some(PathBuf::from("/repo/keys/id")));
        assert_eq!(at("/etc/k", home), Some(PathBuf::from("/etc/k")));
        // `~user/` is refused by resolve; without a HOME, `~` stays as written.
        assert_eq!(at("~/id", None), Some(PathBuf::from("~/id")));
        assert_eq!(Ssh::default().key_path(dir, home), None);
    }
}
