#!/usr/bin/env bash
# integration.membership: under a steady write load through members 1 and 2, member 4 starts
# with --join, is added as a learner, catches up, is promoted; member 3 is removed and
# stopped; leadership is transferred to 4. Writes keep succeeding (the only errors allowed
# are TRYAGAIN and TIMEOUT), every acknowledged write reads back through 1, 2 and 4, and the
# removed member is no longer listed.
#
# Usage: tests/integration/membership.sh path/to/quorumd
source "$(dirname "$0")/lib.sh" "$@"

ACKED=$WORK/acked
ERRORS=$WORK/errors
setup_ports 4
start_cluster_ids() {
  CLUSTER=$(cluster_list 1 2 3)
  NODE_FLAGS=(--request-timeout-ms 3000)
  for id in 1 2 3; do start_node "$id" "${NODE_FLAGS[@]}"; done
}
start_cluster_ids
leader=$(wait_leader 20 1 2 3)
[ -n "$leader" ] || { fail "no leader within 20 s"; dump_status 1 2 3; finish; }
log "leader is member $leader; starting the writer through members 1 and 2"

bg_py "$WORK/writer.out" writer --ports "${CLIENT_PORT[1]},${CLIENT_PORT[2]}" --seconds 80 \
  --prefix mb --acked "$ACKED" --errors "$ERRORS" --stop-file "$WORK/stop" --pace 0.002
writer=$BG_PID
wait_for 15 eval '[ "$(count_lines "$ACKED")" -ge 50 ]' || fail "fewer than 50 writes acknowledged in 15 s"

# on_leader IDS ARGS...: run ARGS on the current leader among IDS (comma-separated), retrying
# for up to 20 s while the answer is NOTLEADER/TRYAGAIN; prints the last answer.
on_leader() {
  local ids=$1 out="" l deadline=$((SECONDS + 20))
  shift
  while [ "$SECONDS" -lt "$deadline" ]; do
    l=$(current_leader ${ids//,/ })
    if [ -n "$l" ]; then
      out=$(rcr "$l" "$@" | tr -d '\r')
      [[ $out =~ ^(NOTLEADER|TRYAGAIN) ]] || break
    fi
    sleep 0.2
  done
  echo "$out"
}

# member_line VIEWER ID: member VIEWER's "member_ID:" value.
member_line() { field "$1" "member_$2"; }
role_is() { [[ $(member_line "$1" "$2") == role=$3,* ]]; }

log "starting member 4 with --join"
CLUSTER=$(cluster_list 1 2 3 4)
start_node 4 --join --request-timeout-ms 3000
wait_for 15 serves 4 || fail "member 4 (--join) does not answer PING"
expect "QUORUM.ADD 4 on the leader" OK \
  "$(on_leader 1,2,3 QUORUM.ADD 4 "127.0.0.1:${PEER_PORT[4]}" "127.0.0.1:${CLIENT_PORT[4]}")"
leader=$(wait_leader 10 1 2 3)
if wait_for 20 role_is "$leader" 4 learner; then
  pass "member 4 is listed as learner: $(member_line "$leader" 4)"
else
  fail "member 4 is not a learner on leader $leader: '$(member_line "$leader" 4)'"
fi
if wait_caught_up 30 4 "$leader"; then
  pass "learner 4 caught up (applied $(field 4 applied_index))"
else
  fail "learner 4 did not catch up within 30 s"
  dump_status 1 2 3 4
fi

expect "QUORUM.PROMOTE 4" OK "$(on_leader 1,2,3 QUORUM.PROMOTE 4)"
leader=$(wait_leader 10 1 2 3 4)
if wait_for 20 role_is "$leader" 4 voter; then
  pass "member 4 is a voter: $(member_line "$leader" 4)"
else
  fail "member 4 did not become a voter: '$(member_line "$leader" 4)'"
fi
expect "members: after the promotion" 4 "$(field "$leader" members)"

# make 3 the leader first, so that the leader removes itself
# (a transfer to the leader itself is refused: skip it when 3 already leads)
is_leader() { [ "$(current_leader 1 2 3 4)" = "$1" ]; }
if [ "$(wait_leader 10 1 2 3 4)" != 3 ]; then
  expect "QUORUM.TRANSFER 3" OK "$(on_leader 1,2,3,4 QUORUM.TRANSFER 3)"
  wait_for 20 is_leader 3 || fail "member 3 is not the leader 20 s after QUORUM.TRANSFER 3 (leader: '$(current_leader 1 2 3 4)')"
fi
expect "QUORUM.REMOVE 3 (on the leader, 3 itself)" OK "$(on_leader 1,2,3,4 QUORUM.REMOVE 3)"
leader=$(wait_leader 20 1 2 4)
[ -n "$leader" ] || { fail "no agreed leader among 1 2 4 after removing 3"; dump_status 1 2 3 4; }
gone() { [ "$(field "$1" members)" = 3 ] && [ -z "$(member_line "$1" 3)" ]; }
for id in 1 2 4; do
  if wait_for 20 gone "$id"; then
    pass "member $id no longer lists 3"
  else
    fail "member $id still lists 3 or has members:$(field "$id" members): '$(member_line "$id" 3)'"
  fi
done
log "stopping removed member 3 (SIGTERM)"
kill_node 3 TERM

leader=$(wait_leader 10 1 2 4)
if [ "$leader" = 4 ]; then
  # 4 already leads (a transfer to the leader itself is refused): move leadership away first
  expect "QUORUM.TRANSFER 1 (4 already leads)" OK "$(on_leader 1,2,4 QUORUM.TRANSFER 1)"
  wait_for 20 eval '[ "$(current_leader 1 2 4)" = 1 ]' || fail "member 1 is not the leader after QUORUM.TRANSFER 1"
fi
expect "QUORUM.TRANSFER 4" OK "$(on_leader 1,2,4 QUORUM.TRANSFER 4)"
is_leader_4() { [ "$(current_leader 1 2 4)" = 4 ]; }
if wait_for 20 is_leader_4; then
  pass "member 4 is the leader after the transfer"
else
  fail "member 4 is not the leader 20 s after QUORUM.TRANSFER 4 (leader: '$(current_leader 1 2 4)')"
  dump_status 1 2 4
fi

# keep writing under the new configuration for a moment
n=$(count_lines "$ACKED")
wait_for 15 eval '[ "$(count_lines "$ACKED")" -ge $((n + 50)) ]' ||
  fail "fewer than 50 writes acknowledged after the transfer"
touch "$WORK/stop"
if wait_pid 20 "$writer"; then
  pass "the writer finished: $(cat "$WORK/writer.out")"
else
  fail "the writer did not stop within 20 s"
fi

log "error kinds during the run:"
awk '{ print $2, $3 }' "$ERRORS" 2>/dev/null | sort | uniq -c | sed 's/^/#   /'
bad=$(grep -v -E ' reply (TRYAGAIN|TIMEOUT)' "$ERRORS" 2>/dev/null | head -n 5)
expect "only TRYAGAIN and TIMEOUT errors during the membership changes" "" "$bad"

for id in 1 2 4; do
  expect "a write through $id at the end" OK "$(rcr "$id" SET "end:$id" done)"
done
for id in 1 2 4; do
  expect "member $id reads end:1" done "$(rcr "$id" GET end:1)"
done
leader=$(wait_leader 10 1 2 4)
for id in 1 2 4; do
  wait_caught_up 20 "$id" "$leader" || fail "member $id did not catch up with leader $leader"
done
verify_acked "$ACKED" 1 2 4

finish
