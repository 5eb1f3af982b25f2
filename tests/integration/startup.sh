#!/usr/bin/env bash
# integration.startup: quorumd refuses to start — exit status 2 and exactly one line on
# stderr — on bad flags, a missing or too short secret, a client or peer port already in use,
# and a data directory that belongs to another cluster; --help and --version exit 0.
#
# Usage: tests/integration/startup.sh path/to/quorumd
source "$(dirname "$0")/lib.sh" "$@"

setup_ports 3
head -c 8 /dev/urandom | base64 | head -c 10 >"$WORK/short-secret"
head -c 32 /dev/urandom | base64 >"$WORK/other-secret"
C3=$(cluster_list 1 2 3)
n_run=0

# refuses NAME REGEX ARGS...: quorumd ARGS exits 2 within 10 s with one stderr line matching
# REGEX (case-insensitive) and nothing on stdout.
refuses() {
  local name=$1 re=$2 st err out lines
  shift 2
  n_run=$((n_run + 1))
  timeout 10 "$QUORUMD" "$@" >"$WORK/stdout.$n_run" 2>"$WORK/stderr.$n_run"
  st=$?
  err=$(cat "$WORK/stderr.$n_run")
  out=$(cat "$WORK/stdout.$n_run")
  lines=$(grep -c '' "$WORK/stderr.$n_run")
  if [ "$st" -eq 2 ] && [ "$lines" -eq 1 ] && [ -z "$out" ] && printf '%s' "$err" | grep -q -i -E -e "$re"; then
    pass "$name: exit 2, '$err'"
  else
    fail "$name: expected exit 2 and one stderr line matching /$re/, got exit $st, $lines stderr line(s):"
    printf '%s\n' "$err" | head -n 8 | sed 's/^/     stderr: /'
    [ -n "$out" ] && printf '%s\n' "$out" | head -n 3 | sed 's/^/     stdout: /'
  fi
}

# base flags of a valid member 1 (each case changes one thing)
base() { echo --id 1 --cluster "$C3" --listen "127.0.0.1:${CLIENT_PORT[1]}" --data "$WORK/d$n_run" --secret-file "$WORK/secret"; }

log "bad flags"
refuses "unknown flag" 'bogus|unknown|unrecognized' $(base) --bogus
refuses "unknown short flag" '-Z|unknown|unrecognized|invalid' $(base) -Z
refuses "missing --id" 'id' --cluster "$C3" --listen "127.0.0.1:${CLIENT_PORT[1]}" --data "$WORK/x" --secret-file "$WORK/secret"
refuses "--id 0" 'id' --id 0 --cluster "$C3" --listen "127.0.0.1:${CLIENT_PORT[1]}" --data "$WORK/x" --secret-file "$WORK/secret"
refuses "--id not a number" 'id' --id abc --cluster "$C3" --listen "127.0.0.1:${CLIENT_PORT[1]}" --data "$WORK/x" --secret-file "$WORK/secret"
refuses "--id missing its value" 'id' --cluster "$C3" --secret-file "$WORK/secret" --id
refuses "missing --cluster" 'cluster' --id 1 --listen "127.0.0.1:${CLIENT_PORT[1]}" --data "$WORK/x" --secret-file "$WORK/secret"
refuses "--cluster without this member" 'cluster|4' --id 4 --cluster "$C3" --listen "127.0.0.1:${CLIENT_PORT[1]}" --data "$WORK/x" --secret-file "$WORK/secret"
refuses "--cluster with a duplicate id" 'cluster|duplicate|twice|1' --id 1 --cluster "1=127.0.0.1:${PEER_PORT[1]},1=127.0.0.1:${PEER_PORT[2]}" --data "$WORK/x" --secret-file "$WORK/secret"
refuses "--cluster garbage" 'cluster' --id 1 --cluster "1=,,=2" --data "$WORK/x" --secret-file "$WORK/secret"
refuses "--cluster port 99999" 'port|99999|address' --id 1 --cluster "1=127.0.0.1:99999,2=127.0.0.1:${PEER_PORT[2]},3=127.0.0.1:${PEER_PORT[3]}" --data "$WORK/x" --secret-file "$WORK/secret"
refuses "--listen port 70000" 'port|70000|listen|address' --id 1 --cluster "$C3" --listen 127.0.0.1:70000 --data "$WORK/x" --secret-file "$WORK/secret"
refuses "--listen port not a number" 'port|listen|address' --id 1 --cluster "$C3" --listen 127.0.0.1:abc --data "$WORK/x" --secret-file "$WORK/secret"
refuses "--listen without a port" 'port|listen|address' --id 1 --cluster "$C3" --listen 127.0.0.1 --data "$WORK/x" --secret-file "$WORK/secret"
# a refused flag must not leave anything behind
rm -rf "$WORK/y"
refuses "--listen port 0x50" 'port|listen|address' --id 1 --cluster "$C3" --listen 127.0.0.1:0x50 --data "$WORK/y" --secret-file "$WORK/secret"
expect "a refused --listen leaves no data directory behind" "no" "$([ -e "$WORK/y" ] && echo "yes: $(ls "$WORK/y" | tr '\n' ' ')" || echo no)"
refuses "--sync sometimes" 'sync' $(base) --sync sometimes
refuses "--maxclients -1" 'maxclients' $(base) --maxclients -1
refuses "--request-timeout-ms x" 'request-timeout' $(base) --request-timeout-ms x
refuses "--timeout 1e3" 'timeout' $(base) --timeout 1e3

