#!/usr/bin/env bash
# The core benchmark: a 3-node in-memory cluster with zero network delay commits
# ENTRIES entries of SIZE bytes, one per round ("batch=1") and BATCH per round,
# on our core (bench_core) and on canonical/raft's test fixture
# (bench_raft_fixture, built when libraft-dev is installed). Each binary runs
# RUNS times per mode, interleaved; the table gives the median and the spread
# (min-max) of committed entries per second and of process CPU nanoseconds per
# committed entry (all 3 replicas together), then the ratio
# canonical-raft/quorum of the CPU medians. Our target is a ratio of at least 3
# in both modes. Bounded: every run is killed after RUN_SECONDS_MAX. Both
# binaries check that every replica applied every payload in order, and print
# their own counters on stderr (run one by hand to see them). The fixture runs
# with its defaults (snapshot threshold 128, trailing 0: see its header).
#
# Usage: bench/core.sh [runs, default 3]
# Environment: ENTRIES (default 1000000), BATCH (default 64), SIZE (default 100),
#   RUN_SECONDS_MAX (default 120), BUILD_DIR (default: configure the release
#   preset, build/release; when set, an already configured tree to build in).
# Exit: 0 when every run finished and checked its results (whether or not the
#   target is met), 1 when a run failed, 2 on usage errors.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
entries=${ENTRIES:-1000000}
batch=${BATCH:-64}
size=${SIZE:-100}
run_seconds_max=${RUN_SECONDS_MAX:-120}
target_ratio=3
for v in "$runs" "$entries" "$batch" "$size" "$run_seconds_max"; do
  if ! [[ "$v" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bench/core.sh [runs >= 1]  (ENTRIES, BATCH, SIZE, RUN_SECONDS_MAX: positive)" >&2
    exit 2
  fi
done

# What the build needs, plus canonical/raft for the side-by-side figure.
scripts/deps.sh
if ! dpkg-query -W -f='${Status}' libraft-dev 2>/dev/null | grep -q "install ok installed"; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libraft-dev >/dev/null
  else
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libraft-dev >/dev/null
  fi
fi

# Only the two benchmark targets are built: the rest of the tree is not needed.
if [ -n "${BUILD_DIR:-}" ]; then
  build=$BUILD_DIR
else
  build=build/release
  cmake --preset release >/dev/null
fi
if ! cmake --build "$build" --target help 2>/dev/null | grep -q '^bench_core:'; then
  echo "core.sh: $build has no bench_core target (is add_subdirectory(bench) in CMakeLists.txt?)" >&2
  exit 1
fi
cmake --build "$build" --target bench_core >/dev/null
if cmake --build "$build" --target help 2>/dev/null | grep -q '^bench_raft_fixture:'; then
  cmake --build "$build" --target bench_raft_fixture >/dev/null
fi
bench_core=$build/bench/bench_core
bench_raft=$build/bench/bench_raft_fixture
impls=(quorum)
if [ -x "$bench_raft" ]; then
  impls+=(canonical-raft)
else
  echo "core.sh: $bench_raft not built (apt-get install libraft-dev); quorum only" >&2
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT

# One run; appends "impl batch entries_per_s cpu_ns_per_entry" to $results.
run_one() {
  local impl=$1 b=$2 bin line
  bin=$bench_core
  if [ "$impl" = canonical-raft ]; then
    bin=$bench_raft
  fi
  if ! line=$(timeout "$run_seconds_max" "$bin" --entries "$entries" --batch "$b" \
    --size "$size" 2>/dev/null); then
    echo "core.sh: $bin --entries $entries --batch $b --size $size failed" >&2
    exit 1
  fi
  echo "$line" | awk -v impl="$impl" -v b="$b" '
    { for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
    END { print impl, b, f["entries_per_s"], f["cpu_ns_per_entry"] }' >>"$results"
}

modes=(1)
if [ "$batch" -ne 1 ]; then
  modes+=("$batch")
fi
for ((r = 1; r <= runs; r++)); do
  for b in "${modes[@]}"; do
    for impl in "${impls[@]}"; do
      run_one "$impl" "$b"
    done
  done
done

# "median min max" of one column for one implementation and mode.
stats() {
  awk -v impl="$1" -v b="$2" -v col="$3" '$1 == impl && $2 == b { print $col }' "$results" |
    sort -g | awk '{ v[NR] = $1 }
      END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }'
}

echo "core benchmark: 3 in-memory replicas, zero delay, $entries entries of $size bytes," \
  "$runs runs per row (median, min-max)"
printf '%-9s %-15s %-28s %s\n' mode implementation "committed entries/s" "CPU ns/entry (3 replicas)"
declare -A cpu_median
for b in "${modes[@]}"; do
  for impl in "${impls[@]}"; do
    read -r em emin emax < <(stats "$impl" "$b" 3)
    read -r cm cmin cmax < <(stats "$impl" "$b" 4)
    cpu_median[$impl,$b]=$cm
    printf '%-9s %-15s %-28s %s\n' "batch=$b" "$impl" \
      "$(printf '%.0f (%.0f-%.0f)' "$em" "$emin" "$emax")" \
      "$(printf '%.1f (%.1f-%.1f)' "$cm" "$cmin" "$cmax")"
  done
done
if [ "${#impls[@]}" -eq 2 ]; then
  for b in "${modes[@]}"; do
    awk -v b="$b" -v raft="${cpu_median[canonical-raft,$b]}" -v ours="${cpu_median[quorum,$b]}" \
      -v target="$target_ratio" 'BEGIN {
        ratio = raft / ours
        printf "ratio canonical-raft/quorum, CPU ns/entry, batch=%s: %.2fx (target >= %dx: %s)\n",
          b, ratio, target, (ratio >= target ? "met" : "NOT met")
      }'
  done
fi
