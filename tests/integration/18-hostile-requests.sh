#!/usr/bin/env bash
# 18-hostile-requests: requests that once got past corral's checks or took
# a worker down.
#   - "Upgrade: websocket" + "Connection: Upgrade" to a backend that does not
#     switch (it answers 200) is an ordinary exchange: Upgrade is offered to
#     the backend, the answer is plain, and a request pipelined right behind
#     it on the same connection is answered as its own request, both for a
#     proxied route and for a local answer; the worker survives (same pids,
#     no "exited unexpectedly" in the log). Tunnels after a 101: test 34.
#   - "Connection: Host" (or "Connection: host, x-a") cannot make corral drop
#     Host toward the backend; the other headers named there are dropped.
#   - request targets: https:// absolute-form is routed on its path (a deny
#     route on /admin answers 403, the backend never sees it); another
#     scheme (ftp://) or a bare word is refused with 400 and a close;
#     "OPTIONS *" is routed on the path "*" and the connection goes on.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
BLOG=$(backend_log b1)
export PORT BLOG

# One worker: a crash cannot hide behind a second one. The host-only route
# "pub" catches any target the deny route fails to read as /admin, so a
# misread target shows up as a 200 from the backend. The instance name
# carries the port: no clash with another corral running under a fixed name.
cat > corral.yaml <<EOF
name: "t18-$PORT"
workers: 1
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { keepalive: 8, connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: local, match: { path: /local }, respond: { status: 200, body: "local\n" } }
  - { name: deny, match: { path_prefix: /admin }, respond: { status: 403, body: "denied\n" } }
  - { name: star, match: { path_regex: '^[*]\$', methods: [OPTIONS] },
      respond: { status: 200, body: "any path\n", headers: { Allow: "GET, OPTIONS" } } }
  - { name: pub, match: { host: pub.example }, upstream: app }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml
wait_listeners "$PORT" 1 || fail "expected 1 listening socket on $PORT, got $(count_listeners "$PORT")"
workers_before=$(worker_pids | paste -sd' ')
[ -n "$workers_before" ] || fail "no worker found under master $CORRAL_PID"

py <<'EOF' || exit 1
import json
import os
from httpc import *

def backend_headers(r, what):
    check(r.status == 200, what + ": status", 200, r)
    try:
        return json.loads(r.body)
    except ValueError:
        fail(what + ": a JSON body from the backend's /headers", "JSON", r.body[:300])

def names(doc):
    return [k.lower() for k, v in doc["headers"]]

# -- Upgrade, then a pipelined request ------------------------------------------------------
UPGRADE = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
           ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]
for i in range(10):
    c = Conn(timeout=10)
    c.send(request("GET", "/headers?up=%d" % i, headers=UPGRADE)
           + request("GET", "/headers?after=%d" % i))
    try:
        r1 = c.response()
        r2 = c.response()
    except (EOFError, ConnectionResetError, OSError) as e:
        fail("Upgrade + pipelined GET (try %d): both answered" % i, "two responses", repr(e))
    check(r1.status != 101, "an Upgrade request is not switched (try %d)" % i, "not 101", r1)
    doc = backend_headers(r1, "Upgrade request via the proxy (try %d)" % i)
    check(doc["path"] == "/headers?up=%d" % i, "the Upgrade request reached the backend",
          "/headers?up=%d" % i, doc["path"])
    offered = [(k.lower(), v.lower()) for k, v in doc["headers"]
               if k.lower() in ("upgrade", "connection")]
    check(offered == [("upgrade", "websocket"), ("connection", "upgrade")],
          "the upgrade is offered to the backend, for this hop only",
          "Upgrade: websocket, Connection: upgrade", doc["headers"])
    doc = backend_headers(r2, "request pipelined after an Upgrade request (try %d)" % i)
    check(doc["path"] == "/headers?after=%d" % i, "the pipelined request is its own request",
          "/headers?after=%d" % i, doc["path"])
    c.close()

# the same in front of a local answer
c = Conn(timeout=10)
c.send(request("GET", "/local", headers=UPGRADE) + request("GET", "/local")
       + request("GET", "/local", headers=[("Connection", "close")]))
for i in range(3):
    try:
        r = c.response()
    except (EOFError, ConnectionResetError, OSError) as e:
        fail("Upgrade to a local route + 2 pipelined: response %d" % (i + 1), "a response", repr(e))
    check(r.status == 200 and r.body == b"local\n",
          "Upgrade to a local route + 2 pipelined: response %d" % (i + 1), b"local\n", r)
