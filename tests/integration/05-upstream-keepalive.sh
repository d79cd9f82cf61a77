#!/usr/bin/env bash
# 05-upstream-keepalive: corral reuses idle upstream connections: 200
# requests through corral (100 on one client connection, 100 on a new client
# connection each) reach the backend over far fewer TCP connections.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT BPORT=$bport

cat > corral.yaml <<EOF
name: t
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { keepalive: 32, connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
import os
from httpc import *

BPORT = int(os.environ["BPORT"])

def backend_counter(path):
    c = Conn(BPORT)
    c.send(request("GET", path))
    r = c.response()
    c.close()
    return int(r.body)

conns0 = backend_counter("/conns")
reqs0 = backend_counter("/reqs")

n = 0
c = Conn()
for i in range(100):
    c.send(request("GET", "/status/200?i=%d" % i))
    r = c.response()
    check(r.status == 200, "keep-alive client request %d" % i, 200, r)
    n += 1
c.close()
for i in range(100):
    c = Conn()
    c.send(request("GET", "/status/200?j=%d" % i, headers=[("Connection", "close")]))
    r = c.response()
    check(r.status == 200, "new-connection client request %d" % i, 200, r)
    c.close()
    n += 1

conns1 = backend_counter("/conns")
reqs1 = backend_counter("/reqs")
# Each counter query is a request on a new connection of its own, and each
# count includes the query that reads it: between the first and the last
# query, the backend also served the second and the third.
reached = reqs1 - reqs0 - 2
opened = conns1 - conns0 - 2
print("requests through corral: %d, reached the backend: %d, upstream connections opened: %d"
      % (n, reached, opened))
check(reached == n, "every request reached the backend", n, reached)
check(opened <= 20, "upstream connections opened for %d requests (keep-alive pool)" % n,
      "<= 20", opened)
EOF

log "ok"
