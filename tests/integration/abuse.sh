#!/usr/bin/env bash
# integration.abuse: hostile clients and hostile peers. Random bytes, absurd bulk lengths and
# argument counts, half-sent requests, idle connections (--timeout), clients that never read
# their replies (--output-buffer-bytes), too many connections (--maxclients), garbage on the
# peer port and a member with the wrong secret. After each, every member is still running and
# serves PING/SET/GET, and the cluster keeps one leader.
#
# Usage: tests/integration/abuse.sh path/to/quorumd
source "$(dirname "$0")/lib.sh" "$@"

setup_ports 4
CLUSTER=$(cluster_list 1 2 3)
# member 1 has tight limits; 2 and 3 the defaults
start_node 1 --timeout 1 --maxclients 16 --output-buffer-bytes 65536 --max-args 1000 \
  --max-bulk-bytes 1048576
start_node 2
start_node 3
leader=$(wait_leader 20 1 2 3)
[ -n "$leader" ] || { fail "no leader within 20 s"; dump_status 1 2 3; finish; }
term0=$(field "$leader" term)
log "leader is member $leader (term $term0)"

n_health=0
# healthy WHAT: every member's process is alive and answers PING, SET and GET.
healthy() {
  local what=$1 id v
  n_health=$((n_health + 1))
  for id in 1 2 3; do
    if ! alive "$id"; then
      fail "after $what: member $id (pid ${PIDS[$id]:-?}) is no longer running"
      tail -n 20 "$WORK/log$id" | sed 's/^/     log: /'
      continue
    fi
    v="h$n_health.$id"
    out=$(printf 'PING\nSET health:%s %s\nGET health:%s\n' "$id" "$v" "$id" |
      timeout 15 redis-cli -h 127.0.0.1 -p "${CLIENT_PORT[$id]}" --raw 2>&1 | tr -d '\r')
    expect "after $what: member $id serves PING/SET/GET" $'PONG\nOK\n'"$v" "$out"
  done
}

# send_check NAME PORT EXPECT_REGEX SEND_ARGS...: send bytes with resp.py; the output
# ("closed"/"open" then the reply bytes) must match EXPECT_REGEX.
send_check() {
  local name=$1 port=$2 re=$3 out
  shift 3
  out=$(timeout 30 python3 "$RESP_PY" send --port "$port" "$@" 2>&1)
  expect_match "$name" "$re" "$out"
}

log "client port: 1 MB of random bytes"
for id in 1 2; do
  send_check "member $id: random bytes are refused or answered with errors" "${CLIENT_PORT[$id]}" \
    '^(closed|open)' --random 1048576 --wait 3
done
healthy "1 MB of random bytes"

log "client port: bulk length 2^40"
for id in 1 2; do
  send_check "member $id: \$1099511627776 gets a protocol error and the connection closes" \
    "${CLIENT_PORT[$id]}" $'^closed\n.*ERR' --text '*1\r\n$1099511627776\r\n' --wait 5
  send_check "member $id: negative bulk length" "${CLIENT_PORT[$id]}" $'^closed\n.*ERR' \
    --text '*1\r\n$-5\r\nxx\r\n' --wait 5
  send_check "member $id: bulk length just above --max-bulk-bytes" "${CLIENT_PORT[$id]}" $'^closed\n.*ERR' \
    --text '*2\r\n$3\r\nSET\r\n$999999999\r\n' --wait 5
done
healthy "bulk length 2^40"

log "client port: huge multibulk counts"
for id in 1 2; do
  # a million announced arguments, a few sent, then the client closes
  send_check "member $id: *1000000 with a few arguments then close" "${CLIENT_PORT[$id]}" \
    '^(closed|open)' --text '*1000000\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n' --wait 1
  send_check "member $id: *100000000 (beyond --max-args) is refused" "${CLIENT_PORT[$id]}" \
    $'^closed\n.*ERR' --text '*100000000\r\n' --wait 5
  send_check "member $id: *-1 then garbage" "${CLIENT_PORT[$id]}" '^(closed|open)' \
    --text '*-1\r\n*0\r\n*x\r\n' --wait 2
done
send_check "member 1: *1001 (beyond its --max-args 1000) is refused" "${CLIENT_PORT[1]}" \
  $'^closed\n.*ERR' --text '*1001\r\n' --wait 5
