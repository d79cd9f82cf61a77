#!/usr/bin/env bash
# 12-process-model: with workers: 2 there are exactly two LISTEN sockets on
# the port, each owned by exactly one process; the two owners are distinct
# pids, both children of the master, and the master owns none.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)

cat > corral.yaml <<EOF
name: t
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml

_two_workers() { [ "$(worker_pids | wc -l)" = 2 ]; }
wait_for 10 _two_workers || fail "expected 2 workers (children of master $CORRAL_PID), got: $(worker_pids | paste -sd' ')"
wait_listeners "$PORT" 2 ||
    fail "expected 2 LISTEN sockets on port $PORT, got $(count_listeners "$PORT"):
$(ss -ltnp "sport = :$PORT")"

workers=$(worker_pids | paste -sd' ')
owners=$(listen_pids "$PORT")
ssout=$(ss -ltnp "sport = :$PORT")
log "master $CORRAL_PID, workers: $workers"
log "ss -ltnp:
$ssout"

assert_eq 2 "$(printf '%s\n' "$owners" | grep -c .)" "number of LISTEN sockets on the port"
while read -r o; do
    case "$o" in
        *,*) fail "a LISTEN socket is shared by several processes ($o); each worker must bind its own:
$ssout" ;;
        "") fail "a LISTEN socket without an owner pid in ss -ltnp:
$ssout" ;;
    esac
done <<< "$owners"
assert_eq "$workers" "$(printf '%s\n' "$owners" | sort -n | paste -sd' ')" \
    "owners of the LISTEN sockets = the master's children, one socket each"
assert_eq 2 "$(printf '%s\n' "$owners" | sort -u | grep -c .)" "distinct owner pids"
assert_not_contains " $(tr ',\n' '  ' <<< "$owners")" " $CORRAL_PID " "the master owns no LISTEN socket"
# and not even a copy of one: no socket of the master listens on the port
if ss -ltnp | grep -E "[:.]${PORT}[[:space:]]" | grep -q "pid=$CORRAL_PID,"; then
    fail "master $CORRAL_PID holds a listening socket on port $PORT:
$(ss -ltnp | grep -E "[:.]${PORT}[[:space:]]")"
fi

# both serve: 40 new connections all answered
for i in $(seq 1 40); do
    code=$(http_code "http://127.0.0.1:$PORT/ping")
    assert_eq 200 "$code" "GET /ping #$i"
done

log "ok"
