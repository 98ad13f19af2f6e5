//! The probe script: one POSIX sh program per host (see the module docs of
//! [`super`] for the records it prints).

use super::{build_paths, CONTENT_LIMIT};
use crate::render::HostBuild;
use crate::shell::quote;

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
