#!/usr/bin/env bash
# Seed sweep of quorum-sim across every fault kind (ctest sim.sweep).
# Usage: tests/sim/sweep.sh <quorum-sim> [seeds, default 500] [first seed, default
# $QR_SIM_SEED or 1] [jobs, default nproc]
# Splits the seeds into one contiguous range per job, runs them in parallel, prints every
# failing seed with its replay command, the total count and seeds/s. Exits 1 on any failure.
set -uo pipefail
sim=${1:?usage: sweep.sh <quorum-sim> [seeds] [first] [jobs]}
seeds=${2:-500}
first=${3:-${QR_SIM_SEED:-1}}
jobs=${4:-$(nproc)}
[ "$jobs" -ge 1 ] || jobs=1
[ "$jobs" -le "$seeds" ] || jobs=$seeds
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$(date +%s.%N)
per=$(( (seeds + jobs - 1) / jobs ))
pids=()
for ((j = 0; j < jobs; j++)); do
  from=$(( first + j * per ))
  count=$(( seeds - j * per < per ? seeds - j * per : per ))
  [ "$count" -gt 0 ] || break
  "$sim" --seed "$from" --seeds "$count" --faults all >"$out/$j.txt" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
end=$(date +%s.%N)
# Each job prints a summary line; full reports for its first failure, one line for others.
cat "$out"/*.txt | grep -v -E '^quorum-sim: [0-9]+ seeds from' || true
# Sum the per-job summaries: "quorum-sim: N seeds from S: P passed, F failed ...".
read -r passed failed < <(cat "$out"/*.txt | awk '
  /^quorum-sim: [0-9]+ seeds from [0-9]+:/ { p += $6; f += $8 }
  END { print p + 0, f + 0 }')
read -r elapsed rate < <(awk -v s="$start" -v e="$end" -v n="$seeds" \
  'BEGIN { t = e - s; printf "%.3f %.3f\n", t, (t > 0 ? n / t : 0) }')
printf 'sim.sweep: %d seeds from %d on %d jobs: %s passed, %s failed in %.1f s (%.1f seeds/s)\n' \
  "$seeds" "$first" "$jobs" "${passed:-0}" "${failed:-0}" "$elapsed" "$rate"
if [ "$status" -ne 0 ] || [ "${passed:-0}" -ne "$seeds" ]; then
  echo "sim.sweep: FAILED (replay each failing seed with the command printed above)" >&2
  exit 1
fi