expect "member 1: 999 arguments (MGET of 998 keys) are served" 998 \
  "$(timeout 20 python3 - "${CLIENT_PORT[1]}" "$RESP_PY" <<'EOF'
import sys, importlib.util
spec = importlib.util.spec_from_file_location("resp", sys.argv[2])
resp = importlib.util.module_from_spec(spec); spec.loader.exec_module(resp)
c = resp.Conn(int(sys.argv[1]))
r = c.call("MGET", *["k%d" % i for i in range(998)])
print(len(r) if isinstance(r, list) else repr(r))
EOF
)"
healthy "huge multibulk counts"

log "client port: a half-sent command, then silence"
python3 "$RESP_PY" hold --port "${CLIENT_PORT[2]}" --text '*2\r\n$3\r\nGET\r\n$5\r\nab' --seconds 6 \
  >"$WORK/hold2" 2>&1 &
holder=$!
EXTRA_PIDS+=("$holder")
python3 "$RESP_PY" hold --port "${CLIENT_PORT[1]}" --text '*2\r\n$3\r\nGET\r\n$5\r\nab' --seconds 10 \
  >"$WORK/hold1" 2>&1 &
holder1=$!
EXTRA_PIDS+=("$holder1")
python3 "$RESP_PY" hold --port "${CLIENT_PORT[1]}" --text '' --seconds 10 >"$WORK/idle1" 2>&1 &
idle1=$!
EXTRA_PIDS+=("$idle1")
healthy "a half-sent command (connection still open)"
wait_pid 20 "$holder" || fail "the holding client did not end"
expect "member 2 (no --timeout) keeps the half-sent connection open" open "$(cat "$WORK/hold2")"
wait_pid 20 "$holder1" || fail "the holding client did not end"
wait_pid 20 "$idle1" || fail "the idle client did not end"
expect_match "member 1 (--timeout 1) closes the half-sent connection" '^closed after [1-9]' "$(cat "$WORK/hold1")"
expect_match "member 1 (--timeout 1) closes an idle connection" '^closed after [1-9]' "$(cat "$WORK/idle1")"

log "client port: a client that never reads its replies"
big=$(head -c 49152 /dev/zero | tr '\0' x)
expect "SET a 48 KB value" OK "$(printf 'SET big %s\n' "$big" | timeout 10 redis-cli -p "${CLIENT_PORT[1]}" --raw 2>&1 | tr -d '\r')"
out=$(timeout 40 python3 "$RESP_PY" flood --port "${CLIENT_PORT[1]}" --key big --count 20000 --seconds 20)
expect_match "member 1 (--output-buffer-bytes 65536) closes a client that does not read" '^closed' "$out"
healthy "a client that never reads"

log "client port: more connections than --maxclients 16"
# earlier connections to member 1 may take a moment to be released
sleep_free() { [ "$(timeout 10 python3 "$RESP_PY" clients --port "${CLIENT_PORT[1]}" --count 1)" = "PONG|1" ]; }
wait_for 10 sleep_free
out=$(timeout 30 python3 "$RESP_PY" clients --port "${CLIENT_PORT[1]}" --count 30)
echo "$out" | sed 's/^/#   /'
expect_match "connections beyond 16 get 'max number of clients reached'" \
  'ERR max number of clients reached[|][0-9]+' "$out"
pongs=$(echo "$out" | sed -n 's/^PONG|//p')
[ "${pongs:-0}" -le 16 ] && [ "${pongs:-0}" -ge 1 ] &&
  pass "between 1 and 16 of the 30 connections were served ($pongs)" ||
  fail "expected 1..16 of the 30 connections served, got ${pongs:-0}"
wait_for 10 sleep_free || fail "member 1 does not accept a client again after the flood of connections"
healthy "more connections than --maxclients"

log "peer port: random bytes and garbage handshakes"
for id in 1 2 3; do
  send_check "member $id peer port: 1 MB of random bytes" "${PEER_PORT[$id]}" '^(closed|open)' \
    --random 1048576 --wait 3
  send_check "member $id peer port: a fake RESP handshake is dropped" "${PEER_PORT[$id]}" '^closed' \
    --text '*1\r\n$4\r\nPING\r\n' --wait 5
  send_check "member $id peer port: a huge length prefix is dropped" "${PEER_PORT[$id]}" '^closed' \
    --hex 'ffffffff51524f4d0100000000000000' --wait 5
  send_check "member $id peer port: zeros are dropped" "${PEER_PORT[$id]}" '^closed' \
    --hex '00000000000000000000000000000000000000000000000000000000000000000000000000000000' --wait 5
