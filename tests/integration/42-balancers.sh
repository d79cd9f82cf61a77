#!/usr/bin/env bash
# 42-balancers: balancers that need more than one worker's view.
# least_conn counts every worker's requests in flight (from shm): 8 slow
# requests started one after another on new connections, which the kernel
# spreads over 2 workers, end up 4 and 4 on the two backends, whichever
# worker took each. hash on a header keeps each key on one backend across
# workers and connections, and spreads the keys over both.
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/ctl-lib.sh"

b1=$(start_backend b1)
b2=$(start_backend b2)
PORT=$(free_port)
export PORT
CONF="$TEST_DIR/corral.yaml"
cat > "$CONF" <<EOF
workers: 2
listen: [ "127.0.0.1:$PORT" ]
upstreams:
  lc:
    balance: least_conn
    read_timeout: 30s
    servers: [ "127.0.0.1:$b1", "127.0.0.1:$b2" ]
  sticky:
    balance: hash
    hash: { header: X-User }
    servers: [ "127.0.0.1:$b1", "127.0.0.1:$b2" ]
routes:
  - { match: { path_prefix: /lc/ }, upstream: lc, strip_prefix: /lc }
  - { match: { path_prefix: / }, upstream: sticky }
EOF
start_corral "$CONF"
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT"

# -- least_conn across workers --------------------------------------------------
PORT=$PORT py <<'PY' || exit 1
import threading, time
from httpc import *

N = 8
got = [None] * N
def one(i):
    c = Conn(timeout=60)
    c.send(request("GET", "/lc/slow?ms=4000", headers=[("Connection", "close")]))
    r = c.response()
    c.close()
    got[i] = (r.status, r.header("X-Backend"))

threads = []
for i in range(N):
    t = threading.Thread(target=one, args=(i,))
    t.start()
    threads.append(t)
    time.sleep(0.25)            # each request is counted before the next starts
for t in threads:
    t.join()
check(all(g is not None and g[0] == 200 for g in got), "all slow requests answered 200",
      "200s", got)
per = {"b1": 0, "b2": 0}
for _, b in got:
    per[b] += 1
print("least_conn: %r" % per)
check(per == {"b1": 4, "b2": 4}, "8 overlapping requests split evenly across workers",
      {"b1": 4, "b2": 4}, per)
PY

# the requests really went through both workers (else this proves nothing)
ctl_ok workers --json --interval 0
echo "$CTL_OUT" > workers.json
[ "$(json_get workers.json workers.0.requests)" -ge 1 ] || fail "worker 0 served none"
[ "$(json_get workers.json workers.1.requests)" -ge 1 ] || fail "worker 1 served none"

# -- hash on a header ---------------------------------------------------------------
PORT=$PORT py <<'PY' || exit 1
from httpc import *

owner = {}
for rnd in range(3):
    for u in range(30):
        c = Conn()
        c.send(request("GET", "/who", headers=[("X-User", "user-%d" % u),
                                                ("Connection", "close")]))
        r = c.response()
        c.close()
        check(r.status == 200, "GET /who for user-%d" % u, 200, r.status)
        b = r.header("X-Backend")
        check(owner.setdefault(u, b) == b, "user-%d stays on one backend" % u, owner[u], b)
counts = {b: list(owner.values()).count(b) for b in ("b1", "b2")}
print("hash: %r" % counts)
check(counts["b1"] >= 5 and counts["b2"] >= 5, "30 keys spread over both backends",
      ">= 5 each", counts)
PY
check_logs || exit 1
log "ok"
