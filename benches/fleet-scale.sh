#!/usr/bin/env bash
# `infra plan` of N hosts against a real sshd, from one client
# (docs/benchmarks.md, "Fleets"). Each host is its own loopback address
# (127.1.X.Y) of one sshd in a network namespace of its own (only `lo`: no
# traffic leaves it), with the peer workload (30 files, a unit, a directory);
# nothing was applied, so every host's plan creates them: the probe runs, reads
# nothing back, and the plan is printed (to /dev/null). Prints the client's wall
# time, CPU time (user + sys) and peak memory, and per host.
#
#   benches/fleet-scale.sh [N (1000)] [PARALLEL (32)]
#
# Run as root (network namespace, sshd). INFRA: the binary (target/release/infra).
set -eu
n=${1:-1000}
par=${2:-32}
infra=$(realpath "${INFRA:-target/release/infra}")
ns=infra-scale-$$
d=$(mktemp -d)
sshd_pid=
cleanup() {
  if [ -n "$sshd_pid" ]; then kill "$sshd_pid" 2>/dev/null || :; fi
  ip netns del "$ns" 2>/dev/null || :
  rm -rf "$d"
}
trap cleanup EXIT INT TERM
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$d/client_key"
cp "$d/client_key.pub" "$d/authorized_keys"
mkdir -p /run/sshd "$d/home/.ssh" "$d/cfg"
cat > "$d/sshd_config" <<CFG
Port 22
ListenAddress 0.0.0.0
HostKey $d/host_key
PidFile none
UsePAM no
StrictModes no
AuthorizedKeysFile $d/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel ERROR
MaxStartups 2000
MaxSessions 10
CFG
ip netns exec "$ns" /usr/sbin/sshd -D -e -f "$d/sshd_config" 2>"$d/sshd.log" &
sshd_pid=$!
# the configuration and the known_hosts line of each host
key=$(cut -d' ' -f1,2 "$d/host_key.pub")
awk -v n="$n" -v k="$d/client_key" -v hk="$key" -v kh="$d/home/.ssh/known_hosts" 'BEGIN {
  for (i = 0; i < n; i++) {
    a = sprintf("127.1.%d.%d", int(i / 250), i % 250 + 1)
    printf "host h%05d {\n  address = \"%s\"\n  ssh {\n    key = \"%s\"\n  }\n}\n", i, a, k
    print a " " hk > kh
  }
}' > "$d/cfg/hosts.infra"
cat > "$d/cfg/main.infra" <<'CFG'
kind peer(on: placement, files: [string]) {
  directory "/srv/peer" {
    mode = "0755"
  }
  file "/srv/peer/f${files}.conf" {
    content = "value\n"
  }
  unit "peer.service" {
    content = "[Unit]\nDescription=peer\n\n[Service]\nExecStart=/bin/sleep infinity\n"
    enable = true
    start  = true
  }
}

peer w {
  on = all
  files = ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15",
           "16", "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30"]
}
CFG
i=0
until ip netns exec "$ns" bash -c 'exec 3<>/dev/tcp/127.0.0.1/22' 2>/dev/null || [ $i -ge 50 ]; do
  sleep 0.1; i=$((i + 1))
done
[ $i -lt 50 ] || { echo "fleet-scale: sshd did not listen within 5 s: $(cat "$d/sshd.log")" >&2; exit 1; }
ulimit -n 20000
# the front end alone (parse, resolve, render), for the share of it in the CPU time
/usr/bin/time -f '%e %U %S %M' -o "$d/check" "$infra" build "$d/cfg" --out "$d/build" >/dev/null 2>&1
set +e
HOME="$d/home" /usr/bin/time -f '%e %U %S %M' -o "$d/time" \
  ip netns exec "$ns" ${WRAP:-} "$infra" plan "$d/cfg" --parallel "$par" >"$d/plan" 2>"$d/err"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "fleet-scale: infra plan exited $rc:" >&2
  tail -n 20 "$d/err" >&2
  exit 1
fi
planned=$(grep -c '^h[0-9]*: ' "$d/plan" || :)
read -r wall user sys rss < "$d/time"
read -r bwall buser bsys _ < "$d/check"
awk -v n="$n" -v p="$par" -v w="$wall" -v u="$user" -v s="$sys" -v m="$rss" -v planned="$planned" \
    -v bw="$bwall" -v bu="$buser" -v bs="$bsys" 'BEGIN {
  printf "hosts %d, --parallel %d: %d planned\n", n, p, planned
  printf "  wall %.2f s; client CPU %.2f s (user %.2f, sys %.2f) = %.2f ms per host; peak memory %.1f MB = %.0f KB per host\n",
    w, u + s, u, s, (u + s) * 1000 / n, m / 1024, m / n
  printf "  of it, the front end (infra build, to disk): %.2f s CPU, %.2f s wall\n", bu + bs, bw
}'
