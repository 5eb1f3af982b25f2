#!/usr/bin/env bash
# integration.majority: with two of three members stopped (SIGSTOP), the remaining member
# answers writes and reads with an error (TRYAGAIN or TIMEOUT) within a bounded time: never a
# success, never a hang. After SIGCONT the cluster serves writes and reads again. Run twice:
# stopping both followers (the leader remains), then the leader and one follower.
#
# Usage: tests/integration/majority.sh path/to/quorumd
source "$(dirname "$0")/lib.sh" "$@"

start_cluster 3 --request-timeout-ms 2000 || finish

ms() { date +%s%3N; }

# timed_call ID ARGS...: prints "<reply>|<milliseconds>" (raw reply, bounded by 15 s).
timed_call() {
  local id=$1 t0 out
  shift
  t0=$(ms)
  out=$(timeout 15 redis-cli -h 127.0.0.1 -p "${CLIENT_PORT[$id]}" --raw "$@" 2>&1 | tr -d '\r')
  [ ${PIPESTATUS[0]} -eq 124 ] && out="HANG (no reply within 15 s)"
  echo "$out|$(($(ms) - t0))"
}

# expect_unavailable NAME ID ARGS...: the reply is TRYAGAIN or TIMEOUT and arrives within 8 s.
expect_unavailable() {
  local name=$1 r reply took
  shift
  r=$(timed_call "$@")
  reply=${r%|*}
  took=${r##*|}
  if [[ $reply =~ ^(TRYAGAIN|TIMEOUT) ]] && [ "$took" -le 8000 ]; then
    pass "$name: '$reply' after $took ms"
  else
    fail "$name: expected TRYAGAIN or TIMEOUT within 8000 ms, got '$reply' after $took ms"
  fi
}

variant() { # variant NAME STOPPED_ID STOPPED_ID REMAINING_ID
  local name=$1 a=$2 b=$3 rest=$4 i
  log "$name: SIGSTOP $a and $b; member $rest remains"
  kill_node "$a" STOP
  kill_node "$b" STOP
  for i in 1 2; do
    expect_unavailable "$name: GET through $rest (try $i)" "$rest" GET "maj:before"
    expect_unavailable "$name: SET through $rest (try $i)" "$rest" SET "maj:$name:$i" v
  done
  expect_unavailable "$name: INCR through $rest" "$rest" INCR "maj:ctr"
  expect_unavailable "$name: MGET through $rest" "$rest" MGET maj:before maj:ctr
  expect "$name: member $rest still answers PING" PONG "$(rcr "$rest" PING)"
  log "$name: SIGCONT $a and $b"
  kill_node "$a" CONT
  kill_node "$b" CONT
  if wait_for 30 write_ok "$rest" "maj:$name:after" yes; then
    pass "$name: writes through $rest succeed again"
  else
    fail "$name: writes through $rest still fail 30 s after SIGCONT: $(rcr "$rest" SET "maj:$name:after" yes)"
    dump_status 1 2 3
  fi
  for i in 1 2 3; do
    expect "$name: GET through $i after SIGCONT" yes "$(rcr "$i" GET "maj:$name:after")"
    expect "$name: the write from before is intact on $i" old "$(rcr "$i" GET maj:before)"
  done
  LEADER=$(wait_leader 20 1 2 3)
  if [ -n "$LEADER" ]; then pass "$name: one agreed leader ($LEADER) afterwards"; else fail "$name: no agreed leader afterwards"; fi
}

expect "a write before the faults" OK "$(rcr 1 SET maj:before old)"
leader=$(current_leader 1 2 3)
f1=$((leader % 3 + 1))
f2=$((f1 % 3 + 1))
variant followers-stopped "$f1" "$f2" "$leader"
[ -n "$LEADER" ] || finish
f1=$((LEADER % 3 + 1))
f2=$((f1 % 3 + 1))
variant leader-stopped "$LEADER" "$f1" "$f2"

finish
