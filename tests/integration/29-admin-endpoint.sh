#!/usr/bin/env bash
# 25-admin-endpoint: the admin listener (admin: { address: ... }) serves
# GET /metrics in the Prometheus text format (promtool check metrics
# passes) and GET /status as the same JSON document as corralctl status
# --json; both agree with corralctl on the counts after a known number of
# requests, and the admin's own requests are not counted as traffic.
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/ctl-lib.sh"
need promtool

PORT=$(free_port)
APORT=$(free_port)
export PORT
cat > corral.yaml <<EOF
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
admin: { address: "127.0.0.1:$APORT" }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
EOF
start_corral corral.yaml
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT"
_admin_up() { [ "$(http_code "http://127.0.0.1:$APORT/metrics")" = 200 ]; }
wait_for 10 _admin_up || fail "admin endpoint on $APORT does not answer GET /metrics"

newconn_requests 25 /ping || fail "GET /ping"
_counted() {
    "$CORRALCTL" status --json --interval 0 > s.json 2>/dev/null &&
        [ "$(json_get s.json totals.requests)" = 25 ]
}
wait_for 10 _counted || fail "totals after 25 requests: $(cat s.json)"

# -- GET /metrics --------------------------------------------------------------------------
"${CURL[@]}" -D head.txt -o metrics.txt "http://127.0.0.1:$APORT/metrics" ||
    fail "GET /metrics"
assert_match '^[Cc]ontent-[Tt]ype: text/plain; version=0\.0\.4' "$(tr -d '\r' < head.txt)" \
    "/metrics Content-Type"
promtool check metrics < metrics.txt > promtool.out 2>&1 ||
    fail "promtool check metrics on GET /metrics: $(cat promtool.out)"
"$CORRALCTL" metrics > ctl-metrics.txt || fail "corralctl metrics"
promtool check metrics < ctl-metrics.txt > promtool.out 2>&1 ||
    fail "promtool check metrics on corralctl metrics: $(cat promtool.out)"
sum_requests() {
    grep '^corral_requests_total{' "$1" | awk '{ s += $2 } END { print s + 0 }'
}
assert_eq 25 "$(sum_requests metrics.txt)" "corral_requests_total from GET /metrics"
assert_eq 25 "$(sum_requests ctl-metrics.txt)" "corral_requests_total from corralctl metrics"
# same families either way
assert_eq "$(grep '^# TYPE' ctl-metrics.txt)" "$(grep '^# TYPE' metrics.txt)" \
    "the admin endpoint and corralctl expose the same families"

# -- GET /status ------------------------------------------------------------------------------
"${CURL[@]}" -o status.json "http://127.0.0.1:$APORT/status" || fail "GET /status"
assert_eq 25 "$(json_get status.json totals.requests)" "totals.requests from GET /status"
assert_eq "$CORRAL_NAME" "$(json_get status.json instance)" "instance from GET /status"
assert_eq 2 "$(json_get status.json workers.#)" "workers from GET /status"

# scraping again does not count as traffic
"${CURL[@]}" -o /dev/null "http://127.0.0.1:$APORT/metrics"
"$CORRALCTL" status --json --interval 0 > s2.json || fail "status --json"
assert_eq 25 "$(json_get s2.json totals.requests)" "admin requests are not counted as traffic"

log "ok"
