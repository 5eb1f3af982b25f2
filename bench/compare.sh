#!/usr/bin/env bash
# The side-by-side comparison (issue 6): on this machine, one system at a time,
# a 3-node quorumd cluster (--sync always), a 3-member etcd cluster (Debian
# etcd-server, its defaults, which fsync), a 3-server ZooKeeper ensemble (Debian
# zookeeperd's jars, started here with java and our own zoo.cfg, not as a
# service) and a single redis-server with appendonly yes + appendfsync always.
# Everything listens on 127.0.0.1 on free ports, keeps its data under one mktemp
# directory, and is stopped by PID before the next system starts.
#
# The same closed-loop workload runs against each, with our load generator
# (bench/loadgen.c): writes of 16-byte keys and 128-byte values at 1, 16 and 64
# clients, for the RESP servers also 64 clients pipelined 16 deep, then reads at
# 64 clients (quorumd GET and etcd range are linearizable; ZooKeeper getData is
# not: see bench/compare.md). Each cell runs RUNS times, interleaved, and the
# table gives the median and the spread (min-max) of throughput plus the median
# p50/p99/p99.9 latency, with the ratios quorumd/etcd, quorumd/ZooKeeper and, for
# writes at 64 clients, quorumd/redis. With redis selected it then checks our
# generator against redis-benchmark on the same server (see bench/compare.md).
# quorumd's reads also run once more with "QUORUM.READS stale" (served from the
# node's own state, no ReadIndex round): the price of linearizability, not a
# comparison. Before and after the systems, bench/fsyncprobe measures the
# flushes the disk under the data directory takes, for one writer and for three
# at once (three replicas on this one machine share it).
#
# Usage: bench/compare.sh [--runs N] [--duration S] [--warmup S]
#                         [--only quorumd,etcd,zk,redis] [--no-redis-benchmark] [--core]
# Environment: QUORUMD (default build/release/tools/quorumd/quorumd).
# Exit: 0 when every selected system ran, 1 on a failure, 2 on usage errors.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
duration=5
warmup=0.5
only=quorumd,etcd,zk,redis
check_redis_benchmark=1
run_core=0
keys=1000
value_size=128

usage() {
  sed -n '/^# Usage:/,/^# Exit:/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case $1 in
  --runs) runs=${2:-}; shift 2 || usage ;;
  --duration) duration=${2:-}; shift 2 || usage ;;
  --warmup) warmup=${2:-}; shift 2 || usage ;;
  --only) only=${2:-}; shift 2 || usage ;;
  --no-redis-benchmark) check_redis_benchmark=0; shift ;;
  --check-redis-benchmark) check_redis_benchmark=1; shift ;;
  --core) run_core=1; shift ;;
  -h | --help) usage ;;
  *) echo "compare.sh: unknown option '$1'" >&2; usage ;;
  esac
done
if ! [[ "$runs" =~ ^[1-9][0-9]?$ ]]; then
  echo "compare.sh: --runs must be 1 to 99" >&2
  exit 2
fi
if ! [[ "$duration" =~ ^[0-9]+(\.[0-9]+)?$ && "$warmup" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
  ! awk -v d="$duration" 'BEGIN { exit !(d >= 0.5 && d <= 600) }'; then
  echo "compare.sh: --duration must be 0.5 to 600 seconds, --warmup a number of seconds" >&2
  exit 2
fi
declare -A selected=()
IFS=, read -r -a only_list <<<"$only"
for s in "${only_list[@]}"; do
  case $s in
  quorumd | etcd | zk | redis) selected[$s]=1 ;;
  *) echo "compare.sh: --only: '$s' is not quorumd, etcd, zk or redis" >&2; exit 2 ;;
  esac
done
is_selected() { [ -n "${selected[$1]:-}" ]; }

