#!/usr/bin/env bash
# 17-reload-under-load: sixteen clients, each opening a new connection per
# request, run while the config is reloaded forty times in a row (each reload
# waits for the new generation to answer and the old one to exit, then lets
# the load run a little). Not one request may fail: no refused or reset
# connection, no missing or non-200 answer.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT
CONF="$TEST_DIR/corral.yaml"

write_conf() {
    cat > "$CONF" <<EOF
name: t
workers: 2
drain_timeout: 5s
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { keepalive: 16, connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "gen $1\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
}
write_conf 0
start_corral "$CONF"
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT"

# load: at most 90 s and 100000 requests; stops early when load.stop appears.
# (python3 itself, not the py function, so that $! is the client process)
PYTHONPATH="$TEST_DIR" python3 - > load.txt 2>&1 <<'EOF' &
import os, threading, time
from httpc import *

stop_at = time.time() + 90
lock = threading.Lock()
stats = {"ok": 0, "fail": 0}
errors = []

def client(k):
    i = 0
    while time.time() < stop_at and not os.path.exists("load.stop"):
        with lock:
            if stats["ok"] + stats["fail"] >= 100000:
                return
        i += 1
        path = "/ping" if i % 2 else "/status/200?c=%d&i=%d" % (k, i)
        err = None
        try:
            c = Conn(timeout=10)
            c.send(request("GET", path, headers=[("Connection", "close")]))
            r = c.response()
            c.close()
            if r.status != 200:
                err = "%s -> %d %r" % (path, r.status, r.body[:80])
        except Exception as e:
            err = "%s -> %s: %s" % (path, type(e).__name__, e)
        with lock:
            if err:
                stats["fail"] += 1
                t = time.time()
                # UTC, as in corral's log, to find the reload it ran into
                errors.append("%s.%03dZ %s" % (time.strftime("%H:%M:%S", time.gmtime(t)),
                                               int(t * 1000) % 1000, err))
            else:
                stats["ok"] += 1

threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for e in errors[:20]:
    print("error", e)
print("ok=%d fail=%d" % (stats["ok"], stats["fail"]), flush=True)
EOF
load_pid=$!
record client "$load_pid"

_load_running() { [ "$(wc -l < "$(backend_log b1)")" -gt 20 ]; }
wait_for 10 _load_running || fail "the load does not reach the backend: $(cat load.txt)"

for gen in $(seq 1 40); do
    old=$(worker_pids | paste -sd' ')
    write_conf "$gen"
    kill -HUP "$CORRAL_PID"
    _gen_answers() { [ "$("${CURL[@]}" "http://127.0.0.1:$PORT/ping" 2>/dev/null)" = "gen $gen" ]; }
    wait_for 15 _gen_answers || fail "reload $gen: the new config does not answer within 15 s"
    _old_gone() {
        local p
        for p in $old; do alive "$p" && return 1; done
        return 0
    }
    wait_for 20 _old_gone || fail "reload $gen: old workers still running after 20 s: $old"
    log "reload $gen done; workers: $(worker_pids | paste -sd' ')"
    sleep 0.1       # let the load run on this generation too
done

touch load.stop
wait "$load_pid"
result=$(tail -n 1 load.txt)
log "load: $result"
grep -q '^error' load.txt && log "$(grep '^error' load.txt)"
assert_match '^ok=[0-9]+ fail=0$' "$result" "requests failed during forty reloads under load:
$(grep '^error' load.txt)"
ok=$(echo "$result" | sed 's/^ok=\([0-9]*\).*/\1/')
[ "$ok" -ge 500 ] || fail "too little load to mean anything: $result"

log "ok"
