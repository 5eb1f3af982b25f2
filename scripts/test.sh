#!/usr/bin/env bash
# Installs dependencies, builds the release and sanitizer (ASan+UBSan) builds,
# and runs every test in both, then the fuzz smoke runs. Exits non-zero when
# anything fails. This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

scripts/deps.sh

jobs=$(nproc)
for preset in release asan; do
  echo "== build: $preset"
  scripts/build.sh "$preset"
  echo "== test: $preset"
  ctest --preset "$preset" -j "$jobs"
done

echo "== fuzz: build with clang/libFuzzer and replay corpora plus a short run"
scripts/build.sh fuzz
scripts/fuzz.sh "${QR_FUZZ_SECONDS:-10}"

echo "== all tests passed in $(( $(date +%s) - start )) s"
