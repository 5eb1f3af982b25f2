#!/usr/bin/env bash
# Runs every fuzz target built by the fuzz preset: first over its checked-in
# corpus (fuzz/corpus/<name>/), then for SECONDS of new inputs in a scratch
# copy of the corpus. Usage: scripts/fuzz.sh [seconds per target, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
bin=build/fuzz/fuzz
shopt -s nullglob
targets=("$bin"/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no targets in $bin (run scripts/build.sh fuzz)" >&2
  exit 1
fi
for target in "${targets[@]}"; do
  name=$(basename "$target")
  name=${name#fuzz_}
  corpus=fuzz/corpus/$name
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  cp -r "$corpus"/. "$scratch"/ 2>/dev/null || true
  echo "fuzz: $name: replaying $(ls "$corpus" 2>/dev/null | wc -l) corpus inputs, then ${seconds}s"
  "$target" -runs=0 "$corpus" >/dev/null 2>&1 || { "$target" -runs=0 "$corpus"; exit 1; }
  log=$scratch.log
  if ! "$target" -max_total_time="$seconds" -max_len=4096 -artifact_prefix=build/fuzz/ -print_final_stats=1 "$scratch" \
      >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $name FAILED; the crashing input is named above (crash-*)" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_units" "$log" | sed "s/^/fuzz: $name: /"
  rm -f "$log"
  rm -rf "$scratch"
  trap - EXIT
done
echo "fuzz: ${#targets[@]} targets ok"
