//! Every diagnostic code, with a one-line summary: the registry.
//!
//! Codes are stable (a code is never reused for another problem). Ranges: E00xx syntax,
//! E01xx names and references, E02xx types and values, E03xx imports and files, E04xx
//! graph, E05xx/W05xx distributed-systems lints, E06xx rendering and templates (all in
//! docs/language.md; E06xx also in docs/stdlib.md), E070x–E073x transport, probe, plan and
//! apply (docs/plan-apply.md), E076x `infra init --from` (docs/init.md), E078x–E079x the lab
//! (docs/lab.md).
//!
//! The front end (syntax, resolve, lint, graph, render, stdlib) names its codes through
//! these constants (`codes::E0101`), so a code it uses is one the registry has; the back
//! end still writes literals. tests/suite/codes.rs checks that every code the sources
//! use is here, and that this table and the docs list the same codes.

/// One registered code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// `E0101`, `W0506`, ...
    pub code: &'static str,
    /// What it means, in one line.
    pub summary: &'static str,
}

macro_rules! codes {
    ($($code:ident: $summary:literal,)*) => {
        $(
            #[doc = $summary]
            pub const $code: &str = stringify!($code);
        )*
        /// Every code, sorted.
        pub static ALL: &[Code] = &[$(Code { code: stringify!($code), summary: $summary }),*];
    };
}

