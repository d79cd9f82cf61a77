#!/usr/bin/env bash
# 09-upstream-errors: 502 when the only server refuses connections; 503 when
# every server of the pool is marked down (max_fails: 1, fail_timeout: 10s:
# the first request gets 502, an immediate second one 503); 504 when the
# backend does not answer within read_timeout; with retries: 1 a pool of
# [dead, live] answers every GET with 200. Error bodies are short text.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
dead=$(free_port)
port_open "$dead" && fail "port $dead was meant to be unused"
PORT=$(free_port)
export PORT

# One worker, so that the passive health state of a server (kept per
# worker) is the one every request of this test meets.
cat > corral.yaml <<EOF
name: t
workers: 1
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  refused:  { connect_timeout: 1s, read_timeout: 5s, retries: 0, max_fails: 1000, fail_timeout: 10s,
              servers: [ { address: "127.0.0.1:$dead" } ] }
  down:     { connect_timeout: 1s, read_timeout: 5s, retries: 0, max_fails: 1, fail_timeout: 10s,
              servers: [ { address: "127.0.0.1:$dead" } ] }
  slow:     { connect_timeout: 1s, read_timeout: 1s, retries: 0, max_fails: 1000, servers: [ { address: "127.0.0.1:$bport" } ] }
  mixed:    { connect_timeout: 1s, read_timeout: 5s, retries: 1, max_fails: 1000, fail_timeout: 10s, balance: round_robin,
              servers: [ { address: "127.0.0.1:$dead" }, { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: refused, match: { path_prefix: /refused/ }, upstream: refused, strip_prefix: /refused }
  - { name: down,    match: { path_prefix: /down/ },    upstream: down,    strip_prefix: /down }
  - { name: slow,    match: { path_prefix: /slow/ },    upstream: slow,    strip_prefix: /slow }
  - { name: mixed,   match: { path_prefix: /mixed/ },   upstream: mixed,   strip_prefix: /mixed }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
import time
from httpc import *

def get(path, timeout=20):
    c = Conn(timeout=timeout)
    t0 = time.time()
    c.send(request("GET", path))
    r = c.response()
    c.close()
    return r, time.time() - t0

def short_text(r, what):
    check(0 < len(r.body) <= 1024, what + ": a short body", "1..1024 bytes", r.body)

# -- 502: the only server refuses ------------------------------------------------------
for i in range(3):
    r, dt = get("/refused/status/200")
    check(r.status == 502, "GET via a pool whose only server refuses (try %d)" % (i + 1), 502, r)
    short_text(r, "502")

# -- 503: first 502 marks the server down, the next request finds none up ------------------
r, dt = get("/down/status/200")
check(r.status == 502, "first request to a dead-only pool", 502, r)
r, dt = get("/down/status/200")
check(r.status == 503, "immediate second request to the same pool (server marked down)", 503, r)
short_text(r, "503")

# -- 504: the backend takes 5 s, read_timeout is 1 s ----------------------------------------
r, dt = get("/slow/slow?ms=5000")
check(r.status == 504, "GET /slow?ms=5000 with read_timeout 1s", 504, r)
check(0.8 <= dt <= 4.5, "504 comes after about read_timeout", "0.8..4.5 s", "%.2f s" % dt)
short_text(r, "504")
r, dt = get("/slow/slow?ms=100")
check(r.status == 200 and r.body == b"slow\n", "a quick answer on the same pool afterwards",
      b"slow\n", r)

# -- retries: [dead, live], retries: 1 ------------------------------------------------------
for i in range(20):
    r, dt = get("/mixed/status/200?i=%d" % i)
    check(r.status == 200, "GET %d via [dead, live] with retries: 1" % (i + 1), 200, r)
# and with a fresh connection per request as well as keep-alive
c = Conn()
for i in range(10):
    c.send(request("GET", "/mixed/headers?k=%d" % i))
    r = c.response()
    check(r.status == 200, "keep-alive GET %d via [dead, live]" % (i + 1), 200, r)
c.close()
EOF

log "ok"
