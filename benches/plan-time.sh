#!/bin/sh
# Median wall time of N no-op `infra plan` runs on a lab, and in the same run
# the floor: N `ssh HOST true` with OpenSSH's client through the lab network
# (`infra lab ssh`: the same key, host keys and network; one host, so the floor
# of one connection and one command). docs/benchmarks.md.
#
#   infra lab up benches/peer && infra apply --lab benches/peer
#   benches/plan-time.sh [CONFIG (benches/peer)] [N (15)]
set -eu
cfg=${1:-benches/peer}
n=${2:-15}
infra=${INFRA:-target/release/infra}
lab=$(basename "$(cd "$cfg" && pwd)")
host=$("$infra" lab status --lab "$lab" 2>/dev/null | awk '$NF == "running" { print $1; exit }')
median() {
  sort -n | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.0f ms (min %.0f, max %.0f, n=%d)\n", m, v[1], v[NR], NR }'
}
run() {
  i=0
  while [ $i -lt "$n" ]; do
    s=$(date +%s%N)
    "$@" >/dev/null 2>&1
    e=$(date +%s%N)
    echo $(( (e - s) / 1000000 ))
    i=$((i + 1))
  done
}
"$infra" plan --lab "$cfg" --detailed-exitcode >/dev/null 2>&1 || {
  echo "plan-time: the plan of $cfg is not a no-op (apply it first)" >&2
  exit 1
}
printf 'no-op infra plan (%s): ' "$cfg"
run "$infra" plan --lab "$cfg" | median
printf 'ssh %s true:             ' "$host"
run "$infra" lab ssh "$host" --lab "$lab" true | median
