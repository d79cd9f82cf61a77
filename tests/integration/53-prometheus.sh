#!/usr/bin/env bash
# 53-prometheus: a real Prometheus (Debian's package) on loopback scrapes
# the admin /metrics of two corral instances every second; after 30
# requests to one and 20 to the other, its HTTP API answers
# sum(corral_requests_total) = 50, and up = 1 for both targets.
. "$(dirname "$0")/lib.sh"
need prometheus

start_instance() {      # start_instance PORT APORT CONF
    cat > "$3" <<EOF
workers: 2
listen: [ "127.0.0.1:$1" ]
admin: { address: "127.0.0.1:$2" }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
EOF
    start_corral "$3"
    wait_listeners "$1" 2 || fail "expected 2 listeners on $1"
    _admin_up() { [ "$(http_code "http://127.0.0.1:$1/metrics")" = 200 ]; }
    wait_for 15 _admin_up "$2" || fail "admin endpoint on $2 does not answer"
}
P1=$(free_port); A1=$(free_port)
P2=$(free_port); A2=$(free_port)
start_instance "$P1" "$A1" one.yaml
start_instance "$P2" "$A2" two.yaml

PPORT=$(free_port)
cat > prometheus.yml <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: corral
    static_configs:
      - targets: [ "127.0.0.1:$A1", "127.0.0.1:$A2" ]
EOF
prometheus --config.file="$TEST_DIR/prometheus.yml" \
    --storage.tsdb.path="$TEST_DIR/tsdb" \
    --web.listen-address="127.0.0.1:$PPORT" \
    > prometheus.log 2>&1 < /dev/null &
PROM_PID=$!
trap 'rc=$?; stop_prometheus; (exit $rc); stop_all' EXIT
stop_prometheus() {
    if alive "$PROM_PID"; then
        kill -TERM "$PROM_PID" 2>/dev/null
        _prom_gone() { ! alive "$PROM_PID"; }
        wait_for 20 _prom_gone || kill -KILL "$PROM_PID" 2>/dev/null
    fi
    wait "$PROM_PID" 2>/dev/null
    return 0
}
_prom_ready() { [ "$(http_code "http://127.0.0.1:$PPORT/-/ready")" = 200 ]; }
wait_for 60 _prom_ready || fail "prometheus not ready: $(tail -n 20 prometheus.log)"

# query EXPR: the value of a one-element vector result ("" if none)
query() {
    "${CURL[@]}" -G --data-urlencode "query=$1" "http://127.0.0.1:$PPORT/api/v1/query" |
        python3 -c '
import json, sys
d = json.load(sys.stdin)
r = d["data"]["result"] if d.get("status") == "success" else []
print(r[0]["value"][1] if len(r) == 1 else "")'
}

_both_up() { [ "$(query 'sum(up{job="corral"})')" = 2 ]; }
wait_for 60 _both_up || fail "prometheus does not see both targets up: $(query 'up')"

for i in $(seq 1 30); do
    [ "$(http_code "http://127.0.0.1:$P1/ping")" = 200 ] || fail "request $i to instance one"
done
for i in $(seq 1 20); do
    [ "$(http_code "http://127.0.0.1:$P2/ping")" = 200 ] || fail "request $i to instance two"
done

_sum_is_50() { [ "$(query 'sum(corral_requests_total)')" = 50 ]; }
wait_for 60 _sum_is_50 ||
    fail "sum(corral_requests_total) through Prometheus: $(query 'sum(corral_requests_total)')"
assert_eq 30 "$(query "sum(corral_requests_total{instance=\"127.0.0.1:$A1\"})")" "instance one"
assert_eq 20 "$(query "sum(corral_requests_total{instance=\"127.0.0.1:$A2\"})")" "instance two"
log "ok"
