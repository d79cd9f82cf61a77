#!/usr/bin/env bash
# 14-graceful-stop: SIGTERM to the master while a /slow?ms=2000 request is
# in flight: that request completes with 200, an idle keep-alive client
# connection is closed, the port stops answering, the workers exit and the
# master exits with status 0.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT
BLOG=$(backend_log b1)

cat > corral.yaml <<EOF
name: t
workers: 2
drain_timeout: 10s
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { connect_timeout: 1s, read_timeout: 10s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT"
workers=$(worker_pids)

# an idle keep-alive connection, opened and used before the stop (python3
# itself, not the py function, so that $! is the client process)
PYTHONPATH="$TEST_DIR" python3 - > idle.txt 2>&1 <<'EOF' &
import time
from httpc import *
c = Conn(timeout=30)
c.send(request("GET", "/ping"))
r = c.response()
print("first", r.status, flush=True)
t0 = time.time()
print("closed" if c.closed_within(25) else "still-open", "%.1f" % (time.time() - t0), flush=True)
EOF
idle_pid=$!
record client "$idle_pid"

# the request in flight
"${CURL[@]}" -o slow.txt -w '%{http_code}' "http://127.0.0.1:$PORT/slow?ms=2000" > slow.code 2> slow.err &
curl_pid=$!
record client "$curl_pid"

_slow_at_backend() { grep -q 'GET /slow?ms=2000' "$BLOG"; }
wait_for 10 _slow_at_backend || fail "the /slow request never reached the backend"
_idle_ready() { grep -q '^first 200' idle.txt; }
wait_for 10 _idle_ready || fail "the keep-alive connection got no first answer: $(cat idle.txt)"

log "SIGTERM to master $CORRAL_PID"
t0=$(now_ms)
kill -TERM "$CORRAL_PID"

wait "$curl_pid"
rc=$?
assert_eq 0 "$rc" "curl of the in-flight /slow?ms=2000 request: exit status ($(cat slow.err))"
assert_eq 200 "$(cat slow.code)" "in-flight request: status"
assert_eq "slow" "$(cat slow.txt)" "in-flight request: body"
log "in-flight request done $(( $(now_ms) - t0 )) ms after SIGTERM"

_master_gone() { ! alive "$CORRAL_PID"; }
wait_for 20 _master_gone || fail "master still running 20 s after SIGTERM"
wait "$CORRAL_PID"
rc=$?
assert_eq 0 "$rc" "master exit status after SIGTERM"
log "master exited $(( $(now_ms) - t0 )) ms after SIGTERM"

for w in $workers; do
    alive "$w" && fail "worker $w still running after the master exited"
done
port_open "$PORT" && fail "port $PORT still answers after the stop"

wait "$idle_pid"
assert_match '^closed' "$(tail -n1 idle.txt)" "the idle keep-alive connection is closed by the stop"

log "ok"
