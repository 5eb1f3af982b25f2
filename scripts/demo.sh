#!/usr/bin/env bash
# The README's first command: installs dependencies, builds, and runs the main
# job. At this stage of the project that is the quorum analysis of the
# original specification's example, Quorum(num_nodes=3, fault_tolerance=1),
# next to the configurations users most often weigh it against.
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
