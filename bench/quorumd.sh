#!/usr/bin/env bash
# quorumd benchmark (not a test): a 3-node cluster on 127.0.0.1 with sync policy always,
# measured with redis-benchmark: SET and GET throughput and p50/p99 latency at 1, 16 and 64
# clients, 128-byte values, random keys, without and with pipelining (depth 16).
#
# Usage: bench/quorumd.sh [quorumd binary]   (default build/release/tools/quorumd/quorumd)
#   RUNS (default 3) repetitions of every cell; the table shows the median and the spread.
#   REQUESTS (default 20000 per cell, x8 when pipelined), TARGET=leader|follower (default
#   follower: clients talk to a follower, which forwards writes, so a write crosses two
#   links; leader measures the direct path).
# The 3 servers and redis-benchmark share this machine's cores: the script prints the load.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/release/tools/quorumd/quorumd}
runs=${RUNS:-3}
requests=${REQUESTS:-20000}
target=${TARGET:-follower}
if [ ! -x "$bin" ]; then
  echo "quorumd.sh: no quorumd at $bin (scripts/build.sh release first)" >&2
  exit 1
fi
command -v redis-benchmark >/dev/null || {
  echo "quorumd.sh: redis-benchmark missing (apt-get install redis-tools)" >&2
  exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/qr_bench_quorumd.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
head -c 32 /dev/urandom | base64 >"$work/secret"
declare -a cport pport
cluster=""
for i in 1 2 3; do
  cport[$i]=$(free_port)
  pport[$i]=$(free_port)
  cluster+="${cluster:+,}$i=127.0.0.1:${pport[$i]}"
done
for i in 1 2 3; do
  "$bin" --id "$i" --cluster "$cluster" --listen "127.0.0.1:${cport[$i]}" --data "$work/n$i" \
    --secret-file "$work/secret" --sync always -q 2>"$work/log$i" &
  pids+=($!)
done

role_of() { redis-cli -p "$1" info quorum 2>/dev/null | tr -d '\r' | sed -n 's/^role://p'; }
leader=""
for _ in $(seq 100); do
  for i in 1 2 3; do
    if [ "$(role_of "${cport[$i]}")" = leader ]; then leader=$i; fi
  done
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "$leader" ] || { echo "quorumd.sh: no leader after 10 s" >&2; cat "$work"/log*; exit 1; }
port=${cport[$leader]}
if [ "$target" = follower ]; then
  for i in 1 2 3; do [ "$i" != "$leader" ] && port=${cport[$i]} && break; done
fi
echo "quorumd.sh: 3 nodes (sync always), leader node $leader, clients talk to the $target" \
  "(port $port); $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"

results=$work/results
: >"$results"
for r in $(seq "$runs"); do
  for pipeline in 1 16; do
    for clients in 1 16 64; do
      n=$requests
      [ "$pipeline" -gt 1 ] && n=$((requests * 8))
      [ "$clients" -eq 1 ] && [ "$pipeline" -eq 1 ] && n=$((requests / 4))
      out=$(redis-benchmark -p "$port" -t set,get -n "$n" -c "$clients" -P "$pipeline" -d 128 \
        -r 100000 --csv 2>"$work/bench_err")
      if [ -s "$work/bench_err" ] && grep -qiv 'warning' "$work/bench_err"; then
        echo "quorumd.sh: redis-benchmark reported:" >&2
        cat "$work/bench_err" >&2
      fi
      # "SET","rps","avg","min","p50","p95","p99","max"
      echo "$out" | tr -d '"' | awk -F, -v c="$clients" -v p="$pipeline" \
        '$1=="SET"||$1=="GET" {print $1, c, p, $2, $5, $7}' >>"$results"
    done
  done
done

# median <column> of the lines on stdin.
median() { sort -g -k"$1","$1" | awk -v k="$1" '{ v[NR] = $k } END { if (NR) print v[int((NR + 1) / 2)] }'; }

# One row per (op, clients, pipeline): median throughput with min-max, median p50 and p99.
echo
printf '%-4s %7s %8s %24s %9s %9s\n' op clients pipeline "ops/s median (min-max)" "p50 ms" "p99 ms"
for op in SET GET; do
  for pipeline in 1 16; do
    for clients in 1 16 64; do
      cell=$(awk -v o="$op" -v c="$clients" -v p="$pipeline" '$1==o && $2==c && $3==p' "$results")
      [ -n "$cell" ] || continue
      rps=$(echo "$cell" | median 4)
      lo=$(echo "$cell" | sort -g -k4,4 | head -1 | cut -d' ' -f4)
      hi=$(echo "$cell" | sort -g -k4,4 | tail -1 | cut -d' ' -f4)
      printf '%-4s %7d %8d %10.0f (%.0f-%.0f) %9.3f %9.3f\n' "$op" "$clients" "$pipeline" \
        "$rps" "$lo" "$hi" "$(echo "$cell" | median 5)" "$(echo "$cell" | median 6)"
    done
  done
done
echo
echo "quorumd.sh: load after: $(cut -d' ' -f1-3 /proc/loadavg); runs per cell: $runs"
