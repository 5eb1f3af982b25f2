#!/usr/bin/env bash
# integration.bench_smoke: redis-benchmark SET/GET (16 clients, 128-byte values, with and
# without pipelining) through a follower and through the leader runs without one error, and the
# keys it wrote are on every member. A smoke test: it asserts nothing about speed.
#
# Usage: tests/integration/bench_smoke.sh path/to/quorumd
source "$(dirname "$0")/lib.sh" "$@"
command -v redis-benchmark >/dev/null || { echo "FAIL: redis-benchmark is not on PATH"; exit 1; }

start_cluster 3 || finish
leader=$(current_leader 1 2 3)
follower=$((leader % 3 + 1))
log "leader is member $leader, benchmarking through follower $follower and the leader"

run=0
for target in "$follower" "$leader"; do
  for pipeline in 1 16; do
    run=$((run + 1))
    timeout 90 redis-benchmark -h 127.0.0.1 -p "${CLIENT_PORT[$target]}" -t set,get -n 2000 -c 16 \
      -d 128 -r 1000 -P "$pipeline" -q >"$WORK/bench.$run.out" 2>"$WORK/bench.$run.err"
    st=$?
    # redis-benchmark warns once that CONFIG GET is not supported; anything else is an error
    errs=$(grep -v -E '^WARNING: Could not fetch server CONFIG$|^$' "$WORK/bench.$run.err" | head -n 5)
    out=$(tr '\r' '\n' <"$WORK/bench.$run.out" | grep -E '^ ?(SET|GET): [0-9.]+ requests per second')
    name="redis-benchmark -P $pipeline through member $target"
    expect "$name: exit status" 0 "$st"
    expect "$name: no errors on stderr" "" "$errs"
    expect_match "$name: SET and GET completed" $'SET: [0-9.]+ requests per second.*\n.*GET: [0-9.]+ requests per second' "$out"
    printf '%s\n' "$out" | sed "s/^/#   $name: /"
  done
done

leader=$(wait_leader 10 1 2 3)
for id in 1 2 3; do
  wait_caught_up 20 "$id" "$leader" || fail "member $id did not catch up"
done
n=$(rcr "$leader" DBSIZE)
expect_match "the leader holds the benchmark keys (DBSIZE >= 1)" '^[1-9][0-9]*$' "$n"
for id in 1 2 3; do
  expect "member $id: DBSIZE equals the leader's" "$n" "$(rcr "$id" DBSIZE)"
  expect "member $id: same key set as the leader" "$(rcr "$leader" KEYS 'key:*' | sort | md5sum)" \
    "$(rcr "$id" KEYS 'key:*' | sort | md5sum)"
done
sample=$(rcr "$leader" KEYS 'key:*' | head -n 5)
for k in $sample; do
  for id in 1 2 3; do
    expect "member $id: STRLEN $k" 128 "$(rcr "$id" STRLEN "$k")"
  done
done

finish