log "secrets"
refuses "secret file too short" 'secret|short|16' $(base | sed "s#$WORK/secret#$WORK/short-secret#")
refuses "missing secret file" 'secret|no such|nope' $(base | sed "s#$WORK/secret#$WORK/nope#")
refuses "no secret at all" 'secret' --id 1 --cluster "$C3" --listen "127.0.0.1:${CLIENT_PORT[1]}" --data "$WORK/x"
refuses "--secret too short" 'secret|short|16' --id 1 --cluster "$C3" --listen "127.0.0.1:${CLIENT_PORT[1]}" --data "$WORK/x" --secret short
head -c 300 /dev/zero | tr '\0' a >"$WORK/long-secret"
refuses "secret file too long (300 bytes)" 'secret|long|256' $(base | sed "s#$WORK/secret#$WORK/long-secret#")

log "ports in use"
# hold_port PORT: a listener on 127.0.0.1:PORT until the test ends
hold_port() {
  python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
print("ready", flush=True); time.sleep(60)' "$1" >"$WORK/hold.$1" 2>&1 &
  EXTRA_PIDS+=($!)
  wait_for 10 grep -q ready "$WORK/hold.$1" || fail "could not hold port $1"
}
hold_port "${CLIENT_PORT[1]}"
refuses "client port in use" "in use|${CLIENT_PORT[1]}|listen" $(base)
hold_port "${PEER_PORT[2]}"
refuses "peer port in use" "in use|${PEER_PORT[2]}|listen" --id 2 --cluster "$C3" --listen "127.0.0.1:${CLIENT_PORT[2]}" --data "$WORK/d2" --secret-file "$WORK/secret"

log "data directory of another cluster"
# initialise member 3's directory as a one-member cluster with secret A, stop it cleanly
CLUSTER=$(cluster_list 3)
start_node 3
wait_for 15 has_leader 3 || fail "the one-member cluster elected no leader in 15 s"
expect "a write to the first cluster" OK "$(rcr 3 SET k v)"
kill_node 3 TERM
refuses "data directory of another cluster (other secret)" 'cluster|data|secret' \
  --id 3 --cluster "$CLUSTER" --listen "127.0.0.1:${CLIENT_PORT[3]}" --data "$WORK/n3" --secret-file "$WORK/other-secret"
refuses "data directory of another member id" 'id|node|member|data' \
  --id 4 --cluster "4=127.0.0.1:${PEER_PORT[3]}" --listen "127.0.0.1:${CLIENT_PORT[3]}" --data "$WORK/n3" --secret-file "$WORK/secret"
# and the right secret still opens it, with the data intact
start_node 3
wait_for 15 has_leader 3 || fail "the first cluster does not start again with its own secret"
expect "the data survived the refused starts" v "$(rcr 3 GET k)"
kill_node 3 TERM

log "--help and --version"
out=$(timeout 10 "$QUORUMD" --help 2>&1)
st=$?
expect "--help exits 0" 0 "$st"
expect_match "--help prints the usage" '^usage: quorumd' "$out"
out=$(timeout 10 "$QUORUMD" -h 2>/dev/null)
expect_match "-h prints the usage on stdout" '^usage: quorumd' "$out"
out=$(timeout 10 "$QUORUMD" --version 2>&1)
st=$?
expect "--version exits 0" 0 "$st"
expect_match "--version prints the version" '^quorumd [0-9]+\.[0-9]+\.[0-9]+' "$out"

finish
