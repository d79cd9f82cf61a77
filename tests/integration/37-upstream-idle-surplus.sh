#!/usr/bin/env bash
# 37-upstream-idle-surplus: after a burst, idle upstream connections beyond
# "keepalive" are kept for a moment and then closed.
#   - keepalive 2, one worker: a burst of 12 slow requests opens 12
#     upstream connections; a second burst right after reuses them instead
#     of opening 10 more;
#   - about a second later only "keepalive" connections remain open to the
#     backend.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT BPORT=$bport

cat > corral.yaml <<EOF
name: t
workers: 1
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { keepalive: 2, read_timeout: 10s, servers: [ "127.0.0.1:$bport" ] }
routes:
  - { match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
import os, threading, time
from httpc import *

def burst(n):
    codes = [None] * n
    def one(i):
        c = Conn(timeout=20)
        c.send(request("GET", "/slow?ms=300&i=%d" % i))
        codes[i] = c.response().status
        c.close()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return codes

def backend_conns():
    c = Conn(port=int(os.environ["BPORT"]), timeout=10)
    c.send(request("GET", "/conns"))
    n = int(c.response().body)
    c.close()
    return n - 1        # this very connection

c0 = backend_conns()
check(burst(12) == [200] * 12, "first burst answered", "12 x 200", None)
c1 = backend_conns()
check(burst(12) == [200] * 12, "second burst answered", "12 x 200", None)
c2 = backend_conns()
check(c1 - c0 >= 10, "the first burst opened about 12 upstream connections", ">= 10", c1 - c0)
check(c2 - c1 <= 3, "the second burst reused the first one's connections", "<= 3 new", c2 - c1)
EOF

_trimmed() {
    [ "$(ss -Htn state established "dport = :$bport" 2>/dev/null | wc -l)" -le 2 ]
}
wait_for 10 _trimmed || fail "idle upstream connections above keepalive were not closed: $(ss -Htn state established "dport = :$bport" | wc -l) open"
log "idle surplus closed: $(ss -Htn state established "dport = :$bport" | wc -l) connections left"
check_logs
echo "PASS"
