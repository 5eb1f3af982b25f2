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

echo "quorumctl: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
