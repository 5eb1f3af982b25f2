#!/usr/bin/env bash
# The README's first command: installs dependencies, builds, and runs the main job, a local
# 3-node quorumd cluster on 127.0.0.1 spoken to with redis-cli:
#   start it (quorumctl cluster up), write through one node, show that every node applied
#   it (quorumctl status), SIGKILL the leader, show the new leader and a successful write,
#   restart the old leader and show it caught up, stop everything (by PID).
# It finishes on its own in well under a minute and leaves no process behind. First, the
# quorum analysis of the original specification's example, Quorum(3 nodes, 1 fault).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release >/dev/null
bin=$PWD/build/release/tools
ctl=$bin/quorumctl/quorumctl
dir=$(mktemp -d "${TMPDIR:-/tmp}/quorum-demo.XXXXXX")
cleanup() {
  "$ctl" cluster down --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
run() {
  printf '$ %s\n' "$*" | sed "s#$bin/quorumctl/##; s#$dir#\$DIR#g"
  "$@" 2>&1 | sed "s#$dir#\$DIR#g"
}
# leader_id: the leader's id from `quorumctl status --json` (empty while there is none).
leader_id() {
  { "$ctl" status --dir "$dir" --json 2>/dev/null || true; } |
    sed -n 's/^{"leader_id":\([0-9]*\).*/\1/p'
}
port_of() { awk -v id="$1" '$1 == "node" && $2 == id { split($4, a, ":"); print a[2] }' "$dir/cluster"; }
wait_until() { # wait_until <seconds> <description> <command...>
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "demo: $what did not happen within the deadline" >&2
      exit 1
    fi
    sleep 0.2
  done
}

step "what Quorum(num_nodes=3, fault_tolerance=1) promises"
run "$ctl" analyze --nodes 3 --fault-tolerance 1

step "start a local 3-node cluster (quorumd x 3, sync always, on 127.0.0.1)"
"$ctl" cluster up --nodes 3 --dir "$dir" 2>&1 | sed "s#$dir#\$DIR#g"
p1=$(port_of 1)
p2=$(port_of 2)
p3=$(port_of 3)

step "write through node 1 with redis-cli, read it back from every node"
run redis-cli -p "$p1" SET greeting "hello, quorum"
run redis-cli -p "$p1" INCRBY visits 3
for p in "$p1" "$p2" "$p3"; do run redis-cli -p "$p" GET greeting; done
run "$ctl" status --dir "$dir"

old=$(leader_id)
step "SIGKILL the leader (node $old)"
run "$ctl" cluster stop "$old" --kill --dir "$dir"
has_new_leader() { local l; l=$(leader_id); [ -n "$l" ] && [ "$l" != 0 ] && [ "$l" != "$old" ]; }
wait_until 15 "a new leader" has_new_leader
new=$(leader_id)
echo "node $new leads now"
survivor=$(port_of "$new")
run redis-cli -p "$survivor" SET after-failover "written while node $old was down"
run redis-cli -p "$survivor" INCR visits
run "$ctl" status --dir "$dir" || true # exit 1: node $old is down, as the table shows.

step "restart node $old: it catches up from the others"
run "$ctl" cluster start "$old" --dir "$dir"
caught_up() {
  [ "$(redis-cli -p "$(port_of "$old")" GET after-failover 2>/dev/null)" = \
    "written while node $old was down" ]
}
wait_until 15 "node $old catching up" caught_up
run redis-cli -p "$(port_of "$old")" GET after-failover
run redis-cli -p "$(port_of "$old")" GET visits
wait_until 10 "a healthy status" "$ctl" status --dir "$dir" --json >/dev/null
run "$ctl" status --dir "$dir"

step "stop every node by PID"
pids=$(awk '$1 == "node" && $3 != 0 { print $3 }' "$dir/cluster")
run "$ctl" cluster down --dir "$dir"
for pid in $pids; do
  if kill -0 "$pid" 2>/dev/null && grep -q quorumd "/proc/$pid/cmdline" 2>/dev/null; then
    echo "demo: quorumd pid $pid is still running" >&2
    exit 1
  fi
done
echo "no quorumd process left; demo done in ${SECONDS}s"
