#!/usr/bin/env bash
# 28-graceful-stop-under-load: twenty clients, each opening a NEW
# connection per request, run; a GET /slow?ms=3000 is started, and once it
# has reached the backend the master gets SIGTERM. Asserts:
#   - no request failed before the SIGTERM (the load is sound);
#   - the slow request completes: 200 and its body, although the stop
#     began while it was in flight;
#   - the master exits with status 0 within drain_timeout (6 s) + 4 s of
#     the SIGTERM, and every worker is gone;
#   - the stats segment /dev/shm/corral.$CORRAL_NAME is removed;
#   - the port no longer accepts connections, and no LISTEN socket is left.
# Requests racing the stop (refused once the listeners are closed) are
# printed with their class, not counted as failures.
. "$(dirname "$0")/lib.sh"

LOADGEN="$LIB_DIR/loadgen.py"
CLIENTS=20
DRAIN_S=6
EXIT_LIMIT_MS=$(( (DRAIN_S + 4) * 1000 ))

bport=$(start_backend b1)
PORT=$(free_port)
export PORT
BLOG=$(backend_log b1)

cat > corral.yaml <<EOF
name: t
workers: 2
drain_timeout: ${DRAIN_S}s
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { keepalive: 16, connect_timeout: 2s, read_timeout: 10s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT, got $(count_listeners "$PORT")"
workers=$(worker_pids)
SEG="/dev/shm/corral.$CORRAL_NAME"
[ -f "$SEG" ] || fail "no stats segment $SEG while corral runs"

# --- load ------------------------------------------------------------------
# At most 60 s (and 1,000,000 requests); stops when load.stop appears, and
# waits 50 ms after each failure (refusals, once corral is gone).
python3 "$LOADGEN" load --port "$PORT" --clients "$CLIENTS" --paths /ping,/status/200 \
    --duration 60 --max-requests 1000000 --timeout 15 --fail-pause 0.05 \
    --stop-file "$TEST_DIR/load.stop" \
    --progress "$TEST_DIR/load.progress" --report "$TEST_DIR/load.json" \
    > load.txt 2>&1 < /dev/null &
load_pid=$!
record client "$load_pid"

load_ok() { sed -n 's/^ok=\([0-9]*\).*/\1/p' "$TEST_DIR/load.progress" 2>/dev/null; }
_load_running() { [ "$(load_ok)" -ge 300 ] 2>/dev/null; }
wait_for 20 _load_running || fail "the load does not get going: $(cat load.txt load.progress 2>/dev/null)"
log "load running: $(cat load.progress)"

# --- the slow request, then SIGTERM --------------------------------------------
"${CURL[@]}" -o slow.txt -w '%{http_code}' "http://127.0.0.1:$PORT/slow?ms=3000" > slow.code 2> slow.err &
curl_pid=$!
record client "$curl_pid"
_slow_at_backend() { grep -q 'GET /slow?ms=3000' "$BLOG"; }
wait_for 10 _slow_at_backend || fail "the /slow request never reached the backend"

log "SIGTERM to master $CORRAL_PID under load: $(cat load.progress)"
t_term=$(now_ms)
kill -TERM "$CORRAL_PID"

wait "$curl_pid"
rc=$?
t_slow=$(now_ms)
assert_eq 0 "$rc" "curl of the in-flight /slow?ms=3000 request: exit status ($(cat slow.err))"
assert_eq 200 "$(cat slow.code)" "in-flight /slow request: status"
assert_eq "slow" "$(cat slow.txt)" "in-flight /slow request: body"
log "the /slow request completed $((t_slow - t_term)) ms after the SIGTERM"

_master_gone() { ! alive "$CORRAL_PID"; }
wait_for $((DRAIN_S + 20)) _master_gone || fail "master still running $((DRAIN_S + 20)) s after SIGTERM"
t_exit=$(now_ms)
touch load.stop             # from here on the load only meets refusals
wait "$CORRAL_PID"
rc=$?
assert_eq 0 "$rc" "master exit status after SIGTERM"
log "master exited $((t_exit - t_term)) ms after the SIGTERM"
[ $((t_exit - t_term)) -le "$EXIT_LIMIT_MS" ] ||
    fail "the master exited $((t_exit - t_term)) ms after the SIGTERM, expected <= $EXIT_LIMIT_MS ms (drain_timeout ${DRAIN_S} s + 4 s)"

for w in $workers; do
    alive "$w" && fail "worker $w still running after the master exited"
done
[ -e "$SEG" ] && fail "the stats segment $SEG is still there after the master exited"
port_open "$PORT" && fail "port $PORT still accepts connections after the stop"
assert_eq 0 "$(count_listeners "$PORT")" "LISTEN sockets on $PORT after the stop"

_load_done() { ! alive "$load_pid"; }
wait_for 30 _load_done || fail "the load generator did not stop within 30 s"
wait "$load_pid"
load_rc=$?
assert_eq 0 "$load_rc" "load generator exit status ($(tail -n 3 load.txt))"
log "load: $(tail -n 1 load.txt); $(grep '^kinds' load.txt)"

python3 - "$TEST_DIR/load.json" "$t_term" <<'EOF' || exit 1
import json, sys
rep = json.load(open(sys.argv[1]))
t_term = int(sys.argv[2])
fails = rep["failures"]
before = [f for f in fails if f["end_ms"] < t_term]
after = [f for f in fails if f["end_ms"] >= t_term]
kinds = {}
for f in after:
    kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
print("requests: %d ok; %d failed before the SIGTERM; around and after it: %s"
      % (rep["ok"], len(before), " ".join("%s=%d" % kv for kv in sorted(kinds.items())) or "none"))
firsts = {}
for f in after:
    firsts.setdefault(f["kind"], f)
for k, f in sorted(firsts.items()):
    print("  first %s: %s -> %s (%d ms after the SIGTERM)"
          % (k, f["path"], f["detail"], f["end_ms"] - t_term))
if before:
    print("FAIL: %d requests failed before the SIGTERM; first: %r" % (len(before), before[0]),
          file=sys.stderr)
    sys.exit(1)
EOF

log "ok"
