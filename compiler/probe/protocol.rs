//! The probe's answer: NUL-terminated records `TAG<TAB>body`. [`Tag`] is the one
//! definition of the protocol: the script emits records only through
//! [`Tag::printf`] / [`Tag::base64_of`], the reader dispatches on
//! [`Tag::from_byte`], the fingerprint is [`Tag::in_fingerprint`], and
//! docs/plan-apply.md lists [`Tag::doc`] of every tag (tested).

/// Version of the protocol (the body of the [`Tag::Version`] record).
pub const VERSION: &str = "3";

/// Every record the probe prints, in the order the script prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tag {
    Version,
    Hostname,
    MachineId,
    BootId,
    Generation,
    Manifest,
    Lock,
    Recovered,
    Latest,
    Addresses,
    Absent,
    Stat,
    Hash,
    Fetched,
    Blob,
    Release,
    ReleaseList,
    Systemd,
    UnitList,
    UnitShow,
    Packages,
    Users,
    Guard,
    Status,
    End,
}

impl Tag {
    pub const ALL: &'static [Tag] = &[
        Tag::Version,
        Tag::Hostname,
        Tag::MachineId,
        Tag::BootId,
        Tag::Generation,
        Tag::Manifest,
        Tag::Lock,
        Tag::Recovered,
        Tag::Latest,
        Tag::Addresses,
        Tag::Absent,
        Tag::Stat,
        Tag::Hash,
        Tag::Fetched,
        Tag::Blob,
        Tag::Release,
        Tag::ReleaseList,
        Tag::Systemd,
        Tag::UnitList,
        Tag::UnitShow,
        Tag::Packages,
        Tag::Users,
        Tag::Guard,
        Tag::Status,
        Tag::End,
    ];

    /// The record's first byte on the wire.
    pub fn letter(self) -> char {
        match self {
            Tag::Version => 'V',
            Tag::Hostname => 'I',
            Tag::MachineId => 'K',
            Tag::BootId => 'O',
            Tag::Generation => 'G',
            Tag::Manifest => 'M',
            Tag::Lock => 'L',
            Tag::Recovered => 'Z',
            Tag::Latest => 'N',
            Tag::Addresses => 'R',
            Tag::Absent => 'A',
            Tag::Stat => 'S',
            Tag::Hash => 'H',
            Tag::Fetched => 'X',
            Tag::Blob => 'B',
            Tag::Release => 'J',
            Tag::ReleaseList => 'F',
            Tag::Systemd => 'Y',
            Tag::UnitList => 'Q',
            Tag::UnitShow => 'U',
            Tag::Packages => 'P',
            Tag::Users => 'W',
            Tag::Guard => 'C',
            Tag::Status => 'T',
            Tag::End => 'E',
        }
    }

    /// The body, as documented in docs/plan-apply.md.
    pub fn doc(self) -> &'static str {
        match self {
            Tag::Version => "protocol version (3)",
            Tag::Hostname => "the host's hostname",
            Tag::MachineId => "/etc/machine-id",
            Tag::BootId => "the kernel's boot id (a lock taken in another boot is stale)",
            Tag::Generation => "target of generations/current",
            Tag::Manifest => "base64 of the current generation's manifest.json",
            Tag::Lock => "base64 of the lock's facts (holder, phase, token, boot, whether its processes live)",
            Tag::Recovered => "base64 of what the last recovery did (an interrupted switch undone or finished)",
            Tag::Latest => "highest generation number present",
            Tag::Addresses => "`ip -o -4 addr show` (text)",
            Tag::Absent => "<path>: the path does not exist",
            Tag::Stat => "<rawmode hex> <perm> <owner> <group> <size> <path>: lstat of an existing path",
            Tag::Hash => "<sha256> <path>: hash of a regular file",
            Tag::Fetched => "base64 of NUL-separated paths: non-secret build files whose hash differs (<= 1 MiB)",
            Tag::Blob => "base64 of their contents, concatenated in the order of the fetched list",
            Tag::Release => "<0|1> <current> <path>: whether the build's release of the application at path is on the host, and the release `current` points to",
            Tag::ReleaseList => "<path> <base64>: the file list (`sha256 mode path` lines) of the current release, when the build's is not on the host",
            Tag::Systemd => "0|1: systemd runs",
            Tag::UnitList => "the units asked about, a line each (text)",
            Tag::UnitShow => "`systemctl show` for them (text)",
            Tag::Packages => "base64 of `dpkg-query -W` for the build's packages",
            Tag::Users => "base64 of the build's users that exist, each with its groups",
            Tag::Guard => "<status> <step>: exit status of a step's `unless` guard",
            Tag::Status => "base64 of the status section's answer (`infra status` only: VIP, database roles, pushes, jobs, disks)",
            Tag::End => "0: the end (a missing end record means the answer was cut)",
        }
    }

    /// Records the plan's file actions depend on: apply recomputes their hash on
    /// the host (after taking the lock) and refuses when it differs.
    pub fn in_fingerprint(self) -> bool {
        matches!(
            self,
            Tag::Generation | Tag::Latest | Tag::Absent | Tag::Stat | Tag::Hash | Tag::Release
        )
    }

    pub fn from_byte(b: u8) -> Option<Tag> {
        Tag::ALL
            .iter()
            .copied()
            .find(|t| t.letter() as u32 == b as u32)
    }

    /// A sh command printing this record with `printf FORMAT ARGS` (FORMAT is
    /// the body's format, e.g. `%s`; ARGS already quoted sh words).
    pub fn printf(self, format: &str, args: &str) -> String {
        if args.is_empty() {
            format!("printf '{}'", self.format(format))
        } else {
            format!("printf '{}' {args}", self.format(format))
        }
    }

    /// The record as a printf-style format (`S\t%f...\0`), for commands that
    /// take one (`stat --printf`).
    pub fn format(self, body: &str) -> String {
        format!("{}\\t{body}\\0", self.letter())
    }

    /// Like [`Tag::base64_of`], the base64 after a key (`KEY<TAB>BASE64`);
    /// `key` is one quoted sh word.
    pub fn keyed_base64_of(self, key: &str, command: &str) -> String {
        format!(
            "printf '{}\\t%s\\t' {key}; {command} | base64 -w0; printf '\\0'",
            self.letter()
        )
    }

    /// The records whose body is text as a command printed it, not base64:
    /// what they carry cannot hold a NUL (addresses, unit names, `systemctl
    /// show`), and a `base64` process less each is a few ms of every probe.
    pub fn raw(self) -> bool {
        matches!(self, Tag::Addresses | Tag::UnitList | Tag::UnitShow)
    }

    /// A sh command printing this record with what `command` writes to stdout
    /// as it is (a [`Tag::raw`] record).
    pub fn raw_of(self, command: &str) -> String {
        debug_assert!(self.raw(), "{self:?} is a base64 record");
        format!("printf '{}\\t'; {command}; printf '\\0'", self.letter())
    }

    /// A sh command printing this record with the base64 of the file `path` (a
    /// quoted sh word): one process, `base64` reading the file itself.
    pub fn base64_file(self, path: &str) -> String {
        format!(
            "printf '{}\\t'; base64 -w0 < {path}; printf '\\0'",
            self.letter()
        )
    }

    /// A sh command printing this record with the base64 of what `command`
    /// writes to stdout (e.g. `base64 -w0 < FILE` is `base64_of("cat FILE")`;
    /// `command` may be a pipeline or a redirection of `base64 -w0`).
    pub fn base64_of(self, command: &str) -> String {
        format!(
            "printf '{}\\t'; {command} | base64 -w0; printf '\\0'",
            self.letter()
        )
    }
}

