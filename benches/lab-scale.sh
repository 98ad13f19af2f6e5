#!/bin/sh
# A lab of N small hosts (docs/benchmarks.md, "Fleets"): `infra lab up`, a
# first `infra apply` of the peer workload (30 files, a unit, a directory) on
# every host, a no-op `infra plan`, `infra lab down`; the wall time of each.
# Needs root's inotify limits for N hosts (`infra lab up` says which to raise).
#
#   benches/lab-scale.sh [N (50)]
set -eu
n=${1:-50}
infra=$(realpath "${INFRA:-target/release/infra}")
d=$(mktemp -d)
cfg="$d/labscale"
mkdir -p "$cfg"
trap '"$infra" lab down --lab labscale >/dev/null 2>&1 || :; rm -rf "$d"' EXIT INT TERM
awk -v n="$n" 'BEGIN {
  for (i = 0; i < n; i++) printf "host s%03d {\n  address = \"10.77.%d.%d\"\n}\n", i, int(i / 250), i % 250 + 1
}' > "$cfg/hosts.infra"
sed -n '/^kind peer/,$p' "$(dirname "$0")/peer/main.infra" > "$cfg/main.infra"
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
t=$(date +%s%N); "$infra" lab up "$cfg" >"$d/up.log" 2>&1 || { tail -n 20 "$d/up.log" >&2; exit 1; }
echo "lab up of $n hosts: $(ms "$t") ms"
t=$(date +%s%N); "$infra" apply --lab "$cfg" >"$d/apply.log" 2>&1 || { tail -n 20 "$d/apply.log" >&2; exit 1; }
echo "first apply of $n hosts: $(ms "$t") ms ($(grep -c 'applied and confirmed' "$d/apply.log") confirmed)"
t=$(date +%s%N); "$infra" plan --lab "$cfg" --detailed-exitcode >"$d/plan.log" 2>&1 || { echo "plan: not a no-op" >&2; tail -n 20 "$d/plan.log" >&2; exit 1; }
echo "no-op plan of $n hosts: $(ms "$t") ms"
t=$(date +%s%N); "$infra" lab down --lab labscale >/dev/null 2>&1
echo "lab down of $n hosts: $(ms "$t") ms"
