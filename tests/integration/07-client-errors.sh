#!/usr/bin/env bash
# 07-client-errors: malformed or oversized requests get the right status
# with a short text body: 400 (duplicate Content-Length, Content-Length with
# Transfer-Encoding, garbage bytes, whitespace before a header's colon), 404
# (no route; the connection stays usable), 413 (Content-Length over
# max_body_bytes, refused before the backend sees anything), 414 (target
# over max_uri_bytes), 431 (head over max_header_bytes, more than
# max_headers headers). Requests just under the limits pass. Where the
# connection cannot continue, "Connection: close" and a close follow. No
# worker dies.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
BLOG=$(backend_log b1)
export PORT BLOG

cat > corral.yaml <<EOF
name: t
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
limits: { max_header_bytes: 4k, max_headers: 20, max_uri_bytes: 1k, max_body_bytes: 1m, header_timeout: 10s, idle_timeout: 60s }
upstreams:
  app: { keepalive: 8, connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: app, match: { path_prefix: /app/ }, upstream: app, strip_prefix: /app }
EOF
start_corral corral.yaml
wait_listeners "$PORT" 2 || fail "expected 2 listening sockets on $PORT, got $(count_listeners "$PORT")"
workers_before=$(worker_pids | paste -sd' ')

py <<'EOF' || exit 1
import os
from httpc import *

def expect(data, status, what, closes):
    c = Conn()
    c.send(data)
    try:
        r = c.response()
    except (EOFError, ConnectionResetError) as e:
        fail(what + ": no response before the connection ended", status, repr(e))
    check(r.status == status, what + ": status", status, r)
    check(0 < len(r.body) <= 1024, what + ": a short body", "1..1024 bytes", r.body)
    if closes:
        check(any("close" in v.lower() for v in r.all("Connection")),
              what + ": Connection: close", "close", r.all("Connection"))
        check(c.closed_within(10), what + ": connection closed after the response")
    c.close()
    return r

# -- 400 -----------------------------------------------------------------------------
expect(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       400, "two Content-Length headers", True)
expect(b"POST /app/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
       b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400, "Content-Length with Transfer-Encoding", True)
expect(b"\x00\x01\x02 garbage \xff\xfe\r\n\r\n", 400, "garbage bytes", True)
# RFC 9112 section 5.1: whitespace between a field name and the colon MUST be
# rejected with 400 (a proxy that passes it on invites request smuggling)
expect(b"GET /app/status/200 HTTP/1.1\r\nHost: a\r\nX-Bad : x\r\n\r\n", 400,
       "whitespace between a header name and the colon", True)

# -- 404, and the connection goes on -----------------------------------------------------
c = Conn()
c.send(request("GET", "/nothing/here") + request("GET", "/ping"))
r = c.response()
check(r.status == 404, "no route: status", 404, r)
check(0 < len(r.body) <= 1024, "no route: a short body", "1..1024 bytes", r.body)
r = c.response()
check(r.status == 200 and r.body == b"pong\n", "request after a 404 on the same connection",
      b"pong\n", r)
c.close()

# -- 413 -------------------------------------------------------------------------------
# only the head is sent: corral must answer without waiting for the body
expect(b"POST /app/echo?tag=too-big HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n",
       413, "Content-Length over max_body_bytes", True)
# limits are inclusive: exactly max_body_bytes passes, and so does less
for n in (500 * 1024, 1024 * 1024):
    body = bytes((i * 31) & 0xff for i in range(n))
    c = Conn()
    c.send(request("POST", "/app/echo?tag=ok-%d" % n, body=body))
    r = c.response()
    check(r.status == 200 and r.body == body, "POST of %d bytes (limit 1m)" % n,
          "200 and the same body", r)
    c.close()

# -- 414 -------------------------------------------------------------------------------
expect(request("GET", "/app/status/200?pad=" + "a" * 2000), 414, "target over max_uri_bytes", True)
c = Conn()
c.send(request("GET", "/app/status/200?pad=" + "a" * 900))
r = c.response()
check(r.status == 200, "target of ~920 bytes (limit 1k)", 200, r)
c.close()

# -- 431 -------------------------------------------------------------------------------
expect(request("GET", "/app/status/200", headers=[("X-Big", "b" * 5000)]), 431,
       "head over max_header_bytes", True)
expect(request("GET", "/app/status/200", headers=[("X-H%d" % i, str(i)) for i in range(30)]),
       431, "more than max_headers headers", True)
c = Conn()
c.send(request("GET", "/app/status/200", headers=[("X-H%d" % i, str(i)) for i in range(15)]
               + [("X-Big", "b" * 2500)]))
r = c.response()
check(r.status == 200, "16 headers, ~2.7k head (limits 20 and 4k)", 200, r)
c.close()

# -- the backend never saw the refused body ------------------------------------------------
seen = open(os.environ["BLOG"]).read()
check("tag=too-big" not in seen, "a request refused with 413 must not reach the backend",
      "no tag=too-big in the backend log", seen[-2000:])
check("tag=ok-1048576" in seen, "the accepted POST reached the backend", "tag=ok-1048576",
      seen[-2000:])
EOF

code=$(http_code "http://127.0.0.1:$PORT/ping")
assert_eq 200 "$code" "GET /ping after all the errors"
workers_after=$(worker_pids | paste -sd' ')
assert_eq "$workers_before" "$workers_after" "worker pids unchanged (no worker died on a bad request)"

log "ok"
