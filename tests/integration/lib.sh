# Common helpers of the quorumd integration tests (tests/integration/*.sh). Source it after
# setting nothing; the test's $1 is the quorumd binary.
#
#   source "$(dirname "$0")/lib.sh" "$@"
#
# Gives: a private work directory ($WORK, removed at exit unless a check failed), free ports,
# start/stop of members by PID (a trap on EXIT kills every process the test started), polling
# against deadlines (wait_for), redis-cli wrappers (rc, rcr), INFO quorum field access, the
# leader's id, and check/expect helpers that count passes and failures. Every wait is bounded;
# the whole test stops waiting at $TEST_DEADLINE (QR_IT_BUDGET seconds after start, default
# 150).
set -uo pipefail

QUORUMD=${1:?usage: $0 path/to/quorumd}
case $QUORUMD in /*) ;; *) QUORUMD=$PWD/$QUORUMD ;; esac
[ -x "$QUORUMD" ] || { echo "FAIL: $QUORUMD is not an executable"; exit 1; }
command -v redis-cli >/dev/null || { echo "FAIL: redis-cli is not on PATH"; exit 1; }
IT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RESP_PY="$IT_DIR/resp.py"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/quorum-it.XXXXXX")
PASSED=0
FAILED=0
TEST_DEADLINE=$((SECONDS + ${QR_IT_BUDGET:-150}))
declare -A PIDS=()      # member id -> pid of its running quorumd
declare -a EXTRA_PIDS=() # every other process the test started (helpers, writers, ...)
declare -A PEER_PORT=() CLIENT_PORT=()
SYNC=${QR_IT_SYNC:-always}

_it_cleanup() {
  local id p
  exec 2>/dev/null # no "Killed" job notices for the processes stopped below
  for id in "${!PIDS[@]}"; do
    kill -CONT "${PIDS[$id]}" 2>/dev/null
    kill -KILL "${PIDS[$id]}" 2>/dev/null
  done
  for p in "${EXTRA_PIDS[@]}"; do
    kill -CONT "$p" 2>/dev/null
    kill -KILL "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [ "$FAILED" -eq 0 ] && [ -z "${QR_IT_KEEP:-}" ]; then
    rm -rf "$WORK"
  else
    echo "work directory (logs) kept in $WORK"
  fi
}
trap _it_cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "# $(date +%T) $*"; }

# check NAME COMMAND...: run COMMAND, count and print the result.
check() {
  local name=$1
  shift
  if "$@"; then
    echo "ok   $name"
    PASSED=$((PASSED + 1))
    return 0
  fi
  echo "FAIL $name"
  FAILED=$((FAILED + 1))
  return 1
}

# expect NAME EXPECTED ACTUAL: string equality, printing both on failure.
expect() {
  if [ "$2" == "$3" ]; then
    echo "ok   $1"
    PASSED=$((PASSED + 1))
    return 0
  fi
  echo "FAIL $1"
  echo "     expected: $(printf '%q' "$2")"
  echo "     got:      $(printf '%q' "$3")"
  FAILED=$((FAILED + 1))
  return 1
}

# expect_match NAME EXTENDED_REGEX ACTUAL
expect_match() {
  if [[ $3 =~ $2 ]]; then
    echo "ok   $1"
    PASSED=$((PASSED + 1))
    return 0
  fi
  echo "FAIL $1"
  echo "     expected to match: $2"
  echo "     got:               $(printf '%q' "$3")"
  FAILED=$((FAILED + 1))
  return 1
}

fail() {
  echo "FAIL $*"
  FAILED=$((FAILED + 1))
  return 1
}

pass() {
  echo "ok   $*"
  PASSED=$((PASSED + 1))
}

# finish: scan the members' logs for sanitizer reports, print the totals, exit.
finish() {
  check_sanitizer_logs
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] && exit 0
  exit 1
}

check_sanitizer_logs() {
  local f hits
  for f in "$WORK"/log*; do
    [ -f "$f" ] || continue
    hits=$(grep -E -c 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$f")
    if [ "$hits" -gt 0 ]; then
      fail "sanitizer report in $(basename "$f"):"
      grep -E -m 5 -A 12 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$f" | sed 's/^/     /'
    fi
  done
}

# wait_for SECONDS COMMAND...: poll every 100 ms until COMMAND succeeds; 1 if time ran out.
wait_for() {
  local deadline=$((SECONDS + $1))
  [ "$deadline" -le "$TEST_DEADLINE" ] || deadline=$TEST_DEADLINE
  shift
  while [ "$SECONDS" -lt "$deadline" ]; do
    "$@" && return 0
    sleep 0.1
  done
  "$@"
}

# free_ports N: N distinct free TCP ports on 127.0.0.1 (bound at once, then released).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# setup_ports N: peer and client ports for members 1..N; writes the secret file.
setup_ports() {
  local n=$1 i ports
  read -r -a ports < <(free_ports $((2 * n)))
  for ((i = 1; i <= n; i++)); do
    PEER_PORT[$i]=${ports[$((2 * i - 2))]}
    CLIENT_PORT[$i]=${ports[$((2 * i - 1))]}
  done
  [ -f "$WORK/secret" ] || head -c 32 /dev/urandom | base64 >"$WORK/secret"
}

# cluster_list ID...: "1=127.0.0.1:P1,2=..." for the given member ids.
cluster_list() {
  local out="" id
  for id in "$@"; do
    out+="${out:+,}$id=127.0.0.1:${PEER_PORT[$id]}"
  done
  echo "$out"
}

# CLUSTER: the --cluster value start_node uses (default: members 1..3).
CLUSTER=""

# start_node ID [EXTRA FLAGS...]: start member ID in the background (stderr to $WORK/logID).
start_node() {
  local id=$1
  shift
  [ -n "$CLUSTER" ] || CLUSTER=$(cluster_list 1 2 3)
  "$QUORUMD" --id "$id" --cluster "$CLUSTER" --listen "127.0.0.1:${CLIENT_PORT[$id]}" \
    --data "$WORK/n$id" --secret-file "$WORK/secret" --sync "$SYNC" "$@" \
    >>"$WORK/out$id" 2>>"$WORK/log$id" &
  PIDS[$id]=$!
  echo "--- started pid ${PIDS[$id]} $*" >>"$WORK/out$id"
}

# start_cluster N [EXTRA FLAGS...]: ports for N members, start 1..N, wait for a leader.
# The extra flags are remembered in NODE_FLAGS for restart_node.
declare -a NODE_FLAGS=()
start_cluster() {
  local n=$1 i ids=()
  shift
  NODE_FLAGS=("$@")
  setup_ports "$n"
  for ((i = 1; i <= n; i++)); do ids+=("$i"); done
  CLUSTER=$(cluster_list "${ids[@]}")
  for ((i = 1; i <= n; i++)); do start_node "$i" "$@"; done
  wait_for 20 has_leader "${ids[@]}" || { fail "no leader elected within 20 s"; dump_status "${ids[@]}"; return 1; }
}

# restart_node ID: start member ID again with the flags start_cluster used.
restart_node() { start_node "$1" "${NODE_FLAGS[@]}"; }

alive() { [ -n "${PIDS[$1]:-}" ] && kill -0 "${PIDS[$1]}" 2>/dev/null; }

# kill_node ID [SIGNAL]: send SIGNAL (default KILL) and, for KILL/TERM, reap the process.
kill_node() {
  local id=$1 sig=${2:-KILL} pid=${PIDS[$1]:-}
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null
  case $sig in
    KILL | 9)
      wait "$pid" 2>/dev/null
      unset "PIDS[$id]"
      ;;
    TERM | 15 | INT)
      # graceful: give it up to 15 s, then KILL
      local deadline=$((SECONDS + 15))
      while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      unset "PIDS[$id]"
      ;;
  esac
  return 0
}

# rc ID ARGS...: redis-cli --no-raw against member ID, bounded to 10 s ("TIMEOUT-CLI" on hang).
rc() {
  local id=$1
  shift
  timeout 10 redis-cli -h 127.0.0.1 -p "${CLIENT_PORT[$id]}" --no-raw "$@" 2>&1
  local st=$?
  [ $st -eq 124 ] && echo "TIMEOUT-CLI"
  return 0
}

# rcr ID ARGS...: the same in raw mode (values only).
rcr() {
  local id=$1
  shift
  timeout 10 redis-cli -h 127.0.0.1 -p "${CLIENT_PORT[$id]}" --raw "$@" 2>&1
  local st=$?
  [ $st -eq 124 ] && echo "TIMEOUT-CLI"
  return 0
}

# info ID: INFO quorum of member ID (CRs removed); empty if it does not answer in 3 s.
info() {
  timeout 3 redis-cli -h 127.0.0.1 -p "${CLIENT_PORT[$1]}" --raw INFO quorum 2>/dev/null | tr -d '\r'
}

# field ID NAME: the value of "NAME:value" in member ID's INFO quorum.
field() {
  info "$1" | sed -n "s/^$2://p" | head -n 1
}

# leader_of ID: the leader_id member ID reports ("" or 0 when none).
leader_of() { field "$1" leader_id; }

# current_leader ID...: the id of the one member among IDs whose role is leader and whom
# every other answering member names as leader; prints nothing (status 1) otherwise.
current_leader() {
  local id role leader="" others
  for id in "$@"; do
    alive "$id" || continue
    role=$(field "$id" role)
    if [ "$role" = leader ]; then
      [ -z "$leader" ] || return 1 # two members claim leadership
      leader=$id
    fi
  done
  [ -n "$leader" ] || return 1
  for id in "$@"; do
    alive "$id" || continue
    [ "$id" = "$leader" ] && continue
    others=$(leader_of "$id")
    [ "$others" = "$leader" ] || return 1
  done
  echo "$leader"
}

has_leader() { current_leader "$@" >/dev/null; }

# wait_leader SECONDS ID...: print the agreed leader among IDs, waiting up to SECONDS.
wait_leader() {
  local secs=$1
  shift
  wait_for "$secs" has_leader "$@" || return 1
  current_leader "$@"
}

# applied_at_least ID N: member ID's applied_index >= N.
applied_at_least() {
  local a
  a=$(field "$1" applied_index)
  [[ $a =~ ^[0-9]+$ ]] && [ "$a" -ge "$2" ]
}

# wait_caught_up SECONDS ID LEADER: sample LEADER's commit_index once, then wait until
# member ID has applied at least that far (works under a steady write load).
wait_caught_up() {
  local c
  c=$(field "$3" commit_index)
  [[ $c =~ ^[0-9]+$ ]] || return 1
  wait_for "$1" applied_at_least "$2" "$c"
}

# serves ID: member ID answers PING with PONG.
serves() { [ "$(rcr "$1" PING)" = PONG ]; }

# write_ok ID KEY VALUE: SET through member ID answers OK.
write_ok() { [ "$(rcr "$1" SET "$2" "$3")" = OK ]; }

dump_status() {
  local id
  for id in "$@"; do
    echo "     --- member $id (pid ${PIDS[$id]:-none}):"
    info "$id" | sed 's/^/     /'
    [ -f "$WORK/log$id" ] && tail -n 5 "$WORK/log$id" | sed 's/^/     log: /'
  done
}

# Batched exact-reply checks: q ID EXPECTED ARGS... queues a command for member ID with its
# exact redis-cli --no-raw reply; flush sends each run of consecutive commands for the same
# member through one redis-cli (commands on stdin, in order) and checks every reply. Starting
# a process is slow on a loaded machine; this keeps hundreds of checks fast.
declare -a Q_ID=() Q_WANT=() Q_CMD=() Q_NAME=()
q() {
  local id=$1 want=$2 line="" a
  shift 2
  for a in "$@"; do
    a=${a//\\/\\\\}
    a=${a//\"/\\\"}
    line+="${line:+ }\"$a\""
  done
  Q_ID+=("$id")
  Q_WANT+=("$want")
  Q_CMD+=("$line")
  Q_NAME+=("member $id: $*")
}

flush() {
  local n=${#Q_ID[@]} i=0 j k id out lines want nl got
  while [ "$i" -lt "$n" ]; do
    id=${Q_ID[$i]}
    j=$i
    while [ "$j" -lt "$n" ] && [ "${Q_ID[$j]}" = "$id" ]; do j=$((j + 1)); done
    out=$(for ((k = i; k < j; k++)); do printf '%s\n' "${Q_CMD[$k]}"; done |
      timeout 20 redis-cli -h 127.0.0.1 -p "${CLIENT_PORT[$id]}" --no-raw 2>&1)
    # redis-cli reading stdin prints "(0.57s)" after a command slower than half a second
    mapfile -t lines < <(printf '%s\n' "$out" | grep -E -v '^\([0-9]+\.[0-9]+s\)$')
    local pos=0
    for ((k = i; k < j; k++)); do
      want=${Q_WANT[$k]}
      nl=${want//[!$'\n']/}
      nl=$((${#nl} + 1))
      got=$(printf '%s\n' "${lines[@]:$pos:$nl}")
      got=${got%$'\n'}
      pos=$((pos + nl))
      expect "${Q_NAME[$k]}" "$want" "$got"
    done
    if [ "$pos" -lt "${#lines[@]}" ]; then
      fail "member $id: extra output after the batch: $(printf '%q' "$(printf '%s\n' "${lines[@]:$pos}")")"
    fi
    i=$j
  done
  Q_ID=() Q_WANT=() Q_CMD=() Q_NAME=()
}

# wait_pid SECONDS PID: wait for a process the test started to end (1 if it is still running);
# its exit status is left in WAIT_STATUS.
WAIT_STATUS=
wait_pid() {
  local deadline=$((SECONDS + $1))
  while kill -0 "$2" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if kill -0 "$2" 2>/dev/null; then return 1; fi
  wait "$2" 2>/dev/null
  WAIT_STATUS=$?
  return 0
}

# count_lines FILE: number of lines (0 when FILE does not exist).
count_lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

# verify_acked FILE ID...: every "key value" of FILE reads back through every member ID.
verify_acked() {
  local file=$1 id out
  shift
  for id in "$@"; do
    out=$(timeout 60 python3 "$RESP_PY" verify --port "${CLIENT_PORT[$id]}" --acked "$file" 2>&1)
    if [ $? -eq 0 ]; then
      pass "member $id: every acknowledged write reads back (${out##*$'\n'})"
    else
      fail "member $id: acknowledged writes missing or wrong:"
      printf '%s\n' "$out" | sed 's/^/     /'
    fi
  done
}

# py ARGS...: run the RESP helper.
py() { python3 "$RESP_PY" "$@"; }

# bg_py OUTFILE ARGS...: run the RESP helper in the background, remembering its pid in BG_PID.
bg_py() {
  local out=$1
  shift
  python3 "$RESP_PY" "$@" >"$out" 2>&1 &
  BG_PID=$!
  EXTRA_PIDS+=("$BG_PID")
}