codes! {
    // Syntax.
    E0001: "unexpected character",
    E0002: "unexpected token: something else was expected here",
    E0003: "unclosed block: `{` without `}`",
    E0004: "unclosed list: `[` without `]`",
    E0005: "unclosed call or parameter list: `(` without `)`",
    E0006: "missing `=` after an attribute name",
    E0007: "unknown escape in a string",
    E0008: "unterminated string",
    E0009: "nesting too deep (more than 64 levels)",
    E0010: "unterminated interpolation",
    E0011: "empty interpolation",
    E0012: "invalid interpolation: not a name or dotted name",
    E0013: "integer out of range (64 bits)",
    E0014: "expected an expression",
    E0015: "attribute outside a block",
    E0016: "closing delimiter without an opening one",
    E0017: "invalid number (a string was meant)",
    E0018: "keyword used as a name",
    E0019: "more than 100 syntax errors in one file: the rest are counted, not shown",
    // Names and references.
    E0101: "a name defined twice",
    E0102: "unknown reference",
    E0103: "a reference of the wrong kind (a group where a host is expected)",
    E0104: "unknown block kind or resource",
    E0105: "unknown attribute or unexpected block",
    E0106: "missing required attribute",
    E0107: "attribute set twice",
    E0109: "a block without a name, or a quoted name where an identifier is expected",
    E0110: "a kind without a placement parameter",
    E0111: "a `let` defined in terms of itself",
    E0112: "unknown function",
    E0113: "unknown field",
    E0114: "instances whose parameters refer to each other",
    // Types and values.
    E0201: "wrong type",
    E0202: "invalid duration",
    E0203: "invalid IPv4 address",
    E0204: "invalid CIDR",
    E0205: "unknown type in a kind's parameters",
    E0206: "value out of range or malformed",
    E0207: "a failover group without members",
    E0208: "a member listed twice, or a wrong number of function arguments",
    E0209: "priorities do not match members",
    E0210: "both `template` and `content`",
    E0211: "invalid `only` role",
    E0212: "invalid file mode",
    E0213: "a value that cannot be interpolated into a string",
    E0214: "invalid systemd calendar expression",
    E0215: "a resource path that is not absolute and normalised",
    E0216: "an invalid unit, package, user or step name",
    E0217: "a secret in a resource's name or path",
    E0218: "a witness that is a member, or on a group that is not of two members",
    E0219: "an admin key that is not an SSH (ed25519, RSA) or age public key",
    // Imports and files.
    E0301: "file or module not found, or unreadable",
    E0302: "import cycle",
    E0303: "file is not UTF-8",
    E0304: "file too large",
    E0305: "no `.infra` files in the directory",
    E0306: "interpolated import path",
    // Graph.
    E0401: "dependency cycle in `needs`",
    // Distributed-systems lints.
    E0501: "two failover groups with one `virtual_router_id` on one interface",
    E0502: "equal priorities in a group",
    E0503: "VIP outside the members' subnet",
    E0504: "VIP equal to a member's address",
    E0505: "a share pushed in both directions",
    W0506: "a share or database on a group with one member",
    W0507: "an `on = all` job writing into a replicated share",
    W0508: "an app and the database it needs follow different groups",
    W0509: "a job on a whole group (runs on every member)",
    E0510: "two hosts with one address",
    W0511: "priorities not in member order",
    E0512: "a job without a schedule, or with both `calendar` and `every`",
    E0513: "a share pushed from a host, not from a failover group's active member",
    E0514: "a PostgreSQL version the target distribution does not ship",
    E0515: "a share path that is a system directory, or holds characters rsync or a shell would interpret",
    E0516: "a file where another resource on the host needs a directory",
    E0517: "a share whose group is a privileged system group (the receiving account joins it)",
    W0518: "a database on a group of two members without a witness (both can become primary)",
    E0519: "a host in two witness clusters (groups with a witness and different hosts)",
    E0520: "an alert without a recipient, sending email without a smarthost, or with a disk threshold that never or always fires",
    E0521: "a postgres_backup or mariadb_backup with nowhere safe to keep its backups, no retention, no schedule, or a second one for a server",
    E0522: "share_snapshots that keep nothing, or two of them for one share",
    // Rendering and templates.
    E0601: "template not found",
    E0602: "template does not parse",
    E0603: "a template uses a variable its context does not have",
    E0604: "a template failed (`{{fail}}` from a kind, or a helper error)",
    E0605: "two resources declare one file, unit, step, user or directory differently on a host",
    E0607: "a template printed a whole object",
    E0608: "a file under the repository's `templates/` cannot be read",
    E0609: "a secret inside a step's command",
    E0610: "a secret where it would be world-readable or unusable (a command, a unit, the environment)",
    E0611: "a shell template interpolates a value that is not a plain word without quoting it",
    E0621: "a release source that is not a readable directory of files",
    E0622: "a release source outside the repository (absolute, `..`, or a symbolic link pointing out)",
    E0623: "a release's shared directory that is malformed or also in the release",
    E0624: "a release's `git` names no commit of the repository",
    // Transport and probe.
    E0701: "address cannot be resolved (or is empty)",
    E0702: "TCP connect failed: refused, or no answer within the connect timeout",
    E0703: "SSH handshake failed or timed out",
    E0704: "host key unknown",
    E0705: "host key changed: nothing was done",
    E0706: "known_hosts file unreadable or unwritable",
    E0707: "authentication failed",
    E0708: "sudo needs a password, or is not installed",
    E0709: "command timeout",
    E0710: "channel error (connection broke, script too large for `sh -c`)",
    E0711: "a managed path or name cannot be sent",
    E0712: "the probe script failed on the host",
    E0713: "the probe's answer cannot be read",
    // Plan and apply.
    E0720: "the host lock is held",
    E0721: "the host changed since the plan, or the generation number is taken",
    E0722: "the plan has conflicts",
    E0723: "a step failed",
    E0724: "a failover group's health check failed after the switch: rolled back",
    E0725: "the switch could not be confirmed over a new connection",
    E0726: "the switch was undone (the timer fired) before it was confirmed",
    E0727: "a script's answer cannot be read",
    E0728: "no such generation",
    E0729: "the connection broke during the switch: the host finishes or undoes it by itself",
    E0730: "a secret without a value",
    E0731: "`--lab`: the lab is not up",
    E0732: "`plan --out FILE`: the file cannot be written",
    E0733: "`--confirm-timeout` below 10 s",
    E0734: "a saved plan cannot be used",
    E0735: "no such host in the configuration",
    E0736: "a secret's value cannot be written in the format of the file it goes into",
    E0740: "the secrets store cannot be read: a corrupt or truncated `.age` file, or a file not named after a secret",
    E0741: "none of your identities can decrypt a secret of the store",
    E0742: "an identity that cannot be used: unreadable, readable by others, not a private key, or a wrong passphrase",
    E0743: "a secret name outside `[a-z0-9_]`",
    E0744: "a plaintext secrets file inside a git work tree that git does not ignore",
    E0745: "a plaintext secrets file readable by group or others",
    W0746: "a secret in the store that nothing uses",
    E0747: "no `admin` to encrypt secrets to, or the store cannot be written",
    E0750: "a `--limit` selector that matches no host, failover group or tag",
    E0751: "`--limit` selects part of a failover group (apply without `--allow-partial-group`)",
    E0760: "the machine `infra init --from` reads is not Debian or Ubuntu",
    E0761: "`infra init --from`'s discovery on the machine stopped before its end",
    E0762: "the configuration `infra init --from` wrote does not check (a bug of the translation)",
    E0763: "`infra init` cannot start: a directory that is not empty (without `--force`), or a `--from` that is not `[USER@]HOST[:PORT]`",
    // The lab.
    E0780: "not Linux",
    E0781: "not root",
    E0782: "a tool is missing",
    E0783: "the lab cannot be built from the configuration",
    E0784: "the lab is not up",
    E0785: "no such host in the lab",
    E0786: "the host is powered off",
    E0787: "the running lab was started from a different configuration",
    E0788: "the image build failed",
    E0789: "a host did not become ready in time",
    E0790: "a system command failed",
    E0791: "a file operation failed",
    E0792: "the kernel's inotify limits are too low for the lab's hosts",
}

/// The registered code `code`, if there is one.
pub fn lookup(code: &str) -> Option<&'static Code> {
    ALL.iter().find(|c| c.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sorted_unique_and_summarised() {
        for w in ALL.windows(2) {
            assert!(
                w[0].code[1..] < w[1].code[1..],
                "{} before {}",
                w[0].code,
                w[1].code
            );
        }
        for c in ALL {
            let ok = c.code.len() == 5
                && matches!(c.code.as_bytes()[0], b'E' | b'W')
                && c.code[1..].bytes().all(|b| b.is_ascii_digit());
            assert!(ok, "malformed code {}", c.code);
            assert!(!c.summary.is_empty() && !c.summary.contains('\n'));
        }
        assert_eq!(lookup(E0101).map(|c| c.code), Some("E0101"));
        assert!(lookup("E01").is_none());
    }
}
