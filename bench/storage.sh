#!/usr/bin/env bash
# Storage benchmark (not a test): the disk's raw append+fdatasync rate next to the
# write-ahead log's at batch sizes 1, 16 and 256 (128-byte entries, sync policy always).
# Usage: bench/storage.sh [bench_storage binary] [directory on the disk to measure]
#   RUNS (default 3) runs of BENCH_SECONDS (default 3) each, interleaved; medians reported.
# Targets (from the storage issue): batch 1 within 10% of the raw rate; batch 256 at least
# 100x the entries/s of batch 1. The script prints whether they are met; it never fails on them.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/release/bench/bench_storage}
base=${2:-${TMPDIR:-/tmp}}
runs=${RUNS:-3}
seconds=${BENCH_SECONDS:-3}
entry_size=128
if [ ! -x "$bin" ]; then
  echo "storage.sh: no benchmark binary at $bin (build the release preset first)" >&2
  exit 1
fi
work=$(mktemp -d "$base/qr_bench_storage.XXXXXX")
trap 'rm -rf "$work"' EXIT
results=$work/results
: >"$results"

run() {
  local name=$1
  shift
  rm -rf "$work/d"
  mkdir -p "$work/d"
  echo "$name $("$bin" --dir "$work/d" --seconds "$seconds" --entry-size "$entry_size" "$@")" >>"$results"
}

for r in $(seq "$runs"); do
  echo "storage.sh: run $r of $runs" >&2
  run raw --raw
  run b1 --batch 1
  run b16 --batch 16
  run b256 --batch 256
done

# median <config> <key>: the median over runs of one key=value field.
median() {
  grep "^$1 " "$results" | sed -n "s/.* $2=\([^ ]*\).*/\1/p" | sort -g |
    awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}

fs=$(df -T "$base" | awk 'NR == 2 {print $2 " on " $1}')
echo "storage benchmark: ${entry_size}-byte entries, sync always, medians of $runs runs of ${seconds}s"
echo "directory: $base ($fs)"
printf '%-22s %12s %10s %10s %10s %12s\n' "" "entries/s" "fsyncs/s" "p50 us" "p99 us" "vs raw"
raw_fsyncs=$(median raw fsyncs_per_s)
for cfg in raw b1 b16 b256; do
  case $cfg in
  raw) label="raw fdatasync (limit)" ;;
  b1) label="wal batch 1" ;;
  b16) label="wal batch 16" ;;
  b256) label="wal batch 256" ;;
  esac
  fsyncs=$(median "$cfg" fsyncs_per_s)
  printf '%-22s %12s %10s %10s %10s %11.0f%%\n' "$label" "$(median "$cfg" entries_per_s)" \
    "$fsyncs" "$(median "$cfg" p50_us)" "$(median "$cfg" p99_us)" \
    "$(awk -v a="$fsyncs" -v b="$raw_fsyncs" 'BEGIN {print 100 * a / b}')"
done

b1=$(median b1 entries_per_s)
b256=$(median b256 entries_per_s)
awk -v raw="$raw_fsyncs" -v b1="$b1" -v b256="$b256" 'BEGIN {
  ratio1 = b1 / raw; ratio256 = b256 / b1
  printf "target: batch 1 within 10%% of raw fdatasync: %.1f%% of raw -> %s\n", 100 * ratio1, (ratio1 >= 0.9 ? "met" : "MISSED")
  printf "target: batch 256 >= 100x batch 1 entries/s: %.0fx -> %s\n", ratio256, (ratio256 >= 100 ? "met" : "MISSED")
}'
