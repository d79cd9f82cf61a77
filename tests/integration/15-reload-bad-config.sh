#!/usr/bin/env bash
# 15-reload-bad-config: SIGHUP after the config file was overwritten with a
# broken one: the log names the error as FILE:LINE:COL:, the master keeps
# running, the same worker pids keep serving the old config. Both a
# semantic error and a YAML syntax error are tried.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
CONF="$TEST_DIR/corral.yaml"

write_good() {
    cat > "$CONF" <<EOF
name: t
workers: 2
drain_timeout: 5s
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
}
write_good
start_corral "$CONF"
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT"
workers=$(worker_pids | paste -sd' ')
assert_eq "pong" "$("${CURL[@]}" "http://127.0.0.1:$PORT/ping")" "GET /ping before reload"

check_unchanged() {
    local what=$1 i
    alive "$CORRAL_PID" || fail "$what: the master died"
    for i in $(seq 1 20); do
        assert_eq "pong" "$("${CURL[@]}" "http://127.0.0.1:$PORT/ping")" "$what: GET /ping #$i (old config)"
        assert_eq 200 "$(http_code "http://127.0.0.1:$PORT/status/200")" "$what: GET /status/200 #$i"
    done
    assert_eq "$workers" "$(worker_pids | paste -sd' ')" "$what: worker pids unchanged"
    assert_eq 2 "$(count_listeners "$PORT")" "$what: LISTEN sockets on the port"
}

# -- semantic error at line 9: unknown upstream ------------------------------------------------
cat > "$CONF" <<EOF
name: t
workers: 2
drain_timeout: 5s
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "changed\n" } }
  - { name: default, match: { path_prefix: / }, upstream: nosuch }
EOF
kill -HUP "$CORRAL_PID"
_logged_9() { grep -Eq "corral\.yaml:9:[0-9]+:" "$CORRAL_LOG"; }
wait_for 10 _logged_9 || fail "no corral.yaml:9:COL: error in the log after SIGHUP with an unknown upstream; log tail:
$(tail -n 15 "$CORRAL_LOG")"
assert_contains "$(grep -E 'corral\.yaml:9:[0-9]+:' "$CORRAL_LOG")" "nosuch" "the logged error names the unknown upstream"
check_unchanged "after a reload with an unknown upstream"

# -- YAML syntax error ------------------------------------------------------------------------------
printf 'name: t\nworkers: 2\nlisten: [ { address: "127.0.0.1:%s" }\nroutes: [\n' "$PORT" > "$CONF"
n_before=$(grep -Ec 'corral\.yaml:[0-9]+:[0-9]+:' "$CORRAL_LOG")
kill -HUP "$CORRAL_PID"
_logged_more() { [ "$(grep -Ec 'corral\.yaml:[0-9]+:[0-9]+:' "$CORRAL_LOG")" -gt "$n_before" ]; }
wait_for 10 _logged_more || fail "no corral.yaml:LINE:COL: error in the log after SIGHUP with broken YAML; log tail:
$(tail -n 15 "$CORRAL_LOG")"
check_unchanged "after a reload with broken YAML"

# -- the old config is still the one in force: a good file now reloads -----------------------------
write_good
sed -i 's/"pong\\n"/"pong again\\n"/' "$CONF"
grep -q 'pong again' "$CONF" || fail "test setup: could not edit $CONF"
kill -HUP "$CORRAL_PID"
_new_answer() { [ "$("${CURL[@]}" "http://127.0.0.1:$PORT/ping")" = "pong again" ]; }
wait_for 15 _new_answer || fail "a valid config after two broken ones was not applied"

log "ok"
