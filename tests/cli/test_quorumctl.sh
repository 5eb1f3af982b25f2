#!/usr/bin/env bash
# CLI tests of quorumctl: output, exit codes (0 ok, 1 failure, 2 usage) and
# error messages. Usage: test_quorumctl.sh path/to/quorumctl
set -uo pipefail
ctl=$1
passed=0
failed=0

# expect <exit code> <regex that stdout+stderr must match> -- args...
expect() {
  local code=$1 pattern=$2
  shift 3
  local out rc
  out=$("$ctl" "$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: quorumctl $* -> exit $rc (want $code), output:" >&2
    echo "$out" | sed 's/^/    /' >&2
    echo "    (wanted a match for: $pattern)" >&2
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
}

expect 0 'usage: quorumctl' -- --help
expect 2 'usage: quorumctl' --
expect 2 "unknown command 'frobnicate'" -- frobnicate
expect 0 'usage: quorumctl analyze' -- analyze --help
# The seed's example: Quorum(num_nodes=3, fault_tolerance=1).
expect 0 'quorum +weight >= 2 of 3 \(at least 2 nodes\)' -- analyze --nodes 3 --fault-tolerance 1
expect 0 'faults tolerated +1 crash' -- analyze --nodes 3 --fault-tolerance 1
expect 0 'availability +0\.999702000 with p_fail=0\.01' -- analyze --nodes 3 --fault-tolerance 1
expect 0 'faults tolerated +2 crash' -- analyze --nodes 5
expect 0 'faults tolerated +3 crash' -- analyze --nodes 7 --p-fail=0.1
expect 2 'tolerating 2 crash faults needs at least 5 nodes \(2f\+1\), 3 were given' -- analyze --nodes 3 --fault-tolerance 2
expect 2 'tolerating 1 byzantine faults needs at least 4 nodes \(3f\+1\), 3 were given' -- analyze --nodes 3 --fault-tolerance 1 --model byzantine
expect 0 'weight >= 3 of 4 .*same for every phase' -- analyze --nodes 4 --model byzantine
expect 0 'faults tolerated +2 byzantine' -- analyze --nodes 7 --model byzantine
expect 2 'survives only 1 crash faults' -- analyze --nodes 5 --fault-tolerance 2 --weights 2,1,1,1,1
expect 0 'faults tolerated +1 crash' -- analyze --nodes 5 --fault-tolerance 1 --weights 2,1,1,1,1
expect 2 'lists 2 weights for 3 nodes' -- analyze --nodes 3 --weights 1,1
expect 2 'item 2 of the list: 0 is out of range' -- analyze --nodes 3 --weights 1,0,1
expect 2 "item 2 of the list: '-1' is not a whole number" -- analyze --nodes 3 --weights 1,-1,1
expect 2 'item 1 of the list: 256 is out of range' -- analyze --nodes 1 --weights 256
expect 2 '--nodes: 0 is out of range' -- analyze --nodes 0
expect 2 '--nodes: 65 is out of range, expected 1 to 64' -- analyze --nodes 65
expect 2 '--nodes is required' -- analyze
expect 2 '--nodes needs a value' -- analyze --nodes
expect 2 "unknown option '--bogus'" -- analyze --nodes 3 --bogus
expect 2 "'nan' is not a number" -- analyze --nodes 3 --p-fail nan
expect 2 '1.5 is out of range' -- analyze --nodes 3 --p-fail 1.5
expect 2 "'quantum' is not a fault model" -- analyze --nodes 3 --model quantum
expect 0 'election quorum +weight >= 4 of 5' -- analyze --nodes 5 --election-quorum 4 --replication-quorum 2
expect 2 'can be disjoint' -- analyze --nodes 5 --election-quorum 3 --replication-quorum 2
expect 2 'two disjoint election quorums' -- analyze --nodes 4 --election-quorum 2 --replication-quorum 3
expect 2 'need both --election-quorum and --replication-quorum' -- analyze --nodes 5 --election-quorum 4
expect 2 'must each be 1 to the total weight 5' -- analyze --nodes 5 --election-quorum 6 --replication-quorum 2
expect 0 '^\{"nodes":5,"model":"crash","rule":"majority".*"crash_faults_tolerated":2,.*"quorums_intersect":true' -- analyze --nodes 5 --json
expect 0 'availability +1 with p_fail=0' -- analyze --nodes 3 --p-fail 0
expect 0 'quorum +weight >= 8161 of 16320 \(at least 33 nodes\)' -- analyze --nodes 64 --weights "$(printf '255,%.0s' $(seq 63))255"


# ---- Commands that talk to servers: usage and exit codes, no server needed. ----
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_quorumctl.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Nothing listens on port 1 of the loopback interface (privileged, unused).
dead=127.0.0.1:1

expect 0 'status .*one table for the whole cluster' -- --help
expect 0 'cluster up \.\.\. +start a local N-node cluster' -- --help
for c in status members add promote remove transfer snapshot get set del; do
  expect 0 "^usage: quorumctl $c" -- "$c" --help
done
expect 0 '^usage: quorumctl status' -- --help status
expect 0 '^usage: quorumctl cluster <up\|down\|stop\|start>' -- cluster --help
expect 2 '^usage: quorumctl cluster <up\|down\|stop\|start>' -- cluster
for c in up down stop start; do
  expect 0 "^usage: quorumctl cluster $c" -- cluster "$c" --help
done
expect 2 "quorumctl status: unknown option '--bogus' \(see --help\)" -- status --bogus
expect 2 "quorumctl: unknown option '--bogus'" -- --bogus status
expect 2 'quorumctl status: wrong number of arguments' -- status extra
expect 2 'quorumctl get: wrong number of arguments \(usage: quorumctl get KEY' -- get
expect 2 'quorumctl set: wrong number of arguments' -- set onlykey
expect 2 'quorumctl del: wrong number of arguments' -- del
expect 2 'quorumctl add: wrong number of arguments' -- add 4 127.0.0.1:7104
expect 2 "quorumctl add: node id: 'x' is not" -- add x 127.0.0.1:7104 127.0.0.1:6104
expect 2 "quorumctl add: PEER_ADDR: 'nohost' is not HOST:PORT" -- add 4 nohost 127.0.0.1:6104
expect 2 "quorumctl add: CLIENT_ADDR: '127.0.0.1:0': bad port" -- add 4 127.0.0.1:7104 127.0.0.1:0
expect 2 'quorumctl promote: node id: 0 is out of range' -- promote 0
expect 2 'quorumctl remove: wrong number of arguments' -- remove
expect 2 'quorumctl transfer: wrong number of arguments' -- transfer 1 2
expect 2 "quorumctl snapshot: node id: '-1'" -- snapshot -- -1
expect 2 'quorumctl status: --timeout-ms: 0 is out of range' -- status --timeout-ms 0
expect 2 'quorumctl status: --timeout-ms needs a value' -- status --timeout-ms
expect 2 "quorumctl get: --node: '127.0.0.1:99999': bad port" -- get k --node 127.0.0.1:99999
expect 2 "quorumctl: --node: 'localhost' is not HOST:PORT" -- --node localhost status
expect 2 "quorumctl cluster: unknown subcommand 'frob'" -- cluster frob
expect 2 'quorumctl cluster up: --nodes is required' -- cluster up
expect 2 'quorumctl cluster up: --nodes: 16 is out of range' -- cluster up --nodes 16
expect 2 "quorumctl cluster up: --sync: 'sometimes' is not always or none" -- cluster up --nodes 3 --sync sometimes
expect 2 "quorumctl cluster up: unknown option '--kill'" -- cluster up --nodes 3 --kill
expect 2 "quorumctl cluster down: unknown option '--kill'" -- cluster down --kill
expect 2 'quorumctl cluster stop: which node\?' -- cluster stop
expect 2 "quorumctl cluster stop: node id: 'x' is not" -- cluster stop x
expect 2 "quorumctl cluster start: unexpected argument '2'" -- cluster start 1 2
expect 2 'quorumctl cluster up: --base-port: 80 is out of range' -- cluster up --nodes 3 --base-port 80

# Unreachable nodes: exit 1 with the address and the reason.
expect 1 "^quorumctl get: $dead: connection refused$" -- get k --node "$dead"
expect 1 "^quorumctl set: $dead: connection refused$" -- set k v --node "$dead"
expect 1 "^quorumctl del: $dead: connection refused$" -- del k --node "$dead"
expect 1 "^quorumctl status: $dead: connection refused$" -- status --node "$dead"
expect 1 "^quorumctl members: $dead: connection refused$" -- --node "$dead" members
expect 1 "^quorumctl add: $dead: connection refused$" -- add 4 127.0.0.1:7104 127.0.0.1:6104 --node "$dead"
expect 1 "^quorumctl transfer: $dead: connection refused$" -- transfer --node "$dead" --timeout-ms 500
expect 1 "^quorumctl snapshot: $dead: connection refused$" -- snapshot 2 --node "$dead"
expect 1 "^quorumctl get: nosuchhost.invalid:6379: cannot resolve host" -- get k --node nosuchhost.invalid:6379

# Cluster directories: missing records, refusals.
expect 1 "quorumctl status: $tmp/none/cluster: no cluster record" -- status --dir "$tmp/none"
expect 1 "quorumctl cluster down: $tmp/none/cluster: no cluster record" -- cluster down --dir "$tmp/none"
expect 1 "quorumctl cluster stop: $tmp/none/cluster: no cluster record" -- cluster stop 1 --dir "$tmp/none"
mkdir -p "$tmp/full" && touch "$tmp/full/something"
expect 1 "quorumctl cluster up: $tmp/full is not empty" -- cluster up --nodes 3 --dir "$tmp/full" --quorumd /bin/true
expect 1 'quorumctl cluster up: --quorumd /nonexistent/quorumd: not an executable file' -- cluster up --nodes 3 --dir "$tmp/new" --quorumd /nonexistent/quorumd
mkdir -p "$tmp/bad"
printf 'quorumd /bin/true\nnode 1 0 127.0.0.1:1 127.0.0.1:2 /x /x.log\nnode 1 0 127.0.0.1:1 127.0.0.1:2 /x /x.log\n' >"$tmp/bad/cluster"
expect 1 "quorumctl cluster down: $tmp/bad/cluster: line 3 is not valid" -- cluster down --dir "$tmp/bad"
printf 'quorumd /bin/true\nsync none\nnode 1 0 127.0.0.1:1 127.0.0.1:2 /x /x.log\n' >"$tmp/bad/cluster"
# --purge deletes only what lies inside the directory, and keeps the record otherwise.
expect 1 "left /x alone: it is not inside $tmp/bad" -- cluster down --dir "$tmp/bad" --purge
expect 1 "quorumctl cluster stop: node 1 is not running" -- cluster stop 1 --dir "$tmp/bad"
expect 1 "quorumctl cluster start: node 2 is not in $tmp/bad/cluster" -- cluster start 2 --dir "$tmp/bad"
# A recorded node that is down shows up as unreachable in the table.
expect 1 '^1 +127\.0\.0\.1:1 +- .*unreachable: connection refused' -- status --dir "$tmp/bad"

# ---- Against a real Redis server, when one is installed: the RESP client and printing. ----
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  port=$((20000 + $$ % 20000))
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$tmp/redis.log" 2>&1 &
  redis_pid=$!
  trap 'kill "$redis_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
  for _ in $(seq 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  r=127.0.0.1:$port
  expect 0 '^OK$' -- set greeting 'hello world' --node "$r"
  expect 0 '^hello world$' -- get greeting --node "$r"
  expect 0 '^\(nil\)$' -- get missing --node "$r"
  expect 0 '^\(integer\) 1$' -- del greeting missing --node "$r"
  expect 1 "quorumctl status: $r: INFO quorum has no node_id or role \(is this a quorumd server\?\)" -- status --node "$r"
  expect 1 "quorumctl members: $r: ERR unknown command" -- members --node "$r"
  expect 1 "quorumctl get: $r: AUTH failed: ERR" -- get k --node "$r" --password nope
  kill "$redis_pid" 2>/dev/null
  wait "$redis_pid" 2>/dev/null
fi

echo "quorumctl: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
