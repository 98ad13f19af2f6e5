#!/bin/sh
# The probe script's own time on a lab host: `infra plan` sends it over SSH;
# here it runs inside the host (no SSH), N times after 3 warm-ups, and so do
# the processes it is made of, alone, for the breakdown (docs/benchmarks.md).
#
#   infra lab up benches/peer && infra apply --lab benches/peer
#   benches/probe-time.sh [CONFIG (benches/peer)] [HOST (alpha)] [N (40)]
#
# INFRA: the infra binary (default target/release/infra).
set -eu
cfg=${1:-benches/peer}
host=${2:-alpha}
n=${3:-40}
infra=${INFRA:-target/release/infra}
lab=$(basename "$(cd "$cfg" && pwd)")
"$infra" probe-script "$host" "$cfg" | "$infra" lab exec "$host" --lab "$lab" -- sh -c 'cat > /tmp/infra-probe.sh'
# shellcheck disable=SC2016 # expanded inside the host
"$infra" lab exec "$host" --lab "$lab" -- sh -c '
n=$1
us() { echo $(( ($2 - $1) / n / 1000 )); }
t() {
  s=$(date +%s%N); i=0
  while [ $i -lt "$n" ]; do eval "$1" >/dev/null 2>&1 || :; i=$((i + 1)); done
  e=$(date +%s%N)
  printf "%8s us  %s\n" "$(us "$s" "$e")" "$1"
}
for w in 1 2 3; do sh /tmp/infra-probe.sh >/dev/null; done
t "sh /tmp/infra-probe.sh"
t "/bin/true"
t "systemctl show --no-pager --property=Id,LoadState,ActiveState peer.service"
t "ip -o -4 addr show"
t "readlink /var/lib/infra/generations/current"
t "base64 -w0 < /var/lib/infra/generations/current/manifest.json"
t "stat /srv/peer/*"
t "sha256sum -z /srv/peer/* | tr \"\\0\" \"\\n\""
' sh "$n"
