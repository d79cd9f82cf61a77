#!/usr/bin/env bash
# 08-header-timeout: a request head not complete within header_timeout (1s)
# gets "408" and the connection is closed: both for a head that stops
# halfway and for one trickled a byte at a time (the limit runs from the
# first byte to the end of the head, not between bytes). A prompt request
# on a connection opened at the same time is served normally.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT

cat > corral.yaml <<EOF
name: t
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
limits: { header_timeout: 1s, idle_timeout: 60s }
upstreams:
  app: { keepalive: 8, connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
import socket
import time
from httpc import *

# -- a head that stops halfway --------------------------------------------------------
c = Conn(timeout=20)
t0 = time.time()
c.send(b"GET /ping HTTP/1.1\r\nHost: a\r\nX-Partial: ")
try:
    r = c.response()
except EOFError:
    fail("partial head: connection closed without a 408", "HTTP/1.1 408", "EOF after %.1fs"
         % (time.time() - t0))
except socket.timeout:
    fail("partial head: no answer within 20 s", "HTTP/1.1 408", "nothing")
dt = time.time() - t0
check(r.version == "HTTP/1.1" and r.status == 408, "partial head: status", "HTTP/1.1 408",
      (r.version, r.status))
check(0.8 <= dt <= 10, "partial head: 408 after about header_timeout (1s)", "0.8..10 s",
      "%.2f s" % dt)
check(any("close" in v.lower() for v in r.all("Connection")), "partial head: Connection: close",
      "close", r.all("Connection"))
check(c.closed_within(10), "partial head: connection closed after the 408")
c.close()

# -- a head trickled one byte every 0.25 s ---------------------------------------------------
c = Conn(timeout=20)
data = b"GET /ping HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"z" * 200 + b"\r\n\r\n"
t0 = time.time()
got = b""
c.s.settimeout(0.25)
for i in range(len(data)):
    try:
        c.s.sendall(data[i:i + 1])
    except (BrokenPipeError, ConnectionResetError):
        break
    try:
        d = c.s.recv(65536)
        if not d:
            break
        got += d
        if b"\r\n\r\n" in got:
            break
    except socket.timeout:
        pass
    except ConnectionResetError:
        break
    if time.time() - t0 > 20:
        break
dt = time.time() - t0
check(got.startswith(b"HTTP/1.1 408"), "trickled head: 408 although bytes keep coming",
      "HTTP/1.1 408 ...", got[:100])
check(0.8 <= dt <= 10, "trickled head: 408 after about header_timeout (1s)", "0.8..10 s",
      "%.2f s" % dt)
c.close()

# -- a prompt request is not affected ------------------------------------------------------
c1 = Conn()
c2 = Conn()
c2.send(b"GET /ping HTTP/1.1\r\nHost: a\r\n")      # incomplete, will time out
c1.send(request("GET", "/ping"))
r = c1.response()
check(r.status == 200 and r.body == b"pong\n", "complete request next to a stalled one",
      b"pong\n", r)
c1.close()
c2.close()
EOF

log "ok"
