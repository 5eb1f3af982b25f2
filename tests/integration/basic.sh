#!/usr/bin/env bash
# integration.basic: a three-member cluster answers every client command with the exact
# Redis reply through every member; writes through any member are read back through every
# other (reads are linearizable); KEYS and SCAN cover every key; INFO quorum names exactly
# one leader; a separate single-member cluster with --requirepass enforces AUTH.
#
# Usage: tests/integration/basic.sh path/to/quorumd
source "$(dirname "$0")/lib.sh" "$@"

# t ID EXPECTED ARGS...: the redis-cli --no-raw reply of ARGS through member ID is EXPECTED
# (queued; checked at the next flush).
t() { q "$@"; }

start_cluster 3 || finish
leader=$(current_leader 1 2 3)
log "leader is member $leader"

log "every command through every member"
for id in 1 2 3; do
  p="m$id"
  t $id 'PONG' PING
  t $id '"hello"' PING hello
  t $id '"hi there"' ECHO "hi there"
  t $id 'OK' SELECT 0
  t $id '(error) ERR DB index is out of range (quorum has only DB 0)' SELECT 1
  t $id '(nil)' GET $p:a
  t $id 'OK' SET $p:a 1
  t $id '"1"' GET $p:a
  t $id '(nil)' SET $p:a 2 NX
  t $id '"1"' GET $p:a
  t $id 'OK' SET $p:b 2 NX
  t $id '(nil)' SET $p:c 3 XX
  t $id '(nil)' GET $p:c
  t $id 'OK' SET $p:b 3 XX
  t $id '"3"' GET $p:b
  t $id '"1"' SET $p:a 5 GET
  t $id '(nil)' SET $p:new 9 GET
  t $id '"9"' GET $p:new
  t $id '"5"' GET $p:a
  t $id '(integer) 0' SETNX $p:a 1
  t $id '(integer) 1' SETNX $p:d 4
  t $id '"5"' GETSET $p:a 7
  t $id '(nil)' GETSET $p:e 8
  t $id '(integer) 3' EXISTS $p:a $p:b $p:zz $p:a
  t $id '(integer) 2' DEL $p:a $p:b $p:zz
  t $id '(integer) 0' EXISTS $p:a $p:b
  t $id 'OK' SET $p:n 10
  t $id '(integer) 11' INCR $p:n
  t $id '(integer) 16' INCRBY $p:n 5
  t $id '(integer) 15' DECR $p:n
  t $id '(integer) 12' DECRBY $p:n 3
  t $id '(integer) -3' DECRBY $p:n 15
  t $id '(integer) 1' INCR $p:fresh
  t $id '(integer) 2' APPEND $p:s ab
  t $id '(integer) 4' APPEND $p:s cd
  t $id '(integer) 4' STRLEN $p:s
  t $id '(integer) 0' STRLEN $p:zz
  t $id '(error) ERR value is not an integer or out of range' INCR $p:s
  t $id '(error) ERR value is not an integer or out of range' INCRBY $p:n x
  t $id '(error) ERR value is not an integer or out of range' INCRBY $p:n 99999999999999999999
  t $id '"abcd"' GET $p:s
  t $id 'OK' SET $p:max 9223372036854775807
  t $id '(error) ERR increment or decrement would overflow' INCR $p:max
  t $id '"9223372036854775807"' GET $p:max
  t $id $'1) "abcd"\n2) "-3"\n3) (nil)' MGET $p:s $p:n $p:zz
  t $id 'OK' MSET $p:x 1 $p:y 2 $p:z 3
  t $id "(error) ERR wrong number of arguments for 'mset' command" MSET $p:x 5 $p:w
  t $id $'1) "1"\n2) "2"\n3) "3"\n4) (nil)' MGET $p:x $p:y $p:z $p:w
  t $id 'string' TYPE $p:s
  t $id 'none' TYPE $p:zz
  t $id '(integer) -1' TTL $p:s
  t $id '(integer) -2' TTL $p:zz
  t $id '(integer) 1' QUORUM.CAS $p:s abcd q
  t $id '(integer) 0' QUORUM.CAS $p:s abcd r
  t $id '"q"' GET $p:s
  t $id '(integer) 0' QUORUM.CAD $p:s abcd
  t $id '(integer) 1' QUORUM.CAD $p:s q
  t $id '(nil)' GET $p:s
  t $id "(error) ERR unknown command 'FOO'" FOO bar
  t $id "(error) ERR wrong number of arguments for 'get' command" GET
  t $id "(error) ERR wrong number of arguments for 'set' command" SET $p:only
  t $id '(error) ERR syntax error' SET $p:k v NX XX
  t $id 'OK' QUORUM.READS stale
  t $id 'OK' QUORUM.READS linearizable
  t $id '(error) ERR AUTH <password> called without any password configured (start quorumd with --requirepass)' AUTH x
  t $id 'OK' QUORUM.SNAPSHOT
  flush