check(c.closed_within(10), "closed after the pipelined Connection: close")
c.close()

# -- Connection naming Host -------------------------------------------------------------
for conn_value in ("Host", "host, x-a", "X-A , HOST"):
    c = Conn()
    c.send(request("GET", "/headers", host="pub.example",
                   headers=[("Connection", conn_value), ("X-A", "1"), ("X-B", "2")]))
    doc = backend_headers(c.response(), "Connection: %s" % conn_value)
    hosts = [v for k, v in doc["headers"] if k.lower() == "host"]
    check(hosts == ["pub.example"], "Connection: %s: the backend still gets Host" % conn_value,
          ["pub.example"], doc["headers"])
    if "x-a" in conn_value.lower():
        check("x-a" not in names(doc), "Connection: %s: X-A is dropped" % conn_value,
              "no X-A", doc["headers"])
    check("x-b" in names(doc), "Connection: %s: X-B (not named) passes" % conn_value,
          "X-B", doc["headers"])
    c.close()

# -- request targets ----------------------------------------------------------------------
def one(target, method="GET", host="pub.example"):
    c = Conn()
    c.send("%s %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (method, target, host))
    try:
        r = c.response()
    except (EOFError, ConnectionResetError) as e:
        fail("%s %s: a response" % (method, target), "a response", repr(e))
    return c, r

for target in ("/admin/headers?t=deny1", "http://pub.example/admin/headers?t=deny2",
               "https://pub.example/admin/headers?t=deny3", "HTTPS://pub.example/admin/headers?t=deny4"):
    c, r = one(target)
    check(r.status == 403 and r.body == b"denied\n",
          "GET %s is routed on its path /admin/headers (deny route)" % target, 403, r)
    c.close()

# https:// absolute-form that is allowed: origin-form upstream, authority as Host
c, r = one("https://pub.example/headers?t=ok", host="other.example")
doc = backend_headers(r, "GET https://pub.example/headers")
check(doc["path"] == "/headers?t=ok", "https:// target sent upstream in origin-form",
      "/headers?t=ok", doc["path"])
hosts = [v for k, v in doc["headers"] if k.lower() == "host"]
check(hosts == ["pub.example"], "the authority of an https:// target is the Host upstream",
      ["pub.example"], doc["headers"])
c.close()

for target in ("ftp://pub.example/headers?t=ftp", "nonsense", "headers?t=bare"):
    c, r = one(target)
    check(r.status == 400, "GET %s: refused" % target, 400, r)
    check(0 < len(r.body) <= 1024, "GET %s: a short body" % target, "1..1024 bytes", r.body)
    check(any("close" in v.lower() for v in r.all("Connection")),
          "GET %s: Connection: close" % target, "close", r.all("Connection"))
    check(c.closed_within(10), "GET %s: connection closed after the 400" % target)
    c.close()

# asterisk-form: routed on "*", and the connection carries on
c = Conn()
c.send(b"OPTIONS * HTTP/1.1\r\nHost: pub.example\r\n\r\n" + request("GET", "/local"))
r = c.response()
check(r.status == 200 and r.body == b"any path\n" and r.header("Allow") == "GET, OPTIONS",
      "OPTIONS * is routed to the route on the path \"*\"", b"any path\n", r)
r = c.response()
check(r.status == 200 and r.body == b"local\n", "request after OPTIONS * on the same connection",
      b"local\n", r)
c.close()

seen = open(os.environ["BLOG"]).read()
for tag in ("t=deny", "t=ftp", "t=bare", "nonsense"):
    check(tag not in seen, "a refused or denied target must not reach the backend (%s)" % tag,
          "not in the backend log", seen[-2000:])
check("b1 GET /headers?t=ok" in seen, "the allowed https:// target reached the backend",
      "b1 GET /headers?t=ok", seen[-2000:])
EOF

code=$(http_code "http://127.0.0.1:$PORT/local")
assert_eq 200 "$code" "GET /local afterwards"
workers_after=$(worker_pids | paste -sd' ')
assert_eq "$workers_before" "$workers_after" "worker pids unchanged (no worker died)"
if grep -q 'exited unexpectedly' "$CORRAL_LOG"; then
    fail "a worker exited unexpectedly: $(grep 'exited unexpectedly' "$CORRAL_LOG" | head -n 3)"
fi

log "ok"
