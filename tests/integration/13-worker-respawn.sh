#!/usr/bin/env bash
# 13-worker-respawn: after kill -9 of one worker, the master starts a new
# worker (new pid, listening on the port), the other worker is untouched,
# and requests keep succeeding.
. "$(dirname "$0")/lib.sh"
EXPECT_WORKER_EXITS=1      # the kill -9 below is the point of this test

bport=$(start_backend b1)
PORT=$(free_port)

cat > corral.yaml <<EOF
name: t
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT, got $(count_listeners "$PORT")"

# shellcheck disable=SC2046   # one pid per word
set -- $(worker_pids)
[ "$#" = 2 ] || fail "expected 2 workers, got: $*"
victim=$1
other=$2
log "killing worker $victim (other worker: $other)"
t0=$(now_ms)
kill -KILL "$victim"

_victim_gone() { ! alive "$victim"; }
wait_for 10 _victim_gone || fail "worker $victim still alive after SIGKILL"

_replaced() {
    local w
    w=$(worker_pids | paste -sd' ')
    [ "$(echo "$w" | wc -w)" = 2 ] || return 1
    case " $w " in *" $victim "*) return 1 ;; esac
    case " $w " in *" $other "*) ;; *) return 1 ;; esac
    return 0
}
wait_for 10 _replaced || fail "no replacement worker within 10 s; workers now: $(worker_pids | paste -sd' ')"
new=$(worker_pids | grep -vx "$other")
log "replacement worker $new after $(( $(now_ms) - t0 )) ms"
assert_ne "$victim" "$new" "the replacement has a new pid"
alive "$other" || fail "the other worker $other died"

_ping_ok() { [ "$(http_code "http://127.0.0.1:$PORT/ping")" = 200 ]; }
wait_for 10 _ping_ok || fail "GET /ping fails after the respawn"
log "requests succeed $(( $(now_ms) - t0 )) ms after the kill"

# the new worker listens too, on its own socket
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets after respawn, got $(count_listeners "$PORT")"
owners=$(listen_pids "$PORT" | sort -n | paste -sd' ')
assert_eq "$(worker_pids | paste -sd' ')" "$owners" "LISTEN socket owners after the respawn"

# the master logged the death of the worker
grep -q "$victim" "$CORRAL_LOG" || fail "the master did not log anything about worker $victim"

for i in $(seq 1 40); do
    assert_eq 200 "$(http_code "http://127.0.0.1:$PORT/ping")" "GET /ping #$i after respawn"
    assert_eq 200 "$(http_code "http://127.0.0.1:$PORT/status/200")" "GET /status/200 #$i after respawn"
done

log "ok"