done

log "read your writes across members"
for a in 1 2 3; do
  t $a 'OK' SET rw:$a "written through $a"
  for b in 1 2 3; do
    t $b "\"written through $a\"" GET rw:$a
  done
  # overwrite through a different member, read back everywhere
  o=$((a % 3 + 1))
  t $o 'OK' SET rw:$a "overwritten through $o"
  for b in 1 2 3; do
    t $b "\"overwritten through $o\"" GET rw:$a
  done
  t $a "(integer) $a" INCR ctr
  for b in 1 2 3; do
    t $b "\"$a\"" GET ctr
  done
done
t 2 'OK' MSET ms:1 a ms:2 b ms:3 c
for b in 1 2 3; do
  t $b $'1) "a"\n2) "b"\n3) "c"' MGET ms:1 ms:2 ms:3
done
flush

log "DBSIZE, KEYS and SCAN agree on every member"
expected_keys=$(rcr "$leader" KEYS '*' | sort)
n_expected=$(printf '%s\n' "$expected_keys" | grep -c .)
for id in 1 2 3; do
  # every key this test left behind (m<id>:* keys of each member, rw:*, ctr, ms:*)
  expect "member $id: DBSIZE" "(integer) $n_expected" "$(rc $id DBSIZE)"
  expect "member $id: KEYS * (sorted)" "$expected_keys" "$(rcr $id KEYS '*' | sort)"
  expect "member $id: KEYS m1:* (sorted)" \
    "$(printf '%s\n' "$expected_keys" | grep '^m1:')" "$(rcr $id KEYS 'm1:*' | sort)"
  cursor=0
  scanned=""
  for ((round = 0; round < 500; round++)); do
    out=$(rcr $id SCAN "$cursor" COUNT 3)
    cursor=$(printf '%s\n' "$out" | head -n 1)
    scanned+=$(printf '%s\n' "$out" | tail -n +2)$'\n'
    [ "$cursor" = 0 ] && break
    [[ $cursor =~ ^[0-9]+$ ]] || break
  done
  expect "member $id: SCAN ends with cursor 0" 0 "$cursor"
  expect "member $id: SCAN covers every key" "$expected_keys" "$(printf '%s' "$scanned" | grep . | sort -u)"
  expect "member $id: SCAN MATCH rw:*" $'rw:1\nrw:2\nrw:3' \
    "$(for c in 0; do rcr $id SCAN 0 MATCH 'rw:*' COUNT 1000 | tail -n +2; done | sort)"
done
expected_total=$((3 * 9 + 3 + 1 + 3))
expect "number of keys left behind" "$expected_total" "$n_expected"

log "INFO quorum and QUORUM.MEMBERS"
leaders=0
for id in 1 2 3; do
  inf=$(info $id)
  for f in role term leader_id leader_address commit_index applied_index members member_1 member_2 member_3; do
    if printf '%s\n' "$inf" | grep -q "^$f:"; then pass "member $id: INFO quorum has $f:"; else fail "member $id: INFO quorum has no $f: line"; fi
  done
  role=$(field $id role)
  [ "$role" = leader ] && leaders=$((leaders + 1))
  expect "member $id: members:" 3 "$(field $id members)"
  expect "member $id: leader_id:" "$leader" "$(field $id leader_id)"
  expect "member $id: leader_address:" "127.0.0.1:${CLIENT_PORT[$leader]}" "$(field $id leader_address)"
  expect_match "member $id: member_$leader line" \
    "^role=voter,peer=127.0.0.1:${PEER_PORT[$leader]},client=127.0.0.1:${CLIENT_PORT[$leader]},connected=" \
    "$(field $id member_$leader)"
  expect "member $id: QUORUM.STATUS is INFO quorum" "$(info $id | grep -c .)" \
    "$(rcr $id QUORUM.STATUS | tr -d '\r' | grep -c .)"
  members=$(rcr $id QUORUM.MEMBERS)
  expect "member $id: QUORUM.MEMBERS" \
    "$(for m in 1 2 3; do printf '%s\nvoter\n127.0.0.1:%s\n127.0.0.1:%s\n' $m ${PEER_PORT[$m]} ${CLIENT_PORT[$m]}; done)" \
    "$members"
