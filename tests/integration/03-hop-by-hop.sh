#!/usr/bin/env bash
# 03-hop-by-hop: hop-by-hop headers are removed in both directions:
# Connection, Keep-Alive, TE, Trailer, Upgrade, Proxy-Connection and every
# header the Connection header names; end-to-end headers pass.
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
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
import json
from httpc import *

HOP = ["keep-alive", "te", "trailer", "upgrade", "proxy-connection", "transfer-encoding"]

# -- client to backend ------------------------------------------------------------
c = Conn()
c.send(request("GET", "/headers", headers=[
    ("Connection", "keep-alive, X-Secret"),
    ("X-Secret", "1"),
    ("Keep-Alive", "timeout=5, max=100"),
    ("TE", "trailers"),
    ("Trailer", "X-Checksum"),
    ("Upgrade", "example/1"),
    ("Proxy-Connection", "keep-alive"),
    ("X-Keep", "yes"),
]))
r = c.response()
check(r.status == 200, "GET /headers with hop-by-hop headers", 200, r)
hs = json.loads(r.body)["headers"]
names = [k.lower() for k, v in hs]
for h in HOP + ["x-secret"]:
    check(h not in names, "backend must not see the hop-by-hop header %s" % h, "absent", hs)
for k, v in hs:
    if k.lower() == "connection":
        toks = {t.strip().lower() for t in v.split(",")}
        check(toks <= {"keep-alive", "close"},
              "a Connection header toward the backend may only be corral's own",
              "keep-alive or close", v)
check(("X-Keep", "yes") in [tuple(h) for h in hs], "end-to-end header X-Keep passed", "X-Keep: yes", hs)

# the same connection still works (the client's keep-alive was honoured)
c.send(request("GET", "/headers?second=1"))
r = c.response()
check(r.status == 200, "second request on the connection", 200, r)
c.close()

# several headers named by Connection, in another case, with odd spacing
c = Conn()
c.send(request("GET", "/headers", headers=[
    ("Connection", "x-one , X-TWO"),
    ("X-One", "a"), ("X-Two", "b"), ("X-Three", "c"),
]))
r = c.response()
check(r.status == 200, "GET /headers with Connection: x-one , X-TWO", 200, r)
hs = json.loads(r.body)["headers"]
names = [k.lower() for k, v in hs]
check("x-one" not in names and "x-two" not in names,
      "headers named in Connection (any case) are removed", "no X-One / X-Two", hs)
check("x-three" in names, "a header not named in Connection passes", "X-Three", hs)
c.close()

# -- backend to client -----------------------------------------------------------
q = ("Connection=X-Resp-Secret&X-Resp-Secret=1&Keep-Alive=timeout%3D7&TE=trailers"
     "&Trailer=X-Checksum&Upgrade=example%2F1&Proxy-Connection=keep-alive&X-Resp-Keep=yes")
c = Conn()
c.send(request("GET", "/setheaders?" + q))
r = c.response()
check(r.status == 200, "GET /setheaders", 200, r)
check(r.body == b"headers set\n", "body of /setheaders", b"headers set\n", r.body)
names = [k.lower() for k, v in r.headers]
for h in ["te", "trailer", "upgrade", "proxy-connection", "x-resp-secret"]:
    check(h not in names, "client must not see the backend's hop-by-hop header %s" % h,
          "absent", r.headers)
check("timeout=7" not in r.all("Keep-Alive"), "the backend's Keep-Alive is not passed on",
      "absent", r.all("Keep-Alive"))
for v in r.all("Connection"):
    check("x-resp-secret" not in v.lower(), "the backend's Connection is not passed on",
          "no X-Resp-Secret", v)
check(r.header("X-Resp-Keep") == "yes", "end-to-end response header passed", "yes",
      r.header("X-Resp-Keep"))
c.close()
EOF

log "ok"
