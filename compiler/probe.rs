//! Stage 6: read a host's observed state over SSH in ONE remote command.
//! Entry point: [`probe`].
//!
//! The remote side is a POSIX sh script (no other interpreter) built by
//! [`probe_script`]; it answers with NUL-terminated, tab-separated tagged records
//! that [`parse_probe_output`] turns into an [`Observed`] value:
//!
//! ```text
//! V 1                          protocol version
//! I <hostname>  K <machine-id>
//! G <target of generations/current>   M <base64 manifest.json>   L <base64 lock holder>
//! N <highest generation number>        R <base64 `ip -o -4 addr show`>
//! A <path>                     path absent
//! S <rawmode hex> <perm> <owner> <group> <size> <path>   lstat of an existing path
//! H <sha256> <path>            hash of a regular file
//! X <base64 NUL-separated paths>  non-secret build files whose hash differs (<= 1 MiB)
//! B <base64 bytes>             their contents, concatenated in X order (split by S sizes,
//!                              each piece checked against its H hash)
//! Y 0|1                        systemd running?
//! Q <base64 unit list>  U <base64 `systemctl show` output>
//! P <base64 dpkg-query output>     W <base64 existing user names>
//! C <status> <step name>       exit status of the step's `unless` guard
//! E 0                          end (a missing E means the answer was cut)
//! ```
//! Paths are the last field, so they may hold tabs and spaces; managed paths must
//! be absolute and hold no newline or NUL (checked before anything is sent).

