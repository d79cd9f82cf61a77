#!/usr/bin/env bash
# 54-request-timing: the request duration histogram in shared memory has
# microsecond resolution. 200 proxied requests, one after another on one
# keep-alive connection, each spend an upstream round trip in corral, so
# none may be counted at 1 us or less (a clock that moves by ticks would
# put most of them at 0); a request the backend holds 40 ms is counted
# above the 32.768 ms bucket. Only lower bounds: a slow machine passes.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT

cat > corral.yaml <<EOF
workers: 1
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { keepalive: 8, servers: [ "127.0.0.1:$bport" ] }
routes:
  - { name: app, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
from httpc import *

c = Conn()
for i in range(200):
    c.send(request("GET", "/"))
    r = c.response()
    check(r.status == 200, "request %d through the proxy" % i, 200, r.status)
c.send(request("GET", "/slow?ms=40"))
r = c.response()
check(r.status == 200 and r.body == b"slow\n", "the slow request", "200 slow", r)
c.close()
EOF

"$CORRALCTL" metrics > metrics.txt || fail "corralctl metrics failed"
# bucket LE: requests counted at or below LE seconds, summed over workers
bucket() {
    awk -v le="le=\"$1\"" '/^corral_request_duration_seconds_bucket\{/ && index($0, le) { s += $2 }
                          END { print s + 0 }' metrics.txt
}
count=$(awk '/^corral_request_duration_seconds_count\{/ { s += $2 } END { print s + 0 }' metrics.txt)
assert_eq 201 "$count" "requests in the duration histogram"
assert_eq 0 "$(bucket 0.000001)" "proxied requests counted at 1 us or less"
assert_eq 200 "$(bucket 0.032768)" "requests at or below 32.768 ms (all but the 40 ms one)"
assert_eq 201 "$(bucket +Inf)" "requests in the +Inf bucket"

log "ok"
