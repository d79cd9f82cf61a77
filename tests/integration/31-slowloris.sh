#!/usr/bin/env bash
# 31-slowloris: 1,000 connections each trickling a request head one byte
# every 2 s must not keep a normal client from an answer within a second,
# and header_timeout ends them with 408.
. "$(dirname "$0")/lib.sh"

# the clients below hold 1,000 sockets at once
ulimit -n 8192 || fail "cannot raise the open file limit for 1,000 client sockets"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT

cat > corral.yaml <<EOF
name: t
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
limits: { header_timeout: 5s, max_connections: 4000 }
upstreams:
  app: { servers: [ "127.0.0.1:$bport" ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
import os, select, socket, time
from httpc import *

PORT = int(os.environ["PORT"])
N = 1000

# 1,000 slow clients: a request line, then one byte of a header every 2 s
slow = []
for i in range(N):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.setblocking(False)
    s.send(b"GET /ping HTTP/1.1\r\nHost: slow\r\n")
    slow.append(s)
print("opened %d slow connections" % len(slow))

# a normal client, a fresh connection every 0.2 s, during the trickle
worst = 0.0
answered = 0
next_trickle = time.monotonic()
end = time.monotonic() + 4.0            # less than header_timeout: all still open
while time.monotonic() < end:
    if time.monotonic() >= next_trickle:
        for s in slow:
            try:
                s.send(b"X")
            except (BlockingIOError, OSError):
                pass
        next_trickle += 2.0
    t0 = time.monotonic()
    c = Conn(PORT, timeout=10)
    c.send(request("GET", "/ping", headers=[("Connection", "close")]))
    r = c.response()
    dt = time.monotonic() - t0
    c.close()
    check(r.status == 200 and r.body == b"pong\n", "normal request during the trickle", 200, r)
    worst = max(worst, dt)
    answered += 1
    time.sleep(0.2)
print("normal client: %d answers, slowest %.1f ms" % (answered, worst * 1000))
check(answered >= 10, "normal requests answered during the trickle", ">= 10", answered)
check(worst < 1.0, "every normal request answered within a second", "< 1.0 s", "%.3f s" % worst)

# header_timeout (5 s from the first byte) answers each slow client 408 and closes
deadline = time.monotonic() + 30
got408 = closed = 0
pending = {s: b"" for s in slow}
while pending and time.monotonic() < deadline:
    r, _, _ = select.select(list(pending), [], [], 1.0)
    for s in r:
        try:
            d = s.recv(4096)
        except (ConnectionResetError, OSError):
            d = b""
        if d:
            pending[s] += d
            continue
        if pending[s].startswith(b"HTTP/1.1 408"):
            got408 += 1
        closed += 1
        del pending[s]
        s.close()
for s in pending:
    s.close()
print("slow connections: %d closed, %d with a 408 first" % (closed, got408))
check(closed == N, "every slow connection closed by corral", N, closed)
check(got408 == N, "every slow connection told 408", N, got408)
EOF

log "ok"
