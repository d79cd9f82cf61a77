#!/usr/bin/env bash
# 02-proxy-basic: a request goes through to the backend and back: the body,
# the backend's headers, Host unchanged, X-Forwarded-For/-Proto/-Host and Via
# added (appended to values already there), query string kept; HTTP/1.0
# clients work and are closed after the response; HEAD, 204 and 304 carry no
# body, so the next response on the connection is intact.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT

cat > corral.yaml <<EOF
name: t
workers: 2
drain_timeout: 5s
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { keepalive: 32, connect_timeout: 1s, read_timeout: 5s, retries: 1, max_fails: 1, fail_timeout: 10s,
         servers: [ { address: "127.0.0.1:$bport", weight: 1 } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml

# -- a plain GET with curl ------------------------------------------------------
body=$("${CURL[@]}" -D head.txt "http://127.0.0.1:$PORT/")
assert_match '^HTTP/1\.1 200' "$(head -n1 head.txt)" "GET / status line"
assert_contains "$body" "backend b1" "GET / body comes from the backend"
assert_match '^[Xx]-[Bb]ackend: b1' "$(tr -d '\r' < head.txt)" "GET / carries the backend's X-Backend header"

# -- what the backend sees, and what the client sees ----------------------------
py <<'EOF' || exit 1
import json
from httpc import *

def headers_seen(extra=(), host="www.test:8080", path="/headers?a=1&b=2"):
    c = Conn()
    c.send(request("GET", path, host=host, headers=extra))
    r = c.response()
    c.close()
    check(r.status == 200, "GET %s through corral" % path, 200, r)
    return r, json.loads(r.body)

r, doc = headers_seen()
hs = doc["headers"]
def vals(name):
    return [v for k, v in hs if k.lower() == name.lower()]

check(doc["method"] == "GET", "method seen by the backend", "GET", doc["method"])
check(doc["path"] == "/headers?a=1&b=2", "path and query seen by the backend",
      "/headers?a=1&b=2", doc["path"])
check(doc["version"] == "HTTP/1.1", "version spoken to the backend", "HTTP/1.1", doc["version"])
check(vals("Host") == ["www.test:8080"], "Host passed unchanged", ["www.test:8080"], vals("Host"))
check(vals("X-Forwarded-For") == ["127.0.0.1"], "X-Forwarded-For added", ["127.0.0.1"],
      vals("X-Forwarded-For"))
check(vals("X-Forwarded-Proto") == ["http"], "X-Forwarded-Proto added", ["http"],
      vals("X-Forwarded-Proto"))
check(vals("X-Forwarded-Host") == ["www.test:8080"], "X-Forwarded-Host is the client's Host",
      ["www.test:8080"], vals("X-Forwarded-Host"))
check(vals("Via") == ["1.1 corral"], "Via added", ["1.1 corral"], vals("Via"))
check(r.header("X-Backend") == "b1", "response header from the backend", "b1", r.header("X-Backend"))
check(r.header("Content-Type") == "application/json", "Content-Type passed back",
      "application/json", r.header("Content-Type"))

# values already there are appended to
r, doc = headers_seen(extra=[("X-Forwarded-For", "10.1.2.3"), ("Via", "1.0 edge"),
                             ("X-Custom", "kept as is")])
hs = doc["headers"]
check(vals("X-Forwarded-For") == ["10.1.2.3, 127.0.0.1"], "X-Forwarded-For appended",
      ["10.1.2.3, 127.0.0.1"], vals("X-Forwarded-For"))
check(vals("Via") == ["1.0 edge, 1.1 corral"], "Via appended", ["1.0 edge, 1.1 corral"], vals("Via"))
check(vals("X-Custom") == ["kept as is"], "end-to-end header passed", ["kept as is"], vals("X-Custom"))

# HTTP/1.0 client without keep-alive: answered, then closed
c = Conn()
c.send(b"GET /headers HTTP/1.0\r\nHost: old.test\r\n\r\n")
r = c.response()
check(r.status == 200, "HTTP/1.0 GET status", 200, r)
check(r.version in ("HTTP/1.0", "HTTP/1.1"), "HTTP/1.0 response version", "HTTP/1.x", r.version)
doc = json.loads(r.body)
check(("Host", "old.test") in [tuple(h) for h in doc["headers"]], "HTTP/1.0 Host passed",
      "old.test", doc["headers"])
check(c.closed_within(10), "connection of an HTTP/1.0 client is closed after the response")
c.close()

# HEAD, 204, 304 carry no body: each next response on the connection must
# start right after the head.
c = Conn()
for method, path, status, head_req in [("HEAD", "/", 200, True),
                                       ("GET", "/status/204", 204, False),
                                       ("GET", "/status/304", 304, False),
                                       ("HEAD", "/bytes?n=5000", 200, True),
                                       ("GET", "/", 200, False)]:
    c.send(request(method, path))
    r = c.response(head_request=head_req)
    check(r.status == status, "%s %s status" % (method, path), status, r)
    if method == "HEAD" and path.startswith("/bytes"):
        check(r.header("Content-Length") == "5000", "HEAD keeps Content-Length", "5000",
              r.header("Content-Length"))
check(b"backend b1" in r.body, "GET / after HEAD/204/304 on the same connection", "backend b1",
      r.body[:200])
# nothing stray may follow: a last request must parse cleanly too
c.send(request("GET", "/ping"))
r = c.response()
check(r.status == 200 and r.body == b"pong\n", "request after HEAD/204/304", "200 pong", r)
c.close()
EOF

# -- a small POST -------------------------------------------------------------
got=$("${CURL[@]}" --data-binary 'hello, corral' "http://127.0.0.1:$PORT/echo")
assert_eq "hello, corral" "$got" "POST /echo body"

# -- curl as an HTTP/1.0 client -----------------------------------------------------
body=$("${CURL[@]}" -0 "http://127.0.0.1:$PORT/")
assert_contains "$body" "backend b1" "curl --http1.0 GET /"

log "ok"