done
healthy "garbage on the peer ports"
l=$(wait_leader 10 1 2 3)
expect "the leader is unchanged after the peer-port garbage" "$leader" "$l"

log "a member with the wrong secret"
head -c 32 /dev/urandom | base64 >"$WORK/wrong-secret"
"$QUORUMD" --id 4 --cluster "$(cluster_list 1 2 3 4)" --listen "127.0.0.1:${CLIENT_PORT[4]}" \
  --data "$WORK/n4" --secret-file "$WORK/wrong-secret" --sync "$SYNC" >>"$WORK/out4" 2>>"$WORK/log4" &
PIDS[4]=$!
# let it try for a while: it times out elections (1 s) several times meanwhile
for i in 1 2 3 4 5 6; do
  expect "writes during the intruder's attempts ($i)" OK "$(rcr "$leader" SET intruder:$i x)"
  sleep 0.5
done
l=$(wait_leader 10 1 2 3)
expect "the leader is unchanged while the wrong-secret member runs" "$leader" "$l"
expect "the term is unchanged while the wrong-secret member runs" "$term0" "$(field "$leader" term)"
expect "the cluster still has 3 members" 3 "$(field "$leader" members)"
expect "the intruder is no leader's follower" "" "$(field 4 leader_id | grep -v '^0$')"
if grep -q -i -E 'auth|secret|handshake|cluster' "$WORK/log4"; then
  pass "the intruder logs the refusal: $(grep -i -E -m 1 'auth|secret|handshake|cluster id' "$WORK/log4" | cut -c1-160)"
else
  fail "the intruder's log says nothing about authentication: $(tail -n 3 "$WORK/log4")"
fi
refused=$(cat "$WORK/log1" "$WORK/log2" "$WORK/log3" | grep -c -i -E 'auth|secret|handshake')
[ "$refused" -gt 0 ] && pass "the members log the refused handshakes ($refused lines)" ||
  fail "no member logged a refused handshake"
healthy "a member with the wrong secret"
kill_node 4 KILL

log "a member with the right cluster id but the wrong secret"
cid=$(sed -n 's/.*initialised .* for cluster \([0-9]*\) node 1.*/\1/p' "$WORK/log1" | head -n 1)
[ -n "$cid" ] || fail "could not read the cluster id from member 1's log"
mv "$WORK/log4" "$WORK/log4.first"
rm -rf "$WORK/n4"
"$QUORUMD" --id 4 --cluster "$(cluster_list 1 2 3 4)" --listen "127.0.0.1:${CLIENT_PORT[4]}" \
  --data "$WORK/n4" --secret-file "$WORK/wrong-secret" --cluster-id "${cid:-1}" --sync "$SYNC" \
  >>"$WORK/out4" 2>>"$WORK/log4" &
PIDS[4]=$!
before=$(cat "$WORK/log1" "$WORK/log2" "$WORK/log3" | wc -l)
for i in 1 2 3 4 5 6; do
  expect "writes during the forger's attempts ($i)" OK "$(rcr "$leader" SET forger:$i x)"
  sleep 0.5
done
l=$(wait_leader 10 1 2 3)
expect "the leader is unchanged while the forger runs" "$leader" "$l"
expect "the term is unchanged while the forger runs" "$term0" "$(field "$leader" term)"
expect "the cluster still has 3 members" 3 "$(field "$leader" members)"
if grep -q -i -E 'auth|secret|mac' "$WORK/log4"; then
  pass "the forger logs an authentication failure: $(grep -i -E -m 1 'auth|secret|mac' "$WORK/log4" | cut -c1-160)"
else
  fail "the forger's log names no authentication failure: $(tail -n 3 "$WORK/log4")"
fi
healthy "a member with the right cluster id and the wrong secret"
kill_node 4 KILL
mv "$WORK/log4" "$WORK/log4.second"

finish
