//! The probe script: one POSIX sh program per host. Every record it prints goes
//! through [`Tag`] (see [`super::protocol`]).

use super::lock::LOCK_FACTS;
use super::protocol::{Tag, VERSION};
use super::{build_paths, CONTENT_LIMIT};
use crate::render::HostBuild;
use crate::shell::quote;
use std::fmt::Write as _;

const SETUP: &str = r#"set -u
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
umask 077
cur="$S/generations/current"
nl='
'
"#;

/// A temporary directory, only for a probe with step guards (their statuses):
/// a probe without is two processes shorter (`mktemp`, `rm`).
const TEMP: &str = r#"t=$(mktemp -d) || exit 90
trap 'rm -rf "$t"' EXIT
"#;

/// The probe script for `build` with infra's state under `state_dir`.
pub fn probe_script(build: &HostBuild, state_dir: &str) -> String {
    probe_script_with(build, state_dir, None)
}

/// The probe script, with `status` (a sh fragment, `infra status`'s questions)
/// answered in a [`Tag::Status`] record before the end.
pub fn probe_script_with(build: &HostBuild, state_dir: &str, status: Option<&str>) -> String {
    let mut s = String::with_capacity(8192 + build.files.len() * 160);
    let _ = writeln!(s, "S={}", quote(state_dir));
    s.push_str(SETUP);
    s.push_str(LOCK_FACTS);
    // Step guards (`unless` exits 0 when the step has nothing to do), run in the
    // background while the rest of the probe runs: it waits for the slowest, not
    // for their sum.
    let guards: Vec<(&str, &str)> = build
        .steps
        .iter()
        .filter_map(|st| st.unless.as_deref().map(|u| (st.name.as_str(), u)))
        .collect();
    if !guards.is_empty() {
        s.push_str(TEMP);
    }
    for (i, (_, unless)) in guards.iter().enumerate() {
        let _ = writeln!(
            s,
            "(sh -c {} </dev/null >/dev/null 2>&1; echo $? > \"$t/c{i}\") &",
            quote(unless)
        );
    }
    head(&mut s);
    files(&mut s, build);
    releases(&mut s, build);
    units(&mut s, build);
    if !build.packages.is_empty() {
        let names: Vec<String> = build.packages.iter().map(|p| quote(p)).collect();
        let _ = writeln!(
            s,
            "if command -v dpkg-query >/dev/null 2>&1; then\n  {}\nfi",
            Tag::Packages.base64_of(&format!(
                "dpkg-query -W -f='${{Package}}\\t${{db:Status-Abbrev}}\\t${{Version}}\\n' -- {} 2>/dev/null",
                names.join(" ")
            ))
        );
    }
    if !build.users.is_empty() {
        let names: Vec<String> = build.users.iter().map(|u| quote(&u.name)).collect();
        let _ = writeln!(
            s,
            "{}",
            Tag::Users.base64_of(&format!(
                "for u in {}; do if getent passwd \"$u\" >/dev/null; then printf '%s\\t%s\\n' \"$u\" \"$(id -nG -- \"$u\")\"; fi; done",
                names.join(" ")
            ))
        );
    }
    if !guards.is_empty() {
        s.push_str("wait\n");
    }
    for (i, (name, _)) in guards.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}",
            Tag::Guard.printf(
                "%s\\t%s",
                &format!(
                    "\"$(cat \"$t/c{i}\" 2>/dev/null || echo 127)\" {}",
                    quote(name)
                )
            )
        );
    }
    if let Some(fragment) = status {
        let _ = writeln!(
            s,
            "{}",
            Tag::Status.base64_of(&format!("(\n{fragment}\n) 2>/dev/null"))
        );
    }
    let _ = writeln!(s, "{}", Tag::End.printf("0", ""));
    s
}

