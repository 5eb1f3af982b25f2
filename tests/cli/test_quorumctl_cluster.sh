#!/usr/bin/env bash
# Integration test of the local cluster launcher and the status/data commands
# against real quorumd processes on 127.0.0.1: cluster up --nodes 3, status,
# set/get, SIGKILL the leader, a new leader, restart the old one, it catches
# up, cluster down, no recorded process left. Every wait polls against a
# deadline. Exits 77 (skip) when quorumd is not built.
# Usage: test_quorumctl_cluster.sh path/to/quorumctl path/to/quorumd
set -uo pipefail
ctl=$1
quorumd=${2:-}
if [ ! -x "$quorumd" ]; then
  echo "SKIP: quorumd is not built ('$quorumd' is not executable)"
  exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_quorumctl_cluster.XXXXXX")
dir=$tmp/cluster

# The PIDs in the record whose command line still names this test's directory.
recorded_alive() {
  [ -f "$dir/cluster" ] || return 0
  awk '$1 == "node" && $3 > 0 { print $3 }' "$dir/cluster" | while read -r pid; do
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/node"; then
      echo "$pid"
    fi
  done
}
cleanup() {
  for pid in $(recorded_alive) ${started_pids:-}; do
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/node"; then
      kill -KILL "$pid" 2>/dev/null
    fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
  echo "FAIL: $*" >&2
  for log in "$dir"/node*.log; do
    [ -f "$log" ] || continue
    echo "--- last lines of $log" >&2
    tail -n 15 "$log" >&2
  done
  exit 1
}

# run <expected exit> args...: runs quorumctl, keeps its output in $out.
run() {
  local want=$1
  shift
  out=$("$ctl" "$@" 2>&1)
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "$out" >&2
    fail "quorumctl $* -> exit $rc, want $want"
  fi
}

# wait_for <seconds> <description> <command...>: polls until the command succeeds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$out" >&2
      fail "timed out after ${seconds}s waiting for: $what"
    fi
    sleep 0.5
  done
}

# The rows of the status table: "ID ADDRESS ROLE TERM COMMIT APPLIED LAG HEALTH...".
status_rows() {
  out=$("$ctl" status --dir "$dir" --timeout-ms 2000 2>&1)
  status_rc=$?
  rows=$(grep -E '^[0-9]+ ' <<<"$out")
}
leader_of_rows() { awk '$3 == "leader" { print $1 }' <<<"$rows"; }

cluster_healthy() {
  status_rows
  [ "$status_rc" -eq 0 ] && [ "$(wc -l <<<"$rows")" -eq 3 ] && [ "$(leader_of_rows | wc -l)" -eq 1 ]
}
new_leader_elected() {
  status_rows
  local l
  l=$(leader_of_rows)
  [ -n "$l" ] && [ "$l" != "$old_leader" ]
}
caught_up() {
  status_rows
  [ "$status_rc" -eq 0 ] && [ "$(awk '{ print $6 }' <<<"$rows" | sort -u | wc -l)" -eq 1 ]
}
value_is() {
  out=$("$ctl" get "$1" --dir "$dir" 2>&1)
  [ "$out" = "$2" ]
}

# 1. Up: three nodes, one leader, everyone healthy.
run 0 cluster up --nodes 3 --dir "$dir" --quorumd "$quorumd"
grep -q 'redis-cli -p' <<<"$out" || fail "cluster up does not say how to connect: $out"
started_pids=$(awk '$1 == "node" { print $3 }' "$dir/cluster")
[ "$(wc -w <<<"$started_pids")" -eq 3 ] || fail "the record lists $(wc -w <<<"$started_pids") PIDs, want 3"
run 1 cluster up --nodes 3 --dir "$dir" --quorumd "$quorumd"
grep -q 'already holds a running cluster' <<<"$out" || fail "a second cluster up was not refused: $out"
wait_for 20 "status: exit 0, 3 rows, one leader" cluster_healthy

# 2. Writes and reads through the tool.
run 0 set greeting hello --dir "$dir"
[ "$out" = OK ] || fail "set printed '$out', want OK"
wait_for 10 "get greeting = hello" value_is greeting hello
run 0 get missing-key --dir "$dir"
[ "$out" = "(nil)" ] || fail "get of a missing key printed '$out', want (nil)"

# 3. SIGKILL the leader; the other two elect a new one and still take writes.
status_rows
old_leader=$(leader_of_rows)
[ -n "$old_leader" ] || fail "no leader in: $out"
run 0 cluster stop "$old_leader" --kill --dir "$dir"
wait_for 30 "a new leader other than node $old_leader" new_leader_elected
grep -E "^$old_leader " <<<"$rows" | grep -q 'unreachable' || fail "node $old_leader is not shown unreachable: $out"
[ "$status_rc" -eq 1 ] || fail "status exits $status_rc with a member down, want 1"
run 0 set after-failover yes --dir "$dir"
wait_for 10 "get after-failover = yes" value_is after-failover yes

# 4. Restart it: it rejoins and catches up (every APPLIED equal).
run 0 cluster start "$old_leader" --dir "$dir"
started_pids="$started_pids $(awk -v id="$old_leader" '$1 == "node" && $2 == id { print $3 }' "$dir/cluster")"
wait_for 30 "node $old_leader caught up (status exit 0, APPLIED equal)" caught_up
restarted=$(awk -v id="$old_leader" '$1 == "node" && $2 == id { print $4 }' "$dir/cluster")
out=$("$ctl" get after-failover --node "$restarted" 2>&1)
[ "$out" = yes ] || fail "get through the restarted node $restarted printed '$out', want yes"

# 5. Down: every recorded process stops, the record says so, status fails.
pids=$(recorded_alive)
[ "$(wc -w <<<"$pids")" -eq 3 ] || fail "want 3 running recorded PIDs before down, have: $pids"
run 0 cluster down --dir "$dir"
for pid in $pids; do
  if [ -r "/proc/$pid/cmdline" ] && [ -n "$(tr -d '\0' <"/proc/$pid/cmdline")" ]; then
    fail "pid $pid still runs after cluster down"
  fi
done
[ -z "$(recorded_alive)" ] || fail "recorded PIDs still alive after down"
awk '$1 == "node" && $3 != 0 { exit 1 }' "$dir/cluster" || fail "the record still lists PIDs after down"
run 1 status --dir "$dir" --timeout-ms 1000
run 0 cluster down --dir "$dir" --purge
[ ! -e "$dir" ] || fail "--purge left $dir"

echo "quorumctl cluster: all checks passed"
