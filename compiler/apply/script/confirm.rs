//! The confirm script: health checks, then the switch is final.

use super::{common, q, timer_unit, HealthCheck, KEEP_GENERATIONS};
use std::fmt::Write as _;

/// The confirm script: health checks (retried for `health_timeout` seconds),
/// then claim the switch, cancel the timer, prune old generations, release the
/// lock (synced before the answer: a confirmation the client was told of
/// survives a power loss). Run by the apply that switched (over a new
/// connection), or by a later apply for a switch left awaiting confirmation.
/// Answers: `CONFIRMED generation`, `GONE current` (the switch was undone
/// already: the timer fired, or someone removed the lock), `HEALTH group status
/// output64` then `UNDO status output64`.
pub fn confirm_script(
    state_dir: &str,
    token: &str,
    target: u64,
    checks: &[HealthCheck],
    health_timeout: u64,
) -> String {
    let mut s = String::with_capacity(4096);
    let _ = writeln!(s, "S={}", q(state_dir));
    s.push_str(&common());
    let t = timer_unit(target);
    let _ = writeln!(
        s,
        r#"t=$(mktemp -d) || exit 90
trap 'rm -rf "$t"' EXIT
gone() {{ printf 'GONE\t%s\n' "$(readlink "$G/current" 2>/dev/null)"; exit 0; }}
[ "$(cat "$S/lock/token" 2>/dev/null)" = {token} ] || gone
[ -d "$S/lock/resolved" ] && gone
own
setphase confirming
end=$(( $(date +%s) + {health_timeout} ))
check() {{
  while :; do
    "$2" > "$t/o" 2>&1; r=$?
    if [ "$r" = 0 ]; then return 0; fi
    if [ "$(date +%s)" -ge "$end" ]; then
      mkdir "$S/lock/resolved" 2>/dev/null || gone
      printf 'HEALTH\t%s\t%s\t' "$1" "$r"; tail -c 2000 "$t/o" | base64 -w0; printf '\n'
      sh "$S/lock/undo.sh" claimed "the health check of $1 failed after the switch (exit $r)" > "$t/u" 2>&1; u=$?
      printf 'UNDO\t%s\t' "$u"; tail -c 4000 "$t/u" | base64 -w0; printf '\n'
      exit 0
    fi
    sleep 1
  done
}}"#,
        token = q(token),
    );
    for c in checks {
        let _ = writeln!(s, "check {} {}", q(&c.what), q(&c.script));
    }
    let _ = writeln!(
        s,
        r#"mkdir "$S/lock/resolved" 2>/dev/null || gone
setphase confirmed
systemctl stop {t}.timer >/dev/null 2>&1; systemctl reset-failed {t}.timer {t}.service >/dev/null 2>&1
cur=$(readlink "$G/current" 2>/dev/null)
for d in "$G"/[0-9]*; do
  n=${{d##*/}}
  case $n in *[!0-9]*) ;; *) printf '%s\n' "$n" ;; esac
done | sort -n | head -n -{KEEP_GENERATIONS} | while IFS= read -r g; do
  if [ "$g" != "$cur" ]; then rm -rf "${{G:?}}/$g"; fi
done
rm -f "$S/recovered"
droplock
sync
printf 'CONFIRMED\t%s\n' {target}"#
    );
    s
}
