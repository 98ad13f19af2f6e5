//! Listing a host's generations.

use super::{common, q};
use std::fmt::Write as _;

/// Lists generations: `CUR n` (if any), `LOCK facts64` (if held), then per
/// generation `GEN n date files previous` and, with `manifests`, `MAN n base64`.
pub fn generations_script(state_dir: &str, manifests: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "S={}", q(state_dir));
    s.push_str(&common());
    s.push_str(
        r#"if [ -L "$G/current" ]; then printf 'CUR\t%s\n' "$(readlink "$G/current")"; fi
if [ -d "$S/lock" ]; then printf 'LOCK\t%s\n' "$(lock_facts | base64 -w0)"; fi
for d in "$G"/[0-9]*; do
  n=${d##*/}
  case $n in *[!0-9]*) continue ;; esac
  [ -f "$d/manifest.json" ] || continue
  date=$(cat "$d/date" 2>/dev/null)
  files=$(wc -l < "$d/paths" 2>/dev/null)
  prev=$(cat "$d/previous" 2>/dev/null)
  printf 'GEN\t%s\t%s\t%s\t%s\n' "$n" "$date" "${files:-0}" "$prev"
"#,
    );
    if manifests {
        s.push_str("  printf 'MAN\\t%s\\t%s\\n' \"$n\" \"$(base64 -w0 < \"$d/manifest.json\")\"\n");
    }
    s.push_str("done\n");
    s
}
