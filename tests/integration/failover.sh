#!/usr/bin/env bash
# integration.failover: a writer sends unique keys round-robin through all three members
# while the leader is SIGKILLed; a new leader is elected, writes are acknowledged again, the
# killed member restarts and catches up, and every acknowledged write reads back through every
# member — again after all three are SIGKILLed and restarted.
#
# Usage: tests/integration/failover.sh path/to/quorumd
source "$(dirname "$0")/lib.sh" "$@"

ACKED=$WORK/acked
ERRORS=$WORK/errors
start_cluster 3 --request-timeout-ms 3000 || finish
old=$(current_leader 1 2 3)
log "leader is member $old; starting the writer"

bg_py "$WORK/writer.out" writer --ports "${CLIENT_PORT[1]},${CLIENT_PORT[2]},${CLIENT_PORT[3]}" \
  --seconds 14 --prefix fo --acked "$ACKED" --errors "$ERRORS" --request-timeout 10
writer=$BG_PID

wait_for 15 eval '[ "$(count_lines "$ACKED")" -ge 100 ]' ||
  fail "the writer had fewer than 100 acknowledged writes after 15 s (got $(count_lines "$ACKED"))"
before_kill=$(count_lines "$ACKED")
kill_time=$(date +%s.%N)
kill_node "$old" KILL
log "SIGKILLed leader $old after $before_kill acknowledged writes"

others=()
for id in 1 2 3; do [ "$id" = "$old" ] || others+=("$id"); done
new=$(wait_leader 30 "${others[@]}")
if [ -n "$new" ]; then
  pass "a new leader ($new) among ${others[*]} after the kill"
else
  fail "no new leader among ${others[*]} within 30 s"
  dump_status "${others[@]}"
fi

acked_after_kill() { awk -v t="$kill_time" '$3 > t + 0 { n++ } END { print n + 0 }' "$ACKED"; }
wait_for 20 eval '[ "$(acked_after_kill)" -ge 20 ]'
n_after=$(acked_after_kill)
expect_match "writes are acknowledged again after the kill (>= 20)" '^([2-9][0-9]|[0-9]{3,})$' "$n_after"

log "restarting member $old"
restart_node "$old"
wait_for 20 serves "$old" || fail "restarted member $old does not answer PING within 20 s"

if wait_pid 40 "$writer"; then
  pass "the writer finished: $(cat "$WORK/writer.out")"
else
  fail "the writer did not finish within 40 s"
fi
total=$(count_lines "$ACKED")
log "$total acknowledged writes; error kinds:"
awk '{ print $2, $3 }' "$ERRORS" 2>/dev/null | sort | uniq -c | sed 's/^/#   /'
# error kinds must be the ones a failover explains: no answer from the dead member, TRYAGAIN
# and TIMEOUT from the others (the write was not, or maybe was, applied)
bad=$(grep -v -E ' conn | reply (TRYAGAIN|TIMEOUT)' "$ERRORS" 2>/dev/null | head -n 5)
expect "only connection errors, TRYAGAIN and TIMEOUT during the failover" "" "$bad"

leader=$(wait_leader 30 1 2 3)
[ -n "$leader" ] || { fail "no agreed leader after the restart"; dump_status 1 2 3; }
if [ -n "$leader" ] && wait_caught_up 30 "$old" "$leader"; then
  pass "restarted member $old caught up (applied $(field "$old" applied_index) >= leader commit)"
else
  fail "restarted member $old did not catch up within 30 s"
  dump_status 1 2 3
fi
verify_acked "$ACKED" 1 2 3

log "SIGKILL all three, restart all three"
for id in 1 2 3; do kill_node "$id" KILL; done
for id in 1 2 3; do restart_node "$id"; done
leader=$(wait_leader 30 1 2 3)
if [ -n "$leader" ]; then
  pass "a leader ($leader) after restarting every member"
else
  fail "no leader within 30 s after restarting every member"
  dump_status 1 2 3
fi
verify_acked "$ACKED" 1 2 3
expect "a write after the full restart" OK "$(rcr "${others[0]}" SET after:restart yes)"
expect "read back through $old" yes "$(rcr "$old" GET after:restart)"

log "SIGTERM the leader: it hands over and exits 0"
leader=$(wait_leader 20 1 2 3)
pid=${PIDS[$leader]}
kill -TERM "$pid"
if wait_pid 20 "$pid"; then
  unset "PIDS[$leader]"
  expect "leader $leader stopped on SIGTERM with exit status 0" 0 "$WAIT_STATUS"
else
  fail "leader $leader still runs 20 s after SIGTERM"
fi
rest=()
for id in 1 2 3; do [ "$id" = "$leader" ] || rest+=("$id"); done
new=$(wait_leader 20 "${rest[@]}")
[ -n "$new" ] && pass "a new leader ($new) after the graceful stop" || fail "no new leader among ${rest[*]}"
expect "a write after the graceful stop" OK "$(rcr "${rest[0]}" SET after:term yes)"
verify_acked "$ACKED" "${rest[@]}"

finish