done
expect "exactly one member has role:leader" 1 "$leaders"
follower=$((leader % 3 + 1))
expect "QUORUM.TRANSFER on a follower" "(error) NOTLEADER $leader 127.0.0.1:${CLIENT_PORT[$leader]}" \
  "$(rc $follower QUORUM.TRANSFER)"

log "redis-cli starts cleanly"
for id in 1 2 3; do
  expect "member $id: redis-cli with commands on stdin" $'PONG\nOK\n"y"' \
    "$(printf 'PING\nSET stdin:%s y\nGET stdin:%s\n' $id $id | timeout 10 redis-cli -p "${CLIENT_PORT[$id]}" --no-raw 2>&1)"
  out=$(rc $id COMMAND DOCS)
  expect_match "member $id: COMMAND DOCS is no error" '^[^(]|^\(empty array\)$|^$' "$out"
  [[ $out == *"(error)"* ]] && fail "member $id: COMMAND DOCS answered an error: $out"
  out=$(rc $id COMMAND)
  expect_match "member $id: COMMAND lists set" '"set"' "$out"
  expect_match "member $id: COMMAND COUNT" '^\(integer\) [1-9][0-9]*$' "$(rc $id COMMAND COUNT)"
  expect_match "member $id: INFO (all sections)" '# Quorum' "$(rcr $id INFO)"
done
for id in 1 2 3; do
  expect "member $id: QUIT" OK "$(rc $id QUIT)"
  expect "member $id: a binary value (NUL, CR LF, quotes) round-trips" '"a\x00b\r\nc \"q\""' \
    "$(printf 'a\0b\r\nc "q"' | timeout 10 redis-cli -p "${CLIENT_PORT[$id]}" -x SET bin:$id >/dev/null; rc $((id % 3 + 1)) GET bin:$id)"
  expect "member $id: stale reads still read" '"overwritten through 2"' \
    "$(printf 'QUORUM.READS stale\nGET rw:1\n' | timeout 10 redis-cli -p "${CLIENT_PORT[$id]}" --no-raw 2>&1 | tail -n 1)"
done

log "single-member cluster with --requirepass"
read -r p9 c9 < <(free_ports 2)
PEER_PORT[9]=$p9
CLIENT_PORT[9]=$c9
CLUSTER=$(cluster_list 9)
start_node 9 --requirepass 's3cret pass'
export REDISCLI_AUTH='s3cret pass'
wait_for 15 eval '[ "$(field 9 role)" = leader ]' || fail "single member 9 never became leader"
unset REDISCLI_AUTH
t 9 '(error) NOAUTH Authentication required.' GET k
t 9 '(error) NOAUTH Authentication required.' SET k v
t 9 'NOAUTH Authentication required.' INFO quorum # redis-cli prints INFO replies raw
t 9 '(error) NOAUTH Authentication required.' QUORUM.STATUS
t 9 '(error) WRONGPASS invalid username-password pair' AUTH wrong
t 9 '(error) WRONGPASS invalid username-password pair' AUTH default wrong
t 9 '(error) NOAUTH Authentication required.' GET k
t 9 'OK' AUTH 's3cret pass'
t 9 'OK' SET k v
t 9 '"v"' GET k
flush
t 9 '(error) NOAUTH Authentication required.' GET k
t 9 'OK' AUTH default 's3cret pass'
t 9 '"v"' GET k
flush
expect "redis-cli -a" '"v"' "$(timeout 10 redis-cli -p "$c9" --no-auth-warning -a 's3cret pass' --no-raw GET k 2>&1)"
expect "a new connection is unauthenticated again" '(error) NOAUTH Authentication required.' "$(rc 9 GET k)"

finish