/// Who the host is, its generations, the lock, its addresses.
fn head(s: &mut String) {
    let lines = [
        Tag::Version.printf(VERSION, ""),
        "h=; if [ -r /proc/sys/kernel/hostname ]; then read -r h < /proc/sys/kernel/hostname; fi"
            .into(),
        Tag::Hostname.printf("%s", "\"$h\""),
        "m=; if [ -r /etc/machine-id ]; then read -r m < /etc/machine-id; fi".into(),
        Tag::MachineId.printf("%s", "\"$m\""),
        "b=; if [ -r /proc/sys/kernel/random/boot_id ]; then read -r b < /proc/sys/kernel/random/boot_id; fi".into(),
        Tag::BootId.printf("%s", "\"$b\""),
        format!(
            "if [ -L \"$cur\" ]; then {}; fi",
            Tag::Generation.printf("%s", "\"$(readlink -- \"$cur\")\"")
        ),
        format!(
            "if [ -f \"$cur/manifest.json\" ]; then {}; fi",
            Tag::Manifest.base64_file("\"$cur/manifest.json\"")
        ),
        format!("if [ -d \"$S/lock\" ]; then {}; fi", Tag::Lock.base64_of("lock_facts")),
        format!(
            "if [ -f \"$S/recovered\" ]; then {}; fi",
            Tag::Recovered.base64_of("tail -n 20 \"$S/recovered\"")
        ),
        "n=; for d in \"$S\"/generations/[0-9]*; do d=${d##*/}; case $d in *[!0-9]*) ;; *) if [ -z \"$n\" ] || [ \"$d\" -gt \"$n\" ]; then n=$d; fi ;; esac; done".into(),
        format!("if [ -n \"$n\" ]; then {}; fi", Tag::Latest.printf("%s", "\"$n\"")),
        Tag::Addresses.raw_of("ip -o -4 addr show 2>/dev/null"),
    ];
    for l in lines {
        s.push_str(&l);
        s.push('\n');
    }
}

