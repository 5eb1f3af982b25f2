#!/usr/bin/env bash
# The README's first command: installs dependencies, builds, and runs the main
# job: the quorum analysis of the original specification's example,
# Quorum(num_nodes=3, fault_tolerance=1), then a real local 3-node cluster
# (examples/counter on 127.0.0.1): election, replication, SIGKILL of the
# leader, re-election, restart and catch-up, clean stop. quorumd, the Redis-
# protocol server, replaces the counter here once it lands.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release >/dev/null
ctl=build/release/tools/quorumctl/quorumctl

echo "== quorumctl analyze --nodes 3 --fault-tolerance 1   (the seed's Quorum(3, 1))"
"$ctl" analyze --nodes 3 --fault-tolerance 1
echo
echo "== quorumctl analyze --nodes 5 --fault-tolerance 2 --p-fail 0.01"
"$ctl" analyze --nodes 5 --fault-tolerance 2 --p-fail 0.01
echo
echo "== quorumctl analyze --nodes 4 --model byzantine"
"$ctl" analyze --nodes 4 --model byzantine
echo
echo "== an impossible request is refused with what to change (exit code 2):"
echo "== quorumctl analyze --nodes 3 --fault-tolerance 2"
set +e
"$ctl" analyze --nodes 3 --fault-tolerance 2
echo "(exit code $?)"
set -e
echo
echo "== a local 3-node cluster: three examples/counter processes on 127.0.0.1 replicate a"
echo "== counter through libquorum; the leader is SIGKILLed, a new one takes over, the old"
echo "== one restarts and catches up through a snapshot, then all stop by PID:"
tests/node/test_cluster.sh build/release/examples/counter
