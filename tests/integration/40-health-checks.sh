#!/usr/bin/env bash
# 40-health-checks: active health checks run once per instance, not once
# per worker (the backend sees one check per interval with 2 workers); a
# killed backend is "down" in `corralctl upstreams --json` within two
# intervals, and no worker sends it requests while it is down (every
# request is served by the other one); once it is back it is "up" again
# within two intervals and gets traffic; a reload keeps the verdicts (the
# new checker carries on from them); with both down, corral answers
# 503 at once, well within the connect timeout.
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/ctl-lib.sh"

INTERVAL_MS=1000
b1=$(start_backend b1)
b2=$(start_backend b2)
PORT=$(free_port)
export PORT
CONF="$TEST_DIR/corral.yaml"
cat > "$CONF" <<EOF
workers: 2
listen: [ "127.0.0.1:$PORT" ]
upstreams:
  app:
    connect_timeout: 3s
    read_timeout: 5s
    retries: 1
    outlier: { failures: 0 }
    health: { path: /healthz, interval: ${INTERVAL_MS}ms, timeout: 500ms, fails: 1,
              passes: 1, expect_status: 200-299 }
    servers: [ "127.0.0.1:$b1", "127.0.0.1:$b2" ]
routes:
  - { match: { path_prefix: / }, upstream: app }
EOF
start_corral "$CONF"
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT"

is_health() { [ "$(server_json "$1" health)" = "$2" ]; }

# changed_ms PORT: when the checker published the last up/down change of
# 127.0.0.1:PORT, in unix ms. Measuring with it leaves out how long this
# script takes to poll corralctl.
changed_ms() {
    python3 -c 'import sys; print(int(round(float(sys.argv[1]) * 1000)))' \
        "$(server_json "$1" check.changed_time)"
}

wait_for 10 is_health "$b1" up || fail "b1 never up: $(cat up.json)"
wait_for 10 is_health "$b2" up || fail "b2 never up: $(cat up.json)"
assert_eq 200 "$(server_json "$b1" check.last_status)" "last check status"

# -- once per instance: count the checks b1 receives over 5 intervals --------
checks_b1() { grep -c "^b1 GET /healthz$" "$(backend_log b1)"; }
c0=$(checks_b1)
sleep 5
c1=$(checks_b1)
n=$((c1 - c0))
log "b1 got $n health checks in 5 s with interval ${INTERVAL_MS}ms and 2 workers"
[ "$n" -ge 3 ] || fail "too few health checks: $n in 5 s"
[ "$n" -le 7 ] || fail "health checks run more than once per instance: $n in 5 s"

# -- kill b2: down within two intervals ----------------------------------------
t0=$(now_ms)
kill_backend "$b2"
_b2_down() { is_health "$b2" down; }
wait_for 10 _b2_down || fail "b2 not down after 10 s: $(cat up.json)"
log "corralctl saw b2 down $(( $(now_ms) - t0 ))ms after the kill"
took=$(( $(changed_ms "$b2") - t0 ))
log "b2 published down ${took}ms after the kill"
[ "$took" -le $((2 * INTERVAL_MS)) ] || fail "b2 down after ${took}ms, more than two intervals"
assert_contains "$(server_json "$b2" last_error)" "connect" "last_error names the failed connect"

# -- while b2 is down, every request goes to b1, and none fails -----------------
PORT=$PORT py <<'PY' || exit 1
from httpc import *
for i in range(40):
    c = Conn()
    c.send(request("GET", "/who", headers=[("Connection", "close")]))
    r = c.response()
    c.close()
    check(r.status == 200, "GET /who #%d while b2 is down" % i, 200, r.status)
    check(r.header("X-Backend") == "b1", "served by b1 while b2 is down", "b1",
          r.header("X-Backend"))
PY

# -- a reload keeps the verdicts: the new checker carries on from them ---------
fails0=$(server_json "$b2" check.fails)
ctl_ok status --json --interval 0
echo "$CTL_OUT" > st.json
gen0=$(json_get st.json generation)
kill -HUP "$CORRAL_PID"
_reloaded() {
    "$CORRALCTL" status --json --interval 0 > st.json 2>/dev/null &&
        [ "$(json_get st.json generation)" = $((gen0 + 1)) ]
}
wait_for 15 _reloaded || fail "no new generation after SIGHUP"
assert_eq down "$(server_json "$b2" health)" "b2 still down right after the reload"
_counted_on() { [ "$(server_json "$b2" check.fails)" -gt "$fails0" ]; }
wait_for 10 _counted_on || fail "consecutive failures restarted from 0: $(cat up.json)"
newconn_requests 20 /who || fail "requests right after the reload"
assert_eq 0 "$(grep -c "^b2 GET /who$" "$(backend_log b2)")" "requests that reached b2 while down"

# -- b2 back on its port: up within two intervals, and traffic returns -----------
python3 "$LIB_DIR/backend.py" --port "$b2" --name b2 >> "$(backend_log b2)" 2>&1 </dev/null &
record backend $!
_b2_listening() { port_open "$b2"; }
wait_for 10 _b2_listening || fail "b2 did not come back on port $b2"
t0=$(now_ms)
_b2_up() { is_health "$b2" up; }
wait_for 10 _b2_up || fail "b2 not up again after 10 s: $(cat up.json)"
log "corralctl saw b2 up $(( $(now_ms) - t0 ))ms after it listened again"
took=$(( $(changed_ms "$b2") - t0 ))
log "b2 published up ${took}ms after it listened again"
[ "$took" -le $((2 * INTERVAL_MS)) ] || fail "b2 up after ${took}ms, more than two intervals"
before=$(grep -c "^b2 GET /who$" "$(backend_log b2)")
newconn_requests 20 /who || fail "requests after b2 came back"
after=$(grep -c "^b2 GET /who$" "$(backend_log b2)")
[ $((after - before)) -ge 5 ] || fail "b2 got $((after - before)) of 20 requests after it came back"

# -- both down: 503 at once, not after a connect timeout ---------------------------
kill_backend "$b1"
kill_backend "$b2"
_both_down() { is_health "$b1" down && is_health "$b2" down; }
wait_for 10 _both_down || fail "both not down: $(cat up.json)"
t0=$(now_ms)
code=$(http_code "http://127.0.0.1:$PORT/who")
took=$(( $(now_ms) - t0 ))
assert_eq 503 "$code" "all servers down"
log "503 after ${took}ms (connect_timeout 3000ms)"
[ "$took" -lt 1000 ] || fail "503 took ${took}ms: it should not wait for a connect"

# -- metrics say the same ----------------------------------------------------------
ctl_ok metrics
assert_contains "$CTL_OUT" \
    "corral_upstream_server_up{instance=\"$CORRAL_NAME\",upstream=\"app\",server=\"127.0.0.1:$b1\"} 0" \
    "up gauge of b1"
check_logs || exit 1
log "ok"
