#!/usr/bin/env bash
# 41-outlier-ejection: passive outlier detection without any active check.
# A killed backend fails its requests (retried on the other server, so no
# client sees an error), is ejected for every worker at once, and the
# ejection shows in `corralctl upstreams --json` (ejection.ejected, total)
# and in the metrics; a server that keeps failing is ejected for twice as
# long; with every server ejected, corral answers 503 at once.
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/ctl-lib.sh"
need promtool

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
    retries: 1
    outlier: { failures: 2, base_ejection: 8s, max_ejection: 1m }
    servers: [ "127.0.0.1:$b1", "127.0.0.1:$b2" ]
routes:
  - { match: { path_prefix: / }, upstream: app }
EOF
start_corral "$CONF"
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT"

ejection() { server_json "$1" "ejection.$2"; }

newconn_requests 10 /who || fail "requests with both servers up"
assert_eq false "$(ejection "$b2" ejected)" "b2 not ejected while up"
assert_eq unknown "$(json_get up.json servers.1.health)" "no active checks: health unknown"

# -- kill b2: requests keep working, b2 gets ejected ---------------------------------
kill_backend "$b2"
newconn_requests 10 /who || fail "a client saw an error while b2 was failing"
assert_eq true "$(ejection "$b2" ejected)" "b2 ejected after its failures"
assert_eq 1 "$(ejection "$b2" total)" "one ejection (shared by both workers)"
assert_eq 8000 "$(ejection "$b2" last_duration_ms)" "first ejection: base_ejection"
rem=$(ejection "$b2" remaining_ms)
[ "$rem" -gt 0 ] && [ "$rem" -le 8000 ] || fail "remaining_ms $rem, want 1..8000"
ctl_ok upstreams --interval 0
assert_match "127\.0\.0\.1:$b2 +[0-9]+ +unknown +[0-9.]+s " "$CTL_OUT" "EJECTED column of the table"
ctl_ok metrics
printf '%s\n' "$CTL_OUT" | promtool check metrics >/dev/null 2>promtool.err ||
    fail "promtool: $(cat promtool.err)"
assert_contains "$CTL_OUT" \
    "corral_upstream_server_ejected{instance=\"$CORRAL_NAME\",upstream=\"app\",server=\"127.0.0.1:$b2\"} 1" \
    "ejected gauge"
assert_contains "$CTL_OUT" \
    "corral_upstream_server_ejections_total{instance=\"$CORRAL_NAME\",upstream=\"app\",server=\"127.0.0.1:$b2\"} 1" \
    "ejections counter"

# -- still down when the ejection ends: ejected again, for twice as long -----------
_back() { [ "$(ejection "$b2" ejected)" = false ]; }
wait_for 20 _back || fail "b2 still ejected after 20 s"
newconn_requests 20 /who || fail "a client saw an error while b2 failed again"
assert_eq 2 "$(ejection "$b2" total)" "second ejection"
assert_eq 2 "$(ejection "$b2" streak)" "two ejections in a row"
assert_eq 16000 "$(ejection "$b2" last_duration_ms)" "second ejection: twice as long"
assert_eq true "$(ejection "$b2" ejected)" "b2 ejected again"

# -- every server ejected: 503 at once ------------------------------------------------
kill_backend "$b1"
_all_ejected() {
    http_code "http://127.0.0.1:$PORT/who" > code.txt
    [ "$(ejection "$b1" ejected)" = true ]
}
wait_for 10 _all_ejected || fail "b1 never ejected"
t0=$(now_ms)
code=$(http_code "http://127.0.0.1:$PORT/who")
took=$(( $(now_ms) - t0 ))
assert_eq 503 "$code" "every server ejected"
log "503 after ${took}ms (connect_timeout 3000ms)"
[ "$took" -lt 1000 ] || fail "503 took ${took}ms"
check_logs || exit 1
log "ok"