# ---- Packages: the build's, then only the benchmark ones that are missing ----
scripts/deps.sh
packages=(curl util-linux procps)
is_selected etcd && packages+=(etcd-server)
is_selected zk && packages+=(zookeeperd libzookeeper-mt-dev)
is_selected redis && packages+=(redis-server redis-tools)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    sudo_cmd=(sudo -n)
  fi
  echo "compare.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  # The packages' own services must not start: policy-rc.d may forbid it, and we
  # stop any that did below, since we start every server ourselves.
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- Build the load generator ----
cmake --preset release >/dev/null
cmake --build build/release --target loadgen fsyncprobe >/dev/null
loadgen=build/release/bench/loadgen
fsyncprobe=build/release/bench/fsyncprobe
if is_selected zk && ! "$loadgen" --help | grep -q 'built with ZooKeeper'; then
  echo "compare.sh: $loadgen was built without ZooKeeper support; skipping zk" >&2
  unset 'selected[zk]'
fi

# ---- Temporary directory, started processes, cleanup ----
tmp=$(mktemp -d "${TMPDIR:-/tmp}/quorum-compare.XXXXXX")
pids=()
stop_pids() {
  local p deadline
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  deadline=$((SECONDS + 15))
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
      sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then
      echo "compare.sh: pid $p did not stop within 15 s; killing it" >&2
      kill -9 "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  stop_pids
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Sets $port to one nobody listens on now: the kernel picks it, and we never
# hand it out twice (no subshell, so that ports_given survives).
declare -A ports_given=()
port=
free_port() {
  local i
  for ((i = 0; i < 50; i++)); do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if [ -z "${ports_given[$port]:-}" ]; then
      ports_given[$port]=1
      return 0
    fi
  done
  echo "compare.sh: no free port found" >&2
  return 1
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s, bounded.
wait_until() {
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "compare.sh: $what not ready after $timeout s (logs under $tmp)" >&2
      return 1
    fi
    sleep 0.2
  done
}

# ---- The systems: each start_* sets proto and endpoints, or returns 1 ----
proto=
endpoints=

start_quorumd() {
  local bin=${QUORUMD:-build/release/tools/quorumd/quorumd} i cluster="" dir
  if [ ! -x "$bin" ]; then
    echo "compare.sh: $bin not found (build quorumd, or set QUORUMD); skipping quorumd" >&2
    return 1
  fi
  dir=$tmp/quorumd
  mkdir -p "$dir"
  head -c 32 /dev/urandom | base64 >"$dir/secret"
  local -a clients=()
  for i in 1 2 3; do
    free_port
    cluster+="${cluster:+,}$i=127.0.0.1:$port"
    free_port
    clients+=("$port")
  done
  for i in 1 2 3; do
    mkdir -p "$dir/$i"
    "$bin" --id "$i" --cluster "$cluster" --listen "127.0.0.1:${clients[i - 1]}" \
      --data "$dir/$i" --secret-file "$dir/secret" --sync always >"$dir/log.$i" 2>&1 &
    pids+=($!)
  done
  local leader="" deadline=$((SECONDS + 30))
  while [ -z "$leader" ]; do
    for i in 1 2 3; do
      if redis-cli -p "${clients[i - 1]}" INFO quorum 2>/dev/null | grep -q 'role:leader'; then
        leader=${clients[i - 1]}
      fi
    done
    if [ -z "$leader" ] && [ $SECONDS -ge $deadline ]; then
      echo "compare.sh: no quorumd node reports role:leader after 30 s (logs under $dir)" >&2
      return 1
    fi
    [ -n "$leader" ] || sleep 0.2
  done
  proto=resp
  endpoints=127.0.0.1:$leader
}

etcd_healthy() {
  curl -sf "http://127.0.0.1:$1/health" | grep -q '"health":"true"'
}

start_etcd() {
  local dir=$tmp/etcd i cluster=""
  local -a peers=() clients=()
  for i in 1 2 3; do
    free_port
    peers+=("$port")
    free_port
    clients+=("$port")
    cluster+="${cluster:+,}m$i=http://127.0.0.1:${peers[i - 1]}"
  done
  mkdir -p "$dir"
  for i in 1 2 3; do
    /usr/bin/etcd --name "m$i" --data-dir "$dir/m$i" \
      --listen-client-urls "http://127.0.0.1:${clients[i - 1]}" \
      --advertise-client-urls "http://127.0.0.1:${clients[i - 1]}" \
      --listen-peer-urls "http://127.0.0.1:${peers[i - 1]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${peers[i - 1]}" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token "quorum-compare-$$" >"$dir/log.$i" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3; do
    wait_until 30 "etcd member m$i" etcd_healthy "${clients[i - 1]}" || return 1
  done
  proto=etcd
  endpoints=127.0.0.1:${clients[0]},127.0.0.1:${clients[1]},127.0.0.1:${clients[2]}
}

# The four-letter word "srvr" (whitelisted in zoo.cfg) says leader or follower once it serves.
zk_serving() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; printf srvr >&3; cat <&3" |
    grep -qE 'Mode: (leader|follower)'
}

start_zk() {
  local dir=$tmp/zk i
  local -a clients=() quorum=() election=()
  for i in 1 2 3; do
    free_port
    clients+=("$port")
    free_port
    quorum+=("$port")
    free_port
    election+=("$port")
  done
  for i in 1 2 3; do
    mkdir -p "$dir/$i/data"
    echo "$i" >"$dir/$i/data/myid"
    {
      echo "tickTime=2000"
      echo "initLimit=10"
      echo "syncLimit=5"
      echo "dataDir=$dir/$i/data"
      echo "clientPort=${clients[i - 1]}"
      echo "clientPortAddress=127.0.0.1"
      echo "maxClientCnxns=0"
      echo "admin.enableServer=false"
      echo "4lw.commands.whitelist=srvr"
      for j in 1 2 3; do
        echo "server.$j=127.0.0.1:${quorum[j - 1]}:${election[j - 1]}"
      done
    } >"$dir/$i/zoo.cfg"
    java -Xms256m -Xmx512m -Dzookeeper.log.dir="$dir/$i" \
      -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
      org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/$i/zoo.cfg" >"$dir/$i/log" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3; do
    wait_until 60 "zookeeper server $i" zk_serving "${clients[i - 1]}" || return 1
  done
  proto=zk
  endpoints=127.0.0.1:${clients[0]},127.0.0.1:${clients[1]},127.0.0.1:${clients[2]}
}

redis_port=
start_redis() {
  local dir=$tmp/redis
  mkdir -p "$dir"
  free_port
  redis_port=$port
  /usr/bin/redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir" \
    --appendonly yes --appendfsync always --save "" --daemonize no >"$dir/log" 2>&1 &
  pids+=($!)
  wait_until 20 "redis-server" bash -c "redis-cli -p $redis_port PING | grep -q PONG" || return 1
  proto=resp
  endpoints=127.0.0.1:$redis_port
}

# ---- The workload ----
# Cells: name op clients pipeline; the pipelined one only for RESP servers.
# get-c64-stale: quorumd only, reads without the ReadIndex round (not linearizable).
cells=("set-c1 set 1 1" "set-c16 set 16 1" "set-c64 set 64 1" "set-c64-p16 set 64 16"
  "get-c64 get 64 1" "get-c64-stale get 64 1")
results=$tmp/results
: >"$results"

# One loadgen run; appends "system cell ops p50 p99 p999 errors" (latencies in ms).
run_cell() {
  local system=$1 cell=$2 op=$3 clients_count=$4 pipeline=$5 line extra=()
  if [ "$op" = get ] && [ "$proto" != zk ]; then
    extra=(--populate) # Reads find every key: written once, unmeasured.
  fi
  if [ "$cell" = get-c64-stale ]; then
    extra+=(--init "QUORUM.READS stale")
  fi
  if ! line=$(timeout "$(awk -v d="$duration" -v w="$warmup" 'BEGIN { print int(d + w + 120) }')" \
    "$loadgen" --proto "$proto" --endpoints "$endpoints" --op "$op" --clients "$clients_count" \
    --pipeline "$pipeline" --duration "$duration" --warmup "$warmup" --keys "$keys" \
    --value-size "$value_size" "${extra[@]}" 2>"$tmp/loadgen.err"); then
    echo "compare.sh: $system $cell: loadgen failed:" >&2
    cat "$tmp/loadgen.err" >&2
    return 1
  fi
  if grep -q 'first error' "$tmp/loadgen.err"; then
    echo "compare.sh: $system $cell: $(grep 'first error' "$tmp/loadgen.err")" >&2
  fi
  echo "$line" | awk -v s="$system" -v c="$cell" '
    { for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
    END { printf "%s %s %s %.3f %.3f %.3f %s\n", s, c, f["ops_per_s"], f["p50_us"] / 1000,
          f["p99_us"] / 1000, f["p999_us"] / 1000, f["errors"] }' >>"$results"
}

bench_system() {
  local system=$1 r cell name op clients pipeline
  echo "compare.sh: starting $system" >&2
  if ! "start_$system"; then
    stop_pids
    return 1
  fi
  for ((r = 1; r <= runs; r++)); do
    for cell in "${cells[@]}"; do
      read -r name op clients pipeline <<<"$cell"
      if { [ "$pipeline" -gt 1 ] && [ "$proto" != resp ]; } ||
        { [ "$name" = get-c64-stale ] && [ "$system" != quorumd ]; }; then
        continue
      fi
      run_cell "$system" "$name" "$op" "$clients" "$pipeline" || return 1
    done
  done
}

# ---- loadgen against redis-benchmark on the same redis-server ----
# Server pinned to CPU 0 and client to CPU 1, so that the two generators'
# different CPU costs do not change the server's share of this 2-core machine;
# runs alternate, the medians are compared.
check_agreement() {
  local pid=$1 clients=64 pipeline r n lg rb
  taskset -apc 0 "$pid" >/dev/null
  printf '\nloadgen vs redis-benchmark, redis-server pinned to CPU 0, client on CPU 1, SET of %s bytes, %s clients, %s alternating runs each:\n' \
    "$value_size" "$clients" "$runs"
  printf '%-10s %-30s %-30s %s\n' pipeline "loadgen ops/s (p50 ms)" "redis-benchmark ops/s (p50 ms)" "ratio"
  for pipeline in 1 16; do
    : >"$tmp/agree"
    for ((r = 1; r <= runs; r++)); do
      lg=$(taskset -c 1 "$loadgen" --proto resp --port "$redis_port" --clients "$clients" \
        --pipeline "$pipeline" --duration "$duration" --keys 10000 --value-size "$value_size" 2>/dev/null)
      n=$(echo "$lg" | sed 's/.* requests=\([0-9]*\).*/\1/')
      rb=$(taskset -c 1 redis-benchmark -p "$redis_port" -t set -d "$value_size" -c "$clients" \
        -P "$pipeline" -n "$n" -r 10000 --csv 2>/dev/null | tail -1)
      echo "$lg" | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
        END { print "lg", f["ops_per_s"], f["p50_us"] / 1000 }' >>"$tmp/agree"
      echo "$rb" | tr -d '"' | awk -F, '{ print "rb", $2, $5 }' >>"$tmp/agree"
    done
    awk -v p="$pipeline" '
      function median(a, n,   i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      }
      $1 == "lg" { lo[++nl] = $2; ll[nl] = $3 } $1 == "rb" { ro[++nr] = $2; rl[nr] = $3 }
      END {
        a = median(lo, nl); b = median(ro, nr)
        printf "%-10s %-30s %-30s %.2f (%s)\n", p, sprintf("%.0f (%.3f)", a, median(ll, nl)),
          sprintf("%.0f (%.3f)", b, median(rl, nr)), a / b,
          (a / b >= 0.9 && a / b <= 1.1) ? "within 10%" : "NOT within 10%"
      }' "$tmp/agree"
  done
}

# ---- The disk: flushes per second for 1 and 3 writers (bench/fsyncprobe.c) ----
probe_disk() { # -> one line
  local one three
  one=$("$fsyncprobe" --dir "$tmp" --writers 1 --seconds 3) || return 1
  three=$("$fsyncprobe" --dir "$tmp" --writers 3 --seconds 3) || return 1
  printf '%s\n%s\n' "$one" "$three" | awk '
    { for (i = 1; i <= NF; i++) { split($i, kv, "="); f[NR, kv[1]] = kv[2] } }
    END { printf "1 writer %s flushes/s (p50 %.2f ms, p99 %.2f ms); 3 writers %s in all, %s each (p50 %.2f ms, p99 %.2f ms)",
          f[1, "flushes_per_s"], f[1, "p50_us"] / 1000, f[1, "p99_us"] / 1000,
          f[2, "flushes_per_s"], f[2, "flushes_per_s_per_writer"], f[2, "p50_us"] / 1000,
          f[2, "p99_us"] / 1000 }'
}

# ---- Main ----
echo "compare.sh: $(nproc) CPUs; load before: $(uptime)" >&2
disk_before=$(probe_disk) || disk_before="fsyncprobe failed"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
systems=()
for system in quorumd etcd zk redis; do
  is_selected "$system" || continue
  if bench_system "$system"; then
    systems+=("$system")
    if [ "$system" = redis ] && [ "$check_redis_benchmark" -eq 1 ]; then
      agreement=$(check_agreement "${pids[0]}")
    fi
  elif [ "$system" != quorumd ] || [ -x "${QUORUMD:-build/release/tools/quorumd/quorumd}" ]; then
    echo "compare.sh: $system failed" >&2
    stop_pids
    exit 1
  fi
  stop_pids
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
disk_after=$(probe_disk) || disk_after="fsyncprobe failed"

# ---- The table ----
stats() { # system cell column -> "median min max"
  awk -v s="$1" -v c="$2" -v col="$3" '$1 == s && $2 == c { print $col }' "$results" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - -"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }'
}
errors_sum() {
  awk -v s="$1" -v c="$2" '$1 == s && $2 == c { e += $7 } END { print e + 0 }' "$results"
}
ratio() { # a b -> "a/b" or "-"
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", a / b }'
}

echo
echo "Closed loop, $value_size-byte values, 16-byte keys over $keys keys, ${duration} s per run" \
  "(+${warmup} s warm-up), $runs runs per cell: throughput median (min-max) ops/s," \
  "then median p50/p99/p99.9 latency in ms; e=errors."
echo "Machine: $(nproc) CPUs; load average (1/5/15 min) before $load_before, after $load_after."
echo "Disk (4 KiB append + fdatasync, back to back, under $tmp): before: $disk_before;" \
  "after: $disk_after."
header="| cell |"
rule="|---|"
for system in "${systems[@]}"; do
  header+=" $system |"
  rule+="---|"
done
header+=" quorumd/etcd | quorumd/zk | quorumd/redis |"
rule+="---|---|---|"
echo "$header"
echo "$rule"
for cell in "${cells[@]}"; do
  read -r name _ <<<"$cell"
  row="| $name |"
  declare -A median=()
  for system in "${systems[@]}"; do
    read -r om omin omax < <(stats "$system" "$name" 3)
    median[$system]=$om
    if [ "$om" = - ]; then
      row+=" n/a |"
      continue
    fi
    read -r p50 _ < <(stats "$system" "$name" 4)
    read -r p99 _ < <(stats "$system" "$name" 5)
    read -r p999 _ < <(stats "$system" "$name" 6)
    e=$(errors_sum "$system" "$name")
    row+=$(printf ' %.0f (%.0f-%.0f) %.2f/%.1f/%.1f' "$om" "$omin" "$omax" "$p50" "$p99" "$p999")
    [ "$e" -eq 0 ] || row+=" e=$e"
    row+=" |"
  done
  q=${median[quorumd]:--}
  if [ "$name" = get-c64-stale ]; then
    q=- # Not linearizable: no ratio against the others' reads.
  fi
  row+=" $(ratio "$q" "${median[etcd]:--}") | $(ratio "$q" "${median[zk]:--}") |"
  case $name in
  set-c64*) row+=" $(ratio "$q" "${median[redis]:--}") |" ;;
  *) row+=" - |" ;;
  esac
  echo "$row"
  unset median
done
echo "Reads: quorumd GET and etcd range are linearizable; ZooKeeper getData is served by the" \
  "contacted server without sync, so it is not (bench/compare.md). get-c64-stale: quorumd" \
  "after QUORUM.READS stale (no ReadIndex round, not linearizable), to show what the round costs."
if [ -n "${agreement:-}" ]; then
  echo "$agreement"
fi
if [ "$run_core" -eq 1 ]; then
  if [ -x bench/core.sh ]; then
    echo
    bench/core.sh "$runs"
  else
    echo "compare.sh: bench/core.sh not found; no core-only figure" >&2
  fi
fi
