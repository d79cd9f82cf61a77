#!/usr/bin/env bash
# 16-reload: SIGHUP with a valid changed config (the /ping body changes):
# the master stays, a new generation of workers (all new pids, each with its
# own LISTEN socket) serves the new answer, and the old workers exit.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
CONF="$TEST_DIR/corral.yaml"

write_conf() {
    cat > "$CONF" <<EOF
name: t
workers: 2
drain_timeout: 5s
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "$1\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
}
write_conf pong
start_corral "$CONF"
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT"
old=$(worker_pids | paste -sd' ')
assert_eq "pong" "$("${CURL[@]}" "http://127.0.0.1:$PORT/ping")" "GET /ping before reload"

write_conf "pong, reloaded"
t0=$(now_ms)
kill -HUP "$CORRAL_PID"

_new_answer() { [ "$("${CURL[@]}" "http://127.0.0.1:$PORT/ping" 2>/dev/null)" = "pong, reloaded" ]; }
wait_for 15 _new_answer || fail "GET /ping does not give the new body 15 s after SIGHUP: $("${CURL[@]}" "http://127.0.0.1:$PORT/ping" 2>&1)"
log "new answer $(( $(now_ms) - t0 )) ms after SIGHUP"

_old_gone() {
    local p
    for p in $old; do alive "$p" && return 1; done
    return 0
}
wait_for 20 _old_gone || fail "old workers still running 20 s after SIGHUP (drain_timeout 5s): $old"
alive "$CORRAL_PID" || fail "the master exited on SIGHUP"

_two_new() { [ "$(worker_pids | wc -l)" = 2 ]; }
wait_for 10 _two_new || fail "expected 2 workers after reload, got: $(worker_pids | paste -sd' ')"
new=$(worker_pids | paste -sd' ')
for p in $new; do
    case " $old " in *" $p "*) fail "worker $p survived the reload (old: $old, new: $new)" ;; esac
done
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets after reload, got $(count_listeners "$PORT")"
assert_eq "$new" "$(listen_pids "$PORT" | sort -n | paste -sd' ')" "LISTEN socket owners after reload"

for i in $(seq 1 30); do
    assert_eq "pong, reloaded" "$("${CURL[@]}" "http://127.0.0.1:$PORT/ping")" "GET /ping #$i after reload"
done
assert_eq 200 "$(http_code "http://127.0.0.1:$PORT/status/200")" "proxied request after reload"

log "ok"