use crate::render::HostBuild;
use crate::shell::{base64_decode, quote};
use crate::transport::{Remote, TransportError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Where infra keeps its state on a host.
pub const STATE_DIR: &str = "/var/lib/infra";

/// Largest file content the probe brings back for a diff (bytes).
pub const CONTENT_LIMIT: u64 = 1024 * 1024;

/// The manifest of one generation, written by apply as
/// `STATE_DIR/generations/N/manifest.json`, next to `paths` (managed file paths,
/// one per line) and `units` (managed unit names, one per line) that the probe
/// script reads without a JSON parser.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub host: String,
    pub generation: u64,
    /// Keyed by absolute path.
    pub files: BTreeMap<String, ManifestFile>,
    pub units: Vec<ManifestUnit>,
    pub packages: Vec<String>,
    /// Steps that have run: name -> sha256 of their `run` text.
    #[serde(default)]
    pub steps: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub mode: String,
    pub owner: String,
    pub group: String,
    /// sha256 of the build content (secrets as placeholders).
    pub sha256: String,
    /// sha256 of the bytes written on the host (secrets substituted).
    pub installed_sha256: String,
    pub secret: bool,
    pub origin: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestUnit {
    pub name: String,
    pub enable: bool,
    pub start: bool,
    /// Files whose change restarts the unit (for rollback between generations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_on: Vec<String>,
    /// Files whose change reloads the unit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reload_on: Vec<String>,
}

/// Everything the probe saw on one host. Plain data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub host: String,
    pub hostname: String,
    pub machine_id: String,
    /// Every path asked about: the build's files and directories, and the files
    /// of the current generation's manifest.
    pub paths: BTreeMap<String, PathState>,
    /// False when systemd is not running there; `units` is then empty.
    pub systemd: bool,
    pub units: BTreeMap<String, UnitState>,
    /// Installed packages among those asked about: name -> version.
    pub packages: BTreeMap<String, String>,
    /// Users (among those the build declares) that exist.
    pub users: BTreeSet<String>,
    /// Current generation number, if any.
    pub generation: Option<u64>,
    pub manifest: Option<Manifest>,
    /// Set when a manifest exists but cannot be read.
    pub manifest_error: Option<String>,
    /// Holder of the host lock (`STATE_DIR/lock/holder`) if it is held.
    pub lock: Option<String>,
    /// Highest generation number present under `generations/` (apply makes the next).
    #[serde(default)]
    pub latest_generation: Option<u64>,
    /// IPv4 addresses on the host's interfaces, `addr/prefix` (who holds a VIP).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Exit status of each guarded step's `unless` command (0: nothing to do).
    #[serde(default)]
    pub guards: BTreeMap<String, i32>,
    /// sha256 of the records the plan's file actions depend on (G, N, A, S, H, in
    /// order); apply recomputes it on the host and refuses when it differs.
    #[serde(default)]
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PathState {
    Absent,
    File {
        mode: String,
        owner: String,
        group: String,
        size: u64,
        /// None if the file could not be read.
        sha256: Option<String>,
        /// Brought back only for non-secret build files that differ.
        content: Option<Content>,
    },
    Directory {
        mode: String,
        owner: String,
        group: String,
    },
    Symlink {
        owner: String,
        group: String,
    },
    Other {
        mode: String,
        owner: String,
        group: String,
    },
}

impl PathState {
    pub fn kind(&self) -> &'static str {
        match self {
            PathState::Absent => "absent",
            PathState::File { .. } => "file",
            PathState::Directory { .. } => "directory",
            PathState::Symlink { .. } => "symlink",
            PathState::Other { .. } => "special file",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    Text { text: String },
    Binary,
    TooLarge,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitState {
    pub id: String,
    /// loaded, not-found, masked, ...
    pub load_state: String,
    /// active, inactive, failed, activating, ...
    pub active_state: String,
    pub sub_state: String,
    /// enabled, disabled, static, masked, ... (empty when not found)
    pub unit_file_state: String,
    /// "yes"/"no": whether the unit's conditions held at its last start.
    #[serde(default)]
    pub condition_result: String,
    /// When they were last checked (monotonic µs; "0" or empty: never).
    #[serde(default)]
    pub condition_timestamp: String,
}

impl UnitState {
    pub fn exists(&self) -> bool {
        self.load_state != "not-found" && !self.load_state.is_empty()
    }
    pub fn is_enabled(&self) -> bool {
        matches!(
            self.unit_file_state.as_str(),
            "enabled" | "enabled-runtime" | "alias" | "static" | "indirect" | "generated"
        )
    }
    pub fn is_active(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "reloading"
        )
    }
    /// Inactive because a `Condition...=` did not hold at its last start (e.g. an
    /// active-only unit on a standby): starting it again would change nothing.
    pub fn skipped_by_condition(&self) -> bool {
        !self.is_active()
            && self.active_state != "failed"
            && self.condition_result == "no"
            && !matches!(self.condition_timestamp.as_str(), "" | "0")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{host}: cannot manage path {path:?}: {why}")]
    BadPath {
        host: String,
        path: String,
        why: String,
    },
    #[error("{host}: the probe failed on the host (exit status {status}): {stderr}")]
    Remote {
        host: String,
        status: i32,
        stderr: String,
    },
    #[error("{host}: cannot read the probe's answer: {detail}")]
    Protocol { host: String, detail: String },
}

impl ProbeError {
    pub fn code(&self) -> &'static str {
        match self {
            ProbeError::Transport(e) => e.code(),
            ProbeError::BadPath { .. } => "E0711",
            ProbeError::Remote { .. } => "E0712",
            ProbeError::Protocol { .. } => "E0713",
        }
    }
    pub fn help(&self) -> String {
        match self {
            ProbeError::Transport(e) => e.help(),
            ProbeError::BadPath { .. } => {
                "managed paths must be absolute and hold no newline or NUL byte".into()
            }
            ProbeError::Remote { host, .. } => format!(
                "the probe needs a POSIX sh, GNU coreutils and findutils (stat, sha256sum, base64, xargs, find) on {host}; the stderr above says which command failed"
            ),
            ProbeError::Protocol { host, .. } => format!(
                "something on {host} printed into the probe's output (a login banner on stdout?) or the files changed while it ran: run it again"
            ),
        }
    }
    pub fn to_diag(&self) -> crate::diag::Diag {
        crate::diag::Diag::error(self.code(), self.to_string()).help(self.help())
    }
}

/// Every path the build manages (files and directories), in build order.
fn build_paths(build: &HostBuild) -> Vec<&str> {
    let mut out: Vec<&str> = build.files.keys().map(String::as_str).collect();
    out.extend(build.directories.iter().map(|d| d.path.as_str()));
    out
}

fn check_path(host: &str, path: &str) -> Result<(), ProbeError> {
    let why = if !path.starts_with('/') {
        "it is not absolute"
    } else if path.contains('\n') || path.contains('\0') {
        "it holds a newline or NUL byte"
    } else {
        return Ok(());
    };
    Err(ProbeError::BadPath {
        host: host.to_string(),
        path: path.to_string(),
        why: why.to_string(),
    })
}

fn check_word(host: &str, kind: &str, name: &str) -> Result<(), ProbeError> {
    if name.is_empty() || name.contains(['\n', '\0']) {
        return Err(ProbeError::BadPath {
            host: host.to_string(),
            path: name.to_string(),
            why: format!("a {kind} name must be non-empty and hold no newline or NUL byte"),
        });
    }
    Ok(())
}

/// Check what the probe will send. Public so apply can reuse it.
pub fn validate(build: &HostBuild) -> Result<(), ProbeError> {
    for p in build_paths(build) {
        check_path(&build.host, p)?;
    }
    for u in &build.units {
        check_word(&build.host, "unit", &u.name)?;
    }
    for p in &build.packages {
        check_word(&build.host, "package", p)?;
    }
    for u in &build.users {
        check_word(&build.host, "user", &u.name)?;
    }
    Ok(())
}

const SCRIPT_HEAD: &str = r#"set -u
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
umask 077
cur="$S/generations/current"
t=$(mktemp -d) || exit 90
trap 'rm -rf "$t"' EXIT
printf 'V\t1\0'
h=; if [ -r /proc/sys/kernel/hostname ]; then read -r h < /proc/sys/kernel/hostname; fi
printf 'I\t%s\0' "$h"
m=; if [ -r /etc/machine-id ]; then read -r m < /etc/machine-id; fi
printf 'K\t%s\0' "$m"
if [ -L "$cur" ]; then printf 'G\t%s\0' "$(readlink -- "$cur")"; fi
if [ -f "$cur/manifest.json" ]; then printf 'M\t'; base64 -w0 < "$cur/manifest.json"; printf '\0'; fi
if [ -d "$S/lock" ]; then printf 'L\t'; if [ -f "$S/lock/holder" ]; then base64 -w0 < "$S/lock/holder"; fi; printf '\0'; fi
n=; for d in "$S"/generations/[0-9]*; do d=${d##*/}; case $d in *[!0-9]*) ;; *) if [ -z "$n" ] || [ "$d" -gt "$n" ]; then n=$d; fi ;; esac; done
if [ -n "$n" ]; then printf 'N\t%s\0' "$n"; fi
printf 'R\t'; ip -o -4 addr show 2>/dev/null | base64 -w0; printf '\0'
exec 4>"$t/all" 5>"$t/reg"
c() {
  if [ -L "$1" ] || [ -e "$1" ]; then
    printf '%s\0' "$1" >&4
    if [ -f "$1" ] && [ ! -L "$1" ]; then printf '%s\0' "$1" >&5; fi
  else
    printf 'A\t%s\0' "$1"
  fi
}
"#;

const SCRIPT_FILES: &str = r#"if [ -f "$cur/paths" ]; then
  while IFS= read -r p; do case $p in /*) c "$p" ;; esac; done < "$cur/paths"
fi
exec 4>&- 5>&-
xargs -0r stat --printf 'S\t%f\t%a\t%U\t%G\t%s\t%n\0' -- < "$t/all" 2>/dev/null
xargs -0r sha256sum -z -- < "$t/reg" 2>/dev/null | tr '\0' '\n' > "$t/sum"
"#;

// Hashes of regular files, and the content of non-secret build files whose hash
// differs from the build's (at most CONTENT_LIMIT bytes each), in one stream:
// X lists them, B is their bytes concatenated; the reader splits B by the sizes
// of the S records and checks each piece against its H record.
const SCRIPT_COMPARE: &str = r#"exec 6>"$t/chg"
while IFS= read -r l; do
  h=${l%% *}; n=${l#* }; n=${n#[ *]}
  printf 'H\t%s\t%s\0' "$h" "$n"
  while [ $# -ge 2 ] && [ "$2" != "$n" ]; do shift 2; done
  if [ $# -ge 2 ]; then
    if [ "$1" != - ] && [ "$1" != "$h" ]; then printf '%s\0' "$n" >&6; fi
    shift 2
  fi
done < "$t/sum"
exec 6>&-
xargs -0r sh -c 'exec find "$@" -maxdepth 0 -type f -size -LIMITk -print0' sh < "$t/chg" > "$t/small" 2>/dev/null
printf 'X\t'; base64 -w0 < "$t/small"; printf '\0'
printf 'B\t'; xargs -0r cat -- < "$t/small" 2>/dev/null | base64 -w0; printf '\0'
"#;

const SCRIPT_UNITS: &str = r#"if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  printf 'Y\t1\0'
  { wanted; if [ -f "$cur/units" ]; then sed '/^$/d' "$cur/units"; fi; } > "$t/units"
  printf 'Q\t'; base64 -w0 < "$t/units"; printf '\0'
  printf 'U\t'
  xargs -r -d '\n' systemctl show --no-pager --property=Id,LoadState,ActiveState,SubState,UnitFileState,ConditionResult,ConditionTimestampMonotonic -- < "$t/units" 2>/dev/null | base64 -w0
  printf '\0'
else
  printf 'Y\t0\0'
fi
"#;

/// The end of a sh pipeline that turns the probe's answer into
/// [`Observed::fingerprint`]: `( PROBE SCRIPT ) | FINGERPRINT_PIPE` prints the same
/// 64 hex digits the reader computed, if nothing the plan depends on changed.
pub const FINGERPRINT_PIPE: &str =
    "tr '\\0' '\\n' | grep -a -E \"^(G|N|A|S|H)$(printf '\\t')\" | sha256sum | cut -c1-64";

/// The probe script for `build` with infra's state under `state_dir`.
pub fn probe_script(build: &HostBuild, state_dir: &str) -> String {
    let mut s = String::with_capacity(4096 + build.files.len() * 160);
    s.push_str(&format!("S={}\n", quote(state_dir)));
    s.push_str(SCRIPT_HEAD);
    // Step guards (`unless` exits 0 when the step has nothing to do), run
    // in the background while the rest of the probe runs: it waits for the
    // slowest, not for their sum.
    let guards: Vec<(&str, &str)> = build
        .steps
        .iter()
        .filter_map(|st| st.unless.as_deref().map(|u| (st.name.as_str(), u)))
        .collect();
    for (i, (_, unless)) in guards.iter().enumerate() {
        s.push_str(&format!(
            "(sh -c {} </dev/null >/dev/null 2>&1; echo $? > \"$t/c{i}\") &\n",
            quote(unless)
        ));
    }
    for p in build_paths(build) {
        s.push_str("c ");
        s.push_str(&quote(p));
        s.push('\n');
    }
    s.push_str(SCRIPT_FILES);
    // Expected hashes of non-secret build files ("-": never bring content back).
    s.push_str("set --");
    for (path, f) in &build.files {
        s.push(' ');
        s.push_str(if f.secret { "-" } else { &f.sha256 });
        s.push(' ');
        s.push_str(&quote(path));
    }
    s.push('\n');
    s.push_str(&SCRIPT_COMPARE.replace("LIMIT", &(CONTENT_LIMIT / 1024 + 1).to_string()));
    s.push_str("wanted() {\n  :\n");
    for u in &build.units {
        s.push_str(&format!("  printf '%s\\n' {}\n", quote(&u.name)));
    }
    s.push_str("}\n");
    s.push_str(SCRIPT_UNITS);
    if !build.packages.is_empty() {
        s.push_str("if command -v dpkg-query >/dev/null 2>&1; then\n  printf 'P\\t'; dpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\t${Version}\\n' --");
        for p in &build.packages {
            s.push(' ');
            s.push_str(&quote(p));
        }
        s.push_str(" 2>/dev/null | base64 -w0; printf '\\0'\nfi\n");
    }
    if !build.users.is_empty() {
        s.push_str("printf 'W\\t'; getent passwd");
        for u in &build.users {
            s.push(' ');
            s.push_str(&quote(&u.name));
        }
        s.push_str(" | cut -d: -f1 | base64 -w0; printf '\\0'\n");
    }
    if !guards.is_empty() {
        s.push_str("wait\n");
    }
    for (i, (name, _)) in guards.iter().enumerate() {
        s.push_str(&format!(
            "printf 'C\\t%s\\t%s\\0' \"$(cat \"$t/c{i}\" 2>/dev/null || echo 127)\" {}\n",
            quote(name)
        ));
    }
    s.push_str("printf 'E\\t0\\0'\n");
    s
}

/// Probe a host: exactly one round trip on `remote`, infra's state under
/// `state_dir` ([`STATE_DIR`] on real hosts; tests use a temp dir). The only
/// probe entry point.
pub fn probe(
    remote: &mut dyn Remote,
    build: &HostBuild,
    state_dir: &str,
) -> Result<Observed, ProbeError> {
    validate(build)?;
    check_path(&build.host, state_dir)?;
    let out = remote.run(&probe_script(build, state_dir), b"")?;
    if !out.success() {
        return Err(ProbeError::Remote {
            host: build.host.clone(),
            status: out.status,
            stderr: out.stderr_text(),
        });
    }
    parse_probe_output(build, &out.stdout)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// "644" / raw mode -> "0644".
fn mode_string(raw: u32) -> String {
    format!("{:04o}", raw & 0o7777)
}

/// Parse the probe script's answer (see the module docs for the format).
pub fn parse_probe_output(build: &HostBuild, stdout: &[u8]) -> Result<Observed, ProbeError> {
    use sha2::{Digest, Sha256};
    let host = build.host.clone();
    let bad = |detail: String| ProbeError::Protocol {
        host: host.clone(),
        detail,
    };
    let decode = |tag: &str, b: &[u8]| {
        base64_decode(b).ok_or_else(|| bad(format!("record {tag} is not base64")))
    };
    let mut obs = Observed {
        host: host.clone(),
        ..Observed::default()
    };
    let mut stats: BTreeMap<String, PathState> = BTreeMap::new();
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    let mut fetched: Vec<String> = Vec::new();
    let mut blob: Vec<u8> = Vec::new();
    let mut asked_units: Vec<String> = Vec::new();
    let mut shown_units: Option<Vec<u8>> = None;
    let mut version = false;
    let mut ended = false;
    // Every record ends with a NUL: what follows the last one is a cut record.
    let complete = match stdout.iter().rposition(|&b| b == 0) {
        Some(i) => &stdout[..i],
        None => &stdout[..0],
    };
    let cut_short = || {
        bad(
            "the answer was cut short (no end record): the connection broke or the script failed"
                .into(),
        )
    };
    if stdout.last() != Some(&0) {
        return Err(cut_short());
    }
    let mut fp = Sha256::new();
    for rec in complete.split(|&b| b == 0) {
        if matches!(rec.first(), Some(b'G' | b'N' | b'A' | b'S' | b'H'))
            && rec.get(1) == Some(&b'\t')
        {
            fp.update(rec);
            fp.update(b"\n");
        }
        if ended {
            return Err(bad("data after the end record".into()));
        }
        let (tag, body) = match rec.iter().position(|&b| b == b'\t') {
            Some(i) => (&rec[..i], &rec[i + 1..]),
            None => (rec, &rec[rec.len()..]),
        };
        let tag = std::str::from_utf8(tag).unwrap_or("?");
        if !version && tag != "V" {
            let start = text(&rec[..rec.len().min(60)]);
            return Err(bad(format!(
                "it does not start with the version record (got {start:?})"
            )));
        }
        match tag {
            "V" => {
                if body != b"1" {
                    return Err(bad(format!("unknown protocol version {:?}", text(body))));
                }
                version = true;
            }
            "I" => obs.hostname = text(body),
            "K" => obs.machine_id = text(body),
            "G" => {
                let t = text(body);
                let last = t.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                obs.generation = last.parse().ok();
                if obs.generation.is_none() {
                    obs.manifest_error = Some(format!(
                        "generations/current points to {t:?}, not a generation number"
                    ));
                }
            }
            "M" => {
                let raw = decode("M", body)?;
                match serde_json::from_slice::<Manifest>(&raw) {
                    Ok(m) => obs.manifest = Some(m),
                    Err(e) => obs.manifest_error = Some(format!("manifest.json: {e}")),
                }
            }
            "L" => obs.lock = Some(text(&decode("L", body)?).trim().to_string()),
            "N" => obs.latest_generation = text(body).parse().ok(),
            "R" => {
                // `ip -o -4 addr show`: "2: eth0    inet 192.0.2.11/24 brd ... scope global eth0\ ..."
                for line in text(&decode("R", body)?).lines() {
                    let mut w = line.split_whitespace();
                    while let Some(word) = w.next() {
                        if word == "inet" {
                            if let Some(a) = w.next() {
                                obs.addresses.push(a.to_string());
                            }
                        }
                    }
                }
            }
            "A" => {
                stats.insert(text(body), PathState::Absent);
            }
            "S" => {
                let f: Vec<&[u8]> = body.splitn(6, |&b| b == b'\t').collect();
                if f.len() != 6 {
                    return Err(bad(format!("malformed stat record {:?}", text(body))));
                }
                let raw = u32::from_str_radix(&text(f[0]), 16)
                    .map_err(|_| bad(format!("bad mode in stat record {:?}", text(body))))?;
                let size: u64 = text(f[4])
                    .parse()
                    .map_err(|_| bad(format!("bad size in stat record {:?}", text(body))))?;
                let (mode, owner, group) = (mode_string(raw), text(f[2]), text(f[3]));
                let state = match raw & 0o170000 {
                    0o100000 => PathState::File {
                        mode,
                        owner,
                        group,
                        size,
                        sha256: None,
                        content: None,
                    },
                    0o040000 => PathState::Directory { mode, owner, group },
                    0o120000 => PathState::Symlink { owner, group },
                    _ => PathState::Other { mode, owner, group },
                };
                stats.insert(text(f[5]), state);
            }
            "H" => {
                let (h, p) = split_once(body)
                    .ok_or_else(|| bad(format!("malformed hash record {:?}", text(body))))?;
                let h = text(h);
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(format!("bad sha256 {h:?}")));
                }
                hashes.insert(text(p), h);
            }
            "X" => {
                fetched = decode("X", body)?
                    .split(|&b| b == 0)
                    .filter(|n| !n.is_empty())
                    .map(text)
                    .collect();
            }
            "B" => blob = decode("B", body)?,
            "Y" => obs.systemd = body == b"1",
            "Q" => {
                asked_units = text(&decode("Q", body)?)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            "U" => shown_units = Some(decode("U", body)?),
            "P" => {
                for line in text(&decode("P", body)?).lines() {
                    let f: Vec<&str> = line.split('\t').collect();
                    if f.len() == 3 && f[1].starts_with("ii") {
                        obs.packages.insert(f[0].to_string(), f[2].to_string());
                    }
                }
            }
            "C" => {
                let (st, name) = split_once(body)
                    .ok_or_else(|| bad(format!("malformed guard record {:?}", text(body))))?;
                let st: i32 = text(st)
                    .parse()
                    .map_err(|_| bad(format!("bad guard status {:?}", text(body))))?;
                obs.guards.insert(text(name), st);
            }
            "W" => {
                obs.users = text(&decode("W", body)?)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            "E" if body == b"0" => ended = true,
            other => return Err(bad(format!("unknown record {other:?}"))),
        }
    }
    if !ended {
        return Err(cut_short());
    }
    obs.fingerprint = fp.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let contents = split_contents(&fetched, &blob, &stats, &hashes);
    // Every asked path must be answered (A or S).
    let mut asked: Vec<String> = build_paths(build).iter().map(|p| p.to_string()).collect();
    if let Some(m) = &obs.manifest {
        asked.extend(m.files.keys().cloned());
    }
    for p in asked {
        let state = match stats.remove(&p) {
            Some(PathState::File {
                mode,
                owner,
                group,
                size,
                ..
            }) => PathState::File {
                mode,
                owner,
                group,
                size,
                sha256: hashes.get(&p).cloned(),
                content: contents.get(&p).cloned().or_else(|| {
                    let differs = build.files.get(&p).is_some_and(|f| {
                        !f.secret && hashes.get(&p).is_some_and(|h| *h != f.sha256)
                    });
                    (differs && size > CONTENT_LIMIT).then_some(Content::TooLarge)
                }),
            },
            Some(s) => s,
            None if obs.paths.contains_key(&p) => continue,
            // Vanished between the existence test and stat: absent now.
            None => PathState::Absent,
        };
        obs.paths.insert(p, state);
    }
    if let Some(shown) = shown_units {
        let blocks = parse_show(&text(&shown));
        if blocks.len() != asked_units.len() {
            return Err(bad(format!(
                "systemctl show answered {} units for {} asked",
                blocks.len(),
                asked_units.len()
            )));
        }
        for (name, state) in asked_units.into_iter().zip(blocks) {
            obs.units.insert(name, state);
        }
    }
    Ok(obs)
}

/// Cut the concatenated contents into files by their stat sizes; keep each piece
/// only if its hash is the one the H record reported. At the first mismatch (a
/// file changed while the probe ran) stop: later offsets cannot be trusted.
fn split_contents(
    names: &[String],
    blob: &[u8],
    stats: &BTreeMap<String, PathState>,
    hashes: &BTreeMap<String, String>,
) -> BTreeMap<String, Content> {
    use sha2::{Digest, Sha256};
    let mut out = BTreeMap::new();
    let mut at = 0usize;
    for name in names {
        let Some(PathState::File { size, .. }) = stats.get(name) else {
            break;
        };
        let Ok(size) = usize::try_from(*size) else {
            break;
        };
        let Some(piece) = at.checked_add(size).and_then(|end| blob.get(at..end)) else {
            break;
        };
        let hex: String = Sha256::digest(piece)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if hashes.get(name) != Some(&hex) {
            break;
        }
        at += size;
        let content = if piece.contains(&0) {
            Content::Binary
        } else {
            match std::str::from_utf8(piece) {
                Ok(t) => Content::Text {
                    text: t.to_string(),
                },
                Err(_) => Content::Binary,
            }
        };
        out.insert(name.clone(), content);
    }
    out
}

fn split_once(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == b'\t')?;
    Some((&b[..i], &b[i + 1..]))
}

/// `systemctl show` output: blocks of `Key=value` lines separated by blank lines.
fn parse_show(s: &str) -> Vec<UnitState> {
    let mut out = Vec::new();
    let mut cur: Option<UnitState> = None;
    for line in s.lines() {
        if line.trim().is_empty() {
            if let Some(u) = cur.take() {
                out.push(u);
            }
            continue;
        }
        let u = cur.get_or_insert_with(UnitState::default);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.to_string();
            match k {
                "Id" => u.id = v,
                "LoadState" => u.load_state = v,
                "ActiveState" => u.active_state = v,
                "SubState" => u.sub_state = v,
                "UnitFileState" => u.unit_file_state = v,
                "ConditionResult" => u.condition_result = v,
                "ConditionTimestampMonotonic" => u.condition_timestamp = v,
                _ => {}
            }
        }
    }
    if let Some(u) = cur {
        out.push(u);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_blocks() {
        let s = "Id=a.service\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\n\nId=b.timer\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\n";
        let b = parse_show(s);
        assert_eq!(b.len(), 2);
        assert!(b[0].is_active() && b[0].is_enabled() && b[0].exists());
        assert!(!b[1].exists() && !b[1].is_enabled());
    }

    #[test]
    fn truncated_and_garbage_answers_are_errors() {
        let build = HostBuild {
            host: "alpha".into(),
            ..HostBuild::default()
        };
        assert!(parse_probe_output(&build, b"V\t1\0").is_err());
        assert!(parse_probe_output(&build, b"Welcome!\nV\t1\0E\t0\0").is_err());
        assert!(parse_probe_output(&build, b"V\t1\0Z\tx\0E\t0\0").is_err());
        let ok = parse_probe_output(&build, b"V\t1\0I\thost\0Y\t0\0E\t0\0").expect("parses");
        assert_eq!(ok.hostname, "host");
        assert!(!ok.systemd);
    }
}
