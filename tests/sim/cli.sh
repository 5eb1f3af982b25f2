#!/usr/bin/env bash
# The quorum-sim command line (ctest sim.cli): help, refusals with exit status 2, one
# short run, and determinism: the same seed twice prints the same trace hash.
set -uo pipefail
sim=${1:?usage: cli.sh <quorum-sim>}
failures=0
check() { # check <expected status> <description> <command...>
  local want=$1 what=$2
  shift 2
  "$@" >/dev/null 2>&1
  local got=$?
  if [ "$got" -ne "$want" ]; then
    echo "sim.cli: $what: exit status $got, expected $want" >&2
    failures=$((failures + 1))
  fi
}
check 0 "--help" "$sim" --help
check 2 "unknown flag" "$sim" --bogus
check 2 "--nodes 4" "$sim" --nodes 4
check 2 "--seeds 0" "$sim" --seeds 0
check 2 "--ticks 0" "$sim" --ticks 0
check 2 "--faults nope" "$sim" --faults nope
check 2 "--seed without value" "$sim" --seed
check 2 "--inject-bug nope" "$sim" --inject-bug nope
msg=$("$sim" --nodes 4 2>&1 >/dev/null)
if [ "$(printf '%s\n' "$msg" | wc -l)" -ne 1 ]; then
  echo "sim.cli: a refusal must be one line, got: $msg" >&2
  failures=$((failures + 1))
fi
a=$("$sim" --seed 7 --ticks 200 --faults none 2>&1)
b=$("$sim" --seed 7 --ticks 200 --faults none 2>&1)
if [ "$a" != "$b" ] || ! printf '%s' "$a" | grep -q 'trace='; then
  echo "sim.cli: seed 7 twice gave different runs:" >&2
  printf '%s\n%s\n' "$a" "$b" >&2
  failures=$((failures + 1))
fi
if [ "$failures" -ne 0 ]; then
  exit 1
fi
echo "sim.cli: all checks passed"
