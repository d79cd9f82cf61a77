#!/usr/bin/env bash
# 04-keepalive-pipeline: one client connection carries many requests
# (keep-alive); pipelined requests sent in one write are answered in order,
# even when the first is slow and later ones are answered by corral itself;
# "Connection: close" from the client closes after the response.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT

cat > corral.yaml <<EOF
name: t
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { keepalive: 8, connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
import json
from httpc import *

# -- keep-alive: 30 requests, one connection ---------------------------------------
c = Conn()
for i in range(30):
    kind = i % 3
    if kind == 0:
        c.send(request("GET", "/headers?i=%d" % i))
        r = c.response()
        check(r.status == 200 and json.loads(r.body)["path"] == "/headers?i=%d" % i,
              "keep-alive request %d (GET /headers)" % i, "/headers?i=%d" % i, r.body[:200])
    elif kind == 1:
        c.send(request("GET", "/ping"))
        r = c.response()
        check(r.status == 200 and r.body == b"pong\n", "keep-alive request %d (GET /ping)" % i,
              b"pong\n", r.body)
    else:
        body = ("body %d " % i).encode() * (i + 1)
        c.send(request("POST", "/echo", body=body))
        r = c.response()
        check(r.status == 200 and r.body == body, "keep-alive request %d (POST /echo)" % i,
              body, r.body)
    for v in r.all("Connection"):
        check("close" not in v.lower(), "no Connection: close on a keep-alive connection",
              "keep-alive", v)
c.close()

# -- pipelining: all in one write, answers in order ------------------------------------
reqs = [
    ("GET", "/slow?ms=400", None),
    ("GET", "/ping", None),
    ("GET", "/headers?n=3", None),
    ("POST", "/echo", b"pipelined-4"),
    ("HEAD", "/", None),
    ("GET", "/status/204", None),
    ("GET", "/headers?n=7", None),
    ("GET", "/bytes?n=70000", None),
    ("GET", "/ping", None),
]
c = Conn()
c.send(b"".join(request(m, p, body=b) for m, p, b in reqs))
got = []
for m, p, b in reqs:
    got.append(c.response(head_request=(m == "HEAD")))
check(got[0].status == 200 and got[0].body == b"slow\n", "pipelined 1: GET /slow", b"slow\n", got[0].body)
check(got[1].body == b"pong\n", "pipelined 2: GET /ping", b"pong\n", got[1].body)
check(json.loads(got[2].body)["path"] == "/headers?n=3", "pipelined 3: GET /headers?n=3",
      "/headers?n=3", got[2].body[:200])
check(got[3].body == b"pipelined-4", "pipelined 4: POST /echo", b"pipelined-4", got[3].body)
check(got[4].status == 200 and got[4].header("X-Backend") == "b1", "pipelined 5: HEAD /",
      "200 from b1", got[4])
check(got[5].status == 204, "pipelined 6: GET /status/204", 204, got[5])
check(json.loads(got[6].body)["path"] == "/headers?n=7", "pipelined 7: GET /headers?n=7",
      "/headers?n=7", got[6].body[:200])
check(len(got[7].body) == 70000, "pipelined 8: GET /bytes?n=70000 length", 70000, len(got[7].body))
check(got[8].body == b"pong\n", "pipelined 9: GET /ping", b"pong\n", got[8].body)
c.close()

# -- Connection: close from the client ------------------------------------------------
c = Conn()
c.send(request("GET", "/headers", headers=[("Connection", "close")]))
r = c.response()
check(r.status == 200, "GET with Connection: close", 200, r)
check(c.closed_within(10), "corral closes after answering Connection: close")
c.close()
EOF

log "ok"
