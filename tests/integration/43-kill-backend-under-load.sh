#!/usr/bin/env bash
# 43-kill-backend-under-load: two backends under continuous GET load (a new
# client connection per request, upstream keep-alive on); one backend is
# killed, then started again on its port. Clients see no error at all: the
# retry on the other server covers requests caught by the kill, active
# checks take the dead server out for every worker, and once it is back
# and passes a check it gets traffic again.
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/ctl-lib.sh"

LOADGEN="$LIB_DIR/loadgen.py"
b1=$(start_backend b1)
b2=$(start_backend b2)
PORT=$(free_port)
export PORT
cat > corral.yaml <<EOF
workers: 2
listen: [ "127.0.0.1:$PORT" ]
upstreams:
  app:
    keepalive: 16
    connect_timeout: 2s
    read_timeout: 10s
    retries: 1
    # one slow connect to the surviving backend (a Python server with a
    # listen backlog of 5, on a loaded machine) must not eject it
    outlier: { failures: 3 }
    health: { path: /healthz, interval: 500ms, timeout: 400ms, fails: 1, passes: 1 }
    servers: [ "127.0.0.1:$b1", "127.0.0.1:$b2" ]
routes:
  - { match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT"
_up() { [ "$(server_json "$1" health)" = up ]; }
wait_for 10 _up "$b2" || fail "b2 never up"

python3 "$LOADGEN" load --port "$PORT" --clients 8 --paths /who,/status/200 \
    --duration 60 --max-requests 1000000 --timeout 10 --stop-file "$TEST_DIR/load.stop" \
    --progress "$TEST_DIR/load.progress" --report "$TEST_DIR/load.json" \
    > load.txt 2>&1 < /dev/null &
load_pid=$!
record client "$load_pid"
load_ok() { sed -n 's/^ok=\([0-9]*\).*/\1/p' "$TEST_DIR/load.progress" 2>/dev/null; }
_load_at() { [ "$(load_ok)" -ge "$1" ] 2>/dev/null; }
wait_for 20 _load_at 300 || fail "the load does not get going: $(cat load.txt load.progress 2>/dev/null)"
log "load running: $(cat load.progress)"

# -- kill b2 in the middle of the load ---------------------------------------------
kill_backend "$b2"
_down() { [ "$(server_json "$1" health)" = down ]; }
wait_for 10 _down "$b2" || fail "b2 not down"
n=$(load_ok)
wait_for 30 _load_at $((n + 300)) || fail "the load stalled with b2 down: $(cat load.progress)"
log "b2 down, load: $(cat load.progress)"

# -- b2 back ---------------------------------------------------------------------------
python3 "$LIB_DIR/backend.py" --port "$b2" --name b2 >> "$(backend_log b2)" 2>&1 </dev/null &
record backend $!
wait_for 10 _up "$b2" || fail "b2 not up again"
back=$(grep -c "^b2 GET /who$" "$(backend_log b2)")
_b2_serves() { [ "$(grep -c "^b2 GET /who$" "$(backend_log b2)")" -ge $((back + 50)) ]; }
wait_for 30 _b2_serves || fail "b2 gets no traffic after it came back"
n=$(load_ok)
wait_for 30 _load_at $((n + 300)) || fail "the load stalled after b2 came back"

touch "$TEST_DIR/load.stop"
wait "$load_pid"
log "load: $(tail -n 1 load.txt)"
fails=$(tail -n 1 load.txt | sed -n 's/.*fail=\([0-9]*\).*/\1/p')
[ -n "$fails" ] || fail "no load summary: $(tail -n 5 load.txt)"
[ "$fails" = 0 ] || fail "clients saw $fails errors: $(cat load.txt)"
check_logs || exit 1
log "ok"