/// Existence, lstat and hashes of every path the build or the current
/// generation manages; the content of non-secret build files that differ.
/// No temporary files and no `xargs`: the paths that exist are the positional
/// parameters, handed to one `stat` and one `sha256sum` (a no-op probe runs no
/// other process here); a temporary directory is made only when some file's
/// content must be brought back.
fn files(s: &mut String, build: &HostBuild) {
    let absent = Tag::Absent.printf("%s", "\"$p\"");
    s.push_str("set --\n");
    let paths = build_paths(build);
    if !paths.is_empty() {
        s.push_str("for p in");
        for p in paths {
            s.push(' ');
            s.push_str(&quote(p));
        }
        let _ = writeln!(
            s,
            "; do\n  if [ -L \"$p\" ] || [ -e \"$p\" ]; then set -- \"$@\" \"$p\"; else {absent}; fi\ndone"
        );
    }
    let _ = writeln!(
        s,
        r#"if [ -f "$cur/paths" ]; then
  while IFS= read -r p; do case $p in /*) if [ -L "$p" ] || [ -e "$p" ]; then set -- "$@" "$p"; else {absent}; fi ;; esac; done < "$cur/paths"
fi
if [ $# -gt 0 ]; then stat --printf '{fmt}' -- "$@" 2>/dev/null; fi
regular() {{
  k=$#
  for p do if [ -f "$p" ] && [ ! -L "$p" ]; then set -- "$@" "$p"; fi; done
  shift "$k"
  if [ $# -gt 0 ]; then sha256sum -z -- "$@" 2>/dev/null; fi
}}
regular "$@" | tr '\0' '\n' | {{"#,
        fmt = Tag::Stat.format("%f\\t%a\\t%U\\t%G\\t%s\\t%n")
    );
    // Expected hashes of non-secret build files ("-": never bring content back).
    s.push_str("set --");
    for (path, f) in &build.files {
        s.push(' ');
        s.push_str(if f.secret { "-" } else { &f.sha256 });
        s.push(' ');
        s.push_str(&quote(path));
    }
    s.push('\n');
    // Hashes of regular files, and the content of non-secret build files whose
    // hash differs from the build's (at most CONTENT_LIMIT bytes each), in one
    // stream: the fetched list, then their bytes concatenated; the reader splits
    // them by the sizes of the stat records and checks each piece's hash.
    let _ = writeln!(
        s,
        r#"chg=
while IFS= read -r l; do
  h=${{l%% *}}; n=${{l#* }}; n=${{n#[ *]}}
  {hash}
  while [ $# -ge 2 ] && [ "$2" != "$n" ]; do shift 2; done
  if [ $# -ge 2 ]; then
    if [ "$1" != - ] && [ "$1" != "$h" ]; then chg="$chg$n$nl"; fi
    shift 2
  fi
done
if [ -n "$chg" ]; then
  t=$(mktemp -d) || exit 90
  trap 'rm -rf "$t"' EXIT
  printf '%s' "$chg" | tr '\n' '\0' | xargs -0r sh -c 'exec find "$@" -maxdepth 0 -type f -size -{limit}k -print0' sh > "$t/small" 2>/dev/null
  {fetched}
  {blob}
else
  {no_fetched}; {no_blob}
fi
}}"#,
        hash = Tag::Hash.printf("%s\\t%s", "\"$h\" \"$n\""),
        limit = CONTENT_LIMIT / 1024 + 1,
        fetched = Tag::Fetched.base64_file("\"$t/small\""),
        blob = Tag::Blob.base64_of("xargs -0r cat -- < \"$t/small\" 2>/dev/null"),
        no_fetched = Tag::Fetched.printf("", ""),
        no_blob = Tag::Blob.printf("", ""),
    );
}

/// Each release of the build: is it on the host, which one is current, and
/// (when the build's is missing) the current one's file list, so the switch
/// sends only the files it lacks.
fn releases(s: &mut String, build: &HostBuild) {
    for r in &build.releases {
        let _ = writeln!(
            s,
            r#"r={path}; w={hash}; v=
if [ -L "$r/current" ]; then v=$(readlink -- "$r/current"); v=${{v##*/}}; fi
if [ -d "$r/releases/$w" ]; then y=1; else y=0; fi
{rec}
if [ "$y" = 0 ] && [ -n "$v" ] && [ -f "$r/releases/$v.list" ]; then {list}; fi"#,
            path = quote(&r.path),
            hash = quote(&r.hash),
            rec = Tag::Release.printf("%s\t%s\t%s", "\"$y\" \"$v\" \"$r\""),
            list = Tag::ReleaseList.keyed_base64_of("\"$r\"", "cat \"$r/releases/$v.list\""),
        );
    }
}

/// systemd's view of the build's units and the current generation's; not of
/// template units (`NAME@.service`: `systemctl show` refuses the name, and nothing
/// enables or starts them, their instances are started by what names them).
fn units(s: &mut String, build: &HostBuild) {
    // the names are the positional parameters (no sed, grep, cat, base64 or
    // temporary file): the build's, then the current generation's, without
    // empty lines and template units
    let mut wanted = String::from("set --");
    for u in &build.units {
        if !u.name.contains("@.") {
            wanted.push(' ');
            wanted.push_str(&quote(&u.name));
        }
    }
    let _ = writeln!(
        s,
        r#"if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  {yes}
  {wanted}
  if [ -f "$cur/units" ]; then while IFS= read -r l; do case $l in ''|*@.[a-z]*) ;; *) set -- "$@" "$l" ;; esac; done < "$cur/units"; fi
  printf '{q}\t'; if [ $# -gt 0 ]; then printf '%s\n' "$@"; fi; printf '\0'
  {show}
else
  {no}
fi"#,
        yes = Tag::Systemd.printf("1", ""),
        no = Tag::Systemd.printf("0", ""),
        q = Tag::UnitList.letter(),
        show = Tag::UnitShow.raw_of(
            "if [ $# -gt 0 ]; then systemctl show --no-pager --property=Id,LoadState,ActiveState,SubState,UnitFileState,ConditionResult,ConditionTimestampMonotonic -- \"$@\" 2>/dev/null; fi"
        ),
    );
}
