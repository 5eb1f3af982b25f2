#!/usr/bin/env bash
# A real three-node cluster of examples/counter on 127.0.0.1: election, replication through
# forwarding, leader crash (SIGKILL), re-election, restart and catch-up (through a snapshot
# install: snapshots are taken every few entries), graceful shutdown.
#
# Usage: tests/node/test_cluster.sh path/to/counter
# Prints one line per check and "N passed, N failed"; exits 0 only if every check passed.
# Waits by polling against deadlines; the whole run is bounded (about 40 s at worst).
set -uo pipefail

counter=${1:?usage: test_cluster.sh path/to/counter}
work=$(mktemp -d "${TMPDIR:-/tmp}/quorum-node-test.XXXXXX")
passed=0
failed=0
declare -A pids

cleanup() {
  for id in "${!pids[@]}"; do
    kill -KILL "${pids[$id]}" 2>/dev/null
  done
  wait 2>/dev/null
  if [ "$failed" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "logs kept in $work"
  fi
}
trap cleanup EXIT

check() { # check NAME COMMAND...
  local name=$1
  shift
  if "$@"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    failed=$((failed + 1))
  fi
}

# The whole run stops waiting after this many seconds, however many checks remain.
test_deadline=$((SECONDS + 45))

# wait_for SECONDS COMMAND...: poll every 100 ms until COMMAND succeeds or time runs out.
wait_for() {
  local deadline=$((SECONDS + $1))
  [ "$deadline" -le "$test_deadline" ] || deadline=$test_deadline
  shift
  while [ "$SECONDS" -lt "$deadline" ]; do
    if "$@"; then
      return 0
    fi
    sleep 0.1
  done
  "$@"
}

free_ports() {
  python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

read -r port1 port2 port3 < <(free_ports)
peers="1=127.0.0.1:$port1,2=127.0.0.1:$port2,3=127.0.0.1:$port3"

start() { # start ID
  "$counter" --id "$1" --peers "$peers" --data "$work/data$1" --interval-ms 100 \
    --snapshot-entries 20 --snapshot-trailing 5 >>"$work/out$1" 2>>"$work/err$1" &
  pids[$1]=$!
}

# field ID NAME: NAME=value from node ID's latest status line ("" when none yet).
field() {
  [ -f "$work/out$1" ] || return 0
  tail -n 1 "$work/out$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

alive() { kill -0 "${pids[$1]}" 2>/dev/null; }

# leader_of IDS...: the leader id that every listed node reports as itself or its leader.
agreed_leader() {
  local leader=""
  for id in "$@"; do
    local l
    l=$(field "$id" leader)
    if [ -z "$l" ] || [ "$l" = 0 ] || { [ -n "$leader" ] && [ "$l" != "$leader" ]; }; then
      return 1
    fi
    leader=$l
  done
  [ "$(field "$leader" role)" = leader ] || return 1
  echo "$leader"
}

has_leader() { agreed_leader "$@" >/dev/null; }

# values_at_least N IDS...: every listed node has applied increments to a value >= N.
values_at_least() {
  local want=$1
  shift
  for id in "$@"; do
    local v
    v=$(field "$id" value)
    [ -n "$v" ] && [ "$v" -ge "$want" ] || return 1
  done
}

applied_at_least() {
  local want=$1
  shift
  for id in "$@"; do
    local a
    a=$(field "$id" applied)
    [ -n "$a" ] && [ "$a" -ge "$want" ] || return 1
  done
}

# Every status line of every node: the same applied index always shows the same value.
states_consistent() {
  cat "$work"/out* | sed -n 's/.*value=\([0-9]*\) applied=\([0-9]*\).*/\2 \1/p' | sort -u |
    awk '{ if ($1 in seen && seen[$1] != $2) { bad = 1 } seen[$1] = $2 } END { exit bad }'
}

no_errors() {
  ! grep -hE ' ERROR |Sanitizer|runtime error' "$work"/err* >/dev/null
}

none_alive() {
  for id in 1 2 3; do
    ! alive "$id" || return 1
  done
}

stop_all() {
  local rc=0
  for id in 1 2 3; do
    alive "$id" && kill -TERM "${pids[$id]}"
  done
  wait_for 10 none_alive || rc=1
  for id in 1 2 3; do
    kill -KILL "${pids[$id]}" 2>/dev/null
    wait "${pids[$id]}" || rc=1
    unset "pids[$id]"
  done
  return $rc
}

closed_cleanly() {
  for id in 1 2 3; do
    grep -q "node: node=$id closed" "$work/err$id" || return 1
  done
}

for id in 1 2 3; do
  start "$id"
done

check "a leader is elected" wait_for 10 has_leader 1 2 3
check "increments are applied on all three nodes" wait_for 10 values_at_least 10 1 2 3

leader=$(agreed_leader 1 2 3)
leader=${leader:-1}
survivors=()
for id in 1 2 3; do
  [ "$id" != "$leader" ] && survivors+=("$id")
done
kill -KILL "${pids[$leader]}"
wait "${pids[$leader]}" 2>/dev/null
unset "pids[$leader]"
before=$(field "${survivors[0]}" value)

new_leader_elected() {
  local l
  l=$(agreed_leader "${survivors[@]}") && [ "$l" != "$leader" ]
}
check "a new leader is elected after SIGKILL of leader $leader" wait_for 10 new_leader_elected
check "the survivors keep incrementing" wait_for 10 values_at_least $((before + 20)) "${survivors[@]}"

start "$leader"
target=$(field "${survivors[0]}" applied)
check "the restarted node $leader catches up (applied >= $target)" \
  wait_for 15 applied_at_least "$target" "$leader"
installed_snapshot() { grep -q "node=$leader .*restored snapshot .* from the leader" "$work/err$leader"; }
check "node $leader caught up through a snapshot (its log was compacted away)" installed_snapshot
check "all three agree on a leader again" wait_for 10 has_leader 1 2 3
check "the same applied index always holds the same value" states_consistent
check "SIGTERM stops every node with exit status 0" stop_all
check "every node logged a clean close" closed_cleanly
check "no ERROR line or sanitizer report" no_errors

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