/// The end of a sh pipeline that turns the probe's answer into
/// [`super::Observed::fingerprint`]: `( PROBE SCRIPT ) | fingerprint_pipe()`
/// prints the same 64 hex digits the reader computed, if nothing the plan
/// depends on changed.
pub fn fingerprint_pipe() -> String {
    let letters: Vec<String> = Tag::ALL
        .iter()
        .filter(|t| t.in_fingerprint())
        .map(|t| t.letter().to_string())
        .collect();
    format!(
        "tr '\\0' '\\n' | grep -a -E \"^({})$(printf '\\t')\" | sha256sum | cut -c1-64",
        letters.join("|")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn letters_are_unique_and_round_trip() {
        let letters: BTreeSet<char> = Tag::ALL.iter().map(|t| t.letter()).collect();
        assert_eq!(letters.len(), Tag::ALL.len());
        for t in Tag::ALL {
            assert_eq!(Tag::from_byte(t.letter() as u8), Some(*t));
        }
        assert_eq!(Tag::from_byte(b'?'), None);
    }

    /// docs/plan-apply.md lists every tag with its meaning, and no other.
    #[test]
    fn documented() {
        let doc = include_str!("../../docs/plan-apply.md");
        for t in Tag::ALL {
            let row = format!("| `{}` | {} |", t.letter(), t.doc().replace('|', "\\|"));
            assert!(doc.contains(&row), "docs/plan-apply.md lacks the row {row}");
        }
        let table = doc
            .split("| record | meaning |")
            .nth(1)
            .and_then(|t| t.split("\n\n").next())
            .unwrap_or("");
        let rows = table.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(
            rows,
            Tag::ALL.len(),
            "the table has exactly one row per tag"
        );
    }
}
